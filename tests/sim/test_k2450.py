"""Simulated Keithley 2450 (SCPI): command forms third-party drivers send, errors, buffers,
sweeps in simulated time, compliance, and our own Smu driver end to end on a dendrite."""

from __future__ import annotations

import re

import numpy as np
import pytest

from dendrolab.errors import ParameterError
from instruments.factory import connect
from instruments.smu import Smu
from sim_backend.instruments import model_class
from sim_backend.instruments.k2450 import Keithley2450Sim
from sim_backend.physics.waveform import pulse_train
from tests.sim import ask
from tests.sim import errors as drain_errors

NR3 = re.compile(r"-?\d\.\d{6}E[+-]\d{2}")
APERTURE_1PLC = 1 / 50  # default line frequency 50 Hz
AUTO_DELAY = 50e-6


@pytest.fixture
def k(dendrite_bench):
    return Keithley2450Sim(dendrite_bench, "smu")


def errors(model) -> list[str]:
    return drain_errors(model, no_error='0,"No error"')


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",")]


# --- identity and options -------------------------------------------------------------------


def test_registered_and_identity(k):
    assert model_class("keithley2450") is Keithley2450Sim
    assert ask(k, "*IDN?") == "KEITHLEY INSTRUMENTS,MODEL 2450,04488850,1.7.3c"
    assert ask(k, "*LANG?") == "SCPI"
    assert ask(k, "*LANG TSP;*LANG?") == "SCPI"  # a new language needs a power cycle
    assert ask(k, ":SYSTem:LFRequency?") == "50"


def test_options(dendrite_bench):
    k = Keithley2450Sim(dendrite_bench, "smu", {"serial": "12345678", "line_frequency_hz": 60})
    assert ask(k, "*IDN?") == "KEITHLEY INSTRUMENTS,MODEL 2450,12345678,1.7.3c"
    assert ask(k, ":SYST:LFR?") == "60"
    with pytest.raises(ParameterError, match="unknown option"):
        Keithley2450Sim(dendrite_bench, "smu", {"chanels": 2})
    with pytest.raises(ParameterError, match="line_frequency_hz"):
        Keithley2450Sim(dendrite_bench, "smu", {"line_frequency_hz": 55})


# --- spot readings --------------------------------------------------------------------------


def test_read_at_0v2_costs_delay_plus_nplc_and_matches_the_device(k, dendrite_bench):
    assert ask(k, ":SOUR:VOLT:ILIM 1e-3;:OUTP ON") is None
    reply = ask(k, ":SOUR:VOLT 0.2;:READ?")
    assert NR3.fullmatch(reply)
    assert dendrite_bench.now_s == pytest.approx(AUTO_DELAY + APERTURE_1PLC)
    assert float(reply) == pytest.approx(dendrite_bench.device("d1").current(0.2), rel=1e-4)
    # the next reading at the same level: no new source delay, one more aperture
    text = ask(k, ':READ? "defbuffer1",READ,SOUR,REL')
    _i, v, rel = floats(text)
    assert (v, rel) == (0.2, pytest.approx(APERTURE_1PLC))
    assert text.split(",")[1] == "2.000000E-01"
    assert dendrite_bench.now_s == pytest.approx(AUTO_DELAY + 2 * APERTURE_1PLC)
    assert ask(k, ":TRAC:ACT?") == "2"


def test_pymeasure_short_forms_and_reset(k, dendrite_bench):
    ask(k, ":SOUR:FUNC VOLT;:SOUR:VOLT:RANG:AUTO 1;:SOUR:VOLT:ILIM 0.001")
    ask(k, ":SENS:FUNC 'CURR';:SENS:CURR:RANG:AUTO 0;:SENS:CURR:RANG 1e-06")
    ask(k, ":SENS:CURR:NPLC 0.1;:SOUR:VOLT:LEV 0.5")
    ask(k, "OUTPUT ON")
    assert ask(k, ":SENS:CURR:RANG?;:SENS:CURR:NPLC?;:OUTP?") == "1.000000E-06;1.000000E-01;1"
    assert dendrite_bench.levels["smu/1"] == 0.5
    assert NR3.fullmatch(ask(k, ":READ?"))
    assert ask(k, "*RST;:stat:pres;:*CLS;") is None
    assert "smu/1" not in dendrite_bench.levels
    assert ask(k, ":OUTP?;:SOUR:VOLT?;:SOUR:VOLT:ILIM?") == "0;0.000000E+00;1.050000E-04"
    assert ask(k, ":SENS:FUNC?;:SENS:CURR:RANG:AUTO?;:TRAC:ACT?") == '"CURR:DC";1;0'
    assert errors(k) == []


def test_qcodes_long_forms(k, dendrite_bench):
    cmds = [
        ":SOUR:FUNC VOLT",
        ':SENS:FUNC "CURR:DC"',
        "SOUR:voltage:ILIM 0.01",
        ":SENSe:current:NPLCycles 0.5",
        ":SENSe:current:RSENse 1",
        "ROUTe:TERMinals front",
        "SOUR:voltage 0.2",
        ":OUTP 1",
    ]
    for c in cmds:
        assert ask(k, c) is None
    assert ask(k, ":SENSe:current:RSENse?") == "1"
    assert ask(k, "ROUTe:TERMinals?") == "FRON"
    assert float(ask(k, ":MEASure? 'defbuffer1'")) > 0
    assert ask(k, ":SOUR:voltage:ILIM:TRIPped?") == "0"
    assert ask(k, ":TRACe:MAKE 'mybuf', 100, ") is None
    assert ask(k, ":TRACe:POINts? 'mybuf'") == "100"
    assert ask(k, ":SOURce:voltage:DELay:USER2 0.5;:SOURce:voltage:DELay:USER2?") == (
        "5.000000E-01"
    )
    assert errors(k) == []


# --- sweeps ---------------------------------------------------------------------------------


def test_qcodes_linear_sweep_with_all_nine_arguments(k, dendrite_bench):
    ask(k, ":SENSe:current:NPLCycles 0.1;:SOURce:voltage:ILIM 0.001")
    t0 = dendrite_bench.now_s
    ask(k, ":SOURce:SWEep:voltage:LINear 0,1,11,0.001,1,AUTO,OFF,OFF,'defbuffer1'")
    assert dendrite_bench.now_s == t0  # configuring does not run it
    assert ask(k, ":INITiate;*WAI;*OPC?") == "1"
    per_point = 0.001 + 0.1 / 50
    assert dendrite_bench.now_s - t0 == pytest.approx(11 * per_point)
    assert ask(k, ":TRACe:ACTual? 'defbuffer1'") == "11"
    data = floats(ask(k, ":TRACe:DATA? 1, 11, 'defbuffer1', SOUR, READ, REL"))
    table = np.array(data).reshape(11, 3)
    np.testing.assert_allclose(table[:, 0], np.linspace(0, 1, 11), atol=1e-9)
    np.testing.assert_allclose(table[:, 2], np.arange(11) * per_point, rtol=1e-5, atol=1e-9)
    assert np.all(np.diff(table[1:, 1]) > 0)  # current grows with voltage
    assert ask(k, ":OUTP?") == "0"  # the sweep model ends with the output off
    assert "smu/1" not in dendrite_bench.levels


def test_dual_sweep_count_and_auto_delay(k, dendrite_bench):
    ask(k, ":SENS:CURR:NPLC 0.01")
    ask(k, ':SOUR:SWE:VOLT:LIN 0,0.5,3,-1,2,BEST,OFF,ON,"defbuffer1"')
    t0 = dendrite_bench.now_s
    ask(k, ":INIT")
    assert ask(k, ":TRAC:ACT?") == "12"  # (3 up + 3 down) x count 2
    assert dendrite_bench.now_s - t0 == pytest.approx(12 * (AUTO_DELAY + 0.01 / 50))
    src = floats(ask(k, ':TRAC:DATA? 1,6,"defbuffer1",SOUR'))
    assert src == [0.0, 0.25, 0.5, 0.5, 0.25, 0.0]


def test_manual_list_sweep_example(k, dendrite_bench):
    for c in [
        'SENS:FUNC "CURR"',
        "SENS:CURR:RANG:AUTO ON",
        "SENS:CURR:RSEN OFF",
        "SOUR:FUNC VOLT",
        "SOUR:VOLT:RANG 20",
        "SOUR:VOLT:ILIM 1",
        "SOUR:LIST:VOLT 1, 5, 1, 5, 1, 5",
        "SOUR:SWE:VOLT:LIST 1, 0.2",
    ]:
        assert ask(k, c) is None, c
    assert ask(k, "SOUR:LIST:VOLT:POIN?") == "6"
    t0 = dendrite_bench.now_s
    ask(k, "INIT")
    ask(k, "*WAI")
    assert dendrite_bench.now_s - t0 == pytest.approx(6 * (0.2 + APERTURE_1PLC))
    data = np.array(floats(ask(k, 'TRAC:DATA? 1, 6, "defbuffer1", SOUR, READ'))).reshape(6, 2)
    np.testing.assert_allclose(data[:, 0], [1, 5, 1, 5, 1, 5])
    assert np.all(data[1::2, 1] > data[::2, 1])
    assert errors(k) == []


def test_list_append_start_index_and_limits(k):
    ask(k, ":SOUR:LIST:VOLT 0.1,0.2;:SOUR:LIST:VOLT:APP 0.3")
    assert ask(k, ":SOUR:LIST:VOLT?") == "1.000000E-01,2.000000E-01,3.000000E-01"
    ask(k, ":SOUR:SWE:VOLT:LIST 2,0;:INIT")
    assert floats(ask(k, ':TRAC:DATA? 1,2,"defbuffer1",SOUR')) == [0.2, 0.3]
    assert ask(k, ":SOUR:LIST:VOLT " + ",".join(["0"] * 101)) is None
    assert errors(k) == ['-223,"Too much data"']
    assert ask(k, ":SOUR:LIST:VOLT:POIN?") == "3"
    ask(k, ":SOUR:SWE:CURR:LIST 1")  # the sweep's function must be the source function
    assert errors(k) == ['-221,"Settings conflict"']


# --- errors ---------------------------------------------------------------------------------


def test_errors_are_queued_not_applied_and_stop_the_message(k):
    assert ask(k, ":SOUR:VOLT 300") is None
    assert ask(k, ":SOUR:VOLT?") == "0.000000E+00"
    assert ask(k, ":SENS:CURR:NPLC 20;:SENS:CURR:NPLC 2") is None  # rest of message skipped
    assert ask(k, ":SENS:CURR:NPLC?") == "1.000000E+00"
    assert ask(k, ":BOGus:HEADer 1") is None
    assert ask(k, ":SOUR:VOLT") is None
    assert ask(k, ":TRAC:DATA? 1,5") is None  # a failing query gives no reply
    assert ask(k, ':TRAC:CLE "nobuffer"') is None
    assert errors(k) == [
        '-222,"Data out of range"',
        '-222,"Data out of range"',
        '-113,"Undefined header"',
        '-109,"Missing parameter"',
        '-222,"Data out of range"',
        '-224,"Illegal parameter value"',
    ]


def test_event_log_format(k, dendrite_bench):
    assert ask(k, ":SYST:EVEN:NEXT?") == '0,"No error;0,0,0"'
    dendrite_bench.advance(1.25)
    ask(k, ":SOUR:VOLT")
    assert ask(k, ":SYST:EVEN:NEXT?") == '-109,"Missing parameter;1,1,250000000"'
    assert ask(k, ":SYST:ERR:COUN?") == "0"


# --- compliance -----------------------------------------------------------------------------


def test_voltage_source_clamps_at_the_current_limit(k, dendrite_bench):
    ask(k, ":SOUR:VOLT:ILIM 1e-6;:SOUR:VOLT 5;:OUTP ON")
    text = ask(k, ':READ? "defbuffer1",READ,SOUR,SOURSTAT')
    _i, v, sstat = floats(text)
    assert text.split(",")[0] == "1.000000E-06"
    assert 0 < v < 5  # readback shows the clamped device voltage
    assert int(sstat) & 8  # source limit bit
    assert ask(k, ":SOUR:VOLT:ILIM:TRIP?") == "1"
    ask(k, ":SOUR:VOLT 0.2")
    assert ask(k, ":SOUR:VOLT:ILIM:TRIP?") == "0"


def test_current_source_and_voltage_limit(k, dendrite_bench):
    ask(k, ':SOUR:FUNC CURR;:SOUR:CURR 1e-7;:SOUR:CURR:VLIM 5;:SENS:FUNC "VOLT";:OUTP ON')
    v, i = floats(ask(k, ':READ? "defbuffer1",READ,SOUR'))
    assert i == pytest.approx(1e-7)
    assert dendrite_bench.device("d1").current(v) == pytest.approx(1e-7, rel=1e-3)
    assert dendrite_bench.levels["smu/1"] == pytest.approx(v, rel=1e-3)  # what the device needs
    assert ask(k, ":SOUR:CURR:VLIM:TRIP?") == "0"
    ask(k, ":SOUR:CURR:VLIM 0.1")
    v, i = floats(ask(k, ':READ? "defbuffer1",READ,SOUR'))
    assert v == pytest.approx(0.1) and i < 1e-7
    assert ask(k, ":SOUR:CURR:VLIM:TRIP?") == "1"


def test_fixed_range_overflow(k):
    ask(k, ":SENS:CURR:RANG 1e-8;:SOUR:VOLT 1;:OUTP ON")
    assert ask(k, ":READ?") == "9.900000E+37"
    assert ask(k, ":SENS:CURR:RANG:AUTO ON;:READ?") != "9.900000E+37"


# --- buffers and data formats ---------------------------------------------------------------


def test_user_buffers(k):
    ask(k, ':TRAC:MAKE "b2",20;:SOUR:VOLT 0.1;:OUTP ON;:SENS:COUN 3;:SENS:CURR:NPLC 0.01')
    ask(k, ':READ? "b2"')
    assert ask(k, ':TRAC:ACT? "b2";:TRAC:ACT? "defbuffer1";:TRAC:POIN?') == "3;0;100000"
    assert ask(k, ':TRAC:ACT:STAR? "b2";:TRAC:ACT:END? "b2"') == "1;3"
    units = ask(k, ':TRAC:DATA? 1,1,"b2",UNIT,SOURUNIT,READ').split(",")
    assert units[:2] == ["Amp DC", "Volt DC"]
    assert re.fullmatch(
        r"\d\d/\d\d/\d{4} \d\d:\d\d:\d\d\.\d{9}", ask(k, ':TRAC:DATA? 1,1,"b2",TST')
    )
    ask(k, ':TRAC:CLE "b2";:TRAC:DEL "b2"')
    assert ask(k, ':TRAC:ACT? "b2"') is None
    ask(k, ':TRAC:DEL "defbuffer1"')
    assert errors(k) == ['-224,"Illegal parameter value"'] * 2


def test_once_buffer_stops_and_continuous_buffer_wraps(k):
    ask(k, ':TRAC:MAKE "small",10;:TRAC:POIN 10,"defbuffer1";:SENS:CURR:NPLC 0.01')
    ask(k, ":OUTP ON;:SENS:COUN 12")
    ask(k, ':SOUR:VOLT 0.1;:READ? "small";:READ?')
    assert ask(k, ':TRAC:ACT? "small";:TRAC:ACT?') == "10;10"
    ask(k, ":SENS:COUN 1;:SOUR:VOLT 0.3;:READ?")
    src = floats(ask(k, ':TRAC:DATA? 1,10,"defbuffer1",SOUR'))
    assert src[-1] == 0.3 and src[0] == 0.1


def test_binary_formats(k):
    ask(k, ":SENS:CURR:NPLC 0.01;:SOUR:SWE:VOLT:LIN 0,1,5;:INIT")
    ascii_ = floats(ask(k, ':TRAC:DATA? 1,5,"defbuffer1",SOUR,READ'))
    k.handle(":FORM:DATA REAL")
    raw = k.handle(':TRAC:DATA? 1,5,"defbuffer1",SOUR,READ')
    assert raw[:4] == b"#280" and raw.endswith(b"\n")
    values = np.frombuffer(raw[4:-1], dtype="<f8")
    np.testing.assert_allclose(values, ascii_, rtol=1e-6)
    k.handle(":FORM SREAL;:FORM:BORD NORM")
    raw = k.handle(':TRAC:DATA? 1,5,"defbuffer1",READ')
    assert raw[:4] == b"#220"
    np.testing.assert_allclose(np.frombuffer(raw[4:-1], ">f4"), ascii_[1::2], rtol=1e-6)
    assert ask(k, ':TRAC:DATA? 1,5,"defbuffer1",UNIT') is None
    assert errors(k) == ['1133,"Parameter 4, Syntax error, expected valid name parameters"']
    assert ask(k, ":FORM?;:FORM:BORD?") == "SRE;NORM"


def test_ascii_precision(k):
    ask(k, ":FORM:ASC:PREC 4;:SOUR:VOLT 0.2;:OUTP ON")
    assert re.fullmatch(r"\d\.\d{3}E-\d\d", ask(k, ":READ?"))


def test_10000_point_trace_reads_back_whole(k):
    """(Its speed is a benchmark figure: benchmarks/bench_visa.py.)"""
    ask(k, ":SENS:CURR:NPLC 0.01;:SOUR:SWE:VOLT:LIN 0,1,10000,0;:INIT")
    query = ':TRAC:DATA? 1,10000,"defbuffer1",SOUR,READ,REL'
    first = k.handle(query)
    reply = k.handle(query)
    assert reply == first
    values = np.array(reply.decode().split(","), dtype=float).reshape(10000, 3)
    assert values[0, 0] == 0.0 and values[-1, 0] == 1.0
    assert np.all(np.diff(values[:, 2]) > 0)     # relative time stamps rise


# --- our driver end to end ------------------------------------------------------------------


@pytest.fixture
def smu(k, loopback):
    driver = connect(loopback(k))
    driver.ramp_step_s = 0.0
    return driver


def test_driver_reads_the_dendrite_and_sees_pulses_and_relaxation(smu, dendrite_bench):
    assert isinstance(smu, Smu) and smu.identity.model == "2450"
    smu.configure_source_voltage(limit_a=1e-3)
    smu.configure_measure(nplc=1)
    smu.set_voltage(0.2)
    smu.output_on()
    before = smu.measure_iv()
    assert before.voltage_v == pytest.approx(0.2)
    assert before.current_a == pytest.approx(dendrite_bench.device("d1").current(0.2), rel=1e-4)
    dendrite_bench.drive("pulse/1", pulse_train(5, 1e-4, 1e-4, 20))
    after = smu.measure_current()
    assert after > 1.05 * before.current_a
    dendrite_bench.advance(1.0)
    relaxed = smu.measure_current()
    assert relaxed == pytest.approx(before.current_a, rel=1e-3)
    assert not smu.in_compliance()


def test_driver_sweeps_settings_and_safe_state(smu, dendrite_bench):
    smu.configure_source_voltage(limit_a=1e-3)
    smu.configure_measure(nplc=0.1)
    t0 = dendrite_bench.now_s
    res = smu.list_sweep([0.0, 0.5, 1.0, 0.5], delay_s=1e-3)
    np.testing.assert_allclose(res.voltage_v, [0.0, 0.5, 1.0, 0.5])
    np.testing.assert_allclose(res.time_s, np.arange(4) * (1e-3 + 0.1 / 50), atol=1e-9)
    assert res.current_a[2] > res.current_a[1] > 0
    assert dendrite_bench.now_s - t0 == pytest.approx(4 * (1e-3 + 0.1 / 50))
    lin = smu.linear_sweep(0.0, 1.0, 5)
    np.testing.assert_allclose(lin.voltage_v, np.linspace(0, 1, 5))
    levels = [0.001 * n for n in range(250)]  # sent as 100 + :APP chunks
    assert len(smu.list_sweep(levels).voltage_v) == 250
    smu.set_voltage(0.3)
    smu.output_on()
    snap = smu.settings()["instrument"]
    assert snap["output"] == "1" and snap["source_level"] == "3.000000E-01"
    assert snap["source_limit"] == "1.000000E-03" and snap["measure_function"] == '"CURR:DC"'
    smu.safe_state()
    assert "smu/1" not in dendrite_bench.levels
    assert smu.drain_errors() == []


@pytest.mark.parametrize("fill", ["CONT", "ONCE"])
def test_reading_buffer_matches_a_bounded_queue(fill):
    """Spot readings, bulk readings and reads interleaved: the buffer keeps exactly what a
    bounded queue (continuous: drops the oldest; once: drops the newest) keeps, in order."""
    from collections import deque

    from sim_backend.instruments.k2450 import _Buffer

    cap = 700
    buf = _Buffer(cap, fill)
    ref: deque[tuple[float, ...]] = deque()
    rng = np.random.default_rng(5)
    t = 0
    for _ in range(60):
        rows = [(float(t + k), 0.0, float(t + k), 0.0, 0.0, 0.0, 0.0)
                for k in range(int(rng.integers(1, 300)))]
        t += len(rows)
        if rng.random() < 0.5:
            for row in rows:
                buf.append(row)
        else:
            buf.extend(rows)
        for row in rows:
            if len(ref) < cap:
                ref.append(row)
            elif fill == "CONT":
                ref.popleft()
                ref.append(row)
        assert buf.count == len(ref)
        if rng.random() < 0.3:
            assert buf.t_first() == ref[0][2]
            got = buf.rows(1, buf.count)[0]
            assert got.tolist() == [r[0] for r in ref]
    assert buf.rows(1, buf.count)[0].tolist() == [r[0] for r in ref]


@pytest.mark.parametrize(
    ("ilim", "fail_abort", "sweep"),
    [
        (1e-3, "OFF", ":SOUR:SWE:VOLT:LIN 0,1.5,40,-1,2,BEST,OFF,ON"),       # dual, count 2
        (3e-7, "OFF", ":SOUR:SWE:VOLT:LIN -1,3,60,0.0005,1,BEST,OFF,OFF"),   # into compliance
        (3e-7, "ON", ":SOUR:SWE:VOLT:LIN 0,3,60,0.0005,1,BEST,ON,OFF"),      # stops at the trip
    ],
)
def test_sweep_fast_path_gives_the_numbers_of_the_point_by_point_loop(
        monkeypatch, ilim, fail_abort, sweep):
    """Bench.sweep (one device, local variables) against the generic per-point loop: the same
    buffer bit for bit, with device noise, compliance clamps and fail-abort; the same clock and
    device state afterwards."""
    from sim_backend.bench import Bench

    def run(fast: bool):
        bench = Bench({"seed": 4, "noise": True, "devices": {"d1": {"kind": "dendrite"}},
                       "wiring": {"smu/1": "d1", "pulse/1": "d1"}})
        if not fast:
            monkeypatch.setattr(bench, "sweep", lambda *a, **kw: None)
        k = Keithley2450Sim(bench, "smu")
        bench.source("pulse/1", 0.1)  # another source adds to the swept level
        ask(k, f":SENS:CURR:NPLC 0.01;:SOUR:VOLT:ILIM {ilim}")
        ask(k, sweep)
        ask(k, ":INIT")
        ask(k, ":SOUR:VOLT 0.2;:OUTP ON")
        after = ask(k, ':READ? "defbuffer1",READ,SOUR,REL')  # the state the sweep left
        n = int(ask(k, ":TRAC:ACT?")) - 1  # the sweep's readings, then the one above
        data = ask(k, f':TRAC:DATA? 1,{n},"defbuffer1",READ,SOUR,REL,STAT,SOURSTAT')
        return n, data, after, bench.now_s, bench.slots["d1"].dut.w

    fast, slow = run(True), run(False)
    assert fast == slow
    n, data = fast[0], fast[1]
    if fail_abort == "ON":
        assert 1 < n < 60  # stopped at the first point in compliance
    elif ilim < 1e-4:
        assert floats(data)[0::5].count(ilim) > 3  # clamped at the limit


# --- resistance sense settings, averaging filter ---------------------------------------------


def test_resistance_range_auto_and_autozero(k):
    assert ask(k, ":SENS:RES:RANG:AUTO?;:SENS:RES:AZER?;:SENS:RES:OCOM?") == "1;1;0"
    k.handle(':SENS:FUNC "RES";:SENS:RES:RANG 3e3')
    assert ask(k, ":SENS:RES:RANG?;:SENS:RES:RANG:AUTO?") == "2.000000E+04;0"
    k.handle(":SENS:RES:RANG 200e6;:SENS:RES:AZER OFF;:SENS:RES:OCOM ON")
    assert ask(k, ":SENSe:RESistance:RANGe:UPPer?;:SENS:RES:AZER:STAT?;:SENS:RES:OCOM?") == (
        "2.000000E+08;0;1")
    k.handle(":SENS:RES:RANG 250e6")
    k.handle(":SENS:RES:RANG -1")
    assert errors(k) == ['-222,"Data out of range"'] * 2
    k.handle(":SENS:RES:RANG:AUTO ON;:OUTP ON;:SOUR:VOLT 0.2")
    r = float(ask(k, ":READ?"))
    rng = float(ask(k, ":SENS:RES:RANG?"))
    assert 0 < r <= rng * 1.0000001 and (rng == 20 or r > rng / 10)  # auto range holds it
    k.handle(":SENS:RES:RANG:AUTO OFF;:SENS:RES:RANG 20")
    assert float(ask(k, ":READ?")) == 9.9e37  # far above the 20 ohm range: overflow
    k.handle("*RST")
    assert ask(k, ":SENS:RES:RANG:AUTO?;:SENS:RES:AZER?;:SENS:RES:OCOM?") == "1;1;0"


def test_averaging_filter_settings(k):
    for f in ("CURR", "VOLT", "RES"):
        assert ask(k, f":SENS:{f}:AVER?;:SENS:{f}:AVER:TCON?;:SENS:{f}:AVER:COUN?") == (
            "0;REP;10")
    k.handle(":SENS:CURR:AVER ON;:SENS:CURR:AVER:TCON MOV;:SENS:CURR:AVER:COUNT 5")
    assert ask(k, ":SENS:CURR:AVER:STAT?;:SENS:CURR:AVER:TCON?;:SENS:CURR:AVER:COUN?") == (
        "1;MOV;5")
    assert ask(k, ":SENS:VOLT:AVER?;:SENS:VOLT:AVER:COUN?") == "0;10"  # per function
    assert ask(k, ":SENS:CURR:AVER:COUN? MAX;:SENS:CURR:AVER:COUN? MIN") == "100;1"
    k.handle(":SENS:CURR:AVER:COUN 101")
    k.handle(":SENS:CURR:AVER:COUN 0")
    k.handle(":SENS:CURR:AVER:TCON HYBR")
    assert errors(k) == ['-222,"Data out of range"'] * 2 + ['-224,"Illegal parameter value"']
    k.handle("*RST")
    assert ask(k, ":SENS:CURR:AVER?;:SENS:CURR:AVER:TCON?;:SENS:CURR:AVER:COUN?") == "0;REP;10"


def test_repeating_filter_integrates_count_apertures(k, dendrite_bench):
    k.handle(":SENS:CURR:NPLC 1;:OUTP ON;:SOUR:VOLT 0.1")
    ask(k, ":READ?")
    t0 = dendrite_bench.now_s
    ask(k, ":READ?")
    one = dendrite_bench.now_s - t0
    k.handle(":SENS:CURR:AVER:COUN 4;:SENS:CURR:AVER ON")
    t0 = dendrite_bench.now_s
    ask(k, ":READ?")
    assert dendrite_bench.now_s - t0 == pytest.approx(4 * one, rel=1e-6)


def test_moving_filter_averages_the_last_readings(dendrite_bench):
    """The first reading fills the stack; then each reading is the mean of the last COUNt
    (same timing as unfiltered readings, so a twin bench gives the raw values)."""
    from sim_backend.bench import Bench

    twin = Bench({"seed": 1, "noise": False, "devices": {"d1": {"kind": "dendrite"}},
                  "wiring": {"smu/1": "d1"}})
    setup = ":SENS:CURR:NPLC 0.01;:OUTP ON;:SOUR:VOLT 0.3"
    raw_k, filt_k = Keithley2450Sim(twin, "smu"), Keithley2450Sim(dendrite_bench, "smu")
    raw_k.handle(setup)
    filt_k.handle(":SENS:CURR:AVER:TCON MOV;:SENS:CURR:AVER:COUN 2;:SENS:CURR:AVER ON;" + setup)
    raw = [float(ask(raw_k, ":READ?")) for _ in range(3)]
    got = [float(ask(filt_k, ":READ?")) for _ in range(3)]
    assert raw[2] > raw[0]  # the dendrite conducts more and more at 0.3 V
    assert got == pytest.approx([raw[0], (raw[0] + raw[1]) / 2, (raw[1] + raw[2]) / 2],
                                rel=2e-6)


# --- STATus subsystem --------------------------------------------------------------------------


def test_status_registers_round_trip_preset_and_map(k):
    for reg in ("OPER", "QUES"):
        assert ask(k, f":STAT:{reg}:ENAB?;:STAT:{reg}:COND?;:STAT:{reg}?;:STAT:{reg}:EVEN?") == (
            "0;0;0;0")
    k.handle(":STATus:OPERation:ENABle 1024;:STAT:QUES:ENAB #H8")
    assert ask(k, ":STAT:OPER:ENAB?;:STAT:QUES:ENAB?") == "1024;8"
    k.handle(":STAT:QUES:MAP 0, 4917, 4918;:STAT:OPER:MAP 14, 2731")
    assert ask(k, ":STAT:QUES:MAP? 0;:STAT:OPER:MAP? 14;:STAT:OPER:MAP? 3") == (
        "4917,4918;2731,0;0,0")
    k.handle("*RST")  # the status model is not affected by a reset
    assert ask(k, ":STAT:OPER:ENAB?;:STAT:QUES:ENAB?") == "1024;8"
    k.handle(":STAT:PRES")
    assert ask(k, ":STAT:OPER:ENAB?;:STAT:QUES:ENAB?;:STAT:QUES:MAP? 0") == "0;0;4917,4918"
    k.handle(":STAT:OPER:ENAB 65536")
    k.handle(":STAT:QUES:MAP 15, 4917")
    k.handle(":STAT:QUES:MAP 0")
    k.handle(":STAT:QUES:MAP? 16")
    assert errors(k) == ['-222,"Data out of range"'] * 2 + ['-109,"Missing parameter"',
                                                             '-222,"Data out of range"']
    assert ask(k, "*STB?") == "0"


def test_status_byte_summarises_enabled_events(k):
    k.status["QUES"].event = 0x10
    assert int(ask(k, "*STB?")) & 0x08 == 0  # not enabled
    k.handle(":STAT:QUES:ENAB 16")
    assert int(ask(k, "*STB?")) & 0x08
    assert ask(k, ":STAT:QUES?") == "16"  # reading clears the event register
    assert int(ask(k, "*STB?")) & 0x08 == 0
    k.status["OPER"].event = 1
    k.handle(":STAT:OPER:ENAB 1")
    assert int(ask(k, "*STB?")) & 0x80
    k.handle(":STAT:CLE")
    assert ask(k, ":STAT:OPER:EVEN?") == "0" and int(ask(k, "*STB?")) & 0x80 == 0


# --- TRACe:STATistics, SYSTem:BEEPer -----------------------------------------------------------


def test_trace_statistics_of_the_readings(k):
    assert ask(k, ":TRAC:STAT:AVER?") == "0.000000E+00"  # empty buffer
    k.handle(":SENS:CURR:NPLC 0.01;:OUTP ON")
    values = []
    for v in (0.05, 0.1, 0.2, 0.3):
        k.handle(f":SOUR:VOLT {v}")
        values.append(float(ask(k, ":READ?")))
    a = np.array(values)
    got = {q: float(ask(k, f":TRACe:STATistics:{q}?")) for q in
           ("AVERage", "MAXimum", "MINimum", "PK2Pk", "STDDev")}
    assert got["AVERage"] == pytest.approx(a.mean(), rel=1e-6)
    assert got["MAXimum"] == pytest.approx(a.max(), rel=1e-6)
    assert got["MINimum"] == pytest.approx(a.min(), rel=1e-6)
    assert got["PK2Pk"] == pytest.approx(a.max() - a.min(), rel=1e-5)
    assert got["STDDev"] == pytest.approx(a.std(ddof=1), rel=1e-5)
    assert float(ask(k, ':TRAC:STAT:AVER? "defbuffer1"')) == got["AVERage"]
    assert ask(k, ':TRAC:STAT:AVER? "defbuffer2"') == "0.000000E+00"
    k.handle(":TRAC:STAT:CLE")
    assert ask(k, ":TRAC:STAT:MAX?;:TRAC:ACT?") == "0.000000E+00;4"  # readings stay
    ask(k, ":TRAC:STAT:AVER? \"nobuf\"")
    assert errors(k) == ['-224,"Illegal parameter value"']


def test_trace_statistics_include_overwritten_readings(k):
    """A continuous buffer of 10 that took 25 readings: statistics over all 25 (manual)."""
    from sim_backend.instruments.k2450 import _Buffer

    buf = _Buffer(10, "CONT")
    for x in range(25):
        buf.append((float(x), 0.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    buf.extend([(25.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)])
    buf._flush()
    assert buf.count == 10 and buf.rows(1, 1)[0][0] == 16.0
    values = np.arange(26.0)
    assert (buf.stats.value("AVER"), buf.stats.value("MIN")) == (values.mean(), 0.0)
    assert buf.stats.value("STDD") == pytest.approx(values.std(ddof=1))
    k.buffers["ring"] = buf
    assert ask(k, ':TRAC:STAT:MIN? "ring";:TRAC:STAT:PK2P? "ring"') == (
        "0.000000E+00;2.500000E+01")
    k.handle(':TRAC:CLE "ring"')
    assert ask(k, ':TRAC:STAT:AVER? "ring"') == "0.000000E+00"


def test_beeper(k):
    k.handle(":SYST:BEEP 1000, 0.1;:SYSTem:BEEPer:IMMediate 20, 100")
    assert errors(k) == []
    k.handle(":SYST:BEEP 10, 0.1")
    k.handle(":SYST:BEEP 1000, 101")
    k.handle(":SYST:BEEP 1000")
    assert errors(k) == ['-222,"Data out of range"'] * 2 + ['-109,"Missing parameter"']

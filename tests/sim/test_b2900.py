"""Simulated Keysight B2900 SMUs: SCPI forms, fixed element order, error queue, compliance,
timer-triggered list/sweep/pulse runs in simulated time, and our Smu driver end to end."""

from __future__ import annotations

import re

import numpy as np
import pytest

from dendrolab.errors import ParameterError
from instruments.factory import connect
from sim_backend.bench import Bench
from sim_backend.instruments import model_class
from sim_backend.instruments.b2900 import KeysightB2900Sim
from sim_backend.physics.waveform import pulse_train
from tests.sim import ask, errors

NAN = "+9.910000E+37"
NR3 = re.compile(r"[+-]\d\.\d{6}E[+-]\d{2}")


@pytest.fixture
def m(dendrite_bench):
    return KeysightB2900Sim(dendrite_bench, "smu")


@pytest.fixture
def two_devices():
    """d1 on smu/1, d2 on smu/2: the two channels do not share a device."""
    return Bench(
        {
            "seed": 1,
            "noise": False,
            "devices": {"d1": {"kind": "dendrite"}, "d2": {"kind": "dendrite"}},
            "wiring": {"smu/1": "d1", "smu/2": "d2"},
        }
    )




def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",")]


def record_sources(bench, monkeypatch) -> list[tuple[float, str, float | None]]:
    """Spy on bench.source: (time, terminal, level) of every call."""
    calls: list[tuple[float, str, float | None]] = []
    original = bench.source

    def spy(terminal, level):
        calls.append((bench.now_s, terminal, level))
        original(terminal, level)

    monkeypatch.setattr(bench, "source", spy)
    return calls


# --- identity, options, channels ------------------------------------------------------------


def test_identity_and_channel_count_follow_the_model(dendrite_bench):
    assert model_class("keysight_b2900") is KeysightB2900Sim
    m = KeysightB2900Sim(dendrite_bench, "smu")
    assert ask(m, "*IDN?") == "Keysight Technologies,B2902A,MY51143745,3.4.2011.5100"
    assert sorted(m.chans) == [1, 2]
    one = KeysightB2900Sim(dendrite_bench, "smu", {"idn": "Agilent Technologies,B2911A,MY1,2.0"})
    assert sorted(one.chans) == [1]
    assert ask(one, ":OUTP2 ON;:OUTP1?") is None  # a command error drops the rest
    assert errors(one) == ['-114,"Header suffix out of range"']
    assert sorted(KeysightB2900Sim(dendrite_bench, "smu", {"channels": 1}).chans) == [1]
    serial = KeysightB2900Sim(dendrite_bench, "smu", {"serial": "MY999"})
    assert ask(serial, "*IDN?").split(",")[2] == "MY999"
    with pytest.raises(ParameterError, match="channels"):
        KeysightB2900Sim(dendrite_bench, "smu", {"channels": 3})
    with pytest.raises(ParameterError, match="unknown option"):
        KeysightB2900Sim(dendrite_bench, "smu", {"chanels": 1})


def test_error_queue_format(m):
    assert ask(m, ":SYST:ERR?") == '+0,"No error"'
    assert ask(m, ":SOUR1:VOLT 300;:OUTP1?") == "0"  # not applied; execution goes on
    ask(m, ":BOGUS")
    ask(m, ":SOUR1:PULS:WIDT 1e-5")  # below the 50 us minimum
    assert ask(m, ":SOUR1:VOLT?;:SOUR1:PULS:WIDT?") == "+0.000000E+00;+5.000000E-05"
    assert ask(m, ":SYST:ERR:COUN?") == "3"
    assert ask(m, ":SYST:ERR:ALL?") == (
        '-222,"Data out of range",-113,"Undefined header",-222,"Data out of range"'
    )
    assert ask(m, ":SYST:ERR:ALL?") == '+0,"No error"'


def test_aperture_and_nplc_are_clipped_not_errors(m):
    ask(m, ":SENS1:CURR:APER 10;:SENS2:CURR:NPLC 1e-6")
    assert ask(m, ":SENS1:CURR:APER?;:SENS1:VOLT:NPLC?") == "+2.000000E+00;+1.000000E+02"
    assert ask(m, ":SENS2:CURR:APER?") == "+8.000000E-06"
    assert errors(m) == []


# --- spot measurements ----------------------------------------------------------------------


def test_qcodes_style_spot_measurement(m, dendrite_bench):
    for c in ["SOURce1:FUNCtion:MODE VOLT", "SENS1:CURR:PROT 1e-3", "SOURce1:VOLT 0.2", "OUTP1 ON"]:
        assert ask(m, c) is None
    t0 = dendrite_bench.now_s
    i = ask(m, "MEAS:CURR? (@1)")
    assert NR3.fullmatch(i)
    assert dendrite_bench.now_s - t0 == pytest.approx(0.1 / 50)  # default 0.1 PLC
    assert float(i) == pytest.approx(dendrite_bench.device("d1").current(0.2), rel=1e-4)
    assert ask(m, ":SOUR1:FUNC:MODE?;:OUTP1?;:SENS1:CURR:PROT?") == "VOLT;1;+1.000000E-03"


def test_measure_returns_all_elements_in_fixed_order(m):
    ask(m, ":SOUR1:VOLT 0.5;:OUTP1 ON")
    v, _i, r, _t, stat, src = ask(m, ":MEAS? (@1)").split(",")
    assert (v, r, src, stat) == ("+5.000000E-01", NAN, "+5.000000E-01", "+0.000000E+00")
    ask(m, ":FORM:ELEM:SENS TIME,SOUR,CURR")  # listed out of order ...
    assert ask(m, ":FORM:ELEM:SENS?") == "CURR,TIME,SOUR"  # ... returned in the fixed order
    values = ask(m, ":MEAS? (@1)").split(",")
    assert len(values) == 3 and values[2] == "+5.000000E-01"
    ask(m, ':SENS1:FUNC:OFF "VOLT";:SENS1:FUNC:ON "RES"')
    assert ask(m, ":SENS1:FUNC?") == '"CURR","RES"'
    assert ask(m, ':SENS1:FUNC:STAT? "VOLT"') == "0"
    assert ask(m, ":FORM:ELEM:SENS VOLT,RES;:MEAS? (@1)").startswith(NAN + ",+")


def test_compliance_and_trip(m):
    ask(m, ":SENS1:CURR:PROT 1e-6;:SOUR1:VOLT 3;:OUTP1 ON;:FORM:ELEM:SENS VOLT,CURR,STAT")
    v, i, stat = floats(ask(m, ":MEAS? (@1)"))
    assert i == 1e-6 and 0 < v < 3 and int(stat) & 2
    assert ask(m, ":SENS1:CURR:PROT:TRIP?") == "1"
    ask(m, ":SOUR1:VOLT 0.1")
    assert ask(m, ":SENS1:CURR:PROT:TRIP?") == "0"


def test_current_source_with_voltage_compliance(m, dendrite_bench):
    ask(m, ":SOUR1:FUNC:MODE CURR;:SOUR1:CURR 1e-7;:SENS1:VOLT:PROT 5;:OUTP1 ON")
    v, i = floats(ask(m, ":FORM:ELEM:SENS VOLT,CURR;:MEAS? (@1)"))
    assert i == pytest.approx(1e-7)
    assert dendrite_bench.device("d1").current(v) == pytest.approx(1e-7, rel=1e-3)
    ask(m, ":SOUR1:CURR 1e-3")
    assert floats(ask(m, ":MEAS:VOLT? (@1)")) == [5.0]
    assert ask(m, ":SENS1:VOLT:PROT:TRIP?") == "1"


# --- timer-triggered list, sweep and pulse runs ---------------------------------------------


def test_list_sweep_public_script_pattern(m, dendrite_bench):
    for c in [
        ":SOUR:FUNC:MODE VOLT",
        ":SOUR:VOLT:MODE LIST",
        ":SOUR:LIST:VOLT 1,0,-1,0",
        ':SENS:FUNC "CURR"',
        ":SENS:CURR:NPLC 0.1",
        ":SENS:CURR:PROT 0.01",
        ":TRIG:SOUR TIM",
        ":TRIG:TIM 0.01",
        ":TRIG:COUN 4",
        ":TRIG:ACQ:DEL 5e-3",
        ":FORM:ELEM:SENS TIME,CURR",
        ":OUTP ON",
    ]:
        assert ask(m, c) is None, c
    t0 = dendrite_bench.now_s
    assert ask(m, ":INIT (@1);*OPC?") == "1"
    assert dendrite_bench.now_s - t0 == pytest.approx(3 * 0.01 + 5e-3 + 0.1 / 50)
    data = np.array(floats(ask(m, ":FETC:ARR? (@1)"))).reshape(4, 2)  # current first, then time
    np.testing.assert_allclose(data[:, 1], np.arange(4) * 0.01 + 5e-3, atol=1e-9)
    assert data[0, 0] > 0 > data[2, 0]
    assert floats(ask(m, ":FETC:ARR:SOUR? (@1)")) == [1.0, 0.0, -1.0, 0.0]
    assert ask(m, ":FETC:CURR? (@1)") == ask(m, ":FETC:ARR:CURR? (@1)").split(",")[-1]
    assert dendrite_bench.levels["smu/1"] == 0.0  # back to the immediate level


def test_linear_log_and_double_sweeps(m):
    ask(m, ":SOUR1:VOLT:MODE SWE;:SOUR1:VOLT:STAR 0.1;:SOUR1:VOLT:STOP 1;:SOUR1:VOLT:POIN 4")
    ask(m, ":TRIG1:COUN 4;:SENS1:CURR:APER 1e-4;:INIT")
    np.testing.assert_allclose(floats(ask(m, ":FETC:ARR:SOUR?")), [0.1, 0.4, 0.7, 1.0])
    ask(m, ":SOUR1:SWE:SPAC LOG;:SOUR1:SWE:POIN 3;:TRIG1:COUN 3;:INIT (@1)")
    np.testing.assert_allclose(floats(ask(m, ":FETC:ARR:SOUR?")), [0.1, 10**-0.5, 1.0], rtol=1e-6)
    ask(m, ":SOUR1:SWE:SPAC LIN;:SOUR1:SWE:STA DOUB;:SOUR1:SWE:DIR DOWN;:TRIG1:COUN 6;:INIT")
    np.testing.assert_allclose(floats(ask(m, ":FETC:ARR:SOUR?")), [1.0, 0.55, 0.1, 0.1, 0.55, 1.0])
    ask(m, ":SOUR1:VOLT:STAR 0;:SOUR1:SWE:SPAC LOG;:INIT")
    assert errors(m) == ['-221,"Settings conflict"']


def test_pulsed_list_sweep_drives_peak_then_base(m, dendrite_bench, monkeypatch):
    ask(m, ":SOUR1:FUNC:SHAP PULS;:SOUR1:VOLT 0.1;:SOUR1:VOLT:MODE LIST;:SOUR1:LIST:VOLT 1,2")
    ask(m, ":SOUR1:PULS:DEL 0;:SOUR1:PULS:WIDT 5e-4;:TRIG1:SOUR TIM;:TRIG1:TIM 1e-2")
    ask(m, ":TRIG1:COUN 2;:TRIG1:ACQ:DEL 3.5e-4;:SENS1:CURR:APER 1e-4;:SENS1:CURR:PROT 1e-3")
    ask(m, ":FORM:ELEM:SENS VOLT,CURR,TIME;:OUTP1 ON")
    calls = record_sources(dendrite_bench, monkeypatch)
    t0 = dendrite_bench.now_s
    ask(m, ":INIT (@1)")
    steps = [(round(t - t0, 9), level) for t, term, level in calls if term == "smu/1"]
    assert steps == [(0.0, 1.0), (5e-4, 0.1), (0.01, 2.0), (0.0105, 0.1), (0.0105, 0.1)]
    assert dendrite_bench.now_s - t0 == pytest.approx(0.0105)
    v, i, t = np.array(floats(ask(m, ":FETC:ARR? (@1)"))).reshape(2, 3).T
    np.testing.assert_allclose(v, [1.0, 2.0])  # sampled inside the pulse
    np.testing.assert_allclose(t, [3.5e-4, 0.01035], atol=1e-12)
    assert i[1] > i[0] > 1e-8


def test_pulses_do_less_to_the_device_than_dc(two_devices):
    m = KeysightB2900Sim(two_devices, "smu")
    ask(m, ":SOUR1:FUNC:SHAP PULS;:SOUR1:PULS:WIDT 1e-4;:SOUR2:FUNC:SHAP DC")
    for c in (1, 2):
        ask(m, f":SOUR{c}:VOLT:MODE LIST;:SOUR{c}:LIST:VOLT 3,3,3,3")
        ask(m, f":TRIG{c}:SOUR TIM;:TRIG{c}:TIM 1e-3;:TRIG{c}:COUN 4;:SENS{c}:CURR:APER 1e-5")
        ask(m, f":TRIG{c}:ACQ:DEL 5e-5;:SENS{c}:CURR:PROT 1e-3")
    ask(m, ":INIT (@1,2)")
    pulsed, dc = two_devices.device("d1").w, two_devices.device("d2").w
    assert 0 < pulsed < dc


def test_transient_delay_and_separate_layers(m, dendrite_bench, monkeypatch):
    ask(m, ":SOUR1:VOLT:MODE LIST;:SOUR1:LIST:VOLT 0.3,0.4;:TRIG1:SOUR TIM;:TRIG1:TIM 0.01")
    ask(m, ":TRIG1:COUN 2;:TRIG1:TRAN:DEL 2e-3;:TRIG1:ACQ:DEL 4e-3;:SENS1:CURR:APER 1e-4")
    assert ask(m, ":TRIG1:TRAN:DEL?;:TRIG1:ACQ:DEL?;:TRIG1:ACQ:SOUR?") == (
        "+2.000000E-03;+4.000000E-03;TIM"
    )
    calls = record_sources(dendrite_bench, monkeypatch)
    t0 = dendrite_bench.now_s
    ask(m, ":OUTP1 ON;:INIT:TRAN (@1)")  # source only: no measurements
    steps = [(round(t - t0, 9), v) for t, term, v in calls if term == "smu/1"]
    assert steps == [(0.0, 0.0), (2e-3, 0.3), (0.012, 0.4), (0.012, 0.0)]
    assert ask(m, ":FETC:ARR:CURR? (@1)") == NAN
    ask(m, ":TRIG1:SOUR BUS;:INIT (@1);:ABOR (@1);*TRG")
    assert ask(m, ":FETC:ARR:CURR? (@1)") == NAN  # aborted: the trigger finds nothing armed
    assert errors(m) == []


def test_pulse_longer_than_the_period_is_a_settings_conflict(m):
    ask(m, ":SOUR1:FUNC:SHAP PULS;:SOUR1:PULS:WIDT 2e-3;:TRIG1:SOUR TIM;:TRIG1:TIM 1e-3")
    ask(m, ":INIT (@1)")
    assert errors(m) == ['-221,"Settings conflict"']


def test_two_channels_interleave_and_pad(two_devices):
    m = KeysightB2900Sim(two_devices, "smu")
    ask(m, ":SOUR1:VOLT:MODE LIST;:SOUR1:LIST:VOLT 0.1,0.2,0.3;:TRIG1:COUN 3")
    ask(m, ":SOUR2:VOLT:MODE LIST;:SOUR2:LIST:VOLT 0.5,0.6;:TRIG2:COUN 2")
    ask(m, ":FORM:ELEM:SENS SOUR;:TRIG1:SOUR TIM;:TRIG1:TIM 0.01;:TRIG2:SOUR TIM;:TRIG2:TIM 0.01")
    t0 = two_devices.now_s
    ask(m, ":INIT (@1,2)")
    assert two_devices.now_s - t0 == pytest.approx(0.02 + 0.1 / 50)  # concurrent, not serial
    assert ask(m, ":FETC:ARR? (@1,2)") == (
        f"+1.000000E-01,+5.000000E-01,+2.000000E-01,+6.000000E-01,+3.000000E-01,{NAN}"
    )
    assert ask(m, ":FETC? (@2,1)") == "+3.000000E-01,+6.000000E-01"


def test_bus_trigger(m, dendrite_bench):
    ask(m, ":SOUR1:VOLT:MODE LIST;:SOUR1:LIST:VOLT 0.1,0.2;:TRIG1:SOUR BUS;:TRIG1:COUN 2")
    ask(m, ":FORM:ELEM:SENS SOUR;:INIT (@1)")
    assert ask(m, ":FETC:ARR? (@1)") == NAN  # armed, nothing measured yet
    ask(m, "*TRG")
    ask(m, ":TRIG:ALL (@1)")
    assert ask(m, ":FETC:ARR? (@1)") == "+1.000000E-01,+2.000000E-01"
    assert dendrite_bench.levels["smu/1"] == 0.0  # idle again at the immediate level


def test_binary_formats(m):
    ask(m, ":SOUR1:VOLT 0.5;:OUTP1 ON;:FORM:ELEM:SENS VOLT,CURR")
    ascii_ = floats(ask(m, ":MEAS? (@1)"))
    ask(m, ":FORM REAL,32")
    raw = m.handle(":FETC? (@1)")
    assert raw[:3] == b"#18" and raw.endswith(b"\n")
    np.testing.assert_allclose(np.frombuffer(raw[3:-1], ">f4"), ascii_, rtol=1e-6)
    ask(m, ":FORM:DATA REAL,64;:FORM:BORD SWAP")
    raw = m.handle(":FETC? (@1)")
    np.testing.assert_allclose(np.frombuffer(raw[4:-1], "<f8"), ascii_, rtol=1e-6)
    assert ask(m, ":FORM?;:FORM:BORD?") == "REAL,64;SWAP"


def test_reset_turns_outputs_off(m, dendrite_bench):
    ask(m, ":SOUR1:VOLT 0.3;:OUTP1 ON;:OUTP2 ON")
    assert set(dendrite_bench.levels) == {"smu/1", "smu/2"}
    ask(m, "*RST;*CLS")
    assert dendrite_bench.levels == {}
    assert ask(m, ":OUTP1?;:SOUR1:VOLT?;:FORM:ELEM:SENS?") == (
        "0;+0.000000E+00;VOLT,CURR,RES,TIME,STAT,SOUR"
    )


def test_long_fetch_returns_every_point(m):
    """(Its speed is a benchmark figure, not a test.)"""
    ask(m, ":SOUR1:VOLT:MODE LIST;:SOUR1:LIST:VOLT " + ",".join(["0.1"] * 2500))
    ask(m, ":TRIG1:COUN 2500;:SENS1:CURR:APER 1e-5;:INIT")
    reply = m.handle(":FETC:ARR? (@1)")
    assert reply.count(b",") == 6 * 2500 - 1


# --- our driver end to end ------------------------------------------------------------------


@pytest.mark.parametrize("channel", [1, 2])
def test_driver_end_to_end(m, dendrite_bench, loopback, channel):
    smu = connect(loopback(m), channel=channel)
    smu.ramp_step_s = 0.0
    assert smu.identity.model == "B2902A"
    term = f"smu/{channel}"
    smu.configure_source_voltage(limit_a=1e-3)
    smu.configure_measure(nplc=1)
    smu.set_voltage(0.2)
    smu.output_on()
    before = smu.measure_iv()
    assert before.current_a == pytest.approx(dendrite_bench.device("d1").current(0.2), rel=1e-4)
    dendrite_bench.drive("pulse/1", pulse_train(5, 1e-4, 1e-4, 20))
    assert smu.measure_current() > 1.05 * before.current_a
    dendrite_bench.advance(1.0)
    assert smu.measure_current() == pytest.approx(before.current_a, rel=1e-3)
    smu.configure_measure(aperture_s=1e-4)
    t0 = dendrite_bench.now_s
    res = smu.list_sweep([0.0, 1.0, 0.0], delay_s=1e-3)
    np.testing.assert_allclose(res.voltage_v, [0.0, 1.0, 0.0])
    assert np.diff(res.time_s) == pytest.approx([1e-3 + 1e-4 + 1e-3] * 2)
    assert dendrite_bench.now_s - t0 == pytest.approx(2 * 2.1e-3 + 1e-3 + 1e-4)
    assert len(smu.linear_sweep(0.0, 1.0, 5).voltage_v) == 5
    pulsed = smu.pulsed_list_sweep([1.0, 2.0], width_s=5e-4, period_s=1e-2, base_v=0.1)
    np.testing.assert_allclose(pulsed.voltage_v, [1.0, 2.0])
    assert pulsed.current_a[1] > pulsed.current_a[0] > 0
    assert dendrite_bench.levels[term] == 0.1  # base level between and after pulses
    assert not smu.in_compliance()
    snap = smu.settings()["instrument"]
    assert snap["output"] == "1" and snap["source_shape"] == "PULS"
    assert snap["source_limit"] == "+1.000000E-03"
    smu.safe_state()
    assert term not in dendrite_bench.levels
    assert smu.drain_errors() == []


# --- remote sensing and resistance mode (SENSe subsystem) ------------------------------------


def test_remote_sensing_and_resistance_settings(m):
    assert ask(m, ":SENS1:REM?;:SENS2:REM?") == "0;0"
    m.handle(":SENS1:REM ON;:SENSe2:REMote 0")
    assert ask(m, ":SENS1:REM?;:SENS2:REM?") == "1;0"
    assert ask(m, ":SENS1:RES:MODE?;:SENS1:RES:OCOM?") == "MAN;0"
    m.handle(":SENS1:RES:MODE AUTO;:SENS1:RES:OCOM ON")
    assert ask(m, ":SENS1:RES:MODE?;:SENS1:RES:OCOM?;:SENS2:RES:MODE?") == "AUTO;1;MAN"
    assert errors(m) == []
    m.handle(":SENS1:REM MAYBE")
    m.handle(":SENS1:RES:MODE FAST")
    m.handle(":SENS3:REM ON")
    m.handle(":SENS1:REM")
    assert errors(m) == ['-224,"Illegal parameter value"'] * 2 + [
        '-114,"Header suffix out of range"', '-109,"Missing parameter"']
    m.handle("*RST")
    assert ask(m, ":SENS1:REM?;:SENS1:RES:MODE?;:SENS1:RES:OCOM?") == "0;MAN;0"


def test_current_of_two_channels_in_one_query(two_devices):
    m = KeysightB2900Sim(two_devices, "smu")
    for ch, v in ((1, 0.2), (2, 0.4)):
        ask(m, f":SOUR{ch}:FUNC:MODE VOLT;:SENS{ch}:CURR:PROT 1e-3;:SOUR{ch}:VOLT {v};:OUTP{ch} ON")
    both = floats(ask(m, ":MEAS:CURR? (@1,2)"))
    assert len(both) == 2
    assert both[0] == pytest.approx(two_devices.device("d1").current(0.2), rel=1e-3)
    assert both[1] == pytest.approx(two_devices.device("d2").current(0.4), rel=1e-3)

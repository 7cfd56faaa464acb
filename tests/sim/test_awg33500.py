"""Simulated 33500B/33600A: command set, replies, errors, load scaling and physics on the bench."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dendrolab.errors import ParameterError
from instruments.factory import connect
from instruments.pulse import PulseGenerator
from sim_backend.instruments import model_class
from sim_backend.instruments.awg33500 import Keysight33500BSim, Keysight33600ASim
from sim_backend.scpi import float_block
from tests.sim import NO_ERROR, ask, errors


@pytest.fixture
def awg(dendrite_bench):
    return Keysight33500BSim(dendrite_bench, "pulse")


@pytest.fixture
def drives(dendrite_bench, monkeypatch):
    """Record every bench.drive (terminal, waveform) while still applying it."""
    calls = []
    real = dendrite_bench.drive

    def spy(terminal, wave):
        calls.append((terminal, wave))
        real(terminal, wave)

    monkeypatch.setattr(dendrite_bench, "drive", spy)
    return calls


PULSES = (
    "OUTP1:LOAD INF;:SOUR1:FUNC PULS;:SOUR1:FUNC:PULS:PER 2e-4;:SOUR1:FUNC:PULS:WIDT 1e-4;"
    ":SOUR1:FUNC:PULS:TRAN:BOTH 8.4e-9;:SOUR1:VOLT:HIGH 5;:SOUR1:VOLT:LOW 0;"
    ":SOUR1:BURS:MODE TRIG;:SOUR1:BURS:NCYC 20;:TRIG1:SOUR BUS;:SOUR1:BURS:STAT ON"
)


# --------------------------------------------------------------------------- identity, options
def test_registered_classes_and_default_identities(dendrite_bench):
    assert model_class("keysight_33500b") is Keysight33500BSim
    assert model_class("keysight_33600a") is Keysight33600ASim
    assert ask(Keysight33500BSim(dendrite_bench, "a"), "*IDN?") == (
        "Agilent Technologies,33522B,MY52201807,3.05-1.19-2.00-52-00")
    assert ask(Keysight33600ASim(dendrite_bench, "b"), "*IDN?") == (
        "Keysight Technologies,33622A,MY53804342,A.02.00-2.25-03-64-02")


def test_options(dendrite_bench):
    m = Keysight33500BSim(dendrite_bench, "p", {"idn": "Keysight Technologies,33522B,X1,4.00",
                                               "serial": "MY999"})
    assert ask(m, "*IDN?") == "Keysight Technologies,33522B,MY999,4.00"
    with pytest.raises(ParameterError, match="unknown option"):
        Keysight33500BSim(dendrite_bench, "p", {"line_frequency_hz": 50})
    with pytest.raises(ParameterError, match="idn"):
        Keysight33500BSim(dendrite_bench, "p", {"idn": "no commas"})


# --------------------------------------------------------------------------- replies, forms
def test_reset_defaults_exact_replies(awg):
    ask(awg, "SOUR1:FUNC PULS;:OUTP1:LOAD INF;:OUTP1 ON;*RST")
    assert ask(awg, "FUNC?;:OUTP1?;:OUTP1:LOAD?;:OUTP1:POL?;:VOLT?;:VOLT:OFFS?;:VOLT:HIGH?;"
                    ":VOLT:LOW?;:VOLT:UNIT?;:FREQ?") == (
        "SIN;0;+5.000000000000000E+01;NORM;+1.000000000000000E-01;+0.000000000000000E+00;"
        "+5.000000000000000E-02;-5.000000000000000E-02;VPP;+1.000000000000000E+03")
    assert ask(awg, "FUNC:PULS:WIDT?;PER?;HOLD?;DCYC?;TRAN:LEAD?;TRA?") == (
        "+1.000000000000000E-04;+1.000000000000000E-03;WIDT;+1.000000000000000E+01;"
        "+1.000000000000000E-08;+1.000000000000000E-08")
    assert ask(awg, "BURS:STAT?;MODE?;NCYC?;PHAS?;INT:PER?;:TRIG:SOUR?;DEL?;SLOP?;TIM?;COUN?") == (
        "0;TRIG;+1.000000000000000E+00;+0.000000000000000E+00;+1.000000000000000E-02;IMM;"
        "+0.000000000000000E+00;POS;+1.000000000000000E+00;+1.000000000000000E+00")
    assert ask(awg, "VOLT:LIM:STAT?;HIGH?;LOW?;:FORM:BORD?") == (
        "0;+5.000000000000000E+00;-5.000000000000000E+00;NORM")
    assert ask(awg, "SYST:ERR?") == NO_ERROR


def test_long_and_short_forms(awg):
    ask(awg, "SOURce1:BURSt:NCYCles 20")
    ask(awg, "OUTPut1:LOAD INF")
    ask(awg, "TRIGger1:SOURce BUS")
    ask(awg, "SOURce1:FUNCtion:PULSE:WIDTh 2e-6")  # QCoDeS spells the node PULSE
    ask(awg, "SOUR2:FUNC:PULS:WIDT 3.000000e-06")  # PyMeasure
    ask(awg, "sour2:func:puls:tran:both 20 NS")
    assert ask(awg, "SOUR1:BURS:NCYC?;:OUTP1:LOAD?;:TRIG1:SOUR?") == (
        "+2.000000000000000E+01;+9.900000000000000E+37;BUS")
    assert ask(awg, "FUNCtion:PULSe:WIDTh?") == "+2.000000000000000E-06"  # SOURce is optional
    assert ask(awg, "SOURce2:FUNCtion:PULSe:WIDTh?;TRANsition:TRAiling?") == (
        "+3.000000000000000E-06;+2.000000000000000E-08")
    assert ask(awg, "SOUR1:BURS:NCYC INF;NCYC?") == "+9.900000000000000E+37"
    assert ask(awg, "SOUR1:FUNC:PULS:WIDT? MIN;WIDT? MAX") == (
        "+1.600000000000000E-08;+1.000000000000000E+06")
    assert errors(awg) == []


def test_compound_messages_and_error_rules(awg):
    # An execution error does not stop the rest of the message; a command error does.
    assert ask(awg, "SOUR1:FUNC:PULS:WIDT 1;:SOUR1:FUNC PULS;FUNC?") == "PULS"
    assert errors(awg) == ['-221,"Settings conflict"']
    assert ask(awg, "SOUR1:BOGUS 1;:FUNC?") is None
    assert ask(awg, "SOUR3:FUNC?") is None
    ask(awg, "OUTP1:POL SIDEWAYS")
    ask(awg, "SOUR1:FUNC")
    assert errors(awg) == ['-113,"Undefined header"', '-114,"Header suffix out of range"',
                           '-224,"Illegal parameter value"', '-109,"Missing parameter"']


def test_out_of_range_is_222_and_not_applied(awg):
    for cmd in ("SOUR1:FUNC:PULS:WIDT 15e-9", "SOUR1:FUNC:PULS:TRAN 8e-9", "OUTP1:LOAD 1e5",
                "SOUR1:FREQ 31e6", "SOUR1:BURS:NCYC 0", "TRIG1:DEL 1001", "SOUR1:VOLT:HIGH 5.1"):
        ask(awg, cmd)
        assert errors(awg) == ['-222,"Data out of range"'], cmd
    assert ask(awg, "SOUR1:FUNC:PULS:WIDT?;TRAN?;:OUTP1:LOAD?;:FREQ?;:BURS:NCYC?") == (
        "+1.000000000000000E-04;+1.000000000000000E-08;+5.000000000000000E+01;"
        "+1.000000000000000E+03;+1.000000000000000E+00")


# --------------------------------------------------------------------------- pulse coupling
def test_pulse_couplings(awg):
    ask(awg, "SOUR1:FUNC PULS")
    ask(awg, "SOUR1:FUNC:PULS:PER 1e-6")  # the held 100 us width gives way silently
    assert ask(awg, "SOUR1:FUNC:PULS:WIDT?") == "+9.840000000000000E-07"
    ask(awg, "SOUR1:FUNC:PULS:WIDT 1e-7;TRAN:BOTH 1e-8")
    assert errors(awg) == []
    ask(awg, "SOUR1:FUNC:PULS:WIDT 990e-9")  # off time below 16 ns
    ask(awg, "SOUR1:FUNC:PULS:TRAN:LEAD 70e-9")  # edge > 0.625 x width
    assert errors(awg) == ['-221,"Settings conflict"'] * 2
    ask(awg, "SOUR1:FUNC:PULS:HOLD DCYC;DCYC 25;PER 2e-6")
    assert ask(awg, "SOUR1:FUNC:PULS:WIDT?;DCYC?") == (
        "+5.000000000000000E-07;+2.500000000000000E+01")
    ask(awg, "SOUR1:FUNC:PULS:WIDT 1e-6;TRAN 0.6e-6;:SOUR1:FUNC:PULS:WIDT 100e-9")
    assert ask(awg, "SOUR1:FUNC:PULS:TRAN:LEAD?") == "+6.250000000000000E-08"  # edges shrink
    assert errors(awg) == []


# --------------------------------------------------------------------------- load and levels
def test_50_ohm_load_doubles_the_voltage_on_the_device(awg, dendrite_bench):
    ask(awg, "SOUR1:FUNC DC;VOLT:OFFS 1;:OUTP1 ON")
    assert dendrite_bench.levels["pulse/1"] == pytest.approx(2.0)
    ask(awg, "OUTP1:LOAD INF")  # only the displayed value changes
    assert ask(awg, "SOUR1:VOLT:OFFS?") == "+2.000000000000000E+00"
    assert dendrite_bench.levels["pulse/1"] == pytest.approx(2.0)
    ask(awg, "SOUR1:VOLT:OFFS 1")
    assert dendrite_bench.levels["pulse/1"] == pytest.approx(1.0)
    ask(awg, "OUTP1:LOAD 150")  # general divider: 150 / (150 + 50)
    assert ask(awg, "SOUR1:VOLT:OFFS?") == "+7.500000000000000E-01"
    ask(awg, "OUTP1 OFF")
    assert "pulse/1" not in dendrite_bench.levels
    assert errors(awg) == []


def test_level_ranges_depend_on_the_load(awg):
    ask(awg, "SOUR1:VOLT:HIGH 5;LOW 4")  # 50 ohm: +-5 V
    ask(awg, "SOUR1:VOLT:HIGH 6")
    assert errors(awg) == ['-222,"Data out of range"']
    ask(awg, "OUTP1:LOAD INF;:SOUR1:VOLT:HIGH 10;LOW 9")
    assert ask(awg, "SOUR1:VOLT?;VOLT:OFFS?") == "+1.000000000000000E+00;+9.500000000000000E+00"
    ask(awg, "SOUR1:VOLT:HIGH 1")  # below the present LOW: a conflict, not applied
    ask(awg, "SOUR1:VOLT 4")  # offset 9.5 + 2 > 10
    assert errors(awg) == ['-221,"Settings conflict"'] * 2
    assert ask(awg, "SOUR1:VOLT:HIGH?;LOW?") == "+1.000000000000000E+01;+9.000000000000000E+00"


def test_voltage_limits(awg):
    ask(awg, "OUTP1:LOAD INF;:SOUR1:VOLT:LIM:HIGH 2;LOW -1;STAT ON;:SOUR1:VOLT:HIGH 1.5")
    assert errors(awg) == []
    for cmd in ("SOUR1:VOLT:HIGH 3", "SOUR1:VOLT:LOW -2", "SOUR1:VOLT 4", "OUTP1:LOAD 50",
                "SOUR1:VOLT:LIM:HIGH 1", "SOUR1:VOLT:LIM:LOW 3"):
        ask(awg, cmd)
        assert errors(awg) == ['-221,"Settings conflict"'], cmd
    assert ask(awg, "SOUR1:VOLT:HIGH?;LOW?;LIM:HIGH?;:OUTP1:LOAD?") == (
        "+1.500000000000000E+00;-1.000000000000000E-01;+2.000000000000000E+00;"
        "+9.900000000000000E+37")
    ask(awg, "SOUR1:VOLT:LIM:STAT OFF;:SOUR1:VOLT:HIGH 3;:SOUR1:VOLT:LIM:STAT ON")
    assert errors(awg) == ['-221,"Settings conflict"']  # cannot enable around a wider output
    assert ask(awg, "SOUR1:VOLT:LIM:STAT?") == "0"


def test_vrms_and_dbm_units(awg):
    ask(awg, "SOUR1:VOLT:UNIT VRMS;:SOUR1:VOLT 1")
    assert ask(awg, "SOUR1:VOLT:UNIT?") == "VRMS"
    ask(awg, "SOUR1:VOLT:UNIT VPP")
    assert float(ask(awg, "SOUR1:VOLT?")) == pytest.approx(2 * math.sqrt(2))
    ask(awg, "SOUR1:VOLT:UNIT DBM;:SOUR1:VOLT 10")  # 10 dBm into 50 ohm = 0.707 Vrms
    ask(awg, "SOUR1:VOLT:UNIT VRMS")
    assert float(ask(awg, "SOUR1:VOLT?")) == pytest.approx(math.sqrt(0.5))
    ask(awg, "OUTP1:LOAD INF;:SOUR1:VOLT:UNIT DBM")
    ask(awg, "SOUR1:FUNC PULS;:SOUR1:VOLT:UNIT VRMS")
    assert errors(awg) == ['-221,"Settings conflict"'] * 2
    assert ask(awg, "SOUR1:VOLT:UNIT?") == "VPP"


# --------------------------------------------------------------------------- bursts on the bench
def test_bus_burst_is_one_drive_with_low_idle(awg, dendrite_bench, drives):
    ask(awg, PULSES + ";:SOUR1:VOLT:LOW -0.5;:OUTP1 ON")
    assert dendrite_bench.levels["pulse/1"] == -0.5  # waiting at the idle (low) level
    t0 = dendrite_bench.now_s
    assert ask(awg, "*TRG;*OPC?") == "1"
    assert dendrite_bench.now_s - t0 == pytest.approx(20 * 2e-4)
    assert len(drives) == 1
    term, wave = drives[0]
    assert term == "pulse/1" and wave.duration_s == pytest.approx(4e-3)
    assert wave.v.max() == 5 and wave.v.min() == -0.5 and wave.v[-1] == -0.5
    high_time = wave.dt[wave.v == 5].sum()  # flat top = width - (edges 10.5 ns) per pulse
    assert high_time == pytest.approx(20 * (1e-4 - 1.25 * 8.4e-9))
    assert dendrite_bench.levels["pulse/1"] == -0.5
    assert dendrite_bench.device("d1").w > 0.3


def test_trigger_delay_polarity_and_trigger_command(awg, dendrite_bench, drives):
    ask(awg, PULSES + ";:TRIG1:DEL 1e-3;:OUTP1:POL INV;:OUTP1 ON")
    assert dendrite_bench.levels["pulse/1"] == 5  # inverted: idles at the high level
    t0 = dendrite_bench.now_s
    ask(awg, "TRIGger1")
    assert dendrite_bench.now_s - t0 == pytest.approx(1e-3 + 4e-3)
    wave = drives[0][1]
    assert wave.v[0] == 5 and wave.dt[0] == pytest.approx(1e-3) and wave.v.min() == 0


def test_trigger_with_output_off_only_takes_time(awg, dendrite_bench, drives):
    ask(awg, PULSES)
    ask(awg, "*TRG")
    assert dendrite_bench.now_s == pytest.approx(4e-3) and drives == []
    assert dendrite_bench.device("d1").w == 0
    ask(awg, "TRIG1:SOUR IMM;:*TRG")
    assert errors(awg) == ['-211,"Trigger ignored"']


def test_free_running_pulses_are_applied_at_the_next_command(awg, dendrite_bench, drives):
    ask(awg, PULSES.replace("BURS:STAT ON", "BURS:STAT OFF") + ";:OUTP1 ON")
    assert dendrite_bench.levels["pulse/1"] == 0 and drives == []
    dendrite_bench.advance(1e-3)  # another instrument works for 1 ms
    ask(awg, "*OPC?")  # catch-up: 5 periods driven now (the clock counts them again)
    assert len(drives) == 1 and drives[0][1].duration_s == pytest.approx(1e-3)
    assert dendrite_bench.now_s == pytest.approx(2e-3)
    assert dendrite_bench.device("d1").w > 0.1
    dendrite_bench.advance(3e-4)
    ask(awg, "OUTP1 OFF")  # the phase continues: 1.5 periods more, then the relay opens
    assert drives[1][1].duration_s == pytest.approx(3e-4)
    assert drives[1][1].v[0] == pytest.approx(5 / 8)  # mid leading edge
    assert "pulse/1" not in dendrite_bench.levels


def test_internal_trigger_repeats_bursts(awg, dendrite_bench, drives):
    ask(awg, PULSES.replace("NCYC 20", "NCYC 2").replace("SOUR BUS", "SOUR IMM")
        + ";:SOUR1:BURS:INT:PER 1e-3;:OUTP1 ON")
    dendrite_bench.advance(2.5e-3)
    ask(awg, "*OPC?")
    wave = drives[0][1]
    assert wave.duration_s == pytest.approx(2.5e-3)
    assert wave.dt[wave.v == 5].sum() == pytest.approx(6 * (1e-4 - 1.25 * 8.4e-9))  # 3 bursts


def test_unsimulated_functions_cannot_drive_the_output(awg):
    ask(awg, "SOUR1:FUNC NOIS;:OUTP1 ON")
    ask(awg, "SOUR1:FUNC SIN;:OUTP1 ON;:SOUR1:FUNC PRBS")
    ask(awg, "SOUR1:BURS:STAT ON;:SOUR1:FUNC DC")
    assert errors(awg) == ['-221,"Settings conflict"'] * 3
    assert ask(awg, "SOUR1:FUNC?;:OUTP1?") == "SIN;1"


def test_sine_output_is_a_pwc_period(awg, drives):
    ask(awg, "OUTP1:LOAD INF;:SOUR1:FUNC SIN;FREQ 1e3;VOLT 2;VOLT:OFFS 0.5;:SOUR1:BURS:STAT ON;"
             ":SOUR1:BURS:PHAS 90;:TRIG1:SOUR BUS;:OUTP1 ON;:*TRG")
    wave = drives[0][1]
    assert wave.duration_s == pytest.approx(1e-3) and wave.n_segments == 64
    assert wave.v[0] == pytest.approx(1.5, abs=2e-3)  # starts at the 90 degree peak
    assert wave.v.mean() == pytest.approx(0.5)


def test_reset_turns_outputs_off(awg, dendrite_bench):
    ask(awg, "SOUR1:FUNC DC;:OUTP1 ON;:SOUR2:FUNC DC;:OUTP2 ON")
    assert {"pulse/1", "pulse/2"} <= set(dendrite_bench.levels)
    ask(awg, "*RST")
    assert not {"pulse/1", "pulse/2"} & set(dendrite_bench.levels)


# --------------------------------------------------------------------------- arbitrary
def test_arb_upload_forms_and_memory(awg):
    ask(awg, "SOUR1:DATA:VOL:CLE;:SOUR1:DATA:ARB spikes,0,0,1,0,0,-1,0,0")
    ask(awg, "SOUR1:DATA:ARB:DAC dac1, 0, 32767, -32767, 0, 0, 0, 0, 0")
    ask(awg, "FORM:BORD SWAP")
    ask(awg, b"SOUR1:DATA:ARB blk," + float_block([0.5, -0.5] * 4, byteorder="little"))
    ask(awg, "FORM:BORD NORM")
    ask(awg, b"SOUR1:DATA:ARB blk2," + float_block([0.25] * 8, byteorder="big"))
    dac = np.array([0, 100, -100, 0, 0, 0, 0, 10], ">i2").tobytes()
    ask(awg, b"SOUR1:DATA:ARB:DAC dblk,#216" + dac)
    assert errors(awg) == []
    assert ask(awg, "SOUR1:DATA:VOL:CAT?") == '"spikes","dac1","blk","blk2","dblk"'
    assert ask(awg, "SOUR1:DATA:VOL:FREE?;:SOUR2:DATA:VOL:FREE?") == "999960;1000000"
    ask(awg, "SOUR1:DATA:ARB short,0,1,0")
    ask(awg, "SOUR1:DATA:ARB big,0,1,0,0,0,0,0,1.5")
    ask(awg, "SOUR1:DATA:ARB spikes,0,0,0,0,0,0,0,0")
    ask(awg, "SOUR1:DATA:ARB 9bad,0,0,0,0,0,0,0,0")
    ask(awg, "SOUR1:FUNC:ARB nothere")
    ask(awg, "SOUR2:FUNC:ARB spikes")  # volatile memory is per channel
    assert errors(awg) == ['-222,"Data out of range"', '-222,"Data out of range"',
                           '-221,"Settings conflict"', '-224,"Illegal parameter value"',
                           '-224,"Illegal parameter value"', '-224,"Illegal parameter value"']
    ask(awg, "SOUR1:FUNC:ARB SPIKES")
    assert ask(awg, "SOUR1:FUNC:ARB?") == '"spikes"'
    ask(awg, "SOUR1:DATA:VOL:CLE")
    assert ask(awg, "SOUR1:DATA:VOL:CAT?;FREE?;:SOUR1:FUNC:ARB?") == '"";1000000;""'


def test_arb_burst_plays_samples_at_the_sample_rate(awg, dendrite_bench, drives):
    ask(awg, "OUTP1:LOAD INF;:SOUR1:DATA:ARB sp,0,0,1,0,0,-1,0,0;:SOUR1:FUNC:ARB sp;"
             ":SOUR1:FUNC ARB;:SOUR1:FUNC:ARB:SRAT 1e6;PTP 1.5;:SOUR1:VOLT:OFFS 0.25;"
             ":SOUR1:BURS:STAT ON;NCYC 3;:TRIG1:SOUR BUS;:OUTP1 ON;:*TRG")
    assert errors(awg) == []
    wave = drives[0][1]
    assert wave.duration_s == pytest.approx(24e-6) and np.allclose(wave.dt, 1e-6)
    assert wave.v[:8].tolist() == pytest.approx([0.25, 0.25, 1.0, 0.25, 0.25, -0.5, 0.25, 0.25])
    assert ask(awg, "SOUR1:FUNC:ARB:PTP?;SRAT?") == (
        "+1.500000000000000E+00;+1.000000000000000E+06")


def test_33600a_memory(dendrite_bench):
    m = Keysight33600ASim(dendrite_bench, "pulse")
    assert ask(m, "SOUR2:DATA:VOL:FREE?") == "4000000"


# --------------------------------------------------------------------------- our driver
@pytest.fixture
def gen(dendrite_bench, loopback) -> PulseGenerator:
    g = connect(loopback(Keysight33500BSim(dendrite_bench, "pulse")))
    assert isinstance(g, PulseGenerator)
    return g


def _train_w(bench, gen, amplitude_v):
    gen.pulse_train(amplitude_v, 1e-4, 2e-4, 20)
    gen.output_on()
    t0 = bench.now_s
    gen.trigger()
    return bench.device("d1").w, bench.now_s - t0


def test_driver_pulse_train_raises_the_dendrite_state(gen, dendrite_bench):
    assert gen.identity.model == "33522B"
    w, elapsed = _train_w(dendrite_bench, gen, 5.0)
    assert w > 0.5
    assert elapsed == pytest.approx(20 * 2e-4, rel=0.01)
    snap = gen.settings()["instrument"]
    assert snap["function"] == "PULS" and snap["burst_cycles"] == "+2.000000000000000E+01"
    assert snap["load"] == "+9.900000000000000E+37"


def test_driver_smaller_amplitude_raises_it_less(dendrite_bench, loopback):
    from sim_backend.bench import Bench

    def fresh():
        b = Bench({"seed": 1, "noise": False, "devices": {"d1": {"kind": "dendrite"}},
                   "wiring": {"pulse/1": "d1"}})
        return b, connect(loopback(Keysight33500BSim(b, "pulse")))

    w_hi = _train_w(*fresh(), 5.0)[0]
    w_lo = _train_w(*fresh(), 3.0)[0]
    assert 0 < w_lo < 0.5 * w_hi


def test_driver_arb_upload_and_safe_state(gen, dendrite_bench):
    gen.upload_arb("spikes", [0, 0, 1, 0, 0, -0.5, 0, 0], 1e6)  # checks the error queue
    gen.configure_burst(1)
    gen.output_on()
    gen.trigger()
    assert dendrite_bench.now_s == pytest.approx(8e-6)
    assert gen.settings()["instrument"]["function"] == "ARB"
    gen.safe_state()
    assert gen.resource.query("OUTP1?") == "0"
    assert "pulse/1" not in dendrite_bench.levels


def test_driver_with_bench_limits_programs_clamps(dendrite_bench, loopback):
    from instruments.base import UserLimits

    g = connect(loopback(Keysight33600ASim(dendrite_bench, "pulse")),
                limits=UserLimits(voltage_min_v=-1.0, voltage_max_v=5.0))
    g.pulse_train(5.0, 1e-4, 2e-4, 20)
    g.pulse_train(4.0, 1e-4, 2e-4, 10)  # same load again: allowed with the limits enabled
    snap = g.settings()["instrument"]
    assert snap["limit_state"] == "1" and snap["limit_high"] == "+5.000000000000000E+00"


def test_function_change_clips_the_frequency(dendrite_bench):
    m = Keysight33600ASim(dendrite_bench, "pulse")
    ask(m, "SOUR1:FREQ 120e6;:SOUR1:FUNC SQU")
    assert ask(m, "SOUR1:FREQ?;FUNC:SQU:DCYC?") == "+1.000000000000000E+08;+5.000000000000000E+01"
    ask(m, "SOUR1:FUNC PULS")
    assert ask(m, "SOUR1:FREQ?;FUNC:PULS:PER?") == (
        "+3.000000000000000E+07;+3.333333333333000E-08")
    assert errors(m) == []


@pytest.mark.parametrize(("first", "then"), [
    ((3.0, 0.0), (-1.0, -3.0)),   # both levels below the present low: low must go first
    ((-1.0, -3.0), (3.0, 1.0)),   # both above the present high: high first
    ((1.0, 0.0), (0.5, -0.5)),    # overlapping: either order works
])
def test_driver_reprograms_levels_without_a_settings_conflict(gen, first, then):
    """Excitatory then inhibitory pulses (and back) on one channel: every configuration is
    accepted (no -221 from an intermediate high <= low) and the instrument holds the levels."""
    for high, low in (first, then):
        gen.pulse_train(high, 1e-4, 2e-4, 3, low_v=low)  # check_errors raises on any error
        snap = gen.settings()["instrument"]
        assert float(snap["voltage_high"]) == high and float(snap["voltage_low"]) == low


# --------------------------------------------------------------------------- OUTPut:SYNC / TRIGger
def test_sync_and_trigger_out_round_trip_and_reset(awg):
    assert ask(awg, "OUTP:SYNC?;:OUTP:SYNC:SOUR?;:OUTP1:SYNC:MODE?;:OUTP2:SYNC:POL?") == (
        "1;CH1;NORM;NORM")
    assert ask(awg, "OUTP:TRIG?;:OUTP:TRIG:SLOP?;:OUTP:TRIG:SOUR?") == "0;POS;CH1"
    awg.handle("OUTPut:SYNC OFF;:OUTPut:SYNC:SOURce CH2;:OUTPut2:SYNC:MODE MARKer;"
               ":OUTPut1:SYNC:POLarity INVerted")
    awg.handle("OUTP:TRIG ON;:OUTP:TRIG:SLOP NEG;:OUTP:TRIG:SOUR CH2")
    assert ask(awg, "OUTP:SYNC:STAT?;:OUTP:SYNC:SOUR?;:OUTP2:SYNC:MODE?;:OUTP1:SYNC:POL?") == (
        "0;CH2;MARK;INV")
    assert ask(awg, "OUTP1:SYNC:MODE?") == "NORM"  # per channel
    assert ask(awg, "OUTP:TRIG?;:OUTP:TRIG:SLOP?;:OUTP:TRIG:SOUR?") == "1;NEG;CH2"
    assert errors(awg) == []
    awg.handle("*RST")
    assert ask(awg, "OUTP:SYNC?;:OUTP:SYNC:SOUR?;:OUTP2:SYNC:MODE?") == "1;CH1;NORM"
    assert ask(awg, "OUTP:TRIG?;:OUTP:TRIG:SLOP?") == "0;POS"


def test_sync_and_trigger_out_reject_bad_values(awg):
    awg.handle("OUTP:SYNC:SOUR CH3")
    awg.handle("OUTP1:SYNC:MODE FAST")
    awg.handle("OUTP:TRIG:SLOP UP")
    awg.handle("OUTP2:SYNC ON")  # the Sync state has no channel suffix
    awg.handle("OUTP3:SYNC:MODE NORM")
    assert errors(awg) == ['-224,"Illegal parameter value"'] * 3 + [
        '-114,"Header suffix out of range"'] * 2


# --------------------------------------------------------------------------- PHASe, UNIT:ANGLe
def test_phase_round_trip_range_and_units(awg):
    assert ask(awg, "SOUR1:PHAS?") == "+0.000000000000000E+00"
    awg.handle("SOUR1:PHAS 90;:SOUR2:PHASe -45.5")
    assert float(ask(awg, "SOUR1:PHAS?")) == 90
    assert float(ask(awg, "SOUR2:PHAS?")) == -45.5
    assert float(ask(awg, "PHAS? MAX")) == 360 and float(ask(awg, "PHAS? MIN")) == -360
    awg.handle("SOUR1:PHAS 361")
    assert errors(awg) == ['-222,"Data out of range"']
    assert float(ask(awg, "SOUR1:PHAS?")) == 90  # not applied
    awg.handle("UNIT:ANGL RAD")
    assert ask(awg, "UNIT:ANGL?") == "RAD"
    assert float(ask(awg, "SOUR1:PHAS?")) == pytest.approx(math.pi / 2)
    awg.handle("SOUR1:PHAS 7")  # > 2 pi
    assert errors(awg) == ['-222,"Data out of range"']
    awg.handle(f"SOUR1:PHAS {math.pi}")
    awg.handle("UNIT:ANGL DEF")
    assert float(ask(awg, "SOUR1:PHAS?")) == pytest.approx(180)
    assert ask(awg, "PHAS:UNL:ERR:STAT?") == "0"
    awg.handle("PHAS:UNL:ERR:STAT ON;:PHAS:REF;:PHAS:SYNC")
    assert ask(awg, "PHAS:UNL:ERR:STAT?") == "1"
    assert errors(awg) == []
    awg.handle("UNIT:ANGL RAD;*RST")
    assert ask(awg, "UNIT:ANGL?;:SOUR1:PHAS?;:PHAS:UNL:ERR:STAT?") == (
        "DEG;+0.000000000000000E+00;0")


def test_phase_shifts_the_free_running_output(awg, dendrite_bench):
    """A square wave started at 180 degrees is low first: the bench sees it half a period on."""
    awg.handle("OUTP1:LOAD INF;:SOUR1:FUNC SQU;:SOUR1:FREQ 1000;:SOUR1:VOLT:HIGH 1;"
               ":SOUR1:VOLT:LOW 0")
    awg.handle("SOUR1:PHAS 180")
    awg.handle("OUTP1 ON")
    run = awg.ch[1].run
    assert run is not None and run.phase == pytest.approx(0.5e-3)
    awg.handle("SOUR1:PHAS 0;:PHAS:SYNC")
    assert awg.ch[1].run.phase == 0.0


# --------------------------------------------------------------------------- FREQuency:MODE
def test_frequency_mode_round_trip_and_sweep_not_simulated(awg):
    assert ask(awg, "SOUR1:FREQ:MODE?") == "CW"
    awg.handle("SOURce1:FREQuency:MODE FIXED")
    assert ask(awg, "SOUR1:FREQ:MODE?") == "FIX"
    awg.handle("SOUR2:FREQ:MODE SWEEP")
    assert ask(awg, "SOUR2:FREQ:MODE?") == "SWE"
    awg.handle("OUTP2 ON")  # a frequency sweep is not simulated: refused, not faked
    awg.handle("SOUR1:FREQ:MODE STEP")
    assert errors(awg) == ['-221,"Settings conflict"', '-224,"Illegal parameter value"']
    assert ask(awg, "OUTP2?") == "0"
    awg.handle("SOUR1:FREQ:MODE CW;:OUTP1 ON;:SOUR1:FREQ:MODE LIST")
    assert errors(awg) == ['-221,"Settings conflict"']
    awg.handle("*RST")
    assert ask(awg, "SOUR2:FREQ:MODE?") == "CW"


# --------------------------------------------------------------------------- misc subsystems
def test_arb_advance_display_and_beeper(awg):
    assert ask(awg, "SOUR1:FUNC:ARB:ADV?") == "SRAT"
    awg.handle("SOUR1:FUNC:ARB:ADV TRIG;:SOUR2:FUNC:ARB:ADVance SRATe")
    assert ask(awg, "SOUR1:FUNC:ARB:ADV?;:SOUR2:FUNC:ARB:ADV?") == "TRIG;SRAT"
    awg.handle("SOUR1:FUNC:ARB:ADV NEXT")
    assert errors(awg) == ['-224,"Illegal parameter value"']
    awg.handle('DISP:TEXT "pulse ""A"""')
    assert ask(awg, "DISP:TEXT?") == '"pulse ""A"""'
    awg.handle("DISP:TEXT:CLE;:DISP OFF")
    assert ask(awg, "DISP:TEXT?;:DISP?") == '"";0'
    awg.handle("DISP:TEXT 12")
    assert errors(awg) == ['-104,"Data type error"']
    awg.handle("SYST:BEEP;:SYST:BEEP:STAT OFF;*RST")
    assert ask(awg, "SYST:BEEP:STAT?;:DISP?;:SOUR1:FUNC:ARB:ADV?") == "0;1;SRAT"
    awg.handle("SYST:BEEP 1000")
    assert errors(awg) == ['-108,"Parameter not allowed"']

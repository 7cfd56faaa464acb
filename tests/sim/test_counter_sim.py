"""Simulated 53220A/53230A: counts and frequencies against the bench's own spike log, the manual's
syntax and replies, rejected commands with their SCPI errors, and the no-signal case."""

from __future__ import annotations

import numpy as np
import pytest

from dendrolab.errors import ParameterError
from instruments.counter import Counter, CounterInput
from instruments.factory import connect
from sim_backend.bench import Bench
from sim_backend.instruments import model_class
from sim_backend.instruments.counter532x0 import Keysight53220ASim, Keysight53230ASim
from sim_backend.physics.waveform import pulse_train
from tests.sim import ask, errors


@pytest.fixture
def bench() -> Bench:
    """A noise-free unit u1: input on gen/1 (a waveform) or src/1 (a DC level), output on the
    counter's channel 1; channel 2 is wired to nothing."""
    return Bench({"seed": 1, "noise": False, "devices": {"u1": {"kind": "unit"}},
                  "wiring": {"gen/1": "u1.in", "src/1": "u1.in", "counter/1": "u1.out"}})


@pytest.fixture
def counter(bench) -> Keysight53230ASim:
    return Keysight53230ASim(bench, "counter")


def logged(bench: Bench, t0: float, t1: float) -> np.ndarray:
    times = np.asarray(bench.device("u1").spike_times)
    return times[(times >= t0) & (times < t1)]


BURST = pulse_train(6.0, 200e-6, 200e-6, 20)  # 20 pulses, 200 us wide, 400 us period: 8 ms


def test_registered_and_identified_by_the_driver_table(bench, loopback):
    assert model_class("keysight_53230a") is Keysight53230ASim
    assert model_class("keysight_53220a") is Keysight53220ASim
    driver = connect(loopback(Keysight53220ASim(bench, "counter")))
    assert isinstance(driver, Counter) and driver.spec.name == "Keysight 53220A"
    with pytest.raises(ParameterError, match="unknown option"):
        Keysight53230ASim(bench, "counter", {"colour": "red"})


def test_count_is_the_logged_spikes_inside_the_gate_only(bench, counter):
    bench.drive("gen/1", BURST)                   # before the gate: not counted
    bench.advance(0.05)
    assert ask(counter, "CONF:TOT:TIM 0.02,(@1);:INP1:COUP DC;:INP1:LEV 0.01") is None
    ask(counter, "INIT")
    t0 = bench.now_s
    bench.drive("gen/1", BURST)                   # inside the gate
    reply = ask(counter, "FETC?")
    assert reply is not None and reply.startswith("+") and "E+" in reply
    inside = logged(bench, t0, t0 + 0.02)
    before = logged(bench, 0.0, t0)
    assert inside.size > 100 and before.size > 100
    assert float(reply) == inside.size
    assert bench.now_s == pytest.approx(t0 + 0.02)  # FETCh? waited for the gate to close
    assert ask(counter, "FETC?") == reply           # readings stay in memory
    assert errors(counter) == []


def test_a_gate_that_closes_mid_burst_counts_only_its_part(bench, counter):
    ask(counter, "CONF:TOT:TIM 0.004,(@1);:INP1:COUP DC;:INP1:LEV 0.01;:INIT")
    t0 = bench.now_s
    bench.drive("gen/1", BURST)                   # 8 ms: spikes continue after the gate
    count = float(ask(counter, "FETC?"))
    assert count == logged(bench, t0, t0 + 0.004).size
    assert 0 < count < logged(bench, t0, t0 + 1.0).size


def test_level_between_baseline_and_peak_counts_outside_it_nothing(bench, counter):
    """Peak 0.6 mA and baseline 6 uA through 50 ohm (the assumed terminator || 1 Mohm)."""
    counts = {}
    for level in (0.01, 0.029, 0.031, -0.01, 0.0002):
        ask(counter, f"CONF:TOT:TIM 0.01,(@1);:INP1:COUP DC;:INP1:LEV {level};:INIT")
        bench.drive("gen/1", BURST)
        counts[level] = float(ask(counter, "FETC?"))
        bench.advance(0.05)
    assert counts[0.01] > 100 and counts[0.029] == counts[0.01]
    assert counts[0.031] == 0 and counts[-0.01] == 0 and counts[0.0002] == 0


def test_input_impedance_halves_the_signal_and_auto_level_counts_every_spike(bench, counter):
    ask(counter, "CONF:TOT:TIM 0.01,(@1);:INP1:IMP 50;:INP1:COUP DC;:INP1:LEV 0.02;:INIT")
    bench.drive("gen/1", BURST)
    assert float(ask(counter, "FETC?")) == 0     # 15 mV peaks across 25 ohm: below 20 mV
    ask(counter, "CONF:TOT:TIM 0.01,(@1)")       # CONFigure re-enables auto-level
    assert ask(counter, "INP1:LEV:AUTO?") == "1"
    ask(counter, "INIT")
    t0 = bench.now_s
    bench.drive("gen/1", BURST)
    assert float(ask(counter, "FETC?")) == logged(bench, t0, t0 + 0.01).size > 0


def test_ac_coupling_removes_the_mean_so_a_0_v_level_counts(bench, counter):
    ask(counter, "CONF:TOT:TIM 0.01,(@1);:INP1:COUP DC;:INP1:LEV 0;:INIT")
    bench.drive("gen/1", BURST)
    assert float(ask(counter, "FETC?")) == 0     # DC: the baseline sits above 0 V
    ask(counter, "CONF:TOT:TIM 0.01,(@1);:INP1:COUP AC;:INP1:LEV 0;:INIT")
    t0 = bench.now_s
    bench.drive("gen/1", BURST)
    assert float(ask(counter, "FETC?")) == logged(bench, t0, t0 + 0.01).size > 0


def test_frequency_is_one_over_the_period_of_a_steady_oscillation(bench, counter):
    bench.source("src/1", 6.0)
    bench.advance(0.02)                           # past the dendrite's transient
    reply = ask(counter, "CONF:FREQ (@1);:SENS:FREQ:GATE:TIME 0.005;:INP1:LEV 0.01;:READ?")
    t0 = bench.now_s - 0.005
    spikes = logged(bench, t0, t0 + 0.005)
    assert float(reply) == pytest.approx((spikes.size - 1) / (spikes[-1] - spikes[0]),
                                         rel=1e-12)
    assert float(reply) == pytest.approx(1 / np.median(np.diff(spikes)), rel=0.01)
    assert 100e3 < float(reply) < 200e3


def test_no_signal_times_out_with_not_a_number(bench, counter):
    ask(counter, "SYST:TIM 0.5")
    t0 = bench.now_s
    assert ask(counter, "CONF:FREQ (@1);:INP1:LEV 0.01;:READ?") == "+9.91000000000000E+037"
    assert bench.now_s == pytest.approx(t0 + 0.5)  # it waited for the timeout
    ask(counter, "SYST:TIM 0.05")                  # shorter than the gate: twice the gate
    t0 = bench.now_s
    assert float(ask(counter, "READ?")) == 9.91e37
    assert bench.now_s == pytest.approx(t0 + 0.2)
    assert errors(counter) == []


def test_timeout_disabled_and_no_signal_never_answers_until_abort(bench, counter):
    ask(counter, "SYST:TIM INF")
    assert ask(counter, "SYST:TIM?") == "+9.90000000E+037"
    assert ask(counter, "CONF:FREQ (@1);:READ?") is None
    assert ask(counter, "FETC?") is None
    ask(counter, "INIT")
    assert errors(counter) == ['-213,"Init ignored"']
    ask(counter, "ABOR")
    assert ask(counter, "*IDN?").startswith("Agilent Technologies,53230A,")


def test_driver_and_model_together_no_signal_reads_nan(bench, loopback):
    driver = connect(loopback(Keysight53230ASim(bench, "counter")))
    assert np.isnan(driver.measure_frequency(0.01, CounterInput(0.01)))
    driver.start_totalize(0.01, CounterInput(0.01))
    bench.drive("gen/1", BURST)
    assert driver.fetch_count() > 100
    driver.check_errors()


@pytest.mark.parametrize(("command", "error"), [
    ("INP1:FOO 1", '-113,"Undefined header"'),
    ("CONF:TOTAL:TIM 0.1", '-113,"Undefined header"'),
    ("INP3:IMP 50", '-114,"Header suffix out of range"'),
    ("INP1:IMP 75", '-222,"Data out of range"'),
    ("INP1:RANG 10", '-222,"Data out of range"'),
    ("INP1:LEV 5.5", '-222,"Data out of range"'),
    ("INP1:COUP GND", '-224,"Illegal parameter value"'),
    ("INP1:SLOP UP", '-224,"Illegal parameter value"'),
    ("SENS:FREQ:GATE:TIME 5e-7", '-222,"Data out of range"'),
    ("SENS:TOT:GATE:TIME 1001", '-222,"Data out of range"'),
    ("SYST:TIM 0.005", '-222,"Data out of range"'),
    ("CONF:TOT:TIM 0.1,(@3)", '-224,"Illegal parameter value"'),
    ("FETC?", '-230,"Data corrupt or stale"'),
    ("INIT 1", '-108,"Parameter not allowed"'),
])
def test_rejected_commands_give_the_scpi_error_and_no_reply(counter, command, error):
    assert ask(counter, command) is None
    assert errors(counter) == [error]


def test_53220a_gates_start_at_100_us_in_10_us_steps(bench):
    slow = Keysight53220ASim(bench, "counter")
    ask(slow, "CONF:TOT:TIM 50e-6,(@1)")
    assert errors(slow) == ['-222,"Data out of range"']
    ask(slow, "SENS:TOT:GATE:TIME 1.234e-3")
    assert ask(slow, "SENS:TOT:GATE:TIME?") == "+1.23000000E-003"
    assert ask(slow, "SENS:FREQ:GATE:TIME? MIN") == "+1.00000000E-004"


def test_settings_replies_in_the_manual_formats(counter):
    assert ask(counter, "INP1:IMP?") == "+1.00000000E+006"
    ask(counter, "INP1:IMP 50;:INP1:RANG 50;:INP1:LEV -12.5;:INP1:SLOP NEG;:INP1:COUP DC")
    assert ask(counter, "INP1:IMP?;RANG?;LEV?;SLOP?;COUP?") == (
        "+5.00000000E+001;+5.00000000E+001;-1.25000000E+001;NEG;DC")
    assert ask(counter, "INP1:LEV:AUTO?") == "0"     # an absolute level turns auto-level off
    assert ask(counter, "SYST:TIM?") == "+1.00000000E+000"
    ask(counter, "INP1:LEV:REL 33")
    assert ask(counter, "INP1:LEV:REL?") == "+35"    # 5 % resolution
    assert errors(counter) == []


def test_conf_freq_picks_the_gate_from_expected_and_resolution(counter):
    ask(counter, "CONF:FREQ 5e6,5E-4,(@1)")          # User's Guide p.160: 100 ms on a 53230A
    assert ask(counter, "SENS:FREQ:GATE:TIME?") == "+1.00000000E-001"
    ask(counter, "CONF:FREQ 5E-9,5E-15,(@1)")       # relative 1e-6: 10 us on a 53230A
    assert ask(counter, "SENS:FREQ:GATE:TIME?") == "+1.00000000E-005"


def test_rst_aborts_and_restores_defaults_but_keeps_the_timeout(bench, counter):
    ask(counter, "SYST:TIM 0.2;:CONF:TOT:TIM 0.5,(@1);:INP1:LEV 0.01;:INIT")
    ask(counter, "*RST")
    assert ask(counter, "SYST:TIM?") == "+2.00000000E-001"
    assert ask(counter, "INP1:LEV:AUTO?") == "1"
    assert ask(counter, "FETC?") is None and errors(counter) == ['-230,"Data corrupt or stale"']


def test_unwired_channel_counts_zero(bench, counter):
    ask(counter, "CONF:TOT:TIM 0.01,(@2);:INP2:LEV 0.01;:INIT")
    bench.drive("gen/1", BURST)
    assert float(ask(counter, "FETC?")) == 0

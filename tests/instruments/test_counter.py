"""Counter driver: exact wire traffic of the 53220A/53230A dialect, limits before I/O, safety."""

from __future__ import annotations

import math

import pytest

from dendrolab.errors import InstrumentError, ParameterError
from instruments.counter import COUNTER_MODELS, Counter, CounterInput, frequency_timeout_s
from instruments.factory import connect
from tests.instruments import FakeResource

K53220A, K53230A = COUNTER_MODELS
INPUT = CounterInput(level_v=0.01)
INPUT_TRAFFIC = ["INP1:IMP 1000000", "INP1:COUP DC", "INP1:RANG 5", "INP1:SLOP POS",
                 "INP1:LEV 0.01"]


def make(spec=K53230A, replies=None, **kwargs):
    fake = FakeResource(replies)
    return Counter(fake, spec, **kwargs), fake


@pytest.mark.parametrize("spec", COUNTER_MODELS, ids=lambda s: s.name)
def test_totalize_configures_then_sets_the_input_then_checks_errors_then_arms(spec):
    counter, fake = make(spec)
    counter.start_totalize(0.1, INPUT)
    assert fake.commands == ["CONF:TOT:TIM 0.1,(@1)", *INPUT_TRAFFIC, "SYST:ERR?", "INIT"]
    assert counter.armed


def test_fetch_reads_the_count_with_a_timeout_that_covers_the_gate():
    counter, fake = make(replies={"FETC?": "+1.40000000000000E+002"})
    counter.start_totalize(0.1, INPUT)
    fake.clear_traffic()
    assert counter.fetch_count() == 140
    assert fake.commands == ["FETC?"]
    # 2 s per expected second + 5 s: at most the whole 0.1 s gate is left
    assert 5000.0 <= fake.timeouts_seen[-1] <= 5200.0
    assert fake.timeout == 2000.0 and not counter.armed


def test_fetch_without_an_open_gate_is_an_error_before_any_io():
    counter, fake = make()
    with pytest.raises(InstrumentError, match="no totalize gate is open"):
        counter.fetch_count()
    assert fake.commands == []


def test_a_reply_that_is_not_a_count_is_an_error():
    counter, _ = make(replies={"FETC?": "+1.25000000000000E+000"})
    counter.start_totalize(0.1, INPUT)
    with pytest.raises(InstrumentError, match="not a count"):
        counter.fetch_count()


def test_channel_two_and_every_input_setting_on_the_wire():
    counter, fake = make(channel=2)
    counter.start_totalize(2e-3, CounterInput(-1.5, "negative", 50.0, "ac", 50.0))
    assert fake.commands == ["CONF:TOT:TIM 0.002,(@2)", "INP2:IMP 50", "INP2:COUP AC",
                             "INP2:RANG 50", "INP2:SLOP NEG", "INP2:LEV -1.5", "SYST:ERR?", "INIT"]


def test_an_instrument_error_stops_before_the_gate_opens():
    counter, fake = make(replies={"SYST:ERR?": ['-222,"Data out of range"', '+0,"No error"']})
    with pytest.raises(InstrumentError, match="-222"):
        counter.start_totalize(0.1, INPUT)
    assert "INIT" not in fake.commands and not counter.armed


@pytest.mark.parametrize(("spec", "gate_s", "inp", "match"), [
    (K53220A, 50e-6, INPUT, "gate_s=5e-05 is outside"),          # 53220A: 100 us minimum
    (K53220A, 1.005e-3, INPUT, "1e-05 s steps"),                 # 53220A: 10 us resolution
    (K53230A, 0.5e-6, INPUT, "gate_s=5e-07 is outside"),         # 53230A: 1 us minimum
    (K53230A, 1000.5, INPUT, "outside"),                          # both: 1000 s maximum
    (K53230A, 1.5e-6 + 1e-7, INPUT, "1e-06 s steps"),
    (K53230A, 0.1, CounterInput(5.5), "level_v=5.5 is outside"),  # beyond the 5 V range
    (K53230A, 0.1, CounterInput(0.01, impedance_ohm=75.0), "impedance_ohm=75"),
    (K53230A, 0.1, CounterInput(0.01, slope="UP"), "slope 'UP'"),
    (K53230A, 0.1, CounterInput(0.01, coupling="GND"), "coupling 'GND'"),
    (K53230A, 0.1, CounterInput(0.01, range_v=10.0), "range_v=10"),
    (K53230A, math.nan, INPUT, "outside"),
])
def test_limits_are_checked_before_any_io(spec, gate_s, inp, match):
    counter, fake = make(spec)
    with pytest.raises(ParameterError, match=match):
        counter.start_totalize(gate_s, inp)
    with pytest.raises(ParameterError, match=match):
        counter.measure_frequency(gate_s, inp)
    assert fake.commands == []


def test_range_50_allows_a_level_above_5_v():
    counter, fake = make()
    counter.start_totalize(0.1, CounterInput(12.0, range_v=50.0))
    assert "INP1:LEV 12" in fake.commands


def test_frequency_traffic_and_reading():
    counter, fake = make(replies={"READ?": "+7.22116234081120E+004"})
    f = counter.measure_frequency(0.01, INPUT)
    assert f == pytest.approx(72211.623408112)
    assert fake.commands == ["CONF:FREQ (@1)", "SENS:FREQ:GATE:SOUR TIME",
                             "SENS:FREQ:GATE:TIME 0.01", "SYST:TIM 0.03", *INPUT_TRAFFIC,
                             "SYST:ERR?", "READ?"]
    assert fake.timeouts_seen[-1] == pytest.approx(2000 * 0.03 + 5000)


def test_a_timed_out_frequency_reading_is_nan():
    counter, _ = make(replies={"READ?": "+9.91000000000000E+037"})
    assert math.isnan(counter.measure_frequency(0.01, INPUT))


@pytest.mark.parametrize(("gate_s", "timeout_s"), [
    (0.01, 0.03), (0.1, 0.21), (1e-6, 0.011), (0.0005, 0.011), (999.0, 1998.01), (1000.0, 2000.0),
])
def test_frequency_timeout_is_twice_the_gate_plus_10_ms_in_whole_ms(gate_s, timeout_s):
    assert frequency_timeout_s(gate_s) == pytest.approx(timeout_s, abs=1e-12)


def test_safe_state_aborts_and_forgets_the_gate():
    counter, fake = make()
    counter.start_totalize(0.1, INPUT)
    fake.clear_traffic()
    counter.safe_state()
    assert fake.commands == ["ABOR"] and not counter.armed


def test_safe_state_never_raises_on_a_broken_connection():
    counter, fake = make()
    fake.broken = True
    counter.safe_state()  # logged, not raised
    assert fake.commands == []


def test_abort_sends_abor():
    counter, fake = make()
    counter.abort()
    assert fake.commands == ["ABOR"]


def test_settings_snapshot_queries_the_input_and_the_gates():
    answers = {"INP1:IMP?": "+1.00000000E+006", "INP1:COUP?": "DC",
               "INP1:RANG?": "+5.00000000E+000", "INP1:SLOP?": "POS",
               "INP1:LEV?": "+1.00000000E-002", "INP1:LEV:AUTO?": "0",
               "SENS:TOT:GATE:TIME?": "+1.00000000E-001",
               "SENS:FREQ:GATE:TIME?": "+1.00000000E-001", "SYST:TIM?": "+1.00000000E+000"}
    counter, fake = make(replies=answers)
    snap = counter.settings()
    assert snap["capability"] == "counter" and snap["model"] == "Keysight 53230A"
    assert snap["instrument"]["level"] == "+1.00000000E-002"
    assert snap["limits"]["gate_min_s"] == 1e-6
    assert fake.commands == list(answers)


@pytest.mark.parametrize(("idn", "spec"), [
    ("Agilent Technologies,53230A,MY50001484,02.05-1519.666-1.19-4.15-127-155-35", K53230A),
    ("Keysight Technologies,53220A,MY63260252,03.02-1924.2831-3.15-4.16-127-159-35", K53220A),
])
def test_the_model_table_picks_the_counter_driver(idn, spec):
    driver = connect(FakeResource({"*IDN?": idn}))
    assert isinstance(driver, Counter) and driver.spec is spec
    assert driver.identity is not None and driver.identity.model == spec.name.split()[-1]


def test_a_channel_the_counter_does_not_have_is_refused():
    with pytest.raises(ParameterError, match="channel 3 does not exist"):
        Counter(FakeResource(), K53230A, channel=3)

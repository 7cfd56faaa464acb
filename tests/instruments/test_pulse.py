"""Pulse generator driver: exact wire traffic for the 33500B and 33600A dialect."""

from __future__ import annotations

import logging
import math
from string import Template

import pytest

from dendrolab.errors import ParameterError
from instruments.base import UserLimits
from instruments.pulse import PULSE_MODELS, PulseGenerator
from tests.instruments import FakeResource

K33522A = PULSE_MODELS[1]
K33622A = PULSE_MODELS[3]
K33521A = PULSE_MODELS[0]
BENCH = UserLimits(voltage_min_v=-1.0, voltage_max_v=2.0)
CLAMPS_1 = ["SOUR1:VOLT:LIM:HIGH 2", "SOUR1:VOLT:LIM:LOW -1", "SOUR1:VOLT:LIM:STAT ON"]


PRESENT_LOW = "-5.000000000000000E-02"  # the 33500's low level after *RST


def make(spec, replies=None, **kwargs):
    """A driver on a fake that answers the present-low query like a freshly reset 33500."""
    answers = {f"SOUR{ch}:VOLT:LOW?": PRESENT_LOW for ch in (1, 2)}
    fake = FakeResource({**answers, **(replies or {})})
    return PulseGenerator(fake, spec, **kwargs), fake


@pytest.mark.parametrize("spec", [K33522A, K33622A], ids=lambda s: s.name)
class TestBothFamilies:
    def test_configure_pulse_sets_high_z_load_then_shape_then_clamps(self, spec):
        gen, fake = make(spec, limits=BENCH)
        gen.configure_pulse(high_v=1.5, width_s=1e-6, period_s=1e-5)
        assert fake.commands == [
            "OUTP1:LOAD INF",
            "SOUR1:FUNC PULS",
            "SOUR1:FUNC:PULS:PER 1e-05",
            "SOUR1:FUNC:PULS:WIDT 1e-06",
            "SOUR1:FUNC:PULS:TRAN:BOTH 8.4e-09",
            "SOUR1:VOLT:LOW?",
            "SOUR1:VOLT:HIGH 1.5",
            "SOUR1:VOLT:LOW 0",
            *CLAMPS_1,
            "SYST:ERR?",
        ]

    def test_pulse_train_and_trigger(self, spec):
        gen, fake = make(spec, limits=BENCH)
        gen.pulse_train(1.0, 100e-9, 1e-6, 10, low_v=-0.5, edge_s=10e-9)
        gen.output_on()
        fake.clear_traffic()
        gen.trigger()
        assert fake.commands == ["*TRG", "*OPC?"]

    def test_pulse_train_traffic(self, spec):
        gen, fake = make(spec, limits=BENCH)
        gen.pulse_train(1.0, 100e-9, 1e-6, 10, low_v=-0.5, edge_s=10e-9)
        gen.output_on()
        gen.output_off()
        assert fake.commands == [
            "OUTP1:LOAD INF",
            "SOUR1:FUNC PULS",
            "SOUR1:FUNC:PULS:PER 1e-06",
            "SOUR1:FUNC:PULS:WIDT 1e-07",
            "SOUR1:FUNC:PULS:TRAN:BOTH 1e-08",
            "SOUR1:VOLT:LOW?",
            "SOUR1:VOLT:HIGH 1",
            "SOUR1:VOLT:LOW -0.5",
            *CLAMPS_1,
            "SOUR1:BURS:MODE TRIG",
            "SOUR1:BURS:NCYC 10",
            "TRIG1:SOUR BUS",
            "SOUR1:BURS:STAT ON",
            "SYST:ERR?",
            "OUTP1 ON",
            "OUTP1 OFF",
        ]

    def test_single_pulse_is_a_burst_of_one(self, spec):
        gen, fake = make(spec)
        gen.single_pulse(1.0, 1e-6)
        assert "SOUR1:BURS:NCYC 1" in fake.commands
        assert "SOUR1:FUNC:PULS:WIDT 1e-06" in fake.commands
        assert not any("LIM" in c for c in fake.commands)  # no bench limits, no clamps

    def test_burst_alone(self, spec):
        gen, fake = make(spec)
        gen.configure_burst(5, trigger_source="EXT")
        assert fake.commands == [
            "SOUR1:BURS:MODE TRIG",
            "SOUR1:BURS:NCYC 5",
            "TRIG1:SOUR EXT",
            "SOUR1:BURS:STAT ON",
            "SYST:ERR?",
        ]

    def test_arb_upload_scales_volts_to_unit_range(self, spec):
        gen, fake = make(spec, limits=BENCH)
        gen.upload_arb("spikes", [0, 0, 1, 0, 0, -0.5, 0, 0], 1e6)
        s = "-0.333333"
        assert fake.commands == [
            "OUTP1:LOAD INF",
            "SOUR1:DATA:VOL:CLE",
            f"SOUR1:DATA:ARB spikes,{s},{s},1,{s},{s},-1,{s},{s}",
            "SOUR1:FUNC:ARB spikes",
            "SOUR1:FUNC ARB",
            "SOUR1:FUNC:ARB:SRAT 1000000",
            "SOUR1:FUNC:ARB:PTP 1.5",
            "SOUR1:VOLT:OFFS 0.25",
            *CLAMPS_1,
            "SYST:ERR?",
        ]

    def test_explicit_voltage_limits(self, spec):
        gen, fake = make(spec, channel=2)
        gen.set_voltage_limits(low_v=-0.5, high_v=1.0)
        assert fake.commands == [
            "SOUR2:VOLT:LIM:HIGH 1",
            "SOUR2:VOLT:LIM:LOW -0.5",
            "SOUR2:VOLT:LIM:STAT ON",
            "SYST:ERR?",
        ]

    def test_safe_state(self, spec):
        gen, fake = make(spec, channel=2)
        gen.safe_state()
        assert fake.commands == ["OUTP2 OFF"]

    def test_safe_state_survives_a_broken_connection(self, spec, caplog):
        gen = PulseGenerator(FakeResource(broken=True), spec)
        with caplog.at_level(logging.WARNING):
            gen.safe_state()
        assert "output off failed" in caplog.text


def test_channel_2_with_a_50_ohm_load_halves_the_level_limit():
    gen, fake = make(K33622A, channel=2, load_ohm=50.0)
    gen.configure_pulse(high_v=5.0, width_s=20e-9, period_s=100e-9)
    assert fake.commands[:2] == ["OUTP2:LOAD 50", "SOUR2:FUNC PULS"]
    fake.clear_traffic()
    with pytest.raises(ParameterError, match=r"high_v=5\.5"):
        gen.configure_pulse(high_v=5.5, width_s=20e-9, period_s=100e-9)
    assert fake.commands == []


def test_single_channel_model_has_no_channel_2():
    with pytest.raises(ParameterError, match="channel 2"):
        make(K33521A, channel=2)


def test_settings_snapshot():
    gen, fake = make(K33522A, {})
    fake.defaults.update(
        {Template(q).substitute(ch="1"): "1" for q in K33522A.dialect.settings.values()}
    )
    snap = gen.settings()
    assert fake.commands[0] == "SOUR1:FUNC?" and len(fake.commands) == 13
    assert snap["load_ohm"] is None and snap["instrument"]["load"] == "1"


@pytest.mark.parametrize("spec", [K33522A, K33622A], ids=lambda s: s.name)
@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda g: g.configure_pulse(1.0, 10e-9, 1e-6), "width_s"),
        (lambda g: g.configure_pulse(1.0, 2e6, 3e6), "width_s"),
        (lambda g: g.configure_pulse(1.0, 1e-6, 1.01e-6), "period_s"),
        (lambda g: g.configure_pulse(1.0, 100e-9, 1e-6, edge_s=1e-9), "edge_s"),
        (lambda g: g.configure_pulse(1.0, 100e-9, 1e-6, edge_s=80e-9), "too slow"),
        (lambda g: g.configure_pulse(12.0, 1e-6, 1e-5), "model limit"),
        (lambda g: g.configure_pulse(2.5, 1e-6, 1e-5), "bench limit"),
        (lambda g: g.configure_pulse(1.0, 1e-6, 1e-5, low_v=-1.5), "bench limit"),
        (lambda g: g.configure_pulse(0.0, 1e-6, 1e-5, low_v=0.5), "must exceed"),
        (lambda g: g.configure_pulse(math.nan, 1e-6, 1e-5), "high_v"),
        (lambda g: g.pulse_train(1.0, 1e-6, 1e-5, 0), "cycles"),
        (lambda g: g.pulse_train(1.0, 1e-6, 1e-5, 2.5), "cycles"),
        (lambda g: g.pulse_train(3.0, 1e-6, 1e-5, 10), "bench limit"),
        (lambda g: g.configure_burst(10, trigger_source="MAGIC"), "trigger_source"),
        (lambda g: g.upload_arb("spikes", [0.0] * 7 + [1.0], 1e6) or None, None),
        (lambda g: g.upload_arb("spikes", [0.0, 1.0] * 3, 1e6), "6 arbitrary points"),
        (lambda g: g.upload_arb("spikes", [0.0, 3.0] * 4, 1e6), "bench limit"),
        (lambda g: g.upload_arb("spikes", [0.0] * 8, 1e6), "must exceed"),
        (lambda g: g.upload_arb("spikes", [0.0, 1.0] * 4, 1e9), "sample_rate_sa_s"),
        (lambda g: g.upload_arb("1bad", [0.0, 1.0] * 4, 1e6), "name"),
        (lambda g: g.upload_arb("waytoolongname", [0.0, 1.0] * 4, 1e6), "name"),
        (lambda g: g.upload_arb("nan", [0.0, math.nan] * 4, 1e6), "NaN"),
    ],
)
def test_limits_are_checked_before_any_io(spec, call, match):
    gen, fake = make(spec, limits=BENCH)
    if match is None:  # the smallest legal arbitrary waveform goes through
        call(gen)
        assert fake.commands
        return
    with pytest.raises(ParameterError, match=match):
        call(gen)
    assert fake.commands == []


def test_arb_point_limit_differs_by_family():
    gen5, fake5 = make(K33522A)
    with pytest.raises(ParameterError, match=r"8\.\.1000000"):
        gen5.upload_arb("big", [0.0, 1.0] * 600_000, 1e6)
    assert fake5.commands == []


def test_bad_load():
    with pytest.raises(ParameterError, match="load_ohm"):
        make(K33522A, load_ohm=0.0)


def test_levels_are_ordered_from_what_the_driver_knows():
    """The present low is asked once; later the driver's own last levels decide: low first when
    the new high would not clear the present low, else high first."""
    gen, fake = make(K33522A, {"SOUR1:VOLT:LOW?": "+3.000000000000000E+00"})
    gen.configure_pulse(high_v=1.0, width_s=1e-6, period_s=1e-5)          # below the low of 3 V
    gen.configure_pulse(high_v=2.0, width_s=1e-6, period_s=1e-5, low_v=1.5)  # clears 0 V
    gen.configure_pulse(high_v=1.0, width_s=1e-6, period_s=1e-5, low_v=-1.0)  # 1 V < 1.5 V
    levels = [c for c in fake.commands if "VOLT:HIGH" in c or "VOLT:LOW" in c]
    assert levels == [
        "SOUR1:VOLT:LOW?", "SOUR1:VOLT:LOW 0", "SOUR1:VOLT:HIGH 1",
        "SOUR1:VOLT:HIGH 2", "SOUR1:VOLT:LOW 1.5",
        "SOUR1:VOLT:LOW -1", "SOUR1:VOLT:HIGH 1",
    ]


def test_an_arb_upload_sets_the_known_low_level():
    gen, fake = make(K33522A)
    gen.upload_arb("spikes", [0.5, 2.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5], 1e6)
    fake.clear_traffic()
    gen.configure_pulse(high_v=0.2, width_s=1e-6, period_s=1e-5, low_v=-0.2)  # 0.2 < 0.5
    levels = [c for c in fake.commands if "VOLT:HIGH" in c or "VOLT:LOW" in c]
    assert levels == ["SOUR1:VOLT:LOW -0.2", "SOUR1:VOLT:HIGH 0.2"]

"""Pulse/arbitrary waveform generators: one ``PulseGenerator`` over per-model dialect tables.

33500B and 33600A share one SCPI dialect; an 81160A would be another table row, not a branch.
Every limit is checked before anything is sent; the driver must not know about simulation.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dendrolab.errors import ParameterError
from instruments.base import (
    Instrument,
    ModelSpec,
    Query,
    ScpiErrorQueue,
    Step,
    UserLimits,
    check_range,
    fmt,
    fmt_list,
    parse_floats,
)

Q = Query


@dataclass(frozen=True, kw_only=True)
class PulseDialect:
    """Command templates of one generator family (``$ch`` is the channel suffix)."""

    load_inf: tuple[Step, ...]
    load: tuple[Step, ...]  # $load_ohm
    voltage_limits: tuple[Step, ...]  # $high_v $low_v
    pulse: tuple[Step, ...]  # $period_s $width_s $edge_s (the shape; levels below)
    # Levels one at a time: the driver orders them so that high > low holds after each one
    # (lowering both below the present low, high first, would be a settings conflict).
    level_high: tuple[Step, ...]  # $high_v
    level_low: tuple[Step, ...]  # $low_v
    level_low_query: tuple[Step, ...]  # the present low level, when the driver does not know it
    burst: tuple[Step, ...]  # $cycles $source
    trigger: tuple[Step, ...]
    arb: tuple[Step, ...]  # $name $samples $rate $ptp_v $offset_v
    output_on: tuple[Step, ...]
    output_off: tuple[Step, ...]
    trigger_sources: tuple[str, ...]
    arb_name: str  # regex a waveform name must match
    settings: Mapping[str, str]


@dataclass(frozen=True)
class PulseLimits:
    """What the model can do. Values not in the research notes are marked in the tables."""

    width_min_s: float
    width_max_s: float
    edge_min_s: float
    edge_max_s: float
    period_max_s: float
    open_circuit_v_max: float  # |level| limit into a high-impedance load
    source_impedance_ohm: float
    amplitude_min_vpp: float
    arb_points_min: int
    arb_points_max: int
    sample_rate_min_sa_s: float
    sample_rate_max_sa_s: float
    burst_cycles_max: int
    edge_to_width_max: float = 0.625  # edge time <= 0.625 x width


@dataclass(frozen=True, kw_only=True)
class PulseSpec(ModelSpec):
    dialect: PulseDialect
    limits: PulseLimits


class PulseGenerator(Instrument):
    """One generator channel: pulses, bursts, arbitrary spike trains, output clamps."""

    capability = "pulse"
    spec: PulseSpec

    def __init__(
        self,
        resource: Any,
        spec: PulseSpec,
        *,
        channel: int = 1,
        limits: UserLimits | None = None,
        auto_check_errors: bool = True,
        load_ohm: float = math.inf,
    ) -> None:
        super().__init__(
            resource, spec, channel=channel, limits=limits, auto_check_errors=auto_check_errors
        )
        if not (math.isinf(load_ohm) and load_ohm > 0):
            check_range("load_ohm", load_ohm, 1.0, 10e3, self._where())
        self.load_ohm = float(load_ohm)
        self._burst_s = 0.0  # duration of one triggered burst, for the trigger timeout
        self._low_v: float | None = None  # the low level this driver last programmed
        self._period_s = 0.0
        self._arb_s = 0.0

    # --- checks ----------------------------------------------------------------------------

    @property
    def _dialect(self) -> PulseDialect:
        return self.spec.dialect

    def _v_max(self) -> float:
        """Largest |level| into the configured load (a divider with the 50 ohm source)."""
        lim = self.spec.limits
        if math.isinf(self.load_ohm):
            return lim.open_circuit_v_max
        return lim.open_circuit_v_max * self.load_ohm / (self.load_ohm + lim.source_impedance_ohm)

    def _check_level(self, name: str, value_v: float) -> None:
        m = self._v_max()
        check_range(name, value_v, -m, m, f"{self._where()} (model limit into the load)")
        check_range(
            name,
            value_v,
            self.limits.voltage_min_v,
            self.limits.voltage_max_v,
            f"{self._where()} (bench limit)",
        )

    def _check_levels(self, high_v: float, low_v: float) -> None:
        self._check_level("high_v", high_v)
        self._check_level("low_v", low_v)
        if high_v - low_v < self.spec.limits.amplitude_min_vpp:
            raise ParameterError(
                f"{self._where()}: high_v={high_v:g} must exceed low_v={low_v:g} by at least "
                f"{self.spec.limits.amplitude_min_vpp:g} V"
            )

    def _check_pulse(self, width_s: float, period_s: float, edge_s: float) -> None:
        lim, where = self.spec.limits, self._where()
        check_range("width_s", width_s, lim.width_min_s, lim.width_max_s, where)
        check_range("edge_s", edge_s, lim.edge_min_s, lim.edge_max_s, where)
        if edge_s > lim.edge_to_width_max * width_s:
            raise ParameterError(
                f"{where}: edge_s={edge_s:g} is too slow for width_s={width_s:g}; "
                f"edges may be at most {lim.edge_to_width_max:g} x width"
            )
        # The off time must hold a minimum-width gap and the edges (conservative reading of
        # "width < period - minimum width", 33500 operating guide p. 69).
        check_range(
            "period_s", period_s, width_s + edge_s + lim.width_min_s, lim.period_max_s, where
        )

    def _check_cycles(self, cycles: int) -> None:
        if int(cycles) != cycles or not 1 <= cycles <= self.spec.limits.burst_cycles_max:
            raise ParameterError(
                f"{self._where()}: cycles={cycles} must be an integer in "
                f"[1, {self.spec.limits.burst_cycles_max}]"
            )

    def _edge(self, edge_s: float | None) -> float:
        return self.spec.limits.edge_min_s if edge_s is None else edge_s

    # --- output preparation ----------------------------------------------------------------

    def _prepare_load(self) -> None:
        if math.isinf(self.load_ohm):
            self._run(self._dialect.load_inf)
        else:
            self._run(self._dialect.load, load_ohm=fmt(self.load_ohm))

    def _clamp_levels(self) -> tuple[float, float] | None:
        """Instrument-side clamps from the bench limits (None when the bench sets none)."""
        lo, hi = self.limits.voltage_min_v, self.limits.voltage_max_v
        if math.isinf(lo) and math.isinf(hi):
            return None
        m = self._v_max()
        return max(lo, -m), min(hi, m)

    def _apply_clamps(self) -> None:
        clamps = self._clamp_levels()
        if clamps is not None:
            self._run(self._dialect.voltage_limits, low_v=fmt(clamps[0]), high_v=fmt(clamps[1]))

    def set_voltage_limits(self, low_v: float, high_v: float) -> None:
        """Program the instrument's own output clamps (they protect the device if we err)."""
        self._check_levels(high_v, low_v)
        self._run(self._dialect.voltage_limits, low_v=fmt(low_v), high_v=fmt(high_v))
        self._after_config()

    # --- waveforms -------------------------------------------------------------------------

    def configure_pulse(
        self,
        high_v: float,
        width_s: float,
        period_s: float,
        *,
        low_v: float = 0.0,
        edge_s: float | None = None,
    ) -> None:
        """Pulse function: load first (high-Z by default), then shape, levels, then clamps."""
        edge = self._edge(edge_s)
        self._check_levels(high_v, low_v)
        self._check_pulse(width_s, period_s, edge)
        self._send_pulse(high_v, width_s, period_s, low_v, edge)
        self._after_config()

    def _send_pulse(
        self, high_v: float, width_s: float, period_s: float, low_v: float, edge_s: float
    ) -> None:
        self._prepare_load()
        self._run(self._dialect.pulse, period_s=fmt(period_s), width_s=fmt(width_s),
                  edge_s=fmt(edge_s))
        self._send_levels(high_v, low_v)
        self._apply_clamps()
        self._period_s = period_s

    def _send_levels(self, high_v: float, low_v: float) -> None:
        """High then low, unless the new high would not clear the present low: then low first.
        Either way every intermediate (high, low) pair is valid (both are checked already)."""
        d = self._dialect
        present_low = self._low_v
        if present_low is None:  # not set by this driver yet: ask the instrument once
            present_low = parse_floats(self._run(d.level_low_query)[0])[0]
        steps = ((d.level_high, d.level_low)
                 if high_v - present_low >= self.spec.limits.amplitude_min_vpp
                 else (d.level_low, d.level_high))
        self._low_v = None  # unknown until both are sent
        for step in steps:
            self._run(step, high_v=fmt(high_v), low_v=fmt(low_v))
        self._low_v = low_v

    def configure_burst(self, cycles: int, *, trigger_source: str = "BUS") -> None:
        """Triggered burst of ``cycles`` periods of the present waveform."""
        self._check_cycles(cycles)
        self._check_source(trigger_source)
        self._send_burst(int(cycles), trigger_source)
        self._after_config()

    def _check_source(self, source: str) -> None:
        if source not in self._dialect.trigger_sources:
            raise ParameterError(
                f"{self._where()}: trigger_source {source!r} not in {self._dialect.trigger_sources}"
            )

    def _send_burst(self, cycles: int, source: str) -> None:
        self._run(self._dialect.burst, cycles=str(cycles), source=source)
        self._burst_s = cycles * (self._period_s or self._arb_s)

    def pulse_train(
        self,
        high_v: float,
        width_s: float,
        period_s: float,
        count: int,
        *,
        low_v: float = 0.0,
        edge_s: float | None = None,
        trigger_source: str = "BUS",
    ) -> None:
        """Configure ``count`` pulses, played on each trigger (see ``trigger``)."""
        edge = self._edge(edge_s)
        self._check_levels(high_v, low_v)
        self._check_pulse(width_s, period_s, edge)
        self._check_cycles(count)
        self._check_source(trigger_source)
        self._send_pulse(high_v, width_s, period_s, low_v, edge)
        self._send_burst(int(count), trigger_source)
        self._after_config()

    def single_pulse(
        self, high_v: float, width_s: float, *, low_v: float = 0.0, edge_s: float | None = None
    ) -> None:
        """One pulse per trigger (a burst of one; the period only has to contain the pulse)."""
        edge = self._edge(edge_s)
        period_s = 2.0 * (width_s + edge) + self.spec.limits.width_min_s
        self.pulse_train(high_v, width_s, period_s, 1, low_v=low_v, edge_s=edge)

    def upload_arb(self, name: str, voltages_v: Sequence[float], sample_rate_sa_s: float) -> None:
        """Upload a spike train in volts and select it; the driver scales to -1..1 (PTP, offset).

        Sent as ASCII floats to volatile memory (cleared first); binary blocks are not used yet.
        """
        lim, where = self.spec.limits, self._where()
        if not re.fullmatch(self._dialect.arb_name, name):
            raise ParameterError(
                f"{where}: arbitrary waveform name {name!r} must match {self._dialect.arb_name!r}"
            )
        v = np.asarray(voltages_v, dtype=float)
        if v.ndim != 1 or not lim.arb_points_min <= v.size <= lim.arb_points_max:
            raise ParameterError(
                f"{where}: {v.size} arbitrary points; the model takes "
                f"{lim.arb_points_min}..{lim.arb_points_max} in one dimension"
            )
        if not np.all(np.isfinite(v)):
            raise ParameterError(f"{where}: arbitrary waveform contains NaN or infinity")
        check_range(
            "sample_rate_sa_s",
            sample_rate_sa_s,
            lim.sample_rate_min_sa_s,
            lim.sample_rate_max_sa_s,
            where,
        )
        high, low = float(v.max()), float(v.min())
        self._check_levels(high, low)
        ptp = high - low
        offset = (high + low) / 2.0
        samples = np.clip((v - offset) / (ptp / 2.0), -1.0, 1.0)

        self._prepare_load()
        self._low_v = None  # unknown until the upload is through
        with self._timeout_for(v.size * 10e-6):  # ASCII upload: generous 10 us per point
            self._run(
                self._dialect.arb,
                name=name,
                samples=fmt_list(samples, ".6g"),
                rate=fmt(sample_rate_sa_s),
                ptp_v=fmt(ptp),
                offset_v=fmt(offset),
            )
        self._low_v = offset - ptp / 2.0  # PTP and offset set the levels the arb spans
        self._apply_clamps()
        self._period_s = 0.0
        self._arb_s = v.size / sample_rate_sa_s
        self._after_config()

    # --- run -------------------------------------------------------------------------------

    def output_on(self) -> None:
        self._run(self._dialect.output_on)

    def output_off(self) -> None:
        self._run(self._dialect.output_off)

    def trigger(self) -> None:
        """Software trigger; returns when the instrument reports the operation complete."""
        with self._timeout_for(self._burst_s):
            self._run(self._dialect.trigger)

    def safe_state(self) -> None:
        """Output off (relay open); log and carry on if the connection is broken."""
        self._best_effort("output off", self._run, self._dialect.output_off)

    def settings(self) -> dict[str, Any]:
        snapshot = super().settings()
        snapshot.update(
            load_ohm=None if math.isinf(self.load_ohm) else self.load_ohm,
            instrument=self._query_settings(self._dialect.settings),
        )
        return snapshot


# =============================================================================================
# Command tables.

KEYSIGHT_33500_DIALECT = PulseDialect(
    load_inf=("OUTP$ch:LOAD INF",),
    load=("OUTP$ch:LOAD $load_ohm",),
    voltage_limits=(
        "SOUR$ch:VOLT:LIM:HIGH $high_v",
        "SOUR$ch:VOLT:LIM:LOW $low_v",
        "SOUR$ch:VOLT:LIM:STAT ON",
    ),
    pulse=(
        "SOUR$ch:FUNC PULS",
        "SOUR$ch:FUNC:PULS:PER $period_s",
        "SOUR$ch:FUNC:PULS:WIDT $width_s",
        "SOUR$ch:FUNC:PULS:TRAN:BOTH $edge_s",
    ),
    level_high=("SOUR$ch:VOLT:HIGH $high_v",),
    level_low=("SOUR$ch:VOLT:LOW $low_v",),
    level_low_query=(Q("SOUR$ch:VOLT:LOW?"),),
    burst=(
        "SOUR$ch:BURS:MODE TRIG",
        "SOUR$ch:BURS:NCYC $cycles",
        "TRIG$ch:SOUR $source",
        "SOUR$ch:BURS:STAT ON",
    ),
    trigger=("*TRG", Q("*OPC?")),
    arb=(
        "SOUR$ch:DATA:VOL:CLE",
        "SOUR$ch:DATA:ARB $name,$samples",
        "SOUR$ch:FUNC:ARB $name",
        "SOUR$ch:FUNC ARB",
        "SOUR$ch:FUNC:ARB:SRAT $rate",
        "SOUR$ch:FUNC:ARB:PTP $ptp_v",
        "SOUR$ch:VOLT:OFFS $offset_v",
    ),
    output_on=("OUTP$ch ON",),
    output_off=("OUTP$ch OFF",),
    trigger_sources=("BUS", "EXT", "IMM", "TIM"),
    arb_name=r"[A-Za-z][A-Za-z0-9_]{0,11}",  # 12 characters (operating guide; not in the notes)
    settings={
        "function": "SOUR$ch:FUNC?",
        "output": "OUTP$ch?",
        "load": "OUTP$ch:LOAD?",
        "voltage_high": "SOUR$ch:VOLT:HIGH?",
        "voltage_low": "SOUR$ch:VOLT:LOW?",
        "pulse_width": "SOUR$ch:FUNC:PULS:WIDT?",
        "pulse_period": "SOUR$ch:FUNC:PULS:PER?",
        "limit_state": "SOUR$ch:VOLT:LIM:STAT?",
        "limit_high": "SOUR$ch:VOLT:LIM:HIGH?",
        "limit_low": "SOUR$ch:VOLT:LIM:LOW?",
        "burst_state": "SOUR$ch:BURS:STAT?",
        "burst_cycles": "SOUR$ch:BURS:NCYC?",
        "trigger_source": "TRIG$ch:SOUR?",
    },
)


def _keysight_33x00(
    name: str, models: str, channels: Mapping[int, str], limits: PulseLimits
) -> PulseSpec:
    return PulseSpec(
        name=name,
        idn_model=rf"(?P<model>{models})",
        channels=channels,
        errors=ScpiErrorQueue("SYST:ERR?"),
        dialect=KEYSIGHT_33500_DIALECT,
        limits=limits,
    )


_COMMON_33X00 = {
    "width_max_s": 1e6,  # notes §1.4: 16 ns ... 1 Ms
    "edge_min_s": 8.4e-9,  # notes §1.4 (33500 minimum edge)
    "edge_max_s": 1e-6,  # not in the notes: 33500 maximum edge time
    "period_max_s": 1e6,  # not in the notes: 1 uHz lowest pulse frequency
    "open_circuit_v_max": 10.0,  # not in the notes: +-10 V into high-Z, +-5 V into 50 ohm
    "source_impedance_ohm": 50.0,
    "amplitude_min_vpp": 2e-3,  # not in the notes: 1 mVpp into 50 ohm = 2 mVpp into high-Z
    "arb_points_min": 8,  # notes §1.4
    "sample_rate_min_sa_s": 1e-6,  # not in the notes
    "burst_cycles_max": 100_000_000,  # not in the notes
}

LIMITS_33500 = PulseLimits(
    width_min_s=16e-9,  # notes §1.4
    arb_points_max=1_000_000,  # not in the notes: standard 1 MSa memory
    sample_rate_max_sa_s=160e6,  # not in the notes: lowest maximum in the family (20 MHz models)
    **_COMMON_33X00,
)
LIMITS_33600 = PulseLimits(
    # The notes say the 33600A is faster but give no number; we keep the 33500's documented
    # 16 ns minimum width and 8.4 ns minimum edge, which the 33600A certainly reaches.
    width_min_s=16e-9,
    arb_points_max=4_000_000,  # not in the notes: standard 4 MSa memory
    sample_rate_max_sa_s=660e6,  # not in the notes: lowest maximum in the family (80 MHz models)
    **_COMMON_33X00,
)

_CH1 = {1: "1"}
_CH12 = {1: "1", 2: "2"}
PULSE_MODELS: tuple[PulseSpec, ...] = (
    _keysight_33x00("Keysight 33500 (1 channel)", "335(?:09|11|19|21)[AB]", _CH1, LIMITS_33500),
    _keysight_33x00("Keysight 33500 (2 channels)", "335(?:10|12|20|22)[AB]", _CH12, LIMITS_33500),
    _keysight_33x00("Keysight 33600A (1 channel)", "336[12]1A", _CH1, LIMITS_33600),
    _keysight_33x00("Keysight 33600A (2 channels)", "336[12]2A", _CH12, LIMITS_33600),
)

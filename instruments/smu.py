"""Source-measure units: one ``Smu`` class over per-model command tables (2450, 2600B, B2900).

Model differences live in the tables at the bottom (templates, reply layouts, limits, *IDN?
patterns); ``Smu`` itself must not branch on the model and must not know about simulation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from string import Template
from typing import Any, NamedTuple

import numpy as np

from dendrolab.errors import ComplianceError, InstrumentError, ParameterError
from instruments.base import (
    CapabilityError,
    Instrument,
    ModelSpec,
    Query,
    Step,
    TspErrorQueue,
    UserLimits,
    check_range,
    fmt,
    fmt_list,
    parse_bool,
    parse_floats,
    render,
)

Q = Query


@dataclass(frozen=True)
class SourceMode:
    """Tokens for one source function (``v``: source V/measure I, ``i``: the reverse)."""

    tokens: Mapping[str, str]
    iv_columns: tuple[str, ...]  # meaning of each value in the measure_iv reply: i, v, t


@dataclass(frozen=True, kw_only=True)
class SmuDialect:
    """Command templates of one SMU family (``$name`` fields; a ``Query`` reads a reply).

    Fields every template may use: ``$ch`` (channel token) and the mode tokens. Sweeps get
    ``$levels $n $delay_s $interval_s $start_v $stop_v``; pulsed sweeps add ``$base_v $width_s
    $period_s $acq_delay_s $t1 $t2 $timer_count``. ``None`` means the family cannot do it.
    """

    modes: Mapping[str, SourceMode]
    configure_source: tuple[Step, ...]  # $limit
    source_range_auto: tuple[Step, ...]
    source_range: tuple[Step, ...]  # $range
    set_level: tuple[Step, ...]  # $level
    output_on: tuple[Step, ...]
    output_off: tuple[Step, ...]
    measure_function: tuple[Step, ...]
    measure_range_auto: tuple[Step, ...]
    measure_range: tuple[Step, ...]  # $range
    measure_nplc: tuple[Step, ...]  # $nplc
    measure_aperture: tuple[Step, ...] | None  # $aperture_s
    measure_iv: tuple[Step, ...]
    trip: tuple[Step, ...]
    level_query: tuple[Step, ...]
    list_sweep: tuple[Step, ...]
    linear_sweep: tuple[Step, ...]
    pulsed_list_sweep: tuple[Step, ...] | None
    sweep_columns: tuple[str, ...]  # meaning of the per-point values of the fetched sweep data
    list_chunk: int = 0  # >0: send at most this many list values per command ...
    list_append: str = ""  # ... and the rest with this template ($chunk)
    # Joins several commands into one program message (SCPI ";", TSP a space between Lua
    # statements), so ``measure_at`` sets the level and reads in one round trip.
    compound: str = ";"
    settings: Mapping[str, str]
    # One spot current reading of several channels in one query ($channels: their tokens,
    # comma-separated); None where the model has no channel list (read channel by channel).
    measure_currents: tuple[Step, ...] | None = None


@dataclass(frozen=True)
class SmuLimits:
    """What the model can do. Values not in the research notes are marked in the tables."""

    voltage_max_v: float
    current_max_a: float
    nplc_min: float
    nplc_max: float
    aperture_min_s: float = math.nan  # nan: no aperture setting (NPLC only)
    aperture_max_s: float = math.nan
    list_points_max: int = 100
    sweep_points_max: int = 100
    pulse_width_min_s: float = math.nan
    pulse_width_max_s: float = math.nan
    point_overhead_s: float = 1e-3  # per-point time beyond delay + integration (timing, timeouts)


@dataclass(frozen=True, kw_only=True)
class SmuSpec(ModelSpec):
    dialect: SmuDialect
    limits: SmuLimits


class Reading(NamedTuple):
    """One spot reading (a named tuple: it is made once per point, so it must be cheap)."""

    current_a: float
    voltage_v: float


@dataclass(frozen=True)
class SweepResult:
    """One hardware sweep, fetched in one transfer: arrays of equal length, one per point."""

    voltage_v: np.ndarray
    current_a: np.ndarray
    time_s: np.ndarray


_COLUMN_NAMES = {"v": "voltage_v", "i": "current_a", "t": "time_s"}


class Smu(Instrument):
    """One SMU channel: source V (or I) with compliance, measure, sweep, pulse, safe state."""

    capability = "smu"
    spec: SmuSpec
    ramp_steps = 5
    ramp_step_s = 0.01

    def __init__(
        self,
        resource: Any,
        spec: SmuSpec,
        *,
        channel: int = 1,
        limits: UserLimits | None = None,
        auto_check_errors: bool = True,
        line_frequency_hz: float = 50.0,
    ) -> None:
        super().__init__(
            resource, spec, channel=channel, limits=limits, auto_check_errors=auto_check_errors
        )
        if line_frequency_hz not in (50.0, 60.0):
            raise ParameterError(f"line_frequency_hz must be 50 or 60, got {line_frequency_hz}")
        self.line_frequency_hz = float(line_frequency_hz)
        self._mode: str | None = None  # "v" or "i" once a source is configured
        self._limit: float | None = None
        self._integration_s = 1.0 / self.line_frequency_hz  # 1 PLC until configured
        self._at: tuple[Any, ...] | None = None  # measure_at's message, see _measure_at_message

    # --- helpers ---------------------------------------------------------------------------

    @property
    def _dialect(self) -> SmuDialect:
        return self.spec.dialect

    def _tokens(self) -> dict[str, str]:
        # Cached per (spec, channel, mode): the templates' fields depend on nothing else. The
        # returned dict is shared; callers merge it into a new dict and never mutate it.
        key = (id(self.spec), self.channel, self._mode)
        cache = self.__dict__.setdefault("_token_cache", {})
        hit = cache.get(key)
        if hit is None or hit[0] is not self.spec:
            tokens = {**super()._tokens(), **self._dialect.modes[self._mode or "v"].tokens}
            hit = cache[key] = (self.spec, tokens)
        return hit[1]

    def _check_voltage(self, name: str, value_v: float) -> None:
        m = self.spec.limits.voltage_max_v
        lim = self.limits
        if (
            math.isfinite(value_v)
            and -m <= value_v <= m
            and lim.voltage_min_v <= value_v <= lim.voltage_max_v
        ):
            return  # in range: the checks below would pass
        where = self._where()
        check_range(name, value_v, -m, m, f"{where} (model limit)")
        check_range(
            name,
            value_v,
            self.limits.voltage_min_v,
            self.limits.voltage_max_v,
            f"{where} (bench limit)",
        )

    def _check_current(self, name: str, value_a: float) -> None:
        m = min(self.spec.limits.current_max_a, self.limits.current_max_a)
        check_range(name, value_a, -m, m, f"{self._where()} (model/bench limit)")

    def _require_voltage_source(self, what: str) -> None:
        if self._mode != "v":
            raise ParameterError(
                f"{self._where()}: {what} needs a voltage source with compliance; "
                "call configure_source_voltage(limit_a=...) first"
            )

    # --- source ----------------------------------------------------------------------------

    def configure_source_voltage(self, limit_a: float, *, range_v: float | None = None) -> None:
        """Source voltage with a current compliance; ``range_v=None`` means autorange."""
        check_range(
            "limit_a",
            limit_a,
            1e-15,
            min(self.spec.limits.current_max_a, self.limits.current_max_a),
            self._where(),
        )
        if range_v is not None:
            check_range("range_v", range_v, 1e-15, self.spec.limits.voltage_max_v, self._where())
        self._configure_source("v", limit_a, range_v)

    def configure_source_current(self, limit_v: float, *, range_a: float | None = None) -> None:
        """Source current with a (symmetric) voltage limit; ``range_a=None`` means autorange."""
        bench_v = min(self.limits.voltage_max_v, -self.limits.voltage_min_v)
        check_range(
            "limit_v", limit_v, 1e-15, min(self.spec.limits.voltage_max_v, bench_v), self._where()
        )
        if range_a is not None:
            check_range("range_a", range_a, 1e-15, self.spec.limits.current_max_a, self._where())
        self._configure_source("i", limit_v, range_a)

    def _configure_source(self, mode: str, limit: float, range_: float | None) -> None:
        self._mode = mode
        self._limit = limit
        d = self._dialect
        self._run(d.configure_source, limit=fmt(limit))
        if range_ is None:
            self._run(d.source_range_auto)
        else:
            self._run(d.source_range, range=fmt(range_))
        self._after_config()

    def set_voltage(self, level_v: float) -> None:
        """Set the source level (checked against model and bench limits before sending)."""
        self._check_voltage("level_v", level_v)
        self._require_voltage_source("set_voltage")
        self._run(self._dialect.set_level, level=fmt(level_v))

    def set_current(self, level_a: float) -> None:
        self._check_current("level_a", level_a)
        if self._mode != "i":
            raise ParameterError(
                f"{self._where()}: set_current needs configure_source_current(limit_v=...) first"
            )
        self._run(self._dialect.set_level, level=fmt(level_a))

    def output_on(self) -> None:
        if self._mode is None:
            raise ParameterError(f"{self._where()}: configure a source (and its limit) first")
        self._run(self._dialect.output_on)

    def output_off(self) -> None:
        self._run(self._dialect.output_off)

    # --- measure ---------------------------------------------------------------------------

    def configure_measure(
        self,
        *,
        nplc: float | None = None,
        aperture_s: float | None = None,
        range_a: float | None = None,
        range_v: float | None = None,
    ) -> None:
        """Measure the non-sourced quantity: integration (NPLC or aperture) and range.

        Give ``range_a`` when sourcing voltage, ``range_v`` when sourcing current; ``None`` is
        autorange. Models without an aperture setting get the equivalent NPLC.
        """
        lim = self.spec.limits
        where = self._where()
        if nplc is not None and aperture_s is not None:
            raise ParameterError(f"{where}: give nplc or aperture_s, not both")
        measuring_current = (self._mode or "v") == "v"
        if (range_v if measuring_current else range_a) is not None:
            raise ParameterError(
                f"{where}: the measured quantity is {'current' if measuring_current else 'voltage'}"
                f"; give {'range_a' if measuring_current else 'range_v'} instead"
            )
        range_ = range_a if measuring_current else range_v
        if range_ is not None:
            top = lim.current_max_a if measuring_current else lim.voltage_max_v
            check_range("range", range_, 1e-15, top, where)
        use_aperture = aperture_s is not None and self._dialect.measure_aperture is not None
        if use_aperture:
            assert aperture_s is not None
            check_range("aperture_s", aperture_s, lim.aperture_min_s, lim.aperture_max_s, where)
            integration_s = aperture_s
        else:
            if aperture_s is not None:
                nplc = aperture_s * self.line_frequency_hz
            nplc = 1.0 if nplc is None else nplc
            check_range("nplc", nplc, lim.nplc_min, lim.nplc_max, where)
            integration_s = nplc / self.line_frequency_hz

        d = self._dialect
        self._run(d.measure_function)
        if range_ is None:
            self._run(d.measure_range_auto)
        else:
            self._run(d.measure_range, range=fmt(range_))
        if use_aperture:
            assert d.measure_aperture is not None
            self._run(d.measure_aperture, aperture_s=fmt(integration_s))
        else:
            self._run(d.measure_nplc, nplc=fmt(nplc or 1.0))
        self._integration_s = integration_s
        self._after_config()

    def measure_iv(self) -> Reading:
        """One spot measurement of current and voltage."""
        d = self._dialect
        return self._reading(self._run(d.measure_iv)[-1], d.modes[self._mode or "v"].iv_columns)

    def measure_at(self, level: float) -> Reading:
        """Set the source level (checked like ``set_voltage``/``set_current``) and take one
        spot reading, sent as one compound message: one round trip per point instead of two.
        """
        if self._mode == "i":
            self._check_current("level_a", level)
        else:
            self._check_voltage("level_v", level)
            self._require_voltage_source("measure_at")
        at = self._at
        if at is None or at[0] != self._mode or at[1] is not self.spec:
            at = self._at = self._measure_at_message()
        return self._reading(self._query(at[2] + fmt(level) + at[3]), at[4])

    def _measure_at_message(self) -> tuple[Any, ...]:
        """``set_level`` + ``measure_iv`` joined into one query and split around ``$level``:
        ``(mode, spec, head, tail, reply columns)``."""
        d = self._dialect
        steps = (*d.set_level, *d.measure_iv)
        if sum(isinstance(s, Query) for s in steps) != 1 or not isinstance(steps[-1], Query):
            raise CapabilityError(f"{self._where()}: no one-message set-and-read")
        text = d.compound.join(render(s, {**self._tokens(), "level": "\0"}) for s in steps)
        head, tail = text.split("\0")
        return (self._mode, self.spec, head, tail, d.modes[self._mode or "v"].iv_columns)

    def _reading(self, reply: str, columns: tuple[str, ...]) -> Reading:
        values = parse_floats(reply)
        if len(values) != len(columns):
            raise InstrumentError(
                f"{self._where()}: expected {len(columns)} values ({','.join(columns)}), "
                f"got {values}"
            )
        return Reading(values[columns.index("i")], values[columns.index("v")])

    def measure_current(self) -> float:
        return self.measure_iv().current_a

    def measure_currents(self, channels: Sequence[int]) -> list[float]:
        """Spot current readings of several channels of this instrument in one query (B2900:
        ``:MEAS:CURR? (@1,2)``); a model without channel lists raises CapabilityError. Each
        channel keeps the source and measure settings its own driver gave it."""
        steps = self._dialect.measure_currents
        if steps is None:
            raise CapabilityError(f"{self._where()}: {self.spec.name} reads one channel at a "
                                  "time; use measure_current on each channel's driver")
        unknown = [c for c in channels if c not in self.spec.channels]
        if unknown or not channels:
            raise ParameterError(f"{self._where()}: channels {list(channels)} must be some of "
                                 f"{sorted(self.spec.channels)}")
        tokens = ",".join(self.spec.channels[c] for c in channels)
        values = parse_floats(self._run(steps, channels=tokens)[-1])
        if len(values) != len(channels):
            raise InstrumentError(f"{self._where()}: expected {len(channels)} currents, got "
                                  f"{values}")
        return values

    def in_compliance(self) -> bool:
        """True if the source is clamped at its limit (the instrument's trip flag)."""
        return parse_bool(self._run(self._dialect.trip)[0])

    def check_compliance(self) -> None:
        """Raise ComplianceError if the source sits at its limit."""
        if self.in_compliance():
            raise ComplianceError(f"{self._where()}: source is in compliance (limit {self._limit})")

    # --- sweeps ----------------------------------------------------------------------------

    def list_sweep(self, levels_v: Sequence[float], *, delay_s: float = 0.0) -> SweepResult:
        """Hardware list sweep of voltages; one measurement per point; data fetched once."""
        levels = self._check_levels(levels_v, self.spec.limits.list_points_max)
        self._check_delay(delay_s)
        interval_s = self._interval(delay_s)
        return self._sweep(
            self._dialect.list_sweep,
            len(levels),
            interval_s,
            levels=levels,
            delay_s=fmt(delay_s),
            interval_s=fmt(interval_s),
        )

    def linear_sweep(
        self, start_v: float, stop_v: float, points: int, *, delay_s: float = 0.0
    ) -> SweepResult:
        """Hardware linear staircase from start_v to stop_v inclusive."""
        if int(points) != points or points < 2 or points > self.spec.limits.sweep_points_max:
            raise ParameterError(
                f"{self._where()}: points={points} must be an integer in "
                f"[2, {self.spec.limits.sweep_points_max}]"
            )
        self._check_voltage("start_v", start_v)
        self._check_voltage("stop_v", stop_v)
        self._check_delay(delay_s)
        self._require_voltage_source("a sweep")
        interval_s = self._interval(delay_s)
        return self._sweep(
            self._dialect.linear_sweep,
            int(points),
            interval_s,
            start_v=fmt(start_v),
            stop_v=fmt(stop_v),
            delay_s=fmt(delay_s),
            interval_s=fmt(interval_s),
        )

    def pulsed_list_sweep(
        self,
        levels_v: Sequence[float],
        *,
        width_s: float,
        period_s: float,
        base_v: float = 0.0,
    ) -> SweepResult:
        """Hardware pulsed list sweep: pulse to each level from base_v, sample inside the pulse.

        The sample window ends at 90 % of the width, so the integration time (NPLC or aperture)
        must fit in it; the duty cycle is kept at or below 50 %.
        """
        d, lim, where = self._dialect, self.spec.limits, self._where()
        if d.pulsed_list_sweep is None:
            raise CapabilityError(
                f"{where}: {self.spec.name} has no hardware pulse mode; use a pulse generator"
            )
        levels = self._check_levels(levels_v, lim.list_points_max)
        self._check_voltage("base_v", base_v)
        check_range("width_s", width_s, lim.pulse_width_min_s, lim.pulse_width_max_s, where)
        check_range("period_s", period_s, 2.0 * width_s, math.inf, f"{where} (duty cycle <= 50 %)")
        acq_delay_s = 0.9 * width_s - self._integration_s
        if acq_delay_s < 0:
            raise ParameterError(
                f"{where}: integration time {self._integration_s:g} s does not fit in 90 % of "
                f"the {width_s:g} s pulse; lower nplc/aperture_s or widen the pulse"
            )
        n = len(levels)
        return self._sweep(
            d.pulsed_list_sweep,
            n,
            period_s,
            levels=levels,
            base_v=fmt(base_v),
            width_s=fmt(width_s),
            period_s=fmt(period_s),
            interval_s=fmt(period_s),
            acq_delay_s=fmt(acq_delay_s),
            delay_s=fmt(acq_delay_s),
            t1=str(2 * self.channel - 1),
            t2=str(2 * self.channel),
            timer_count=str(max(n - 1, 1)),
        )

    def _check_levels(self, levels_v: Sequence[float], max_points: int) -> list[float]:
        levels = [float(v) for v in levels_v]
        if not 1 <= len(levels) <= max_points:
            raise ParameterError(
                f"{self._where()}: {len(levels)} sweep points; the model allows 1..{max_points}"
            )
        for k, v in enumerate(levels):
            self._check_voltage(f"levels_v[{k}]", v)
        self._require_voltage_source("a sweep")
        return levels

    def _check_delay(self, delay_s: float) -> None:
        check_range("delay_s", delay_s, 0.0, 1e4, self._where())

    def _interval(self, delay_s: float) -> float:
        """Time per point: settle delay + integration + the model's per-point overhead."""
        return delay_s + self._integration_s + self.spec.limits.point_overhead_s

    def _sweep(
        self, steps: tuple[Step, ...], n: int, per_point_s: float, **values: Any
    ) -> SweepResult:
        levels = values.pop("levels", None)
        if levels is not None:
            steps = self._expand_list(steps, levels)
        with self._timeout_for(n * per_point_s):
            replies = self._run(steps, n=str(n), **values)
        data = self._parse_sweep(replies[-1], n)
        self._after_config()
        return data

    def _expand_list(self, steps: tuple[Step, ...], levels: list[float]) -> tuple[Step, ...]:
        """Put the list values into the templates, split into chunks where the model needs it."""
        d = self._dialect
        size = d.list_chunk or len(levels)
        chunks = [fmt_list(levels[k : k + size]) for k in range(0, len(levels), size)]
        out: list[Step] = []
        for step in steps:
            if "$levels" not in step:
                out.append(step)
                continue
            filled = Template(step).safe_substitute(levels=chunks[0])
            out.append(Query(filled) if isinstance(step, Query) else filled)
            out.extend(Template(d.list_append).safe_substitute(chunk=c) for c in chunks[1:])
        return tuple(out)

    def _parse_sweep(self, reply: str, n: int) -> SweepResult:
        columns = self._dialect.sweep_columns
        values = np.asarray(parse_floats(reply), dtype=float)
        if values.size != n * len(columns):
            raise InstrumentError(
                f"{self._where()}: sweep returned {values.size} values, expected {n} points x "
                f"{len(columns)} ({','.join(columns)})"
            )
        table = values.reshape(n, len(columns))
        arrays = {_COLUMN_NAMES[c]: table[:, k].copy() for k, c in enumerate(columns)}
        return SweepResult(**arrays)

    # --- safety and snapshots --------------------------------------------------------------

    def safe_state(self) -> None:
        """Ramp the source level to 0 in a few steps, then output off; log, never raise."""
        d = self._dialect
        reply = self._best_effort("reading the source level", self._run, d.level_query)
        level = 0.0
        if reply:
            try:
                level = parse_floats(reply[0])[0]
            except (InstrumentError, IndexError):
                level = 0.0
        n = self.ramp_steps
        targets = [level * (n - k) / n for k in range(1, n + 1)] if level else [0.0]
        for target in targets:
            if self._best_effort("ramping", self._run, d.set_level, level=fmt(target)) is None:
                break
            if target and self.ramp_step_s:
                self.clock.sleep(self.ramp_step_s)
        self._best_effort("output off", self._run, d.output_off)

    def settings(self) -> dict[str, Any]:
        snapshot = super().settings()
        snapshot.update(
            source_mode=self._mode,
            source_limit=self._limit,
            integration_s=self._integration_s,
            line_frequency_hz=self.line_frequency_hz,
            instrument=self._query_settings(self._dialect.settings),
        )
        return snapshot


# =============================================================================================
# Command tables.

# --- Keithley 2450, native SCPI (not 2400 emulation; QCoDeS-style buffer commands) ------------

_K2450_FETCH = (
    ":OUTP ON",
    ":INIT",
    Q("*OPC?"),
    Q(':TRAC:DATA? 1,$n,"defbuffer1",SOUR,READ,REL'),
)

K2450_DIALECT = SmuDialect(
    modes={
        "v": SourceMode({"src": "VOLT", "meas": "CURR", "lim": "ILIM"}, ("i", "v")),
        "i": SourceMode({"src": "CURR", "meas": "VOLT", "lim": "VLIM"}, ("v", "i")),
    },
    configure_source=(":SOUR:FUNC $src", ":SOUR:$src:$lim $limit"),
    source_range_auto=(":SOUR:$src:RANG:AUTO ON",),
    source_range=(":SOUR:$src:RANG $range",),
    set_level=(":SOUR:$src $level",),
    output_on=(":OUTP ON",),
    output_off=(":OUTP OFF",),
    measure_function=(':SENS:FUNC "$meas"',),
    measure_range_auto=(":SENS:$meas:RANG:AUTO ON",),
    measure_range=(":SENS:$meas:RANG:AUTO OFF", ":SENS:$meas:RANG $range"),
    measure_nplc=(":SENS:$meas:NPLC $nplc",),
    measure_aperture=None,
    measure_iv=(Q(':READ? "defbuffer1",READ,SOUR'),),
    trip=(Q(":SOUR:$src:$lim:TRIP?"),),
    level_query=(Q(":SOUR:$src?"),),
    list_sweep=(
        ':TRAC:CLE "defbuffer1"',
        ":SOUR:LIST:VOLT $levels",
        ":SOUR:SWE:VOLT:LIST 1,$delay_s",
        *_K2450_FETCH,
    ),
    linear_sweep=(
        ':TRAC:CLE "defbuffer1"',
        ':SOUR:SWE:VOLT:LIN $start_v,$stop_v,$n,$delay_s,1,BEST,OFF,OFF,"defbuffer1"',
        *_K2450_FETCH,
    ),
    pulsed_list_sweep=None,  # no hardware pulse mode (notes §1.1): use the pulse generator
    sweep_columns=("v", "i", "t"),
    list_chunk=100,  # 2013 manual: up to 100 values per :SOUR:LIST command
    list_append=":SOUR:LIST:VOLT:APP $chunk",
    settings={
        "output": ":OUTP?",
        "source_function": ":SOUR:FUNC?",
        "source_level": ":SOUR:$src?",
        "source_limit": ":SOUR:$src:$lim?",
        "measure_function": ":SENS:FUNC?",
        "measure_nplc": ":SENS:$meas:NPLC?",
        "measure_range_auto": ":SENS:$meas:RANG:AUTO?",
        "measure_range": ":SENS:$meas:RANG?",
    },
)

K2450 = SmuSpec(
    name="Keithley 2450",
    idn_model=r"(?:MODEL\s+)?(?P<model>2450)",
    channels={1: ""},
    dialect=K2450_DIALECT,
    limits=SmuLimits(
        voltage_max_v=210.0,  # datasheet, not in the notes
        current_max_a=1.05,  # datasheet, not in the notes
        nplc_min=0.01,
        nplc_max=10.0,  # notes §1.1
        list_points_max=100_000,  # defbuffer1 default size; not in the notes (conservative)
        sweep_points_max=100_000,  # notes allow 1e6 points; capped by defbuffer1's default size
    ),
)

# --- Keithley 2600B, TSP ($ch is smua / smub) --------------------------------------------------

_K2600_BUFFERS = (
    "format.data = format.ASCII",
    "$ch.nvbuffer1.clear()",
    "$ch.nvbuffer2.clear()",
    "$ch.nvbuffer1.collecttimestamps = 1",
)
_K2600_TRIGGER_IV = (
    "$ch.trigger.source.action = $ch.ENABLE",
    "$ch.trigger.measure.iv($ch.nvbuffer1, $ch.nvbuffer2)",
    "$ch.trigger.measure.action = $ch.ENABLE",
)
_K2600_DC_PULSE_LAYER = (
    "$ch.trigger.source.stimulus = 0",
    "$ch.trigger.endpulse.stimulus = 0",
    "$ch.trigger.endpulse.action = $ch.SOURCE_HOLD",
)
_K2600_RUN = (
    "$ch.trigger.count = $n",
    "$ch.trigger.arm.count = 1",
    "$ch.source.output = $ch.OUTPUT_ON",
    "$ch.trigger.initiate()",
    "waitcomplete()",
    Q(
        "printbuffer(1, $n, $ch.nvbuffer1.readings, $ch.nvbuffer2.readings, "
        "$ch.nvbuffer1.timestamps)"
    ),
)

K2600B_DIALECT = SmuDialect(
    compound=" ",  # Lua: statements on one line need no separator beyond a space
    modes={
        "v": SourceMode({"func": "OUTPUT_DCVOLTS", "src": "v", "meas": "i"}, ("i", "v")),
        "i": SourceMode({"func": "OUTPUT_DCAMPS", "src": "i", "meas": "v"}, ("i", "v")),
    },
    configure_source=("$ch.source.func = $ch.$func", "$ch.source.limit$meas = $limit"),
    source_range_auto=("$ch.source.autorange$src = $ch.AUTORANGE_ON",),
    source_range=("$ch.source.range$src = $range",),
    set_level=("$ch.source.level$src = $level",),
    output_on=("$ch.source.output = $ch.OUTPUT_ON",),
    output_off=("$ch.source.output = $ch.OUTPUT_OFF",),
    measure_function=(),
    measure_range_auto=("$ch.measure.autorange$meas = $ch.AUTORANGE_ON",),
    measure_range=(
        "$ch.measure.autorange$meas = $ch.AUTORANGE_OFF",
        "$ch.measure.range$meas = $range",
    ),
    measure_nplc=("$ch.measure.nplc = $nplc",),
    measure_aperture=None,
    measure_iv=(Q("print($ch.measure.iv())"),),
    trip=(Q("print($ch.source.compliance)"),),
    level_query=(Q("print($ch.source.level$src)"),),
    list_sweep=(
        *_K2600_BUFFERS,
        "$ch.measure.delay = $delay_s",
        "$ch.trigger.source.listv({$levels})",
        *_K2600_TRIGGER_IV,
        *_K2600_DC_PULSE_LAYER,
        *_K2600_RUN,
    ),
    linear_sweep=(
        *_K2600_BUFFERS,
        "$ch.measure.delay = $delay_s",
        "$ch.trigger.source.linearv($start_v, $stop_v, $n)",
        *_K2600_TRIGGER_IV,
        *_K2600_DC_PULSE_LAYER,
        *_K2600_RUN,
    ),
    pulsed_list_sweep=(
        *_K2600_BUFFERS,
        "$ch.source.levelv = $base_v",
        "$ch.measure.delay = $acq_delay_s",
        "$ch.trigger.source.listv({$levels})",
        *_K2600_TRIGGER_IV,
        "trigger.timer[$t1].delay = $period_s",
        "trigger.timer[$t1].count = $timer_count",
        "trigger.timer[$t1].passthrough = true",
        "trigger.timer[$t1].stimulus = $ch.trigger.ARMED_EVENT_ID",
        "$ch.trigger.source.stimulus = trigger.timer[$t1].EVENT_ID",
        "trigger.timer[$t2].delay = $width_s",
        "trigger.timer[$t2].count = 1",
        "trigger.timer[$t2].passthrough = false",
        "trigger.timer[$t2].stimulus = $ch.trigger.SOURCE_COMPLETE_EVENT_ID",
        "$ch.trigger.endpulse.stimulus = trigger.timer[$t2].EVENT_ID",
        "$ch.trigger.endpulse.action = $ch.SOURCE_IDLE",
        *_K2600_RUN,
    ),
    sweep_columns=("i", "v", "t"),
    settings={
        "output": "print($ch.source.output)",
        "source_function": "print($ch.source.func)",
        "source_level": "print($ch.source.level$src)",
        "source_limit": "print($ch.source.limit$meas)",
        "measure_nplc": "print($ch.measure.nplc)",
        "measure_range_auto": "print($ch.measure.autorange$meas)",
        "measure_range": "print($ch.measure.range$meas)",
        "measure_delay": "print($ch.measure.delay)",
    },
)


def _k2600(
    name: str, models: str, channels: Mapping[int, str], v_max: float, i_max: float
) -> SmuSpec:
    return SmuSpec(
        name=name,
        idn_model=rf"(?:MODEL\s+)?(?P<model>{models})",
        channels=channels,
        errors=TspErrorQueue(),
        dialect=K2600B_DIALECT,
        limits=SmuLimits(
            voltage_max_v=v_max,  # datasheet DC maxima, not in the notes
            current_max_a=i_max,
            nplc_min=0.001,  # 2600B manual range; not in the notes
            nplc_max=25.0,
            list_points_max=60_000,  # nvbuffer capacity; not in the notes (conservative)
            sweep_points_max=60_000,
            pulse_width_min_s=200e-6,  # not in the notes: conservative, above the timer floor
            pulse_width_max_s=1.0,  # not in the notes: conservative
        ),
    )


_SMUA = {1: "smua"}
_SMUAB = {1: "smua", 2: "smub"}
K2600B_MODELS = (
    _k2600("Keithley 2601B/2611B/2635B", "26(?:01|11|35)B", _SMUA, 40.0, 3.0),
    _k2600("Keithley 2602B/2604B", "260[24]B", _SMUAB, 40.0, 3.0),
    _k2600("Keithley 2612B/2614B/2634B/2636B", "26(?:12|14|34|36)B", _SMUAB, 200.0, 1.5),
)

# --- Keysight B2900A/B, SCPI with channel suffixes and (@n) lists ------------------------------

_B2900_RUN = (
    ":TRIG$ch:SOUR TIM",
    ":TRIG$ch:TIM $interval_s",
    ":TRIG$ch:COUN $n",
    ":TRIG$ch:ACQ:DEL $delay_s",
    ":FORM:ELEM:SENS VOLT,CURR,TIME",  # order on the wire is fixed: VOLT,CURR,...,TIME
    ":OUTP$ch ON",
    ":INIT (@$ch)",
    Q("*OPC?"),
    Q(":FETC:ARR? (@$ch)"),
)

B2900_DIALECT = SmuDialect(
    modes={
        "v": SourceMode({"src": "VOLT", "meas": "CURR"}, ("v", "i", "t")),
        "i": SourceMode({"src": "CURR", "meas": "VOLT"}, ("v", "i", "t")),
    },
    configure_source=(
        ":SOUR$ch:FUNC:MODE $src",
        ":SOUR$ch:FUNC:SHAP DC",
        ":SOUR$ch:$src:MODE FIX",
        ":SENS$ch:$meas:PROT $limit",
    ),
    source_range_auto=(":SOUR$ch:$src:RANG:AUTO ON",),
    source_range=(":SOUR$ch:$src:RANG $range",),
    set_level=(":SOUR$ch:$src $level",),
    output_on=(":OUTP$ch ON",),
    output_off=(":OUTP$ch OFF",),
    measure_function=(':SENS$ch:FUNC "VOLT","CURR"', ":FORM:ELEM:SENS VOLT,CURR,TIME"),
    measure_range_auto=(":SENS$ch:$meas:RANG:AUTO ON",),
    measure_range=(":SENS$ch:$meas:RANG:AUTO OFF", ":SENS$ch:$meas:RANG $range"),
    measure_nplc=(":SENS$ch:$meas:NPLC $nplc",),
    measure_aperture=(":SENS$ch:$meas:APER $aperture_s",),
    measure_iv=(":FORM:ELEM:SENS VOLT,CURR,TIME", Q(":MEAS? (@$ch)")),
    measure_currents=(Q(":MEAS:CURR? (@$channels)"),),
    trip=(Q(":SENS$ch:$meas:PROT:TRIP?"),),
    level_query=(Q(":SOUR$ch:$src?"),),
    list_sweep=(
        ":SOUR$ch:FUNC:SHAP DC",
        ":SOUR$ch:VOLT:MODE LIST",
        ":SOUR$ch:LIST:VOLT $levels",
        *_B2900_RUN,
    ),
    linear_sweep=(
        ":SOUR$ch:FUNC:SHAP DC",
        ":SOUR$ch:VOLT:MODE SWE",
        ":SOUR$ch:VOLT:STAR $start_v",
        ":SOUR$ch:VOLT:STOP $stop_v",
        ":SOUR$ch:VOLT:POIN $n",
        *_B2900_RUN,
    ),
    pulsed_list_sweep=(
        ":SOUR$ch:FUNC:SHAP PULS",
        ":SOUR$ch:VOLT $base_v",
        ":SOUR$ch:VOLT:MODE LIST",
        ":SOUR$ch:LIST:VOLT $levels",
        ":SOUR$ch:PULS:DEL 0",
        ":SOUR$ch:PULS:WIDT $width_s",
        *_B2900_RUN,
    ),
    sweep_columns=("v", "i", "t"),
    settings={
        "output": ":OUTP$ch?",
        "source_function": ":SOUR$ch:FUNC:MODE?",
        "source_shape": ":SOUR$ch:FUNC:SHAP?",
        "source_level": ":SOUR$ch:$src?",
        "source_limit": ":SENS$ch:$meas:PROT?",
        "measure_nplc": ":SENS$ch:$meas:NPLC?",
        "measure_range_auto": ":SENS$ch:$meas:RANG:AUTO?",
        "measure_range": ":SENS$ch:$meas:RANG?",
    },
)


def _b2900(name: str, models: str, channels: Mapping[int, str]) -> SmuSpec:
    return SmuSpec(
        name=name,
        idn_model=rf"(?P<model>{models})",
        channels=channels,
        dialect=B2900_DIALECT,
        limits=SmuLimits(
            voltage_max_v=210.0,  # datasheet DC maxima, not in the notes
            current_max_a=3.03,
            nplc_min=0.01,  # conservative subset of the datasheet ranges (not in the notes)
            nplc_max=10.0,
            aperture_min_s=1e-5,
            aperture_max_s=1.0,
            list_points_max=2500,  # notes §1.3 (B2900 Ed. 2)
            sweep_points_max=2500,
            pulse_width_min_s=50e-6,  # notes §1.3 (user's guide 6-7); B291x go lower
            pulse_width_max_s=100e3,
        ),
    )


B2900_MODELS = (
    _b2900("Keysight B2901/B2911", "B29[01]1[AB]", {1: "1"}),
    _b2900("Keysight B2902/B2912", "B29[01]2[AB]", {1: "1", 2: "2"}),
)

SMU_MODELS: tuple[SmuSpec, ...] = (K2450, *K2600B_MODELS, *B2900_MODELS)

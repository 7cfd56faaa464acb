"""Universal counters: one ``Counter`` over per-model tables (Keysight 53220A and 53230A).

A soma's spikes are far too fast for an SMU's integrating ADC, so they are counted: a timed
totalize is armed now and fetched after other instruments have played (spikes per input burst),
and a reciprocal frequency is read over a gate (an oscillation). Every limit is checked before
anything is sent; the counter sources nothing, so its safe state is an aborted measurement. The
driver must not know about simulation or branch on the model.

Command syntax, ranges and defaults are those of the Keysight 53220A/53230A User's Guide and
Programmer's Reference (stored copies read for this driver; "UG p.N" is
http://38.142.81.21:8001/manual/agilent-technologies/53230a/user-s-guide-english/page-N.html,
"PR p.N" is https://www.easymanua.ls/keysight/53230a/manual/249540?p=N):

- ``CONFigure:TOTalize:TIMed <gate>,(@ch)``: gate 100 us .. 1000 s in 10 us steps on the 53220A,
  1 us .. 1000 s in 1 us steps on the 53230A, default 0.1 s (UG p.108).
- ``CONFigure:FREQuency (@ch)``, ``[SENSe:]FREQuency:GATE:SOURce TIME`` and ``...:GATE:TIME``
  (UG p.158, p.160); the shortest frequency gate is 100 us (53220A) or 1 us (53230A), the
  longest 1000 s (PR p.243, the gate-time table of MEASure:FREQuency?).
- ``INPut[{1|2}]:IMPedance 50|1E6``, ``:COUPling AC|DC``, ``:RANGe 5|50`` (UG p.133),
  ``:SLOPe POS|NEG``, ``:LEVel <volts>`` (an absolute level turns auto-level off, UG p.133);
  CONFigure re-enables auto-level at 50 %, so the input is set after it (UG p.131).
- ``INITiate``, ``FETCh?`` (waits for the measurement; -230 "Data corrupt or stale" when none
  is in memory or in progress, UG p.243), ``READ?``, ``ABORt``.
- ``SYSTem:TIMeout`` 10 ms .. 2000 s, 1 ms resolution; a measurement that does not complete in
  time returns 9.91E37, "not a number" (UG p.74, PR p.459).

Not in the stored pages, so our assumption: the absolute threshold level may lie anywhere within
the selected input range (+-5 V or +-50 V).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from dendrolab.errors import InstrumentError, ParameterError
from instruments.base import (
    Instrument,
    ModelSpec,
    Query,
    ScpiErrorQueue,
    Step,
    check_range,
    fmt,
    parse_floats,
)

Q = Query

#: The counters' "not a number" reading (a timed-out measurement, UG p.74); replies at or above
#: NAN_REPLY_MIN are read as NaN.
NOT_A_NUMBER = 9.91e37
NAN_REPLY_MIN = 9.9e37
SLOPES = {"POS": "POS", "POSITIVE": "POS", "NEG": "NEG", "NEGATIVE": "NEG"}
COUPLINGS = ("AC", "DC")


@dataclass(frozen=True)
class CounterLimits:
    """What a model accepts (the manual's ranges, see the module docstring)."""

    gate_min_s: float
    gate_max_s: float
    gate_step_s: float  # gate times are whole multiples of this
    impedances_ohm: tuple[float, ...] = (50.0, 1e6)
    ranges_v: tuple[float, ...] = (5.0, 50.0)
    timeout_min_s: float = 10e-3
    timeout_max_s: float = 2000.0


@dataclass(frozen=True, kw_only=True)
class CounterDialect:
    """Command templates of one counter family (``$ch`` is the input channel number)."""

    totalize: tuple[Step, ...]  # $gate_s
    frequency: tuple[Step, ...]  # $gate_s $timeout_s
    input: tuple[Step, ...]  # $impedance_ohm $coupling $range_v $slope $level_v
    arm: tuple[Step, ...]
    fetch: tuple[Step, ...]  # one Query: the reading
    read: tuple[Step, ...]  # one Query: abort, arm and fetch in one
    abort: tuple[Step, ...]
    settings: Mapping[str, str]


@dataclass(frozen=True, kw_only=True)
class CounterSpec(ModelSpec):
    dialect: CounterDialect
    limits: CounterLimits


@dataclass(frozen=True)
class CounterInput:
    """How the input channel triggers: an absolute level on one slope, impedance, coupling."""

    level_v: float
    slope: str = "POS"
    impedance_ohm: float = 1e6
    coupling: str = "DC"
    range_v: float = 5.0


def frequency_timeout_s(gate_s: float) -> float:
    """The measurement timeout the driver programs for a frequency reading over ``gate_s``:
    twice the gate plus 10 ms, in whole ms, within SYSTem:TIMeout's 10 ms .. 2000 s. A signal
    whose period fits in the gate completes well before it; no signal returns 9.91E37 then."""
    ms = math.ceil(round((2.0 * gate_s + 10e-3) * 1e3, 6))
    return min(max(ms * 1e-3, 10e-3), 2000.0)


def check_gate(spec: CounterSpec, gate_s: float, where: str) -> None:
    """The gate time is in the model's range and a whole number of its steps."""
    lim = spec.limits
    check_range("gate_s", gate_s, lim.gate_min_s, lim.gate_max_s, where)
    steps = gate_s / lim.gate_step_s
    if abs(steps - round(steps)) > 1e-6:
        raise ParameterError(f"{where}: gate_s={gate_s:g} is not a whole number of "
                             f"{lim.gate_step_s:g} s steps ({spec.name} gate resolution)")


def normalise_input(spec: CounterSpec, inp: CounterInput, where: str) -> CounterInput:
    """The input settings checked against the model (slope and coupling upper-cased)."""
    lim = spec.limits
    slope = SLOPES.get(str(inp.slope).strip().upper())
    if slope is None:
        raise ParameterError(f"{where}: slope {inp.slope!r} must be POS or NEG")
    coupling = str(inp.coupling).strip().upper()
    if coupling not in COUPLINGS:
        raise ParameterError(f"{where}: coupling {inp.coupling!r} must be AC or DC")
    if inp.impedance_ohm not in lim.impedances_ohm:
        raise ParameterError(f"{where}: impedance_ohm={inp.impedance_ohm:g} must be one of "
                             f"{', '.join(format(z, 'g') for z in lim.impedances_ohm)}")
    if inp.range_v not in lim.ranges_v:
        raise ParameterError(f"{where}: range_v={inp.range_v:g} must be one of "
                             f"{', '.join(format(r, 'g') for r in lim.ranges_v)}")
    check_range("level_v", inp.level_v, -inp.range_v, inp.range_v,
                f"{where} (threshold within the {inp.range_v:g} V input range)")
    return CounterInput(float(inp.level_v), slope, float(inp.impedance_ohm), coupling,
                        float(inp.range_v))


class Counter(Instrument):
    """One counter input: timed totalize (armed, then fetched) and gated frequency."""

    capability = "counter"
    spec: CounterSpec
    #: (clock time the gate opened, gate_s) of a totalize armed by this driver, else None.
    _gate: tuple[float, float] | None = None

    @property
    def _dialect(self) -> CounterDialect:
        return self.spec.dialect

    @property
    def armed(self) -> bool:
        """True while a totalize this driver armed has not been fetched or aborted."""
        return self._gate is not None

    def _send_input(self, inp: CounterInput) -> None:
        self._run(self._dialect.input, impedance_ohm=fmt(inp.impedance_ohm),
                  coupling=inp.coupling, range_v=fmt(inp.range_v), slope=inp.slope,
                  level_v=fmt(inp.level_v))

    # --- totalize ----------------------------------------------------------------------------

    def start_totalize(self, gate_s: float, inp: CounterInput) -> None:
        """Configure a timed totalize, set the input, check errors, then arm (INITiate): the gate
        opens now and counts while the host does other things; ``fetch_count`` reads it."""
        where = self._where()
        check_gate(self.spec, gate_s, where)
        inp = normalise_input(self.spec, inp, where)
        self._gate = None
        self._run(self._dialect.totalize, gate_s=fmt(gate_s))
        self._send_input(inp)
        self._after_config()
        self._run(self._dialect.arm)
        self._gate = (self.clock.now(), float(gate_s))

    def fetch_count(self) -> int:
        """The events counted in the armed gate; waits (FETCh? blocks) until the gate closed."""
        if self._gate is None:
            raise InstrumentError(f"{self._where()}: no totalize gate is open; start_totalize "
                                  "must come before fetch_count")
        opened, gate = self._gate
        remaining = max(opened + gate - self.clock.now(), 0.0)
        with self._timeout_for(remaining):
            reply = self._run(self._dialect.fetch)[0]
        self._gate = None
        value = parse_floats(reply)[0]
        if not math.isfinite(value) or value >= NAN_REPLY_MIN or value != round(value):
            raise InstrumentError(f"{self._where()}: totalize reply {reply!r} is not a count")
        return round(value)

    # --- frequency ---------------------------------------------------------------------------

    def measure_frequency(self, gate_s: float, inp: CounterInput) -> float:
        """A reciprocal frequency reading over a timed gate (Hz); NaN when the counter timed out
        (no signal, or fewer than two edges: the reading 9.91E37)."""
        where = self._where()
        check_gate(self.spec, gate_s, where)
        inp = normalise_input(self.spec, inp, where)
        timeout = frequency_timeout_s(gate_s)
        self._gate = None
        self._run(self._dialect.frequency, gate_s=fmt(gate_s), timeout_s=fmt(timeout))
        self._send_input(inp)
        self._after_config()
        with self._timeout_for(timeout):
            reply = self._run(self._dialect.read)[0]
        value = parse_floats(reply)[0]
        return math.nan if value >= NAN_REPLY_MIN else value

    # --- safety and snapshot -------------------------------------------------------------------

    def abort(self) -> None:
        """Stop any measurement in progress (the count so far is discarded)."""
        self._gate = None
        self._run(self._dialect.abort)

    def safe_state(self) -> None:
        """ABORt whatever runs (a counter sources nothing); log and carry on if broken."""
        self._gate = None
        self._best_effort("abort", self._run, self._dialect.abort)

    def settings(self) -> dict[str, Any]:
        snapshot = super().settings()
        snapshot.update(
            limits=asdict(self.spec.limits),
            instrument=self._query_settings(self._dialect.settings),
        )
        return snapshot


# =============================================================================================
# Command tables.

KEYSIGHT_532X0_DIALECT = CounterDialect(
    totalize=("CONF:TOT:TIM $gate_s,(@$ch)",),
    frequency=(
        "CONF:FREQ (@$ch)",
        "SENS:FREQ:GATE:SOUR TIME",
        "SENS:FREQ:GATE:TIME $gate_s",
        "SYST:TIM $timeout_s",
    ),
    input=(
        "INP$ch:IMP $impedance_ohm",
        "INP$ch:COUP $coupling",
        "INP$ch:RANG $range_v",
        "INP$ch:SLOP $slope",
        "INP$ch:LEV $level_v",
    ),
    arm=("INIT",),
    fetch=(Q("FETC?"),),
    read=(Q("READ?"),),
    abort=("ABOR",),
    settings={
        "impedance": "INP$ch:IMP?",
        "coupling": "INP$ch:COUP?",
        "range": "INP$ch:RANG?",
        "slope": "INP$ch:SLOP?",
        "level": "INP$ch:LEV?",
        "level_auto": "INP$ch:LEV:AUTO?",
        "totalize_gate": "SENS:TOT:GATE:TIME?",
        "frequency_gate": "SENS:FREQ:GATE:TIME?",
        "timeout": "SYST:TIM?",
    },
)


def _keysight_532x0(name: str, model: str, limits: CounterLimits) -> CounterSpec:
    return CounterSpec(
        name=name,
        idn_model=rf"(?P<model>{model})",
        channels={1: "1", 2: "2"},  # channel 3 (microwave option) is not supported
        errors=ScpiErrorQueue("SYST:ERR?"),
        dialect=KEYSIGHT_532X0_DIALECT,
        limits=limits,
    )


COUNTER_MODELS: tuple[CounterSpec, ...] = (
    _keysight_532x0("Keysight 53220A", "53220A",
                    CounterLimits(gate_min_s=100e-6, gate_max_s=1000.0, gate_step_s=10e-6)),
    _keysight_532x0("Keysight 53230A", "53230A",
                    CounterLimits(gate_min_s=1e-6, gate_max_s=1000.0, gate_step_s=1e-6)),
)

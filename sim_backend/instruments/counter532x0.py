"""Simulated Keysight 53220A / 53230A universal counters: timed totalize and frequency.

The input terminal ``<name>/<ch>`` is wired on the bench to units' ``out`` ports; the counter
reads the soma spikes the bench logged (``Bench.spikes``), never a device. INITiate opens the gate
at the bench's present time; FETCh? blocks on the real instrument until the gate has closed, so
here it lets bench time pass up to the gate's end (other instruments' bursts played meanwhile
advanced the clock and logged their spikes already). Command syntax, ranges and replies follow
the 53220A/53230A User's Guide and Programmer's Reference (pages in ``instruments/counter.py``).

Input model (our assumption, not the manual's): the counter sees the soma-branch current through
a sense element, V = I x (R_s || Z_in), with R_s the circuit's sense resistor ``r_load_ohm`` or,
when the circuit has none (0, the default), a 50 ohm feed-through terminator at the counter input
(option ``sense_ohm`` overrides it). Its effect on the circuit (50 ohm against R_on = 2 kohm) is
not fed back into the physics. A spike is one event when the trigger level lies between the
input's baseline (OFF current at the firing node level) and the spike's peak (ON current at the
same level); AC coupling shifts both by the signal's mean over the gate; auto-level (50 % of the
signal) counts every spike. Both slopes count each spike once, at its OFF -> ON switch time; the
input's hysteresis band (sensitivity) is not modelled.

Frequency: reciprocal over the spikes in [t0, t0 + gate): f = (n - 1) / (t_last - t_first). A
real counter synchronises its gate to the input (it opens on an edge and closes on the first
edge after the gate time), which differs by at most one period per gate. Fewer than two spikes
in the gate: the measurement waits until the measurement timeout (SYSTem:TIMeout, or twice the
gate if that is longer, Programmer's Reference p.459) and returns 9.91E37; with the timeout
disabled it never completes (no reply) until ABORt or *RST. A late second edge inside the timeout
is not looked for. Only gate source TIME has a gate here: with EXTernal/INPut/ADVanced gating
nothing on the bench drives the gate, so the measurement never opens. What other instruments do
reaches the gate through the bench's clock and spike log: a triggered burst or a held level
counts; a free-running generator output, which the 33500 model applies lazily at its own next
command, is only seen if that generator was addressed before the gate is read.

Our choices where the stored manual pages are silent: values other than 50/1E6 ohm or 5/50 V
are -222; an absolute level must lie within the input range; channel lists other than (@1) or
(@2) are -224; INITiate while a gate is open is -213 "Init ignored" (SCPI-99); gate times are
rounded to the model's resolution; *RST defaults are 1 Mohm, AC, 5 V range, POS, auto-level 50 %
(level 0 V); *OPC? answers at once (as every simulated instrument here) instead of waiting for
an open gate (FETCh? waits).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from dendrolab.errors import ParameterError
from sim_backend.bench import Bench, SpikeTrain
from sim_backend.instruments.options import check_options, model_idn
from sim_backend.scpi import Command, ScpiError, ScpiInstrument, parse_channel_list, scpi

__all__ = ["Keysight53220ASim", "Keysight53230ASim"]

NAN_READING = 9.91e37  # "not a number": a measurement that timed out (User's Guide p.74)
INF = 9.9e37  # SCPI infinity (INFinity gate or timeout)
DEFAULT_SENSE_OHM = 50.0  # assumed feed-through terminator when the circuit has no sense resistor
CHUNK_S = 0.05  # bench time advanced per step while a gate is open (bounds the spike log per hold)
IMPEDANCES = (50.0, 1e6)
RANGES = (5.0, 50.0)
TIMEOUT_MIN_S, TIMEOUT_MAX_S = 10e-3, 2000.0
DEFAULT_GATE_S = 0.1
GATE_SOURCES = ("TIME", "EXTernal", "ADVanced")  # and INPut[1] / INPut2, see _gate_source
#: CONFigure/MEASure:FREQuency gate time from resolution / expected (Programmer's Reference
#: p.243): (largest relative resolution, 53220A gate, 53230A gate); beyond the last row: last.
GATE_TABLE = (
    (1.1e-14, 1000.0, 1000.0), (1.1e-13, 1000.0, 100.0), (1.1e-12, 100.0, 10.0),
    (1.1e-11, 10.0, 1.0), (1.1e-10, 1.0, 0.1), (1.1e-9, 0.1, 0.01), (1.1e-8, 0.01, 1e-3),
    (1.1e-7, 1e-3, 1e-4), (1.1e-6, 1e-4, 1e-5), (math.inf, 1e-4, 1e-6),
)  # fmt: skip


def _reading(value: float) -> str:
    """A measurement in the counters' ASCII format: ``+1.21510000000000E+004``."""
    mantissa, exponent = f"{float(value) + 0.0:+.14E}".split("E")
    return f"{mantissa}E{int(exponent):+04d}"


def _setting(value: float) -> str:
    """A setting in the counters' query format: ``+5.00000000E+001``; infinity as 9.9E37."""
    value = INF if math.isinf(value) else float(value) + 0.0
    mantissa, exponent = f"{value:+.8E}".split("E")
    return f"{mantissa}E{int(exponent):+04d}"


@dataclass(frozen=True)
class _Input:
    """One input channel's conditioning (frozen: a measurement keeps the copy it started with)."""

    impedance: float = 1e6
    coupling: str = "AC"
    range_v: float = 5.0
    slope: str = "POS"
    level_v: float = 0.0
    auto: bool = True
    rel_pct: float = 50.0


@dataclass
class _Measurement:
    function: str  # "TOT" or "FREQ"
    channel: int
    t0: float
    gate: float  # inf: the gate stays open until ABORt
    gate_source: str
    timeout: float  # inf: disabled
    inp: _Input
    charge0: tuple[float, ...]  # each wired unit's soma charge at t0 (for AC coupling)


class _Counter532x0Sim(ScpiInstrument):
    """Shared 53220A/53230A model; subclasses set ``idn``, the gate range and the table column.

    Out-of-range values: -222, not applied; FETCh? with nothing measured: -230; INITiate while a
    gate is open: -213. Only command errors discard the rest of a message (as the 33500B model).
    """

    error_format: ClassVar[str] = '{code:+d},"{message}"'
    error_queue_size: ClassVar[int] = 20
    suffix_range: ClassVar[tuple[int, int]] = (1, 2)
    stop_on_error: ClassVar[bool] = False
    gate_min_s: ClassVar[float]
    gate_step_s: ClassVar[float]
    gate_column: ClassVar[int]
    options_allowed: ClassVar[frozenset[str]] = frozenset({"idn", "serial", "sense_ohm",
                                                           "timeout_s"})

    def __init__(self, bench: Bench, name: str, options: Mapping[str, Any] | None = None) -> None:
        where = f"{type(self).__name__} {name!r}"
        opts = check_options(options, self.options_allowed, where)
        idn = model_idn(opts, self.idn, where)
        super().__init__(idn)
        self.bench = bench
        self.name = name
        self.sense_ohm = _positive(opts.get("sense_ohm"), f"{name}: option sense_ohm")
        # SYSTem:TIMeout is non-volatile (kept through *RST); 1 s as shipped (User's Guide p.29)
        timeout = _positive(opts.get("timeout_s", 1.0), f"{name}: option timeout_s")
        self.timeout = math.inf if timeout is None else timeout
        self._reset_instrument()

    def _reset_instrument(self) -> None:
        self.function = "FREQ"
        self.channel = 1
        self.tot_gate = DEFAULT_GATE_S
        self.freq_gate = DEFAULT_GATE_S
        self.tot_gate_source = "TIME"
        self.freq_gate_source = "TIME"
        self.inputs = {1: _Input(), 2: _Input()}
        self.levels2 = {1: 0.0, 2: 0.0}  # LEVel2 / SLOPe2 (rise time, time interval): stored
        self.slopes2 = {1: "POS", 2: "POS"}
        self.running: _Measurement | None = None
        self.hung = False  # a started measurement that can never complete (no reply)
        self.readings: list[float] = []

    def reset(self) -> None:
        """*RST: measurement aborted, factory settings (the timeout is non-volatile)."""
        self._reset_instrument()

    # ------------------------------------------------------------------ helpers
    def _terminal(self, channel: int) -> str:
        return f"{self.name}/{channel}"

    def _gate_value(self, cmd: Command, index: int, allow_inf: bool) -> float:
        """A gate time parameter: MIN/MAX/DEF, seconds (rounded to the model's resolution), or
        INFinity / 9.9E37 where a totalize gate may stay open."""
        text = cmd.arg(index).upper()
        if text in ("MIN", "MINIMUM"):
            return self.gate_min_s
        if text in ("MAX", "MAXIMUM"):
            return 1000.0
        value = cmd.number(index, default=DEFAULT_GATE_S, unit="S",
                           keywords=("INFinity",) if allow_inf else ())
        if allow_inf and value >= INF:
            return math.inf
        if not self.gate_min_s * (1 - 1e-9) <= value <= 1000.0 * (1 + 1e-12):
            raise ScpiError(-222)
        return round(value / self.gate_step_s) * self.gate_step_s

    def _conf_args(self, cmd: Command, numbers: int) -> tuple[list[str], int]:
        """CONFigure/MEASure parameters: up to ``numbers`` values, then an optional (@ch)."""
        args = list(cmd.args)
        channel = 1
        if args and args[-1].startswith("("):
            found = parse_channel_list(args.pop())
            if len(found) != 1 or found[0] not in (1, 2):
                raise ScpiError(-224)
            channel = found[0]
        if len(args) > numbers:
            raise ScpiError(-108)
        return args, channel

    def _abort(self) -> None:
        self.running = None
        self.hung = False

    def _configure(self, function: str, channel: int) -> None:
        """CONFigure: abort, select function and channel, auto-level at 50 % (UG p.131)."""
        self._abort()
        self.function, self.channel = function, channel
        self.inputs[channel] = replace(self.inputs[channel], auto=True, rel_pct=50.0)
        self.readings = []

    def _input(self, cmd: Command) -> _Input:
        return self.inputs[cmd.suffix]

    def _set_input(self, cmd: Command, **changes: Any) -> None:
        self.inputs[cmd.suffix] = replace(self.inputs[cmd.suffix], **changes)

    # ------------------------------------------------------------------ measurement engine
    def _start(self) -> None:
        """INITiate: the gate opens now (a finished but unfetched measurement is completed and
        replaced; one still open is -213)."""
        running = self.running
        if running is not None and not (self._gate_closed(running) and self._finish(running)):
            raise ScpiError(-213, "Init ignored")
        self.hung = False
        self.readings = []
        tot = self.function == "TOT"
        now = self.bench.now_s
        trains = self.bench.spikes(self._terminal(self.channel), now, now)
        self.running = _Measurement(
            function=self.function, channel=self.channel, t0=now,
            gate=self.tot_gate if tot else self.freq_gate,
            gate_source=self.tot_gate_source if tot else self.freq_gate_source,
            timeout=self.timeout, inp=self.inputs[self.channel],
            charge0=tuple(t.charge_c for t in trains))

    def _gate_closed(self, m: _Measurement) -> bool:
        return (m.gate_source == "TIME" and math.isfinite(m.gate)
                and self.bench.now_s >= m.t0 + m.gate)

    def _advance_to(self, t: float, terminal: str) -> None:
        """Let bench time pass up to ``t`` in bounded steps, the wired units kept in step."""
        bench = self.bench
        while bench.now_s < t:
            bench.advance(min(CHUNK_S, t - bench.now_s))
            bench.spikes(terminal, t, t)

    def _finish(self, m: _Measurement) -> bool:
        """Complete the running measurement into ``readings``; False if it never completes."""
        terminal = self._terminal(m.channel)
        if m.gate_source != "TIME" or math.isinf(m.gate):
            events = None  # no gate signal on the bench / a gate open until ABORt
        else:
            end = m.t0 + m.gate
            self._advance_to(end, terminal)
            events = self._events(m, self.bench.spikes(terminal, m.t0, end))
            if m.function == "TOT":
                self.running, self.readings = None, [float(events.size)]
                return True
            if events.size >= 2:
                f = (events.size - 1) / float(events[-1] - events[0])
                self.running, self.readings = None, [f]
                return True
        if m.function == "TOT" or math.isinf(m.timeout):
            self.hung = True
            return False
        wait = m.timeout if m.timeout >= m.gate else 2 * m.gate
        self._advance_to(m.t0 + wait, terminal)
        self.running, self.readings = None, [NAN_READING]
        return True

    def _events(self, m: _Measurement, trains: list[SpikeTrain]) -> np.ndarray:
        """Times of the spikes that cross the trigger level (see the module docstring)."""
        inp = m.inp
        picked = []
        duration = max(m.gate, 1e-12)
        for k, train in enumerate(trains):
            if not train.times_s.size:
                continue
            if not inp.auto:
                r_s = self.sense_ohm or (train.r_load_ohm if train.r_load_ohm > 0
                                         else DEFAULT_SENSE_OHM)
                r_in = r_s * inp.impedance / (r_s + inp.impedance)
                base, peak = train.base_a * r_in, train.peak_a * r_in
                if inp.coupling == "AC":
                    q0 = m.charge0[k] if k < len(m.charge0) else train.charge_c
                    mean = (train.charge_c - q0) / duration * r_in
                    base, peak = base - mean, peak - mean
                if not base < inp.level_v < peak:
                    continue
            picked.append(train.times_s)
        return np.sort(np.concatenate(picked)) if picked else np.empty(0)

    def _reply(self) -> str | None:
        if self.hung:
            return None  # never completes: the host's read times out
        return ",".join(_reading(v) for v in self.readings)

    # ================================================================== measurements
    @scpi("INITiate[:IMMediate]", nargs=0)
    def _init(self, cmd: Command) -> None:
        self._start()

    @scpi("ABORt", nargs=0)
    def _abor(self, cmd: Command) -> None:
        self._abort()

    @scpi("FETCh?", nargs=0)
    def _fetch_q(self, cmd: Command) -> str | None:
        if self.hung:
            return None
        if self.running is not None:
            if not self._finish(self.running):
                return None
        elif not self.readings:
            raise ScpiError(-230)
        return self._reply()

    @scpi("READ?", nargs=0)
    def _read_q(self, cmd: Command) -> str | None:
        self._abort()
        self._start()
        assert self.running is not None
        self._finish(self.running)
        return self._reply()

    # ================================================================== CONFigure / MEASure
    @scpi("CONFigure:TOTalize:TIMed", nargs=(0, 2))
    def _conf_tot(self, cmd: Command) -> None:
        args, channel = self._conf_args(cmd, 1)
        gate = self._gate_value(cmd, 0, allow_inf=True) if args else DEFAULT_GATE_S
        self._configure("TOT", channel)
        self.tot_gate, self.tot_gate_source = gate, "TIME"

    @scpi("MEASure:TOTalize:TIMed?", nargs=(0, 2))
    def _meas_tot(self, cmd: Command) -> str | None:
        self._conf_tot(cmd)
        return self._read_q(cmd)

    @scpi("CONFigure:FREQuency", nargs=(0, 3))
    def _conf_freq(self, cmd: Command) -> None:
        args, channel = self._conf_args(cmd, 2)
        gate = DEFAULT_GATE_S
        if len(args) == 2:
            expected = cmd.number(0, minimum=0.0, default=10e6, unit="HZ")
            resolution = cmd.number(1, minimum=0.0, default=0.0, unit="HZ")
            if expected > 0 and resolution > 0:
                relative = resolution / expected
                gate = next(row[self.gate_column] for row in GATE_TABLE if relative <= row[0])
        elif args:
            cmd.number(0, minimum=0.0, default=10e6, unit="HZ")  # checked, not used
        self._configure("FREQ", channel)
        self.freq_gate, self.freq_gate_source = max(gate, self.gate_min_s), "TIME"

    @scpi("MEASure:FREQuency?", nargs=(0, 3))
    def _meas_freq(self, cmd: Command) -> str | None:
        self._conf_freq(cmd)
        return self._read_q(cmd)

    # ================================================================== SENSe gates
    @scpi("[SENSe]:FREQuency:GATE:TIME", nargs=1)
    def _freq_gate(self, cmd: Command) -> None:
        self.freq_gate = self._gate_value(cmd, 0, allow_inf=False)

    @scpi("[SENSe]:FREQuency:GATE:TIME?", nargs=(0, 1))
    def _freq_gate_q(self, cmd: Command) -> str:
        return self._gate_query(cmd, self.freq_gate)

    @scpi("[SENSe]:TOTalize:GATE:TIME", nargs=1)
    def _tot_gate(self, cmd: Command) -> None:
        self.tot_gate = self._gate_value(cmd, 0, allow_inf=True)

    @scpi("[SENSe]:TOTalize:GATE:TIME?", nargs=(0, 1))
    def _tot_gate_q(self, cmd: Command) -> str:
        return self._gate_query(cmd, self.tot_gate)

    def _gate_query(self, cmd: Command, value: float) -> str:
        if cmd.has(0):
            which = cmd.choice(0, ("MINimum", "MAXimum", "DEFault"))
            value = {"MIN": self.gate_min_s, "MAX": 1000.0, "DEF": DEFAULT_GATE_S}[which]
        return _setting(value)

    @scpi("[SENSe]:FREQuency:GATE:SOURce", nargs=1)
    def _freq_src(self, cmd: Command) -> None:
        self.freq_gate_source = _gate_source(cmd)

    @scpi("[SENSe]:FREQuency:GATE:SOURce?", nargs=0)
    def _freq_src_q(self, cmd: Command) -> str:
        return self.freq_gate_source

    @scpi("[SENSe]:TOTalize:GATE:SOURce", nargs=1)
    def _tot_src(self, cmd: Command) -> None:
        self.tot_gate_source = _gate_source(cmd)

    @scpi("[SENSe]:TOTalize:GATE:SOURce?", nargs=0)
    def _tot_src_q(self, cmd: Command) -> str:
        return self.tot_gate_source

    # ================================================================== INPut
    @scpi("INPut#:IMPedance", nargs=1)
    def _imp(self, cmd: Command) -> None:
        value = cmd.number(0, minimum=50.0, maximum=1e6, default=1e6, unit="OHM")
        if value not in IMPEDANCES:
            raise ScpiError(-222)
        self._set_input(cmd, impedance=float(value))

    @scpi("INPut#:IMPedance?", nargs=(0, 1))
    def _imp_q(self, cmd: Command) -> str:
        return _setting(self._input(cmd).impedance)

    @scpi("INPut#:COUPling", nargs=1)
    def _coup(self, cmd: Command) -> None:
        self._set_input(cmd, coupling=cmd.choice(0, ("AC", "DC")))

    @scpi("INPut#:COUPling?", nargs=0)
    def _coup_q(self, cmd: Command) -> str:
        return self._input(cmd).coupling

    @scpi("INPut#:RANGe", nargs=1)
    def _rang(self, cmd: Command) -> None:
        value = cmd.number(0, minimum=5.0, maximum=50.0, default=5.0, unit="V")
        if value not in RANGES:
            raise ScpiError(-222)
        inp = self._input(cmd)
        self._set_input(cmd, range_v=float(value),
                        level_v=min(max(inp.level_v, -value), value))

    @scpi("INPut#:RANGe?", nargs=(0, 1))
    def _rang_q(self, cmd: Command) -> str:
        return _setting(self._input(cmd).range_v)

    @scpi("INPut#:SLOPe#", nargs=1)
    def _slop(self, cmd: Command) -> None:
        slope = cmd.choice(0, ("POSitive", "NEGative"))
        if cmd.suffixes[1] == 2:
            self.slopes2[cmd.suffix] = slope
        else:
            self._set_input(cmd, slope=slope)

    @scpi("INPut#:SLOPe#?", nargs=0)
    def _slop_q(self, cmd: Command) -> str:
        return self.slopes2[cmd.suffix] if cmd.suffixes[1] == 2 else self._input(cmd).slope

    @scpi("INPut#:LEVel#[:ABSolute]", nargs=1)
    def _lev(self, cmd: Command) -> None:
        """An absolute level (within the input range) turns auto-level off (UG p.133)."""
        r = self._input(cmd).range_v
        value = float(cmd.number(0, minimum=-r, maximum=r, default=0.0, unit="V"))
        if cmd.suffixes[1] == 2:
            self.levels2[cmd.suffix] = value
            self._set_input(cmd, auto=False)
        else:
            self._set_input(cmd, level_v=value, auto=False)

    @scpi("INPut#:LEVel#[:ABSolute]?", nargs=(0, 1))
    def _lev_q(self, cmd: Command) -> str:
        inp = self._input(cmd)
        if cmd.has(0):
            which = cmd.choice(0, ("MINimum", "MAXimum", "DEFault"))
            return _setting({"MIN": -inp.range_v, "MAX": inp.range_v, "DEF": 0.0}[which])
        if cmd.suffixes[1] == 2:
            return _setting(self.levels2[cmd.suffix])
        if not inp.auto:
            return _setting(inp.level_v)
        return _setting(self._auto_level(cmd.suffix, inp))

    def _auto_level(self, channel: int, inp: _Input) -> float:
        """The auto-level threshold: rel % between the input's minimum and maximum (DC), or
        9.91E37 off the measurement channel or with no spikes to level on (UG p.131)."""
        if channel != self.channel:
            return NAN_READING
        now = self.bench.now_s
        trains = self.bench.spikes(self._terminal(channel), -math.inf, now)
        trains = [t for t in trains if t.times_s.size]
        if not trains:
            return NAN_READING
        t = trains[0]
        r_s = self.sense_ohm or (t.r_load_ohm if t.r_load_ohm > 0 else DEFAULT_SENSE_OHM)
        r_in = r_s * inp.impedance / (r_s + inp.impedance)
        return (t.base_a + inp.rel_pct / 100 * (t.peak_a - t.base_a)) * r_in

    @scpi("INPut#:LEVel#:AUTO", nargs=1)
    def _lev_auto(self, cmd: Command) -> None:
        if cmd.arg(0).upper() == "ONCE":
            inp = self._input(cmd)
            level = self._auto_level(cmd.suffix, replace(inp, auto=True))
            self._set_input(cmd, auto=False,
                            level_v=inp.level_v if level >= INF else level)
            return
        self._set_input(cmd, auto=cmd.boolean(0))

    @scpi("INPut#:LEVel#:AUTO?", nargs=0)
    def _lev_auto_q(self, cmd: Command) -> str:
        return "1" if self._input(cmd).auto else "0"

    @scpi("INPut#:LEVel#:RELative", nargs=1)
    def _lev_rel(self, cmd: Command) -> None:
        value = cmd.number(0, minimum=10.0, maximum=90.0, default=50.0, unit="PCT")
        self._set_input(cmd, rel_pct=5.0 * round(value / 5.0))

    @scpi("INPut#:LEVel#:RELative?", nargs=(0, 1))
    def _lev_rel_q(self, cmd: Command) -> str:
        return f"{round(self._input(cmd).rel_pct):+d}"

    # ================================================================== SYSTem
    @scpi("SYSTem:TIMeout", nargs=1)
    def _timeout(self, cmd: Command) -> None:
        text = cmd.arg(0).upper()
        if text in ("DEF", "DEFAULT"):
            self.timeout = math.inf  # "9.9E+37 (disabled)" (Programmer's Reference p.459)
            return
        value = cmd.number(0, minimum=None, maximum=None, default=INF, unit="S",
                           keywords=("INFinity",))
        if text in ("MIN", "MINIMUM"):
            value = TIMEOUT_MIN_S
        elif text in ("MAX", "MAXIMUM"):
            value = TIMEOUT_MAX_S
        if math.isinf(value) or value >= INF:
            self.timeout = math.inf
            return
        if not TIMEOUT_MIN_S * (1 - 1e-9) <= value <= TIMEOUT_MAX_S * (1 + 1e-12):
            raise ScpiError(-222)
        self.timeout = round(value * 1e3) * 1e-3

    @scpi("SYSTem:TIMeout?", nargs=(0, 1))
    def _timeout_q(self, cmd: Command) -> str:
        value = self.timeout
        if cmd.has(0):
            which = cmd.choice(0, ("MINimum", "MAXimum", "DEFault"))
            value = {"MIN": TIMEOUT_MIN_S, "MAX": TIMEOUT_MAX_S, "DEF": math.inf}[which]
        return _setting(value)


def _positive(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ParameterError(f"{where} = {value!r}: must be a number > 0")
    return float(value)


def _gate_source(cmd: Command) -> str:
    """TIME | EXTernal | INPut[1] | INPut2 | ADVanced, as its short form (INP1 / INP2)."""
    text = cmd.arg(0).upper()
    if text in ("INP", "INPUT", "INP1", "INPUT1"):
        return "INP1"
    if text in ("INP2", "INPUT2"):
        return "INP2"
    return cmd.choice(0, GATE_SOURCES)


class Keysight53220ASim(_Counter532x0Sim):
    # a real unit's reply, printed in the fastruments Keysight53220A driver's docstring
    idn = "Agilent Technologies,53220A,MY63260252,03.02-1924.2831-3.15-4.16-127-159-35"
    gate_min_s = 100e-6  # gates 100 us .. 1000 s in 10 us steps (User's Guide p.108)
    gate_step_s = 10e-6
    gate_column = 1


class Keysight53230ASim(_Counter532x0Sim):
    # a real unit's reply, quoted in a comment of a public 53230A vxi11 script
    idn = "Agilent Technologies,53230A,MY50001484,02.05-1519.666-1.19-4.15-127-155-35"
    gate_min_s = 1e-6  # gates 1 us .. 1000 s in 1 us steps (User's Guide p.108)
    gate_step_s = 1e-6
    gate_column = 2

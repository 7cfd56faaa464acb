"""Simulated Keysight 33500B / 33600A waveform generators: one SCPI family, two channels each.

The bench sees the open-circuit voltage (programmed level / OUTP:LOAD factor); a triggered burst
is one ``bench.drive``; free-running outputs are applied in catch-up chunks (see ``_catch_up``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from sim_backend.bench import Bench
from sim_backend.instruments.options import check_options, model_idn
from sim_backend.physics.waveform import Waveform
from sim_backend.scpi import Command, ScpiError, ScpiInstrument, parse_block, scpi

__all__ = ["Keysight33500BSim", "Keysight33600ASim"]

SOURCE_OHM = 50.0  # fixed series output impedance (33500 operating guide, "Output Termination")
V_OPEN_MAX = 10.0  # |level| limit of the open-circuit voltage (+-5 V into 50 ohm)
AMP_OPEN_MIN = 2e-3  # 1 mVpp into 50 ohm = 2 mVpp open circuit
INF_REPLY = 9.9e37  # SCPI "infinity" in replies (LOAD?, NCYC?)
FUNCTIONS = ("SINusoid", "SQUare", "TRIangle", "RAMP", "PULSe", "PRBS", "NOISe", "ARB", "DC")
NO_PHYSICS = ("PRBS", "NOIS")  # accepted, but the simulation cannot produce them
NO_PHYSICS_MODES = ("SWE", "LIST")  # FREQuency:MODE values accepted but not simulated
ANGLE_MAX = {"DEG": 360.0, "RAD": 2 * math.pi}  # PHASe range is -MAX .. +MAX in UNIT:ANGLe
CREST = {"SIN": 2 * math.sqrt(2), "SQU": 2.0, "TRI": 2 * math.sqrt(3), "RAMP": 2 * math.sqrt(3)}
ARB_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,11}")  # 12 characters (not in the notes)
EDGE_SEGMENTS = 4  # PWC sub-segments per pulse edge (midpoint-held, as physics.waveform.ramp)
SINE_SEGMENTS = 64  # PWC segments per sine period
CHUNK_SEGMENTS = 100_000  # segments per bench.drive call for long trains
MAX_CATCH_UP_SEGMENTS = 200_000  # free-running catch-up applies at most this many (latest) ones


@dataclass(frozen=True)
class _Limits:
    """Model limits; numbers not in the research notes are marked where they are set."""

    width_min_s: float
    edge_min_s: float
    edge_max_s: float
    freq_max_hz: Mapping[str, float]
    srate_max_sa_s: float
    arb_points_max: int
    memory_points: int


@dataclass
class _Channel:
    """One output's settings; levels are stored as open-circuit voltages (EMF)."""

    output: bool = False
    load: float = 50.0
    polarity: str = "NORM"
    func: str = "SIN"
    freq: float = 1e3
    amp: float = 0.2  # 100 mVpp into 50 ohm = 200 mVpp open circuit
    off: float = 0.0
    unit: str = "VPP"
    lim_high: float = 5.0  # in display units (the instrument cannot know the load they meant)
    lim_low: float = -5.0
    lim_on: bool = False
    width: float = 100e-6
    dcyc: float = 10.0
    hold: str = "WIDT"
    lead: float = 10e-9  # default edge time: not in the notes
    trail: float = 10e-9
    sq_dcyc: float = 50.0
    symmetry: float = 100.0
    burst: bool = False
    burst_mode: str = "TRIG"
    ncyc: float = 1.0
    burst_period: float = 10e-3
    burst_phase: float = 0.0
    gate_pol: str = "NORM"
    trig_src: str = "IMM"
    trig_delay: float = 0.0
    trig_slope: str = "POS"
    trig_timer: float = 1.0
    trig_count: float = 1.0
    arb: str | None = None
    srate: float = 40e3  # default arbitrary sample rate: not in the notes
    arb_filter: str = "NORM"
    arb_advance: str = "SRAT"
    phase: float = 0.0  # degrees (PHASe; shown in UNIT:ANGLe units)
    freq_mode: str = "CW"
    sync_mode: str = "NORM"
    sync_pol: str = "NORM"
    inf_running: bool = False  # an infinite burst was triggered and is still running
    run: _Run | None = None
    burst_cache: Waveform | None = None

    @property
    def high(self) -> float:
        return self.off + self.amp / 2

    @property
    def low(self) -> float:
        return self.off - self.amp / 2


@dataclass
class _Run:
    """A free-running periodic pattern, applied lazily: ``phase`` s of it up to bench ``since``."""

    v: np.ndarray
    dt: np.ndarray
    period: float
    phase: float
    since: float


@dataclass
class _Arb:
    name: str
    samples: np.ndarray = field(repr=False)  # -1 .. +1


def _nr3(value: float) -> str:
    """33500-style numeric reply: ``+1.000000000000000E+03``; infinity as 9.9E+37."""
    if math.isinf(value) or value >= INF_REPLY:
        return "+9.900000000000000E+37"
    return f"{float(f'{value:.12e}') + 0.0:+.15E}"  # 12 digits hide float noise (EMF / load)


def _ramp(v0: float, v1: float, dur: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    edges = np.linspace(v0, v1, n + 1)
    return (edges[:-1] + edges[1:]) / 2, np.full(n, dur / n)


def _join(*parts: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    v = np.concatenate([p[0] for p in parts])
    dt = np.concatenate([p[1] for p in parts])
    keep = dt > 0
    return v[keep], dt[keep]


def _window(v: np.ndarray, dt: np.ndarray, start: float, length: float) -> Waveform:
    """``[start, start + length)`` of the periodic extension of one PWC period."""
    period = float(dt.sum())
    s = start % period
    n = math.ceil((s + length) / period) + 1
    vv, dd = np.tile(v, n), np.tile(dt, n)
    t = np.concatenate(([0.0], np.cumsum(dd)))
    i = max(int(np.searchsorted(t, s, side="right")) - 1, 0)
    j = min(int(np.searchsorted(t, s + length, side="left")), len(dd))
    vv, dd = vv[i:j].copy(), dd[i:j].copy()
    dd[0] -= s - t[i]
    dd[-1] -= t[j] - (s + length)
    keep = dd > 1e-12 * period  # rounding slivers at the cut points
    return Waveform(vv[keep], dd[keep])


class _Keysight33x00Sim(ScpiInstrument):
    """Shared 33500B/33600A model. Subclasses set ``idn`` and ``limits``.

    Out-of-range values: -222, not applied. Coupled settings: a period/frequency or function
    change adjusts the held width, duty cycle and edges silently ("the instrument will adjust",
    operating guide p. 69); an explicit width, edge, duty cycle or level that conflicts with the
    others or with enabled voltage limits is -221 and not applied.
    """

    error_format: ClassVar[str] = '{code:+d},"{message}"'
    error_queue_size: ClassVar[int] = 20
    suffix_range: ClassVar[tuple[int, int]] = (1, 2)
    stop_on_error: ClassVar[bool] = False
    limits: ClassVar[_Limits]
    options_allowed: ClassVar[frozenset[str]] = frozenset({"idn", "serial"})

    def __init__(self, bench: Bench, name: str, options: Mapping[str, Any] | None = None) -> None:
        where = f"{type(self).__name__} {name!r}"
        opts = check_options(options, self.options_allowed, where)
        idn = model_idn(opts, self.idn, where)
        super().__init__(idn)
        self.bench = bench
        self.name = name
        self.terms = {1: f"{name}/1", 2: f"{name}/2"}
        self.ch = {1: _Channel(), 2: _Channel()}
        self.arbs: dict[int, dict[str, _Arb]] = {1: {}, 2: {}}
        self.swap = False  # FORM:BORD SWAP: binary blocks are little-endian
        self._dirty: set[int] = set()
        self.beeper = True  # SYSTem:BEEPer:STATe: kept through *RST (non-volatile)
        self._reset_instrument()

    def _reset_instrument(self) -> None:
        """*RST values of the settings that belong to the instrument, not to a channel."""
        self.sync_on = True  # OUTPut:SYNC
        self.sync_source = 1  # OUTPut:SYNC:SOURce CH1
        self.trig_out = False  # OUTPut:TRIGger
        self.trig_out_slope = "POS"
        self.trig_out_source = 1
        self.angle_unit = "DEG"  # UNIT:ANGLe
        self.phase_unlock_error = False  # PHASe:UNLock:ERRor:STATe
        self.display_on = True
        self.display_text = ""

    # ------------------------------------------------------------------ engine hooks
    def handle(self, message: str | bytes) -> bytes | None:
        """Bring free-running outputs up to now, run the message, then apply what changed."""
        with self.bench.lock:
            self._catch_up()
            reply = super().handle(message)
            self._flush()
            return reply

    def reset(self) -> None:
        """*RST: outputs off (relays open) and defaults; volatile arbitrary waveforms are kept."""
        for c in (1, 2):
            self.ch[c] = _Channel()
            self.bench.source(self.terms[c], None)
        self.swap = False
        self._dirty.clear()
        self._reset_instrument()

    def trigger(self) -> None:
        """*TRG: one burst on every channel whose trigger source is BUS."""
        self._flush()
        fired = [
            c for c in (1, 2)
            if self.ch[c].burst and self.ch[c].burst_mode == "TRIG" and self.ch[c].trig_src == "BUS"
        ]
        if not fired:
            raise ScpiError(-211, "Trigger ignored")
        for c in fired:  # the bench drives one terminal at a time: channel 1, then 2
            self._fire(c)

    # ------------------------------------------------------------------ helpers
    def _st(self, cmd: Command) -> _Channel:
        self._dirty.add(cmd.suffix)
        return self.ch[cmd.suffix]

    @staticmethod
    def _k(st: _Channel) -> float:
        """Display / open-circuit voltage ratio for the programmed load (a 50 ohm divider)."""
        return 1.0 if math.isinf(st.load) else st.load / (st.load + SOURCE_OHM)

    def _fmax(self, func: str) -> float:
        return self.limits.freq_max_hz.get(func, self.limits.freq_max_hz["SIN"])

    def _query_num(self, cmd: Command, value: float, lo: float, hi: float, dflt: float) -> str:
        """Numeric query with the optional MIN|MAX|DEF parameter."""
        if cmd.has(0):
            which = cmd.choice(0, ("MINimum", "MAXimum", "DEFault"))
            value = {"MIN": lo, "MAX": hi, "DEF": dflt}[which]
        return _nr3(value)

    def _check_limits(self, st: _Channel, func: str, off: float, amp: float) -> None:
        """Enabled voltage limits: the new output range (display units) must stay inside."""
        if not st.lim_on:
            return
        k = self._k(st)
        half = 0.0 if func == "DC" else amp / 2
        eps = 1e-9
        if (off + half) * k > st.lim_high + eps or (off - half) * k < st.lim_low - eps:
            raise ScpiError(-221)

    def _set_levels(self, st: _Channel, off: float, amp: float) -> None:
        """Offset and amplitude (open circuit) that must fit together and inside the limits."""
        if st.func != "DC" and (
            amp < AMP_OPEN_MIN * (1 - 1e-9) or abs(off) + amp / 2 > V_OPEN_MAX * (1 + 1e-12)
        ):
            raise ScpiError(-221)
        self._check_limits(st, st.func, off, amp)
        st.off, st.amp = off, amp

    def _pulse_period(self, st: _Channel) -> float:
        """The pulse period: 1/FREQ, at least the shortest pulse period (FREQ may be a sine's)."""
        return max(1.0 / st.freq, 1.0 / self._fmax("PULS"))

    def _fit_pulse(self, st: _Channel) -> None:
        """After a period change: keep the held width or duty cycle, then shrink edges to fit."""
        period, wmin = self._pulse_period(st), self.limits.width_min_s
        width = st.dcyc / 100 * period if st.hold == "DCYC" else st.width
        st.width = min(max(width, wmin), period - wmin)
        st.dcyc = 100 * st.width / period
        self._fit_edges(st)

    def _fit_edges(self, st: _Channel) -> None:
        room = 0.625 * min(st.width, self._pulse_period(st) - st.width)
        st.lead, st.trail = min(st.lead, room), min(st.trail, room)

    # ------------------------------------------------------------------ physics
    def _cycle(self, c: int) -> tuple[np.ndarray, np.ndarray] | None:
        """One period (open-circuit volts, polarity applied) at phase 0; None for a flat output."""
        st = self.ch[c]
        hi, lo, off = st.high, st.low, st.off
        period = 1.0 / st.freq
        if st.func == "PULS":
            period = self._pulse_period(st)
            e_l, e_t = 1.25 * st.lead, 1.25 * st.trail  # 10-90 % times -> full linear edges
            v, dt = _join(
                _ramp(lo, hi, e_l, EDGE_SEGMENTS),
                (np.array([hi]), np.array([st.width - (e_l + e_t) / 2])),
                _ramp(hi, lo, e_t, EDGE_SEGMENTS),
                (np.array([lo]), np.array([period - st.width - (e_l + e_t) / 2])),
            )
        elif st.func == "SQU":
            d = st.sq_dcyc / 100
            v, dt = np.array([hi, lo]), np.array([d * period, (1 - d) * period])
        elif st.func == "SIN":
            x = (np.arange(SINE_SEGMENTS) + 0.5) / SINE_SEGMENTS
            v = off + (hi - off) * np.sin(2 * np.pi * x)
            dt = np.full(SINE_SEGMENTS, period / SINE_SEGMENTS)
        elif st.func in ("TRI", "RAMP"):
            s = 0.5 if st.func == "TRI" else st.symmetry / 100
            rise, fall = s * period, (1 - s) * period  # 0 deg: the rising offset crossing
            v, dt = _join(
                _ramp(off, hi, rise / 2, 16), _ramp(hi, lo, fall, 32), _ramp(lo, off, rise / 2, 16)
            )
        elif st.func == "ARB" and st.arb is not None:
            arb = self.arbs[c][st.arb.upper()]
            v = off + arb.samples * (hi - lo) / 2
            dt = np.full(v.size, 1.0 / st.srate)
        else:
            return None  # DC, or no arbitrary waveform selected: the offset level
        if st.polarity == "INV":
            v = 2 * off - v
        return v, dt

    def _burst_cycle(self, c: int) -> tuple[np.ndarray, np.ndarray] | None:
        """One period rotated to the burst start phase (pulses always start at the leading edge)."""
        cyc = self._cycle(c)
        st = self.ch[c]
        if cyc is None or st.func == "PULS" or st.burst_phase == 0:
            return cyc
        v, dt = cyc
        period = float(dt.sum())
        w = _window(v, dt, (st.burst_phase / 360) % 1 * period, period)
        return w.v, w.dt

    def _plan(self, c: int) -> tuple[float, _Run | None]:
        """What an enabled output does now: a held level, and a free-running pattern if any."""
        st = self.ch[c]
        cyc = self._burst_cycle(c) if st.burst else self._cycle(c)
        if cyc is None:
            return st.off, None
        v, dt = cyc
        idle = float(v[-1])  # the level just before phase 0: LOW for pulses
        if not st.burst:  # free running: starts at the programmed phase (PHASe)
            run = self._run(v, dt)
            run.phase = (st.phase / 360.0) % 1.0 * run.period
            return idle, run
        if st.burst_mode == "GAT":
            return idle, None  # the external gate never opens on the bench
        if st.trig_src in ("BUS", "EXT"):
            return idle, (self._run(v, dt) if st.inf_running else None)
        if math.isinf(st.ncyc):
            return idle, self._run(v, dt)
        # Internally repeated bursts (IMM: BURS:INT:PER, TIM: TRIG:TIM), lengthened if too short.
        burst_s = st.ncyc * float(dt.sum())
        repeat = st.burst_period if st.trig_src == "IMM" else st.trig_timer
        gap = max(repeat - burst_s - st.trig_delay, 0.0)
        if st.ncyc * v.size > MAX_CATCH_UP_SEGMENTS:  # near-continuous: run the period itself
            return idle, self._run(v, dt)
        n = int(st.ncyc)
        pattern = _join(
            (np.array([idle]), np.array([st.trig_delay])),
            (np.tile(v, n), np.tile(dt, n)),
            (np.array([idle]), np.array([gap])),
        )
        return idle, self._run(*pattern)

    def _run(self, v: np.ndarray, dt: np.ndarray) -> _Run:
        return _Run(v, dt, float(dt.sum()), 0.0, self.bench.now_s)

    def _apply(self, c: int) -> None:
        """Make the bench show this channel's present settings from now on."""
        st = self.ch[c]
        st.run, st.burst_cache = None, None
        if not st.output:
            self.bench.source(self.terms[c], None)
            return
        level, run = self._plan(c)
        self.bench.source(self.terms[c], level)
        st.run = run

    def _flush(self) -> None:
        while self._dirty:
            self._apply(self._dirty.pop())

    def _drive_window(
        self, c: int, v: np.ndarray, dt: np.ndarray, start: float, length: float
    ) -> None:
        """Drive ``length`` s of a periodic pattern from ``start``, in bounded chunks."""
        period = float(dt.sum())
        step = max(1, CHUNK_SEGMENTS // v.size) * period
        pos, end = start, start + length
        while end - pos > 1e-12 * max(period, 1e-30):
            n = min(step, end - pos)
            self.bench.drive(self.terms[c], _window(v, dt, pos, n))
            pos += n

    def _catch_up(self) -> None:
        """Apply what free-running outputs played since the last catch-up (an approximation).

        The bench cannot replay the past, so the elapsed interval is driven from now: the
        pattern lands late, the clock advances by that interval a second time, and in between
        other instruments saw this terminal at its idle level. Only the latest
        ``MAX_CATCH_UP_SEGMENTS`` segments are applied (volatile devices forget the rest).
        """
        now = self.bench.now_s
        todo = []
        for c in (1, 2):
            run = self.ch[c].run
            if run is not None and now > run.since:
                todo.append((c, run, now - run.since))
        for c, run, elapsed in todo:
            keep = max(1, MAX_CATCH_UP_SEGMENTS // run.v.size) * run.period
            skip = max(elapsed - keep, 0.0)
            self._drive_window(c, run.v, run.dt, run.phase + skip, elapsed - skip)
            run.phase = (run.phase + elapsed) % run.period
        for _c, run, _e in todo:
            run.since = self.bench.now_s

    def _fire(self, c: int) -> None:
        """One trigger: the burst (after TRIG:DEL) as one drive; the clock advances by it."""
        st = self.ch[c]
        if math.isinf(st.ncyc):
            if st.output and st.trig_delay > 0:
                self.bench.drive(self.terms[c], Waveform(np.array([self._plan(c)[0]]),
                                                         np.array([st.trig_delay])))
            st.inf_running = True
            self._apply(c)
            return
        cyc = self._burst_cycle(c)
        if cyc is None or not st.output:
            period = 0.0 if cyc is None else float(cyc[1].sum())
            self.bench.advance(st.trig_delay + st.ncyc * period)
            return
        v, dt = cyc
        n = int(st.ncyc)
        if n * v.size > CHUNK_SEGMENTS:
            if st.trig_delay > 0:
                self.bench.drive(self.terms[c], Waveform(v[-1:], np.array([st.trig_delay])))
            self._drive_window(c, v, dt, 0.0, n * float(dt.sum()))
            return
        if st.burst_cache is None:
            parts = [(np.tile(v, n), np.tile(dt, n))]
            if st.trig_delay > 0:
                parts.insert(0, (v[-1:], np.array([st.trig_delay])))
            st.burst_cache = Waveform(*_join(*parts))
        self.bench.drive(self.terms[c], st.burst_cache)

    # ================================================================== OUTPut
    @scpi("OUTPut#[:STATe]", nargs=1)
    def _outp(self, cmd: Command) -> None:
        on = cmd.boolean()
        st = self._st(cmd)
        if on and (st.func in NO_PHYSICS or st.freq_mode in NO_PHYSICS_MODES):
            raise ScpiError(-221)  # noise/PRBS, frequency sweeps and lists are not simulated
        if not on:
            st.inf_running = False
        st.output = on

    @scpi("OUTPut#[:STATe]?", nargs=0)
    def _outp_q(self, cmd: Command) -> str:
        return "1" if self.ch[cmd.suffix].output else "0"

    @scpi("OUTPut#:LOAD", nargs=1)
    def _load(self, cmd: Command) -> None:
        ohm = cmd.number(0, minimum=1.0, maximum=10e3, default=50.0, keywords=("INFinity",),
                         unit="OHM")
        st = self.ch[cmd.suffix]
        if st.lim_on and ohm != st.load:
            raise ScpiError(-221)  # limits enabled: the guide forbids changing the termination
        st.load = ohm
        if math.isinf(ohm) and st.unit == "DBM":
            st.unit = "VPP"

    @scpi("OUTPut#:LOAD?", nargs=(0, 1))
    def _load_q(self, cmd: Command) -> str:
        return self._query_num(cmd, self.ch[cmd.suffix].load, 1.0, 10e3, 50.0)

    @scpi("OUTPut#:POLarity", nargs=1)
    def _pol(self, cmd: Command) -> None:
        self._st(cmd).polarity = cmd.choice(0, ("NORMal", "INVerted"))

    @scpi("OUTPut#:POLarity?", nargs=0)
    def _pol_q(self, cmd: Command) -> str:
        return self.ch[cmd.suffix].polarity

    # ================================================================== OUTPut:SYNC, :TRIGger
    # Operating and service guide, OUTPut subsystem: the Sync connector (state and source for
    # the instrument, mode and polarity per channel) and the rear Trig Out connector. Stored
    # and reported; the bench has no wire on either connector.
    @scpi("OUTPut:SYNC[:STATe]", nargs=1)
    def _sync(self, cmd: Command) -> None:
        self.sync_on = cmd.boolean()

    @scpi("OUTPut:SYNC[:STATe]?", nargs=0)
    def _sync_q(self, cmd: Command) -> str:
        return "1" if self.sync_on else "0"

    @scpi("OUTPut:SYNC:SOURce", nargs=1)
    def _sync_src(self, cmd: Command) -> None:
        self.sync_source = 1 if cmd.choice(0, ("CH1", "CH2")) == "CH1" else 2

    @scpi("OUTPut:SYNC:SOURce?", nargs=0)
    def _sync_src_q(self, cmd: Command) -> str:
        return f"CH{self.sync_source}"

    @scpi("OUTPut#:SYNC:MODE", nargs=1)
    def _sync_mode(self, cmd: Command) -> None:
        self.ch[cmd.suffix].sync_mode = cmd.choice(0, ("NORMal", "CARRier", "MARKer"))

    @scpi("OUTPut#:SYNC:MODE?", nargs=0)
    def _sync_mode_q(self, cmd: Command) -> str:
        return self.ch[cmd.suffix].sync_mode

    @scpi("OUTPut#:SYNC:POLarity", nargs=1)
    def _sync_pol(self, cmd: Command) -> None:
        self.ch[cmd.suffix].sync_pol = cmd.choice(0, ("NORMal", "INVerted"))

    @scpi("OUTPut#:SYNC:POLarity?", nargs=0)
    def _sync_pol_q(self, cmd: Command) -> str:
        return self.ch[cmd.suffix].sync_pol

    @scpi("OUTPut:TRIGger[:STATe]", nargs=1)
    def _trig_out(self, cmd: Command) -> None:
        self.trig_out = cmd.boolean()

    @scpi("OUTPut:TRIGger[:STATe]?", nargs=0)
    def _trig_out_q(self, cmd: Command) -> str:
        return "1" if self.trig_out else "0"

    @scpi("OUTPut:TRIGger:SLOPe", nargs=1)
    def _trig_out_slope(self, cmd: Command) -> None:
        self.trig_out_slope = cmd.choice(0, ("POSitive", "NEGative"))

    @scpi("OUTPut:TRIGger:SLOPe?", nargs=0)
    def _trig_out_slope_q(self, cmd: Command) -> str:
        return self.trig_out_slope

    @scpi("OUTPut:TRIGger:SOURce", nargs=1)
    def _trig_out_src(self, cmd: Command) -> None:
        self.trig_out_source = 1 if cmd.choice(0, ("CH1", "CH2")) == "CH1" else 2

    @scpi("OUTPut:TRIGger:SOURce?", nargs=0)
    def _trig_out_src_q(self, cmd: Command) -> str:
        return f"CH{self.trig_out_source}"

    # ================================================================== PHASe, UNIT:ANGLe
    # SOURce subsystem, PHASe: the phase offset of a free-running waveform (bursts start at
    # BURSt:PHASe instead), -360..+360 degrees (or the same in radians), default 0.
    def _angle(self, degrees: float) -> float:
        return degrees if self.angle_unit == "DEG" else math.radians(degrees)

    @scpi("[:SOURce#]:PHASe[:ADJust]", nargs=1)
    def _phase(self, cmd: Command) -> None:
        top = ANGLE_MAX[self.angle_unit]
        value = cmd.number(0, minimum=-top, maximum=top, default=0.0)
        self._st(cmd).phase = value if self.angle_unit == "DEG" else math.degrees(value)

    @scpi("[:SOURce#]:PHASe[:ADJust]?", nargs=(0, 1))
    def _phase_q(self, cmd: Command) -> str:
        top = ANGLE_MAX[self.angle_unit]
        return self._query_num(cmd, self._angle(self.ch[cmd.suffix].phase), -top, top, 0.0)

    @scpi("[:SOURce#]:PHASe:SYNChronize", nargs=0)
    def _phase_sync(self, cmd: Command) -> None:
        """Restart both channels at their programmed phases at the same instant."""
        self._dirty.update((1, 2))

    @scpi("[:SOURce#]:PHASe:REFerence", nargs=0)
    def _phase_ref(self, cmd: Command) -> None:
        """Sets a new zero-phase reference without changing the output (nothing to simulate)."""

    @scpi("[:SOURce#]:PHASe:UNLock:ERRor[:STATe]", nargs=1)
    def _phase_unlock(self, cmd: Command) -> None:
        self.phase_unlock_error = cmd.boolean()

    @scpi("[:SOURce#]:PHASe:UNLock:ERRor[:STATe]?", nargs=0)
    def _phase_unlock_q(self, cmd: Command) -> str:
        return "1" if self.phase_unlock_error else "0"

    @scpi("UNIT:ANGLe", nargs=1)
    def _angle_unit(self, cmd: Command) -> None:
        unit = cmd.choice(0, ("DEGree", "RADian", "DEFault"))
        self.angle_unit = "DEG" if unit == "DEF" else unit

    @scpi("UNIT:ANGLe?", nargs=0)
    def _angle_unit_q(self, cmd: Command) -> str:
        return self.angle_unit

    # ================================================================== DISPlay, SYSTem:BEEPer
    @scpi("DISPlay[:STATe]", nargs=1)
    def _display(self, cmd: Command) -> None:
        self.display_on = cmd.boolean()

    @scpi("DISPlay[:STATe]?", nargs=0)
    def _display_q(self, cmd: Command) -> str:
        return "1" if self.display_on else "0"

    @scpi("DISPlay:TEXT[:DATA]", nargs=1)
    def _display_text(self, cmd: Command) -> None:
        self.display_text = cmd.string(0)

    @scpi("DISPlay:TEXT[:DATA]?", nargs=0)
    def _display_text_q(self, cmd: Command) -> str:
        return '"' + self.display_text.replace('"', '""') + '"'

    @scpi("DISPlay:TEXT:CLEar", nargs=0)
    def _display_clear(self, cmd: Command) -> None:
        self.display_text = ""

    @scpi("SYSTem:BEEPer[:IMMediate]", nargs=0)
    def _beep(self, cmd: Command) -> None:
        """One beep (when the beeper is enabled): nothing reaches the bench."""

    @scpi("SYSTem:BEEPer:STATe", nargs=1)
    def _beeper(self, cmd: Command) -> None:
        self.beeper = cmd.boolean()

    @scpi("SYSTem:BEEPer:STATe?", nargs=0)
    def _beeper_q(self, cmd: Command) -> str:
        return "1" if self.beeper else "0"

    # ================================================================== FUNCtion, FREQuency
    @scpi("[:SOURce#]:FUNCtion", nargs=1)
    def _func(self, cmd: Command) -> None:
        f = cmd.choice(0, FUNCTIONS)
        st = self.ch[cmd.suffix]
        if st.output and f in NO_PHYSICS:
            raise ScpiError(-221)
        if st.burst and (f == "DC" or (f == "NOIS" and st.burst_mode == "TRIG")):
            raise ScpiError(-221)  # DC cannot burst; noise only in gated bursts
        off, amp = st.off, st.amp
        if f != "DC" and abs(off) + amp / 2 > V_OPEN_MAX:  # leaving DC: the amplitude gives way
            amp = max(2 * (V_OPEN_MAX - abs(off)), AMP_OPEN_MIN)
            off = math.copysign(min(abs(off), V_OPEN_MAX - amp / 2), off)
        self._check_limits(st, f, off, amp)
        st = self._st(cmd)
        st.func, st.off, st.amp = f, off, amp
        if f not in CREST:
            st.unit = "VPP"
        if f in self.limits.freq_max_hz and st.freq > self._fmax(f):
            st.freq = self._fmax(f)
        self._fit_pulse(st)
        self._fit_square(st)

    @scpi("[:SOURce#]:FUNCtion?", nargs=0)
    def _func_q(self, cmd: Command) -> str:
        return self.ch[cmd.suffix].func

    def _set_freq(self, cmd: Command, freq: float) -> None:
        st = self._st(cmd)
        st.freq = freq
        self._fit_pulse(st)
        self._fit_square(st)

    def _square_dmin(self, st: _Channel) -> float:
        """Each half of a square wave lasts at least the minimum pulse width (50 % at the top)."""
        return min(100 * self.limits.width_min_s * st.freq, 50.0)

    def _fit_square(self, st: _Channel) -> None:
        d_min = self._square_dmin(st)
        st.sq_dcyc = min(max(st.sq_dcyc, d_min), 100 - d_min)

    @scpi("[:SOURce#]:FREQuency", nargs=1)
    def _freq(self, cmd: Command) -> None:
        st = self.ch[cmd.suffix]
        fmax = self._fmax(st.func)
        self._set_freq(cmd, cmd.number(0, minimum=1e-6, maximum=fmax, default=1e3, unit="HZ"))

    @scpi("[:SOURce#]:FREQuency?", nargs=(0, 1))
    def _freq_q(self, cmd: Command) -> str:
        st = self.ch[cmd.suffix]
        return self._query_num(cmd, st.freq, 1e-6, self._fmax(st.func), 1e3)

    @scpi("[:SOURce#]:FREQuency:MODE", nargs=1)
    def _freq_mode(self, cmd: Command) -> None:
        """CW|FIXed (one frequency), SWEep or LIST: stored; the last two are not simulated, so
        they are refused while the output is on (as noise and PRBS are)."""
        mode = cmd.choice(0, ("CW", "FIXed", "SWEep", "LIST"))
        st = self.ch[cmd.suffix]
        if st.output and mode in NO_PHYSICS_MODES:
            raise ScpiError(-221)
        self._st(cmd).freq_mode = mode

    @scpi("[:SOURce#]:FREQuency:MODE?", nargs=0)
    def _freq_mode_q(self, cmd: Command) -> str:
        return self.ch[cmd.suffix].freq_mode

    # ================================================================== pulse
    def _period_range(self) -> tuple[float, float]:
        return 1.0 / self._fmax("PULS"), 1e6

    @scpi("[:SOURce#]:FUNCtion:PULSe:PERiod", nargs=1)
    def _puls_per(self, cmd: Command) -> None:
        lo, hi = self._period_range()
        self._set_freq(cmd, 1.0 / cmd.number(0, minimum=lo, maximum=hi, default=1e-3, unit="S"))

    @scpi("[:SOURce#]:FUNCtion:PULSe:PERiod?", nargs=(0, 1))
    def _puls_per_q(self, cmd: Command) -> str:
        lo, hi = self._period_range()
        return self._query_num(cmd, 1.0 / self.ch[cmd.suffix].freq, lo, hi, 1e-3)

    @scpi("[:SOURce#]:FUNCtion:PULSe:WIDTh", nargs=1)
    def _puls_width(self, cmd: Command) -> None:
        wmin = self.limits.width_min_s
        w = cmd.number(0, minimum=wmin, maximum=1e6, default=100e-6, unit="S")
        st = self.ch[cmd.suffix]
        period = self._pulse_period(st)
        if w > period - wmin * (1 - 1e-9):
            raise ScpiError(-221)
        st = self._st(cmd)
        st.width, st.dcyc = w, 100 * w / period
        self._fit_edges(st)

    @scpi("[:SOURce#]:FUNCtion:PULSe:WIDTh?", nargs=(0, 1))
    def _puls_width_q(self, cmd: Command) -> str:
        return self._query_num(cmd, self.ch[cmd.suffix].width, self.limits.width_min_s, 1e6, 100e-6)

    @scpi("[:SOURce#]:FUNCtion:PULSe:DCYCle", nargs=1)
    def _puls_dcyc(self, cmd: Command) -> None:
        d = cmd.number(0, minimum=0.01, maximum=99.99, default=10.0)
        st = self.ch[cmd.suffix]
        period, wmin = self._pulse_period(st), self.limits.width_min_s
        w = d / 100 * period
        if not wmin * (1 - 1e-9) <= w <= (period - wmin) * (1 + 1e-9):
            raise ScpiError(-221)
        st = self._st(cmd)
        st.width, st.dcyc = w, d
        self._fit_edges(st)

    @scpi("[:SOURce#]:FUNCtion:PULSe:DCYCle?", nargs=(0, 1))
    def _puls_dcyc_q(self, cmd: Command) -> str:
        return self._query_num(cmd, self.ch[cmd.suffix].dcyc, 0.01, 99.99, 10.0)

    @scpi("[:SOURce#]:FUNCtion:PULSe:HOLD", nargs=1)
    def _puls_hold(self, cmd: Command) -> None:
        self.ch[cmd.suffix].hold = cmd.choice(0, ("WIDTh", "DCYCle"))

    @scpi("[:SOURce#]:FUNCtion:PULSe:HOLD?", nargs=0)
    def _puls_hold_q(self, cmd: Command) -> str:
        return self.ch[cmd.suffix].hold

    def _edge(self, cmd: Command) -> float:
        lim = self.limits
        t = cmd.number(0, minimum=lim.edge_min_s, maximum=lim.edge_max_s, default=10e-9, unit="S")
        st = self.ch[cmd.suffix]
        if t > 0.625 * min(st.width, self._pulse_period(st) - st.width) * (1 + 1e-9):
            raise ScpiError(-221)  # edge <= 0.625 x width (and x the off time)
        return t

    @scpi("[:SOURce#]:FUNCtion:PULSe:TRANsition[:BOTH]", nargs=1)
    def _tran_both(self, cmd: Command) -> None:
        t = self._edge(cmd)
        st = self._st(cmd)
        st.lead = st.trail = t

    @scpi("[:SOURce#]:FUNCtion:PULSe:TRANsition:LEADing", nargs=1)
    def _tran_lead(self, cmd: Command) -> None:
        t = self._edge(cmd)
        self._st(cmd).lead = t

    @scpi("[:SOURce#]:FUNCtion:PULSe:TRANsition:TRAiling", nargs=1)
    def _tran_trail(self, cmd: Command) -> None:
        t = self._edge(cmd)
        self._st(cmd).trail = t

    @scpi("[:SOURce#]:FUNCtion:PULSe:TRANsition[:BOTH]?", nargs=(0, 1))
    @scpi("[:SOURce#]:FUNCtion:PULSe:TRANsition:LEADing?", nargs=(0, 1))
    def _tran_lead_q(self, cmd: Command) -> str:
        lim = self.limits
        return self._query_num(cmd, self.ch[cmd.suffix].lead, lim.edge_min_s, lim.edge_max_s,
                               10e-9)

    @scpi("[:SOURce#]:FUNCtion:PULSe:TRANsition:TRAiling?", nargs=(0, 1))
    def _tran_trail_q(self, cmd: Command) -> str:
        lim = self.limits
        return self._query_num(cmd, self.ch[cmd.suffix].trail, lim.edge_min_s, lim.edge_max_s,
                               10e-9)

    # ================================================================== square, ramp
    @scpi("[:SOURce#]:FUNCtion:SQUare:DCYCle", nargs=1)
    def _sq_dcyc(self, cmd: Command) -> None:
        d = cmd.number(0, minimum=0.01, maximum=99.99, default=50.0)
        st = self.ch[cmd.suffix]
        d_min = self._square_dmin(st)
        if not d_min * (1 - 1e-9) <= d <= (100 - d_min) * (1 + 1e-9):
            raise ScpiError(-221)  # each half must be at least the minimum pulse width
        self._st(cmd).sq_dcyc = d

    @scpi("[:SOURce#]:FUNCtion:SQUare:DCYCle?", nargs=(0, 1))
    def _sq_dcyc_q(self, cmd: Command) -> str:
        return self._query_num(cmd, self.ch[cmd.suffix].sq_dcyc, 0.01, 99.99, 50.0)

    @scpi("[:SOURce#]:FUNCtion:SQUare:PERiod", nargs=1)
    def _sq_per(self, cmd: Command) -> None:
        lo = 1.0 / self._fmax("SQU")
        self._set_freq(cmd, 1.0 / cmd.number(0, minimum=lo, maximum=1e6, default=1e-3, unit="S"))

    @scpi("[:SOURce#]:FUNCtion:SQUare:PERiod?", nargs=(0, 1))
    def _sq_per_q(self, cmd: Command) -> str:
        lo = 1.0 / self._fmax("SQU")
        return self._query_num(cmd, 1.0 / self.ch[cmd.suffix].freq, lo, 1e6, 1e-3)

    @scpi("[:SOURce#]:FUNCtion:RAMP:SYMMetry", nargs=1)
    def _symm(self, cmd: Command) -> None:
        self._st(cmd).symmetry = cmd.number(0, minimum=0.0, maximum=100.0, default=100.0)

    @scpi("[:SOURce#]:FUNCtion:RAMP:SYMMetry?", nargs=(0, 1))
    def _symm_q(self, cmd: Command) -> str:
        return self._query_num(cmd, self.ch[cmd.suffix].symmetry, 0.0, 100.0, 100.0)

    # ================================================================== VOLTage
    def _to_unit(self, st: _Channel, vpp_display: float) -> float:
        if st.unit == "VPP":
            return vpp_display
        vrms = vpp_display / CREST[st.func]
        if st.unit == "VRMS":
            return vrms
        return 10 * math.log10(vrms * vrms / st.load / 1e-3)

    def _from_unit(self, st: _Channel, value: float) -> float:
        if st.unit == "VPP":
            return value
        if st.unit == "DBM":
            value = math.sqrt(10 ** (value / 10) * 1e-3 * st.load)
        return value * CREST[st.func]

    @scpi("[:SOURce#]:VOLTage[:LEVel][:IMMediate][:AMPLitude]", nargs=1)
    @scpi("[:SOURce#]:FUNCtion:ARBitrary:PTPeak", nargs=1)
    def _volt(self, cmd: Command) -> None:
        st = self.ch[cmd.suffix]
        k = self._k(st)
        if "ARB" in cmd.header:  # PTPeak is always peak-to-peak volts
            amp = cmd.number(0, minimum=AMP_OPEN_MIN * k, maximum=2 * V_OPEN_MAX * k,
                             default=0.2 * k, unit="V")
        else:
            lo, hi = (self._to_unit(st, AMP_OPEN_MIN * k), self._to_unit(st, 2 * V_OPEN_MAX * k))
            value = cmd.number(0, minimum=lo, maximum=hi, default=self._to_unit(st, 0.2 * k),
                               unit=None if st.unit == "DBM" else "V")
            amp = self._from_unit(st, value)
        self._set_levels(self._st(cmd), st.off, amp / k)

    @scpi("[:SOURce#]:VOLTage[:LEVel][:IMMediate][:AMPLitude]?", nargs=(0, 1))
    def _volt_q(self, cmd: Command) -> str:
        st = self.ch[cmd.suffix]
        k = self._k(st)
        return self._query_num(cmd, self._to_unit(st, st.amp * k),
                               self._to_unit(st, AMP_OPEN_MIN * k),
                               self._to_unit(st, 2 * V_OPEN_MAX * k), self._to_unit(st, 0.2 * k))

    @scpi("[:SOURce#]:FUNCtion:ARBitrary:PTPeak?", nargs=(0, 1))
    def _ptp_q(self, cmd: Command) -> str:
        st = self.ch[cmd.suffix]
        k = self._k(st)
        return self._query_num(cmd, st.amp * k, AMP_OPEN_MIN * k,
                               2 * V_OPEN_MAX * k, 0.2 * k)

    @scpi("[:SOURce#]:VOLTage[:LEVel][:IMMediate]:OFFSet", nargs=1)
    def _offs(self, cmd: Command) -> None:
        st = self.ch[cmd.suffix]
        k = self._k(st)
        off = cmd.number(0, minimum=-V_OPEN_MAX * k, maximum=V_OPEN_MAX * k, default=0.0,
                         unit="V") / k
        self._set_levels(self._st(cmd), off, st.amp)

    @scpi("[:SOURce#]:VOLTage[:LEVel][:IMMediate]:OFFSet?", nargs=(0, 1))
    def _offs_q(self, cmd: Command) -> str:
        st = self.ch[cmd.suffix]
        k = self._k(st)
        return self._query_num(cmd, st.off * k, -V_OPEN_MAX * k, V_OPEN_MAX * k, 0.0)

    @scpi("[:SOURce#]:VOLTage[:LEVel][:IMMediate]:HIGH", nargs=1)
    def _high(self, cmd: Command) -> None:
        st = self.ch[cmd.suffix]
        k = self._k(st)
        h = cmd.number(0, minimum=-V_OPEN_MAX * k, maximum=V_OPEN_MAX * k, default=0.05,
                       unit="V") / k
        self._set_levels(self._st(cmd), (h + st.low) / 2, h - st.low)

    @scpi("[:SOURce#]:VOLTage[:LEVel][:IMMediate]:LOW", nargs=1)
    def _low(self, cmd: Command) -> None:
        st = self.ch[cmd.suffix]
        k = self._k(st)
        lo = cmd.number(0, minimum=-V_OPEN_MAX * k, maximum=V_OPEN_MAX * k, default=-0.05,
                        unit="V") / k
        self._set_levels(self._st(cmd), (st.high + lo) / 2, st.high - lo)

    @scpi("[:SOURce#]:VOLTage[:LEVel][:IMMediate]:HIGH?", nargs=(0, 1))
    def _high_q(self, cmd: Command) -> str:
        st = self.ch[cmd.suffix]
        k = self._k(st)
        return self._query_num(cmd, st.high * k, -V_OPEN_MAX * k, V_OPEN_MAX * k, 0.05)

    @scpi("[:SOURce#]:VOLTage[:LEVel][:IMMediate]:LOW?", nargs=(0, 1))
    def _low_q(self, cmd: Command) -> str:
        st = self.ch[cmd.suffix]
        k = self._k(st)
        return self._query_num(cmd, st.low * k, -V_OPEN_MAX * k, V_OPEN_MAX * k, -0.05)

    @scpi("[:SOURce#]:VOLTage:UNIT", nargs=1)
    def _unit(self, cmd: Command) -> None:
        unit = cmd.choice(0, ("VPP", "VRMS", "DBM"))
        st = self.ch[cmd.suffix]
        if unit != "VPP" and (st.func not in CREST or (unit == "DBM" and math.isinf(st.load))):
            raise ScpiError(-221)  # dBm needs a finite load; rms needs a known crest factor
        st.unit = unit

    @scpi("[:SOURce#]:VOLTage:UNIT?", nargs=0)
    def _unit_q(self, cmd: Command) -> str:
        return self.ch[cmd.suffix].unit

    def _lim_value(self, cmd: Command, default: float) -> float:
        k = self._k(self.ch[cmd.suffix])
        return cmd.number(0, minimum=-V_OPEN_MAX * k, maximum=V_OPEN_MAX * k, default=default,
                          unit="V")

    def _set_limits(self, st: _Channel, high: float, low: float, on: bool) -> None:
        if high < low:
            raise ScpiError(-221)
        old = (st.lim_high, st.lim_low, st.lim_on)
        st.lim_high, st.lim_low, st.lim_on = high, low, on
        try:
            self._check_limits(st, st.func, st.off, st.amp)
        except ScpiError:
            st.lim_high, st.lim_low, st.lim_on = old
            raise

    @scpi("[:SOURce#]:VOLTage:LIMit:HIGH", nargs=1)
    def _lim_high(self, cmd: Command) -> None:
        st = self.ch[cmd.suffix]
        self._set_limits(st, self._lim_value(cmd, 5.0), st.lim_low, st.lim_on)

    @scpi("[:SOURce#]:VOLTage:LIMit:LOW", nargs=1)
    def _lim_low(self, cmd: Command) -> None:
        st = self.ch[cmd.suffix]
        self._set_limits(st, st.lim_high, self._lim_value(cmd, -5.0), st.lim_on)

    @scpi("[:SOURce#]:VOLTage:LIMit:STATe", nargs=1)
    def _lim_state(self, cmd: Command) -> None:
        st = self.ch[cmd.suffix]
        self._set_limits(st, st.lim_high, st.lim_low, cmd.boolean())

    @scpi("[:SOURce#]:VOLTage:LIMit:HIGH?", nargs=(0, 1))
    def _lim_high_q(self, cmd: Command) -> str:
        k = self._k(self.ch[cmd.suffix])
        return self._query_num(cmd, self.ch[cmd.suffix].lim_high, -V_OPEN_MAX * k,
                               V_OPEN_MAX * k, 5.0)

    @scpi("[:SOURce#]:VOLTage:LIMit:LOW?", nargs=(0, 1))
    def _lim_low_q(self, cmd: Command) -> str:
        k = self._k(self.ch[cmd.suffix])
        return self._query_num(cmd, self.ch[cmd.suffix].lim_low, -V_OPEN_MAX * k,
                               V_OPEN_MAX * k, -5.0)

    @scpi("[:SOURce#]:VOLTage:LIMit:STATe?", nargs=0)
    def _lim_state_q(self, cmd: Command) -> str:
        return "1" if self.ch[cmd.suffix].lim_on else "0"

    # ================================================================== BURSt
    @scpi("[:SOURce#]:BURSt:STATe", nargs=1)
    def _burst(self, cmd: Command) -> None:
        on = cmd.boolean()
        st = self.ch[cmd.suffix]
        if on and (st.func == "DC" or (st.func == "NOIS" and st.burst_mode == "TRIG")):
            raise ScpiError(-221)
        st = self._st(cmd)
        st.burst, st.inf_running = on, False

    @scpi("[:SOURce#]:BURSt:STATe?", nargs=0)
    def _burst_q(self, cmd: Command) -> str:
        return "1" if self.ch[cmd.suffix].burst else "0"

    @scpi("[:SOURce#]:BURSt:MODE", nargs=1)
    def _burst_mode(self, cmd: Command) -> None:
        mode = cmd.choice(0, ("TRIGgered", "GATed"))
        st = self.ch[cmd.suffix]
        if st.burst and mode == "TRIG" and st.func == "NOIS":
            raise ScpiError(-221)
        st = self._st(cmd)
        st.burst_mode, st.inf_running = mode, False

    @scpi("[:SOURce#]:BURSt:MODE?", nargs=0)
    def _burst_mode_q(self, cmd: Command) -> str:
        return self.ch[cmd.suffix].burst_mode

    @scpi("[:SOURce#]:BURSt:NCYCles", nargs=1)
    def _ncyc(self, cmd: Command) -> None:
        n = cmd.number(0, minimum=1, maximum=100_000_000, default=1, keywords=("INFinity",),
                       integer=True)
        st = self._st(cmd)
        st.ncyc, st.inf_running = float(n), False

    @scpi("[:SOURce#]:BURSt:NCYCles?", nargs=(0, 1))
    def _ncyc_q(self, cmd: Command) -> str:
        return self._query_num(cmd, self.ch[cmd.suffix].ncyc, 1, 100_000_000, 1)

    @scpi("[:SOURce#]:BURSt:INTernal:PERiod", nargs=1)
    def _burst_per(self, cmd: Command) -> None:
        p = cmd.number(0, minimum=1e-6, maximum=8000.0, default=10e-3, unit="S")
        self._st(cmd).burst_period = p

    @scpi("[:SOURce#]:BURSt:INTernal:PERiod?", nargs=(0, 1))
    def _burst_per_q(self, cmd: Command) -> str:
        return self._query_num(cmd, self.ch[cmd.suffix].burst_period, 1e-6, 8000.0, 10e-3)

    @scpi("[:SOURce#]:BURSt:PHASe", nargs=1)
    def _burst_phase(self, cmd: Command) -> None:
        self._st(cmd).burst_phase = cmd.number(0, minimum=-360.0, maximum=360.0, default=0.0)

    @scpi("[:SOURce#]:BURSt:PHASe?", nargs=(0, 1))
    def _burst_phase_q(self, cmd: Command) -> str:
        return self._query_num(cmd, self.ch[cmd.suffix].burst_phase, -360.0, 360.0, 0.0)

    @scpi("[:SOURce#]:BURSt:GATE:POLarity", nargs=1)
    def _gate_pol(self, cmd: Command) -> None:
        self.ch[cmd.suffix].gate_pol = cmd.choice(0, ("NORMal", "INVerted"))

    @scpi("[:SOURce#]:BURSt:GATE:POLarity?", nargs=0)
    def _gate_pol_q(self, cmd: Command) -> str:
        return self.ch[cmd.suffix].gate_pol

    # ================================================================== TRIGger
    @scpi("TRIGger#", nargs=0)
    def _trig_now(self, cmd: Command) -> None:
        """TRIGger[1|2]: trigger this channel's burst now (it must wait for BUS or EXT)."""
        self._flush()
        st = self.ch[cmd.suffix]
        if not (st.burst and st.burst_mode == "TRIG" and st.trig_src in ("BUS", "EXT")):
            raise ScpiError(-211, "Trigger ignored")
        self._fire(cmd.suffix)

    @scpi("TRIGger#:SOURce", nargs=1)
    def _trig_src(self, cmd: Command) -> None:
        src = cmd.choice(0, ("IMMediate", "EXTernal", "TIMer", "BUS"))
        st = self._st(cmd)
        st.trig_src, st.inf_running = src, False

    @scpi("TRIGger#:SOURce?", nargs=0)
    def _trig_src_q(self, cmd: Command) -> str:
        return self.ch[cmd.suffix].trig_src

    @scpi("TRIGger#:DELay", nargs=1)
    def _trig_delay(self, cmd: Command) -> None:
        self._st(cmd).trig_delay = cmd.number(0, minimum=0.0, maximum=1000.0, default=0.0,
                                              unit="S")

    @scpi("TRIGger#:DELay?", nargs=(0, 1))
    def _trig_delay_q(self, cmd: Command) -> str:
        return self._query_num(cmd, self.ch[cmd.suffix].trig_delay, 0.0, 1000.0, 0.0)

    @scpi("TRIGger#:SLOPe", nargs=1)
    def _trig_slope(self, cmd: Command) -> None:
        self.ch[cmd.suffix].trig_slope = cmd.choice(0, ("POSitive", "NEGative"))

    @scpi("TRIGger#:SLOPe?", nargs=0)
    def _trig_slope_q(self, cmd: Command) -> str:
        return self.ch[cmd.suffix].trig_slope

    @scpi("TRIGger#:TIMer", nargs=1)
    def _trig_timer(self, cmd: Command) -> None:
        self._st(cmd).trig_timer = cmd.number(0, minimum=1e-6, maximum=8000.0, default=1.0,
                                              unit="S")

    @scpi("TRIGger#:TIMer?", nargs=(0, 1))
    def _trig_timer_q(self, cmd: Command) -> str:
        return self._query_num(cmd, self.ch[cmd.suffix].trig_timer, 1e-6, 8000.0, 1.0)

    @scpi("TRIGger#:COUNt", nargs=1)
    def _trig_count(self, cmd: Command) -> None:
        """Stored and reported; INIT:CONT is always on here, so it does not limit triggers."""
        self.ch[cmd.suffix].trig_count = float(
            cmd.number(0, minimum=1, maximum=1_000_000, default=1, keywords=("INFinity",),
                       integer=True))

    @scpi("TRIGger#:COUNt?", nargs=(0, 1))
    def _trig_count_q(self, cmd: Command) -> str:
        return self._query_num(cmd, self.ch[cmd.suffix].trig_count, 1, 1_000_000, 1)

    # ================================================================== arbitrary waveforms
    @scpi("FORMat:BORDer", nargs=1)
    def _bord(self, cmd: Command) -> None:
        self.swap = cmd.choice(0, ("NORMal", "SWAPped")) == "SWAP"

    @scpi("FORMat:BORDer?", nargs=0)
    def _bord_q(self, cmd: Command) -> str:
        return "SWAP" if self.swap else "NORM"

    @scpi("[:SOURce#]:DATA:VOLatile:CLEar", nargs=0)
    def _vol_clear(self, cmd: Command) -> None:
        self.arbs[cmd.suffix].clear()
        self._st(cmd).arb = None

    @scpi("[:SOURce#]:DATA:VOLatile:CATalog?", nargs=0)
    def _vol_cat(self, cmd: Command) -> str:
        names = [f'"{a.name}"' for a in self.arbs[cmd.suffix].values()]
        return ",".join(names) if names else '""'

    @scpi("[:SOURce#]:DATA:VOLatile:FREE?", nargs=0)
    def _vol_free(self, cmd: Command) -> str:
        used = sum(a.samples.size for a in self.arbs[cmd.suffix].values())
        return str(self.limits.memory_points - used)

    @scpi("[:SOURce#]:DATA:ARBitrary[1]")
    def _data_arb(self, cmd: Command) -> None:
        self._store_arb(cmd, dac=False)

    @scpi("[:SOURce#]:DATA:ARBitrary[1]:DAC")
    def _data_dac(self, cmd: Command) -> None:
        self._store_arb(cmd, dac=True)

    def _store_arb(self, cmd: Command, *, dac: bool) -> None:
        """``<name>,<values>`` or ``<name>,#<block>`` (float32 or int16 in FORM:BORD order)."""
        name, sep, rest = cmd.raw.partition(",")
        name = name.strip().strip("\"'")
        if not sep or not name:
            raise ScpiError(-109)
        if ARB_NAME.fullmatch(name) is None:
            raise ScpiError(-224)
        rest = rest.lstrip()
        if rest.startswith("#"):
            payload = parse_block(rest)
            size = 2 if dac else 4
            if len(payload) % size:
                raise ScpiError(-161, "Invalid block data")
            dtype = ("<" if self.swap else ">") + ("i2" if dac else "f4")
            values = np.frombuffer(payload, dtype=dtype).astype(float)
        else:
            try:
                values = np.array(rest.split(","), dtype=float)
            except ValueError:
                raise ScpiError(-104) from None
        if not np.all(np.isfinite(values)):
            raise ScpiError(-120)
        full = 32767.0 if dac else 1.0
        if values.size and np.max(np.abs(values)) > full:
            raise ScpiError(-222)
        if values.size < 8:
            raise ScpiError(-222)  # 8 points minimum
        if values.size > self.limits.arb_points_max:
            raise ScpiError(-223)
        store = self.arbs[cmd.suffix]
        if name.upper() in store:
            raise ScpiError(-221)  # clear volatile memory before reusing a name
        used = sum(a.samples.size for a in store.values())
        if used + values.size > self.limits.memory_points:
            raise ScpiError(-225, "Out of memory")
        store[name.upper()] = _Arb(name, values / full)

    @scpi("[:SOURce#]:FUNCtion:ARBitrary", nargs=1)
    def _func_arb(self, cmd: Command) -> None:
        name = cmd.arg(0).strip("\"'")
        if name.upper() not in self.arbs[cmd.suffix]:
            raise ScpiError(-224)  # only waveforms loaded into this channel's volatile memory
        self._st(cmd).arb = self.arbs[cmd.suffix][name.upper()].name

    @scpi("[:SOURce#]:FUNCtion:ARBitrary?", nargs=0)
    def _func_arb_q(self, cmd: Command) -> str:
        return f'"{self.ch[cmd.suffix].arb or ""}"'

    @scpi("[:SOURce#]:FUNCtion:ARBitrary:SRATe", nargs=1)
    def _srate(self, cmd: Command) -> None:
        self._st(cmd).srate = cmd.number(0, minimum=1e-6, maximum=self.limits.srate_max_sa_s,
                                         default=40e3)

    @scpi("[:SOURce#]:FUNCtion:ARBitrary:SRATe?", nargs=(0, 1))
    def _srate_q(self, cmd: Command) -> str:
        return self._query_num(cmd, self.ch[cmd.suffix].srate, 1e-6,
                               self.limits.srate_max_sa_s, 40e3)

    @scpi("[:SOURce#]:FUNCtion:ARBitrary:ADVance", nargs=1)
    def _arb_advance(self, cmd: Command) -> None:
        """TRIGger (one point per trigger) or SRATe (the sample clock, default). Stored; the
        simulation always plays at the sample rate."""
        self.ch[cmd.suffix].arb_advance = cmd.choice(0, ("TRIGger", "SRATe"))

    @scpi("[:SOURce#]:FUNCtion:ARBitrary:ADVance?", nargs=0)
    def _arb_advance_q(self, cmd: Command) -> str:
        return self.ch[cmd.suffix].arb_advance

    @scpi("[:SOURce#]:FUNCtion:ARBitrary:FILTer", nargs=1)
    def _arb_filter(self, cmd: Command) -> None:
        """Stored only: the simulation always holds each sample (STEP-like, no smoothing)."""
        self.ch[cmd.suffix].arb_filter = cmd.choice(0, ("NORMal", "STEP", "OFF"))

    @scpi("[:SOURce#]:FUNCtion:ARBitrary:FILTer?", nargs=0)
    def _arb_filter_q(self, cmd: Command) -> str:
        return self.ch[cmd.suffix].arb_filter


# The maximum frequencies of sine (QCoDeS KeysightAgilent_33XXX table: 33522B 30 MHz, 33622A
# 120 MHz); square/pulse/ramp, sample rates and memory sizes are not in the notes.
class Keysight33500BSim(_Keysight33x00Sim):
    """Keysight (Agilent) 33522B, 2 channels: 16 ns pulses, 8.4 ns edges (operating guide p. 69)."""

    idn: ClassVar[str] = "Agilent Technologies,33522B,MY52201807,3.05-1.19-2.00-52-00"
    limits: ClassVar[_Limits] = _Limits(
        width_min_s=16e-9,
        edge_min_s=8.4e-9,
        edge_max_s=1e-6,
        freq_max_hz={"SIN": 30e6, "SQU": 30e6, "PULS": 30e6, "TRI": 200e3, "RAMP": 200e3},
        srate_max_sa_s=250e6,
        arb_points_max=1_000_000,
        memory_points=1_000_000,
    )


class Keysight33600ASim(_Keysight33x00Sim):
    """Keysight 33622A, 2 channels. Pulse limits as the 33500 (the 33600A's own are not in the
    notes; it is faster, so these are conservative)."""

    idn: ClassVar[str] = "Keysight Technologies,33622A,MY53804342,A.02.00-2.25-03-64-02"
    limits: ClassVar[_Limits] = _Limits(
        width_min_s=16e-9,
        edge_min_s=8.4e-9,
        edge_max_s=1e-6,
        freq_max_hz={"SIN": 120e6, "SQU": 100e6, "PULS": 30e6, "TRI": 800e3, "RAMP": 800e3},
        srate_max_sa_s=1e9,
        arb_points_max=4_000_000,
        memory_points=4_000_000,
    )


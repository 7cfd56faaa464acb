"""NbOx threshold-switch soma: a hysteretic two-state device, its RC circuit and an exact engine.

In each state the circuit is a linear RC network, so threshold-crossing times are analytic and the
engine jumps from event to event. There is no time grid here. Read noise is added only to measured
currents and never fed back into the state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from dendrolab.errors import ParameterError

from . import rng
from .params import ParamSet, param, positive_factors
from .waveform import Waveform

#: Parameters held per device (nominal x scale x D2D factor), keys of ``SomaArray.p``.
DEVICE_FIELDS = ("v_th_v", "v_hold_v", "r_off_ohm", "r_on_ohm", "v_on0_v", "min_on_dwell_s",
                 "delay_t0_s", "delay_vd_v")
#: Device-to-device variation: parameter -> (rng stream, sigma field of SomaParams).
D2D_STREAMS = {
    "v_th_v": ("d2d.v_th", "d2d_v_th_sigma_ln"),
    "v_hold_v": ("d2d.v_hold", "d2d_v_hold_sigma_ln"),
    "r_off_ohm": ("d2d.r_off", "d2d_r_off_sigma_ln"),
    "r_on_ohm": ("d2d.r_on", "d2d_r_on_sigma_ln"),
}
C2C_V_TH_STREAM = "c2c.v_th"
C2C_V_HOLD_STREAM = "c2c.v_hold"
READ_STREAM = "read.soma"
#: exp(-x) for x beyond this is taken as exactly 0 (and exponent arguments are clipped here).
EXP_MAX = 700.0
#: Thresholds drawn per cycle keep this relative margin: V_hold <= V_th (1 - margin).
_MARGIN = 1e-3

# Event kinds of the engine.
_NONE, _CROSS, _DELAY, _FALL, _HOLD, _DWELL = range(6)


@dataclasses.dataclass(frozen=True)
class SomaParams(ParamSet):
    """Nominal piecewise-linear threshold switch (spec §3.3; defaults are assumed)."""

    section: ClassVar[str] = "soma"

    v_th_v: float = param(1.2, "V", "threshold: OFF -> ON when |V_dev| reaches it",
                          lo=0, lo_open=True, kind="voltage")
    v_hold_v: float = param(0.7, "V", "hold: ON -> OFF when |V_dev| falls to it",
                            lo=0, lo_open=True, kind="voltage")
    r_off_ohm: float = param(200e3, "ohm", "OFF-branch resistance", lo=0, lo_open=True)
    r_on_ohm: float = param(2e3, "ohm", "ON-branch resistance", lo=0, lo_open=True)
    v_on0_v: float = param(0.0, "V", "ON-branch offset: I = (V - v_on0) / R_on (0 = ohmic)",
                           lo=0, kind="voltage")
    min_on_dwell_s: float = param(20e-9, "s", "minimum ON time (thermal recovery, no chattering)",
                                  lo=0, lo_open=True, kind="time")
    delay_t0_s: float = param(0.0, "s", "switch delay t_d = t0 exp(-(V_inf - V_th) / V_d); 0 = off",
                              lo=0, kind="time")
    delay_vd_v: float = param(0.1, "V", "switch delay voltage scale V_d", lo=0, lo_open=True,
                              kind="voltage")
    c2c_v_th_rel: float = param(0.03, "1", "relative Gaussian sigma of V_th, redrawn each cycle",
                                lo=0, hi=0.3, kind="sigma")
    c2c_v_hold_rel: float = param(0.03, "1", "relative Gaussian sigma of V_hold, each cycle",
                                  lo=0, hi=0.3, kind="sigma")
    d2d_v_th_sigma_ln: float = param(0.05, "1", "device-to-device log-normal sigma of V_th",
                                     lo=0, kind="sigma")
    d2d_v_hold_sigma_ln: float = param(0.0, "1", "device-to-device log-normal sigma of V_hold",
                                       lo=0, kind="sigma")
    d2d_r_off_sigma_ln: float = param(0.2, "1", "device-to-device log-normal sigma of R_off",
                                      lo=0, kind="sigma")
    d2d_r_on_sigma_ln: float = param(0.0, "1", "device-to-device log-normal sigma of R_on",
                                     lo=0, kind="sigma")
    read_noise_rel: float = param(0.01, "1", "relative Gaussian read noise on measured current",
                                  lo=0, kind="sigma")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.v_hold_v < self.v_th_v:
            raise ParameterError(
                f"soma.v_hold_v = {self.v_hold_v:g} V must be below soma.v_th_v = "
                f"{self.v_th_v:g} V (hysteresis: the device holds ON below its threshold)")
        if not self.v_on0_v < self.v_hold_v:
            raise ParameterError(
                f"soma.v_on0_v = {self.v_on0_v:g} V must be below soma.v_hold_v = "
                f"{self.v_hold_v:g} V (the ON branch must carry current at the hold point)")


@dataclasses.dataclass(frozen=True)
class CircuitParams(ParamSet):
    """Wiring around the soma: membrane capacitor, series driver resistor, sense resistor."""

    section: ClassVar[str] = "circuit"

    c_m_f: float = param(1e-9, "F", "membrane capacitance in parallel with the soma",
                         lo=0, lo_open=True)
    r_series_ohm: float = param(100e3, "ohm", "series resistor when the soma is driven alone",
                                lo=0, lo_open=True)
    r_load_ohm: float = param(0.0, "ohm", "sense resistor in series with the soma", lo=0)
    unit_step_s: float = param(0.1e-6, "s", "sub-step h of the dendrite-soma unit stepper",
                               lo=0, lo_open=True, kind="time")


class SomaArray:
    """N threshold switches: per-device parameters ``p[name]`` (shape (N,)) and state.

    State (public, shape (N,)): ``v`` membrane node voltage (V), ``on`` (bool), ``pol`` (+1/-1,
    polarity of the ON state or pending switch; the device is symmetric), ``t_on_s`` time since
    the last OFF -> ON switch, ``armed``/``t_armed_s``/``t_delay_s`` (threshold reached, switch
    pending the delay), ``n_spikes`` (OFF -> ON count; it keys the C2C draws), and ``v_th`` /
    ``v_hold`` the thresholds of the present cycle (nominal x C2C factor, redrawn per switch).
    """

    def __init__(self, params: SomaParams, n: int | None = None, *,
                 keys: np.ndarray | None = None,
                 scale: Mapping[str, np.ndarray] | None = None) -> None:
        if not isinstance(params, SomaParams):
            raise ParameterError(f"SomaArray needs SomaParams, got {type(params).__name__}")
        if keys is None:
            if n is None or int(n) < 1:
                raise ParameterError(f"soma array: n must be a positive integer, got {n!r}")
            keys = rng.device_keys(0, 0, 0, np.arange(int(n)))
        keys = np.asarray(keys)
        if keys.ndim != 1 or keys.size == 0 or keys.dtype.kind not in "ui":
            raise ParameterError("soma array: keys must be a non-empty 1-D integer array")
        if n is not None and int(n) != keys.size:
            raise ParameterError(f"soma array: n = {n} but {keys.size} keys given")
        self.params = params
        self.keys = keys.astype(np.uint64)
        self.n = n = int(keys.size)
        scale = dict(scale or {})
        unknown = set(scale) - set(DEVICE_FIELDS)
        if unknown:
            raise ParameterError(
                f"soma scale: unknown parameter(s) {', '.join(sorted(unknown))}; "
                f"per-device parameters: {', '.join(DEVICE_FIELDS)}")
        p: dict[str, np.ndarray] = {}
        for name in DEVICE_FIELDS:
            val = np.full(n, float(getattr(params, name)))
            if name in scale:
                val *= positive_factors(scale[name], n, f"soma scale[{name!r}]")
            if name in D2D_STREAMS:
                stream, sigma = D2D_STREAMS[name]
                val *= rng.lognormal(self.keys, stream, getattr(params, sigma), 0)
            p[name] = val
        # Keep the hysteresis ordered whatever the draws: v_on0 < V_hold < V_th per device.
        p["v_hold_v"] = np.minimum(p["v_hold_v"], (1 - 10 * _MARGIN) * p["v_th_v"])
        p["v_on0_v"] = np.minimum(p["v_on0_v"], (1 - 10 * _MARGIN) * p["v_hold_v"])
        for val in p.values():
            val.setflags(write=False)
        self.p = p
        self.noise_free = params.c2c_v_th_rel == 0 and params.c2c_v_hold_rel == 0
        self.v = np.zeros(n)
        self.on = np.zeros(n, dtype=bool)
        self.pol = np.ones(n)
        self.t_on_s = np.zeros(n)
        self.armed = np.zeros(n, dtype=bool)
        self.t_armed_s = np.zeros(n)
        self.t_delay_s = np.zeros(n)
        self.n_spikes = np.zeros(n, dtype=np.int64)
        self.v_th = p["v_th_v"].copy()
        self.v_hold = p["v_hold_v"].copy()
        all_idx = np.arange(n)
        self._draw_v_th(all_idx)
        self._draw_v_hold(all_idx)

    # ------------------------------------------------------------------ cycle-to-cycle
    def _c2c(self, idx: np.ndarray, stream: str, sigma: float) -> np.ndarray:
        if sigma == 0:
            return np.ones(idx.size)
        z = rng.normal(self.keys[idx], stream, self.n_spikes[idx])
        return np.maximum(1.0 + sigma * z, 0.1)

    def _draw_v_th(self, idx: np.ndarray) -> None:
        """New V_th for the coming OFF phase (event = spike count), kept above V_hold."""
        th = self.p["v_th_v"][idx] * self._c2c(idx, C2C_V_TH_STREAM, self.params.c2c_v_th_rel)
        self.v_th[idx] = np.maximum(th, self.v_hold[idx] / (1 - _MARGIN))

    def _draw_v_hold(self, idx: np.ndarray) -> None:
        """New V_hold for the coming ON phase (event = spike count), kept below V_th."""
        hold = self.p["v_hold_v"][idx] * self._c2c(idx, C2C_V_HOLD_STREAM,
                                                    self.params.c2c_v_hold_rel)
        self.v_hold[idx] = np.clip(hold, 1.0001 * self.p["v_on0_v"][idx],
                                   (1 - _MARGIN) * self.v_th[idx])

    def switch_on(self, idx: np.ndarray, pol: np.ndarray | float) -> None:
        """OFF -> ON (a spike) for devices ``idx``: count it, draw this ON phase's V_hold."""
        idx = np.asarray(idx, dtype=np.int64)
        self.on[idx] = True
        self.pol[idx] = pol
        self.t_on_s[idx] = 0.0
        self.armed[idx] = False
        self.n_spikes[idx] += 1
        self._draw_v_hold(idx)

    def switch_off(self, idx: np.ndarray) -> None:
        """ON -> OFF for devices ``idx``: draw the next cycle's V_th."""
        idx = np.asarray(idx, dtype=np.int64)
        self.on[idx] = False
        self.armed[idx] = False
        self._draw_v_th(idx)

    def reset(self, v: float = 0.0) -> None:
        """All devices OFF at node voltage v (counters keep counting: no replayed noise)."""
        self.v[:] = v
        self.on[:] = False
        self.armed[:] = False
        self.t_on_s[:] = 0.0
        self.pol[:] = 1.0

    def copy(self) -> SomaArray:
        """Independent copy of the state (parameters are immutable and shared)."""
        new = object.__new__(SomaArray)
        new.__dict__.update(self.__dict__)
        for name in ("v", "on", "pol", "t_on_s", "armed", "t_armed_s", "t_delay_s", "n_spikes",
                     "v_th", "v_hold"):
            setattr(new, name, getattr(self, name).copy())
        return new

    # ------------------------------------------------------------------ device I-V
    def current(self, v_dev: np.ndarray | float, on: np.ndarray | None = None, *,
                noise_event: int | np.ndarray | None = None) -> np.ndarray:
        """Device current (A) at device voltage ``v_dev`` in state ``on`` (default: present).

        OFF: V / R_off. ON: sign(V) (|V| - v_on0) / R_on. With ``noise_event`` the relative read
        noise of stream "read.soma" is applied; the state is never changed.
        """
        v = np.asarray(v_dev, dtype=float)
        on = self.on if on is None else np.asarray(on, dtype=bool)
        two_d = v.ndim == 2 or on.ndim == 2
        p = {k: (a[:, None] if two_d else a) for k, a in self.p.items()}
        i_off = v / p["r_off_ohm"]
        i_on = np.sign(v) * np.maximum(np.abs(v) - p["v_on0_v"], 0.0) / p["r_on_ohm"]
        i = np.where(on, i_on, i_off)
        if noise_event is not None and self.params.read_noise_rel > 0:
            keys = self.keys[:, None] if two_d else self.keys
            i = i * (1.0 + self.params.read_noise_rel
                     * rng.normal(keys, READ_STREAM, np.asarray(noise_event)))
        return i

    # ------------------------------------------------------------------ circuit helpers
    def branch(self, r_load: float) -> tuple[np.ndarray, np.ndarray]:
        """(g, e) of the soma + sense-resistor branch now: I = g (v_node - e)."""
        r = np.where(self.on, self.p["r_on_ohm"], self.p["r_off_ohm"]) + r_load
        e = np.where(self.on, self.pol * self.p["v_on0_v"], 0.0)
        return 1.0 / r, e

    def branch_current(self, r_load: float, *,
                       noise_event: int | np.ndarray | None = None) -> np.ndarray:
        """Current through the soma branch (and R_L) at the present node voltage, (N,)."""
        g, e = self.branch(r_load)
        i = g * (self.v - e)
        if noise_event is not None and self.params.read_noise_rel > 0:
            i = i * (1.0 + self.params.read_noise_rel
                     * rng.normal(self.keys, READ_STREAM, np.asarray(noise_event)))
        return i

    def node_levels(self, r_load: float) -> tuple[np.ndarray, np.ndarray]:
        """Node-voltage thresholds (|v| >= l_th fires, pol v <= l_hold releases) with R_load."""
        r_off, r_on, e0 = self.p["r_off_ohm"], self.p["r_on_ohm"], self.p["v_on0_v"]
        l_th = self.v_th * (r_off + r_load) / r_off
        l_hold = e0 + (self.v_hold - e0) * (r_on + r_load) / r_on
        return l_th, l_hold

    def device_voltage(self, r_load: float = 0.0, v: np.ndarray | None = None) -> np.ndarray:
        """Voltage across the device itself for node voltage v (default: the present v)."""
        v = self.v if v is None else np.asarray(v, dtype=float)
        g, e = self.branch(r_load)
        r_dev = np.where(self.on, self.p["r_on_ohm"], self.p["r_off_ohm"])
        return e + (v - e) * g * r_dev


# ============================================================================ spike record
@dataclasses.dataclass(frozen=True)
class SpikeRecord:
    """Spikes (OFF -> ON switches) of a run, and per-segment summaries.

    ``device``, ``time_s``, ``segment``: one entry per recorded spike, sorted by device then time
    (time from the start of the run). ``counts`` (N, K): exact spikes per segment (a count can
    exceed the recorded times when ``max_times_per_segment`` cut the list; ``n_dropped`` says how
    many). ``t_start_s`` (N, K): segment start times. At each segment end: ``v_end`` node voltage,
    ``on_end`` state, ``i_end`` soma-branch current (noise free); ``charge_c`` is the charge that
    flowed through the soma branch during the segment; ``w_end`` is the dendrite state (unit only).
    """

    device: np.ndarray
    time_s: np.ndarray
    segment: np.ndarray
    counts: np.ndarray
    t_start_s: np.ndarray
    v_end: np.ndarray
    on_end: np.ndarray
    i_end: np.ndarray
    charge_c: np.ndarray
    n_dropped: int = 0
    w_end: np.ndarray | None = None

    @property
    def n_devices(self) -> int:
        return self.counts.shape[0]

    def times(self, i: int) -> np.ndarray:
        """Recorded spike times of device i (s, ascending)."""
        lo, hi = np.searchsorted(self.device, [i, i + 1])
        return self.time_s[lo:hi]

    def total(self) -> np.ndarray:
        """Spikes per device over the whole run, (N,)."""
        return self.counts.sum(axis=1)

    def first_spike_time(self) -> np.ndarray:
        """First spike time per device, NaN where the device never fired."""
        out = np.full(self.n_devices, np.nan)
        if self.device.size:
            first = np.r_[True, self.device[1:] != self.device[:-1]]
            out[self.device[first]] = self.time_s[first]
        return out

    def first_spike_segment(self) -> np.ndarray:
        """Index of the first segment with a spike per device, -1 where none."""
        fired = self.counts > 0
        return np.where(fired.any(axis=1), fired.argmax(axis=1), -1)


class _Recorder:
    """Collects spikes and segment summaries during a run."""

    def __init__(self, n: int, k: int, cap: int) -> None:
        self.n, self.k, self.cap = n, k, cap
        self.dev: list[np.ndarray] = []
        self.time: list[np.ndarray] = []
        self.seg: list[np.ndarray] = []
        self.counts = np.zeros((n, k), dtype=np.int64)
        self.recorded = np.zeros(n, dtype=np.int64)      # times kept in the present segment
        self.dropped = 0
        self.t_start = np.zeros((n, k))
        self.v_end = np.zeros((n, k))
        self.on_end = np.zeros((n, k), dtype=bool)
        self.i_end = np.zeros((n, k))
        self.charge = np.zeros((n, k))

    def new_segment(self) -> None:
        self.recorded[:] = 0

    def add(self, k: int, idx: np.ndarray, t: np.ndarray) -> None:
        """One spike per device in ``idx`` at absolute times ``t``."""
        self.counts[idx, k] += 1
        keep = self.recorded[idx] < self.cap
        self.dropped += int(idx.size - keep.sum())
        idx, t = idx[keep], t[keep]
        self.recorded[idx] += 1
        self.dev.append(idx)
        self.time.append(t)
        self.seg.append(np.full(idx.size, k, dtype=np.int64))

    def add_periodic(self, k: int, idx: np.ndarray, t_first: np.ndarray, period: np.ndarray,
                     n: np.ndarray) -> None:
        """n[j] spikes of device idx[j] at t_first[j] + m period[j], m = 0..n[j]-1."""
        self.counts[idx, k] += n
        m = np.minimum(n, np.maximum(self.cap - self.recorded[idx], 0))
        self.dropped += int((n - m).sum())
        self.recorded[idx] += m
        total = int(m.sum())
        if total == 0:
            return
        rep = np.repeat(np.arange(idx.size), m)
        j = np.arange(total) - np.repeat(np.cumsum(m) - m, m)
        self.dev.append(idx[rep])
        self.time.append(t_first[rep] + j * period[rep])
        self.seg.append(np.full(total, k, dtype=np.int64))

    def finish(self, w_end: np.ndarray | None = None) -> SpikeRecord:
        if self.dev:
            dev = np.concatenate(self.dev)
            t = np.concatenate(self.time)
            seg = np.concatenate(self.seg)
            order = np.lexsort((t, dev))
            dev, t, seg = dev[order], t[order], seg[order]
        else:
            dev = np.zeros(0, dtype=np.int64)
            t = np.zeros(0)
            seg = np.zeros(0, dtype=np.int64)
        return SpikeRecord(dev, t, seg, self.counts, self.t_start, self.v_end, self.on_end,
                           self.i_end, self.charge, self.dropped, w_end)


# ============================================================================ RC kinetics
def _relax(v0: np.ndarray, v_inf: np.ndarray, tau: np.ndarray, t: np.ndarray) -> np.ndarray:
    """v(t) of an RC node relaxing from v0 to v_inf with time constant tau (exact)."""
    x = np.minimum(t / tau, EXP_MAX)
    return v_inf + (v0 - v_inf) * np.exp(-x)


def _branch_charge(v0: np.ndarray, v_inf: np.ndarray, tau: np.ndarray, t: np.ndarray,
                   g: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Integral over [0, t] of the branch current g (v - e) along the relaxation (exact)."""
    x = np.minimum(t / tau, EXP_MAX)
    return g * ((v_inf - e) * t - (v0 - v_inf) * tau * np.expm1(-x))


def _time_down(x0: np.ndarray, x_inf: np.ndarray, tau: np.ndarray, level: np.ndarray
               ) -> np.ndarray:
    """Time for x relaxing from x0 to x_inf to fall to ``level`` (0 if already there, inf never)."""
    falls = x_inf < level
    ratio = (x0 - x_inf) / np.where(falls, level - x_inf, 1.0)
    t = np.where(falls, tau * np.log(np.maximum(ratio, 1.0)), np.inf)
    return np.where(x0 <= level, 0.0, t)


def _node_targets(soma: SomaArray, g_s: np.ndarray, v_in: np.ndarray, c_m: float, r_load: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(v_inf, tau, g, e) of the node for series conductance g_s from v_in, present states."""
    g, e = soma.branch(r_load)
    g_tot = g_s + g
    return (g_s * v_in + g * e) / g_tot, c_m / g_tot, g, e


def _next_event(soma: SomaArray, v_inf: np.ndarray, tau: np.ndarray, l_th: np.ndarray,
                l_hold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per device: time to its next event with frozen circuit, and the event kind.

    Every level event is "x = sg v falls to a level" while x relaxes to sg v_inf: OFF devices
    charge towards +-l_th (sg = -sign(v_inf), level -l_th); armed ones may fall back below l_th
    (sg = pol); ON ones fall to the hold level (sg = pol), but not before the minimum dwell.
    """
    v, pol, on, armed = soma.v, soma.pol, soma.on, soma.armed
    held = on | armed
    sg = np.where(held, pol, np.where(v_inf >= 0, -1.0, 1.0))
    level = np.where(on, l_hold, np.where(armed, l_th, -l_th))
    x_inf = sg * v_inf
    t = _time_down(sg * v, x_inf, tau, level)
    # Armed: never falls while charging outwards. Unarmed: fire at once only when beyond the
    # threshold; on it (e.g. just disarmed) only when still charging outwards.
    t = np.where(held, np.where(armed & (x_inf >= level), np.inf, t),
                 np.where(np.abs(v) > l_th, 0.0, np.where(np.abs(v_inf) > l_th, t, np.inf)))
    wait = np.where(on, soma.p["min_on_dwell_s"] - soma.t_on_s, soma.t_delay_s - soma.t_armed_s)
    wait = np.maximum(wait, 0.0)
    # ON: the later of (hold, dwell). Armed: the earlier of (fall, delay).
    t_ev = np.where(on, np.maximum(t, wait), np.where(armed, np.minimum(t, wait), t))
    kind = np.where(on, np.where(t >= wait, _HOLD, _DWELL),
                    np.where(armed, np.where(wait <= t, _DELAY, _FALL), _CROSS))
    return t_ev, np.where(t_ev < np.inf, kind, _NONE)


def _switch_delay(soma: SomaArray, idx: np.ndarray, v_inf: np.ndarray, r_load: float
                  ) -> np.ndarray:
    """t_d = t0 exp(-(|V_inf,dev| - V_th) / V_d), fixed when the threshold is reached."""
    p = soma.p
    t0 = p["delay_t0_s"][idx]
    if not np.any(t0):
        return np.zeros(idx.size)
    r_off = p["r_off_ohm"][idx]
    over = np.abs(v_inf) * r_off / (r_off + r_load) - soma.v_th[idx]
    return t0 * np.exp(-np.clip(over / p["delay_vd_v"][idx], -EXP_MAX, EXP_MAX))


def _resolve(soma: SomaArray, ev: np.ndarray, kind: np.ndarray, v_inf: np.ndarray,
             t_ev: np.ndarray, l_th: np.ndarray, l_hold: np.ndarray, r_load: float
             ) -> tuple[np.ndarray, np.ndarray]:
    """Apply the events of devices ``ev`` (already advanced to them).

    Returns (indices that switched ON, indices that switched OFF).
    """
    v = soma.v
    cross = np.flatnonzero(ev & (kind == _CROSS))
    if cross.size:
        snap = t_ev[cross] > 0                     # reached it now: put v exactly on the level
        sgn = np.where(v_inf[cross] >= 0, 1.0, -1.0)
        v[cross] = np.where(snap, sgn * l_th[cross], v[cross])
        soma.pol[cross] = np.where(v[cross] >= 0, 1.0, -1.0)
        soma.armed[cross] = True
        soma.t_armed_s[cross] = 0.0
        soma.t_delay_s[cross] = _switch_delay(soma, cross, v_inf[cross], r_load)
    fall = np.flatnonzero(ev & (kind == _FALL))
    if fall.size:
        v[fall] = np.where(t_ev[fall] > 0, soma.pol[fall] * l_th[fall], v[fall])
        soma.armed[fall] = False
    fire = ev & (((kind == _CROSS) & (soma.t_delay_s <= 0)) | (kind == _DELAY))
    fire_idx = np.flatnonzero(fire)
    hold = ev & (kind == _HOLD)
    hold_idx = np.flatnonzero(hold)
    if hold_idx.size:
        v[hold_idx] = np.where(t_ev[hold_idx] > 0, soma.pol[hold_idx] * l_hold[hold_idx],
                               v[hold_idx])
    release = hold | (ev & (kind == _DWELL) & (soma.pol * v <= l_hold))
    dwell_idx = np.flatnonzero(ev & ((kind == _DWELL) | (kind == _HOLD)))
    soma.t_on_s[dwell_idx] = np.maximum(soma.t_on_s[dwell_idx],
                                        soma.p["min_on_dwell_s"][dwell_idx])
    off_idx = np.flatnonzero(release)
    if off_idx.size:
        soma.switch_off(off_idx)
    if fire_idx.size:
        soma.switch_on(fire_idx, soma.pol[fire_idx])
    return fire_idx, off_idx


def _advance_clock(soma: SomaArray, step: np.ndarray) -> None:
    """Dwell and delay clocks move on by step (they are reset when they start to matter)."""
    soma.t_on_s += step
    soma.t_armed_s += step


def _check_stall(stall: np.ndarray, ev: np.ndarray, t_ev: np.ndarray) -> None:
    """Count zero-time events in a row per device; a long run means a logic loop, not physics."""
    zero = ev & (t_ev <= 0)
    stall[zero] += 1
    stall[ev & ~zero] = 0
    if stall.max() > 50:
        raise RuntimeError(
            f"soma event loop stalled on device(s) {np.flatnonzero(stall > 50)[:5].tolist()}: "
            "events keep firing without time passing")


def _wave_arrays(wave: Waveform, n: int) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(wave, Waveform):
        raise ParameterError(f"expected a Waveform, got {type(wave).__name__}")
    for a in (wave.v, wave.dt):
        if a.ndim == 2 and a.shape[0] != n:
            raise ParameterError(
                f"per-device waveform has {a.shape[0]} rows but there are {n} devices")
    k = wave.n_segments
    v = np.broadcast_to(wave.v, (n, k))
    dt = np.broadcast_to(wave.dt, (n, k))
    return v, dt


class _FastForward:
    """Skips whole periods of a steady oscillation inside one long constant segment.

    At each ON -> OFF switch the device state is (OFF, v, thresholds). When two consecutive
    switches leave the same state (noise-free devices) the cycle between them repeats exactly, so
    the remaining whole periods are counted instead of stepped. Noisy devices are skipped only when
    the segment exceeds its event budget (then the last cycle is repeated: an approximation).
    """

    def __init__(self, n: int) -> None:
        self.t_off = np.full(n, np.nan)
        self.v_off = np.full(n, np.nan)
        self.q_off = np.zeros(n)
        self.t_spike = np.full(n, np.nan)

    def spiked(self, idx: np.ndarray, t_loc: np.ndarray) -> None:
        self.t_spike[idx] = t_loc[idx]

    def candidates(self, off_idx: np.ndarray, v: np.ndarray, t_loc: np.ndarray, exact: bool,
                   forced: bool) -> tuple[np.ndarray, np.ndarray]:
        """(devices that may skip, their period) among those that just switched OFF."""
        prev_t = self.t_off[off_idx]
        period = t_loc[off_idx] - prev_t
        ok = np.isfinite(prev_t) & (period > 0) & (self.t_spike[off_idx] > prev_t)
        if not forced:
            same = np.abs(v[off_idx] - self.v_off[off_idx]) <= 1e-12 * (1 + np.abs(v[off_idx]))
            ok &= same & exact
        return off_idx[ok], period[ok]

    def mark(self, off_idx: np.ndarray, v: np.ndarray, t_loc: np.ndarray, q: np.ndarray) -> None:
        self.t_off[off_idx] = t_loc[off_idx]
        self.v_off[off_idx] = v[off_idx]
        self.q_off[off_idx] = q[off_idx]


class SomaCircuit:
    """Soma driven through a series resistor R_s, C_m in parallel, optional sense resistor R_L.

    ``run`` is exact and event driven (spec §3.7 rule 5): no time step, any segment length.
    """

    def __init__(self, soma: SomaArray, circuit: CircuitParams | None = None) -> None:
        if not isinstance(soma, SomaArray):
            raise ParameterError(f"SomaCircuit needs a SomaArray, got {type(soma).__name__}")
        self.soma = soma
        self.circuit = circuit if circuit is not None else CircuitParams()
        self.r_load = self.circuit.r_load_ohm
        self.c_m = self.circuit.c_m_f
        self.g_s = 1.0 / self.circuit.r_series_ohm

    def run(self, wave: Waveform, *, max_times_per_segment: int = 100_000,
            max_events_per_segment: int = 20_000) -> SpikeRecord:
        """Drive every device with ``wave`` (V_in at the series resistor) and record spikes.

        Spike counts are exact. Noise-free steady oscillations in long segments are fast-forwarded
        period by period (exact); noisy ones only past ``max_events_per_segment`` events.
        """
        s = self.soma
        n = s.n
        v_all, dt_all = _wave_arrays(wave, n)
        k_total = wave.n_segments
        rec = _Recorder(n, k_total, int(max_times_per_segment))
        t0 = np.zeros(n)
        g_s = np.full(n, self.g_s)
        with np.errstate(under="ignore"):
            for k in range(k_total):
                vin = np.ascontiguousarray(v_all[:, k])
                dt = np.ascontiguousarray(dt_all[:, k])
                rec.new_segment()
                rec.t_start[:, k] = t0
                q = self._segment(k, vin, dt, g_s, t0, rec, max_events_per_segment)
                rec.charge[:, k] = q
                rec.v_end[:, k] = s.v
                rec.on_end[:, k] = s.on
                g, e = s.branch(self.r_load)
                rec.i_end[:, k] = g * (s.v - e)
                t0 = t0 + dt
        return rec.finish()

    def _segment(self, k: int, vin: np.ndarray, dt: np.ndarray, g_s: np.ndarray,
                 t0: np.ndarray, rec: _Recorder, budget: int) -> np.ndarray:
        s = self.soma
        t_loc = np.zeros(s.n)
        q = np.zeros(s.n)
        ff = _FastForward(s.n)
        stall = np.zeros(s.n, dtype=np.int64)
        events = 0
        while True:
            rem = dt - t_loc
            act = rem > 0
            if not act.any():
                break
            v_inf, tau, g, e = _node_targets(s, g_s, vin, self.c_m, self.r_load)
            l_th, l_hold = s.node_levels(self.r_load)
            t_ev, kind = _next_event(s, v_inf, tau, l_th, l_hold)
            ev = act & (t_ev <= rem)
            step = np.where(ev, t_ev, np.where(act, rem, 0.0))
            q += _branch_charge(s.v, v_inf, tau, step, g, e)
            s.v[:] = _relax(s.v, v_inf, tau, step)
            _advance_clock(s, step)
            t_loc += step
            t_loc[act & ~ev] = dt[act & ~ev]          # finished exactly at the segment end
            if not ev.any():
                break
            events += 1
            _check_stall(stall, ev, t_ev)
            fire_idx, off_idx = _resolve(s, ev, kind, v_inf, t_ev, l_th, l_hold, self.r_load)
            if fire_idx.size:
                rec.add(k, fire_idx, t0[fire_idx] + t_loc[fire_idx])
                ff.spiked(fire_idx, t_loc)
            if off_idx.size:
                self._fast_forward(k, ff, off_idx, t_loc, dt, q, t0, rec, events > budget)
        return q

    def _fast_forward(self, k: int, ff: _FastForward, off_idx: np.ndarray, t_loc: np.ndarray,
                      dt: np.ndarray, q: np.ndarray, t0: np.ndarray, rec: _Recorder,
                      forced: bool) -> None:
        s = self.soma
        idx, period = ff.candidates(off_idx, s.v, t_loc, s.noise_free, forced)
        if idx.size:
            m = np.floor((dt[idx] - t_loc[idx]) / period) - 1
            go = m >= 1
            idx, period, m = idx[go], period[go], m[go].astype(np.int64)
            if idx.size:
                first = t0[idx] + ff.t_spike[idx] + period
                rec.add_periodic(k, idx, first, period, m)
                q[idx] += m * (q[idx] - ff.q_off[idx])
                t_loc[idx] += m * period
                s.n_spikes[idx] += m
                if not s.noise_free:
                    s._draw_v_th(idx)
                ff.t_spike[idx] += m * period
        ff.mark(off_idx, s.v, t_loc, q)

    # ------------------------------------------------------------------ measurement
    def soma_current(self, *, noise_event: int | np.ndarray | None = None) -> np.ndarray:
        """Current through the soma branch (and R_L) now, (N,); noisy with ``noise_event``."""
        return self.soma.branch_current(self.r_load, noise_event=noise_event)

    def input_current(self, v_in: np.ndarray | float) -> np.ndarray:
        """Current drawn from the source at v_in through R_s now, (N,) (noise free)."""
        return (np.asarray(v_in, dtype=float) - self.soma.v) * self.g_s

    def load_voltage(self) -> np.ndarray:
        """Voltage across the sense resistor R_L now (the spike output), (N,)."""
        return self.soma_current() * self.r_load


# ============================================================================ analytic helpers
def _consts(soma: SomaParams | SomaArray) -> dict[str, np.ndarray]:
    if isinstance(soma, SomaArray):
        return dict(soma.p)
    if isinstance(soma, SomaParams):
        return {k: np.asarray(getattr(soma, k), dtype=float) for k in DEVICE_FIELDS}
    raise ParameterError(f"expected SomaParams or SomaArray, got {type(soma).__name__}")


def _asymptotes(v_in: np.ndarray | float, soma: SomaParams | SomaArray, circuit: CircuitParams
                ) -> dict[str, np.ndarray]:
    """Node asymptotes, time constants and node-level thresholds in both states (|v_in|)."""
    p = _consts(soma)
    vin = np.abs(np.asarray(v_in, dtype=float))
    rl, c = circuit.r_load_ohm, circuit.c_m_f
    gs = 1.0 / circuit.r_series_ohm
    g_off = 1.0 / (p["r_off_ohm"] + rl)
    g_on = 1.0 / (p["r_on_ohm"] + rl)
    e = p["v_on0_v"]
    return {
        "vinf_off": gs * vin / (gs + g_off), "tau_off": c / (gs + g_off),
        "vinf_on": (gs * vin + g_on * e) / (gs + g_on), "tau_on": c / (gs + g_on),
        "l_th": p["v_th_v"] * (p["r_off_ohm"] + rl) / p["r_off_ohm"],
        "l_hold": e + (p["v_hold_v"] - e) * (p["r_on_ohm"] + rl) / p["r_on_ohm"],
    }


def oscillates(v_in: np.ndarray | float, soma: SomaParams | SomaArray,
               circuit: CircuitParams) -> np.ndarray:
    """Oscillation condition V_inf,off > V_th and V_inf,on < V_hold (device-level, any R_L)."""
    a = _asymptotes(v_in, soma, circuit)
    return (a["vinf_off"] > a["l_th"]) & (a["vinf_on"] < a["l_hold"])


def analytic_period(v_in: np.ndarray | float, soma: SomaParams | SomaArray,
                    circuit: CircuitParams) -> np.ndarray:
    """Steady oscillation period at constant v_in (s), inf where the circuit does not oscillate.

    Charge from the release point to V_th (tau_off ln((V_inf - v_a)/(V_inf - V_th))), wait the
    switching delay, discharge to V_hold (or for the minimum dwell, if longer). Nominal thresholds
    (no C2C); the same formula the event engine realises.
    """
    a = _asymptotes(v_in, soma, circuit)
    p = _consts(soma)
    vi_off, t_off, vi_on, t_on = a["vinf_off"], a["tau_off"], a["vinf_on"], a["tau_on"]
    l_th, l_hold = a["l_th"], a["l_hold"]
    osc = (vi_off > l_th) & (vi_on < l_hold)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        r_off = p["r_off_ohm"]
        over = vi_off * r_off / (r_off + circuit.r_load_ohm) - p["v_th_v"]
        t_d = p["delay_t0_s"] * np.exp(-np.clip(over / p["delay_vd_v"], -EXP_MAX, EXP_MAX))
        v_b = _relax(l_th, vi_off, t_off, t_d)
        t_dis = _time_down(v_b, vi_on, t_on, l_hold)
        dwell = p["min_on_dwell_s"]
        t_on_phase = np.maximum(t_dis, dwell)
        v_a = np.where(t_dis >= dwell, l_hold, _relax(v_b, vi_on, t_on, dwell))
        t_c = _time_down(-v_a, -vi_off, t_off, -l_th)
        period = t_c + t_d + t_on_phase
    return np.where(osc, period, np.inf)


def iv_sweep(soma: SomaArray, v_points: np.ndarray, compliance_a: float
             ) -> tuple[np.ndarray, np.ndarray]:
    """Quasi-static DC sweep with an SMU sourcing V straight across each soma: (v_dev, i), (N, P).

    Point by point: an OFF device fires when |V_dev| >= V_th, an ON device releases when
    pol V_dev <= V_hold. Compliance clamps |I|; the device voltage is then the branch voltage at
    the clamped current. If the compliance is below the holding current the ON state is pinned at
    the hold point (the S-NDR of a current-driven Mott switch). The state is left as swept.
    """
    if not compliance_a > 0:
        raise ParameterError(f"compliance_a = {compliance_a!r}: must be > 0 A")
    pts = np.asarray(v_points, dtype=float)
    if pts.ndim not in (1, 2) or (pts.ndim == 2 and pts.shape[0] != soma.n):
        raise ParameterError(f"v_points must be (P,) or ({soma.n}, P)")
    pts = np.broadcast_to(pts, (soma.n, pts.shape[-1]))
    p = soma.p
    ic = float(compliance_a)
    v_out = np.empty(pts.shape)
    i_out = np.empty(pts.shape)
    for j in range(pts.shape[1]):
        vs = pts[:, j]
        i_off = vs / p["r_off_ohm"]
        v_off = np.where(np.abs(i_off) > ic, np.sign(vs) * ic * p["r_off_ohm"], vs)
        fire = np.flatnonzero(~soma.on & (np.abs(v_off) >= soma.v_th))
        if fire.size:
            soma.switch_on(fire, np.where(vs[fire] >= 0, 1.0, -1.0))
        pol = soma.pol
        i_on = (vs - pol * p["v_on0_v"]) / p["r_on_ohm"]
        clamped = np.abs(i_on) > ic
        i_on_c = np.clip(i_on, -ic, ic)
        v_on = np.where(clamped, pol * p["v_on0_v"] + i_on_c * p["r_on_ohm"], vs)
        release = np.flatnonzero(soma.on & (pol * vs <= soma.v_hold))
        if release.size:
            soma.switch_off(release)
        pinned = soma.on & clamped & (pol * v_on <= soma.v_hold)
        v_on = np.where(pinned, pol * soma.v_hold, v_on)
        on = soma.on
        v_out[:, j] = np.where(on, v_on, v_off)
        i_out[:, j] = np.where(on, i_on_c, np.clip(i_off, -ic, ic))
        soma.v[:] = v_out[:, j]
    return v_out, i_out

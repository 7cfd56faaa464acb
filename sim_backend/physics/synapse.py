"""1T1R analog RRAM synapse: conductance in [G_min, G_max], moved by exact exponential SET/RESET
steps (SET target set by the gate voltage) with C2C noise; reads are noisy but never feed back.
No write-verify here: that loop belongs to the instrument/protocol layer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from dendrolab.errors import ParameterError

from . import rng
from .params import ParamSet, param
from .waveform import Waveform

#: Cap on exponent arguments V/V_s: exp(500) * any sane k * 100 s stays finite in float64.
_EXP_CAP = 500.0

#: Per-device parameters (name in ``SynapseArray.p``) and the D2D stream / sigma field for each.
_D2D = {
    "g_max_s": ("d2d.g_max", "d2d_g_max_sigma_ln"),
    "g_min_s": ("d2d.g_min", "d2d_g_min_sigma_ln"),
    "k_set_per_s": ("d2d.k_set", "d2d_k_set_sigma_ln"),
    "k_reset_per_s": ("d2d.k_reset", "d2d_k_reset_sigma_ln"),
}
_PER_DEVICE = ("g_min_s", "g_max_s", "k_set_per_s", "v_set_v", "k_reset_per_s", "v_reset_v",
               "v_g0_v", "s_g_v", "eps_nl")

STUCK_NONE, STUCK_LOW, STUCK_HIGH = 0, -1, 1


@dataclass(frozen=True)
class SynapseParams(ParamSet):
    """Nominal 1T1R cell: conductance window, SET/RESET kinetics, noise, faults, relaxation."""

    section: ClassVar[str] = "synapse"

    g_min_s: float = param(2e-6, "S", "lowest conductance (full RESET, HRS)", lo=0, lo_open=True)
    g_max_s: float = param(20e-6, "S", "highest conductance (full SET, LRS)", lo=0, lo_open=True)
    eps_nl: float = param(0.25, "1/V^2", "read I-V cubic term: I = G V (1 + eps_nl V^2)", lo=0)
    v_g0_v: float = param(1.0, "V", "gate voltage at which the SET target is mid-window",
                          kind="voltage")
    s_g_v: float = param(0.1, "V", "logistic width of the SET target in gate voltage",
                         lo=0, lo_open=True, kind="voltage")
    v_gate_v: float = param(1.6, "V", "gate voltage used when a pulse gives none",
                            kind="voltage")
    k_set_per_s: float = param(1e-7, "1/s", "SET rate prefactor: r_set = k exp(V/v_set)",
                               lo=0, lo_open=True, kind="rate")
    v_set_v: float = param(0.05, "V", "SET rate voltage scale (1.5 V/100 ns ~ 10 % step)",
                           lo=0, lo_open=True, kind="voltage")
    k_reset_per_s: float = param(1.5e-7, "1/s", "RESET rate prefactor: r = k exp(|V|/v_reset)",
                                 lo=0, lo_open=True, kind="rate")
    v_reset_v: float = param(0.05, "V", "RESET rate voltage scale", lo=0, lo_open=True,
                             kind="voltage")
    c2c_sigma_ln: float = param(0.3, "1", "C2C log-normal sigma multiplying each pulse step",
                                lo=0, kind="sigma")
    c2c_add_rel: float = param(0.005, "1", "C2C additive Gaussian sigma per full pulse, x range",
                               lo=0, kind="sigma")
    read_noise_rel: float = param(0.02, "1", "relative Gaussian read noise sigma per read",
                                  lo=0, kind="sigma")
    d2d_g_max_sigma_ln: float = param(0.15, "1", "D2D log-normal sigma of g_max", lo=0,
                                      kind="sigma")
    d2d_g_min_sigma_ln: float = param(0.15, "1", "D2D log-normal sigma of g_min", lo=0,
                                      kind="sigma")
    d2d_k_set_sigma_ln: float = param(0.3, "1", "D2D log-normal sigma of k_set", lo=0,
                                      kind="sigma")
    d2d_k_reset_sigma_ln: float = param(0.3, "1", "D2D log-normal sigma of k_reset", lo=0,
                                        kind="sigma")
    stuck_fraction: float = param(0.01, "1", "fraction of stuck cells (half at G_min, half G_max)",
                                  lo=0, hi=1, kind="sigma")
    relax_drift_rel: float = param(0.0, "1", "relaxation mean shift per ln(1 + t/t0), x range")
    relax_sigma_a_rel: float = param(0.0, "1", "relaxation spread slope per ln(1 + t/t0), x range",
                                     lo=0, kind="sigma")
    relax_sigma_b_rel: float = param(0.0, "1", "relaxation spread offset (reached by t0), x range",
                                     lo=0, kind="sigma")
    relax_t0_s: float = param(1.0, "s", "relaxation time origin t0", lo=0, lo_open=True,
                              kind="time")
    relax_reset_fraction: float = param(
        1e-3, "1", "a pulse restarts the relaxation clock only if it moves G this far to target",
        lo=0, hi=1)


def _maximum(a: float, b: float) -> float:
    """``np.maximum`` of two floats (NaN propagates; equal values, +-0 too, give ``b``)."""
    return a if a > b or a != a else b


def _minimum(a: float, b: float) -> float:
    """``np.minimum`` of two floats (NaN propagates; equal values, +-0 too, give ``b``)."""
    return a if a < b or a != a else b


def _clip(x: float, lo: float, hi: float) -> float:
    """``np.clip`` of a float (NaN propagates; a bound equal to ``x``, +-0 too, keeps ``x``)."""
    if x != x:
        return x
    x = x if x >= lo else lo
    return x if x <= hi else hi


def _per_device(value: object, n: int, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        return np.full(n, float(arr))
    if arr.shape != (n,):
        raise ParameterError(f"{name}: expected a scalar or ({n},) array, got shape {arr.shape}")
    return arr


class SynapseArray:
    """N independent 1T1R cells.

    Public state: ``g_s`` (N,) conductance now, ``stuck`` (N,) int8 (0 free, -1 stuck at G_min,
    +1 stuck at G_max), ``n_pulses`` / ``n_reads`` (N,) per-device event counters keying the C2C
    and read noise, ``g_prog_s`` and ``age_s`` (conductance left by the last programming pulse and
    the time since it, for the relaxation law). Per-device parameters are in ``p``.
    """

    def __init__(self, params: SynapseParams, n: int | None = None, *,
                 keys: np.ndarray | None = None,
                 scale: Mapping[str, np.ndarray] | None = None) -> None:
        if keys is None:
            if n is None:
                raise ParameterError("SynapseArray needs n or keys")
            keys = rng.device_keys(0, 0, 0, np.arange(int(n)))
        keys = np.atleast_1d(np.asarray(keys, dtype=np.uint64))
        if n is not None and int(n) != keys.shape[0]:
            raise ParameterError(f"SynapseArray: n = {n} but {keys.shape[0]} keys given")
        self.params = params
        self.keys = keys
        self.n = n = keys.shape[0]
        self.p: dict[str, np.ndarray] = {k: np.full(n, getattr(params, k)) for k in _PER_DEVICE}
        for name, factor in dict(scale or {}).items():
            if name not in self.p:
                raise ParameterError(
                    f"synapse scale: unknown parameter {name!r}; known: {', '.join(self.p)}")
            self.p[name] = self.p[name] * _per_device(factor, n, f"scale[{name}]")
        for name, (stream, sigma_field) in _D2D.items():
            self.p[name] = self.p[name] * rng.lognormal(keys, stream, getattr(params, sigma_field))
        # Keep the window open whatever the draws: G_min strictly below G_max.
        self.p["g_min_s"] = np.minimum(self.p["g_min_s"], 0.99 * self.p["g_max_s"])

        u = rng.uniform(keys, "stuck")
        half = params.stuck_fraction / 2
        self.stuck = np.where(u < half, STUCK_LOW, np.where(u > 1 - half, STUCK_HIGH, STUCK_NONE)
                              ).astype(np.int8)
        g0 = np.where(self.stuck == STUCK_HIGH, self.p["g_max_s"], self.p["g_min_s"])
        self.g_s = g0.copy()
        self.g_prog_s = g0.copy()
        self.age_s = np.zeros(n)
        self.n_pulses = np.zeros(n, dtype=np.int64)
        self.n_reads = np.zeros(n, dtype=np.int64)
        self._relax_event = np.zeros(n, dtype=np.int64)

    # ----------------------------------------------------------------------------------------
    #: Per-device state a pulse, read or relaxation changes (``take``/``put`` move these).
    STATE = ("g_s", "g_prog_s", "age_s", "n_pulses", "n_reads", "_relax_event")

    def take(self, idx: np.ndarray) -> SynapseArray:
        """The devices ``idx`` as an array of their own (parameters, keys and state copied):
        every stream is keyed per device and per device event, so a pulse on the subset draws
        exactly what the same pulse on the whole array draws for those devices."""
        sub = object.__new__(SynapseArray)
        sub.params, sub.keys, sub.n = self.params, self.keys[idx], int(np.size(idx))
        sub.p = {k: v[idx] for k, v in self.p.items()}
        sub.stuck = self.stuck[idx]
        for name in self.STATE:
            setattr(sub, name, getattr(self, name)[idx].copy())
        return sub

    def put(self, idx: np.ndarray, sub: SynapseArray) -> None:
        """Write a ``take`` subset's state back."""
        for name in self.STATE:
            getattr(self, name)[idx] = getattr(sub, name)

    def g_sat(self, v_gate: object = None) -> np.ndarray:
        """SET target G_sat(V_g) = G_min + (G_max - G_min) * logistic((V_g - V_g0) / s_g)."""
        vg = _per_device(self.params.v_gate_v if v_gate is None else v_gate, self.n, "v_gate")
        z = np.clip((vg - self.p["v_g0_v"]) / self.p["s_g_v"], -_EXP_CAP, _EXP_CAP)
        frac = 1.0 / (1.0 + np.exp(-z))
        return self.p["g_min_s"] + (self.p["g_max_s"] - self.p["g_min_s"]) * frac

    def rate(self, v_bl: object) -> np.ndarray:
        """Switching rate r(V) (1/s): k_set exp(V/v_set) for V > 0, k_reset exp(|V|/v_reset)."""
        v = _per_device(v_bl, self.n, "v_bl")
        xs = np.minimum(np.maximum(v, 0.0) / self.p["v_set_v"], _EXP_CAP)
        xr = np.minimum(np.maximum(-v, 0.0) / self.p["v_reset_v"], _EXP_CAP)
        return np.where(v > 0, self.p["k_set_per_s"] * np.exp(xs),
                        np.where(v < 0, self.p["k_reset_per_s"] * np.exp(xr), 0.0))

    def pulse(self, v_bl: object, width_s: object, v_gate: object = None) -> None:
        """Apply one bitline pulse per device (0 V or 0 s: the cell just ages by the width).

        Positive: SET, G -> G_sat(V_g) by the fraction 1 - exp(-r t); negative: RESET towards
        G_min. The C2C log-normal factor multiplies the dose r t (for small steps the same as
        multiplying the step, and a saturating pulse still ends at its target); a Gaussian of
        c2c_add_rel * range * sqrt(1 - exp(-2 r t)) follows (the exact OU form, so weak pulses
        such as reads add almost nothing). Then clamp to [G_min, G_max]; stuck cells never move.

        ``pulse_cell`` is this law for one cell on scalars (write-verify speed): a change here
        must be made there too; tests/sim/test_fastpath.py compares the two bit for bit.
        """
        n, pr = self.n, self.params
        v = _per_device(v_bl, n, "v_bl")
        w = _per_device(width_s, n, "width_s")
        if np.any(w < 0) or not np.all(np.isfinite(v)) or not np.all(np.isfinite(w)):
            raise ParameterError("pulse: widths must be >= 0 s and voltages finite")
        active = (v != 0) & (w > 0)
        if not np.any(active):
            self.relax(w)
            return
        gmin, gmax = self.p["g_min_s"], self.p["g_max_s"]
        ev = self.n_pulses
        x = self.rate(v) * w                       # dimensionless pulse dose r t
        frac = -np.expm1(-x)                       # nominal 1 - exp(-r t), exact for x -> inf
        is_set = v > 0
        g = self.g_s
        target = np.where(is_set, self.g_sat(v_gate), gmin)
        gap = np.where(is_set, np.maximum(target - g, 0.0), np.minimum(target - g, 0.0))
        dose = x * rng.lognormal(self.keys, "c2c.step", pr.c2c_sigma_ln, ev)
        step = gap * -np.expm1(-dose)
        if pr.c2c_add_rel:
            sig = pr.c2c_add_rel * (gmax - gmin) * np.sqrt(-np.expm1(-2.0 * x))
            step = step + sig * rng.normal(self.keys, "c2c.add", ev)
        new = np.clip(g + step, gmin, gmax)
        move = active & (self.stuck == STUCK_NONE)

        # Programming pulses restart the relaxation clock; weak ones only shift the baseline.
        program = move & (frac >= pr.relax_reset_fraction)
        weak = move & ~program
        self.g_prog_s = np.where(program, new, np.where(weak, self.g_prog_s + (new - g),
                                                        self.g_prog_s))
        self._relax_event = np.where(program, ev, self._relax_event)
        self.age_s = np.where(program, 0.0, self.age_s + w)
        self.g_s = np.where(program, new, self.g_s)
        self.n_pulses = ev + active
        self._apply_relaxation(weak | (~active & (self.stuck == STUCK_NONE)))

    def pulse_cell(self, i: int, v: float, width_s: float, v_gate: float) -> None:
        """``pulse`` of cell ``i`` alone (bit line voltage ``v`` != 0, gate ``v_gate``), in place:
        what ``take([i])``, ``pulse([v], width_s, [v_gate])``, ``put`` give, bit for bit.

        Every step of ``pulse`` is elementwise, so one cell's result is that of the same float64
        operations on its own values: here on Python floats (IEEE double, as numpy's) with the
        transcendental steps kept as numpy ufuncs (which give a float what they give an array;
        ``math``'s libm need not) and the noise from ``rng.*_one``. It saves the dozens of
        one-element array calls a write-verify pulse on an array costs. Only without a
        relaxation law (the general path's ``_apply_relaxation`` is then just a clip).
        """
        pr = self.params
        if pr.relax_drift_rel or pr.relax_sigma_a_rel or pr.relax_sigma_b_rel:
            idx = np.array([i])
            sub = self.take(idx)
            sub.pulse(v, width_s, v_gate)
            self.put(idx, sub)
            return
        w = float(width_s)
        if not (w >= 0 and math.isfinite(v) and math.isfinite(w)):
            raise ParameterError("pulse: widths must be >= 0 s and voltages finite")
        ev = int(self.n_pulses[i])
        if not (v != 0 and w > 0):  # inactive: only ages (pulse's early ``relax``)
            self.age_s[i] = self.age_s[i] + w
            if self.stuck[i] == STUCK_NONE:
                self.g_s[i] = _clip(self.g_prog_s.item(i), self.p["g_min_s"].item(i),
                                    self.p["g_max_s"].item(i))
            return
        p = self.p
        gmin, gmax = p["g_min_s"].item(i), p["g_max_s"].item(i)
        if v > 0:  # rate(): k exp(min(max(v, 0) / v0, cap))
            x = p["k_set_per_s"].item(i) * float(np.exp(
                _minimum(_maximum(v, 0.0) / p["v_set_v"].item(i), _EXP_CAP))) * w
        else:
            x = p["k_reset_per_s"].item(i) * float(np.exp(
                _minimum(_maximum(-v, 0.0) / p["v_reset_v"].item(i), _EXP_CAP))) * w
        frac = -float(np.expm1(-x))
        g = self.g_s.item(i)
        if v > 0:  # g_sat() at the gate, then the gap up to it (never down)
            z = _clip((v_gate - p["v_g0_v"].item(i)) / p["s_g_v"].item(i), -_EXP_CAP, _EXP_CAP)
            target = gmin + (gmax - gmin) * (1.0 / (1.0 + float(np.exp(-z))))
            gap = _maximum(target - g, 0.0)
        else:
            gap = _minimum(gmin - g, 0.0)
        key = int(self.keys[i])
        dose = x * rng.lognormal_one(key, "c2c.step", pr.c2c_sigma_ln, ev)
        step = gap * -float(np.expm1(-dose))
        if pr.c2c_add_rel:
            sig = pr.c2c_add_rel * (gmax - gmin) * math.sqrt(-float(np.expm1(-2.0 * x)))
            step = step + sig * rng.normal_one(key, "c2c.add", ev)
        new = _clip(g + step, gmin, gmax)
        self.n_pulses[i] = ev + 1
        if self.stuck[i] != STUCK_NONE:  # a stuck cell only ages
            self.age_s[i] = self.age_s[i] + w
        elif frac >= pr.relax_reset_fraction:  # a programming pulse
            self.g_prog_s[i] = new
            self._relax_event[i] = ev
            self.age_s[i] = 0.0
            self.g_s[i] = new
        else:  # a weak one: shifts the baseline, then the (clip-only) relaxation
            prog = self.g_prog_s.item(i) + (new - g)
            self.g_prog_s[i] = prog
            self.age_s[i] = self.age_s[i] + w
            self.g_s[i] = _clip(prog, gmin, gmax)

    def run(self, wave: Waveform, v_gate: object = None) -> None:
        """Apply every segment of a PWC waveform as a pulse of its width (0 V segments only age)."""
        if wave.v.ndim == 2 and wave.v.shape[0] != self.n:
            raise ParameterError(f"waveform is for {wave.v.shape[0]} devices, array has {self.n}")
        for k in range(wave.n_segments):
            v, dt = wave.segment(k)
            self.pulse(v, dt, v_gate)

    def read(self, v: object, *, noise_event: object = None) -> np.ndarray:
        """Read current I = G V (1 + eps V^2) (1 + sigma_r xi); the state is not touched."""
        vv = _per_device(v, self.n, "v")
        i = self.g_s * vv * (1.0 + self.p["eps_nl"] * vv * vv)
        ev = self.n_reads if noise_event is None else noise_event
        if noise_event is None:
            self.n_reads = self.n_reads + 1
        if self.params.read_noise_rel:
            i = i * (1.0 + self.params.read_noise_rel * rng.normal(self.keys, "read.synapse", ev))
        return i

    def conductance(self) -> np.ndarray:
        """The true (noise-free) conductance now, (N,) siemens."""
        return self.g_s.copy()

    def relax(self, t_s: object) -> None:
        """Let time t_s pass without pulses: G follows the relaxation law (if configured).

        G(age) = clip(G_prog + range * (m L + (a L + b (1 - exp(-age/t0))) xi)), L = ln(1 +
        age/t0), xi one normal per device and programming event: relax(t1); relax(t2) is the
        same as relax(t1 + t2).
        """
        t = _per_device(t_s, self.n, "t_s")
        if np.any(t < 0) or not np.all(np.isfinite(t)):
            raise ParameterError("relax: time must be finite and >= 0 s")
        self.age_s = self.age_s + t
        self._apply_relaxation(self.stuck == STUCK_NONE)

    def _apply_relaxation(self, mask: np.ndarray) -> None:
        pr = self.params
        if not (pr.relax_drift_rel or pr.relax_sigma_a_rel or pr.relax_sigma_b_rel):
            self.g_s = np.where(mask, np.clip(self.g_prog_s, self.p["g_min_s"],
                                              self.p["g_max_s"]), self.g_s)
            return
        gmin, gmax = self.p["g_min_s"], self.p["g_max_s"]
        ln_t = np.log1p(self.age_s / pr.relax_t0_s)
        sigma = pr.relax_sigma_a_rel * ln_t - pr.relax_sigma_b_rel * np.expm1(
            -self.age_s / pr.relax_t0_s)
        xi = rng.normal(self.keys, "relax", self._relax_event)
        g = self.g_prog_s + (gmax - gmin) * (pr.relax_drift_rel * ln_t + sigma * xi)
        self.g_s = np.where(mask, np.clip(g, gmin, gmax), self.g_s)

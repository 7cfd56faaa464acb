"""Dendrite: a batch of volatile TaOx interface memristors with a normalised state w in [0, 1].

State updates are exact (closed-form affine map) for every piecewise-constant voltage segment.
Read noise belongs to returned currents only: nothing here may feed a measurement back into w.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from dendrolab.errors import ParameterError

from .params import ParamSet, param, positive_factors
from .rng import device_keys, lognormal, normal
from .waveform import Waveform

#: Clip of the gating exponent V/V+- (r = k (e^x - 1)): keeps rates finite at any voltage.
ARG_MAX = 60.0
#: Clip of b*dt: exp(-800) is exactly 0.0 in float64, so longer segments reach w_inf exactly.
BDT_MAX = 800.0
#: Clip of V/V0 in the sinh conduction law (sinh(600) * G * V0 stays far from overflow).
SINH_MAX = 600.0
#: Facilitation sub-steps per segment and device are capped here (the step grows beyond).
MAX_SUBSTEPS = 10_000
#: Memory budget of the per-(V, dt) propagator cache of shared waveforms.
_CACHE_BYTES = 64_000_000

#: Parameters that are held per device (nominal x scale x D2D factor).
DEVICE_FIELDS = ("g_off_s", "rho", "v0_v", "v_plus_v", "v_minus_v", "k_plus_per_s",
                 "k_minus_per_s", "tau_r_s", "kappa_rect", "facilitation")
#: Device-to-device variation: parameter -> (rng stream, sigma field of DendriteParams).
D2D_STREAMS = {
    "g_off_s": ("d2d.g_off", "d2d_g_off_sigma_ln"),
    "rho": ("d2d.rho", "d2d_rho_sigma_ln"),
    "k_plus_per_s": ("d2d.k_plus", "d2d_k_plus_sigma_ln"),
    "k_minus_per_s": ("d2d.k_minus", "d2d_k_minus_sigma_ln"),
    "tau_r_s": ("d2d.tau_r", "d2d_tau_r_sigma_ln"),
    "v_plus_v": ("d2d.v_plus", "d2d_v_plus_sigma_ln"),
}
C2C_STREAM = "c2c.k"
OU_STREAM = "ou.w"
READ_STREAM = "read.dendrite"


@dataclasses.dataclass(frozen=True)
class DendriteParams(ParamSet):
    """Nominal dendrite parameters and noise magnitudes (spec §3.2; defaults are assumed)."""

    section: ClassVar[str] = "dendrite"

    g_off_s: float = param(1e-7, "S", "small-signal OFF conductance (w = 0)", lo=0, lo_open=True)
    rho: float = param(20.0, "1", "conductance ratio between w = 1 and w = 0",
                       lo=0, lo_open=True)
    v0_v: float = param(1.0, "V", "I-V nonlinearity voltage: I ~ V0 sinh(V / V0)",
                        lo=0, lo_open=True, kind="voltage")
    v_plus_v: float = param(0.5, "V", "steepness of excitatory gating r+ = k+ (e^(V/V+) - 1)",
                            lo=0, lo_open=True, kind="voltage")
    v_minus_v: float = param(0.5, "V", "steepness of inhibitory gating r- = k- (e^(-V/V-) - 1)",
                             lo=0, lo_open=True, kind="voltage")
    k_plus_per_s: float = param(0.0908, "1/s", "excitatory rate prefactor (r+(5 V) = 2000 /s)",
                                lo=0, kind="rate")
    k_minus_per_s: float = param(0.0908, "1/s", "inhibitory rate prefactor (r-(-5 V) = 2000 /s)",
                                 lo=0, kind="rate")
    tau_r_s: float = param(3e-3, "s", "spontaneous relaxation time constant at 0 V",
                           lo=0, lo_open=True, kind="time")
    kappa_rect: float = param(1.0, "1", "current factor for V < 0 (1 = odd I-V, < 1 rectifies)",
                              lo=0)
    mapping: str = param("exponential", "", "state to conductance: G_off rho^w or "
                         "G_off (1 + (rho - 1) w)", choices=("exponential", "linear"))
    facilitation: float = param(0.0, "1", "facilitation c: k+ -> k+ (1 + c w); 0 = exact update",
                                lo=-1.0, lo_open=True)
    facilitation_step_s: float = param(1e-6, "s", "exponential-Euler sub-step used when "
                                       "facilitation != 0", lo=0, lo_open=True, kind="time")
    c2c_sigma_ln: float = param(0.05, "1", "per-pulse log-normal factor on k+ and k-",
                                lo=0, kind="sigma")
    state_noise_sigma: float = param(0.0, "1/sqrt(s)", "Ornstein-Uhlenbeck noise intensity on w",
                                     lo=0, kind="sigma")
    read_noise_rel: float = param(0.01, "1", "relative Gaussian read noise on measured current",
                                  lo=0, kind="sigma")
    d2d_g_off_sigma_ln: float = param(0.15, "1", "device-to-device log-normal sigma of G_off",
                                      lo=0, kind="sigma")
    d2d_rho_sigma_ln: float = param(0.1, "1", "device-to-device log-normal sigma of rho",
                                    lo=0, kind="sigma")
    d2d_k_plus_sigma_ln: float = param(0.2, "1", "device-to-device log-normal sigma of k+",
                                       lo=0, kind="sigma")
    d2d_k_minus_sigma_ln: float = param(0.2, "1", "device-to-device log-normal sigma of k-",
                                        lo=0, kind="sigma")
    d2d_tau_r_sigma_ln: float = param(0.1, "1", "device-to-device log-normal sigma of tau_r",
                                      lo=0, kind="sigma")
    d2d_v_plus_sigma_ln: float = param(0.03, "1", "device-to-device log-normal sigma of V+",
                                       lo=0, kind="sigma")


def exact_update(w: np.ndarray | float, r_plus: np.ndarray | float, r_minus: np.ndarray | float,
                 tau_r: np.ndarray | float, dt: np.ndarray | float) -> np.ndarray:
    """w after dt of dw/dt = r+ (1 - w) - r- w - w / tau_r with constant rates (exact).

    w' = w e^(-b dt) + w_inf (1 - e^(-b dt)), b = r+ + r- + 1/tau_r, w_inf = r+ / b: a convex
    combination, so [0, 1] is preserved; b dt is clipped at ``BDT_MAX`` (e^-800 == 0).
    """
    w = np.asarray(w, dtype=float)
    r_plus = np.asarray(r_plus, dtype=float)
    b = r_plus + r_minus + 1.0 / np.asarray(tau_r, dtype=float)
    with np.errstate(under="ignore"):
        em = np.expm1(-np.minimum(b * dt, BDT_MAX))      # e^(-b dt) - 1, in [-1, 0]
    out = w + w * em - (r_plus / b) * em
    return np.clip(out, 0.0, 1.0, out=out)


def nonlinearity(v_a: np.ndarray | float, v0: np.ndarray | float) -> np.ndarray | float:
    """NeuroSim-style I-V nonlinearity I(V_a) / I(V_a / 2) = 2 cosh(V_a / (2 V0)) (any state)."""
    x = np.minimum(np.abs(np.asarray(v_a, dtype=float) / (2.0 * np.asarray(v0, dtype=float))),
                   SINH_MAX)
    out = 2.0 * np.cosh(x)
    return float(out) if np.ndim(out) == 0 else out


class DendriteArray:
    """N dendrites: per-device parameters ``p[name]`` (read-only, shape (N,)) and state.

    State (public, shape (N,)): ``w`` in [0, 1] (0 = relaxed OFF) and ``events``, the per-device
    pulse counter that indexes the cycle-to-cycle draws. A *pulse* is a maximal run of segments
    (of non-zero duration) at non-zero voltage of one polarity: it gets one C2C factor, so ramp
    edges split into sub-segments, or any segment split in two, see the same noise as one segment.
    """

    def __init__(self, params: DendriteParams, n: int | None = None, *,
                 keys: np.ndarray | None = None,
                 scale: Mapping[str, np.ndarray] | None = None) -> None:
        if not isinstance(params, DendriteParams):
            raise ParameterError(f"DendriteArray needs DendriteParams, got {type(params).__name__}")
        if keys is None:
            if n is None or int(n) < 1:
                raise ParameterError(f"dendrite array: n must be a positive integer, got {n!r}")
            keys = device_keys(0, 0, 0, np.arange(int(n)))
        keys = np.asarray(keys)
        if keys.ndim != 1 or keys.size == 0 or keys.dtype.kind not in "ui":
            raise ParameterError("dendrite array: keys must be a non-empty 1-D integer array")
        if n is not None and int(n) != keys.size:
            raise ParameterError(f"dendrite array: n = {n} but {keys.size} keys given")
        self.params = params
        self.keys = keys.astype(np.uint64)
        self.n = int(keys.size)
        scale = dict(scale or {})
        unknown = set(scale) - set(DEVICE_FIELDS)
        if unknown:
            raise ParameterError(
                f"dendrite scale: unknown parameter(s) {', '.join(sorted(unknown))}; "
                f"per-device parameters: {', '.join(DEVICE_FIELDS)}")
        self.p: dict[str, np.ndarray] = {}
        for name in DEVICE_FIELDS:
            val = np.full(self.n, float(getattr(params, name)))
            if name in scale:
                val *= positive_factors(scale[name], self.n, f"dendrite scale[{name!r}]")
            if name in D2D_STREAMS:
                stream, sigma = D2D_STREAMS[name]
                val *= lognormal(self.keys, stream, getattr(params, sigma), 0)
            val.setflags(write=False)
            self.p[name] = val
        if np.any(self.p["facilitation"] <= -1.0):
            raise ParameterError("dendrite facilitation x scale must stay > -1 (k+ > 0)")
        # Derived per-device constants of the hot loop.
        self._inv_tau = 1.0 / self.p["tau_r_s"]
        self._inv_vp = 1.0 / self.p["v_plus_v"]
        self._inv_vm = 1.0 / self.p["v_minus_v"]
        self._kp = self.p["k_plus_per_s"]
        self._km = self.p["k_minus_per_s"]
        self._c2c_on = params.c2c_sigma_ln > 0
        self._ou_on = params.state_noise_sigma > 0
        self._facil_on = bool(np.any(self.p["facilitation"] != 0))
        self._exact_only = not (self._facil_on or self._ou_on)
        # State.
        self.w = np.zeros(self.n)
        self.events = np.zeros(self.n, dtype=np.int64)
        self._ou_events = np.zeros(self.n, dtype=np.int64)
        self._polarity = np.zeros(self.n)   # sign (-1, 0, 1) of the last segment with dt > 0
        self._pol_all: int | None = 0       # that sign when common to all devices, else None
        self._kp_eff = self._kp.copy() if self._c2c_on else self._kp
        self._km_eff = self._km.copy() if self._c2c_on else self._km
        self._new_caches()

    def _new_caches(self) -> None:
        self._buf = [np.empty(self.n) for _ in range(3)]
        self._bbuf = [np.empty(self.n, dtype=bool) for _ in range(2)]
        self._decay_cache: dict[float, np.ndarray] = {}
        self._em_cache: dict[float, np.ndarray] = {}
        self._affine_cache: dict[tuple[float, float], tuple[np.ndarray, np.ndarray | None]] = {}
        self._cache_max = max(8, int(_CACHE_BYTES // (16 * self.n)))

    # ------------------------------------------------------------------ physics
    def rates(self, v: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Per-device (r+, r-) in 1/s at voltage v (no C2C factor, no facilitation)."""
        v = np.asarray(v, dtype=float)
        xp = np.minimum(np.maximum(v, 0.0) * self._inv_vp, ARG_MAX)
        xm = np.minimum(np.maximum(-v, 0.0) * self._inv_vm, ARG_MAX)
        return self._kp * np.expm1(xp), self._km * np.expm1(xm)

    def current(self, v: np.ndarray | float, w: np.ndarray | None = None, *,
                noise_event: int | np.ndarray | None = None) -> np.ndarray:
        """Current (A) at voltage v and state w (default: the present state); never changes w.

        v and w are scalars, (N,) or (N, M) arrays (M sample points per device). With
        ``noise_event`` (an int, or an array broadcasting to the samples) the relative Gaussian
        read noise of stream "read.dendrite" is applied; without it the current is noise free.
        """
        v = np.asarray(v, dtype=float)
        w = self.w if w is None else np.asarray(w, dtype=float)
        two_d = v.ndim == 2 or w.ndim == 2
        p = {k: (a[:, None] if two_d else a) for k, a in self.p.items()}
        if self.params.mapping == "exponential":
            g = p["g_off_s"] * np.power(p["rho"], w)
        else:
            g = p["g_off_s"] * (1.0 + (p["rho"] - 1.0) * w)
        x = np.clip(v / p["v0_v"], -SINH_MAX, SINH_MAX)
        i = g * p["v0_v"] * np.sinh(x)
        i = np.where(v < 0, p["kappa_rect"] * i, i)
        if noise_event is not None and self.params.read_noise_rel > 0:
            keys = self.keys[:, None] if two_d else self.keys
            xi = normal(keys, READ_STREAM, np.asarray(noise_event))
            i = i * (1.0 + self.params.read_noise_rel * xi)
        return i

    # ------------------------------------------------------------------ stepping
    def step(self, v: np.ndarray | float, dt: np.ndarray | float) -> None:
        """Advance every device through one constant-voltage segment (v, dt scalar or (N,))."""
        v_arr = np.asarray(v, dtype=float)
        dt_arr = np.asarray(dt, dtype=float)
        for name, a in (("v", v_arr), ("dt", dt_arr)):
            if a.ndim > 1 or (a.ndim == 1 and a.shape[0] != self.n):
                raise ParameterError(f"dendrite step: {name} must be a scalar or ({self.n},)")
            if not np.all(np.isfinite(a)):
                raise ParameterError(f"dendrite step: {name} contains NaN or Inf")
        if np.any(dt_arr < 0):
            raise ParameterError("dendrite step: segment durations must be >= 0 s")
        with np.errstate(under="ignore"):
            if v_arr.ndim == 0 and dt_arr.ndim == 0 and self._exact_only:
                self._step_shared(float(v_arr), float(dt_arr))
            else:
                self._step_devices(v_arr, dt_arr)

    def run(self, wave: Waveform, record: bool = False) -> np.ndarray | None:
        """Apply every segment of ``wave`` in order; with ``record`` return w after each, (N, K)."""
        v, dt = wave.v, wave.dt
        k_total = wave.n_segments
        for a in (v, dt):
            if a.ndim == 2 and a.shape[0] != self.n:
                raise ParameterError(
                    f"dendrite run: per-device waveform has {a.shape[0]} rows, array has {self.n}")
        # A broadcast (stride-0) per-device array is one shared row: no transposing needed.
        v = v[0] if v.ndim == 2 and v.strides[0] == 0 else v
        dt = dt[0] if dt.ndim == 2 and dt.strides[0] == 0 else dt
        out = np.empty((k_total, self.n)) if record else None
        with np.errstate(under="ignore"):
            if v.ndim == 1 and dt.ndim == 1 and self._exact_only:
                vl, dtl = v.tolist(), dt.tolist()
                for k in range(k_total):
                    self._step_shared(vl[k], dtl[k])
                    if out is not None:
                        out[k] = self.w
            else:
                block = 16                      # columns transposed at a time (cache-sized)
                for k0 in range(0, k_total, block):
                    k1 = min(k_total, k0 + block)
                    vb = np.ascontiguousarray(v[..., k0:k1].T)
                    dtb = np.ascontiguousarray(dt[..., k0:k1].T)
                    for j in range(k1 - k0):
                        self._step_devices(vb[j], dtb[j])
                        if out is not None:
                            out[k0 + j] = self.w
        return None if out is None else out.T

    def reset(self) -> None:
        """Relax every device to w = 0 (OFF). Noise counters keep counting: no replayed noise."""
        self.w[:] = 0.0
        self._polarity[:] = 0
        self._pol_all = 0

    def copy(self) -> DendriteArray:
        """Independent copy of state (parameters are immutable and shared)."""
        new = object.__new__(DendriteArray)
        new.__dict__.update(self.__dict__)
        for name in ("w", "events", "_ou_events", "_polarity"):
            setattr(new, name, getattr(self, name).copy())
        if self._c2c_on:
            new._kp_eff = self._kp_eff.copy()
            new._km_eff = self._km_eff.copy()
        new._new_caches()
        return new

    # ------------------------------------------------------------------ internals
    def _draw_c2c(self, idx: np.ndarray | None) -> None:
        """Start a pulse on devices ``idx`` (None = all): C2C draw at ``events``, then count it."""
        if idx is None:
            if self._c2c_on:
                f = lognormal(self.keys, C2C_STREAM, self.params.c2c_sigma_ln, self.events)
                np.multiply(self._kp, f, out=self._kp_eff)
                np.multiply(self._km, f, out=self._km_eff)
            self.events += 1
        else:
            if self._c2c_on:
                f = lognormal(self.keys[idx], C2C_STREAM, self.params.c2c_sigma_ln,
                              self.events[idx])
                self._kp_eff[idx] = self._kp[idx] * f
                self._km_eff[idx] = self._km[idx] * f
            self.events[idx] += 1

    def _track_shared(self, v: float) -> None:
        """Pulse bookkeeping for one segment of positive duration, voltage shared by all."""
        sign = (v > 0) - (v < 0)
        if self._pol_all == sign:
            return
        if sign != 0:
            self._draw_c2c(None if self._pol_all is not None
                           else np.flatnonzero(self._polarity != sign))
        self._polarity.fill(sign)
        self._pol_all = sign

    def _track_devices(self, v: np.ndarray, dt: np.ndarray) -> None:
        """Pulse bookkeeping for per-device segments (v and/or dt of shape (N,))."""
        if np.ndim(dt):
            live = np.greater(dt, 0.0, out=self._bbuf[1])
            all_live = bool(live.all())
        else:
            if not dt > 0:
                return
            live, all_live = None, True
        if not v.any():
            if all_live:
                if self._pol_all != 0:
                    self._polarity.fill(0.0)
                    self._pol_all = 0
            else:
                np.copyto(self._polarity, 0.0, where=live)
                self._pol_all = None if self._polarity.any() else 0
            return
        if not np.ndim(v):
            if all_live:
                self._track_shared(float(v))
            else:
                self._track_devices(np.full(self.n, float(v)), dt)
            return
        sign = np.sign(v, out=self._buf[0])
        new = np.not_equal(sign, self._polarity, out=self._bbuf[0])
        new &= sign.astype(bool)
        if not all_live:
            new &= live
        if new.any():
            self._draw_c2c(None if new.all() else np.flatnonzero(new))
        if all_live:
            self._polarity[:] = sign
        else:
            np.copyto(self._polarity, sign, where=live)
        first = self._polarity[0]
        self._pol_all = int(first) if (self._polarity == first).all() else None

    def _decay(self, dt: float) -> np.ndarray:
        d = self._decay_cache.get(dt)
        if d is None:
            d = np.exp(-np.minimum(dt * self._inv_tau, BDT_MAX))
            if len(self._decay_cache) >= self._cache_max:
                self._decay_cache.clear()
            self._decay_cache[dt] = d
        return d

    def _em(self, v: float) -> np.ndarray:
        """e^(|V|/V+-) - 1 per device for a shared voltage (cached)."""
        em = self._em_cache.get(v)
        if em is None:
            inv = self._inv_vp if v > 0 else self._inv_vm
            em = np.expm1(np.minimum(abs(v) * inv, ARG_MAX))
            if len(self._em_cache) >= self._cache_max:
                self._em_cache.clear()
            self._em_cache[v] = em
        return em

    def _step_shared(self, v: float, dt: float) -> None:
        """Exact update for a segment shared by all devices (no facilitation, no OU noise)."""
        if not dt > 0:
            return
        self._track_shared(v)
        w = self.w
        if v == 0.0:
            np.multiply(w, self._decay(dt), out=w)
            return
        if not self._c2c_on:
            key = (v, dt)
            ab = self._affine_cache.get(key)
            if ab is None:
                ab = self._propagator(v, dt, self._kp if v > 0 else self._km)
                if len(self._affine_cache) >= self._cache_max // 2:
                    self._affine_cache.clear()
                self._affine_cache[key] = ab
        else:
            ab = self._propagator(v, dt, self._kp_eff if v > 0 else self._km_eff)
        e, b = ab
        np.multiply(w, e, out=w)
        if b is not None:
            np.add(w, b, out=w)
            np.minimum(w, 1.0, out=w)

    def _propagator(self, v: float, dt: float, k: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(E, B) with w' = E w + B for a shared segment; B is None when v < 0 (w_inf = 0)."""
        r = k * self._em(v)
        b = r + self._inv_tau
        em = np.minimum(b * dt, BDT_MAX)
        np.negative(em, out=em)
        np.expm1(em, out=em)
        if v > 0:
            r /= b
            r *= em
            np.negative(r, out=r)                             # B = w_inf (1 - E) >= 0
            return em + 1.0, r
        return em + 1.0, None

    def _step_devices(self, v: np.ndarray, dt: np.ndarray) -> None:
        """Update for per-device v and/or dt (and the facilitation / OU-noise paths)."""
        self._track_devices(v, dt)
        if self._exact_only:
            self._exact_devices(v, dt)
            return
        pos = v > 0
        x = np.maximum(v * self._inv_vp, -v * self._inv_vm)   # |V| / V+- (>= 0)
        np.minimum(x, ARG_MAX, out=x)
        r = np.expm1(x, out=x)
        r *= np.where(pos, self._kp_eff, self._km_eff)
        r_plus = np.where(pos, r, 0.0)
        r_minus = r - r_plus
        if self._facil_on:
            self._substeps(pos, r_plus, r_minus, dt)
        else:
            self.w[...] = exact_update(self.w, r_plus, r_minus, self.p["tau_r_s"], dt)
        if self._ou_on:
            self._ou_noise(r_plus, r_minus, dt)

    def _exact_devices(self, v: np.ndarray, dt: np.ndarray) -> None:
        """``exact_update`` in place on preallocated buffers (the hot loop of per-device runs)."""
        w = self.w
        x, y, b = self._buf
        if not v.any():                                       # rest: w *= e^(-dt / tau_r)
            if np.ndim(dt) == 0:
                np.multiply(w, self._decay(float(dt)), out=w)
                return
            np.multiply(dt, self._inv_tau, out=x)
            np.minimum(x, BDT_MAX, out=x)
            np.negative(x, out=x)
            np.exp(x, out=x)
            np.multiply(w, x, out=w)
            return
        pos = np.greater(v, 0.0, out=self._bbuf[0])
        np.multiply(v, self._inv_vp, out=x)
        np.multiply(v, self._inv_vm, out=y)
        np.negative(y, out=y)
        np.maximum(x, y, out=x)                               # |V| / V+- (>= 0)
        np.minimum(x, ARG_MAX, out=x)
        np.expm1(x, out=x)
        np.copyto(y, self._km_eff)
        np.copyto(y, self._kp_eff, where=pos)
        np.multiply(x, y, out=x)                              # r+ or r-, whichever is active
        np.add(x, self._inv_tau, out=b)                       # b = r+ + r- + 1 / tau_r
        np.multiply(x, pos, out=x)                            # r+
        np.divide(x, b, out=x)                                # w_inf
        np.multiply(b, dt, out=b)
        np.minimum(b, BDT_MAX, out=b)
        np.negative(b, out=b)
        np.expm1(b, out=b)                                    # e^(-b dt) - 1
        np.subtract(w, x, out=y)
        np.multiply(y, b, out=y)
        np.add(w, y, out=w)                                   # w_inf + (w - w_inf) e^(-b dt)
        np.minimum(w, 1.0, out=w)
        np.maximum(w, 0.0, out=w)

    def _substeps(self, pos: np.ndarray, r_plus: np.ndarray, r_minus: np.ndarray,
                  dt: np.ndarray) -> None:
        """Exponential Euler: k+ (1 + c w) frozen over each sub-step, exact update within it.

        Device i takes n_i = ceil(dt_i / h) equal sub-steps (capped at ``MAX_SUBSTEPS``) when
        driven positive, else one exact step; its result never depends on the other devices. A
        device whose w is unchanged by a sub-step sits on the fixed point of this deterministic
        map, so its remaining sub-steps are skipped (exactly the same result, much faster).
        """
        c = self.p["facilitation"]
        tau = self.p["tau_r_s"]
        dt = np.broadcast_to(dt, (self.n,))
        n_sub = np.where(pos & (dt > 0), np.ceil(dt / self.params.facilitation_step_s), 1.0)
        np.minimum(n_sub, MAX_SUBSTEPS, out=n_sub)
        hs = dt / n_sub
        ends = {int(x) for x in np.unique(n_sub)}
        w = self.w
        idx = np.arange(self.n)
        for j in range(max(ends)):
            if j in ends:
                idx = idx[n_sub[idx] > j]
            if idx.size == 0:
                break
            wi = w[idx]
            new = exact_update(wi, r_plus[idx] * (1.0 + c[idx] * wi), r_minus[idx], tau[idx],
                               hs[idx])
            w[idx] = new
            if j:
                idx = idx[new != wi]

    def _ou_noise(self, r_plus: np.ndarray, r_minus: np.ndarray, dt: np.ndarray) -> None:
        """Exact Ornstein-Uhlenbeck increment around the deterministic update (then clip)."""
        live = np.broadcast_to(dt > 0, (self.n,))
        if self._facil_on:
            r_plus = r_plus * (1.0 + self.p["facilitation"] * self.w)
        b = r_plus + r_minus + self._inv_tau
        var = -np.expm1(-np.minimum(2.0 * b * dt, BDT_MAX)) / (2.0 * b)
        xi = normal(self.keys, OU_STREAM, self._ou_events)
        self.w += self.params.state_noise_sigma * np.sqrt(var) * xi      # var = 0 when dt = 0
        np.clip(self.w, 0.0, 1.0, out=self.w)
        self._ou_events += live


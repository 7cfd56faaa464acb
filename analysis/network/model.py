"""The authors' dendritic network, forward and explicit backward, in numpy (float32).

Why explicit gradients: no autograd library is a dependency, and writing the backward pass out
makes every choice visible (notes §1.4-1.6, research/network.md). Per layer with B branches:

1. branch partial sums ``z_b = x_b W_b`` (every input reaches every neuron; the layout only says
   which partial sum goes through which branch);
2. dendrite, per sample and per branch, over *all* neurons j of the layer:

   * ``"pytorch"`` variant (default; the authors' 83.75 % SVHN figure belongs to it):
     ``u = z / max_j |z_j|``, ``f = F_a(u)``, ``d = f / max_j |f_j|``;
   * ``"matlab"`` variant: ``u = max(z, 0) / max(max_j z_j, 1)`` (rectify; divide only when the
     largest partial sum exceeds 1), ``d = F_a(u)``, no second normalisation;

   with ``F_a(u) = (e^(a u) - 1)/(e^a - 1)``, ``a = 50 NL/(1 - NL)``, ``F_a(u) = u`` for a <= 0;
3. soma ``s = sum_b d_b``, ``y = max(2 sigma(s - theta) - 1, 0)`` (= max(tanh((s - theta)/2), 0)).

Training uses cross-entropy with the output *soma outputs* as logits, as the authors' PyTorch
code does (notes §1.6), and the exact gradient of this forward pass, including the gradient
through both max-normalisations (what PyTorch autograd computes when the maxima are not
detached -- an assumption: we could not see whether the authors detach them). For the MATLAB
variant only the forward pass follows MATLAB; its training here is the same exact-gradient CE,
not MATLAB's MSE with surrogate derivatives (notes §1.5, §1.8).

Prediction is ``argmax`` of the output soma *inputs* s: identical to argmax of y whenever the
largest y is positive and unique (y is increasing in s above theta), and it breaks ties among
outputs clipped to 0, where argmax of y would just pick the lowest label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np

from analysis.network.layout import BranchLayout
from dendrolab.errors import ParameterError

VARIANTS = ("pytorch", "matlab")
#: Above this ``a`` the branch function switches to a form that cannot overflow in float32.
_A_SWITCH = 80.0


@dataclass(frozen=True)
class NetConfig:
    """Architecture and dendrite/soma constants. ``a`` derives from ``nl`` (notes §1.5)."""

    layout: BranchLayout
    n_hidden: int
    n_out: int = 10
    nl: float = 0.1
    theta: float = 0.11
    variant: str = "pytorch"

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.nl) < 1.0:
            raise ParameterError(f"NL must be in [0, 1), got {self.nl}")
        if self.variant not in VARIANTS:
            raise ParameterError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if int(self.n_hidden) < 1 or int(self.n_out) < 2:
            raise ParameterError(f"need n_hidden >= 1 and n_out >= 2, got {self.n_hidden}, "
                                 f"{self.n_out}")
        if self.n_hidden % self.layout.output_blocks:
            raise ParameterError(f"n_hidden = {self.n_hidden} must be divisible by the "
                                 f"{self.layout.output_blocks} output blocks of layout "
                                 f"{self.layout.name!r}")

    @property
    def a(self) -> float:
        return 50.0 * self.nl / (1.0 - self.nl)

    @property
    def n_in(self) -> int:
        return self.layout.n_in

    def describe(self) -> str:
        return (f"{self.n_in}-{self.n_hidden}-{self.n_out} ({self.layout.name}: "
                f"{self.layout.n_hidden_branches} hidden branches, {self.layout.output_blocks} "
                f"output branches), NL={self.nl:g} (a={self.a:.4g}), theta={self.theta:g}, "
                f"{self.variant} variant")


@dataclass
class Params:
    """Weights in the original input order: ``w1`` (n_in, n_hidden), ``w2`` (n_hidden, n_out)."""

    w1: np.ndarray
    w2: np.ndarray

    def copy(self) -> Params:
        return Params(self.w1.copy(), self.w2.copy())


@dataclass
class LayerTrace:
    """One layer's internals: ``u``/``d`` (N, B, n_neurons), ``s``/``y`` (N, n_neurons)."""

    u: np.ndarray
    d: np.ndarray
    s: np.ndarray
    y: np.ndarray


@dataclass
class Forward:
    """Output soma outputs ``y`` and inputs ``s`` (N, n_out); traces when ``keep=True``."""

    y: np.ndarray
    s: np.ndarray
    hidden: LayerTrace | None = None
    output: LayerTrace | None = None


# ------------------------------------------------------------------------- branch function
def _coef(a: float | np.ndarray, dtype: Any) -> tuple[Any, Any, Any]:
    """(a_eff, linear mask or bool, k = a/(e^a - 1)) with a <= 0 treated as linear (k = 1)."""
    if np.ndim(a) == 0:
        af = float(a)
        if af <= 0.0:
            return dtype(0.0), True, dtype(1.0)
        return dtype(af), False, dtype(af / np.expm1(af) if af < 700 else 0.0)
    a = np.asarray(a, dtype=np.float64)
    lin = a <= 0.0
    a_eff = np.where(lin, 0.0, a)
    with np.errstate(over="ignore"):
        k = np.where(lin, 1.0, a_eff / np.expm1(np.where(lin, 1.0, a_eff)))
    return a_eff.astype(dtype), lin, k.astype(dtype)


def branch_function(u: np.ndarray | float, a: float | np.ndarray) -> np.ndarray:
    """F_a(u) = (e^(a u) - 1)/(e^a - 1); F_a(u) = u where a <= 0 (the authors' rule).

    ``a`` is a scalar or an array broadcasting against ``u`` (e.g. one ``a`` per branch and
    neuron). No overflow for any a and u <= 1; keeps float32 input float32.
    """
    u = np.asarray(u)
    if u.dtype.kind != "f":
        u = u.astype(np.float64)
    dtype = u.dtype.type
    a_eff, lin, _ = _coef(a, dtype)
    if np.ndim(a) == 0:
        if lin:
            return u.copy()
        return _f_pos(u, a_eff)
    safe = np.where(lin, dtype(1.0), a_eff).astype(dtype)
    return np.where(lin, u, _f_pos(u, safe))


def _f_pos(u: np.ndarray, a: Any) -> np.ndarray:
    """F_a for a > 0 (scalar or array): expm1 form, or the overflow-free form for large a."""
    big = np.max(a) > _A_SWITCH
    small_form = None
    if np.min(a) <= _A_SWITCH:
        with np.errstate(over="ignore", invalid="ignore"):
            small_form = np.expm1(a * u) / np.expm1(a)
        if not big:
            return small_form
    # (e^(a(u-1)) - e^(-a)) / (1 - e^(-a)): every exponent <= 0 for u <= 1
    large_form = (np.exp(a * (u - 1)) - np.exp(-a)) / (-np.expm1(-a))
    if small_form is None:
        return large_form
    return np.where(a > _A_SWITCH, large_form, small_form)


# ------------------------------------------------------------------------- layer
@dataclass
class _Cache:
    """What the backward pass of one layer needs."""

    x: np.ndarray
    z: np.ndarray
    m: np.ndarray
    u: np.ndarray
    f: np.ndarray
    n: np.ndarray | None
    d: np.ndarray
    s: np.ndarray
    y: np.ndarray
    a_eff: Any
    k: Any
    noise: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _branch_sums(x: np.ndarray, w: np.ndarray, offsets: Sequence[int]) -> np.ndarray:
    """z (N, B, M): one matmul per branch on contiguous input slices."""
    n_b = len(offsets) - 1
    z = np.empty((x.shape[0], n_b, w.shape[1]), dtype=np.result_type(x, w))
    for b in range(n_b):
        lo, hi = offsets[b], offsets[b + 1]
        np.matmul(x[:, lo:hi], w[lo:hi], out=z[:, b, :])
    return z


def _argmax_abs(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index (N, B, 1) and value (N, B, 1) of the largest |v| over the last axis."""
    idx = np.abs(v).argmax(axis=2)[..., None]
    return idx, np.take_along_axis(v, idx, axis=2)


def layer_forward(x: np.ndarray, w: np.ndarray, offsets: Sequence[int], a: Any, variant: str,
                  theta: float, *, read_std: float = 0.0, dendrite_sigma: float = 0.0,
                  rng: np.random.Generator | None = None) -> _Cache:
    """One layer on packed inputs (branch sums, normalisation, dendrites, soma), keeping what
    the backward pass needs; also the power model's layer-by-layer operating path."""
    z = _branch_sums(x, w, offsets)
    dtype = z.dtype.type
    if read_std > 0.0:  # read noise of every synapse: sum_i x_i eps_i has std |x_b|_2 * std
        assert rng is not None
        norms = np.stack([np.sqrt(np.square(x[:, lo:hi]).sum(axis=1))
                          for lo, hi in pairwise(offsets)], axis=1)
        z += (dtype(read_std) * norms[:, :, None]
              * rng.standard_normal(z.shape, dtype=np.float32)).astype(dtype)
    extra: dict[str, Any] = {}
    if variant == "pytorch":
        kz, zk = _argmax_abs(z)
        m = np.abs(zk)
        u = z / np.where(m > 0, m, dtype(1.0))
        extra["kz"], extra["sz"] = kz, np.sign(zk)
    else:
        r = np.maximum(z, dtype(0.0))
        kz = r.argmax(axis=2)[..., None]
        m = np.maximum(np.take_along_axis(r, kz, axis=2), dtype(1.0))
        u = r / m
        extra["kz"] = kz
    a_eff, _, k = _coef(a, dtype)
    f = branch_function(u, a)
    n = None
    if variant == "pytorch":
        kf, fk = _argmax_abs(f)
        n = np.abs(fk)
        n = np.where(n > 0, n, dtype(1.0))
        d = f / n
        extra["kf"], extra["sf"] = kf, np.sign(fk)
    else:
        d = f
    noise = None
    if dendrite_sigma > 0.0:  # the MATLAB code's dendrite-noise hook, (1 + sigma N(0, 1))
        assert rng is not None
        noise = (1.0 + dendrite_sigma * rng.standard_normal(d.shape, dtype=np.float32))
        d = d * noise.astype(dtype)
    s = d.sum(axis=1)
    y = np.maximum(np.tanh((s - dtype(theta)) * dtype(0.5)), dtype(0.0))
    return _Cache(x, z, m, u, f, n, d, s, y, a_eff, k, noise, extra)


def _f_inplace(u: np.ndarray, a: Any) -> np.ndarray:
    """``branch_function(u, a)`` computed in ``u``'s own memory when ``a`` is a scalar."""
    if np.ndim(a) != 0:
        return branch_function(u, a)
    af = float(a)
    if af <= 0.0:
        return u
    dtype = u.dtype.type
    if af <= _A_SWITCH:
        u *= dtype(af)
        np.expm1(u, out=u)
        u *= dtype(1.0 / np.expm1(af))
    else:
        u -= dtype(1.0)
        u *= dtype(af)
        np.exp(u, out=u)
        u -= dtype(np.exp(-af))
        u *= dtype(1.0 / -np.expm1(-af))
    return u


def _abs_max(v: np.ndarray) -> np.ndarray:
    """max_j |v_j| over the last axis (kept), without an |v| temporary; 0 replaced by 1."""
    m = np.maximum(v.max(axis=2, keepdims=True), -v.min(axis=2, keepdims=True))
    m[m == 0] = 1
    return m


def _layer_infer(x: np.ndarray, w: np.ndarray, offsets: Sequence[int], a: Any, variant: str,
                 theta: float, *, read_std: float = 0.0, dendrite_sigma: float = 0.0,
                 rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(s, y) of one layer: ``layer_forward`` without the backward cache, mostly in place.

    Same arithmetic, fewer temporaries: inference is memory-bound on the (N, B, M) arrays.
    """
    z = _branch_sums(x, w, offsets)
    dtype = z.dtype.type
    if read_std > 0.0:
        assert rng is not None
        norms = np.stack([np.sqrt(np.square(x[:, lo:hi]).sum(axis=1))
                          for lo, hi in pairwise(offsets)], axis=1)
        z += (dtype(read_std) * norms[:, :, None]
              * rng.standard_normal(z.shape, dtype=np.float32)).astype(dtype)
    if variant == "pytorch":
        z /= _abs_max(z)
        d = _f_inplace(z, a)
        d /= _abs_max(d)
    else:
        np.maximum(z, dtype(0.0), out=z)
        z /= np.maximum(z.max(axis=2, keepdims=True), dtype(1.0))
        d = _f_inplace(z, a)
    if dendrite_sigma > 0.0:
        assert rng is not None
        d *= (1.0 + dendrite_sigma * rng.standard_normal(d.shape, dtype=np.float32)
              ).astype(dtype)
    s = d.sum(axis=1)
    y = np.maximum(np.tanh((s - dtype(theta)) * dtype(0.5)), dtype(0.0))
    return s, y


def _layer_backward(c: _Cache, w: np.ndarray, offsets: Sequence[int], g_y: np.ndarray,
                    variant: str, need_gx: bool, through_clamp: float | None = None
                    ) -> tuple[np.ndarray, np.ndarray | None]:
    """Gradients of the loss w.r.t. this layer's weights and (optionally) its input.

    ``through_clamp`` (the soma's theta): the clamp at 0 passes the gradient of
    tanh((s - theta)/2) for every s (a straight-through estimator; ``CLAMP_GRADS``) instead of
    blocking it."""
    if through_clamp is not None:
        t = np.tanh((c.s - c.s.dtype.type(through_clamp)) * c.s.dtype.type(0.5))
        g_s = g_y * (0.5 * (1.0 - t * t))
    else:
        g_s = g_y * (0.5 * (1.0 - c.y * c.y)) * (c.y > 0)
    g_d = np.broadcast_to(g_s[:, None, :], c.d.shape)
    if c.noise is not None:
        g_d = g_d * c.noise
    if variant == "pytorch":
        assert c.n is not None
        corr = (g_d * c.d).sum(axis=2, keepdims=True) / c.n
        g_f = g_d / c.n
        np.put_along_axis(g_f, c.extra["kf"],
                          np.take_along_axis(g_f, c.extra["kf"], axis=2) - c.extra["sf"] * corr,
                          axis=2)
    else:
        g_f = np.array(g_d)
    g_u = g_f * (c.a_eff * c.f + c.k)
    m_safe = np.where(c.m > 0, c.m, 1)
    corr = (g_u * c.u).sum(axis=2, keepdims=True) / m_safe
    g_z = g_u / m_safe
    kz = c.extra["kz"]
    if variant == "pytorch":
        np.put_along_axis(g_z, kz, np.take_along_axis(g_z, kz, axis=2) - c.extra["sz"] * corr,
                          axis=2)
    else:
        active = c.m > 1  # the max only divides when it exceeds 1
        np.put_along_axis(g_z, kz, np.take_along_axis(g_z, kz, axis=2) - active * corr, axis=2)
        g_z *= c.z > 0
    g_z = g_z.astype(w.dtype, copy=False)
    g_w = np.empty_like(w)
    g_x = np.empty_like(c.x) if need_gx else None
    for b in range(len(offsets) - 1):
        lo, hi = offsets[b], offsets[b + 1]
        gzb = g_z[:, b, :]
        np.matmul(c.x[:, lo:hi].T, gzb, out=g_w[lo:hi])
        if g_x is not None:
            np.matmul(gzb, w[lo:hi].T, out=g_x[:, lo:hi])
    return g_w, g_x


# ------------------------------------------------------------------------- network
def init_params(cfg: NetConfig, seed: int, *, scale: float = 1.0) -> Params:
    """Weights ~ N(0, scale^2), float32 (the authors' PyTorch init is N(0, 1), notes §1.8).

    The per-branch max-normalisation makes the forward pass independent of the weights' scale;
    the scale only sets the effective learning rate (gradients scale as 1/scale).
    """
    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((cfg.n_in, cfg.n_hidden), dtype=np.float32)
    w2 = rng.standard_normal((cfg.n_hidden, cfg.n_out), dtype=np.float32)
    if scale != 1.0:
        w1 *= np.float32(scale)
        w2 *= np.float32(scale)
    return Params(w1, w2)


def _output_offsets(cfg: NetConfig) -> list[int]:
    size = cfg.n_hidden // cfg.layout.output_blocks
    return [k * size for k in range(cfg.layout.output_blocks + 1)]


@dataclass
class Packed:
    """Weights and constants with the hidden-layer inputs permuted so each branch is contiguous.

    Training keeps its weights packed so that no weight matrix is copied per batch.
    """

    w1: np.ndarray
    w2: np.ndarray
    perm: np.ndarray
    off1: list[int]
    off2: list[int]

    @classmethod
    def from_params(cls, params: Params, cfg: NetConfig) -> Packed:
        perm = cfg.layout.permutation()
        w1 = np.ascontiguousarray(np.take(params.w1, perm, axis=0))
        return cls(w1, params.w2, perm, cfg.layout.offsets().tolist(), _output_offsets(cfg))

    def unpack(self) -> Params:
        w1 = np.empty_like(self.w1)
        w1[self.perm] = self.w1
        return Params(w1, self.w2.copy())

    def pack_x(self, x: np.ndarray) -> np.ndarray:
        dtype = np.float64 if self.w1.dtype == np.float64 else np.float32
        return np.take(np.asarray(x, dtype=dtype), self.perm, axis=1)


def check_x(x: np.ndarray, cfg: NetConfig) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != cfg.n_in:
        raise ParameterError(f"inputs must be (N, {cfg.n_in}), got shape {x.shape}")
    return x


def _forward_packed(pk: Packed, xp: np.ndarray, cfg: NetConfig, *, a1: Any = None,
                    a2: Any = None, w1: np.ndarray | None = None, w2: np.ndarray | None = None,
                    read1: float = 0.0, read2: float = 0.0, dendrite_sigma: float = 0.0,
                    rng: np.random.Generator | None = None) -> tuple[_Cache, _Cache]:
    a1 = cfg.a if a1 is None else a1
    a2 = cfg.a if a2 is None else a2
    h = layer_forward(xp, pk.w1 if w1 is None else w1, pk.off1, a1, cfg.variant, cfg.theta,
                       read_std=read1, dendrite_sigma=dendrite_sigma, rng=rng)
    o = layer_forward(h.y, pk.w2 if w2 is None else w2, pk.off2, a2, cfg.variant, cfg.theta,
                       read_std=read2, dendrite_sigma=dendrite_sigma, rng=rng)
    return h, o


def _trace(c: _Cache) -> LayerTrace:
    return LayerTrace(c.u, c.d, c.s, c.y)


def _infer_packed(pk: Packed, xp: np.ndarray, cfg: NetConfig, *, a1: Any = None,
                  a2: Any = None, w1: np.ndarray | None = None, w2: np.ndarray | None = None,
                  read1: float = 0.0, read2: float = 0.0, dendrite_sigma: float = 0.0,
                  rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(s, y) of the output layer, without backward caches (``_forward_packed``'s numbers)."""
    a1 = cfg.a if a1 is None else a1
    a2 = cfg.a if a2 is None else a2
    _, h = _layer_infer(xp, pk.w1 if w1 is None else w1, pk.off1, a1, cfg.variant, cfg.theta,
                        read_std=read1, dendrite_sigma=dendrite_sigma, rng=rng)
    return _layer_infer(h, pk.w2 if w2 is None else w2, pk.off2, a2, cfg.variant, cfg.theta,
                        read_std=read2, dendrite_sigma=dendrite_sigma, rng=rng)


def forward(params: Params, x: np.ndarray, cfg: NetConfig, *, device: Any = None,
            rng: np.random.Generator | None = None, keep: bool = False) -> Forward:
    """Network outputs for inputs ``x`` (N, n_in) in the layout's flattening order.

    ``device``: a ``devices.DeviceModel`` (realised for these weights on every call) or a
    ``devices.Realised`` (realise once, reuse): measured branch functions and synapse
    non-idealities. Per-forward noise (cycle-to-cycle, read, dendrite) comes from ``rng``, or,
    if None, from a generator seeded by the device's seed (so a call is reproducible).
    """
    x = check_x(x, cfg)
    pk = Packed.from_params(params, cfg)
    xp = pk.pack_x(x)
    kw: dict[str, Any] = {}
    if device is not None:
        real = device.realise(params, cfg) if hasattr(device, "realise") else device
        rng = rng if rng is not None else real.default_rng()
        kw = real.forward_kwargs(pk, rng)
    if keep:
        h, o = _forward_packed(pk, xp, cfg, rng=rng, **kw)
        return Forward(o.y, o.s, _trace(h), _trace(o))
    s, y = _infer_packed(pk, xp, cfg, rng=rng, **kw)
    return Forward(y, s)


def predict(params: Params, x: np.ndarray, cfg: NetConfig, device: Any = None, *,
            rng: np.random.Generator | None = None, chunk: int = 2048) -> np.ndarray:
    """Predicted labels (argmax of the output soma inputs; see the module docstring)."""
    x = check_x(x, cfg)
    if device is not None and hasattr(device, "realise"):
        device = device.realise(params, cfg)
        rng = rng if rng is not None else device.default_rng()
    out = np.empty(x.shape[0], dtype=np.int64)
    for lo in range(0, x.shape[0], chunk):
        fw = forward(params, x[lo:lo + chunk], cfg, device=device, rng=rng)
        out[lo:lo + chunk] = fw.s.argmax(axis=1)
    return out


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy and its gradient w.r.t. the logits (softmax - one-hot)/N."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    n = logits.shape[0]
    rows = np.arange(n)
    loss = float(-np.log(np.maximum(p[rows, labels], 1e-300)).mean())
    p[rows, labels] -= 1.0
    return loss, (p / n).astype(logits.dtype)


#: How training treats the output somas' clamp y = max(tanh((s - theta)/2), 0):
#: ``exact`` is the gradient of the forward pass (what the authors' PyTorch autograd computes):
#: zero wherever an output is clamped, so an output that stops firing early gets no gradient and
#: its class is lost ("starved" outputs, seen on the digits with NL 0 and short training);
#: ``pass`` lets the gradient of tanh((s - theta)/2) through the clamp at the output layer (a
#: straight-through estimator: our choice, in the spirit of the authors' MATLAB surrogate
#: derivative 1 + y(1 - y), which never vanishes either). The forward pass is the same.
CLAMP_GRADS = ("exact", "pass")


def _loss_and_grads_packed(pk: Packed, xp: np.ndarray, labels: np.ndarray, cfg: NetConfig,
                           a1: Any = None, a2: Any = None, clamp_grad: str = "exact"
                           ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """(loss, g_w1 packed, g_w2, output soma inputs) for one batch."""
    h, o = _forward_packed(pk, xp, cfg, a1=a1, a2=a2)
    loss, g_y = cross_entropy(o.y, labels)
    g_w2, g_h = _layer_backward(o, pk.w2, pk.off2, g_y, cfg.variant, need_gx=True,
                                through_clamp=cfg.theta if clamp_grad == "pass" else None)
    assert g_h is not None
    g_w1, _ = _layer_backward(h, pk.w1, pk.off1, g_h, cfg.variant, need_gx=False)
    return loss, g_w1, g_w2, o.s


def loss_and_grads(params: Params, x: np.ndarray, labels: np.ndarray, cfg: NetConfig, *,
                   device: Any = None, clamp_grad: str = "exact") -> tuple[float, Params]:
    """Mean cross-entropy (soma outputs as logits) and its gradient w.r.t. the weights: exact,
    or with ``clamp_grad="pass"`` straight through the output somas' clamp (``CLAMP_GRADS``).

    With ``device``, the device's branch functions (one ``a`` per branch and neuron) are used;
    synapse non-idealities are an inference-time effect and are not applied here.
    """
    if clamp_grad not in CLAMP_GRADS:
        raise ParameterError(f"clamp_grad must be one of {CLAMP_GRADS}, got {clamp_grad!r}")
    x = check_x(x, cfg)
    labels = np.asarray(labels, dtype=np.int64)
    pk = Packed.from_params(params, cfg)
    a1 = a2 = None
    if device is not None:
        a1, a2 = device.branch_a(cfg)
    loss, g1p, g2, _ = _loss_and_grads_packed(pk, pk.pack_x(x), labels, cfg, a1, a2,
                                              clamp_grad)
    g1 = np.empty_like(g1p)
    g1[pk.perm] = g1p
    return loss, Params(g1, g2)

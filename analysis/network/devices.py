"""Measured devices in the network: dendrite branch functions and synapse non-idealities.

Why: the authors' network has no device model (its noise hooks are multiplied by 0, notes §1.7).
Our users want to know what *their* devices would do. A ``DeviceModel`` says

* **dendrite branches**: each branch's function is F_a(u) = (e^(a u) - 1)/(e^a - 1) (the
  authors' form, ``model.branch_function``) with ``a`` either the network's own (``"config"``), one
  fitted device (``"fixed"``), or drawn once per (neuron, branch) from a wafer: the measured values
  themselves (``"empirical"``) or a log-normal fitted to them (``"lognormal"``). A measured a <= 0
  (sublinear device) gives a linear branch, the authors' rule for a <= 0 -- an assumption.
  ``dendrite_sigma``: multiplicative noise (1 + sigma N(0, 1)) on every dendrite output per
  forward pass, where the authors' MATLAB code has its (inactive) dendrite-noise hook.
* **synapses** (inference only): each weight is a differential pair G+ - G- of devices between
  ``g_min`` and ``g_max`` (w = +-w_max, w_max = the layer's largest |w|, maps to one device at
  ``g_max`` and the other at ``g_min``), each device programmed to the nearest of ``levels``
  evenly spaced conductances (0 = continuous); then a device-to-device multiplicative spread
  (1 + d2d_sigma N(0, 1), fixed per device), a fraction ``stuck_off`` / ``stuck_on`` of devices
  stuck at g_min / g_max (fixed), a cycle-to-cycle spread (1 + c2c_sigma N(0, 1)) redrawn every
  forward pass (one pass = one programming cycle; an assumption), and read noise: each device read
  has std ``read_sigma * g_max``, which adds noise of std |x_b|_2 * sqrt(2) read_sigma g_max
  w_max / (g_max - g_min) to every branch sum (exact for independent Gaussian reads).

Everything random is drawn from ``seed`` (fixed parts) or from the forward pass's generator (per-
forward parts), so a DeviceModel with a seed is reproducible. ``from_metrics`` builds one from the
device-metrics table of ``analysis.metrics`` (columns ``analysis.metrics.COLUMNS``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from analysis.network.model import NetConfig, Packed, Params
from dendrolab.errors import DendrolabError, ParameterError, clip

if TYPE_CHECKING:
    import pandas as pd

BRANCH_MODES = ("config", "fixed", "empirical", "lognormal")
#: Columns identifying one physical device in the metrics table (those present are used).
DEVICE_KEY = ("wafer_id", "die_col", "die_row", "subsite_label", "device_id")


class DeviceError(DendrolabError):
    """A device description or metrics table cannot be used."""


@dataclass(frozen=True)
class DeviceModel:
    """Dendrite branch functions and synapse non-idealities (module docstring)."""

    name: str = "device"
    branch: str = "config"
    a: float = math.nan
    a_sigma_ln: float = 0.0
    a_values: tuple[float, ...] = ()
    dendrite_sigma: float = 0.0
    g_min: float = 0.0
    g_max: float = 1.0
    levels: int = 0
    d2d_sigma: float = 0.0
    c2c_sigma: float = 0.0
    read_sigma: float = 0.0
    stuck_off: float = 0.0
    stuck_on: float = 0.0
    seed: int = 0
    source: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "a_values", tuple(float(v) for v in self.a_values))
        object.__setattr__(self, "levels", int(self.levels))
        object.__setattr__(self, "seed", int(self.seed))
        if self.branch not in BRANCH_MODES:
            raise DeviceError(f"branch must be one of {BRANCH_MODES}, got {self.branch!r}")
        if self.branch in ("fixed", "lognormal") and not math.isfinite(self.a):
            raise DeviceError(f"branch {self.branch!r} needs a finite a, got {self.a}")
        if self.branch == "lognormal" and (self.a <= 0 or self.a_sigma_ln < 0):
            raise DeviceError(f"log-normal branches need a median a > 0 and sigma >= 0, got "
                              f"{self.a}, {self.a_sigma_ln}")
        if self.branch == "empirical" and (not self.a_values
                                           or not all(map(math.isfinite, self.a_values))):
            raise DeviceError("empirical branches need a non-empty list of finite a values")
        if not (math.isfinite(self.g_min) and math.isfinite(self.g_max)
                and 0 <= self.g_min < self.g_max):
            raise DeviceError(f"need 0 <= g_min < g_max, got {self.g_min:g}, {self.g_max:g}")
        if self.levels == 1 or self.levels < 0:
            raise DeviceError(f"levels must be 0 (continuous) or >= 2, got {self.levels}")
        for name in ("dendrite_sigma", "d2d_sigma", "c2c_sigma", "read_sigma", "stuck_off",
                     "stuck_on"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise DeviceError(f"{name} must be a finite number >= 0, got {value}")
        if self.stuck_off + self.stuck_on > 1:
            raise DeviceError(f"stuck_off + stuck_on must be <= 1, got "
                              f"{self.stuck_off} + {self.stuck_on}")

    # --------------------------------------------------------------- properties
    @property
    def synapse_effects(self) -> bool:
        """True if any synapse non-ideality is active (else the weights are used as they are)."""
        return bool(self.levels or self.d2d_sigma or self.c2c_sigma or self.read_sigma
                    or self.stuck_off or self.stuck_on or self.g_min > 0)

    def branches_only(self) -> DeviceModel:
        """The same branch functions with ideal synapses and no dendrite noise."""
        return replace(self, g_min=0.0, g_max=1.0, levels=0, d2d_sigma=0.0, c2c_sigma=0.0,
                       read_sigma=0.0, stuck_off=0.0, stuck_on=0.0, dendrite_sigma=0.0)

    def with_(self, **changes: Any) -> DeviceModel:
        """A copy with some fields changed (validated)."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise DeviceError(f"unknown device field(s): {', '.join(sorted(unknown))}")
        return replace(self, **changes)

    def describe(self) -> list[str]:
        """Human-readable lines: what the network will use."""
        if self.branch == "config":
            br = "branches: the network's NL (no measured branch function)"
        elif self.branch == "fixed":
            br = f"branches: one device, a = {self.a:.4g} (NL = {_nl(self.a):.3g})"
        elif self.branch == "lognormal":
            br = (f"branches: a drawn per branch from log-normal, median {self.a:.4g}, "
                  f"sigma_ln {self.a_sigma_ln:.3g}")
        else:
            v = np.array(self.a_values)
            br = (f"branches: a drawn per branch from {v.size} measured devices "
                  f"(median {np.median(v):.4g}, range {v.min():.4g}..{v.max():.4g})")
        lines = [br]
        if self.dendrite_sigma:
            lines.append(f"dendrite output noise per pass: sigma {self.dendrite_sigma:.3g}")
        if self.synapse_effects:
            ratio = self.g_max / self.g_min if self.g_min > 0 else math.inf
            lines.append(
                f"synapses: differential pairs, G {self.g_min:.3g}..{self.g_max:.3g} "
                f"(ON/OFF {ratio:.3g}), levels {self.levels or 'continuous'}, d2d "
                f"{self.d2d_sigma:.3g}, c2c {self.c2c_sigma:.3g}, read {self.read_sigma:.3g}, "
                f"stuck off/on {self.stuck_off:.3g}/{self.stuck_on:.3g}")
        else:
            lines.append("synapses: ideal")
        if self.source:
            lines.append(f"source: {self.source}")
        lines.append(f"seed: {self.seed}")
        return lines

    # --------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["a_values"] = list(self.a_values)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DeviceModel:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise DeviceError(f"unknown device field(s): {', '.join(sorted(unknown))}")
        values = dict(d)
        for key in ("a", "a_sigma_ln", "g_min", "g_max"):
            if key in values and values[key] is None:  # JSON has no NaN: null stands for it
                values[key] = math.nan
        if "a_values" in values:
            values["a_values"] = tuple(values["a_values"])
        try:
            return cls(**values)
        except TypeError as exc:
            raise DeviceError(f"bad device description: {exc}") from None

    # --------------------------------------------------------------- draws
    def _rng(self, *stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, *stream])

    def _draw_a(self, shape: tuple[int, ...], layer: int) -> np.ndarray | float | None:
        if self.branch == "config":
            return None
        if self.branch == "fixed":
            return float(self.a)
        rng = self._rng(0, layer)
        if self.branch == "empirical":
            return rng.choice(np.array(self.a_values), size=shape)
        return self.a * np.exp(self.a_sigma_ln * rng.standard_normal(shape))

    def branch_a(self, cfg: NetConfig) -> tuple[Any, Any]:
        """``a`` of every (branch, neuron): hidden (B1, n_hidden) and output (B2, n_out) arrays,
        a float for one fixed device, or None (the network's NL) for ``"config"``."""
        a1 = self._draw_a((cfg.layout.n_hidden_branches, cfg.n_hidden), 1)
        a2 = self._draw_a((cfg.layout.output_blocks, cfg.n_out), 2)
        return a1, a2

    def realise(self, params: Params, cfg: NetConfig) -> Realised:
        """Fix every per-device draw for these weights (see ``Realised``)."""
        a1, a2 = self.branch_a(cfg)
        pk = Packed.from_params(params, cfg)
        layers = []
        for layer, w in ((1, pk.w1), (2, pk.w2)):
            layers.append(_program(w, self, self._rng(1, layer)) if self.synapse_effects
                          else _Synapses(w, None, None, None, 1.0, 0.0))
        return Realised(self, a1, a2, layers[0], layers[1])

    # --------------------------------------------------------------- from measurements
    @classmethod
    def from_metrics(cls, table: pd.DataFrame | str | os.PathLike[str] | Iterable[Mapping],
                     *, branch: str = "auto", seed: int = 0, synapses: bool = True,
                     name: str = "measured", **overrides: Any) -> DeviceModel:
        """A DeviceModel from a device-metrics table (``analysis.metrics.extract`` output).

        Uses rows with ``quality == "ok"`` and a finite value; repeated rows of one device (same
        wafer/die/subsite/device id) are reduced to their median first. ``branch_a`` rows give
        the branch functions: ``branch="auto"`` draws from the measured devices if there are
        several (``"empirical"``), else uses the one (``"fixed"``); ``"median"`` uses their
        median; ``"lognormal"`` fits median and sigma of ln a. With ``synapses``: ``g_min`` /
        ``g_max`` medians give the conductance window, ``max_num_level_ltp`` + 1 the levels
        (``levels_reached`` alone leaves them continuous: it is a lower bound), the spread
        of ln g_max over >= 3 devices the device-to-device sigma (an assumption: the window's
        spread stands in for the weight spread), ``sigma_c2c_ltp/ltd`` the cycle-to-cycle spread
        (scaled to a multiplicative sigma at the window's middle), the devices with G_max/G_min
        below ``variation.STUCK_G_RATIO`` the stuck fractions (at G_min or G_max, whichever
        half of the window they sit in), and ``endurance_sigma_ln`` the dendrite noise. Read
        noise is not a metric: give ``read_sigma`` (``analysis.exports`` measures it from the
        write-verify reads). Anything else stays ideal unless given in ``overrides``.
        """
        frame = _read_table(table)
        per_device = _per_device(frame)
        notes: list[str] = []
        values: dict[str, Any] = {"name": name, "seed": seed}
        a_vals = per_device.get("branch_a", np.array([]))
        mode = branch
        if mode not in ("auto", "median", *BRANCH_MODES):
            raise DeviceError(f"branch must be auto, median or one of {BRANCH_MODES}, got "
                              f"{branch!r}")
        if mode != "config" and a_vals.size:
            if mode == "auto":
                mode = "empirical" if a_vals.size > 1 else "fixed"
            if mode in ("fixed", "median"):
                values.update(branch="fixed", a=float(np.median(a_vals)))
            elif mode == "empirical":
                values.update(branch="empirical", a_values=tuple(a_vals.tolist()))
            else:
                if (a_vals <= 0).any() or a_vals.size < 2:
                    raise DeviceError("a log-normal branch fit needs >= 2 devices, all a > 0")
                ln = np.log(a_vals)
                values.update(branch="lognormal", a=float(np.exp(ln.mean())),
                              a_sigma_ln=float(ln.std(ddof=1)))
            notes.append(f"branch_a of {a_vals.size} device(s), {values['branch']}")
        elif mode not in ("auto", "config"):
            raise DeviceError(f"branch {branch!r} asked for, but the table has no ok "
                              f"'branch_a' rows")
        if synapses:
            g_lo, g_hi = per_device.get("g_min"), per_device.get("g_max")
            if g_lo is not None and g_hi is not None and g_lo.size and g_hi.size:
                lo, hi = float(np.median(g_lo)), float(np.median(g_hi))
                if 0 <= lo < hi:
                    values.update(g_min=lo, g_max=hi)
                    notes.append(f"g_min/g_max medians of {g_lo.size}/{g_hi.size} device(s)")
                if g_hi.size >= 3 and (g_hi > 0).all():
                    values["d2d_sigma"] = float(np.log(g_hi).std(ddof=1))
                    notes.append("d2d sigma = sigma of ln g_max over devices (assumption)")
            # levels: the pulses of a measured LTP curve from G_min to G_max (NeuroSim's
            # maxNumLevelLTP) + 1; levels_reached of write-verify only counts the targets
            # asked for (a lower bound), so alone it leaves the weights continuous
            lv = per_device.get("max_num_level_ltp")
            reached = per_device.get("levels_reached")
            if lv is not None and lv.size:
                values["levels"] = max(2, round(float(np.median(lv))) + 1)
                notes.append(f"levels = median max_num_level_ltp + 1 of {lv.size} device(s)")
            elif reached is not None and reached.size:
                notes.append(f"levels continuous: levels_reached ({float(np.median(reached)):g})"
                             " counts write-verify targets, a lower bound only")
            c2c = [v for v in (per_device.get("sigma_c2c_ltp"), per_device.get("sigma_c2c_ltd"))
                   if v is not None and v.size]
            lo_g, hi_g = values.get("g_min"), values.get("g_max")
            if c2c and lo_g is not None and hi_g is not None:
                # measured: additive residual sigma / (G_max - G_min) of the LTP/LTD fits; the
                # model's c2c is multiplicative: scaled at the window's middle (an assumption)
                rel = float(np.median(np.concatenate(c2c)))
                values["c2c_sigma"] = rel * (hi_g - lo_g) / ((hi_g + lo_g) / 2)
                notes.append("c2c = median sigma_c2c_ltp/ltd x (G_max - G_min) / G_mid")
            if g_lo is not None and g_hi is not None and g_lo.size == g_hi.size and g_lo.size:
                from analysis.variation import STUCK_G_RATIO

                with np.errstate(divide="ignore", invalid="ignore"):
                    stuck = g_hi / g_lo < STUCK_G_RATIO
                if stuck.any():
                    mid = (float(np.median(g_lo)) + float(np.median(g_hi))) / 2
                    high = stuck & (g_hi >= mid)
                    values.update(stuck_on=float(high.mean()),
                                  stuck_off=float((stuck & ~high).mean()))
                    notes.append(f"stuck = {int(stuck.sum())} of {stuck.size} synapse(s) with "
                                 f"G_max/G_min < {STUCK_G_RATIO:g}")
            en = per_device.get("endurance_sigma_ln")
            if en is not None and en.size:
                values["dendrite_sigma"] = float(np.median(en))
                notes.append("dendrite noise = median endurance_sigma_ln")
        if not notes:
            raise DeviceError("the metrics table has no usable ok rows (branch_a, g_min, "
                              "g_max, levels_reached, endurance_sigma_ln)")
        if overrides:
            notes.append("given: " + ", ".join(f"{k}={v}" for k, v in sorted(overrides.items())))
        values.update(overrides)
        values["source"] = "; ".join(notes)
        try:
            return cls.from_dict(values)
        except DeviceError:
            raise
        except DendrolabError as exc:
            raise DeviceError(str(exc)) from None


def _nl(a: float) -> float:
    return a / (50.0 + a) if a > -50 else math.nan


# ------------------------------------------------------------------- realised synapses
@dataclass
class _Synapses:
    """One layer's programmed synapses, in packed row order.

    ``gp``/``gm``: conductances after levels, d2d and stuck cells (None: ideal, use ``w``);
    ``free``: devices that are not stuck (c2c applies to them); ``scale`` = w_max / (g_max -
    g_min) converts conductance to weight; ``read_std`` in weight units per unit input.
    """

    w: np.ndarray
    gp: np.ndarray | None
    gm: np.ndarray | None
    free: tuple[np.ndarray, np.ndarray] | None
    scale: float
    read_std: float

    def weights(self, c2c: float, rng: np.random.Generator) -> np.ndarray:
        if self.gp is None or self.gm is None:
            return self.w
        gp, gm = self.gp, self.gm
        if c2c > 0:
            assert self.free is not None
            fp = 1.0 + np.float32(c2c) * rng.standard_normal(gp.shape, dtype=np.float32)
            fm = 1.0 + np.float32(c2c) * rng.standard_normal(gm.shape, dtype=np.float32)
            gp = np.where(self.free[0], gp * np.maximum(fp, 0), gp)
            gm = np.where(self.free[1], gm * np.maximum(fm, 0), gm)
        return ((gp - gm) * np.float32(self.scale)).astype(np.float32)


def quantise(g: np.ndarray, g_min: float, g_max: float, levels: int) -> np.ndarray:
    """Nearest of ``levels`` evenly spaced conductances in [g_min, g_max] (0 = unchanged)."""
    if not levels:
        return g
    step = (g_max - g_min) / (levels - 1)
    k = np.clip(np.rint((g - g_min) / step), 0, levels - 1)
    return (g_min + k * step).astype(g.dtype)


def _program(w: np.ndarray, dev: DeviceModel, rng: np.random.Generator) -> _Synapses:
    """Map weights to differential pairs and apply the fixed non-idealities."""
    w_max = float(np.abs(w).max())
    span = dev.g_max - dev.g_min
    scale = (w_max / span) if w_max > 0 else 0.0
    unit = np.float32(span / w_max) if w_max > 0 else np.float32(0.0)
    gp = np.float32(dev.g_min) + unit * np.maximum(w, 0).astype(np.float32)
    gm = np.float32(dev.g_min) + unit * np.maximum(-w, 0).astype(np.float32)
    gp = quantise(gp, dev.g_min, dev.g_max, dev.levels)
    gm = quantise(gm, dev.g_min, dev.g_max, dev.levels)
    if dev.d2d_sigma > 0:
        gp = gp * np.maximum(1 + np.float32(dev.d2d_sigma)
                             * rng.standard_normal(w.shape, dtype=np.float32), 0)
        gm = gm * np.maximum(1 + np.float32(dev.d2d_sigma)
                             * rng.standard_normal(w.shape, dtype=np.float32), 0)
    free = None
    if dev.stuck_off or dev.stuck_on or dev.c2c_sigma:
        frees = []
        out = []
        for g in (gp, gm):
            r = rng.random(w.shape, dtype=np.float32)
            off = r < dev.stuck_off
            on = (r >= dev.stuck_off) & (r < dev.stuck_off + dev.stuck_on)
            g = np.where(off, np.float32(dev.g_min), np.where(on, np.float32(dev.g_max), g))
            out.append(g.astype(np.float32))
            frees.append(~(off | on))
        gp, gm = out
        free = (frees[0], frees[1])
    read_std = math.sqrt(2.0) * dev.read_sigma * dev.g_max * scale
    return _Synapses(w, gp.astype(np.float32), gm.astype(np.float32), free, scale, read_std)


@dataclass
class Realised:
    """A DeviceModel fixed for one network's weights: what ``model.forward`` consumes."""

    device: DeviceModel
    a1: Any
    a2: Any
    syn1: _Synapses
    syn2: _Synapses

    def default_rng(self) -> np.random.Generator:
        """The per-forward noise generator used when the caller gives none (seeded)."""
        return self.device._rng(2)

    def effective_weights(self, rng: np.random.Generator | None = None) -> Params:
        """The weights the network computes with (one c2c draw), in the *packed* row order."""
        rng = rng if rng is not None else self.default_rng()
        c2c = self.device.c2c_sigma
        return Params(self.syn1.weights(c2c, rng), self.syn2.weights(c2c, rng))

    def forward_kwargs(self, pk: Packed, rng: np.random.Generator) -> dict[str, Any]:
        w = self.effective_weights(rng)
        return {"a1": self.a1, "a2": self.a2, "w1": w.w1, "w2": w.w2,
                "read1": self.syn1.read_std, "read2": self.syn2.read_std,
                "dendrite_sigma": self.device.dendrite_sigma}

    def branch_a(self, cfg: NetConfig) -> tuple[Any, Any]:
        return self.a1, self.a2

    def realise(self, params: Params, cfg: NetConfig) -> Realised:
        """Already realised: itself (for the weights it was realised for)."""
        return self


# ------------------------------------------------------------------- metrics table
def _read_table(table: Any) -> pd.DataFrame:
    import pandas as pd

    if isinstance(table, pd.DataFrame):
        frame = table
    elif isinstance(table, (str, os.PathLike)):
        path = Path(table)
        name = clip(str(path), 120)
        if not path.is_file():
            raise DeviceError(f"{name}: no such metrics table")
        try:
            if path.suffix.lower() == ".parquet":
                frame = pd.read_parquet(path)
            else:
                frame = pd.read_csv(path)
        except Exception as exc:  # pandas raises many kinds on a bad file
            raise DeviceError(f"{name}: not a readable metrics table "
                              f"({clip(' '.join(str(exc).split()), 80)})") from None
    else:
        frame = pd.DataFrame(list(table))
    missing = [c for c in ("metric", "value") if c not in frame.columns]
    if missing:
        raise DeviceError(f"metrics table lacks column(s) {', '.join(missing)} (expected the "
                          f"columns of analysis.metrics.COLUMNS)")
    return frame


def _per_device(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """metric -> one value per device (median of its ok rows)."""
    import pandas as pd

    f = frame.copy()
    f["value"] = pd.to_numeric(f["value"], errors="coerce")
    if "quality" in f.columns:
        f = f[f["quality"].astype(str) == "ok"]
    f = f[np.isfinite(f["value"].to_numpy(dtype=float))]
    keys = [c for c in DEVICE_KEY if c in f.columns]
    parts = [f[c].map(_blank_to_empty) for c in keys]
    key = (pd.concat(parts, axis=1).agg("|".join, axis=1) if parts
           else pd.Series("", index=f.index))
    blank = key.str.replace("|", "", regex=False) == ""
    fallback = (f["uuid"].map(_blank_to_empty) if "uuid" in f.columns
                else pd.Series("", index=f.index))
    fallback = fallback.where(fallback != "", [f"row{i}" for i in range(len(f))])
    f = f.assign(_dev=key.where(~blank, "uuid:" + fallback))
    out: dict[str, np.ndarray] = {}
    for metric, group in f.groupby("metric"):
        out[str(metric)] = group.groupby("_dev", sort=True)["value"].median().to_numpy(float)
    return out


def _blank_to_empty(v: Any) -> str:
    """A key cell as text, with NaN/None/NA as the empty string."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    text = str(v)
    return "" if text in ("nan", "None", "<NA>") else text


def load_device(spec: str | os.PathLike[str] | None, *, seed: int = 0,
                **overrides: Any) -> DeviceModel | None:
    """The CLI's ``--devices``: a metrics table (CSV/Parquet) path, or None."""
    if spec is None:
        return None
    try:
        return DeviceModel.from_metrics(spec, seed=seed, **overrides)
    except ParameterError as exc:
        raise DeviceError(str(exc)) from None

"""The step-size curve of a synapse from its run files: dG per pulse against G, and its noise.

Why a module of its own: ``analysis.exports`` writes simulator files; this part does the
statistics behind three of their fields (aihwkit's ``PiecewiseStepDevice`` curve, ``dw_min_std``
and the device-to-device spreads, NeuroSim's ``sigmaCtoC``). ``read_steps`` collects every pulse
between two verify reads (any step that records ``pulse_v``: write-verify, LTP/LTD);
``fit_steps`` fits the curve per direction and separates read noise, cycle-to-cycle step noise and
device-to-device spread (its docstring has the statistics; docs/exports.md the mappings).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis.metrics import read_conductance
from dendrolab.errors import ParameterError, RunFileError

__all__ = ["MIN_DEVICES", "SELECTED_SIGMAS", "STEP_NODES", "StepFit", "fit_steps", "read_steps"]

#: Nodes of the piecewise step curve (odd, so aihwkit's middle node sits mid-window; < 64 for
#: aihwkit on GPU).
STEP_NODES = 11
#: Least pulses of one direction for its curve; least consecutive pulse pairs to separate the
#: read noise; least pulses per direction for a device to enter the spreads; least devices.
MIN_STEPS, MIN_PAIRS, MIN_DEVICE_STEPS, MIN_DEVICES = 3, 5, 3, 3
#: A pulse whose deciding read lies within this many read-noise sigmas of a write-verify
#: decision boundary is left out of the fit (``fit_steps``: selection).
SELECTED_SIGMAS = 2.5


def _device_key(attrs: Mapping[str, Any]) -> str:
    parts = [str(attrs.get(k, "")) for k in ("wafer_id", "die_col", "die_row", "subsite_label",
                                             "device_id")]
    return "/".join(p if p not in ("None", "nan") else "" for p in parts)


def read_steps(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> pd.DataFrame:
    """One row per pulse between two verify reads, from every step recording ``pulse_v``.

    A verify step holds reads k = 0, 1, ... with G = I / V and, per read, the pulse that followed
    it (``pulse_v``; 0 V: none). Read k, a pulse, read k + 1 make one row: ``g_before``,
    ``g_after``, ``dg`` [S], ``pulse_v``, ``width_s``, ``up`` (the pulse has the sign of the
    step's ``v_set``, positive if the step names none: potentiation), ``margin`` (the relative
    distance of the deciding read k from the step's verify boundaries target x (1 +- tol_rel);
    inf without a target). ``device`` identifies the
    device (wafer / die / subsite / device id), ``run`` and ``step`` the run and step, ``k`` the
    read index (rows k and k + 1 of one step share read k + 1). ``attrs["windows"]`` lists the
    lowest and highest verify read of each run (dicts: ``run``, ``device``, ``g_lo``, ``g_hi``).
    Files without such steps contribute nothing.
    """
    from protocols.runfile_reader import RunReader

    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    rows: list[dict[str, Any]] = []
    windows: list[dict[str, Any]] = []
    for path in paths:
        try:
            reader = RunReader(path)
        except OSError as exc:
            raise RunFileError(f"{path}: cannot read the run file ({exc.strerror or exc})"
                               ) from None
        with reader:
            dev, run = _device_key(reader.attrs), reader.uuid or os.fspath(path)
            all_g: list[float] = []
            for info in reader.steps:
                if not {"voltage_v", "current_a", "pulse_v"} <= set(info.units):
                    continue
                data = reader.step(info.index)
                pv = data.arrays["pulse_v"].astype(float)
                g = read_conductance(data.arrays["voltage_v"], data.arrays["current_a"])
                all_g += g[np.isfinite(g)].tolist()
                v_set = info.params.get("v_set")
                up_sign = math.copysign(1.0, v_set) if isinstance(v_set, (int, float)) \
                    and v_set else 1.0
                width = info.params.get("width_s", math.nan)
                target, tol = info.params.get("target_s"), info.params.get("tol_rel")
                bounds = ([target * (1 - tol), target * (1 + tol)]
                          if isinstance(target, (int, float)) and isinstance(tol, (int, float))
                          else [])
                for k in range(len(g) - 1):
                    if pv[k] == 0 or not (np.isfinite(g[k]) and np.isfinite(g[k + 1])):
                        continue
                    rows.append({"device": dev, "run": run, "step": info.index, "k": k,
                                 "pulse_v": float(pv[k]), "width_s": float(width),
                                 "up": bool(np.sign(pv[k]) == up_sign),
                                 "g_before": float(g[k]), "g_after": float(g[k + 1]),
                                 "dg": float(g[k + 1] - g[k]),
                                 "margin": min((abs(g[k] - b) / abs(g[k]) for b in bounds),
                                               default=math.inf)})
            if all_g:
                windows.append({"run": run, "device": dev, "g_lo": min(all_g),
                                "g_hi": max(all_g)})
    out = pd.DataFrame(rows, columns=["device", "run", "step", "k", "pulse_v", "width_s", "up",
                                      "g_before", "g_after", "dg", "margin"])
    out.attrs["windows"] = windows
    return out


@dataclass(frozen=True)
class StepFit:
    """The fitted step-size curve and noise of ``fit_steps`` (conductances in S).

    ``up_s`` / ``down_s``: mean step magnitude at ``nodes_s`` per direction (None: not measured);
    ``read_noise_rel``: relative read noise sigma of one verify read; ``c2c_rel``: cycle-to-cycle
    std of one step relative to the local mean step (aihwkit ``dw_min_std``); ``c2c_abs_s``: the
    same per pulse in S (NeuroSim ``sigmaCtoC``); ``gain_dtod`` / ``up_down_dtod`` (relative to
    the larger mean step) and ``g_max_sigma_s`` / ``g_min_sigma_s``: device-to-device spreads.
    NaN marks a number not measurable from the data; ``notes`` says why.
    """

    g_min_s: float
    g_max_s: float
    nodes_s: np.ndarray
    up_s: np.ndarray | None
    down_s: np.ndarray | None
    read_noise_rel: float
    c2c_rel: float
    c2c_abs_s: float
    gain_dtod: float
    up_down_dtod: float
    g_max_sigma_s: float
    g_min_sigma_s: float
    n_up: int
    n_down: int
    n_pairs: int
    n_devices: int
    pulse_v: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def mean_up_s(self) -> float:
        return float(np.mean(self.up_s)) if self.up_s is not None else math.nan

    @property
    def mean_down_s(self) -> float:
        return float(np.mean(self.down_s)) if self.down_s is not None else math.nan

    @property
    def mean_step_s(self) -> float:
        """Mean of the measured directions' mean steps (NaN if none)."""
        vals = [v for v in (self.mean_up_s, self.mean_down_s) if math.isfinite(v)]
        return float(np.mean(vals)) if vals else math.nan

    def table(self) -> pd.DataFrame:
        """The curve as a table: ``g_uS``, ``up_uS``, ``down_uS`` (NaN where not measured)."""
        nan = np.full(self.nodes_s.size, np.nan)
        return pd.DataFrame({"g_uS": self.nodes_s * 1e6,
                             "up_uS": (self.up_s if self.up_s is not None else nan) * 1e6,
                             "down_uS": (self.down_s if self.down_s is not None else nan) * 1e6})


def _hat(x: np.ndarray, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Linear-interpolation (hat) basis at x and the segment index; beyond the end nodes the
    end segment's straight line continues."""
    h = nodes[1] - nodes[0]
    t = (x - nodes[0]) / h
    j = np.clip(np.floor(t).astype(int), 0, nodes.size - 2)
    q = t - j
    basis = np.zeros((x.size, nodes.size))
    basis[np.arange(x.size), j] = 1.0 - q
    basis[np.arange(x.size), j + 1] = q
    return basis, j


#: Least data weight (points, counted by their share in the hat basis) of an end node for it to
#: be fitted, and the quantiles of the data inside which end nodes must lie; outer nodes
#: continue the fitted curve's straight end segment. Why the quantiles: at the edges of the
#: data a read is more likely high (low) because of its noise, which biases the step there.
NODE_MIN, CORE_QUANTILES = 3.0, (0.05, 0.95)


def _ends(weight: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Matrix T mapping the fitted nodes (from the first to the last with ``NODE_MIN`` data
    weight inside the core quantiles) to all nodes, the outer ones on the straight
    continuation of the end segments."""
    n = weight.size
    free = np.flatnonzero((weight >= NODE_MIN) & inside)
    a, b = (int(free[0]), int(free[-1])) if free.size >= 2 else (0, n - 1)
    if b == a:
        a, b = max(a - 1, 0), min(a + 1, n - 1)
    t = np.zeros((n, b - a + 1))
    for j in range(n):
        if j < a:
            t[j, 0], t[j, 1] = 1 + (a - j), -(a - j)
        elif j > b:
            t[j, -1], t[j, -2] = 1 + (j - b), -(j - b)
        else:
            t[j, j - a] = 1.0
    return t


def _fit_curve(x: np.ndarray, y: np.ndarray, nodes: np.ndarray,
               w: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Piecewise-linear (weighted) least squares on ``nodes`` with a second-difference penalty,
    its weight chosen by generalised cross-validation; returns (values at the nodes, effective
    number of parameters). Nodes without data between fitted ones follow their neighbours; end
    nodes with little data (``NODE_MIN``) continue the end segments (no wild extrapolation)."""
    full, _ = _hat(x, nodes)
    w = np.ones(x.size) if w is None else w
    lo, hi = np.quantile(x, CORE_QUANTILES) if x.size else (nodes[0], nodes[-1])
    h = nodes[1] - nodes[0]
    tie = _ends(np.abs(full).sum(axis=0), (nodes >= lo - h / 4) & (nodes <= hi + h / 4))
    basis = full @ tie
    d2 = np.diff(np.eye(nodes.size), 2, axis=0) @ tie
    btb, pen, bty = basis.T @ (basis * w[:, None]), d2.T @ d2, basis.T @ (w * y)
    m = tie.shape[1]
    if np.trace(pen) <= 0:  # two fitted nodes: a straight line, nothing to smooth
        theta = np.linalg.lstsq(basis * np.sqrt(w)[:, None], np.sqrt(w) * y, rcond=None)[0]
        return tie @ theta, float(m)
    scale = np.trace(btb) / np.trace(pen)
    best: tuple[float, np.ndarray, float] | None = None
    for lam in scale * np.logspace(-6, 6, 25):
        a = btb + lam * pen + 1e-12 * scale * np.eye(m)
        theta = np.linalg.solve(a, bty)
        p_eff = float(np.trace(np.linalg.solve(a, btb)))
        rss = float(np.sum(w * (y - basis @ theta) ** 2))
        if x.size - p_eff <= 0.5:
            continue
        gcv = x.size * rss / (x.size - p_eff) ** 2
        if best is None or gcv < best[0]:
            best = (gcv, theta, p_eff)
    if best is None:  # too few points for any smoothing: the straight line
        a = btb + scale * 1e6 * pen + 1e-12 * scale * np.eye(m)
        theta = np.linalg.solve(a, bty)
        best = (math.nan, theta, float(np.trace(np.linalg.solve(a, btb))))
    return tie @ best[1], best[2]


def _eval(coef: np.ndarray, nodes: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Curve value and slope at x."""
    basis, j = _hat(x, nodes)
    return basis @ coef, (coef[j + 1] - coef[j]) / (nodes[1] - nodes[0])


def _fit_direction(part: pd.DataFrame, grid: np.ndarray, rounds: int = 3
                   ) -> tuple[np.ndarray, float, np.ndarray, int]:
    """The common curve of one direction and one factor per device (mean 1 over the devices
    with two or more pulses), by alternating least squares: dG = factor_device f(G). Returns
    (curve at the nodes, its effective parameters, each pulse's factor, number of factors)."""
    x, y = part["g_before"].to_numpy(float), part["dg"].to_numpy(float)
    codes, _ = pd.factorize(part["device"])
    free = np.bincount(codes) >= 2
    fac = np.ones(x.size)
    for _ in range(rounds):
        coef, p_eff = _fit_curve(x, y / fac, grid, fac * fac)
        f0, _ = _eval(coef, grid, x)
        num = np.bincount(codes, weights=y * f0)
        den = np.bincount(codes, weights=f0 * f0)
        a = np.where(free & (den > 0), num / np.where(den > 0, den, 1.0), 1.0)
        a = np.maximum(a, 1e-3)
        if free.any():
            a = np.where(free, a / a[free].mean(), 1.0)
        fac = a[codes]
    coef, p_eff = _fit_curve(x, y / fac, grid, fac * fac)
    return coef, p_eff, fac, int(free.sum()) if free.sum() > 1 else 0


def _corrected_std(values: np.ndarray, se2: np.ndarray) -> tuple[float, bool]:
    """sqrt(sample variance - mean sampling variance), truncated at 0 (flag)."""
    var = float(np.var(values, ddof=1)) - float(np.mean(se2))
    return math.sqrt(max(var, 0.0)), var < 0


def _pick_pulses(s: pd.DataFrame, notes: dict[str, str]) -> tuple[pd.DataFrame, dict[str, float]]:
    """The pulses of the most frequent amplitude and width of each direction."""
    kept, pulse_v = [], {}
    for up, name in ((True, "up"), (False, "down")):
        part = s[s["up"] == up]
        if part.empty:
            continue
        combos = part.groupby(["pulse_v", "width_s"], dropna=False).size()
        (pv, width), _ = max(combos.items(), key=lambda kv: kv[1])
        if len(combos) > 1:
            notes[f"pulses_{name}"] = (f"{len(combos)} pulse shapes for {name}; used the most "
                                       f"frequent, {pv:g} V / {width:g} s ({combos.max()} of "
                                       f"{len(part)} pulses)")
        pulse_v[name] = float(pv)
        same_width = part["width_s"].fillna(-1.0) == (-1.0 if pd.isna(width) else width)
        kept.append(part[(part["pulse_v"] == pv) & same_width])
    return (pd.concat(kept) if kept else s.iloc[:0]), pulse_v


@dataclass
class _Pass:
    """One fit of the curves and noise (``fit_steps`` runs two: all pulses, then unselected)."""

    s: pd.DataFrame
    curves: dict[bool, np.ndarray | None]
    dof: float
    n_pairs: int
    sigma_r2: float
    c2c_rel: float
    c2c_abs: float


def _fit_pass(s: pd.DataFrame, grid: np.ndarray, read_noise_rel: float | None,
              notes: dict[str, str]) -> _Pass:
    curves: dict[bool, np.ndarray | None] = {True: None, False: None}
    s = s.copy()
    s["fac"], dof = 1.0, 0.0
    for up, name in ((True, "up"), (False, "down")):
        part = s[s["up"] == up]
        if len(part) < MIN_STEPS:
            notes[f"curve_{name}"] = (f"{len(part)} {name} pulse(s) between verify reads "
                                      f"(< {MIN_STEPS}): no {name} step curve")
            continue
        notes.pop(f"curve_{name}", None)
        coef, p_eff, fac, n_fac = _fit_direction(part, grid)
        curves[up] = coef
        s.loc[part.index, "fac"] = fac
        dof += p_eff + n_fac
    # the common curve at every pulse times its device's factor (aihwkit's per-device scales),
    # so device-to-device differences do not count as step noise
    s = s[s["up"].map(lambda u: curves[bool(u)] is not None)].copy()
    s["f0"], s["slope0"] = np.nan, np.nan
    for up in (True, False):
        idx = s.index[s["up"] == up]
        if curves[up] is not None and len(idx):
            f, slope = _eval(curves[up], grid, s.loc[idx, "g_before"].to_numpy(float))
            s.loc[idx, "f0"], s.loc[idx, "slope0"] = f, slope
    s["fit"], s["slope"] = s["fac"] * s["f0"], s["fac"] * s["slope0"]
    s["resid"] = s["dg"] - s["fit"]

    # read noise from consecutive pulses of one step (they share a read)
    nxt = s.merge(s[["run", "step", "k", "resid", "slope", "g_before"]].assign(k=s["k"] - 1),
                  on=["run", "step", "k"], suffixes=("", "_next"))
    n_pairs = len(nxt)
    if read_noise_rel is not None:
        sigma_r2 = float(read_noise_rel) ** 2
        notes["read_noise_rel"] = "given, not estimated"
    elif n_pairs >= MIN_PAIRS:
        num = -float(np.sum(nxt["resid"] * nxt["resid_next"]))
        den = float(np.sum((1 + nxt["slope_next"]) * nxt["g_before_next"] ** 2))
        sigma_r2 = max(num / den, 0.0) if den > 0 else math.nan
        if num < 0:
            notes["read_noise_rel"] = ("consecutive residuals correlate positively: read noise "
                                       "below resolution, set to 0")
    else:
        sigma_r2 = math.nan
        notes["read_noise_rel"] = (f"{n_pairs} pairs of consecutive pulses (< {MIN_PAIRS}): "
                                   "read noise not separable from the step noise")

    # cycle-to-cycle step noise: residual variance beyond the read noise
    c2c_rel = c2c_abs = math.nan
    n = len(s)
    if n > dof + 0.5:
        rss = float(np.sum(s["resid"] ** 2)) * n / (n - dof)
        g0, g1 = s["g_before"].to_numpy(float), s["g_after"].to_numpy(float)
        read_part = float(np.sum(g1 ** 2 + (1 + s["slope"].to_numpy(float)) ** 2 * g0 ** 2))
        excess = rss - read_part * (sigma_r2 if math.isfinite(sigma_r2) else 0.0)
        fit2 = float(np.sum(s["fit"] ** 2))
        c2c_rel = math.sqrt(max(excess, 0.0) / fit2) if fit2 > 0 else math.nan
        c2c_abs = math.sqrt(max(excess, 0.0) / n)
        if excess < 0:
            notes["c2c"] = "step residuals within the read noise: cycle-to-cycle set to 0"
        elif not math.isfinite(sigma_r2):
            notes["c2c"] = ("upper bound: includes the read noise, which these data cannot "
                            f"separate (fewer than {MIN_PAIRS} consecutive pulses; pass "
                            "read_noise_rel=)")
        else:
            notes.pop("c2c", None)
    else:
        notes["c2c"] = "too few pulses for the fitted curves' degrees of freedom"
    return _Pass(s, curves, dof, n_pairs, sigma_r2, c2c_rel, c2c_abs)


def _step_dtod(fit: _Pass, notes: dict[str, str]) -> tuple[float, float]:
    """aihwkit's dw_min_dtod and up_down_dtod from the device factors (``fit_steps`` doc)."""
    up_c, dn_c, s = fit.curves[True], fit.curves[False], fit.s
    if up_c is None or dn_c is None:
        notes["dtod"] = "needs both step curves"
        return math.nan, math.nan
    mean_up, mean_dn = float(np.mean(up_c)), -float(np.mean(dn_c))
    dw = max(mean_up, mean_dn)
    vr = fit.sigma_r2 if math.isfinite(fit.sigma_r2) else 0.0
    vc = fit.c2c_rel ** 2 if math.isfinite(fit.c2c_rel) else 0.0
    gains, splits, se2 = [], [], []
    for _, dev in s.groupby("device", sort=True):
        fac, var = {}, {}
        for up in (True, False):
            d = dev[dev["up"] == up]
            f0, fit_k = d["f0"].to_numpy(float), d["fit"].to_numpy(float)
            f2 = float(np.sum(f0 * f0))
            if len(d) < MIN_DEVICE_STEPS or f2 <= 0:
                break
            g0, g1 = d["g_before"].to_numpy(float), d["g_after"].to_numpy(float)
            v = vc * fit_k * fit_k + vr * (g1 ** 2 + (1 + d["slope"].to_numpy(float)) ** 2
                                           * g0 ** 2)
            fac[up] = float(d["fac"].iloc[0])
            var[up] = float(np.sum(f0 * f0 * v) / f2 ** 2)
        else:  # both directions measured on this device
            gains.append(((fac[True] - 1) * mean_up + (fac[False] - 1) * mean_dn) / (2 * dw))
            splits.append(((fac[True] - 1) * mean_up - (fac[False] - 1) * mean_dn) / (2 * dw))
            se2.append((mean_up ** 2 * var[True] + mean_dn ** 2 * var[False]) / (4 * dw * dw))
    if len(gains) < MIN_DEVICES:
        notes["dtod"] = (f"{len(gains)} device(s) with >= {MIN_DEVICE_STEPS} pulses of each "
                         f"direction (< {MIN_DEVICES}): no device-to-device step spread")
        return math.nan, math.nan
    gain_dtod, t1 = _corrected_std(np.array(gains), np.array(se2))
    up_down_dtod, t2 = _corrected_std(np.array(splits), np.array(se2))
    for name, trunc in (("dw_min_dtod", t1), ("up_down_dtod", t2)):
        if trunc:
            notes[name] = "spread over devices below its sampling noise: set to 0"
    return gain_dtod, up_down_dtod


def fit_steps(steps: pd.DataFrame, *, window: tuple[float, float] | None = None,
              nodes: int = STEP_NODES, read_noise_rel: float | None = None) -> StepFit:
    """Step-size curve, read noise, cycle-to-cycle and device-to-device spreads of ``read_steps``.

    Model of one pulse k from read k to read k + 1 on device i: the true step is
    dG_k = a_i,d mu_d(G_k) (1 + sigma_c xi_k), with mu_d the mean step of direction d at
    conductance G, a_i,d the device's factor (mean 1 over devices), and every read carries
    relative read noise, G_read = G (1 + sigma_r eta). The curve f_d is a piecewise-linear
    smoothing fit of dG against G_read on ``nodes`` equally spaced conductances over ``window``
    (default: the median over runs of the lowest and highest read), alternating with the device
    factors (least squares). With its slope s and the residuals r_k = dG_read,k - a f_d(G_read,k):

    * read noise: r_k and r_(k+1) share read k + 1, so E[r_k r_(k+1)] = -(1 + s_(k+1))
      sigma_r^2 G_(k+1)^2, while cycle-to-cycle noise is independent between pulses: sigma_r^2 =
      -sum r_k r_(k+1) / sum (1 + s_(k+1)) G_(k+1)^2 over consecutive pulses (needs
      ``MIN_PAIRS``; ``read_noise_rel=`` gives it instead);
    * cycle-to-cycle: E[r_k^2] = sigma_c^2 f_k^2 + sigma_r^2 (G_(k+1)^2 + (1 + s_k)^2 G_k^2), so
      sigma_c^2 = (RSS n/(n - p) - sigma_r^2 sum(...)) / sum f_k^2 (p: the curves' effective
      parameters plus the factors); without a read-noise estimate sigma_c includes it (an upper
      bound, noted). ``c2c_abs_s`` is the same excess per pulse in S;
    * devices: aihwkit's common gain and up/down split of each device follow from its two
      factors (module doc); their spread over devices is the sample std minus the mean sampling
      variance (from the noise above; truncated at 0, noted). Needs ``MIN_DEVICES`` devices with
      ``MIN_DEVICE_STEPS`` pulses of each direction.

    Selection: a write-verify step chooses each pulse from the read before it, so a read near a
    decision boundary (target x (1 +- tol)) is there partly because of its noise, which biases
    the step after it. A second pass leaves out pulses whose deciding read lies within
    ``SELECTED_SIGMAS`` read-noise sigmas of a boundary (``margin`` from ``read_steps``).
    Only one pulse amplitude and width per direction is used (the most frequent; others noted).
    """
    for col in ("device", "run", "step", "k", "pulse_v", "width_s", "up", "g_before", "dg"):
        if col not in steps.columns:
            raise ParameterError(f"fit_steps: step table lacks column {col!r} "
                                 "(pass the output of read_steps)")
    if not 3 <= nodes <= 63:
        raise ParameterError(f"fit_steps: nodes must be 3 ... 63 (aihwkit on GPU), got {nodes}")
    if read_noise_rel is not None and not read_noise_rel >= 0:
        raise ParameterError(f"fit_steps: read_noise_rel must be >= 0, got {read_noise_rel}")
    notes: dict[str, str] = {}
    windows = pd.DataFrame(steps.attrs.get("windows") or [],
                           columns=["run", "device", "g_lo", "g_hi"])
    s = steps.dropna(subset=["g_before", "dg"]).copy()
    s.attrs = {}
    if "margin" not in s.columns:
        s["margin"] = np.inf
    s, pulse_v = _pick_pulses(s, notes)
    if window is None:
        if windows.empty:
            if s.empty:
                raise ParameterError("fit_steps: no pulses between verify reads")
            window = (float(s["g_before"].min()), float(s["g_before"].max()))
        else:
            per_run = windows.groupby("run")[["g_lo", "g_hi"]].first()
            window = (float(per_run["g_lo"].median()), float(per_run["g_hi"].median()))
    g_lo, g_hi = map(float, window)
    if not 0 <= g_lo < g_hi:
        raise ParameterError(f"fit_steps: window must satisfy 0 <= G_min < G_max, got "
                             f"{g_lo:.4g}, {g_hi:.4g} S")
    grid = np.linspace(g_lo, g_hi, nodes)
    counts = {up: int((s["up"] == up).sum()) for up in (True, False)}
    fit = _fit_pass(s, grid, read_noise_rel, notes)
    sigma_r = math.sqrt(fit.sigma_r2) if math.isfinite(fit.sigma_r2) else 0.0
    selected = s["margin"] < SELECTED_SIGMAS * sigma_r
    if selected.any() and (~selected).sum() >= MIN_STEPS:
        fit = _fit_pass(s[~selected], grid, read_noise_rel, notes)
        notes["selection"] = (f"{int(selected.sum())} of {len(s)} pulses decided by a read "
                              f"within {SELECTED_SIGMAS:g} read-noise sigmas of a verify "
                              "boundary left out (the decision selects that read's noise)")
    gain_dtod, up_down_dtod = _step_dtod(fit, notes)

    # device-to-device spread of the window (per device: median over its runs)
    g_max_sigma = g_min_sigma = math.nan
    if not windows.empty:
        per_dev = windows.groupby("device")[["g_lo", "g_hi"]].median()
        if len(per_dev) >= MIN_DEVICES:
            g_max_sigma = float(per_dev["g_hi"].std(ddof=1))
            g_min_sigma = float(per_dev["g_lo"].std(ddof=1))
        else:
            notes["window_dtod"] = (f"{len(per_dev)} device(s) (< {MIN_DEVICES}): no spread of "
                                    "the conductance window")

    def mags(coef: np.ndarray | None, sign: float) -> np.ndarray | None:
        if coef is None:
            return None
        vals = sign * coef
        if np.any(vals < 0):
            notes["clipped"] = ("the fitted curve crosses zero inside the window (a bound "
                                "inside it): negative steps set to 0")
        return np.maximum(vals, 0.0)

    return StepFit(g_lo, g_hi, grid, mags(fit.curves[True], 1.0), mags(fit.curves[False], -1.0),
                   math.sqrt(fit.sigma_r2) if math.isfinite(fit.sigma_r2) else math.nan,
                   fit.c2c_rel, fit.c2c_abs, gain_dtod, up_down_dtod, g_max_sigma, g_min_sigma,
                   counts[True], counts[False], fit.n_pairs, int(fit.s["device"].nunique()),
                   pulse_v, notes)

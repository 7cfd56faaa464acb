"""Export fitted synapse statistics as device-parameter files for network simulators.

Why: the network people simulate with IBM aihwkit, NeuroSim and MemTorch; each wants the measured
device in its own fields and units. This module turns the tidy metric table of
``analysis.metrics.extract`` (and, for the step-size curve and the noise, the write-verify run
files themselves) into plain files each tool's user can load: JSON for aihwkit, C++-style
assignments for NeuroSim, YAML for MemTorch. No simulator is imported (licences and weight:
shared/research/network.md §3.4); only fields listed in network.md §3 are written. A field that
cannot be measured from the data given is written as ``null`` (a comment line in the NeuroSim
file) with a note saying why, never as a guessed number. docs/exports.md has every mapping with
worked numbers; the short form:

Measured inputs

* From the metric table (``synapse-write-verify``, ``synapse-ltp-ltd``): ``g_min``, ``g_max``
  [S] (median over runs: the conductance window G_min, G_max); ``pulses_to_target`` and
  ``g_final`` (pooled mean step dG = sum |g_final_k - g_final_(k-1)| / sum n_k, k >= 2);
  ``max_num_level_ltp/ltd``, ``nl_ltp/ltd`` (NeuroSim's labels, when an LTP/LTD run exists).
* From the run files (``read_steps``): every pair of verify reads with one pulse between them,
  in any step that records ``pulse_v`` (write-verify, LTP/LTD). ``fit_steps`` turns them into
  the step-size curve dG(G) per direction, the read noise, the cycle-to-cycle step noise and the
  device-to-device spreads (statistics in ``fit_steps``' docstring).

Mappings (``k = (w_max - w_min) / (G_max - G_min)`` maps conductance linearly onto the aihwkit
weight range, default [-1, 1]; aihwkit's own rule for the up/down scales,
``scale_up = dw_min (1 + min(up_down, 0) + gain + r)``, ``scale_down = dw_min (1 - max(up_down,
0) + gain - r)``, is inverted):

aihwkit (``aihwkit_device.json``: ``device`` for ``ConstantStepDevice``, ``piecewise_device`` for
``PiecewiseStepDevice``)
    ``dw_min = k max(mean_up, mean_down)`` and ``up_down = (mean_up - mean_down) / max(...)``
    with mean_up, mean_down the mean of the fitted up / down step curve over the window (without
    a step curve: ``dw_min = k dG`` and ``up_down`` null). ``piecewise_up/down`` = the fitted
    curve at ``STEP_NODES`` equally spaced conductances from G_min to G_max divided by its mean
    (so ``dw_min (1 + bias) * piecewise`` is the measured step). ``dw_min_std`` = cycle-to-cycle
    std of one step relative to the local mean step; ``dw_min_dtod`` and ``up_down_dtod`` = the
    std over devices of ``gain`` and ``r``; ``w_max_dtod = k sigma(G_max) / |w_max|`` and
    ``w_min_dtod`` likewise, from per-device windows or a ``variation.summarize`` spread table.
NeuroSim MLP V3.0 ``RealDevice`` (``neurosim_device.txt``)
    ``maxConductance = G_max``, ``minConductance = G_min``; ``maxNumLevelLTP/LTD`` from the
    LTP/LTD fits, else N, else range / mean step per direction; ``NL_LTP/LTD`` from the
    arguments, else the LTP/LTD fits, else ``nonlinearWrite = false``;
    ``sigmaCtoC = f * (maxConductance - minConductance)`` with f the per-pulse absolute step
    noise over the range (NeuroSim adds
    N(0, sigmaCtoC) sqrt(#pulses) to G after an update); ``sigmaDtoD`` = std over devices of the
    NL label; with spreads ``conductanceRangeVar`` and ``max/minConductanceVar`` [S].
MemTorch (``memtorch_params.yaml``)
    ``r_on = 1 / G_max``, ``r_off = 1 / G_min`` [Ohm]; with spreads each becomes a
    ``StochasticParameter`` spec; ``FiniteConductanceStates: conductance_states = N``.

Two nonlinearities must not be confused: the dendrite's branch-function NL (``branch_nl``) and its
I-V ratio ``iv_ratio`` describe a volatile dendrite's I-V; NeuroSim's ``NL_LTP`` / ``NL_LTD``
label the curvature of a synapse's conductance-vs-pulse update. Neither dendrite metric is ever
written into ``NL_LTP`` / ``NL_LTD`` (nor NeuroSim's crossbar ``NL``). The dendrite and soma have
no counterpart in these tools.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from dendrolab.errors import ParameterError, RunFileError

__all__ = ["STEP_NODES", "DeviceStats", "StepFit", "aihwkit_device", "device_stats",
           "fit_steps", "memtorch_params", "neurosim_device", "neurosim_text", "read_steps",
           "spread_of", "write_exports"]

_PREFIX = {"": 1.0, "p": 1e-12, "n": 1e-9, "u": 1e-6, "µ": 1e-6, "μ": 1e-6, "m": 1e-3}
_NEEDED = ("g_min", "g_max")
_STEP = ("pulses_to_target", "g_final")

#: Nodes of the piecewise step curve (odd, so aihwkit's middle node sits mid-window; < 64 for
#: aihwkit on GPU).
STEP_NODES = 11
#: Least pulses of one direction for its curve; least consecutive pulse pairs to separate the
#: read noise; least pulses per direction for a device to enter the spreads; least devices.
MIN_STEPS, MIN_PAIRS, MIN_DEVICE_STEPS, MIN_DEVICES = 3, 5, 3, 3
#: A pulse whose deciding read lies within this many read-noise sigmas of a write-verify
#: decision boundary is left out of the fit (``fit_steps``: selection).
SELECTED_SIGMAS = 2.5


@dataclass(frozen=True)
class DeviceStats:
    """The measured synapse numbers every export starts from (SI units).

    ``n_levels`` is the number of levels N shared by both directions; ``n_ltp`` / ``n_ltd`` are
    per direction when measured (LTP/LTD fits or the step curve), else equal to N.
    """

    g_min_s: float
    g_max_s: float
    step_s: float
    n_levels: int
    n_runs: int
    n_ltp: int | None = None
    n_ltd: int | None = None
    source: str = "pulses_to_target"


def _to_siemens(value: float, unit: object) -> float:
    u = "" if unit is None or (isinstance(unit, float) and math.isnan(unit)) else str(unit)
    if not u.endswith("S") or u[:-1] not in _PREFIX:
        raise ParameterError(f"exports: conductance unit {u!r} is not S, mS, uS, nS or pS")
    return value * _PREFIX[u[:-1]]


def _usable(table: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(table, pd.DataFrame):
        raise ParameterError(f"exports: need a metric table (DataFrame), got "
                             f"{type(table).__name__}")
    for col in ("metric", "value"):
        if col not in table.columns:
            raise ParameterError(f"exports: metric table has no {col!r} column")
    t = table.copy()
    t["value"] = pd.to_numeric(t["value"], errors="coerce")
    if "uuid" not in t.columns:
        t["uuid"] = "run"
    return t[np.isfinite(t["value"].to_numpy(float))]


def _ok(t: pd.DataFrame) -> pd.DataFrame:
    return t[t["quality"] == "ok"] if "quality" in t.columns else t


def _siemens(rows: pd.DataFrame) -> np.ndarray:
    units = rows["unit"] if "unit" in rows.columns else pd.Series("S", index=rows.index)
    return np.array([_to_siemens(v, u) for v, u in zip(rows["value"], units, strict=True)])


def _per_run_median(rows: pd.DataFrame, siemens: bool = False) -> list[float]:
    out = []
    for _, g in rows.groupby("uuid", sort=True):
        vals = _siemens(g) if siemens else g["value"].to_numpy(float)
        out.append(float(np.median(vals)))
    return out


def _pooled_step(t: pd.DataFrame) -> tuple[float, float]:
    """(sum |dG|, sum n) over consecutive write-verify targets of each run (module doc)."""
    dg_sum, n_sum = 0.0, 0.0
    for _, run in t.groupby("uuid", sort=False):
        gf = run[run["metric"] == "g_final"]
        pt = run[run["metric"] == "pulses_to_target"]
        keys = ["step", "loop_vars"] if {"step", "loop_vars"} <= set(run.columns) else None
        pulses = ({tuple(map(str, r)): v for r, v in zip(pt[keys].itertuples(index=False),
                                                          pt["value"], strict=True)}
                  if keys else dict(enumerate(pt["value"])))
        g = _siemens(gf)
        gkeys = ([tuple(map(str, r)) for r in gf[keys].itertuples(index=False)] if keys
                 else list(range(len(gf))))
        for j in range(1, len(g)):
            n = pulses.get(gkeys[j], math.nan)
            if math.isfinite(n) and n > 0:
                dg_sum += abs(g[j] - g[j - 1])
                n_sum += n
    return dg_sum, n_sum


def device_stats(table: pd.DataFrame, n_levels: int | None = None,
                 steps: StepFit | None = None) -> DeviceStats:
    """G_min, G_max, step per pulse and number of levels from a metric table (module doc).

    The step comes, in this order, from ``n_levels=``, the pooled write-verify targets, the
    LTP/LTD fits' pulse counts (``max_num_level_ltp/ltd``), or the step curve ``steps``.
    """
    t = _usable(table)
    ok = _ok(t)
    missing = [m for m in _NEEDED if not (ok["metric"] == m).any()]
    if missing:
        raise ParameterError("exports: metric table lacks ok, finite rows of "
                             + ", ".join(missing) + " (run analysis.metrics on a "
                             "synapse-write-verify or synapse-ltp-ltd run)")
    per_run = {m: _per_run_median(ok[ok["metric"] == m], siemens=True) for m in _NEEDED}
    g_min, g_max = float(np.median(per_run["g_min"])), float(np.median(per_run["g_max"]))
    if not 0 < g_min < g_max:
        raise ParameterError(f"exports: need 0 < g_min < g_max, got {g_min:.4g} S, {g_max:.4g} S")
    n_runs, span = len(per_run["g_max"]), g_max - g_min
    levels = {d: _per_run_median(ok[ok["metric"] == f"max_num_level_{d}"])
              for d in ("ltp", "ltd")}
    n_dir = {d: (max(1, round(float(np.median(v)))) if v else None) for d, v in levels.items()}
    if n_levels is not None:
        if int(n_levels) < 1:
            raise ParameterError(f"exports: n_levels must be >= 1, got {n_levels}")
        n = int(n_levels)
        return DeviceStats(g_min, g_max, span / n, n, n_runs, n, n, "n_levels")
    dg_sum, n_sum = _pooled_step(t)
    if n_sum > 0 and dg_sum > 0:
        step = dg_sum / n_sum
        n = max(1, round(span / step))
        return DeviceStats(g_min, g_max, step, n, n_runs, n_dir["ltp"] or n, n_dir["ltd"] or n)
    if n_dir["ltp"] or n_dir["ltd"]:
        n = round(float(np.mean([v for v in n_dir.values() if v])))
        return DeviceStats(g_min, g_max, span / n, n, n_runs, n_dir["ltp"] or n,
                           n_dir["ltd"] or n, "max_num_level_ltp/ltd")
    if steps is not None and steps.mean_step_s > 0:
        n_up = max(1, round(span / steps.mean_up_s)) if steps.mean_up_s > 0 else None
        n_dn = max(1, round(span / steps.mean_down_s)) if steps.mean_down_s > 0 else None
        n = max(1, round(span / steps.mean_step_s))
        return DeviceStats(g_min, g_max, steps.mean_step_s, n, n_runs, n_up or n, n_dn or n,
                           "step curve")
    raise ParameterError("exports: no two consecutive write-verify targets (pulses_to_target,"
                         " g_final), no LTP/LTD fit and no step curve; cannot estimate the step "
                         "(pass n_levels= or the run files)")


def spread_of(spreads: pd.DataFrame | None, metric: str) -> float | None:
    """Relative spread of ``metric`` from a ``variation.summarize`` table (one row per metric)."""
    if spreads is None:
        return None
    for col in ("metric", "space"):
        if col not in spreads.columns:
            raise ParameterError(f"exports: spread table has no {col!r} column "
                                 "(pass the output of analysis.variation.summarize)")
    rows = spreads[spreads["metric"] == metric]
    if rows.empty:
        return None
    if len(rows) > 1:
        raise ParameterError(f"exports: spread table has {len(rows)} rows for {metric!r}; "
                             "summarize at one group (e.g. level='lot') for an export")
    r = rows.iloc[0]
    if r["space"] == "ln":
        s = float(r.get("sigma_ln", math.nan))
        rel = math.sqrt(math.expm1(s * s)) if math.isfinite(s) else math.nan
    else:
        rel = abs(float(r.get("cv", math.nan)))
    return rel if math.isfinite(rel) else None


# ---------------------------------------------------------------------------------------------
# Step-size curve from the run files


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
                v, i = data.arrays["voltage_v"], data.arrays["current_a"]
                pv = data.arrays["pulse_v"].astype(float)
                g = np.where(v != 0, i / np.where(v != 0, v, 1.0), np.nan)
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


# ---------------------------------------------------------------------------------------------
# aihwkit


def _num(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def aihwkit_device(stats: DeviceStats, spreads: pd.DataFrame | None = None,
                   w_min: float = -1.0, w_max: float = 1.0,
                   steps: StepFit | None = None) -> dict[str, Any]:
    """aihwkit ``ConstantStepDevice`` and ``PiecewiseStepDevice`` fields (normalised weight
    units) plus provenance; unmeasurable fields are None with a note (module doc)."""
    if not w_min < 0 < w_max:
        raise ParameterError(f"exports: need w_min < 0 < w_max, got {w_min}, {w_max}")
    k = (w_max - w_min) / (stats.g_max_s - stats.g_min_s)
    notes: dict[str, str] = {}
    dev: dict[str, Any] = {"dw_min": k * stats.step_s, "dw_min_dtod": None, "dw_min_std": None,
                           "up_down": None, "up_down_dtod": None, "w_max": w_max,
                           "w_max_dtod": None, "w_min": w_min, "w_min_dtod": None}
    piecewise: dict[str, Any] | None = None
    if steps is None:
        notes["up_down"] = notes["dw_min_std"] = notes["up_down_dtod"] = (
            "needs the step-size curve of the run files (write_exports(..., runs=paths))")
        notes["piecewise_device"] = notes["up_down"]
    else:
        if not np.allclose((steps.g_min_s, steps.g_max_s), (stats.g_min_s, stats.g_max_s),
                           rtol=0.01, atol=0):
            notes["piecewise_nodes"] = ("the step curve was fitted on another window than "
                                        "G_min ... G_max; fit_steps(..., window=(g_min, g_max)) "
                                        "aligns its nodes with w_min ... w_max")
        up, dn = steps.mean_up_s, steps.mean_down_s
        if math.isfinite(up) and math.isfinite(dn) and max(up, dn) > 0:
            big = max(up, dn)
            dev["dw_min"], dev["up_down"] = k * big, (up - dn) / big
        else:
            one = up if math.isfinite(up) else dn
            if math.isfinite(one):
                dev["dw_min"] = k * one
            notes["up_down"] = "only one pulse direction measured: no up/down asymmetry"
        dev["dw_min_std"] = _num(steps.c2c_rel)
        dev["dw_min_dtod"] = _num(steps.gain_dtod)
        dev["up_down_dtod"] = _num(steps.up_down_dtod)
        if math.isfinite(steps.g_max_sigma_s):
            dev["w_max_dtod"] = k * steps.g_max_sigma_s / abs(w_max)
            dev["w_min_dtod"] = k * steps.g_min_sigma_s / abs(w_min)
            notes["w_max_dtod"] = ("from each device's highest verify read: with write-verify "
                                   "that is the top target, not the device's bound")
        for name, keys in (("dw_min_std", ("c2c",)), ("dw_min_dtod", ("dw_min_dtod", "dtod")),
                           ("up_down_dtod", ("up_down_dtod", "dtod")),
                           ("w_max_dtod", ("window_dtod",)), ("w_min_dtod", ("window_dtod",)),
                           ("up_down", ("curve_down", "curve_up"))):
            why = [steps.notes[key] for key in keys if key in steps.notes]
            if why:
                notes.setdefault(name, why[0])
        if steps.up_s is not None and steps.down_s is not None and up > 0 and dn > 0:
            piecewise = {**dev, "piecewise_up": [float(x) for x in steps.up_s / up],
                         "piecewise_down": [float(x) for x in steps.down_s / dn]}
        else:
            notes["piecewise_device"] = "needs both step curves (SET and RESET pulses)"
    rel_max, rel_min = spread_of(spreads, "g_max"), spread_of(spreads, "g_min")
    rel_n = spread_of(spreads, "pulses_to_target")
    if rel_max is not None:
        dev["w_max_dtod"] = k * rel_max * stats.g_max_s / abs(w_max)
        notes.pop("w_max_dtod", None)
    if rel_min is not None:
        dev["w_min_dtod"] = k * rel_min * stats.g_min_s / abs(w_min)
    if rel_n is not None and dev["dw_min_dtod"] is None:
        dev["dw_min_dtod"] = rel_n
        notes.pop("dw_min_dtod", None)
        notes["dw_min_dtod_source"] = "relative spread of pulses_to_target (first order)"
    for name in ("w_max_dtod", "w_min_dtod", "dw_min_dtod"):
        if dev[name] is None:
            notes.setdefault(name, "no device-to-device data (several devices' run files or a "
                                   "spread table)")
    if piecewise is not None:
        piecewise.update({f: dev[f] for f in dev})
    not_measured = [f for f, v in dev.items() if v is None]
    if piecewise is None:
        not_measured += ["piecewise_up", "piecewise_down"]
    out: dict[str, Any] = {
        "tool": "aihwkit", "device_class": "ConstantStepDevice", "device": dev,
        "piecewise_device_class": "PiecewiseStepDevice", "piecewise_device": piecewise,
        "conductance_uS": {"g_min": stats.g_min_s * 1e6, "g_max": stats.g_max_s * 1e6},
        "assumptions": ["G mapped linearly onto [w_min, w_max]",
                        "aihwkit up/down rule: scale_up = dw_min (1 + min(up_down, 0)), "
                        "scale_down = dw_min (1 - max(up_down, 0))",
                        "null fields: drop them so aihwkit keeps its default"],
        "not_measured": not_measured, "notes": notes}
    if steps is not None:
        out["measured"] = {"read_noise_rel": _num(steps.read_noise_rel),
                           "c2c_abs_uS": _num(steps.c2c_abs_s * 1e6),
                           "mean_up_uS": _num(steps.mean_up_s * 1e6),
                           "mean_down_uS": _num(steps.mean_down_s * 1e6),
                           "pulses_up": steps.n_up, "pulses_down": steps.n_down,
                           "devices": steps.n_devices, "pulse_v": steps.pulse_v}
    return out


# ---------------------------------------------------------------------------------------------
# NeuroSim


def _nl_labels(table: pd.DataFrame | None) -> dict[str, Any]:
    """Median NL_LTP / NL_LTD of the ok LTP/LTD fits and their device-to-device sigma."""
    out: dict[str, Any] = {}
    if table is None:
        return out
    t = _ok(_usable(table))
    sig = []
    for d in ("ltp", "ltd"):
        rows = t[t["metric"] == f"nl_{d}"]
        if rows.empty:
            continue
        out[d] = float(np.median(rows["value"]))
        keys = [c for c in ("wafer", "wafer_id", "die_col", "die_row", "subsite",
                            "subsite_label", "device_id") if c in rows.columns]
        if not keys:
            continue
        # str() of every cell, NaN included (astype(str) keeps NaN a float on pandas 3)
        dev = rows[keys].apply(lambda col: col.map(str)).agg("/".join, axis=1)
        if dev.nunique() >= MIN_DEVICES:
            from analysis.variation import nested_variance

            frame = pd.DataFrame({"metric": "nl", "value": rows["value"].to_numpy(float),
                                  "device": dev.to_numpy()})
            nv = nested_variance(frame, "nl", levels=[("device", ["device"])],
                                 lognormal=()).set_index("level")
            sig.append(float(nv.loc["device", "sigma"]))
    if sig and all(math.isfinite(x) for x in sig):
        out["sigma_dtod"] = math.sqrt(float(np.mean(np.square(sig))))
    return out


def neurosim_device(stats: DeviceStats, spreads: pd.DataFrame | None = None,
                    nl_ltp: float | None = None, nl_ltd: float | None = None,
                    steps: StepFit | None = None, table: pd.DataFrame | None = None
                    ) -> dict[str, Any]:
    """NeuroSim MLP V3.0 ``RealDevice`` fields (SI units); None marks a field not measured,
    ``sigmaCtoC`` is its fraction of the conductance range (see ``neurosim_text``)."""
    dev: dict[str, Any] = {"maxConductance": stats.g_max_s, "minConductance": stats.g_min_s,
                           "maxNumLevelLTP": stats.n_ltp or stats.n_levels,
                           "maxNumLevelLTD": stats.n_ltd or stats.n_levels}
    if (nl_ltp is None) != (nl_ltd is None):
        raise ParameterError("exports: give both nl_ltp and nl_ltd (synapse update NL) or neither")
    labels = _nl_labels(table)
    if nl_ltp is None and "ltp" in labels and "ltd" in labels:
        nl_ltp, nl_ltd = labels["ltp"], labels["ltd"]
    if nl_ltp is None:
        dev["nonlinearWrite"] = False
    else:
        dev.update(nonlinearWrite=True, NL_LTP=float(nl_ltp), NL_LTD=float(nl_ltd))
    span = stats.g_max_s - stats.g_min_s
    frac = steps.c2c_abs_s / span if steps is not None else math.nan
    dev["sigmaCtoC"] = frac if math.isfinite(frac) else None
    dev["sigmaDtoD"] = labels.get("sigma_dtod")
    rel_max, rel_min = spread_of(spreads, "g_max"), spread_of(spreads, "g_min")
    if rel_max is not None or rel_min is not None:
        dev["conductanceRangeVar"] = True
        dev["maxConductanceVar"] = (rel_max or 0.0) * stats.g_max_s
        dev["minConductanceVar"] = (rel_min or 0.0) * stats.g_min_s
    elif steps is not None and math.isfinite(steps.g_max_sigma_s):
        dev["conductanceRangeVar"] = True
        dev["maxConductanceVar"] = steps.g_max_sigma_s
        dev["minConductanceVar"] = steps.g_min_sigma_s
    return dev


_NEUROSIM_WHY = {
    "sigmaCtoC": "needs the step-size curve from the run files (cycle-to-cycle step noise)",
    "sigmaDtoD": f"needs NL_LTP/NL_LTD fits (synapse-ltp-ltd runs) of >= {MIN_DEVICES} devices",
}


def neurosim_text(dev: Mapping[str, Any]) -> str:
    """C++ assignments for the ``RealDevice`` constructor, one per line; a field not measured
    is a comment naming why, so NeuroSim keeps its default."""
    lines = ["// dendrolab export: MLP+NeuroSim V3.0 RealDevice (Cell.cpp); SI units",
             f"// DNN+NeuroSim V2.1: max_level = {dev['maxNumLevelLTP']}, onoffratio = "
             f"{dev['maxConductance'] / dev['minConductance']:.6g}"]
    for name, v in dev.items():
        if v is None:
            lines.append(f"// {name}: not measured ({_NEUROSIM_WHY.get(name, 'no data')}); "
                         "NeuroSim default kept")
        elif name == "sigmaCtoC":
            lines.append(f"{name} = {float(v)!r} * (maxConductance - minConductance);  "
                         "// per pulse, x sqrt(#pulses)")
        elif isinstance(v, bool):
            lines.append(f"{name} = {'true' if v else 'false'};")
        elif isinstance(v, int):
            lines.append(f"{name} = {v};")
        else:
            lines.append(f"{name} = {float(v)!r};")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# MemTorch and the files


def memtorch_params(stats: DeviceStats, spreads: pd.DataFrame | None = None) -> dict[str, Any]:
    """MemTorch memristor parameters (Ohm) and the FiniteConductanceStates non-ideality."""
    params: dict[str, Any] = {}
    for name, g, metric in (("r_on", stats.g_max_s, "g_max"), ("r_off", stats.g_min_s, "g_min")):
        r, rel = 1.0 / g, spread_of(spreads, metric)
        params[name] = r if rel is None else {"StochasticParameter": {
            "distribution": "Normal", "loc": r, "scale": r * rel, "min": 0.0}}
    return {"tool": "memtorch", "memristor_model_params": params,
            "non_idealities": {"FiniteConductanceStates": {"conductance_states": stats.n_levels}},
            "assumptions": ["r_on = 1/G_max, r_off = 1/G_min", "spread of 1/G = spread of G"]}


def write_exports(table: pd.DataFrame, out_dir: str | Path, spreads: pd.DataFrame | None = None,
                  *, runs: Iterable[str | os.PathLike[str]] | None = None,
                  steps: StepFit | None = None, n_levels: int | None = None,
                  nl_ltp: float | None = None, nl_ltd: float | None = None,
                  read_noise_rel: float | None = None, w_min: float = -1.0,
                  w_max: float = 1.0) -> dict[str, Path]:
    """Write aihwkit_device.json, neurosim_device.txt and memtorch_params.yaml into ``out_dir``,
    and step_curve.csv when a step curve exists (``runs``: the run files to fit it from, or a
    ready ``steps`` fit). Returns {name: path}."""
    records = read_steps(runs) if runs is not None else None
    if records is not None and len(records) == 0:
        records = None
    if steps is None and records is not None:
        steps = fit_steps(records, read_noise_rel=read_noise_rel)
    stats = device_stats(table, n_levels, steps)
    if records is not None:  # on the export window, so the nodes span [w_min, w_max]
        steps = fit_steps(records, window=(stats.g_min_s, stats.g_max_s),
                          read_noise_rel=read_noise_rel)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"aihwkit": out / "aihwkit_device.json", "neurosim": out / "neurosim_device.txt",
             "memtorch": out / "memtorch_params.yaml"}
    paths["aihwkit"].write_text(json.dumps(aihwkit_device(stats, spreads, w_min, w_max, steps),
                                           indent=2) + "\n")
    paths["neurosim"].write_text(neurosim_text(neurosim_device(stats, spreads, nl_ltp, nl_ltd,
                                                               steps, table)))
    paths["memtorch"].write_text(yaml.safe_dump(memtorch_params(stats, spreads),
                                                sort_keys=False))
    if steps is not None:
        paths["step_curve"] = out / "step_curve.csv"
        steps.table().to_csv(paths["step_curve"], index=False)
    return paths

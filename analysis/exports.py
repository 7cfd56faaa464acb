"""Export fitted synapse statistics as device-parameter files for network simulators.

Why: the network people simulate with IBM aihwkit, NeuroSim and MemTorch; each wants the measured
device in its own fields and units. This module turns the tidy metric table of
``analysis.metrics.extract`` (and optionally a one-row-per-metric spread table of
``analysis.variation.summarize``) into plain files each tool's user can load: JSON for aihwkit,
C++-style assignments for NeuroSim, YAML for MemTorch. No simulator is imported (licences and
weight: shared/research/network.md §3.4); only fields listed in network.md §3 are written, and a
field we cannot derive from measurement is left out (the tool keeps its default) and named in the
file's ``not_measured`` list. docs/exports.md has the same mapping with worked numbers.

Measured inputs (metric names as ``analysis.metrics`` emits them for ``synapse-write-verify``):

* ``g_min``, ``g_max`` [S]: lowest / highest verify read of a run. Several runs: the median over
  runs of each (ok, finite rows only).
* ``pulses_to_target`` [1] and ``g_final`` [S], one pair per target step, in run order. The mean
  conductance step per pulse is pooled over consecutive targets of the same run:
  ``dG = sum_k |g_final_k - g_final_(k-1)| / sum_k n_k`` (k >= 2; the first target starts from an
  unknown state and is not used). Assumption: a constant step (linear device) and every pulse
  moving G toward the target; write-verify overshoot and RESET pulses make ``n_k`` an upper bound,
  so ``dG`` is a lower bound. ``n_levels=`` overrides it.
* ``N = round((G_max - G_min) / dG)``: pulses across the window, the number of levels.

Mappings (all formulas; ``k = (w_max - w_min) / (G_max - G_min)`` maps conductance linearly onto
the aihwkit weight range, default ``w_min = -1``, ``w_max = 1``):

aihwkit ``ConstantStepDevice`` (JSON ``aihwkit_device.json``, use as ``ConstantStepDevice(**d)``)
    ``dw_min = k dG`` (= (w_max - w_min)/N when N is given); ``w_max``, ``w_min`` as chosen;
    ``up_down = 0`` (SET and RESET steps are not separated by the metrics: assumed symmetric).
    With spreads: ``w_max_dtod = k sigma(G_max) / |w_max|``, ``w_min_dtod = k sigma(G_min) /
    |w_min|``, ``dw_min_dtod = relative spread of pulses_to_target`` (first order: dG ~ 1/n).
    ``dw_min_std`` (cycle-to-cycle), ``up_down_dtod`` and ``PiecewiseStepDevice`` need a measured
    step-size-vs-G curve with separate SET/RESET steps, which no metric gives yet: not exported.
NeuroSim MLP V3.0 ``RealDevice`` (``neurosim_device.txt``, paste into the constructor)
    ``maxConductance = G_max``, ``minConductance = G_min`` [S]; ``maxNumLevelLTP =
    maxNumLevelLTD = N``; ``NL_LTP`` / ``NL_LTD`` only if given (``nl_ltp=``, ``nl_ltd=``), else
    ``nonlinearWrite = false`` (linear update, matching the constant-step assumption). With spreads:
    ``conductanceRangeVar = true``, ``maxConductanceVar = sigma(G_max)``, ``minConductanceVar =
    sigma(G_min)`` [S]. ``sigmaCtoC`` and ``sigmaDtoD`` (c2c of G after an update, d2d of the NL
    label) are not measured: not exported. A comment line gives the DNN+NeuroSim V2.1 names
    ``max_level = N`` and ``onoffratio = G_max / G_min``.
MemTorch (``memtorch_params.yaml``)
    ``r_on = 1 / G_max``, ``r_off = 1 / G_min`` [Ohm]; with spreads each becomes a
    ``StochasticParameter`` spec ``{distribution: Normal, loc: R, scale: R * rel, min: 0}`` (first
    order: rel. spread of 1/G = rel. spread of G); ``FiniteConductanceStates: conductance_states =
    N``.

Spreads: ``rel`` of a metric is ``cv`` for a linear metric and ``sqrt(exp(sigma_ln^2) - 1)`` (the
CV of a log-normal) for a log-normal one; ``sigma = rel * median`` of the measured table.

Two nonlinearities must not be confused: the dendrite's branch-function NL (``branch_nl``, from
``a`` in f(u) = (e^(a u) - 1)/(e^a - 1)) and its I-V ratio ``iv_ratio`` = I(V)/I(V/2) describe a
volatile dendrite's I-V; NeuroSim's ``NL_LTP`` / ``NL_LTD`` label the curvature of a synapse's
conductance-vs-pulse update. They are different quantities, so neither dendrite metric is ever
written into ``NL_LTP`` / ``NL_LTD`` (nor into NeuroSim's crossbar ``NL``/``nonlinearity``, which
is a selector I-V ratio). The dendrite and soma have no counterpart in these tools.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from dendrolab.errors import ParameterError

__all__ = ["DeviceStats", "aihwkit_device", "device_stats", "memtorch_params", "neurosim_device",
           "neurosim_text", "spread_of", "write_exports"]

_PREFIX = {"": 1.0, "p": 1e-12, "n": 1e-9, "u": 1e-6, "µ": 1e-6, "μ": 1e-6, "m": 1e-3}
_NEEDED = ("g_min", "g_max")
_STEP = ("pulses_to_target", "g_final")


@dataclass(frozen=True)
class DeviceStats:
    """The measured synapse numbers every export starts from (SI units)."""

    g_min_s: float
    g_max_s: float
    step_s: float
    n_levels: int
    n_runs: int


def _to_siemens(value: float, unit: object) -> float:
    u = "" if unit is None or (isinstance(unit, float) and math.isnan(unit)) else str(unit)
    if not u.endswith("S") or u[:-1] not in _PREFIX:
        raise ParameterError(f"exports: conductance unit {u!r} is not S, mS, uS, nS or pS")
    return value * _PREFIX[u[:-1]]


def _usable(table: pd.DataFrame) -> pd.DataFrame:
    for col in ("metric", "value"):
        if col not in table.columns:
            raise ParameterError(f"exports: metric table has no {col!r} column")
    t = table.copy()
    t["value"] = pd.to_numeric(t["value"], errors="coerce")
    if "uuid" not in t.columns:
        t["uuid"] = "run"
    return t[np.isfinite(t["value"].to_numpy(float))]


def _siemens(rows: pd.DataFrame) -> np.ndarray:
    units = rows["unit"] if "unit" in rows.columns else pd.Series("S", index=rows.index)
    return np.array([_to_siemens(v, u) for v, u in zip(rows["value"], units, strict=True)])


def device_stats(table: pd.DataFrame, n_levels: int | None = None) -> DeviceStats:
    """G_min, G_max, step per pulse and number of levels from a metric table (see module doc)."""
    t = _usable(table)
    ok = t[t["quality"] == "ok"] if "quality" in t.columns else t
    missing = [m for m in _NEEDED if not (ok["metric"] == m).any()]
    if n_levels is None:
        missing += [m for m in _STEP if not (t["metric"] == m).any()]
    if missing:
        raise ParameterError("exports: metric table lacks ok, finite rows of "
                             + ", ".join(missing) + " (run analysis.metrics on a "
                             "synapse-write-verify run, or pass n_levels=)")
    per_run = {m: [] for m in _NEEDED}
    for m in _NEEDED:
        rows = ok[ok["metric"] == m]
        for _, g in rows.groupby("uuid", sort=True):
            per_run[m].append(float(np.median(_siemens(g))))
    g_min, g_max = float(np.median(per_run["g_min"])), float(np.median(per_run["g_max"]))
    if not 0 < g_min < g_max:
        raise ParameterError(f"exports: need 0 < g_min < g_max, got {g_min:.4g} S, {g_max:.4g} S")
    if n_levels is not None:
        if int(n_levels) < 1:
            raise ParameterError(f"exports: n_levels must be >= 1, got {n_levels}")
        return DeviceStats(g_min, g_max, (g_max - g_min) / int(n_levels), int(n_levels),
                           len(per_run["g_max"]))
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
    if n_sum == 0 or dg_sum == 0:
        raise ParameterError("exports: no two consecutive write-verify targets with pulses and "
                             "a conductance change; cannot estimate the step (pass n_levels=)")
    step = float(dg_sum / n_sum)
    return DeviceStats(g_min, g_max, step, max(1, round((g_max - g_min) / step)),
                       len(per_run["g_max"]))


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


def aihwkit_device(stats: DeviceStats, spreads: pd.DataFrame | None = None,
                   w_min: float = -1.0, w_max: float = 1.0) -> dict[str, Any]:
    """aihwkit ``ConstantStepDevice`` fields (normalised weight units) plus provenance."""
    if not w_min < w_max or w_min == 0 or w_max == 0:
        raise ParameterError(f"exports: need w_min < 0 < w_max style bounds, got {w_min}, {w_max}")
    k = (w_max - w_min) / (stats.g_max_s - stats.g_min_s)
    dev: dict[str, Any] = {"dw_min": k * stats.step_s, "w_max": w_max, "w_min": w_min,
                           "up_down": 0.0}
    rel_max, rel_min = spread_of(spreads, "g_max"), spread_of(spreads, "g_min")
    rel_n = spread_of(spreads, "pulses_to_target")
    if rel_max is not None:
        dev["w_max_dtod"] = k * rel_max * stats.g_max_s / abs(w_max)
    if rel_min is not None:
        dev["w_min_dtod"] = k * rel_min * stats.g_min_s / abs(w_min)
    if rel_n is not None:
        dev["dw_min_dtod"] = rel_n
    not_measured = ["dw_min_std", "up_down_dtod", "piecewise_up", "piecewise_down"]
    not_measured += [f for f in ("w_max_dtod", "w_min_dtod", "dw_min_dtod") if f not in dev]
    return {"tool": "aihwkit", "device_class": "ConstantStepDevice", "device": dev,
            "conductance_uS": {"g_min": stats.g_min_s * 1e6, "g_max": stats.g_max_s * 1e6},
            "assumptions": ["G mapped linearly onto [w_min, w_max]",
                            "constant step, up_down = 0 (SET/RESET not separated)"],
            "not_measured": not_measured}


def neurosim_device(stats: DeviceStats, spreads: pd.DataFrame | None = None,
                    nl_ltp: float | None = None, nl_ltd: float | None = None) -> dict[str, Any]:
    """NeuroSim MLP V3.0 ``RealDevice`` fields (SI units)."""
    dev: dict[str, Any] = {"maxConductance": stats.g_max_s, "minConductance": stats.g_min_s,
                           "maxNumLevelLTP": stats.n_levels, "maxNumLevelLTD": stats.n_levels}
    if (nl_ltp is None) != (nl_ltd is None):
        raise ParameterError("exports: give both nl_ltp and nl_ltd (synapse update NL) or neither")
    if nl_ltp is None:
        dev["nonlinearWrite"] = False
    else:
        dev.update(nonlinearWrite=True, NL_LTP=float(nl_ltp), NL_LTD=float(nl_ltd))
    rel_max, rel_min = spread_of(spreads, "g_max"), spread_of(spreads, "g_min")
    if rel_max is not None or rel_min is not None:
        dev["conductanceRangeVar"] = True
        dev["maxConductanceVar"] = (rel_max or 0.0) * stats.g_max_s
        dev["minConductanceVar"] = (rel_min or 0.0) * stats.g_min_s
    return dev


def neurosim_text(dev: Mapping[str, Any]) -> str:
    """C++ assignments for the ``RealDevice`` constructor, one per line."""
    lines = ["// dendrolab export: MLP+NeuroSim V3.0 RealDevice (Cell.cpp); SI units",
             "// not measured, left at NeuroSim default: sigmaCtoC, sigmaDtoD",
             f"// DNN+NeuroSim V2.1: max_level = {dev['maxNumLevelLTP']}, onoffratio = "
             f"{dev['maxConductance'] / dev['minConductance']:.6g}"]
    for name, v in dev.items():
        text = ("true" if v else "false") if isinstance(v, bool) else (
            str(v) if isinstance(v, int) else repr(float(v)))
        lines.append(f"{name} = {text};")
    return "\n".join(lines) + "\n"


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
                  *, n_levels: int | None = None, nl_ltp: float | None = None,
                  nl_ltd: float | None = None, w_min: float = -1.0,
                  w_max: float = 1.0) -> dict[str, Path]:
    """Write aihwkit_device.json, neurosim_device.txt and memtorch_params.yaml into ``out_dir``."""
    stats = device_stats(table, n_levels)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"aihwkit": out / "aihwkit_device.json", "neurosim": out / "neurosim_device.txt",
             "memtorch": out / "memtorch_params.yaml"}
    paths["aihwkit"].write_text(json.dumps(aihwkit_device(stats, spreads, w_min, w_max),
                                           indent=2) + "\n")
    paths["neurosim"].write_text(neurosim_text(neurosim_device(stats, spreads, nl_ltp, nl_ltd)))
    paths["memtorch"].write_text(yaml.safe_dump(memtorch_params(stats, spreads),
                                                sort_keys=False))
    return paths

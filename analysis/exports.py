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
* From the run files (``read_steps``, in ``analysis.step_curves``): every pair of verify reads
  with one pulse between them, in any step that records ``pulse_v`` (write-verify, LTP/LTD).
  ``fit_steps`` turns them into
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from analysis.step_curves import MIN_DEVICES, STEP_NODES, StepFit, fit_steps, read_steps
from dendrolab.errors import ParameterError

__all__ = ["STEP_NODES", "DeviceStats", "StepFit", "aihwkit_device", "device_stats",
           "fit_steps", "memtorch_params", "neurosim_device", "neurosim_text", "read_steps",
           "spread_of", "write_exports"]

_PREFIX = {"": 1.0, "p": 1e-12, "n": 1e-9, "u": 1e-6, "µ": 1e-6, "μ": 1e-6, "m": 1e-3}
_NEEDED = ("g_min", "g_max")
_STEP = ("pulses_to_target", "g_final")



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

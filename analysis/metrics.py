"""Device metrics from run files: one tidy long table, one row per run x metric.

Why: a run file holds raw currents; a device scientist wants the handful of numbers the paper and
the network simulator speak in (ON/OFF ratio, I-V nonlinearity, relaxation time, thresholds,
conductance window). Each built-in protocol gets one extractor that knows its step names; runs of
any other protocol get the generic extractor (mean |I| per step). Every number carries its unit
and a fit-quality flag (``ok`` / ``poor`` / ``failed``, with a reason), so a bad fit is visible in
the table instead of silently looking like data. Run files are read only through
``protocols.runfile_reader.RunReader`` (the analysis contract in ARCHITECTURE.md).

Two I-V nonlinearities appear here and must not be mixed:

* ``iv_ratio`` = I(V)/I(V/2), the NeuroSim-style I-V nonlinearity (V = largest swept voltage);
* ``branch_a`` / ``branch_nl``: the parameter ``a`` of the authors' dendrite branch function
  f(u) = (e^(a u) - 1)/(e^a - 1) fitted to the normalised I-V, and NL = a/(50 + a), the number the
  network code takes (``a = 50 NL/(1 - NL)``). Normalisation (``normalise_iv``): keep the points of
  the polarity with the larger |V| (V != 0), take |V| and |I|, u = |V|/max|V| and
  y = |I|/|I(max|V|)|, averaging repeated points at max|V|. So f(1) = 1 by construction. For an
  exact branch function I(V)/I(V/2) = e^(a/2) + 1.

Neither is the synapse LTP/LTD nonlinearity NeuroSim calls ``NL_LTP``.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dendrolab.errors import DendrolabError, RunFileError
from protocols.runfile_reader import RunReader, StepData

if TYPE_CHECKING:
    import pandas as pd

OK, POOR, FAILED = "ok", "poor", "failed"

#: Columns of the table ``extract`` returns, in order.
COLUMNS = ["uuid", "path", "protocol", "device_id", "wafer_id", "die_col", "die_row",
           "subsite_label", "step", "loop_vars", "metric", "value", "unit", "quality", "reason"]


@dataclass(frozen=True)
class Metric:
    """One extracted number with its unit and fit-quality flag.

    ``reason`` says why a metric is not ok; on an ok row it may name the definition used.
    """

    name: str
    value: float
    unit: str
    quality: str = OK
    reason: str = ""
    step: str = ""
    loop_vars: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Fit:
    """Result of a pure fitting function: parameters, a quality flag and its reason."""

    params: dict[str, float]
    quality: str
    reason: str = ""


def _failed(reason: str, *names: str) -> Fit:
    return Fit({n: math.nan for n in names}, FAILED, reason)


# ---------------------------------------------------------------------------- pure functions
def branch_function(u: np.ndarray | float, a: float) -> np.ndarray:
    """f(u) = (e^(a u) - 1)/(e^a - 1), evaluated without overflow; a = 0 gives f(u) = u."""
    u = np.asarray(u, dtype=float)
    if abs(a) < 1e-9:
        return u.copy()
    if a > 0:  # e^(a(u-1)) (1 - e^(-a u)) / (1 - e^(-a)): no overflow for large a
        return np.exp(a * (u - 1.0)) * (-np.expm1(-a * u)) / (-np.expm1(-a))
    return np.expm1(a * u) / np.expm1(a)


def nl_from_a(a: float) -> float:
    """The network's dendrite nonlinearity NL = a/(50 + a) (inverse of a = 50 NL/(1 - NL))."""
    return a / (50.0 + a) if a > -50.0 else math.nan


def normalise_iv(v: np.ndarray, i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(u, y) in [0, 1] from an I-V branch, as the module docstring states; may return empty."""
    v, i = np.asarray(v, dtype=float), np.asarray(i, dtype=float)
    good = np.isfinite(v) & np.isfinite(i) & (v != 0)
    v, i = v[good], i[good]
    if v.size == 0:
        return v, i
    pos, neg = v[v > 0], v[v < 0]
    sign = 1.0 if (pos.max() if pos.size else 0.0) >= (-neg.min() if neg.size else 0.0) else -1.0
    keep = sign * v > 0
    av, ai = np.abs(v[keep]), np.abs(i[keep])
    vmax = av.max()
    at_max = np.isclose(av, vmax, rtol=1e-9, atol=0)
    imax = float(ai[at_max].mean())
    if imax <= 0:
        return np.array([]), np.array([])
    return av / vmax, ai / imax


def iv_ratio(v: np.ndarray, i: np.ndarray) -> Fit:
    """I(V)/I(V/2) with V the largest |V| of the branch (I(V/2) linearly interpolated)."""
    u, y = normalise_iv(v, i)
    if u.size < 3:
        return _failed("fewer than 3 nonzero points of one polarity", "ratio")
    order = np.argsort(u, kind="stable")
    u, y = u[order], y[order]
    if u.min() > 0.5:
        return _failed("no point at or below V/2", "ratio")
    half = float(np.interp(0.5, u, y))
    if half <= 0:
        return _failed("I(V/2) is zero (below the current resolution)", "ratio")
    return Fit({"ratio": 1.0 / half}, OK)


def fit_branch_a(v: np.ndarray, i: np.ndarray, *, a_bounds: tuple[float, float] = (-49.0, 500.0),
                 rms_ok: float = 0.03) -> Fit:
    """Least-squares ``a`` of the branch function on the normalised I-V, with NL = a/(50+a).

    Quality: ``ok`` if the rms residual in y is below ``rms_ok``, ``poor`` below 4x that or if
    ``a`` sits on a bound, else ``failed``. Params: ``a``, ``nl``, ``rms``, ``n``.
    """
    from scipy.optimize import minimize_scalar

    names = ("a", "nl", "rms", "n")
    u, y = normalise_iv(v, i)
    if u.size < 3:
        return _failed("fewer than 3 nonzero points of one polarity", *names)

    def cost(a: float) -> float:
        return float(np.mean((branch_function(u, a) - y) ** 2))

    lo, hi = a_bounds
    grid = np.concatenate([np.linspace(lo, 0, 50), np.geomspace(0.01, hi, 200)])
    start = float(grid[np.argmin([cost(a) for a in grid])])
    k = int(np.searchsorted(grid, start))
    bracket = (float(grid[max(k - 2, 0)]), float(grid[min(k + 2, grid.size - 1)]))
    res = minimize_scalar(cost, bounds=bracket, method="bounded",
                          options={"xatol": 1e-10 * max(1.0, abs(start))})
    a = float(res.x) if res.success else start
    rms = math.sqrt(cost(a))
    params = {"a": a, "nl": nl_from_a(a), "rms": rms, "n": float(u.size)}
    if not math.isfinite(rms):
        return Fit(params, FAILED, "fit did not converge")
    if rms >= 4 * rms_ok:
        return Fit(params, FAILED, f"rms residual {rms:.3g} of the normalised I-V >= {4 * rms_ok}")
    if min(abs(a - lo), abs(a - hi)) < 1e-3 * (hi - lo):
        return Fit(params, POOR, f"a = {a:.4g} at the bound of {a_bounds}")
    if rms >= rms_ok:
        return Fit(params, POOR, f"rms residual {rms:.3g} of the normalised I-V >= {rms_ok}")
    return Fit(params, OK)


def fit_exponential_decay(t: np.ndarray, i: np.ndarray, *, r2_ok: float = 0.99,
                          r2_poor: float = 0.9) -> Fit:
    """Fit I(t) = I_inf + A exp(-(t - t0)/tau) (t0 = first time) with scipy ``curve_fit``.

    Quality: ``ok`` if R^2 >= ``r2_ok`` and tau lies within [one sample interval, record length];
    ``poor`` if R^2 >= ``r2_poor`` or tau is outside that range; else ``failed``. Params: ``tau``
    (s), ``i_inf``, ``amp`` (A), ``r2``.
    """
    from scipy.optimize import OptimizeWarning, curve_fit

    names = ("tau", "i_inf", "amp", "r2")
    t, i = np.asarray(t, dtype=float), np.asarray(i, dtype=float)
    good = np.isfinite(t) & np.isfinite(i)
    t, i = t[good], i[good]
    if t.size < 4:
        return _failed("fewer than 4 points to fit", *names)
    x = t - t[0]
    span = float(x[-1])
    if span <= 0:
        return _failed("time does not advance", *names)
    tail = float(np.median(i[-max(2, i.size // 4):]))
    amp0 = float(i[0] - tail)
    scale = abs(amp0) if amp0 != 0 else max(abs(tail), 1e-30)
    if abs(amp0) <= 1e-12 * max(abs(tail), 1e-30):
        return _failed("no decay: first and last currents are equal", *names)
    y = (i - tail) / scale
    # tau guess: where the decay has fallen to 1/e of its first value
    below = np.nonzero(np.sign(amp0) * y < abs(amp0 / scale) / math.e)[0]
    tau0 = float(x[below[0]]) if below.size and x[below[0]] > 0 else span / 3

    def model(xx: np.ndarray, a: float, rate: float, c: float) -> np.ndarray:
        return c + a * np.exp(-rate * xx)

    try:
        # a flat, noisy trace (a stuck device) sends the search through negative rates and a
        # singular covariance: the quality flag reports that, numpy's warnings need not
        with warnings.catch_warnings(), np.errstate(over="ignore", invalid="ignore"):
            warnings.simplefilter("ignore", OptimizeWarning)
            popt, _ = curve_fit(model, x / span, y, p0=(amp0 / scale, span / tau0, 0.0),
                                maxfev=5000)
    except (RuntimeError, ValueError) as exc:
        return _failed(f"exponential fit did not converge ({exc})", *names)
    a, rate, c = (float(p) for p in popt)
    if not rate > 0:
        return _failed("fitted rate is not positive (no decay)", *names)
    tau = span / rate
    resid = y - model(x / span, *popt)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else math.nan
    params = {"tau": tau, "i_inf": tail + c * scale, "amp": a * scale, "r2": r2}
    dt = float(np.min(np.diff(x))) if x.size > 1 else span
    if not r2 >= r2_poor:
        return Fit(params, FAILED, f"R^2 = {r2:.3g} < {r2_poor}")
    if tau < dt or tau > span:
        return Fit(params, POOR, f"tau = {tau:.3g} s outside the record [{dt:.3g}, {span:.3g}] s")
    if r2 < r2_ok:
        return Fit(params, POOR, f"R^2 = {r2:.3g} < {r2_ok}")
    return Fit(params, OK)


def crossing_threshold(x: np.ndarray, y: np.ndarray, criterion: float) -> Fit:
    """Lowest x where y first reaches ``criterion``, linearly interpolated (x ascending).

    ``poor`` if already reached at the first x (only an upper bound), ``failed`` if never.
    """
    order = np.argsort(np.asarray(x, dtype=float), kind="stable")
    x, y = np.asarray(x, dtype=float)[order], np.asarray(y, dtype=float)[order]
    above = np.nonzero(y >= criterion)[0]
    if above.size == 0:
        return _failed(f"response never reaches {criterion:g} in the sweep", "x")
    k = int(above[0])
    if k == 0:
        return Fit({"x": float(x[0])}, POOR, "already above the criterion at the first point")
    x0, x1, y0, y1 = x[k - 1], x[k], y[k - 1], y[k]
    xc = x1 if y1 == y0 else x0 + (criterion - y0) * (x1 - x0) / (y1 - y0)
    return Fit({"x": float(xc)}, OK)


def _log_current(ai: np.ndarray) -> np.ndarray:
    """ln |I|, exact zeros raised to the smallest non-zero |I| (so they make no jump)."""
    floor = max(float(ai[ai > 0].min()) if np.any(ai > 0) else 1e-30, 1e-30)
    return np.log(np.maximum(ai, floor))


def _switch_points(v: np.ndarray, logi: np.ndarray) -> tuple[int, int, int]:
    """(top, ku, kd) of an up-down sweep from its levels and ln |I|: index of the largest
    level, and the steps of the largest |I| rise on the up branch (ku -> ku + 1) and largest
    fall on the down branch (top + kd -> top + kd + 1); ku = kd = -1 without both branches."""
    top = int(np.argmax(v))
    if top < 1 or v.size - top < 2:
        return top, -1, -1
    return top, int(np.argmax(np.diff(logi[: top + 1]))), int(np.argmin(np.diff(logi[top:])))


def on_state_mask(v_levels: np.ndarray, i: np.ndarray) -> np.ndarray:
    """The points of an up-down sweep measured in the ON state: from the first point after the
    switch ON (``threshold_switch``'s V_th) up to, not including, the release point."""
    v, ai = np.asarray(v_levels, dtype=float), np.abs(np.asarray(i, dtype=float))
    top, ku, kd = _switch_points(v, _log_current(ai))
    on = np.zeros(v.size, dtype=bool)
    if ku >= 0:
        on[ku + 1: top + kd + 1] = True
    return on


def threshold_switch(v_levels: np.ndarray, i: np.ndarray, *, min_jump: float = 5.0) -> Fit:
    """V_th and V_hold of one up-and-down threshold-switch sweep.

    The branch up to the largest level is the up branch, the rest the down branch. V_th is the
    source level of the first point after the largest rise of |I| on the up branch, V_hold the
    level of the first point after the largest fall on the down branch (both at the sweep's
    resolution, one step). ``min_jump`` is the smallest |I| ratio counted as a switch. Params:
    ``v_th``, ``v_hold`` (V), ``r_off`` (ohm, slope of the up branch below V_th), ``jump_up``,
    ``jump_down``.
    """
    names = ("v_th", "v_hold", "r_off", "jump_up", "jump_down")
    v, ai = np.asarray(v_levels, dtype=float), np.abs(np.asarray(i, dtype=float))
    if v.size != ai.size or v.size < 5:
        return _failed("need at least 5 points with one level per current", *names)
    logi = _log_current(ai)
    top, ku, kd = _switch_points(v, logi)
    if ku < 0:
        return _failed("sweep has no up and down branch", *names)
    up, down = logi[: top + 1], logi[top:]
    jump_up, jump_down = math.exp(up[ku + 1] - up[ku]), math.exp(down[kd] - down[kd + 1])
    v_th, v_hold = float(v[ku + 1]), float(v[top + kd + 1])
    sub = (v[: ku + 1] > 0)
    vv, ii = v[: ku + 1][sub], ai[: ku + 1][sub]
    r_off = float(np.sum(vv * vv) / np.sum(vv * ii)) if vv.size >= 2 and np.sum(vv * ii) > 0 \
        else math.nan
    params = {"v_th": v_th, "v_hold": v_hold, "r_off": r_off, "jump_up": jump_up,
              "jump_down": jump_down}
    if jump_up < min_jump or jump_down < min_jump:
        return Fit(params, FAILED, f"no switching: |I| jumps x{jump_up:.3g} up, x{jump_down:.3g}"
                                   f" down (< x{min_jump:g})")
    if v_hold >= v_th:
        return Fit(params, POOR, f"V_hold {v_hold:g} V >= V_th {v_th:g} V (no hysteresis)")
    return Fit(params, OK)


# ---------------------------------------------------------------------------- extractors
def _leaf(step_name: str) -> str:
    return step_name.rsplit("/", 1)[-1]


def _current_steps(reader: RunReader, leaf: str | None = None) -> list[StepData]:
    out = []
    for info in reader.steps:
        if "current_a" in info.units and (leaf is None or _leaf(info.name) == leaf):
            out.append(reader.step(info.index))
    return out


def _levels(data: StepData) -> np.ndarray:
    """Programmed source levels (the measured voltage sags in compliance), else measured V."""
    v = data.arrays["voltage_v"]
    levels = data.info.params.get("levels_v")
    if isinstance(levels, list) and len(levels) == v.size:
        return np.asarray(levels, dtype=float)
    return np.asarray(v, dtype=float)


def _m(name: str, value: float, unit: str, fit: Fit | None = None, data: StepData | None = None,
       *, quality: str | None = None, reason: str = "") -> Metric:
    q = quality or (fit.quality if fit else OK)
    r = reason or (fit.reason if fit else "")
    if not (isinstance(value, (int, float)) and math.isfinite(value)) and q == OK:
        q, r = FAILED, r or "not computable"
    return Metric(name, float(value), unit, q, r, data.info.name if data else "",
                  dict(data.info.loop_vars) if data else {})


def _missing(name: str, unit: str, why: str) -> Metric:
    return Metric(name, math.nan, unit, FAILED, why)


def read_conductance(v: np.ndarray, i: np.ndarray) -> np.ndarray:
    """G = I / V of every read, NaN where V = 0 (a read needs a voltage)."""
    v, i = np.asarray(v, dtype=float), np.asarray(i, dtype=float)
    return np.where(v != 0, i / np.where(v != 0, v, 1.0), np.nan)


def _mean_i(data: StepData) -> float:
    i = data.arrays["current_a"]
    return float(np.mean(i)) if i.size else math.nan


def _ratio(on: float, off: float) -> tuple[float, str, str]:
    if not (math.isfinite(on) and math.isfinite(off)):
        return math.nan, FAILED, "read missing"
    if off <= 0:
        return math.nan, FAILED, "OFF read is zero or negative (below resolution)"
    return on / off, OK, ""


def extract_pm_pulses(reader: RunReader) -> list[Metric]:
    """dendrite-pm-pulses: ON/OFF = first read after the +V train / mean baseline read; and
    the read ratio (first read / baseline) after each train (loop variable amplitude_v)."""
    base = _current_steps(reader, "baseline")
    if not base:
        return [_missing("on_off_ratio", "1", "no 'baseline' step")]
    off = _mean_i(base[0])
    out = []
    best: tuple[float, StepData] | None = None
    for data in _current_steps(reader, "response"):
        on = float(data.arrays["current_a"][0]) if data.arrays["current_a"].size else math.nan
        value, q, why = _ratio(on, off)
        out.append(_m("read_ratio", value, "1", data=data, quality=q, reason=why))
        amp = data.info.loop_vars.get("amplitude_v")
        if isinstance(amp, (int, float)) and amp > 0 and (best is None or amp > best[0]):
            best = (float(amp), data)
    if best is None:
        return [*out, _missing("on_off_ratio", "1", "no read after a positive train")]
    on = float(best[1].arrays["current_a"][0])
    value, q, why = _ratio(on, off)
    out.insert(0, _m("on_off_ratio", value, "1", data=best[1], quality=q, reason=why))
    return out


def extract_relaxation(reader: RunReader) -> list[Metric]:
    """dendrite-relaxation, per cycle: ON/OFF (first read after the switching level / mean read
    before it); ``relax_tau``, the time constant of an exponential fit of the decay reads I(t);
    and ``relax_tau_state``, the same fit on ln(I/I_off). With the exponential state-to-
    conductance mapping G = G_off rho^w, ln(I/I_off) is proportional to the state w, so
    ``relax_tau_state`` estimates the state's relaxation time at the read voltage, while the
    current itself decays faster than w (``relax_tau`` < ``relax_tau_state``)."""
    out = []
    steps = _current_steps(reader, "off_on_relax")
    if not steps:
        return [_missing("on_off_ratio", "1", "no 'off_on_relax' step")]
    for data in steps:
        lv, i, t = _levels(data), data.arrays["current_a"], data.arrays["time_s"]
        read_v = lv[0] if lv.size else math.nan
        high = np.nonzero(lv > read_v)[0]
        if high.size == 0 or high[-1] + 4 >= lv.size or high[0] == 0:
            out.append(_m("on_off_ratio", math.nan, "1", data=data, quality=FAILED,
                          reason="no OFF reads, switching level and >= 4 decay reads"))
            continue
        off = float(np.mean(i[: high[0]]))
        relax = slice(high[-1] + 1, None)
        value, q, why = _ratio(float(i[relax][0]), off)
        out.append(_m("on_off_ratio", value, "1", data=data, quality=q, reason=why))
        fit = fit_exponential_decay(t[relax], i[relax])
        out.append(_m("relax_tau", fit.params["tau"], "s", fit, data))
        out.append(_m("relax_fit_r2", fit.params["r2"], "1", fit, data))
        if off > 0 and np.all(i[relax] > 0):
            state = fit_exponential_decay(t[relax], np.log(i[relax] / off))
            out.append(_m("relax_tau_state", state.params["tau"], "s", state, data))
        else:
            out.append(_m("relax_tau_state", math.nan, "s", data=data, quality=FAILED,
                          reason="non-positive reads: ln(I/I_off) undefined"))
    return out


def _iv_metrics(data: StepData) -> list[Metric]:
    v, i = data.arrays["voltage_v"], data.arrays["current_a"]
    ratio = iv_ratio(v, i)
    fit = fit_branch_a(v, i)
    return [_m("iv_ratio", ratio.params["ratio"], "1", ratio, data),
            _m("branch_a", fit.params["a"], "1", fit, data),
            _m("branch_nl", fit.params["nl"], "1", fit, data),
            _m("branch_fit_rms", fit.params["rms"], "1", fit, data)]


def extract_dendrite_iv(reader: RunReader) -> list[Metric]:
    """dendrite-iv: I-V nonlinearities of the OFF, ON and relaxed small-signal sweeps (the
    +-5 V loop writes the device, so it is not a static I-V)."""
    out = []
    for leaf in ("off_state_iv", "on_state_iv", "relaxed_iv"):
        steps = _current_steps(reader, leaf)
        out += _iv_metrics(steps[0]) if steps else [_missing("iv_ratio", "1", f"no {leaf!r}")]
    return out


def extract_wafer_iv(reader: RunReader) -> list[Metric]:
    """wafer-iv (and iv-sweep): I-V nonlinearities of every sweep, plus the read conductance."""
    out = []
    for data in _current_steps(reader):
        out += _iv_metrics(data)
        v, i = data.arrays["voltage_v"], data.arrays["current_a"]
        den = float(np.sum(v * v))
        g = float(np.sum(v * i) / den) if den > 0 else math.nan
        out.append(_m("g_linear", g, "S", data=data,
                      reason="" if math.isfinite(g) else "all voltages zero"))
    return out


def extract_amplitude_sweep(reader: RunReader, *, criterion: float = 2.0) -> list[Metric]:
    """dendrite-amplitude-sweep: read ratio after/before each train (loop amplitude_v), and the
    amplitude threshold, the amplitude where that ratio first reaches ``criterion`` (default 2),
    linearly interpolated between sweep points."""
    before = {json.dumps(d.info.loop_vars, sort_keys=True): d
              for d in _current_steps(reader, "before")}
    amps, ratios, out = [], [], []
    for data in _current_steps(reader):
        if not _leaf(data.info.name).startswith("after_"):
            continue
        ref = before.get(json.dumps(data.info.loop_vars, sort_keys=True))
        amp = data.info.loop_vars.get("amplitude_v")
        if ref is None or not isinstance(amp, (int, float)):
            continue
        value, q, why = _ratio(_mean_i(data), _mean_i(ref))
        out.append(_m("response_ratio", value, "1", data=data, quality=q, reason=why))
        if q == OK:
            amps.append(float(amp))
            ratios.append(value)
    if not amps:
        return [*out, _missing("amplitude_threshold", "V", "no before/after read pairs")]
    fit = crossing_threshold(np.array(amps), np.array(ratios), criterion)
    out.insert(0, Metric("amplitude_threshold", fit.params["x"], "V", fit.quality,
                         fit.reason or f"read ratio >= {criterion:g}"))
    return out


def fit_on_state(v: np.ndarray, i: np.ndarray, on: np.ndarray, *, r2_ok: float = 0.98,
                 min_points: int = 4) -> Fit:
    """R_on of a threshold switch from its ON-state points: least squares V = v_0 + R_on |I|.

    ``on`` marks the points measured in the ON state; points clamped at the compliance (two or
    more readings sharing the largest |I| to 1 ppm: a clamped SMU reports the limit itself) are
    dropped, since their voltage says nothing about the resistance. Params ``r_on`` (ohm) and
    ``v_0`` (V, the ON-branch offset), ``poor`` below ``r2_ok``.
    """
    names = ("r_on", "v_0")
    v, ai = np.abs(np.asarray(v, dtype=float)), np.abs(np.asarray(i, dtype=float))
    on = np.asarray(on, dtype=bool)
    if on.any():
        top = float(ai[on].max())
        clamped = on & (ai >= top * (1 - 1e-6))
        if int(clamped.sum()) >= 2:
            on = on & ~clamped
    n = int(on.sum())
    if n < min_points:
        return _failed(f"{n} unclamped ON-state points (< {min_points}): the compliance clamps "
                       "the ON state; sweep with a compliance above the ON current", *names)
    x, y = ai[on], v[on]
    if float(np.ptp(x)) <= 0:
        return _failed("ON-state points all at one current", *names)
    slope, icpt = np.polyfit(x, y, 1)
    resid = y - (slope * x + icpt)
    ss = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid ** 2)) / ss if ss > 0 else 0.0
    params = {"r_on": float(slope), "v_0": float(icpt)}
    if slope <= 0:
        return Fit(params, FAILED, f"ON-state V falls with I (slope {slope:.3g} ohm)")
    if r2 < r2_ok:
        return Fit(params, POOR, f"R^2 = {r2:.3f} < {r2_ok} over {n} ON points")
    return Fit(params, OK, f"linear fit over {n} unclamped ON points, R^2 = {r2:.3f}")


def extract_soma_iv(reader: RunReader) -> list[Metric]:
    """soma-iv and soma-on-state, per cycle: V_th, V_hold (source levels, one sweep step
    resolution), R_off, and R_on from the ON-state points (``fit_on_state``).

    soma-iv's 100 uA compliance clamps every ON point, so there R_on is reported ``failed``
    with the reason: in compliance every ON point has the current I_cc, dV/dI is undefined and
    V/I_cc mixes the holding voltage into the resistance. soma-on-state sweeps with a
    compliance above the ON current, which leaves the ON branch measured."""
    out = []
    steps = _current_steps(reader, "up_down")
    if not steps:
        return [_missing("v_th", "V", "no 'up_down' step")]
    for data in steps:
        levels, i = _levels(data), data.arrays["current_a"]
        fit = threshold_switch(levels, i)
        out += [_m("v_th", fit.params["v_th"], "V", fit, data),
                _m("v_hold", fit.params["v_hold"], "V", fit, data),
                _m("r_off", fit.params["r_off"], "ohm", fit, data)]
        if fit.quality == FAILED:
            on_fit = _failed("no switching in this sweep", "r_on")
        else:
            on_fit = fit_on_state(data.arrays["voltage_v"], i, on_state_mask(levels, i))
        out.append(_m("r_on", on_fit.params["r_on"], "ohm", on_fit, data))
    return out


def extract_unit_firing(reader: RunReader, *, min_jump: float = 2.0) -> list[Metric]:
    """unit-firing: mean input current and conductance per amplitude (loop amplitude_v) and the
    firing threshold: the first amplitude after the largest rise of the input conductance I/V
    between neighbouring amplitudes (the soma's spikes add their charge to the input current).

    Spikes per pulse cannot be counted from this protocol: the input SMU integrates over each
    pulse, so the file holds charge per pulse, not spike times (unit-spikes counts them with a
    frequency counter: ``extract_unit_spikes``).
    """
    amps, gs, out = [], [], []
    for data in _current_steps(reader, "pulses"):
        amp = data.info.loop_vars.get("amplitude_v")
        if not isinstance(amp, (int, float)) or amp == 0:
            continue
        i = _mean_i(data)
        if not math.isfinite(i):
            continue
        out.append(_m("input_current_mean", i, "A", data=data))
        out.append(_m("input_conductance", i / amp, "S", data=data))
        amps.append(float(amp))
        gs.append(i / amp)
    if len(amps) < 2:
        return [*out, _missing("firing_threshold", "V", "fewer than 2 amplitudes")]
    order = np.argsort(amps)
    a, g = np.array(amps)[order], np.array(gs)[order]
    if np.any(g <= 0):
        return [*out, _missing("firing_threshold", "V", "non-positive input current")]
    steps = g[1:] / g[:-1]
    k = int(np.argmax(steps))
    q, why = (OK, "") if steps[k] >= min_jump else (
        FAILED, f"input conductance rises at most x{steps[k]:.3g} (< x{min_jump:g})")
    out.insert(0, Metric("firing_threshold", float(a[k + 1]) if q == OK else math.nan, "V", q,
                         why or f"input conductance x{steps[k]:.3g} at this amplitude"))
    return out


def extract_write_verify(reader: RunReader) -> list[Metric]:
    """synapse-write-verify: per target, pulses to target and the final conductance (reached
    within ``tol_rel`` or not); over the run, G_min and G_max of every verify read, and
    ``levels_reached``, the number of distinct conductance levels among the targets reached
    within tolerance (``distinct_levels``: finals whose tolerance bands overlap count once)."""
    out, all_g, reached, tols = [], [], [], []
    for data in _current_steps(reader):
        if "pulse_v" not in data.arrays:
            continue
        v, i, pv = data.arrays["voltage_v"], data.arrays["current_a"], data.arrays["pulse_v"]
        ok = v != 0
        g = i[ok] / v[ok]
        all_g += g.tolist()
        target, tol = data.info.params.get("target_s"), data.info.params.get("tol_rel", 0.05)
        n = int(np.count_nonzero(pv))
        if not g.size or not isinstance(target, (int, float)) or target <= 0:
            out.append(_m("pulses_to_target", math.nan, "1", data=data, quality=FAILED,
                          reason="no verify read or no target"))
            continue
        err = abs(float(g[-1]) - target) / target
        q, why = (OK, "") if err <= tol else (FAILED, f"not reached: off by {err:.1%} > {tol:.0%}")
        out.append(_m("pulses_to_target", float(n), "1", data=data, quality=q, reason=why))
        out.append(_m("g_final", float(g[-1]), "S", data=data, quality=q, reason=why))
        if q == OK:
            reached.append(float(g[-1]))
            tols.append(float(tol))
    if not all_g:
        return [*out, _missing("g_min", "S", "no write-verify step")]
    out.append(Metric("levels_reached", float(distinct_levels(np.array(reached),
                                                               max(tols, default=0.05))),
                      "1", OK, f"{len(reached)} targets reached within tolerance"))
    return [Metric("g_min", float(min(all_g)), "S", OK, "lowest verify read"),
            Metric("g_max", float(max(all_g)), "S", OK, "highest verify read"), *out]


#: NeuroSim's weight-update nonlinearity label is its lookup table ``Nonlinearity-NormA``
#: (NL 0.01 ... 9, normalised A); each entry there makes the normalised update curve's largest
#: deviation from the straight line NL x this constant (0.0990 +- 0.0001 over the table's
#: sample points listed in research/network.md 3.2; tested), so the label is computed from the
#: fitted curve instead of copying the (non-commercially licensed) table.
NEUROSIM_DEVIATION_PER_NL = 0.099


def update_curve(x: np.ndarray, c: float) -> np.ndarray:
    """NeuroSim's normalised update curve on x in [0, 1]: (1 - e^(-c x))/(1 - e^(-c)).

    c = 1/A_norm; c > 0 saturates (concave, NeuroSim's positive label), c < 0 is the mirror
    image (convex, negative label), c = 0 the straight line."""
    x = np.asarray(x, dtype=float)
    if abs(c) < 1e-9:
        return x.copy()
    return np.expm1(-c * x) / np.expm1(-c)


def neurosim_nl_label(c: float) -> float:
    """NeuroSim's NL_LTP / NL_LTD label of the curve ``update_curve(x, c)`` (signed)."""
    x = np.linspace(0.0, 1.0, 2001)
    dev = float(np.max(np.abs(update_curve(x, abs(c)) - x)))
    return math.copysign(dev / NEUROSIM_DEVIATION_PER_NL, c) if c else 0.0


def fit_update(g: np.ndarray, *, c_max: float = 60.0, r2_ok: float = 0.9) -> Fit:
    """Fit G(p) = G_0 + (G_P - G_0) update_curve(p/P, c) to reads after p = 0 ... P identical
    pulses (the read before the first pulse included), as NeuroSim models LTP: G_min = G_0 and
    G_max = G_P of the fit, ``max_num_level`` = P. For LTD pass the depression trace reversed
    (NeuroSim puts both curves on one pulse axis from G_min to G_max), so a depression that is
    steep at first gets a negative label, as NeuroSim's default device (NL_LTD -4.88).

    Params: ``g_start``, ``g_end`` (S, fitted ends), ``c``, ``a_norm`` (= 1/|c|), ``nl`` (the
    NeuroSim label), ``pulses`` (P), ``sigma_c2c`` (residual sigma / |G_P - G_0|, NeuroSim's
    cycle-to-cycle sigma as a fraction of the range), ``r2``. |c| is searched up to ``c_max``
    (label ~9, the table's end); ``poor`` at the bound or below ``r2_ok``.
    """
    from scipy.optimize import minimize_scalar

    names = ("g_start", "g_end", "c", "a_norm", "nl", "pulses", "sigma_c2c", "r2")
    g = np.asarray(g, dtype=float)
    if g.size < 5 or not np.all(np.isfinite(g)):
        return _failed("need at least 5 finite reads (the read before the pulses and 4 after)",
                       *names)
    x = np.linspace(0.0, 1.0, g.size)

    def solve(c: float) -> tuple[float, np.ndarray, float]:
        basis = np.column_stack([np.ones_like(x), update_curve(x, c)])
        coef, *_ = np.linalg.lstsq(basis, g, rcond=None)
        resid = g - basis @ coef
        return float(resid @ resid), coef, c

    grid = np.linspace(-c_max, c_max, 121)
    best = min(grid, key=lambda c: solve(float(c))[0])
    lo, hi = max(best - c_max / 60, -c_max), min(best + c_max / 60, c_max)
    c = float(minimize_scalar(lambda c: solve(c)[0], bounds=(lo, hi), method="bounded",
                              options={"xatol": 1e-6}).x)
    sse, coef, _ = solve(c)
    g0, span = float(coef[0]), float(coef[1])
    ss = float(np.sum((g - g.mean()) ** 2))
    r2 = 1.0 - sse / ss if ss > 0 else 0.0
    sigma = math.sqrt(sse / max(g.size - 3, 1)) / abs(span) if span else math.nan
    params = {"g_start": g0, "g_end": g0 + span, "c": c, "a_norm": 1 / abs(c) if c else math.inf,
              "nl": neurosim_nl_label(c), "pulses": float(g.size - 1), "sigma_c2c": sigma,
              "r2": r2}
    if span <= 0:
        return Fit(params, FAILED, "conductance does not rise along the pulse axis")
    if abs(c) >= c_max * 0.999:
        return Fit(params, POOR, f"curvature at the search bound |c| = {c_max:g} (label >= "
                                 f"{neurosim_nl_label(c_max):.2g}): steeper than the table")
    if r2 < r2_ok:
        return Fit(params, POOR, f"R^2 = {r2:.3f} < {r2_ok}")
    return Fit(params, OK)


def extract_ltp_ltd(reader: RunReader) -> list[Metric]:
    """synapse-ltp-ltd, per cycle: NeuroSim's LTP/LTD weight-update nonlinearity labels
    (``nl_ltp``, ``nl_ltd``; NOT the dendrite I-V NL of ``branch_nl``), normalised A, the
    pulses per curve (``max_num_level_ltp/ltd``), cycle-to-cycle sigma relative to the range,
    and per run G_min / G_max (fitted ends of the LTP curves: lowest start, highest end) and
    their ratio, from the verify reads of the ``ltp`` and ``ltd`` steps (``fit_update``)."""
    out, starts, ends = [], [], []
    for data in _current_steps(reader):
        leaf = _leaf(data.info.name)
        if leaf not in ("ltp", "ltd") or "pulse_v" not in data.arrays:
            continue
        g = read_conductance(data.arrays["voltage_v"], data.arrays["current_a"])
        fit = fit_update(g if leaf == "ltp" else g[::-1])
        out += [_m(f"nl_{leaf}", fit.params["nl"], "1", fit, data),
                _m(f"a_norm_{leaf}", fit.params["a_norm"], "1", fit, data),
                _m(f"max_num_level_{leaf}", fit.params["pulses"], "1", fit, data),
                _m(f"sigma_c2c_{leaf}", fit.params["sigma_c2c"], "1", fit, data)]
        if fit.quality != FAILED:
            starts.append(fit.params["g_start"])
            ends.append(fit.params["g_end"])
    if not starts:
        return [*out, _missing("g_min", "S", "no fitted 'ltp' or 'ltd' step")]
    g_min, g_max = min(starts), max(ends)
    ratio, q, why = _ratio(g_max, g_min)
    return [Metric("g_min", g_min, "S", OK, "lowest fitted start of the update curves"),
            Metric("g_max", g_max, "S", OK, "highest fitted end of the update curves"),
            Metric("on_off", ratio, "1", q, why or "G_max / G_min"), *out]


def gain_per_pulse(n_pulses: np.ndarray, ratio: np.ndarray) -> Fit:
    """Read-ratio gain per added pulse: the chord (r(n_max) - r(n_min))/(n_max - n_min).

    A chord, not a line fit: integration saturates, so a straight-line fit would misstate both
    ends; the chord is exact for a linear response and model-free otherwise. Params: ``gain``
    (1/pulse), ``n_min``, ``n_max``. ``failed`` with fewer than two distinct pulse numbers.
    """
    n, r = np.asarray(n_pulses, dtype=float), np.asarray(ratio, dtype=float)
    good = np.isfinite(n) & np.isfinite(r)
    n, r = n[good], r[good]
    if np.unique(n).size < 2:
        return _failed("fewer than 2 distinct pulse numbers", "gain", "n_min", "n_max")
    lo, hi = float(n.min()), float(n.max())
    gain = (float(r[n == hi].mean()) - float(r[n == lo].mean())) / (hi - lo)
    return Fit({"gain": gain, "n_min": lo, "n_max": hi}, OK)


def fit_log_drift(cycle: np.ndarray, i: np.ndarray, *, max_resid_autocorr: float = 0.5,
                  min_cycles: int = 10) -> Fit:
    """Endurance drift: least-squares slope of ln|I| against cycle, and the cycle-to-cycle sigma.

    ``sigma_ln`` is the standard deviation of the residuals about the line (so a drift does not
    count as spread). Quality: ``failed`` with fewer than 3 positive reads; ``poor`` with fewer
    than ``min_cycles`` or when the lag-1 autocorrelation of the residuals exceeds
    ``max_resid_autocorr`` (ln I is not a straight line in cycle: saturation, a step, wear-out),
    else ``ok``. Params: ``slope`` (1/cycle), ``slope_se``, ``sigma_ln``, ``autocorr``, ``n``.
    """
    names = ("slope", "slope_se", "sigma_ln", "autocorr", "n")
    c, i = np.asarray(cycle, dtype=float), np.asarray(i, dtype=float)
    good = np.isfinite(c) & np.isfinite(i) & (i > 0)
    c, y = c[good], np.log(i[good])
    if c.size < 3 or np.ptp(c) == 0:
        return _failed("fewer than 3 positive reads at distinct cycles", *names)
    slope, icept = np.polyfit(c, y, 1)
    resid = y - (slope * c + icept)
    n = c.size
    sxx = float(np.sum((c - c.mean()) ** 2))
    s2 = float(np.sum(resid**2)) / (n - 2) if n > 2 else math.nan
    ss = float(np.sum(resid**2))
    auto = float(np.sum(resid[1:] * resid[:-1]) / ss) if ss > 0 else 0.0
    params = {"slope": float(slope), "slope_se": math.sqrt(s2 / sxx), "sigma_ln": math.sqrt(s2),
              "autocorr": auto, "n": float(n)}
    if n < min_cycles:
        return Fit(params, POOR, f"only {n} cycles (< {min_cycles})")
    if auto > max_resid_autocorr:
        return Fit(params, POOR, f"ln I is not linear in cycle: residual lag-1 autocorrelation"
                                 f" {auto:.2f} > {max_resid_autocorr}")
    return Fit(params, OK)


def distinct_levels(g: np.ndarray, tol_rel: float) -> int:
    """Number of distinguishable conductance levels: sorted levels are merged while their
    tolerance bands g (1 +- tol_rel) overlap (a level within tolerance of the previous one is the
    same level)."""
    g = np.sort(np.asarray(g, dtype=float)[np.isfinite(g)])
    if g.size == 0:
        return 0
    count, top = 1, g[0] * (1 + tol_rel)
    for x in g[1:]:
        if x * (1 - tol_rel) > top:
            count += 1
        top = x * (1 + tol_rel)
    return count


def _first(data: StepData) -> float:
    i = data.arrays["current_a"]
    return float(i[0]) if i.size else math.nan


def _pulse_timing(reader: RunReader, read_step: StepData) -> dict[str, float]:
    """Width and interval (period - width) of the pulses step just before a read, if any."""
    for info in reversed(reader.steps[: read_step.info.index]):
        p = info.params
        if "period_s" in p and "width_s" in p:
            try:
                width, period = float(p["width_s"]), float(p["period_s"])
                return {"width_s": width, "interval_s": float(f"{period - width:.12g}")}
            except (TypeError, ValueError):
                return {}
        if "current_a" in info.units:
            break
    return {}


def extract_integration(reader: RunReader) -> list[Metric]:
    """dendrite-integration: read ratio (first read after the train / mean baseline) per
    amplitude and pulse number (loop ``amplitude_v``, ``n_pulses``; steps ``response`` and the
    three-pulse ``decay``), and per group of equal amplitude and pulse timing the gain per added
    pulse (``gain_per_pulse``) with the pulse width and interval in its loop variables."""
    base = _current_steps(reader, "baseline")
    if not base:
        return [_missing("integration_ratio", "1", "no 'baseline' step")]
    off = _mean_i(base[0])
    out: list[Metric] = []
    groups: dict[str, tuple[dict[str, Any], list[float], list[float]]] = {}
    for data in _current_steps(reader):
        if _leaf(data.info.name) not in ("response", "decay"):
            continue
        value, q, why = _ratio(_first(data), off)
        out.append(_m("integration_ratio", value, "1", data=data, quality=q, reason=why))
        lv = dict(data.info.loop_vars)
        n = lv.pop("n_pulses", None)
        if q != OK or not isinstance(n, (int, float)):
            continue
        lv.update(_pulse_timing(reader, data))
        lv["series"] = data.info.name.split("/", 1)[0]
        key = json.dumps(lv, sort_keys=True)
        groups.setdefault(key, (lv, [], []))
        groups[key][1].append(float(n))
        groups[key][2].append(value)
    for lv, ns, rs in groups.values():
        fit = gain_per_pulse(np.array(ns), np.array(rs))
        out.append(Metric("gain_per_pulse", fit.params["gain"], "1/pulse", fit.quality,
                          fit.reason or f"chord of the read ratio from {fit.params['n_min']:g}"
                          f" to {fit.params['n_max']:g} pulses", lv.pop("series"), lv))
    if not groups:
        out.append(_missing("gain_per_pulse", "1/pulse", "no reads with a pulse number"))
    return out


def extract_inhibition(reader: RunReader) -> list[Metric]:
    """dendrite-inhibition, per number of excitatory inputs (loop ``n_exc``): ``inhibition_ratio``
    = first read after the excitatory+inhibitory train / first read after the excitatory-only
    train (< 1: the inhibitory input lowers the response), and ``inhibition_suppression`` = the
    fraction of the excitatory response above the baseline that inhibition removes (1: fully
    cancelled, 0: no effect)."""
    def by_loop(leaf: str) -> dict[str, StepData]:
        return {json.dumps(d.info.loop_vars, sort_keys=True): d
                for d in _current_steps(reader, leaf)}

    exc, inh, base = by_loop("after_excitatory"), by_loop("after_inhibition"), by_loop("baseline")
    out = []
    for key, d_inh in inh.items():
        d_exc = exc.get(key)
        if d_exc is None:
            out.append(_m("inhibition_ratio", math.nan, "1", data=d_inh, quality=FAILED,
                          reason="no excitatory-only read with the same loop variables"))
            continue
        i_exc, i_inh = _first(d_exc), _first(d_inh)
        value, q, why = _ratio(i_inh, i_exc)
        out.append(_m("inhibition_ratio", value, "1", data=d_inh, quality=q, reason=why))
        d_base = base.get(key)
        i_base = _mean_i(d_base) if d_base is not None else math.nan
        if not math.isfinite(i_base):
            out.append(_m("inhibition_suppression", math.nan, "1", data=d_inh, quality=FAILED,
                          reason="no baseline read"))
        elif i_exc <= i_base:
            out.append(_m("inhibition_suppression", math.nan, "1", data=d_inh, quality=FAILED,
                          reason="no excitatory response above the baseline"))
        else:
            out.append(_m("inhibition_suppression", (i_exc - i_inh) / (i_exc - i_base), "1",
                          data=d_inh))
    return out or [_missing("inhibition_ratio", "1", "no 'after_inhibition' step")]


def extract_endurance(reader: RunReader) -> list[Metric]:
    """dendrite-endurance: the read ratio of every cycle (read / mean baseline, loop ``cycle``),
    then over the run the drift of ln I per cycle (``endurance_drift``, with its standard error)
    and the cycle-to-cycle sigma of ln I about that line (``endurance_sigma_ln``); see
    ``fit_log_drift`` for the quality flag."""
    base = _current_steps(reader, "baseline")
    off = _mean_i(base[0]) if base else math.nan
    cycles, reads, out = [], [], []
    for data in _current_steps(reader, "response"):
        cyc = data.info.loop_vars.get("cycle")
        i = _first(data)
        value, q, why = _ratio(i, off) if base else (math.nan, FAILED, "no 'baseline' step")
        out.append(_m("endurance_read_ratio", value, "1", data=data, quality=q, reason=why))
        if isinstance(cyc, (int, float)):
            cycles.append(float(cyc))
            reads.append(i)
    fit = fit_log_drift(np.array(cycles), np.array(reads))
    return [Metric("endurance_drift", fit.params["slope"], "1/cycle", fit.quality,
                   fit.reason or "slope of ln I against cycle"),
            Metric("endurance_drift_se", fit.params["slope_se"], "1/cycle", fit.quality,
                   fit.reason),
            Metric("endurance_sigma_ln", fit.params["sigma_ln"], "1", fit.quality,
                   fit.reason or "sigma of ln I about the drift line"), *out]


def _pulses_between(reader: RunReader, start: int, stop: int) -> int:
    """Input pulses played by the pulse steps between step indexes ``start`` and ``stop``."""
    n = 0
    for info in reader.steps[start + 1: stop]:
        count = info.params.get("count")
        if "high_v" in info.params and isinstance(count, (int, float)):
            n += int(count)
    return n


def extract_unit_spikes(reader: RunReader) -> list[Metric]:
    """unit-spikes (ED7d): soma spikes the counter totalized over each input burst, per
    amplitude (loop ``amplitude_v``): ``spike_count`` and ``spikes_per_pulse`` (count / pulses
    played between the gate's ``count_start`` and this fetch); and ``firing_threshold``, the
    amplitude where spikes per pulse first reaches 1, linearly interpolated between amplitudes
    (``crossing_threshold``)."""
    index = {info.name: info.index for info in reader.steps}
    out, amps, rates = [], [], []
    for info in reader.steps:
        if "count" not in info.units:
            continue
        data = reader.step(info.index)
        count = float(data.arrays["count"][0]) if data.arrays["count"].size else math.nan
        if not math.isfinite(count):
            out.append(_m("spike_count", math.nan, "1", data=data, quality=FAILED,
                          reason="no count: the counter's gate was lost (run resumed)"))
            continue
        start = index.get(str(info.params.get("start_step", "")), -1)
        pulses = _pulses_between(reader, start, info.index)
        out.append(_m("spike_count", count, "1", data=data))
        if pulses <= 0:
            out.append(_m("spikes_per_pulse", math.nan, "1", data=data, quality=FAILED,
                          reason="no pulse step inside the counter's gate"))
            continue
        out.append(_m("spikes_per_pulse", count / pulses, "1", data=data,
                      reason=f"{count:g} spikes / {pulses} pulses"))
        amp = info.loop_vars.get("amplitude_v")
        if isinstance(amp, (int, float)):
            amps.append(float(amp))
            rates.append(count / pulses)
    if len(amps) < 2:
        return [*out, _missing("firing_threshold", "V", "fewer than 2 amplitudes counted")]
    fit = crossing_threshold(np.array(amps), np.array(rates), 1.0)
    out.insert(0, Metric("firing_threshold", fit.params["x"], "V", fit.quality,
                         fit.reason or "spikes per pulse reaches 1 (interpolated)"))
    return out


def extract_unit_oscillation(reader: RunReader) -> list[Metric]:
    """unit-oscillation: the counter's frequency reading of the soma's spikes per DC input
    level (loop ``input_v``), ``oscillation_frequency`` (Hz; 0 where the counter timed out:
    no oscillation at that input, said in the reason), and ``oscillation_onset``, the lowest
    input level with a reading (``poor`` if already the first level: only an upper bound)."""
    out, levels = [], []
    for info in reader.steps:
        if "frequency_hz" not in info.units:
            continue
        data = reader.step(info.index)
        f = data.arrays["frequency_hz"]
        value = float(f[0]) if f.size else math.nan
        level = info.loop_vars.get("input_v", info.params.get("hold_v"))
        if not math.isfinite(value):
            out.append(_m("oscillation_frequency", 0.0, "Hz", data=data,
                          reason="counter timed out: no oscillation at this input (0 Hz)"))
            levels.append((float(level) if isinstance(level, (int, float)) else math.nan, False))
            continue
        out.append(_m("oscillation_frequency", value, "Hz", data=data))
        levels.append((float(level) if isinstance(level, (int, float)) else math.nan, True))
    known = sorted((lv, ok) for lv, ok in levels if math.isfinite(lv))
    firing = [lv for lv, ok in known if ok]
    if not firing:
        return [*out, _missing("oscillation_onset", "V", "no input level oscillated")]
    q, why = ((POOR, "already oscillating at the lowest input level: an upper bound")
              if firing[0] == known[0][0] else (OK, "lowest input level with a frequency"))
    return [Metric("oscillation_onset", firing[0], "V", q, why), *out]


def extract_generic(reader: RunReader) -> list[Metric]:
    """Any run: mean |I| of every step that recorded a current (for user protocols)."""
    out = []
    for data in _current_steps(reader):
        i = data.arrays["current_a"]
        value = float(np.mean(np.abs(i))) if i.size else math.nan
        out.append(_m("mean_abs_current", value, "A", data=data,
                      reason="" if i.size else "no rows"))
    return out


#: Extractor for each built-in protocol (by ``protocol_name``); others get ``extract_generic``.
EXTRACTORS: dict[str, Callable[[RunReader], list[Metric]]] = {
    "dendrite-pm-pulses": extract_pm_pulses,
    "dendrite-relaxation": extract_relaxation,
    "dendrite-iv": extract_dendrite_iv,
    "wafer-iv": extract_wafer_iv,
    "iv-sweep": extract_wafer_iv,
    "dendrite-amplitude-sweep": extract_amplitude_sweep,
    "soma-iv": extract_soma_iv,
    "soma-on-state": extract_soma_iv,
    "unit-firing": extract_unit_firing,
    "unit-spikes": extract_unit_spikes,
    "unit-oscillation": extract_unit_oscillation,
    "synapse-write-verify": extract_write_verify,
    "synapse-ltp-ltd": extract_ltp_ltd,
    "dendrite-integration": extract_integration,
    "dendrite-inhibition": extract_inhibition,
    "dendrite-endurance": extract_endurance,
}


def extract_run(path: str | os.PathLike[str], *, generic: bool = False) -> list[dict[str, Any]]:
    """The metric rows of one run file (``generic=True`` adds mean |I| per step to any run)."""
    with RunReader(path) as reader:
        attrs = reader.attrs
        protocol = str(attrs.get("protocol_name", ""))
        extractor = EXTRACTORS.get(protocol)
        metrics = extractor(reader) if extractor else []
        if generic or extractor is None:
            metrics += extract_generic(reader)
        base = {"uuid": reader.uuid, "path": str(path), "protocol": protocol,
                "device_id": str(attrs.get("device_id", "")),
                "wafer_id": str(attrs.get("wafer_id", "")),
                "die_col": attrs.get("die_col"), "die_row": attrs.get("die_row"),
                "subsite_label": str(attrs.get("subsite_label", ""))}
    return [{**base, "step": m.step, "loop_vars": json.dumps(m.loop_vars, sort_keys=True),
             "metric": m.name, "value": m.value, "unit": m.unit, "quality": m.quality,
             "reason": m.reason} for m in metrics]


def extract(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *,
            generic: bool = False, on_error: str = "raise") -> pd.DataFrame:
    """One tidy DataFrame (columns ``COLUMNS``), one row per run x metric.

    ``on_error='skip'`` turns an unreadable file into one ``error`` row (quality ``failed``, the
    reason) instead of raising ``RunFileError``. ``loop_vars`` is a JSON text column.
    """
    import pandas as pd

    if on_error not in ("raise", "skip"):
        raise DendrolabError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    rows: list[dict[str, Any]] = []
    for path in paths:
        try:
            rows += extract_run(path, generic=generic)
        except DendrolabError as exc:
            if on_error == "raise":
                raise
            rows.append({"uuid": "", "path": str(path), "protocol": "", "step": "",
                         "loop_vars": "{}", "metric": "error", "value": math.nan, "unit": "",
                         "quality": FAILED, "reason": str(exc)})
        except OSError as exc:
            err = RunFileError(f"{path}: cannot read the run file ({exc.strerror or exc})")
            if on_error == "raise":
                raise err from None
            rows.append({"uuid": "", "path": str(path), "protocol": "", "step": "",
                         "loop_vars": "{}", "metric": "error", "value": math.nan, "unit": "",
                         "quality": FAILED, "reason": str(err)})
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["value"] = frame["value"].astype(float)
    return frame


def to_csv(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write the metric table as CSV (no index); returns the path."""
    path = Path(path)
    frame.to_csv(path, index=False)
    return path


def to_parquet(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write the metric table as Parquet (pyarrow); returns the path."""
    path = Path(path)
    out = frame.copy()
    for col in ("die_col", "die_row"):
        out[col] = _nullable_int(out[col])
    out.to_parquet(path, index=False, engine="pyarrow")
    return path


def _nullable_int(series: pd.Series) -> pd.Series:
    """A column of ints and None as pandas' nullable Int64 (Parquet keeps it an integer)."""
    import pandas as pd

    return pd.to_numeric(series, errors="coerce").astype("Int64")


__all__: Sequence[str] = [
    "COLUMNS", "EXTRACTORS", "Fit", "Metric", "branch_function", "crossing_threshold",
    "distinct_levels", "extract", "extract_run", "fit_branch_a", "fit_exponential_decay",
    "fit_log_drift", "gain_per_pulse", "iv_ratio", "nl_from_a",
    "normalise_iv", "threshold_switch", "to_csv", "to_parquet",
]

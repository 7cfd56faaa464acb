"""Wafer figures: maps, bin maps, probability plots, box plots, radial trend and semivariogram.

Why: the numbers from ``analysis.variation`` (σ of ln x, trend coefficients, correlation length)
are only trusted once a person has *seen* the wafer — a ring of high resistance, a dead quadrant,
a bimodal distribution that a single σ hides. Each function here takes the tidy metric table (one
row per measured value: ``metric``, ``value``, ``unit`` and the wafer position columns) plus, where
useful, a result of the variation functions, writes one PNG and returns its path. The figure itself
is built by an inner ``*_figure`` function that returns the matplotlib ``Figure`` so tests can
inspect the artists before anything is saved.

Conventions (``shared/research/wafer.md`` §3): log-normal metrics (``variation.is_lognormal``) get a
log colour / value scale and are fitted in ln space; a log-normal sample is a straight line on a
probit axis (``scipy.stats.probplot`` of ln x); a Weibull sample is straight in ln(−ln(1−F)) vs
ln x with median ranks F = (i − 0.3)/(n + 0.4), slope = Weibull shape.

Positions: ``x_um`` / ``y_um`` (chuck coordinates, wafer centre at 0) when the table has them;
otherwise die squares are placed from ``die_col`` / ``die_row`` at ``die_pitch_mm``, centred on the
middle of the observed die grid (the die-to-centre offset is not in the table). Wafer geometry is
never read from the simulator: the outline is a circle of ``radius_mm`` (default 50 mm, a 100 mm
wafer) with a primary flat of chord ``flat_length_mm`` at the bottom (SEMI 100 mm: 32.5 mm; 0 for
none). Column aliases: ``wafer`` / ``wafer_id``, ``subsite`` / ``subsite_label``.

matplotlib is imported lazily, with the Agg backend, so ``import analysis.wafer_plots`` stays cheap
and works without a display.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis.variation import (
    FAILURE_CATEGORIES,
    TrendFit,
    VariogramFit,
    classify_failure,
    fit_trend,
    fit_variogram,
    is_lognormal,
    semivariogram,
)
from dendrolab.errors import ParameterError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "CATEGORY_COLORS",
    "box_plots",
    "box_plots_figure",
    "probability_plot",
    "probability_plot_figure",
    "radial_trend_figure",
    "radial_trend_plot",
    "variogram_figure",
    "variogram_plot",
    "wafer_map",
    "wafer_map_figure",
    "yield_map",
    "yield_map_figure",
]

#: Bin-map colours, one per ``variation.FAILURE_CATEGORIES`` entry.
CATEGORY_COLORS: dict[str, str] = {
    "pass": "#2ca02c", "open": "#7f7f7f", "short": "#d62728", "stuck": "#9467bd",
    "no_switching": "#ff7f0e", "compliance": "#e377c2", "other": "#8c564b", "skipped": "#ffffff",
}

#: Cumulative probabilities labelled on the probit axis.
PROBIT_TICKS = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)

_DIE = ("die_col", "die_row")


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _alias(table: pd.DataFrame, *names: str) -> str | None:
    return next((n for n in names if n in table.columns), None)


def _need(table: object, columns: Sequence[str], what: str) -> None:
    if not isinstance(table, pd.DataFrame):
        raise ParameterError(f"{what} needs a pandas DataFrame, got {type(table).__name__}")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ParameterError(f"{what}: table lacks column(s) {', '.join(missing)}; "
                             f"it has {', '.join(map(str, table.columns)) or 'none'}")


def _rows(table: pd.DataFrame, metric: str, what: str) -> pd.DataFrame:
    _need(table, ("metric", "value"), what)
    rows = table[table["metric"] == metric].copy()
    if rows.empty:
        known = ", ".join(map(str, pd.unique(table["metric"])[:10])) or "none"
        raise ParameterError(f"{what}: no rows for metric {metric!r}; metrics are {known}")
    rows["value"] = pd.to_numeric(rows["value"], errors="coerce")
    return rows


def _unit(rows: pd.DataFrame) -> str | None:
    if "unit" not in rows.columns:
        return None
    units = rows["unit"].dropna().unique()
    return str(units[0]) if len(units) else None


def _is_log(rows: pd.DataFrame, metric: str, lognormal: Collection[str] | None) -> bool:
    return is_lognormal(metric, _unit(rows), lognormal)


def _label(metric: str, rows: pd.DataFrame) -> str:
    unit = _unit(rows)
    return f"{metric} [{unit}]" if unit and unit != "1" else metric


def _finite(rows: pd.DataFrame, log: bool) -> pd.DataFrame:
    v = rows["value"]
    keep = np.isfinite(v) & ((v > 0) if log else True)
    return rows[keep]


def _with_xy(rows: pd.DataFrame, what: str, die_pitch_mm: tuple[float, float],
             full: pd.DataFrame | None = None) -> pd.DataFrame:
    """Rows with ``x_mm`` / ``y_mm``: from x_um/y_um, else from the die grid (see docstring)."""
    out = rows.copy()
    if "x_um" in rows.columns and "y_um" in rows.columns:
        out["x_mm"] = pd.to_numeric(rows["x_um"], errors="coerce") / 1000.0
        out["y_mm"] = pd.to_numeric(rows["y_um"], errors="coerce") / 1000.0
        return out
    if not all(c in rows.columns for c in _DIE):
        raise ParameterError(f"{what}: table needs x_um and y_um, or die_col and die_row, for "
                             f"positions; it has {', '.join(map(str, rows.columns))}")
    ref = full if full is not None else rows
    col = pd.to_numeric(ref["die_col"], errors="coerce")
    row = pd.to_numeric(ref["die_row"], errors="coerce")
    c0, r0 = (col.min() + col.max()) / 2, (row.min() + row.max()) / 2
    out["x_mm"] = (pd.to_numeric(rows["die_col"], errors="coerce") - c0) * die_pitch_mm[0]
    out["y_mm"] = (pd.to_numeric(rows["die_row"], errors="coerce") - r0) * die_pitch_mm[1]
    return out


def _die_keys(table: pd.DataFrame) -> list[str]:
    wafer = _alias(table, "wafer", "wafer_id")
    return ([wafer] if wafer else []) + list(_DIE)


def _device_keys(table: pd.DataFrame) -> list[str]:
    sub = _alias(table, "subsite", "subsite_label", "subsite_id")
    return _die_keys(table) + ([sub] if sub else [])


def _dies(rows: pd.DataFrame, what: str, die_pitch_mm: tuple[float, float],
          full: pd.DataFrame) -> pd.DataFrame:
    """One row per die: keys, centre x_mm / y_mm, and the pitch-sized square's size."""
    if not all(c in rows.columns for c in _DIE):
        # No die grid: every distinct position is its own square.
        pos = _with_xy(rows, what, die_pitch_mm)
        pos["die_col"], pos["die_row"] = pos["x_mm"], pos["y_mm"]
        rows = pos
    else:
        rows = _with_xy(rows, what, die_pitch_mm, full)
    return rows


def _outline(ax: Any, radius_mm: float, flat_length_mm: float) -> None:
    """Draw the wafer edge: a circle, cut by a flat chord at the bottom if ``flat_length_mm``."""
    from matplotlib.patches import Polygon

    if radius_mm <= 0:
        raise ParameterError(f"radius_mm must be > 0, got {radius_mm}")
    if not 0 <= flat_length_mm < 2 * radius_mm:
        raise ParameterError(f"flat_length_mm must be in [0, {2 * radius_mm:g}), got "
                             f"{flat_length_mm}")
    if flat_length_mm > 0:
        yf = -math.sqrt(radius_mm ** 2 - (flat_length_mm / 2) ** 2)
        a0 = math.atan2(yf, flat_length_mm / 2)
        theta = np.linspace(a0, math.pi - a0, 361)
    else:
        theta = np.linspace(0, 2 * math.pi, 361)
    pts = np.column_stack([radius_mm * np.cos(theta), radius_mm * np.sin(theta)])
    ax.add_patch(Polygon(pts, closed=True, fill=False, edgecolor="black", lw=1.2,
                         gid="wafer_outline"))
    lim = radius_mm * 1.08
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xlabel("x [mm]")
    ax.set_ylabel("y [mm]")


def _squares(centres: np.ndarray, size: tuple[float, float]) -> list[Any]:
    from matplotlib.patches import Rectangle

    w, h = size
    return [Rectangle((x - w / 2, y - h / 2), w, h) for x, y in centres]


def _save(fig: Figure, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(out, dpi=110)
    finally:
        _plt().close(fig)
    return out


# ------------------------------------------------------------------------------------ wafer map
def wafer_map_figure(table: pd.DataFrame, metric: str, *, radius_mm: float = 50.0,
                     flat_length_mm: float = 32.5, die_pitch_mm: tuple[float, float] = (10, 10),
                     lognormal: Collection[str] | None = None, cmap: str = "viridis") -> Figure:
    """Per-die median of ``metric`` as coloured die squares inside the wafer outline.

    The coloured squares are one ``PatchCollection`` (gid ``dies``) whose array holds the die
    medians in die order; dies with no finite value are grey, hatched (gid ``no_data``). Log colour
    norm for log-normal metrics.
    """
    from matplotlib.collections import PatchCollection
    from matplotlib.colors import LogNorm, Normalize

    what = f"wafer_map({metric!r})"
    rows = _rows(table, metric, what)
    log = _is_log(rows, metric, lognormal)
    rows = _dies(rows, what, die_pitch_mm, table)
    good = _finite(rows, log)
    keys = ["die_col", "die_row"]
    pos = rows.groupby(keys)[["x_mm", "y_mm"]].mean()
    med = good.groupby(keys)["value"].median().reindex(pos.index)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    have = med.notna().to_numpy()
    centres = pos.to_numpy(float)
    if have.any():
        vals = med.to_numpy(float)[have]
        lo, hi = float(vals.min()), float(vals.max())
        if hi == lo:
            lo, hi = (lo / 1.01, hi * 1.01) if log else (lo - 0.5, hi + 0.5)
        norm = LogNorm(lo, hi) if log else Normalize(lo, hi)
        coll = PatchCollection(_squares(centres[have], die_pitch_mm), cmap=cmap, norm=norm,
                               edgecolor="white", linewidth=0.6, gid="dies")
        coll.set_array(vals)
        ax.add_collection(coll)
        fig.colorbar(coll, ax=ax, label=f"die median {_label(metric, rows)}", shrink=0.85)
    if (~have).any():
        ax.add_collection(PatchCollection(_squares(centres[~have], die_pitch_mm),
                                          facecolor="0.85", edgecolor="0.5", hatch="xx",
                                          linewidth=0.6, gid="no_data", label="no data"))
    _outline(ax, radius_mm, flat_length_mm)
    ax.set_title(f"{metric}: die median ({have.sum()} dies"
                 f"{f', {(~have).sum()} without data' if (~have).any() else ''})")
    return fig


def wafer_map(table: pd.DataFrame, metric: str, path: str | Path, **kw: Any) -> Path:
    """Write the ``wafer_map_figure`` PNG to ``path``; returns the path."""
    return _save(wafer_map_figure(table, metric, **kw), path)


# ------------------------------------------------------------------------------ yield / bin map
def _die_category(cats: pd.Series) -> str:
    """A die's bin: ``pass`` if every tested device passed, else its most common failure."""
    tested = cats[cats != "skipped"]
    if tested.empty:
        return "skipped"
    fails = tested[tested != "pass"]
    if fails.empty:
        return "pass"
    counts = fails.value_counts()
    top = counts[counts == counts.max()].index
    return next(c for c in FAILURE_CATEGORIES if c in top)


def yield_map_figure(table: pd.DataFrame, *, reason: str = "reason", radius_mm: float = 50.0,
                     flat_length_mm: float = 32.5,
                     die_pitch_mm: tuple[float, float] = (10, 10)) -> Figure:
    """Bin map: each die coloured by category (``classify_failure`` of its devices' ``reason``).

    One row per device is taken (the first of each device's rows), so the tidy metric table or a
    journal-style device table both work. A die is ``pass`` when all its tested devices pass,
    otherwise its most common failure; its yield (pass / tested) is written in the square. One
    ``PatchCollection`` per category present (gid = category), in ``FAILURE_CATEGORIES`` order.
    """
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Patch

    _need(table, (reason, *_DIE), "yield_map")
    dev = table.drop_duplicates(_device_keys(table)).copy()
    dev["category"] = dev[reason].map(classify_failure)
    dev = _with_xy(dev, "yield_map", die_pitch_mm, table)
    keys = list(_DIE)
    per = dev.groupby(keys).agg(x_mm=("x_mm", "mean"), y_mm=("y_mm", "mean"),
                                category=("category", _die_category),
                                n_pass=("category", lambda c: int((c == "pass").sum())),
                                n_tested=("category", lambda c: int((c != "skipped").sum())))
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    handles = []
    for cat in FAILURE_CATEGORIES:
        sel = per[per["category"] == cat]
        if sel.empty:
            continue
        ax.add_collection(PatchCollection(
            _squares(sel[["x_mm", "y_mm"]].to_numpy(float), die_pitch_mm),
            facecolor=CATEGORY_COLORS[cat], edgecolor="0.3", linewidth=0.6, gid=cat))
        handles.append(Patch(facecolor=CATEGORY_COLORS[cat], edgecolor="0.3",
                             label=f"{cat} ({len(sel)})"))
    for _, r in per.iterrows():
        if r["n_tested"]:
            ax.text(r["x_mm"], r["y_mm"], f"{r['n_pass']}/{r['n_tested']}", ha="center",
                    va="center", fontsize=6)
    _outline(ax, radius_mm, flat_length_mm)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
              title="die bin")
    tested = int(per["n_tested"].sum())
    y = per["n_pass"].sum() / tested if tested else float("nan")
    ax.set_title(f"Bin map: device yield {y:.1%} ({int(per['n_pass'].sum())}/{tested})")
    fig.tight_layout()
    return fig


def yield_map(table: pd.DataFrame, path: str | Path, **kw: Any) -> Path:
    """Write the ``yield_map_figure`` PNG to ``path``; returns the path."""
    return _save(yield_map_figure(table, **kw), path)


# ----------------------------------------------------------------------------- probability plots
def probability_plot_figure(table: pd.DataFrame, metric: str) -> Figure:
    """Two panels: log-normal probability plot (probit axis) and Weibull plot of ``metric``.

    Left: ``scipy.stats.probplot`` of ln x; x axis = standard-normal quantile labelled with the
    cumulative probability (ticks at Φ⁻¹(p) for ``PROBIT_TICKS``), y axis x on a log scale; the
    fitted line's slope is σ of ln x. Right: ln(−ln(1−F)) vs ln x with median ranks; the fitted
    line's slope is the Weibull shape β. Needs positive values (at least 3).
    """
    what = f"probability_plot({metric!r})"
    rows = _rows(table, metric, what)
    x = np.sort(_finite(rows, True)["value"].to_numpy(float))
    if len(x) < 3:
        raise ParameterError(f"{what}: {len(x)} positive finite value(s), needs at least 3")
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.4))
    (osm, osr), (slope, icpt, r) = stats.probplot(np.log(x), dist="norm")
    ax1.plot(osm, np.exp(osr), "o", ms=3, gid="data")
    ax1.plot(osm, np.exp(icpt + slope * osm), "-", color="C3", gid="fit",
             label=f"σ(ln x) = {slope:.3g}, median = {math.exp(icpt):.3g}, R² = {r * r:.3f}")
    ax1.set_yscale("log")
    ax1.set_xticks(stats.norm.ppf(PROBIT_TICKS))
    ax1.set_xticklabels([f"{100 * p:g}" for p in PROBIT_TICKS])
    ax1.set_xlabel("cumulative probability [%] (probit scale)")
    ax1.set_ylabel(_label(metric, rows))
    ax1.set_title("log-normal probability plot")
    ax1.grid(True, which="both", alpha=0.3)
    ax1.legend(fontsize=8, loc="upper left")

    n = len(x)
    f = (np.arange(1, n + 1) - 0.3) / (n + 0.4)
    lx, wy = np.log(x), np.log(-np.log1p(-f))
    beta, c = np.polyfit(lx, wy, 1)
    rw = np.corrcoef(lx, wy)[0, 1]
    ax2.plot(lx, wy, "o", ms=3, gid="data")
    ax2.plot(lx, c + beta * lx, "-", color="C3", gid="fit",
             label=f"β = {beta:.3g}, η = {math.exp(-c / beta):.3g}, R² = {rw * rw:.3f}")
    ax2.set_xlabel(f"ln {_label(metric, rows)}")
    ax2.set_ylabel("ln(−ln(1−F))")
    ax2.set_title("Weibull plot (median ranks)")
    ax2.grid(True, alpha=0.3)
    ax2.legend(fontsize=8, loc="upper left")
    fig.suptitle(f"{metric}: n = {n}")
    fig.tight_layout()
    return fig


def probability_plot(table: pd.DataFrame, metric: str, path: str | Path) -> Path:
    """Write the ``probability_plot_figure`` PNG to ``path``; returns the path."""
    return _save(probability_plot_figure(table, metric), path)


# ------------------------------------------------------------------------------------ box plots
def box_plots_figure(table: pd.DataFrame, metric: str, *, n_radius_bins: int = 5,
                     radius_mm: float = 50.0, die_pitch_mm: tuple[float, float] = (10, 10),
                     lognormal: Collection[str] | None = None) -> Figure:
    """Box plots of ``metric`` by die (ordered row, then column) and by radius bin.

    Radius bins are ``n_radius_bins`` equal-width rings from 0 to ``radius_mm``; empty rings are
    left out. Log value axis for log-normal metrics.
    """
    what = f"box_plots({metric!r})"
    if n_radius_bins < 1:
        raise ParameterError(f"{what}: n_radius_bins must be >= 1, got {n_radius_bins}")
    rows = _rows(table, metric, what)
    log = _is_log(rows, metric, lognormal)
    rows = _with_xy(_finite(rows, log), what, die_pitch_mm, table)
    if rows.empty:
        raise ParameterError(f"{what}: no finite{' positive' if log else ''} values")
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(max(8.0, 0.28 * rows.groupby(
        [c for c in _DIE if c in rows.columns] or ["x_mm"]).ngroups + 2), 7.5))
    if all(c in rows.columns for c in _DIE):
        groups = sorted(rows.groupby(["die_row", "die_col"])["value"], key=lambda g: g[0])
        labels = [f"{int(c)},{int(r)}" for (r, c), _ in groups]
        bp = ax1.boxplot([g.to_numpy(float) for _, g in groups], tick_labels=labels)
        for ln in bp["medians"]:
            ln.set_gid("median")
        ax1.set_xlabel("die (col,row)")
        ax1.tick_params(axis="x", labelrotation=90, labelsize=6)
    ax1.set_title(f"{metric} by die")
    r = np.hypot(rows["x_mm"], rows["y_mm"]).to_numpy(float)
    edges = np.linspace(0.0, radius_mm, n_radius_bins + 1)
    idx = np.clip(np.digitize(r, edges) - 1, 0, n_radius_bins - 1)
    data, labels = [], []
    for i in range(n_radius_bins):
        sel = rows["value"].to_numpy(float)[idx == i]
        if sel.size:
            data.append(sel)
            labels.append(f"{edges[i]:.0f}–{edges[i + 1]:.0f}")
    bp = ax2.boxplot(data, tick_labels=labels)
    for ln in bp["medians"]:
        ln.set_gid("median")
    ax2.set_xlabel("radius [mm]")
    ax2.set_title(f"{metric} by radius")
    for ax in (ax1, ax2):
        ax.set_ylabel(_label(metric, rows))
        if log:
            ax.set_yscale("log")
        ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def box_plots(table: pd.DataFrame, metric: str, path: str | Path, **kw: Any) -> Path:
    """Write the ``box_plots_figure`` PNG to ``path``; returns the path."""
    return _save(box_plots_figure(table, metric, **kw), path)


# -------------------------------------------------------------------------------- radial trend
def _trend_rows(table: pd.DataFrame, metric: str, what: str, log: bool | None,
                lognormal: Collection[str] | None,
                die_pitch_mm: tuple[float, float]) -> tuple[pd.DataFrame, bool]:
    rows = _rows(table, metric, what)
    is_log = _is_log(rows, metric, lognormal) if log is None else log
    rows = _with_xy(_finite(rows, is_log), what, die_pitch_mm, table)
    rows["x_um"], rows["y_um"] = rows["x_mm"] * 1000.0, rows["y_mm"] * 1000.0
    rows["z"] = np.log(rows["value"]) if is_log else rows["value"]
    return rows, is_log


def radial_trend_figure(table: pd.DataFrame, metric: str, trend: TrendFit | None = None, *,
                        radius_mm: float = 50.0, die_pitch_mm: tuple[float, float] = (10, 10),
                        lognormal: Collection[str] | None = None) -> Figure:
    """Values of ``metric`` vs radius with the radial ``fit_trend`` curve a + b r².

    Log-normal metrics are fitted in ln space (curve exp(a + b r²), log value axis). Pass a
    ``trend`` already fitted with ``model='radial'`` (on ln values for log-normal metrics) to draw
    it instead of refitting. The curve is the line with gid ``trend``.
    """
    what = f"radial_trend_plot({metric!r})"
    rows, log = _trend_rows(table, metric, what, None, lognormal, die_pitch_mm)
    if trend is None:
        trend = fit_trend(rows, "radial", value="z")
    elif trend.model != "radial":
        raise ParameterError(f"{what}: trend model is {trend.model!r}; needs 'radial'")
    r_mm = np.hypot(rows["x_mm"], rows["y_mm"]).to_numpy(float)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ax.plot(r_mm, rows["value"], "o", ms=3, alpha=0.6, gid="data")
    rr = np.linspace(0.0, max(radius_mm, float(r_mm.max())), 200)
    z = trend.params["a"] + trend.params["b"] * (rr * 1000.0) ** 2
    ax.plot(rr, np.exp(z) if log else z, "-", color="C3", lw=2, gid="trend",
            label=(f"{'ln ' if log else ''}v = {trend.params['a']:.4g} + "
                   f"{trend.params['b'] * 1e6:.4g}·r²[mm²], R² = {trend.r2:.3f}"))
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("radius r [mm]")
    ax.set_ylabel(_label(metric, rows))
    ax.set_title(f"{metric}: radial trend")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def radial_trend_plot(table: pd.DataFrame, metric: str, path: str | Path, **kw: Any) -> Path:
    """Write the ``radial_trend_figure`` PNG to ``path``; returns the path."""
    return _save(radial_trend_figure(table, metric, **kw), path)


# ------------------------------------------------------------------------------ semivariogram
def variogram_figure(table: pd.DataFrame, metric: str, vg: pd.DataFrame | None = None,
                     fit: VariogramFit | None = None, *, n_bins: int = 15,
                     die_pitch_mm: tuple[float, float] = (10, 10),
                     lognormal: Collection[str] | None = None) -> Figure:
    """Empirical semivariogram of the radial-trend residuals of ``metric`` and its fitted model.

    Without ``vg`` / ``fit`` the residuals of a radial ``fit_trend`` (ln space for log-normal
    metrics) go through ``semivariogram`` and ``fit_variogram``. Points are sized by pair count;
    the exponential model is the line with gid ``model``.
    """
    what = f"variogram_plot({metric!r})"
    if vg is None:
        rows, _ = _trend_rows(table, metric, what, None, lognormal, die_pitch_mm)
        rows["residual"] = fit_trend(rows, "radial", value="z").residuals
        vg = semivariogram(rows, "residual", n_bins=n_bins)
    else:
        _need(vg, ("distance_um", "gamma", "n_pairs"), what)
    if fit is None:
        fit = fit_variogram(vg)
    h_mm = vg["distance_um"].to_numpy(float) / 1000.0
    n = vg["n_pairs"].to_numpy(float)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ax.scatter(h_mm, vg["gamma"], s=10 + 60 * n / n.max(), color="C0", gid="data",
               label="empirical γ(h) (size ∝ pairs)")
    hh = np.linspace(0.0, float(h_mm.max()) * 1.05, 200)
    ax.plot(hh, fit.gamma(hh * 1000.0), "-", color="C3", gid="model",
            label=(f"exponential: nugget {fit.nugget:.3g}, partial sill {fit.partial_sill:.3g}, "
                   f"l = {fit.length_um / 1000:.3g} mm"))
    ax.axhline(fit.nugget + fit.partial_sill, color="0.5", ls=":", lw=1)
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("lag distance h [mm]")
    ax.set_ylabel("semivariance γ(h)")
    ax.set_title(f"{metric}: semivariogram of trend residuals")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def variogram_plot(table: pd.DataFrame, metric: str, path: str | Path, **kw: Any) -> Path:
    """Write the ``variogram_figure`` PNG to ``path``; returns the path."""
    return _save(variogram_figure(table, metric, **kw), path)

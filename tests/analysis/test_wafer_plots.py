"""Wafer figures on a synthetic tidy table with known answers.

The table: dies on a 10 mm grid inside r <= 40 mm, 4 devices per die; ``r_hrs`` (Ohm, log-normal)
with ln r = ln 1e4 + 0.4 (r/R)^2 + N(0, 0.05); ``i_read`` (A) pure log-normal sigma 0.3;
``v_set`` (V) Weibull with shape 4; three dies failed (NaN values, reasons short/open/stuck) and
one device skipped. Figures are inspected through the ``*_figure`` functions, files through the
PNG writers.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import LogNorm
from scipy import stats

from analysis import wafer_plots as wp
from dendrolab.errors import ParameterError

R_MM = 50.0
A_R = 0.4
SIGMA_I = 0.3
BETA = 4.0
FAILED = {(0, 3): "contact: short", (-2, -1): "contact: open", (3, 1): "stuck in LRS"}
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    rng = np.random.default_rng(12)
    rows = []
    for col in range(-4, 5):
        for row in range(-4, 5):
            if math.hypot(col * 10, row * 10) > 40:
                continue
            reason_die = FAILED.get((col, row), "")
            for k, (dx, dy) in enumerate([(-2, -2), (2, -2), (-2, 2), (2, 2)]):
                x, y = col * 10.0 + dx, row * 10.0 + dy
                reason = reason_die
                if (col, row) == (1, 1) and k == 0:
                    reason = "operator skipped"
                bad = bool(reason)
                r2 = (x * x + y * y) / R_MM ** 2
                vals = {
                    "r_hrs": (math.exp(math.log(1e4) + A_R * r2 + rng.normal(0, 0.05)), "Ohm"),
                    "i_read": (math.exp(math.log(1e-6) + rng.normal(0, SIGMA_I)), "A"),
                    "v_set": (1.2 * rng.weibull(BETA), "V"),
                }
                for metric, (v, unit) in vals.items():
                    rows.append({"wafer_id": "W1", "die_col": col, "die_row": row,
                                 "subsite_label": f"D{k}", "x_um": x * 1000, "y_um": y * 1000,
                                 "metric": metric, "value": math.nan if bad else v,
                                 "unit": unit, "quality": "failed" if bad else "ok",
                                 "reason": reason})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def n_dies(table: pd.DataFrame) -> int:
    return table.groupby(["die_col", "die_row"]).ngroups


def _coll(ax, gid):
    hits = [c for c in ax.collections if c.get_gid() == gid]
    assert len(hits) == 1, f"expected one collection {gid!r}, got {len(hits)}"
    return hits[0]


def _line(ax, gid):
    return next(ln for ln in ax.lines if ln.get_gid() == gid)


def _close(fig):
    import matplotlib.pyplot as plt

    plt.close(fig)


# ----------------------------------------------------------------------------------- wafer map
def test_wafer_map_one_square_per_die_log_norm_and_medians(table, n_dies):
    fig = wp.wafer_map_figure(table, "r_hrs")
    ax = fig.axes[0]
    dies = _coll(ax, "dies")
    assert len(dies.get_paths()) == n_dies - len(FAILED)
    assert len(_coll(ax, "no_data").get_paths()) == len(FAILED)
    assert isinstance(dies.norm, LogNorm)
    good = table[(table.metric == "r_hrs") & table.value.notna()]
    med = good.groupby(["die_col", "die_row"])["value"].median()
    np.testing.assert_allclose(np.sort(dies.get_array()), np.sort(med.to_numpy()))
    # Colours are the colormap of the norm of the value, so ordered by value.
    dies.update_scalarmappable()
    np.testing.assert_allclose(dies.get_facecolors(), dies.cmap(dies.norm(dies.get_array())))
    # Each square sits at its die's centre: the die with the largest median is at the edge.
    arr = np.asarray(dies.get_array())
    centres = np.array([p.vertices[:4].mean(axis=0) for p in dies.get_paths()])
    r = np.hypot(*centres.T)
    assert r[np.argmax(arr)] > r[np.argmin(arr)]
    # Outline: 100 mm circle with the SEMI flat at the bottom.
    outline = next(p for p in ax.patches if p.get_gid() == "wafer_outline")
    xy = outline.get_xy()
    assert np.hypot(*xy.T).max() == pytest.approx(R_MM)
    assert xy[:, 1].min() == pytest.approx(-math.sqrt(R_MM ** 2 - 16.25 ** 2))
    _close(fig)


def test_wafer_map_linear_metric_uses_linear_norm(table):
    fig = wp.wafer_map_figure(table, "v_set", flat_length_mm=0)
    dies = _coll(fig.axes[0], "dies")
    assert not isinstance(dies.norm, LogNorm)
    xy = next(p for p in fig.axes[0].patches if p.get_gid() == "wafer_outline").get_xy()
    assert xy[:, 1].min() == pytest.approx(-R_MM, rel=1e-3)  # no flat
    _close(fig)


def test_wafer_map_from_die_grid_without_xy(table, n_dies):
    fig = wp.wafer_map_figure(table.drop(columns=["x_um", "y_um"]), "r_hrs")
    dies = _coll(fig.axes[0], "dies")
    centres = np.array([p.vertices[:4].mean(axis=0) for p in dies.get_paths()])
    # Grid -4..4 centred at 0 with 10 mm pitch: centres on multiples of 10 mm.
    np.testing.assert_allclose(centres / 10, np.round(centres / 10), atol=1e-9)
    assert len(centres) == n_dies - len(FAILED)
    _close(fig)


# ------------------------------------------------------------------------------------ bin map
def test_yield_map_categories_and_legend(table, n_dies):
    fig = wp.yield_map_figure(table)
    ax = fig.axes[0]
    counts = {c.get_gid(): len(c.get_paths()) for c in ax.collections}
    assert counts == {"pass": n_dies - 3, "open": 1, "short": 1, "stuck": 1}
    colours = {c.get_gid(): tuple(c.get_facecolor()[0]) for c in ax.collections}
    assert len(set(colours.values())) == 4
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [f"pass ({n_dies - 3})", "open (1)", "short (1)", "stuck (1)"]
    # Device yield: 4 per die, 3 dead dies, 1 skipped device.
    tested = 4 * n_dies - 1
    assert f"({tested - 12}/{tested})" in ax.get_title()
    assert "3/3" in [t.get_text() for t in ax.texts]  # die (1, 1): one device skipped
    _close(fig)


# -------------------------------------------------------------------------------- probability
def test_probability_plot_probit_axis_and_fits(table):
    fig = wp.probability_plot_figure(table, "i_read")
    ax1 = fig.axes[0]
    np.testing.assert_allclose(ax1.get_xticks(), stats.norm.ppf(wp.PROBIT_TICKS))
    assert [t.get_text() for t in ax1.get_xticklabels()][4] == "50"
    assert ax1.get_yscale() == "log"
    x, y = _line(ax1, "fit").get_data()
    sigma = np.diff(np.log(y))[0] / np.diff(x)[0]
    assert sigma == pytest.approx(SIGMA_I, rel=0.12)
    _close(fig)
    fig = wp.probability_plot_figure(table, "v_set")
    x, y = _line(fig.axes[1], "fit").get_data()
    beta = (y[-1] - y[0]) / (x[-1] - x[0])
    assert beta == pytest.approx(BETA, rel=0.2)
    # Data on the Weibull axis: median ranks F = (i - 0.3)/(n + 0.4).
    _, wy = _line(fig.axes[1], "data").get_data()
    n = len(wy)
    assert wy[0] == pytest.approx(math.log(-math.log(1 - 0.7 / (n + 0.4))))
    _close(fig)


# ---------------------------------------------------------------------------------- box plots
def test_box_plots_by_die_and_radius(table, n_dies):
    fig = wp.box_plots_figure(table, "r_hrs", n_radius_bins=5)
    ax1, ax2 = fig.axes
    assert len(ax1.get_xticklabels()) == n_dies - len(FAILED)
    labels = [t.get_text() for t in ax2.get_xticklabels()]
    assert labels[0] == "0–10" and len(labels) <= 5
    assert ax1.get_yscale() == ax2.get_yscale() == "log"
    # Median lines per radius bin rise with radius (positive radial trend).
    meds = [ln.get_ydata()[0] for ln in ax2.lines if ln.get_gid() == "median"]
    assert len(meds) == len(labels) >= 4
    assert np.all(np.diff(meds) > 0)
    assert len([ln for ln in ax1.lines if ln.get_gid() == "median"]) == len(ax1.get_xticks())
    _close(fig)


# ------------------------------------------------------------------------------- radial trend
def test_radial_trend_recovers_known_curvature(table):
    fig = wp.radial_trend_figure(table, "r_hrs")
    ax = fig.axes[0]
    r, y = _line(ax, "trend").get_data()
    i_edge = np.argmin(abs(r - R_MM))
    assert math.log(y[i_edge] / y[0]) == pytest.approx(A_R, abs=0.05)
    assert y[0] == pytest.approx(1e4, rel=0.03)
    assert ax.get_yscale() == "log"
    _close(fig)


def test_radial_trend_rejects_paraboloid(table):
    from analysis.variation import fit_trend

    rows = table[(table.metric == "v_set") & table.value.notna()]
    tf = fit_trend(rows, "paraboloid")
    with pytest.raises(ParameterError, match="radial"):
        wp.radial_trend_figure(table, "v_set", trend=tf)


# ------------------------------------------------------------------------------ semivariogram
def test_variogram_uses_given_fit(table):
    from analysis.variation import VariogramFit

    vg = pd.DataFrame({"distance_um": [5e3, 1e4, 2e4, 3e4], "gamma": [1.0, 1.5, 1.9, 2.0],
                       "n_pairs": [10, 20, 30, 40]})
    fit = VariogramFit(nugget=0.5, partial_sill=1.5, length_um=1e4)
    fig = wp.variogram_figure(table, "r_hrs", vg=vg, fit=fit)
    ax = fig.axes[0]
    h, g = _line(ax, "model").get_data()
    np.testing.assert_allclose(g, 0.5 + 1.5 * (1 - np.exp(-h / 10.0)))
    pts = next(c for c in ax.collections if c.get_gid() == "data")
    np.testing.assert_allclose(pts.get_offsets(), np.column_stack([[5, 10, 20, 30], vg.gamma]))
    _close(fig)


def test_variogram_computed_from_table(table):
    fig = wp.variogram_figure(table, "r_hrs")
    _, g = _line(fig.axes[0], "model").get_data()
    # Residual noise is sigma 0.05 in ln: the sill is about 0.05^2.
    assert 0.3 * 0.05 ** 2 < g[-1] < 3 * 0.05 ** 2
    _close(fig)


# ------------------------------------------------------------------------------------ files
@pytest.mark.parametrize("name,call", [
    ("map", lambda t, p: wp.wafer_map(t, "r_hrs", p)),
    ("bins", lambda t, p: wp.yield_map(t, p)),
    ("prob", lambda t, p: wp.probability_plot(t, "r_hrs", p)),
    ("box", lambda t, p: wp.box_plots(t, "r_hrs", p)),
    ("radial", lambda t, p: wp.radial_trend_plot(t, "r_hrs", p)),
    ("vario", lambda t, p: wp.variogram_plot(t, "r_hrs", p)),
])
def test_png_written(table, tmp_path, name, call):
    out = call(table, tmp_path / "sub" / f"{name}.png")
    assert out == tmp_path / "sub" / f"{name}.png"
    data = out.read_bytes()
    assert data[:8] == PNG
    assert len(data) > 10_000


# ----------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("call,match", [
    (lambda t: wp.wafer_map_figure(t, "nope"), "no rows for metric 'nope'"),
    (lambda t: wp.wafer_map_figure(t.drop(columns=["value"]), "r_hrs"), "lacks column.*value"),
    (lambda t: wp.wafer_map_figure(t.drop(columns=["x_um", "die_col"]), "r_hrs"), "positions"),
    (lambda t: wp.yield_map_figure(t.drop(columns=["reason"])), "lacks column.*reason"),
    (lambda t: wp.probability_plot_figure(t.assign(value=-1.0), "r_hrs"), "needs at least 3"),
    (lambda t: wp.box_plots_figure(t, "r_hrs", n_radius_bins=0), "n_radius_bins"),
    (lambda t: wp.wafer_map_figure(t, "r_hrs", flat_length_mm=200), "flat_length_mm"),
    (lambda t: wp.wafer_map_figure([1, 2], "r_hrs"), "needs a pandas DataFrame"),
    (lambda t: wp.variogram_figure(t, "r_hrs", vg=pd.DataFrame({"x": [1]})), "lacks column"),
])
def test_clear_errors(table, call, match):
    with pytest.raises(ParameterError, match=match) as err:
        call(table)
    assert "\n" not in str(err.value)

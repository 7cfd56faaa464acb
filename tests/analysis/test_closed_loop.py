"""Closed loop: configure a simulated wafer, measure it, analyse it, recover what was configured.

Why: the analysis functions are each tested on synthetic tables, but only a loop through the
simulator shows that the whole chain (wafer engine -> run files -> catalogue -> metric extraction
-> variation statistics -> journal yield) returns the wafer that was put in. The wafer is set up
with a known radial trend ``a_r``, device-to-device spread (correlated field ``sigma_field`` with
correlation length ``corr_length_mm`` plus die offsets ``sigma_die``) and defect density ``D0``;
``noise: false`` removes the devices' own local mismatch and read noise, so the read conductance
of a device is exactly the nominal G_off times the simulator's ``Wafer.scale_for`` at its site.

Confidence intervals: one wafer is one realisation of the random field, so a recovered figure
scatters around the configured one by far more than the measurement error. The interval of each
figure is taken from the simulator itself: the same analysis applied to ``scale_for`` of the same
sites on ``N_ENSEMBLE`` wafers drawn with other seeds (a parametric bootstrap of the estimator
under the configured parameters). The measured figure must lie in its central 99 % interval, and
the configured value must too (else the estimator is biased). Separately, the figure must equal
the same analysis applied to the simulator's own per-site truth of this wafer (the pipeline adds
no error), and the ensemble median must be the configured value within a stated bias bound.
Defects: each shorted / open site must be a failure of that category, the rest pass, and the
short+open count must agree with D0 within a Clopper-Pearson 99 % interval. Stuck devices pass
the contact check and are measured (the journal cannot see them; a stuck-OFF dendrite reads like
a good one at 0.3 V), so they count as passes here.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import pyvisa
from scipy import stats

from analysis import catalogue, metrics, variation
from protocols.wafer import journal_devices, run_wafer
from sim_backend.physics.presets import load_models
from sim_backend.physics.wafer import DEFECT_OPEN, DEFECT_SHORTED, Wafer
from tests.wafer_bench import write_wafer_bench

WAFER_ID = "WCL"
SITES = "D00,D03,D30,D33"       # four corner subsites per die: 52 dies x 4 = 208 devices
SEED, STATION_ID = 5, 1
A_R = 0.2                       # radial thickness term (ln units of t at r = R)
SIGMA_FIELD = 0.03              # sigma of the correlated thickness field Z
CORR_MM = 8.0                   # its correlation length, cov exp(-d / l)
SIGMA_DIE = 0.01                # die-to-die offset sigma
D0 = 4.0                        # defects per cm^2
N_ENSEMBLE = 200
LEVEL = 0.99                    # confidence level of every interval below
PARAMS = {"a_r": A_R, "sigma_field": SIGMA_FIELD, "corr_length_mm": CORR_MM,
          "sigma_die": SIGMA_DIE, "sigma_wafer": 0.0, "defect_density_per_cm2": D0}



def _estimate(table: pd.DataFrame, value: str, gain: float, radius_um: float
              ) -> dict[str, float]:
    """The configured figures as analysis recovers them from ln G over x_um, y_um."""
    trend = variation.fit_trend(table, model="radial", value=value)
    resid = table.assign(residual=trend.residuals)
    vg = variation.fit_variogram(variation.semivariogram(resid))
    # ln G = -gain (t/t0 - 1) ~ -gain u_t, so a_r = -b R^2 / gain and sigma_u = sigma_lnG / gain
    return {"a_r": -trend.params["b"] * radius_um ** 2 / gain,
            "sigma": float(np.std(trend.residuals, ddof=2)) / gain,
            "corr_mm": vg.length_um / 1000.0}


def _interval(x: np.ndarray) -> tuple[float, float]:
    half = (1 - LEVEL) / 2
    return float(np.quantile(x, half)), float(np.quantile(x, 1 - half))


@pytest.fixture(scope="module")
def loop(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("closed_loop")
    write_wafer_bench(folder, PARAMS, seed=SEED)
    summary = run_wafer(["wafer-iv"], folder / "bench.yaml", WAFER_ID, folder / "out",
                        sites=SITES)
    wafer = pyvisa.ResourceManager(
        f"{(folder / 'sim.yaml').resolve()}@dendrosim").visalib.bench.station("sentio").wafer

    cat = catalogue.catalogue(folder / "out")
    tidy = metrics.extract(list(cat.runs["path"]))
    g = tidy[tidy["metric"] == "g_linear"][["uuid", "metric", "value", "unit", "quality"]]
    g = g.merge(cat.runs[["uuid", "wafer", "die_col", "die_row", "subsite_label", "x_um",
                          "y_um"]], on="uuid", validate="one_to_one")
    g = g.rename(columns={"subsite_label": "subsite"}).reset_index(drop=True)
    rows = []
    for col, row, label in zip(g["die_col"], g["die_row"], g["subsite"], strict=True):
        die = wafer.dies["die"][(wafer.dies["col"] == col) & (wafer.dies["row"] == row)]
        rows.append(wafer.site_index(int(die[0]), str(label)))
    sites = wafer.sites[rows]
    gain = wafer.params.gain_g_off_t
    g["ln_g"] = np.log(g["value"].to_numpy(float) / load_models().dendrite.g_off_s)
    g["truth"] = np.log(wafer.scale_for("dendrite", sites)["g_off_s"])
    radius_um = wafer.radius_mm * 1000.0

    ensemble = []
    for seed in range(1000, 1000 + N_ENSEMBLE):
        other = Wafer(wafer.params, seed=seed, wafer_id=STATION_ID)
        table = g[["x_um", "y_um"]].assign(
            truth=np.log(other.scale_for("dendrite", sites)["g_off_s"]))
        ensemble.append(_estimate(table, "truth", gain, radius_um))

    return {"summary": summary, "wafer": wafer, "cat": cat, "g": g, "sites": sites,
            "gain": gain, "radius_um": radius_um,
            "measured": _estimate(g, "ln_g", gain, radius_um),
            "truth": _estimate(g, "truth", gain, radius_um),
            "ensemble": pd.DataFrame(ensemble),
            "journal": pd.DataFrame(list(journal_devices(folder / "out" / WAFER_ID)))}


def test_every_good_device_is_catalogued_at_its_site_with_the_simulators_conductance(loop) -> None:
    g, sites, summary = loop["g"], loop["sites"], loop["summary"]
    assert loop["cat"].problems.empty
    assert summary.total == 208 and len(g) == summary.done > 150
    assert (g["quality"] == "ok").all() and (g["wafer"] == WAFER_ID).all()
    np.testing.assert_allclose(g["x_um"], sites["x_mm"] * 1000, atol=1e-3)
    np.testing.assert_allclose(g["y_um"], sites["y_mm"] * 1000, atol=1e-3)
    # noise-free bench: the extracted read conductance is nominal x scale_for x one constant
    # (the chord conductance over the sinh I-V sweep, about 1 % above G_off), to 1e-3 in ln
    offset = g["ln_g"] - g["truth"]
    assert 0 < offset.median() < 0.05
    np.testing.assert_allclose(offset, offset.median(), atol=1e-3)


@pytest.mark.parametrize("figure, configured", [
    ("a_r", A_R),
    ("sigma", math.hypot(SIGMA_FIELD, SIGMA_DIE)),
    ("corr_mm", CORR_MM),
])
def test_configured_figure_is_recovered_within_its_confidence_interval(
        loop, figure: str, configured: float) -> None:
    measured, truth = loop["measured"][figure], loop["truth"][figure]
    lo, hi = _interval(loop["ensemble"][figure].to_numpy())
    # the pipeline adds nothing to the simulator's own per-site truth of this wafer
    assert measured == pytest.approx(truth, rel=0.01), (figure, measured, truth)
    # this wafer is a typical draw of the configured wafer ...
    assert lo <= measured <= hi, (figure, measured, (lo, hi))
    # ... and the estimator's interval covers the configured value (no bias beyond it)
    assert lo <= configured <= hi, (figure, configured, (lo, hi))


@pytest.mark.parametrize("figure, configured", [
    ("a_r", A_R),
    ("sigma", math.hypot(SIGMA_FIELD, SIGMA_DIE)),
    ("corr_mm", CORR_MM),
])
def test_estimator_median_over_wafers_is_the_configured_value(
        loop, figure: str, configured: float) -> None:
    """One wafer's 99 % interval of the correlation length is wide (a few percent of single
    wafers fit a runaway length, up to the bound), so it cannot tell 8 mm from 30 mm; the median
    over the ensemble can. Allowed bias 15 %: the known ones are about +5 % for a_r (ln G is
    -gain expm1(u), not -gain u), +2 % for sigma and -10 % for the length (removing the trend
    removes long-range variance, shortening the fitted range); the median's own sampling error
    from 200 wafers is 2-4 %."""
    median = float(loop["ensemble"][figure].median())
    assert median == pytest.approx(configured, rel=0.15), (figure, median, configured)


def test_radial_trend_is_detected(loop) -> None:
    """The 99 % interval of a_r excludes 0: the trend is measured, not noise."""
    lo, _ = _interval(loop["ensemble"]["a_r"].to_numpy())
    assert lo > 0 and loop["measured"]["a_r"] > 0


def test_sigma_ln_summary_matches_the_sites_spread(loop) -> None:
    """summarize's sigma of ln G (g_linear has unit S, so log-normal) over the wafer equals the
    spread of the simulator's per-site scale, and contains the trend plus gain x device sigma."""
    g = loop["g"]
    table = g[["wafer", "metric", "unit", "value"]]
    row = variation.summarize(table, level="wafer").iloc[0]
    assert row["space"] == "ln" and row["n"] == len(g)
    assert row["sigma_ln"] == pytest.approx(np.std(g["truth"], ddof=1), rel=1e-3)
    assert row["sigma_ln"] > loop["gain"] * loop["measured"]["sigma"]
    assert row["lognorm_sigma"] == pytest.approx(row["sigma_ln"], rel=0.02)


def test_defective_sites_fail_with_the_right_category(loop) -> None:
    wafer, journal = loop["wafer"], loop["journal"]
    rows = []
    for col, row, site in zip(journal["col"], journal["row"], journal["site"], strict=True):
        die = wafer.dies["die"][(wafer.dies["col"] == col) & (wafer.dies["row"] == row)]
        rows.append(wafer.site_index(int(die[0]), wafer.site_names[int(site)]))
    defects = wafer.defects(wafer.sites[rows])
    category = journal["reason"].map(variation.classify_failure).to_numpy()
    expected = np.where(defects == DEFECT_SHORTED, "short",
                        np.where(defects == DEFECT_OPEN, "open", "pass"))
    assert {DEFECT_SHORTED, DEFECT_OPEN} <= set(defects.tolist())     # the test can fail
    assert list(category) == list(expected)
    # wafer-level yield table counts the same
    devices = journal.assign(wafer=WAFER_ID, die_col=journal["col"], die_row=journal["row"])
    table = variation.yield_table(devices, level="wafer").iloc[0]
    n_fail = int(np.isin(defects, [DEFECT_SHORTED, DEFECT_OPEN]).sum())
    assert table["n_tested"] == len(journal) == 208
    assert (table["short"], table["open"]) == ((defects == DEFECT_SHORTED).sum(),
                                               (defects == DEFECT_OPEN).sum())
    assert table["yield"] == pytest.approx(1 - n_fail / len(journal))
    # the short+open count agrees with D0: Clopper-Pearson interval of the failure probability
    n_sites = wafer.params.sites_x * wafer.params.sites_y
    p_defect = -math.expm1(-D0 * wafer.die_area_cm2 / n_sites)
    frac = wafer.params.defect_frac_shorted + wafer.params.defect_frac_open
    total = frac + wafer.params.defect_frac_stuck
    ci = stats.binomtest(n_fail, len(journal)).proportion_ci(LEVEL, method="exact")
    assert ci.low <= p_defect * frac / total <= ci.high, (n_fail, ci, p_defect)


def test_scale_for_ground_truth_differs_between_seeds(loop) -> None:
    """Guard on the interval method: the ensemble really varies (else every interval is a point
    and the tests above would be vacuous or impossible)."""
    spread = loop["ensemble"].std()
    assert (spread > 0).all()
    assert Path(loop["cat"].runs["path"].iloc[0]).exists()

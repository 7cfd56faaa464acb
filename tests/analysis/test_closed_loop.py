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
a good one at 0.3 V), so they count as passes in that first loop.

Two more loops: the same wafer with the devices' own noise on (local mismatch, 10 % read noise,
cycle-to-cycle noise; two sweeps per device), whose figures must come back within intervals from
an ensemble with the same noise; and a wafer of many defects of every kind, no field and no trend,
measured with the I-V sweeps and dendrite-relaxation: open and short come from the contact check,
stuck from the metrics (``variation.classify_devices``: ON/OFF ~ 1), and the working devices'
nested variance (die, device, cycle) has known values.
"""

from __future__ import annotations

import json
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
from sim_backend.physics.wafer import DEFECT_OPEN, DEFECT_SHORTED, DEFECT_STUCK, Wafer
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


# ---------------------------------------------------------------------------------------------
# The same loop with the devices' own noise on: local mismatch, read and cycle-to-cycle noise

#: Two sweeps per device, so cycle-to-cycle noise is separable from the device level.
WAFER_IV_TWICE = """\
protocol: wafer-iv
description: "Wafer screening I-V sweep -0.3 V ... 0.3 V, 21 points, twice"
figure: generic
device: d1
instruments: {smu: smu}
limits: {voltage_max_v: 1.0, current_max_a: 1e-3, energy_max_j: 1e-4}
steps:
  - smu_setup: {role: smu, compliance_a: 100 uA, nplc: 0.1}
  - repeat: {times: 2, var: cycle}
    do:
      - sweep: {role: smu, kind: linear, start_v: -0.3, stop_v: 0.3, points: 21}
  - output_off: {role: smu}
"""
READ_NOISE = 0.1                # relative read noise of one current reading (model default 1 %)
SIGMA_LOCAL = 0.05              # the dendrite's own device mismatch of ln G_off (model: 0.15;
                                # smaller here so the semivariogram's nugget leaves the length
                                # measurable, see the median test below)
SWEEP_V = np.linspace(-0.3, 0.3, 21)
#: sigma of ln g_linear from relative read noise on each point of a (near) linear sweep:
#: g = sum v I / sum v^2, so d ln g = READ_NOISE sqrt(sum v^4) / sum v^2.
CYCLE_SIGMA = READ_NOISE * math.sqrt(np.sum(SWEEP_V ** 4)) / np.sum(SWEEP_V ** 2)
N_NOISY_ENSEMBLE = 100
DEVICE_KEYS = ["wafer", "die_col", "die_row", "subsite"]


def _site_rows(wafer: Wafer, cols, rows, labels) -> list[int]:
    out = []
    for col, row, label in zip(cols, rows, labels, strict=True):
        die = wafer.dies["die"][(wafer.dies["col"] == col) & (wafer.dies["row"] == row)]
        out.append(wafer.site_index(int(die[0]), str(label)))
    return out


def _tidy(folder: Path) -> pd.DataFrame:
    """Catalogue + metrics of a wafer run (placement joined, ``cycle`` from the loop)."""
    cat = catalogue.catalogue(folder)
    assert cat.problems.empty
    tidy = metrics.extract(list(cat.runs["path"]))
    tidy = tidy.merge(cat.runs[["uuid", "wafer", "subsite_id", "x_um", "y_um"]],
                      on="uuid").rename(columns={"subsite_id": "subsite"})
    tidy["cycle"] = tidy["loop_vars"].map(lambda s: json.loads(s).get("cycle", 0))
    return tidy


def _estimate_noisy(dev: pd.DataFrame, gain: float, radius_um: float) -> dict[str, float]:
    """The configured figures from ln G of two sweeps per device (columns c1, c2): the device
    mean goes through the trend and semivariogram as before; its residual variance less half
    the cycle-to-cycle variance (pooled within-device variance) is the device-to-device one."""
    both = dev[["c1", "c2"]].to_numpy(float)
    cycle_var = float(np.mean(np.var(both, axis=1, ddof=1)))
    table = dev[["x_um", "y_um"]].assign(value=both.mean(axis=1))
    trend = variation.fit_trend(table, model="radial")
    vg = variation.fit_variogram(variation.semivariogram(table.assign(residual=trend.residuals)))
    resid_var = float(np.var(trend.residuals, ddof=2))
    return {"a_r": -trend.params["b"] * radius_um ** 2 / gain,
            "sigma": math.sqrt(max(resid_var - cycle_var / 2, 0.0)) / gain,
            "corr_mm": vg.length_um / 1000.0, "cycle": math.sqrt(cycle_var)}


@pytest.fixture(scope="module")
def noisy(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("closed_loop_noisy")
    (folder / "wafer-iv.yaml").write_text(WAFER_IV_TWICE)
    params = {**PARAMS, "defect_frac_stuck": 0.0}   # stuck devices: the defect loop below
    write_wafer_bench(folder, params, seed=SEED, noise=True,
                      models={"dendrite": {"read_noise_rel": READ_NOISE,
                                           "d2d_g_off_sigma_ln": SIGMA_LOCAL}})
    run_wafer([str(folder / "wafer-iv.yaml")], folder / "bench.yaml", WAFER_ID, folder / "out",
              sites=SITES)
    wafer = pyvisa.ResourceManager(
        f"{(folder / 'sim.yaml').resolve()}@dendrosim").visalib.bench.station("sentio").wafer
    tidy = _tidy(folder / "out")
    g = tidy[tidy["metric"] == "g_linear"].copy()
    g["ln_g"] = np.log(g["value"].to_numpy(float))
    dev = g.pivot_table(index=[*DEVICE_KEYS, "subsite_label", "x_um", "y_um"], columns="cycle",
                        values="ln_g").reset_index().rename(columns={1: "c1", 2: "c2"})
    gain, radius_um = wafer.params.gain_g_off_t, wafer.radius_mm * 1000.0
    sites = wafer.sites[_site_rows(wafer, dev["die_col"], dev["die_row"], dev["subsite_label"])]
    r = np.random.default_rng(SEED)
    ensemble = []
    for seed in range(2000, 2000 + N_NOISY_ENSEMBLE):   # other wafers, other device noise
        other = Wafer(wafer.params, seed=seed, wafer_id=STATION_ID)
        base = np.log(other.scale_for("dendrite", sites)["g_off_s"])
        base = base + r.normal(0, SIGMA_LOCAL, base.size)
        sim = dev[["x_um", "y_um"]].assign(c1=base + r.normal(0, CYCLE_SIGMA, base.size),
                                           c2=base + r.normal(0, CYCLE_SIGMA, base.size))
        ensemble.append(_estimate_noisy(sim, gain, radius_um))
    return {"g": g, "dev": dev, "gain": gain,
            "measured": _estimate_noisy(dev, gain, radius_um),
            "ensemble": pd.DataFrame(ensemble)}


@pytest.mark.parametrize("figure, configured", [
    ("a_r", A_R),
    ("sigma", math.sqrt(SIGMA_FIELD ** 2 + SIGMA_DIE ** 2 + (SIGMA_LOCAL / 5.0) ** 2)),
    ("corr_mm", CORR_MM),
    ("cycle", CYCLE_SIGMA),
])
def test_noisy_wafer_figures_are_recovered_within_their_confidence_interval(
        noisy, figure: str, configured: float) -> None:
    """With read noise (10 % per reading) and the devices' own mismatch (sigma 0.05 of ln G_off)
    on, the configured figures still come back: the device-to-device sigma is the wafer's
    (field and die) plus the local mismatch over the gain (5), once half the measured cycle-to-
    cycle variance is taken off; the interval is the same analysis on 100 simulated wafers with
    the same noise (as in the noise-free loop above)."""
    assert noisy["gain"] == 5.0
    measured = noisy["measured"][figure]
    lo, hi = _interval(noisy["ensemble"][figure].to_numpy())
    assert lo <= measured <= hi, (figure, measured, (lo, hi))
    assert lo <= configured <= hi, (figure, configured, (lo, hi))


@pytest.mark.parametrize("figure, configured", [
    ("a_r", A_R),
    ("sigma", math.sqrt(SIGMA_FIELD ** 2 + SIGMA_DIE ** 2 + (SIGMA_LOCAL / 5.0) ** 2)),
    ("corr_mm", CORR_MM),
])
def test_noisy_estimator_median_is_the_configured_value(noisy, figure: str,
                                                        configured: float) -> None:
    """As for the noise-free loop: the same 15 % bias bound (known: about +6 % for a_r, +1 % for
    sigma, -10 % for the length; 100 wafers give the median to 3-5 %)."""
    median = float(noisy["ensemble"][figure].median())
    assert median == pytest.approx(configured, rel=0.15), (figure, median, configured)


def test_noisy_wafer_cycle_to_cycle_through_nested_variance(noisy) -> None:
    """nested_variance on the measured ln G (cycle level = the two sweeps) gives the read-noise
    figure derived from the sweep, within 4 standard errors (SE of a sigma from n - groups
    degrees of freedom: sigma / sqrt(2 df))."""
    g = noisy["g"].assign(value=noisy["g"]["value"])
    out = variation.nested_variance(g, "g_linear").set_index("level")
    df = int(out.loc["cycle", "df"])
    assert df == len(noisy["dev"])
    assert out.loc["cycle", "sigma"] == pytest.approx(CYCLE_SIGMA,
                                                      abs=4 * CYCLE_SIGMA / math.sqrt(2 * df))


# ---------------------------------------------------------------------------------------------
# Defects of every kind, found by contact check (open, short) and by metrics (stuck); and the
# nested decomposition of a wafer whose hierarchy is known exactly (no field, no trend)

SIGMA_DIE_D = 0.02
READ_NOISE_D = 0.05
SIGMA_LOCAL_D = 0.15            # the dendrite model's default device mismatch of ln G_off
PARAMS_DEFECTS = {"a_r": 0.0, "sigma_field": 0.0, "sigma_die": SIGMA_DIE_D, "sigma_wafer": 0.0,
                  "defect_density_per_cm2": 6.0, "defect_frac_shorted": 0.3,
                  "defect_frac_open": 0.3, "defect_frac_stuck": 0.4}


@pytest.fixture(scope="module")
def defects(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("closed_loop_defects")
    (folder / "wafer-iv.yaml").write_text(WAFER_IV_TWICE)
    write_wafer_bench(folder, PARAMS_DEFECTS, seed=7, noise=True,
                      models={"dendrite": {"read_noise_rel": READ_NOISE_D,
                                           "d2d_g_off_sigma_ln": SIGMA_LOCAL_D}})
    run_wafer([str(folder / "wafer-iv.yaml"), "dendrite-relaxation"], folder / "bench.yaml",
              "WD", folder / "out", sites="D00,D33")
    wafer = pyvisa.ResourceManager(
        f"{(folder / 'sim.yaml').resolve()}@dendrosim").visalib.bench.station("sentio").wafer
    tidy = _tidy(folder / "out")
    journal = pd.DataFrame(list(journal_devices(folder / "out" / "WD")))
    journal = journal.assign(wafer="WD", die_col=journal["col"], die_row=journal["row"],
                             subsite=journal["site"])
    classified = variation.classify_devices(tidy, keys=DEVICE_KEYS)
    devices = variation.combine_failures(journal, classified, keys=DEVICE_KEYS)
    rows = _site_rows(wafer, journal["col"], journal["row"],
                      [wafer.site_names[int(s)] for s in journal["site"]])
    return {"wafer": wafer, "tidy": tidy, "devices": devices, "folder": folder / "out",
            "truth": wafer.defects(wafer.sites[rows])}


def test_defective_sites_come_back_as_open_short_and_stuck(defects) -> None:
    truth = defects["truth"]
    expected = np.select([truth == DEFECT_SHORTED, truth == DEFECT_OPEN, truth == DEFECT_STUCK],
                         ["short", "open", "stuck"], "pass")
    got = defects["devices"]["reason"].map(variation.classify_failure).to_numpy()
    assert {"short", "open", "stuck"} <= set(expected.tolist())     # the test can fail
    assert list(got) == list(expected)
    table = variation.yield_table(defects["devices"], level="wafer").iloc[0]
    for cat in ("short", "open", "stuck", "pass"):
        assert table[cat] == int((expected == cat).sum()), cat
    # stuck devices read ON/OFF ~1 (within the read noise); working ones several times that
    ratio = defects["tidy"][defects["tidy"]["metric"] == "on_off_ratio"].groupby(
        DEVICE_KEYS)["value"].median()
    stuck = defects["devices"].set_index(DEVICE_KEYS)["reason"].str.startswith("stuck")
    assert ratio[stuck.reindex(ratio.index).to_numpy()].between(0.8, 1.2).all()
    assert ratio[~stuck.reindex(ratio.index).to_numpy()].min() > 3 * variation.STUCK_ON_OFF / 2


def test_nested_variance_through_the_simulator(defects) -> None:
    """No field and no trend: ln G of a working device is -gain expm1(u_die) + its own
    mismatch (sigma 0.15) + read noise per sweep (5 % per reading), so the die level is
    gain x sigma_die (0.1), the device level 0.15 and the cycle level the read-noise figure of
    the sweep (0.0146); only devices that passed (contact and metrics) enter. One wafer:
    wafer-to-wafer is not identifiable (NaN). Tolerance 4 standard errors of each sigma
    (sigma / sqrt(2 df), the die level's from its variance less the device share)."""
    devices = defects["devices"]
    good = devices[devices["reason"].map(variation.classify_failure) == "pass"][DEVICE_KEYS]
    g = defects["tidy"][defects["tidy"]["metric"] == "g_linear"].merge(good, on=DEVICE_KEYS)
    out = variation.nested_variance(g, "g_linear").set_index("level")
    gain = defects["wafer"].params.gain_g_off_t
    cycle = READ_NOISE_D * math.sqrt(np.sum(SWEEP_V ** 4)) / np.sum(SWEEP_V ** 2)
    assert math.isnan(out.loc["wafer", "sigma"])
    for level, sigma in (("cycle", cycle), ("device", SIGMA_LOCAL_D)):
        df = out.loc[level, "df"]
        assert out.loc[level, "sigma"] == pytest.approx(sigma, abs=4 * sigma / math.sqrt(2 * df))
    die, n_die = gain * SIGMA_DIE_D, out.loc["die", "df"]
    # var(die means) = die^2 + device^2 / 2 (two devices per die): its SE, then the delta method
    se_die = math.sqrt(2 / n_die) * (die ** 2 + SIGMA_LOCAL_D ** 2 / 2) / (2 * die)
    assert out.loc["die", "sigma"] == pytest.approx(die, abs=4 * se_die)


def test_report_page_shows_the_same_yield_and_the_variation_figures(defects, tmp_path) -> None:
    """``dendrolab analyze`` on the wafer folder: the page's yield table counts the defects the
    closed loop found (journal verdicts + metric categories), with a bin map and the variation
    figures of the metrics measured on the most dies."""
    import re

    from analysis.report import _wafer_devices, run_analysis

    result = run_analysis([defects["folder"]], tmp_path / "report")
    devices = _wafer_devices([defects["folder"]], result.metrics)
    got = devices.set_index(DEVICE_KEYS)["reason"].map(variation.classify_failure)
    want = defects["devices"].set_index(DEVICE_KEYS)["reason"].map(variation.classify_failure)
    assert got.sort_index().tolist() == want.sort_index().tolist()
    page = result.report.read_text(encoding="utf-8")
    assert "<h2>Wafer variation</h2>" in page
    alts = re.findall(r'<img src="data:image/png;base64,[^"]+" alt="([^"]+)"', page)
    assert "wafer WD: bin map" in alts
    kinds = {a.rsplit(": ", 1)[1] for a in alts if a.count(": ") == 2}
    assert {"probability", "box", "radial trend", "variogram"} <= kinds

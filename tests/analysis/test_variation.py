"""Variation statistics on synthetic data with known answers.

Tolerances come from the sampling distribution of each estimator (4 standard errors), except the
semivariogram correlation length, which from one realisation of a field is only good to a factor
(we ask for a factor of 2).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import linalg

from analysis import variation as V
from dendrolab.errors import ParameterError

SEED = 20261205


def rng(k: int = 0) -> np.random.Generator:
    return np.random.default_rng(SEED + k)


# ---------------------------------------------------------------------------------------------
# 1. summary and distribution fits
# ---------------------------------------------------------------------------------------------

def test_lognormal_sigma_within_sampling_error():
    n, mu, sigma = 2000, np.log(1e4), 0.5
    x = rng().lognormal(mu, sigma, n)
    table = pd.DataFrame({"metric": "r_hrs", "value": x, "unit": "Ohm", "wafer": "W1"})
    s = V.summarize(table, level="wafer")
    assert len(s) == 1
    row = s.iloc[0]
    se_sigma = sigma / np.sqrt(2 * (n - 1))           # SE of a sample std of a normal
    assert row["space"] == "ln" and row["n"] == n
    assert abs(row["sigma_ln"] - sigma) < 4 * se_sigma
    assert abs(row["lognorm_sigma"] - sigma) < 4 * se_sigma
    se_ln_median = np.sqrt(np.pi / 2) * sigma / np.sqrt(n)
    assert abs(np.log(row["median"]) - mu) < 4 * se_ln_median
    assert abs(np.log(row["lognorm_scale"]) - mu) < 4 * sigma / np.sqrt(n)
    assert np.isnan(row["cv"])
    assert row["lognorm_ks"] < row["weibull_ks"]       # the right family fits better
    assert row["lognorm_p"] > 0.01


def test_weibull_fit_recovers_shape_and_scale():
    n, beta, eta = 3000, 2.5, 1.8
    x = eta * rng(1).weibull(beta, n)
    table = pd.DataFrame({"metric": "v_set", "value": x, "unit": "V", "wafer": "W1"})
    row = V.summarize(table, level="wafer").iloc[0]
    # asymptotic MLE variances: var(beta) = 0.608 beta^2 / n, var(eta) = 1.109 eta^2 / (beta^2 n)
    assert abs(row["weibull_shape"] - beta) < 4 * np.sqrt(0.608 * beta**2 / n)
    assert abs(row["weibull_scale"] - eta) < 4 * np.sqrt(1.109 * eta**2 / (beta**2 * n))
    assert row["weibull_ks"] < row["lognorm_ks"]
    assert row["space"] == "linear" and np.isnan(row["sigma_ln"])
    cv = np.std(x, ddof=1) / np.mean(x)
    assert row["cv"] == pytest.approx(cv)


def test_summary_groups_by_die_and_lot():
    r = rng(2)
    rows = [{"metric": m, "value": r.lognormal(0, 0.3), "unit": u, "wafer": w,
             "die_col": c, "die_row": 0}
            for w in ("W1", "W2") for c in range(3) for _ in range(5)
            for m, u in (("i_on", "uA"), ("v_th", "V"))]
    table = pd.DataFrame(rows)
    die = V.summarize(table, level="die", fits=False)
    assert len(die) == 2 * 2 * 3 and (die["n"] == 5).all()
    assert set(die.loc[die.metric == "i_on", "space"]) == {"ln"}       # µA: a current
    assert set(die.loc[die.metric == "v_th", "space"]) == {"linear"}
    lot = V.summarize(table, level="lot")
    assert len(lot) == 2 and (lot["n"] == 30).all()
    assert V.summarize(table, level="wafer", lognormal={"v_th"}).set_index("metric").loc[
        "v_th", "space"].tolist() == ["ln", "ln"]


def test_lognormal_rule():
    assert V.is_lognormal("r_hrs", "kOhm") and V.is_lognormal("g", "mS")
    assert V.is_lognormal("on_off_ratio", None) and V.is_lognormal("x", "ratio")
    assert not V.is_lognormal("tau", "ms") and not V.is_lognormal("v_set", "V")


# ---------------------------------------------------------------------------------------------
# 2. nested decomposition
# ---------------------------------------------------------------------------------------------

SIGMAS = {"wafer": 0.30, "die": 0.20, "device": 0.15, "cycle": 0.10}
SIZES = {"wafer": 24, "die": 8, "device": 6, "cycle": 8}   # groups per parent


@pytest.fixture(scope="module")
def nested_table() -> pd.DataFrame:
    r = rng(3)
    nw, nd, nv, nc = SIZES.values()
    w = r.normal(0, SIGMAS["wafer"], nw)[:, None, None, None]
    d = r.normal(0, SIGMAS["die"], (nw, nd))[:, :, None, None]
    v = r.normal(0, SIGMAS["device"], (nw, nd, nv))[:, :, :, None]
    c = r.normal(0, SIGMAS["cycle"], (nw, nd, nv, nc))
    y = np.log(5e3) + w + d + v + c
    iw, idie, idev, icyc = np.meshgrid(*(np.arange(k) for k in (nw, nd, nv, nc)), indexing="ij")
    return pd.DataFrame({"metric": "r_lrs", "unit": "Ohm", "value": np.exp(y).ravel(),
                         "wafer": iw.ravel(), "die_col": idie.ravel() % 4,
                         "die_row": idie.ravel() // 4, "subsite": idev.ravel(),
                         "cycle": icyc.ravel()})


def test_nested_balanced_recovers_sigmas(nested_table):
    out = V.nested_variance(nested_table, "r_lrs").set_index("level")
    assert list(out.index) == ["wafer", "die", "device", "cycle"]
    assert (out["space"] == "ln").all()
    nw, nd, nv, nc = SIZES.values()
    s2 = {k: s**2 for k, s in SIGMAS.items()}
    # expected mean squares of the balanced nested ANOVA, and their degrees of freedom
    ems = {"cycle": s2["cycle"],
           "device": s2["cycle"] + nc * s2["device"],
           "die": s2["cycle"] + nc * s2["device"] + nc * nv * s2["die"],
           "wafer": s2["cycle"] + nc * s2["device"] + nc * nv * s2["die"]
           + nc * nv * nd * s2["wafer"]}
    df = {"wafer": nw - 1, "die": nw * (nd - 1), "device": nw * nd * (nv - 1),
          "cycle": nw * nd * nv * (nc - 1)}
    k = {"wafer": nc * nv * nd, "die": nc * nv, "device": nc, "cycle": 1}
    below = {"wafer": "die", "die": "device", "device": "cycle"}
    for level, sigma in SIGMAS.items():
        assert out.loc[level, "df"] == df[level]
        var_ms = 2 * ems[level] ** 2 / df[level]
        if level in below:
            var_ms += 2 * ems[below[level]] ** 2 / df[below[level]]
        se_sigma = np.sqrt(var_ms) / k[level] / (2 * sigma)      # delta method
        assert abs(out.loc[level, "sigma"] - sigma) < 4 * se_sigma, (level, se_sigma)


def test_nested_unbalanced_matches_closed_form_one_way():
    r = rng(4)
    per = r.integers(2, 12, 40)                                  # cycles per device: unbalanced
    dev = np.repeat(np.arange(40), per)
    y = r.normal(0, 0.4, 40)[dev] + r.normal(0, 0.2, dev.size)
    table = pd.DataFrame({"metric": "v_set", "value": y, "device": dev})
    out = V.nested_variance(table, "v_set", levels=[("device", ["device"])]).set_index("level")
    n, a = dev.size, 40
    means = np.bincount(dev, weights=y) / per
    msa = np.sum(per * (means - y.mean()) ** 2) / (a - 1)
    mse = np.sum((y - means[dev]) ** 2) / (n - a)
    n0 = (n - np.sum(per**2) / n) / (a - 1)
    assert out.loc["cycle", "variance"] == pytest.approx(mse, rel=1e-10)
    assert out.loc["device", "variance"] == pytest.approx((msa - mse) / n0, rel=1e-10)


def test_nested_unbalanced_hierarchy_recovers_sigmas():
    r = rng(5)
    rows = []
    for w in range(30):
        aw = r.normal(0, 0.3)
        for die in range(r.integers(3, 9)):
            ad = r.normal(0, 0.2)
            for s in range(r.integers(2, 7)):
                av = r.normal(0, 0.15)
                for _ in range(r.integers(3, 10)):
                    rows.append((w, die, 0, s, aw + ad + av + r.normal(0, 0.1)))
    table = pd.DataFrame(rows, columns=["wafer", "die_col", "die_row", "subsite", "value"])
    table["metric"] = "v_th"
    out = V.nested_variance(table, "v_th").set_index("level")
    # tolerances: 4 x the standard deviation of each estimate over 40 replicates of this design
    # (measured once: cycle 0.0010, device 0.0056, die 0.0154, wafer 0.040)
    for level, sigma, sd in (("cycle", 0.1, 0.0010), ("device", 0.15, 0.0056),
                             ("die", 0.2, 0.0154), ("wafer", 0.3, 0.040)):
        assert abs(out.loc[level, "sigma"] - sigma) < 4 * sd, level
    assert not out["truncated"].any()


def test_nested_lognormal_currents_unbalanced_recover_each_level():
    """Read currents (unit A, so analysed in ln space) of 12 wafers with 4-9 dies, 3-6 devices
    per die and 2-7 cycles per device; sigma of ln I per level: wafer 0.25, die 0.12, device
    0.30, cycle 0.05. Tolerance: 4 x the standard deviation over 40 replicates of this design
    (measured once: wafer 0.055, die 0.031, device 0.012, cycle 0.0009)."""
    r = rng(11)
    rows = []
    for w in range(12):
        aw = r.normal(0, 0.25)
        for die in range(r.integers(4, 10)):
            ad = r.normal(0, 0.12)
            for s in range(r.integers(3, 7)):
                av = r.normal(0, 0.30)
                rows += [(f"W{w}", die % 3, die // 3, s, 1e-6 * np.exp(aw + ad + av + e))
                         for e in r.normal(0, 0.05, r.integers(2, 8))]
    table = pd.DataFrame(rows, columns=["wafer", "die_col", "die_row", "subsite", "value"])
    table = table.assign(metric="i_read", unit="A")
    out = V.nested_variance(table, "i_read").set_index("level")
    assert (out["space"] == "ln").all()
    for level, sigma, sd in (("wafer", 0.25, 0.055), ("die", 0.12, 0.031),
                             ("device", 0.30, 0.012), ("cycle", 0.05, 0.0009)):
        assert abs(out.loc[level, "sigma"] - sigma) < 4 * sd, (level, out.loc[level, "sigma"])
    # the same numbers in linear space would be wrong: a linear analysis sees other sigmas
    lin = V.nested_variance(table, "i_read", lognormal=()).set_index("level")
    assert (lin["space"] == "linear").all() and lin.loc["cycle", "sigma"] < 1e-6


def test_nested_one_cycle_and_one_wafer_are_not_identifiable(nested_table):
    one = nested_table[(nested_table.cycle == 0) & (nested_table.wafer == 0)]
    out = V.nested_variance(one, "r_lrs").set_index("level")
    assert np.isnan(out.loc["cycle", "sigma"]) and np.isnan(out.loc["wafer", "sigma"])
    assert out.loc["device", "df"] == 8 * 5 and np.isfinite(out.loc["device", "sigma"])


def test_nested_rejects_nonpositive_lognormal(nested_table):
    bad = nested_table.copy()
    bad.loc[0, "value"] = -1.0
    with pytest.raises(ParameterError, match="<= 0"):
        V.nested_variance(bad, "r_lrs")


# ---------------------------------------------------------------------------------------------
# 3. spatial
# ---------------------------------------------------------------------------------------------

def wafer_grid(step_um: float, radius_um: float) -> tuple[np.ndarray, np.ndarray]:
    g = np.arange(-radius_um, radius_um + 1, step_um)
    x, y = np.meshgrid(g, g)
    inside = x**2 + y**2 <= radius_um**2
    return x[inside], y[inside]


def test_radial_trend_recovers_b():
    x, y = wafer_grid(5000, 75000)
    a, b, noise = 2.0, 1.5e-10, 0.05
    r2 = x**2 + y**2
    v = a + b * r2 + rng(6).normal(0, noise, x.size)
    fit = V.fit_trend(pd.DataFrame({"x_um": x, "y_um": y, "value": v}), "radial")
    se_b = noise / np.sqrt(np.sum((r2 - r2.mean()) ** 2))      # simple regression slope SE
    assert abs(fit.params["b"] - b) < 4 * se_b
    se_a = noise * np.sqrt(1 / x.size + r2.mean() ** 2 / np.sum((r2 - r2.mean()) ** 2))
    assert abs(fit.params["a"] - a) < 4 * se_a
    assert fit.r2 > 0.9
    assert np.std(fit.residuals, ddof=2) == pytest.approx(noise, rel=4 / np.sqrt(2 * x.size))


def test_paraboloid_exact_surface():
    x, y = wafer_grid(10000, 75000)
    coef = dict(c0=1.0, cx=2e-6, cy=-1e-6, cxx=3e-11, cxy=-2e-11, cyy=1e-11)
    v = (coef["c0"] + coef["cx"] * x + coef["cy"] * y + coef["cxx"] * x * x
         + coef["cxy"] * x * y + coef["cyy"] * y * y)
    fit = V.fit_trend(pd.DataFrame({"x_um": x, "y_um": y, "value": v}), "paraboloid")
    for name, c in coef.items():
        assert fit.params[name] == pytest.approx(c, rel=1e-6)
    assert fit.r2 == pytest.approx(1.0)


LENGTH_UM = 12000.0


@pytest.fixture(scope="module")
def gaussian_field() -> pd.DataFrame:
    """Exponential-covariance field (σ 0.2, length 12 mm) plus a radial trend, on a 150 mm wafer."""
    x, y = wafer_grid(4000, 75000)
    pts = np.column_stack([x, y])
    h = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1))
    cov = 0.2**2 * np.exp(-h / LENGTH_UM)
    z = linalg.cholesky(cov, lower=True) @ rng(7).standard_normal(len(x))
    return pd.DataFrame({"x_um": x, "y_um": y, "value": 1.0 + 1e-10 * (x**2 + y**2) + z})


def test_semivariogram_of_residuals_gives_correlation_length(gaussian_field):
    fit = V.fit_trend(gaussian_field, "radial")
    resid = gaussian_field.assign(residual=fit.residuals)
    vg = V.semivariogram(resid, n_bins=20, max_distance=60000)
    assert (vg["n_pairs"] > 0).all() and vg["distance_um"].is_monotonic_increasing
    model = V.fit_variogram(vg)
    assert LENGTH_UM / 2 < model.length_um < 2 * LENGTH_UM      # within a factor of 2
    assert model.nugget + model.partial_sill == pytest.approx(0.04, rel=0.5)


def test_semivariogram_of_white_noise_is_flat():
    x, y = wafer_grid(5000, 75000)
    vg = V.semivariogram(pd.DataFrame({"x_um": x, "y_um": y,
                                       "residual": rng(8).normal(0, 1, x.size)}))
    se = np.sqrt(2 / vg["n_pairs"])                      # crude: pairs share points
    assert (np.abs(vg["gamma"] - 1) < 4 * se * 3).all()


def test_outliers_flagged_exactly():
    r = rng(9)
    n, sigma = 300, 0.2
    ln = r.normal(np.log(1e5), sigma, n)
    ln = np.clip(ln, np.log(1e5) - 2.5 * sigma, np.log(1e5) + 2.5 * sigma)   # clean: |z| <= 2.5
    bad = np.array([3, 77, 150, 299])
    ln[bad] = np.log(1e5) + sigma * np.array([10.0, -8.0, 4.3, -4.3])      # |robust z| ~ 4.3+
    ln[[5, 6]] = np.log(1e5) + sigma * np.array([3.0, -3.0])                # near misses: z ~ 3
    lin = np.clip(r.normal(1.0, 0.05, n), 1 - 0.125, 1 + 0.125)
    lin[[10, 20]] = [1.6, 0.3]
    table = pd.concat([pd.DataFrame({"metric": "r_hrs", "unit": "Ohm", "value": np.exp(ln)}),
                       pd.DataFrame({"metric": "v_th", "unit": "V", "value": lin})],
                      ignore_index=True)
    out = V.flag_outliers(table)
    assert set(np.flatnonzero(out["outlier"])) == {*bad, n + 10, n + 20}
    assert abs(out["robust_z"].iloc[5] - 3.0) < 0.3      # MAD of a normal is 0.6745 sigma


def test_robust_z_constant_data():
    assert (V.robust_z(np.ones(5)) == 0).all()


# ---------------------------------------------------------------------------------------------
# 4. yield
# ---------------------------------------------------------------------------------------------

def test_yield_counts_exact():
    reasons = {(0, 0): [None, None, "contact: open", "contact: short", None],
               (1, 0): ["compliance: wafer-iv reached 0.0001 A", "operator skipped", None,
                        "stuck", "no switching"],
               (0, 1): ["", "contact: open", "contact: open", "mystery", None]}
    rows = [{"wafer": "W1", "die_col": c, "die_row": rr, "subsite": i, "reason": why}
            for (c, rr), whys in reasons.items() for i, why in enumerate(whys)]
    devices = pd.DataFrame(rows)
    die = V.yield_table(devices, level="die").set_index(["die_col", "die_row"])
    assert die.loc[(0, 0), ["pass", "open", "short", "n_tested"]].tolist() == [3, 1, 1, 5]
    assert die.loc[(0, 0), "yield"] == pytest.approx(3 / 5)
    assert die.loc[(1, 0), ["pass", "compliance", "stuck", "no_switching", "skipped",
                            "n_devices", "n_tested"]].tolist() == [1, 1, 1, 1, 1, 5, 4]
    assert die.loc[(1, 0), "yield"] == pytest.approx(1 / 4)
    assert die.loc[(0, 1), ["pass", "open", "other"]].tolist() == [2, 2, 1]
    wafer = V.yield_table(devices, level="wafer").iloc[0]
    assert wafer["n_devices"] == 15 and wafer["n_tested"] == 14 and wafer["pass"] == 6
    assert wafer["yield"] == pytest.approx(6 / 14)
    lot = V.yield_table(devices, level="lot")
    assert len(lot) == 1 and lot.iloc[0]["open"] == 3


def _device_metrics() -> pd.DataFrame:
    """Metric rows of six devices on die (0, 0): two dendrites (working, stuck), two synapses
    (working, stuck), two somas (switching once of three cycles, never switching)."""
    def row(sub, metric, value, quality="ok", reason="", uuid="u"):
        return {"wafer": "W1", "die_col": 0, "die_row": 0, "subsite": sub, "metric": metric,
                "value": value, "quality": quality, "reason": reason, "uuid": f"{uuid}{sub}"}

    rows = [row(0, "on_off_ratio", v) for v in (9.8, 10.4, 10.1)]
    rows += [row(1, "on_off_ratio", v) for v in (1.01, 0.99, 1.02)]
    rows += [row(2, "g_min", 2e-6), row(2, "g_max", 15e-6), row(2, "pulses_to_target", 12)]
    rows += [row(3, "g_min", 2.0e-6), row(3, "g_max", 2.1e-6),
             row(3, "pulses_to_target", np.nan, "failed", "not reached: off by 60% > 5%")]
    why = "no switching: |I| jumps x1.1 up, x1.1 down (< x5)"
    rows += [row(4, "v_th", 1.2)] + [row(4, "v_th", np.nan, "failed", why) for _ in range(2)]
    rows += [row(5, "v_th", np.nan, "failed", why) for _ in range(3)]
    return pd.DataFrame(rows)


def test_classify_devices_finds_stuck_and_non_switching():
    out = V.classify_devices(_device_metrics()).set_index("subsite")
    assert list(out["category"]) == ["pass", "stuck", "pass", "stuck", "pass", "no_switching"]
    assert out.loc[1, "reason"].startswith("stuck: ON/OFF read ratio 1.01 < 2")
    assert "G_max/G_min 1.05 < 1.2" in out.loc[3, "reason"]
    assert out.loc[0, "reason"] == "" and out.loc[4, "reason"] == ""
    # the reasons map back to their categories, so yield_table counts them
    assert list(out["reason"].map(V.classify_failure)) == list(out["category"])
    # thresholds are parameters
    strict = V.classify_devices(_device_metrics(), on_off_min=11.0).set_index("subsite")
    assert strict.loc[0, "category"] == "stuck"


def test_combine_failures_keeps_contact_verdicts_and_adds_metric_ones():
    classified = V.classify_devices(_device_metrics())
    journal = pd.DataFrame({"wafer": "W1", "die_col": 0, "die_row": 0,
                            "subsite": [0, 1, 2, 3, 4, 5, 6, 7],
                            "reason": ["", "", "", "", "", "", "contact: open",
                                       "contact: short"]})
    merged = V.combine_failures(journal, classified)
    assert list(merged["reason"].map(V.classify_failure)) == [
        "pass", "stuck", "pass", "stuck", "pass", "no_switching", "open", "short"]
    table = V.yield_table(merged, level="wafer").iloc[0]
    assert (table["pass"], table["stuck"], table["no_switching"], table["open"],
            table["short"]) == (3, 2, 1, 1, 1)


def test_wafer_engine_reasons_classify():
    """The strings the wafer engine journals (tests/protocols/test_wafer.py) map to categories."""
    from protocols.wafer import OPERATOR_SKIPPED

    assert V.classify_failure(OPERATOR_SKIPPED) == "skipped"
    assert V.classify_failure("contact: short") == "short"
    assert V.classify_failure("contact: open") == "open"
    assert V.classify_failure("compliance: tight-iv reached 1e-08 A") == "compliance"
    assert V.classify_failure(float("nan")) == "pass"


# ---------------------------------------------------------------------------------------------
# 5. correlation between kinds
# ---------------------------------------------------------------------------------------------

def test_correlation_between_kinds_at_same_site():
    r = rng(10)
    n, rho = 400, 0.7
    za = r.standard_normal(n)
    zb = rho * za + np.sqrt(1 - rho**2) * r.standard_normal(n)
    site = {"wafer": "W1", "die_col": np.arange(n) // 10, "die_row": 0}
    a = pd.DataFrame({**site, "subsite": np.arange(n) % 10, "metric": "r_on", "unit": "Ohm",
                      "device_kind": "dendrite", "value": np.exp(8 + 1.2 * za)})
    b = pd.DataFrame({**site, "subsite": np.arange(n) % 10, "metric": "v_th", "unit": "V",
                      "device_kind": "soma", "value": 0.5 + 0.02 * zb})
    table = pd.concat([a, b], ignore_index=True)
    c = V.correlate_kinds(table, "r_on", "dendrite", "v_th", "soma")
    assert c["n"] == n
    se_z = 1 / np.sqrt(n - 3)                                  # Fisher z
    assert abs(np.arctanh(c["pearson_r"]) - np.arctanh(rho)) < 4 * se_z
    assert c["spearman_rho"] == pytest.approx(c["pearson_r"], abs=0.1)
    die = V.correlate_kinds(table, "r_on", "dendrite", "v_th", "soma",
                            on=("wafer", "die_col", "die_row"))
    assert die["n"] == n // 10


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("call", [
    lambda t: V.summarize(t.drop(columns="value")),
    lambda t: V.summarize(t, level="continent"),
    lambda t: V.nested_variance(t, "nonexistent"),
    lambda t: V.fit_trend(t, "cubic"),
    lambda t: V.nested_variance(t.assign(subsite=[0, 1, None, 3]), "m"),
    lambda t: V.yield_table(t),
    lambda t: V.correlate_kinds(t, "m", "dendrite", "m", "soma"),
])
def test_bad_input_one_line_error(call):
    t = pd.DataFrame({"metric": "m", "value": [1.0, 2.0, 3.0, 4.0], "wafer": "W",
                      "die_col": 0, "die_row": 0, "subsite": [0, 1, 2, 3],
                      "x_um": [0.0, 1.0, 2.0, 3.0], "y_um": 0.0, "device_kind": "dendrite"})
    with pytest.raises(ParameterError) as err:
        call(t)
    assert "\n" not in str(err.value)

"""Wafer-variation statistics: plain functions from tidy pandas tables to tidy pandas tables.

Why this module: after metrics are extracted per device, the device scientist's questions are about
spread — how wide is each distribution, which level of the hierarchy (cycle, device, die, wafer) the
spread comes from, whether it has a systematic spatial shape, which devices failed and why, and
whether two device kinds on the same site vary together. The conventions follow
``shared/research/wafer.md`` §3: σ of ln x for log-normal quantities, CV for linear ones, nested
method-of-moments decomposition, paraboloid / radial trend then semivariogram of the residuals.

Input (the *metric table*), one row per measured value:

=============  ========  ==========================================================================
column         needed    meaning
=============  ========  ==========================================================================
``metric``     always    metric name, e.g. ``r_hrs``
``value``      always    the number (float)
``unit``       optional  its unit; drives the log-normal rule below
``wafer``      grouping  wafer id
``die_col``    grouping  die column
``die_row``    grouping  die row
``subsite``    grouping  subsite id on the die (wafer+die+subsite identifies a device)
``x_um``       spatial   chuck x of the device (µm, wafer centre at 0 unless ``center`` is given)
``y_um``       spatial   chuck y
``device_kind``  corr.   ``dendrite``, ``soma``, ``synapse`` ...
``cycle``      optional  cycle index; the rows of one device are its cycles either way
``lot``        optional  lot id; without it the whole table is one lot
=============  ========  ==========================================================================

Each function checks only the columns it needs and raises ``ParameterError`` (one line) otherwise.
Rows with a missing grouping key are left out of grouped summaries, yield and correlation (pandas
``groupby``); ``nested_variance`` refuses them, since a row without its parent breaks the nesting.

Log-normal rule (``is_lognormal``): a metric is treated as log-normal if its unit, after an
optional SI prefix, is ``Ohm``/``ohm``/``Ω`` (resistance), ``A`` (current), ``S`` (conductance) or
``ratio``, or if its name contains ``ratio``. Every public function takes ``lognormal=`` (a
collection of metric names) to override the rule. Log-normal quantities are analysed in ln space.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, spatial, stats

from dendrolab.errors import ParameterError

__all__ = [
    "FAILURE_CATEGORIES",
    "LEVELS",
    "TrendFit",
    "VariogramFit",
    "classify_devices",
    "classify_failure",
    "combine_failures",
    "correlate_kinds",
    "fit_trend",
    "fit_variogram",
    "flag_outliers",
    "is_lognormal",
    "nested_variance",
    "robust_z",
    "semivariogram",
    "summarize",
    "yield_table",
]

#: Grouping levels and the columns that identify a group at each.
LEVELS: dict[str, tuple[str, ...]] = {
    "lot": ("lot",),
    "wafer": ("wafer",),
    "die": ("wafer", "die_col", "die_row"),
    "device": ("wafer", "die_col", "die_row", "subsite"),
}
DEVICE_KEYS = LEVELS["device"]
SITE_KEYS = DEVICE_KEYS

_LOG_UNITS = {"Ohm", "ohm", "Ω", "A", "S", "ratio"}
_SI_PREFIXES = "afpnuµmkMGT"

#: Robust-z threshold for outliers (Iglewicz & Hoaglin 1993: |0.6745 (x - median) / MAD| > 3.5).
OUTLIER_Z = 3.5


def _need(table: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    if not isinstance(table, pd.DataFrame):
        raise ParameterError(f"{what} needs a pandas DataFrame, got {type(table).__name__}")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ParameterError(
            f"{what}: table lacks column(s) {', '.join(missing)}; "
            f"it has {', '.join(map(str, table.columns)) or 'none'}")


def _level_keys(table: pd.DataFrame, level: str) -> tuple[str, ...]:
    if level not in LEVELS:
        raise ParameterError(f"unknown level {level!r}; use one of {', '.join(LEVELS)}")
    if level == "lot" and "lot" not in table.columns:
        return ()
    return LEVELS[level]


def is_lognormal(metric: str, unit: str | None = None,
                 lognormal: Collection[str] | None = None) -> bool:
    """Whether ``metric`` is analysed in log space (rule in the module docstring)."""
    if lognormal is not None:
        return metric in lognormal
    if "ratio" in str(metric).lower():
        return True
    if not unit or not isinstance(unit, str):
        return False
    return unit in _LOG_UNITS or (len(unit) > 1 and unit[0] in _SI_PREFIXES
                                  and unit[1:] in _LOG_UNITS)


def _metric_unit(table: pd.DataFrame, metric: str) -> str | None:
    if "unit" not in table.columns:
        return None
    units = table.loc[table["metric"] == metric, "unit"].dropna().unique()
    return str(units[0]) if len(units) else None


def _metric_values(table: pd.DataFrame, metric: str, what: str) -> pd.DataFrame:
    rows = table[table["metric"] == metric]
    if rows.empty:
        known = ", ".join(map(str, table["metric"].unique()[:10]))
        raise ParameterError(f"{what}: no rows for metric {metric!r}; metrics are {known}")
    return rows


# --------------------------------------------------------------------------------------------
# 1. Per-group summary with distribution fits
# --------------------------------------------------------------------------------------------

_FIT_COLUMNS = ("lognorm_sigma", "lognorm_scale", "lognorm_ks", "lognorm_p",
                "weibull_shape", "weibull_scale", "weibull_ks", "weibull_p")


def _fits(x: np.ndarray) -> dict[str, float]:
    out = dict.fromkeys(_FIT_COLUMNS, np.nan)
    if len(x) < 3 or np.any(x <= 0) or np.ptp(x) == 0:
        return out
    s, _, scale = stats.lognorm.fit(x, floc=0)
    ks = stats.kstest(x, "lognorm", args=(s, 0, scale))
    out.update(lognorm_sigma=s, lognorm_scale=scale, lognorm_ks=ks.statistic, lognorm_p=ks.pvalue)
    c, _, wscale = stats.weibull_min.fit(x, floc=0)
    ks = stats.kstest(x, "weibull_min", args=(c, 0, wscale))
    out.update(weibull_shape=c, weibull_scale=wscale, weibull_ks=ks.statistic, weibull_p=ks.pvalue)
    return out


def summarize(table: pd.DataFrame, level: str = "die",
              lognormal: Collection[str] | None = None, fits: bool = True) -> pd.DataFrame:
    """One row per (group at ``level``, metric): count, median, spread and distribution fits.

    ``level`` is ``die``, ``wafer``, ``lot`` or ``device``. Columns: the group keys, ``metric``,
    ``unit``, ``space`` (``ln`` or ``linear``), ``n``, ``median``, ``mean``, ``std``, ``sigma_ln``
    (std of ln x, ddof=1; log-normal metrics), ``cv`` (std/mean; linear metrics), and with
    ``fits`` the maximum-likelihood log-normal (``lognorm_sigma``, ``lognorm_scale`` = e^μ) and
    Weibull (``weibull_shape`` β, ``weibull_scale`` η) fits, both with location fixed at 0, each
    with its one-sample Kolmogorov–Smirnov statistic and p-value. The p-value uses parameters
    fitted on the same sample, so it is conservative (too large; Lilliefors): use it to rank fits
    and to reject clearly bad ones. Fits need n >= 3 positive, not all equal values; else NaN.
    """
    _need(table, ("metric", "value"), "summarize")
    keys = _level_keys(table, level)
    _need(table, keys, f"summarize by {level}")
    rows = []
    for metric, sub in table.groupby("metric", sort=True):
        unit = _metric_unit(table, metric)
        log = is_lognormal(metric, unit, lognormal)
        groups = sub.groupby(list(keys), sort=True) if keys else [((), sub)]
        for key, g in groups:
            x = pd.to_numeric(g["value"], errors="coerce").to_numpy(float)
            x = x[np.isfinite(x)]
            key = key if isinstance(key, tuple) else (key,)
            row = dict(zip(keys, key, strict=True))
            row.update(metric=metric, unit=unit, space="ln" if log else "linear", n=len(x))
            row.update(median=np.median(x) if len(x) else np.nan,
                       mean=np.mean(x) if len(x) else np.nan,
                       std=np.std(x, ddof=1) if len(x) > 1 else np.nan)
            pos = x[x > 0]
            row["sigma_ln"] = (np.std(np.log(pos), ddof=1) if log and len(pos) > 1
                               and len(pos) == len(x) else np.nan)
            row["cv"] = row["std"] / row["mean"] if not log and row["mean"] else np.nan
            if fits:
                row.update(_fits(x))
            rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# 2. Nested variance decomposition
# --------------------------------------------------------------------------------------------

#: Default hierarchy, top down; the residual level below the last is ``cycle``.
NESTED_LEVELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("wafer", LEVELS["wafer"]),
    ("die", LEVELS["die"]),
    ("device", LEVELS["device"]),
)


def nested_variance(table: pd.DataFrame, metric: str,
                    levels: Sequence[tuple[str, Sequence[str]]] = NESTED_LEVELS,
                    residual: str = "cycle",
                    lognormal: Collection[str] | None = None) -> pd.DataFrame:
    """σ per level of a nested random-effects model, by the ANOVA method of moments.

    Model: y = μ + a_wafer + b_die(wafer) + c_device(die) + e_cycle, each term independent with
    variance σ²_level; y = ln x for log-normal metrics. The method is Henderson's method I for
    *unbalanced* nested designs (Searle, Casella & McCulloch, *Variance Components*, §4): the
    sum of squares between the groups of each level and their parents is set equal to its
    expectation Σ_m k_ℓm σ²_m, with coefficients k computed from the actual group sizes, and the
    triangular system is solved bottom up. With a balanced design it reduces to the textbook
    nested ANOVA. Negative estimates are truncated to 0 (column ``truncated``). A level with no
    degrees of freedom (one wafer; one cycle per device) is not identifiable: its σ is NaN and its
    variance is absorbed by the level below (one cycle per device: device σ includes C2C).

    ``levels``: (name, key columns) from the top; each level's keys must include its parent's.
    Returns one row per level (top down, then ``residual``): ``level``, ``n_groups``, ``df``,
    ``ss``, ``variance``, ``sigma``, ``truncated``; ``space`` (``ln``/``linear``) in each row.
    """
    _need(table, ("metric", "value"), "nested_variance")
    for name, keys in levels:
        _need(table, keys, f"nested_variance level {name!r}")
    rows = _metric_values(table, metric, "nested_variance")
    log = is_lognormal(metric, _metric_unit(table, metric), lognormal)
    y = pd.to_numeric(rows["value"], errors="coerce").to_numpy(float)
    if log:
        if np.any(y <= 0):
            raise ParameterError(f"nested_variance: log-normal metric {metric!r} has values <= 0")
        y = np.log(y)
    ok = np.isfinite(y)
    rows, y = rows[ok], y[ok]
    n_total = len(y)
    if n_total < 2:
        raise ParameterError(f"nested_variance: metric {metric!r} has {n_total} finite value(s)")

    # group code of each observation at each level; the residual level is the observation itself
    codes = [np.zeros(n_total, int)]
    for name, keys in levels:
        code = rows.groupby(list(keys), sort=False).ngroup()      # NaN or -1 for missing keys
        bad = int((code.isna() | (code < 0)).sum())
        if bad:
            raise ParameterError(f"nested_variance: {bad} row(s) of {metric!r} lack a value in "
                                 f"the {name!r} key columns {', '.join(keys)}")
        codes.append(code.to_numpy().astype(int))
    codes.append(np.arange(n_total))
    names = [name for name, _ in levels] + [residual]
    n_lev = len(names)          # levels 1..n_lev; index 0 is the grand mean

    sizes = [np.bincount(c) for c in codes]
    means = [np.bincount(c, weights=y) / s for c, s in zip(codes, sizes, strict=True)]
    # parent code of each group at level l (groups nest: take it from any member)
    ss = np.zeros(n_lev + 1)
    df = np.zeros(n_lev + 1)
    for lev in range(1, n_lev + 1):
        dev = means[lev][codes[lev]] - means[lev - 1][codes[lev - 1]]
        ss[lev] = np.sum(dev ** 2)            # = Σ_g n_g (ȳ_g − ȳ_parent)²
        df[lev] = len(sizes[lev]) - len(sizes[lev - 1])
        nested = pd.Series(codes[lev - 1]).groupby(codes[lev]).nunique()
        if (nested > 1).any():
            raise ParameterError(f"nested_variance: level {names[lev - 1]!r} is not nested in "
                                 f"the level above; its keys must include the parent's")

    # A[l, m] = Σ_{g at l} Σ_{h at m, h ⊂ g} n_h² / n_g  (m at or below l)
    a = np.zeros((n_lev + 1, n_lev + 1))
    for m in range(1, n_lev + 1):
        first = np.unique(codes[m], return_index=True)[1]   # one observation per group at m
        nh2 = sizes[m].astype(float) ** 2
        for lev in range(0, m + 1):
            parent = codes[lev][first]                      # group at lev containing each h
            per_g = np.bincount(parent, weights=nh2, minlength=len(sizes[lev]))
            a[lev, m] = np.sum(per_g / sizes[lev])
    k = np.zeros((n_lev + 1, n_lev + 1))
    for lev in range(1, n_lev + 1):
        for m in range(lev, n_lev + 1):
            k[lev, m] = a[lev, m] - a[lev - 1, m]

    var = np.full(n_lev + 1, np.nan)
    truncated = np.zeros(n_lev + 1, bool)
    for lev in range(n_lev, 0, -1):
        if df[lev] <= 0 or k[lev, lev] <= 0:
            continue
        rest = sum(k[lev, m] * var[m] for m in range(lev + 1, n_lev + 1) if np.isfinite(var[m]))
        est = (ss[lev] - rest) / k[lev, lev]
        truncated[lev] = est < 0
        var[lev] = max(est, 0.0)
    out = pd.DataFrame({
        "level": names, "n_groups": [len(s) for s in sizes[1:]], "df": df[1:].astype(int),
        "ss": ss[1:], "variance": var[1:], "sigma": np.sqrt(var[1:]),
        "truncated": truncated[1:], "space": "ln" if log else "linear"})
    out.attrs.update(metric=metric, method="ANOVA method of moments (Henderson I), unbalanced")
    return out


# --------------------------------------------------------------------------------------------
# 3. Spatial: trend, semivariogram, outliers
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrendFit:
    """A least-squares trend surface over the wafer.

    ``params``: ``a``, ``b`` for ``radial`` (v = a + b r², r in µm); ``c0, cx, cy, cxx, cxy, cyy``
    for ``paraboloid`` (full quadratic in x, y). ``residuals`` align with the input rows.
    """

    model: str
    params: dict[str, float]
    r2: float
    residuals: pd.Series = field(repr=False)
    fitted: pd.Series = field(repr=False)


def fit_trend(table: pd.DataFrame, model: str = "radial", value: str = "value",
              center: tuple[float, float] = (0.0, 0.0)) -> TrendFit:
    """Least-squares ``radial`` (a + b r²) or ``paraboloid`` trend of ``value`` over x_um, y_um.

    Give one metric's rows (and take logs first for log-normal metrics). R² = 1 − SS_res/SS_tot.
    """
    _need(table, ("x_um", "y_um", value), "fit_trend")
    x = table["x_um"].to_numpy(float) - center[0]
    y = table["y_um"].to_numpy(float) - center[1]
    v = pd.to_numeric(table[value], errors="coerce").to_numpy(float)
    if model == "radial":
        design, names = np.column_stack([np.ones_like(x), x * x + y * y]), ("a", "b")
    elif model == "paraboloid":
        design = np.column_stack([np.ones_like(x), x, y, x * x, x * y, y * y])
        names = ("c0", "cx", "cy", "cxx", "cxy", "cyy")
    else:
        raise ParameterError(f"fit_trend: unknown model {model!r}; use 'radial' or 'paraboloid'")
    ok = np.isfinite(v) & np.isfinite(x) & np.isfinite(y)
    if ok.sum() <= design.shape[1]:
        raise ParameterError(f"fit_trend: {ok.sum()} finite point(s), {model} needs more than "
                             f"{design.shape[1]}")
    coef, *_ = np.linalg.lstsq(design[ok], v[ok], rcond=None)
    fitted = design @ coef
    resid = v - fitted
    ss_tot = np.sum((v[ok] - v[ok].mean()) ** 2)
    r2 = 1.0 - np.sum(resid[ok] ** 2) / ss_tot if ss_tot > 0 else np.nan
    return TrendFit(model, dict(zip(names, map(float, coef), strict=True)), float(r2),
                    pd.Series(resid, index=table.index, name="residual"),
                    pd.Series(fitted, index=table.index, name="fitted"))


def semivariogram(table: pd.DataFrame, value: str = "residual", n_bins: int = 15,
                  max_distance: float | None = None) -> pd.DataFrame:
    """Empirical (Matheron) semivariogram γ(h) = Σ (z_i − z_j)² / (2 N(h)) in distance bins.

    Pairs are binned uniformly in distance up to ``max_distance`` (default: half the largest pair
    distance, the usual limit beyond which few pairs and edge effects dominate). Returns one row
    per non-empty bin: ``distance_um`` (mean pair distance in the bin), ``gamma``, ``n_pairs``.
    """
    _need(table, ("x_um", "y_um", value), "semivariogram")
    pts = table[["x_um", "y_um"]].to_numpy(float)
    z = pd.to_numeric(table[value], errors="coerce").to_numpy(float)
    ok = np.isfinite(z) & np.all(np.isfinite(pts), axis=1)
    pts, z = pts[ok], z[ok]
    if len(z) < 3:
        raise ParameterError(f"semivariogram: {len(z)} finite point(s), needs at least 3")
    if n_bins < 1:
        raise ParameterError(f"semivariogram: n_bins must be >= 1, got {n_bins}")
    h = spatial.distance.pdist(pts)
    sq = spatial.distance.pdist(z[:, None], "sqeuclidean")
    top = float(max_distance) if max_distance is not None else h.max() / 2
    edges = np.linspace(0.0, top, n_bins + 1)
    idx = np.digitize(h, edges) - 1
    keep = (idx >= 0) & (idx < n_bins) & (h > 0)
    idx, h, sq = idx[keep], h[keep], sq[keep]
    count = np.bincount(idx, minlength=n_bins)
    gam = np.bincount(idx, weights=sq, minlength=n_bins)
    dist = np.bincount(idx, weights=h, minlength=n_bins)
    nz = count > 0
    return pd.DataFrame({"distance_um": dist[nz] / count[nz], "gamma": gam[nz] / (2 * count[nz]),
                         "n_pairs": count[nz]})


@dataclass(frozen=True)
class VariogramFit:
    """Exponential model γ(h) = nugget + partial_sill (1 − exp(−h / length_um)).

    ``length_um`` is the correlation length: the covariance falls as exp(−h / length_um); the
    "practical range" (95 % of the sill) is 3 × length_um.
    """

    nugget: float
    partial_sill: float
    length_um: float

    def gamma(self, h: np.ndarray) -> np.ndarray:
        return self.nugget + self.partial_sill * (1 - np.exp(-np.asarray(h) / self.length_um))


def fit_variogram(vg: pd.DataFrame) -> VariogramFit:
    """Fit the exponential model to a ``semivariogram`` table by weighted least squares.

    Weights N(h) / γ(h)² (Cressie 1985), so that well-populated short lags count most. All three
    parameters are kept non-negative; the length is bounded by 10× the largest lag.
    """
    _need(vg, ("distance_um", "gamma", "n_pairs"), "fit_variogram")
    h, g, n = (vg[c].to_numpy(float) for c in ("distance_um", "gamma", "n_pairs"))
    if len(h) < 3:
        raise ParameterError(f"fit_variogram: {len(h)} lag bin(s), needs at least 3")

    def model(hh: np.ndarray, nug: float, ps: float, length: float) -> np.ndarray:
        return nug + ps * (1 - np.exp(-hh / length))

    sill = float(np.max(g))
    p0 = (min(g[0], sill) * 0.5, sill * 0.5 + 1e-300, h.max() / 3)
    sigma = np.maximum(g, 1e-300) / np.sqrt(np.maximum(n, 1))
    try:
        popt, _ = optimize.curve_fit(model, h, g, p0=p0, sigma=sigma,
                                     bounds=([0, 0, h.min() / 100], [sill, 3 * sill, 10 * h.max()]))
    except (RuntimeError, ValueError) as exc:
        raise ParameterError(f"fit_variogram: exponential fit did not converge ({exc})") from None
    return VariogramFit(*map(float, popt))


def robust_z(values: np.ndarray | pd.Series) -> np.ndarray:
    """0.6745 (x − median) / MAD (Iglewicz & Hoaglin); 0 where MAD is 0 and x equals the median."""
    x = np.asarray(values, float)
    med = np.nanmedian(x)
    mad = np.nanmedian(np.abs(x - med))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = 0.6745 * (x - med) / mad
    return np.where(x == med, 0.0, z)


def flag_outliers(table: pd.DataFrame, by: Sequence[str] = ("metric",),
                  value: str = "value", threshold: float = OUTLIER_Z,
                  lognormal: Collection[str] | None = None) -> pd.DataFrame:
    """The table with ``robust_z`` and ``outlier`` (|robust z| > ``threshold``, 3.5) columns.

    z is computed within each group of ``by`` (default: per metric; add ``wafer`` for per wafer),
    in ln space for log-normal metrics. Median/MAD resist up to half the data being outliers,
    unlike mean/σ which the outliers inflate. Pass trend residuals as ``value`` to flag against a
    spatial trend instead of the raw level.
    """
    _need(table, (value, *by), "flag_outliers")
    out = table.copy()
    z = np.full(len(out), np.nan)
    groups = out.groupby(list(by), sort=False).indices if by else {(): np.arange(len(out))}
    for key, idx in groups.items():
        v = pd.to_numeric(out[value].iloc[idx], errors="coerce").to_numpy(float)
        metric = None
        if "metric" in by:
            metric = key[list(by).index("metric")] if isinstance(key, tuple) else key
        if metric is not None and is_lognormal(metric, _metric_unit(out, metric), lognormal):
            v = np.where(v > 0, np.log(np.where(v > 0, v, 1.0)), np.nan)
        z[idx] = robust_z(v)
    out["robust_z"] = z
    out["outlier"] = np.abs(z) > threshold
    return out


# --------------------------------------------------------------------------------------------
# 4. Yield with failure categories
# --------------------------------------------------------------------------------------------

#: Categories in report order; ``skipped`` devices were not tested and leave the yield denominator.
FAILURE_CATEGORIES = ("pass", "open", "short", "stuck", "no_switching", "compliance",
                      "other", "skipped")


def classify_failure(reason: object) -> str:
    """A failure category from a journal reason (``contact: short``, ``compliance: ...``, ...)
    or a ``classify_devices`` reason (``stuck: ...``, ``no switching: ...``).

    Empty / None / NaN / ``pass`` / ``ok`` → ``pass``; ``operator skipped`` → ``skipped``;
    text containing ``open``, ``short``, ``stuck``, ``no switching`` (or ``no_switching``,
    ``no-switch``) or starting ``compliance`` → that category; anything else → ``other``.
    """
    if reason is None or (isinstance(reason, float) and np.isnan(reason)):
        return "pass"
    text = str(reason).strip().lower()
    if text in ("", "pass", "ok", "done"):
        return "pass"
    if "operator skipped" in text or text == "skipped":
        return "skipped"
    if text.startswith("compliance"):
        return "compliance"
    for cat, needles in (("short", ("short",)), ("open", ("open",)), ("stuck", ("stuck",)),
                         ("no_switching", ("no switching", "no_switching", "no-switch",
                                           "no switch"))):
        if any(n in text for n in needles):
            return cat
    return "other"


#: ``classify_devices`` thresholds. A working dendrite of the paper switches ~10x between its
#: OFF and ON reads (ED3d); a stuck one reads the same state twice, a ratio of 1 within the read
#: noise (about 1 %), so anything below 2x is called stuck. A synapse whose verify reads never
#: leave a +-10 % band (G_max / G_min < 1.2, against a programmed window of ~3x and more) never
#: changed its conductance: stuck.
STUCK_ON_OFF = 2.0
STUCK_G_RATIO = 1.2
#: Metrics whose failed fit means the device never switched in its sweep, with the reason text
#: the extractor gives (``analysis.metrics``): soma V_th, dendrite amplitude threshold, unit
#: firing threshold.
NO_SWITCHING_METRICS: dict[str, tuple[str, ...]] = {
    "v_th": ("no switching",),
    "amplitude_threshold": ("never reaches",),
    "firing_threshold": ("rises at most",),
}


def _reason_has(reasons: pd.Series, needles: tuple[str, ...]) -> pd.Series:
    text = reasons.fillna("").astype(str).str.lower()
    return text.apply(lambda t: any(n in t for n in needles))


def classify_devices(table: pd.DataFrame, keys: Sequence[str] = DEVICE_KEYS, *,
                     on_off_min: float = STUCK_ON_OFF,
                     g_ratio_min: float = STUCK_G_RATIO) -> pd.DataFrame:
    """A failure category per device from its metrics (the failures a contact check misses).

    One row per device (distinct ``keys``; rows with a missing key are left out) with
    ``category`` (``pass``, ``stuck``, ``no_switching``) and ``reason`` (empty for pass; text
    that ``classify_failure`` maps back to the category). Rules, first match wins:

    * ``stuck``: the median ``on_off_ratio`` of the device's ok rows (dendrite-relaxation,
      dendrite-pm-pulses) is below ``on_off_min``;
    * ``stuck``: the median over its runs of ``g_max`` / ``g_min`` (synapse verify reads) is
      below ``g_ratio_min``;
    * ``no_switching``: every row of a metric in ``NO_SWITCHING_METRICS`` failed with that
      metric's no-switching reason (a sweep that never switches; a stuck soma shows this way).

    A device with none of these metrics is ``pass`` here: this looks for stuck and
    non-switching devices among the measured ones, it does not grade the others. Thresholds are
    documented at ``STUCK_ON_OFF`` and ``STUCK_G_RATIO``.
    """
    keys = list(keys)
    _need(table, ("metric", "value", *keys), "classify_devices")
    t = table.assign(value=pd.to_numeric(table["value"], errors="coerce"))
    quality = t["quality"] if "quality" in t.columns else pd.Series("ok", index=t.index)
    reasons = t["reason"] if "reason" in t.columns else pd.Series("", index=t.index)
    rows = []
    for key, dev in t.groupby(keys, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        q, why_col = quality.loc[dev.index], reasons.loc[dev.index]
        ok = dev[(q == "ok") & np.isfinite(dev["value"])]
        category, why = "pass", ""
        ratio = ok.loc[ok["metric"] == "on_off_ratio", "value"]
        if len(ratio) and float(ratio.median()) < on_off_min:
            category = "stuck"
            why = (f"stuck: ON/OFF read ratio {float(ratio.median()):.3g} < {on_off_min:g} "
                   f"(median of {len(ratio)})")
        if category == "pass":
            g = {m: ok[ok["metric"] == m] for m in ("g_min", "g_max")}
            if len(g["g_min"]) and len(g["g_max"]):
                by = "uuid" if "uuid" in ok.columns else None
                lo = g["g_min"].groupby(by)["value"].median() if by else g["g_min"]["value"]
                hi = g["g_max"].groupby(by)["value"].median() if by else g["g_max"]["value"]
                r = float(np.median((hi / lo).dropna())) if by else float(
                    hi.median() / lo.median())
                if r < g_ratio_min:
                    category = "stuck"
                    why = (f"stuck: conductance window G_max/G_min {r:.3g} < {g_ratio_min:g} "
                           "(the verify reads never moved)")
        if category == "pass":
            for metric, needles in NO_SWITCHING_METRICS.items():
                sel = dev["metric"] == metric
                if sel.any() and bool(((q[sel] == "failed")
                                       & _reason_has(why_col[sel], needles)).all()):
                    category = "no_switching"
                    why = f"no switching: {metric} failed in every sweep ({why_col[sel].iloc[0]})"
                    break
        rows.append({**dict(zip(keys, key, strict=True)), "category": category,
                     "reason": why})
    return pd.DataFrame(rows, columns=[*keys, "category", "reason"])


def combine_failures(journal: pd.DataFrame, classified: pd.DataFrame,
                     keys: Sequence[str] = DEVICE_KEYS, reason: str = "reason") -> pd.DataFrame:
    """The journal's devices with ``reason`` filled from ``classify_devices`` where the journal
    has none: a contact verdict (open, short, compliance, skipped) wins, since such a device was
    not measured; a measured device gets its metrics' category. Ready for ``yield_table``."""
    keys = list(keys)
    _need(journal, (reason, *keys), "combine_failures")
    _need(classified, ("reason", *keys), "combine_failures")
    out = journal.merge(classified[[*keys, "reason"]].rename(columns={"reason": "_metric"}),
                        on=keys, how="left")
    empty = out[reason].map(classify_failure) == "pass"
    out.loc[empty, reason] = out.loc[empty, "_metric"].fillna("")
    return out.drop(columns="_metric")


def yield_table(devices: pd.DataFrame, level: str = "die",
                reason: str = "reason") -> pd.DataFrame:
    """Yield and failure counts per group, from one row per device with its ``reason``.

    ``reason`` is the journal's skip reason, or a category assigned by analysis (``stuck``,
    ``no switching``); empty means pass. Columns: group keys, ``n_devices``, ``n_tested``
    (devices not ``skipped``), one count column per ``FAILURE_CATEGORIES`` entry, and ``yield``
    = pass / tested (NaN with nothing tested).
    """
    keys = _level_keys(devices, level)
    _need(devices, (reason, *keys), f"yield_table by {level}")
    cat = devices[reason].map(classify_failure)
    frame = pd.DataFrame({k: devices[k] for k in keys})
    frame["category"] = pd.Categorical(cat, categories=FAILURE_CATEGORIES)
    if keys:
        counts = pd.crosstab([frame[k] for k in keys], frame["category"], dropna=False)
    else:
        counts = frame["category"].value_counts(sort=False).to_frame().T
    counts = counts.reindex(columns=list(FAILURE_CATEGORIES), fill_value=0)
    counts.columns = [str(c) for c in counts.columns]
    counts = counts.reset_index(drop=not keys)
    counts.columns.name = None
    cats = list(FAILURE_CATEGORIES)
    counts.insert(len(keys), "n_devices", counts[cats].sum(axis=1))
    counts.insert(len(keys) + 1, "n_tested", counts["n_devices"] - counts["skipped"])
    with np.errstate(divide="ignore", invalid="ignore"):
        counts["yield"] = np.where(counts["n_tested"] > 0,
                                   counts["pass"] / counts["n_tested"].where(
                                       counts["n_tested"] > 0, 1), np.nan)
    return counts


# --------------------------------------------------------------------------------------------
# 5. Correlation between device kinds at the same site
# --------------------------------------------------------------------------------------------

def correlate_kinds(table: pd.DataFrame, metric_a: str, kind_a: str, metric_b: str, kind_b: str,
                    on: Sequence[str] = SITE_KEYS,
                    lognormal: Collection[str] | None = None) -> dict[str, float]:
    """Pearson and Spearman correlation of two kinds' metrics paired by site.

    A site is a distinct value of ``on`` (default wafer, die, subsite; pass
    ``("wafer", "die_col", "die_row")`` to pair per die). Several rows of one kind at a site are
    reduced to their median. Pearson uses ln values for log-normal metrics; Spearman is rank based
    and needs no transform. Returns ``n``, ``pearson_r``, ``pearson_p``, ``spearman_rho``,
    ``spearman_p``.
    """
    _need(table, ("metric", "value", "device_kind", *on), "correlate_kinds")

    def side(metric: str, kind: str) -> pd.Series:
        rows = table[(table["metric"] == metric) & (table["device_kind"] == kind)]
        if rows.empty:
            raise ParameterError(f"correlate_kinds: no rows for metric {metric!r} of kind {kind!r}")
        v = pd.to_numeric(rows["value"], errors="coerce")
        med = v.groupby([rows[c] for c in on]).median()
        if is_lognormal(metric, _metric_unit(table, metric), lognormal):
            med = np.log(med.where(med > 0))
        return med

    pair = pd.concat([side(metric_a, kind_a).rename("a"), side(metric_b, kind_b).rename("b")],
                     axis=1, join="inner").dropna()
    n = len(pair)
    if n < 3:
        raise ParameterError(f"correlate_kinds: {n} site(s) with both {kind_a} and {kind_b}, "
                             f"needs at least 3")
    pr = stats.pearsonr(pair["a"], pair["b"])
    sr = stats.spearmanr(pair["a"], pair["b"])
    return {"n": n, "pearson_r": float(pr[0]), "pearson_p": float(pr[1]),
            "spearman_rho": float(sr[0]), "spearman_p": float(sr[1])}

"""``dendrolab analyze``: run files in, tables and one offline HTML report out.

Why: after a measurement session the device scientist wants one folder to open — every metric in a
tidy table (CSV for a spreadsheet, Parquet for pandas), the spread per device / die / wafer, the
files that could not be read, and one page to look at. The page must open anywhere without a
network (a lab PC, an e-mail attachment), so it is one self-contained HTML file: tables inline,
figures as base64 PNG, no script, no external URL.

The pipeline is the analysis contract's chain of plain functions: ``catalogue`` (metadata only;
corrupt, truncated, foreign and unfinished files become rows of ``problems``) -> ``extract``
(``on_error="skip"``: a file that fails during extraction also becomes a problem) -> join with the
catalogue (wafer, subsite, position, device kind) -> ``variation.summarize``. Failed metric rows
(quality ``failed``) stay in ``metrics.csv`` with their reason but are left out of the summary.

Grouping (``by``): ``auto`` summarises every level the data allows — the whole set per protocol,
per wafer and per die for wafer runs, per device (wafer + die + subsite for wafer runs, the
``device_id`` attribute for bench runs); ``wafer`` / ``die`` / ``device`` keep only that level,
and with ``wafer`` the report's histograms are split by wafer. Runs without a wafer are grouped as
wafer ``NO_WAFER``.
"""

from __future__ import annotations

import base64
import html
import io
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dendrolab.errors import ParameterError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["BY_CHOICES", "NO_WAFER", "Analysis", "analyze", "run_analysis"]

BY_CHOICES = ("auto", "wafer", "die", "device")
NO_WAFER = "(no wafer)"
#: Files written into ``out_dir``.
METRICS_CSV, METRICS_PARQUET = "metrics.csv", "metrics.parquet"
SUMMARY_CSV, PROBLEMS_CSV, REPORT_HTML = "summary.csv", "problems.csv", "report.html"
#: How many runs get their run plot in the report, and the most histograms drawn.
RUN_PLOTS, MAX_HISTOGRAMS = 4, 48
#: Metric rows shown inline in the HTML (all of them are in metrics.csv).
HTML_METRIC_ROWS = 400

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Analysis:
    """What ``run_analysis`` wrote: the report page, the tables, and the counts the CLI prints."""

    out_dir: Path
    report: Path
    metrics: pd.DataFrame
    summary: pd.DataFrame
    problems: pd.DataFrame
    runs: int


def analyze(sources: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
            out_dir: str | os.PathLike[str], progress: Progress | None = None, *,
            by: str = "auto") -> Path:
    """Analyse run files (folders, globs, files) into ``out_dir``; returns ``report.html``.

    Writes ``metrics.csv``, ``metrics.parquet``, ``summary.csv``, ``problems.csv`` and
    ``report.html``. ``progress(done, total)`` is called after each run file is extracted.
    """
    return run_analysis(sources, out_dir, progress, by=by).report


def run_analysis(sources: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
                 out_dir: str | os.PathLike[str], progress: Progress | None = None, *,
                 by: str = "auto") -> Analysis:
    """``analyze`` returning everything it wrote (see the module docstring)."""
    import pandas as pd

    from analysis.catalogue import catalogue, find_run_files
    from analysis.metrics import extract, to_parquet

    if by not in BY_CHOICES:
        raise ParameterError(f"--by {str(by)[:30]!r}: one of {', '.join(BY_CHOICES)}")
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    sources = list(sources)
    if not sources:
        raise ParameterError("no run files or folders given to analyse")
    if not find_run_files(sources):
        raise ParameterError(f"no run files (*.h5) in {', '.join(map(os.fspath, sources))[:200]}")
    out = Path(os.fspath(out_dir)).expanduser()
    if out.exists() and not out.is_dir():
        raise ParameterError(f"--out {str(out)[-80:]}: is a file; give a folder for the tables")
    out.mkdir(parents=True, exist_ok=True)

    cat = catalogue(sources, cache=False)
    runs = cat.runs
    problems = cat.problems[["path", "kind", "reason"]].copy()
    paths = list(runs["path"])
    parts = []
    for done, path in enumerate(paths, 1):
        parts.append(extract([path], on_error="skip"))
        if progress is not None:
            progress(done, len(paths))
    from analysis.metrics import COLUMNS

    metrics = (pd.concat(parts, ignore_index=True) if parts
               else pd.DataFrame(columns=COLUMNS))
    errors = metrics["metric"] == "error"
    if errors.any():
        bad = metrics.loc[errors, ["path", "reason"]].assign(kind="unreadable")
        problems = pd.concat([problems, bad[["path", "kind", "reason"]]], ignore_index=True)
    metrics = metrics.loc[~errors].reset_index(drop=True)
    metrics = _join(metrics, runs)
    summary = _summarize(metrics, by)

    from analysis.metrics import to_csv

    to_csv(metrics, out / METRICS_CSV)
    to_parquet(metrics, out / METRICS_PARQUET)
    summary.to_csv(out / SUMMARY_CSV, index=False)
    problems.to_csv(out / PROBLEMS_CSV, index=False)
    report = out / REPORT_HTML
    report.write_text(_html(sources, runs, metrics, summary, problems, by), encoding="utf-8")
    return Analysis(out, report, metrics, summary, problems, len(runs))


# ---------------------------------------------------------------------------------------------
# Tables


def _join(metrics: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Add the catalogue's placement columns; ``wafer`` and ``subsite`` as variation wants them."""
    extra = runs[["path", "wafer", "subsite_id", "x_um", "y_um", "device_kind"]]
    out = metrics.merge(extra, on="path", how="left")
    out = out.rename(columns={"subsite_id": "subsite"})
    out["wafer"] = out["wafer"].where(out["wafer"].notna() & (out["wafer"] != ""), None)
    for col in ("die_col", "die_row"):
        out[col] = _int_col(out[col])
    return out


def _int_col(series: pd.Series) -> pd.Series:
    import pandas as pd

    return pd.to_numeric(series, errors="coerce").astype("Int64")


def _summarize(metrics: pd.DataFrame, by: str) -> pd.DataFrame:
    """Summaries per protocol at each level (``level`` column), concatenated."""
    import pandas as pd

    from analysis.variation import summarize

    good = metrics[(metrics["quality"] != "failed") & metrics["value"].notna()]
    frames = []
    for protocol, sub in good.groupby("protocol", sort=True):
        wafer = sub[sub["wafer"].notna()]
        bench = sub[sub["wafer"].isna()]
        parts: list[pd.DataFrame] = []
        if by == "auto":
            parts.append(summarize(sub, "lot").assign(level="all"))
        if by in ("auto", "wafer"):
            table = sub.assign(wafer=sub["wafer"].fillna(NO_WAFER))
            parts.append(summarize(table, "wafer").assign(level="wafer"))
        if by in ("auto", "die") and not wafer.empty:
            parts.append(summarize(wafer, "die").assign(level="die"))
        if by in ("auto", "device"):
            if not wafer.empty:
                parts.append(summarize(wafer, "device").assign(level="device"))
            for device, dev in bench.groupby("device_id", sort=True):
                parts.append(summarize(dev, "lot").assign(level="device", device_id=device))
        for part in parts:
            if not part.empty:
                frames.append(part.assign(protocol=protocol))
    if not frames:
        return pd.DataFrame(columns=["level", "protocol", "metric", "n"])
    summary = pd.concat(frames, ignore_index=True)
    first = [c for c in ("level", "protocol", "wafer", "die_col", "die_row", "subsite",
                         "device_id", "metric") if c in summary.columns]
    return summary[first + [c for c in summary.columns if c not in first]]


# ---------------------------------------------------------------------------------------------
# Figures


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(b64: str, alt: str) -> str:
    return f'<img src="data:image/png;base64,{b64}" alt="{html.escape(alt)}">'


def _histograms(metrics: pd.DataFrame, by: str) -> list[tuple[str, str]]:
    """One histogram per (protocol, metric); log x for log-normal metrics; split by wafer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from analysis.variation import is_lognormal

    good = metrics[(metrics["quality"] != "failed") & np.isfinite(metrics["value"])]
    out = []
    for (protocol, metric), sub in good.groupby(["protocol", "metric"], sort=True):
        if len(out) >= MAX_HISTOGRAMS:
            break
        unit = str(sub["unit"].iloc[0] or "")
        values = sub["value"].to_numpy(float)
        log = is_lognormal(metric, unit) and bool(np.all(values > 0))
        fig, ax = plt.subplots(figsize=(4.2, 2.8))
        groups = ([(w, g["value"].to_numpy(float)) for w, g in
                   sub.assign(wafer=sub["wafer"].fillna(NO_WAFER)).groupby("wafer")]
                  if by == "wafer" else [(None, values)])
        lo, hi = values.min(), values.max()
        if log:
            bins = np.geomspace(lo, hi if hi > lo else lo * 1.001, 16)
            ax.set_xscale("log")
        else:
            bins = np.linspace(lo, hi if hi > lo else lo + (abs(lo) or 1) * 1e-3, 16)
        for label, vals in groups:
            ax.hist(vals, bins=bins, alpha=0.6, label=label)
        if by == "wafer":
            ax.legend(fontsize=7)
        ax.set(xlabel=f"{metric} ({unit or '1'})", ylabel="count",
               title=f"{protocol}: {metric} (n={len(values)})")
        ax.title.set_fontsize(9)
        out.append((f"{protocol}: {metric}", _png(fig)))
    return out


def _wafer_maps(metrics: pd.DataFrame) -> list[tuple[str, str]]:
    """A die map per (wafer, protocol, metric) of wafer runs (``analysis.wafer_plots``); a
    metric the map cannot show (too few values, no placement) is left out, not an error."""
    from analysis.wafer_plots import wafer_map_figure
    from dendrolab.errors import DendrolabError

    rows = metrics[metrics["wafer"].notna() & (metrics["quality"] != "failed")]
    out: list[tuple[str, str]] = []
    for (wafer, protocol, metric), sub in rows.groupby(["wafer", "protocol", "metric"],
                                                       sort=True):
        if len(out) >= MAX_HISTOGRAMS:
            break
        try:
            fig = wafer_map_figure(sub, metric)
        except DendrolabError:
            continue
        fig.axes[0].set_title(f"wafer {wafer}: {protocol} {metric}", fontsize=9)
        out.append((f"wafer {wafer}: {protocol}: {metric}", _png(fig)))
    return out


def _run_plots(runs: pd.DataFrame) -> list[tuple[str, str]]:
    """``analysis.plots.plot_run`` for a few runs, one per protocol first."""
    from analysis.plots import plot_run

    chosen = list(runs.drop_duplicates("protocol")["path"])[:RUN_PLOTS]
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, path in enumerate(chosen):
            png = Path(tmp) / f"run{i}.png"
            try:
                plot_run(path, png)
            except Exception as exc:  # a plot must not lose the tables
                out.append((f"{path}: no plot ({type(exc).__name__})", ""))
                continue
            out.append((str(path), base64.b64encode(png.read_bytes()).decode("ascii")))
    return out


# ---------------------------------------------------------------------------------------------
# HTML

_CSS = """body{font-family:sans-serif;margin:1.5em;max-width:1400px}
table{border-collapse:collapse;font-size:12px;margin:0.5em 0}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}
th{background:#eee}.figs img{margin:4px;border:1px solid #ddd}
.warn{color:#a40}"""


def _table(frame: pd.DataFrame, limit: int | None = None) -> str:
    if frame.empty:
        return "<p>(none)</p>"
    shown = frame if limit is None else frame.head(limit)
    text = shown.to_html(index=False, na_rep="", float_format=lambda x: f"{x:.4g}",
                         border=0, render_links=False, escape=True)
    if limit is not None and len(frame) > limit:
        text += f"<p>first {limit} of {len(frame)} rows; all in the CSV.</p>"
    return text


def _html(sources: list, runs: pd.DataFrame, metrics: pd.DataFrame, summary: pd.DataFrame,
          problems: pd.DataFrame, by: str) -> str:
    esc = html.escape
    parts = ["<!DOCTYPE html>", '<html><head><meta charset="utf-8">',
             "<title>dendrolab analysis</title>", f"<style>{_CSS}</style></head><body>",
             "<h1>dendrolab analysis</h1>",
             f"<p>Sources: {esc(', '.join(map(os.fspath, sources)))}<br>"
             f"{len(runs)} run(s) analysed, {len(metrics)} metric row(s), "
             f"{len(problems)} file(s) skipped; grouping: {esc(by)}.</p>"]
    if len(problems):
        parts += ['<h2 class="warn">Skipped files</h2>', _table(problems)]
    cols = [c for c in ("wafer", "die_col", "die_row", "subsite_label", "device_id",
                        "device_kind", "protocol", "figure", "status", "path")
            if c in runs.columns]
    parts += ["<h2>Runs</h2>", _table(runs[cols], HTML_METRIC_ROWS)]
    show = [c for c in summary.columns if c in ("level", "protocol", "wafer", "die_col",
                                                "die_row", "subsite", "device_id", "metric",
                                                "unit", "space", "n", "median", "sigma_ln",
                                                "cv", "lognorm_sigma", "weibull_shape")]
    parts += ["<h2>Summary</h2>",
              "<p>σ of ln x (<code>sigma_ln</code>) for log-normal metrics, CV for linear ones; "
              "all columns, with the log-normal and Weibull fits, in summary.csv.</p>",
              _table(summary[show], HTML_METRIC_ROWS)]
    parts.append("<h2>Distributions</h2><div class='figs'>")
    parts += [_img(b64, title) for title, b64 in _histograms(metrics, by)]
    maps = _wafer_maps(metrics)
    if maps:
        parts.append("</div><h2>Wafer maps</h2><p>Per-die median of each metric.</p>"
                     "<div class='figs'>")
        parts += [_img(b64, title) for title, b64 in maps]
    parts.append("</div><h2>Runs plotted</h2><div class='figs'>")
    for title, b64 in _run_plots(runs):
        parts.append(f"<p>{esc(title)}</p>" + (_img(b64, title) if b64 else ""))
    mcols = [c for c in metrics.columns if c not in ("uuid", "path", "loop_vars")]
    parts += ["</div><h2>Metrics</h2>", _table(metrics[mcols], HTML_METRIC_ROWS),
              "</body></html>"]
    return "\n".join(parts)


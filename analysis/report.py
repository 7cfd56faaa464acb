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

Scale: extraction goes through ``analysis.parallel.map_files``: in this process by default,
or with ``scheduler`` (``threads``, ``processes``, ``tcp://host:port``) through dask (the optional
``parallel`` extra); each task opens its own file, and the result does not depend on the
scheduler.

Exports: when synapse runs are among the sources (``export=None``, the default) or with
``export=True``, the aihwkit / NeuroSim / MemTorch parameter files of ``analysis.exports`` are
written into ``out_dir`` from the synapse metrics and the step-size curve of those run files,
and listed on the page. A synapse set that cannot be exported (for instance no pulse between
two verify reads) is a note on the page and in ``Analysis.export_note``, not a failed analysis.

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
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dendrolab.errors import DendrolabError, ParameterError, clip

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["BY_CHOICES", "NO_WAFER", "SYNAPSE_PROTOCOLS", "Analysis", "analyze",
           "check_scheduler", "run_analysis"]

BY_CHOICES = ("auto", "wafer", "die", "device")
NO_WAFER = "(no wafer)"
#: Files written into ``out_dir``.
METRICS_CSV, METRICS_PARQUET = "metrics.csv", "metrics.parquet"
SUMMARY_CSV, PROBLEMS_CSV, REPORT_HTML = "summary.csv", "problems.csv", "report.html"
#: How many runs get their run plot in the report, and the most histograms drawn.
RUN_PLOTS, MAX_HISTOGRAMS = 4, 48
#: Histogram panels per row of a protocol's figure.
HIST_COLUMNS = 4
#: Metric rows shown inline in the HTML (all of them are in metrics.csv).
HTML_METRIC_ROWS = 400
#: Protocols whose runs are exported to the network simulators' device files.
SYNAPSE_PROTOCOLS = ("synapse-write-verify", "synapse-ltp-ltd")
_EXTRA = ("dask is not installed; install the optional extra: "
          "pip install 'dendrolab[parallel]'")

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
    exports: dict[str, Path] = field(default_factory=dict)
    export_note: str = ""
    boards: pd.DataFrame | None = None


def analyze(sources: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
            out_dir: str | os.PathLike[str], progress: Progress | None = None, *,
            by: str = "auto", scheduler: str | None = None,
            export: bool | None = None) -> Path:
    """Analyse run files (folders, globs, files) into ``out_dir``; returns ``report.html``.

    Writes ``metrics.csv``, ``metrics.parquet``, ``summary.csv``, ``problems.csv``,
    ``report.html`` and, for synapse runs, the simulator device files (module docstring).
    ``progress(done, total)`` is called as run files are extracted.
    """
    return run_analysis(sources, out_dir, progress, by=by, scheduler=scheduler,
                        export=export).report


def check_scheduler(scheduler: str | None) -> None:
    """Refuse an unknown scheduler, or a dask one without dask installed, before any work."""
    from analysis.parallel import LOCAL_SCHEDULERS

    if scheduler is None or scheduler in ("sync", "synchronous"):
        return
    if not isinstance(scheduler, str) or ("://" not in scheduler
                                          and scheduler not in LOCAL_SCHEDULERS):
        raise ParameterError(f"--scheduler {clip(str(scheduler), 60)!r}: use threads, "
                             "processes or a tcp://host:port address of a dask scheduler")
    try:
        import dask  # noqa: F401
    except ImportError:
        raise DendrolabError(f"--scheduler {clip(scheduler, 60)}: {_EXTRA}") from None


def run_analysis(sources: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
                 out_dir: str | os.PathLike[str], progress: Progress | None = None, *,
                 by: str = "auto", scheduler: str | None = None,
                 export: bool | None = None) -> Analysis:
    """``analyze`` returning everything it wrote (see the module docstring)."""
    import pandas as pd

    from analysis.catalogue import catalogue, find_run_files
    from analysis.metrics import to_parquet
    from analysis.parallel import extract

    if by not in BY_CHOICES:
        raise ParameterError(f"--by {str(by)[:30]!r}: one of {', '.join(BY_CHOICES)}")
    check_scheduler(scheduler)
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
    # board runs (network program / infer) are no device measurements: their own table
    from analysis.board_report import BOARD_CSV, BOARD_KINDS, board_table

    board = runs["protocol"].isin(BOARD_KINDS)
    paths = [str(p) for p in runs.loc[~board, "path"]]
    metrics = extract(paths, scheduler=scheduler, progress=progress)
    boards, board_problems = board_table([str(p) for p in runs.loc[board, "path"]])
    if board_problems:
        problems = pd.concat([problems, pd.DataFrame(board_problems)], ignore_index=True)
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
    if len(boards):
        boards.to_csv(out / BOARD_CSV, index=False)
    exported, note = _exports(metrics, out, export)
    report = out / REPORT_HTML
    report.write_text(_html(sources, runs, metrics, summary, problems, by, exported, note,
                            boards), encoding="utf-8")
    return Analysis(out, report, metrics, summary, problems, len(runs), exported, note,
                    boards if len(boards) else None)


# ---------------------------------------------------------------------------------------------
# Exports


def _exports(metrics: pd.DataFrame, out: Path, export: bool | None
             ) -> tuple[dict[str, Path], str]:
    """Device files for the network simulators from the synapse runs, and a note if none."""
    from analysis.exports import write_exports

    if export is False:
        return {}, ""
    synapse = metrics[metrics["protocol"].isin(SYNAPSE_PROTOCOLS)]
    if synapse.empty:
        return {}, ("no synapse runs (" + ", ".join(SYNAPSE_PROTOCOLS) + "): nothing exported"
                    if export else "")
    runs = sorted(set(synapse["path"]))
    try:
        return write_exports(synapse, out, runs=runs), ""
    except DendrolabError as exc:  # the tables stay useful; say why the files are missing
        return {}, f"not exported: {exc}"


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
    """Histograms of every (protocol, metric): one figure per protocol, a panel per metric
    (at most ``MAX_HISTOGRAMS`` panels in all); log x for log-normal metrics; split by wafer
    with ``by="wafer"``. One figure per protocol draws several times faster than one each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib import ticker

    from analysis.variation import is_lognormal

    good = metrics[(metrics["quality"] != "failed") & np.isfinite(metrics["value"])]
    out, drawn = [], 0
    for protocol, rows in good.groupby("protocol", sort=True):
        groups = list(rows.groupby("metric", sort=True))[:max(MAX_HISTOGRAMS - drawn, 0)]
        if not groups:
            break
        drawn += len(groups)
        cols = min(len(groups), HIST_COLUMNS)
        n_rows = -(-len(groups) // cols)
        fig, axes = plt.subplots(n_rows, cols, figsize=(3.3 * cols, 2.5 * n_rows),
                                 squeeze=False)
        for ax in axes.flat[len(groups):]:
            ax.set_visible(False)
        for ax, (metric, sub) in zip(axes.flat, groups, strict=False):
            unit = str(sub["unit"].iloc[0] or "")
            values = sub["value"].to_numpy(float)
            log = is_lognormal(metric, unit) and bool(np.all(values > 0))
            # within a decade a log axis has no labelled tick: log bins on a linear axis
            log_axis = log and values.max() >= 10 * values.min()
            split = ([(w, g["value"].to_numpy(float)) for w, g in
                      sub.assign(wafer=sub["wafer"].fillna(NO_WAFER)).groupby("wafer")]
                     if by == "wafer" else [(None, values)])
            lo, hi = values.min(), values.max()
            if log:
                bins = np.geomspace(lo, hi if hi > lo else lo * 1.001, 16)
                if log_axis:
                    ax.set_xscale("log")
                    # plain "1e-06" labels: mathtext ones cost more than the rest of the plot
                    ax.xaxis.set_major_formatter(ticker.LogFormatter())
                    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
            else:
                bins = np.linspace(lo, hi if hi > lo else lo + (abs(lo) or 1) * 1e-3, 16)
            if not (log and log_axis):
                ax.xaxis.set_major_locator(ticker.MaxNLocator(4))
            for label, vals in split:
                ax.hist(vals, bins=bins, alpha=0.6, label=label)
            if by == "wafer":
                ax.legend(fontsize=6)
            ax.set_xlabel(f"{metric} ({unit or '1'})", fontsize=8)
            ax.set_title(f"{metric} (n={len(values)})", fontsize=8)
            ax.tick_params(labelsize=7)
        fig.subplots_adjust(wspace=0.3, hspace=0.6)
        fig.suptitle(protocol, fontsize=10, y=1.0 + 0.08 / n_rows)
        out.append((f"{protocol}: {', '.join(m for m, _ in groups)}", _png(fig)))
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


#: Wafer metrics that get the full variation panel set (probability, box, radial, variogram).
VARIATION_METRICS = 4


def _wafer_devices(sources: list, metrics: pd.DataFrame) -> pd.DataFrame | None:
    """One row per device of every wafer run among the sources (folders holding a wafer
    journal), with ``reason``: the journal's contact verdict (open, short, compliance, operator
    skip) or, for a measured device, its metrics' category (``variation.classify_devices``:
    stuck, no switching). None when no source holds a wafer journal."""
    import pandas as pd

    from analysis.variation import DEVICE_KEYS, classify_devices, combine_failures
    from protocols.wafer import JOURNAL, WaferJournal, device_states

    folders: list[Path] = []
    for src in sources:
        path = Path(os.fspath(src))
        if (path / JOURNAL).is_file():
            folders.append(path)
        elif path.is_dir():
            folders += sorted(j.parent for j in path.rglob(JOURNAL))
    frames = []
    for folder in dict.fromkeys(folders):
        try:
            records = WaferJournal.records(folder / JOURNAL)
        except (OSError, ValueError, DendrolabError):
            continue  # an unreadable journal: the run files are still analysed
        head = next((r for r in records if r.get("type") == "wafer"), {})
        devices = pd.DataFrame(list(device_states(records).values()))
        if devices.empty:
            continue
        reason = devices["reason"] if "reason" in devices else pd.Series("", index=devices.index)
        frames.append(pd.DataFrame({
            "wafer": str(head.get("wafer_id") or folder.name), "die_col": devices["col"],
            "die_row": devices["row"], "subsite": devices["site"],
            "reason": reason.fillna("").astype(str)}))
    if not frames:
        return None
    journal = pd.concat(frames, ignore_index=True)
    measured = metrics[metrics["wafer"].notna()].dropna(subset=list(DEVICE_KEYS))
    if measured.empty:
        return journal
    measured = measured.assign(die_col=measured["die_col"].astype(int),
                               die_row=measured["die_row"].astype(int),
                               subsite=pd.to_numeric(measured["subsite"], errors="coerce"))
    classified = classify_devices(measured.dropna(subset=["subsite"]), keys=DEVICE_KEYS)
    classified = classified.assign(subsite=classified["subsite"].astype(int))
    return combine_failures(journal, classified, keys=DEVICE_KEYS)


def _key_wafer_metrics(rows: pd.DataFrame) -> list[tuple[str, str]]:
    """The (protocol, metric) pairs of wafer runs measured on the most dies (at least 6)."""
    dies = (rows.drop_duplicates(["protocol", "metric", "wafer", "die_col", "die_row"])
            .groupby(["protocol", "metric"]).size().sort_values(ascending=False, kind="stable"))
    return [key for key, n in dies.items() if n >= 6][:VARIATION_METRICS]


def _wafer_variation(sources: list, metrics: pd.DataFrame
                     ) -> tuple[pd.DataFrame | None, list[tuple[str, str]]]:
    """Yield table and figures of the wafer runs: a bin map per wafer, and for the key wafer
    metrics a probability plot (log-normal on a probit axis, Weibull), box plots by die and
    radius, the radial trend and the residuals' semivariogram (``analysis.wafer_plots``). A
    figure the data cannot support is left out, not an error."""
    import numpy as np

    from analysis import wafer_plots as wp
    from analysis.variation import yield_table

    figs: list[tuple[str, str]] = []
    devices = _wafer_devices(sources, metrics)
    table = None
    if devices is not None:
        table = yield_table(devices, level="wafer")
        for wafer, sub in devices.groupby("wafer", sort=True):
            try:
                fig = wp.yield_map_figure(sub)
            except DendrolabError:
                continue
            fig.axes[0].set_title(f"wafer {wafer}: bin map", fontsize=9)
            figs.append((f"wafer {wafer}: bin map", _png(fig)))
    rows = metrics[metrics["wafer"].notna() & (metrics["quality"] != "failed")]
    builders = (("probability", wp.probability_plot_figure), ("box", wp.box_plots_figure),
                ("radial trend", wp.radial_trend_figure), ("variogram", wp.variogram_figure))
    for protocol, metric in _key_wafer_metrics(rows):
        sub = rows[(rows["protocol"] == protocol) & (rows["metric"] == metric)]
        for kind, build in builders:
            try:
                fig = build(sub, metric)
            except (DendrolabError, ValueError, np.linalg.LinAlgError):
                continue
            fig.suptitle(f"{protocol}: {metric} ({kind})", fontsize=9)
            figs.append((f"{protocol}: {metric}: {kind}", _png(fig)))
    return table, figs


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


def _exports_html(exported: dict[str, Path], note: str) -> list[str]:
    """The exports section: each file with its key numbers, or why there is none."""
    esc = html.escape
    if not exported:
        return [f"<h2>Exports</h2><p class='warn'>{esc(note)}</p>"] if note else []
    parts = ["<h2>Exports</h2><p>Device parameters for network simulators, in this folder "
             "(mappings: docs/exports.md). Null fields are not measurable from these runs and "
             "keep the simulator's default; the notes say why.</p><ul>"]
    for name, path in exported.items():
        parts.append(f"<li><code>{esc(path.name)}</code> ({esc(name)})</li>")
    parts.append("</ul>")
    aih = json.loads(exported["aihwkit"].read_text()) if "aihwkit" in exported else None
    if aih:
        rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(_fmt(v))}</td>"
                       f"<td>{esc(aih['notes'].get(k, ''))}</td></tr>"
                       for k, v in aih["device"].items())
        parts.append(f"<p>aihwkit {esc(aih['device_class'])}:</p><table>{rows}</table>")
    return parts


def _fmt(value: object) -> str:
    if value is None:
        return "null"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _html(sources: list, runs: pd.DataFrame, metrics: pd.DataFrame, summary: pd.DataFrame,
          problems: pd.DataFrame, by: str, exported: dict[str, Path] | None = None,
          note: str = "", boards: pd.DataFrame | None = None) -> str:
    from analysis.board_report import BOARD_KINDS, board_figures, hardware_section

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
    table, variation = _wafer_variation(sources, metrics)
    if table is not None or variation:
        parts.append("</div><h2>Wafer variation</h2><p>Yield per wafer from the wafer journal "
                     "(contact verdicts) and the metrics (stuck, no switching); bin maps; for "
                     "the metrics measured on the most dies: probability plots (log-normal on a "
                     "probit axis, Weibull), box plots by die and radius, radial trend and the "
                     "semivariogram of its residuals.</p>")
        if table is not None:
            parts.append(_table(table))
        parts.append("<div class='figs'>")
        parts += [_img(b64, title) for title, b64 in variation]
    parts.append("</div>")
    board = runs["protocol"].isin(BOARD_KINDS)
    if boards is not None and len(boards):
        parts += hardware_section(boards, board_figures(list(boards["path"]), _png))
    parts.append("<h2>Runs plotted</h2><div class='figs'>")
    for title, b64 in _run_plots(runs[~board]):
        parts.append(f"<p>{esc(title)}</p>" + (_img(b64, title) if b64 else ""))
    parts.append("</div>")
    parts += _exports_html(exported or {}, note)
    mcols = [c for c in metrics.columns if c not in ("uuid", "path", "loop_vars")]
    parts += ["<h2>Metrics</h2>", _table(metrics[mcols], HTML_METRIC_ROWS),
              "</body></html>"]
    return "\n".join(parts)


"""Turn the children's JSON into the comparison: summary rows, ratios, markdown, CSV, a chart."""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import CASES

LAYERS = (("full", "full stack"), ("driver", "driver"), ("storage", "storage"),
          ("transport2", "transport, 2 msgs"), ("transport1", "transport, 1 msg"))
NOT_INSTALLED = "not installed (pip install -e .[compare])"
# (label, numerator case/layer, denominator case/layer, target, "ge" or "le")
# dendrolab has two full stacks for the same sweep: point by point (one round trip each) and
# buffered (the instrument's list sweep, how a protocol runs a sweep); both are reported.
TARGETS = (
    ("PyMeasure full stack / dendrolab full stack (point by point)", ("pymeasure", "full"),
     ("dendrolab", "full"), 6.0, "ge"),
    ("QCoDeS full stack / dendrolab full stack (point by point)", ("qcodes", "full"),
     ("dendrolab", "full"), 14.0, "ge"),
    ("PyMeasure full stack / dendrolab-buffered full stack", ("pymeasure", "full"),
     ("dendrolab-buffered", "full"), 6.0, "ge"),
    ("QCoDeS full stack / dendrolab-buffered full stack", ("qcodes", "full"),
     ("dendrolab-buffered", "full"), 14.0, "ge"),
    ("dendrolab full stack / raw-dendrosim transport (1 msg)", ("dendrolab", "full"),
     ("raw-dendrosim", "transport1"), 2.0, "le"),
)


# Framework cost above the transport each stack stands on: (case, floor case, floor layer).
OVERHEADS = (
    ("pymeasure", "raw-pyvisa-sim", "transport2"),
    ("qcodes", "raw-pyvisa-sim", "transport2"),
    ("pymeasure-dendrosim", "raw-dendrosim", "transport2"),
    ("qcodes-dendrosim", "raw-dendrosim", "transport2"),
    ("dendrolab-2msg", "raw-dendrosim", "transport2"),
    ("dendrolab", "raw-dendrosim", "transport1"),
)


def overheads(rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Full stack minus the raw loop sending the same messages over the same simulator."""
    base = _above(rows, "dendrolab", "raw-dendrosim", "transport1")
    out = []
    for case, floor, layer in OVERHEADS:
        above = _above(rows, case, floor, layer)
        if above is None:
            continue
        out.append({"case": case, "floor": f"{floor} ({dict(LAYERS)[layer]})",
                    "full_us": rows[case]["full_us_median"],
                    "floor_us": rows[floor][f"{layer}_us_median"], "above_us": above,
                    "vs_dendrolab": above / base if base and base > 0 else None})
    return out


def _above(rows: dict[str, dict[str, Any]], case: str, floor: str, layer: str) -> float | None:
    full = rows.get(case, {}).get("full_us_median")
    ref = rows.get(floor, {}).get(f"{layer}_us_median")
    return None if full is None or ref is None else full - ref


def _stats(values: Sequence[float]) -> tuple[float, float, float] | None:
    return (statistics.median(values), min(values), max(values)) if values else None


def summarize(case: str, runs: list[dict[str, Any]], status: str) -> dict[str, Any]:
    """One row per case: per-layer µs/point median/min/max over the repeats, rows on disk,
    time to first point. ``runs`` hold the child's JSON plus ``ttfp_s`` from the parent."""
    info = CASES[case]
    row: dict[str, Any] = {"case": case, "tool": info.tool, "status": status, "what": info.what,
                           "points": runs[0]["points"] if runs else None, "repeats": len(runs)}
    for layer, _ in LAYERS:
        us = [1e6 * r["layers"][layer]["s"] / r["points"] for r in runs if layer in r["layers"]]
        st = _stats(us)
        for key, value in zip(("median", "min", "max"), st or (None, None, None), strict=True):
            row[f"{layer}_us_{key}"] = value
        row[f"{layer}_points_per_s"] = 1e6 / st[0] if st else None
    disk = [r["layers"]["full"]["rows"] for r in runs if "full" in r["layers"]]
    row["rows_on_disk"] = min(disk) if disk else None
    row["rows_verified"] = bool(disk) and all(d == r["points"] for d, r in
                                             zip(disk, runs, strict=True))
    ttfp = _stats([r["ttfp_s"] for r in runs if r.get("ttfp_s") is not None])
    row["ttfp_s_median"], row["ttfp_s_min"], row["ttfp_s_max"] = ttfp or (None, None, None)
    return row


def headline(row: dict[str, Any]) -> tuple[str, float | None]:
    """The layer a case is judged by: its full stack, else its one-message transport."""
    for layer in ("full", "transport1", "transport2"):
        if row.get(f"{layer}_us_median") is not None:
            return layer, row[f"{layer}_us_median"]
    return "full", None


def ratios(rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for label, (nc, nl), (dc, dl), target, sense in TARGETS:
        num = rows.get(nc, {}).get(f"{nl}_us_median")
        den = rows.get(dc, {}).get(f"{dl}_us_median")
        ratio = num / den if num and den else None
        met = None if ratio is None else (ratio >= target if sense == "ge" else ratio <= target)
        out.append({"label": label, "ratio": ratio, "target": target, "sense": sense,
                    "met": met})
    return out


def _us(row: dict[str, Any], layer: str) -> str:
    med = row.get(f"{layer}_us_median")
    if med is None:
        return "—"
    lo, hi = row[f"{layer}_us_min"], row[f"{layer}_us_max"]
    return f"{_num(med)} [{_num(lo)}–{_num(hi)}]"


def _num(x: float) -> str:
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 1000 else f"{x:,.0f}"


def _rate(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x / 1e6:.2f} M" if x >= 1e6 else f"{x / 1e3:.1f} k" if x >= 1e3 else f"{x:.0f}"


def _mib(kib: float | None) -> str:
    return "—" if kib is None else f"{kib / 1024:.1f}"


def markdown(rows: list[dict[str, Any]], memory: dict[str, dict[str, Any]],
             crashes: dict[str, dict[str, Any]], settings: dict[str, Any],
             versions: dict[str, str]) -> str:
    """The whole report as markdown: per-layer table, memory, crash durability, ratios."""
    lines = [
        f"Sweep of N points (set V on the SMU, read I, persist v, i, t), each case in a fresh "
        f"process, {settings['repeats']} repeats, median [min–max] µs per point; "
        f"{settings['host']}. Generated by `{settings['command']}`.",
        "",
        "| case | N | full stack µs/pt | points/s | driver µs/pt | storage µs/pt "
        "| transport 2 msgs µs/pt | transport 1 msg µs/pt | rows on disk | first point s |",
        "|---|---:|---|---:|---|---|---|---|---|---:|",
    ]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['case']} | | {r['status']} | | | | | | | |")
            continue
        _, med = headline(r)
        rate = _rate(1e6 / med) if med else "—"
        disk = ("—" if r["rows_on_disk"] is None else
                f"{r['rows_on_disk']} {'✓' if r['rows_verified'] else '✗'}")
        ttfp = "—" if r["ttfp_s_median"] is None else f"{r['ttfp_s_median']:.2f}"
        full = _us(r, "full") if r.get("full_us_median") is not None else "— (no storage)"
        lines.append(f"| {r['case']} | {r['points']} | {full} | {rate} | {_us(r, 'driver')} | "
                     f"{_us(r, 'storage')} | {_us(r, 'transport2')} | {_us(r, 'transport1')} | "
                     f"{disk} | {ttfp} |")
    lines += ["", "Cases:", ""]
    lines += [f"* `{r['case']}` ({r['tool']}): {r['what']}." for r in rows]
    lines += [
        "",
        "Layers: *full stack* = the tool's normal data path, store opened and closed inside the "
        "timing; *driver* = the driver calls alone, nothing stored; *storage* = the store call "
        "alone on pre-made rows; *transport* = raw pyvisa `write`/`query`, set and read as two "
        "messages or one compound message. points/s is for the full stack (transport for "
        "raw-dendrosim). *rows on disk* = rows read back after each timed run (✓: = N in every "
        "repeat). *first point* = from the parent spawning the process to the first point "
        "handed to storage (imports + connect + configure + open store), median.",
        "",
    ]
    if memory:
        lines += [f"Memory of the full stack (RSS, one run per case, --memory-points "
                  f"{settings['memory_points']:,}, stopped after {settings['memory_budget_s']:g} s"
                  f" if still running):", "",
                  "| case | points run | RSS after 10^4 pts MiB | RSS at the end MiB "
                  "| growth MiB | bytes/point | µs/pt over the run | µs/pt, last 10^3 pts "
                  "| note |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
        for case, m in memory.items():
            if "error" in m:
                lines.append(f"| {case} | | | | | | | | {m['error']} |")
                continue
            grow = m["rss_end_kib"] - m["rss_mark_kib"]
            span = m["points"] - m["mark_points"]
            per = f"{grow * 1024 / span:.1f}" if span > 0 else "—"
            mark = "" if m["mark_points"] == 10_000 else f" (after {m['mark_points']:,})"
            run_us = "—" if m["us_per_point"] is None else _num(m["us_per_point"])
            lines.append(f"| {case} | {m['points']:,} | {_mib(m['rss_mark_kib'])}{mark} | "
                         f"{_mib(m['rss_end_kib'])} | {_mib(grow)} | {per} | {run_us} | "
                         f"{_num(m['recent_us'])} | {m.get('note', '')} |")
        lines.append("")
    if crashes:
        lines += [f"Crash durability: full stack with a large N, `kill -9` "
                  f"{settings['crash_seconds']:g} s after its first stored point; rows recovered "
                  "from its file by a fresh process:", "",
                  "| case | points handed to storage (counted after each store call) "
                  "| rows recovered | lost | note |",
                  "|---|---:|---:|---:|---|"]
        for case, c in crashes.items():
            if "error" in c:
                lines.append(f"| {case} | | | | {c['error']} |")
                continue
            lost = c["acquired"] - c["recovered"]
            note = c.get("note", "")
            if lost < 0:  # the count follows the store call: a kill in between
                note += f"; {-lost} row stored before it was counted"
                lost = 0
            lines.append(f"| {case} | {c['acquired']:,} | {c['recovered']:,} | {lost:,} | "
                         f"{note} |")
        lines.append("")
    lines += ["Targets (medians of the rows above):", "",
              "| ratio | value | target | |", "|---|---:|---:|---|"]
    for t in ratios({r["case"]: r for r in rows}):
        value = "—" if t["ratio"] is None else f"{t['ratio']:.2f}x"
        goal = ("≥ " if t["sense"] == "ge" else "≤ ") + f"{t['target']:g}x"
        verdict = "n/a" if t["met"] is None else "met" if t["met"] else "missed"
        lines.append(f"| {t['label']} | {value} | {goal} | {verdict} |")
    extra = overheads({r["case"]: r for r in rows})
    if extra:
        lines += ["", "Framework cost above the transport floor (full stack minus the raw loop "
                  "sending the same messages over the same simulator; medians, for "
                  "information):", "",
                  "| case | full stack µs/pt | floor | floor µs/pt | above the floor µs/pt "
                  "| x dendrolab's |", "|---|---:|---|---:|---:|---:|"]
        for o in extra:
            times = "—" if o["vs_dendrolab"] is None else f"{o['vs_dendrolab']:.1f}x"
            lines.append(f"| {o['case']} | {_num(o['full_us'])} | {o['floor']} | "
                         f"{_num(o['floor_us'])} | {_num(o['above_us'])} | {times} |")
    lines += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())) + "."]
    return "\n".join(lines) + "\n"


CSV_FIELDS = ["case", "tool", "status", "points", "repeats"] + [
    f"{layer}_{k}" for layer, _ in LAYERS
    for k in ("us_median", "us_min", "us_max", "points_per_s")] + [
    "rows_on_disk", "rows_verified", "ttfp_s_median", "ttfp_s_min", "ttfp_s_max",
    "memory_points", "rss_mark_mib", "rss_end_mib", "rss_growth_mib", "memory_us_per_point",
    "memory_recent_us_per_point", "memory_note",
    "crash_seconds", "crash_acquired", "crash_recovered", "crash_note"]


def write_csv(path: Path, rows: list[dict[str, Any]], memory: dict[str, dict[str, Any]],
              crashes: dict[str, dict[str, Any]], crash_seconds: float) -> None:
    """One row per case, every layer and measurement as columns."""
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            row = dict(r)
            m = memory.get(r["case"])
            if m and "error" not in m:
                row["memory_points"] = m["points"]
                row["rss_mark_mib"] = m["rss_mark_kib"] / 1024 if m["rss_mark_kib"] else None
                row["rss_end_mib"] = m["rss_end_kib"] / 1024 if m["rss_end_kib"] else None
                if row["rss_mark_mib"] is not None and row["rss_end_mib"] is not None:
                    row["rss_growth_mib"] = row["rss_end_mib"] - row["rss_mark_mib"]
                row["memory_us_per_point"] = m.get("us_per_point")
                row["memory_recent_us_per_point"] = m.get("recent_us")
                row["memory_note"] = m.get("note", "")
            elif m:
                row["memory_note"] = m["error"]
            c = crashes.get(r["case"])
            if c and "error" not in c:
                row["crash_seconds"] = crash_seconds
                row["crash_acquired"], row["crash_recovered"] = c["acquired"], c["recovered"]
                row["crash_note"] = c.get("note", "")
            elif c:
                row["crash_note"] = c["error"]
            w.writerow({k: ("" if v is None else f"{v:.6g}" if isinstance(v, float) else v)
                        for k, v in row.items() if k in CSV_FIELDS})


def write_png(path: Path, rows: list[dict[str, Any]]) -> None:
    """Grouped bars per case, one per layer, µs/point on a log axis, min–max error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    shown = [r for r in rows if r["status"] == "ok"]
    fig, ax = plt.subplots(figsize=(11, 5.5))
    width = 0.8 / len(LAYERS)
    lowest = min((r[f"{layer}_us_min"] for r in shown for layer, _ in LAYERS
                  if r.get(f"{layer}_us_min")), default=1.0)
    for j, (layer, label) in enumerate(LAYERS):
        xs, meds, lo, hi = [], [], [], []
        for i, r in enumerate(shown):
            med = r.get(f"{layer}_us_median")
            if med is None:
                continue
            xs.append(i - 0.4 + width * (j + 0.5))
            meds.append(med)
            lo.append(med - r[f"{layer}_us_min"])
            hi.append(r[f"{layer}_us_max"] - med)
        if xs:
            ax.bar(xs, meds, width, yerr=[lo, hi], capsize=2, label=label)
    ax.set_yscale("log")
    ax.set_ylim(bottom=10 ** math.floor(math.log10(lowest)))  # bars start a decade below
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(  # label 2x and 5x a decade only
        lambda y, _: f"{y:g}" if f"{y:.0e}"[0] in "25" else ""))
    ax.tick_params(axis="y", which="minor", labelsize="x-small")
    ax.set_xticks(range(len(shown)), [r["case"] for r in shown], rotation=15)
    ax.set_ylabel("µs per point (median, min–max)")
    ax.set_title("Set V, read I, persist: µs per point by layer (lower is better)")
    ax.grid(axis="y", which="both", alpha=0.3)
    if shown:
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

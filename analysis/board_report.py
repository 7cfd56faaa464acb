"""Board runs in tables: the programmed map of a run and one summary row per run, for
``dendrolab network program|infer`` (their closing lines), ``dendrolab plot`` (the board figure)
and ``dendrolab analyze`` (``board_runs.csv`` and the "Hardware inference" section).

Why a module of its own: a board run is not a device measurement -- its ~100-600 steps are
cells, calibration ladders and image blocks, not I-V data -- so the per-step metric extractors
(``analysis.metrics``) have nothing to say about it. What a lab wants from it is one row: images,
accuracy, energy and duration per image, failed cells, and whether the software mirror of the
board (``analysis.network.board_runs.closed_loop``, milliseconds) agrees with what the board
decided. Reads run files only (``RunReader`` and ``read_board_run``); never touches instruments.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dendrolab.errors import DendrolabError
from protocols.runfile import RunReader

#: Columns of ``board_runs.csv`` in order.
BOARD_COLUMNS = (
    "file", "kind", "status", "model", "data", "images", "accuracy", "energy_per_image_j",
    "energy_array_j", "energy_dendrite_j", "energy_soma_j", "duration_per_image_s", "cells",
    "failed_cells", "repaired_pairs", "readback_rel_error_median", "pair_error_mean",
    "mirror_agreement", "mirror_accuracy", "software_accuracy", "simulated", "note", "path")
BOARD_CSV = "board_runs.csv"
#: ``protocol_name`` of board runs (``protocols.board_run.KINDS``, without importing it here).
BOARD_KINDS = ("network-program", "network-infer")
#: Board figures drawn into the report at most (each takes about a second).
MAX_FIGURES = 4


@dataclass(frozen=True)
class ProgramMap:
    """Every programmed cell of a board run, one entry per cell (same order in every array).

    ``target_s``: the final target (the network's, or the re-target of a repaired partner);
    ``network_target_s``: the network's target before any repair; ``readback_s``: the read-back
    map (NaN where not read yet); ``converged``: the last write-verify of the cell converged;
    ``repaired``: the cell was re-targeted because its pair partner failed."""

    layer: np.ndarray
    branch: np.ndarray
    row: np.ndarray
    column: np.ndarray
    target_s: np.ndarray
    network_target_s: np.ndarray
    readback_s: np.ndarray
    converged: np.ndarray
    repaired: np.ndarray

    @property
    def cells(self) -> int:
        return int(self.layer.size)

    @property
    def failed(self) -> np.ndarray:
        return ~self.converged

    @property
    def rel_error(self) -> np.ndarray:
        """|read-back - target| / target per cell (NaN where not read back)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.abs(self.readback_s - self.target_s) / self.target_s

    def pair_error(self, window_s: float) -> np.ndarray:
        """Per differential pair: |(G+ - G-) read back - (G+ - G-) of the network| over the
        programming window ``g_max - g_min`` (the weight error a repair aims to keep small)."""
        key = np.stack([self.layer, self.branch, self.row, self.column // 2], axis=1)
        order = np.lexsort((self.column % 2, *key.T[::-1]))
        plus, minus = order[0::2], order[1::2]
        if plus.size != minus.size or not np.array_equal(key[plus], key[minus]):
            return np.full(0, np.nan)
        read = self.readback_s[plus] - self.readback_s[minus]
        want = self.network_target_s[plus] - self.network_target_s[minus]
        return np.abs(read - want) / window_s


def program_map(reader: RunReader) -> ProgramMap:
    """The map of one board run file: program steps, repair steps, read-back steps."""
    cells: dict[tuple[int, int, int, int], list[float]] = {}
    for step in reader.steps:
        lv = step.loop_vars or {}
        if step.rows == 0 or "layer" not in lv:
            continue
        k = int(lv["layer"]) - 1
        kind = step.name.split(" ", 1)[0]
        if kind not in ("program", "repair", "readback"):
            continue
        d = reader.step(step.index)
        b, i = d["branch"].astype(int), d["row"].astype(int)
        cols = (d["column"].astype(int) if kind == "repair"
                else np.full(b.size, int(lv["column"]) - 1))
        for n in range(b.size):
            cell = cells.setdefault((k, int(b[n]), int(i[n]), int(cols[n])),
                                    [math.nan, math.nan, math.nan, 0.0, 0.0])
            if kind == "program":
                cell[0] = cell[1] = float(d["target_s"][n])
                cell[3] = float(d["converged"][n])
            elif kind == "repair":
                cell[0], cell[3], cell[4] = float(d["target_s"][n]), float(d["converged"][n]), 1
            else:
                cell[2] = float(d["g_s"][n])
    keys = sorted(cells)
    idx = np.array(keys, dtype=np.int64).reshape(-1, 4)
    val = np.array([cells[k] for k in keys], dtype=np.float64).reshape(-1, 5)
    return ProgramMap(idx[:, 0], idx[:, 1], idx[:, 2], idx[:, 3], val[:, 0], val[:, 1],
                      val[:, 2], val[:, 3] > 0, val[:, 4] > 0)


def _finite_stat(values: np.ndarray, how: str) -> float:
    v = values[np.isfinite(values)]
    if not v.size:
        return math.nan
    return float({"mean": np.mean, "median": np.median, "max": np.max}[how](v))


def program_lines(pm: ProgramMap, window_s: float) -> list[str]:
    """What a lab reads after programming: cells, failed cells, read-back against target."""
    err = pm.rel_error
    ok = pm.converged
    pair = pm.pair_error(window_s)
    lines = [f"cells: {pm.cells} ({int(pm.repaired.sum())} re-targeted as partners of a failed "
             "cell)",
             f"failed cells (write-verify did not converge): {int(pm.failed.sum())} of "
             f"{pm.cells} ({_pct(pm.failed.mean() if pm.cells else math.nan)})"]
    if np.isfinite(err).any():
        lines.append(f"read-back vs target, relative error: mean {_pct(_finite_stat(err, 'mean'))}"
                     f", max {_pct(_finite_stat(err, 'max'))} (all cells); converged cells: "
                     f"mean {_pct(_finite_stat(err[ok], 'mean'))}, max "
                     f"{_pct(_finite_stat(err[ok], 'max'))}")
        if pair.size:
            lines.append(f"pair weight (G+ - G-) error over the window: mean "
                         f"{_pct(_finite_stat(pair, 'mean'))}, max "
                         f"{_pct(_finite_stat(pair, 'max'))}")
    else:
        lines.append("read-back vs target: no read-back in the file yet")
    return lines


def _pct(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{100 * x:.2f} %"


def board_row(path: str | os.PathLike[str], *, loop: bool = True) -> dict[str, Any]:
    """One row of ``board_runs.csv`` (columns ``BOARD_COLUMNS``). The closed loop (``loop``)
    needs the run's model file where the run file says it is; if it is gone the mirror
    columns are NaN and ``note`` says why."""
    from analysis.network.board_runs import closed_loop, read_board_run
    from protocols.board_run import INFER

    run = read_board_run(path)
    with RunReader(path) as reader:
        pm = program_map(reader)
        status = reader.status
    window = run.board.g_max_s - run.board.g_min_s
    s = run.summary or {}
    energy = s.get("energy_j", {})
    notes = []
    row: dict[str, Any] = {
        "file": Path(path).name, "kind": run.kind, "status": status,
        "model": Path(str(run.attrs.get("model_path", ""))).name,
        "data": str(run.attrs.get("data", "")) if run.kind == INFER else "",
        "images": s.get("images", len(run.images) if run.kind == INFER else math.nan),
        "accuracy": s.get("accuracy", math.nan),
        "energy_per_image_j": float(sum(energy.values())) if energy else math.nan,
        "energy_array_j": energy.get("array", math.nan),
        "energy_dendrite_j": energy.get("dendrite", math.nan),
        "energy_soma_j": energy.get("soma", math.nan),
        "duration_per_image_s": s.get("duration_s", math.nan),
        "cells": run.cells, "failed_cells": run.failed_cells,
        "repaired_pairs": int(pm.repaired.sum()),
        "readback_rel_error_median": _finite_stat(pm.rel_error, "median"),
        "pair_error_mean": _finite_stat(pm.pair_error(window), "mean"),
        "mirror_agreement": math.nan, "mirror_accuracy": math.nan,
        "software_accuracy": math.nan,
        "simulated": bool(run.attrs.get("library_simulator")),
        "path": str(path)}
    if run.kind == INFER and loop:
        try:
            cl = closed_loop(run)
        except (DendrolabError, OSError) as exc:
            notes.append(f"no closed loop: {' '.join(str(exc).split())[:200]}")
        else:
            row.update(mirror_agreement=cl.agreement, mirror_accuracy=cl.mirror_accuracy,
                       software_accuracy=cl.software_accuracy)
    row["note"] = "; ".join(notes)
    return row


def board_table(paths: list[str]) -> tuple[Any, list[dict[str, str]]]:
    """(``board_runs.csv`` as a DataFrame, problems) for board run files; a file that cannot
    be read becomes a problem row (path, kind, reason), not a failed analysis."""
    import pandas as pd

    rows, problems = [], []
    for path in paths:
        try:
            rows.append(board_row(path))
        except (DendrolabError, OSError, KeyError, ValueError) as exc:
            problems.append({"path": str(path), "kind": "unreadable",
                             "reason": " ".join(str(exc).split())[:300] or type(exc).__name__})
    frame = pd.DataFrame(rows, columns=list(BOARD_COLUMNS))
    for col in ("images", "cells", "failed_cells", "repaired_pairs"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("Int64")
    return frame, problems


def board_figures(paths: list[str], png: Callable[[Any], str], limit: int = MAX_FIGURES
                  ) -> list[tuple[str, str]]:
    """(title, base64 PNG from ``png(fig)``) of the board figure of up to ``limit`` runs
    (inference runs first); a figure that fails is a title with an empty image, never a
    failed report."""
    from analysis.board_plots import BOARD_FIGURES

    chosen: list[tuple[str, Any]] = []
    for path in paths:
        try:
            with RunReader(path) as reader:
                kind = str(reader.attrs.get("protocol_name", ""))
        except (DendrolabError, OSError):
            continue
        if kind in BOARD_FIGURES:
            chosen.append((kind, path))
    chosen.sort(key=lambda kp: kp[0] != "network-infer")
    out = []
    for kind, path in chosen[:limit]:
        try:
            with RunReader(path) as reader:
                fig = BOARD_FIGURES[kind](reader)
            out.append((f"{path} ({kind})", png(fig)))
        except Exception as exc:  # a figure must not lose the tables
            out.append((f"{path}: no figure ({type(exc).__name__}: "
                        f"{' '.join(str(exc).split())[:120]})", ""))
    return out


def hardware_section(table: Any, figures: list[tuple[str, str]]) -> list[str]:
    """The report's "Hardware inference" section: the table and the runs' figures (title,
    base64 PNG)."""
    from analysis.network.board_runs import PAPER_INFERENCE_S

    esc = html.escape
    parts = ["<h2>Hardware inference</h2>",
             "<p>Board runs (<code>dendrolab network program</code> / <code>infer</code>): "
             "a trained network programmed onto 1T1R arrays as differential pairs, images "
             "run through the board's dendrites and somas. All columns in "
             f"<code>{BOARD_CSV}</code>; these runs are not in metrics.csv (they are not "
             "device measurements). Energy and duration are per image, on the bench clock "
             "(simulated time on the simulated bench; the paper reports "
             f"{esc(PAPER_INFERENCE_S)} per inference for the optimised unit). Mirror: the "
             "software network with the board's read-back conductances and calibrated "
             "devices, on the same images (agreement: share of images where it predicts what "
             "the board predicted).</p>"]
    show = [c for c in BOARD_COLUMNS if c not in ("path", "energy_array_j",
                                                  "energy_dendrite_j", "energy_soma_j")]
    if len(table):
        parts.append(table[show].to_html(index=False, na_rep="", border=0, escape=True,
                                         float_format=lambda x: f"{x:.4g}"))
    else:
        parts.append("<p>(none)</p>")
    parts.append("<div class='figs'>")
    for title, b64 in figures:
        parts.append(f"<p>{esc(title)}</p>")
        if b64:
            parts.append(f'<img src="data:image/png;base64,{b64}" alt="{esc(title)}">')
    parts.append("</div>")
    return parts


__all__ = ["BOARD_COLUMNS", "BOARD_CSV", "BOARD_KINDS", "ProgramMap", "board_figures",
           "board_row", "board_table",
           "hardware_section", "program_lines", "program_map"]

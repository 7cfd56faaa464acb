"""Programming a trained network onto a board: weight targets, write-verify of every cell through
the matrices, and the read-back map, as steps of a crash-safe run file.

Why steps per word line: the word line of a column is shared by the arrays of a layer, so one
step switches it on once and write-verifies that column's cells of every branch; a kill loses at
most one column, which a resume write-verifies again (cells already on target take one read).
The read-back map (every cell read once after all are written) is what the software mirror of
the board uses. No network arithmetic beyond ``board_math``; no simulator knowledge.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from dendrolab.errors import ParameterError
from protocols import board_math
from protocols.board import Board
from protocols.board_io import BoardIO
from protocols.runfile import DatasetSpec, RunWriter, StepSpec

#: Progress callback: (stage, done, total, extra info for the line).
Progress = Callable[[str, int, int, dict[str, Any]], None]

PROGRAM_DATASETS = (
    DatasetSpec("branch", "", "int64"), DatasetSpec("row", "", "int64"),
    DatasetSpec("target_s", "S"), DatasetSpec("g_s", "S"), DatasetSpec("pulses", "", "int64"),
    DatasetSpec("converged", "", "int8"), DatasetSpec("time_s", "s"))
READBACK_DATASETS = (DatasetSpec("branch", "", "int64"), DatasetSpec("row", "", "int64"),
                     DatasetSpec("g_s", "S"), DatasetSpec("g_std_s", "S"))
#: Reads averaged per cell in the read-back map: a differential pair's weight is a small
#: difference of two conductances, so each device's 2 % read noise matters; 8 reads bring the
#: map's error to ~0.7 % (the inference reads stay single).
READBACK_READS = 8


@dataclass(frozen=True)
class Targets:
    """Per layer, per branch: target conductances (rows, 2 M), columns interleaved as
    ``board_math.columns``; ``w_max`` per layer (the weight a full G+ - G- window stands for)."""

    cols: tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]
    w_max: tuple[float, float]


def check_network(cfg: Any, board: Board) -> None:
    """The network must be the board's shape and use the MATLAB normalisation (one line)."""
    if cfg.variant != "matlab":
        raise ParameterError(
            f"the board runs the MATLAB variant (unipolar dendrite pulses, docs/board.md); this "
            f"model is {cfg.variant!r}: train it with `dendrolab network train --variant matlab`")
    want = (board.layout, board.hidden, board.outputs)
    have = (cfg.layout.name, cfg.n_hidden, cfg.n_out)
    if want != have:
        raise ParameterError(f"the board holds a {want[0]} {want[1]}-hidden, {want[2]}-output "
                             f"network; the model is {have[0]} {have[1]}-hidden, {have[2]}-output")


def layer_rows(cfg: Any) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Which network inputs feed each array's rows, per layer and branch, in row order."""
    return (tuple(np.asarray(b) for b in cfg.layout.hidden_branches),
            tuple(np.asarray(b) for b in cfg.layout.output_branches(cfg.n_hidden)))


def network_targets(params: Any, cfg: Any, board: Board) -> Targets:
    """Differential-pair targets of both weight matrices, split into the branch arrays."""
    check_network(cfg, board)
    cols, w_max = [], []
    for w, rows in zip((params.w1, params.w2), layer_rows(cfg), strict=True):
        g_plus, g_minus, wm = board_math.pair_targets(w, board.g_min_s, board.g_max_s)
        full = board_math.columns(g_plus, g_minus)
        cols.append(tuple(full[r] for r in rows))
        w_max.append(wm)
    return Targets((cols[0], cols[1]), (w_max[0], w_max[1]))


def cells(board: Board, layer: int) -> list[tuple[int, int]]:
    """(branch, row) of every cell on one word line of a layer, in programming order."""
    return [(b, i) for b, a in enumerate(board.layers[layer].arrays) for i in range(a.n_rows)]


REPAIR_DATASETS = (
    DatasetSpec("branch", "", "int64"), DatasetSpec("row", "", "int64"),
    DatasetSpec("column", "", "int64"), DatasetSpec("target_s", "S"), DatasetSpec("g_s", "S"),
    DatasetSpec("pulses", "", "int64"), DatasetSpec("converged", "", "int8"),
    DatasetSpec("time_s", "s"))


def step_plan(board: Board) -> list[tuple[str, int, int]]:
    """(kind, layer, column) of every programming step: write-verify per (layer, word line),
    one repair step per layer (column -1), then the read-back per (layer, word line)."""
    cols = [(k, j) for k, layer in enumerate(board.layers) for j in range(layer.arrays[0].n_cols)]
    return ([("program", k, j) for k, j in cols] + [("repair", k, -1) for k in range(2)]
            + [("readback", k, j) for k, j in cols])


def program_steps(board: Board) -> list[StepSpec]:
    """The programming part of a run layout, in ``step_plan`` order."""
    out = []
    for kind, k, j in step_plan(board):
        n = len(cells(board, k))
        if kind == "repair":
            out.append(StepSpec(f"repair L{k + 1}", n * board.layers[k].arrays[0].n_cols // 2,
                                REPAIR_DATASETS, loop_vars={"layer": k + 1}))
        else:
            out.append(StepSpec(f"{kind} L{k + 1} column {j + 1:03d}", n,
                                PROGRAM_DATASETS if kind == "program" else READBACK_DATASETS,
                                loop_vars={"layer": k + 1, "column": j + 1}))
    return out


@dataclass
class Programmed:
    """What programming has found so far: the write-verify result of each cell, keyed
    (layer, branch, row, column) -> (conductance, converged), and the final targets (the
    network's, with repaired partners re-targeted)."""

    targets: Targets
    results: dict[tuple[int, int, int, int], tuple[float, bool]]

    @classmethod
    def start(cls, targets: Targets) -> Programmed:
        cols = tuple(tuple(a.copy() for a in layer) for layer in targets.cols)
        return cls(Targets((cols[0], cols[1]), targets.w_max), {})

    def repairs(self, board: Board, layer: int) -> list[tuple[int, int, int, float]]:
        """(branch, row, column, new target) of every partner of a cell that failed to
        converge: the partner takes the pair's difference against the failed cell's actual
        conductance, within the window (differential pairs absorb a stuck device)."""
        out = []
        lo, hi = board.g_min_s, board.g_max_s
        for (k, b, i, j), (g, ok) in sorted(self.results.items()):
            partner = j ^ 1
            if k != layer or ok or not self.results.get((k, b, i, partner), (0.0, False))[1]:
                continue
            t = self.targets.cols[k][b][i]
            want = t[j] - t[partner] if j % 2 == 0 else t[partner] - t[j]  # G+ - G-
            new = g - want if j % 2 == 0 else g + want
            out.append((b, i, partner, float(min(max(new, lo), hi))))
        return out

    def offsets(self, original: Targets) -> tuple[tuple[np.ndarray, ...], ...]:
        """Per layer, per branch (rows, 2 M): for both cells of every pair holding a cell that
        failed to converge, its last read conductance minus its original target; 0 elsewhere.

        The host subtracts ``read_v x`` the driven rows' offsets from each column current
        (``board_infer.run_layer``): a failed device (stuck, usually far outside the window,
        which no partner can absorb) then counts with the weight the network asked for. It is
        a digital fix of a known analog defect, like the host's bit-plane sums; the partner's
        repair target is undone the same way, so the pair is back to its original weight."""
        out = [[np.zeros_like(t) for t in layer] for layer in original.cols]
        for (k, b, i, j), (_g, ok) in self.results.items():
            if ok:
                continue
            for c in (j & ~1, j | 1):
                g = self.results.get((k, b, i, c))
                if g is not None:
                    out[k][b][i, c] = g[0] - original.cols[k][b][i, c]
        return tuple(tuple(layer) for layer in out)


def run_program_steps(io: BoardIO, writer: RunWriter, state: Programmed, first: int,
                      start: int, clock: Any, progress: Progress | None = None) -> None:
    """Run the programming steps from ``start`` (file step ``first + i`` is plan step i)."""
    board = io.board
    plan = step_plan(board)
    per_step = [0 if kind == "repair" else len(cells(board, k)) for kind, k, _ in plan]
    total, done = sum(per_step), sum(per_step[:start])
    converged = sum(ok for _g, ok in state.results.values())
    t0 = clock.now()
    with io.biased():
        for i in range(start, len(plan)):
            kind, k, j = plan[i]
            with writer.step(first + i) as out:
                if kind == "repair":
                    for b, row, col, target in state.repairs(board, k):
                        io.select_cell(k, b, row, col)
                        g, pulses, ok, _ = io.write_verify(target)
                        state.targets.cols[k][b][row, col] = target
                        state.results[(k, b, row, col)] = (g, ok)
                        out.append(b, row, col, target, g, pulses, int(ok), clock.now() - t0)
                    continue
                for b, row in cells(board, k):
                    io.select_cell(k, b, row, j)
                    if kind == "program":
                        target = float(state.targets.cols[k][b][row, j])
                        g, pulses, ok, _ = io.write_verify(target)
                        converged += ok
                        state.results[(k, b, row, j)] = (g, ok)
                        out.append(b, row, target, g, pulses, int(ok), clock.now() - t0)
                    else:
                        g = [io.read_selected() for _ in range(READBACK_READS)]
                        out.append(b, row, float(np.mean(g)), float(np.std(g, ddof=1)))
                    done += 1
                if progress is not None:
                    progress(kind, done, total, {"converged": converged})
    io.router.clear()


def programmed_from(reader: Any, board: Board, targets: Targets) -> Programmed:
    """The programming state a run file holds (finished program and repair steps)."""
    state = Programmed.start(targets)
    for step in reader.steps:
        lv = step.loop_vars or {}
        if step.status != "done" or "layer" not in lv:
            continue
        k = int(lv["layer"]) - 1
        if step.name.startswith("program "):
            d, j = reader.step(step.index), int(lv["column"]) - 1
            for b, i, g, ok in zip(d["branch"], d["row"], d["g_s"], d["converged"],
                                   strict=True):
                state.results[(k, int(b), int(i), j)] = (float(g), bool(ok))
        elif step.name.startswith("repair "):
            d = reader.step(step.index)
            for b, i, j, t, g, ok in zip(d["branch"], d["row"], d["column"], d["target_s"],
                                         d["g_s"], d["converged"], strict=True):
                state.targets.cols[k][int(b)][int(i), int(j)] = float(t)
                state.results[(k, int(b), int(i), int(j))] = (float(g), bool(ok))
    return state


def iter_map(reader: Any, board: Board, kind: str = "readback", field: str = "g_s"
             ) -> Iterator[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]]:
    """(layer, column, branch, row, ``field``) of every finished step of one kind in a run
    file (``field``: ``g_s``, or ``target_s`` of the program steps)."""
    for step in list(reader.steps):
        lv = step.loop_vars or {}
        if not step.name.startswith(kind + " ") or "column" not in lv or step.rows == 0:
            continue
        data = reader.step(step.index)
        yield (int(lv["layer"]) - 1, int(lv["column"]) - 1, np.asarray(data["branch"]),
               np.asarray(data["row"]), np.asarray(data[field]))


def conductance_map(reader: Any, board: Board, kind: str = "readback", field: str = "g_s"
                    ) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Per layer, per branch (rows, 2 M) conductances from a run file's read-back (or the
    program steps' last verify reads, or their targets); NaN where a step is missing."""
    maps = [[np.full((a.n_rows, a.n_cols), np.nan) for a in layer.arrays]
            for layer in board.layers]
    for k, j, branch, row, g in iter_map(reader, board, kind, field):
        for b, i, value in zip(branch, row, g, strict=True):
            maps[k][int(b)][int(i), j] = value
    return tuple(maps[0]), tuple(maps[1])

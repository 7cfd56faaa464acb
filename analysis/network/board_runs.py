"""Reading board runs (``network-program`` / ``network-infer`` run files) and closing the loop.

Why here: the inference engine writes what the board measured; this module turns a run file back
into tables (one row per image), the confusion matrix and energy, and into the calibration the
software mirror (``board_mirror``) needs -- read-back conductances and device ladders -- so
``closed_loop`` can say on how many images the software network with the board's own devices
predicts what the board predicted. Reads files only through ``RunReader``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analysis.network.board_mirror import BoardCalibration, Ladder, agreement, mirror
from dendrolab.errors import InstrumentError, RunFileError
from protocols.board import Board
from protocols.board_infer import ENERGY_PARTS, calibration_from
from protocols.board_program import Targets, conductance_map, programmed_from
from protocols.board_run import INFER, KINDS, load_board
from protocols.runfile import RunReader

#: The paper's order of magnitude for one inference of the optimised unit (Li et al. 2020:
#: "tens of microseconds"), quoted next to our simulated duration.
PAPER_INFERENCE_S = "tens of microseconds"


@dataclass
class BoardRun:
    """One board run as tables: ``images`` (one row per image), ``summary`` (or None while
    unfinished), the board, the calibration and its attributes."""

    path: str
    kind: str
    attrs: dict[str, Any]
    board: Board
    images: pd.DataFrame
    summary: dict[str, Any] | None
    calibration: BoardCalibration | None
    failed_cells: int
    cells: int


def _board(attrs: dict[str, Any]) -> Board:
    import yaml

    from instruments.bench_config import parse_bench_config

    config = parse_bench_config(yaml.safe_load(str(attrs["bench_config"])),
                                source=str(attrs.get("bench_path", "bench")))
    return load_board(config)


def _ladders(xs: tuple[tuple[np.ndarray, ...], ...], currents: tuple[tuple[np.ndarray, ...], ...]
             ) -> tuple[tuple[Ladder, ...], ...]:
    return tuple(tuple(Ladder(x, i) for x, i in zip(xl, il, strict=True))
                 for xl, il in zip(xs, currents, strict=True))


def _corrected(reader: RunReader, board: Board, g: tuple[tuple[np.ndarray, ...], ...],
               w_max: tuple[float, ...]) -> tuple[tuple[np.ndarray, ...], ...]:
    """The read-back conductances as the host's sums see them with ``correct_failed``: less
    the failed pairs' known errors (``Programmed.offsets``, from the program and repair steps:
    the same numbers the host used)."""
    original = Targets(conductance_map(reader, board, "program", "target_s"),
                       (float(w_max[0]), float(w_max[1])))
    offsets = programmed_from(reader, board, original).offsets(original)
    return tuple(tuple(gb - ob for gb, ob in zip(gl, ol, strict=True))
                 for gl, ol in zip(g, offsets, strict=True))


def read_board_run(path: str | os.PathLike[str]) -> BoardRun:
    """A board run file as tables (one-line RunFileError for anything else)."""
    with RunReader(path) as reader:
        attrs = dict(reader.attrs)
        kind = str(attrs.get("protocol_name", ""))
        if kind not in KINDS:
            raise RunFileError(f"{path}: not a board run (protocol {kind!r})")
        board = _board(attrs)
        infos = reader.steps  # built once: each access re-reads every step's header
        steps = {s.name: s for s in infos}
        prog = [reader.step(s.index) for s in infos if s.name.startswith("program ") and s.rows]
        cells = int(sum(d["converged"].size for d in prog))
        failed = int(sum(int(np.sum(d["converged"] == 0)) for d in prog))
        images = [reader.to_dataframe(s.index) for s in infos
                  if s.name.startswith("images ") and s.rows]
        frame = pd.concat(images, ignore_index=True) if images else pd.DataFrame()
        summary = None
        if "summary" in steps and steps["summary"].rows:
            d = reader.step("summary")
            summary = {"images": int(d["images"][0]), "correct": int(d["correct"][0]),
                       "accuracy": float(d["accuracy"][0]),
                       "confusion": np.asarray(d["confusion"][0]),
                       "energy_j": dict(zip(ENERGY_PARTS, map(float, d["energy_j"][0]),
                                            strict=True)),
                       "duration_s": float(d["duration_s"][0])}
        calibration, cal = None, None
        done = {n for n, s in steps.items() if s.status == "done"}
        if kind == INFER and {"calibrate dendrites", "calibrate somas"} <= done:
            g = conductance_map(reader, board)
            if all(np.all(np.isfinite(a)) for layer in g for a in layer):
                # the host's own calibration (board_infer): the mirror sees what the host saw
                try:
                    cal = calibration_from(board, reader.step("calibrate dendrites").arrays,
                                           reader.step("calibrate somas").arrays)
                except InstrumentError:  # a dead device: the run stopped there, no mirror
                    cal = None
            if cal is not None:
                w_max = tuple(json.loads(attrs["w_max"]) if isinstance(attrs["w_max"], str)
                              else attrs["w_max"])
                if board.correct_failed:
                    g = _corrected(reader, board, g, w_max)
                calibration = BoardCalibration(
                    g, w_max,
                    _ladders(cal.dendrite_u, cal.dendrite_i), _ladders(cal.soma_v, cal.soma_i))
    return BoardRun(str(path), kind, attrs, board, frame, summary, calibration, failed, cells)


@dataclass
class ClosedLoop:
    """The board against its software mirror on the same images."""

    images: int
    agreement: float
    board_accuracy: float
    mirror_accuracy: float
    software_accuracy: float


def closed_loop(run: BoardRun, *, branch: str = "table") -> ClosedLoop:
    """Run the software mirror (read-back conductances, the board's dendrite and soma ladders)
    on the run's images and compare labels; also the ideal software network's accuracy."""
    from analysis.network.data import load_dataset
    from analysis.network.modelfile import load_model
    from analysis.network.train import evaluate

    if run.calibration is None or run.images.empty:
        raise RunFileError(f"{run.path}: no calibration or no images yet; nothing to compare")
    params, cfg, _meta = load_model(str(run.attrs["model_path"]))
    data = load_dataset(str(run.attrs.get("data", "digits")),
                        svhn_dir=str(run.attrs.get("svhn_dir", "")) or None,
                        seed=int(run.attrs.get("data_seed", 0)))
    index = run.images["index"].to_numpy()
    x, y = data.x_test[index], np.asarray(data.y_test)[index]
    result = mirror(params, cfg, run.board, run.calibration, x, branch=branch)
    board_labels = run.images["predicted"].to_numpy()
    return ClosedLoop(int(index.size), agreement(result.labels, board_labels),
                      float(np.mean(board_labels == y)), float(np.mean(result.labels == y)),
                      float(evaluate(params, cfg, x, y)))

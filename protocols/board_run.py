"""Board runs end to end: check everything, open the bench, program (and for inference calibrate
and run images), write one crash-safe run file, leave every instrument safe; and resume one.

Two kinds of run share this path: ``network-program`` (write-verify every cell, read the map
back) and ``network-infer`` (the same programming pass first -- cells already on target take one
read -- then calibration, the images in blocks of ``board_infer.BLOCK``, and a summary step with
accuracy, confusion matrix, energy and duration per image). A kill loses at most one step; a
resume re-verifies the arrays (an interruption may leave a cell mid-pulse, and a simulated board
forgets its state with its process) and continues, so every image is in the file exactly once.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from dendrolab.errors import ParameterError, RunFileError
from instruments.bench_config import BenchConfig, InstrumentSet, load_bench_config
from instruments.clock import clock_of
from protocols import board_infer as bi
from protocols import board_program as bp
from protocols.board import Board, parse_board
from protocols.board_io import BoardIO
from protocols.runfile import RunLayout, RunReader, RunWriter, StepSpec
from protocols.runner import (
    RunInfo,
    check_out_path,
    finish,
    instrument_specs,
    library_metadata,
)
from protocols.safety import signals_raise

PROGRAM, INFER = "network-program", "network-infer"
KINDS = (PROGRAM, INFER)
Progress = Callable[[str, int, int, dict[str, Any]], None]


@dataclass
class BoardJob:
    """A board run, fully checked before any instrument I/O."""

    kind: str
    board: Board
    config: BenchConfig
    bench_path: Path
    bench_text: str
    model_path: Path
    model_sha256: str
    params: Any
    cfg: Any
    targets: bp.Targets
    data: str = "digits"
    seed: int = 0
    limit: int | None = None
    svhn_dir: str | None = None
    x: np.ndarray | None = None
    y: np.ndarray | None = None

    @property
    def rows(self) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
        return bp.layer_rows(self.cfg)

    def steps(self) -> list[StepSpec]:
        steps = bp.program_steps(self.board)
        if self.kind == INFER:
            assert self.y is not None
            steps += bi.calibration_steps(self.board)
            datasets = bi.image_datasets(self.board)
            for first in range(0, self.y.size, bi.BLOCK):
                n = min(bi.BLOCK, self.y.size - first)
                steps.append(StepSpec(f"images {first + 1:05d}-{first + n:05d}", n, datasets,
                                      block_points=n, loop_vars={"first": first}))
            steps.append(bi.summary_step(self.board))
        return steps


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_board(config: BenchConfig) -> Board:
    """The bench's ``board`` section, parsed against its layout (one-line errors)."""
    from analysis.network.layout import layout_by_name

    if config.board is None:
        raise ParameterError(f"{config.source}: no 'board' section; a board run needs one "
                             "(see protocols/board.py or dendrolab/benches/board-sim.yaml)")
    layout = layout_by_name(str(config.board.get("layout", "digits")))
    board = parse_board(config.board, layout.branch_sizes, layout.output_blocks,
                        source=config.source)
    missing = [r for r in board.roles() if r not in config.roles]
    if missing:
        raise ParameterError(f"{config.source}: the board uses role(s) {missing} that "
                             f"'instruments' does not define")
    _check_limits(board, config)
    return board


def _check_limits(board: Board, config: BenchConfig) -> None:
    """Every voltage the board will apply, against the bench's per-role limits."""
    p = board.program
    wants = [(board.rows_smu, (p["v_reset"], p["v_set"], board.read_v), "rows"),
             (board.gates_smu, (0.0, board.gate_v), "gates")]
    for layer in board.layers:
        wants += [(d.smu, (0.0, board.dendrite["v_max"]), "dendrite") for d in layer.dendrites]
        wants += [(s.smu, (0.0, board.soma["v_max"]), "soma") for s in layer.somas]
    for role, levels, what in wants:
        lim = config.role(role).limits
        for v in levels:
            if not lim.voltage_min_v <= v <= lim.voltage_max_v:
                raise ParameterError(
                    f"board: the {what} driver {role!r} would apply {v:g} V, outside its bench "
                    f"limits [{lim.voltage_min_v:g}, {lim.voltage_max_v:g}] V")


def prepare(kind: str, model_path: str | Path, bench_path: str | Path, *, data: str = "digits",
            limit: int | None = None, svhn_dir: str | None = None) -> BoardJob:
    """Load and check the bench, its board, the model and the images: no instrument I/O."""
    from analysis.network.data import load_dataset
    from analysis.network.modelfile import load_model

    if kind not in KINDS:
        raise ParameterError(f"unknown board run kind {kind!r}")
    bench_path = Path(bench_path)
    config = load_bench_config(bench_path)
    board = load_board(config)
    model_path = Path(model_path)
    params, cfg, meta = load_model(model_path)
    targets = bp.network_targets(params, cfg, board)
    job = BoardJob(kind, board, config, bench_path.resolve(), bench_path.read_text(),
                   model_path.resolve(), _sha256(model_path), params, cfg, targets,
                   data=data, seed=int(meta.get("seed", 0)), limit=limit, svhn_dir=svhn_dir)
    if kind == INFER:
        if limit is not None and limit < 1:
            raise ParameterError(f"--limit must be >= 1, got {limit}")
        ds = load_dataset(data, svhn_dir=svhn_dir, seed=job.seed)
        if ds.layout.name != cfg.layout.name:
            raise ParameterError(f"data set {data!r} has layout {ds.layout.name!r}; the board "
                                 f"holds {cfg.layout.name!r}")
        n = ds.y_test.size if limit is None else min(limit, ds.y_test.size)
        job.x, job.y = np.asarray(ds.x_test[:n]), np.asarray(ds.y_test[:n], dtype=np.int64)
    return job


def _meta(job: BoardJob, instruments: InstrumentSet, info: RunInfo) -> dict[str, Any]:
    describe = {"kind": job.kind, "model": str(job.model_path), "network": job.cfg.describe(),
                "board": job.board.to_dict()}
    meta = {
        "uuid": str(uuid.uuid4()),
        "start_time": datetime.now(timezone.utc).isoformat(),
        "protocol": json.dumps(describe, sort_keys=True, indent=1),
        "protocol_name": job.kind,
        "figure": "board",
        "bench_config": job.bench_text,
        "bench_path": str(job.bench_path),
        "visa_library": job.config.visa_library,
        "operator": info.operator,
        "sample_id": info.sample_id,
        "wafer_id": info.wafer_id,
        "die_id": info.die_id,
        "device_id": "board",
        "model_path": str(job.model_path),
        "model_sha256": job.model_sha256,
        "network": job.cfg.describe(),
        "w_max": list(job.targets.w_max),
        **{f"library_{k}": v for k, v in library_metadata(instruments).items()},
    }
    if job.kind == INFER:
        meta.update({"data": job.data, "data_seed": job.seed, "data_limit": job.limit or 0,
                     "svhn_dir": job.svhn_dir or "", "images": int(job.y.size)})
    return meta


class _Clocked:
    """What ``runner.finish`` needs of an executor: the clock and the elapsed run time."""

    def __init__(self, clock: Any) -> None:
        self.clock, self.t0 = clock, clock.now()

    def elapsed(self) -> float:
        return self.clock.now() - self.t0


def run(job: BoardJob, out_path: str | Path, *, info: RunInfo | None = None,
        progress: Progress | None = None) -> Path:
    """Run a prepared job into a new run file (checked before any I/O); returns its path."""
    out_path = Path(out_path)
    check_out_path(out_path)
    with signals_raise(), InstrumentSet(job.config) as instruments:
        writer = RunWriter.create(out_path, _meta(job, instruments, info or RunInfo()),
                                  RunLayout(tuple(job.steps()), instrument_specs(instruments)))
        _drive(job, instruments, writer, 0, resumed=False, previous=None,
               state=bp.Programmed.start(job.targets), progress=progress)
    return out_path


def resume(path: str | Path, *, progress: Progress | None = None) -> tuple[Path, int | None]:
    """Continue an unfinished board run from its first unfinished step (same bench file and
    model file, checked); returns the path and the step it continued from."""
    path = Path(path)
    with RunReader(path) as reader:
        attrs, status, start = reader.attrs, reader.status, reader.next_step
        kind = str(attrs.get("protocol_name", ""))
        if kind not in KINDS:
            raise RunFileError(f"{path}: not a board run (protocol {kind!r}); use "
                               "`dendrolab resume`")
        if status == "completed":
            raise RunFileError(f"{path} is a completed run; there is nothing to resume")
        job = _job_from(attrs, path)
        previous = _previous(reader) if kind == INFER else None
        state = bp.programmed_from(reader, job.board, job.targets)
    with signals_raise(), InstrumentSet(job.config) as instruments:
        writer = RunWriter.resume(path)
        start = writer.next_step
        _drive(job, instruments, writer, start if start is not None else len(job.steps()),
               resumed=True, previous=previous, state=state, progress=progress)
    return path, start


def _job_from(attrs: dict[str, Any], path: Path) -> BoardJob:
    bench_path, model_path = Path(str(attrs["bench_path"])), Path(str(attrs["model_path"]))
    if not bench_path.is_file() or bench_path.read_text() != str(attrs["bench_config"]):
        raise RunFileError(f"{path}: the bench file {bench_path} is missing or changed since "
                           "the run started; resume needs the same bench")
    if not model_path.is_file() or _sha256(model_path) != str(attrs["model_sha256"]):
        raise RunFileError(f"{path}: the model file {model_path} is missing or changed since "
                           "the run started; resume needs the same model")
    kind = str(attrs["protocol_name"])
    limit = int(attrs.get("data_limit", 0)) or None
    job = prepare(kind, model_path, bench_path, data=str(attrs.get("data", "digits")),
                  limit=limit, svhn_dir=str(attrs.get("svhn_dir", "")) or None)
    if kind == INFER and int(attrs.get("images", -1)) != job.y.size:
        raise RunFileError(f"{path}: the data set no longer gives {attrs.get('images')} images")
    return job


@dataclass
class _Previous:
    """What a resumed inference needs from the file: calibration data and finished images."""

    dend: dict[str, np.ndarray] | None
    soma: dict[str, np.ndarray] | None
    labels: list[int]
    predicted: list[int]
    energy: list[np.ndarray]
    duration: list[float]


def _previous(reader: RunReader) -> _Previous:
    names = {s.name: s for s in reader.steps}
    done = {n for n, s in names.items() if s.status == "done"}
    dend = dict(reader.step("calibrate dendrites").arrays) if "calibrate dendrites" in done \
        else None
    soma = dict(reader.step("calibrate somas").arrays) if "calibrate somas" in done else None
    prev = _Previous(dend, soma, [], [], [], [])
    for s in reader.steps:
        if s.name.startswith("images ") and s.status == "done":
            d = reader.step(s.index)
            prev.labels += d["label"].tolist()
            prev.predicted += d["predicted"].tolist()
            prev.energy += list(d["energy_j"])
            prev.duration += d["duration_s"].tolist()
    return prev


def _drive(job: BoardJob, instruments: InstrumentSet, writer: RunWriter, start: int, *,
           resumed: bool, previous: _Previous | None, state: bp.Programmed,
           progress: Progress | None) -> None:
    """Run the steps from ``start``; safe state, run clock and status at the end, always."""
    clock = clock_of(instruments.rm)
    timer = _Clocked(clock)
    error: BaseException | None = None
    try:
        io = BoardIO(job.board, instruments)
        io.setup()
        n_prog = len(bp.program_steps(job.board))
        if resumed:  # the arrays may not hold what the file says: verify every cell first
            _reverify(io, state, writer, progress)
        if start < n_prog:
            bp.run_program_steps(io, writer, state, 0, start, clock, progress)
        if job.kind == INFER:
            offsets = state.offsets(job.targets) if job.board.correct_failed else None
            _infer(job, io, writer, clock, n_prog, max(start, n_prog), previous, offsets,
                   progress)
        io.idle()
        instruments.check_errors()
    except BaseException as exc:
        error = exc
        raise
    finally:
        finish(writer, instruments, error, timer, start)


def _reverify(io: BoardIO, state: bp.Programmed, writer: RunWriter,
              progress: Progress | None) -> None:
    """Write-verify every cell programmed so far to its final target again, unrecorded except
    for a count in the event log (cells on target take one read)."""
    pulsed = 0
    keys = sorted(state.results)
    with io.biased():
        for n, (k, b, row, j) in enumerate(keys, 1):
            io.select_cell(k, b, row, j)
            _, pulses, _, _ = io.write_verify(float(state.targets.cols[k][b][row, j]))
            pulsed += pulses > 0
            if progress is not None and (n % 256 == 0 or n == len(keys)):
                progress("verify", n, len(keys), {})
    io.router.clear()
    writer.log_event("resume_reverify", {"cells": len(keys), "reprogrammed": int(pulsed)})


def _infer(job: BoardJob, io: BoardIO, writer: RunWriter, clock: Any, first: int, start: int,
           previous: _Previous | None, offsets: tuple[tuple[np.ndarray, ...], ...] | None,
           progress: Progress | None) -> None:
    board = job.board
    assert job.x is not None and job.y is not None
    prev = previous or _Previous(None, None, [], [], [], [])
    dend, soma = prev.dend, prev.soma
    if start <= first:
        with writer.step(first) as out:
            dend = bi.calibrate_dendrites(io, out)
    if start <= first + 1:
        with writer.step(first + 1) as out:
            soma = bi.calibrate_somas(io, out)
    assert dend is not None and soma is not None
    cal = bi.calibration_from(board, dend, soma)
    labels, predicted = list(prev.labels), list(prev.predicted)
    energy, duration = list(prev.energy), list(prev.duration)
    rows = job.rows
    n_images = job.y.size
    blocks = range(0, n_images, bi.BLOCK)
    for k, lo in enumerate(blocks):
        index = first + 2 + k
        if index < start:
            continue
        with writer.step(index) as out:
            for i in range(lo, min(lo + bi.BLOCK, n_images)):
                t0 = clock.now()
                h, o, hidden, label = bi.run_image(io, job.x[i], rows, job.targets.w_max, cal,
                                                   job.cfg.theta, offsets)
                e = h.energy + o.energy
                dt = clock.now() - t0
                out.append(i, int(job.y[i]), label, o.s, o.y, o.i_soma, hidden, e, dt,
                           h.currents, o.currents, h.f, o.f)
                labels.append(int(job.y[i]))
                predicted.append(label)
                energy.append(e)
                duration.append(dt)
                if progress is not None:
                    acc = float(np.mean(np.asarray(labels) == np.asarray(predicted)))
                    progress("infer", len(labels), n_images, {"accuracy": acc})
    if first + 2 + len(blocks) < start:  # killed after the summary was written
        return
    with writer.step(first + 2 + len(blocks)) as out:
        lab, pred = np.asarray(labels), np.asarray(predicted)
        out.append(lab.size, int(np.sum(lab == pred)), float(np.mean(lab == pred)),
                   bi.confusion(lab, pred, board.outputs), np.mean(energy, axis=0),
                   float(np.mean(duration)))

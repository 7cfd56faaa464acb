"""``dendrolab network program | infer | resume``: a trained network on a hardware board.

Why a module of its own: the board commands drive instruments (through ``protocols.board_run``)
where the other ``network`` commands only compute, so they share the main CLI's conventions for
runs -- the bench from ``--bench FILE`` or ``--sim``, the run file checked before anything,
progress on stderr, resumable -- and print what a lab reads after a board run: accuracy,
confusion, energy and duration per image, failed cells, and the closed loop against the software
mirror of the same board. Heavy modules are imported inside the commands; every
``DendrolabError`` is one line (the ``network`` group's ``OneLineErrors``).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

import click

from dendrolab.errors import ParameterError, clip
from dendrolab.network_cli import network, pct

#: Progress stages of ``protocols.board_run`` that count cells, and their labels.
CELL_STAGES = {"program": "programming", "repair": "repairing", "readback": "reading back",
               "verify": "re-verifying"}
BOARD_DOC = ("The board -- 1T1R synapse arrays (weights as differential conductance pairs, "
             "one array per branch), a dendrite per branch and somas shared by the neurons, "
             "behind switch matrices and SMUs -- is described in the `board:` section of the "
             "bench file (format: protocols/board.py; design: docs/board.md). --sim uses the "
             "packaged simulated board (dendrolab/benches/board-sim.yaml: digits 64-32-10).")


def _sim_board() -> Path:
    from importlib import resources

    return Path(str(resources.files("dendrolab") / "benches" / "board-sim.yaml"))


def _board_bench(bench_path: Path | None, sim: bool) -> Path:
    from dendrolab.cli import _is_file

    if bench_path is not None and sim:
        raise ParameterError("give either --bench FILE or --sim, not both")
    if sim:
        return _sim_board()
    if bench_path is None:
        raise ParameterError("no bench: give --bench FILE (a bench file with a 'board' "
                             "section) or --sim (the simulated board)")
    if not _is_file(bench_path):
        raise ParameterError(f"{clip(str(bench_path), 120)}: no such bench file")
    return bench_path


def _out_path(out_path: Path | None, kind: str) -> Path:
    """The run file (default runs/<kind>-<time>.h5), checked before anything else."""
    from dendrolab.cli import check_out_path

    path = out_path or Path("runs") / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}.h5"
    check_out_path(path)
    return path


def _model(path: Path) -> Path:
    from dendrolab.cli import _is_file

    if not _is_file(path):
        raise ParameterError(f"{clip(str(path), 120)}: no such model file (train one with "
                             "`dendrolab network train --variant matlab --out MODEL.npz`)")
    return path


def _board_options(f):
    f = click.option("--operator", default=None, help="Operator name stored in the run file.")(f)
    f = click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
                     default=None,
                     help="Run file to write (default: runs/<command>-<time>.h5); never "
                          "overwritten.")(f)
    f = click.option("--sim", is_flag=True,
                     help="Use the packaged simulated board (dendrolab/benches/"
                          "board-sim.yaml, VISA library @dendrosim).")(f)
    return click.option("--bench", "bench_path",
                        type=click.Path(dir_okay=False, path_type=Path), default=None,
                        help="Bench file: instrument roles and the 'board' section.")(f)


class BoardProgress:
    """Progress bars on stderr for ``board_run``'s callback: one over cells (programming and
    read-back, converged count in the label), one over images (running accuracy in the
    label). Redrawn at most every 0.2 s (every 5 s when stderr is not a terminal)."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.phase = ""
        self.shown = 0
        self.last = 0.0
        # a terminal redraws one line; a log (no tty) gets a line per redraw: fewer of them
        self.every = 0.2 if sys.stderr.isatty() else 5.0

    def __call__(self, stage: str, done: int, total: int, info: dict[str, Any]) -> None:
        phase = "images" if stage == "infer" else "verify" if stage == "verify" else "cells"
        if phase != self.phase:
            self.close()
            self.phase, self.shown = phase, 0
            first = ("images" if phase == "images" else
                     "re-verifying the arrays" if phase == "verify" else "programming")
            self.bar = click.progressbar(length=max(total, 1), label=first, show_eta=True,
                                         show_percent=True, file=sys.stderr).__enter__()
        if stage == "infer":
            label = f"images, accuracy {pct(float(info.get('accuracy', math.nan)))}"
        else:
            label = CELL_STAGES.get(stage, stage)
            if "converged" in info:
                label += f" ({info['converged']} converged)"
        now = time.monotonic()
        if done >= total or now - self.last >= self.every:
            self.bar.label = label
            self.bar.update(max(done - self.shown, 0))
            self.shown, self.last = done, now

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def _run(job: Any, path: Path, operator: str | None) -> float:
    """Run a prepared job into ``path`` with progress bars; returns the wall time."""
    from dendrolab.cli import _make_parent
    from protocols.board_run import run
    from protocols.runner import RunInfo

    info = RunInfo()
    if operator is not None:
        info.operator = operator
    _make_parent(path)
    bar = BoardProgress()
    t0 = time.perf_counter()
    try:
        run(job, path, info=info, progress=bar)
    finally:
        bar.close()
    return time.perf_counter() - t0


def _confusion_lines(conf: Any) -> list[str]:
    n = len(conf)
    width = max(4, len(str(int(max((max(r) for r in conf), default=0)))) + 1)
    head = "true\\pred" + "".join(f"{j:>{width}d}" for j in range(n))
    return [head] + [f"{i:>9d}" + "".join(f"{int(v):>{width}d}" for v in row)
                     for i, row in enumerate(conf)]


def report_lines(path: Path, wall_s: float | None) -> list[str]:
    """What a lab reads after a board run (program or inference), from its run file."""
    from analysis.board_report import program_lines, program_map
    from analysis.network.board_runs import PAPER_INFERENCE_S, closed_loop, read_board_run
    from dendrolab.errors import DendrolabError
    from protocols.board_run import INFER
    from protocols.runfile import RunReader

    run = read_board_run(path)
    with RunReader(path) as reader:
        pm = program_map(reader)
    lines = [f"run file: {path}"]
    if run.kind == INFER and run.summary is not None:
        s = run.summary
        e = s["energy_j"]
        simulated = bool(run.attrs.get("library_simulator"))
        lines += [f"images: {s['images']}",
                  f"board accuracy: {pct(s['accuracy'])} ({s['correct']} of {s['images']})",
                  "confusion matrix (rows: true label, columns: board's prediction):",
                  *("  " + line for line in _confusion_lines(s["confusion"].tolist())),
                  f"energy per image: array reads {e['array']:.3g} J, dendrite pulses "
                  f"{e['dendrite']:.3g} J, soma pulses {e['soma']:.3g} J, total "
                  f"{sum(e.values()):.3g} J",
                  f"duration per image: {s['duration_s']:.3g} s on the bench clock"
                  f"{' (simulated time)' if simulated else ''}; the paper: "
                  f"{PAPER_INFERENCE_S} per inference for the optimised unit"]
    lines += program_lines(pm, run.board.g_max_s - run.board.g_min_s)
    if wall_s is not None:
        lines.append(f"wall time: {wall_s:.1f} s")
    if run.kind == INFER and run.summary is not None:
        try:
            loop = closed_loop(run)
        except (DendrolabError, OSError) as exc:
            lines.append(f"closed loop: not computed ({' '.join(str(exc).split())[:200]})")
        else:
            lines.append(f"closed loop on {loop.images} images: the software mirror (read-back "
                         f"conductances, calibrated devices) agrees with the board on "
                         f"{pct(loop.agreement)}; mirror accuracy {pct(loop.mirror_accuracy)}, "
                         f"ideal software network {pct(loop.software_accuracy)}")
    return lines


PROGRAM_HELP = f"""Write-verify MODEL's weights onto the board's synapse arrays and read the map
back.

Each signed weight becomes a differential pair of conductances (G+ - G-) in the board's
programming window; every cell is write-verified through the switch matrix (SET/RESET pulses
until a read is within tolerance); the partner of a cell that does not converge (a stuck device)
is re-targeted so that the pair still holds the weight; then every cell is read back (8 reads
averaged). The run
file holds targets, results and the read-back map; at the end: cells, failed cells and the
read-back error against target. MODEL: a model file of the board's shape trained with
`dendrolab network train --variant matlab`.

{BOARD_DOC}

Ctrl-C or SIGTERM leaves every source at 0 V and off; `dendrolab resume RUN.h5` continues.
"""


@network.command("program", help=PROGRAM_HELP,
                 short_help="Program MODEL onto the board's arrays; read the map back.")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@_board_options
def program_cmd(model: Path, bench_path: Path | None, sim: bool, out_path: Path | None,
                operator: str | None) -> None:
    from protocols.board_run import PROGRAM, prepare

    path = _out_path(out_path, PROGRAM)   # before the bench, the model or any instrument
    bench = _board_bench(bench_path, sim)
    job = prepare(PROGRAM, _model(model), bench)
    wall = _run(job, path, operator)
    for line in report_lines(path, wall):
        click.echo(line)


INFER_HELP = f"""Run DATA's test images (digits, the default, or svhn) through MODEL on the
board and record every image.

First the programming pass of `dendrolab network program`: the board is write-verified (cells
already on target take one read). A simulated board starts blank in every process, so with --sim
this programs the arrays each time (about 10 s for the packaged board). Then every dendrite
and soma is calibrated, and each image goes in bit-serially on the array rows: the column
currents are summed per branch (less the known error of pairs holding a cell that failed to
program, unless the board section sets correct_failed: false), each branch's dendrite is pulsed
at its normalised input, each soma at its summed drive, and the output somas' currents give the
label. The run file holds per
image: index, label, prediction, soma outputs, energy (array reads, dendrite and soma pulses)
and duration.

At the end: accuracy, confusion matrix, energy and duration per image (on the bench clock:
simulated time with --sim, shown next to the paper's tens of microseconds per inference), wall
time, failed cells, and the closed loop: the software network run with the board's read-back
conductances and calibrated devices (its mirror) against the board's decisions.

{BOARD_DOC}

Ctrl-C or SIGTERM leaves every source at 0 V and off; `dendrolab resume RUN.h5` continues
(every image ends up in the file exactly once).
"""


@network.command("infer", help=INFER_HELP,
                 short_help="Run test images through MODEL on the board; closed loop.")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("data", type=click.Choice(["digits", "svhn"]), default="digits", required=False)
@_board_options
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Only the first N test images.")
@click.option("--svhn-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory with train_32x32.mat and test_32x32.mat (DATA svhn).")
def infer_cmd(model: Path, data: str, bench_path: Path | None, sim: bool,
              out_path: Path | None, operator: str | None, limit: int | None,
              svhn_dir: Path | None) -> None:
    from protocols.board_run import INFER, prepare

    path = _out_path(out_path, INFER)   # before the bench, the model or any instrument
    bench = _board_bench(bench_path, sim)
    job = prepare(INFER, _model(model), bench, data=data, limit=limit,
                  svhn_dir=None if svhn_dir is None else str(svhn_dir))
    wall = _run(job, path, operator)
    for line in report_lines(path, wall):
        click.echo(line)


def resume_board(run_file: Path) -> None:
    """Continue an unfinished board run and print its closing lines (also used by the
    top-level ``dendrolab resume`` for board runs)."""
    from protocols.board_run import resume

    bar = BoardProgress()
    t0 = time.perf_counter()
    try:
        path, start = resume(run_file, progress=bar)
    finally:
        bar.close()
    wall = time.perf_counter() - t0
    click.echo(f"completed {path} (continued from step {start})")
    for line in report_lines(Path(path), wall):
        click.echo(line)


@network.command("resume", short_help="Continue an interrupted board run.")
@click.argument("run_file", type=click.Path(dir_okay=False, path_type=Path))
def resume_cmd(run_file: Path) -> None:
    """Continue an interrupted board run (network program / infer) in RUN_FILE.

    Needs the same bench file and model file (checked). Every programmed cell is write-verified
    again first (an interruption may leave a cell mid-pulse; a simulated board forgets its
    state with its process), then the run continues from its first unfinished step: every image
    ends up in the file exactly once. `dendrolab resume RUN_FILE` does the same.
    """
    from dendrolab.cli import _is_file

    if not _is_file(run_file):
        raise ParameterError(f"{clip(str(run_file), 120)}: no such run file")
    resume_board(run_file)


__all__ = ["BoardProgress", "infer_cmd", "program_cmd", "report_lines", "resume_board",
           "resume_cmd"]

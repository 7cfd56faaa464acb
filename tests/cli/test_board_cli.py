"""``dendrolab network program | infer | resume``, ``plot`` and ``analyze`` on board runs, end to
end on a tiny simulated board (4 hidden neurons, 592 cells), through the command line."""

from __future__ import annotations

import re
import signal
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from dendrolab.cli import main

PNG = b"\x89PNG\r\n\x1a\n"
HIDDEN = 4
#: Cells of the tiny board: 64 inputs x 2 HIDDEN columns (pairs) + HIDDEN x 2 x 10 outputs.
CELLS = 64 * 2 * HIDDEN + HIDDEN * 2 * 10
LIMIT = 10


def cli(*args: object) -> SimpleNamespace:
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return SimpleNamespace(code=result.exit_code, out=result.stdout, err=result.stderr)


def one_line_error(result: SimpleNamespace) -> str:
    assert result.code == 2, (result.out, result.err)
    assert "Traceback" not in result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    return lines[0]


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """A tiny board (bench + roles files), a matlab model of its shape and a pytorch one."""
    from analysis.network.data import load_digits
    from analysis.network.layout import digits_layout
    from analysis.network.model import NetConfig
    from analysis.network.modelfile import save_model
    from analysis.network.train import train
    from sim_backend.board_bench import Shape, write_pair

    tmp = tmp_path_factory.mktemp("board")
    _sim, roles = write_pair(tmp, Shape(hidden=HIDDEN, layer1_somas=2))
    cfg = NetConfig(digits_layout(), HIDDEN, variant="matlab")
    res = train(cfg, load_digits(seed=0), epochs=40, lr=0.1, batch=32, seed=0,
                clamp_grad="pass")
    save_model(tmp / "model.npz", res.params, cfg, seed=0)
    save_model(tmp / "pytorch.npz", res.params,
               NetConfig(digits_layout(), HIDDEN, variant="pytorch"), seed=0)
    return SimpleNamespace(dir=tmp, roles=roles, model=tmp / "model.npz",
                           pytorch=tmp / "pytorch.npz", runs=tmp / "runs")


@pytest.fixture(scope="module")
def runs(board):
    """One program run and one inference run (--limit 10) through the CLI."""
    prog = cli("network", "program", board.model, "--bench", board.roles,
               "--out", board.runs / "program.h5", "--operator", "tester")
    infer = cli("network", "infer", board.model, "digits", "--bench", board.roles,
                "--limit", LIMIT, "--out", board.runs / "infer.h5")
    assert prog.code == 0, prog.err
    assert infer.code == 0, infer.err
    return SimpleNamespace(program=prog, infer=infer, program_h5=board.runs / "program.h5",
                           infer_h5=board.runs / "infer.h5")


def _number(pattern: str, text: str) -> float:
    m = re.search(pattern, text)
    assert m, f"{pattern!r} not in:\n{text}"
    return float(m.group(1))


def test_program_reports_cells_failed_cells_and_readback(runs):
    from analysis.network.board_runs import read_board_run

    run = read_board_run(runs.program_h5)
    assert run.kind == "network-program" and run.cells == CELLS
    assert run.attrs["operator"] == "tester"
    out = runs.program.out
    assert f"cells: {CELLS} " in out
    assert _number(r"failed cells \(write-verify did not converge\): (\d+) of", out) == \
        run.failed_cells
    mean = _number(r"relative error: mean ([\d.]+) %", out)
    worst = _number(r"relative error: mean [\d.]+ %, max ([\d.]+) %", out)
    assert 0 < mean <= worst
    assert f"run file: {runs.program_h5}" in out
    assert "programming (" in runs.program.err and "converged)" in runs.program.err


def test_infer_prints_accuracy_confusion_energy_and_closed_loop(runs):
    from analysis.network.board_runs import closed_loop, read_board_run

    run = read_board_run(runs.infer_h5)
    s = run.summary
    out = runs.infer.out
    assert f"images: {LIMIT}" in out
    assert f"({s['correct']} of {LIMIT})" in out
    assert _number(r"board accuracy: ([\d.]+) %", out) == pytest.approx(100 * s["accuracy"],
                                                                        abs=0.005)
    # the confusion matrix: 10 rows of 10 counts after the header, summing to the images,
    # its diagonal to the correct ones
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if "true\\pred" in line)
    conf = np.array([[int(v) for v in line.split()[1:]] for line in lines[head + 1:head + 11]])
    assert conf.shape == (10, 10) and conf.sum() == LIMIT
    assert np.trace(conf) == s["correct"]
    np.testing.assert_array_equal(conf, s["confusion"])
    parts = [_number(rf"{name} ([\d.e+-]+) J", out)
             for name in ("array reads", "dendrite pulses", "soma pulses", "total")]
    assert parts[3] == pytest.approx(sum(parts[:3]), rel=0.01)
    assert parts[3] == pytest.approx(sum(s["energy_j"].values()), rel=0.01)
    assert "tens of microseconds" in out and "(simulated time)" in out
    assert _number(r"duration per image: ([\d.e+-]+) s", out) == pytest.approx(
        s["duration_s"], rel=0.01)
    assert re.search(r"wall time: [\d.]+ s", out)
    loop = closed_loop(run)
    assert _number(r"agrees with the board on ([\d.]+) %", out) == pytest.approx(
        100 * loop.agreement, abs=0.005)
    assert _number(r"ideal software network ([\d.]+) %", out) == pytest.approx(
        100 * loop.software_accuracy, abs=0.005)
    assert "images, accuracy" in runs.infer.err   # the progress bar's label


@pytest.mark.parametrize("name", ["infer.h5", "program.h5"])
def test_plot_writes_the_board_figure(runs, board, name):
    png = board.dir / f"{name}.png"
    result = cli("plot", board.runs / name, "--out", png)
    assert result.code == 0, result.err
    assert png.read_bytes()[:8] == PNG


def test_analyze_gives_board_table_and_hardware_section(runs, board):
    out = board.dir / "analysis"
    result = cli("analyze", board.runs, "--out", out)
    assert result.code == 0, result.err
    table = pd.read_csv(out / "board_runs.csv").set_index("file")
    assert set(table.index) == {"infer.h5", "program.h5"}
    row = table.loc["infer.h5"]
    assert row["kind"] == "network-infer" and row["images"] == LIMIT
    from analysis.network.board_runs import read_board_run

    s = read_board_run(runs.infer_h5).summary
    assert row["accuracy"] == pytest.approx(s["accuracy"])
    assert row["energy_per_image_j"] == pytest.approx(sum(s["energy_j"].values()))
    assert 0 <= row["mirror_agreement"] <= 1
    assert table.loc["program.h5", "cells"] == CELLS
    assert np.isnan(table.loc["program.h5", "accuracy"])
    html = (out / "report.html").read_text()
    assert "<h2>Hardware inference</h2>" in html and "board_runs.csv" in html
    section = html.split("<h2>Hardware inference</h2>")[1].split("<h2>")[0]
    assert section.count('src="data:image/png;base64,') == 2
    metrics = pd.read_csv(out / "metrics.csv")
    assert metrics.empty   # board runs are not device measurements


def test_resume_of_a_completed_board_run_is_one_line(runs):
    for args in (("resume", runs.infer_h5), ("network", "resume", runs.program_h5)):
        line = one_line_error(cli(*args))
        assert "completed run" in line


def test_interrupted_program_run_resumes_through_dendrolab_resume(board):
    """A run stopped after its first column (as Ctrl-C would) is continued by the top-level
    ``dendrolab resume``, which hands board runs to the board engine."""
    from analysis.network.board_runs import read_board_run
    from protocols import board_run as br
    from protocols.runfile import RunReader
    from protocols.safety import RunInterrupted

    calls = []

    def stop(stage, done, total, info):   # inside the second column's step: the first is kept
        calls.append(done)
        if len(calls) == 2:
            raise RunInterrupted(signal.SIGINT)

    path = board.dir / "interrupted" / "program.h5"
    path.parent.mkdir()
    job = br.prepare(br.PROGRAM, board.model, board.roles)
    with pytest.raises(RunInterrupted):
        br.run(job, path, progress=stop)
    with RunReader(path) as reader:
        assert reader.status == "interrupted" and reader.next_step == 1
    result = cli("resume", path)
    assert result.code == 0, result.err
    assert "completed" in result.out and "(continued from step 1)" in result.out
    assert f"cells: {CELLS} " in result.out
    assert "re-verifying" in result.err
    run = read_board_run(path)
    assert run.attrs["status"] == "completed" and run.cells == CELLS


@pytest.mark.parametrize("case", ["pytorch", "no-board", "both", "exists", "no-model",
                                  "no-bench", "shape"])
def test_bad_input_is_one_line_and_touches_nothing(board, case):
    from importlib import resources

    plain = Path(str(resources.files("dendrolab") / "benches" / "sim.yaml"))
    out = board.dir / "bad" / f"{case}.h5"
    model, bench = board.model, ["--bench", board.roles]
    if case == "pytorch":
        model = board.pytorch
    elif case == "no-board":
        bench = ["--bench", plain]
    elif case == "both":
        bench = ["--bench", board.roles, "--sim"]
    elif case == "exists":
        out.parent.mkdir(exist_ok=True)
        out.write_bytes(b"keep")
    elif case == "no-model":
        model = board.dir / "missing.npz"
    elif case == "no-bench":
        bench = []
    elif case == "shape":
        bench = ["--sim"]   # the packaged board holds 32 hidden neurons, the model 4
    line = one_line_error(cli("network", "infer", model, *bench, "--out", out))
    want = {"pytorch": "matlab", "no-board": "no 'board' section", "both": "not both",
            "exists": "already exists", "no-model": "no such model file",
            "no-bench": "no bench", "shape": "32-hidden"}[case]
    assert want in line
    if case == "exists":
        assert out.read_bytes() == b"keep"
    else:
        assert not out.exists()
    if case in ("pytorch", "no-board", "shape"):   # the same checks guard `program`
        assert want in one_line_error(cli("network", "program", model, *bench, "--out", out))


def test_help_explains_the_board():
    result = cli("network", "infer", "--help")
    assert result.code == 0
    text = " ".join(result.out.split())
    for words in ("protocols/board.py", "docs/board.md", "board-sim.yaml", "starts blank",
                  "tens of microseconds", "closed loop", "--limit", "--svhn-dir"):
        assert words in text, words
    prog = " ".join(cli("network", "program", "--help").out.split())
    assert "differential pair" in prog and "docs/board.md" in prog


def test_board_figures_are_registered_and_kinds_agree():
    from analysis.board_plots import fig_board_infer, fig_board_program
    from analysis.board_report import BOARD_KINDS
    from analysis.figures import builder_for
    from protocols.board_run import KINDS

    assert set(BOARD_KINDS) == set(KINDS)
    assert builder_for("network-infer") is fig_board_infer
    assert builder_for("network-program") is fig_board_program


def test_program_map_errors_on_known_cells():
    """Two pairs: one on target, one with a stuck G- whose G+ partner was re-targeted."""
    from analysis.board_report import ProgramMap

    def arr(*v):
        return np.array(v)

    pm = ProgramMap(layer=arr(0, 0, 0, 0), branch=arr(0, 0, 0, 0), row=arr(0, 0, 1, 1),
                    column=arr(0, 1, 0, 1),
                    target_s=arr(10e-6, 4e-6, 12e-6, 4e-6),
                    network_target_s=arr(10e-6, 4e-6, 8e-6, 4e-6),
                    readback_s=arr(11e-6, 4e-6, 12e-6, 8e-6),
                    converged=arr(True, True, True, False),
                    repaired=arr(False, False, True, False))
    np.testing.assert_allclose(pm.rel_error, [0.1, 0.0, 0.0, 1.0])
    assert pm.failed.tolist() == [False, False, False, True]
    # pair weights over a 10 uS window: (11 - 4) vs (10 - 4): 0.1; (12 - 8) vs (8 - 4): 0
    np.testing.assert_allclose(pm.pair_error(10e-6), [0.1, 0.0], atol=1e-12)

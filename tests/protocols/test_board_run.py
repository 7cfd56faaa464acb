"""Board runs through real drivers on a small simulated board (64-4-10, ``write_pair``).

Programming converges on every cell that can move (the stuck ones are the simulator's own),
a hand-built network recognises hand-built images on the board, the board agrees with its
software mirror, and a kill -9 mid-inference resumes with every image in the file exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

from analysis.network.board_runs import closed_loop, read_board_run
from analysis.network.layout import digits_layout
from analysis.network.model import NetConfig, Params
from analysis.network.modelfile import save_model
from dendrolab.errors import ParameterError, RunFileError
from instruments.bench_config import InstrumentSet, load_bench_config
from protocols import board_run as br
from protocols.board_io import BoardIO
from protocols.runfile import RunReader
from sim_backend.bench import Bench
from sim_backend.board_bench import Shape, write_pair
from sim_backend.physics.synapse import STUCK_NONE

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def board(tmp_path_factory) -> tuple[Path, Path]:
    return write_pair(tmp_path_factory.mktemp("board"), Shape(hidden=4, layer1_somas=2))


def _strips() -> list[np.ndarray]:
    return [np.asarray(b) for b in digits_layout().hidden_branches]


@pytest.fixture(scope="module")
def strip_model(tmp_path_factory) -> Path:
    """Hidden neuron k sums strip k (k < 3); output k is hidden k with weight 10 and the other
    outputs get -0.5 from it: an image lighting strip k is class k, with large margins."""
    w1 = np.zeros((64, 4))
    for k, idx in enumerate(_strips()):
        w1[idx, k] = 1.0
    w2 = np.zeros((4, 10))
    for k in range(3):
        w2[k, :] = -0.5
        w2[k, k] = 10.0
    cfg = NetConfig(digits_layout(), 4, variant="matlab", theta=0.1)
    return save_model(tmp_path_factory.mktemp("model") / "strips.npz",
                      Params(w1.astype(np.float32), w2.astype(np.float32)), cfg, seed=0)


def test_programming_converges_on_every_cell_that_can_move(board, strip_model, tmp_path):
    sim, roles = board
    job = br.prepare(br.PROGRAM, strip_model, roles)
    out = br.run(job, tmp_path / "program.h5")
    run = read_board_run(out)
    assert run.cells == 64 * 8 + 4 * 20 and run.kind == br.PROGRAM
    bench = Bench(yaml.safe_load(sim.read_text())["bench"], base_dir=sim.parent)
    stuck = {}
    for k, layer in enumerate(job.board.layers):
        names = [f"L{k + 1}b{b + 1}" for b in range(len(layer.arrays))]
        stuck[k] = [bench.device(n).stuck() != STUCK_NONE for n in names]
    with RunReader(out) as reader:
        for step in reader.steps:
            if not step.name.startswith("program "):
                continue
            d, k, j = reader.step(step.index), step.loop_vars["layer"] - 1, \
                step.loop_vars["column"] - 1
            for b, i, t, g, ok in zip(d["branch"], d["row"], d["target_s"], d["g_s"],
                                      d["converged"], strict=True):
                assert bool(ok) != bool(stuck[k][b][i, j])   # fails exactly where stuck
                if ok:
                    assert abs(g - t) <= 0.05 * t + 1e-12
        assert reader.status == "completed"
    # the read-back map holds every cell; converged cells read near their target
    g_map = run.calibration  # a program run has no calibration: the map comes from the steps
    assert g_map is None and run.failed_cells == sum(int(s.sum()) for s in
                                                     (*stuck[0], *stuck[1]))


def test_hand_built_network_recognises_hand_built_images(board, strip_model, tmp_path):
    _sim, roles = board
    images = np.zeros((4, 64))
    for k, idx in enumerate(_strips()):
        images[k, idx] = 1.0                     # strip k lit: class k
    images[3, _strips()[1]] = 0.6                # middle strip at 60 %: still class 1
    labels = np.array([0, 1, 2, 1])
    job = br.prepare(br.INFER, strip_model, roles, limit=4)
    job.x, job.y = images, labels
    out = br.run(job, tmp_path / "infer.h5")
    run = read_board_run(out)
    assert run.images["predicted"].tolist() == [0, 1, 2, 1]
    assert run.summary is not None and run.summary["accuracy"] == 1.0
    assert run.summary["confusion"].trace() == 4
    # the lit strip's hidden neuron fires and the others stay silent
    hidden = np.stack(run.images["hidden_code"].to_numpy())
    for k in range(3):
        assert hidden[k, k] > 0 and np.all(np.delete(hidden[k], k) == 0)
    energy = np.stack(run.images["energy_j"].to_numpy())
    assert np.all(energy[:, 0] > 0) and np.all(energy[:, 2] > 0)


def test_refusals_before_any_instrument(board, strip_model, tmp_path):
    _sim, roles = board
    cfg = NetConfig(digits_layout(), 4, variant="pytorch")
    w = Params(np.zeros((64, 4), np.float32), np.zeros((4, 10), np.float32))
    torch_like = save_model(tmp_path / "p.npz", w, cfg, seed=0)
    with pytest.raises(ParameterError, match="MATLAB variant"):
        br.prepare(br.INFER, torch_like, roles)
    big = save_model(tmp_path / "b.npz", Params(np.zeros((64, 8), np.float32),
                                                np.zeros((8, 10), np.float32)),
                     NetConfig(digits_layout(), 8, variant="matlab"), seed=0)
    with pytest.raises(ParameterError, match="4-hidden"):
        br.prepare(br.PROGRAM, big, roles)
    with pytest.raises(ParameterError, match="no 'board' section"):
        br.prepare(br.PROGRAM, strip_model, ROOT / "dendrolab" / "benches" / "sim.yaml")
    existing = tmp_path / "exists.h5"
    existing.write_bytes(b"")
    with pytest.raises(RunFileError, match="already exists"):
        br.run(br.prepare(br.PROGRAM, strip_model, roles), existing)


KILL_SCRIPT = textwrap.dedent("""\
    import os, signal, sys
    from protocols import board_run as br
    model, roles, out, n, kill_at = sys.argv[1:6]
    job = br.prepare(br.INFER, model, roles, limit=int(n))
    def progress(stage, done, total, info):
        if stage == "infer" and done == int(kill_at):
            os.kill(os.getpid(), signal.SIGKILL)
    br.run(job, out, progress=progress)
""")


def test_kill_9_mid_inference_resumes_with_every_image_once(board, tmp_path):
    from analysis.network.data import load_digits
    from analysis.network.train import train

    _sim, roles = board
    cfg = NetConfig(digits_layout(), 4, variant="matlab")
    # 150 epochs: at 40 the 4-hidden network keeps so many neurons at their threshold that
    # the board and its mirror split on a third of the images (agreement is a property of the
    # network's margins as much as of the board)
    res = train(cfg, load_digits(seed=0), epochs=150, lr=0.1, batch=32, seed=0,
                clamp_grad="pass")
    model = save_model(tmp_path / "m.npz", res.params, cfg, seed=0)
    out = tmp_path / "killed.h5"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(model), str(roles), str(out),
                           "25", "15"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with RunReader(out) as reader:
        assert reader.status == "running"
        done_before = sum(s.rows for s in reader.steps if s.name.startswith("images ")
                          and s.status == "done")
    assert done_before == 10          # blocks of 10: the second block was cut mid-way
    path, _start = br.resume(out)
    run = read_board_run(path)
    assert sorted(run.images["index"].tolist()) == list(range(25))   # each image once
    assert run.summary is not None and run.summary["images"] == 25
    with RunReader(path) as reader:
        assert reader.status == "completed"
        kinds = [e.get("kind") for e in reader.events()]
    assert "resume_reverify" in kinds
    loop = closed_loop(run)
    assert loop.images == 25 and loop.agreement >= 0.8
    with pytest.raises(RunFileError, match="completed"):
        br.resume(path)



def _read_plane(roles: Path, masks: list[np.ndarray]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Layer-1 column currents of one bit plane on a fresh board, and array 1's sense roles."""
    config = load_bench_config(roles)
    board = br.load_board(config)
    with InstrumentSet(config) as instruments:
        io = BoardIO(board, instruments)
        io.setup()
        with io.biased():
            currents = io.read_columns(0, masks)
        io.idle()
    return currents, board.layers[0].arrays[0].sense


def test_split_sense_groups_read_the_same_columns_in_half_the_steps(tmp_path):
    """Two sense channels per array (the packaged board's wiring) read every column exactly as
    one channel per array does: the read noise is keyed per cell and read, so the two boards
    (the same cells) give bit-identical currents; only the word-line steps halve."""
    rng = np.random.default_rng(3)
    masks = [rng.random(n) < 0.5 for n in (24, 16, 24)]
    found = {}
    for k in (1, 2):
        folder = tmp_path / f"k{k}"
        folder.mkdir()
        roles = write_pair(folder, Shape(hidden=4, layer1_somas=2, sense_split=(k, k)))[1]
        found[k] = _read_plane(roles, masks)
    (a, sense_a), (b, sense_b) = found[1], found[2]
    assert (len(sense_a), len(sense_b)) == (1, 2)
    assert a.shape == b.shape == (3, 8)
    assert np.all(a > 0) and np.array_equal(a, b)


def test_offsets_undo_the_known_error_of_pairs_with_a_failed_cell():
    """A pair with a failed cell: both cells' offsets are their last reading minus their
    original target (the partner's repair undone too); pairs that converged get 0."""
    from protocols.board_program import Programmed, Targets

    t = np.full((2, 4), 4e-6)
    t[0, 0] = 10e-6                          # pair 0 of row 0 holds w > 0
    original = Targets(((t,), (np.full((1, 2), 4e-6),)), (1.0, 1.0))
    state = Programmed.start(original)
    state.results.update({
        (0, 0, 0, 0): (10.1e-6, True), (0, 0, 0, 1): (20e-6, False),   # G- stuck high
        (0, 0, 0, 2): (4.1e-6, True), (0, 0, 0, 3): (4.0e-6, True),
        (0, 0, 1, 0): (4.0e-6, True), (0, 0, 1, 1): (4.1e-6, True),
        (0, 0, 1, 2): (1.5e-6, False), (0, 0, 1, 3): (4.2e-6, True),   # G+ stuck low
        (1, 0, 0, 0): (4.0e-6, True), (1, 0, 0, 1): (4.0e-6, True)})
    state.results[(0, 0, 0, 0)] = (14e-6, True)   # the repair raised the partner
    (off1,), (off2,) = state.offsets(original)
    want = np.zeros((2, 4))
    want[0, :2] = [14e-6 - 10e-6, 20e-6 - 4e-6]
    want[1, 2:] = [1.5e-6 - 4e-6, 4.2e-6 - 4e-6]
    np.testing.assert_allclose(off1, want, rtol=0, atol=1e-18)
    assert not off2.any()

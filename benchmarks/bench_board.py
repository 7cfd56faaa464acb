"""Hardware inference on the simulated dendritic board: wall time, bench time, energy, accuracy.

Run: ``python benchmarks/bench_board.py [--images N] [--hidden H] [--seed S]``. Trains the
MATLAB-variant digits network (64-H-10, the packaged board holds H = 32; smaller H writes a
board of that shape; seed S for the training and the digits split), programs it onto the board
and runs N test images (default: the whole digits test set), then prints programming and
inference wall time, the bench-clock duration and energy per image (next to the paper's "tens
of microseconds" per inference of the optimised unit), the board's accuracy, the software
network's and the mirror's, and their agreement (issue 14: >= 95 % of images; the digits test
set in <= 60 s).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from analysis.network.board_runs import PAPER_INFERENCE_S, closed_loop, read_board_run
from analysis.network.data import load_digits
from analysis.network.layout import digits_layout
from analysis.network.model import NetConfig
from analysis.network.modelfile import save_model
from analysis.network.train import train
from protocols import board_run as br
from sim_backend.board_bench import Shape, write_pair

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=None, help="test images (default all)")
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the training and of the digits split (as network train)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.hidden == 32:
            roles = ROOT / "dendrolab" / "benches" / "board-sim.yaml"
        else:
            roles = write_pair(folder, Shape(hidden=args.hidden, layer1_somas=min(
                8, 72 - 2 * args.hidden)))[1]
        cfg = NetConfig(digits_layout(), args.hidden, variant="matlab")
        t0 = time.perf_counter()
        res = train(cfg, load_digits(seed=args.seed), epochs=args.epochs, lr=0.1, batch=32,
                    seed=args.seed, clamp_grad="pass")
        model = save_model(folder / "model.npz", res.params, cfg, seed=args.seed)
        print(f"training: {time.perf_counter() - t0:.1f} s")
        job = br.prepare(br.INFER, model, roles, limit=args.images)
        marks: dict[str, float] = {}

        def progress(stage: str, done: int, total: int, info: dict) -> None:
            marks.setdefault(stage, time.perf_counter())

        t0 = time.perf_counter()
        out = br.run(job, folder / "infer.h5", progress=progress)
        t1 = time.perf_counter()
        run = read_board_run(out)
        n = len(run.images)
        program_s = marks.get("infer", t1) - t0
        infer_s = t1 - marks.get("infer", t1)
        s = run.summary
        assert s is not None
        energy = sum(s["energy_j"].values())
        print(f"board 64-{args.hidden}-10: {run.cells} cells programmed, {run.failed_cells} "
              f"did not converge (stuck), programming + read-back + calibration "
              f"{program_s:.1f} s wall")
        print(f"inference: {n} images in {infer_s:.1f} s wall ({infer_s / n * 1e3:.0f} ms per "
              f"image, {n / infer_s:.2f} images/s); the whole infer run (programming the blank "
              f"simulated board included) {t1 - t0:.1f} s")
        print(f"bench clock per image: {s['duration_s'] * 1e3:.1f} ms (paper: "
              f"{PAPER_INFERENCE_S} for the optimised unit)")
        print("energy per image: " + ", ".join(f"{k} {v:.3g} J" for k, v in
                                              s["energy_j"].items()) + f", total {energy:.3g} J")
        loop = closed_loop(run)
        print(f"accuracy: board {loop.board_accuracy:.2%}, software mirror "
              f"{loop.mirror_accuracy:.2%}, ideal software network {loop.software_accuracy:.2%}")
        print(f"agreement board vs mirror: {loop.agreement:.2%} of {loop.images} images")
        labels = run.images["predicted"].to_numpy()
        print(f"predicted label counts: {np.bincount(labels, minlength=10).tolist()}")


if __name__ == "__main__":
    main()

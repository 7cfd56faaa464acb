"""Analysis throughput over many run files: ``python benchmarks/bench_analysis.py [--files 100 1000]
[--schedulers sync threads processes] [--fit]``.

Targets (issue 12, Scale): 100 run files x 10^4 points analysed in <= 2 s on this machine, and
1000 files in <= 10x that (linear). Files are written directly with ``RunWriter`` (one 10^4-point
sweep step each, the run-file layout v2), not through the simulator, so building them is fast.

The timed work is ``analysis.parallel.extract`` (the same table as ``analysis.metrics.extract``)
with the generic per-file reduction (mean |I| per step; protocol ``bench``). ``--fit`` also times
protocol ``iv-sweep`` files, whose extractor fits the branch function to all 10^4 points: that
shows where per-file CPU dominates and dask processes start to pay off.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis import parallel
from protocols.runfile import DatasetSpec, RunLayout, RunWriter, StepSpec

POINTS = 10_000
TARGET_100_S = 2.0


def make_runs(folder: Path, n: int, protocol: str = "bench") -> list[Path]:
    """``n`` completed run files, each one linear sweep of ``POINTS`` points (a = 3 branch I-V)."""
    folder.mkdir(parents=True, exist_ok=True)
    specs = (DatasetSpec("voltage_v", "V"), DatasetSpec("current_a", "A"))
    v = np.linspace(-1.0, 1.0, POINTS)
    rng = np.random.default_rng(0)
    paths = []
    for k in range(n):
        layout = RunLayout((StepSpec("sweep", POINTS, specs, block_points=POINTS,
                                     loop_vars={"die": k}),))
        path = folder / f"run_{k:05d}.h5"
        meta = {"uuid": str(uuid.uuid4()), "start_time": "2026-01-01T00:00:00Z",
                "protocol": protocol + "\n", "protocol_name": protocol, "device_id": f"d{k}"}
        writer = RunWriter.create(path, meta, layout, max_block_s=None)
        g = 1e-4 * (1 + 0.1 * rng.standard_normal())
        i = g * np.sign(v) * np.expm1(3 * np.abs(v)) / np.expm1(3)
        with writer.step(0) as step:
            step.write_block(voltage_v=v, current_a=i)
        writer.close()
        paths.append(path)
    return paths


def time_extract(paths: list[Path], scheduler: str | None, repeats: int = 2) -> tuple[float, int]:
    """Best-of wall time of one ``extract`` over ``paths``; and the number of error rows."""
    best, errors = float("inf"), 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        frame = parallel.extract(paths, scheduler=scheduler)
        best = min(best, time.perf_counter() - t0)
        errors = int((frame["metric"] == "error").sum())
    return best, errors


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--schedulers", nargs="+", default=["sync", "threads", "processes"])
    ap.add_argument("--fit", action="store_true", help="also time iv-sweep files (branch fit)")
    args = ap.parse_args()
    try:
        import dask  # noqa: F401
    except ImportError:
        print("dask not installed: timing the in-process loop only")
        args.schedulers = ["sync"]
    protocols = ["bench", "iv-sweep"] if args.fit else ["bench"]
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for protocol in protocols:
            made: dict[int, list[Path]] = {}
            for n in sorted(set(args.files)):
                t0 = time.perf_counter()
                made[n] = make_runs(Path(tmp) / f"{protocol}_{n}", n, protocol)
                size = sum(p.stat().st_size for p in made[n]) / 1e6
                print(f"made {n:5d} {protocol} files x {POINTS} points in "
                      f"{time.perf_counter() - t0:5.2f} s ({size:.1f} MB)")
            for sched in args.schedulers:
                times = {}
                for n, paths in made.items():
                    times[n], errors = time_extract(paths, None if sched == "sync" else sched)
                    print(f"  {protocol:8s} {sched:9s} {n:5d} files: {times[n]:6.3f} s "
                          f"({1e3 * times[n] / n:5.2f} ms/file, {errors} errors)")
                if protocol == "bench" and sched == "sync":
                    if 100 in times:
                        hit = times[100] <= TARGET_100_S
                        ok &= hit
                        print(f"  target 100 files <= {TARGET_100_S} s: "
                              f"{'met' if hit else 'MISSED'}")
                    if 100 in times and 1000 in times:
                        ratio = times[1000] / times[100]
                        ok &= ratio <= 10.0 * 1.2
                        print(f"  1000/100 files time ratio {ratio:.1f} (linear = 10)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

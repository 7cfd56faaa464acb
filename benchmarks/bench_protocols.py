"""Every built-in protocol on the simulated bench: simulated seconds, wall seconds, their ratio.

Run: ``python benchmarks/bench_protocols.py [NAME ...]``. Each protocol runs through the whole
stack (plan -> drivers -> pyvisa -> ``@dendrosim`` -> HDF5) in this process, from a freshly
reset bench; simulated time is the run clock the runner records (bench seconds), wall time is
``run_protocol`` from call to return (opening the instruments and the file included). A ratio
above 1 means the dry run is faster than the measurement would be on a real bench.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import pyvisa

from dendrolab.cli import _sim_bench
from protocols.library import builtin_names
from protocols.runner import run_clock_s, run_protocol


def run_one(name: str, folder: Path, repeats: int = 3) -> tuple[float, float]:
    """(simulated s, best wall s over ``repeats``) of one protocol from a fresh bench."""
    best, simulated = float("inf"), 0.0
    for k in range(repeats):
        pyvisa.ResourceManager("@dendrosim").visalib.reset()
        path = folder / f"{name}-{k}.h5"
        t0 = time.perf_counter()
        run_protocol(name, _sim_bench(), path)
        best = min(best, time.perf_counter() - t0)
        simulated = run_clock_s(path) or 0.0
    return simulated, best


def main(names: list[str]) -> None:
    names = names or builtin_names()
    print(f"{'protocol':28s} {'simulated s':>12s} {'wall s':>9s} {'sim / wall':>11s}")
    total_sim = total_wall = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "warm-up").mkdir()
        run_one("read", Path(tmp) / "warm-up", repeats=1)  # imports, first bench load
        for name in names:
            simulated, wall = run_one(name, Path(tmp))
            total_sim += simulated
            total_wall += wall
            print(f"{name:28s} {simulated:12.4f} {wall:9.3f} {simulated / wall:10.2f}x")
    print(f"{'all':28s} {total_sim:12.4f} {total_wall:9.3f} {total_sim / total_wall:10.2f}x")
    print("(wall: best of 3, each from a freshly reset bench; simulated: the run clock, bench s)")


if __name__ == "__main__":
    main(sys.argv[1:])

"""Run-file writer speed, size and crash durability: ``python benchmarks/bench_runfile.py
[--kills N]``.

Targets: >= 1 M points/s for 10^6 float64 points in 10^4-point blocks flushed per block; a few us
per appended point; <= 64 KiB of fixed overhead for a small run (built-in `read` and `iv-sweep`
on @dendrosim); a kill -9 anywhere leaves a plain-h5py-readable file (<= 1 block lost).
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

from protocols.runfile import DatasetSpec, RunLayout, RunWriter, StepSpec

N = 1_000_000
BLOCK = 10_000
META = {"start_time": "2026-01-01T00:00:00Z", "protocol": "bench\n"}


def _writer(path: Path, datasets: tuple[DatasetSpec, ...], n: int, block: int,
            compression: str | None = "gzip", max_block_s: float | None = None) -> RunWriter:
    layout = RunLayout((StepSpec("s", n, datasets, block_points=block),), compression=compression)
    return RunWriter.create(path, {"uuid": str(uuid.uuid4()), **META}, layout,
                            max_block_s=max_block_s)


def block_writes(folder: Path, names: tuple[str, ...], compression: str | None,
                 repeats: int = 3) -> tuple[float, float, int]:
    """Best-of points/s for the write loop and for create..close; file size in bytes."""
    rng = np.random.default_rng(0)
    columns = {"voltage_v": np.linspace(-1.0, 1.0, N),
               "current_a": 1e-6 * (1 + 0.01 * rng.standard_normal(N)),
               "time_s": np.arange(N) * 1e-5}
    units = {"voltage_v": "V", "current_a": "A", "time_s": "s"}
    specs = tuple(DatasetSpec(n, units[n]) for n in names)
    best_loop = best_total = 0.0
    size = 0
    for r in range(repeats):
        path = folder / f"block_{len(names)}_{compression}_{r}.h5"
        t0 = time.perf_counter()
        writer = _writer(path, specs, N, BLOCK, compression)
        with writer.step(0) as step:
            t1 = time.perf_counter()
            for a in range(0, N, BLOCK):
                step.write_block(**{n: columns[n][a : a + BLOCK] for n in names})
            t2 = time.perf_counter()
        writer.close()
        t3 = time.perf_counter()
        best_loop, best_total = max(best_loop, N / (t2 - t1)), max(best_total, N / (t3 - t0))
        size = path.stat().st_size
    return best_loop, best_total, size


def append_cost(folder: Path, max_block_s: float | None, n: int = 200_000) -> float:
    """Microseconds per appended 3-value row, flushes included (best of 3)."""
    specs = (DatasetSpec("voltage_v", "V"), DatasetSpec("current_a", "A"),
             DatasetSpec("time_s", "s"))
    values = [(0.1 * (k % 50), 1e-6 * k, 1e-3 * k) for k in range(n)]
    best = float("inf")
    for r in range(3):
        writer = _writer(folder / f"append_{max_block_s}_{r}.h5", specs, n, 4096,
                         max_block_s=max_block_s)
        with writer.step(0) as step:
            append = step.append
            t0 = time.perf_counter()
            for v, i, t in values:
                append(v, i, t)
            best = min(best, (time.perf_counter() - t0) / n)
        writer.close()
    return best * 1e6


def small_steps(folder: Path, n_steps: int = 2000) -> tuple[float, float]:
    """Plans with many tiny steps (3 points, e.g. endurance cycles): create s, ms per step."""
    specs = (DatasetSpec("voltage_v", "V"), DatasetSpec("current_a", "A"),
             DatasetSpec("time_s", "s"))
    steps = tuple(StepSpec(f"cycle{i}", 3, specs) for i in range(n_steps))
    t0 = time.perf_counter()
    writer = RunWriter.create(folder / "small.h5", {"uuid": str(uuid.uuid4()), **META},
                              RunLayout(steps))
    t1 = time.perf_counter()
    ones = np.ones(3)
    for i in range(n_steps):
        with writer.step(i) as step:
            step.write_block(voltage_v=ones, current_a=ones, time_s=ones)
    t2 = time.perf_counter()
    writer.close()
    return t1 - t0, (t2 - t1) / n_steps * 1e3


def small_run_sizes(folder: Path) -> dict[str, dict[str, int]]:
    """Bytes of the built-in small runs on the packaged simulated bench: file, payload, overhead
    (docs/runfile.md, File size)."""
    from dendrolab.cli import _sim_bench
    from protocols.runfile_reader import size_report
    from protocols.runner import run_protocol

    out = {}
    for protocol in ("read", "iv-sweep"):
        path = run_protocol(protocol, _sim_bench(), folder / f"size_{protocol}.h5")
        out[protocol] = size_report(path)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kills", type=int, default=20, help="kill -9 cycles (0 to skip)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(f"block writes: {N:,} float64 points per dataset, {BLOCK:,}-point blocks, "
              "durable (flushed + journalled) per block")
        for names, comp in ((("current_a",), "gzip"), (("current_a",), None),
                            (("voltage_v", "current_a", "time_s"), "gzip")):
            loop, total, size = block_writes(folder, names, comp)
            print(f"  {len(names)} dataset(s), {comp or 'uncompressed':>12}: "
                  f"{loop / 1e6:6.2f} M rows/s in the loop, {total / 1e6:6.2f} M rows/s "
                  f"create..close, file {size / 1e6:6.2f} MB "
                  f"({8 * N * len(names) / size:4.1f}x smaller than raw)")
        for mbs in (None, 1.0):
            print(f"append path (3 values/row, 4096-row blocks, max_block_s={mbs}): "
                  f"{append_cost(folder, mbs):.2f} us per appended point")
        create_s, per_step_ms = small_steps(folder)
        print(f"2000 tiny steps (3 points each): layout created in {create_s:.2f} s, "
              f"{per_step_ms:.2f} ms per step (begin, write, end: 4 journalled flushes); file "
              f"{(folder / 'small.h5').stat().st_size / 1e6:.2f} MB")
        for protocol, rep in small_run_sizes(folder).items():
            print(f"small run `{protocol}` on @dendrosim: file {rep['file']:,} B = payload "
                  f"{rep['payload']:,} B + fixed overhead {rep['overhead']:,} B "
                  f"(target <= {64 * 1024:,})")
        if args.kills:
            from tests.protocols.crash_writer import kill_loop

            (folder / "kills").mkdir()
            t0 = time.perf_counter()
            totals = kill_loop(folder / "kills", args.kills, seed=2026, max_delay_s=0.15)
            print(f"kill -9 loop: {totals['kills']} kills at random moments in "
                  f"{time.perf_counter() - t0:.0f} s; {totals['opened']} killed or finished "
                  f"files opened with plain h5py and RunReader, {totals['absent']} killed before "
                  f"creation finished (no file, as designed), {totals['resumes']} resumes, "
                  f"{totals['completed']} runs completed; max reported rows lost: "
                  f"{totals['lost_rows']}")
            phases = {k[6:]: v for k, v in sorted(totals.items()) if k.startswith("after_")}
            print(f"  kills by the child's last report (S: creating/resuming, C/R: created/"
                  f"resumed, F: mid-step, D: step ended or closing): {phases}")


if __name__ == "__main__":
    main()

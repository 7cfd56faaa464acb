"""Whole-wafer dry run on the simulator: ``python benchmarks/bench_wafer.py [--out DIR]
[--protocol NAME] [--sites all]``.

Runs the wafer engine over the packaged simulated wafer bench (``dendrolab/benches/
wafer-sim.yaml``: the SENTIO over a 100 mm wafer, 52 dies x 16 sites, 2450 on the needles):
at every device separate, step, contact, read back, contact check, then one I-V sweep
(built-in ``wafer-iv``). Target: <= 60 s of wall time on this machine. Prints wall seconds,
bench (simulated) seconds, devices done / skipped, and the size on disk: the run files, the
journal, and the run files' fixed overhead from ``size_report``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyvisa

from instruments.bench_config import load_bench_config
from protocols.runfile_reader import size_report
from protocols.wafer import JOURNAL, run_wafer

BENCH = Path(__file__).resolve().parents[1] / "dendrolab" / "benches" / "wafer-sim.yaml"


class BenchClock:
    """Holds the simulated bench the engine talks to (pyvisa shares the library with the
    engine's session while it is open); its clock starts at 0 with this process."""

    def __init__(self) -> None:
        self.bench = None

    def __call__(self, _event) -> None:
        if self.bench is None:
            rm = pyvisa.ResourceManager(load_bench_config(BENCH).visa_library)
            self.bench = rm.visalib.bench

    def seconds(self) -> float:
        return float(self.bench.now_s) if self.bench is not None else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="keep the wafer here")
    ap.add_argument("--protocol", action="append", default=None,
                    help="protocol(s) per device (default: wafer-iv)")
    ap.add_argument("--sites", default="all")
    ap.add_argument("--dies", default="all")
    args = ap.parse_args()
    protocols = args.protocol or ["wafer-iv"]
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        clock = BenchClock()
        wall0 = time.perf_counter()
        summary = run_wafer(protocols, BENCH, "BENCH1", out, dies=args.dies, sites=args.sites,
                            progress=clock)
        wall = time.perf_counter() - wall0
        sim = clock.seconds()
        files = sorted(summary.directory.rglob("*.h5"))
        reports = [size_report(p) for p in files]
        run_bytes = sum(r["file"] for r in reports)
        overhead = sum(r["overhead"] for r in reports)
        journal = (summary.directory / JOURNAL).stat().st_size
        n = max(1, len(files))
        print(f"protocols        {', '.join(protocols)}")
        print(f"devices          {summary.total} ({summary.done} done, {summary.skipped} "
              "skipped)")
        print(f"wall time        {wall:.1f} s (target <= 60 s)  "
              f"{1000 * wall / max(1, summary.total):.1f} ms/device")
        print(f"bench time       {sim:.1f} s simulated")
        print(f"run files        {len(files)}, {run_bytes / 1e6:.1f} MB "
              f"({run_bytes / n / 1024:.1f} KiB each, fixed overhead "
              f"{overhead / n / 1024:.1f} KiB each)")
        print(f"journal          {journal / 1024:.1f} KiB")
        print(f"total on disk    {(run_bytes + journal) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()

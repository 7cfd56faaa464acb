"""Full stack per point on the simulator: driver set V + read I through @dendrosim + HDF5 append.

Run: ``python benchmarks/bench_fullstack.py``. Target (issue 5): <= 20 us per point. Also prints
the buffered hardware sweep path (one list sweep, one transfer, one block write) per point.
"""

from __future__ import annotations

import tempfile
import time
import timeit
import uuid
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyvisa

from instruments.base import fmt
from instruments.factory import connect
from protocols.runfile import DatasetSpec, RunLayout, RunReader, RunWriter, StepSpec

N = 20_000
SMU = "USB0::0x05E6::0x2450::04488850::INSTR"
DATASETS = (
    DatasetSpec("voltage_v", "V"), DatasetSpec("current_a", "A"), DatasetSpec("time_s", "s")
)


def writer(path: Path, n: int) -> RunWriter:
    meta = {"uuid": str(uuid.uuid4()), "start_time": datetime.now(timezone.utc).isoformat(),
            "protocol": "benchmark"}
    return RunWriter.create(path, meta, RunLayout((StepSpec("points", n, DATASETS),)))


def main() -> None:
    rm = pyvisa.ResourceManager("@dendrosim")
    rm.visalib.reset()
    smu = connect(rm.open_resource(SMU))
    smu.configure_source_voltage(limit_a=1e-3)
    smu.configure_measure(nplc=0.01)
    smu.output_on()
    levels = np.linspace(0.0, 0.5, N)
    with tempfile.TemporaryDirectory() as tmp:
        best = float("inf")
        for repeat in range(3):
            path = Path(tmp) / f"pc{repeat}.h5"
            run = writer(path, N)
            t0 = time.perf_counter()
            with run.step(0) as out:
                for v in levels:
                    smu.set_voltage(v)
                    r = smu.measure_iv()
                    out.append(r.voltage_v, r.current_a, time.perf_counter() - t0)
            best = min(best, (time.perf_counter() - t0) / N)
            run.close()
            with RunReader(path) as check:
                assert check.step(0)["current_a"].size == N
        print(f"PC-timed point (driver set V + read I + append to HDF5): {best * 1e6:.1f} us "
              f"({1 / best:,.0f} points/s), {N} points verified on disk")

        m = 10_000
        best = float("inf")
        for repeat in range(3):
            path = Path(tmp) / f"hw{repeat}.h5"
            run = writer(path, m)
            t0 = time.perf_counter()
            with run.step(0) as out:
                res = smu.list_sweep(np.linspace(0.0, 0.5, m))
                out.write_block(voltage_v=res.voltage_v, current_a=res.current_a,
                                time_s=res.time_s)
            best = min(best, (time.perf_counter() - t0) / m)
            run.close()
        print(f"hardware list sweep of {m} points, one transfer, one block write: "
              f"{best * 1e6:.2f} us per point ({1 / best:,.0f} points/s)")
    pieces(smu)
    smu.safe_state()


def pieces(smu) -> None:
    """Per-call cost of the pieces of a point: driver calls next to the raw pyvisa calls."""
    res = smu.resource
    n = 20_000
    read = ':READ? "defbuffer1",READ,SOUR'

    def row(name: str, fn) -> None:
        best = min(timeit.repeat(fn, number=n, repeat=3)) / n
        print(f"  {name:<48s} {best * 1e6:6.1f} us")

    values = iter(np.tile(np.linspace(0.0, 0.5, n), 8))
    row("smu.set_voltage(distinct v)", lambda: smu.set_voltage(next(values)))
    row('raw res.write(":SOUR:VOLT <distinct v>")', lambda: res.write(":SOUR:VOLT " + fmt(
        next(values))))
    row("smu.measure_iv()", smu.measure_iv)
    row(f"raw res.query({read!r})", lambda: res.query(read))
    row('raw res.query(":READ?")', lambda: res.query(":READ?"))


if __name__ == "__main__":
    main()

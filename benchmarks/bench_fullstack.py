"""Full stack per point on the simulator: driver set V + read I through @dendrosim + HDF5 append.

Run: ``python benchmarks/bench_fullstack.py``. Target (issue 5): <= 20 us per point. Prints the
PC-timed loop (one compound set-and-read query per point, and the two-message form) and the
buffered hardware sweep path (one list sweep, one transfer, one block write) per point.
"""

from __future__ import annotations

import itertools
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
    levels = np.linspace(0.0, 0.5, N).tolist()

    def pc_timed(point):
        def body(out, t0):
            for v in levels:
                r = point(v)
                out.append(r.voltage_v, r.current_a, time.perf_counter() - t0)
        return body

    def buffered(out, t0):
        res = smu.list_sweep(np.linspace(0.0, 0.5, N))
        out.write_block(voltage_v=res.voltage_v, current_a=res.current_a, time_s=res.time_s)

    with tempfile.TemporaryDirectory() as tmp:
        for k, (label, body) in enumerate((
            ("PC-timed, smu.measure_at(v) (one compound query) + HDF5 append",
             pc_timed(smu.measure_at)),
            ("PC-timed, smu.set_voltage(v) + smu.measure_iv() + HDF5 append",
             pc_timed(lambda v: set_then_read(smu, v))),
            ("hardware list sweep, one transfer, one block write", buffered),
        )):
            best = min(timed_run(Path(tmp) / f"case{k}-{r}.h5", body) for r in range(3))
            print(f"{label}: {best * 1e6:.2f} us per point ({1 / best:,.0f} points/s), "
                  f"{N} points verified on disk")
    pieces(smu)
    smu.safe_state()


def timed_run(path: Path, body) -> float:
    """Seconds per point of ``body(step writer, t0)`` writing N points into a new run file."""
    run = writer(path, N)
    t0 = time.perf_counter()
    with run.step(0) as out:
        body(out, t0)
    seconds = (time.perf_counter() - t0) / N
    run.close()
    with RunReader(path) as check:
        assert check.step(0)["current_a"].size == N
    return seconds


def set_then_read(smu, v: float):
    smu.set_voltage(v)
    return smu.measure_iv()


def pieces(smu) -> None:
    """Per-call cost of the pieces of a point: driver calls next to the raw pyvisa calls."""
    smu.output_on()  # the sweep above ends with the output off: measure a live device
    res = smu.resource
    n = 20_000
    read = ':READ? "defbuffer1",READ,SOUR'

    def row(name: str, fn) -> None:
        best = min(timeit.repeat(fn, number=n, repeat=3)) / n
        print(f"  {name:<48s} {best * 1e6:6.1f} us")

    values = itertools.cycle(np.linspace(0.0, 0.5, n).tolist())
    row("smu.set_voltage(distinct v)", lambda: smu.set_voltage(next(values)))
    row('raw res.write(":SOUR:VOLT <distinct v>")', lambda: res.write(":SOUR:VOLT " + fmt(
        next(values))))
    row("smu.measure_iv()", smu.measure_iv)
    row("smu.measure_at(distinct v)", lambda: smu.measure_at(next(values)))
    row(f"raw res.query(':SOUR:VOLT <distinct v>;{read[1:]}')",
        lambda: res.query(":SOUR:VOLT " + fmt(next(values)) + ";" + read))
    row(f"raw res.query({read!r})", lambda: res.query(read))
    row('raw res.query(":READ?")', lambda: res.query(":READ?"))


if __name__ == "__main__":
    main()

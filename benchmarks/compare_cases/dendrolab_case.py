"""dendrolab: the ``Smu`` driver over ``@dendrosim`` into a crash-safe HDF5 run file.

Three ways to sweep: ``measure_at`` (set and read in one compound message), ``set_voltage`` +
``measure_iv`` (two round trips, for information) and ``list_sweep`` (the instrument's buffer,
one transfer per block).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from importlib.metadata import version
from itertools import islice
from pathlib import Path
from typing import Any

from .common import COLUMNS, SMU_ADDRESS, Case, Tick, premade, sweep_levels

UNITS = {"voltage_v": "V", "current_a": "A", "time_s": "s"}
BUFFER_POINTS = 10_000  # levels per hardware list sweep (one transfer, one block write)


class Dendrolab(Case):
    """Per point ``r = smu.measure_at(v)`` then ``out.append(v, i, t)`` into a RunWriter step."""

    name = "dendrolab"
    suffix = ".h5"
    layers = ("driver", "storage")

    def versions(self) -> dict[str, str]:
        return {"dendrolab": version("dendrolab"), "h5py": version("h5py"),
                "numpy": version("numpy"), "pyvisa": version("pyvisa")}

    def setup(self) -> None:
        import pyvisa

        from instruments.factory import connect

        self.rm = pyvisa.ResourceManager("@dendrosim")
        self.rm.visalib.reset()
        self.smu: Any = connect(self.rm.open_resource(SMU_ADDRESS))
        self.smu.configure_source_voltage(limit_a=1e-3)
        self.smu.configure_measure(nplc=0.01)
        self.smu.output_on()

    def _writer(self, path: Path, n: int) -> Any:
        from datetime import datetime, timezone

        from protocols.runfile import DatasetSpec, RunLayout, RunWriter, StepSpec

        meta = {"uuid": str(uuid.uuid4()), "start_time": datetime.now(timezone.utc).isoformat(),
                "protocol": "benchmarks/compare.py"}
        datasets = tuple(DatasetSpec(c, UNITS[c]) for c in COLUMNS)
        return RunWriter.create(path, meta, RunLayout((StepSpec("points", n, datasets),)))

    def full(self, levels: Iterable[float], n: int, path: Path, tick: Tick | None = None) -> None:
        measure_at = self.smu.measure_at
        with self._writer(path, n) as run, run.step(0) as out:
            append = out.append
            t0 = time.perf_counter()
            for k, v in enumerate(levels, 1):
                r = measure_at(v)
                append(r.voltage_v, r.current_a, time.perf_counter() - t0)
                if tick is not None:
                    tick(k)

    def rows(self, path: Path) -> int:
        from protocols.runfile import RunReader

        with RunReader(path) as reader:
            sizes = {reader.step(0)[c].size for c in COLUMNS}
        if len(sizes) != 1:
            raise RuntimeError(f"{path}: columns of different length {sizes}")
        return sizes.pop()

    def layer(self, name: str, n: int, tmp: Path) -> float:
        if name == "driver":
            measure_at = self.smu.measure_at
            levels = sweep_levels(n)
            t0 = time.perf_counter()
            for v in levels:
                measure_at(v)
            return time.perf_counter() - t0
        if name == "storage":
            v, i, t = premade(n)
            t0 = time.perf_counter()
            with self._writer(tmp / "storage.h5", n) as run, run.step(0) as out:
                append = out.append
                for row in zip(v, i, t, strict=True):
                    append(*row)
            return time.perf_counter() - t0
        raise NotImplementedError(name)

    def teardown(self) -> None:
        self.smu.safe_state()


class DendrolabTwoMessages(Dendrolab):
    """Per point ``smu.set_voltage(v)`` + ``smu.measure_iv()``: two round trips."""

    name = "dendrolab-2msg"
    layers = ("driver",)

    def full(self, levels: Iterable[float], n: int, path: Path, tick: Tick | None = None) -> None:
        set_voltage, measure_iv = self.smu.set_voltage, self.smu.measure_iv
        with self._writer(path, n) as run, run.step(0) as out:
            append = out.append
            t0 = time.perf_counter()
            for k, v in enumerate(levels, 1):
                set_voltage(v)
                r = measure_iv()
                append(r.voltage_v, r.current_a, time.perf_counter() - t0)
                if tick is not None:
                    tick(k)

    def layer(self, name: str, n: int, tmp: Path) -> float:
        if name != "driver":
            raise NotImplementedError(name)
        set_voltage, measure_iv = self.smu.set_voltage, self.smu.measure_iv
        levels = sweep_levels(n)
        t0 = time.perf_counter()
        for v in levels:
            set_voltage(v)
            measure_iv()
        return time.perf_counter() - t0


class DendrolabBuffered(Dendrolab):
    """``smu.list_sweep(levels)`` per block of BUFFER_POINTS (hardware buffer, one transfer),
    then ``out.write_block(...)``: durable on return."""

    name = "dendrolab-buffered"

    @staticmethod
    def _blocks(levels: Iterable[float], n: int) -> Iterable[Any]:
        import numpy as np

        it = iter(levels)
        done = 0
        while done < n:
            block = np.fromiter(islice(it, min(BUFFER_POINTS, n - done)), dtype=float)
            if not block.size:
                return
            done += block.size
            yield block

    def full(self, levels: Iterable[float], n: int, path: Path, tick: Tick | None = None) -> None:
        list_sweep = self.smu.list_sweep
        with self._writer(path, n) as run, run.step(0) as out:
            done = 0
            for block in self._blocks(levels, n):
                res = list_sweep(block)
                done = out.write_block(voltage_v=res.voltage_v, current_a=res.current_a,
                                       time_s=res.time_s)
                if tick is not None:
                    tick(done)

    def layer(self, name: str, n: int, tmp: Path) -> float:
        if name == "driver":
            list_sweep = self.smu.list_sweep
            blocks = list(self._blocks(sweep_levels(n), n))
            t0 = time.perf_counter()
            for block in blocks:
                list_sweep(block)
            return time.perf_counter() - t0
        if name == "storage":
            import numpy as np

            arrays = [np.asarray(c) for c in premade(n)]
            t0 = time.perf_counter()
            with self._writer(tmp / "storage.h5", n) as run, run.step(0) as out:
                for a in range(0, n, BUFFER_POINTS):
                    out.write_block(**{c: x[a : a + BUFFER_POINTS]
                                       for c, x in zip(COLUMNS, arrays, strict=True)})
            return time.perf_counter() - t0
        raise NotImplementedError(name)

"""PyMeasure: a minimal ``Instrument`` over pyvisa-sim, a ``Procedure`` run by a ``Worker``
thread, rows stored by the ``Results`` CSV recorder (PyMeasure's normal data path).

Imported only in a child process and only when PyMeasure is installed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from importlib.metadata import version
from pathlib import Path
from typing import Any

from pymeasure.experiment import IntegerParameter, Procedure, Results, Worker
from pymeasure.instruments import Instrument

from .common import (
    CONFIGURE,
    READ_CMD,
    SIM_YAML,
    SMU_ADDRESS,
    Case,
    Tick,
    count_csv_rows,
    premade,
    sweep_levels,
)

VOLT, CURR, TIME = "Voltage (V)", "Current (A)", "Time (s)"


class Keithley2450Sim(Instrument):
    """The two properties the sweep needs, with the wire messages of dendrolab's 2450 path."""

    voltage = Instrument.control(":SOUR:VOLT?", ":SOUR:VOLT %g", "Source voltage in V.")
    reading = Instrument.measurement(READ_CMD, "One reading: [current in A, voltage in V].")

    def __init__(self, adapter: Any, name: str = "Keithley 2450 (pyvisa-sim)",
                 **kwargs: Any) -> None:
        super().__init__(adapter, name, includeSCPI=False, **kwargs)


class SweepProcedure(Procedure):
    """Set V, read I, emit one result per point. The instrument is built once by the case and
    handed in (not in ``startup``) so that, as for every tool, connecting is not timed."""

    points = IntegerParameter("Points", default=1, minimum=0, maximum=10**9)
    DATA_COLUMNS = [VOLT, CURR, TIME]  # noqa: RUF012 (PyMeasure's documented class attribute)
    instrument: Any = None
    levels: Iterable[float] = ()
    tick: Tick | None = None

    def execute(self) -> None:
        inst, tick, emit = self.instrument, self.tick, self.emit
        t0 = time.perf_counter()
        for k, v in enumerate(self.levels, 1):
            inst.voltage = v
            i = inst.reading[0]
            emit("results", {VOLT: v, CURR: i, TIME: time.perf_counter() - t0})
            if tick is not None:
                tick(k)
            if self.should_stop():
                break


class StoreProcedure(Procedure):
    """Storage layer alone: emits pre-made rows through the same Worker/Results path."""

    points = IntegerParameter("Points", default=1, minimum=0, maximum=10**9)
    DATA_COLUMNS = [VOLT, CURR, TIME]  # noqa: RUF012
    rows: Iterable[tuple[float, float, float]] = ()

    def execute(self) -> None:
        emit = self.emit
        for v, i, t in self.rows:
            emit("results", {VOLT: v, CURR: i, TIME: t})


def _run(procedure: Procedure, path: Path) -> None:
    """Results file + Worker thread (with its Recorder), as a PyMeasure script runs a
    procedure without the GUI; raises if the procedure did not finish."""
    results = Results(procedure, str(path))
    worker = Worker(results)
    worker.start()
    worker.join(timeout=10**7)
    if procedure.status != Procedure.FINISHED:
        raise RuntimeError(f"PyMeasure procedure ended with status {procedure.status}")


class PyMeasure(Case):
    name = "pymeasure"
    suffix = ".csv"
    layers = ("driver", "storage")
    library = f"{SIM_YAML}@sim"

    def versions(self) -> dict[str, str]:
        return {"pymeasure": version("pymeasure"), "pyvisa": version("pyvisa"),
                "pyvisa-sim": version("pyvisa-sim")}

    def setup(self) -> None:
        self.inst = Keithley2450Sim(SMU_ADDRESS, visa_library=self.library,
                                    read_termination="\n", write_termination="\n")
        if "2450" not in self.inst.ask("*IDN?"):
            raise RuntimeError("the simulated SMU did not identify as a 2450")
        for cmd in CONFIGURE:
            self.inst.write(cmd)

    def full(self, levels: Iterable[float], n: int, path: Path, tick: Tick | None = None) -> None:
        proc = SweepProcedure(points=n)
        proc.instrument, proc.levels, proc.tick = self.inst, levels, tick
        _run(proc, path)

    def rows(self, path: Path) -> int:
        return count_csv_rows(path)

    def layer(self, name: str, n: int, tmp: Path) -> float:
        if name == "driver":
            inst = self.inst
            levels = sweep_levels(n)
            t0 = time.perf_counter()
            for v in levels:
                inst.voltage = v
                inst.reading  # noqa: B018 (the property read is the measurement)
            return time.perf_counter() - t0
        if name == "storage":
            proc = StoreProcedure(points=n)
            proc.rows = list(zip(*premade(n), strict=True))
            t0 = time.perf_counter()
            _run(proc, tmp / "storage.csv")
            return time.perf_counter() - t0
        raise NotImplementedError(name)

    def teardown(self) -> None:
        self.inst.voltage = 0.0
        self.inst.write(":OUTP OFF")
        self.inst.adapter.close()


class PyMeasureDendrosim(PyMeasure):
    """The same PyMeasure stack over ``@dendrosim``: framework cost on dendrolab's transport."""

    name = "pymeasure-dendrosim"
    layers = ("driver",)
    library = "@dendrosim"

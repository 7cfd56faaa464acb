"""QCoDeS: a minimal ``VisaInstrument`` over pyvisa-sim, a ``Measurement`` whose ``DataSaver``
adds one result per point to a dataset in a fresh SQLite database (QCoDeS's normal data path,
default write period).

Imported only in a child process and only when QCoDeS is installed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from importlib.metadata import version
from pathlib import Path
from typing import Any

from .common import CONFIGURE, READ_CMD, SIM_YAML, SMU_ADDRESS, Case, Tick, premade, sweep_levels

NAME = "smu"  # instrument name; QCoDeS names its parameters "smu_voltage", "smu_current"
CURRENT = f"{NAME}_current"


def _current(reply: str) -> float:
    return float(reply.split(",", 1)[0])


class QCoDeS(Case):
    name = "qcodes"
    suffix = ".db"
    layers = ("driver", "storage")
    library = f"{SIM_YAML}@sim"

    def versions(self) -> dict[str, str]:
        return {"qcodes": version("qcodes"), "pyvisa": version("pyvisa"),
                "pyvisa-sim": version("pyvisa-sim")}

    def setup(self) -> None:
        import qcodes  # noqa: F401 (import cost belongs to time to first point)
        from qcodes.instrument import VisaInstrument
        from qcodes.parameters import Parameter

        logging.getLogger("qcodes").setLevel(logging.WARNING)

        class Keithley2450Sim(VisaInstrument):
            """The two parameters the sweep needs, with the wire messages of dendrolab's 2450."""

            default_terminator = "\n"

            def __init__(self, name: str, address: str, **kwargs: Any) -> None:
                super().__init__(name, address, **kwargs)
                self.voltage = self.add_parameter(
                    "voltage", unit="V", get_cmd=":SOUR:VOLT?", set_cmd=":SOUR:VOLT {:g}",
                    get_parser=float)
                self.current = self.add_parameter(
                    "current", unit="A", get_cmd=READ_CMD, get_parser=_current)

        # QCoDeS skips the connect-time device clear only for the "sim" backend; @dendrosim
        # does not implement viClear (pyvisa raises NotImplementedError), so it is turned off
        self.inst = Keithley2450Sim(NAME, SMU_ADDRESS, visalib=self.library,
                                    device_clear=self.library.endswith("@sim"))
        if "2450" not in self.inst.ask("*IDN?"):
            raise RuntimeError("the simulated SMU did not identify as a 2450")
        for cmd in CONFIGURE:
            self.inst.write(cmd)
        # the per-point timestamp every tool stores, as a settable parameter of its own
        self.time_s = Parameter("time_s", unit="s", set_cmd=None, get_cmd=None)

    def prepare(self, path: Path) -> None:
        """A fresh database file and experiment: a lab's long-lived database exists before a
        run, so this is not timed; the run (``Measurement.run``) is."""
        from qcodes.dataset import initialise_or_create_database_at, load_or_create_experiment

        initialise_or_create_database_at(path)
        self.exp = load_or_create_experiment("compare", sample_name="dendrite")

    def _measurement(self, inst: Any) -> Any:
        from qcodes.dataset import Measurement

        meas = Measurement(exp=self.exp, name="sweep")
        meas.register_parameter(inst.voltage)
        meas.register_parameter(inst.current, setpoints=(inst.voltage,))
        meas.register_parameter(self.time_s, setpoints=(inst.voltage,))
        return meas

    def full(self, levels: Iterable[float], n: int, path: Path, tick: Tick | None = None) -> None:
        inst, time_s = self.inst, self.time_s
        voltage, current = inst.voltage, inst.current
        with self._measurement(inst).run() as saver:
            add_result = saver.add_result
            t0 = time.perf_counter()
            for k, v in enumerate(levels, 1):
                voltage(v)
                add_result((voltage, v), (current, current()),
                           (time_s, time.perf_counter() - t0))
                if tick is not None:
                    tick(k)

    def rows(self, path: Path) -> int:
        """Rows of run 1 in the database at ``path``, through QCoDeS's own loader."""
        from qcodes.dataset import initialise_or_create_database_at, load_by_run_spec

        initialise_or_create_database_at(path)
        try:
            ds = load_by_run_spec(captured_run_id=1)
        except NameError:  # the run was never registered (killed before the first flush)
            return 0
        # current and time_s each depend on voltage: QCoDeS stores them as two parameter trees,
        # each add_result is one SQLite row per tree; a point is one (v, i) row
        data = ds.get_parameter_data(CURRENT)
        return len(data[CURRENT][CURRENT]) if data else 0

    def layer(self, name: str, n: int, tmp: Path) -> float:
        inst = self.inst
        if name == "driver":
            voltage, current = inst.voltage, inst.current
            levels = sweep_levels(n)
            t0 = time.perf_counter()
            for v in levels:
                voltage(v)
                current()
            return time.perf_counter() - t0
        if name == "storage":
            self.prepare(tmp / "storage.db")
            voltage, current, time_s = inst.voltage, inst.current, self.time_s
            rows = list(zip(*premade(n), strict=True))
            t0 = time.perf_counter()
            with self._measurement(inst).run() as saver:
                add_result = saver.add_result
                for v, i, t in rows:
                    add_result((voltage, v), (current, i), (time_s, t))
            return time.perf_counter() - t0
        raise NotImplementedError(name)

    def teardown(self) -> None:
        self.inst.voltage(0.0)
        self.inst.write(":OUTP OFF")
        self.inst.close()


class QCoDeSDendrosim(QCoDeS):
    """The same QCoDeS stack over ``@dendrosim``: framework cost on dendrolab's transport."""

    name = "qcodes-dendrosim"
    layers = ("driver",)
    library = "@dendrosim"

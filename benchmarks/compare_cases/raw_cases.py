"""Raw pyvisa loops: the transport floor of each simulator, no framework on top.

``raw-pyvisa-sim`` is the floor the peers stand on (plain pyvisa-sim, ``compare_sim.yaml``);
``raw-dendrosim`` is the floor dendrolab stands on (``@dendrosim``). Both send byte-identical
messages, so the pair also compares the two simulators.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from importlib.metadata import version
from pathlib import Path
from typing import Any

from .common import (
    CONFIGURE,
    READ_CMD,
    SIM_YAML,
    SMU_ADDRESS,
    Case,
    Tick,
    count_csv_rows,
    sweep_levels,
)

SET_FMT = ":SOUR:VOLT %.9g"  # dendrolab's wire format (9 significant digits)
SET_READ_FMT = SET_FMT + ";" + READ_CMD  # one compound message: set, then read


class _Raw(Case):
    library = ""
    layers = ("transport2", "transport1")

    def versions(self) -> dict[str, str]:
        return {"pyvisa": version("pyvisa"), "pyvisa-sim": version("pyvisa-sim")}

    def setup(self) -> None:
        import pyvisa

        self.rm = pyvisa.ResourceManager(self.library)
        self.res = self.rm.open_resource(SMU_ADDRESS, read_termination="\n",
                                         write_termination="\n")
        self._opened()
        if "2450" not in self.res.query("*IDN?"):
            raise RuntimeError("the simulated SMU did not identify as a 2450")
        for cmd in CONFIGURE:
            self.res.write(cmd)

    def _opened(self) -> None:
        """Hook between opening the resource and configuring it."""

    def layer(self, name: str, n: int, tmp: Path) -> float:
        levels = sweep_levels(n)
        write, query = self.res.write, self.res.query
        t0 = time.perf_counter()
        if name == "transport2":  # set and read as two messages: what the peers' drivers send
            for v in levels:
                write(SET_FMT % v)
                query(READ_CMD)
        elif name == "transport1":  # one compound message per point
            for v in levels:
                query(SET_READ_FMT % v)
        else:
            raise NotImplementedError(name)
        return time.perf_counter() - t0

    def teardown(self) -> None:
        self.res.write(":SOUR:VOLT 0")
        self.res.write(":OUTP OFF")
        self.res.close()
        self.rm.close()


class RawPyvisaSim(_Raw):
    """pyvisa over plain pyvisa-sim; the full stack adds a flushed CSV line per point (the
    hand-rolled way to be crash-safe), so it stands next to the frameworks' storage."""

    name = "raw-pyvisa-sim"
    suffix = ".csv"
    library = f"{SIM_YAML}@sim"

    def full(self, levels: Iterable[float], n: int, path: Path, tick: Tick | None = None) -> None:
        write, query = self.res.write, self.res.query
        t0 = time.perf_counter()
        with open(path, "w") as f:
            f.write("voltage_v,current_a,time_s\n")
            f.flush()
            for k, v in enumerate(levels, 1):
                write(SET_FMT % v)
                i = float(query(READ_CMD).split(",", 1)[0])
                f.write(f"{v!r},{i!r},{time.perf_counter() - t0!r}\n")
                f.flush()
                if tick is not None:
                    tick(k)

    def rows(self, path: Path) -> int:
        return count_csv_rows(path)


class RawDendrosim(_Raw):
    """pyvisa over ``@dendrosim``: no storage, so the full stack is the one-message transport
    loop (the floor dendrolab's full stack is measured against)."""

    name = "raw-dendrosim"
    library = "@dendrosim"

    def _opened(self) -> None:
        self.rm.visalib.reset()  # a fresh simulated bench, as bench_fullstack.py does

    def full(self, levels: Iterable[float], n: int, path: Path, tick: Tick | None = None) -> None:
        query: Any = self.res.query
        for k, v in enumerate(levels, 1):
            query(SET_READ_FMT % v)
            if tick is not None:
                tick(k)

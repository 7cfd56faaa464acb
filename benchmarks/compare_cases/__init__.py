"""The cases of ``benchmarks/compare.py``: one module per tool, registered here by name.

The registry is plain data so the parent process can list cases and check which peers are
installed without importing any of them.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass

from .common import Case

# Test hook: names of packages to treat as not installed (comma list), so the "not installed"
# path can be exercised on a machine that has the peers.
HIDE_ENV = "DENDROLAB_COMPARE_HIDE"


@dataclass(frozen=True)
class CaseInfo:
    name: str
    tool: str  # what a user would call it
    module: str  # module in this package
    cls: str  # Case subclass in that module
    requires: tuple[str, ...]  # importable packages it needs
    peer: bool  # a slow peer stack: uses --peer-points
    what: str  # one line for --help and the report


CASES: dict[str, CaseInfo] = {c.name: c for c in (
    CaseInfo("raw-pyvisa-sim", "pyvisa + pyvisa-sim", "raw_cases", "RawPyvisaSim",
             ("pyvisa", "pyvisa_sim"), True,
             "raw write/query over plain pyvisa-sim (@sim); full = + a flushed CSV line"),
    CaseInfo("pymeasure", "PyMeasure", "pymeasure_case", "PyMeasure",
             ("pymeasure",), True,
             "Instrument + Procedure + Worker + Results CSV over pyvisa-sim"),
    CaseInfo("qcodes", "QCoDeS", "qcodes_case", "QCoDeS",
             ("qcodes",), True,
             "VisaInstrument + Measurement + DataSaver + SQLite dataset over pyvisa-sim"),
    CaseInfo("pymeasure-dendrosim", "PyMeasure", "pymeasure_case", "PyMeasureDendrosim",
             ("pymeasure",), True,
             "the same PyMeasure stack over @dendrosim (dendrolab's transport), for information"),
    CaseInfo("qcodes-dendrosim", "QCoDeS", "qcodes_case", "QCoDeSDendrosim",
             ("qcodes",), True,
             "the same QCoDeS stack over @dendrosim (dendrolab's transport), for information"),
    CaseInfo("raw-dendrosim", "pyvisa + @dendrosim", "raw_cases", "RawDendrosim",
             ("pyvisa",), False,
             "raw one-message set+read query over @dendrosim: dendrolab's transport floor"),
    CaseInfo("dendrolab", "dendrolab", "dendrolab_case", "Dendrolab",
             ("pyvisa", "h5py"), False,
             "smu.measure_at(v) (1 message) + RunWriter append, over @dendrosim"),
    CaseInfo("dendrolab-2msg", "dendrolab", "dendrolab_case", "DendrolabTwoMessages",
             ("pyvisa", "h5py"), False,
             "smu.set_voltage(v) + smu.measure_iv() (2 messages) + append, for information"),
    CaseInfo("dendrolab-buffered", "dendrolab", "dendrolab_case", "DendrolabBuffered",
             ("pyvisa", "h5py"), False,
             "smu.list_sweep (hardware buffer, 10^4 points per transfer) + write_block"),
)}


def missing(name: str) -> list[str]:
    """Packages case ``name`` needs that are not importable here (or hidden by HIDE_ENV)."""
    hidden = {p.strip() for p in os.environ.get(HIDE_ENV, "").split(",") if p.strip()}
    return [p for p in CASES[name].requires
            if p in hidden or importlib.util.find_spec(p) is None]


def load(name: str) -> Case:
    """Import the case's module (and so its tool) and build the case."""
    info = CASES[name]
    if missing(name):
        raise ImportError(f"{name}: not installed: {', '.join(missing(name))}")
    module = importlib.import_module(f"{__name__}.{info.module}")
    return getattr(module, info.cls)()

"""A simulated run is a function of bench file, seed and protocol, whatever the machine's load.

Runs go through the whole stack (plan -> drivers -> pyvisa -> @dendrosim -> HDF5). The bench's
clock is virtual: host waits and timestamps come from it, so slow Python changes nothing.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import pyvisa

from dendrolab.cli import _sim_bench
from instruments.clock import WALL_CLOCK, clock_of
from protocols.runfile import RunReader
from protocols.runner import RUN_CLOCK_EVENT, run_protocol

BENCH = _sim_bench()
#: What may differ between two runs: the run's identity, its own wall timestamps, its paths.
RUN_OWN_ATTRS = {"uuid", "start_time", "stop_time", "created", "modified"}


def _contents(path: Path) -> tuple[dict[str, bytes], dict[str, Any]]:
    """Every dataset outside the journal (which holds the run's own wall timestamps) as raw
    bytes, and the file attributes that are not the run's identity or timestamps."""
    data: dict[str, bytes] = {}

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and not name.startswith("journal"):
            data[name] = np.ascontiguousarray(obj[()]).tobytes() + str(obj.dtype).encode()

    with h5py.File(path, "r") as f:
        f.visititems(visit)
        attrs = {k: (v.tobytes() if isinstance(v, np.ndarray) else v)
                 for k, v in f.attrs.items() if k not in RUN_OWN_ATTRS}
    return data, attrs


def _fresh_library() -> None:
    """Every run in this process starts from the bench file (relaxed devices, time 0)."""
    pyvisa.ResourceManager("@dendrosim").visalib.reset()


@pytest.mark.parametrize("protocol", ["dendrite-amplitude-sweep", "dendrite-integration"])
def test_same_seed_same_data_with_a_core_kept_busy(tmp_path, protocol):
    _fresh_library()
    quiet = run_protocol(protocol, BENCH, tmp_path / "quiet.h5")
    _fresh_library()
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        loaded = run_protocol(protocol, BENCH, tmp_path / "loaded.h5")
    finally:
        busy.kill()
        busy.wait()
    data_a, attrs_a = _contents(quiet)
    data_b, attrs_b = _contents(loaded)
    assert sum(name.endswith("current_a") for name in data_a) >= 10
    assert data_a.keys() == data_b.keys()
    differ = [name for name in data_a if data_a[name] != data_b[name]]
    assert differ == []
    assert attrs_a.keys() == attrs_b.keys()
    assert [k for k in attrs_a if attrs_a[k] != attrs_b[k]] == []


def test_simulated_waits_take_no_wall_time_and_stamp_bench_time(tmp_path, monkeypatch):
    """``wait: 20 ms`` and ``wait: 30 ms`` pass on the bench clock: no host sleep, and the
    recorded times (bench seconds since the run started) contain every wait."""
    _fresh_library()
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    path = run_protocol("dendrite-integration", BENCH, tmp_path / "run.h5")
    assert slept == []
    with RunReader(path) as reader:
        waits = [s for s in reader.steps if s.name.endswith("wait")]
        wait_s = np.array([float(s.params["duration_s"]) for s in waits])
        done = np.array([float(reader.step(s.name).arrays["t_done_s"][0]) for s in waits])
        clock = [e for e in reader.events() if e["kind"] == RUN_CLOCK_EVENT]
        last = max(float(np.max(reader.step(s.name).arrays[k]))
                   for s in reader.steps for k in ("time_s", "t_done_s")
                   if k in reader.step(s.name).arrays)
    assert len(waits) == 19 and set(wait_s) == {0.02, 0.03}
    assert np.all(np.diff(done) > wait_s[1:])    # each wait passed on the recorded clock
    assert len(clock) == 1 and clock[0]["clock"] == "bench"
    assert clock[0]["elapsed_s"] >= last > wait_s.sum()


def test_clock_hook_is_generic():
    """Any VISA library may offer ``clock()``; without it the runner and drivers get the wall
    clock (what a real library is)."""

    class Lib:
        def __init__(self, clock: Any) -> None:
            self.clock = clock

    class Resource:
        def __init__(self, visalib: Any) -> None:
            self.visalib = visalib

    mine = object()
    assert clock_of(Resource(Lib(lambda: mine))) is mine
    assert clock_of(Lib(lambda: mine)) is mine
    assert clock_of(Resource(Lib(lambda: None))) is WALL_CLOCK
    assert clock_of(Resource(object())) is WALL_CLOCK
    assert clock_of(object()) is WALL_CLOCK
    rm = pyvisa.ResourceManager("@dendrosim")
    bench_clock = clock_of(rm)
    t0 = bench_clock.now()
    bench_clock.sleep(2.5)
    assert bench_clock.now() - t0 == pytest.approx(2.5, abs=1e-12)
    assert rm.visalib.bench.now_s == bench_clock.now()

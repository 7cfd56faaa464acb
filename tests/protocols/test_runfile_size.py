"""Run-file size: a small run costs at most 64 KiB of fixed overhead (docs/runfile.md, File size).

A wafer is thousands of small runs, so the layout's fixed cost is pinned here by deterministic
byte counts of real files, never by timing.
"""

from __future__ import annotations

import json
import uuid

import h5py
import numpy as np
import pytest

from protocols.runfile import DatasetSpec, InstrumentSpec, RunLayout, RunReader, RunWriter, StepSpec
from protocols.runfile_reader import size_report

BUDGET = 64 * 1024
VIT = (DatasetSpec("voltage_v", "V"), DatasetSpec("current_a", "A"), DatasetSpec("time_s", "s"))


def _settings(k: int) -> dict:
    """About 700 bytes of JSON, like a real SMU snapshot."""
    return {f"setting_{j}": f"value {k}.{j} " + "x" * 12 for j in range(24)}


def small_layout(n_instruments: int = 7, after_capacity: int = 64 * 1024,
                 event_slots: int = 128) -> RunLayout:
    """The shape of a built-in `read` run on a wafer bench: setup, one read, output off, and
    every instrument of the bench snapshotted with the runner's 64 KiB after_capacity."""
    steps = (StepSpec("smu_setup", 1, (DatasetSpec("t_done_s", "s"),), instrument="smu"),
             StepSpec("read", 10, VIT, instrument="smu", params={"level_v": 0.1},
                      loop_vars={"level_v": 0.1}),
             StepSpec("output_off", 1, (DatasetSpec("t_done_s", "s"),), instrument="smu"))
    insts = tuple(InstrumentSpec(f"inst{k}", {"idn": f"VENDOR,MODEL{k},SN{k},1.0"},
                                 _settings(k), after_capacity=after_capacity)
                  for k in range(n_instruments))
    return RunLayout(steps, insts, event_slots=event_slots)


def write_small(path, lay: RunLayout) -> None:
    meta = {"uuid": str(uuid.UUID(int=7)), "start_time": "2026-05-01T12:00:00Z",
            "protocol": "protocol: read\nsteps:\n  - read: {count: 10}\n", "plan_hash": "0" * 64,
            "wafer_id": "W07", "die_col": 3, "die_row": -2, "subsite": "dendrite_a"}
    with RunWriter.create(path, meta, lay) as run:
        for i, step in enumerate(lay.steps):
            with run.step(i) as writer:
                writer.write_block(**{d.name: np.linspace(0, 1, step.n_points)
                                      for d in step.datasets})
        for inst in lay.instruments:
            run.set_settings_after(inst.name, {**inst.settings_before, "output": False})
        if lay.event_slots:
            run.log_event("run_clock", {"clock": "virtual", "elapsed_s": 0.25})


def test_small_run_fixed_overhead_at_most_64_kib(tmp_path):
    path = tmp_path / "small.h5"
    write_small(path, small_layout())
    report = size_report(path)
    assert report["overhead"] <= BUDGET, report
    assert report["file"] <= BUDGET + report["payload"]
    assert 10_000 < report["payload"] < 20_000  # the JSON snapshots dominate: counted right
    with RunReader(path) as r:  # nothing of what the run promised was given up for it
        assert r.status == "completed" and [s.rows for s in r.steps] == [1, 10, 1]
        assert r.instruments["inst6"].settings_after["output"] is False
        assert r.steps[1].loop_vars == {"level_v": 0.1}
        assert [e["kind"] for e in r.events()] == ["run_clock"]
    with h5py.File(path, "r") as f:
        assert f["instruments/inst0/settings_after"].dtype.itemsize == 64 * 1024
        assert f["journal/events"].shape == (128,)


def test_reserved_capacity_costs_little_until_used(tmp_path):
    """64 KiB of settings_after capacity per instrument and 128 KiB of event slots used to be
    written out as bytes; now unused capacity is compressed fill."""
    sizes = {}
    for name, kw in {"base": {}, "after_1k": {"after_capacity": 1024},
                     "no_events": {"event_slots": 0}, "one_more": {"n_instruments": 8}}.items():
        path = tmp_path / f"{name}.h5"
        write_small(path, small_layout(**kw))
        sizes[name] = path.stat().st_size
    assert sizes["base"] - sizes["after_1k"] < 7 * 512  # seven instruments x 64 KiB capacity
    assert sizes["base"] - sizes["no_events"] < 12 * 1024  # 128 event slots of 1 KiB
    assert sizes["one_more"] - sizes["base"] < 5 * 1024  # per instrument: headers + index node


def test_reserved_capacity_is_still_there(tmp_path):
    """A snapshot close to after_capacity and a full-size event still fit after creation."""
    path = tmp_path / "full.h5"
    lay = small_layout(n_instruments=1)
    big = {"trace": "".join(f"{k:08x}" for k in range(7000))}  # ~56 KiB of poorly compressible
    with RunWriter.create(path, {"uuid": str(uuid.uuid4()), "protocol": "p",
                                 "start_time": "2026-05-01T12:00:00Z"}, lay) as run:
        for i, step in enumerate(lay.steps):
            with run.step(i) as writer:
                writer.write_block(**{d.name: np.zeros(step.n_points) for d in step.datasets})
        run.set_settings_after("inst0", big)
        for k in range(128):
            run.log_event("fill", {"k": k, "pad": "y" * 900})
    with RunReader(path) as r:
        assert r.instruments["inst0"].settings_after == big
        events = r.events()
        assert len(events) == 128 and events[-1]["k"] == 127
        assert len(json.dumps(events[0])) > 900


@pytest.mark.parametrize("protocol", ["read", "iv-sweep"])
def test_builtin_small_runs_on_dendrosim(tmp_path, protocol):
    """End to end, as `dendrolab run PROTOCOL --sim` writes them (layout 1: about 560 kB)."""
    from dendrolab.cli import _sim_bench
    from protocols.runner import run_protocol

    path = run_protocol(protocol, _sim_bench(), tmp_path / f"{protocol}.h5")
    report = size_report(path)
    assert report["overhead"] <= BUDGET, report
    assert report["file"] <= BUDGET + report["payload"]
    with RunReader(path) as r:
        assert r.status == "completed"
        assert all(snap.settings_after for snap in r.instruments.values())

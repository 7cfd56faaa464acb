"""Run files: writer and reader against each other and against docs/runfile.md, plus kill -9.

The crash tests launch tests/protocols/crash_writer.py with sys.executable and SIGKILL it; a file
must then open with plain h5py and keep every row the child reported as durable.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import uuid
from pathlib import Path

import h5py
import numpy as np
import pytest

from dendrolab import __version__
from dendrolab.errors import RunFileError
from protocols.runfile import (
    DatasetSpec,
    InstrumentSpec,
    RunLayout,
    RunReader,
    RunWriter,
    StepSpec,
)
from protocols.runfile_layout import LAYOUT_VERSION, NFIELDS, pick_record, repair_eoa
from tests.protocols.crash_writer import finish_and_check, kill_loop

DOC = Path(__file__).resolve().parents[2] / "docs" / "runfile.md"
VIT = (DatasetSpec("voltage_v", "V"), DatasetSpec("current_a", "A"), DatasetSpec("time_s", "s"))


def meta(**extra):
    base = {"uuid": str(uuid.uuid4()), "start_time": "2026-05-01T14:00:00+02:00",
            "protocol": "steps:\n  - form\n", "plan_hash": "abc123", "operator": "ada",
            "sample_id": "S1", "wafer_id": "W07", "die_id": "D12", "device_id": "R3C4",
            "sim_seed": 42, "sim_model_version": "li2020-original/1"}
    return {**base, **extra}


def layout(compression="gzip"):
    return RunLayout(
        steps=(
            StepSpec("form", 50, (DatasetSpec("voltage_v", "V"), DatasetSpec("current_a", "A")),
                     instrument="smu", params={"v_max": 3.0}),
            StepSpec("sweep", 50_000, VIT, block_points=4096),
            StepSpec("pulses", 3000, (DatasetSpec("trace_a", "A", shape=(16,)),
                                      DatasetSpec("n", "", "int32")), block_points=512),
            StepSpec("read", 20_000, (DatasetSpec("r_ohm", "Ohm"), DatasetSpec("ok", "", "bool")),
                     block_points=1024),
        ),
        instruments=(InstrumentSpec("smu", {"idn": "KEITHLEY,2450,1,1"}, {"nplc": 1.0}),
                     InstrumentSpec("pg", {"idn": "KEYSIGHT,33622A"}, {"load_ohm": 50})),
        compression=compression)


def sweep(rows):
    rows = np.asarray(rows, dtype=float)
    return {"voltage_v": np.sin(rows / 1000), "current_a": rows * 1e-9, "time_s": rows * 1e-4}


def abandon(writer: RunWriter) -> None:
    """Stand-in for a writer process that died: drop the handle without finishing the run."""
    writer._h5.close()


def write_all(writer: RunWriter, upto: int = 4) -> None:
    if upto > 0:
        with writer.step("form") as step:
            for k in range(50):
                step.append(0.06 * k, 1e-6 * k)
    if upto > 1:
        with writer.step("sweep") as step:
            rng = np.random.default_rng(1)
            row = 0
            while row < 50_000:
                n = min(50_000 - row, int(rng.integers(1, 9000)))
                step.write_block(**{k: v for k, v in sweep(np.arange(row, row + n)).items()})
                row += n
    if upto > 2:
        with writer.step("pulses") as step:
            for k in range(3000):
                step.append(np.full(16, k * 1e-6), k)
    if upto > 3:
        with writer.step("read") as step:
            step.write_block(r_ohm=np.arange(12_345.0), ok=np.arange(12_345) % 3 == 0)


@pytest.fixture
def run_path(tmp_path):
    return tmp_path / "run.h5"


def test_round_trip(run_path):
    with RunWriter.create(run_path, meta(extra={"temp_k": 300}), layout()) as run:
        write_all(run)
        run.set_settings_after("smu", {"nplc": 1.0, "output": False})
    with RunReader(run_path) as r:
        assert r.status == "completed" and r.layout_version == LAYOUT_VERSION == 2
        assert r.attrs["extra"] == {"temp_k": 300} and r.attrs["sim_seed"] == 42
        assert r.attrs["start_time"] == "2026-05-01T12:00:00.000000Z"
        assert [s.name for s in r.steps] == ["form", "sweep", "pulses", "read"]
        assert [s.rows for s in r.steps] == [50, 50_000, 3000, 12_345]
        assert all(s.status == "done" and s.attempts == 1 for s in r.steps)
        assert r.steps[0].params == {"v_max": 3.0} and r.steps[0].instrument == "smu"
        assert r.steps[1].blocks >= 9 and r.next_step is None
        form = r.step("form")
        np.testing.assert_allclose(form["voltage_v"], 0.06 * np.arange(50))
        for name, want in sweep(np.arange(50_000)).items():
            np.testing.assert_array_equal(r.step(1)[name], want)
        pulses = r.step("pulses")
        assert pulses["trace_a"].shape == (3000, 16) and pulses["n"].dtype == np.int32
        np.testing.assert_array_equal(pulses["trace_a"][:, 3], np.arange(3000) * 1e-6)
        read = r.step("read")
        assert read["ok"].dtype == bool and read["ok"].sum() == 4115
        df = r.to_dataframe("sweep")
        assert list(df.columns) == ["voltage_v", "current_a", "time_s"] and len(df) == 50_000
        assert df.attrs["units"] == {"voltage_v": "V", "current_a": "A", "time_s": "s"}
        smu = r.instruments["smu"]
        assert smu.identity == {"idn": "KEITHLEY,2450,1,1"}
        assert smu.settings_before == {"nplc": 1.0}
        assert smu.settings_after == {"nplc": 1.0, "output": False}
        assert r.instruments["pg"].settings_after is None


def test_writer_keeps_no_chunk_cache(run_path):
    """Blocks are written whole, so HDF5's raw-data chunk cache only holds memory (about 24
    bytes per appended row over a long step): created and resumed writers open without it."""
    run = RunWriter.create(run_path, meta(), layout())
    assert run._h5.id.get_access_plist().get_cache()[2] == 0
    abandon(run)
    run = RunWriter.resume(run_path)
    assert run._h5.id.get_access_plist().get_cache()[2] == 0
    write_all(run)
    run.close()
    with RunReader(run_path) as r:
        assert [s.rows for s in r.steps] == [50, 50_000, 3000, 12_345]


def test_fsync_mode_round_trip(run_path):
    with RunWriter.create(run_path, meta(), layout(), fsync=True) as run:
        write_all(run, upto=2)
        write_all(run, upto=0)
        with run.step("pulses") as step:
            step.write_block(trace_a=np.ones((10, 16)), n=np.arange(10))
        with run.step("read") as step:
            step.append(1e3, True)
    with RunReader(run_path) as r:
        assert [s.rows for s in r.steps] == [50, 50_000, 10, 1] and r.status == "completed"


def _doc_names(section: str) -> set[str]:
    text = DOC.read_text()
    body = text.split(f"### {section}", 1)[1].split("\n#", 1)[0]
    return set(re.findall(r"^\| `([a-z0-9_]+)` \|", body, flags=re.M))


def test_layout_is_exactly_as_documented(run_path):
    m = meta()
    with RunWriter.create(run_path, m, layout()) as run:
        write_all(run)
    conventional = {"plan_hash", "operator", "sample_id", "wafer_id", "die_id", "device_id",
                    "sim_seed", "sim_model_version"}
    with h5py.File(run_path, "r") as f:
        assert set(f.attrs) == _doc_names("Root attributes") | conventional
        assert f.attrs["dendrolab_layout"] == 2 and f.attrs["software_version"] == __version__
        assert f.attrs["status"] == b"completed" and f.attrs.get_id("status").dtype == "S16"
        assert f.attrs.get_id("stop_time").dtype == "S32" and f.attrs["stop_time"].endswith(b"Z")
        assert f.attrs["protocol_sha256"] == hashlib.sha256(m["protocol"].encode()).hexdigest()
        assert set(f) == {"instruments", "steps", "journal"}
        smu = f["instruments/smu"]
        assert set(smu.attrs) == {"identity"} and set(smu) == {"settings_before", "settings_after"}
        assert smu["settings_after"].shape == (1,) and smu["settings_after"].dtype.itemsize == 65536
        assert smu["settings_after"].chunks == (1,) and smu["settings_after"].compression == "gzip"
        assert smu["settings_before"].chunks is None
        assert list(f["steps"]) == ["0000_form", "0001_sweep", "0002_pulses", "0003_read"]
        for i, (gname, g) in enumerate(f["steps"].items()):
            assert set(g.attrs) == _doc_names("Steps") and g.attrs["index"] == i
            assert g.attrs["datasets"].split(",") == list(layout().steps[i].datasets[j].name
                                                          for j in range(len(g)))
            for ds in g.values():
                n, block = g.attrs["n_points"], g.attrs["block_points"]
                assert set(ds.attrs) == {"units"}
                assert ds.shape[0] == (n if ds.chunks is None else -(-n // block) * block)
                if g.attrs["storage"] == "chunked":
                    assert ds.chunks[0] == g.attrs["block_points"] and ds.compression == "gzip"
                    assert f["journal/tail"][gname][ds.name.rsplit("/", 1)[1]].shape[0] == \
                        g.attrs["block_points"]
                else:
                    assert ds.chunks is None and gname not in f["journal/tail"]
        assert f["steps/0000_form"].attrs["storage"] == "contiguous"
        assert f["steps/0001_sweep"].attrs["storage"] == "chunked"
        assert f["journal/steps"].shape == (4, 2, NFIELDS) and f["journal/run"].shape == (2, 10)
        assert f["journal/events"].shape == (128,) and f["journal/events"].dtype == "S1024"
        assert f["journal/events"].chunks == (1,) and f["journal/events"].compression == "gzip"
        for name in ("/", "instruments", "instruments/smu", "steps", "steps/0000_form", "journal",
                     "journal/tail", "journal/tail/0001_sweep"):  # compact groups, no SNOD/heap
            gcpl = f[name].id.get_create_plist()
            assert gcpl.get_link_creation_order() == h5py.h5p.CRT_ORDER_TRACKED, name
        assert b"SNOD" not in run_path.read_bytes() and b"OHDR" not in run_path.read_bytes()
        assert set(f["journal"]) == {"steps", "run", "events", "tail"}
        fields = f["journal"].attrs["step_fields"].split(",")
        assert fields[:3] == ["seq", "status", "rows"] and fields[-1] == "crc32"
        for i, rows in enumerate([50, 50_000, 3000, 12_345]):  # the plain-h5py recipe in the doc
            slots = f["journal/steps"][i]
            assert slots[np.argmax(slots[:, 0]), 2] == rows


def test_units_on_every_dataset(run_path):
    with RunWriter.create(run_path, meta(), layout()) as run:
        write_all(run)
    with RunReader(run_path) as r:
        assert r.steps[1].units == {"voltage_v": "V", "current_a": "A", "time_s": "s"}
        assert r.step("read").units == {"r_ohm": "Ohm", "ok": ""}
    with h5py.File(run_path, "r") as f:
        units = []
        f["steps"].visititems(lambda n, o: units.append(o.attrs["units"])
                              if isinstance(o, h5py.Dataset) else None)
        assert sorted(units) == sorted(["V", "A", "V", "A", "s", "A", "", "Ohm", ""])


@pytest.mark.parametrize("compression", ["gzip", None])
def test_multi_block_partial_chunks_are_durable(run_path, compression):
    """Odd block sizes, explicit flushes and time-based flushes; reader sees each durable row."""
    run = RunWriter.create(run_path, meta(), layout(compression), max_block_s=0.0)
    with run.step("form") as step:
        for k in range(50):
            step.append(k, -k)
    with run.step("sweep") as step:
        sizes = [1, 4095, 4096, 5000, 3, 12_000, 77]
        row = 0
        for n in sizes:
            assert step.write_block(**sweep(np.arange(row, row + n))) == row + n
            row += n
    step = run.step("pulses")
    for k in range(700):  # max_block_s=0: every append after the first flushes
        step.append(np.full(16, float(k)), k)
    assert step.durable_rows == 700
    abandon(run)
    with RunReader(run_path) as r:
        assert [s.status for s in r.steps] == ["done", "done", "running", "pending"]
        assert r.steps[1].rows == sum(sizes) and r.steps[2].rows == 700
        for name, want in sweep(np.arange(sum(sizes))).items():
            np.testing.assert_array_equal(r.step("sweep")[name], want)
        np.testing.assert_array_equal(r.step("pulses")["n"], np.arange(700))
        assert r.next_step == 2 and r.status == "running"


def test_resume_reruns_unfinished_step_without_duplicates(run_path):
    run = RunWriter.create(run_path, meta(), layout())
    write_all(run, upto=2)
    step = run.step("pulses")
    for k in range(1500):
        step.append(np.full(16, -1.0), -k)  # a first attempt that will be discarded
    step.flush()
    abandon(run)
    run = RunWriter.resume(run_path)
    assert run.next_step == 2 and run.reset_step == 2
    assert run.step_states[2].rows == 0 and run.step_states[1].rows == 50_000
    with h5py.File(run_path, "r") as f:  # the partial attempt is cleared on disk too
        assert np.isnan(f["steps/0002_pulses/trace_a"][:1500]).all()
        assert not f["steps/0002_pulses/n"][:1500].any()
    write_all_from = run.next_step
    with run.step(write_all_from) as step:
        for k in range(3000):
            step.append(np.full(16, k * 1e-6), k)
    with run.step("read") as step:
        step.write_block(r_ohm=np.arange(12_345.0), ok=np.arange(12_345) % 3 == 0)
    run.close()
    with RunReader(run_path) as r:
        assert r.status == "completed" and [s.rows for s in r.steps] == [50, 50_000, 3000, 12_345]
        assert [s.attempts for s in r.steps] == [1, 1, 2, 1]
        np.testing.assert_array_equal(r.step("pulses")["n"], np.arange(3000))
        for name, want in sweep(np.arange(50_000)).items():
            np.testing.assert_array_equal(r.step("sweep")[name], want)
    with h5py.File(run_path, "r") as f:
        assert pick_record(f["journal/run"][()])[2] == 1  # one resume recorded


def test_resume_between_steps_resets_nothing(run_path):
    run = RunWriter.create(run_path, meta(), layout())
    write_all(run, upto=1)
    abandon(run)
    run = RunWriter.resume(run_path)
    assert run.next_step == 1 and run.reset_step is None
    write_all(run, upto=0)
    run.close("interrupted")
    with RunReader(run_path) as r:
        assert r.status == "interrupted" and r.steps[0].rows == 50 and r.next_step == 1


def test_resume_finishes_a_clearing_cut_short(run_path):
    """A kill while resume cleared a step leaves it pending but dirty: the next resume clears it."""
    run = RunWriter.create(run_path, meta(), layout())
    write_all(run, upto=1)
    run.step("sweep").write_block(**sweep(np.arange(9000)))
    e = run.step_states[1]
    run._write_step(1, 0, 0, 0, 0, e.attempts, 0, dirty=1)  # as if the clear never finished
    run._sync()
    abandon(run)
    run = RunWriter.resume(run_path)
    assert run.reset_step == 1 and run.next_step == 1 and not run.step_states[1].dirty
    with h5py.File(run_path, "r") as f:
        assert np.isnan(f["steps/0001_sweep/time_s"][:9000]).all()
    run.close("interrupted")


def test_data_is_flushed_before_the_journal_vouches_for_it(run_path, monkeypatch):
    """Trace every data write, flush and journal write: between a data write and the next journal
    record there must be a flush, or a kill could leave a record pointing at unwritten rows."""
    events = []
    original_setitem, original_sync = h5py.Dataset.__setitem__, RunWriter._sync

    def setitem(ds, key, value):
        events.append("journal" if ds.name.startswith(("/journal/steps", "/journal/run"))
                      else "data")
        original_setitem(ds, key, value)

    def sync(self):
        events.append("sync")
        original_sync(self)

    monkeypatch.setattr(h5py.Dataset, "__setitem__", setitem)
    monkeypatch.setattr(RunWriter, "_sync", sync)
    run = RunWriter.create(run_path, meta(), layout(), max_block_s=0.0)
    events.clear()  # creation builds the file aside and renames it: atomic, nothing to order
    write_all(run, upto=2)
    with run.step("pulses") as step:
        for k in range(600):
            step.append(np.zeros(16), k)
        step.flush()  # every row in the tail, then end() writes the last chunk to main
    step = run.step("read")
    step.write_block(r_ohm=np.ones(5000), ok=np.ones(5000, bool))
    abandon(run)
    run = RunWriter.resume(run_path)  # resets 'read': journal, clear, journal
    write_all(run, upto=0)
    with run.step("read") as step:
        step.write_block(r_ohm=np.ones(1500), ok=np.ones(1500, bool))
    run.close()
    pending_data = False
    for event in events:
        if event == "data":
            pending_data = True
        elif event == "sync":
            pending_data = False
        else:
            assert not pending_data, "journal written before the data it vouches for was flushed"
    assert events.count("journal") > 20 and events.count("data") > 20


def test_kill9_at_random_moments_loses_at_most_the_last_block(tmp_path):
    totals = kill_loop(tmp_path, kills=12, seed=7, max_delay_s=0.15)
    assert totals["kills"] == 12 and totals["lost_rows"] == 0
    assert totals["opened"] + totals["absent"] >= 12
    last = max(tmp_path.glob("run*.h5"), key=lambda p: int(p.stem[3:]))
    finish_and_check(last)  # resumed to completion: every step exactly its rows


TORN = """
import os, sys, uuid
import numpy as np
from protocols.runfile import DatasetSpec, RunLayout, RunWriter, StepSpec
lay = RunLayout((StepSpec("s", 10_000, (DatasetSpec("v", "V"),), block_points=1000),))
run = RunWriter.create(sys.argv[1], {"uuid": str(uuid.uuid4()), "protocol": "p",
                                     "start_time": "2026-01-01T00:00:00Z"}, lay)
step = run.step(0)
step.write_block(v=np.arange(2500.0))
with open(sys.argv[1], "rb") as fh:
    print(int.from_bytes(fh.read(48)[40:48], "little"), flush=True)
type(run)._write_step = lambda *a: os._exit(0)  # die after the data flush, before the journal
step.write_block(v=np.arange(2500.0, 4000.0))
"""


def test_kill_between_chunk_index_and_superblock(tmp_path):
    """The one window where HDF5 metadata is half written: chunk index entries on disk, end-of-file
    address not. Readers keep the durable rows; resume repairs the address and completes."""
    path = tmp_path / "torn.h5"
    out = subprocess.run([sys.executable, "-c", TORN, str(path)], capture_output=True,
                         text=True, check=True, cwd=DOC.parents[1])
    old_eoa = int(out.stdout.split()[0])
    with open(path, "r+b") as fh:  # roll the superblock back, as a kill before its write would
        fh.seek(40)
        fh.write(old_eoa.to_bytes(8, "little"))
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["steps/0000_s/v"][:2000], np.arange(2000.0))
        with pytest.raises(OSError):
            f["steps/0000_s/v"][2000:3000]  # the orphan chunk lies past the stored EOF address
    with RunReader(path) as r:
        assert r.steps[0].rows == 2500 and r.steps[0].status == "running"
        np.testing.assert_array_equal(r.step(0)["v"], np.arange(2500.0))
    run = RunWriter.resume(path)
    with run.step(0) as step:
        step.write_block(v=np.arange(10_000.0))
    run.close()
    with RunReader(path) as r:
        np.testing.assert_array_equal(r.step(0)["v"], np.arange(10_000.0))
    assert not repair_eoa(path)  # a cleanly closed file needs no repair


def test_resume_never_reads_a_dangling_chunk(run_path):
    """A kill can leave an unvouched chunk's index entry pointing at foreign bytes (its space was
    freed and reused). Resume and the re-run write whole chunks only, so HDF5 never reads it."""
    lay = RunLayout((StepSpec("s", 10_000, VIT, block_points=4096),))
    run = RunWriter.create(run_path, meta(), lay)
    run.step(0).write_block(**sweep(np.arange(9000)))  # chunks 0-1 in main, 808 rows in tail
    abandon(run)
    with h5py.File(run_path, "r") as f:
        edge = f["steps/0000_s/current_a"].id.get_chunk_info(2)
    with open(run_path, "r+b") as fh:
        fh.seek(edge.byte_offset)
        fh.write(b"\xde\xad" * (edge.size // 2))
    with RunReader(run_path) as r:
        np.testing.assert_array_equal(r.step(0)["current_a"], sweep(np.arange(9000))["current_a"])
    run = RunWriter.resume(run_path)
    with run.step(0) as step:
        step.write_block(**sweep(np.arange(9999)))
    run.close()
    with RunReader(run_path) as r:
        for name, want in sweep(np.arange(9999)).items():
            np.testing.assert_array_equal(r.step(0)[name], want)


def _changed(before: bytes, after: bytes) -> np.ndarray:
    n = max(len(before), len(after))
    a = np.frombuffer(before.ljust(n, b"\0"), np.uint8)
    b = np.frombuffer(after.ljust(n, b"\0"), np.uint8)
    return np.nonzero(a != b)[0]


def _allowed(path: Path, size: int) -> np.ndarray:
    """Byte mask: raw data (contiguous extents, chunk extents), chunk-index nodes, EOF address."""
    raw = path.read_bytes()
    mask = np.zeros(size, bool)
    mask[40:48] = True  # superblock v0 end-of-file address
    with h5py.File(path, "r") as f:
        def visit(_name, obj):
            if not isinstance(obj, h5py.Dataset):
                return
            if obj.chunks is None:
                lo = obj.id.get_offset()
                mask[lo : lo + obj.id.get_storage_size()] = True
            else:
                for k in range(obj.id.get_num_chunks()):
                    info = obj.id.get_chunk_info(k)
                    mask[info.byte_offset : info.byte_offset + info.size] = True
        f.visititems(visit)
    for m in re.finditer(re.escape(b"TREE\x01"), raw):  # v1 chunk B-tree node, 1-D: 2096 bytes
        mask[m.start() : m.start() + 2096] = True
    return mask


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_run_changes_no_hdf5_structure(run_path, compression):
    """After creation only raw bytes, fresh chunks and their index entries change; closing only
    rewrites the status and stop_time values (and the superblock's open-for-write byte)."""
    run = RunWriter.create(run_path, meta(), layout(compression))
    created = run_path.read_bytes()
    allowed_before = _allowed(run_path, len(created))
    write_all(run)
    run.set_settings_after("smu", {"nplc": 2})
    written = run_path.read_bytes()
    changed = _changed(created, written)
    changed = changed[changed < len(created)]  # bytes past the old end are fresh chunks
    allowed = allowed_before | _allowed(run_path, len(written))[: len(created)]
    assert not changed[~allowed[changed]].size, "metadata changed during the run"
    if compression is None:  # the only bytes past the old end: the fresh settings_after chunk
        with h5py.File(run_path, "r") as f:
            fresh = f["instruments/smu/settings_after"].id.get_chunk_info(0)
        assert fresh.byte_offset >= len(created)
        assert len(written) == fresh.byte_offset + fresh.size
    run.close()
    closed = _changed(written, run_path.read_bytes())
    status_at = created.find(b"running" + b"\0" * 9)
    outside = [i for i in closed if not allowed[i] and not status_at <= i < status_at + 16]
    assert len(outside) <= 33, outside  # stop_time value (32 bytes) + superblock byte 20
    assert all(i == 20 or i > 96 for i in outside)


def test_status_attribute(run_path, tmp_path):
    run = RunWriter.create(run_path, meta(), layout())
    abandon(run)
    with h5py.File(run_path, "r") as f:
        assert f.attrs["status"] == b"running" and f.attrs["stop_time"] == b""
    with pytest.raises(ZeroDivisionError), RunWriter.create(tmp_path / "f.h5", meta(),
                                                            layout()):
        1 / 0  # noqa: B018
    assert RunReader(tmp_path / "f.h5").status == "failed"
    with pytest.raises(KeyboardInterrupt), RunWriter.create(tmp_path / "i.h5", meta(),
                                                            layout()) as run:
        write_all(run, upto=1)
        raise KeyboardInterrupt
    assert RunReader(tmp_path / "i.h5").status == "interrupted"
    with pytest.raises(RunFileError, match="not done"), \
            RunWriter.create(tmp_path / "p.h5", meta(), layout()) as run:
        write_all(run, upto=2)  # leaving with steps pending cannot be 'completed'
    with h5py.File(tmp_path / "p.h5", "r") as f:
        assert f.attrs["status"] == b"interrupted" and f.attrs["stop_time"].endswith(b"Z")


def test_event_log(run_path):
    lay = RunLayout(layout().steps, event_slots=3, event_bytes=200)
    run = RunWriter.create(run_path, meta(), lay)
    run.log_event("note", {"text": "probe re-landed"})
    with pytest.raises(RunFileError, match="bytes"):
        run.log_event("big", {"text": "x" * 300})
    abandon(run)
    run = RunWriter.resume(run_path)  # logs a 'resume' event itself
    run.log_event("resume_reread", {"current_a": 1.5e-6})
    with pytest.raises(RunFileError, match="full"):
        run.log_event("one too many")
    run.close("interrupted")
    with RunReader(run_path) as r:
        events = r.events()
    assert [e["kind"] for e in events] == ["note", "resume", "resume_reread"]
    assert events[0]["text"] == "probe re-landed" and events[1]["next_step"] == 0
    assert events[2]["current_a"] == 1.5e-6 and events[2]["logged"].endswith("Z")


def test_journal_slot_torn_by_a_kill_falls_back(run_path):
    with RunWriter.create(run_path, meta(), layout()) as run:
        write_all(run)
    with h5py.File(run_path, "r+") as f:
        slots = f["journal/steps"][1]
        newest = int(np.argmax(slots[:, 0]))
        torn = slots[newest].copy()
        torn[2] += 1  # half-updated record: CRC no longer matches
        f["journal/steps"][1, newest] = torn
        previous = slots[1 - newest]
    with RunReader(run_path) as r:
        assert r.steps[1].rows == previous[2] and r.steps[1].status == "running"
        np.testing.assert_array_equal(r.step(1)["time_s"], sweep(np.arange(previous[2]))["time_s"])


def test_bad_files(tmp_path, run_path):
    with pytest.raises(RunFileError, match="does not exist"):
        RunReader(tmp_path / "nope.h5")
    with pytest.raises(RunFileError, match="does not exist"):
        RunWriter.resume(tmp_path / "nope.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(RunFileError, match="not a readable HDF5"):
        RunReader(tmp_path / "text.h5")
    with h5py.File(tmp_path / "plain.h5", "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(RunFileError, match="not a dendrolab run file"):
        RunReader(tmp_path / "plain.h5")
    with RunWriter.create(run_path, meta(), layout()) as run:
        write_all(run)
    with pytest.raises(RunFileError, match="completed"):
        RunWriter.resume(run_path)
    with pytest.raises(RunFileError, match="closed"):
        run.step("form")
    with pytest.raises(RunFileError, match="already exists"):
        RunWriter.create(run_path, meta(), layout())
    with h5py.File(run_path, "r+") as f:
        f.attrs["dendrolab_layout"] = LAYOUT_VERSION + 1
    with pytest.raises(RunFileError, match="newer"):
        RunReader(run_path)


def test_writer_refuses_misuse(tmp_path):
    with pytest.raises(RunFileError, match="lacks"):
        RunWriter.create(tmp_path / "a.h5", {"uuid": str(uuid.uuid4())}, layout())
    with pytest.raises(RunFileError, match="timezone"):
        RunWriter.create(tmp_path / "a.h5", meta(start_time="2026-05-01T12:00:00"), layout())
    with pytest.raises(RunFileError, match="owns"):
        RunWriter.create(tmp_path / "a.h5", meta(status="completed"), layout())
    bad = RunLayout((StepSpec("x", 10, (DatasetSpec("s", "", "U8"),)),))
    with pytest.raises(RunFileError, match="not numeric"):
        RunWriter.create(tmp_path / "a.h5", meta(), bad)
    assert not (tmp_path / "a.h5").exists()
    with RunWriter.create(tmp_path / "b.h5", meta(), layout()) as run:
        with run.step("form") as step:
            with pytest.raises(RunFileError, match="takes 2 values"):
                step.append(1.0)
            with pytest.raises(RunFileError, match="expects arrays"):
                step.write_block(voltage_v=np.zeros(3))
            with pytest.raises(RunFileError, match="exceed"):
                step.write_block(voltage_v=np.zeros(51), current_a=np.zeros(51))
            step.write_block(voltage_v=np.zeros(50), current_a=np.zeros(50))
            with pytest.raises(RunFileError, match="full"):
                step.append(0.0, 0.0)
            with pytest.raises(RunFileError, match="still open"):
                run.step("sweep")
        with pytest.raises(RunFileError, match="already done"):
            run.step("form")
        with pytest.raises(RunFileError, match="reserved"):
            run.set_settings_after("pg", {"blob": "x" * 70_000})
        with pytest.raises(RunFileError, match="no longer open"):
            step.append(0.0, 0.0)
        with pytest.raises(RunFileError, match="cannot create"):
            RunWriter.create(tmp_path / "missing_dir" / "c.h5", meta(), layout())
        write_all(run, upto=0)
        run.close("failed")
    with RunReader(tmp_path / "b.h5") as r:
        assert r.status == "failed" and r.steps[0].rows == 50


LOOPED = {"amplitude_v": 2.0, "n_pulses": 5, "shape": "square", "inhibit": True}


def test_loop_vars_round_trip_with_types(run_path):
    """Loop variables are typed attributes: int stays int, float float, str str, bool bool."""
    base = layout()
    steps = (base.steps[0],
             StepSpec("pulses amplitude_v=2", 4, VIT, loop_vars=LOOPED),
             StepSpec("numpy", 2, VIT, loop_vars={"n": np.int32(7), "width_s": np.float32(0.5),
                                                  "big": 2**62, "_i": -1}))
    with RunWriter.create(run_path, meta(), RunLayout(steps, base.instruments)) as run:
        for i, n in enumerate((50, 4, 2)):
            with run.step(i) as step:
                step.write_block(**{d.name: np.zeros(n) for d in steps[i].datasets})
    with RunReader(run_path) as r:
        assert r.steps[0].loop_vars == {}
        got = r.steps[1].loop_vars
        assert got == LOOPED and list(got) == list(LOOPED)
        assert [type(v) for v in got.values()] == [float, int, str, bool]
        assert r.step("numpy").info.loop_vars == {"n": 7, "width_s": 0.5, "big": 2**62, "_i": -1}
        assert [type(v) for v in r.steps[2].loop_vars.values()] == [int, float, int, int]
    with h5py.File(run_path, "r") as f:  # the documented plain-h5py recipe
        g = f["steps/0001_pulses_amplitude_v=2"]
        assert g.attrs["loop_vars"] == "amplitude_v,n_pulses,shape,inhibit"
        assert set(g.attrs) - _doc_names("Steps") == {f"loop.{k}" for k in LOOPED}
        assert g.attrs["loop.amplitude_v"].dtype == np.float64
        assert g.attrs["loop.n_pulses"].dtype == np.int64
        plain = {v: g.attrs["loop." + v] for v in g.attrs["loop_vars"].split(",") if v}
        assert plain == LOOPED
        assert f["steps/0000_form"].attrs["loop_vars"] == ""
    writer = RunWriter.create(run_path.with_name("resumed.h5"), meta(),
                              RunLayout(steps, base.instruments))
    abandon(writer)
    writer = RunWriter.resume(run_path.with_name("resumed.h5"))  # the layout is rebuilt
    assert writer.layout.steps[1].loop_vars == LOOPED
    writer.close("interrupted")


@pytest.mark.parametrize(("loop_vars", "match"), [
    ({"a,b": 1}, "loop variable name"),
    ({"": 1}, "loop variable name"),
    ({"v": [1, 2]}, "is a list"),
    ({"v": None}, "is a NoneType"),
    ({"v": 2**70}, "int64"),
])
def test_bad_loop_vars_refused_before_any_file(tmp_path, loop_vars, match):
    lay = RunLayout((StepSpec("s", 3, VIT, loop_vars=loop_vars),))
    with pytest.raises(RunFileError, match=match):
        RunWriter.create(tmp_path / "x.h5", meta(), lay)
    assert not list(tmp_path.iterdir())


LAYOUT1 = Path(__file__).parent / "data" / "layout1_run.hdf5"


def test_layout1_file_still_reads_and_resumes(tmp_path):
    """tests/protocols/data/layout1_run.hdf5 was written by the layout-1 writer (contiguous
    settings_after and events, symbol-table groups) and left mid-step, as by a kill."""
    path = tmp_path / "old.h5"
    path.write_bytes(LAYOUT1.read_bytes())
    with RunReader(path) as r:
        assert r.layout_version == 1 and r.status == "running"
        assert [(s.name, s.status, s.rows) for s in r.steps] == [
            ("form", "done", 5), ("sweep", "running", 1000), ("amplitude_v=2", "pending", 0)]
        assert all(s.loop_vars == {} for s in r.steps)
        np.testing.assert_array_equal(r.step("sweep")["voltage_v"], np.arange(1000) / 4000)
        assert [e["kind"] for e in r.events()] == ["note"]
        assert r.instruments["smu"].settings_after == {"nplc": 1.0, "output": False}
    with h5py.File(path, "r") as f:
        assert f["instruments/smu/settings_after"].chunks is None  # layout 1 indeed
    run = RunWriter.resume(path)
    assert run.reset_step == 1 and run.next_step == 1
    with run.step("sweep") as step:
        step.write_block(voltage_v=np.arange(4200.0), current_a=np.zeros(4200))
    with run.step(2) as step:
        step.append(5e3)
    run.set_settings_after("smu", {"nplc": 2.0})
    run.close()
    with RunReader(path) as r:
        assert r.layout_version == 1 and r.status == "completed"
        assert [s.rows for s in r.steps] == [5, 4200, 1] and r.steps[1].attempts == 2
        np.testing.assert_array_equal(r.step(1)["voltage_v"], np.arange(4200.0))
        assert [e["kind"] for e in r.events()] == ["note", "resume"]
        assert r.instruments["smu"].settings_after == {"nplc": 2.0}


def test_torn_slot_chunks_read_as_missing(run_path):
    """A kill can leave an event slot's or settings_after's chunk unreadable: the reader skips
    that slot (None for the snapshot) and a resumed writer logs after it."""
    run = RunWriter.create(run_path, meta(), layout())
    run.log_event("first", {"n": 1})
    run.log_event("second", {"n": 2})
    run.set_settings_after("smu", {"nplc": 1.0})
    abandon(run)
    with h5py.File(run_path, "r") as f:
        torn = [f["journal/events"].id.get_chunk_info(1),
                f["instruments/smu/settings_after"].id.get_chunk_info(0)]
    with open(run_path, "r+b") as fh:
        for info in torn:
            fh.seek(info.byte_offset)
            fh.write(b"\xde\xad" * (info.size // 2))
    with h5py.File(run_path, "r") as f, pytest.raises(OSError):
        f["journal/events"][1]  # plain h5py sees the damage
    with RunReader(run_path) as r:
        assert [e["kind"] for e in r.events()] == ["first"]
        assert r.instruments["smu"].settings_after is None
    run = RunWriter.resume(run_path)
    run.log_event("third")
    run.set_settings_after("smu", {"nplc": 3.0})  # a whole-chunk write: the torn one is not read
    run.close("interrupted")
    with RunReader(run_path) as r:
        assert [e["kind"] for e in r.events()] == ["first", "resume", "third"]
        assert r.instruments["smu"].settings_after == {"nplc": 3.0}


def test_a_truncated_file_is_called_unreadable_not_locked(run_path):
    """HDF5's truncated-file message contains "sblock": it must not read as a lock."""
    with RunWriter.create(run_path, meta(), layout()) as writer:
        write_all(writer)
    data = run_path.read_bytes()
    run_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RunFileError) as err:
        RunReader(run_path)
    assert "not a readable HDF5 file" in str(err.value)
    assert "open for writing elsewhere" not in str(err.value)

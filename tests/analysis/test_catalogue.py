"""The catalogue against runs made on the simulated bench and wafer: one row per run with the
wafer columns filled only for wafer runs, corrupt / truncated / foreign / running files listed as
problems with their reason (no exception, no warning), and the cache reopening only new or
changed files."""

from __future__ import annotations

import os
import shutil
import uuid
import warnings
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

import analysis.catalogue as cat
from analysis.catalogue import PROBLEM_COLUMNS, RUN_COLUMNS, catalogue, find_run_files
from dendrolab.cli import _sim_bench
from dendrolab.errors import ParameterError
from protocols.runfile import (
    DatasetSpec,
    RunLayout,
    RunReader,
    RunWriter,
    StepSpec,
    StepWriter,
)
from protocols.runner import run_protocol
from protocols.wafer import run_wafer

WAFER_BENCH = Path(__file__).resolve().parents[2] / "dendrolab" / "benches" / "wafer-sim.yaml"
# (col, row, subsite id, label) of the wafer runs: dies 0,3 and 1,3, subsites D00 and D11
WAFER_DEVICES = {(0, 3, 0, "D00"), (0, 3, 5, "D11"), (1, 3, 0, "D00"), (1, 3, 5, "D11")}


def open_writer(path: Path) -> tuple[StepWriter, RunWriter]:
    """A run whose writer is still open mid-step (status running); ``finish`` completes it."""
    spec = StepSpec("s", n_points=10, datasets=(DatasetSpec("current_a", "A"),))
    layout = RunLayout(steps=(spec,))
    meta = {"uuid": str(uuid.uuid4()), "start_time": "2026-01-01T00:00:00Z", "protocol": "x"}
    writer = RunWriter.create(path, meta, layout)
    step = writer.step("s")
    step.append(1.0)
    step.flush()
    return step, writer


def finish(live: tuple[StepWriter, RunWriter]) -> None:
    live[0].end()
    live[1].close("completed")


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    """Good runs only: one wafer run of four devices and two bench runs, in nested folders."""
    root = tmp_path_factory.mktemp("runs")
    summary = run_wafer(["wafer-iv"], WAFER_BENCH, "W1", root / "wafer", dies="0,3;1,3",
                        sites="D00,D11")
    assert summary.done == 4
    (root / "bench").mkdir()
    run_protocol("read", _sim_bench(), root / "bench" / "read.h5")
    run_protocol("iv-sweep", _sim_bench(), root / "bench" / "iv.h5")
    return root


@pytest.fixture(scope="module")
def mixed_dir(runs_dir, tmp_path_factory):
    """The good runs plus one bad file of each kind, and a run whose writer stays open."""
    root = tmp_path_factory.mktemp("mixed")
    shutil.copytree(runs_dir, root, dirs_exist_ok=True)
    bad = root / "bad"
    bad.mkdir()
    (bad / "junk.h5").write_bytes(np.random.default_rng(1).bytes(5000))
    data = (runs_dir / "bench" / "read.h5").read_bytes()
    (bad / "truncated.h5").write_bytes(data[: len(data) // 2])
    with h5py.File(bad / "foreign.h5", "w") as f:
        f["unrelated"] = np.arange(10)
    (bad / "notes.txt").write_text("not a run")        # not *.h5: never looked at
    live = open_writer(bad / "running.h5")
    yield root
    finish(live)


def expected_uuids(folder: Path) -> dict[str, str]:
    out = {}
    for path in sorted(folder.rglob("*.h5")):
        with RunReader(path) as reader:
            out[str(path.resolve())] = reader.uuid
    return out


def test_runs_and_problems(mixed_dir) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = catalogue(mixed_dir, cache=False)
    runs, problems = result.runs, result.problems
    assert list(runs.columns) == list(RUN_COLUMNS)
    assert list(problems.columns) == list(PROBLEM_COLUMNS)
    # one row per good run, with its own uuid
    good = expected_uuids(mixed_dir / "wafer") | expected_uuids(mixed_dir / "bench")
    assert dict(zip(runs["path"], runs["uuid"], strict=True)) == good
    assert len(runs) == 6 and runs["uuid"].is_unique
    assert (runs["status"] == "completed").all()
    kinds = dict(zip(problems["path"].map(lambda p: Path(p).name), problems["kind"], strict=True))
    assert kinds == {"junk.h5": "not-hdf5", "truncated.h5": "truncated",
                     "foreign.h5": "foreign", "running.h5": "running"}
    reasons = dict(zip(problems["kind"], problems["reason"], strict=True))
    assert "truncated" in reasons["truncated"] and "dendrolab_layout" in reasons["foreign"]
    assert all("\n" not in r for r in problems["reason"])
    assert result.opened == 10


def test_wafer_columns_only_for_wafer_runs(mixed_dir) -> None:
    runs = catalogue(mixed_dir, cache=False).runs
    wafer = runs[runs["protocol"] == "wafer-iv"]
    bench = runs[runs["protocol"] != "wafer-iv"]
    assert set(bench["protocol"]) == {"read", "iv-sweep"}
    got = {(int(r.die_col), int(r.die_row), int(r.subsite_id), r.subsite_label)
           for r in wafer.itertuples()}
    assert got == WAFER_DEVICES
    assert (wafer["wafer"] == "W1").all() and (wafer["device_kind"] == "dendrite").all()
    assert np.isfinite(wafer[["x_um", "y_um"]].to_numpy()).all()
    # the positions recorded by the run, and distinct per device
    for row in wafer.itertuples():
        with RunReader(row.path) as reader:
            assert (row.x_um, row.y_um) == (reader.attrs["x_um"], reader.attrs["y_um"])
    assert len(set(zip(wafer["x_um"], wafer["y_um"], strict=True))) == 4
    # bench runs: no wafer, no die, no position
    assert bench["wafer"].isna().all() and bench["subsite_label"].isna().all()
    assert bench[["die_col", "die_row", "subsite_id"]].isna().all().all()
    assert bench[["x_um", "y_um"]].isna().all().all()
    # provenance columns
    assert (runs["simulator"] == "dendrosim").all() and runs["simulated"].all()
    assert (runs["software_version"] == "0.1.0").all() and (runs["layout"] == 2).all()
    assert str(runs["start_time"].dtype).endswith("UTC]") and runs["start_time"].notna().all()
    assert (runs["stop_time"] >= runs["start_time"]).all()
    for row in runs.itertuples():
        st = os.stat(row.path)
        assert (row.size, row.mtime_ns) == (st.st_size, st.st_mtime_ns)


def test_real_library_run_is_not_simulated(tmp_path, runs_dir) -> None:
    path = tmp_path / "real.h5"
    shutil.copy(runs_dir / "bench" / "read.h5", path)
    with h5py.File(path, "r+") as f:           # as a real library records it: no library_* keys
        for key in [k for k in f.attrs if k.startswith("library_")]:
            del f.attrs[key]
    row = catalogue([path], cache=False).runs.iloc[0]
    assert row["simulator"] is None and not row["simulated"] and row["sim_seed"] is pd.NA


def counting_reader(monkeypatch) -> list[str]:
    opened: list[str] = []
    real = cat.RunReader

    def spy(path, *args, **kwargs):
        opened.append(Path(path).name if Path(path).parent.name != "bad"
                      else "bad/" + Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(cat, "RunReader", spy)
    return opened


def test_incremental_reads_only_new_or_changed_files(tmp_path, runs_dir, monkeypatch) -> None:
    folder = tmp_path / "runs"
    shutil.copytree(runs_dir, folder)
    (folder / "junk.h5").write_bytes(b"\0" * 100)
    first = catalogue(folder)
    assert first.opened == 7 and first.cache == folder / ".dendrolab-catalogue.parquet"
    assert first.cache.is_file()

    opened = counting_reader(monkeypatch)
    again = catalogue(folder)
    assert opened == [] and again.opened == 0          # nothing reopened, not even the junk
    pd.testing.assert_frame_equal(again.runs, first.runs)
    pd.testing.assert_frame_equal(again.problems, first.problems)

    # a changed file (new mtime) is reopened; a new one is read; a deleted one disappears
    changed = folder / "bench" / "read.h5"
    st = changed.stat()
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    shutil.copy(folder / "bench" / "iv.h5", folder / "bench" / "iv-copy.h5")
    (folder / "wafer" / "W1" / "0_3_0" / "wafer-iv.h5").unlink()
    third = catalogue(folder)
    assert sorted(opened) == ["iv-copy.h5", "read.h5"] and third.opened == 2
    assert len(third.runs) == 6 and "iv-copy.h5" in set(third.runs["path"].map(
        lambda p: Path(p).name))
    assert third.runs.loc[third.runs["path"] == str(changed.resolve()), "mtime_ns"].item() == \
        st.st_mtime_ns + 1_000_000_000
    # the cached result is the fresh result
    fresh = catalogue(folder, cache=False)
    pd.testing.assert_frame_equal(third.runs, fresh.runs)
    pd.testing.assert_frame_equal(third.problems, fresh.problems)

    # a file rewritten in place with a new size is reopened too
    opened.clear()
    changed.write_bytes(changed.read_bytes()[:1000])
    fourth = catalogue(folder)
    assert opened == ["read.h5"] and len(fourth.runs) == 5
    assert "truncated" in set(fourth.problems["kind"])


def test_running_file_is_reread_every_time(tmp_path, monkeypatch) -> None:
    path = tmp_path / "live.h5"
    live = open_writer(path)
    first = catalogue(tmp_path)
    assert first.problems["kind"].tolist() == ["running"] and first.runs.empty
    opened = counting_reader(monkeypatch)
    catalogue(tmp_path)
    assert opened == ["live.h5"]                       # never served from the cache
    finish(live)
    done = catalogue(tmp_path)
    assert done.problems.empty and done.runs["status"].tolist() == ["completed"]


def test_explicit_json_cache_and_file_lists(tmp_path, runs_dir, monkeypatch) -> None:
    files = sorted((runs_dir / "bench").glob("*.h5"))
    cache = tmp_path / "cat.json"
    first = catalogue(files, cache=cache)
    assert first.opened == 2 and first.cache == cache and cache.is_file()
    opened = counting_reader(monkeypatch)
    second = catalogue([str(f) for f in files], cache=cache)
    assert opened == [] and second.opened == 0
    pd.testing.assert_frame_equal(second.runs, first.runs)
    # a second source set sharing the cache keeps the first set's entries
    catalogue([runs_dir / "wafer"], cache=cache)
    opened.clear()
    catalogue(files, cache=cache)
    assert opened == []


def test_corrupt_cache_is_ignored(tmp_path, runs_dir) -> None:
    folder = tmp_path / "runs"
    shutil.copytree(runs_dir / "bench", folder)
    (folder / ".dendrolab-catalogue.parquet").write_bytes(b"garbage")
    result = catalogue(folder)
    assert result.opened == 2 and len(result.runs) == 2
    assert catalogue(folder).opened == 0               # rewritten, readable again


def test_sources_globs_and_errors(runs_dir) -> None:
    by_glob = find_run_files(str(runs_dir / "wafer" / "**" / "*.h5"))
    assert len(by_glob) == 4 and by_glob == sorted(by_glob)
    assert find_run_files([runs_dir, runs_dir / "bench" / "read.h5"]) == find_run_files(runs_dir)
    assert find_run_files(str(runs_dir / "nothing-*.h5")) == []
    with pytest.raises(ParameterError, match="neither a file, a folder"):
        catalogue(runs_dir / "missing", cache=False)
    empty = catalogue([], cache=False)
    assert empty.runs.empty and empty.problems.empty
    assert list(empty.runs.columns) == list(RUN_COLUMNS)


def test_progress_counts_every_file(runs_dir) -> None:
    calls = []
    catalogue(runs_dir, cache=False, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(k, 6) for k in range(1, 7)]


def test_unfinished_statuses_and_locked_file(tmp_path) -> None:
    """Failed and interrupted runs are runs (with their status); a file another process holds
    open for writing is a running problem, not an error."""
    import subprocess
    import sys

    for status in ("failed", "interrupted"):
        _step, writer = open_writer(tmp_path / f"{status}.h5")
        writer.close(status)
    code = ("import sys; from tests.analysis.test_catalogue import open_writer; "
            "from pathlib import Path; live = open_writer(Path(sys.argv[1])); print('ready', "
            "flush=True); sys.stdin.read()")
    child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "locked.h5")],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             cwd=Path(__file__).resolve().parents[2])
    try:
        assert child.stdout.readline().strip() == "ready"
        result = catalogue(tmp_path, cache=False)
    finally:
        child.communicate("")
    statuses = dict(zip(result.runs["path"].map(lambda p: Path(p).stem), result.runs["status"],
                        strict=True))
    assert statuses == {"failed": "failed", "interrupted": "interrupted"}
    assert result.problems["kind"].tolist() == ["running"]
    assert Path(result.problems["path"].item()).name == "locked.h5"
    assert "another process" in result.problems["reason"].item()   # HDF5's lock, not status

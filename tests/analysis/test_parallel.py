"""map_files: order kept, per-file failures marked not raised, same answers under dask.

Run files are written directly with RunWriter with a known current, so the generic extractor's
mean |I| is known exactly; dask tests are skipped where dask is not installed (an optional extra).
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import h5py
import numpy as np
import pytest

from analysis import parallel
from analysis.metrics import extract_run
from analysis.parallel import Failed, is_failed, map_files
from dendrolab.errors import DendrolabError
from protocols.runfile import DatasetSpec, RunLayout, RunWriter, StepSpec

N_RUNS = 6


def _current(k: int) -> float:
    return 1e-6 * (k + 1)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """N_RUNS run files with |I| = 1e-6 (k+1) A at every point, then one corrupt file."""
    folder = tmp_path_factory.mktemp("runs")
    specs = (DatasetSpec("voltage_v", "V"), DatasetSpec("current_a", "A"))
    paths = []
    for k in range(N_RUNS):
        path = folder / f"run_{k}.h5"
        meta = {"uuid": str(uuid.uuid4()), "start_time": "2026-01-01T00:00:00Z",
                "protocol": "user\n", "protocol_name": "user-proto", "device_id": f"d{k}"}
        writer = RunWriter.create(path, meta, RunLayout((StepSpec("s", 100, specs),)))
        v = np.linspace(-1, 1, 100)
        with writer.step(0) as step:
            step.write_block(voltage_v=v, current_a=np.where(v < 0, -1, 1) * _current(k))
        writer.close()
        paths.append(path)
    bad = folder / "corrupt.h5"
    bad.write_bytes(b"not an hdf5 file at all" * 10)
    return [*paths[:3], bad, *paths[3:]]


def _mean_current(path: str) -> tuple[str, float]:
    rows = extract_run(path)
    (row,) = [r for r in rows if r["metric"] == "mean_abs_current"]
    return row["device_id"], row["value"]


def _boom_on_odd(path: str) -> str:
    name = Path(path).name
    if int(name.split("_")[1].split(".")[0]) % 2:
        raise ValueError(f"odd file\n{name}")
    return name


def _check_known(results: list, runs: list[Path]) -> None:
    assert len(results) == len(runs)
    for path, res in zip(runs, results, strict=True):
        if path.name == "corrupt.h5":
            assert is_failed(res) and res.path == str(path)
            assert "\n" not in res.reason and res.reason
        else:
            k = int(path.stem.split("_")[1])
            assert not is_failed(res)
            assert res[0] == f"d{k}"
            assert res[1] == pytest.approx(_current(k), rel=1e-12)


def test_in_process_keeps_order_and_marks_the_corrupt_file(runs: list[Path]) -> None:
    seen = []
    results = map_files(_mean_current, runs, progress=lambda d, t: seen.append((d, t)))
    _check_known(results, runs)
    assert seen == [(k, len(runs)) for k in range(1, len(runs) + 1)]


def test_an_exception_becomes_a_failed_result_with_a_one_line_reason(runs: list[Path]) -> None:
    good = [p for p in runs if p.name != "corrupt.h5"]
    results = map_files(_boom_on_odd, good)
    for k, (path, res) in enumerate(zip(good, results, strict=True)):
        if k % 2:
            assert res == Failed(str(path), f"ValueError: odd file {path.name}")
            assert not res
        else:
            assert res == path.name


def test_single_path_and_empty_input() -> None:
    assert map_files(str, []) == []
    assert map_files(len, "abc") == [3]


def test_h5py_objects_are_refused(runs: list[Path]) -> None:
    with h5py.File(runs[0], "r") as h5, pytest.raises(DendrolabError, match="file paths"):
        map_files(_mean_current, [h5])


def test_unknown_scheduler_is_a_one_line_error(runs: list[Path]) -> None:
    with pytest.raises(DendrolabError, match="unknown scheduler 'gpu'"):
        map_files(_mean_current, runs, scheduler="gpu")


def test_missing_dask_names_the_extra(runs: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dask", None)  # import dask now raises ImportError
    with pytest.raises(DendrolabError, match=r"dendrolab\[parallel\]"):
        map_files(_mean_current, runs, scheduler="threads")


def test_extract_frame_matches_metrics_extract(runs: list[Path]) -> None:
    from analysis.metrics import extract

    ours = parallel.extract(runs)
    theirs = extract(runs, on_error="skip")
    assert ours.drop(columns="uuid").equals(theirs.drop(columns="uuid"))
    assert (ours["metric"] == "error").sum() == 1


def test_threads_scheduler_gives_the_same_results(runs: list[Path]) -> None:
    pytest.importorskip("dask")
    seen = []
    results = map_files(_mean_current, runs, scheduler="threads",
                        progress=lambda d, t: seen.append((d, t)))
    assert results == map_files(_mean_current, runs)
    _check_known(results, runs)
    assert seen and seen[-1] == (len(runs), len(runs))


def test_processes_scheduler_gives_the_same_results(runs: list[Path]) -> None:
    pytest.importorskip("dask")
    frame = parallel.extract(runs, scheduler="processes")
    assert frame.drop(columns="uuid").equals(parallel.extract(runs).drop(columns="uuid"))


def test_cluster_address_gives_the_same_results(runs: list[Path], tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None, local_directory=tmp_path) as cluster:
        results = map_files(_mean_current, runs, scheduler=cluster.scheduler_address)
    _check_known(results, runs)


def test_unreachable_cluster_is_a_one_line_error(runs: list[Path],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("distributed")
    monkeypatch.setattr(parallel, "CONNECT_TIMEOUT", "1s")
    with pytest.raises(DendrolabError, match="cannot connect to the dask scheduler"):
        map_files(_mean_current, runs, scheduler="tcp://127.0.0.1:9")

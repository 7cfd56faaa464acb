"""map_jobs: job order kept and the same answers on every scheduler, failures raised or marked.

The job function draws from a numpy Generator seeded by the job itself, so its answer is known
(recomputed serially) and must not depend on which thread, process or worker ran it.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from analysis import parallel
from analysis.parallel import Failed, map_jobs
from dendrolab.errors import DendrolabError


@dataclass(frozen=True)
class Job:
    seed: int
    size: int


def _work(job: Job) -> tuple[int, float]:
    rng = np.random.default_rng(job.seed)
    a = rng.standard_normal((job.size, job.size))
    time.sleep(0.002 * (job.seed % 3))  # finish out of order under a pool
    return job.seed, float(np.linalg.norm(a @ a.T))


def _fail_on_seed_2(job: Job) -> int:
    if job.seed == 2:
        raise ValueError("seed\ntwo")
    return job.seed


JOBS = [Job(seed, 20 + seed) for seed in range(7)]


def _expected() -> list[tuple[int, float]]:
    return [_work(j) for j in JOBS]


def test_default_thread_pool_keeps_job_order_and_exact_values() -> None:
    seen: list[tuple[int, int]] = []
    out = map_jobs(_work, JOBS, progress=lambda d, t: seen.append((d, t)))
    assert out == _expected()  # bit-identical floats, in job order
    assert [s for s, _ in out] == list(range(7))
    assert sorted(seen) == [(k, 7) for k in range(1, 8)]


@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_named_local_schedulers_agree(scheduler: str) -> None:
    assert map_jobs(_work, JOBS, scheduler=scheduler, workers=2) == _expected()


def test_processes_scheduler_agrees() -> None:
    pytest.importorskip("dask")
    assert map_jobs(_work, JOBS[:3], scheduler="processes") == _expected()[:3]


def test_cluster_address_agrees(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None, local_directory=tmp_path) as cluster:
        out = map_jobs(_work, JOBS, scheduler=cluster.scheduler_address)
    assert out == _expected()


def test_a_failed_job_raises_one_line_naming_it() -> None:
    with pytest.raises(DendrolabError, match=r"^job 3 of 7 failed: ValueError: seed two$"):
        map_jobs(_fail_on_seed_2, JOBS)


def test_mark_mode_puts_failed_in_place() -> None:
    out = map_jobs(_fail_on_seed_2, JOBS, scheduler="sync", on_error="mark")
    assert out[:2] == [0, 1] and out[3:] == [3, 4, 5, 6]
    assert out[2] == Failed(JOBS[2], "ValueError: seed two")  # type: ignore[arg-type]


def test_empty_jobs_and_bad_arguments() -> None:
    assert map_jobs(_work, []) == []
    assert map_jobs(_work, [], scheduler="sync") == []
    with pytest.raises(DendrolabError, match="unknown scheduler 'gpu'"):
        map_jobs(_work, JOBS, scheduler="gpu")
    with pytest.raises(DendrolabError, match="workers must be a positive integer"):
        map_jobs(_work, JOBS, workers=0)
    with pytest.raises(DendrolabError, match="on_error"):
        map_jobs(_work, JOBS, on_error="ignore")
    with pytest.raises(DendrolabError, match="function of one job"):
        map_jobs(3, JOBS)  # type: ignore[arg-type]


def test_default_needs_no_dask(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dask", None)  # import dask now raises ImportError
    assert map_jobs(_work, JOBS[:2]) == _expected()[:2]
    with pytest.raises(DendrolabError, match=r"dendrolab\[parallel\]"):
        map_jobs(_work, JOBS, scheduler="processes")


def test_unreachable_cluster_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("distributed")
    monkeypatch.setattr(parallel, "CONNECT_TIMEOUT", "1s")
    with pytest.raises(DendrolabError, match="cannot connect to the dask scheduler"):
        map_jobs(_work, JOBS, scheduler="tcp://127.0.0.1:9")

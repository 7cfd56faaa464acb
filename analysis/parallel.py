"""Map a per-file analysis function over many run files: in one process, or with dask.

Why: a wafer is hundreds of small run files and a lot is thousands. Measured on the 2-core VM
(``research/wafer.md`` §4), a plain loop or dask threads handle a wafer in well under a second,
while a process pool costs 1.2-1.5 s of fixed start-up (spawn and re-import). So the default is a
plain loop in this process, with no dependency; dask is an optional extra (``pip install
dendrolab[parallel]``) for when per-file CPU dominates (``"threads"``, ``"processes"``) or the work
outgrows one machine (``"tcp://host:port"``, any dask cluster started with ``dask scheduler`` /
``dask worker``).

Rules the design follows:

* tasks receive **paths** (plain strings) and open their own file: h5py objects cannot be pickled
  and must never be shared between tasks;
* the mapped function should be a module-level function (or a ``functools.partial`` of one) so
  spawned processes and remote workers can import it, and should return small plain values;
* a per-file exception never stops the map: that file's result is a ``Failed(path, reason)`` with a
  one-line reason, in the file's place, so results stay in input order;
* files are grouped into a few batches per worker, so the per-task overhead of processes and
  clusters is paid per batch, not per file.

``map_jobs`` is the same machinery for work that is not one file each (sweep points, training
runs): picklable job descriptions in, results in job order, a thread pool by default.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from dendrolab.errors import DendrolabError, clip

#: Scheduler names besides ``None`` (plain loop) and ``tcp://`` / ``tls://`` addresses.
LOCAL_SCHEDULERS = ("sync", "threads", "processes")
_EXTRA = "dask is not installed; install the optional extra: pip install 'dendrolab[parallel]'"
REASON_MAX = 300
#: How long ``map_files`` waits for a ``tcp://`` scheduler before giving up (dask duration text).
CONNECT_TIMEOUT = "10s"


@dataclass(frozen=True)
class Failed:
    """The result of a file whose function raised: the path and a one-line reason."""

    path: str
    reason: str

    def __bool__(self) -> bool:  # a failed result is falsy, so ``[r for r in out if r]`` works
        return False


def is_failed(result: Any) -> bool:
    """True if a ``map_files`` result marks a failed file."""
    return isinstance(result, Failed)


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "(no message)"
    if not isinstance(exc, DendrolabError):
        text = f"{type(exc).__name__}: {text}"
    return clip(text, REASON_MAX)


def _safe_call(func: Callable[[str], Any], path: str) -> Any:
    try:
        return func(path)
    except Exception as exc:  # one file's error must not stop the map
        return Failed(path, _reason(exc))


def _safe_batch(func: Callable[[str], Any], paths: Sequence[str]) -> list[Any]:
    """Module level, so spawned processes and remote workers can unpickle it by reference."""
    return [_safe_call(func, p) for p in paths]


def _as_paths(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[str]:
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out = []
    for p in paths:
        if not isinstance(p, (str, os.PathLike)):
            raise DendrolabError(f"map_files takes file paths, not {type(p).__name__} objects "
                                 "(each task opens its own file)")
        out.append(os.fspath(p))
    return out


def _batches(paths: list[str], workers: int) -> list[list[str]]:
    n_batches = min(len(paths), max(1, 4 * workers))
    size = math.ceil(len(paths) / n_batches)
    return [paths[k : k + size] for k in range(0, len(paths), size)]


def _import_dask() -> Any:
    try:
        import dask
    except ImportError:
        raise DendrolabError(_EXTRA) from None
    return dask


def map_files(func: Callable[[str], Any],
              paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *,
              scheduler: str | None = None,
              progress: Callable[[int, int], Any] | None = None) -> list[Any]:
    """``[func(path) for path in paths]``, in input order, a raising file giving ``Failed``.

    ``scheduler``: ``None`` or ``"sync"`` runs a plain loop here (the default, no dask);
    ``"threads"`` / ``"processes"`` use dask's local schedulers; ``"tcp://host:port"`` sends the
    batches to that dask cluster through a ``distributed.Client``. ``progress(done, total)`` is
    called as files finish (per file in a loop, per batch under dask).
    """
    if not callable(func):
        raise DendrolabError(f"map_files needs a function of one path, got {type(func).__name__}")
    files = _as_paths(paths)
    total = len(files)
    if scheduler is not None and not isinstance(scheduler, str):
        raise DendrolabError(f"scheduler must be a name or an address, not {scheduler!r}")
    if scheduler in (None, "sync", "synchronous"):
        out = []
        for k, path in enumerate(files, 1):
            out.append(_safe_call(func, path))
            if progress is not None:
                progress(k, total)
        return out
    if "://" in scheduler:
        return _map_distributed(func, files, scheduler, progress)
    if scheduler not in LOCAL_SCHEDULERS:
        raise DendrolabError(f"unknown scheduler {clip(scheduler)!r}; use one of "
                             f"{', '.join(LOCAL_SCHEDULERS)} or a tcp://host:port address")
    _import_dask()
    return _map_dask_local(func, files, scheduler, progress) if files else []


def _map_distributed(func: Callable[[str], Any], files: list[str], address: str,
                     progress: Callable[[int, int], Any] | None) -> list[Any]:
    _import_dask()
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise DendrolabError(_EXTRA.replace("dask is", "dask.distributed is")) from None
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as exc:
        raise DendrolabError(f"cannot connect to the dask scheduler at {clip(address)}: "
                             f"{_reason(exc)}") from None
    try:
        if not files:
            return []
        workers = max(1, sum(client.nthreads().values()))
        batches = _batches(files, workers)
        futures = client.map(_safe_batch, [func] * len(batches), batches, pure=False)
        done = 0
        for fut in as_completed(futures):
            done += len(batches[futures.index(fut)])
            if progress is not None:
                progress(min(done, len(files)), len(files))
        out: list[Any] = []
        for fut, batch in zip(futures, batches, strict=True):
            if fut.status == "error":  # a worker died: every file of that batch is marked failed
                why = _reason(fut.exception())
                out += [Failed(p, f"worker failed: {why}") for p in batch]
            else:
                out += fut.result()
        return out
    finally:
        client.close()


def extract(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *,
            scheduler: str | None = None, progress: Callable[[int, int], Any] | None = None,
            generic: bool = False) -> Any:
    """``analysis.metrics.extract(paths, on_error="skip")`` through ``map_files``.

    Same columns; an unreadable file gives one ``error`` row (quality ``failed``, the reason).
    """
    import functools

    import pandas as pd

    from analysis.metrics import COLUMNS, FAILED, extract_run

    func = functools.partial(extract_run, generic=generic) if generic else extract_run
    rows: list[dict[str, Any]] = []
    for result in map_files(func, paths, scheduler=scheduler, progress=progress):
        if isinstance(result, Failed):
            rows.append({"uuid": "", "path": result.path, "protocol": "", "step": "",
                         "loop_vars": "{}", "metric": "error", "value": math.nan, "unit": "",
                         "quality": FAILED, "reason": result.reason})
        else:
            rows += result
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["value"] = frame["value"].astype(float)
    return frame


def _map_dask_local(func: Callable[[Any], Any], items: list[Any], scheduler: str,
                    progress: Callable[[int, int], Any] | None) -> list[Any]:
    """``map_files`` / ``map_jobs`` on a dask local scheduler: batches of items, results in
    input order, ``progress`` per finished batch."""
    dask = _import_dask()
    from dask.callbacks import Callback

    batches = _batches(items, os.cpu_count() or 1)
    tasks = [dask.delayed(_safe_batch, pure=False)(func, b) for b in batches]
    done = 0

    def _posttask(key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
        nonlocal done
        if progress is not None and isinstance(result, list):
            done += len(result)
            progress(min(done, len(items)), len(items))

    with Callback(posttask=_posttask):
        results = dask.compute(*tasks, scheduler=scheduler)
    return [r for batch in results for r in batch]


def _map_threads(func: Callable[[Any], Any], items: list[Any], workers: int,
                 progress: Callable[[int, int], Any] | None) -> list[Any]:
    """``map_jobs`` on a standard-library thread pool (no dask): one task per job."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    out: list[Any] = [None] * len(items)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(_safe_call, func, job): k for k, job in enumerate(items)}
        for done, fut in enumerate(as_completed(futures), 1):
            out[futures[fut]] = fut.result()  # _safe_call never raises
            if progress is not None:
                progress(done, len(items))
    return out


def map_jobs(func: Callable[[Any], Any], jobs: Iterable[Any], *,
             scheduler: str | None = None, workers: int | None = None,
             progress: Callable[[int, int], Any] | None = None,
             on_error: str = "raise") -> list[Any]:
    """``[func(job) for job in jobs]`` in job order, for independent, picklable job descriptions.

    The generic sibling of ``map_files`` for work that is not one file each (a sweep point, a
    training run). ``scheduler``: ``None`` or ``"threads"`` runs a standard-library thread pool
    here (the default, no dask; ``workers`` threads, default one per core); ``"sync"`` a plain
    loop; ``"processes"`` dask's process scheduler; ``"tcp://host:port"`` a dask cluster through
    ``distributed.Client``. The answer does not depend on the scheduler as long as ``func`` is
    deterministic in its job (seed everything from the job, share no mutable state).

    For ``"processes"`` and clusters, ``func`` must be importable (module level, or a
    ``functools.partial`` of such a function) and jobs and results picklable.
    ``on_error="raise"`` (default) raises a ``DendrolabError`` naming the first failed job (in job
    order) after all jobs ran; ``"mark"`` puts ``Failed(job, reason)`` in that job's place (the
    ``path`` field then holds the job).
    """
    if not callable(func):
        raise DendrolabError(f"map_jobs needs a function of one job, got {type(func).__name__}")
    if on_error not in ("raise", "mark"):
        raise DendrolabError(f"on_error must be 'raise' or 'mark', not {on_error!r}")
    if scheduler is not None and not isinstance(scheduler, str):
        raise DendrolabError(f"scheduler must be a name or an address, not {scheduler!r}")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise DendrolabError(f"workers must be a positive integer, not {workers!r}")
    items = list(jobs)
    if scheduler is None or scheduler == "threads":
        out = _map_threads(func, items, workers or os.cpu_count() or 1, progress) if items else []
    elif scheduler in ("sync", "synchronous"):
        out = []
        for k, job in enumerate(items, 1):
            out.append(_safe_call(func, job))
            if progress is not None:
                progress(k, len(items))
    elif "://" in scheduler:
        out = _map_distributed(func, items, scheduler, progress)
    elif scheduler == "processes":
        out = _map_dask_local(func, items, scheduler, progress) if items else []
    else:
        raise DendrolabError(f"unknown scheduler {clip(scheduler)!r}; use threads, sync, "
                             "processes or a tcp://host:port address")
    if on_error == "raise":
        for k, result in enumerate(out):
            if isinstance(result, Failed):
                raise DendrolabError(f"job {k + 1} of {len(out)} failed: {result.reason}")
    return out


__all__: Sequence[str] = ["LOCAL_SCHEDULERS", "Failed", "extract", "is_failed", "map_files",
                          "map_jobs"]

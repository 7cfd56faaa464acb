"""What one child process does: exactly one case, in a fresh interpreter, result as JSON.

Modes:
  run     setup, warm-up sweep into its own store (times the first point), the timed full stack
          into a fresh store, rows read back, then each layer of the case.
  memory  the full stack over M points; RSS samples (after 10^4 points, then every 10^3) in a
          progress file the parent reads, also if it stops the run at its time budget.
  crash   the full stack with a large N, counting points handed to storage in a progress file,
          until the parent kills it with SIGKILL.
  rows    count the rows a store holds (the parent's read-back after a kill), no instrument.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from . import load
from .common import Progress, lazy_levels, peak_rss_kib, rss_kib, sweep_levels

MEMORY_MARK = 10_000  # RSS is compared between this many points and the end of the run
SAMPLE_EVERY = 1_000  # points between RSS samples in a memory run


def warmup_points(n: int) -> int:
    """2 % of N, at least 200 (or N if smaller): first-call caches warm, not the timed file."""
    return min(n, max(200, n // 50))


def run(name: str, n: int, workdir: Path) -> dict[str, Any]:
    first: list[float] = []

    def tick(k: int) -> None:
        if not first:
            first.append(time.monotonic())

    case = load(name)  # imports the tool: part of the time to first point
    t_setup = time.monotonic()
    case.setup()
    setup_s = time.monotonic() - t_setup
    suffix = case.suffix or ".none"
    warm = workdir / f"warm{suffix}"
    w = warmup_points(n)
    case.prepare(warm)
    case.full(sweep_levels(w), w, warm, tick)
    out: dict[str, Any] = {"case": name, "points": n, "warmup": w, "versions": case.versions(),
                           "first_point_mono": first[0] if first else None,
                           "setup_s": setup_s, "layers": {}}
    if case.suffix:
        path = workdir / f"timed{suffix}"
        case.prepare(path)
        levels = sweep_levels(n)
        t0 = time.perf_counter()
        case.full(levels, n, path)
        seconds = time.perf_counter() - t0
        out["layers"]["full"] = {"s": seconds, "rows": case.rows(path)}
    for layer in case.layers:
        out["layers"][layer] = {"s": case.layer(layer, n, workdir)}
    case.teardown()
    return out


def memory(name: str, m: int, workdir: Path, progress: Path) -> dict[str, Any]:
    """Full stack over m points; every SAMPLE_EVERY points the RSS goes to the progress file,
    so the parent can also stop a run that outgrows its time budget and still report it."""
    counter = Progress(progress)
    case = load(name)
    case.setup()
    mark = min(MEMORY_MARK, max(1, m // 10))
    state = {"marked": False, "prev_points": 0, "prev_ns": 0}

    def tick(k: int) -> None:
        counter.tick(k)
        if k % SAMPLE_EVERY and k < m:
            return
        rss, now = rss_kib(), time.monotonic_ns()
        if k >= mark and not state["marked"]:
            state["marked"] = True
            counter.set(Progress.MARK_RSS, rss)
            counter.set(Progress.MARK_POINTS, k)
            counter.set(Progress.MARK_NS, now)
        if state["prev_points"] and k > state["prev_points"]:
            counter.set(Progress.RECENT_NS, (now - state["prev_ns"]) // (k - state["prev_points"]))
        state["prev_points"], state["prev_ns"] = k, now
        counter.set(Progress.LAST_RSS, rss)
        counter.set(Progress.LAST_POINTS, k)
        counter.set(Progress.LAST_NS, now)

    path = workdir / f"memory{case.suffix or '.none'}"
    case.prepare(path)
    case.full(lazy_levels(m), m, path, tick)
    rows = case.rows(path) if case.suffix else None
    case.teardown()
    return {"case": name, "rows": rows, "peak_kib": peak_rss_kib()}


def crash(name: str, capacity: int, store: Path, progress: Path) -> dict[str, Any]:
    counter = Progress(progress)
    case = load(name)
    case.setup()
    case.prepare(store)
    case.full(lazy_levels(capacity), capacity, store, counter.tick)
    return {"case": name, "finished": True}  # the parent should have killed us before this


def rows(name: str, store: Path) -> dict[str, Any]:
    return {"case": name, "rows": load(name).rows(store)}


def main(mode: str, name: str, points: int, workdir: Path, json_out: Path,
         store: Path | None = None, progress: Path | None = None) -> int:
    """Run one mode of one case; the result (or the error) goes to ``json_out``."""
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        if mode == "run":
            result = run(name, points, workdir)
        elif mode == "memory":
            assert progress is not None
            result = memory(name, points, workdir, progress)
        elif mode == "crash":
            assert store is not None and progress is not None
            result = crash(name, points, store, progress)
        elif mode == "rows":
            assert store is not None
            result = rows(name, store)
        else:
            raise ValueError(f"unknown child mode {mode!r}")
        code = 0
    except Exception as exc:
        traceback.print_exc()
        result = {"case": name, "error": f"{type(exc).__name__}: {exc}"}
        code = 1
    json_out.write_text(json.dumps(result))
    sys.stdout.flush()
    return code

"""Crash-safe writer for dendrolab HDF5 run files: declared layout, block writes, journal, resume.

After creation it only overwrites pre-allocated bytes or writes fresh compressed chunks; it must
never create, resize or delete HDF5 objects mid-run. The layout is specified in docs/runfile.md.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np

from dendrolab import __version__
from dendrolab.errors import RunFileError
from protocols.runfile_layout import (
    RUN_CODES,
    RUN_STATUSES,
    STATUS_DTYPE,
    STEP_DONE,
    STEP_PENDING,
    STEP_RUNNING,
    TIME_DTYPE,
    DatasetSpec,
    InstrumentSpec,
    RunLayout,
    StepEntry,
    StepSpec,
    block_points,
    bound_metadata_cache,
    chunk_extent,
    create_file,
    fill_value,
    group_name,
    normalise_meta,
    now_iso,
    open_checked,
    pick_record,
    read_layout,
    read_slot,
    record,
    repair_eoa,
    step_entry,
    step_groups,
    to_json,
    validate_layout,
    write_layout,
)
from protocols.runfile_reader import RunReader, StepData, StepInfo
from protocols.runfile_step import StepWriter

__all__ = ["DatasetSpec", "InstrumentSpec", "RunLayout", "RunReader", "RunWriter", "StepData",
           "StepInfo", "StepSpec", "StepWriter"]


class RunWriter:
    """Owns one run file open for writing; build it with ``create`` or ``resume``."""

    def __init__(self, h5: h5py.File, path: Path, layout: RunLayout, fsync: bool,
                 max_block_s: float | None, fresh: bool = False) -> None:
        self._h5, self.path, self.layout = h5, path, layout
        self.max_block_s = max_block_s
        bound_metadata_cache(h5)
        self._index = {s.name: i for i, s in enumerate(layout.steps)}
        self._fd = os.open(path, os.O_RDONLY) if fsync else None
        self._jsteps, self._jrun = h5["journal/steps"], h5["journal/run"]
        self._entries = [step_entry(s) for s in self._jsteps[()]] if layout.steps else []
        rec = pick_record(self._jrun[()])
        self._run = [int(v) for v in rec[:5]] if rec is not None else [0, 1, 0, 0, 0]
        self._events = h5["journal"].get("events")
        self._next_event = 0
        if self._events is not None and not fresh:  # after the last used slot (torn = used)
            used = np.flatnonzero([raw != b"" for raw in _slots(self._events)])
            self._next_event = int(used[-1]) + 1 if used.size else 0
        self._active: StepWriter | None = None
        self._closed = False
        self.reset_step: int | None = None

    @classmethod
    def create(cls, path: str | os.PathLike[str], meta: Mapping[str, Any], layout: RunLayout, *,
               fsync: bool = False, max_block_s: float | None = 1.0) -> RunWriter:
        """Create the whole file from the declaration, atomically (built aside, then renamed).

        ``meta`` needs uuid, start_time and protocol. ``fsync`` adds power-loss durability
        (kill -9 safety needs none); ``max_block_s`` bounds how long appended rows stay in memory.
        """
        path = Path(path)
        validate_layout(layout)
        attrs = normalise_meta(meta)
        if path.exists():
            raise RunFileError(f"{path} already exists; run files are never overwritten "
                               "(RunWriter.resume continues an unfinished one)")
        partial = path.with_name(path.name + ".partial")
        partial.unlink(missing_ok=True)
        try:
            # libver 'earliest' keeps superblock v0: no consistency flags, so a killed writer's
            # file opens without h5clear (libver 'latest' and SWMR files refuse to).
            with create_file(partial) as h5:
                write_layout(h5, attrs, layout, __version__)
            if fsync:
                _fsync_path(partial)
            os.replace(partial, path)
            if fsync:
                _fsync_path(path.parent)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise RunFileError(f"cannot create run file {path}: {exc}") from exc
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return cls(h5py.File(path, "r+", rdcc_nbytes=0), path, layout, fsync, max_block_s,
                   fresh=True)

    @classmethod
    def resume(cls, path: str | os.PathLike[str], *, fsync: bool = False,
               max_block_s: float | None = 1.0) -> RunWriter:
        """Reopen a crashed, failed or interrupted run; clear its unfinished step for a re-run.

        ``next_step`` is where the runner continues (after re-reading the device, as memristor
        operations are not idempotent); ``reset_step`` names the step whose partial rows were
        dropped. A completed run raises RunFileError.
        """
        path = Path(path)
        with open_checked(path, "r") as h5:
            if bytes(h5.attrs["status"]).rstrip(b"\0") == b"completed":
                raise RunFileError(f"{path} is a completed run; it cannot be written to")
            entries = [step_entry(s) for s in h5["journal/steps"][()]]
            unfinished = [i for i, e in enumerate(entries) if e.status == STEP_RUNNING or e.dirty]
            gnames = step_groups(h5)
            needed = chunk_extent(h5, [gnames[i] for i in unfinished])
        repair_eoa(path, needed)
        h5 = open_checked(path, "r+", rdcc_nbytes=0)
        try:
            writer = cls(h5, path, read_layout(h5), fsync, max_block_s)
        except BaseException:
            h5.close()
            raise
        for i in unfinished:
            writer._reset_step(i)
        writer.reset_step = unfinished[0] if unfinished else None
        now = time.time_ns()
        writer._write_run(RUN_CODES["running"], writer._run[2] + 1, now)
        h5.attrs.modify("status", np.array(b"running", dtype=STATUS_DTYPE))
        h5.attrs.modify("stop_time", np.array(b"", dtype=TIME_DTYPE))
        writer._sync()
        if writer._events is not None and writer._next_event < writer._events.shape[0]:
            writer.log_event("resume", {"reset_step": writer.reset_step,
                                        "next_step": writer.next_step})
        return writer

    # -- state -------------------------------------------------------------------------------
    @property
    def next_step(self) -> int | None:
        """Index of the first step that is not done (None when every step is done)."""
        return next((i for i, e in enumerate(self._entries) if e.status != STEP_DONE), None)

    @property
    def attrs(self) -> dict[str, Any]:
        """Root attributes as stored (e.g. to compare plan_hash before continuing a run)."""
        return {k: bytes(v).rstrip(b"\0").decode() if isinstance(v, bytes) else v
                for k, v in self._h5.attrs.items()}

    @property
    def step_states(self) -> list[StepEntry]:
        """The journal as the writer last made it durable, one entry per declared step."""
        return list(self._entries)

    def index_of(self, key: int | str) -> int:
        """Step index from an index or a step name."""
        if isinstance(key, str):
            if key not in self._index:
                raise RunFileError(f"no step named {key!r} in {self.path}")
            return self._index[key]
        if not 0 <= key < len(self._index):
            raise RunFileError(f"step index {key} out of range 0..{len(self._index) - 1}")
        return int(key)

    # -- writing -----------------------------------------------------------------------------
    def step(self, key: int | str) -> StepWriter:
        """Begin a step (counts an attempt); use the result as a context manager."""
        self._check_open()
        if self._active is not None:
            raise RunFileError(f"step {self._active.name!r} is still open; end it first")
        i = self.index_of(key)
        entry = self._entries[i]
        if entry.status == STEP_DONE:
            raise RunFileError(f"step {self.layout.steps[i].name!r} is already done in {self.path}")
        if entry.status == STEP_RUNNING or entry.dirty:
            self._reset_step(i)
        now = time.time_ns()
        self._write_step(i, STEP_RUNNING, 0, 0, 0, self._entries[i].attempts + 1, now)
        self._sync()
        self._active = StepWriter(self, i)
        return self._active

    def set_settings_after(self, instrument: str, settings: Mapping[str, Any]) -> None:
        """Store an instrument's settings snapshot taken after the run (in reserved space)."""
        self._check_open()
        group = self._h5["instruments"].get(instrument)
        if group is None:
            raise RunFileError(f"instrument {instrument!r} was not declared in the layout")
        ds = group["settings_after"]
        payload = to_json(settings).encode("utf-8")
        if len(payload) > ds.dtype.itemsize:
            raise RunFileError(f"settings_after of {instrument!r} is {len(payload)} bytes; "
                               f"{ds.dtype.itemsize} were reserved (raise after_capacity)")
        ds[0] = np.array(payload, dtype=ds.dtype)
        self._sync()

    def log_event(self, kind: str, data: Mapping[str, Any] | None = None) -> None:
        """Record a JSON event (e.g. the device re-read before a resume); durable on return."""
        self._check_open()
        if self._events is None:
            raise RunFileError(f"{self.path} has no event log (made by an older writer)")
        payload = to_json({"kind": kind, "logged": now_iso(), **(data or {})}).encode("utf-8")
        if len(payload) > self._events.dtype.itemsize:
            raise RunFileError(f"event {kind!r} is {len(payload)} bytes; slots hold "
                               f"{self._events.dtype.itemsize} (RunLayout.event_bytes)")
        if self._next_event >= self._events.shape[0]:
            raise RunFileError(f"the event log of {self.path} is full "
                               f"({self._events.shape[0]} slots, RunLayout.event_slots)")
        self._events[self._next_event] = np.array(payload, dtype=self._events.dtype)
        self._next_event += 1
        self._sync()

    def close(self, status: str = "completed") -> None:
        """Finish the run with status completed, failed or interrupted (idempotent)."""
        if self._closed:
            return
        if status not in RUN_STATUSES or status == "running":
            raise RunFileError(f"close status {status!r} invalid: use completed, failed or "
                               "interrupted")
        if status == "completed":
            if self._active is not None:
                raise RunFileError(f"step {self._active.name!r} is still open; end it first")
            pending = [s.name for s, e in zip(self.layout.steps, self._entries, strict=True)
                       if e.status != STEP_DONE]
            if pending:
                raise RunFileError(f"run cannot be completed: {len(pending)} steps are not done "
                                   f"(first: {pending[0]!r})")
        if self._active is not None:
            self._active._release(flush=True)
        self._h5.attrs.modify("stop_time", np.array(now_iso().encode(), dtype=TIME_DTYPE))
        self._h5.attrs.modify("status", np.array(status.encode(), dtype=STATUS_DTYPE))
        self._write_run(RUN_CODES[status], self._run[2], self._run[3])
        self._sync()
        self._closed = True
        self._h5.close()
        if self._fd is not None:
            os.close(self._fd)

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._closed:
            return
        if exc_type is None:
            try:
                self.close("completed")
            except RunFileError:
                self.close("interrupted")
                raise
        else:
            self.close("interrupted" if issubclass(exc_type, KeyboardInterrupt) else "failed")

    # -- internals ---------------------------------------------------------------------------
    def _datasets(self, i: int) -> tuple[list[h5py.Dataset], list[h5py.Dataset] | None]:
        """A step's main and tail datasets, opened only while needed: HDF5 visits every open
        dataset on each flush, so keeping thousands open would make every block slower."""
        step = self.layout.steps[i]
        gname = group_name(i, step.name)
        main = self._h5["steps"][gname]
        tail = self._h5["journal/tail"].get(gname)
        return ([main[d.name] for d in step.datasets],
                None if tail is None else [tail[d.name] for d in step.datasets])

    def _check_open(self) -> None:
        if self._closed:
            raise RunFileError(f"{self.path} is closed; RunWriter.resume reopens an unfinished run")

    def _sync(self) -> None:
        """Push HDF5's buffers to the OS (enough for kill -9); fsync too when asked (power loss)."""
        self._h5.flush()
        if self._fd is not None:
            os.fsync(self._fd)

    def _write_step(self, i: int, status: int, rows: int, main_rows: int, blocks: int,
                    attempts: int, started_ns: int, dirty: int = 0) -> None:
        seq = self._entries[i].seq + 1
        now = time.time_ns()
        self._jsteps[i, seq & 1] = record([seq, status, rows, main_rows, blocks, attempts,
                                           started_ns, now, dirty])
        self._entries[i] = StepEntry(seq, status, rows, main_rows, blocks, attempts, started_ns,
                                     now, dirty)

    def _write_run(self, status: int, resumes: int, started_ns: int) -> None:
        seq = self._run[0] + 1
        now = time.time_ns()
        self._jrun[seq & 1] = record([seq, status, resumes, started_ns, now])
        self._run = [seq, status, resumes, started_ns, now]

    def _reset_step(self, i: int) -> None:
        """Drop an unfinished step's rows: journal first (pending, dirty), overwrite the data with
        fill, then journal it clean; a kill in between leaves it dirty for the next resume."""
        e = self._entries[i]
        self._write_step(i, STEP_PENDING, 0, 0, 0, e.attempts, 0, dirty=1)
        self._sync()
        block = block_points(self.layout.steps[i])
        main, tails = self._datasets(i)
        for ds in main + (tails or []):
            blank = np.full((min(block, ds.shape[0]), *ds.shape[1:]), fill_value(ds.dtype),
                            dtype=ds.dtype)
            for start in range(0, ds.shape[0], block):
                stop = min(start + block, ds.shape[0])
                ds[start:stop] = blank[: stop - start]
        self._sync()
        self._write_step(i, STEP_PENDING, 0, 0, 0, e.attempts, 0)
        self._sync()


def _slots(ds: h5py.Dataset) -> list[bytes | None]:
    """Every slot of a slot dataset; one read, or slot by slot if a kill tore a chunk (None)."""
    try:
        return [bytes(raw) for raw in ds[()]]
    except (OSError, ValueError):
        return [read_slot(ds, k) for k in range(ds.shape[0])]


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

"""One step's rows into a run file: per-point append and block writes, durable block by block.

It writes only into storage the layout pre-allocated (data, tail, journal record slots); it must
not open files or create HDF5 objects. The ordering rules are explained in docs/runfile.md.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from dendrolab.errors import RunFileError
from protocols.runfile_layout import STEP_DONE, STEP_RUNNING, block_points, fill_value, step_storage

if TYPE_CHECKING:
    from protocols.runfile import RunWriter


class StepWriter:
    """Writes one step's rows: whole arrays with ``write_block`` or one row with ``append``.

    Rows become durable block by block: on each ``write_block`` return, when ``block_points``
    appended rows fill the buffer, after ``max_block_s``, on ``flush`` and on ``end``.
    """

    def __init__(self, run: RunWriter, index: int) -> None:
        spec = run.layout.steps[index]
        self._run, self.index, self.name = run, index, spec.name
        self.n_points = spec.n_points
        self.names = tuple(d.name for d in spec.datasets)
        self._nd = len(self.names)
        self._block = block_points(spec)
        self._main, self._tails = run._datasets(index)
        self._chunked = self._tails is not None and step_storage(spec, run.layout) == "chunked"
        self._shapes = [d.shape for d in spec.datasets]
        self._bufs = [np.empty((self._block, *d.shape), dtype=d.dtype) for d in spec.datasets]
        self._fills = [fill_value(b.dtype) for b in self._bufs]
        self._start = 0  # step row held in buffer row 0
        self._fill = 0  # rows held in the buffer
        self._cap = min(self._block, self.n_points)
        self._durable = 0  # rows the journal vouches for
        self._main_rows = 0  # rows written to the main datasets (chunk aligned while running)
        self._main_journaled = 0
        self._blocks = 0
        self._deadline: float | None = None
        self._open = True

    @property
    def rows(self) -> int:
        """Rows accepted so far (durable or still buffered)."""
        return self._start + self._fill

    @property
    def durable_rows(self) -> int:
        """Rows the journal vouches for: what survives a kill -9 right now."""
        return self._durable

    def append(self, *values: Any) -> None:
        """Buffer one row (values in declared dataset order); a full block is written at once."""
        i = self._fill
        if i >= self._cap or len(values) != self._nd:
            self._append_error(values)
        for buf, value in zip(self._bufs, values, strict=True):
            buf[i] = value
        self._fill = i + 1
        if self._fill == self._cap:
            self._spill()
            self._persist()
        elif self._deadline is None:
            if self._run.max_block_s is not None:
                self._deadline = time.monotonic() + self._run.max_block_s
        elif time.monotonic() >= self._deadline:
            self._persist()

    def write_block(self, **arrays: Any) -> int:
        """Write equal-length arrays for every dataset and make them durable; returns rows."""
        self._check_open()
        if set(arrays) != set(self.names):
            raise RunFileError(f"step {self.name!r} expects arrays {list(self.names)}, got "
                               f"{sorted(arrays)}")
        data = [np.asarray(arrays[n]) for n in self.names]
        n = len(data[0]) if data[0].ndim else 0
        for name, arr, shape in zip(self.names, data, self._shapes, strict=True):
            if arr.shape != (n, *shape):
                raise RunFileError(f"step {self.name!r}: {name!r} has shape {arr.shape}, "
                                   f"expected {(n, *shape)} like the other arrays")
        if self.rows + n > self.n_points:
            raise RunFileError(f"step {self.name!r}: {self.rows + n} rows exceed the declared "
                               f"n_points={self.n_points}")
        pos = 0
        while pos < n:
            take = min(self._cap - self._fill, n - pos)
            if self._chunked and self._fill == 0 and take == self._block:
                stop = self._start + take  # whole chunk straight from the caller's arrays
                for ds, arr in zip(self._main, data, strict=True):
                    ds[self._start : stop] = arr[pos : pos + take]
                self._advance(take)
            else:
                for buf, arr in zip(self._bufs, data, strict=True):
                    buf[self._fill : self._fill + take] = arr[pos : pos + take]
                self._fill += take
                if self._fill == self._cap:
                    self._spill()
            pos += take
        self._persist()
        return self._durable

    def flush(self) -> int:
        """Make every accepted row durable now; returns the durable row count."""
        self._check_open()
        self._persist()
        return self._durable

    def end(self) -> int:
        """Mark the step done (it may hold fewer than n_points rows); returns its row count."""
        self._check_open()
        run, total = self._run, self.rows
        wrote = self._main_rows > self._main_journaled  # full chunks not yet flushed
        if self._chunked and self._fill:  # the last, partial chunk: padded, written once
            self._write_chunk()
            wrote = True
        elif not self._chunked and total > self._durable:
            self._write_contiguous()
            wrote = True
        if wrote:
            run._sync()  # data before the journal record that vouches for it
        e = run._entries[self.index]
        blocks = self._blocks + (total > self._durable)
        run._write_step(self.index, STEP_DONE, total, total, blocks, e.attempts, e.started_ns)
        run._sync()
        self._durable = self._main_rows = total
        self._release(flush=False)
        return total

    def __enter__(self) -> StepWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self._open:
            return
        if exc_type is None:
            self.end()
        else:
            self._release(flush=True)  # keep what was measured; the step stays unfinished

    # -- internals ---------------------------------------------------------------------------
    def _check_open(self) -> None:
        if not self._open:
            raise RunFileError(f"step {self.name!r} is no longer open for writing")
        self._run._check_open()

    def _append_error(self, values: tuple[Any, ...]) -> None:
        self._check_open()
        if len(values) != self._nd:
            raise RunFileError(f"step {self.name!r}: append takes {self._nd} values "
                               f"({', '.join(self.names)}), got {len(values)}")
        raise RunFileError(f"step {self.name!r} is full: n_points={self.n_points} rows declared")

    def _advance(self, rows: int) -> None:
        """The buffer's chunk went to the main datasets: start the next chunk."""
        self._start += rows
        self._main_rows = self._start
        self._fill = 0
        self._cap = min(self._block, self.n_points - self._start)

    def _write_chunk(self) -> None:
        """Write the buffer as one whole chunk, padded with fill: a write that covers a whole
        chunk is the only kind for which HDF5 never reads (and decompresses) the old chunk,
        which a kill may have left pointing at foreign bytes."""
        for buf, ds, fill in zip(self._bufs, self._main, self._fills, strict=True):
            buf[self._fill :] = fill
            ds[self._start : self._start + self._block] = buf

    def _spill(self) -> None:
        """Buffer full: a chunked step writes it as one fresh chunk; a contiguous one persists."""
        if self._chunked:
            self._write_chunk()
            self._advance(self._fill)
        else:
            self._persist()
            self._start, self._fill = self._start + self._fill, 0
            self._cap = min(self._block, self.n_points - self._start)

    def _write_contiguous(self) -> None:
        lo = self._durable - self._start
        for buf, ds in zip(self._bufs, self._main, strict=True):
            ds[self._durable : self.rows] = buf[lo : self._fill]

    def _persist(self) -> None:
        """Data first, flush, then the journal record, flush: the journal never runs ahead."""
        self._deadline = None
        run, total = self._run, self.rows
        if total == self._durable and self._main_rows == self._main_journaled:
            return
        e = run._entries[self.index]
        self._blocks += 1
        if not self._chunked:
            self._write_contiguous()
            run._sync()
            run._write_step(self.index, STEP_RUNNING, total, total, self._blocks, e.attempts,
                            e.started_ns)
            run._sync()
            self._durable = self._main_rows = self._main_journaled = total
            return
        if self._main_rows > self._main_journaled:  # fresh chunks: flush, then vouch for them
            run._sync()
            run._write_step(self.index, STEP_RUNNING, self._main_rows, self._main_rows,
                            self._blocks, e.attempts, e.started_ns)
            run._sync()
            self._durable = self._main_journaled = self._main_rows
        if total > self._durable:  # the current chunk's rows go to the uncompressed tail
            lo = self._durable - self._start
            for buf, tail in zip(self._bufs, self._tails, strict=True):
                tail[lo : self._fill] = buf[lo : self._fill]
            run._sync()
            run._write_step(self.index, STEP_RUNNING, total, self._start, self._blocks,
                            e.attempts, e.started_ns)
            run._sync()
            self._durable = total

    def _release(self, flush: bool) -> None:
        if flush and self._open:
            self._persist()
        self._open, self._cap = False, 0  # append now ends in a RunFileError
        self._main, self._tails = [], None  # close the datasets (see RunWriter._datasets)
        if self._run._active is self:
            self._run._active = None

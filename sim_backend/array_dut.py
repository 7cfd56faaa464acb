"""A 1T1R synapse array as the bench sees it: R x C cells of ``SynapseArray`` behind line ports.

Cell (i, j) (1-based) joins bit line ``r<i>`` to source line ``s<j>`` through an access
transistor gated by word line ``g<j>``; it conducts I_ij = G_ij V (1 + eps V^2), V = V_ri - V_sj,
only while its gate is on (V_gj > 0), and a held V_ij != 0 with the gate on is a SET/RESET pulse
for that cell alone (SET target limited by the gate as in ``SynapseDut``). The physics, its keyed
variation and noise streams are those of ``SynapseArray``; this class only maps lines to cells and
must not own a clock or instruments (the bench drives it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

import numpy as np

from sim_backend.physics import rng
from sim_backend.physics.synapse import SynapseArray
from sim_backend.physics.waveform import Waveform

#: Largest array side the bench accepts (rows and columns).
MAX_SIDE = 256
#: Port names: ``r<i>`` bit line of row i, ``g<j>`` word (gate) line and ``s<j>`` source line of
#: column j, 1-based, no leading zeros.
PORT_RE = re.compile(r"([rgs])([1-9][0-9]*)")
PORT_HELP = "r<row>, g<column>, s<column>"
#: Largest switching dose (rate x time) a hold may give a cell and still count as a read.
READ_DOSE_FLOOR = 1e-6
#: Read-noise stream of a cell: the synapse model's own (``SynapseArray.read``).
READ_STREAM = "read.synapse"
#: Read-noise draws made at once per cell (``ArrayDut._read_noise``).
NOISE_BLOCK = 32
#: Most distinct (letter, lines, gate pattern) read plans an array remembers (and line states
#: whose pulsed cells it remembers, ``ArrayDut._pulse_plan``).
MAX_READ_PLANS = 4096
#: Most cells a hold pulses one by one (``SynapseArray.pulse_cell``) rather than as a subset.
PULSE_CELLS = 8


class ArrayDut:
    """R x C 1T1R cells (one ``SynapseArray`` of R*C cells, row-major: cell (i, j) is
    ``(i-1)*C + (j-1)``) with line voltages ``v_row`` (R,), ``v_gate`` (C,), ``v_src`` (C,).

    ``hold(v, dt)`` ignores ``v`` (the bench's main-port voltage): an array has no main port,
    the line voltages it holds are set by the bench (``set_lines``). Lines nothing drives sit at
    0 V (an assumption: grounded through the board, as a single cell's source is).

    Reads do not disturb: a hold whose largest switching dose r(V) dt over the biased cells is
    below ``READ_DOSE_FLOOR`` changes no cell (an approximation of ``SynapseArray.pulse``, which
    would move a cell by at most that fraction of its gap, plus an OU step of c2c_add_rel x
    range x sqrt(2 x dose): with the original preset a 0.2 V read for 1 ms has a dose of 5e-9).
    It keeps reading a large array cheap; writes (|V| ~ 1 V, doses >> 1) are computed exactly.
    """

    kind = "array"
    limit_a: float | None = None
    self_limiting = False

    def __init__(self, cells: SynapseArray, rows: int, cols: int) -> None:
        if cells.n != rows * cols:
            raise ValueError(f"{rows}x{cols} array needs {rows * cols} cells, got {cells.n}")
        self.cells, self.rows, self.cols = cells, rows, cols
        self.v_row = np.zeros(rows)
        self.v_gate = np.zeros(cols)
        self.v_src = np.zeros(cols)
        pr = cells.params
        self._ages = bool(pr.relax_drift_rel or pr.relax_sigma_a_rel or pr.relax_sigma_b_rel)
        self._parsed: dict[str, tuple[str, int] | None] = {}
        p = cells.p  # bound on any cell's switching rate at |V|: k_max exp(|V| / v0_min)
        self._k_max = float(max(p["k_set_per_s"].max(), p["k_reset_per_s"].max()))
        self._v0_min = float(min(p["v_set_v"].min(), p["v_reset_v"].min()))
        self._rate: float | None = None  # the bound at the present lines; None: lines changed
        self._key: object = None  # the key of the last ``set_lines`` (None: lines set since)
        # ``_rate_bound``'s parts, each with the line voltages (bytes) it was computed from
        # (max|v_row|; max|v_src| over the gated columns, from v_src and v_gate)
        self._bound_row, self._max_row = b"", np.float64(0.0)
        self._bound_src, self._bound_gate = b"", b""
        self._max_src: np.float64 | None = None
        # (letter, lines, gate pattern) -> the cells a line read sums (``_read_cells``)
        self._reads: dict[tuple[str, bytes, bytes], tuple[np.ndarray, ...]] = {}
        # line voltages (bytes of v_row, v_gate, v_src) -> the cells a hold pulses there
        self._pulses: dict[tuple[bytes, bytes, bytes], tuple[np.ndarray, list | None]] = {}
        # read-noise factors served ahead (``_read_noise``): per cell a block of NOISE_BLOCK
        # factors 1 + sigma z (z its standard normal draws, sigma ``_noise_sigma``) for events
        # base .. base + NOISE_BLOCK - 1 (none drawn yet: a base no event reaches); the table
        # is made on the first noisy read (``_gain_flat``, a flat view: cell c, event base + k
        # at c * NOISE_BLOCK + k)
        self._noise_gain: np.ndarray | None = None
        self._gain_flat: np.ndarray | None = None
        self._noise_base = np.full(rows * cols, -NOISE_BLOCK, dtype=np.int64)
        self._noise_keys = cells.keys  # the keys the blocks were drawn for (see _read_noise)
        self._noise_sigma = 0.0  # the sigma the factors were computed with

    # --------------------------------------------------------------------- ports
    def parse_port(self, port: str) -> tuple[str, int] | None:
        """``('r'|'g'|'s', 0-based index)`` of a port name, or None if it is not one here
        (remembered: the bench asks again on every wiring change)."""
        known = self._parsed.get(port, False)
        if known is not False:
            return known
        self._parsed[port] = parsed = self._parse(port)
        return parsed

    def _parse(self, port: str) -> tuple[str, int] | None:
        m = PORT_RE.fullmatch(port)
        if m is None:
            return None
        index = int(m.group(2)) - 1
        limit = self.rows if m.group(1) == "r" else self.cols
        return (m.group(1), index) if index < limit else None

    def _line(self, letter: str) -> np.ndarray:
        return self.v_row if letter == "r" else self.v_gate if letter == "g" else self.v_src

    def set_lines(self, values: Iterable[tuple[str, int | np.ndarray, float]],
                  key: object = None) -> None:
        """Set line voltages: every line to 0 V, then each ``(letter, index or index array,
        volts)``. A caller's ``key`` equal to the previous call's (and no line set since) means
        the same values: nothing to do (``values`` is not even iterated)."""
        if key is not None and key == self._key:
            return
        self._key = key
        self._rate = None
        self.v_row.fill(0.0)
        self.v_gate.fill(0.0)
        self.v_src.fill(0.0)
        for letter, index, volts in values:
            self._line(letter)[index] = volts

    @property
    def lines_key(self) -> object:
        """The key of the last ``set_lines``/``update_lines`` (None once a line was set
        otherwise since, or none was given)."""
        return self._key

    def update_lines(self, values: Iterable[tuple[str, int | np.ndarray, float]],
                     key: object) -> None:
        """Set only some lines, the others kept: for a caller whose lines are still those of
        its ``set_lines`` (``lines_key`` its key) and differ now on ``values`` alone -- the same
        line voltages as a full ``set_lines`` with every value, for one or two writes."""
        self._key = key
        self._rate = None
        for letter, index, volts in values:
            self._line(letter)[index] = volts

    def line_voltage(self, letter: str, index: int) -> float:
        return float(self._line(letter)[index])

    def set_line(self, letter: str, index: int, volts: float) -> None:
        """One line's voltage (a source in compliance holds it below its level)."""
        self._rate = self._key = None
        self._line(letter)[index] = volts

    # --------------------------------------------------------------------- state
    def cell_voltages(self) -> np.ndarray:
        """(R, C) voltage across each cell's RRAM (top to source) while its gate is on, else 0."""
        v = self.v_row[:, None] - self.v_src[None, :]
        return np.where(self.v_gate[None, :] > 0, v, 0.0)

    def conductance(self) -> np.ndarray:
        """(R, C) noise-free conductances now (S)."""
        return self.cells.g_s.reshape(self.rows, self.cols).copy()

    def stuck(self) -> np.ndarray:
        """(R, C) stuck flags (``physics.synapse.STUCK_*``)."""
        return self.cells.stuck.reshape(self.rows, self.cols).copy()

    def hold(self, v: float, dt: float) -> None:
        """The present line voltages held for ``dt``: one pulse of that width for every cell with
        its gate on and a voltage across it; the others only age (which changes nothing unless a
        relaxation law is configured)."""
        if not dt > 0:
            return
        if not self._ages:
            if self._rate is None:
                self._rate = self._rate_bound()
            if self._rate * dt < READ_DOSE_FLOOR:
                return  # a read: no cell gets a dose that could move it (class docstring)
            # only the cells under a voltage change: pulse just those
            idx, cells = self._pulse_plan()
            if cells is not None:
                # a few cells (write-verify: one): each pulsed on its own, the same numbers
                # as the subset pulse (``SynapseArray.pulse_cell``) without its array calls
                pulse_cell = self.cells.pulse_cell
                for i, v, v_gate in cells:
                    pulse_cell(i, v, dt, v_gate)
                return
            if idx.size == 0:
                return
            if idx.size < self.rows * self.cols:
                sub = self.cells.take(idx)
                vc = self.cell_voltages().ravel()
                sub.pulse(vc[idx], dt, self.v_gate[idx % self.cols])
                self.cells.put(idx, sub)
                return
        vc = self.cell_voltages().ravel()
        gates = np.broadcast_to(self.v_gate[None, :], (self.rows, self.cols)).ravel()
        self.cells.pulse(vc, dt, gates)

    def _pulse_plan(self) -> tuple[np.ndarray, list[tuple[int, float, float]] | None]:
        """The cells a hold at the present lines pulses: their flat indices, and for at most
        PULSE_CELLS of them ``(index, voltage, gate voltage)`` as Python numbers (else None).
        Remembered per exact line voltages (bytes, so any change of a line is seen): a
        write-verify pulse is held twice (split by its sample) at the same lines."""
        key = (self.v_row.tobytes(), self.v_gate.tobytes(), self.v_src.tobytes())
        plan = self._pulses.get(key)
        if plan is None:
            vc = self.cell_voltages().ravel()
            idx = np.flatnonzero(vc)
            cells = None
            if idx.size <= PULSE_CELLS:
                gates = self.v_gate[idx % self.cols]
                cells = list(zip(idx.tolist(), vc[idx].tolist(), gates.tolist(), strict=True))
            if len(self._pulses) >= MAX_READ_PLANS:
                self._pulses.clear()
            self._pulses[key] = plan = (idx, cells)
        return plan

    def _rate_bound(self) -> float:
        """Bound on any gated cell's switching rate at the present lines (0 with no gate on):
        its |V| is at most max|v_row| + max|v_src| over the gated columns."""
        # max|v_row| and |v_src| are kept with the exact bytes they were computed from: a board
        # steps the word lines with the bit and source lines as they were (np.maximum.reduce
        # is what ndarray.max calls, without its Python wrapper)
        row = self.v_row.tobytes()
        if row != self._bound_row:
            self._bound_row, self._max_row = row, np.maximum.reduce(np.abs(self.v_row))
        # max|v_src| over the gated columns likewise, with the source and word lines' bytes
        # (a write-verify loop moves the bit line alone; None: no gate on)
        src, gate = self.v_src.tobytes(), self.v_gate.tobytes()
        if src != self._bound_src or gate != self._bound_gate:
            gated = np.abs(self.v_src)[self.v_gate > 0]
            self._bound_src, self._bound_gate = src, gate
            self._max_src = np.maximum.reduce(gated) if gated.size else None
        if self._max_src is None:
            return 0.0
        bound = float(self._max_row + self._max_src)
        return self._k_max * math.exp(min(bound / self._v0_min, 700.0))

    def drive_lines(self, lines: Sequence[tuple[str, int, float]], wave: Waveform) -> None:
        """Apply a 1-D waveform on the given lines (each at its offset + the waveform), the others
        held; segment by segment, then the lines are back at their offsets' values."""
        v_seg, dt_seg = np.asarray(wave.v, float), np.asarray(wave.dt, float)
        if v_seg.ndim != 1:
            raise ValueError("an array line takes a one-channel waveform")
        saved = [(letter, index, self.line_voltage(letter, index)) for letter, index, _ in lines]
        for v, dt in zip(v_seg.tolist(), dt_seg.tolist(), strict=True):
            for letter, index, offset in lines:
                self._line(letter)[index] = offset + v
            self._rate = None
            self.hold(0.0, dt)
        for letter, index, volts in saved:
            self._line(letter)[index] = volts
        self._rate = self._key = None

    # --------------------------------------------------------------------- reading
    def _read_cells(self, letter: str, index: int | np.ndarray, gate_on: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                               tuple[int, int, int] | None]:
        """``(row, column, flat index, flat index x NOISE_BLOCK)`` of each cell a read of a line
        (or of several lines of one letter) sums, in summation order, plus ``(row, column,
        flat index)`` as ints when that is a single cell (else None), for a gate pattern. A
        pure function of its arguments and the array's shape, so it is remembered per (letter,
        lines, pattern): a board reads the same few lines under the same few word lines."""
        lines = np.atleast_1d(np.asarray(index, dtype=np.intp))
        key = (letter, lines.tobytes(), gate_on.tobytes())
        plan = self._reads.get(key)
        if plan is not None:
            return plan
        if letter == "r":
            rows, cols = lines, np.flatnonzero(gate_on)
        else:
            rows, cols = np.arange(self.rows), lines[gate_on[lines]]
        if letter == "s":  # column by column, as a sum of single lines
            rows, cols = np.tile(rows, cols.size), np.repeat(cols, rows.size)
        else:  # row by row, each across the gated columns
            rows, cols = np.repeat(rows, cols.size), np.tile(cols, rows.size)
        idx = rows * self.cols + cols
        if len(self._reads) >= MAX_READ_PLANS:
            self._reads.clear()
        # a read of one cell (write-verify) also gets its (row, column, flat index) as ints
        one = (int(rows[0]), int(cols[0]), int(idx[0])) if idx.size == 1 else None
        self._reads[key] = plan = (rows, cols, idx, idx * NOISE_BLOCK, one)
        return plan

    def _noise_table(self, sigma: float) -> np.ndarray:
        """The blocks' table, made on the first noisy read, every block dropped if the cells'
        keys were replaced or sigma changed; returns the keys."""
        keys = self.cells.keys
        if self._noise_gain is None:
            self._noise_gain = np.ones((self.rows * self.cols, NOISE_BLOCK))
            self._gain_flat = self._noise_gain.reshape(-1)
        if keys is not self._noise_keys or sigma != self._noise_sigma:
            self._noise_base[:] = -NOISE_BLOCK
            self._noise_keys, self._noise_sigma = keys, sigma
        return keys

    def _read_noise(self, idx: np.ndarray, idx_blk: np.ndarray, ev: np.ndarray,
                    sigma: float) -> np.ndarray:
        """``1.0 + sigma * rng.normal(keys[idx], READ_STREAM, ev)``, bit for bit, from blocks.

        A draw is a pure function of (cell key, stream, event), elementwise, so a block of a
        cell's next NOISE_BLOCK events drawn at once holds exactly the values the single draws
        would give (one ``normal`` call per NOISE_BLOCK reads instead of one per read), and so
        do its factors. When a cell's event lies outside its block (its first read, a jump of
        its counter, the end of the block) every cell of the read gets a new block from its
        present event. All blocks are dropped if the cells' keys are replaced or sigma changes.
        """
        keys = self._noise_table(sigma)
        off = ev - self._noise_base.take(idx)
        wrapped = off.view(np.uint64)  # an offset below 0 wraps above any block
        if np.maximum.reduce(wrapped) >= NOISE_BLOCK:
            # every cell of the read gets a new block, not only those past theirs: cells read
            # together then run out together (one draw per NOISE_BLOCK reads of the group, not
            # one per read for cells out of step); a cell listed twice has the same event both
            # times, so the same block twice
            z = rng.normal(keys[idx][:, None], READ_STREAM,
                           ev[:, None] + np.arange(NOISE_BLOCK)[None, :])
            self._noise_gain[idx] = 1.0 + sigma * z
            self._noise_base[idx] = ev
            return self._gain_flat.take(idx_blk)
        return self._gain_flat.take(idx_blk + off)

    def _line_current(self, letter: str, index: int | np.ndarray, noisy: bool) -> float:
        """Current a source sources into a line (or into several lines of one letter joined on
        one terminal): into ``r_i`` the sum of its cells' currents, into ``s_j`` minus the sum
        over its column (current leaves there), into ``g_j`` 0 (an insulated gate draws no DC
        current). Only cells whose gate is on conduct.

        Per read this is a few whole-array numpy calls on the remembered cells (``take`` and
        ``np.add.reduce``: the same values as fancy indexing and ``sum``, with less overhead).
        """
        if letter == "g":
            return 0.0
        rows, cols, idx, idx_blk, one = self._read_cells(letter, index, self.v_gate > 0)
        if one is not None:
            return self._cell_current(letter, *one, noisy)
        if idx.size == 0:
            return 0.0
        v = self.v_row.take(rows) - self.v_src.take(cols)
        cells = self.cells
        i = cells.g_s.take(idx) * v * (1.0 + cells.p["eps_nl"].take(idx) * v * v)
        sigma = cells.params.read_noise_rel
        if noisy:
            n_reads = cells.n_reads
            ev = n_reads.take(idx)
            n_reads[idx] = ev + 1
            if sigma:
                i = i * self._read_noise(idx, idx_blk, ev, sigma)
        total = float(np.add.reduce(i))
        return total if letter == "r" else -total

    def _cell_current(self, letter: str, row: int, col: int, c: int, noisy: bool) -> float:
        """``_line_current`` when the read sums one cell (flat index ``c``): the same float64
        operations on Python floats (elementwise, so the same bits; a one-element sum is
        that element) and, for the noise, the same blocks as ``_read_noise`` -- without a
        dozen one-element array calls per write-verify read."""
        v = self.v_row.item(row) - self.v_src.item(col)
        cells = self.cells
        i = cells.g_s.item(c) * v * (1.0 + cells.p["eps_nl"].item(c) * v * v)
        if noisy:
            n_reads = cells.n_reads
            ev = n_reads.item(c)
            n_reads[c] = ev + 1
            sigma = cells.params.read_noise_rel
            if sigma:
                i = i * self._cell_noise(c, ev, sigma)
        return i if letter == "r" else -i

    def _cell_noise(self, c: int, ev: int, sigma: float) -> float:
        """``_read_noise`` for one cell and event, as a Python float (the same blocks, refilled
        under the same rule: the cell's event outside its block)."""
        keys = self._noise_table(sigma)
        off = ev - self._noise_base.item(c)
        if not 0 <= off < NOISE_BLOCK:
            z = rng.normal(keys[c:c + 1][:, None], READ_STREAM,
                           np.array([ev])[:, None] + np.arange(NOISE_BLOCK)[None, :])
            self._noise_gain[c] = 1.0 + sigma * z[0]
            self._noise_base[c] = ev
            off = 0
        return self._gain_flat.item(c * NOISE_BLOCK + off)

    def read_line(self, letter: str, index: int | np.ndarray) -> float:
        """A measurement of the current into a line: each conducting cell's next read-noise
        draw (the same stream and per-cell counter as ``SynapseArray.read``)."""
        return self._line_current(letter, index, noisy=True)

    def line_current(self, letter: str, index: int) -> float:
        """The noise-free current into a line (no read event is used)."""
        return self._line_current(letter, index, noisy=False)

    def line_voltage_at(self, letter: str, index: int, i_a: float, v_max: float = 40.0) -> float:
        """The voltage on a line at which it conducts ``i_a`` (others held; for compliance).

        Bisection on the noise-free line current, which rises with the line's own voltage (on a
        row and on a source line alike); the line is left as it was.
        """
        line = self._line(letter)
        old = float(line[index])
        lo, hi = -v_max, v_max
        try:
            for _ in range(60):
                mid = 0.5 * (lo + hi)
                line[index] = mid
                if self.line_current(letter, index) < i_a:
                    lo = mid
                else:
                    hi = mid
        finally:
            line[index] = old
        mid = 0.5 * (lo + hi)
        return mid if math.isfinite(mid) else old

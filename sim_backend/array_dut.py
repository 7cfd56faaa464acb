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
from collections.abc import Sequence

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

    def set_lines(self, values: Sequence[tuple[str, int | np.ndarray, float]]) -> None:
        """Set line voltages: every line to 0 V, then each ``(letter, index or index array,
        volts)``."""
        self.v_row[:] = 0.0
        self.v_gate[:] = 0.0
        self.v_src[:] = 0.0
        for letter, index, volts in values:
            self._line(letter)[index] = volts

    def line_voltage(self, letter: str, index: int) -> float:
        return float(self._line(letter)[index])

    def set_line(self, letter: str, index: int, volts: float) -> None:
        """One line's voltage (a source in compliance holds it below its level)."""
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
            gate_on = self.v_gate > 0
            if not gate_on.any():
                return
            # |V| of any gated cell is at most max|v_row| + max|v_src| over gated columns
            bound = float(np.abs(self.v_row).max() + np.abs(self.v_src[gate_on]).max())
            if self._k_max * math.exp(min(bound / self._v0_min, 700.0)) * dt < READ_DOSE_FLOOR:
                return  # a read: no cell gets a dose that could move it (class docstring)
        vc = self.cell_voltages().ravel()
        gates = np.broadcast_to(self.v_gate[None, :], (self.rows, self.cols)).ravel()
        if not self._ages:  # only the cells under a voltage change: pulse just those
            idx = np.flatnonzero(vc)
            if idx.size == 0:
                return
            if idx.size < vc.size:
                sub = self.cells.take(idx)
                sub.pulse(vc[idx], dt, gates[idx])
                self.cells.put(idx, sub)
                return
        self.cells.pulse(vc, dt, gates)

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
            self.hold(0.0, dt)
        for letter, index, volts in saved:
            self._line(letter)[index] = volts

    # --------------------------------------------------------------------- reading
    def _cells_of(self, letter: str, index: int) -> np.ndarray:
        """Flat indices of the cells on a line (a row's cells, or a column's)."""
        if letter == "r":
            return np.arange(index * self.cols, (index + 1) * self.cols)
        return np.arange(index, self.rows * self.cols, self.cols)

    def _line_current(self, letter: str, index: int | np.ndarray, noisy: bool) -> float:
        """Current a source sources into a line (or into several lines of one letter joined on
        one terminal): into ``r_i`` the sum of its cells' currents, into ``s_j`` minus the sum
        over its column (current leaves there), into ``g_j`` 0 (an insulated gate draws no DC
        current). Only cells whose gate is on conduct."""
        if letter == "g":
            return 0.0
        gate_on = self.v_gate > 0
        lines = np.atleast_1d(np.asarray(index, dtype=np.intp))
        if letter == "r":
            rows, cols = lines, np.flatnonzero(gate_on)
        else:
            rows, cols = np.arange(self.rows), lines[gate_on[lines]]
        if rows.size == 0 or cols.size == 0:
            return 0.0
        if letter == "s" and cols.size > 1:  # column by column, as a sum of single lines
            rows, cols = np.repeat(rows[None, :], cols.size, 0).ravel(), np.repeat(cols, rows.size)
            v = self.v_row[rows] - self.v_src[cols]
            idx = rows * self.cols + cols
        else:
            v = (self.v_row[rows][:, None] - self.v_src[cols][None, :]).ravel()
            idx = (rows[:, None] * self.cols + cols[None, :]).ravel()
        cells = self.cells
        i = cells.g_s[idx] * v * (1.0 + cells.p["eps_nl"][idx] * v * v)
        sigma = cells.params.read_noise_rel
        if noisy:
            ev = cells.n_reads[idx]
            cells.n_reads[idx] = ev + 1
            if sigma:
                i = i * (1.0 + sigma * rng.normal(cells.keys[idx], READ_STREAM, ev))
        total = float(i.sum())
        return total if letter == "r" else -total

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

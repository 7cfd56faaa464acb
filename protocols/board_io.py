"""The board's primitive operations on real drivers: route, select a word line, read columns,
write-verify a cell, pulse a dendrite or soma.

Why a layer of its own: programming, calibration and inference all reach the board through these
few operations, so each instrument command the board needs is written once, and the matrices'
state is kept in one place (``Router``: every matrix gets one exclusive-close command per change
that holds exactly the crosspoints every stage wants). No files here, no network arithmetic
(``board_math``), nothing that asks whether the instruments are simulated.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dendrolab.errors import ParameterError
from protocols.board import ArraySpec, Board, Crosspoint, DeviceSpec
from protocols.runner import holding, write_verify_loop

#: Measurement aperture of the array reads (s): short, as a verify read (synapse-write-verify).
READ_APERTURE_S = 20e-6
#: Compliance of the row driver and of the sense SMUs (A): far above a column's current.
ARRAY_COMPLIANCE_A = 1e-3
#: Compliance of the word-line driver (A): a gate draws almost nothing.
GATE_COMPLIANCE_A = 1e-4


def _by_instrument(drivers: Sequence[Any]) -> list[tuple[Any, list[int] | None, list[int]]]:
    """Sense SMUs grouped by instrument: (driver, its channels or None, the indices in
    ``drivers`` they are). Channels of one instrument that reads channel lists take one query
    per word-line step."""
    groups: dict[int, tuple[Any, list[int], list[int]]] = {}
    for b, smu in enumerate(drivers):
        key = id(smu.resource)
        if key not in groups:
            groups[key] = (smu, [], [])
        groups[key][1].append(smu.channel)
        groups[key][2].append(b)
    out: list[tuple[Any, list[int] | None, list[int]]] = []
    for smu, channels, branches in groups.values():
        if getattr(smu.spec.dialect, "measure_currents", None) is not None:
            out.append((smu, channels, branches))
        else:
            out += [(drivers[b], None, [b]) for b in branches]
    return out


class Router:
    """Desired closed crosspoints per stage group ("rows", "gate", "device"); ``apply`` sends
    one exclusive close to each matrix whose wanted set changed (and nothing else)."""

    GROUPS = ("rows", "gate", "device")

    def __init__(self, matrices: dict[str, Any]) -> None:
        self.matrices = matrices
        self.groups: dict[str, frozenset[Crosspoint]] = {g: frozenset() for g in self.GROUPS}
        self.closed: dict[str, frozenset[Crosspoint]] = {m: frozenset() for m in matrices}

    def set(self, **groups: Iterable[Crosspoint]) -> None:
        for name, points in groups.items():
            self.groups[name] = frozenset(points)
        wanted: dict[str, set[Crosspoint]] = {m: set() for m in self.matrices}
        for points in self.groups.values():
            for cp in points:
                wanted[cp.matrix].add(cp)
        for matrix, points in wanted.items():
            if frozenset(points) != self.closed[matrix]:
                self.matrices[matrix].route_set(
                    [(cp.row, cp.card_column, cp.slot) for cp in sorted(
                        points, key=lambda c: (c.column, c.row))])
                self.closed[matrix] = frozenset(points)

    def clear(self) -> None:
        self.set(rows=(), gate=(), device=())

    @contextlib.contextmanager
    def deferred_errors(self) -> Iterator[None]:
        """Every matrix's error queue read once at the end of the block (``deferred_errors``
        of the driver) instead of after each route."""
        with contextlib.ExitStack() as stack:
            for matrix in self.matrices.values():
                stack.enter_context(matrix.deferred_errors())
            yield


@dataclass
class Pulses:
    """One pulsed sweep on a dendrite or soma: levels applied and currents at the pulse tops."""

    levels_v: np.ndarray
    current_a: np.ndarray
    energy_j: float


class BoardIO:
    """Drivers of one board, opened from an ``InstrumentSet``; ``setup`` before use, ``idle``
    after (sources at 0 V and off; the set's own safe state still ends every run)."""

    def __init__(self, board: Board, instruments: Any) -> None:
        self.board = board
        self.rows = instruments.driver(board.rows_smu)
        self.gates = instruments.driver(board.gates_smu)
        # per layer, the sense drivers array by array, group by group (index b * K + k)
        self.sense = [[instruments.driver(role) for a in layer.arrays for role in a.sense]
                      for layer in board.layers]
        self.devices = {d.smu: instruments.driver(d.smu) for layer in board.layers
                        for d in (*layer.dendrites, *layer.somas)}
        names = {a.rows.matrix for layer in board.layers for a in layer.arrays}
        names |= {a.gates.matrix for layer in board.layers for a in layer.arrays}
        names |= {d.route.matrix for layer in board.layers
                  for d in (*layer.dendrites, *layer.somas) if d.route is not None}
        for name in names:
            if getattr(instruments[name], "capability", "") != "matrix":
                raise ParameterError(f"board: role {name!r} is not a switch matrix")
        self.router = Router({name: instruments[name] for name in sorted(names)})
        self._sense_all = [smu for layer in self.sense for smu in layer]
        self._sense_groups = [_by_instrument(layer) for layer in self.sense]
        self._device_cfg: dict[str, tuple[float, float]] = {}

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        """Source-voltage mode and compliance everywhere, sense SMUs holding 0 V (they ground
        the source lines), matrices open."""
        self.router.clear()
        for smu in (self.rows, *self._sense_all):
            smu.configure_source_voltage(ARRAY_COMPLIANCE_A)
            smu.configure_measure(aperture_s=READ_APERTURE_S)
        self.gates.configure_source_voltage(GATE_COMPLIANCE_A)
        self._device_cfg.clear()
        for smu in dict.fromkeys(self._sense_all):
            smu.set_voltage(0.0)
            smu.output_on()

    def idle(self) -> None:
        """Every source to 0 V and off, every crosspoint open."""
        configured = [self.devices[role] for role in self._device_cfg]
        for smu in dict.fromkeys((self.rows, self.gates, *self._sense_all, *configured)):
            smu.set_voltage(0.0)
            smu.output_off()
        self.router.clear()

    @contextlib.contextmanager
    def biased(self) -> Iterator[None]:
        """Word-line driver at ``gate_v`` and row driver at ``read_v`` for the block (reads,
        write-verify); both back to 0 V and off on every exit."""
        with holding(self.gates, self.board.gate_v), holding(self.rows, self.board.read_v):
            yield

    # ------------------------------------------------------------------ arrays
    @staticmethod
    def row_points(arrays: Sequence[ArraySpec], masks: Sequence[np.ndarray]) -> list[Crosspoint]:
        """Crosspoints of the rows whose mask is True, every array of a layer."""
        return [a.rows.crosspoint(int(i)) for a, m in zip(arrays, masks, strict=True)
                for i in np.flatnonzero(m)]

    @staticmethod
    def step_points(arrays: Sequence[ArraySpec], step: int) -> set[Crosspoint]:
        """Crosspoints of word-line step ``step``: column ``step`` of every sense group of every
        array of a layer (word lines shared by the arrays give one crosspoint)."""
        return {a.gates.crosspoint(k * a.group_cols + step) for a in arrays
                for k in range(len(a.sense))}

    def read_columns(self, layer: int, masks: Sequence[np.ndarray], reads: int = 1
                     ) -> np.ndarray:
        """Column currents (arrays, columns) with the masked rows at ``read_v`` (one bit plane):
        word-line step by step (one column of each sense group on), every sense SMU read while
        its column is on. The row driver and word-line driver must be holding (``biased``).
        The matrices' error queues are read once at the end of the plane, not after every
        step (``deferred_errors``): a route the matrix refused fails the plane, never a file."""
        arrays = self.board.layers[layer].arrays
        self.router.set(rows=self.row_points(arrays, masks), device=())
        groups = self._sense_groups[layer]
        k_groups, steps = len(arrays[0].sense), arrays[0].group_cols
        out = np.empty((len(arrays) * k_groups, steps))
        with self.router.deferred_errors():
            for j in range(steps):
                self.router.set(gate=self.step_points(arrays, j))
                for smu, channels, slots in groups:
                    # the sense SMU sinks the column current: it reads minus it
                    total = 0.0
                    for _ in range(reads):
                        total = total + (smu.measure_current() if channels is None
                                         else np.asarray(smu.measure_currents(channels)))
                    out[slots, j] = -total / reads
        # slot b * K + k holds columns k * steps .. of array b: row-major reshape puts them there
        return out.reshape(len(arrays), k_groups * steps)

    def select_cell(self, layer: int, branch: int, row: int, column: int) -> None:
        """Route the row driver to one bit line and the word-line driver to one word line."""
        a = self.board.layers[layer].arrays[branch]
        self.router.set(rows=[a.rows.crosspoint(row)], gate=[a.gates.crosspoint(column)],
                        device=())

    def read_selected(self) -> float:
        """Conductance of the selected cell from the row driver's current at ``read_v`` (the
        row driver must be holding ``read_v``: ``biased``)."""
        return self.rows.measure_current() / self.board.read_v

    def write_verify(self, target_s: float) -> tuple[float, int, bool, list[tuple[Any, float]]]:
        """Write-verify the selected cell (``runner.write_verify_loop``, the protocol action's
        loop): returns (last read conductance, pulses, converged, trace of (reading, pulse))."""
        p = self.board.program
        trace = list(write_verify_loop(
            self.rows, target_s=target_s, tol_rel=p["tol_rel"], v_set=p["v_set"],
            v_reset=p["v_reset"], width_s=p["width_s"], v_read=self.board.read_v,
            max_pulses=int(p["max_pulses"])))
        last, pulse = trace[-1]
        pulses = sum(1 for _, v in trace if v != 0.0)
        return last.current_a / self.board.read_v, pulses, pulse == 0.0, trace

    # ------------------------------------------------------------------ dendrites, somas
    def pulse(self, device: DeviceSpec, levels_v: np.ndarray, settings: dict[str, float]
              ) -> Pulses:
        """A pulsed list sweep on a routed dendrite or soma: one pulse per level from 0 V,
        current sampled inside each pulse; energy = sum V I width."""
        self.router.set(rows=(), gate=(), device=[device.route] if device.route else ())
        smu = self.devices[device.smu]
        key = (settings["compliance_a"], settings["width_s"])
        if self._device_cfg.get(device.smu) != key:  # dendrites and somas may share an SMU
            smu.configure_source_voltage(settings["compliance_a"])
            smu.configure_measure(aperture_s=min(READ_APERTURE_S, 0.4 * settings["width_s"]))
            self._device_cfg[device.smu] = key
        levels = np.asarray(levels_v, dtype=np.float64)
        result = smu.pulsed_list_sweep(list(levels), width_s=settings["width_s"],
                                       period_s=settings["period_s"], base_v=0.0)
        smu.output_off()
        current = np.asarray(result.current_a, dtype=np.float64)
        energy = float(np.sum(np.abs(np.asarray(result.voltage_v) * current))
                       * settings["width_s"])
        return Pulses(levels, current, energy)


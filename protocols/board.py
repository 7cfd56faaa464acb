"""The board description: which array line, dendrite and soma sits behind which instrument and
matrix crosspoint, and the voltages the host may use on them.

Why a description and not code: a lab wires its own board, and the host (programming, calibration,
inference) needs only this map to drive it; the same text works for a real board and for the
simulated one (``dendrolab/benches/board-sim.yaml``). It lives under the key ``board`` of the bench
file, next to ``instruments``. This module only parses and checks it (every limit before any I/O);
it must not talk to instruments. The design is documented in docs/board.md.

Format (values are examples; voltages in V, times in s, conductances in S)::

    board:
      layout: digits            # network layout the board holds (analysis.network.layout)
      hidden: 32                # hidden neurons; outputs: 10
      input_bits: 4             # bit-serial row inputs; hidden soma outputs are quantised alike
      column_reads: 1           # readings averaged per column and bit plane during inference
      correct_failed: true      # host subtracts the known error of pairs with a failed cell
      read_v: 0.2               # row voltage of a '1' bit and of every verify read
      gate_v: 1.6               # word line on
      g_min_s: 2.0e-6           # programming window of each device of a differential pair
      g_max_s: 2.0e-5
      program: {v_set: 1.15, v_reset: -1.15, width_s: 1.0e-4, tol_rel: 0.05, max_pulses: 50}
      rows_smu: rows            # role driving the selected rows (reads and programming pulses)
      gates_smu: gates          # role driving the selected word lines
      dendrite: {v_max: 5.0, width_s: 1.0e-4, period_s: 5.0e-3, compliance_a: 1.0e-3}
      soma: {gain_v: 1.0, v_max: 8.0, i_full_a: 1.0e-3, width_s: 2.0e-4, period_s: 2.0e-3,
             compliance_a: 2.0e-3}
      layers:                   # hidden layer, then output layer
        - arrays:               # one per branch, in the layout's branch order
            - {rows: {matrix: m1, row: A, first: 1}, gates: {matrix: m3, row: B, first: 1},
               sense: [sense1a, sense1b]}   # or one role: sense: sense1
          dendrites:            # one per branch: the SMU role that pulses and reads it
            - {smu: dend, route: {matrix: m3, row: C, column: 70}}
          somas:                # one or more; neuron n uses somas[n % len(somas)]
            - {smu: soma, route: {matrix: m3, row: D, column: 72}}

Matrix columns count across cards (``first: 13`` is slot 2, column 1 of 12-column cards). An
array's source lines are wired to its ``sense`` SMU role (held at 0 V: it reads the column whose
word line is on); its rows and word lines go through the matrices. ``sense`` may list K roles:
the columns then split into K equal contiguous groups, group k's source lines on role k, and a
read turns on one word line per group at once (column j of every group): a bit plane takes
columns / K word-line steps instead of one per column. Every array of a layer has the same K
(their word lines may share traces), and no sense role reads two groups of one layer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dendrolab.errors import ParameterError

#: Columns per matrix card (Keithley 7174A: 8 rows x 12 columns) and cards per 707B mainframe.
CARD_COLUMNS = 12
MAX_COLUMN = 72
ROW_LETTERS = "ABCDEFGH"
#: The bench-file key of the board section.
KEY = "board"

_TOP = {"layout", "hidden", "outputs", "input_bits", "read_v", "gate_v", "g_min_s", "g_max_s",
        "program", "rows_smu", "gates_smu", "dendrite", "soma", "layers", "column_reads",
        "correct_failed"}
_PROGRAM = {"v_set": 1.15, "v_reset": -1.15, "width_s": 100e-6, "tol_rel": 0.05,
            "max_pulses": 50}
_DENDRITE = {"v_max": 5.0, "width_s": 100e-6, "period_s": 5e-3, "compliance_a": 1e-3}
_SOMA = {"gain_v": 1.0, "v_max": 8.0, "i_full_a": 1e-3, "width_s": 200e-6, "period_s": 2e-3,
         "compliance_a": 2e-3}
#: Hard ceilings of the host (whatever a board file says): keeps a typo from reaching a device.
MAX_ARRAY_V = 3.0
MAX_PULSE_V = 10.0
MAX_INPUT_BITS = 8


@dataclass(frozen=True)
class Crosspoint:
    """One matrix crosspoint: the matrix role, its row letter and the mainframe-wide column."""

    matrix: str
    row: str
    column: int

    @property
    def slot(self) -> int:
        return (self.column - 1) // CARD_COLUMNS + 1

    @property
    def card_column(self) -> int:
        return (self.column - 1) % CARD_COLUMNS + 1


@dataclass(frozen=True)
class LineBank:
    """Consecutive matrix columns ``first ..`` carrying lines 1.. of an array (rows or gates)."""

    matrix: str
    row: str
    first: int

    def crosspoint(self, index: int) -> Crosspoint:
        """Crosspoint of line ``index`` (0-based)."""
        return Crosspoint(self.matrix, self.row, self.first + index)


@dataclass(frozen=True)
class ArraySpec:
    """One branch's array: ``n_rows`` inputs x ``2 n_neurons`` columns (G+ at 2n, G- at 2n+1,
    0-based), rows and word lines through the matrices, source lines on the ``sense`` SMUs (one
    per equal contiguous column group)."""

    rows: LineBank
    gates: LineBank
    sense: tuple[str, ...]
    n_rows: int
    n_neurons: int

    @property
    def n_cols(self) -> int:
        return 2 * self.n_neurons

    @property
    def group_cols(self) -> int:
        """Columns per sense group (word-line steps of one bit plane)."""
        return self.n_cols // len(self.sense)


@dataclass(frozen=True)
class DeviceSpec:
    """A dendrite or soma: the SMU role that pulses and reads it, and its route (if switched)."""

    smu: str
    route: Crosspoint | None


@dataclass(frozen=True)
class LayerSpec:
    arrays: tuple[ArraySpec, ...]
    dendrites: tuple[DeviceSpec, ...]
    somas: tuple[DeviceSpec, ...]

    @property
    def n_neurons(self) -> int:
        return self.arrays[0].n_neurons


@dataclass(frozen=True)
class Board:
    """The parsed ``board`` section (module docstring)."""

    layout: str
    hidden: int
    outputs: int
    input_bits: int
    read_v: float
    gate_v: float
    g_min_s: float
    g_max_s: float
    program: Mapping[str, float]
    rows_smu: str
    gates_smu: str
    dendrite: Mapping[str, float]
    soma: Mapping[str, float]
    layers: tuple[LayerSpec, LayerSpec]
    column_reads: int = 1
    correct_failed: bool = True

    @property
    def levels(self) -> int:
        """Largest input code (2^bits - 1)."""
        return 2 ** self.input_bits - 1

    def roles(self) -> list[str]:
        """Every instrument role the board uses (matrices included), sorted."""
        names = {self.rows_smu, self.gates_smu}
        for layer in self.layers:
            for a in layer.arrays:
                names |= {*a.sense, a.rows.matrix, a.gates.matrix}
            for d in (*layer.dendrites, *layer.somas):
                names.add(d.smu)
                if d.route is not None:
                    names.add(d.route.matrix)
        return sorted(names)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (stored in run files so a run says which board it ran on)."""
        from dataclasses import asdict
        return asdict(self)


def _num(value: Any, where: str, lo: float = -math.inf, hi: float = math.inf,
         positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ParameterError(f"{where}: expected a number, got {value!r:.40}")
    v = float(value)
    if not math.isfinite(v) or not lo <= v <= hi or (positive and v <= 0):
        span = f"in [{lo:g}, {hi:g}]" if math.isfinite(lo) or math.isfinite(hi) else "finite"
        raise ParameterError(f"{where} = {v:g}: must be {'> 0 and ' if positive else ''}{span}")
    return v


def _int(value: Any, where: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ParameterError(f"{where} = {value!r:.40}: expected an integer in {lo}..{hi}")
    return int(value)


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ParameterError(f"{where} = {value!r:.40}: expected true or false")
    return value


def _map(value: Any, where: str, keys: set[str] | Mapping[str, Any]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ParameterError(f"{where}: expected a mapping")
    unknown = sorted(set(map(str, value)) - set(keys))
    if unknown:
        raise ParameterError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(keys)}")
    return value


def _role(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ParameterError(f"{where}: expected an instrument role name")
    return value


def _row(value: Any, where: str) -> str:
    letter = str(value).upper()
    if len(letter) != 1 or letter not in ROW_LETTERS:
        raise ParameterError(f"{where} = {value!r:.20}: a matrix row is one of {ROW_LETTERS}")
    return letter


def _senses(value: Any, where: str, n_cols: int) -> tuple[str, ...]:
    """One role, or a list of roles splitting the columns into equal groups."""
    if isinstance(value, str):
        return (_role(value, where),)
    if not isinstance(value, Sequence) or not value:
        raise ParameterError(f"{where}: expected an SMU role or a list of SMU roles")
    roles = tuple(_role(v, f"{where}[{i}]") for i, v in enumerate(value))
    if len(set(roles)) != len(roles):
        raise ParameterError(f"{where}: a role appears twice in {list(roles)}")
    if n_cols % len(roles):
        raise ParameterError(f"{where}: {len(roles)} sense roles do not split {n_cols} columns "
                             f"into equal groups")
    return roles


def _bank(value: Any, where: str, lines: int) -> LineBank:
    m = _map(value, where, {"matrix", "row", "first"})
    first = _int(m.get("first"), f"{where}.first", 1, MAX_COLUMN)
    if first + lines - 1 > MAX_COLUMN:
        raise ParameterError(f"{where}: {lines} lines from column {first} pass column "
                             f"{MAX_COLUMN}, the last of a 707B")
    return LineBank(_role(m.get("matrix"), f"{where}.matrix"), _row(m.get("row"), f"{where}.row"),
                    first)


def _device(value: Any, where: str) -> DeviceSpec:
    m = _map(value, where, {"smu", "route"})
    route = None
    if m.get("route") is not None:
        r = _map(m["route"], f"{where}.route", {"matrix", "row", "column"})
        route = Crosspoint(_role(r.get("matrix"), f"{where}.route.matrix"),
                           _row(r.get("row"), f"{where}.route.row"),
                           _int(r.get("column"), f"{where}.route.column", 1, MAX_COLUMN))
    return DeviceSpec(_role(m.get("smu"), f"{where}.smu"), route)


def _settings(value: Any, where: str, defaults: Mapping[str, float]) -> dict[str, float]:
    m = _map(value if value is not None else {}, where, defaults)
    return {k: _num(m.get(k, d), f"{where}.{k}") for k, d in defaults.items()}


def parse_board(data: Any, branch_sizes: Sequence[int], output_blocks: int,
                *, source: str = "bench") -> Board:
    """Check a ``board`` mapping against the layout's branch sizes; one-line errors naming the key.

    ``branch_sizes``: inputs per hidden-layer branch; ``output_blocks``: output-layer branches.
    """
    where = f"{source}: {KEY}"
    m = _map(data, where, _TOP)
    hidden = _int(m.get("hidden"), f"{where}.hidden", 1, 4096)
    outputs = _int(m.get("outputs", 10), f"{where}.outputs", 2, 4096)
    if hidden % output_blocks:
        raise ParameterError(f"{where}.hidden = {hidden}: must be a multiple of the "
                             f"{output_blocks} output branches")
    bits = _int(m.get("input_bits", 4), f"{where}.input_bits", 1, MAX_INPUT_BITS)
    read_v = _num(m.get("read_v", 0.2), f"{where}.read_v", 0.0, MAX_ARRAY_V, positive=True)
    gate_v = _num(m.get("gate_v", 1.6), f"{where}.gate_v", 0.0, MAX_ARRAY_V, positive=True)
    g_min = _num(m.get("g_min_s", 2e-6), f"{where}.g_min_s", 0.0, 1.0, positive=True)
    g_max = _num(m.get("g_max_s", 2e-5), f"{where}.g_max_s", 0.0, 1.0, positive=True)
    if g_max <= g_min:
        raise ParameterError(f"{where}: g_max_s ({g_max:g}) must exceed g_min_s ({g_min:g})")
    program = _settings(m.get("program"), f"{where}.program", _PROGRAM)
    for k in ("v_set", "v_reset"):
        _num(program[k], f"{where}.program.{k}", -MAX_ARRAY_V, MAX_ARRAY_V)
    if not program["v_set"] > 0 > program["v_reset"]:
        raise ParameterError(f"{where}.program: v_set must be > 0 and v_reset < 0")
    _num(program["width_s"], f"{where}.program.width_s", 0.0, 1.0, positive=True)
    _num(program["tol_rel"], f"{where}.program.tol_rel", 0.0, 1.0, positive=True)
    program["max_pulses"] = _int(int(program["max_pulses"]), f"{where}.program.max_pulses",
                                 1, 100_000)
    dendrite = _settings(m.get("dendrite"), f"{where}.dendrite", _DENDRITE)
    soma = _settings(m.get("soma"), f"{where}.soma", _SOMA)
    for name, block in (("dendrite", dendrite), ("soma", soma)):
        _num(block["v_max"], f"{where}.{name}.v_max", 0.0, MAX_PULSE_V, positive=True)
        _num(block["width_s"], f"{where}.{name}.width_s", 0.0, 1.0, positive=True)
        if block["period_s"] < 2 * block["width_s"]:
            raise ParameterError(f"{where}.{name}.period_s = {block['period_s']:g}: must be at "
                                 f"least twice width_s (duty cycle <= 50 %)")
        _num(block["compliance_a"], f"{where}.{name}.compliance_a", 0.0, 0.1, positive=True)
    _num(soma["i_full_a"], f"{where}.soma.i_full_a", 0.0, soma["compliance_a"], positive=True)
    _num(soma["gain_v"], f"{where}.soma.gain_v", 0.0, MAX_PULSE_V, positive=True)
    layers = m.get("layers")
    if not isinstance(layers, Sequence) or isinstance(layers, str) or len(layers) != 2:
        raise ParameterError(f"{where}.layers: expected a list of 2 layers (hidden, output)")
    block = hidden // output_blocks
    shapes = ((tuple(branch_sizes), hidden), ((block,) * output_blocks, outputs))
    parsed = []
    for k, (layer, (sizes, neurons)) in enumerate(zip(layers, shapes, strict=True)):
        lw = f"{where}.layers[{k}]"
        lm = _map(layer, lw, {"arrays", "dendrites", "somas"})
        arrays, dendrites, somas = lm.get("arrays"), lm.get("dendrites"), lm.get("somas")
        for name, items, want in (("arrays", arrays, len(sizes)),
                                  ("dendrites", dendrites, len(sizes)), ("somas", somas, None)):
            if not isinstance(items, Sequence) or isinstance(items, str) or not items or (
                    want is not None and len(items) != want):
                need = f"{want} (one per branch)" if want else "at least one"
                raise ParameterError(f"{lw}.{name}: expected a list of {need}")
        specs = []
        for b, (item, n_rows) in enumerate(zip(arrays, sizes, strict=True)):
            aw = f"{lw}.arrays[{b}]"
            am = _map(item, aw, {"rows", "gates", "sense"})
            specs.append(ArraySpec(_bank(am.get("rows"), f"{aw}.rows", n_rows),
                                   _bank(am.get("gates"), f"{aw}.gates", 2 * neurons),
                                   _senses(am.get("sense"), f"{aw}.sense", 2 * neurons),
                                   n_rows, neurons))
        if len({len(a.sense) for a in specs}) > 1:
            raise ParameterError(f"{lw}.arrays: every array of a layer needs the same number of "
                                 f"sense roles (a read steps their word lines together)")
        taken = [r for a in specs for r in a.sense]
        if len(set(taken)) != len(taken):
            twice = sorted({r for r in taken if taken.count(r) > 1})
            raise ParameterError(f"{lw}.arrays: sense role(s) {twice} read two column groups "
                                 f"(their currents would add)")
        parsed.append(LayerSpec(
            tuple(specs),
            tuple(_device(d, f"{lw}.dendrites[{i}]") for i, d in enumerate(dendrites)),
            tuple(_device(s, f"{lw}.somas[{i}]") for i, s in enumerate(somas))))
    board = Board(str(m.get("layout", "digits")), hidden, outputs, bits, read_v, gate_v, g_min,
                  g_max, program, _role(m.get("rows_smu"), f"{where}.rows_smu"),
                  _role(m.get("gates_smu"), f"{where}.gates_smu"), dendrite, soma,
                  (parsed[0], parsed[1]),
                  _int(m.get("column_reads", 1), f"{where}.column_reads", 1, 64),
                  _bool(m.get("correct_failed", True), f"{where}.correct_failed"))
    _check_overlaps(board, where)
    return board


def _check_overlaps(board: Board, where: str) -> None:
    """No matrix crosspoint column may carry two lines (a wiring typo would short them)."""
    used: dict[tuple[str, int], str] = {}

    def take(matrix: str, column: int, what: str) -> None:
        key = (matrix, column)
        if key in used and used[key] != what:
            raise ParameterError(f"{where}: matrix {matrix!r} column {column} carries both "
                                 f"{used[key]} and {what}")
        used[key] = what

    for k, layer in enumerate(board.layers):
        for b, a in enumerate(layer.arrays):
            for i in range(a.n_rows):
                take(a.rows.matrix, a.rows.first + i, f"layer {k} array {b} row {i + 1}")
            # word lines may be shared by the arrays of a layer (one gate pin per column)
            for j in range(a.n_cols):
                take(a.gates.matrix, a.gates.first + j, f"layer {k} word line {j + 1}")
        for name, devs in (("dendrite", layer.dendrites), ("soma", layer.somas)):
            for i, d in enumerate(devs):
                if d.route is not None:
                    take(d.route.matrix, d.route.column, f"layer {k} {name} {i + 1}")

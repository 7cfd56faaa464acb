"""The simulated dendritic board of the digits network, generated: its bench file and roles file.

Why generated: the board has seven 1T1R arrays, 25 dendrites and somas, three 707B matrices with
hundreds of wired crosspoints and nine B2902A SMUs; written by hand, one wrong column would short
two lines or leave a cell unreachable. These pure functions build both files from one plan, and
``python -m sim_backend.board_bench`` rewrites them:

- ``sim_backend/benches/board.yaml``: the pyvisa-sim + bench file (``@dendrosim``), and
- ``dendrolab/benches/board-sim.yaml``: the roles (``instruments``) and the ``board`` section
  that ``protocols.board.parse_board`` reads (its docstring describes the format).

The board (64-32-10 digits network; layer-1 branches of 24/16/24 inputs, layer 2 of 4 branches
of 8 hidden units; every array column pair is one neuron's differential pair G+/G-):

- arrays L1b1 24x64, L1b2 16x64, L1b3 24x64, L2b1..L2b4 8x20 (distinct device ids: every cell
  has its own variation), dendrites D1..D7 (3 + 4, one per branch), somas L1s1..L1s8 (hidden
  neuron n uses soma n % 8) and L2s1..L2s10 (one per output);
- SMU A channel 1 ``rows`` drives the selected bit lines, channel 2 ``gates`` the selected word
  lines; each array's columns split into two halves, and the source lines of half k of array b
  are wired to ``sense<b><k>`` (``sense1a``, ``sense1b``, ...; ``Shape.sense_split`` per layer:
  with one group the role is ``sense<b>``), which reads the column of its half whose word line
  is on: a bit plane takes 32 word-line steps on layer 1 (10 on layer 2) instead of 64 (20).
  The sense channels fill B2902As two by two, layer by layer; ``dend`` and ``soma`` (the last
  B2902A) pulse the dendrite or soma routed to them;
- m1: columns 1-64 = layer-1 bit lines, row A = rows. m3: columns 1-64 = layer-1 word lines, each
  one trace to g_j of all three layer-1 arrays (a list-of-ports column), row B = gates; columns
  65-72 = layer-1 somas, row D = soma. m2: columns 1-32 = layer-2 bit lines (row A), 33-52 =
  layer-2 word lines shared by the four arrays (row B), 53-59 = dendrites D1..D7 (row C), 60-69
  = output somas (row D).

Assumption: a 707B's backplane joins the rows of its cards (one 8x72 matrix, as the board format
counts columns across cards), so every slot of a matrix has every row terminal that matrix uses.
The drive settings in ``DENDRITE``/``SOMA`` come from pulsed list sweeps on this bench's own
devices (numbers in the comments below and docs/board.md; tests/sim/test_board_bench.py checks
them through the drivers).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

#: The digits layout the board holds.
BRANCH_SIZES = (24, 16, 24)
OUTPUTS = 10
OUTPUT_BLOCKS = 4

#: Matrix geometry: 7174A 8x12 cards, six slots of a 707B (mainframe columns 1..72).
CARD_COLUMNS = 12
SLOTS = 6

#: Read / program settings (synapse-write-verify.yaml). The window is what write-verify reaches
#: on this board's cells at a 1.6 V gate: every free cell gets to 4 uS (D2D g_min: 99.9 % below
#: 3.1 uS), 0.3 % of free cells cannot reach 14 uS within 5 % (1.1 % for 15 uS).
READ_V = 0.2
GATE_V = 1.6
G_MIN_S = 4.0e-6
G_MAX_S = 14.0e-6
PROGRAM = {"v_set": 1.15, "v_reset": -1.15, "width_s": 100e-6, "tol_rel": 0.05,
           "max_pulses": 50}
#: Dendrite and soma pulse settings, chosen from pulsed list sweeps (B2902A, 100 us pulses,
#: sampled at 70-90 us) on this bench's own devices; docs/board.md has the numbers. Dendrite:
#: r(u) = I(4.5 V u) / I(4.5 V) fits (e^(a u) - 1)/(e^a - 1) with a = 4.9-5.4 over D1-D7 (the
#: paper's NL = 0.1 is a = 5.56), I(4.5 V) = 4.4-6.8 uA; a 10 ms period lets the state relax
#: (tau_r 3 ms): the pulse before changes a reading by 0.4 %, below the 1 % noise (1.5 % at 5 ms).
#: Soma: V_th 1.1-1.5 V, then I = V / 2 kohm (0.5 mA/V), 2 mA compliance from 4.0 V, no memory
#: between pulses; i_full 1.8 mA and 1.1 V per unit s give y = I / i_full a jump to ~0.36 at
#: threshold, then 0.31 per unit s, saturating at s - theta ~ 2.1.
DENDRITE = {"v_max": 4.5, "width_s": 100e-6, "period_s": 10e-3, "compliance_a": 1e-3}
SOMA = {"gain_v": 1.1, "v_max": 4.0, "i_full_a": 1.8e-3, "width_s": 100e-6, "period_s": 1e-3,
        "compliance_a": 2e-3}

#: Bench settings of the simulated board.
MODELS = "li2020-original"
HOST_LATENCY_S = 1e-4

#: Where the two files live (relative to the repository root / installed site-packages).
SIM_PATH = Path("sim_backend/benches/board.yaml")
ROLES_PATH = Path("dendrolab/benches/board-sim.yaml")



@dataclass(frozen=True)
class Shape:
    """What may differ between generated boards: the hidden layer (a multiple of 4, at most 32
    so the word lines and somas fit the matrices), the layer-1 somas, the input bits, the bench
    seed and where the roles file finds the bench file."""

    hidden: int = 32
    layer1_somas: int = 8
    input_bits: int = 4
    seed: int = 1
    visa_library: str = "../../sim_backend/benches/board.yaml@dendrosim"
    #: Sense groups per array, per layer (each group its own sense channel).
    sense_split: tuple[int, int] = (2, 2)

    def __post_init__(self) -> None:
        if self.hidden % OUTPUT_BLOCKS or not 4 <= self.hidden <= 32:
            raise ValueError(f"hidden = {self.hidden}: a multiple of 4 in 4..32")
        if not 1 <= self.layer1_somas <= 72 - 2 * self.hidden:
            raise ValueError(f"layer1_somas = {self.layer1_somas}: 1..{72 - 2 * self.hidden}")
        for cols, k in zip((2 * self.hidden, 2 * OUTPUTS), self.sense_split, strict=True):
            if not 1 <= k <= 4 or cols % k:
                raise ValueError(f"sense_split = {self.sense_split}: 1..4 groups dividing "
                                 f"{cols} columns")


#: The packaged board (``sim_backend/benches/board.yaml``).
PACKAGED = Shape()

B2902A_IDN = "Keysight Technologies,B2902A,{serial},3.4.2011.5100"
K707B_IDN = "Keithley Instruments Inc., Model 707B, {serial}, 1.6.0a"


@dataclass(frozen=True)
class Smu:
    """One two-channel B2902A: its bench name (terminal prefix), address, serial, channel roles
    (None: spare channel)."""

    name: str
    address: str
    serial: str
    roles: tuple[str | None, str | None]


@dataclass(frozen=True)
class Matrix:
    role: str
    address: str
    serial: str


def smus(shape: Shape = PACKAGED) -> list[Smu]:
    """SMU A (rows, gates), the sense channels two per B2902A (a layer's channels never share an
    instrument with the other layer's), then the dendrite and soma pulser."""
    channel_pairs: list[tuple[str | None, str | None]] = [("rows", "gates")]
    for layer in (0, 1):
        roles = [r for a in arrays(shape) if a.layer == layer for r in a.sense]
        roles += [None] * (len(roles) % 2)
        channel_pairs += list(zip(roles[::2], roles[1::2], strict=True))
    channel_pairs.append(("dend", "soma"))
    return [Smu(f"smu_{chr(ord('a') + n)}", f"TCPIP0::192.0.2.{31 + n}::inst0::INSTR",
                f"MY511438{1 + n:02d}", pair) for n, pair in enumerate(channel_pairs)]


MATRICES = (
    Matrix("m1", "GPIB0::16::INSTR", "04089801"),
    Matrix("m2", "GPIB0::17::INSTR", "04089802"),
    Matrix("m3", "GPIB0::18::INSTR", "04089803"),
)
#: Matrix row letter of each driving role (the same letter on every matrix that uses it).
ROW_OF = {"rows": "A", "gates": "B", "dend": "C", "soma": "D"}

#: User limits per role kind (instruments.base.UserLimits): the array lines never see more than
#: the programming pulses (|V| <= 1.15 V) and reads; dendrite and soma pulses stay <= 10 V.
ARRAY_LIMITS = {"voltage_min_v": -2.0, "voltage_max_v": 2.0, "current_max_a": 1e-3}
DEND_LIMITS = {"voltage_min_v": -10.0, "voltage_max_v": 10.0, "current_max_a": 1e-3}
SOMA_LIMITS = {"voltage_min_v": -10.0, "voltage_max_v": 10.0, "current_max_a": 2e-3}


@dataclass(frozen=True)
class ArrayPlan:
    """One branch array: its lines' matrix columns (mainframe-wide, 1-based) and sense roles
    (one per equal group of columns)."""

    name: str
    layer: int
    rows: int
    cols: int
    row_matrix: str
    row_first: int
    gate_matrix: str
    gate_first: int
    sense: tuple[str, ...]


@dataclass(frozen=True)
class DevicePlan:
    """A dendrite or soma: bench name, kind, layer, and its matrix route (driven by ``smu``)."""

    name: str
    kind: str
    layer: int
    smu: str
    matrix: str
    column: int


def _sense_roles(number: int, groups: int) -> tuple[str, ...]:
    """``sense<n>`` for one group, else ``sense<n>a``, ``sense<n>b``, ..."""
    if groups == 1:
        return (f"sense{number}",)
    return tuple(f"sense{number}{chr(ord('a') + k)}" for k in range(groups))


def arrays(shape: Shape = PACKAGED) -> list[ArrayPlan]:
    """The seven arrays in layout order: layer-1 branches, then layer-2 branches."""
    out = []
    first = 1
    k1, k2 = shape.sense_split
    for b, n in enumerate(BRANCH_SIZES, 1):
        out.append(ArrayPlan(f"L1b{b}", 0, n, 2 * shape.hidden, "m1", first, "m3", 1,
                             _sense_roles(b, k1)))
        first += n
    block = shape.hidden // OUTPUT_BLOCKS
    for b in range(1, OUTPUT_BLOCKS + 1):
        out.append(ArrayPlan(f"L2b{b}", 1, block, 2 * OUTPUTS, "m2", 1 + (b - 1) * block, "m2",
                             shape.hidden + 1, _sense_roles(len(BRANCH_SIZES) + b, k2)))
    return out


def dendrites(shape: Shape = PACKAGED) -> list[DevicePlan]:
    """D1..D3 (layer 1) and D4..D7 (layer 2) on m2 columns 53..59, row C."""
    n1, n2 = len(BRANCH_SIZES), OUTPUT_BLOCKS
    first = shape.hidden + 2 * OUTPUTS + 1          # 53: after the layer-2 word lines
    return [DevicePlan(f"D{k}", "dendrite", 0 if k <= n1 else 1, "dend", "m2", first + k - 1)
            for k in range(1, n1 + n2 + 1)]


def somas(shape: Shape = PACKAGED) -> list[DevicePlan]:
    """L1s1..L1s8 on m3 columns 65..72 and L2s1..L2s10 on m2 columns 60..69, row D."""
    l1 = [DevicePlan(f"L1s{k}", "soma", 0, "soma", "m3", 2 * shape.hidden + k)
          for k in range(1, shape.layer1_somas + 1)]
    first = dendrites(shape)[-1].column + 1       # 60
    l2 = [DevicePlan(f"L2s{k}", "soma", 1, "soma", "m2", first + k - 1)
          for k in range(1, OUTPUTS + 1)]
    return l1 + l2


def role_terminals(shape: Shape = PACKAGED) -> dict[str, str]:
    """Role -> bench terminal ``<smu>/<channel>``."""
    return {role: f"{smu.name}/{ch}" for smu in smus(shape)
            for ch, role in enumerate(smu.roles, 1) if role is not None}


def matrix_columns(shape: Shape = PACKAGED) -> dict[str, dict[int, list[str]]]:
    """Matrix role -> mainframe column -> the device ports its trace reaches."""
    cols: dict[str, dict[int, list[str]]] = {m.role: {} for m in MATRICES}
    for a in arrays(shape):
        for i in range(a.rows):
            cols[a.row_matrix].setdefault(a.row_first + i, []).append(f"{a.name}.r{i + 1}")
        for j in range(a.cols):   # one trace per word line: g_j of every array of the layer
            cols[a.gate_matrix].setdefault(a.gate_first + j, []).append(f"{a.name}.g{j + 1}")
    for d in (*dendrites(shape), *somas(shape)):
        cols[d.matrix].setdefault(d.column, []).append(f"{d.name}.top")
    return cols


def matrix_row_roles(shape: Shape = PACKAGED) -> dict[str, list[str]]:
    """Matrix role -> the driving roles on its rows (sorted by row letter)."""
    used: dict[str, set[str]] = {m.role: set() for m in MATRICES}
    for a in arrays(shape):
        used[a.row_matrix].add("rows")
        used[a.gate_matrix].add("gates")
    for d in (*dendrites(shape), *somas(shape)):
        used[d.matrix].add(d.smu)
    return {m: sorted(r, key=ROW_OF.__getitem__) for m, r in used.items()}


def matrix_options(role: str, shape: Shape = PACKAGED) -> dict[str, Any]:
    """The simulated 707B's ``slots`` option: every slot gets the matrix's row terminals (the
    backplane joins card rows); card columns carry one port or a list (a shared trace)."""
    terms = role_terminals(shape)
    rows = {ROW_OF[r]: terms[r] for r in matrix_row_roles(shape)[role]}
    slots: dict[int, dict[str, Any]] = {}
    columns = matrix_columns(shape)[role]
    for slot in range(1, SLOTS + 1):
        card: dict[int, str | list[str]] = {}
        for c in range(1, CARD_COLUMNS + 1):
            ports = columns.get((slot - 1) * CARD_COLUMNS + c)
            if ports:
                card[c] = ports[0] if len(ports) == 1 else ports
        slots[slot] = {"rows": dict(rows), "columns": card}
    return {"slots": slots}


def bench_section(shape: Shape = PACKAGED) -> dict[str, Any]:
    """The ``bench:`` section: devices with consecutive device ids (array cells take one id
    each), and the fixed wiring of each sense SMU to every source line of its column group."""
    devices: dict[str, Any] = {}
    dev = 0
    for a in arrays(shape):
        devices[a.name] = {"kind": "array", "rows": a.rows, "cols": a.cols, "die": 0,
                           "device": dev}
        dev += a.rows * a.cols
    for d in (*dendrites(shape), *somas(shape)):
        devices[d.name] = {"kind": d.kind, "die": 0, "device": dev}
        dev += 1
    terms = role_terminals(shape)
    wiring = {}
    for a in arrays(shape):
        size = a.cols // len(a.sense)
        for k, role in enumerate(a.sense):
            wiring[terms[role]] = [f"{a.name}.s{j}" for j in range(k * size + 1,
                                                                   (k + 1) * size + 1)]
    return {"seed": shape.seed, "models": MODELS, "noise": True, "host_latency_s": HOST_LATENCY_S,
            "host_time": "virtual", "devices": devices, "wiring": wiring}


def sim_file(shape: Shape = PACKAGED) -> dict[str, Any]:
    """The whole pyvisa-sim spec-1.1 + bench file."""
    eom = {"q": "\n", "r": "\n"}
    devices: dict[str, Any] = {}
    resources: dict[str, Any] = {}
    for smu in smus(shape):
        key = f"b2902_{smu.name}"
        devices[key] = {"eom": {"TCPIP INSTR": dict(eom)}, "error": "ERROR",
                        "dialogues": [{"q": "*IDN?",
                                       "r": B2902A_IDN.format(serial=smu.serial)}]}
        resources[smu.address] = {"device": key, "model": "keysight_b2900", "name": smu.name}
    for m in MATRICES:
        key = f"k707b_{m.role}"
        devices[key] = {"delimiter": "", "eom": {"GPIB INSTR": dict(eom)}, "error": "ERROR",
                        "dialogues": [{"q": "*IDN?", "r": K707B_IDN.format(serial=m.serial)}]}
        resources[m.address] = {"device": key, "model": "keithley707b", "name": m.role,
                                "options": matrix_options(m.role, shape)}
    return {"spec": "1.1", "bench": bench_section(shape), "devices": devices,
            "resources": resources}


def board_section(shape: Shape = PACKAGED) -> dict[str, Any]:
    """The ``board:`` section (``protocols.board`` format) of this board."""
    layers = []
    dends, soms = dendrites(shape), somas(shape)
    for k in (0, 1):
        layer_arrays = [{"rows": {"matrix": a.row_matrix, "row": ROW_OF["rows"],
                                  "first": a.row_first},
                         "gates": {"matrix": a.gate_matrix, "row": ROW_OF["gates"],
                                   "first": a.gate_first},
                         "sense": a.sense[0] if len(a.sense) == 1 else list(a.sense)}
                        for a in arrays(shape) if a.layer == k]

        def routed(devs: list[DevicePlan], layer: int = k) -> list[dict[str, Any]]:
            return [{"smu": d.smu, "route": {"matrix": d.matrix, "row": ROW_OF[d.smu],
                                             "column": d.column}}
                    for d in devs if d.layer == layer]

        layers.append({"arrays": layer_arrays, "dendrites": routed(dends),
                       "somas": routed(soms)})
    return {"layout": "digits", "hidden": shape.hidden, "outputs": OUTPUTS,
            "input_bits": shape.input_bits,
            "read_v": READ_V, "gate_v": GATE_V, "g_min_s": G_MIN_S, "g_max_s": G_MAX_S,
            "program": dict(PROGRAM), "rows_smu": "rows", "gates_smu": "gates",
            "dendrite": dict(DENDRITE), "soma": dict(SOMA), "layers": layers}


def _limits(role: str) -> dict[str, float]:
    return dict(DEND_LIMITS if role == "dend" else SOMA_LIMITS if role == "soma"
                else ARRAY_LIMITS)


def roles_file(shape: Shape = PACKAGED) -> dict[str, Any]:
    """The roles file: ``visa_library``, ``instruments`` (with user limits) and ``board``."""
    instruments: dict[str, Any] = {}
    for smu in smus(shape):
        for ch, role in enumerate(smu.roles, 1):
            if role is not None:
                instruments[role] = {"address": smu.address, "model": "B2902A", "channel": ch,
                                     "limits": _limits(role)}
    for m in MATRICES:
        instruments[m.role] = {"address": m.address, "model": "707B"}
    return {"visa_library": shape.visa_library, "instruments": instruments,
            "board": board_section(shape)}


SIM_HEADER = """\
# GENERATED by `python -m sim_backend.board_bench` (sim_backend/board_bench.py): do not edit.
# The simulated dendritic board of the digits network (issue 14; docs/board.md), opened by
# dendrolab/benches/board-sim.yaml as ResourceManager("<this file>@dendrosim").
# Arrays L1b1-3 (layer 1: 24/16/24 x 64) and L2b1-4 (layer 2: 8 x 20), dendrites D1-D7, somas
# L1s1-8 and L2s1-10. B2902A smu_a: ch1 rows (bit lines), ch2 gates (word lines); smu_b..smu_h:
# sense1a-7b, each wired to the source lines of one half of an array; smu_i: ch1 dend, ch2 soma.
# 707B m1:
# layer-1 bit lines (row A); m3: layer-1 word lines (row B, one trace to g_j of all three arrays)
# and layer-1 somas (row D); m2: layer-2 bit lines (A), word lines (B), dendrites (C), output
# somas (D). Every slot carries the matrix's row terminals (the backplane joins card rows).
"""

ROLES_HEADER = """\
# GENERATED by `python -m sim_backend.board_bench` (sim_backend/board_bench.py): do not edit.
# Roles and board map of the simulated dendritic board (issue 14; docs/board.md). For a real
# board: set visa_library to "@ivi" or "@py", the addresses to your instruments', and the
# `board` section to your wiring (format: protocols/board.py).
"""


class _Dumper(yaml.SafeDumper):
    """Safe dumper writing strings with control characters (``"\\n"``) double-quoted."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = '"' if any(c in value for c in "\n\r") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render(data: Mapping[str, Any], header: str) -> str:
    """YAML text: the header comment, then block style with flow-style leaves."""
    body = yaml.dump(dict(data), Dumper=_Dumper, sort_keys=False, default_flow_style=None,
                     width=80, allow_unicode=False)
    return header + body


def render_sim(shape: Shape = PACKAGED) -> str:
    return render(sim_file(shape), SIM_HEADER)


def render_roles(shape: Shape = PACKAGED) -> str:
    return render(roles_file(shape), ROLES_HEADER)


def write_pair(folder: Path, shape: Shape) -> tuple[Path, Path]:
    """A board of another ``shape`` as ``board.yaml`` + ``board-roles.yaml`` in ``folder`` (the
    roles file finds the bench file next to it): small boards for tests and trials."""
    shape = Shape(**{**shape.__dict__, "visa_library": "board.yaml@dendrosim"})
    sim, roles = folder / "board.yaml", folder / "board-roles.yaml"
    sim.write_text(render_sim(shape), encoding="utf-8")
    roles.write_text(render_roles(shape), encoding="utf-8")
    return sim, roles


def write(root: Path) -> list[Path]:
    """Rewrite both files under the repository (or site-packages) root ``root``."""
    written = []
    for rel, text in ((SIM_PATH, render_sim()), (ROLES_PATH, render_roles())):
        path = root / rel
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m sim_backend.board_bench",
        description="Rewrite the simulated board's bench file and roles file.")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent,
                        help="directory holding sim_backend/ and dendrolab/ (default: this "
                             "package's parent)")
    args = parser.parse_args(argv)
    for path in write(args.root):
        print(path)


if __name__ == "__main__":
    main()

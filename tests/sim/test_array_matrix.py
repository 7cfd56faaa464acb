"""A 1T1R array programmed and read through real drivers over ``@dendrosim`` and the 707B.

The board: a B2902A channel 1 (bit line) on matrix row A, channel 2 (word line) on row B; the
array's lines on the card columns (``a1.r<i>``, ``a1.g<j>``); source lines not routed sit at 0 V.
Write-verify is the loop of ``protocols/builtin/synapse-write-verify.yaml`` (read at 0.2 V, SET
+1.15 V / RESET -1.15 V, 100 us pulses, gate 1.6 V), run cell by cell by selecting one row and
one word line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pyvisa

from instruments.factory import open_instrument
from sim_backend.physics.synapse import STUCK_NONE

SMU = "TCPIP0::192.0.2.13::inst0::INSTR"
MATRIX = "GPIB0::16::INSTR"

SIM = """\
spec: "1.1"
bench:
  seed: {seed}
  noise: true
  host_latency_s: 1.0e-4
  devices:
    a1: {{kind: array, rows: {rows}, cols: {cols}, die: 0, device: 100}}
  wiring: {wiring}
devices:
  b2902:
    eom: {{TCPIP INSTR: {{q: "\\n", r: "\\n"}}}}
    error: ERROR
    dialogues: [{{q: "*IDN?", r: "Keysight Technologies,B2902A,MY51143745,3.4.2011.5100"}}]
  k707b:
    delimiter: ""
    eom: {{GPIB INSTR: {{q: "\\n", r: "\\n"}}}}
    error: ERROR
    dialogues: [{{q: "*IDN?", r: "Keithley Instruments Inc., Model 707B, 04089762, 1.6.0a"}}]
resources:
  {smu}: {{device: b2902, model: keysight_b2900, name: smu}}
  {matrix}:
    device: k707b
    model: keithley707b
    name: matrix
    options:
      slots: {slots}
"""


def write_bench(folder: Path, rows: int, cols: int, slots: str, wiring: str = "{}",
                seed: int = 7) -> Path:
    path = folder / "sim.yaml"
    path.write_text(SIM.format(seed=seed, rows=rows, cols=cols, slots=slots, wiring=wiring,
                               smu=SMU, matrix=MATRIX))
    return path


def flow(d: dict[int, str]) -> str:
    """A YAML flow mapping ``{column: port, ...}``."""
    return "{" + ", ".join(f"{c}: {p}" for c, p in d.items()) + "}"


@pytest.fixture
def board_4x4(tmp_path):
    """4x4 array: slot 1 columns 1-4 = rows r1..r4, columns 5-8 = word lines g1..g4."""
    columns = {**{k: f"a1.r{k}" for k in range(1, 5)}, **{4 + k: f"a1.g{k}" for k in range(1, 5)}}
    slots = f"{{1: {{rows: {{A: smu/1, B: smu/2}}, columns: {flow(columns)}}}}}"
    rm = pyvisa.ResourceManager(f"{write_bench(tmp_path, 4, 4, slots)}@dendrosim")
    bitline = open_instrument(rm, SMU, channel=1)
    gate = open_instrument(rm, SMU, channel=2)
    matrix = open_instrument(rm, MATRIX)
    yield rm.visalib.bench, bitline, gate, matrix
    for res in list(rm.list_opened_resources()):
        res.close()
    rm.close()


def write_verify(bitline, gate, target_s: float, *, tol_rel: float = 0.05,
                 max_pulses: int = 50) -> tuple[bool, float]:
    """The runner's write-verify loop (``_smu_write_verify``): (converged, last read G)."""
    v_read = 0.2
    gate.set_voltage(1.6)
    gate.output_on()
    bitline.set_voltage(v_read)
    bitline.output_on()
    g = float("nan")
    try:
        for _ in range(max_pulses + 1):
            g = bitline.measure_iv().current_a / v_read
            error = (g - target_s) / target_s
            if abs(error) <= tol_rel:
                return True, g
            bitline.pulsed_list_sweep([1.15 if error < 0 else -1.15], width_s=100e-6,
                                      period_s=200e-6, base_v=v_read)
            bitline.set_voltage(v_read)
            bitline.output_on()
        return False, g
    finally:
        bitline.set_voltage(0.0)
        bitline.output_off()
        gate.set_voltage(0.0)
        gate.output_off()


def test_write_verify_programs_a_4x4_array_cell_by_cell(board_4x4):
    bench, bitline, gate, matrix = board_4x4
    bitline.configure_source_voltage(1e-3)
    bitline.configure_measure(aperture_s=20e-6)
    gate.configure_source_voltage(1e-4)
    gate.configure_measure(nplc=0.01)
    targets = np.random.default_rng(3).uniform(5e-6, 15e-6, (4, 4))
    dut = bench.device("a1")
    stuck = dut.stuck()
    after = np.zeros((4, 4))
    converged = np.zeros((4, 4), bool)
    for i in range(4):
        for j in range(4):
            matrix.route("A", i + 1, exclusive=True)   # bit line of row i+1 ...
            matrix.route("B", 4 + j + 1)               # ... and the word line of column j+1
            assert sorted(matrix.closed_channels()) == [f"1A0{i + 1}", f"1B0{4 + j + 1}"]
            ok, g_read = write_verify(bitline, gate, float(targets[i, j]))
            converged[i, j] = ok
            after[i, j] = bench.device("a1").conductance()[i, j]
            if ok:
                assert g_read == pytest.approx(targets[i, j], rel=0.05)
    matrix.open_all()
    final = bench.device("a1").conductance()
    # programming a cell never disturbed another: the map is what each cell was left at
    np.testing.assert_array_equal(final, after)
    free = stuck == STUCK_NONE
    assert converged[free].all()
    # the true conductance is within the tolerance plus the read noise (2 %) of the target
    np.testing.assert_allclose(final[free], targets[free], rtol=0.12)
    assert np.corrcoef(final[free], targets[free])[0, 1] > 0.95


def test_eight_by_eight_array_routed_over_two_cards_reads_its_columns(tmp_path):
    """8 rows + 8 word lines + 8 source lines need 24 columns: cards in slots 1 and 2, with
    rows A and B of both cards wired to the same two SMU channels."""
    cols1 = {**{k: f"a1.r{k}" for k in range(1, 9)}, **{8 + k: f"a1.g{k}" for k in range(1, 5)}}
    cols2 = {**{k: f"a1.g{4 + k}" for k in range(1, 5)},
             **{4 + k: f"a1.s{k}" for k in range(1, 9)}}

    rows = "{A: smu/1, B: smu/2}"
    slots = f"{{1: {{rows: {rows}, columns: {flow(cols1)}}}, 2: {{rows: {rows}, " \
            f"columns: {flow(cols2)}}}}}"
    gates = ", ".join(f"a1.g{j}" for j in range(1, 9))
    path = write_bench(tmp_path, 8, 8, slots, wiring=f"{{gate/1: [{gates}]}}")
    rm = pyvisa.ResourceManager(f"{path}@dendrosim")
    try:
        bench = rm.visalib.bench
        bench.source("gate/1", 1.6)     # every word line on (a fixed supply on the board)
        src = open_instrument(rm, SMU, channel=1)
        row = open_instrument(rm, SMU, channel=2)
        matrix = open_instrument(rm, MATRIX)
        src.configure_source_voltage(1e-3)
        row.configure_source_voltage(1e-3)
        dut = bench.device("a1")
        # row 3 driven at 0.1 V by channel 2 (row B, slot 1 column 3); column 6's source line
        # held at 0 V and read by channel 1 (row A, slot 2 column 4 + 6)
        matrix.route("B", 3, slot=1)
        matrix.route("A", 10, slot=2)
        row.set_voltage(0.1)
        row.output_on()
        src.set_voltage(0.0)
        src.output_on()
        got = src.measure_iv().current_a
        g = dut.conductance()[2, 5]
        # B2902A readings: the cell current with read noise (2 %), leaving through s6
        assert got == pytest.approx(-g * 0.1 * (1 + 0.25 * 0.01), rel=0.08)
        assert got < 0
        row_i = row.measure_iv().current_a
        assert row_i == pytest.approx(dut.line_current("r", 2), rel=0.1)
    finally:
        for res in list(rm.list_opened_resources()):
            res.close()
        rm.close()

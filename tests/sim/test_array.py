"""The 1T1R synapse array on the bench: Kirchhoff reads, gates, single-cell writes, keys, errors.

Pins the array's contract (``sim_backend/array_dut.py``): cell (i, j) joins bit line ``r<i>`` to
source line ``s<j>`` through a transistor gated by ``g<j>``; a terminal sources sum_j I_ij into
``r<i>`` and -sum_i I_ij into ``s<j>``; a held row voltage writes only the cells whose gate is on.
"""

from __future__ import annotations

import numpy as np
import pytest

from dendrolab.errors import ParameterError
from sim_backend.bench import Bench
from sim_backend.physics.rng import device_keys
from sim_backend.physics.synapse import STUCK_HIGH, STUCK_LOW, STUCK_NONE
from sim_backend.physics.waveform import Waveform

R, C = 4, 3


def array_bench(rows: int = R, cols: int = C, *, noise: bool = False, seed: int = 5,
                die: int = 0, models: object = None, shared_gate: bool = False) -> Bench:
    """Array ``a1`` with a terminal per line: rows ``row/i``, gates ``gate/j`` (or one
    ``gate/1`` on every gate), source lines ``src/j``."""
    wiring: dict[str, object] = {f"row/{i}": f"a1.r{i}" for i in range(1, rows + 1)}
    wiring.update({f"src/{j}": f"a1.s{j}" for j in range(1, cols + 1)})
    if shared_gate:
        wiring["gate/1"] = [f"a1.g{j}" for j in range(1, cols + 1)]
    else:
        wiring.update({f"gate/{j}": f"a1.g{j}" for j in range(1, cols + 1)})
    cfg: dict[str, object] = {
        "seed": seed, "noise": noise, "wiring": wiring,
        "devices": {"a1": {"kind": "array", "rows": rows, "cols": cols, "die": die,
                           "device": 100}}}
    if models is not None:
        cfg["models"] = models
    return Bench(cfg)


def set_conductances(bench: Bench, seed: int = 0) -> np.ndarray:
    """Known, distinct conductances in the window (a test fixture, not a programming path)."""
    dut = bench.device("a1")
    g = np.random.default_rng(seed).uniform(3e-6, 18e-6, dut.rows * dut.cols)
    dut.cells.g_s[:] = dut.cells.g_prog_s[:] = g
    return g.reshape(dut.rows, dut.cols)


def expected_cell_currents(bench: Bench, v_rows: np.ndarray, v_src: np.ndarray) -> np.ndarray:
    dut = bench.device("a1")
    v = v_rows[:, None] - v_src[None, :]
    eps = dut.cells.p["eps_nl"].reshape(dut.rows, dut.cols)
    return dut.conductance() * v * (1.0 + eps * v * v)


def test_vector_matrix_product_is_kirchhoff_exact():
    bench = array_bench(shared_gate=True)
    set_conductances(bench)
    v = np.array([0.2, 0.1, 0.0, 0.15])
    bench.source("gate/1", 1.6)
    for i, vi in enumerate(v, 1):
        bench.source(f"row/{i}", float(vi))
    for j in range(1, C + 1):
        bench.source(f"src/{j}", 0.0)
    cols = np.array([bench.measure(f"src/{j}").i_a for j in range(1, C + 1)])
    rows = np.array([bench.measure(f"row/{i}").i_a for i in range(1, R + 1)])
    cell = expected_cell_currents(bench, v, np.zeros(C))
    # sign convention: an SMU at 0 V on a source line reads the column current as negative
    np.testing.assert_allclose(-cols, cell.sum(axis=0), rtol=1e-12, atol=0)
    np.testing.assert_allclose(rows, cell.sum(axis=1), rtol=1e-12, atol=0)
    # at a 0.1 V read the cubic term is 0.25 %: the column currents are G^T V to that order
    np.testing.assert_allclose(-cols, bench.device("a1").conductance().T @ v, rtol=1.1e-2)
    # Kirchhoff: what the rows put in leaves through the source lines
    assert rows.sum() == pytest.approx(-cols.sum(), rel=1e-12)


def test_source_line_voltage_enters_the_cell_voltage():
    bench = array_bench(shared_gate=True)
    set_conductances(bench, seed=3)
    bench.source("gate/1", 1.6)
    bench.source("row/2", 0.2)
    bench.source("src/3", 0.05)
    v_rows = np.array([0.0, 0.2, 0.0, 0.0])
    v_src = np.array([0.0, 0.0, 0.05])
    cell = expected_cell_currents(bench, v_rows, v_src)
    assert bench.measure("src/3").i_a == pytest.approx(-cell[:, 2].sum(), rel=1e-12)
    assert bench.measure("row/2").i_a == pytest.approx(cell[1].sum(), rel=1e-12)
    assert bench.measure("gate/1").i_a == 0.0   # an insulated gate draws no current


def test_gate_off_blocks_the_read_and_one_gate_selects_one_cell():
    bench = array_bench()
    g = set_conductances(bench, seed=1)
    for i in range(1, R + 1):
        bench.source(f"row/{i}", 0.2)
    assert all(bench.measure(f"src/{j}").i_a == 0.0 for j in range(1, C + 1))
    assert all(bench.measure(f"row/{i}").i_a == 0.0 for i in range(1, R + 1))
    bench.source("gate/2", 1.6)
    got = bench.measure("row/3").i_a
    g_now = bench.device("a1").conductance()
    assert got == pytest.approx(g_now[2, 1] * 0.2 * (1 + 0.25 * 0.04), rel=1e-12)
    assert g_now[2, 1] == pytest.approx(g[2, 1], rel=1e-6)    # a read barely moves a cell
    assert bench.measure("src/1").i_a == 0.0
    assert bench.measure("src/3").i_a == 0.0


def pulse(bench: Bench, terminal: str, volts: float, width_s: float = 100e-6) -> None:
    bench.drive(terminal, Waveform(np.array([volts, 0.0]), np.array([width_s, width_s])))


def test_row_pulse_writes_only_the_cell_whose_gate_is_on():
    bench = array_bench()
    g0 = set_conductances(bench, seed=2)
    bench.source("gate/2", 1.6)
    pulse(bench, "row/3", 1.15)            # SET
    g1 = bench.device("a1").conductance()
    changed = g1 != g0
    assert changed[2, 1] and changed.sum() == 1
    assert g1[2, 1] > g0[2, 1]
    pulse(bench, "row/3", -1.15)           # RESET, same cell
    g2 = bench.device("a1").conductance()
    assert g2[2, 1] < g1[2, 1]
    assert ((g2 != g1).sum(), (g2 != g0).sum()) == (1, 1)
    bench.source("gate/2", 0.0)            # every gate off: no pulse reaches a cell
    pulse(bench, "row/3", -1.15)
    pulse(bench, "row/1", 1.15)
    np.testing.assert_array_equal(bench.device("a1").conductance(), g2)


def test_held_levels_program_like_a_pulse_and_the_gate_limits_set():
    bench = array_bench(rows=1, cols=1)
    dut = bench.device("a1")
    bench.source("gate/1", 0.95)           # below mid-window: the SET target is low
    bench.source("row/1", 1.5)
    bench.advance(1.0)                     # a long SET saturates at G_sat(V_g)
    bench.source("row/1", 0.0)
    target = dut.cells.g_sat(0.95)[0]
    assert dut.conductance()[0, 0] == pytest.approx(target, rel=1e-9)
    assert target < 0.5 * (dut.cells.p["g_min_s"][0] + dut.cells.p["g_max_s"][0])


def test_cells_are_keyed_by_position_like_bench_devices():
    seed, die = 11, 2
    bench = array_bench(noise=True, seed=seed, die=die)
    cells = bench.device("a1").cells
    want = device_keys(seed, 0, die, 100 + np.arange(R * C))
    np.testing.assert_array_equal(cells.keys, want)
    # cell (2, 3) is the synapse a bench entry with device 100 + 1*C + 2 would be
    single = Bench({"seed": seed, "devices": {"c": {"kind": "synapse", "die": die,
                                                     "device": 100 + 1 * C + 2}}})
    one = single.device("c").array
    for name in ("g_max_s", "g_min_s", "k_set_per_s", "k_reset_per_s"):
        assert cells.p[name].reshape(R, C)[1, 2] == one.p[name][0]


def test_variation_is_reproducible_and_differs_between_dies():
    def g_max(seed: int, die: int) -> np.ndarray:
        return array_bench(noise=True, seed=seed, die=die).device("a1").cells.p["g_max_s"]

    a, b, other_die, other_seed = g_max(4, 0), g_max(4, 0), g_max(4, 1), g_max(5, 0)
    np.testing.assert_array_equal(a, b)
    assert np.unique(a).size == a.size                 # every cell has its own draw
    assert not np.any(a == other_die)
    assert not np.any(a == other_seed)
    assert np.std(np.log(a)) > 0.05                    # the D2D spread (sigma_ln 0.15) is there


def test_read_noise_is_keyed_and_reproducible():
    def reads() -> list[float]:
        bench = array_bench(noise=True, shared_gate=True)
        bench.source("gate/1", 1.6)
        bench.source("row/1", 0.2)
        return [bench.measure("src/1", 1e-4).i_a for _ in range(5)]

    first = reads()
    assert first == reads()
    assert len(set(first)) == 5       # each reading draws its cells' next read-noise event


def test_stuck_cells_stay_stuck():
    models = {"base": "li2020-original", "synapse": {"stuck_fraction": 0.5}}
    bench = array_bench(rows=8, cols=8, noise=True, models=models, shared_gate=True)
    dut = bench.device("a1")
    stuck = dut.stuck()
    assert (stuck == STUCK_LOW).any() and (stuck == STUCK_HIGH).any()
    assert (stuck == STUCK_NONE).any()
    g0 = dut.conductance()
    p = dut.cells.p
    np.testing.assert_array_equal(g0[stuck == STUCK_HIGH],
                                  p["g_max_s"].reshape(8, 8)[stuck == STUCK_HIGH])
    bench.source("gate/1", 1.6)
    for volts in (1.3, -1.3, 1.3):
        for i in range(1, 9):
            pulse(bench, f"row/{i}", volts, 1e-3)
        g = dut.conductance()
        np.testing.assert_array_equal(g[stuck != STUCK_NONE], g0[stuck != STUCK_NONE])
    assert np.any(g[stuck == STUCK_NONE] != g0[stuck == STUCK_NONE])


def test_compliance_on_a_row_clamps_the_current_and_the_line_voltage():
    bench = array_bench(shared_gate=True)
    set_conductances(bench, seed=4)
    bench.source("gate/1", 1.6)
    bench.source("row/1", 1.0)
    free = bench.measure("row/1").i_a
    r = bench.measure("row/1", limit_a=free / 4)
    assert r.tripped and r.i_a == free / 4
    assert 0 < r.v_v < 0.5
    dut = bench.device("a1")
    assert dut.line_current("r", 0) == pytest.approx(free / 4, rel=1e-9)


@pytest.mark.parametrize(("entry", "wiring", "match"), [
    ({"kind": "array", "rows": 0, "cols": 4}, {}, r"rows = 0: must be in 1\.\.256"),
    ({"kind": "array", "rows": 4, "cols": 257}, {}, r"cols = 257: must be in 1\.\.256"),
    ({"kind": "array", "rows": 4}, {}, r"cols: missing"),
    ({"kind": "array", "rows": "4", "cols": 4}, {}, r"rows = '4': must be an integer"),
    ({"kind": "array", "rows": 2, "cols": 2, "size": 4}, {}, r"unknown key\(s\) size"),
    ({"kind": "array", "rows": 2, "cols": 2}, {"t/1": "a1.x9"}, r"has no port 'x9'"),
    ({"kind": "array", "rows": 2, "cols": 2}, {"t/1": "a1.r3"}, r"2x2 array 'a1' has no port 'r3'"),
    ({"kind": "array", "rows": 2, "cols": 5}, {"t/1": "a1.g6"}, r"no port 'g6'; ports: r1\.\.r2"),
    ({"kind": "array", "rows": 2, "cols": 2}, {"t/1": "a1.s0"}, r"no port 's0'"),
    ({"kind": "array", "rows": 2, "cols": 2}, {"t/1": "a1"}, r"no port ''"),
])
def test_bad_array_entries_give_one_line_errors(entry, wiring, match):
    with pytest.raises(ParameterError, match=match) as err:
        Bench({"devices": {"a1": entry}, "wiring": wiring})
    assert "\n" not in str(err.value)


def test_plain_devices_beside_an_array_keep_their_readings():
    """A dendrite on its own terminal reads the same with an array on the bench."""
    def reading(with_array: bool) -> float:
        devices: dict[str, object] = {"d1": {"kind": "dendrite", "device": 0}}
        wiring: dict[str, object] = {"smu/1": "d1"}
        if with_array:
            devices["a1"] = {"kind": "array", "rows": 2, "cols": 2, "device": 10}
            wiring["row/1"] = "a1.r1"
        bench = Bench({"seed": 3, "devices": devices, "wiring": wiring})
        bench.source("smu/1", 0.5)
        return bench.measure("smu/1", 1e-3).i_a

    assert reading(True) == reading(False)

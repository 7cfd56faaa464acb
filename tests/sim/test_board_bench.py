"""The packaged simulated dendritic board (``sim_backend/board_bench.py``) driven through real
drivers over ``@dendrosim``, and the 707B columns that carry one trace to several ports.

Pins: the committed files are the generator's output; the ``board`` section parses for the digits
layout; a word-line column turns on g_j of every layer-1 array; one SET pulse through m1 + m3
writes one cell; a sense SMU reads the Kirchhoff current of the driven rows in its column; the
dendrite and soma settings of the board give the currents their routes should.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pyvisa
import yaml
from scipy.optimize import minimize_scalar

from analysis.network.model import branch_function
from dendrolab.errors import ParameterError
from instruments.base import UserLimits
from instruments.bench_config import InstrumentSet, load_bench_config
from instruments.factory import open_instrument
from protocols.board import Crosspoint, parse_board
from protocols.board_math import fire_threshold, ratio, soma_drive
from sim_backend import board_bench as bb
from sim_backend.bench import Bench
from sim_backend.instruments.k707b import Keithley707BSim
from sim_backend.physics.synapse import STUCK_NONE

ROOT = Path(__file__).resolve().parents[2]
SIM = ROOT / bb.SIM_PATH
ROLES = ROOT / bb.ROLES_PATH
L1 = ("L1b1", "L1b2", "L1b3")
L2 = ("L2b1", "L2b2", "L2b3", "L2b4")


def roles_data() -> dict:
    return yaml.safe_load(ROLES.read_text(encoding="utf-8"))


def board():
    return parse_board(roles_data()["board"], branch_sizes=bb.BRANCH_SIZES,
                       output_blocks=bb.OUTPUT_BLOCKS, source=str(ROLES))


class Rig:
    """The board's bench and a driver per role (opened with the roles file's user limits)."""

    def __init__(self, rm: pyvisa.ResourceManager) -> None:
        self.rm = rm
        self.bench = rm.visalib.bench
        self.entries = roles_data()["instruments"]
        self.board = board()
        self._drivers: dict = {}

    def __getitem__(self, role: str):
        if role not in self._drivers:
            e = self.entries[role]
            self._drivers[role] = open_instrument(
                self.rm, e["address"], role, channel=e.get("channel", 1),
                limits=UserLimits.from_mapping(e.get("limits")), expected_model=e["model"])
        return self._drivers[role]

    def route(self, cp: Crosspoint, alone: bool = False) -> None:
        """Close a crosspoint (``alone``: after opening every crosspoint of all three matrices;
        a 707B's exclusive close opens only its own)."""
        if alone:
            for m in ("m1", "m2", "m3"):
                self[m].open_all()
        self[cp.matrix].route(cp.row, cp.card_column, slot=cp.slot)

    def conductances(self) -> dict[str, np.ndarray]:
        return {name: self.bench.device(name).conductance() for name in L1 + L2}


@pytest.fixture
def rig():
    rm = pyvisa.ResourceManager(f"{SIM}@dendrosim")
    yield Rig(rm)
    for res in list(rm.list_opened_resources()):
        res.close()
    rm.close()


# --------------------------------------------------------------------------- the files
def test_committed_files_are_the_generators_output():
    assert SIM.read_text(encoding="utf-8") == bb.render_sim()
    assert ROLES.read_text(encoding="utf-8") == bb.render_roles()


def test_write_puts_both_files_under_a_root(tmp_path):
    for rel in (bb.SIM_PATH, bb.ROLES_PATH):
        (tmp_path / rel).parent.mkdir(parents=True)
    written = bb.write(tmp_path)
    assert [p.relative_to(tmp_path) for p in written] == [bb.SIM_PATH, bb.ROLES_PATH]
    assert (tmp_path / bb.SIM_PATH).read_text() == bb.render_sim()


def test_board_section_parses_for_the_digits_layout():
    b = board()
    assert (b.hidden, b.outputs, b.input_bits) == (32, 10, 4)
    hidden, output = b.layers
    assert [(a.n_rows, a.n_cols, a.rows.matrix, a.rows.first, a.sense) for a in hidden.arrays] \
        == [(24, 64, "m1", 1, ("sense1a", "sense1b")), (16, 64, "m1", 25, ("sense2a", "sense2b")),
            (24, 64, "m1", 41, ("sense3a", "sense3b"))]
    assert {(a.gates.matrix, a.gates.row, a.gates.first) for a in hidden.arrays} == {("m3", "B", 1)}
    assert [(a.n_rows, a.n_cols, a.rows.first) for a in output.arrays] == \
        [(8, 20, 1), (8, 20, 9), (8, 20, 17), (8, 20, 25)]
    assert {(a.gates.matrix, a.gates.first) for a in output.arrays} == {("m2", 33)}
    assert [d.route.column for d in hidden.dendrites + output.dendrites] == list(range(53, 60))
    assert [s.route.column for s in hidden.somas] == list(range(65, 73))
    assert [s.route.column for s in output.somas] == list(range(60, 70))
    assert dict(b.dendrite) == bb.DENDRITE and dict(b.soma) == bb.SOMA
    assert b.g_min_s < b.g_max_s and dict(b.program) == bb.PROGRAM
    data = roles_data()
    assert set(b.roles()) <= set(data["instruments"])


def test_roles_resolve_to_the_packaged_sim_file():
    cfg = load_bench_config(ROLES)
    path, _, backend = cfg.visa_library.rpartition("@")
    assert backend == "dendrosim" and Path(path) == SIM.resolve()
    assert cfg.role("rows").address == cfg.role("gates").address    # two channels of SMU A
    assert (cfg.role("rows").channel, cfg.role("gates").channel) == (1, 2)
    assert cfg.role("rows").limits.voltage_max_v == 2.0
    assert cfg.role("soma").limits.voltage_max_v == 10.0
    assert cfg.role("soma").limits.current_max_a >= bb.SOMA["compliance_a"]
    assert cfg.role("dend").limits.current_max_a >= bb.DENDRITE["compliance_a"]


def test_every_role_opens_and_identifies_through_the_roles_file():
    """The whole roles file as ``dendrolab`` opens it (the ``board`` section rides along)."""
    with InstrumentSet.from_file(ROLES) as inst:
        ids = inst.identities()
        assert set(ids) == set(roles_data()["instruments"])
        assert {ids[r].model for r in ids} == {"B2902A", "707B"}
        assert ids["sense1a"].serial == ids["sense1b"].serial       # two channels of one SMU
        assert len({ids[r].serial for r in ids if r not in ("m1", "m2", "m3")}) == 9
        assert len({ids[r].serial for r in ("m1", "m2", "m3")}) == 3


def test_every_cell_and_device_has_its_own_device_id():
    devices = bb.bench_section()["devices"]
    ids: list[int] = []
    for spec in devices.values():
        n = spec.get("rows", 1) * spec.get("cols", 1)
        ids.extend(range(spec["device"], spec["device"] + n))
    assert len(ids) == len(set(ids)) == 24 * 64 * 2 + 16 * 64 + 4 * 8 * 20 + 7 + 18


# --------------------------------------------------------------------------- through drivers
def test_a_word_line_column_turns_on_that_gate_of_all_three_layer1_arrays(rig):
    gates = rig["gates"]
    gates.configure_source_voltage(1e-4)
    gates.set_voltage(1.6)
    gates.output_on()
    j = 30                                            # word line g30: m3 slot 3, card column 6
    rig.route(rig.board.layers[0].arrays[0].gates.crosspoint(j - 1))
    assert rig["m3"].closed_channels() == ["3B06"]
    for name in L1:
        on = rig.bench.device(name).v_gate
        assert on[j - 1] == 1.6 and np.count_nonzero(on) == 1
    for name in L2:
        assert not rig.bench.device(name).v_gate.any()
    rig["m3"].open_all()
    for name in L1:
        assert not rig.bench.device(name).v_gate.any()


def test_one_set_pulse_through_m1_and_m3_writes_only_that_cell(rig):
    b = rig.board
    arr = b.layers[0].arrays[1]                        # L1b2
    stuck = rig.bench.device("L1b2").stuck()
    i, j = next((i, j) for i in range(4, 16) for j in range(6, 64) if stuck[i, j] == STUCK_NONE)
    rig.route(arr.rows.crosspoint(i))
    rig.route(arr.gates.crosspoint(j))
    rows, gates = rig["rows"], rig["gates"]
    gates.configure_source_voltage(1e-4)
    gates.set_voltage(b.gate_v)
    gates.output_on()
    rows.configure_source_voltage(1e-3)
    rows.configure_measure(aperture_s=20e-6)
    before = rig.conductances()
    rows.pulsed_list_sweep([b.program["v_set"]], width_s=b.program["width_s"],
                           period_s=2 * b.program["width_s"])
    after = rig.conductances()
    for name in L1 + L2:
        changed = np.argwhere(after[name] != before[name]).tolist()
        assert changed == ([[i, j]] if name == "L1b2" else []), name
    assert after["L1b2"][i, j] > before["L1b2"][i, j]


def test_a_sense_smu_reads_the_kirchhoff_current_of_the_driven_rows(rig):
    """Bit-plane read: rows of all three layer-1 arrays on m1 row A at read_v, one word line on
    (column 42, in the second half); each array's second-half sense SMU reads
    -sum_i G_ij V (1 + eps V^2) over its driven rows, the first-half ones nothing."""
    b = rig.board
    driven = {"L1b1": [0, 3, 4, 11, 23], "L1b2": [1, 15], "L1b3": [2, 7, 8, 9, 20, 21]}
    j = 41
    for arr, name in zip(b.layers[0].arrays, L1, strict=True):
        for i in driven[name]:
            rig.route(arr.rows.crosspoint(i))
    rig.route(b.layers[0].arrays[0].gates.crosspoint(j))
    gates, rows = rig["gates"], rig["rows"]
    gates.configure_source_voltage(1e-4)
    gates.set_voltage(b.gate_v)
    gates.output_on()
    sense = [rig[f"sense{k}{half}"] for half in "ba" for k in range(1, 5)]
    for smu in sense:
        smu.configure_source_voltage(1e-3)
        smu.configure_measure(aperture_s=20e-6)
        smu.set_voltage(0.0)
        smu.output_on()
    rows.configure_source_voltage(1e-3)
    rows.configure_measure(aperture_s=20e-6)
    rows.set_voltage(b.read_v)
    rows.output_on()
    got = [smu.measure_iv().current_a for smu in sense]
    v = b.read_v
    for name, reading in zip(L1, got[:3], strict=True):
        dut = rig.bench.device(name)
        g = dut.conductance()[driven[name], j]
        eps = dut.cells.p["eps_nl"].reshape(dut.rows, dut.cols)[driven[name], j]
        want = -np.sum(g * v * (1 + eps * v * v))
        # each cell draws 2 % read noise: the column sum is within a few sigma of it
        assert reading == pytest.approx(want, rel=0.06), name
    assert got[3:] == [0.0] * 5        # layer 2 (no word line on) and the first halves
    # Kirchhoff: the rows SMU sources what leaves through the three source-line banks
    assert rows.measure_iv().current_a == pytest.approx(-sum(got[:3]), rel=0.05)


def test_dendrite_and_soma_routes_give_their_pulse_currents(rig):
    b = rig.board
    d, s = b.dendrite, b.soma
    dend, soma = rig["dend"], rig["soma"]
    dend.configure_source_voltage(d["compliance_a"])
    dend.configure_measure(aperture_s=20e-6)
    soma.configure_source_voltage(s["compliance_a"])
    soma.configure_measure(aperture_s=20e-6)
    pulse = {"width_s": d["width_s"], "period_s": d["period_s"]}
    open_route = dend.pulsed_list_sweep([d["v_max"]], **pulse).current_a
    assert open_route[0] == 0.0                            # nothing routed: an open terminal
    rig.route(b.layers[1].dendrites[2].route)              # D6: m2 row C, column 58
    i_d = dend.pulsed_list_sweep([0.0, d["v_max"], d["v_max"] / 2], **pulse).current_a
    assert abs(i_d[0]) < 1e-9
    assert 1e-6 < i_d[1] < 0.1 * d["compliance_a"]
    # convex: half the voltage gives far less than half the current (a ~ 5: r(0.5) ~ 0.07)
    assert 0 < i_d[2] < 0.2 * i_d[1]
    rig.route(b.layers[0].somas[4].route)                  # L1s5: m3 row D, column 69
    i_s = soma.pulsed_list_sweep([0.5, 3.0], width_s=s["width_s"],
                                 period_s=s["period_s"]).current_a
    assert 0 < i_s[0] < 10e-6                              # below threshold: the OFF branch
    assert i_s[1] == pytest.approx(3.0 / 2e3, rel=0.05)    # fired: the 2 kohm ON branch
    assert i_s[1] < s["i_full_a"]
    with pytest.raises(ParameterError, match="bench limit"):
        soma.pulsed_list_sweep([10.5], width_s=s["width_s"], period_s=s["period_s"])
    with pytest.raises(ParameterError, match="bench limit"):
        rig["rows"].configure_source_voltage(1e-3)
        rig["rows"].set_voltage(2.5)


# --------------------------------------------------------------------------- drive settings
def test_the_dendrite_settings_give_a_convex_branch_function_on_every_dendrite(rig):
    """r(u) = I(v_max u) / I(v_max) of D1..D7 fits (e^(a u) - 1)/(e^a - 1) with a near the
    paper's 5.56 (NL = 0.1), far below the compliance, and each pulse finds the device relaxed
    (the same levels in reverse order read the same within the noise)."""
    b = rig.board
    d = b.dendrite
    dend = rig["dend"]
    dend.configure_source_voltage(d["compliance_a"])
    dend.configure_measure(aperture_s=20e-6)
    u = np.linspace(0.0, 1.0, 11)
    pulse = {"width_s": d["width_s"], "period_s": d["period_s"]}
    fits = []
    for dev in b.layers[0].dendrites + b.layers[1].dendrites:
        rig.route(dev.route, alone=True)
        up = dend.pulsed_list_sweep(list(d["v_max"] * u), **pulse).current_a
        rig.bench.sleep(d["period_s"])   # a sweep's first pulse must find the device relaxed too
        down = dend.pulsed_list_sweep(list(d["v_max"] * u[::-1]), **pulse).current_a[::-1]
        np.testing.assert_allclose(down[3:], up[3:], rtol=0.05)
        r = up / up[-1]
        fit = minimize_scalar(lambda a, r=r: float(np.sum((branch_function(u, a) - r) ** 2)),
                              bounds=(0.1, 30.0), method="bounded")
        rms = np.sqrt(fit.fun / u.size)
        fits.append(fit.x)
        assert 4.0 < fit.x < 7.0 and rms < 0.03
        assert 1e-6 < up[-1] < 0.05 * d["compliance_a"]
    assert np.ptp(fits) > 0          # every dendrite is its own device


def test_the_soma_settings_fire_above_the_calibrated_threshold_and_saturate(rig):
    """Calibrate V_th on a 0.1 V ladder, then drive v_th + gain (s - theta): y = I / i_full is 0
    below, ~0.4 just above the threshold, rises ~0.3 per unit s and saturates by s - theta =
    2.5 (ON branch below the compliance up to i_full). Exactly at the ladder's V_th the soma
    fires or not (its V_th is redrawn each cycle, sigma 3 %), so the test stays 0.25 away."""
    b = rig.board
    s = b.soma
    soma = rig["soma"]
    soma.configure_source_voltage(s["compliance_a"])
    soma.configure_measure(aperture_s=20e-6)
    pulse = {"width_s": s["width_s"], "period_s": s["period_s"]}
    ladder = np.round(np.arange(0.0, s["v_max"] + 1e-9, 0.1), 3)
    ds = np.array([-0.25, 0.25, 1.25, 2.5])
    for dev in (b.layers[0].somas[0], b.layers[0].somas[6], b.layers[1].somas[9]):
        rig.route(dev.route, alone=True)
        i = soma.pulsed_list_sweep(list(ladder), **pulse).current_a
        v_th = fire_threshold(ladder, i, s["i_full_a"])
        assert 0.9 <= v_th <= 1.8
        drive = soma_drive(ds, v_th, 0.0, s["gain_v"], s["v_max"])
        y = ratio(soma.pulsed_list_sweep(list(drive), **pulse).current_a, s["i_full_a"])
        assert y[0] < 0.01
        assert 0.35 < y[1] < 0.55
        assert 0.25 < y[2] - y[1] < 0.4
        assert y[3] == 1.0


# --------------------------------------------------------------------------- 707B traces
@pytest.fixture
def two_arrays() -> Bench:
    return Bench({"seed": 1, "noise": False, "devices": {
        "a1": {"kind": "array", "rows": 2, "cols": 3, "device": 0},
        "a2": {"kind": "array", "rows": 2, "cols": 3, "device": 6},
        "d1": {"kind": "dendrite", "device": 12}}})


def test_a_column_listing_several_ports_joins_the_row_to_all_of_them(two_arrays):
    bench = two_arrays
    sw = Keithley707BSim(bench, "m", {"rows": {"B": "smu/2"}, "columns": {
        2: ["a1.g2", "a2.g2"], 3: "a1.g3"}})
    bench.source("smu/2", 1.6)
    sw.handle('channel.close("1B02")')
    assert not sw.errors
    assert sorted(bench.routes["m:1B02"]) == [("smu/2", ("a1", "g2")), ("smu/2", ("a2", "g2"))]
    for name in ("a1", "a2"):
        assert bench.device(name).v_gate.tolist() == [0.0, 1.6, 0.0]
    sw.handle('channel.close("1B03")')                     # the single-port form still works
    assert bench.device("a1").v_gate.tolist() == [0.0, 1.6, 1.6]
    assert bench.device("a2").v_gate.tolist() == [0.0, 1.6, 0.0]
    sw.handle('channel.open("1B02")')                      # one relay: every pin opens
    assert "m:1B02" not in bench.routes
    assert bench.device("a1").v_gate.tolist() == [0.0, 0.0, 1.6]
    assert not bench.device("a2").v_gate.any()


def test_a_listed_trace_can_mix_device_kinds(two_arrays):
    """A trace to a word line and a dendrite: the source reaches both (no check of sense)."""
    bench = two_arrays
    sw = Keithley707BSim(bench, "m", {"slots": {4: {"rows": {"A": "smu/1"},
                                                    "columns": {"7": ["a2.g1", "d1.top"]}}}})
    sw.handle('channel.close("4A07")')
    bench.source("smu/1", 0.5)
    assert bench.device("a2").v_gate[0] == 0.5
    assert bench.measure("smu/1").i_a > 0                    # the dendrite conducts


@pytest.mark.parametrize(("columns", "match"), [
    ({1: []}, r"column 1: an empty list joins no port"),
    ({1: ["a1.g1", "a1.g1"]}, r"port 'a1.g1' is listed twice"),
    ({1: ["d1", "d1.top"]}, r"port 'd1.top' is listed twice"),
    ({1: ["a1.g1", 3]}, r"3 is not 'device\[\.port\]'"),
    ({1: ["a1.g1", "a9.g1"]}, r"unknown device 'a9'"),
    ({1: ["a1.g1", "a2.g4"]}, r"2x3 array 'a2' has no port 'g4'"),
    ({1: {"a1": "g1"}}, r"is not 'device\[\.port\]'"),
])
def test_bad_column_lists_give_one_line_errors(two_arrays, columns, match):
    with pytest.raises(ParameterError, match=match) as err:
        Keithley707BSim(two_arrays, "m", {"rows": {"A": "smu/1"}, "columns": columns})
    assert "\n" not in str(err.value)

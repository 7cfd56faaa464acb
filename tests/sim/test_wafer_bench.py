"""The simulated wafer under the prober's needles, read by a 2450 through pyvisa: open needles
when separated, the keyed device of (die, site) in contact with its own persistent state,
shorted / open / stuck defects, and the configured radial trend closed-loop against the wafer
model."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import pyvisa

from dendrolab.errors import ParameterError
from sim_backend.bench import Bench
from sim_backend.physics.presets import load_models
from sim_backend.physics.wafer import DEFECT_OK, DEFECT_OPEN, DEFECT_SHORTED, DEFECT_STUCK
from sim_backend.visa import default_bench_path
from tests.wafer_bench import PROBER, SMU, sim_yaml

A_R = 0.2           # radial thickness term configured for the station's wafer


@pytest.fixture
def rm(tmp_path: Path):
    path = tmp_path / "bench.yaml"
    path.write_text(sim_yaml({"a_r": A_R, "defect_density_per_cm2": 4.0}))
    manager = pyvisa.ResourceManager(f"{path}@dendrosim")
    yield manager
    manager.close()


@pytest.fixture
def smu(rm):
    s = rm.open_resource(SMU, read_termination="\n", write_termination="\n")
    s.write(':SOUR:FUNC VOLT;:SOUR:VOLT 0.1;:SOUR:VOLT:ILIM 1e-3;:SENS:FUNC "CURR";'
            ":SENS:CURR:NPLC 0.1;:OUTP ON")
    return s


@pytest.fixture
def prober(rm):
    p = rm.open_resource(PROBER, read_termination="\n", write_termination="\n")
    p.write("*RCS 1")
    return p


def ok(prober, cmd: str) -> str:
    code, _, msg = prober.query(cmd).split(",", 2)
    assert int(code) & 1023 == 0, (cmd, msg)
    return msg


def visit(prober, col: int, row: int, site: int) -> None:
    ok(prober, "move_chuck_separation")
    ok(prober, f"map:step_die {col}, {row}, {site}")
    ok(prober, "move_chuck_contact")


def current(smu) -> float:
    return float(smu.query(":MEAS:CURR?"))


def site_of(wafer, index: int) -> tuple[int, int, int]:
    row = wafer.sites[index]
    return int(row["col"]), int(row["row"]), list(wafer.site_names).index(row["site"])


def test_separated_needles_are_open(rm, smu, prober) -> None:
    assert current(smu) == 0.0                       # never in contact
    ok(prober, "map:step_first_die")
    ok(prober, "move_chuck_contact")
    assert current(smu) > 1e-9
    ok(prober, "move_chuck_separation")
    assert current(smu) == 0.0
    assert rm.visalib.bench.station("sentio").contact is None


def test_contact_reaches_the_keyed_device_of_that_site(rm, smu, prober) -> None:
    station = rm.visalib.bench.station("sentio")
    wafer = station.wafer
    ok(prober, "map:step_first_die")
    die = station.wafer.dies["die"][0]
    clean = [s for s in range(16) if wafer.defects(
        wafer.sites[wafer.site_index(die, wafer.site_names[s]):][:1])[0] == DEFECT_OK][:2]
    readings = {}
    for s in clean:
        visit(prober, 2, 0, s)
        readings[s] = current(smu)
        name = wafer.site_names[s]
        row = wafer.sites[wafer.site_index(die, name):][:1]
        g_off = load_models().dendrite.g_off_s * wafer.scale_for("dendrite", row)["g_off_s"][0]
        assert readings[s] == pytest.approx(g_off * math.sinh(0.1), rel=1e-3)
        assert station.contact == (die, name)
    assert readings[clean[0]] != pytest.approx(readings[clean[1]], rel=1e-3)  # sites differ


def test_revisited_site_is_the_same_device_with_its_state(rm, smu, prober) -> None:
    bench: Bench = rm.visalib.bench
    station = bench.station("sentio")
    ok(prober, "map:step_first_die")
    ok(prober, "move_chuck_contact")
    die = int(station.wafer.dies["die"][0])
    dut = station.device(die, "D00")
    fresh = current(smu)
    smu.write(":SOUR:VOLT 5")
    current(smu)                                 # 5 V across the dendrite: it switches on
    smu.write(":SOUR:VOLT 0.1")
    ok(prober, "move_chuck_separation")          # needles up: the device relaxes at 0 V
    w_up, t_up = dut.w, bench.now_s
    assert w_up > 0.1
    visit(prober, 2, 0, 5)                       # another device meanwhile
    assert station.device(die, "D11") is not dut
    visit(prober, 2, 0, 0)
    assert station.device(die, "D00") is dut     # the same object: its own state
    back = current(smu)
    assert back > 1.5 * fresh                    # not yet relaxed: a fresh device would be
    # exactly the 0 V relaxation over the bench time in between (up to the read's aperture)
    smu.write(":OUTP OFF")
    dt = bench.now_s - t_up
    expected = w_up * math.exp(-dt * dut.inv_tau)
    assert station.device(die, "D00").w == pytest.approx(expected, rel=0.01)


def defect_site(wafer, state: int) -> tuple[int, int, int]:
    hits = np.flatnonzero(wafer.defects(wafer.sites) == state)
    assert hits.size, f"no site with defect {state} on this wafer"
    return site_of(wafer, int(hits[0]))


def test_defects_on_the_smu(rm, smu, prober) -> None:
    wafer = rm.visalib.bench.station("sentio").wafer
    smu.write(":SOUR:VOLT:ILIM 1e-4")
    # shorted: the source runs into its compliance
    visit(prober, *defect_site(wafer, DEFECT_SHORTED))
    assert current(smu) == pytest.approx(1e-4)
    assert smu.query(":SOUR:VOLT:ILIM:TRIP?") == "1"
    # open: only the probe path's leakage and noise floor
    visit(prober, *defect_site(wafer, DEFECT_OPEN))
    assert abs(current(smu)) < 1e-12
    assert smu.query(":SOUR:VOLT:ILIM:TRIP?") == "0"
    # stuck: 5 V (which switches a good dendrite on) changes nothing: the state is frozen
    smu.write(":SOUR:VOLT:ILIM 1e-3")
    for state in (DEFECT_STUCK, DEFECT_OK):
        visit(prober, *defect_site(wafer, state))
        before = current(smu)
        smu.write(":SOUR:VOLT 5")
        on = current(smu)
        smu.write(":SOUR:VOLT 0.1")
        after = current(smu)
        if state == DEFECT_STUCK:
            assert after == before
            assert on / before == pytest.approx(math.sinh(5) / math.sinh(0.1), rel=1e-5)
        else:
            assert after > 1.5 * before
            assert on / before > 5 * math.sinh(5) / math.sinh(0.1)


def test_radial_trend_closed_loop(rm, smu, prober) -> None:
    """Currents of the fresh D11 devices of every die follow the configured a_r trend:
    G_off ~ exp(-gain (exp(a_r (r/R)^2) - 1)) (the wafer's only variation here)."""
    wafer = rm.visalib.bench.station("sentio").wafer
    nominal = load_models().dendrite.g_off_s * math.sinh(0.1)
    i_meas, rows = [], []
    err = 0
    msg = ok(prober, "map:step_first_die 5")
    while not err:
        ok(prober, "move_chuck_contact")
        i_meas.append(current(smu))
        col, row, _ = (int(v) for v in msg.split(","))
        die = int(wafer.dies["die"][(wafer.dies["col"] == col) & (wafer.dies["row"] == row)][0])
        rows.append(wafer.site_index(die, "D11"))
        ok(prober, "move_chuck_separation")
        code, _, msg = prober.query("map:step_next_die").split(",", 2)
        err = int(code) & 1023
    assert err == 11 and len(rows) == 52
    sites = wafer.sites[rows]
    good = wafer.defects(sites) == DEFECT_OK
    assert good.sum() > 35
    ratio = np.array(i_meas)[good] / nominal
    scale = wafer.scale_for("dendrite", sites[good])["g_off_s"]
    np.testing.assert_allclose(ratio, scale, rtol=1e-3)         # against the wafer model
    rr = (sites["x_mm"] ** 2 + sites["y_mm"] ** 2)[good] / wafer.radius_mm ** 2
    trend = np.exp(-wafer.params.gain_g_off_t * np.expm1(A_R * rr))
    np.testing.assert_allclose(ratio, trend, rtol=1e-3)         # against the configured a_r
    assert np.corrcoef(rr, np.log(ratio))[0, 1] < -0.99         # edge devices conduct less
    assert ratio.max() / ratio.min() > 1.5


def test_default_bench_probe_smu_through_the_needles() -> None:
    """On the packaged bench probe_smu sees nothing new until a prober makes contact."""
    manager = pyvisa.ResourceManager(f"{default_bench_path()}@dendrosim")
    try:
        smu = manager.open_resource("USB0::0x05E6::0x2450::04488851::INSTR",
                                    read_termination="\n", write_termination="\n")
        smu.write(':SOUR:FUNC VOLT;:SOUR:VOLT 0.1;:SENS:FUNC "CURR";:OUTP ON')
        assert float(smu.query(":MEAS:CURR?")) == 0.0
        for address, first, contact, up in (
                (PROBER, "map:step_first_die", "move_chuck_contact", "move_chuck_separation"),
                ("GPIB0::28::INSTR", "StepFirstDie", "MoveChuckContact", "MoveChuckSeparation")):
            p = manager.open_resource(address, read_termination="\n", write_termination="\n")
            p.write("*RCS 1") if address == PROBER else None
            p.query(first)
            p.query(contact)
            assert float(smu.query(":MEAS:CURR?")) > 1e-10
            p.query(up)
            assert float(smu.query(":MEAS:CURR?")) == 0.0
    finally:
        manager.visalib.reset()
        manager.close()


def test_bench_wafer_section_is_checked() -> None:
    with pytest.raises(ParameterError, match="unknown key"):
        Bench({"wafer": {"s": {"probes": {}}}})
    with pytest.raises(ParameterError, match="kind must be one of"):
        Bench({"wafer": {"s": {"probe": {"smu/1": "unit"}}}})
    with pytest.raises(ParameterError, match="no port 'gate'"):
        Bench({"wafer": {"s": {"probe": {"smu/1": "dendrite.gate"}}}})
    with pytest.raises(ParameterError, match="unknown wafer parameter"):
        Bench({"wafer": {"s": {"params": {"no_such": 1}}}})
    with pytest.raises(ParameterError, match="sigma_die"):
        Bench({"wafer": {"s": {"params": {"sigma_die": -1}}}})
    bench = Bench({"wafer": {"s": {"probe": {"a/1": "synapse", "a/2": "synapse.gate"}}}})
    station = bench.station("s")
    station.touch_down(0, "D00")
    assert sorted(bench.routes) == ["probe:s"]
    station.lift()
    assert bench.routes == {}

"""The wafer engine closed-loop on the simulated SENTIO: defects skipped with the right reason,
the radial trend in the measured currents, positions recorded, kill -9 at fixed points then
resume (every device measured exactly once, no row lost or doubled), signals and errors ending
with the instruments safe and the needles up, and the runner's open-set API."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import pyvisa

from dendrolab.errors import ParameterError
from protocols.runfile import RunReader
from protocols.safety import RunInterrupted
from protocols.wafer import (
    JOURNAL,
    ContactCheck,
    WaferJournal,
    journal_devices,
    parse_dies,
    parse_sites,
    resume_wafer,
    run_file,
    run_wafer,
)
from sim_backend.physics.presets import load_models
from sim_backend.physics.wafer import DEFECT_OK, DEFECT_OPEN, DEFECT_SHORTED, DEFECT_STUCK
from tests.wafer_bench import REAL_STAGE, SMU, write_wafer_bench

A_R = 0.2


def make_bench(folder: Path, d0: float = 4.0) -> Path:
    return write_wafer_bench(folder, {"a_r": A_R, "defect_density_per_cm2": d0},
                             stage=REAL_STAGE)


def sim_bench(bench: Path):
    """The simulated bench object the engine talks to (pyvisa caches the library per file)."""
    rm = pyvisa.ResourceManager(f"{(bench.parent / 'sim.yaml').resolve()}@dendrosim")
    return rm, rm.visalib.bench


def wafer_sites(wafer, devices):
    """The wafer model's site rows of (col, row, site index) devices."""
    rows = []
    for col, row, site in devices:
        die = int(wafer.dies["die"][(wafer.dies["col"] == col) & (wafer.dies["row"] == row)][0])
        rows.append(wafer.site_index(die, wafer.site_names[site]))
    return wafer.sites[rows]


def smu_output(bench: Path) -> str:
    """``:OUTP?`` of the simulated SMU over a session of its own."""
    rm, _ = sim_bench(bench)
    smu = rm.open_resource(SMU, read_termination="\n", write_termination="\n")
    return smu.query(":OUTP?").strip()


def records(directory: Path) -> list[dict]:
    return WaferJournal.records(directory / JOURNAL)


# ---------------------------------------------------------------------------------------------
# Input parsing


def test_dies_and_sites_parse_and_reject() -> None:
    assert parse_dies("all") is None and parse_sites("all") is None
    assert parse_dies("3,4; 5,6;3,4") == [(3, 4), (5, 6)]
    assert parse_sites("D00,D12,3") == [0, 6, 3]
    for bad in ("3", "3,4,5", "a,b", "3,4;", ""):
        with pytest.raises(ParameterError, match="--dies"):
            parse_dies(bad)
    for bad in ("D44", "x", "-1", ""):
        with pytest.raises(ParameterError, match="--sites"):
            parse_sites(bad)


def test_contact_verdict_thresholds() -> None:
    c = ContactCheck()
    assert c.verdict(1e-8, False) == "ok"
    assert c.verdict(5e-12, False) == "open"
    assert c.verdict(6e-5, False) == "short"
    assert c.verdict(1e-8, True) == "short"          # the SMU's trip flag wins
    assert c.verdict(math.nan, False) == "open"


# ---------------------------------------------------------------------------------------------
# Closed loop


def test_defects_are_skipped_with_their_reason_and_trend_follows_the_wafer(tmp_path) -> None:
    bench = make_bench(tmp_path / "bench")
    summary = run_wafer(["wafer-iv"], bench, "W7", tmp_path / "out", sites="D11")
    _, simbench = sim_bench(bench)
    wafer = simbench.station("sentio").wafer
    directory = tmp_path / "out" / "W7"
    route = next(r for r in records(directory) if r["type"] == "route")
    devices = [tuple(d) for d in route["devices"]]
    assert len(devices) == 52 and all(d[2] == 5 for d in devices)
    sites = wafer_sites(wafer, devices)
    defects = wafer.defects(sites)
    expected = {DEFECT_SHORTED: "contact: short", DEFECT_OPEN: "contact: open"}
    assert {DEFECT_SHORTED, DEFECT_OPEN} <= set(defects.tolist())     # the test can fail
    states = {(r["col"], r["row"], r["site"]): r for r in journal_devices(directory)}
    for device, defect in zip(devices, defects, strict=True):
        state = states[device]
        if defect in expected:
            assert state["state"] == "skipped" and state["reason"] == expected[defect], device
            assert not run_file(directory, device, "wafer-iv").exists()
        else:
            assert state["state"] == "done", (device, defect, state)
    assert summary.skipped == int(np.isin(defects, list(expected)).sum())
    assert summary.done + summary.skipped == summary.total == 52
    # currents: the contact read (0.1 V) and the sweep's +0.3 V point follow Wafer.scale_for
    g_off = load_models().dendrite.g_off_s
    good = defects == DEFECT_OK
    scale = wafer.scale_for("dendrite", sites)["g_off_s"]
    contact = np.array([states[d]["contact_a"] for d in devices])
    np.testing.assert_allclose(contact[good] / (g_off * math.sinh(0.1)), scale[good], rtol=1e-3)
    i_top = []
    for device in np.array(devices, dtype=object)[good]:
        with RunReader(run_file(directory, tuple(device), "wafer-iv")) as reader:
            arrays = reader.step(1).arrays
            attrs = reader.attrs
            assert arrays["voltage_v"][-1] == pytest.approx(0.3)
            i_top.append(arrays["current_a"][-1])
            # where the needles were, read back from the station, in the run's attributes
            site = wafer_sites(wafer, [tuple(device)])[0]
            assert (attrs["die_col"], attrs["die_row"], attrs["subsite_id"]) == tuple(device)
            assert attrs["subsite_label"] == "D11" and attrs["device_kind"] == "dendrite"
            assert attrs["wafer_id"] == "W7"
            assert attrs["x_um"] == pytest.approx(site["x_mm"] * 1000, abs=1e-3)
            assert attrs["y_um"] == pytest.approx(site["y_mm"] * 1000, abs=1e-3)
    ratio = np.array(i_top) / (g_off * math.sinh(0.3))
    np.testing.assert_allclose(ratio, scale[good], rtol=0.05)
    rr = (sites["x_mm"] ** 2 + sites["y_mm"] ** 2)[good] / wafer.radius_mm ** 2
    assert np.corrcoef(rr, np.log(ratio))[0, 1] < -0.95       # edge devices conduct less
    # stuck devices read fine at contact: measured, not skipped
    assert all(states[d]["state"] == "done" for d, s in zip(devices, defects, strict=True)
               if s == DEFECT_STUCK)
    # the needles are up at the end
    assert simbench.station("sentio").contact is None


def test_skipped_dies_are_binned_on_the_station(tmp_path, monkeypatch) -> None:
    from instruments.prober import Prober

    bench = make_bench(tmp_path / "bench")
    _, simbench = sim_bench(bench)
    wafer = simbench.station("sentio").wafer
    hits = np.flatnonzero(wafer.defects(wafer.sites) == DEFECT_SHORTED)
    short = wafer.sites[int(hits[0])]
    site = list(wafer.site_names).index(short["site"])
    good = next(k for k in range(16) if wafer.defects(
        wafer_sites(wafer, [(int(short["col"]), int(short["row"]), k)]))[0] == DEFECT_OK)
    binned = []
    real_bin = Prober.bin

    def spy(self, code):
        pos = self.where()
        binned.append((code, (pos.col, pos.row, pos.site),
                       simbench.station("sentio").contact is not None))
        return real_bin(self, code)

    monkeypatch.setattr(Prober, "bin", spy)
    summary = run_wafer(["wafer-iv"], bench, "W8", tmp_path / "out",
                        dies=f"{short['col']},{short['row']}", sites=f"{site},{good}",
                        bin_skipped=7)
    assert summary.reasons == {f"{short['col']}_{short['row']}_{site}": "contact: short"}
    assert binned == [(7, (int(short["col"]), int(short["row"]), site), True)]
    assert simbench.station("sentio").contact is None


# ---------------------------------------------------------------------------------------------
# Interrupts


def test_sigterm_mid_device_leaves_everything_safe_then_resume_finishes(tmp_path) -> None:
    bench = make_bench(tmp_path / "bench", d0=0.0)
    out = tmp_path / "out"
    _, simbench = sim_bench(bench)

    def progress(event) -> None:
        if event.kind == "step" and event.index == 1 and event.protocol == "read" and \
                event.step == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(RunInterrupted):
        run_wafer(["wafer-iv", "read"], bench, "WS", out, dies="2,0;3,0", sites="0",
                  progress=progress)
    directory = out / "WS"
    assert simbench.station("sentio").contact is None            # needles up
    assert smu_output(bench) == "0"                               # source off
    with RunReader(run_file(directory, (3, 0, 0), "read")) as reader:
        assert reader.status == "interrupted"
    states = {(r["col"], r["row"], r["site"]): r["state"] for r in journal_devices(directory)}
    assert states == {(2, 0, 0): "done", (3, 0, 0): "measuring"}
    summary = resume_wafer(directory)
    assert summary.done == 2 and summary.measured_now == 1
    with RunReader(run_file(directory, (3, 0, 0), "read")) as reader:
        assert reader.status == "completed"
        assert len(reader.step(1).arrays["current_a"]) == 10
        assert any(e["kind"] == "resume_reread" for e in reader.events())


def test_an_error_mid_device_makes_instruments_safe_then_separates(tmp_path, monkeypatch
                                                                    ) -> None:
    import protocols.wafer as engine
    from instruments.prober import Prober

    bench = make_bench(tmp_path / "bench", d0=0.0)
    _, simbench = sim_bench(bench)
    order = []
    real_safe, real_prober_safe = engine.safe_state_except, Prober.safe_state

    def instruments_safe(instruments, spare):
        order.append(("instruments", smu_output(bench), tuple(sorted(spare))))
        return real_safe(instruments, spare)

    def prober_safe(self):
        order.append(("separate", smu_output(bench)))
        return real_prober_safe(self)

    def progress(event) -> None:
        if event.kind == "step" and event.step == 1:
            order.clear()
            raise RuntimeError("boom")

    monkeypatch.setattr(engine, "safe_state_except", instruments_safe)
    monkeypatch.setattr(Prober, "safe_state", prober_safe)
    with pytest.raises(RuntimeError, match="boom"):
        run_wafer(["wafer-iv"], bench, "WE", tmp_path / "out", dies="2,0", sites="0",
                  progress=progress)
    assert order[:2] == [("instruments", "0", ("prober",)), ("separate", "0")]
    assert simbench.station("sentio").contact is None
    assert smu_output(bench) == "0"


CHILD = """\
import os, signal, sys
from protocols.wafer import run_wafer, resume_wafer
bench, out, n, proto, m, mode = sys.argv[1:7]
def progress(event):
    if (event.kind == "step" and event.index == int(n) and event.protocol == proto
            and event.step == int(m)):
        os.kill(os.getpid(), signal.SIGKILL)
if mode == "run":
    run_wafer(["wafer-iv", "read"], bench, "WK", out, dies="2,0;3,0;4,0", sites="0,5",
              progress=progress)
else:
    resume_wafer(os.path.join(out, "WK"), progress=progress)
"""


def child(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("kills", [
    [("1", "wafer-iv", "1")],                    # mid first protocol (sweep done, not closed)
    [("2", "read", "2")],                        # after the last step, before the close
    [("0", "read", "0"), ("3", "wafer-iv", "0")],  # killed again during the resume
])
def test_kill_9_then_resume_measures_every_device_exactly_once(tmp_path, kills) -> None:
    bench = make_bench(tmp_path / "bench", d0=0.0)
    out = tmp_path / "out"
    for k, (n, proto, m) in enumerate(kills):
        result = child(str(bench), str(out), n, proto, m, "run" if k == 0 else "resume")
        assert result.returncode == -signal.SIGKILL, result.stderr
    result = child(str(bench), str(out), "-1", "", "-1", "resume")
    assert result.returncode == 0, result.stderr
    directory = out / "WK"
    recs = records(directory)
    route = next(r for r in recs if r["type"] == "route")
    devices = [tuple(d) for d in route["devices"]]
    assert len(devices) == 6
    states = {(r["col"], r["row"], r["site"]): r for r in journal_devices(directory)}
    assert all(states[d]["state"] == "done" for d in devices)
    done_records = [r for r in recs if r.get("type") == "device" and r["state"] == "done"]
    assert sorted((r["col"], r["row"], r["site"]) for r in done_records) == sorted(devices)
    ran = [(r["col"], r["row"], r["site"], r["protocol"]) for r in recs
           if r.get("type") == "run" and r["how"] in ("ran", "resumed")]
    assert len(ran) == len(set(ran)) == 2 * len(devices)          # each run once, none lost
    files = sorted(p.relative_to(directory) for p in directory.rglob("*.h5"))
    assert len(files) == 2 * len(devices)
    assert not list(directory.rglob("*.partial"))
    for device in devices:
        for proto, step, points in (("wafer-iv", 1, 21), ("read", 1, 10)):
            with RunReader(run_file(directory, device, proto)) as reader:
                assert reader.status == "completed"
                arrays = reader.step(step).arrays
                assert len(arrays["current_a"]) == points                 # no row lost or doubled
                assert np.all(np.diff(arrays["time_s"]) > 0)
                a = reader.attrs
                assert (a["die_col"], a["die_row"], a["subsite_id"]) == device
                assert math.isfinite(a["x_um"]) and math.isfinite(a["y_um"])
    killed = (devices[int(kills[0][0])], kills[0][1])
    with RunReader(run_file(directory, *killed)) as reader:
        assert any(e["kind"] == "resume" for e in reader.events())


def test_journal_survives_a_torn_last_line(tmp_path) -> None:
    path = tmp_path / JOURNAL
    journal = WaferJournal.create(path, {"type": "wafer"})
    journal.append({"type": "device", "col": 1, "row": 2, "site": 0, "state": "done"})
    journal.close()
    with open(path, "a") as fh:
        fh.write('{"type": "device", "col": 1, "ro')          # a kill mid-write
    assert [r["type"] for r in WaferJournal.records(path)] == ["wafer", "device"]
    journal = WaferJournal.reopen(path)
    journal.append({"type": "end"})
    journal.close()
    lines = path.read_text().splitlines()
    assert [json.loads(line)["type"] for line in lines] == ["wafer", "device", "end"]


# ---------------------------------------------------------------------------------------------
# Bad input: nothing opened, nothing written


@pytest.fixture
def no_io(monkeypatch):
    from instruments.bench_config import InstrumentSet

    def refuse(self):
        raise AssertionError("an instrument was opened")

    monkeypatch.setattr(InstrumentSet, "open", refuse)


@pytest.mark.parametrize("kw, match", [
    ({"sites": "D9"}, "--sites"),
    ({"dies": "3;4"}, "--dies"),
    ({"wafer_id": "../x"}, "wafer id"),
    ({"protocols": ["no-such-protocol"]}, "no such protocol"),
    ({"protocols": ["wafer-iv", "wafer-iv"]}, "given twice"),
])
def test_bad_input_raises_before_any_io(tmp_path, no_io, kw, match) -> None:
    bench = make_bench(tmp_path / "bench")
    args = {"protocols": ["wafer-iv"], "wafer_id": "W1", **kw}
    with pytest.raises(ParameterError if "protocols" not in kw else Exception, match=match):
        run_wafer(args.pop("protocols"), bench, args.pop("wafer_id"), tmp_path / "out", **args)
    assert not (tmp_path / "out" / "W1").exists()


def test_a_bench_without_a_prober_is_refused_before_any_io(tmp_path, no_io) -> None:
    bench = tmp_path / "b.yaml"
    bench.write_text(f'visa_library: "@dendrosim"\ninstruments:\n  smu: {{address: "{SMU}"}}\n')
    with pytest.raises(ParameterError, match="no role 'prober'"):
        run_wafer(["wafer-iv"], bench, "W1", tmp_path / "out")


def test_unknown_die_is_refused_before_anything_is_measured(tmp_path) -> None:
    bench = make_bench(tmp_path / "bench")
    with pytest.raises(ParameterError, match="no die at column 40, row 40"):
        run_wafer(["wafer-iv"], bench, "W1", tmp_path / "out", dies="2,0;40,40")
    assert not (tmp_path / "out" / "W1").exists()
    _, simbench = sim_bench(bench)
    assert simbench.station("sentio").contact is None


# ---------------------------------------------------------------------------------------------
# The runner's open-set API


def test_run_plan_spares_the_prober_and_refuses_to_replace_runner_attributes(tmp_path) -> None:
    from instruments.bench_config import InstrumentSet, load_bench_config
    from protocols.runner import prepare, protocol_text, run_plan

    bench = make_bench(tmp_path / "bench", d0=0.0)
    plan, _ = prepare("read", bench)
    text = protocol_text("read", plan)
    _, simbench = sim_bench(bench)
    with InstrumentSet(load_bench_config(bench)) as instruments:
        prober = instruments["prober"]
        prober.first()
        prober.contact()
        with pytest.raises(Exception, match="replace the runner"):
            run_plan(plan, instruments, tmp_path / "x.h5", protocol_text=text, bench_text="",
                     bench_path=str(bench), attrs={"wafer_id": "no"})
        run_plan(plan, instruments, tmp_path / "r.h5", protocol_text=text, bench_text="",
                 bench_path=str(bench), attrs={"die_col": 2}, spare=frozenset({"prober"}))
        assert simbench.station("sentio").contact is not None      # needles still down
    assert simbench.station("sentio").contact is None              # the set's close separates
    with RunReader(tmp_path / "r.h5") as reader:
        assert reader.status == "completed" and reader.attrs["die_col"] == 2


def test_a_run_reaching_compliance_skips_the_device_and_its_next_protocols(tmp_path) -> None:
    bench = make_bench(tmp_path / "bench", d0=0.0)
    tight = tmp_path / "tight-iv.yaml"
    tight.write_text(
        "protocol: tight-iv\ndescription: sweep into a 10 nA compliance\nfigure: generic\n"
        "device: d1\ninstruments: {smu: smu}\n"
        "limits: {voltage_max_v: 1.0, current_max_a: 1e-3, energy_max_j: 1e-4}\n"
        "steps:\n  - smu_setup: {role: smu, compliance_a: 10 nA, nplc: 0.1}\n"
        "  - sweep: {role: smu, kind: linear, start_v: 0.0, stop_v: 0.3, points: 7}\n"
        "  - output_off: {role: smu}\n")
    summary = run_wafer([str(tight), "read"], bench, "WC", tmp_path / "out", dies="2,0",
                        sites="0")
    assert summary.reasons == {"2_0_0": "compliance: tight-iv reached 1e-08 A"}
    directory = tmp_path / "out" / "WC"
    assert run_file(directory, (2, 0, 0), "tight-iv").exists()      # kept, for the record
    assert not run_file(directory, (2, 0, 0), "read").exists()


def test_the_same_engine_on_the_velox_dialect(tmp_path) -> None:
    """The packaged bench's Velox (GPIB, wafer 2): route read by StepFirstDie / StepNextSubDie /
    StepNextDie, devices reached by StepNextDie col row site, positions by ReadMapPosition2 and
    ReadChuckPosition; skips follow the defects of that wafer."""
    from sim_backend.visa import default_bench_path

    bench = tmp_path / "velox.yaml"
    bench.write_text('visa_library: "@dendrosim"\ninstruments:\n'
                     '  smu: {address: "USB0::0x05E6::0x2450::04488851::INSTR", model: "2450"}\n'
                     '  prober: {address: "GPIB0::28::INSTR", model: "VELOX"}\n')
    summary = run_wafer(["wafer-iv"], bench, "V1", tmp_path / "out", dies="2,0;3,0;4,1",
                        sites="all")
    rm = pyvisa.ResourceManager(f"{default_bench_path()}@dendrosim")
    wafer = rm.visalib.bench.station("velox").wafer
    directory = tmp_path / "out" / "V1"
    states = {(r["col"], r["row"], r["site"]): r for r in journal_devices(directory)}
    devices = sorted(states)
    assert summary.total == len(devices) == 48
    sites = wafer_sites(wafer, devices)
    defects = wafer.defects(sites)
    for device, site, defect in zip(devices, sites, defects, strict=True):
        state = states[device]
        assert state["x_um"] == pytest.approx(site["x_mm"] * 1000, abs=1e-3)
        assert state["y_um"] == pytest.approx(site["y_mm"] * 1000, abs=1e-3)
        want = {DEFECT_SHORTED: "skipped", DEFECT_OPEN: "skipped"}.get(int(defect), "done")
        assert state["state"] == want, device
    assert rm.visalib.bench.station("velox").contact is None


# ---------------------------------------------------------------------------------------------
# Manual mode: an operator places the needles (here a scripted prompt that touches the
# simulated station down at the announced device, as an operator's hand would)

SMU_ONLY = ('visa_library: "sim.yaml@dendrosim"\ninstruments:\n'
            '  smu: {{address: "{smu}", model: "2450"}}\n')


class Operator:
    """A scripted operator: answers per device (default Enter, in contact); before confirming it
    puts the simulated needles down on the device the prompt names, before anything else it
    lifts them. Records the devices it was asked about, in order."""

    def __init__(self, station, answers: dict | None = None) -> None:
        self.station, self.answers, self.asked = station, answers or {}, []

    def __call__(self, text: str) -> str:
        import re

        m = re.search(r"die \((-?\d+), (-?\d+)\) site (\d+)", text)
        assert m is not None, text
        device = tuple(int(g) for g in m.groups())
        self.asked.append(device)
        answer = self.answers.get(device, "")
        wafer = self.station.wafer
        col, row, site = device
        if answer == "":
            die = int(wafer.dies["die"][(wafer.dies["col"] == col) & (wafer.dies["row"] == row)][0])
            self.station.touch_down(die, wafer.site_names[site])
        else:
            self.station.lift()
        return answer


def test_manual_mode_measures_the_confirmed_devices_and_journals_a_skip(tmp_path, monkeypatch
                                                                        ) -> None:
    from instruments.prober import Prober

    def refuse(self, *a, **k):
        raise AssertionError("the remote prober was opened in manual mode")

    monkeypatch.setattr(Prober, "__init__", refuse)
    bench = make_bench(tmp_path / "bench", d0=0.0)     # has a `prober` role: left closed
    _, simbench = sim_bench(bench)
    station = simbench.station("sentio")
    op = Operator(station, {(3, 0, 0): "s"})
    summary = run_wafer(["wafer-iv"], bench, "WM", tmp_path / "out", dies="2,0;3,0",
                        sites="0,D11", manual=True, prompt=op)
    devices = [(2, 0, 0), (2, 0, 5), (3, 0, 0), (3, 0, 5)]
    assert op.asked == devices                                  # each device once, in order
    assert (summary.done, summary.skipped, summary.total) == (3, 1, 4)
    assert summary.reasons == {"3_0_0": "operator skipped"}
    directory = tmp_path / "out" / "WM"
    recs = records(directory)
    assert recs[0]["manual"] is True
    states = {(r["col"], r["row"], r["site"]): r for r in journal_devices(directory)}
    assert states[(3, 0, 0)]["state"] == "skipped"
    assert states[(3, 0, 0)]["reason"] == "operator skipped"
    assert not run_file(directory, (3, 0, 0), "wafer-iv").exists()
    measured = [d for d in devices if d != (3, 0, 0)]
    # the closed loop reached the confirmed site: the contact read follows that site's scale
    wafer = station.wafer
    scale = wafer.scale_for("dendrite", wafer_sites(wafer, measured))["g_off_s"]
    g_off = load_models().dendrite.g_off_s
    contact = np.array([states[d]["contact_a"] for d in measured])
    np.testing.assert_allclose(contact / (g_off * math.sinh(0.1)), scale, rtol=1e-3)
    assert len(set(np.round(scale, 6))) == 3                    # distinct sites: can fail
    for device in measured:
        assert states[device]["state"] == "done"
        with RunReader(run_file(directory, device, "wafer-iv")) as reader:
            a = reader.attrs
            assert reader.status == "completed"
            assert (a["die_col"], a["die_row"], a["subsite_id"]) == device
            assert a["subsite_label"] == ("D00" if device[2] == 0 else "D11")
            assert a["wafer_id"] == "WM"
            assert math.isnan(a["x_um"]) and math.isnan(a["y_um"])   # no read-back by hand
    station.lift()


def test_manual_abort_is_clean_and_resume_prompts_from_the_next_device(tmp_path) -> None:
    from protocols.wafer import WaferAborted

    folder = tmp_path / "bench"
    make_bench(folder, d0=0.0)
    bench = folder / "smu-only.yaml"                            # no `prober` role at all
    bench.write_text(SMU_ONLY.format(smu=SMU))
    _, simbench = sim_bench(bench)
    station = simbench.station("sentio")
    op = Operator(station, {(3, 0, 0): "a"})
    out = tmp_path / "out"
    with pytest.raises(WaferAborted, match=r"die \(3, 0\).*wafer resume") as info:
        run_wafer(["wafer-iv", "read"], bench, "WA", out, dies="2,0;3,0;4,0", sites="0",
                  manual=True, prompt=op)
    assert info.value.summary.done == 1
    directory = out / "WA"
    assert op.asked == [(2, 0, 0), (3, 0, 0)]
    assert smu_output(bench) == "0"                             # instruments safe
    recs = records(directory)
    assert recs[-1]["type"] == "abort"                          # journal closed after it
    states = {(r["col"], r["row"], r["site"]): r["state"] for r in journal_devices(directory)}
    assert states == {(2, 0, 0): "done"}
    op2 = Operator(station)
    summary = resume_wafer(directory, prompt=op2)
    assert op2.asked == [(3, 0, 0), (4, 0, 0)]                  # from the next unmeasured one
    assert (summary.done, summary.skipped, summary.measured_now) == (3, 0, 2)
    recs = records(directory)
    done = [(r["col"], r["row"], r["site"]) for r in recs
            if r.get("type") == "device" and r["state"] == "done"]
    assert sorted(done) == [(2, 0, 0), (3, 0, 0), (4, 0, 0)]    # exactly once each
    ran = [(r["col"], r["row"], r["protocol"]) for r in recs
           if r.get("type") == "run" and r["how"] == "ran"]
    assert len(ran) == len(set(ran)) == 6
    for device in ((2, 0, 0), (3, 0, 0), (4, 0, 0)):
        with RunReader(run_file(directory, device, "read")) as reader:
            assert reader.status == "completed" and reader.attrs["die_col"] == device[0]
    # a finished manual wafer resumes without asking anyone
    resume_wafer(directory, prompt=Operator(station, {}))
    station.lift()


def test_manual_sigterm_mid_device_then_resume_asks_for_that_device_again(tmp_path) -> None:
    folder = tmp_path / "bench"
    make_bench(folder, d0=0.0)
    bench = folder / "smu-only.yaml"
    bench.write_text(SMU_ONLY.format(smu=SMU))
    _, simbench = sim_bench(bench)
    station = simbench.station("sentio")

    def progress(event) -> None:
        if event.kind == "step" and event.index == 1 and event.protocol == "read" and \
                event.step == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(RunInterrupted):
        run_wafer(["wafer-iv", "read"], bench, "WT", tmp_path / "out", dies="2,0;3,0",
                  sites="0", manual=True, prompt=Operator(station), progress=progress)
    directory = tmp_path / "out" / "WT"
    assert smu_output(bench) == "0"
    states = {(r["col"], r["row"], r["site"]): r["state"] for r in journal_devices(directory)}
    assert states == {(2, 0, 0): "done", (3, 0, 0): "measuring"}
    station.lift()                       # the operator lifted the needles meanwhile
    op = Operator(station)
    summary = resume_wafer(directory, prompt=op)
    assert op.asked == [(3, 0, 0)] and summary.done == 2 and summary.measured_now == 1
    with RunReader(run_file(directory, (3, 0, 0), "read")) as reader:
        assert reader.status == "completed"
        assert len(reader.step(1).arrays["current_a"]) == 10
        assert any(e["kind"] == "resume_reread" for e in reader.events())
    station.lift()


@pytest.mark.parametrize("kw, match", [
    ({"dies": None, "sites": "0"}, "--manual needs --dies"),
    ({"dies": "all", "sites": "0"}, "--manual needs --dies"),
    ({"dies": "2,0", "sites": "all"}, "--manual needs --sites"),
    ({"dies": "2,0", "sites": "0", "map_path": "x.map"}, "--map"),
    ({"dies": "2,0", "sites": "0", "bin_skipped": 3}, "--bin"),
    ({"dies": "20000,0", "sites": "0"}, "col"),
])
def test_manual_bad_input_raises_before_any_io(tmp_path, no_io, kw, match) -> None:
    bench = make_bench(tmp_path / "bench")
    with pytest.raises(ParameterError, match=match):
        run_wafer(["wafer-iv"], bench, "W1", tmp_path / "out", manual=True,
                  prompt=lambda text: "", **kw)
    assert not (tmp_path / "out" / "W1").exists()


def test_manual_mode_needs_an_smu_but_no_prober(tmp_path, no_io) -> None:
    bench = tmp_path / "b.yaml"
    bench.write_text('visa_library: "@dendrosim"\ninstruments:\n'
                     '  meter: {address: "USB0::0x05E6::0x2450::04488850::INSTR"}\n')
    with pytest.raises(ParameterError, match="no role 'smu'"):
        run_wafer(["wafer-iv"], bench, "W1", tmp_path / "out", dies="2,0", sites="0",
                  manual=True)

"""Every built-in protocol on the simulated bench reproduces the qualitative result of its figure.

Runs go through the real stack: plan -> drivers -> pyvisa -> @dendrosim -> HDF5 -> reader.
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import numpy as np
import pytest
import pyvisa

from dendrolab.cli import _sim_bench
from dendrolab.errors import ProtocolError
from protocols.library import builtin_names
from protocols.runfile import RunReader
from protocols.runner import read_points, run_protocol
from protocols.safety import RunInterrupted

BENCH = _sim_bench()
RUN_DIR: list[Path] = []


def fresh_bench():
    """The cached simulator library, reset: every run starts from relaxed devices."""
    lib = pyvisa.ResourceManager("@dendrosim").visalib
    lib.reset()
    return lib


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    out = tmp_path_factory.mktemp("runs")
    RUN_DIR.append(out)
    data = {}
    for name in builtin_names():
        fresh_bench()
        path = run_protocol(name, BENCH, out / f"{name}.h5")
        with RunReader(path) as reader:
            assert reader.status == "completed"
            assert all(s.status == "done" for s in reader.steps)
        data[name] = read_points(path)
    return data


def mean_i(points, pattern: str) -> list[float]:
    return [float(np.mean(a["current_a"])) for name, a in points.items()
            if re.search(pattern, name) and "current_a" in a]


def test_ed2a_amplitude_filtering(runs):
    after = mean_i(runs["dendrite-amplitude-sweep"], r"after_")
    base = mean_i(runs["dendrite-amplitude-sweep"], r"baseline")[0]
    assert after[0] / base < 1.1             # 2 V pulses barely move the state
    assert after[-1] / base > 4              # 5 V pulses switch it on
    assert after[-1] > after[len(after) // 2] > after[0]


def test_ed2b_temporal_integration_grows_with_pulse_count(runs):
    responses = mean_i(runs["dendrite-integration"], r"response")
    assert responses[-1] > responses[0]


def test_ed3_inhibition_lowers_the_state(runs):
    exc = mean_i(runs["dendrite-inhibition"], r"after_excitatory")
    inh = mean_i(runs["dendrite-inhibition"], r"after_inhibition")
    assert all(i < e for i, e in zip(inh, exc, strict=True))


def test_ed3d_switch_on_then_relaxation_to_off(runs):
    for name, a in runs["dendrite-relaxation"].items():
        if "off_on_relax" not in name:
            continue
        v, i = a["voltage_v"], a["current_a"]
        off, tail = i[:5].mean(), i[v == 2.0][5:]
        assert tail[0] > 3 * off                  # ON right after the switch
        assert np.all(np.diff(tail[:8]) < 0)      # decays (later points are within read noise)
        assert tail[-1] < 1.3 * off               # back to OFF


def test_ed2c_on_state_iv_is_above_off_state(runs):
    points = runs["dendrite-iv"]
    off = mean_i(points, r"off_state_iv")[0]
    on = mean_i(points, r"on_state_iv")[0]
    assert on > 2 * off


def test_ed7c_soma_threshold_above_hold(runs):
    """The up-sweep switches ON at a higher level than the down-sweep releases (V_th > V_hold)."""
    with RunReader(RUN_DIR[0] / "soma-iv.h5") as reader:
        sweeps = [(reader.step(s.index)["current_a"], np.asarray(s.params["levels_v"]))
                  for s in reader.steps if "levels_v" in s.params and s.rows > 10]
    assert sweeps
    for i, levels in sweeps:
        peak = int(np.argmax(levels))
        on = i > 5 * np.abs(levels) / 200e3 + 1e-9      # far above the OFF branch V / R_off
        up_on = levels[:peak + 1][on[:peak + 1]]
        down_on = levels[peak:][on[peak:]]
        assert up_on.size and down_on.size
        assert up_on.min() > down_on.min()


def test_ed7d_unit_fires_only_above_an_amplitude_window(runs):
    currents = mean_i(runs["unit-firing"], r"pulses")
    assert len(currents) == 5
    assert currents[-1] > 5 * currents[0]
    assert currents[-1] / currents[-2] > 1.5      # superlinear once the soma fires


def test_synapse_write_verify_reaches_targets(runs):
    for name, a in runs["synapse-write-verify"].items():
        if "pulse_v" in a:
            target = float(re.search(r"target_s=([0-9.e+-]+)", name).group(1))
            g = a["current_a"][-1] / 0.2
            assert abs(g - target) / target <= 0.05
            assert a["pulse_v"][-1] == 0.0


def test_endurance_has_200_stable_cycles(runs):
    responses = mean_i(runs["dendrite-endurance"], r"response")
    assert len(responses) >= 200
    first, last = np.mean(responses[:50]), np.mean(responses[-50:])
    assert abs(last - first) / first < 0.05


def test_survey_reads_every_routed_device(runs):
    reads = mean_i(runs["dendrite-survey"], r".")
    assert len(reads) >= 4 and all(r > 0 for r in reads)


def test_run_file_records_the_simulator_seed_and_model_version(runs):
    with RunReader(RUN_DIR[0] / "read.h5") as reader:
        attrs = reader.attrs
    assert attrs["library_simulator"] == "dendrosim"
    assert attrs["library_sim_seed"] == 1 and attrs["library_sim_models"] == "li2020-original"
    assert len(attrs["library_sim_model_version"]) == 16
    assert attrs["plan_hash"] and attrs["protocol_sha256"]


def test_bad_protocol_fails_before_any_instrument_io(tmp_path, monkeypatch):
    from instruments import bench_config

    def no_io(self):
        raise AssertionError("instruments were opened for a bad protocol")

    monkeypatch.setattr(bench_config.InstrumentSet, "open", no_io)
    bad = tmp_path / "bad.yaml"
    bad.write_text(Path(str(BENCH)).read_text().replace("visa_library", "x") and
                   "protocol: bad\ndevice: d1\ninstruments: {smu: smu}\n"
                   "limits: {voltage_max_v: 1, current_max_a: 1e-3, energy_max_j: 1}\n"
                   "steps:\n  - smu_setup: {role: smu, compliance_a: 1e-4, nplc: 0.01}\n"
                   "  - read: {role: smu, v: 5.0}\n")
    with pytest.raises(ProtocolError, match=r"bad.yaml:\d+"):
        run_protocol(bad, BENCH, tmp_path / "never.h5")
    assert not (tmp_path / "never.h5").exists()


def test_sigint_mid_run_leaves_every_source_off(tmp_path):
    lib = fresh_bench()

    def ctrl_c_mid_run(step, _duration) -> None:
        if step.index == 60:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(RunInterrupted):
        run_protocol("dendrite-endurance", BENCH, tmp_path / "int.h5", progress=ctrl_c_mid_run)
    assert lib.bench.levels == {}                     # no terminal sources anything
    with RunReader(tmp_path / "int.h5") as reader:
        assert reader.status == "interrupted"
        assert 0 < sum(s.status == "done" for s in reader.steps) < len(reader.steps)


def test_sigkill_mid_run_then_resume_completes_without_gaps_or_duplicates(tmp_path):
    """A hard kill loses at most the step in flight; resume re-runs exactly the missing steps."""
    import subprocess
    import sys

    import h5py

    from protocols.runfile_layout import LAYOUT_VERSION

    out = tmp_path / "killed.h5"
    # The child kills itself with SIGKILL when step 45 is done: the same point on any machine.
    child = ("import os, signal, sys\n"
             "from dendrolab.cli import _sim_bench\n"
             "from protocols.runner import run_protocol\n"
             "def progress(step, _duration):\n"
             "    if step.index == 45:\n"
             "        os.kill(os.getpid(), signal.SIGKILL)\n"
             "run_protocol('dendrite-endurance', _sim_bench(), sys.argv[1], progress=progress)\n")
    proc = subprocess.Popen([sys.executable, "-c", child, str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc.wait(timeout=300)
    assert proc.returncode == -signal.SIGKILL
    with h5py.File(out, "r") as h5:               # plain h5py opens the killed file
        assert h5.attrs["dendrolab_layout"] == LAYOUT_VERSION
    with RunReader(out) as reader:
        before = {s.name: s.rows for s in reader.steps if s.status == "done"}
        total = len(reader.steps)
    assert len(before) == 46 < total
    result = subprocess.run([sys.executable, "-m", "dendrolab", "resume", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    with RunReader(out) as reader:
        assert reader.status == "completed"
        steps = reader.steps
        assert all(s.status == "done" for s in steps)
        for s in steps:                           # no missing and no duplicated rows
            assert s.rows == s.n_points, s.name
            if s.name in before:
                assert s.attempts == 1 and s.rows == before[s.name]
        assert sum(s.attempts > 1 for s in steps) <= 1   # only the step cut by the kill re-ran
        events = reader.events()
        assert any(e["kind"] == "resume_reread" for e in events)


def test_ed1_positive_pulses_excite_negative_do_not(runs):
    base = mean_i(runs["dendrite-pm-pulses"], r"^baseline")[0]
    pos, neg = mean_i(runs["dendrite-pm-pulses"], r"response")
    assert pos > 3 * base                   # +5 V train switches the dendrite on
    assert neg < 1.2 * base                 # -5 V train leaves it off (inhibitory)
    assert mean_i(runs["dendrite-pm-pulses"], r"after_exc_then_inh")[0] < pos


def test_generic_read_and_iv_sweep_record_what_they_declare(runs):
    for name in ("read", "iv-sweep"):
        arrays = [a for a in runs[name].values() if "current_a" in a]
        assert arrays and all(a["current_a"].size == a["voltage_v"].size > 0 for a in arrays)
        assert all(np.all(np.isfinite(a["current_a"])) for a in arrays)


def test_builtin_run_stores_the_protocol_text_and_its_hash(runs):
    """Provenance: the run of a built-in keeps the YAML it ran and that text's SHA-256."""
    import hashlib

    from protocols.library import builtin_path

    for name in ("read", "dendrite-endurance"):
        text = builtin_path(name).read_text(encoding="utf-8")
        with RunReader(RUN_DIR[0] / f"{name}.h5") as reader:
            attrs = reader.attrs
        assert attrs["protocol"] == text and text.strip()
        assert attrs["protocol_sha256"] == hashlib.sha256(text.encode()).hexdigest()


def test_protocol_file_outside_the_working_directory_keeps_its_text(tmp_path, monkeypatch):
    import hashlib

    from protocols.library import builtin_path

    fresh_bench()
    protocol = tmp_path / "mine" / "short-read.yaml"
    protocol.parent.mkdir()
    text = builtin_path("read").read_text().replace("count: 10", "count: 2")
    protocol.write_text(text)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    path = run_protocol(protocol, BENCH, tmp_path / "mine.h5")
    with RunReader(path) as reader:
        assert reader.attrs["protocol"] == text
        assert reader.attrs["protocol_sha256"] == hashlib.sha256(text.encode()).hexdigest()


def _bad_out(tmp_path: Path, case: str) -> tuple[Path, str]:
    if case == "name too long":
        return tmp_path / ("x" * 300 + ".h5"), r"file name is 303 bytes; .* at most 255"
    if case == "parent is a file":
        (tmp_path / "afile").write_text("")
        return tmp_path / "afile" / "x.h5", r"afile is not a directory"
    if case == "no such directory":
        return tmp_path / "nodir" / "x.h5", r"nodir does not exist"
    if case == "exists":
        (tmp_path / "old.h5").write_text("")
        return tmp_path / "old.h5", r"already exists"
    # unwritable: permission bits do not stop root, a pseudo file system does
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if os.access(locked, os.W_OK):
        locked = Path("/proc")
    return locked / "x.h5", r"cannot create a file in"


@pytest.mark.parametrize("case", ["name too long", "parent is a file", "no such directory",
                                  "exists", "unwritable"])
def test_bad_out_path_fails_before_any_instrument_io(tmp_path, monkeypatch, case):
    from dendrolab.errors import RunFileError
    from instruments import bench_config

    def no_io(self):
        raise AssertionError("instruments were opened before the output path was checked")

    monkeypatch.setattr(bench_config.InstrumentSet, "open", no_io)
    out, match = _bad_out(tmp_path, case)
    with pytest.raises(RunFileError, match=match) as info:
        run_protocol("read", BENCH, out)
    message = str(info.value)
    assert "\n" not in message and len(message) < 400
    assert not any(p.name.endswith(".probe") for p in tmp_path.rglob("*"))


def test_out_path_function_that_fails_is_a_run_file_error(tmp_path, monkeypatch):
    """A caller's ``out_path(plan)`` that makes directories: its OSError is one clear line."""
    from dendrolab.errors import RunFileError
    from instruments import bench_config

    monkeypatch.setattr(bench_config.InstrumentSet, "open", lambda self: pytest.fail("I/O"))
    (tmp_path / "afile").write_text("")

    def choose(plan) -> Path:
        out = tmp_path / "afile" / "x.h5"
        out.parent.mkdir(parents=True, exist_ok=True)
        return out

    with pytest.raises(RunFileError, match=r"afile: cannot prepare the run file's directory"):
        run_protocol("read", BENCH, choose)


def _step_spec_has_loop_vars() -> bool:
    import dataclasses

    from protocols.runfile import StepSpec

    return "loop_vars" in {f.name for f in dataclasses.fields(StepSpec)}


@pytest.mark.skipif(not _step_spec_has_loop_vars(), reason="StepSpec.loop_vars not there yet")
def test_layout_carries_each_steps_loop_variables():
    """Tidy data: every step's loop variables reach its StepSpec as data, not only its name."""
    from protocols.runner import layout_for, prepare

    class NoInstruments:
        def identities(self) -> dict:
            return {}

    plan, _ = prepare("dendrite-amplitude-sweep", BENCH)
    layout = layout_for(plan, NoInstruments())
    for step, spec in zip(plan.steps, layout.steps, strict=True):
        assert spec.loop_vars == dict(getattr(step, "loop_vars", {}) or {})
    if any(getattr(s, "loop_vars", None) for s in plan.steps):
        assert any(spec.loop_vars for spec in layout.steps)


@pytest.mark.skipif(not _step_spec_has_loop_vars(), reason="StepSpec.loop_vars not there yet")
def test_run_file_steps_carry_their_loop_variables(runs):
    """End to end: the reader gives each step the loop variables its plan step had."""
    from protocols.plan import Plan

    with RunReader(RUN_DIR[0] / "dendrite-amplitude-sweep.h5") as reader:
        plan = Plan.from_json(str(reader.attrs["plan"]))
        got = [dict(s.loop_vars) for s in reader.steps]
    assert got == [dict(s.loop_vars) for s in plan.steps]
    assert any(got)

"""Counter protocols end to end: the built-ins on the simulated bench against the physics, plan
checks before any I/O, and a resumed run whose gate died with the killed session."""

from __future__ import annotations

import itertools
import math
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest
import pyvisa

from dendrolab.cli import _sim_bench
from dendrolab.errors import ProtocolError
from protocols.library import load_builtin
from protocols.plan import ProtocolLimitError, RoleInfo, compile_protocol
from protocols.runfile import RunReader
from protocols.runner import read_points, resume_run, run_protocol
from protocols.schema import parse_protocol
from sim_backend.bench import Bench
from sim_backend.physics.waveform import pulse_train
from sim_backend.visa import default_bench_path

BENCH = _sim_bench()
AMPLITUDES = [4.0, 4.5, 5.0, 5.5, 6.0]
LEVELS = [5.0, 5.25, 5.5, 5.75, 6.0]


def fresh_library():
    lib = pyvisa.ResourceManager("@dendrosim").visalib
    lib.reset()
    return lib


def physics_bench(noise: bool = True) -> Bench:
    """The packaged bench's devices and models, without any instrument: the physics alone."""
    import yaml

    path = default_bench_path()
    config = yaml.safe_load(path.read_text())["bench"]
    return Bench({**config, "noise": noise}, base_dir=path.parent)


@pytest.fixture(scope="module")
def spikes_run(tmp_path_factory):
    lib = fresh_library()
    path = run_protocol("unit-spikes", BENCH, tmp_path_factory.mktemp("spikes") / "run.h5")
    return read_points(path), len(lib.bench.device("u1").spike_times), path


@pytest.fixture(scope="module")
def quiet_bench(tmp_path_factory) -> Path:
    """The packaged bench without noise (pyvisa-sim file and roles file): the C2C draws of the
    soma move a noisy oscillation by several % from one history to another, so the frequency is
    compared with the physics where it is a function of the input alone."""
    folder = tmp_path_factory.mktemp("quiet")
    text = default_bench_path().read_text()
    assert "  noise: true\n" in text
    (folder / "sim.yaml").write_text(text.replace("  noise: true\n", "  noise: false\n"))
    roles = Path(str(BENCH)).read_text()
    (folder / "bench.yaml").write_text(roles.replace('"@dendrosim"', '"sim.yaml@dendrosim"'))
    return folder / "bench.yaml"


@pytest.fixture(scope="module")
def osc_run(tmp_path_factory, quiet_bench):
    path = run_protocol("unit-oscillation", quiet_bench,
                        tmp_path_factory.mktemp("osc") / "run.h5")
    return read_points(path), path


def test_spike_counts_match_the_physics_and_grow_with_amplitude(spikes_run):
    points, logged, path = spikes_run
    steps = [f"input/amplitude_v={a:g}/spikes" for a in AMPLITUDES]
    counts = [float(points[s]["count"][0]) for s in steps]
    truth = []
    for amp in AMPLITUDES:  # each amplitude on a relaxed unit, straight on the bench
        bench = physics_bench()
        bench.drive("pulse/2", pulse_train(amp, 200e-6, 200e-6, 20))
        truth.append(len(bench.device("u1").spike_times))
    assert counts[:2] == [0.0, 0.0] == truth[:2]
    assert counts[2] == truth[2] <= 2
    for got, want in zip(counts[3:], truth[3:], strict=True):
        assert got == pytest.approx(want, rel=0.03)   # noise draws differ after earlier bursts
    assert 120 <= counts[3] <= 160 and 440 <= counts[4] <= 500
    assert counts[2] < counts[3] < counts[4]
    assert sum(counts) == logged                      # every spike of the run, counted once
    for s in steps:
        assert points[s]["gate_s"][0] == 0.1 and points[s]["level_v"][0] == 0.01
    with RunReader(path) as reader:
        assert reader.status == "completed"
        assert reader.step(steps[-1]).units["count"] == ""
        assert dict(reader.steps[-2].loop_vars) == {"amplitude_v": 6.0}


def test_oscillation_frequency_matches_the_physics_and_rises_with_the_input(osc_run):
    points, _path = osc_run
    freqs = [float(points[f"input/input_v={v:g}/osc"]["frequency_hz"][0]) for v in LEVELS]
    holds = [float(points[f"input/input_v={v:g}/osc"]["hold_v"][0]) for v in LEVELS]
    assert holds == LEVELS
    assert all(b > a for a, b in itertools.pairwise(freqs))
    for v, got in zip(LEVELS, freqs, strict=True):
        bench = physics_bench(noise=False)  # the level held from a relaxed unit, 10 ms to settle
        bench.source("soma_smu/2", v)
        bench.advance(0.031)
        times = np.asarray(bench.device("u1").spike_times)
        window = times[(times >= 0.011) & (times < 0.021)]
        want = (window.size - 1) / (window[-1] - window[0])
        assert got == pytest.approx(want, rel=0.005), v
    assert 8e3 < freqs[0] < 15e3 and 140e3 < freqs[-1] < 170e3


HEAD = """\
protocol: t
device: u1
instruments: {gen: {role: pulse, channel: 2}, counter: counter,
              unit: {role: soma_smu, channel: 2}}
limits: {voltage_max_v: 7, current_max_a: 1e-2, energy_max_j: 1e-2}
steps:
"""
BENCH_ROLES = {"pulse": RoleInfo("33622A"), "counter": RoleInfo("53230A"),
               "soma_smu": RoleInfo("2636B")}


def limit_error(steps: str, bench=None) -> ProtocolLimitError:
    text = HEAD + textwrap.indent(textwrap.dedent(steps), "  ")
    with pytest.raises(ProtocolError) as info:
        compile_protocol(parse_protocol(text, "t.yaml"), bench)
    assert isinstance(info.value, ProtocolLimitError), info.value
    return info.value


@pytest.mark.parametrize(("bench", "gate", "match"), [
    (BENCH_ROLES, "0.5 us", r"gate_s: must be >= 1e-06 s \(Keysight 53230A gate time range\)"),
    (BENCH_ROLES, "1001", r"gate_s: must be <= 1000 s"),
    (BENCH_ROLES, "1.5 us", r"gate_s: must be a whole number of 1e-06 s steps"),
    ({**BENCH_ROLES, "counter": RoleInfo("53220A")}, "50 us",
     r"gate_s: must be >= 0\.0001 s \(Keysight 53220A"),
    (None, "0.1 us", r"gate_s: must be >= 1e-06 s \(counter gate time range\)"),
])
def test_plan_rejects_a_gate_out_of_range_with_file_and_line(bench, gate, match):
    err = limit_error(f"""\
        - count_start: {{role: counter, gate_s: {gate}, level_v: 0.01}}
        - count_fetch: {{role: counter}}
        """, bench)
    assert err.line == 7 and err.field.endswith("count_start.gate_s")
    assert str(err).startswith("t.yaml:7:")
    assert re.search(match, str(err)), str(err)


@pytest.mark.parametrize(("steps", "match"), [
    ("- count_fetch: {role: counter}\n", "no totalize gate is open on counter/1"),
    ("- count_start: {role: counter, gate_s: 0.1, level_v: 0.01}\n", "never fetched"),
    ("- count_start: {role: counter, gate_s: 0.1, level_v: 0.01}\n"
     "- count_start: {role: counter, gate_s: 0.1, level_v: 0.01}\n", "count_fetch it first"),
    ("- count_start: {role: counter, gate_s: 0.1, level_v: 0.01}\n"
     "- frequency: {role: counter, gate_s: 0.1, level_v: 0.01}\n", "count_fetch it first"),
    ("- count_start: {role: counter, gate_s: 0.1, level_v: 6}\n", r"level_v: must be <= 5 V"),
    ("- count_start: {role: counter, gate_s: 0.1, level_v: 0.1, slope: UP}\n", "POS or NEG"),
    ("- count_start: {role: counter, gate_s: 0.1, level_v: 0.1, impedance_ohm: 75}\n",
     "must be one of 50, 1e"),
    ("- count_start: {role: gen, gate_s: 0.1, level_v: 0.1}\n", "this step needs a counter"),
    ("- frequency: {role: counter, gate_s: 0.01, level_v: 0.01, hold_v: 5}\n",
     "give hold_role and hold_v together"),
    ("- frequency: {role: counter, gate_s: 0.01, level_v: 0.01, hold_role: unit, hold_v: 5}\n",
     "no smu_setup came before it"),
    ("- smu_setup: {role: unit, compliance_a: 1e-3}\n"
     "- frequency: {role: counter, gate_s: 0.01, level_v: 0.01, hold_role: unit, hold_v: 8}\n",
     r"8 V is outside \[-7, 7\] V"),
])
def test_plan_checks_counter_steps(steps, match):
    err = limit_error(steps, BENCH_ROLES)
    assert re.search(match, str(err)), str(err)


def test_plan_warns_when_the_steps_outlast_the_gate():
    text = HEAD + textwrap.indent(textwrap.dedent("""\
        - count_start: {role: counter, gate_s: 5 ms, level_v: 0.01}
        - pulses: {role: gen, amplitude_v: 6, width_s: 200 us, period_s: 400 us, count: 20}
        - count_fetch: {role: counter}
        """), "  ")
    plan = compile_protocol(parse_protocol(text, "t.yaml"), BENCH_ROLES)
    assert any("longer than its 0.005 s gate" in w for w in plan.warnings)


def test_builtin_plans_time_the_gate_and_bound_the_hold_energy():
    roles = {"pulse": RoleInfo("33622A"), "counter": RoleInfo("53230A"),
             "soma_smu": RoleInfo("2636B")}
    spikes = compile_protocol(load_builtin("unit-spikes"), roles)
    start, train, fetch = spikes.steps[:3]
    assert (start.action, train.action, fetch.action) == ("counter.start", "pulse.train",
                                                          "counter.fetch")
    # the fetch waits for the rest of the 100 ms gate opened at the end of count_start
    assert start.duration_s + train.duration_s + fetch.duration_s == pytest.approx(0.101, abs=2e-3)
    assert fetch.records == {"count": ("", 1), "gate_s": ("s", 1), "level_v": ("V", 1),
                             "time_s": ("s", 1)}
    osc = compile_protocol(load_builtin("unit-oscillation"), roles)
    step = next(s for s in osc.steps if s.action == "counter.frequency"
                and s.params["hold_v"] == 5.0)
    assert step.params["timeout_s"] == pytest.approx(0.03)
    assert step.energy_j == pytest.approx(5.0 * 1e-3 * (0.01 + 0.03 + 1e-3))


def test_bad_gate_fails_before_any_instrument_io(tmp_path, monkeypatch):
    from instruments import bench_config

    def no_io(self):
        raise AssertionError("instruments were opened for a bad protocol")

    monkeypatch.setattr(bench_config.InstrumentSet, "open", no_io)
    bad = tmp_path / "bad.yaml"
    bad.write_text(HEAD + "  - count_start: {role: counter, gate_s: 0.5 us, level_v: 0.01}\n"
                          "  - count_fetch: {role: counter}\n")
    with pytest.raises(ProtocolError, match=r"bad.yaml:7: .*gate_s"):
        run_protocol(bad, BENCH, tmp_path / "never.h5")
    assert not (tmp_path / "never.h5").exists()


def test_resume_after_a_kill_between_start_and_fetch_records_nan_and_says_why(tmp_path):
    """The gate opened by the killed session is gone: the count is NaN with an event, not a
    count of a gate that never existed."""
    lib = fresh_library()
    out = tmp_path / "cut.h5"

    def stop_after_the_first_burst(step, _duration) -> None:
        if step.name == "input/amplitude_v=4/pulses":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_protocol("unit-spikes", BENCH, out, progress=stop_after_the_first_burst)
    assert lib.bench.levels == {}
    path, start = resume_run(out)
    assert start == 2
    with RunReader(path) as reader:
        assert reader.status == "completed"
        lost = [e for e in reader.events() if e["kind"] == "counter_gate_lost"]
        assert [e["step"] for e in lost] == ["input/amplitude_v=4/spikes"]
        assert lost[0]["start_step"] == "input/amplitude_v=4/count_start"
    points = read_points(path)
    assert math.isnan(points["input/amplitude_v=4/spikes"]["count"][0])
    assert points["input/amplitude_v=6/spikes"]["count"][0] > 400


def test_docs_list_the_new_steps_and_datasets():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "protocols.md").read_text()
    for word in ("`count_start`", "`count_fetch`", "`frequency`", "`frequency_hz`", "`count`",
                 "`counter.fetch`", "unit-spikes", "unit-oscillation"):
        assert word in doc, word

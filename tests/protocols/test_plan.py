"""The plan compiler: built-ins against the default bench, limits, bounds, timing, hash, layout."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
import re
import textwrap
import tracemalloc
from pathlib import Path

import pytest
import yaml

import protocols.plan as plan_module
from dendrolab.errors import ProtocolError
from instruments.base import UserLimits
from instruments.bench_config import parse_bench_config
from instruments.factory import lookup_model
from instruments.switch import K707B
from protocols.library import builtin_names, load_builtin
from protocols.plan import (
    ACTIONS,
    HOST_STEP_S,
    POINT_OVERHEAD_S,
    Plan,
    ProtocolLimitError,
    RoleInfo,
    StepNames,
    arb_waveform,
    compile_protocol,
    roles_from_bench_config,
    steps_hash,
)
from protocols.schema import parse_protocol

REPO = Path(__file__).resolve().parents[2]
DEFAULT_MODELS = {"smu": "2450", "pulse": "33622A", "soma_smu": "2636B",
                  "array_smu": "B2902A", "probe_smu": "2450", "matrix": "707B",
                  "counter": "53230A"}


def default_bench() -> dict[str, RoleInfo]:
    """RoleInfo of the default simulated bench (models only; no bench user limits)."""
    return {role: RoleInfo(model) for role, model in DEFAULT_MODELS.items()}


def test_default_bench_models_match_the_bench_file():
    """Read the simulated bench as plain YAML (protocols never import the simulator)."""
    data = yaml.safe_load((REPO / "sim_backend" / "benches" / "default.yaml").read_text())
    found = {}
    for entry in data["resources"].values():
        dialogues = data["devices"][entry["device"]]["dialogues"]
        idn = next(d["r"] for d in dialogues if d["q"] == "*IDN?")
        found[entry["name"]] = lookup_model(idn.split(",")[1])[2]
    # the bench may hold more (probers); the roles these tests use must be exactly these models
    assert {role: found.get(role) for role in DEFAULT_MODELS} == DEFAULT_MODELS


HEAD = """\
protocol: t
device: d1
instruments: {smu: smu, pulse: pulse, m: matrix, soma: {role: soma_smu, channel: 1},
              unit: {role: soma_smu, channel: 2, device: u1},
              bit: {role: array_smu, channel: 1}, gate: {role: array_smu, channel: 2}}
limits: {voltage_max_v: 6, current_max_a: 1e-3, energy_max_j: 1e-2}
steps:
  - smu_setup: {role: smu, compliance_a: 1e-4, nplc: 0.01}
"""
FIRST = HEAD.count("\n") + 1


def text_of(steps: str, head: str = HEAD) -> str:
    return head + textwrap.indent(textwrap.dedent(steps), "  ")


def plan_of(steps: str, bench=None, head: str = HEAD, **kw) -> Plan:
    return compile_protocol(parse_protocol(text_of(steps, head), "amp.yaml"), bench, **kw)


def limit_error(steps: str, bench=None, head: str = HEAD, **kw) -> ProtocolLimitError:
    with pytest.raises(ProtocolError) as info:
        plan_of(steps, bench, head, **kw)
    assert isinstance(info.value, ProtocolLimitError), info.value
    return info.value


# --- built-ins --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", builtin_names())
def test_builtin_compiles_against_the_default_bench(name):
    plan = compile_protocol(load_builtin(name), default_bench())
    assert plan.bench_checked and not plan.warnings
    assert 0 < plan.duration_s < 3.0  # modest simulated time
    assert 0 < plan.points <= 10_000
    assert plan.energy_j <= plan.limits["energy_max_j"]
    assert [s.index for s in plan.steps] == list(range(len(plan.steps)))
    assert len({s.name for s in plan.steps}) == len(plan.steps)
    assert math.isclose(plan.duration_s, math.fsum(s.duration_s for s in plan.steps))
    for s in plan.steps:
        assert s.action in ACTIONS
        assert s.timing in ("hardware", "pc")
        assert s.v_max_v <= plan.limits["voltage_max_v"]
        if s.action in ("smu.read", "smu.linear_sweep", "smu.list_sweep", "smu.pulsed_sweep"):
            assert set(s.records) == {"voltage_v", "current_a", "time_s"}
            n = {r[1] for r in s.records.values()}
            assert len(n) == 1
            expected = (s.params.get("count") or s.params.get("points")
                        or len(s.params["levels_v"]))
            assert n == {expected}
    assert Plan.from_json(plan.to_json()) == plan


def test_builtins_cover_the_paper_figures():
    figures = ",".join(load_builtin(n).figure for n in builtin_names())
    for fig in ("ED1a", "ED1b", "ED2a", "ED2b", "ED2c", "ED3a", "ED3b", "ED3c", "ED3d", "ED4a",
                "ED4b", "ED4c", "ED7b", "ED7c", "ED7d"):
        assert fig in figures.split(","), fig


def test_builtin_shapes():
    bench = default_bench()
    amp = compile_protocol(load_builtin("dendrite-amplitude-sweep"), bench)
    trains = [s for s in amp.steps if s.action == "pulse.train"]
    assert [s.params["high_v"] for s in trains][:3] == [2.0, 2.1, 2.2]
    assert len(trains) == 31 and trains[-1].params["high_v"] == 5.0
    assert "sweep/amplitude_v=2.1/after_2.1V" in {s.name for s in amp.steps}

    relax = compile_protocol(load_builtin("dendrite-relaxation"), bench)
    sweep = next(s for s in relax.steps if s.action == "smu.list_sweep")
    assert sweep.timing == "hardware" and sweep.params["levels_v"].count(5.0) == 5

    endurance = compile_protocol(load_builtin("dendrite-endurance"), bench)
    pulses = [s for s in endurance.steps if s.action == "pulse.train"]
    assert len(pulses) >= 200
    assert {(s.params["high_v"], s.params["width_s"]) for s in pulses} == {(3.0, 10e-6)}

    unit = compile_protocol(load_builtin("unit-firing"), bench)
    pulsed = [s for s in unit.steps if s.action == "smu.pulsed_sweep"]
    assert {(s.role, s.channel, s.device) for s in pulsed} == {("soma_smu", 2, "u1")}

    soma = compile_protocol(load_builtin("soma-iv"), bench)
    up_down = next(s for s in soma.steps if s.action == "smu.list_sweep")
    levels = up_down.params["levels_v"]
    assert (soma.steps[0].role, soma.steps[0].channel) == ("soma_smu", 1)
    assert max(levels) == levels[len(levels) // 2] == 2.0 and levels[0] == levels[-1] == 0.0

    wv = compile_protocol(load_builtin("synapse-write-verify"), bench)
    steps = [s for s in wv.steps if s.action == "smu.write_verify"]
    assert [s.params["target_s"] for s in steps] == [5e-6, 10e-6, 15e-6]
    assert steps[0].params["gate_role"] == "array_smu" and steps[0].params["gate_channel"] == 2

    pm = compile_protocol(load_builtin("dendrite-pm-pulses"), bench)
    inhibitory = [s for s in pm.steps if s.action == "pulse.arb"]
    assert min(min(s.params["levels_v"]) for s in inhibitory) == -5.0


def test_without_bench_the_plan_says_so():
    plan = compile_protocol(load_builtin("read"))
    assert not plan.bench_checked and plan.bench is None
    assert any("not checked" in w for w in plan.warnings)
    assert any("NOT checked" in line for line in plan.summary())
    checked = compile_protocol(load_builtin("read"), default_bench())
    assert any("smu=2450" in line for line in checked.summary())


def test_summary_lines():
    lines = compile_protocol(load_builtin("dendrite-amplitude-sweep"), default_bench()).summary()
    text = "\n".join(lines)
    assert lines[0].startswith("protocol dendrite-amplitude-sweep (ED2a): ")
    assert "steps 127:" in text and "duration ~" in text and "energy bound" in text
    assert re.search(r"plan hash sha256:[0-9a-f]{64}", text)
    assert "... " in text and len(lines) < 30


# --- hash, JSON, layout ---------------------------------------------------------------------


def test_plan_hash_is_stable_and_tracks_what_runs():
    text = (REPO / "protocols" / "builtin" / "dendrite-amplitude-sweep.yaml").read_text()
    a = compile_protocol(parse_protocol(text, "a.yaml"), default_bench())
    b = compile_protocol(parse_protocol("# a comment\n\n" + text, "b.yaml"), default_bench())
    assert a.hash == b.hash == steps_hash(a.steps)
    assert len(a.hash) == 64
    assert a.steps[3].line != b.steps[3].line  # file positions are not hashed
    c = compile_protocol(parse_protocol(text.replace("count: 20", "count: 21"), "c.yaml"))
    assert c.hash != a.hash
    assert compile_protocol(parse_protocol(text, "a.yaml"), device="d9").hash != a.hash


def test_json_round_trip_and_tamper_detection():
    plan = compile_protocol(load_builtin("dendrite-inhibition"), default_bench())
    data = json.loads(plan.to_json())
    assert data["format"] == "dendrolab-plan" and data["hash"] == plan.hash
    data["steps"][2]["params"]["cycles"] = 1000
    with pytest.raises(ProtocolError, match="modified"):
        Plan.from_json(json.dumps(data))
    with pytest.raises(ProtocolError, match="not a valid plan"):
        Plan.from_json("[1, 2]")


def test_data_layout_declares_datasets():
    plan = compile_protocol(load_builtin("synapse-write-verify"), default_bench())
    layout = plan.data_layout()
    assert layout["version"] == 1
    wv = layout["steps"]["program/target_s=1e-05/write_verify"]
    assert wv["action"] == "smu.write_verify"
    assert wv["datasets"]["current_a"] == {"dtype": "float64", "units": "A", "points": 51,
                                           "exact": False}
    assert set(wv["datasets"]) == {"voltage_v", "current_a", "time_s", "pulse_v"}
    read_plan = compile_protocol(load_builtin("read"), default_bench())
    assert read_plan.data_layout()["steps"]["read"]["datasets"]["time_s"] == {
        "dtype": "float64", "units": "s", "points": 10, "exact": True}


# --- naming ---------------------------------------------------------------------------------


def test_step_names_are_paths_and_unique():
    plan = plan_of("""\
        - read: {role: smu, v: 0.2}
        - read: {role: smu, v: 0.2}
        - for: {amplitude_v: [2.0, 2.5]}
          name: sweep
          do:
            - pulses: {role: pulse, amplitude_v: "{amplitude_v}", width_s: 1e-4}
            - read: {role: smu, v: 0.2, name: "after_{amplitude_v:.1f}V"}
        - repeat: {times: 2, var: k}
          do: [{wait: 1 ms}]
    """)
    assert [s.name for s in plan.steps] == [
        "smu_setup", "read", "read#2",
        "sweep/amplitude_v=2/pulses", "sweep/amplitude_v=2/after_2.0V",
        "sweep/amplitude_v=2.5/pulses", "sweep/amplitude_v=2.5/after_2.5V",
        "k=1/wait", "k=2/wait",
    ]


def _naive_unique(taken: set[str], name: str) -> str:
    """The original definition: the first free name#2, name#3, ... (quadratic when repeated)."""
    if name in taken:
        k = 2
        while f"{name}#{k}" in taken:
            k += 1
        name = f"{name}#{k}"
    taken.add(name)
    return name


def test_step_names_match_the_first_free_suffix_rule():
    """Same names as trying #2, #3, ... afresh, also when users write suffixes themselves."""
    rng = random.Random(11)
    pool = ["r", "r#2", "r#3", "r#2#2", "w", "w#5", "a/r", "a/r#2"]
    for _ in range(200):
        names = [rng.choice(pool) for _ in range(rng.randint(1, 40))]
        fast, taken = StepNames(), set()
        assert [fast.unique(n) for n in names] == [_naive_unique(taken, n) for n in names]
    names = StepNames()
    assert [names.unique(n) for n in ("r", "r#2", "r", "r", "r#3")] == [
        "r", "r#2", "r#3", "r#4", "r#3#2"]


def test_aliased_loops_name_10k_steps_in_linear_work(monkeypatch):
    """Two nested loops of 100 identical values: 10^4 steps share one name. The names are
    unique and cost O(n) set probes (the old rule took n^2 / 2 = 5e7: 21 s for check)."""
    made: list[StepNames] = []

    class Counted(StepNames):
        def __init__(self) -> None:
            super().__init__()
            made.append(self)

    monkeypatch.setattr(plan_module, "StepNames", Counted)
    ones = ", ".join(["1"] * 100)
    plan = plan_of(f"""\
        - for: {{a: [{ones}]}}
          do:
            - for: {{b: [{ones}]}}
              do: [{{read: {{role: smu, v: 0.1}}}}]
    """)
    names = [s.name for s in plan.steps[1:]]
    assert len(names) == len(set(names)) == 10_000
    assert names[0] == "a=1/b=1/read" and names[-1] == "a=1/b=1/read#10000"
    assert names == ["a=1/b=1/read"] + [f"a=1/b=1/read#{k}" for k in range(2, 10_001)]
    assert made and made[0].probes <= 2 * len(plan.steps) + 10
    # a third aliased level (27,000 steps) stays linear too
    made.clear()
    sevens = ", ".join(["7"] * 30)
    plan = plan_of(f"""\
        - for: {{a: [{sevens}]}}
          do:
            - for: {{b: [{sevens}]}}
              do:
                - for: {{c: [{sevens}]}}
                  do: [{{wait: 1 us}}]
    """)
    assert len({s.name for s in plan.steps}) == len(plan.steps) == 27_001
    assert made[0].probes <= 2 * len(plan.steps) + 10


def test_step_memory_keeps_the_cap_cheap():
    """Peak memory per compiled step, measured on 10^4 steps: at the 10^5 cap it stays ~100 MB
    (10^6 steps used to take 1.5 GB); the hash no longer builds the whole plan's JSON."""
    assert plan_module.MAX_STEPS == 100_000
    tracemalloc.start()
    try:
        plan = plan_of("""\
            - repeat: {times: 100, var: a}
              do:
                - repeat: {times: 100, var: b}
                  do: [{read: {role: smu, v: 0.1}}]
        """)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(plan.steps) == 10_001
    assert peak / len(plan.steps) < 1_500  # bytes per step, all included
    err = limit_error("""\
        - repeat: 1000
          do: [{repeat: {times: 100, var: k}, do: [{wait: 1 us}]}]
    """)
    assert "100,001 steps, more than the cap of 100,000" in str(err)


def test_steps_hash_is_the_hash_of_the_whole_json_list():
    """Hashing step by step gives the digest of the list at once: stored plans still verify."""
    plan = compile_protocol(load_builtin("dendrite-amplitude-sweep"), default_bench())
    whole = json.dumps([s.executed() for s in plan.steps], sort_keys=True,
                       separators=(",", ":"), allow_nan=False)
    assert steps_hash(plan.steps) == hashlib.sha256(whole.encode()).hexdigest() == plan.hash
    assert steps_hash([]) == hashlib.sha256(b"[]").hexdigest()


# --- loop variables as data -----------------------------------------------------------------


def test_every_step_carries_its_loop_variables():
    plan = plan_of("""\
        - read: {role: smu, v: 0.1}
        - for: {amplitude_v: [2, 2.5]}
          name: sweep
          do:
            - repeat: {times: 2, var: n_pulses}
              do:
                - pulses: {role: pulse, amplitude_v: "{amplitude_v}", width_s: 1e-4,
                           count: "{n_pulses}"}
            - read: {role: smu, v: 0.1}
        - for: {g: ["10 uS", "1:20", on]}
          do: [{wait: 1 ms}]
        - for: {t_s: {start: 0.1, stop: 0.3, step: 0.1}}
          do: [{wait: "{t_s}"}]
    """)
    got = [(s.name, s.loop_vars) for s in plan.steps]
    assert got == [
        ("smu_setup", {}), ("read", {}),
        ("sweep/amplitude_v=2/n_pulses=1/pulses", {"amplitude_v": 2, "n_pulses": 1}),
        ("sweep/amplitude_v=2/n_pulses=2/pulses", {"amplitude_v": 2, "n_pulses": 2}),
        ("sweep/amplitude_v=2/read", {"amplitude_v": 2}),
        ("sweep/amplitude_v=2.5/n_pulses=1/pulses", {"amplitude_v": 2.5, "n_pulses": 1}),
        ("sweep/amplitude_v=2.5/n_pulses=2/pulses", {"amplitude_v": 2.5, "n_pulses": 2}),
        ("sweep/amplitude_v=2.5/read", {"amplitude_v": 2.5}),
        ("g=10_uS/wait", {"g": "10 uS"}), ("g=1:20/wait", {"g": "1:20"}),
        ("g=on/wait", {"g": "on"}),
        ("t_s=0.1/wait", {"t_s": 0.1}), ("t_s=0.2/wait", {"t_s": 0.2}),
        ("t_s=0.3/wait", {"t_s": 0.3}),
    ]
    assert [list(s.loop_vars) for s in plan.steps[2:4]] == [["amplitude_v", "n_pulses"]] * 2
    assert type(plan.steps[2].loop_vars["n_pulses"]) is int
    assert plan.steps[3].params["count"] == 2  # the value the step was compiled with


def test_loop_vars_survive_json_and_are_not_hashed():
    plan = compile_protocol(load_builtin("dendrite-amplitude-sweep"), default_bench())
    looped = [s for s in plan.steps if s.loop_vars]
    assert looped and all("amplitude_v" in s.loop_vars for s in looped)
    back = Plan.from_json(plan.to_json())
    assert back == plan and [s.loop_vars for s in back.steps] == [s.loop_vars for s in plan.steps]
    # a plan written before loop_vars existed still loads (with {}) and still verifies
    data = json.loads(plan.to_json())
    for step in data["steps"]:
        del step["loop_vars"]
    old = Plan.from_json(json.dumps(data))
    assert old.hash == plan.hash and all(s.loop_vars == {} for s in old.steps)
    relabelled = [dataclasses.replace(s, loop_vars={"x": 1}) for s in plan.steps]
    assert steps_hash(relabelled) == plan.hash
    data = json.loads(plan.to_json())
    data["steps"][3]["loop_vars"] = {"amplitude_v": [1, 2]}
    with pytest.raises(ProtocolError, match="not a valid plan JSON: loop_vars"):
        Plan.from_json(json.dumps(data))


# --- durations and energy bounds --------------------------------------------------------------


def test_duration_and_energy_of_reads_and_trains():
    plan = plan_of("""\
        - read: {role: smu, v: 0.5, count: 4}
        - pulses: {role: pulse, amplitude_v: 5, width_s: 100 us, period_s: 300 us, count: 20}
        - wait: 0.25
    """)
    setup, read, train, wait = plan.steps
    t_read = 4 * (0.01 / 50 + POINT_OVERHEAD_S)
    assert setup.duration_s == HOST_STEP_S and setup.i_max_a == 1e-4
    assert math.isclose(read.duration_s, t_read)
    assert math.isclose(read.energy_j, 0.5 * 1e-4 * t_read)
    assert math.isclose(train.duration_s, 20 * 300e-6)
    assert train.i_max_a == 1e-4  # the SMU set up on the same device d1
    assert math.isclose(train.energy_j, 1e-4 * 20 * 5 * 100e-6)
    assert wait.duration_s == 0.25 and wait.role is None and wait.energy_j == 0
    assert math.isclose(plan.duration_s, HOST_STEP_S + t_read + 6e-3 + 0.25)
    assert math.isclose(plan.energy_j, read.energy_j + train.energy_j)
    assert [s.start_s for s in plan.steps][1:] == pytest.approx(
        [HOST_STEP_S, HOST_STEP_S + t_read, HOST_STEP_S + t_read + 6e-3])
    sixty = plan_of("  - read: {role: smu, v: 0.5, count: 4}\n", line_frequency_hz=60.0)
    assert math.isclose(sixty.steps[1].duration_s, 4 * (0.01 / 60 + POINT_OVERHEAD_S))


def test_pulse_current_falls_back_to_the_protocol_limit():
    plan = plan_of("  - pulses: {role: pulse, channel: 2, amplitude_v: 5, width_s: 1e-4}\n",
                   head=HEAD.replace("pulse: pulse,", "pulse: {role: pulse, device: u1},"))
    assert plan.steps[-1].i_max_a == 1e-3


def test_sweep_durations_and_bounds_with_the_model():
    plan = plan_of("""\
        - sweep: {role: smu, kind: linear, start_v: 0, stop_v: 1, points: 11, delay_s: 1 ms}
        - smu_setup: {role: unit, compliance_a: 1e-3, nplc: 0.001}
        - sweep: {role: unit, kind: pulsed, levels_v: [1, 2, 3], width_s: 200 us,
                  period_s: 1 ms, base_v: 0.5}
    """, default_bench())
    lin, pulsed = plan.steps[1], plan.steps[3]
    per_point = 1e-3 + 0.01 / 50 + 1e-3
    assert math.isclose(lin.duration_s, 11 * per_point)
    assert math.isclose(lin.energy_j, 1e-4 * per_point * sum(k / 10 for k in range(11)))
    assert lin.v_max_v == 1 and lin.timing == "hardware"
    assert math.isclose(pulsed.duration_s, 3e-3)
    assert math.isclose(pulsed.energy_j, 1e-3 * (6 * 200e-6 + 3 * 0.5 * 800e-6))
    assert pulsed.params == {"levels_v": [1.0, 2.0, 3.0], "width_s": 200e-6, "period_s": 1e-3,
                             "base_v": 0.5}


def test_inhibitory_pulses_become_an_arbitrary_waveform():
    plan = plan_of("  - pulses: {role: pulse, amplitude_v: -5, width_s: 100 us, "
                   "period_s: 200 us, count: 20}\n", default_bench())
    arb = plan.steps[-1]
    assert arb.action == "pulse.arb" and arb.timing == "hardware"
    p = arb.params
    assert p["cycles"] == 20 and p["levels_v"][0] == 0.0 and p["levels_v"][-1] == 0.0
    assert -5.0 in p["levels_v"]
    samples = sum(p["samples"])
    assert samples >= 8
    assert math.isclose(samples / p["sample_rate_sa_s"], 200e-6)  # one period per cycle
    width = p["samples"][p["levels_v"].index(-5.0)] / p["sample_rate_sa_s"]
    assert math.isclose(width, 100e-6)
    assert math.isclose(arb.duration_s, 20 * 200e-6)
    assert math.isclose(arb.energy_j, 1e-4 * 20 * 5 * 100e-6)
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,11}", p["name"])
    wave = arb_waveform(p)
    assert wave.size == samples and wave[0] == wave[-1] == 0.0
    assert (wave == -5.0).sum() == round(100e-6 * p["sample_rate_sa_s"])


def test_spike_train_with_start_times():
    plan = plan_of("  - spike_train: {role: pulse, amplitudes_v: [5, -5, 4], "
                   "times_s: [0, 1 ms, 1.5 ms], width_s: 100 us, cycles: 2}\n", default_bench())
    p = plan.steps[-1].params
    rate = p["sample_rate_sa_s"]
    t, starts = 0.0, {}
    for level, n in zip(p["levels_v"], p["samples"], strict=True):
        if level != 0.0:
            starts[level] = t
        t += n / rate
    lead = starts[5.0]
    assert starts[-5.0] - lead == pytest.approx(1e-3)
    assert starts[4.0] - lead == pytest.approx(1.5e-3)
    assert p["cycles"] == 2


# --- limit violations -----------------------------------------------------------------------


def check_error(err: ProtocolLimitError, line: int, field: str, *messages: str) -> None:
    text = str(err)
    assert text.startswith(f"amp.yaml:{line}: {field}: "), text
    for m in messages:
        assert m in text, text


def test_voltage_above_protocol_limit_names_the_step():
    err = limit_error("""\
        - for: {amplitude_v: [5, 7]}
          do:
            - pulses: {role: pulse, amplitude_v: "{amplitude_v}", width_s: 1e-4}
    """)
    check_error(err, FIRST + 2, "steps[1].do[0].pulses.amplitude_v",
                "7 V is outside [-6, 6] V (protocol limits", "[step 2 'amplitude_v=7/pulses']")
    assert err.step == "amplitude_v=7/pulses"


def test_voltage_against_bench_user_limits_and_model_maximum():
    bench = default_bench() | {"smu": RoleInfo("2450", UserLimits(-1.0, 2.0, 1e-2))}
    err = limit_error("  - read: {role: smu, v: 3}\n", bench)
    check_error(err, FIRST, "steps[1].read.v", "outside [-1, 2] V (bench limits of role")
    head = HEAD.replace("voltage_max_v: 6", "voltage_max_v: 500")
    err = limit_error("  - read: {role: smu, v: 250}\n", default_bench(), head)
    check_error(err, FIRST, "steps[1].read.v", "(Keithley 2450 maximum)")
    err = limit_error("  - pulses: {role: pulse, amplitude_v: 12, width_s: 1e-4}\n",
                      default_bench(), head)
    assert "Keysight 33600A (2 channels) maximum into the load" in str(err)
    loaded = default_bench() | {"pulse": RoleInfo("33622A", load_ohm=50.0)}
    err = limit_error("  - pulses: {role: pulse, amplitude_v: 6, width_s: 1e-4}\n", loaded, head)
    assert "outside [-5, 5] V" in str(err)


def test_compliance_against_protocol_bench_and_model():
    err = limit_error("  - smu_setup: {role: smu, compliance_a: 2 mA}\n")
    check_error(err, FIRST, "steps[1].smu_setup.compliance_a",
                "must be <= 0.001 A (protocol limit current_max_a)")
    bench = default_bench() | {"smu": RoleInfo("2450", UserLimits(current_max_a=1e-5))}
    err = limit_error("  - wait: 1\n", bench)  # the setup in HEAD (line FIRST - 1) fails first
    check_error(err, FIRST - 1, "steps[0].smu_setup.compliance_a",
                "must be <= 1e-05 A (bench limit of role 'smu')", "[step 0 'smu_setup']")


def test_cumulative_energy_names_the_step_that_crosses():
    err = limit_error("""\
        - repeat: 100
          do:
            - pulses: {role: pulse, amplitude_v: 5, width_s: 1 ms, period_s: 2 ms, count: 1000}
    """)
    check_error(err, FIRST + 2, "steps[1].do[0].pulses",
                "cumulative energy bound reaches", "limits.energy_max_j = 0.01 J",
                "[step 20 'repeat=20/pulses']")


def test_step_energy_power_and_duration_limits():
    head = HEAD.replace("energy_max_j: 1e-2}", "energy_max_j: 1e-2, step_energy_max_j: 1e-6, "
                                               "power_max_w: 1e-4, duration_max_s: 0.5}")
    err = limit_error("  - pulses: {role: pulse, amplitude_v: 5, width_s: 1 ms, count: 10}\n",
                      head=head)
    assert "exceeds limits.step_energy_max_j" in str(err)
    err = limit_error("  - read: {role: smu, v: 2}\n", head=head)
    assert "peak power bound 0.0002 W" in str(err) and "limits.power_max_w" in str(err)
    err = limit_error("  - wait: 0.3\n  - wait: 0.3\n", head=head)
    check_error(err, FIRST + 1, "steps[2].wait", "estimated time reaches", "duration_max_s")


def test_pulse_width_below_model_minimum():
    steps = "  - pulses: {role: pulse, amplitude_v: 5, width_s: 1e-9, period_s: 1e-6}\n"
    assert plan_of(steps).steps[-1].action == "pulse.train"  # protocol limits only
    err = limit_error(steps, default_bench())
    check_error(err, FIRST, "steps[1].pulses.width_s",
                "must be >= 1.6e-08 s (Keysight 33600A (2 channels) pulse width range), "
                "got 1e-09 s", "[step 1 'pulses']")


@pytest.mark.parametrize(
    ("steps", "field", "message"),
    [
        ("pulses: {role: pulse, amplitude_v: 5, width_s: 1 us, period_s: 10 us, edge_s: 2 us}",
         "pulses.edge_s", "33600A (2 channels) edge time range"),
        ("pulses: {role: pulse, amplitude_v: 5, width_s: 20 ns, period_s: 1 us, edge_s: 20 ns}",
         "pulses.edge_s", "edges at most 0.625 x width"),
        ("pulses: {role: pulse, amplitude_v: 5, width_s: 1 us, period_s: 1.01 us}",
         "pulses.period_s", "period >= width + edge + minimum width"),
        ("pulses: {role: pulse, amplitude_v: 5, base_v: 4.999, width_s: 1 us}",
         "pulses.amplitude_v", "minimum amplitude above base_v"),
        ("pulses: {role: pulse, channel: 3, amplitude_v: 5, width_s: 1 us}",
         "pulses.channel", "has no channel 3; channels: [1, 2]"),
        ("sweep: {role: smu, kind: pulsed, levels_v: [1], width_s: 1 ms, period_s: 2 ms}",
         "sweep", "Keithley 2450 (role 'smu') has no hardware pulse mode"),
        ("sweep: {role: smu, kind: list, levels_v: [{hold: 1, points: 100001}]}",
         "sweep.levels_v", "must be <= 100000 (Keithley 2450 list points max)"),
        ("sweep: {role: smu, kind: linear, start_v: 0, stop_v: 7, points: 3}",
         "sweep.stop_v", "outside [-6, 6] V"),
        ("smu_setup: {role: smu, compliance_a: 1e-4, nplc: 0.001}",
         "smu_setup.nplc", "0.001 PLC is outside 0.01..10 PLC (Keithley 2450 NPLC range)"),
        ("smu_setup: {role: smu, compliance_a: 1e-4, aperture_s: 1 s}",
         "smu_setup.aperture_s", "50 PLC is outside 0.01..10 PLC"),
        ("smu_setup: {role: bit, compliance_a: 1e-4, aperture_s: 1 us}",
         "smu_setup.aperture_s", "Keysight B2902/B2912 aperture range"),
        ("smu_setup: {role: smu, compliance_a: 1e-4, range_v: 300}",
         "smu_setup.range_v", "Keithley 2450 maximum"),
        ("read: {role: pulse, v: 1}", "read.role", "a Keysight 33600A (2 channels) (pulse); "
                                                   "this step needs a smu"),
        ("route: {role: m, row: J, column: 1}", "route.row",
         "row 'J' is not Keithley 707B rows ABCDEFGH"),
        ("route: {role: m, row: A, column: 13}", "route.column", "must be <= 12"),
        ("route: {role: m, row: A, column: 1, slot: 7}", "route.slot", "slot 7 not in"),
        ("spike_train: {role: pulse, amplitudes_v: [5], times_s: [0, 10], width_s: 20 ns}",
         "spike_train.width_s", "waveform samples"),
        ("spike_train: {role: pulse, amplitudes_v: [5, 5], period_s: 1 us, width_s: 2 us}",
         "spike_train.period_s", "must exceed width_s"),
        ("spike_train: {role: pulse, amplitudes_v: [0, 0], period_s: 2 us, width_s: 1 us}",
         "spike_train.amplitudes_v", "nothing to play"),
        ("spike_train: {role: pulse, amplitudes_v: [1, 2], times_s: [0], width_s: 1 us}",
         "spike_train.times_s", "1 start times for 2 amplitudes"),
        ("spike_train: {role: pulse, amplitudes_v: [1], width_s: 1 us}",
         "spike_train", "give either period_s"),
    ],
)
def test_instrument_limits_by_model(steps, field, message):
    err = limit_error(f"  - {steps}\n", default_bench())
    check_error(err, FIRST, f"steps[1].{field}", message)


def test_pulsed_sweep_checks_on_the_2636b():
    setup = "  - smu_setup: {role: unit, compliance_a: 1e-3, nplc: 0.001}\n"
    err = limit_error(setup + "  - sweep: {role: unit, kind: pulsed, levels_v: [5], "
                              "width_s: 100 us, period_s: 1 ms}\n", default_bench())
    check_error(err, FIRST + 1, "steps[2].sweep.width_s", "must be >= 0.0002 s (Keithley "
                                                          "2612B/2614B/2634B/2636B pulse width")
    err = limit_error(setup + "  - sweep: {role: unit, kind: pulsed, levels_v: [5], "
                              "width_s: 1 ms, period_s: 1.5 ms}\n", default_bench())
    assert "duty cycle <= 50 %" in str(err)
    slow = "  - smu_setup: {role: unit, compliance_a: 1e-3, nplc: 1}\n"
    err = limit_error(slow + "  - sweep: {role: unit, kind: pulsed, levels_v: [5], "
                             "width_s: 1 ms, period_s: 2 ms}\n")
    assert "does not fit in 90 % of the 0.001 s pulse" in str(err)


def test_b2902_list_points():
    steps = """\
        - smu_setup: {role: bit, compliance_a: 1e-4, nplc: 0.01}
        - sweep: {role: bit, kind: list, levels_v: [{start: 0, stop: 1, points: 3000}]}
    """
    err = limit_error(steps, default_bench())
    assert "must be <= 2500 (Keysight B2902/B2912 list points max)" in str(err)


def test_sources_need_a_setup_and_roles_need_the_bench():
    err = limit_error("  - read: {role: soma, v: 1}\n")
    check_error(err, FIRST, "steps[1].read", "no smu_setup came before it")
    bench = {k: v for k, v in default_bench().items() if k != "pulse"}
    err = limit_error("  - pulses: {role: pulse, amplitude_v: 1, width_s: 1e-4}\n", bench)
    assert str(err).startswith("amp.yaml:3: instruments.pulse: the bench has no role 'pulse'")
    err = limit_error("  - read: {role: smu, v: 1}\n", {"smu": RoleInfo("HAL9000")})
    assert "which no driver table knows" in str(err)
    err = limit_error("  - pulses: {role: smu, amplitude_v: 1, width_s: 1e-4}\n")
    assert "is used as a smu" in str(err) and "and as a pulse here" in str(err)
    plan = plan_of("  - read: {role: smu, v: 0.2}\n", {"smu": RoleInfo(None)})
    assert any("no model given" in w for w in plan.warnings)


def test_write_verify_checks():
    setups = textwrap.dedent("""\
        - smu_setup: {role: bit, compliance_a: 1e-3, aperture_s: 20 us}
        - smu_setup: {role: gate, compliance_a: 1e-4, nplc: 0.01}
    """)
    wv = ("- write_verify: {role: bit, gate_role: gate, target_s: 10 uS, v_set: 1.2, "
          "v_reset: -1.2, width_s: 100 us, max_pulses: 20, gate_v: 1.6}\n")
    plan = plan_of(setups + wv, default_bench())
    step = plan.steps[-1]
    assert step.params["gate_role"] == "array_smu" and step.params["gate_channel"] == 2
    assert step.params["period_s"] == 200e-6
    t_read = 20e-6 + 1e-3
    assert math.isclose(step.duration_s, 21 * t_read + 20 * (200e-6 + 1e-3))
    assert step.records["pulse_v"] == ("V", 21)
    err = limit_error(setups + wv.replace("width_s: 100 us", "width_s: 10 us"), default_bench())
    assert "Keysight B2902/B2912 pulse width range" in str(err)
    err = limit_error(setups + wv.replace("gate_role: gate", "gate_role: bit"), default_bench())
    assert "the gate must be another SMU channel" in str(err)
    err = limit_error(wv, default_bench())
    assert "no smu_setup came before it" in str(err)


# --- size caps --------------------------------------------------------------------------------


def test_huge_loops_fail_fast_with_the_loop_named():
    """The step count is checked before the loops are expanded: no 10^12-step list is built
    (peak memory stays small; a machine-independent stand-in for "fast")."""
    tracemalloc.start()
    try:
        err = limit_error("""\
            - repeat: 1000000
              do:
                - repeat: {times: 1000000, var: k}
                  do: [{wait: 1 ms}]
        """)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 200e6   # one loop level may be listed (80 MB); 10^12 steps would be TB
    check_error(err, FIRST, "steps[1].repeat", "would have 1,000,000,000,001 steps",
                "cap of 100,000", "repeat inside a step")
    err = limit_error("  - repeat: 50\n    do: [{wait: 1 ms}]\n", max_steps=10)
    assert "more than the cap of 10" in str(err)


def test_device_override_and_bench_config_roles():
    plan = compile_protocol(load_builtin("read"), default_bench(), device="d3")
    assert plan.device == "d3" and {s.device for s in plan.steps} == {"d3"}
    with pytest.raises(ProtocolError, match="device id"):
        compile_protocol(load_builtin("read"), device="d3/../x")
    config = parse_bench_config({"instruments": {
        "smu": {"address": "USB0::1::INSTR", "model": "2450",
                "limits": {"voltage_max_v": 0.1}},
        "pulse": {"address": "TCPIP0::x::INSTR", "channel": 2, "options": {"load_ohm": 50}},
    }})
    roles = roles_from_bench_config(config)
    assert roles["smu"].model == "2450" and roles["smu"].limits.voltage_max_v == 0.1
    assert roles["pulse"].model is None and roles["pulse"].channel == 2
    assert roles["pulse"].load_ohm == 50.0
    err = limit_error("  - read: {role: smu, v: 0.2}\n", roles)
    assert "outside [-inf, 0.1] V (bench limits of role 'smu')" in str(err)


def test_matrix_route_params():
    plan = plan_of("  - route: {role: m, row: a, column: 4, slot: 2}\n  - open_all: {role: m}\n",
                   default_bench())
    route, open_all = plan.steps[1:]
    assert route.params == {"row": "A", "column": 4, "slot": 2, "exclusive": True}
    assert open_all.action == "matrix.open_all" and open_all.params == {}
    assert K707B.columns == 12


def test_the_documented_example_compiles_as_described():
    doc = (REPO / "docs" / "protocols.md").read_text()
    example = re.search(r"```yaml\n(.*?)```", doc, re.S).group(1)
    plan = compile_protocol(parse_protocol(example, "example.yaml"), default_bench())
    assert len(plan.steps) == 127 and f"{len(plan.steps)} steps" in doc
    assert f"{plan.duration_s:.2f} s" in doc and f"{plan.energy_j:.2g} J" in doc

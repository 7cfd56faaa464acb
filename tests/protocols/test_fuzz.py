"""Fuzzing protocol files: whatever the text, the answer is a Plan or a located ProtocolError.

Never another exception and never a traceback. Kept to a few seconds: small example counts, a
low step cap, and mutations of the built-ins, where the interesting structure is. For a deep run:
``DENDROLAB_FUZZ_EXAMPLES=5000 DENDROLAB_FUZZ_RANDOM=1 pytest tests/protocols/test_fuzz.py``.
"""

from __future__ import annotations

import os
import re
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dendrolab.errors import ProtocolError
from protocols.library import builtin_names, builtin_path
from protocols.plan import Plan, compile_protocol
from protocols.schema import parse_protocol
from tests.protocols.test_plan import default_bench

LOCATED = re.compile(r"^fuzz\.yaml:\d+: \S")
EXAMPLES = int(os.environ.get("DENDROLAB_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                derandomize=not os.environ.get("DENDROLAB_FUZZ_RANDOM"), database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
BUILTIN_DATA = {name: yaml.safe_load(builtin_path(name).read_text()) for name in builtin_names()}
BENCH = default_bench()


def outcome(text: str, bench: Any = None) -> Plan | ProtocolError:
    """Compile text; only a Plan or a ProtocolError that names file and line may come out."""
    try:
        plan = compile_protocol(parse_protocol(text, "fuzz.yaml"), bench, max_steps=5_000)
    except ProtocolError as exc:
        assert LOCATED.match(str(exc)), str(exc)
        assert "Traceback" not in str(exc)
        return exc
    assert plan.energy_j <= plan.limits["energy_max_j"]
    assert len(plan.steps) <= 5_000
    plan.to_json()
    plan.summary()
    return plan


# --- values that break things -----------------------------------------------------------------

NASTY = st.one_of(
    st.sampled_from([
        None, True, False, 0, -1, 1, 2, 3, 10**9, 10**30, -(10**30), 1e-300, 1e300, -1e-9,
        float("nan"), float("inf"), float("-inf"), "", "abc", "1e999", "-5 V", "100 us",
        "1 mA", "{amplitude_v}", "{x}", "{amplitude_v:.1f}", "{amplitude_v.__class__}",
        "{0}", "{", "}", "-{amplitude_v}", "nan", "inf", [], {}, [1, 2], [[1]],
        {"start": 0, "stop": 1e9, "step": 1e-9}, {"start": 0, "stop": 5, "step": 0.1},
        {"hold": 1, "points": 10**8}, {"times": 10**9, "do": [{"wait": 1}]},
        {"role": "smu"}, "smu", "pulse", "matrix", "linear", "pulsed", "list",
    ]),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)


def paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every (container path, key) in a loaded YAML tree."""
    out = []
    if isinstance(node, dict):
        for key, value in node.items():
            out.append((*prefix, key))
            out.extend(paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for k, value in enumerate(node):
            out.append((*prefix, k))
            out.extend(paths(value, (*prefix, k)))
    return out


def copy(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: copy(v) for k, v in node.items()}
    if isinstance(node, list):
        return [copy(v) for v in node]
    return node


def parent_of(tree: Any, path: tuple) -> Any:
    for key in path[:-1]:
        tree = tree[key]
    return tree


SCALE = st.sampled_from([0, -1, 0.5, 2, 10, 1e-3, 1e3, 1e9, -1e-9, 1.0001])


@st.composite
def mutated_builtin(draw: st.DrawFn) -> str:
    """A built-in with 1-3 mutations: mostly scaled numbers and odd leaves, some structure."""
    name = draw(st.sampled_from(sorted(BUILTIN_DATA)))
    tree = copy(BUILTIN_DATA[name])
    for _ in range(draw(st.integers(1, 3))):
        candidates = paths(tree)
        numeric = [p for p in candidates if _is_number(parent_of(tree, p)[p[-1]])]
        scalars = [p for p in candidates
                   if not isinstance(parent_of(tree, p)[p[-1]], (dict, list))]
        how = draw(st.sampled_from(["scale", "scale", "scale", "leaf", "leaf", "replace",
                                    "delete", "rename", "duplicate"]))
        pool = {"scale": numeric, "leaf": scalars}.get(how) or candidates
        path = draw(st.sampled_from(pool))
        parent = parent_of(tree, path)
        key = path[-1]
        if how == "scale" and _is_number(parent[key]):
            parent[key] = parent[key] * draw(SCALE)
        elif how in ("leaf", "replace", "scale"):
            parent[key] = copy(draw(NASTY))  # a copy: later mutations must not edit NASTY
        elif how == "delete":
            del parent[key]
        elif how == "rename" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["x", "kind", "role", "do", "name", "v", "s"]))] = (
                parent.pop(key))
        elif how == "duplicate" and isinstance(parent, list):
            parent.extend([parent[key]] * draw(st.integers(1, 50)))
        if not isinstance(tree, dict):
            break
    return yaml.safe_dump(tree, sort_keys=False, allow_unicode=True)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --- the properties -----------------------------------------------------------------------------


@FUZZ
@given(mutated_builtin(), st.booleans())
def test_mutated_builtins_give_a_plan_or_a_located_error(text, with_bench):
    outcome(text, BENCH if with_bench else None)


JSONISH = st.recursive(
    NASTY,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.sampled_from(["protocol", "steps", "limits", "instruments", "read", "pulses",
                             "sweep", "for", "repeat", "do", "role", "v", "kind", "levels_v",
                             "width_s", "amplitude_v", "count", "times", "wait", "x"]),
            inner, max_size=4),
    ),
    max_leaves=20,
)


@FUZZ
@given(JSONISH)
def test_random_documents(doc):
    text = yaml.safe_dump(doc, allow_unicode=True)
    outcome(text)


@st.composite
def protocol_skeleton(draw: st.DrawFn) -> str:
    """Valid header, random steps: exercises the compiler more than random documents do."""
    step_kinds = st.sampled_from(["read", "pulses", "sweep", "wait", "smu_setup", "spike_train",
                                  "route", "off", "write_verify", "repeat", "for"])
    steps = []
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(step_kinds)
        fields = draw(st.dictionaries(
            st.sampled_from(["role", "v", "count", "amplitude_v", "width_s", "period_s", "kind",
                             "levels_v", "start_v", "stop_v", "points", "s", "compliance_a",
                             "nplc", "amplitudes_v", "times_s", "row", "column", "target_s",
                             "v_set", "v_reset", "max_pulses", "gate_v", "gate_role", "name",
                             "channel", "times", "var"]),
            NASTY, max_size=6))
        if kind in ("repeat", "for"):
            steps.append({kind: fields or 2, "do": [{"wait": 0.001}]})
        else:
            steps.append({kind: fields})
    doc = {
        "protocol": "fuzz",
        "device": "d1",
        "instruments": {"smu": "smu", "pulse": "pulse", "matrix": "matrix",
                        "gate": {"role": "array_smu", "channel": 2}},
        "limits": {"voltage_max_v": 6, "current_max_a": 1e-3, "energy_max_j": 1e-2},
        "steps": [{"smu_setup": {"role": "smu", "compliance_a": 1e-4, "nplc": 0.01}}, *steps],
    }
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


@FUZZ
@given(protocol_skeleton(), st.booleans())
def test_random_steps_under_a_valid_header(text, with_bench):
    outcome(text, BENCH if with_bench else None)


@FUZZ
@given(st.sampled_from(builtin_names()), st.data())
def test_text_level_damage(name, data):
    """Delete, duplicate or insert characters in a built-in's raw text."""
    text = builtin_path(name).read_text()
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(text)))
        how = data.draw(st.sampled_from(["delete", "insert", "duplicate_line"]))
        if how == "delete":
            text = text[:at] + text[at + data.draw(st.integers(1, 8)):]
        elif how == "insert":
            text = text[:at] + data.draw(st.sampled_from(
                [":", "-", "{", "}", "[", "'", '"', "\n", "  ", "&a ", "*a", "!!", "\t", "#",
                 "{x}", "1e9", "\x00", "é"])) + text[at:]
        else:
            start = text.rfind("\n", 0, at) + 1
            end = text.find("\n", at)
            end = len(text) if end < 0 else end + 1
            text = text[:end] + text[start:end] + text[end:]
    outcome(text, BENCH)


@FUZZ
@given(st.text(max_size=300))
def test_arbitrary_text(text):
    outcome(text)


# --- huge values: every field, short one-line messages ---------------------------------------

_KEYWORD = {"sweep.linear": "sweep", "sweep.list": "sweep", "sweep.pulsed": "sweep"}
_ROLE = {"route": "m", "open_all": "m", "pulses": "pulse", "spike_train": "pulse"}
_HEAD = """\
protocol: t
instruments: {smu: smu, pulse: pulse, m: matrix}
limits: {voltage_max_v: 6, current_max_a: 1e-3, energy_max_j: 1e-2}
steps:
  - smu_setup: {role: smu, compliance_a: 1e-4}
"""


def test_every_field_echoes_a_huge_value_clipped():
    """A huge value in any field of any step: a located error of a few hundred characters."""
    from protocols.schema import STEP_FIELDS

    big = "7" * 25_000 + "x" * 25_000  # 50 kB (1 MB cases: test_schema; YAML parsing is slow)
    for keyword, specs in STEP_FIELDS.items():
        for spec in specs:
            for value in (big, "{" + big + "}", "1 " + big, big + ":20"):
                kind = f"kind: {keyword.split('.')[1]}, " if "." in keyword else ""
                role = f"role: {_ROLE.get(keyword, 'smu')}, " if spec.name != "role" else ""
                text = (_HEAD + f"  - {_KEYWORD.get(keyword, keyword)}: "
                        f"{{{kind}{role}{spec.name}: '{value}'}}\n")
                result = outcome(text, BENCH)
                assert isinstance(result, ProtocolError), (keyword, spec.name)
                message = str(result)
                assert len(message) < 400 and "\n" not in message, (keyword, spec.name, message)

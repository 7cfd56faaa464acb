"""Protocol files: YAML with line numbers, field validation, units, loops and substitution."""

from __future__ import annotations

import re
import textwrap

import pytest

from dendrolab.errors import ProtocolError
from protocols.library import builtin_names, builtin_path, list_builtins, resolve_protocol
from protocols.schema import (
    STEP_FIELDS,
    STEP_KEYWORDS,
    Loop,
    ProtocolSchemaError,
    Where,
    load_protocol,
    parse_protocol,
    to_number,
)

HEAD = """\
protocol: t
device: d1
instruments: {smu: smu, pulse: pulse, m: matrix}
limits: {voltage_max_v: 6, current_max_a: 1e-3, energy_max_j: 1e-2}
steps:
  - smu_setup: {role: smu, compliance_a: 1e-4, nplc: 0.01}
"""
FIRST_LINE = HEAD.count("\n") + 1  # line of the first step after HEAD


def steps_text(steps: str) -> str:
    """Step lines at any indentation, re-indented under ``steps:``."""
    return textwrap.indent(textwrap.dedent(steps), "  ")


def proto(steps: str, head: str = HEAD):
    return parse_protocol(head + steps_text(steps), "amp.yaml")


def error_of(text: str) -> ProtocolSchemaError:
    with pytest.raises(ProtocolError) as info:
        parse_protocol(text, "amp.yaml")
    assert isinstance(info.value, ProtocolSchemaError)
    return info.value


def step_error(steps: str) -> ProtocolSchemaError:
    return error_of(HEAD + steps_text(steps))


# --- built-ins --------------------------------------------------------------------------------


def test_every_builtin_loads_and_is_named_after_its_file():
    infos = list_builtins()
    assert len(infos) >= 12
    for info in infos:
        p = load_protocol(info.path)
        assert p.name == info.name == info.path.stem
        assert p.description and p.figure


def test_resolve_protocol_by_name_or_path_and_unknown_names(tmp_path):
    assert resolve_protocol("read").name == "read"
    assert resolve_protocol(builtin_path("iv-sweep")).name == "iv-sweep"
    with pytest.raises(ProtocolError, match=r"built-ins: .*dendrite-amplitude-sweep"):
        resolve_protocol("no-such-protocol")
    with pytest.raises(ProtocolError, match="no built-in protocol"):
        builtin_path("../plan")


# --- locations and messages -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "line", "field", "message"),
    [
        ("  - pulses: {role: pulse, amplitude_v: 5, width_s: -1e-6}", 0,
         "steps[1].pulses.width_s", "must be > 0 s, got -1e-06"),
        ("  - pulses: {role: pulse, amplitude_v: five, width_s: 1e-6}", 0,
         "steps[1].pulses.amplitude_v", "expected a number in volts, got 'five'"),
        ("  - pulses: {role: pulse, amplitude_v: .nan, width_s: 1e-6}", 0,
         "steps[1].pulses.amplitude_v", "finite"),
        ("  - pulses: {role: pulse, amplitude_v: -.inf, width_s: 1e-6}", 0,
         "steps[1].pulses.amplitude_v", "finite"),
        ("  - pulses: {role: pulse, amplitude_v: 1e999, width_s: 1e-6}", 0,
         "steps[1].pulses.amplitude_v", "finite"),
        ("  - pulses: {role: pulse, amplitude_v: [5], width_s: 1e-6}", 0,
         "steps[1].pulses.amplitude_v", "expected a number"),
        ("  - pulses: {role: pulse, amplitude_v: true, width_s: 1e-6}", 0,
         "steps[1].pulses.amplitude_v", "expected a number"),
        ("  - pulses: {role: pulse, amplitude_v: 5, width_s: 10 mV}", 0,
         "steps[1].pulses.width_s", "unit 'mV' does not fit here (expected 's')"),
        ("  - read: {role: smu, v: 0.2, count: 2.5}", 0, "steps[1].read.count",
         "expected a whole number"),
        ("  - read: {role: smu, v: 0.2, count: 0}", 0, "steps[1].read.count", "must be >= 1"),
        ("  - read: {role: smu, v: 0.2, count: 1 s}", 0, "steps[1].read.count",
         "expected no unit"),
        ("  - read: {role: smu, v: 0.2, colour: red}", 0, "steps[1].read.colour",
         "unknown field for read; known fields: role, channel, name, v, count, delay_s"),
        ("  - read: {role: smu}", 0, "steps[1].read", "missing required field 'v'"),
        ("  - read: {role: smu2, v: 0.2}", 0, "steps[1].read.role",
         "not declared under instruments; declared: smu, pulse, m"),
        ("  - read: {role: smu, v: 0.2}\n    name: x", 1, "steps[1].name",
         "unexpected key next to 'read'"),
        ("  - jump: {height: 2}", 0, "steps[1].jump", "unknown step; known steps: smu_setup"),
        ("  - {read: {role: smu, v: 1}, wait: 1}", 0, "steps[1]", "exactly one action"),
        ("  - sweep: {role: smu, kind: circular}", 0, "steps[1].sweep.kind",
         "one of linear, list, pulsed"),
        ("  - sweep: {role: smu, kind: linear, start_v: 0, stop_v: 1}", 0, "steps[1].sweep",
         "missing required field 'points'"),
        ("  - sweep: {role: smu, kind: list, levels_v: []}", 0, "steps[1].sweep.levels_v",
         "empty"),
        ("  - sweep: {role: smu, kind: list, levels_v: [{start: 0, stop: 1}]}", 0,
         "steps[1].sweep.levels_v[0]", "a level segment has keys"),
        ("  - sweep: {role: smu, kind: list, levels_v: [{start: 0, stop: 1, step: -0.1}]}", 0,
         "steps[1].sweep.levels_v[0].step", "points away from stop"),
        ("  - sweep: {role: smu, kind: list, levels_v: [{start: 0, stop: 1, step: 0}]}", 0,
         "steps[1].sweep.levels_v[0].step", "must not be 0"),
        ("  - sweep: {role: smu, kind: list, levels_v: [{start: 0, stop: 1, step: 1e-12}]}", 0,
         "steps[1].sweep.levels_v[0].step", "at most 1000000"),
        ("  - route: {role: m, row: A, column: 1, exclusive: maybe}", 0,
         "steps[1].route.exclusive", "expected true or false"),
        ("  - wait: {s: 1, s: 2}", 0, "steps[1].wait.s", "duplicate key (first given on line"),
        ("  - wait: -1", 0, "steps[1].wait.s", "must be >= 0"),
        ("  - output_off: 1", 0, "steps[1].output_off", "expected a mapping of fields"),
        ("  - 5", 0, "steps[1]", "a step is a mapping"),
        ("  - read: {role: smu, v: 0.2, name: 'a/b'}", 0, "steps[1].read.name",
         "is not a step name"),
    ],
)
def test_errors_name_file_line_and_field(steps, line, field, message):
    err = step_error(steps + "\n")
    text = str(err)
    assert text.startswith(f"amp.yaml:{FIRST_LINE + line}: {field}: "), text
    assert message in text
    assert (err.source, err.line, err.field) == ("amp.yaml", FIRST_LINE + line, field)


def test_error_lines_point_into_block_style_yaml():
    err = step_error("""\
      - for: {amplitude_v: [1, 2]}
        do:
          - pulses:
              role: pulse
              amplitude_v: "{amplitude_v}"
              width_s: 1e-6
              period_s: nonsense
    """)
    assert str(err).startswith(f"amp.yaml:{FIRST_LINE + 6}: steps[1].do[0].pulses.period_s: ")


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("", 1, "empty"),
        ("- a\n- b\n", 1, "a protocol file is a mapping"),
        ("protocol: t\n  bad: [\n", 2, "not valid YAML"),
        ("a: 1\n---\nb: 2\n", 2, "not valid YAML"),
        ("protocol: !!python/name:os.system x\n", 1, "unsupported YAML tag"),
        ("protocol: !!binary aGVsbG8=\n", 1, "unsupported YAML tag"),
        ("protocol: &a [1, *a]\n", 1, "recursive alias"),
        ("protocol: t\ncolour: blue\n", 2, "unknown key; known keys: version, protocol"),
        ("protocol: t\n", 1, "missing required key 'instruments'"),
        ("version: 2\n" + HEAD, 1, "unsupported format version 2"),
        (HEAD.replace("protocol: t", "protocol: 'a b'"), 1, "is not a protocol name"),
        (HEAD.replace("{smu: smu,", "{smu: [1],"), 3, "expected a bench role name"),
        (HEAD.replace("{smu: smu,", "{smu: {role: smu, chanel: 2},"), 3,
         "unknown key; known keys: role, channel, device"),
        (HEAD.replace("energy_max_j: 1e-2", "energy_max_j: -1"), 4, "must be > 0 J"),
        (HEAD.replace(", energy_max_j: 1e-2", ""), 4, "missing required limit 'energy_max_j'"),
        (HEAD.replace("current_max_a: 1e-3", "current_max_a: 1 mV"), 4, "unit 'mV'"),
        (HEAD.replace("limits: {", "limits: {voltage_min_v: 7, "), 4, "must be below"),
        (HEAD.replace("steps:\n  - smu_setup: {role: smu, compliance_a: 1e-4, nplc: 0.01}\n",
                      "steps: []\n"), 5, "the list of steps is empty"),
    ],
)
def test_document_level_errors(text, line, message):
    err = error_of(text)
    assert str(err).startswith(f"amp.yaml:{line}: "), str(err)
    assert message in str(err)


def test_alias_bombs_are_capped():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for k in range(1, 9):
        prev = f"*a{k - 1}"
        lines.append(f"a{k}: &a{k} [{', '.join([prev] * 10)}]")
    err = error_of("\n".join(lines) + "\n")
    assert "document too large" in str(err)


def test_huge_and_odd_scalars_are_errors_not_crashes():
    for value in ("1" + "0" * 5000, "2020-01-01", "0x1F0000000000", "1e400", "'12 parsecs'"):
        err = step_error(f"  - read: {{role: smu, v: 0.2, count: {value}}}\n")
        assert f"amp.yaml:{FIRST_LINE}: steps[1].read.count" in str(err)


def test_literal_braces_in_text_fields():
    err = step_error("  - read: {role: smu, v: 0.2, count: '{{3}}'}\n")
    assert "steps[1].read.count: expected a number, got '{3}'" in str(err)


def test_yaml_booleans_as_keys_stay_names():
    err = step_error("  - off: {role: smu}\n")  # YAML 1.1 would read the key `off` as False
    assert "steps[1].off: unknown step" in str(err)
    err = step_error("  - read: {role: smu, v: 0.2, yes: 1}\n")
    assert "steps[1].read.yes: unknown field" in str(err)


# --- YAML 1.1 quirks: numbers and booleans as a scientist reads them ---------------------------


@pytest.mark.parametrize(
    ("value", "hint"),
    [("1:20", "base-60"), ("1:20:30", "base-60"), ("-1:20.5", "base-60"), ("0x10", "decimal"),
     ("0o17", "decimal"), ("0b101", "decimal"), ("1_000", "digit separators"),
     ("on", "boolean"), ("yes", "boolean"), ("Off", "boolean"), ("'1:20'", "base-60")],
)
def test_yaml11_numbers_are_rejected_where_a_number_is_needed(value, hint):
    """``count: 1:20`` was read as 80 (YAML 1.1 sexagesimal); now it is a located error."""
    err = step_error(f"  - read: {{role: smu, v: 0.2, count: {value}}}\n")
    text = str(err)
    assert text.startswith(f"amp.yaml:{FIRST_LINE}: steps[1].read.count: expected a number"), text
    assert hint in text and "\n" not in text


def test_plain_numbers_read_as_decimal():
    steps = proto("""\
        - read: {role: smu, v: +.5, count: 017, delay_s: 1.}
        - read: {role: smu, v: -2, count: +3, delay_s: 2.5e-3}
    """).steps
    assert steps[1].fields == {"role": "smu", "v": 0.5, "count": 17, "delay_s": 1.0}
    assert steps[2].fields == {"role": "smu", "v": -2.0, "count": 3, "delay_s": 2.5e-3}
    assert type(steps[1].fields["count"]) is int


def test_yaml11_booleans_and_bases_stay_text_where_text_is_meant():
    p = parse_protocol(HEAD.replace("device: d1", "device: d1\ndescription: 1:20\nfigure: on")
                       + steps_text("""\
        - read: {role: smu, v: 0.2, name: 1:20}
        - for: {mode: [on, off, yes, 0x1F, 1_000]}
          do: [{wait: 1 ms}]
        - route: {role: m, row: A, column: 1, exclusive: false}
    """), "amp.yaml")
    assert (p.description, p.figure) == ("1:20", "on")
    assert p.steps[1].fields["name"] == "1:20"
    loop = p.steps[2]
    assert isinstance(loop, Loop) and loop.values == ("on", "off", "yes", "0x1F", "1_000")
    assert p.steps[3].fields["exclusive"] is False
    err = step_error("  - route: {role: m, row: A, column: 1, exclusive: yes}\n")
    assert "steps[1].route.exclusive: expected true or false, got 'yes'" in str(err)
    err = step_error("  - read: {role: smu, v: .inf}\n")
    assert "steps[1].read.v: must be a finite number, got inf" in str(err)


# --- long input is clipped in messages ---------------------------------------------------------


def test_identifiers_are_at_most_64_characters():
    name = "s" * 65
    err = error_of(HEAD.replace("{smu: smu,", f"{{{name}: smu,"))
    assert "at most 64" in str(err) and len(str(err)) < 300
    err = step_error(f"  - for: {{{'v' * 65}: [1]}}\n    do: [{{wait: 1}}]\n")
    assert "at most 64" in str(err)
    assert proto(f"  - for: {{{'v' * 64}: [1]}}\n    do: [{{wait: 1}}]\n")


@pytest.mark.parametrize("size", [10_000, 1_000_000])
def test_errors_echo_a_clipped_value(size):
    """A 1 MB value used to come back whole in the message (2 MB: echoed twice)."""
    big = "x" * size
    for text in (
        HEAD + f"  - read: {{role: smu, v: 0.2, name: {big}}}\n",
        HEAD + f"  - read: {{role: smu, v: '{big} V'}}\n",
        HEAD + f"  - read: {{role: smu, v: '1 {big}'}}\n",
        HEAD + f"  - read: {{role: smu, v: '{{{big}}}'}}\n",
        HEAD + f"  - read:\n      role: smu\n      ? {big}\n      : 1\n",  # explicit long keys
        HEAD + f"  - ? {big}\n    : 1\n",
        HEAD + f"  - sweep: {{role: smu, kind: {big}}}\n",
        HEAD.replace("protocol: t", f"protocol: {big}"),
        HEAD.replace("smu: smu,", f"smu: {big},"),
    ):
        message = str(error_of(text))
        assert message.startswith("amp.yaml:") and len(message) < 400, len(message)
        assert re.search(r"\((10|1,000),0\d\d chars\)", message), message


def test_long_file_names_are_clipped_in_locations():
    err = step_error("  - read: {role: smu, v: x}\n")
    where = Where("p" * 300 + ".yaml", 7, "steps[1].read.v")
    assert where.text().endswith("pp.yaml:7: steps[1].read.v") and len(where.text()) < 130
    assert "steps[1].read.v: expected a number" in str(err)


def test_protocol_paths_the_file_system_refuses_are_one_line_errors(tmp_path):
    too_long = tmp_path / ("p" * 300 + ".yaml")
    with pytest.raises(ProtocolError) as info:
        resolve_protocol(str(too_long))
    assert "File name too long" in str(info.value) and len(str(info.value)) < 300
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(ProtocolError, match="no such protocol file"):
        resolve_protocol(str(afile / "x.yaml"))
    with pytest.raises(ProtocolError, match="no built-in protocol"):
        builtin_path("r" * 300)


# --- values and units -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "unit", "value"),
    [("100 us", "s", 1e-4), ("1e-3", "", 1e-3), ("-5 V", "V", -5.0), ("100uA", "A", 1e-4),
     ("1.5 ms", "s", 1.5e-3), ("20 nS", "S", 2e-8), ("2 kV", "V", 2000.0), (" .5 ", "", 0.5),
     (3, "V", 3.0), (2.5, "s", 2.5)],
)
def test_numbers_with_units(text, unit, value):
    assert to_number(text, Where("f", 1, "x"), unit) == value


@pytest.mark.parametrize("text", ["5m", "5 ms", "nan", "inf", "1e-3 A", "--1", "1 2", ""])
def test_bad_numbers_for_volts(text):
    with pytest.raises(ProtocolSchemaError):
        to_number(text, Where("f", 1, "x"), "V")


def test_negative_amplitudes_are_allowed():
    p = proto("  - pulses: {role: pulse, amplitude_v: -5, width_s: 100 us}\n")
    action = list(p.actions())[-1]
    assert action.resolve({})["amplitude_v"] == -5.0


# --- loops and substitution -------------------------------------------------------------------


def test_for_range_is_inclusive_and_clean():
    p = proto("""\
      - for: {amplitude_v: {start: 2.0, stop: 5.0, step: 0.1}}
        do: [{wait: 1 ms}]
    """)
    loop = p.steps[1]
    assert isinstance(loop, Loop)
    assert len(loop.values) == 31
    assert loop.values[1] == 2.1 and loop.values[-1] == 5.0
    assert p.size == 32


def test_descending_ranges_points_and_units_in_loop_heads():
    p = proto("""\
      - for: {amplitude_v: {start: 5 V, stop: 2 V, step: -1 V}}
        do: [{wait: 1 ms}]
      - for: {width_s: {start: 1 us, stop: 3 us, points: 3}}
        do: [{wait: 1 ms}]
    """)
    assert p.steps[1].values == (5.0, 4.0, 3.0, 2.0)
    assert p.steps[2].values == (1e-6, 2e-6, 3e-6)


def test_repeat_forms_and_nesting_sizes():
    p = proto("""\
      - repeat: {times: 3, var: k, do: [{wait: 1 ms}, {wait: 2 ms}]}
      - repeat: 4
        do:
          - for: {x: [a, b]}
            do: [{wait: 1 ms}]
    """)
    assert p.steps[1].values == (1, 2, 3) and p.steps[1].var == "k"
    assert p.steps[2].var == "repeat"
    assert p.size == 1 + 6 + 8


@pytest.mark.parametrize(
    ("steps", "field", "message"),
    [
        ("  - repeat: 3\n", "steps[1]", "needs 'do'"),
        ("  - repeat: 0\n    do: [{wait: 1}]\n", "steps[1].repeat", "must be in 1..1000000"),
        ("  - repeat: 1e12\n    do: [{wait: 1}]\n", "steps[1].repeat", "must be in 1..1000000"),
        ("  - repeat: {times: 2, do: [{wait: 1}]}\n    do: [{wait: 1}]\n", "steps[1].repeat.do",
         "give 'do' once"),
        ("  - repeat: 2\n    do: []\n", "steps[1].do", "empty"),
        ("  - for: {a: [1], b: [2]}\n    do: [{wait: 1}]\n", "steps[1].for",
         "exactly one loop variable"),
        ("  - for: {a: []}\n    do: [{wait: 1}]\n", "steps[1].for.a", "empty"),
        ("  - for: {a: [[1]]}\n    do: [{wait: 1}]\n", "steps[1].for.a[0]",
         "numbers or text"),
        ("  - for: {a: {start: 0, stop: 1e9, step: 1e-3}}\n    do: [{wait: 1}]\n",
         "steps[1].for.a.step", "at most 1000000"),
        ("  - for: {a: [1]}\n    do:\n      - for: {a: [2]}\n        do: [{wait: 1}]\n",
         "steps[1].do[0].for", "already used by an enclosing loop"),
        ("  - for: {a: [1]}\n    do: [{wait: 1}]\n  - wait: '{a}'\n", "steps[2].wait.s",
         "unknown variable {a}"),
    ],
)
def test_loop_errors(steps, field, message):
    err = step_error(steps)
    assert re.match(rf"amp\.yaml:\d+: {re.escape(field)}: ", str(err)), str(err)
    assert message in str(err)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{a.__class__}", "only plain loop-variable names"),
        ("{a[0]}", "only plain loop-variable names"),
        ("{0}", "only plain loop-variable names"),
        ("{}", "only plain loop-variable names"),
        ("{a!r}", "conversions like !r are not allowed"),
        ("{a:{a}}", "bad format spec"),
        ("{a:>99999}", "bad format spec"),
        ("{a", "bad substitution"),
        ("{b}", "unknown variable {b}"),
        ("{__import__('os')}", "only plain loop-variable names"),
    ],
)
def test_substitution_is_a_whitelist(template, message):
    err = step_error(f"""\
      - for: {{a: [1, 2]}}
        do:
          - read: {{role: smu, v: 0.2, name: "{template}"}}
    """)
    assert f"amp.yaml:{FIRST_LINE + 2}: steps[1].do[0].read.name: " in str(err)
    assert message in str(err)


def test_substitution_fills_numbers_ints_names_and_negations():
    p = proto("""\
      - for: {amplitude_v: [2.5, 4]}
        do:
          - pulses: {role: pulse, amplitude_v: "-{amplitude_v}", width_s: "{amplitude_v} us",
                     count: "{amplitude_v:.0f}", name: "p_{amplitude_v:.1f}V"}
    """)
    action = list(p.actions())[-1]
    fields = action.resolve({"amplitude_v": 2.5})
    assert fields["amplitude_v"] == -2.5
    assert fields["width_s"] == 2.5e-6
    assert fields["count"] == 2
    assert fields["name"] == "p_2.5V"
    fields = action.resolve({"amplitude_v": 4})
    assert fields["count"] == 4


def test_substituted_values_are_checked_at_compile_time_with_their_line():
    p = proto("""\
      - for: {w: [1e-6, -1e-6]}
        do:
          - pulses: {role: pulse, amplitude_v: 5, width_s: "{w}"}
    """)
    action = list(p.actions())[-1]
    assert action.resolve({"w": 1e-6})["width_s"] == 1e-6
    with pytest.raises(ProtocolSchemaError, match=r"amp\.yaml:\d+: steps\[1\]\.do\[0\]\.pulses"
                                                  r"\.width_s: must be > 0 s"):
        action.resolve({"w": -1e-6})


def test_docs_mention_every_step_field_and_keyword():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "protocols.md").read_text()
    for keyword in STEP_KEYWORDS:
        assert f"`{keyword}`" in doc, keyword
    for fields in STEP_FIELDS.values():
        for spec in fields:
            assert spec.name in doc, spec.name
    assert len(builtin_names()) >= 12

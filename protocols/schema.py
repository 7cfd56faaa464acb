"""Protocol files: YAML read with line numbers, validated into a typed ``Protocol`` tree.

Loops stay unexpanded here and instrument limits are not checked (that is ``plan``'s job); no I/O
beyond reading the file, and never ``eval``: substitution is ``str.format`` over loop variables.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import string
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from dendrolab.errors import ProtocolError, clip, show

FORMAT_VERSION = 1
MAX_NODES = 200_000  # YAML nodes after alias expansion (guards against "billion laughs")
MAX_DEPTH = 48  # nesting depth of the YAML document (and of recursive aliases)
MAX_LIST_VALUES = 1_000_000  # values one loop head, level list or time list may produce

# ---------------------------------------------------------------------------------------------
# Errors and locations.


class LocatedProtocolError(ProtocolError):
    """A protocol error that points into the file: source, line, field and (if known) step."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        field: str | None = None,
        step: str | None = None,
    ) -> None:
        super().__init__(message)
        self.source = source
        self.line = line
        self.field = field
        self.step = step


class ProtocolSchemaError(LocatedProtocolError):
    """A protocol file is malformed; the message starts with ``file:line: field:``."""


@dataclass(frozen=True)
class Where:
    """A place in a protocol file: file name, 1-based line, field path like ``steps[2].read.v``."""

    source: str
    line: int
    path: str

    def key(self, name: str, line: int | None = None) -> Where:
        path = f"{self.path}.{name}" if self.path else name
        return Where(self.source, self.line if line is None else line, path)

    def item(self, index: int, line: int | None = None) -> Where:
        return Where(self.source, self.line if line is None else line, f"{self.path}[{index}]")

    def text(self) -> str:
        """``file:line: field`` with a very long file name or field path clipped."""
        return f"{clip(self.source, 80)}:{self.line}: {clip(self.path, 120) or '<document>'}"

    def error(self, message: str) -> ProtocolSchemaError:
        return ProtocolSchemaError(
            f"{self.text()}: {message}", source=self.source, line=self.line, field=self.path
        )


# ---------------------------------------------------------------------------------------------
# YAML with line numbers.


class YMap(dict):
    """A YAML mapping that remembers its own line and the line of each key."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.lines: dict[str, int] = {}


class YList(list):
    """A YAML sequence that remembers its own line and the line of each item."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.lines: list[int] = []


_TAG = "tag:yaml.org,2002:"
_SCALARS = {
    _TAG + "int": SafeConstructor.construct_yaml_int,
    _TAG + "float": SafeConstructor.construct_yaml_float,
    _TAG + "bool": SafeConstructor.construct_yaml_bool,
    _TAG + "null": SafeConstructor.construct_yaml_null,
}


# YAML 1.1 (PyYAML's resolver) reads "1:20" as 80 (base 60), "0x1F" as 31, "1_000" as 1000 and
# on/off/yes/no as booleans. A protocol takes numbers and booleans as YAML 1.2's core schema does
# and as a scientist reads them: decimal numbers and true/false only (017 is seventeen, not octal
# 15). Any other scalar stays the text it was written as, so a text field keeps "1:20" or "on",
# and a number field rejects it with a located error saying why (see ``to_number``).
_PLAIN_TYPED = frozenset({_TAG + "int", _TAG + "float", _TAG + "bool"})
_DECIMAL_INT = re.compile(r"[-+]?[0-9]+")
_DECIMAL_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_SPECIAL_FLOAT = {".inf": math.inf, ".Inf": math.inf, ".INF": math.inf, "+.inf": math.inf,
                  "+.Inf": math.inf, "+.INF": math.inf, "-.inf": -math.inf, "-.Inf": -math.inf,
                  "-.INF": -math.inf, ".nan": math.nan, ".NaN": math.nan, ".NAN": math.nan}
_TRUE, _FALSE = ("true", "True", "TRUE"), ("false", "False", "FALSE")


def _plain_scalar(text: str) -> Any:
    """A scalar YAML 1.1 typed as int, float or bool, read by the YAML 1.2 core rules."""
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    if _DECIMAL_INT.fullmatch(text):
        return int(text)
    if _DECIMAL_FLOAT.fullmatch(text):
        return float(text)
    if text in _SPECIAL_FLOAT:
        return _SPECIAL_FLOAT[text]  # rejected where a finite number is needed
    return text


def load_yaml(text: str, source: str) -> Any:
    """Parse one YAML document into YMap/YList/scalars; keys are their source text, always.

    Keys keep their text (``off:`` stays ``"off"``, not ``False``); duplicate keys, tags other
    than the plain scalar/sequence/mapping ones and cyclic or huge alias graphs are errors.
    """
    top = Where(source, 1, "")
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:  # the reader checks every character up front
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        char = exc.character if isinstance(exc.character, int) else ord(exc.character[:1] or " ")
        raise Where(source, line, "").error(f"not valid YAML: {exc.reason} (character "
                                            f"U+{char:04X})") from None
    try:
        node = loader.get_single_node()
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        raise Where(source, line, "").error(f"not valid YAML: {exc.reason}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = exc.problem or exc.context or "invalid YAML"
        raise Where(source, line, "").error(f"not valid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise top.error(f"not valid YAML: {clip(str(exc), 200)}") from None
    except (ValueError, RecursionError) as exc:  # e.g. unusual characters in the reader
        raise top.error(f"not valid YAML: {clip(str(exc), 200)}") from None
    finally:
        loader.dispose()
    if node is None:
        raise top.error("the file is empty; expected a protocol mapping")
    budget = [0]
    return _convert(node, loader, Where(source, node.start_mark.line + 1, ""), 0, budget, set())


def _convert(
    node: yaml.Node, loader: Any, where: Where, depth: int, budget: list[int], path: set[int]
) -> Any:
    budget[0] += 1
    if budget[0] > MAX_NODES:
        raise where.error(f"document too large (more than {MAX_NODES} nodes after aliases)")
    if depth > MAX_DEPTH or id(node) in path:
        raise where.error(f"nested too deeply (or a recursive alias); limit {MAX_DEPTH} levels")
    line = node.start_mark.line + 1
    if isinstance(node, yaml.ScalarNode):
        if node.tag in (_TAG + "str", _TAG + "timestamp"):
            return str(node.value)
        construct = _SCALARS.get(node.tag)
        if construct is None:
            raise where.error(f"unsupported YAML tag {show(node.tag)}; use plain values")
        try:
            if node.tag in _PLAIN_TYPED:
                return _plain_scalar(str(node.value))
            return construct(loader, node)
        except (ValueError, OverflowError) as exc:
            raise where.error(f"cannot read value {show(node.value)}: {exc}") from None
    path = path | {id(node)}
    if isinstance(node, yaml.SequenceNode):
        if node.tag != _TAG + "seq":
            raise where.error(f"unsupported YAML tag {show(node.tag)}; use a plain list")
        out = YList(line)
        for k, item in enumerate(node.value):
            item_line = item.start_mark.line + 1
            out.lines.append(item_line)
            out.append(_convert(item, loader, where.item(k, item_line), depth + 1, budget, path))
        return out
    if isinstance(node, yaml.MappingNode):
        if node.tag != _TAG + "map":
            raise where.error(f"unsupported YAML tag {show(node.tag)}; use a plain mapping")
        out_map = YMap(line)
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise Where(where.source, key_line, where.path).error(
                    "mapping keys must be plain names"
                )
            key = str(key_node.value)
            kw = where.key(key, key_line)
            if key in out_map:
                raise kw.error(f"duplicate key (first given on line {out_map.lines[key]})")
            out_map.lines[key] = key_line
            out_map[key] = _convert(value_node, loader, kw, depth + 1, budget, path)
        return out_map
    raise where.error("unsupported YAML node")


def _line(container: Any, key: str | int, default: int) -> int:
    lines = getattr(container, "lines", None)
    try:
        return int(lines[key]) if lines is not None else default
    except (KeyError, IndexError, TypeError):
        return default


# ---------------------------------------------------------------------------------------------
# Substitution: str.format over loop variables, on a whitelist.

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")  # names of instruments, roles, variables
# fill/align, sign, #, 0, width <= 3 digits, grouping, precision <= 2 digits, type
_SPEC = re.compile(r"(?:[^{}]?[<>=^])?[+\- ]?#?0?\d{0,3}[,_]?(?:\.\d{1,2})?[defgEFGn%s]?")


@dataclass(frozen=True)
class Subst:
    """A string with ``{var}`` / ``{var:spec}`` fields, filled from loop variables only."""

    text: str
    parts: tuple[tuple[str, str | None, str], ...]  # (literal, variable or None, spec)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for _, name, _ in self.parts if name is not None)

    def single(self) -> str | None:
        """The variable if the whole text is exactly ``{var}`` (its value is used as is)."""
        if len(self.parts) == 1 and self.parts[0][0] == "" and self.parts[0][2] == "":
            return self.parts[0][1]
        return None

    def render(self, env: Mapping[str, Any], where: Where) -> str:
        out = []
        for literal, name, spec in self.parts:
            out.append(literal)
            if name is None:
                continue
            value = env[name]
            if spec.endswith("d") and isinstance(value, float) and value.is_integer():
                value = int(value)
            try:
                out.append(format(value, spec))
            except (ValueError, TypeError, OverflowError) as exc:
                raise where.error(
                    f"cannot format {name}={show(value)} with {{{name}:{spec}}}: {exc}"
                ) from None
        return "".join(out)


def parse_template(text: str, where: Where, scope: Sequence[str]) -> str | Subst:
    """Return plain text (``{{``/``}}`` unescaped) or a ``Subst`` whose variables are in scope."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise where.error(f"bad substitution in {show(text)}: {exc} (use {{{{ for a brace)"
                          ) from None
    parts: list[tuple[str, str | None, str]] = []
    for literal, name, spec, conversion in parsed:
        if name is None:
            parts.append((literal, None, ""))
            continue
        if not _IDENT.fullmatch(name):
            raise where.error(
                f"bad substitution {{{clip(name)}}} in {show(text)}: only plain loop-variable "
                "names (at most 64 characters) are allowed (no indexing, attributes or "
                "positional fields)"
            )
        if conversion is not None:
            raise where.error(f"bad substitution in {show(text)}: conversions like !r are not "
                              "allowed")
        spec = spec or ""
        if not _SPEC.fullmatch(spec):
            raise where.error(
                f"bad format spec {show(spec)} in {show(text)}: use a simple spec like .1f, .3g "
                "or 03d"
            )
        if name not in scope:
            known = ", ".join(scope) if scope else "none here"
            raise where.error(
                f"unknown variable {{{name}}} in {show(text)}; loop variables in scope: {known}"
            )
        parts.append((literal, name, spec))
    if all(name is None for _, name, _ in parts):
        return "".join(literal for literal, _, _ in parts)
    return Subst(text, tuple(parts))


# ---------------------------------------------------------------------------------------------
# Numbers with optional SI prefix and unit.

_UNIT_NAMES = {"s": "seconds", "V": "volts", "A": "amperes", "J": "joules", "W": "watts",
               "S": "siemens", "ohm": "ohms", "": "a plain number"}
_PREFIX = {"p": "e-12", "n": "e-9", "u": "e-6", "µ": "e-6", "m": "e-3", "": "e0", "k": "e3",
           "M": "e6", "G": "e9"}
_NUMBER = re.compile(
    r"\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(?:([pnuµmkMG]?)([A-Za-z]+))?\s*"
)


def to_number(value: Any, where: Where, unit: str = "") -> float:
    """A finite float from a YAML number or a string like ``1e-3``, ``100 us``, ``-5 V``."""
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
        raise where.error(f"expected a number{_unit_hint(unit)}, got {_show(value)}")
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:
            raise where.error(f"number too large: {_show(value)}") from None
    elif isinstance(value, str):
        m = _NUMBER.fullmatch(value) if len(value) <= 100 else None
        if m is None:
            raise where.error(f"expected a number{_unit_hint(unit)}, got {_show(value)}"
                              f"{_not_a_number_hint(value)}")
        number = float(m.group(1))
        prefix, got_unit = m.group(2) or "", m.group(3)
        if got_unit is not None:
            if got_unit != unit or not unit:
                want = f"'{unit}'" if unit else "no unit"
                raise where.error(
                    f"unit {show(prefix + got_unit)} does not fit here (expected {want}), got "
                    f"{_show(value)}"
                )
            # exact decimal scaling: "100 us" is 1e-4, not 9.999999999999999e-05
            number = float(Decimal(m.group(1)) * Decimal("1" + _PREFIX[prefix]))
    else:
        raise where.error(f"expected a number{_unit_hint(unit)}, got {_show(value)}")
    if not math.isfinite(number):
        raise where.error(f"must be a finite number, got {_show(value)}")
    return number + 0.0


def to_int(value: Any, where: Where) -> int:
    """An integer from a YAML int, an integral float or a numeric string (``1e3``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    number = to_number(value, where)
    if not number.is_integer():
        raise where.error(f"expected a whole number, got {_show(value)}")
    return int(number)


def unit_of(name: str) -> str:
    """The unit a name carries in its suffix (``amplitude_v`` -> V, ``width_s`` -> s)."""
    suffix = name.rpartition("_")[2] if "_" in name else ""
    return {"v": "V", "s": "s", "a": "A", "j": "J", "w": "W"}.get(suffix, "")


def _unit_hint(unit: str) -> str:
    return f" in {_UNIT_NAMES.get(unit, unit)}" if unit else ""


def _show(value: Any) -> str:
    return show(value)


_SEXAGESIMAL = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")
_YAML11_BOOL = frozenset("yes Yes YES no No NO on On ON off Off OFF y Y n N".split())


def _not_a_number_hint(text: str) -> str:
    """Why a YAML 1.1 reader would have taken this text for a number or boolean (or '')."""
    t = text.strip()
    if _SEXAGESIMAL.fullmatch(t):
        return (" (YAML 1.1 would read it as a base-60 number; a protocol does not guess: write "
                "the decimal value, or quote it where text is meant)")
    if t in _YAML11_BOOL:
        return (" (YAML 1.1 would read it as a boolean; write a number, or true/false where a "
                "switch is meant)")
    if "_" in t and _NUMBER.fullmatch(t.replace("_", "")):
        return " (digit separators '_' are not read: write 1000000 or 1e6)"
    if re.fullmatch(r"[-+]?0[xXoObB][0-9a-fA-F_]+", t):
        return " (only decimal numbers are read: write it in decimal)"
    return ""


def fmt_num(value: float) -> str:
    """Short text for a number in a message (huge integers included)."""
    try:
        return format(value, ".6g")
    except OverflowError:
        text = str(value)
        return f"{text[:6]}...({len(text)} digits)"


# ---------------------------------------------------------------------------------------------
# Field specs (one table row per field of a step).

Bound = float | None


@dataclass(frozen=True)
class FieldSpec:
    """One field of a step: its kind, unit, default and range; ``templated`` allows ``{var}``."""

    name: str
    kind: str  # number | int | text | name | bool | role | levels | numbers
    unit: str = ""
    required: bool = False
    default: Any = None
    low: Bound = None  # inclusive unless low_open
    high: Bound = None
    low_open: bool = False
    templated: bool = True
    doc: str = ""

    def check_range(self, value: float, where: Where) -> None:
        u = f" {self.unit}" if self.unit else ""
        if self.low is not None:
            if self.low_open and not value > self.low:
                raise where.error(f"must be > {fmt_num(self.low)}{u}, got {fmt_num(value)}")
            if not self.low_open and value < self.low:
                raise where.error(f"must be >= {fmt_num(self.low)}{u}, got {fmt_num(value)}")
        if self.high is not None and value > self.high:
            raise where.error(f"must be <= {fmt_num(self.high)}{u}, got {fmt_num(value)}")


def _f(name: str, kind: str = "number", unit: str = "", **kw: Any) -> FieldSpec:
    return FieldSpec(name, kind, unit, **kw)


_ROLE = _f("role", "role", required=True, templated=False,
           doc="an instrument name declared under `instruments`")
_CHANNEL = _f("channel", "int", low=1, high=64, templated=False,
              doc="instrument channel (default: the declaration's channel)")
_NAME = _f("name", "name", doc="step name (default: the step keyword)")
_POS = {"low": 0.0, "low_open": True}
_NONNEG = {"low": 0.0}
_COMMON = (_ROLE, _CHANNEL, _NAME)
_DELAY = _f("delay_s", unit="s", default=0.0, high=1e4, **_NONNEG,
            doc="settling delay before each measurement")
_BASE = _f("base_v", unit="V", default=0.0, doc="level between pulses")

SWEEP_KINDS = ("linear", "list", "pulsed")
_COUNTER_GATE = (_f("gate_s", unit="s", required=True, **_POS, doc="counter gate time"),)
_COUNTER_INPUT = (
    _f("level_v", unit="V", required=True, doc="absolute trigger level"),
    _f("slope", "text", default="POS", doc="POS or NEG"),
    _f("impedance_ohm", unit="ohm", default=1e6, **_POS, doc="input impedance: 50 or 1e6"),
    _f("coupling", "text", default="DC", doc="AC or DC"),
    _f("range_v", unit="V", default=5.0, **_POS, doc="input range: 5 or 50"),
)

STEP_FIELDS: dict[str, tuple[FieldSpec, ...]] = {
    "smu_setup": (
        *_COMMON,
        _f("compliance_a", unit="A", required=True, **_POS, doc="current compliance"),
        _f("nplc", **_POS, doc="integration in power-line cycles (default 1)"),
        _f("aperture_s", unit="s", **_POS, doc="integration time (instead of nplc)"),
        _f("range_a", unit="A", **_POS, doc="fixed current range (default auto)"),
        _f("range_v", unit="V", **_POS, doc="fixed source range (default auto)"),
    ),
    "read": (
        *_COMMON,
        _f("v", unit="V", required=True, doc="read voltage"),
        _f("count", "int", default=1, low=1, high=MAX_LIST_VALUES,
           doc="readings taken back to back"),
        _DELAY,
    ),
    "sweep.linear": (
        *_COMMON,
        _f("kind", "text", required=True, templated=False),
        _f("start_v", unit="V", required=True),
        _f("stop_v", unit="V", required=True),
        _f("points", "int", required=True, low=2, high=MAX_LIST_VALUES),
        _DELAY,
    ),
    "sweep.list": (
        *_COMMON,
        _f("kind", "text", required=True, templated=False),
        _f("levels_v", "levels", unit="V", required=True),
        _DELAY,
    ),
    "sweep.pulsed": (
        *_COMMON,
        _f("kind", "text", required=True, templated=False),
        _f("levels_v", "levels", unit="V", required=True),
        _f("width_s", unit="s", required=True, **_POS),
        _f("period_s", unit="s", required=True, **_POS),
        _BASE,
    ),
    "pulses": (
        *_COMMON,
        _f("amplitude_v", unit="V", required=True, doc="pulse level; below base_v: inhibitory"),
        _f("width_s", unit="s", required=True, **_POS),
        _f("period_s", unit="s", **_POS, doc="default 2 x width_s"),
        _f("count", "int", default=1, low=1, high=1e9),
        _BASE,
        _f("edge_s", unit="s", **_POS, doc="rise/fall time (default: the model's minimum)"),
    ),
    "spike_train": (
        *_COMMON,
        _f("amplitudes_v", "levels", unit="V", required=True, doc="one level per pulse"),
        _f("width_s", unit="s", required=True, **_POS),
        _f("period_s", unit="s", **_POS, doc="uniform spacing (or times_s)"),
        _f("times_s", "numbers", unit="s", doc="pulse start times (or period_s)"),
        _BASE,
        _f("cycles", "int", default=1, low=1, high=1e9, doc="times the whole train is played"),
    ),
    "wait": (_NAME, _f("s", unit="s", required=True, **_NONNEG)),
    "output_off": _COMMON,
    "route": (
        _ROLE,
        _NAME,
        _f("row", "text", required=True),
        _f("column", "int", required=True, low=1, high=10_000),
        _f("slot", "int", default=1, low=1, high=1_000),
        _f("exclusive", "bool", default=True, doc="open every other crosspoint first"),
    ),
    "open_all": (_ROLE, _NAME),
    "count_start": (
        *_COMMON,
        *_COUNTER_GATE,
        *_COUNTER_INPUT,
    ),
    "count_fetch": _COMMON,
    "frequency": (
        *_COMMON,
        *_COUNTER_GATE,
        *_COUNTER_INPUT,
        _f("hold_role", "role", templated=False,
           doc="an SMU that holds the input at hold_v during the measurement"),
        _f("hold_channel", "int", low=1, high=64, templated=False,
           doc="default: hold_role's declared channel"),
        _f("hold_v", unit="V", doc="input level held by hold_role (needs hold_role)"),
        _f("settle_s", unit="s", default=0.0, high=1e4, **_NONNEG,
           doc="hold time before the gate opens"),
    ),
    "write_verify": (
        *_COMMON,
        _f("gate_role", "role", templated=False, doc="default: role"),
        _f("gate_channel", "int", low=1, high=64, templated=False,
           doc="default: gate_role's declared channel"),
        _f("target_s", unit="S", required=True, **_POS),
        _f("tol_rel", default=0.05, low=0.0, low_open=True, high=0.5),
        _f("v_set", unit="V", required=True, **_POS),
        _f("v_reset", unit="V", required=True, high=0.0),
        _f("width_s", unit="s", required=True, **_POS),
        _f("period_s", unit="s", **_POS, doc="default 2 x width_s"),
        _f("v_read", unit="V", default=0.2),
        _f("max_pulses", "int", required=True, low=1, high=10_000),
        _f("gate_v", unit="V", required=True),
    ),
}
STEP_KEYWORDS = ("smu_setup", "read", "sweep", "pulses", "spike_train", "wait", "output_off",
                 "route", "open_all", "write_verify", "count_start", "count_fetch", "frequency")
LOOP_KEYWORDS = ("for", "repeat")

TOP_FIELDS = ("version", "protocol", "description", "figure", "device", "instruments", "limits",
              "steps")
LIMIT_FIELDS: tuple[FieldSpec, ...] = (
    _f("voltage_max_v", unit="V", required=True, **_POS, templated=False),
    _f("voltage_min_v", unit="V", templated=False, doc="default -voltage_max_v"),
    _f("current_max_a", unit="A", required=True, **_POS, templated=False),
    _f("energy_max_j", unit="J", required=True, **_POS, templated=False),
    _f("step_energy_max_j", unit="J", **_POS, templated=False),
    _f("power_max_w", unit="W", **_POS, templated=False),
    _f("duration_max_s", unit="s", **_POS, templated=False),
)
_INSTRUMENT_KEYS = ("role", "channel", "device")
_NAME_TEXT = re.compile(r"[A-Za-z0-9_.:=+\-#]{1,120}")
DEVICE_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
_PROTOCOL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")


# ---------------------------------------------------------------------------------------------
# Level lists (numbers, ranges and holds), resolved lazily because fields may be templated.


@dataclass(frozen=True)
class Segment:
    """One item of a level list: a number, ``{start, stop, step|points}`` or ``{hold, points}``."""

    where: Where
    value: Any = None  # a number, or a Subst, for a single level
    fields: Mapping[str, Any] = field(default_factory=dict)  # range/hold fields
    wheres: Mapping[str, Where] = field(default_factory=dict)

    def _num(self, key: str, env: Mapping[str, Any], unit: str) -> float:
        return resolve_number(self.fields[key], self.wheres[key], env, unit)

    def _count(self, env: Mapping[str, Any], unit: str) -> int:
        if self.value is not None:
            return 1
        w = self.wheres
        if "hold" in self.fields or "points" in self.fields:
            n = resolve_int(self.fields["points"], w["points"], env)
            low = 2 if "start" in self.fields else 1
            if not low <= n <= MAX_LIST_VALUES:
                raise w["points"].error(f"must be in {low}..{MAX_LIST_VALUES}, got {n}")
            return n
        start, stop = self._num("start", env, unit), self._num("stop", env, unit)
        step = self._num("step", env, unit)
        return range_count(start, stop, step, w["step"])

    def values(self, env: Mapping[str, Any], unit: str) -> list[float]:
        n = self._count(env, unit)
        if self.value is not None:
            return [resolve_number(self.value, self.where, env, unit)]
        if "hold" in self.fields:
            return [self._num("hold", env, unit)] * n
        start, stop = self._num("start", env, unit), self._num("stop", env, unit)
        if "points" in self.fields:
            return [_clean(start + (stop - start) * k / (n - 1)) for k in range(n)]
        step = self._num("step", env, unit)
        return [_clean(start + k * step) for k in range(n)]


def _clean(x: float) -> float:
    """Round away float noise from ``start + k * step`` (2.1000000000000005 -> 2.1)."""
    return float(f"{x:.12g}") + 0.0


def range_count(start: float, stop: float, step: float, where: Where) -> int:
    """Number of values of an inclusive range; the step's sign must point from start to stop."""
    if step == 0:
        raise where.error("step must not be 0")
    if start == stop:
        return 1
    if (stop - start) * step < 0:
        raise where.error(
            f"step {fmt_num(step)} points away from stop (start {fmt_num(start)}, "
            f"stop {fmt_num(stop)}); flip its sign"
        )
    span = (stop - start) / step
    if span > MAX_LIST_VALUES:
        raise where.error(f"range has {span:.3g} values; at most {MAX_LIST_VALUES}")
    return math.floor(span * (1 + 1e-9) + 1e-9) + 1


_SEGMENT_SHAPES = (("start", "stop", "step"), ("start", "stop", "points"), ("hold", "points"))


def _parse_segments(raw: Any, where: Where, scope: Sequence[str], unit: str) -> tuple[Segment, ...]:
    items = raw if isinstance(raw, list) else [raw] if isinstance(raw, dict) else None
    if items is None:
        raise where.error(
            f"expected a list of levels (numbers, {{start, stop, step}}, {{hold, points}}), "
            f"got {_show(raw)}"
        )
    if not items:
        raise where.error("the list is empty")
    out = []
    for k, item in enumerate(items):
        w = where.item(k, _line(raw, k, where.line)) if isinstance(raw, list) else where
        if isinstance(item, dict):
            keys = set(item)
            shape = next((s for s in _SEGMENT_SHAPES if set(s) == keys), None)
            if shape is None:
                raise w.error(
                    f"a level segment has keys {{start, stop, step}}, {{start, stop, points}} or "
                    f"{{hold, points}}; got {sorted(keys)}"
                )
            wheres = {key: w.key(key, _line(item, key, w.line)) for key in item}
            values = {
                key: _literal_or_template(item[key], wheres[key], scope, "int" if key == "points"
                                          else "number", unit if key != "points" else "")
                for key in item
            }
            seg = Segment(w, fields=values, wheres=wheres)
        else:
            seg = Segment(w, value=_literal_or_template(item, w, scope, "number", unit))
        if not _has_template(seg):
            seg._count({}, unit)  # validate literal ranges now, with their line
        out.append(seg)
    return tuple(out)


def _has_template(seg: Segment) -> bool:
    values = [seg.value, *seg.fields.values()]
    return any(isinstance(v, Subst) for v in values)


def _literal_or_template(
    value: Any, where: Where, scope: Sequence[str], kind: str, unit: str
) -> Any:
    if isinstance(value, str):
        parsed = parse_template(value, where, scope)
        if isinstance(parsed, Subst):
            return parsed
        value = parsed
    if kind == "int":
        return to_int(value, where)
    return to_number(value, where, unit)


def resolve_number(value: Any, where: Where, env: Mapping[str, Any], unit: str = "") -> float:
    if isinstance(value, Subst):
        single = value.single()
        value = env[single] if single is not None else value.render(env, where)
    return to_number(value, where, unit)


def resolve_int(value: Any, where: Where, env: Mapping[str, Any]) -> int:
    if isinstance(value, Subst):
        single = value.single()
        value = env[single] if single is not None else value.render(env, where)
    return to_int(value, where)


# ---------------------------------------------------------------------------------------------
# The validated protocol tree.


@dataclass(frozen=True)
class Instrument:
    """A name steps use (``role:``), bound to a bench role, a channel and the device it drives."""

    name: str
    role: str
    channel: int | None
    device: str | None
    where: Where


@dataclass(frozen=True)
class Limits:
    """Protocol limits; the plan must stay inside them whatever the bench allows."""

    voltage_max_v: float
    voltage_min_v: float
    current_max_a: float
    energy_max_j: float
    step_energy_max_j: float | None
    power_max_w: float | None
    duration_max_s: float | None
    wheres: Mapping[str, Where]

    def as_dict(self) -> dict[str, float | None]:
        return {f.name: getattr(self, f.name) for f in LIMIT_FIELDS}


@dataclass(frozen=True)
class Action:
    """One step of the file: a keyword, its raw (maybe templated) fields and their locations."""

    keyword: str  # e.g. "read", "sweep.pulsed"
    fields: Mapping[str, Any]
    wheres: Mapping[str, Where]
    where: Where

    def resolve(self, env: Mapping[str, Any]) -> dict[str, Any]:
        """Every field typed and range-checked for these loop values (defaults filled in)."""
        out: dict[str, Any] = {}
        for spec in STEP_FIELDS[self.keyword]:
            if spec.name not in self.fields:
                out[spec.name] = spec.default
                continue
            out[spec.name] = _resolve_field(spec, self.fields[spec.name],
                                            self.wheres[spec.name], env)
        return out


@dataclass(frozen=True)
class Loop:
    """``for`` (one variable over values) or ``repeat`` (a counter 1..times) around a body."""

    var: str
    values: tuple[Any, ...]
    name: str | None
    body: tuple[Node, ...]
    where: Where

    @property
    def size(self) -> int:
        return len(self.values) * sum(node_size(n) for n in self.body)


Node = Action | Loop


def node_size(node: Node) -> int:
    """How many plan steps a node expands to."""
    return node.size if isinstance(node, Loop) else 1


@dataclass(frozen=True)
class Protocol:
    """A validated protocol file (loops not yet expanded; see ``plan.compile_protocol``)."""

    name: str
    description: str
    figure: str
    device: str | None
    instruments: Mapping[str, Instrument]
    limits: Limits
    steps: tuple[Node, ...]
    source: str
    text_sha256: str
    where: Where

    @property
    def size(self) -> int:
        return sum(node_size(n) for n in self.steps)

    def actions(self) -> Iterator[Action]:
        """Every action node once (loop bodies not repeated)."""
        stack = list(reversed(self.steps))
        while stack:
            node = stack.pop()
            if isinstance(node, Loop):
                stack.extend(reversed(node.body))
            else:
                yield node


# ---------------------------------------------------------------------------------------------
# Validation.


def load_protocol(path: str | os.PathLike[str]) -> Protocol:
    """Read and validate a protocol file; every error names file, line and field."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or clip(str(exc), 200)
        raise ProtocolSchemaError(f"{clip(str(p), 120)}: cannot read protocol file: {reason}",
                                  source=str(p)) from None
    return parse_protocol(text, source=p.name)


def parse_protocol(text: str, source: str = "<protocol>") -> Protocol:
    """Validate protocol text (``source`` is the name used in error messages)."""
    data = load_yaml(text, source)
    top = Where(source, getattr(data, "line", 1), "")
    if not isinstance(data, dict):
        raise top.error(f"a protocol file is a mapping with keys {list(TOP_FIELDS)}, "
                        f"got {_show(data)}")
    _unknown_keys(data, TOP_FIELDS, top)
    w = {key: top.key(key, _line(data, key, top.line)) for key in data}
    for key in ("protocol", "instruments", "limits", "steps"):
        if key not in data:
            raise top.error(f"missing required key {key!r}")
    version = to_int(data.get("version", FORMAT_VERSION), w.get("version", top))
    if version != FORMAT_VERSION:
        raise w["version"].error(f"unsupported format version {version}; this is version "
                                 f"{FORMAT_VERSION}")
    name = _text(data["protocol"], w["protocol"], _PROTOCOL_NAME, "a protocol name")
    description = _plain_text(data.get("description", ""), w.get("description", top))
    figure = _plain_text(data.get("figure", ""), w.get("figure", top))
    device = data.get("device")
    if device is not None:
        device = _text(device, w["device"], DEVICE_ID, "a device id")
    instruments = _parse_instruments(data["instruments"], w["instruments"])
    limits = _parse_limits(data["limits"], w["limits"])
    steps = _parse_steps(data["steps"], w["steps"], (), instruments)
    return Protocol(
        name=name,
        description=description,
        figure=figure,
        device=device,
        instruments=instruments,
        limits=limits,
        steps=steps,
        source=source,
        text_sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        where=top,
    )


def _unknown_keys(data: dict, known: Sequence[str], where: Where) -> None:
    for key in data:
        if key not in known:
            raise where.key(key, _line(data, key, where.line)).error(
                f"unknown key; known keys: {', '.join(known)}"
            )


def _plain_text(value: Any, where: Where) -> str:
    if value is None:
        return ""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise where.error(f"expected text, got {_show(value)}")
    return str(value)


def _text(value: Any, where: Where, pattern: re.Pattern[str], what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise where.error(f"expected {what}, got {_show(value)}")
    text = str(value)
    if not pattern.fullmatch(text):
        raise where.error(f"{_show(text)} is not {what} (allowed: {pattern.pattern})")
    return text


def _parse_instruments(raw: Any, where: Where) -> dict[str, Instrument]:
    if not isinstance(raw, dict) or not raw:
        raise where.error("expected a mapping of names to bench roles, e.g. {smu: smu, pulse: "
                          "{role: pulse, channel: 2}}")
    out = {}
    for name, entry in raw.items():
        w = where.key(name, _line(raw, name, where.line))
        if not _IDENT.fullmatch(name):
            raise w.error("instrument names are identifiers (letters, digits, _; at most 64)")
        if isinstance(entry, str):
            entry_map: dict[str, Any] = {"role": entry}
            wheres = {"role": w}
        elif isinstance(entry, dict):
            _unknown_keys(entry, _INSTRUMENT_KEYS, w)
            entry_map = entry
            wheres = {k: w.key(k, _line(entry, k, w.line)) for k in entry}
            if "role" not in entry:
                raise w.error("missing 'role' (the bench role name)")
        else:
            raise w.error(f"expected a bench role name or {{role, channel, device}}, got "
                          f"{_show(entry)}")
        role = _text(entry_map["role"], wheres["role"], _IDENT, "a bench role name")
        channel = None
        if entry_map.get("channel") is not None:
            channel = to_int(entry_map["channel"], wheres["channel"])
            if not 1 <= channel <= 64:
                raise wheres["channel"].error(f"must be in 1..64, got {channel}")
        device = entry_map.get("device")
        if device is not None:
            device = _text(device, wheres["device"], DEVICE_ID, "a device id")
        out[name] = Instrument(name, role, channel, device, w)
    return out


def _parse_limits(raw: Any, where: Where) -> Limits:
    if not isinstance(raw, dict):
        raise where.error("expected a mapping, e.g. {voltage_max_v: 6, current_max_a: 1e-3, "
                          "energy_max_j: 1e-2}")
    known = [s.name for s in LIMIT_FIELDS]
    _unknown_keys(raw, known, where)
    wheres = {s.name: where.key(s.name, _line(raw, s.name, where.line)) for s in LIMIT_FIELDS}
    values: dict[str, float | None] = {}
    for spec in LIMIT_FIELDS:
        if spec.name not in raw:
            if spec.required:
                raise where.error(f"missing required limit {spec.name!r}")
            values[spec.name] = None
            continue
        number = to_number(raw[spec.name], wheres[spec.name], spec.unit)
        spec.check_range(number, wheres[spec.name])
        values[spec.name] = number
    v_max = values["voltage_max_v"]
    assert v_max is not None
    v_min = values["voltage_min_v"]
    if v_min is None:
        v_min = -v_max
    elif v_min >= v_max:
        raise wheres["voltage_min_v"].error(
            f"must be below voltage_max_v={fmt_num(v_max)}, got {fmt_num(v_min)}"
        )
    return Limits(
        voltage_max_v=v_max,
        voltage_min_v=v_min,
        current_max_a=values["current_max_a"] or 0.0,
        energy_max_j=values["energy_max_j"] or 0.0,
        step_energy_max_j=values["step_energy_max_j"],
        power_max_w=values["power_max_w"],
        duration_max_s=values["duration_max_s"],
        wheres=wheres,
    )


def _parse_steps(
    raw: Any, where: Where, scope: tuple[str, ...], instruments: Mapping[str, Instrument]
) -> tuple[Node, ...]:
    if not isinstance(raw, list):
        raise where.error(f"expected a list of steps, got {_show(raw)}")
    if not raw:
        raise where.error("the list of steps is empty")
    out: list[Node] = []
    for k, item in enumerate(raw):
        w = where.item(k, _line(raw, k, where.line))
        out.append(_parse_step(item, w, scope, instruments))
    return tuple(out)


def _parse_step(
    item: Any, where: Where, scope: tuple[str, ...], instruments: Mapping[str, Instrument]
) -> Node:
    known = (*STEP_KEYWORDS, *LOOP_KEYWORDS)
    if not isinstance(item, dict) or not item:
        raise where.error(f"a step is a mapping with one of: {', '.join(known)}; got "
                          f"{_show(item)}")
    heads = [key for key in item if key in known]
    if len(heads) != 1:
        if not heads:
            first = next(iter(item))
            raise where.key(first, _line(item, first, where.line)).error(
                f"unknown step; known steps: {', '.join(known)}"
            )
        raise where.error(f"a step has exactly one action; got {heads}")
    head = heads[0]
    if head in LOOP_KEYWORDS:
        return _parse_loop(item, head, where, scope, instruments)
    for key in item:
        if key != head:
            raise where.key(key, _line(item, key, where.line)).error(
                f"unexpected key next to {head!r}; fields go inside it, e.g. "
                f"{head}: {{{key}: ...}}"
            )
    w = where.key(head, _line(item, head, where.line))
    body = item[head]
    if head == "wait" and not isinstance(body, dict):
        body = {"s": body}  # shorthand: "- wait: 0.02"
        lines = {"s": w.line}
    else:
        lines = getattr(body, "lines", {})
    if not isinstance(body, dict):
        raise w.error(f"expected a mapping of fields, got {_show(body)}")
    keyword = head
    if head == "sweep":
        kind = body.get("kind")
        if kind not in SWEEP_KINDS:
            kw = w.key("kind", lines.get("kind", w.line))
            raise kw.error(f"sweep kind must be one of {', '.join(SWEEP_KINDS)}; got "
                           f"{_show(kind)}")
        keyword = f"sweep.{kind}"
    specs = {s.name: s for s in STEP_FIELDS[keyword]}
    fields: dict[str, Any] = {}
    wheres: dict[str, Where] = {}
    for key, value in body.items():
        fw = w.key(key, lines.get(key, w.line))
        spec = specs.get(key)
        if spec is None:
            raise fw.error(f"unknown field for {head}; known fields: {', '.join(specs)}")
        wheres[key] = fw
        fields[key] = _parse_field(spec, value, fw, scope, instruments)
    for spec in specs.values():
        if spec.required and spec.name not in fields:
            raise w.error(f"missing required field {spec.name!r}; {head} takes "
                          f"{', '.join(specs)}")
    return Action(keyword, fields, wheres, w)


def _parse_field(
    spec: FieldSpec, value: Any, where: Where, scope: Sequence[str],
    instruments: Mapping[str, Instrument],
) -> Any:
    """Check a literal now; keep a template (``Subst``) for the compiler to fill in."""
    if spec.kind == "role":
        if not isinstance(value, str) or value not in instruments:
            raise where.error(f"{_show(value)} is not declared under instruments; declared: "
                              f"{', '.join(instruments)}")
        return value
    if spec.kind == "levels":
        return _parse_segments(value, where, scope, spec.unit)
    if spec.kind == "numbers":
        if not isinstance(value, list) or not value:
            raise where.error(f"expected a non-empty list of numbers, got {_show(value)}")
        if len(value) > MAX_LIST_VALUES:
            raise where.error(f"at most {MAX_LIST_VALUES} values")
        return tuple(
            _literal_or_template(v, where.item(k, _line(value, k, where.line)), scope,
                                 "number", spec.unit)
            for k, v in enumerate(value)
        )
    if isinstance(value, str) and spec.templated:
        parsed = parse_template(value, where, scope)
        if isinstance(parsed, Subst):
            return parsed
        value = parsed
    return _resolve_field(spec, value, where, {})


def _resolve_field(spec: FieldSpec, value: Any, where: Where, env: Mapping[str, Any]) -> Any:
    if spec.kind == "role":
        return value
    if spec.kind == "levels":
        total = 0
        levels: list[float] = []
        for seg in value:
            total += seg._count(env, spec.unit)
            if total > MAX_LIST_VALUES:
                raise where.error(f"more than {MAX_LIST_VALUES} levels")
        for seg in value:
            levels.extend(seg.values(env, spec.unit))
        return levels
    if spec.kind == "numbers":
        return [resolve_number(v, where.item(k), env, spec.unit) for k, v in enumerate(value)]
    if isinstance(value, Subst):
        single = value.single()
        value = env[single] if single is not None else value.render(env, where)
    if spec.kind == "number":
        number = to_number(value, where, spec.unit)
        spec.check_range(number, where)
        return number
    if spec.kind == "int":
        integer = to_int(value, where)
        spec.check_range(integer, where)
        return integer
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise where.error(f"expected true or false, got {_show(value)}")
        return value
    if spec.kind == "name":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return _text(value, where, _NAME_TEXT, "a step name")
    if spec.kind == "text":
        return _plain_text(value, where)
    raise AssertionError(f"unknown field kind {spec.kind}")


def _parse_loop(
    item: dict, head: str, where: Where, scope: tuple[str, ...],
    instruments: Mapping[str, Instrument],
) -> Loop:
    _unknown_keys(item, (head, "do", "name"), where)
    hw = where.key(head, _line(item, head, where.line))
    spec = item[head]
    body_raw = item.get("do")
    body_where = where.key("do", _line(item, "do", where.line))
    if isinstance(spec, dict) and "do" in spec:
        if body_raw is not None:
            raise hw.key("do", _line(spec, "do", hw.line)).error(
                "give 'do' once: inside the loop head or next to it"
            )
        body_raw = spec["do"]
        body_where = hw.key("do", _line(spec, "do", hw.line))
        spec = YMapView(spec, exclude="do")
    if body_raw is None:
        raise where.error(f"{head} needs 'do': the list of steps to repeat")
    name = None
    if "name" in item:
        name = _text(item["name"], where.key("name", _line(item, "name", where.line)),
                     _NAME_TEXT, "a loop name")
    if head == "repeat":
        var, values = _parse_repeat(spec, hw)
    else:
        var, values = _parse_for(spec, hw)
    if var in scope:
        raise hw.error(f"loop variable {var!r} is already used by an enclosing loop")
    body = _parse_steps(body_raw, body_where, (*scope, var), instruments)
    return Loop(var, values, name, body, hw)


class YMapView(YMap):
    """A copy of a YMap without some keys (keeps the line information)."""

    def __init__(self, src: dict, exclude: str) -> None:
        super().__init__(getattr(src, "line", 1))
        for key, value in src.items():
            if key != exclude:
                self[key] = value
                self.lines[key] = _line(src, key, self.line)


def _parse_repeat(spec: Any, where: Where) -> tuple[str, tuple[Any, ...]]:
    var = "repeat"
    if isinstance(spec, dict):
        _unknown_keys(spec, ("times", "var"), where)
        if "times" not in spec:
            raise where.error("missing 'times'")
        if "var" in spec:
            var = _text(spec["var"], where.key("var", _line(spec, "var", where.line)), _IDENT,
                        "a variable name")
        tw = where.key("times", _line(spec, "times", where.line))
        times = to_int(spec["times"], tw)
    else:
        tw = where
        times = to_int(spec, where)
    if not 1 <= times <= MAX_LIST_VALUES:
        raise tw.error(f"must be in 1..{MAX_LIST_VALUES}, got {times}")
    return var, tuple(range(1, times + 1))


def _parse_for(spec: Any, where: Where) -> tuple[str, tuple[Any, ...]]:
    if not isinstance(spec, dict) or len(spec) != 1:
        raise where.error("expected exactly one loop variable, e.g. {amplitude_v: [1, 2]} or "
                          "{amplitude_v: {start: 2, stop: 5, step: 0.1}}")
    var, raw = next(iter(spec.items()))
    vw = where.key(var, _line(spec, var, where.line))
    if not _IDENT.fullmatch(var) or var == "do":
        raise vw.error("loop variables are identifiers (letters, digits, _; at most 64)")
    if isinstance(raw, list):
        if not raw:
            raise vw.error("the list of values is empty")
        values = []
        for k, v in enumerate(raw):
            iw = vw.item(k, _line(raw, k, vw.line))
            if isinstance(v, bool) or not isinstance(v, (int, float, str)):
                raise iw.error(f"loop values are numbers or text, got {_show(v)}")
            if isinstance(v, float) and not math.isfinite(v):
                raise iw.error(f"must be a finite number, got {_show(v)}")
            if isinstance(v, int) and abs(v) > 2**53:
                raise iw.error(f"number too large: {_show(v)}")
            m = _NUMBER.fullmatch(v) if isinstance(v, str) else None
            if m is not None and m.group(3) is None:
                v = to_number(v, iw)  # "10e-6" is text in YAML 1.1; "10 uS" stays text so
                # the field it is substituted into checks its unit
            values.append(v)
        return var, tuple(values)
    if isinstance(raw, dict):
        unit = unit_of(var)
        segs = _parse_segments(raw, vw, (), unit)
        if "hold" in segs[0].fields:
            raise vw.error("a loop range is {start, stop, step} or {start, stop, points}")
        return var, tuple(segs[0].values({}, unit))
    raise vw.error(f"expected a list of values or {{start, stop, step}}, got {_show(raw)}")

"""SCPI engine for simulated instruments: header templates, program messages, parameters, errors.

It only parses and dispatches: no instrument physics here, and received text is never evaluated.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import numpy as np

__all__ = [
    "STANDARD_ERRORS",
    "Command",
    "ScpiError",
    "ScpiInstrument",
    "compile_template",
    "definite_block",
    "float_block",
    "parse_block",
    "parse_bool",
    "parse_channel_list",
    "parse_choice",
    "parse_number",
    "parse_string",
    "scpi",
    "split_arguments",
    "split_message",
]

#: SCPI-99 / IEEE 488.2 standard error texts (code -> message).
STANDARD_ERRORS: dict[int, str] = {
    0: "No error",
    -100: "Command error",
    -101: "Invalid character",
    -102: "Syntax error",
    -103: "Invalid separator",
    -104: "Data type error",
    -108: "Parameter not allowed",
    -109: "Missing parameter",
    -110: "Command header error",
    -113: "Undefined header",
    -114: "Header suffix out of range",
    -120: "Numeric data error",
    -121: "Invalid character in number",
    -131: "Invalid suffix",
    -138: "Suffix not allowed",
    -141: "Invalid character data",
    -150: "String data error",
    -151: "Invalid string data",
    -160: "Block data error",
    -161: "Invalid block data",
    -200: "Execution error",
    -220: "Parameter error",
    -221: "Settings conflict",
    -222: "Data out of range",
    -223: "Too much data",
    -224: "Illegal parameter value",
    -230: "Data corrupt or stale",
    -240: "Hardware error",
    -300: "Device-specific error",
    -350: "Queue overflow",
    -400: "Query error",
    -410: "Query INTERRUPTED",
    -420: "Query UNTERMINATED",
    -430: "Query DEADLOCKED",
}

# Standard Event Status Register bits (IEEE 488.2 §11.5.1).
ESR_OPC, ESR_QYE, ESR_DDE, ESR_EXE, ESR_CME = 0x01, 0x04, 0x08, 0x10, 0x20


class ScpiError(Exception):
    """An instrument error: pushed on the error queue, the command produces no reply."""

    def __init__(self, code: int, message: str | None = None) -> None:
        self.code = code
        self.message = message if message is not None else STANDARD_ERRORS.get(code, "Error")
        super().__init__(f"{code},{self.message}")


def esr_bit(code: int) -> int:
    """The Standard Event Status bit an error code sets (CME/EXE/DDE/QYE), 0 for none."""
    if -199 <= code <= -100:
        return ESR_CME
    if -299 <= code <= -200:
        return ESR_EXE
    if -499 <= code <= -400:
        return ESR_QYE
    if code != 0:
        return ESR_DDE  # -3xx and positive device-dependent codes
    return 0


# ---------------------------------------------------------------------------------------------
# Templates
# ---------------------------------------------------------------------------------------------

_KEYWORD = re.compile(r"\*?[A-Za-z][A-Za-z]*")
_LITERAL_SUFFIX = re.compile(r"\[(\d+)\]|(\d+)")


def _keyword_regex(word: str) -> str:
    """``SOURce`` -> ``SOUR(?:CE)?``: exactly the short or the long form."""
    short = word.rstrip("abcdefghijklmnopqrstuvwxyz")
    if not short or any(c.islower() for c in short):
        raise ValueError(f"SCPI keyword {word!r}: uppercase short form must be a prefix")
    rest = word[len(short) :].upper()
    return re.escape(short.upper()) + (f"(?:{rest})?" if rest else "")


def compile_template(template: str) -> tuple[re.Pattern[str], tuple[bool, ...], bool]:
    """Compile a manual-style header template.

    Returns ``(regex, groups, is_query)``: ``regex`` full-matches normalised headers (upper case,
    leading ``:`` for non-common commands); ``groups[i]`` is True when capture group ``i+1`` is a
    ``#`` suffix handed to the handler, False when it only catches a suffix the node does not
    allow (-114).
    """
    t = template.strip()
    if t[:1].isalpha():
        t = ":" + t
    elif t[:1] == "[" and t[1:2].isalpha():
        t = "[:" + t[1:]
    out: list[str] = []
    groups: list[bool] = []
    query = False
    i, n = 0, len(t)
    while i < n:
        c = t[i]
        if query:
            raise ValueError(f"SCPI template {template!r}: '?' must come last")
        if c == "[":
            out.append("(?:")
            i += 1
        elif c == "]":
            out.append(")?")
            i += 1
        elif c == ":":
            out.append(":")
            i += 1
        elif c == "?":
            out.append(r"\?")
            query = True
            i += 1
        elif c == "*" or c.isalpha():
            m = _KEYWORD.match(t, i)
            if m is None:
                raise ValueError(f"SCPI template {template!r}: bad keyword at {i}")
            word = m.group()
            i = m.end()
            out.append(_keyword_regex(word))
            if word.startswith("*"):
                continue
            if i < n and t[i] == "#":
                out.append(r"(\d*)")
                groups.append(True)
                i += 1
                continue
            lit = _LITERAL_SUFFIX.match(t, i)
            if lit is not None and (lit.group(2) is not None or lit.group(1) is not None):
                digits = lit.group(1) or lit.group(2)
                optional = lit.group(1) is not None or digits == "1"
                out.append(f"(?:{digits})?" if optional else digits)
                i = lit.end()
            else:
                out.append(r"(\d*)")
                groups.append(False)
        else:
            raise ValueError(f"SCPI template {template!r}: unexpected {c!r}")
    return re.compile("".join(out)), tuple(groups), query


F = TypeVar("F", bound=Callable[..., Any])


def scpi(
    template: str,
    *,
    nargs: int | tuple[int, int | None] | None = None,
    suffix: tuple[int, int] | None = None,
) -> Callable[[F], F]:
    """Declare a method as the handler of ``template`` (stackable).

    ``nargs``: exact count or ``(min, max|None)``; fewer -> -109, more -> -108; None = unchecked.
    ``suffix``: inclusive range of this template's ``#`` suffixes (default: ``suffix_range``).
    """
    compile_template(template)  # fail at import time on a malformed template

    def deco(fn: F) -> F:
        fn.__dict__.setdefault("_scpi_templates", []).append((template, nargs, suffix))
        return fn

    return deco


class _Entry:
    __slots__ = ("func", "groups", "hi", "lo", "query", "regex", "suffix_range", "template")

    def __init__(
        self,
        template: str,
        func: Callable[..., Any],
        nargs: int | tuple[int, int | None] | None,
        suffix_range: tuple[int, int],
    ) -> None:
        self.template = template
        self.regex, self.groups, self.query = compile_template(template)
        self.func = func
        if nargs is None:
            self.lo, self.hi = 0, None
        elif isinstance(nargs, int):
            self.lo, self.hi = nargs, nargs
        else:
            self.lo, self.hi = nargs
        self.suffix_range = suffix_range


# ---------------------------------------------------------------------------------------------
# Program-message and argument splitting
# ---------------------------------------------------------------------------------------------

_UNIT_SPECIAL = re.compile(r"[;\"'#]")
_ARG_SPECIAL = re.compile(r"[,\"'#(]")


def _skip_string(text: str, i: int) -> int:
    """Index after the quoted string starting at ``i`` (doubled quotes escape)."""
    q = text[i]
    j = i + 1
    while True:
        k = text.find(q, j)
        if k < 0:
            raise ScpiError(-151, "Invalid string data")
        if text.startswith(q, k + 1):
            j = k + 2
            continue
        return k + 1


def _skip_block(text: str, i: int) -> int:
    """Index after the ``#`` element at ``i``: definite/indefinite block or ``#H``-style number."""
    d = text[i + 1 : i + 2]
    if not d.isdigit():
        return i + 1  # non-decimal numeric (#H/#Q/#B) or junk: left to the parameter parser
    nd = int(d)
    if nd == 0:
        return len(text)  # indefinite block runs to the end of the message
    digits = text[i + 2 : i + 2 + nd]
    if len(digits) != nd or not digits.isdigit():
        raise ScpiError(-161, "Invalid block data")
    end = i + 2 + nd + int(digits)
    if end > len(text):
        raise ScpiError(-161, "Invalid block data")
    return end


def split_message(text: str) -> tuple[list[str], ScpiError | None]:
    """Split a program message on ``;`` outside strings and blocks.

    Returns the units found before the first syntax error, and that error (or None), so that
    the units before a malformed one still execute as on a real instrument.
    """
    units: list[str] = []
    start = pos = 0
    search = _UNIT_SPECIAL.search
    try:
        while True:
            m = search(text, pos)
            if m is None:
                units.append(text[start:])
                return units, None
            c, i = m.group(), m.start()
            if c == ";":
                units.append(text[start:i])
                start = pos = i + 1
            elif c == "#":
                pos = _skip_block(text, i)
            else:
                pos = _skip_string(text, i)
    except ScpiError as e:
        return units, e


def split_arguments(text: str) -> list[str]:
    """Split a parameter string on ``,`` outside strings, blocks and ``(...)``; trim each."""
    if not text:
        return []
    if '"' not in text and "'" not in text and "#" not in text and "(" not in text:
        return [a.strip() for a in text.split(",")]
    args: list[str] = []
    start = pos = 0
    search = _ARG_SPECIAL.search
    while True:
        m = search(text, pos)
        if m is None:
            args.append(text[start:])
            break
        c, i = m.group(), m.start()
        if c == ",":
            args.append(text[start:i])
            start = pos = i + 1
        elif c == "#":
            pos = _skip_block(text, i)
        elif c == "(":
            k = text.find(")", i)
            if k < 0:
                raise ScpiError(-102)
            pos = k + 1
        else:
            pos = _skip_string(text, i)
    return [_strip_arg(a) for a in args]


def _strip_arg(a: str) -> str:
    """Trim whitespace around an argument without eating bytes of a binary block."""
    a = a.lstrip()
    if a.startswith("#") and a[1:2].isdigit():
        if a[1] == "0":
            return a[:-1] if a.endswith("\n") else a
        end = _skip_block(a, 0)
        if a[end:].strip():
            raise ScpiError(-161, "Invalid block data")
        return a[:end]
    return a.rstrip()


# ---------------------------------------------------------------------------------------------
# Parameter parsing
# ---------------------------------------------------------------------------------------------

_NUMBER = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z%]*)")
_PLAIN_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_CHARDATA = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_MULTIPLIERS = {
    "EX": 1e18, "PE": 1e15, "T": 1e12, "G": 1e9, "MA": 1e6, "K": 1e3,
    "M": 1e-3, "U": 1e-6, "N": 1e-9, "P": 1e-12, "F": 1e-15, "A": 1e-18,
}  # fmt: skip
_NONDECIMAL = {"H": 16, "Q": 8, "B": 2}
_choice_cache: dict[tuple[str, ...], list[tuple[re.Pattern[str], str]]] = {}


def _keyword_matches(options: Sequence[str]) -> list[tuple[re.Pattern[str], str]]:
    key = tuple(options)
    hit = _choice_cache.get(key)
    if hit is None:
        hit = [
            (re.compile(_keyword_regex(o)), o.rstrip("abcdefghijklmnopqrstuvwxyz").upper())
            for o in options
        ]
        _choice_cache[key] = hit
    return hit


def _match_keyword(text: str, options: Sequence[str]) -> str | None:
    up = text.upper()
    for rx, short in _keyword_matches(options):
        if rx.fullmatch(up):
            return short
    return None


def _data_type(text: str) -> str:
    if not text:
        return "empty"
    c = text[0]
    if c in "\"'":
        return "string"
    if c == "#":
        return "block" if text[1:2].isdigit() else "number"
    if c == "(":
        return "list"
    if c.isalpha():
        return "char"
    return "number"


def parse_number(
    text: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    default: float | None = None,
    keywords: Iterable[str] = (),
    integer: bool = False,
    unit: str | None = None,
    clip: bool = False,
) -> Any:
    """Parse SCPI ``<NRf>`` (``1``, ``-2.5e-3``, ``#H1F``) with optional specials.

    ``MIN``/``MAX``/``DEF`` (short or long) resolve to ``minimum``/``maximum``/``default`` when
    those are given. ``keywords`` may allow ``INFinity``/``NINFinity`` (-> ±inf) and other
    keywords such as ``UP``/``DOWN``, returned as their upper-case short form (a ``str``).
    ``unit`` (e.g. ``"V"``, ``"S"``, ``"HZ"``) allows a suffix with SI multiplier (``100 mV``).
    Out of ``[minimum, maximum]``: -222, or clipped when ``clip``. ``integer`` rounds to ``int``.
    Errors: -104 wrong data type, -109 empty, -120/-121 malformed, -138 suffix, -224 keyword.
    """
    if _PLAIN_DECIMAL.fullmatch(text) is not None:  # the common case: a plain number
        value = float(text)
    else:
        value, final = _parse_value(text, minimum, maximum, default, keywords, integer, unit)
        if final:
            return value  # a keyword, or MIN/MAX/DEF resolved: no range check
    if minimum is not None and value < minimum:
        if not clip:
            raise ScpiError(-222)
        value = minimum
    if maximum is not None and value > maximum:
        if not clip:
            raise ScpiError(-222)
        value = maximum
    return round(value) if integer else value


def _parse_value(
    text: str,
    minimum: float | None,
    maximum: float | None,
    default: float | None,
    keywords: Iterable[str],
    integer: bool,
    unit: str | None,
) -> tuple[Any, bool]:
    """The number ``text`` stands for, and True when it is final (no range check)."""
    kind = _data_type(text)
    if kind == "empty":
        raise ScpiError(-109)
    if kind in ("string", "block", "list"):
        raise ScpiError(-104)
    value: float
    if kind == "char":
        up = text.upper()
        if _CHARDATA.fullmatch(up) is None:
            raise ScpiError(-104)
        if up in ("MIN", "MINIMUM"):
            if minimum is None:
                raise ScpiError(-224)
            value = minimum
        elif up in ("MAX", "MAXIMUM"):
            if maximum is None:
                raise ScpiError(-224)
            value = maximum
        elif up in ("DEF", "DEFAULT"):
            if default is None:
                raise ScpiError(-224)
            value = default
        else:
            kw = _match_keyword(up, tuple(keywords))
            if kw is None:
                raise ScpiError(-224 if keywords else -104)
            if kw == "INF":
                return math.inf, True
            if kw == "NINF":
                return -math.inf, True
            return kw, True
        return (round(value) if integer else value), True
    if text[0] == "#":
        base = _NONDECIMAL.get(text[1:2].upper())
        if base is None:
            raise ScpiError(-121)
        try:
            value = float(int(text[2:], base))
        except ValueError:
            raise ScpiError(-121) from None
    else:
        m = _NUMBER.fullmatch(text)
        if m is None:
            raise ScpiError(-121 if text[0] in "+-.0123456789" else -120)
        value = float(m.group(1))
        sfx = m.group(2).upper()
        if sfx:
            if unit is None:
                raise ScpiError(-138)
            u = unit.upper()
            if sfx == u:
                pass
            elif sfx.endswith(u):
                prefix = sfx[: -len(u)]
                if prefix == "M" and u in ("HZ", "OHM"):
                    value *= 1e6
                elif prefix in _MULTIPLIERS:
                    value *= _MULTIPLIERS[prefix]
                else:
                    raise ScpiError(-131)
            else:
                raise ScpiError(-131)
    if math.isnan(value):
        raise ScpiError(-120)
    return value, False


def parse_bool(text: str) -> bool:
    """``ON|OFF|1|0`` (numbers are rounded, non-zero is ON). -224 other keywords, -104 strings."""
    kind = _data_type(text)
    if kind == "empty":
        raise ScpiError(-109)
    if kind == "char":
        up = text.upper()
        if up == "ON":
            return True
        if up == "OFF":
            return False
        raise ScpiError(-224)
    if kind != "number":
        raise ScpiError(-104)
    return round(parse_number(text)) != 0


def parse_string(text: str) -> str:
    """Content of a ``"..."`` or ``'...'`` string (doubled quotes unescaped); -104 otherwise."""
    kind = _data_type(text)
    if kind == "empty":
        raise ScpiError(-109)
    if kind != "string":
        raise ScpiError(-104)
    q = text[0]
    if _skip_string(text, 0) != len(text):
        raise ScpiError(-151, "Invalid string data")
    return text[1:-1].replace(q + q, q)


def parse_choice(text: str, options: Sequence[str], *, quoted: bool | None = False) -> str:
    """Match character data against ``options`` written the manual's way (``VOLTage``).

    Returns the matching option's upper-case short form (``"VOLT"``). ``quoted``: False =
    bare keyword only, True = quoted string only (``"CURR"``), None = either.
    Errors: -224 no option matches, -104 wrong data type.
    """
    # a match is a pure function of (text, options, quoted): remembered, as a sweep's
    # ``:SOUR:FUNC:SHAP PULS``/``:TRIG:SOUR TIM``/``:FORM:ELEM:SENS CURR`` come every point
    try:
        key = (text, options, quoted)
        hit = _CHOICES.get(key)
    except TypeError:  # options as a list: not remembered
        key = hit = None
    if hit is not None:
        return hit
    hit = _parse_choice(text, options, quoted)
    if key is not None:
        if len(_CHOICES) >= _CACHE_LIMIT:
            _CHOICES.clear()
        _CHOICES[key] = hit
    return hit


#: ``parse_choice``'s matches by (text, options, quoted); errors are not kept
_CHOICES: dict[tuple[str, Sequence[str], bool | None], str] = {}


def _parse_choice(text: str, options: Sequence[str], quoted: bool | None) -> str:
    kind = _data_type(text)
    if kind == "empty":
        raise ScpiError(-109)
    if kind == "string":
        if quoted is False:
            raise ScpiError(-104)
        text = parse_string(text).strip()
    elif kind == "char":
        if quoted is True:
            raise ScpiError(-104)
    else:
        raise ScpiError(-104)
    hit = _match_keyword(text, options)
    if hit is None:
        raise ScpiError(-224)
    return hit


def parse_channel_list(text: str) -> list[int]:
    """``(@1)``, ``(@1,2)``, ``(@1:3)`` (``(@3:1)`` counts down) -> channel numbers."""
    hit = _CHANNEL_LISTS.get(text)
    if hit is not None:
        return list(hit)
    out = _parse_channel_list(text)
    if len(out) <= 64:
        if len(_CHANNEL_LISTS) >= _CACHE_LIMIT:
            _CHANNEL_LISTS.clear()
        _CHANNEL_LISTS[text] = tuple(out)
    return out


#: Channel-list text -> channels (short lists), as parsed by :func:`_parse_channel_list`.
_CHANNEL_LISTS: dict[str, tuple[int, ...]] = {}


def _parse_channel_list(text: str) -> list[int]:
    kind = _data_type(text)
    if kind == "empty":
        raise ScpiError(-109)
    if kind != "list" or not text.startswith("(@") or not text.endswith(")"):
        raise ScpiError(-104)
    out: list[int] = []
    body = text[2:-1].strip()
    if not body:
        return out
    for part in body.split(","):
        a, sep, b = part.partition(":")
        try:
            lo = int(a.strip())
            hi = int(b.strip()) if sep else lo
        except ValueError:
            raise ScpiError(-224) from None
        step = 1 if hi >= lo else -1
        out.extend(range(lo, hi + step, step))
    return out


def parse_block(data: str | bytes) -> bytes:
    """Payload of an IEEE 488.2 block ``#<n><len><bytes>`` or ``#0<bytes>``; -104/-161 on error."""
    text = data.decode("latin-1") if isinstance(data, (bytes, bytearray)) else data
    kind = _data_type(text)
    if kind == "empty":
        raise ScpiError(-109)
    if kind != "block":
        raise ScpiError(-104)
    if text[1] == "0":
        payload = text[2:]
    else:
        nd = int(text[1])
        end = _skip_block(text, 0)
        if text[end:].strip():
            raise ScpiError(-161, "Invalid block data")
        payload = text[2 + nd : end]
    try:
        return payload.encode("latin-1")
    except UnicodeEncodeError:
        raise ScpiError(-161, "Invalid block data") from None


def definite_block(data: bytes) -> bytes:
    """Wrap bytes as an IEEE 488.2 definite-length block ``#<n><len><data>``."""
    length = str(len(data)).encode()
    return b"#" + str(len(length)).encode() + length + bytes(data)


def float_block(
    values: Iterable[float] | np.ndarray, *, dtype: str = "float32", byteorder: str = "little"
) -> bytes:
    """Definite-length block of float32/float64 values in ``byteorder`` (``little``/``big``)."""
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', not {dtype!r}")
    if byteorder not in ("little", "big"):
        raise ValueError(f"byteorder must be 'little' or 'big', not {byteorder!r}")
    code = ("<" if byteorder == "little" else ">") + ("f4" if dtype == "float32" else "f8")
    arr = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=code)
    return definite_block(arr.tobytes())


# ---------------------------------------------------------------------------------------------
# Command (what a handler receives)
# ---------------------------------------------------------------------------------------------


class Command:
    """One parsed program-message unit, handed to a handler.

    ``header``: normalised absolute header (``:SOUR2:VOLT?``); ``suffixes``: values of the
    template's ``#`` nodes in order (1 when omitted); ``suffix``: the first one (or 1);
    ``raw``: parameter text; ``args``: parameters split on commas (raw, trimmed).
    """

    __slots__ = ("_args", "header", "instrument", "raw", "suffixes")

    def __init__(
        self, instrument: ScpiInstrument, header: str, suffixes: tuple[int, ...], raw: str
    ) -> None:
        self.instrument = instrument
        self.header = header
        self.suffixes = suffixes
        self.raw = raw
        self._args: list[str] | None = None

    def __repr__(self) -> str:
        return f"Command({self.header!r}, suffixes={self.suffixes}, raw={self.raw!r})"

    @property
    def suffix(self) -> int:
        """The first ``#`` suffix (1 when the template has none or it was omitted)."""
        return self.suffixes[0] if self.suffixes else 1

    @property
    def is_query(self) -> bool:
        return self.header.endswith("?")

    @property
    def args(self) -> list[str]:
        if self._args is None:
            self._args = split_arguments(self.raw)
        return self._args

    def __len__(self) -> int:
        return len(self.args)

    def arg(self, index: int = 0) -> str:
        """Raw text of parameter ``index``; -109 when missing."""
        args = self._args
        if args is None:
            args = self.args
        if index >= len(args) or not args[index]:
            raise ScpiError(-109)
        return args[index]

    def has(self, index: int) -> bool:
        """True when parameter ``index`` was sent (for optional trailing parameters)."""
        args = self.args
        return index < len(args) and bool(args[index])

    def number(self, index: int = 0, **kwargs: Any) -> Any:
        """Parameter ``index`` as a number; keyword arguments as :func:`parse_number`."""
        return parse_number(self.arg(index), **kwargs)

    def numbers(self, start: int = 0, **kwargs: Any) -> list[Any]:
        """All parameters from ``start`` as numbers (e.g. a list ``1,2,3``); -109 if none."""
        args = self.args[start:]
        if not args or not args[0]:
            raise ScpiError(-109)
        return [parse_number(a, **kwargs) for a in args]

    def boolean(self, index: int = 0) -> bool:
        return parse_bool(self.arg(index))

    def choice(self, index: int, options: Sequence[str], *, quoted: bool | None = False) -> str:
        """Parameter ``index`` as one of ``options``; returns its upper-case short form."""
        return parse_choice(self.arg(index), options, quoted=quoted)

    def string(self, index: int = 0) -> str:
        return parse_string(self.arg(index))

    def channels(self, index: int = 0) -> list[int]:
        return parse_channel_list(self.arg(index))

    def block(self, index: int = 0) -> bytes:
        return parse_block(self.arg(index))


def _cut_numbers(text: str, found: list[bytes] | None) -> str:
    """``text`` with its stand-alone numbers replaced by NUL slots (appended to ``found``)."""
    data = b" " + text.encode("latin-1")  # a parameter string starts after a space
    if found is not None:
        found.extend(_BARE_NUMBER.findall(data))
    return _BARE_NUMBER.sub(b"\0", data)[1:].decode("latin-1")


def _fill_shape(template: tuple[tuple[Any, ...], ...], numbers: list[str]) -> tuple[Any, ...]:
    """The steps of a shape with ``numbers`` put back into their slots, in order."""
    steps = []
    pos = 0
    for func, key, suffixes, raw_t, args_t, path in template:
        k = raw_t.count(_SLOT)
        if not k:
            steps.append((func, key, suffixes, raw_t, args_t, path))
            continue
        mine = numbers[pos:pos + k]
        pos += k
        raw = _fill(raw_t, mine)
        args = None
        if args_t is not None:
            args, j = [], 0
            for a in args_t:
                n = a.count(_SLOT)
                args.append(_fill(a, mine[j:j + n]) if n else a)
                j += n
            args = tuple(args)
        steps.append((func, key, suffixes, raw, args, path))
    return tuple(steps)


def _reply_unit(result: Any) -> bytes:
    """A handler's reply as bytes (``str`` and others by their text), as ``_run_plan`` joins."""
    if type(result) is bytes:
        return result
    if isinstance(result, (bytes, bytearray)):
        return bytes(result)
    return str(result).encode("latin-1", "replace")


def _fill(text: str, values: list[str]) -> str:
    if len(values) == 1 and text == _SLOT:
        return values[0]
    parts = text.split(_SLOT)
    out = [parts[0]]
    for v, part in zip(values, parts[1:], strict=True):
        out.append(v)
        out.append(part)
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# Instrument base
# ---------------------------------------------------------------------------------------------

_HEADER_CHARS = re.compile(r"[A-Z0-9:*?_]+")
_HEADER_SHAPE = re.compile(r"\*[A-Z]+\??|(?::[A-Z][A-Z0-9_]*)+\??")
_CACHE_LIMIT = 4096
_PLAN_TEXT_MAX = 256  # longer messages and units (lists, blocks) are not cached
# A decimal number standing alone as (part of) a parameter: after a space or comma, before a
# comma, ';', whitespace or the end. Replacing such numbers by a placeholder gives a message's
# "shape": messages of one shape split, resolve and count parameters identically.
_BARE_NUMBER = re.compile(
    rb"(?<=[ ,])([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?=[,;\s]|\Z)")
_BARE_FULL = re.compile(rb"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_SLOT = "\0"


class ScpiInstrument:
    """Base of simulated SCPI instruments: dispatch, IEEE 488.2 common commands, error queue.

    Declare handlers with :func:`scpi` or in ``scpi_commands = {template: "method_name"}``::

        class Smu(ScpiInstrument):
            idn = "ACME,MODEL 1,0,1.0"
            suffix_range = (1, 2)  # allowed values of every '#' suffix

            @scpi("[:SOURce#]:VOLTage[:LEVel][:IMMediate][:AMPLitude]", nargs=1)
            def _volt(self, cmd: Command) -> None:
                self.v[cmd.suffix] = cmd.number(0, minimum=-21, maximum=21, default=0)

    A handler ``(self, cmd: Command)`` returns ``str``/``bytes`` (a reply unit), ``None`` (no
    reply) or anything else (its ``str()``); it reports instrument errors by raising
    :class:`ScpiError`. The first matching template wins (subclass before base). Hooks:
    ``reset()``, ``trigger()``, ``clear_status()``, ``status_summary()``.
    """

    idn: ClassVar[str] = "DENDROLAB,SIMULATED SCPI,0,0"
    termination: ClassVar[str] = "\n"
    #: ``str.format`` pattern with ``code`` and ``message``; Keysight: ``'{code:+d},"{message}"'``.
    error_format: ClassVar[str] = '{code},"{message}"'
    error_queue_size: ClassVar[int] = 10
    #: Allowed ``#`` suffix values (inclusive) unless a template says otherwise.
    suffix_range: ClassVar[tuple[int, int]] = (1, 1)
    #: True: any error discards the rest of the message (Keithley "command execution rules");
    #: False: only command errors (-1xx) do, execution errors let later commands run.
    stop_on_error: ClassVar[bool] = True
    scpi_version: ClassVar[str] = "1999.0"
    scpi_commands: ClassVar[Mapping[str, str]] = {}

    _scpi_entries: ClassVar[list[_Entry]] = []
    _scpi_cache: ClassVar[dict[str, tuple[_Entry, tuple[int, ...]]]] = {}
    #: absolute unit text -> prepared step; whole message -> steps (see :meth:`handle`).
    _scpi_units: ClassVar[dict[str, tuple[Any, ...]]] = {}
    _scpi_plans: ClassVar[dict[str | bytes, tuple[tuple[Any, ...], ...]]] = {}
    #: message shape (numbers replaced by a NUL) -> steps whose raw/args hold NUL slots.
    _scpi_shapes: ClassVar[dict[bytes, tuple[tuple[Any, ...], ...]]] = {}
    #: the latest one-number shapes, newest first: (text before, text after, their lengths,
    #: steps, index of the step that is just the number, (handler, header, suffixes) of that
    #: step when it is the only one).
    _scpi_single: ClassVar[list[tuple[Any, ...]]] = []

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._compile_table()

    @classmethod
    def _compile_table(cls) -> None:
        seen: dict[str, tuple[str, Any, Any]] = {}
        for klass in cls.__mro__:
            own: list[tuple[str, str, Any, Any]] = []
            for name, attr in vars(klass).items():
                for template, nargs, sfx in getattr(attr, "_scpi_templates", ()):
                    own.append((template, name, nargs, sfx))
            for template, name in vars(klass).get("scpi_commands", {}).items():
                own.append((template, name, None, None))
            for template, name, nargs, sfx in own:
                key = template.replace(" ", "")
                if key not in seen:
                    seen[key] = (name, nargs, sfx)
        entries = []
        for template, (name, nargs, sfx) in seen.items():
            func = getattr(cls, name)
            entries.append(_Entry(template, func, nargs, sfx or cls.suffix_range))
        cls._scpi_entries = entries
        cls._scpi_cache = {}
        cls._scpi_units = {}
        cls._scpi_plans = {}
        cls._scpi_shapes = {}
        cls._scpi_single = []

    def __init__(self, idn: str | None = None) -> None:
        if idn is not None:
            self.idn = idn
        self.errors: deque[tuple[int, str]] = deque()
        self.esr = 0
        self.ese = 0
        self.sre = 0
        self._term = self.termination.encode("latin-1")

    # -- hooks -----------------------------------------------------------------------------
    def reset(self) -> None:
        """``*RST`` hook: return to the reset state (the error queue is kept)."""

    def trigger(self) -> None:
        """``*TRG`` hook."""

    def clear_status(self) -> None:
        """``*CLS``: clear the error queue and event registers; extend to clear model events."""
        self.errors.clear()
        self.esr = 0

    def status_summary(self) -> int:
        """Extra Status Byte bits (0, 1, 3, 7: measurement/questionable/operation summaries)."""
        return 0

    # -- error queue -----------------------------------------------------------------------
    def push_error(self, code: int, message: str | None = None) -> None:
        """Queue an error; when full the last entry becomes -350 (SCPI-99 §21.8)."""
        if message is None:
            message = STANDARD_ERRORS.get(code, "Error")
        self.esr |= esr_bit(code)
        q = self.errors
        if len(q) >= self.error_queue_size:
            if q[-1][0] != -350:
                q[-1] = (-350, STANDARD_ERRORS[-350])
                self.esr |= esr_bit(-350)
            return
        q.append((code, message))

    def pop_error(self) -> tuple[int, str]:
        """Oldest error, or ``(0, "No error")``."""
        return self.errors.popleft() if self.errors else (0, STANDARD_ERRORS[0])

    def format_error(self, code: int, message: str) -> str:
        return self.error_format.format(code=code, message=message)

    def query_interrupted(self) -> None:
        """For the transport: a new message arrived before the last reply was read (-410)."""
        self.push_error(-410)

    def query_unterminated(self) -> None:
        """For the transport: a read was attempted with no reply pending (-420)."""
        self.push_error(-420)

    def status_byte(self) -> int:
        """IEEE 488.2 status byte: EAV (bit 2), ESB (bit 5), MSS (bit 6) + ``status_summary``."""
        stb = self.status_summary() & 0x8B
        if self.errors:
            stb |= 0x04
        if self.esr & self.ese:
            stb |= 0x20
        if stb & self.sre & 0xBF:
            stb |= 0x40
        return stb

    # -- dispatch --------------------------------------------------------------------------
    def handle(self, message: str | bytes) -> bytes | None:
        """Execute one program message; return the whole reply (with termination) or None.

        Dispatch is cached: an absolute unit (``:SOUR:VOLT 0.2``) maps to a prepared step
        (handler, header, suffixes, parameters), and a short message whose every unit
        prepared cleanly maps to its list of steps. A step depends only on the text (and, for
        a relative unit, on the path the message set before it), never on instrument state,
        so a replay executes exactly what a fresh parse would.
        """
        try:
            plan = self._scpi_plans.get(message)
        except TypeError:  # bytearray
            plan = None
        if plan is not None:
            return self._run_plan(plan)
        # block headers are numbers too (0x23 is "#": an int test is much cheaper on bytes)
        if type(message) is not bytes or 0x23 in message:
            return self._handle_parse(message)
        # one-number shapes, newest first
        for head, tail, start, cut, template, i, one in self._scpi_single:
            if message.startswith(head) and message.endswith(tail):
                number = message[start:len(message) - cut]
                if _BARE_FULL.fullmatch(number) is not None:
                    text = number.decode("latin-1")
                    if one is not None:  # the message is that one command (a sweep point)
                        func, key, suffixes = one
                        cmd = Command(self, key, suffixes, text)
                        cmd._args = [text]
                        try:
                            result = func(self, cmd)
                        except ScpiError as e:
                            self.push_error(e.code, e.message)
                            return None
                        return None if result is None else _reply_unit(result) + self._term
                    if i < 0:
                        return self._run_plan(_fill_shape(template, [text]))
                    func, key, suffixes, _raw, _args, path = template[i]
                    return self._run_plan((*template[:i], (func, key, suffixes, text, (text,),
                                                           path), *template[i + 1:]))
        pieces = _BARE_NUMBER.split(message)  # text, number, text, ..., text
        if len(pieces) == 1:
            return self._handle_parse(message)
        shape = b"\0".join(pieces[::2])
        template = self._scpi_shapes.get(shape)
        if template is None:
            reply = self._handle_parse(message)
            self._learn_shape(message, shape, pieces[1::2])
            return reply
        plan = _fill_shape(template, [n.decode("latin-1") for n in pieces[1::2]])
        plans = self._scpi_plans
        if len(plans) >= _CACHE_LIMIT:
            plans.clear()
        plans[message] = plan
        return self._run_plan(plan)

    def _learn_shape(self, message: bytes, shape: bytes, numbers: list[bytes]) -> None:
        """Record the shape of a message just parsed into a plan: its steps with the numbers
        cut out of ``raw`` and ``args``. Kept only when cutting the steps finds exactly the
        message's numbers in order (so filling them back rebuilds exactly those steps)."""
        plan = self._scpi_plans.get(message)
        if plan is None or len(shape) > _PLAN_TEXT_MAX or b"\0" in message:
            return
        found: list[bytes] = []
        steps = []
        for func, key, suffixes, raw, args, path in plan:
            raw_t = _cut_numbers(raw, found)
            args_t = None if args is None else tuple(_cut_numbers(a, None) for a in args)
            if args_t is not None and sum(a.count(_SLOT) for a in args_t) != raw_t.count(_SLOT):
                return
            steps.append((func, key, suffixes, raw_t, args_t, path))
        if found != numbers:
            return
        shapes = self._scpi_shapes
        if len(shapes) >= _CACHE_LIMIT:
            shapes.clear()
        shapes[shape] = tuple(steps)
        if len(numbers) == 1:  # the sweep case: kept apart, matched without a regex split
            head, tail = shape.split(b"\0")
            # the step whose whole parameter is the number (-1: fill it the general way)
            i = next((k for k, st in enumerate(steps) if st[3] == _SLOT and st[4] == (_SLOT,)),
                     -1)
            # a one-step shape whose parameter is the number: (handler, header, suffixes)
            one = steps[0][:3] if i == 0 and len(steps) == 1 else None
            single = [e for e in self._scpi_single if e[:2] != (head, tail)][:7]
            type(self)._scpi_single = [(head, tail, len(head), len(tail), tuple(steps), i, one),
                                       *single]

    def _run_plan(self, plan: tuple[tuple[Any, ...], ...]) -> bytes | None:
        """Execute prepared steps (from :meth:`handle`'s caches)."""
        if len(plan) == 1:  # one command (a spot reading): no reply list to build
            func, key, suffixes, raw, args, _path = plan[0]
            cmd = Command(self, key, suffixes, raw)
            if args is not None:
                cmd._args = list(args)
            try:
                result = func(self, cmd)
            except ScpiError as e:
                self.push_error(e.code, e.message)
                return None
            if result is None:
                return None
            if type(result) is bytes:
                return result + self._term
            return _reply_unit(result) + self._term
        replies: list[bytes] = []
        for func, key, suffixes, raw, args, _path in plan:
            cmd = Command(self, key, suffixes, raw)
            if args is not None:
                cmd._args = list(args)
            try:
                result = func(self, cmd)
            except ScpiError as e:
                self.push_error(e.code, e.message)
                if self.stop_on_error or -199 <= e.code <= -100:
                    break
                continue
            if result is not None:
                if type(result) is bytes:
                    replies.append(result)
                elif isinstance(result, (bytes, bytearray)):
                    replies.append(bytes(result))
                else:
                    replies.append(str(result).encode("latin-1", "replace"))
        if not replies:
            return None
        if len(replies) == 1:
            return replies[0] + self._term
        return b";".join(replies) + self._term

    def _handle_parse(self, message: str | bytes | bytearray) -> bytes | None:
        """:meth:`handle` without a cached plan: split, prepare each unit, execute; record the
        plan when every unit prepared (resolution and parameter count) without an error."""
        text = message.decode("latin-1") if isinstance(message, (bytes, bytearray)) else message
        error: ScpiError | None = None
        if ";" not in text:
            units: Sequence[str] = (text,)
        elif '"' in text or "'" in text or "#" in text:
            units, error = split_message(text)
        else:
            units = text.split(";")
        replies: list[bytes] = []
        path = ":"
        unit_cache = self._scpi_units
        steps: list[tuple[Any, ...]] | None = (
            [] if error is None and len(text) <= _PLAN_TEXT_MAX
            and isinstance(message, (str, bytes))
            else None
        )
        for unit in units:
            step = unit_cache.get(unit)
            if step is None:
                try:
                    step = self._prepare(unit, path)
                except ScpiError as e:
                    self.push_error(e.code, e.message)
                    steps = None
                    if self.stop_on_error or -199 <= e.code <= -100:
                        error = None
                        break
                    continue
                if step is None:
                    continue  # empty unit: trailing ';' or blank message
            func, key, suffixes, raw, args, new_path = step
            if new_path is not None:
                path = new_path
            if steps is not None:
                steps.append(step)
            cmd = Command(self, key, suffixes, raw)
            if args is not None:
                cmd._args = list(args)
            try:
                result = func(self, cmd)
            except ScpiError as e:
                self.push_error(e.code, e.message)
                if self.stop_on_error or -199 <= e.code <= -100:
                    error = None
                    steps = None  # the units after this one were not prepared
                    break
                continue
            if result is not None:
                if isinstance(result, (bytes, bytearray)):
                    replies.append(bytes(result))
                else:
                    replies.append(str(result).encode("latin-1", "replace"))
        if error is not None:
            self.push_error(error.code, error.message)
        if steps is not None:
            plans = self._scpi_plans
            if len(plans) >= _CACHE_LIMIT:
                plans.clear()
            plans[message] = tuple(steps)
        if not replies:
            return None
        return b";".join(replies) + self._term

    def _prepare(self, unit: str, path: str) -> tuple[Any, ...] | None:
        """One program-message unit as a step ``(func, header, suffixes, raw, args, path)``.

        ``args``: the split parameters when the parameter count was checked (None: split
        lazily); ``path``: the header path the unit sets (None for a common command). Returns
        None for an empty unit; raises the unit's command error (-1xx). Absolute units are
        cached (their step does not depend on ``path``).
        """
        parts = unit.split(None, 1)
        if not parts:
            return None
        h = parts[0].upper()
        c0 = h[0]
        if c0 == ":":
            key = h[1:] if h[1:2] == "*" else h
        elif c0 == "*":
            key = h
        else:
            key = path + h
        hit = self._scpi_cache.get(key)
        if hit is None:
            hit = self._resolve(key)
        entry, suffixes = hit
        new_path = key[: key.rfind(":") + 1] if key[0] != "*" else None
        raw = parts[1] if len(parts) > 1 else ""
        if raw and "#" not in raw:
            raw = raw.rstrip()
        args: tuple[str, ...] | None = None
        if not raw:
            args = ()
        if entry.hi is not None or entry.lo:
            if raw:
                args = tuple(split_arguments(raw))
            n = len(args) if args is not None else 0
            if n < entry.lo:
                raise ScpiError(-109)
            if entry.hi is not None and n > entry.hi:
                raise ScpiError(-108)
        step = (entry.func, key, suffixes, raw, args, new_path)
        if c0 in ":*" and len(unit) <= _PLAN_TEXT_MAX:
            units = self._scpi_units
            if len(units) >= _CACHE_LIMIT:
                units.clear()
            units[unit] = step
        return step

    def _resolve(self, key: str) -> tuple[_Entry, tuple[int, ...]]:
        """Match a header against the compiled templates (cache miss path)."""
        bad_suffix = False
        for entry in self._scpi_entries:
            m = entry.regex.fullmatch(key)
            if m is None:
                continue
            suffixes: list[int] = []
            ok = True
            lo, hi = entry.suffix_range
            for is_param, g in zip(entry.groups, m.groups(), strict=True):
                if is_param:
                    v = int(g) if g else 1
                    if not lo <= v <= hi:
                        ok = False
                    suffixes.append(v)
                elif g:
                    ok = False
            if not ok:
                bad_suffix = True
                continue
            hit = (entry, tuple(suffixes))
            cache = self._scpi_cache
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            cache[key] = hit
            return hit
        if bad_suffix:
            raise ScpiError(-114)
        if _HEADER_CHARS.fullmatch(key) is None:
            raise ScpiError(-101)
        if _HEADER_SHAPE.fullmatch(key) is None:
            raise ScpiError(-102)
        raise ScpiError(-113)

    # -- IEEE 488.2 common commands and SCPI-99 mandatory commands --------------------------
    @scpi("*IDN?", nargs=0)
    def _idn(self, cmd: Command) -> str:
        return self.idn

    @scpi("*RST", nargs=0)
    def _rst(self, cmd: Command) -> None:
        self.reset()

    @scpi("*CLS", nargs=0)
    def _cls(self, cmd: Command) -> None:
        self.clear_status()

    @scpi("*ESR?", nargs=0)
    def _esr_q(self, cmd: Command) -> str:
        value, self.esr = self.esr, 0
        return str(value)

    @scpi("*ESE", nargs=1)
    def _ese(self, cmd: Command) -> None:
        self.ese = cmd.number(0, minimum=0, maximum=255, integer=True)

    @scpi("*ESE?", nargs=0)
    def _ese_q(self, cmd: Command) -> str:
        return str(self.ese)

    @scpi("*SRE", nargs=1)
    def _sre(self, cmd: Command) -> None:
        self.sre = cmd.number(0, minimum=0, maximum=255, integer=True) & 0xBF

    @scpi("*SRE?", nargs=0)
    def _sre_q(self, cmd: Command) -> str:
        return str(self.sre)

    @scpi("*STB?", nargs=0)
    def _stb_q(self, cmd: Command) -> str:
        return str(self.status_byte())

    @scpi("*OPC", nargs=0)
    def _opc(self, cmd: Command) -> None:
        self.esr |= ESR_OPC  # the simulation finishes every operation before the next command

    @scpi("*OPC?", nargs=0)
    def _opc_q(self, cmd: Command) -> str:
        return "1"

    @scpi("*WAI", nargs=0)
    def _wai(self, cmd: Command) -> None:
        return None

    @scpi("*TRG", nargs=0)
    def _trg(self, cmd: Command) -> None:
        self.trigger()

    @scpi("*TST?", nargs=0)
    def _tst_q(self, cmd: Command) -> str:
        return "0"

    @scpi(":SYSTem:ERRor[:NEXT]?", nargs=0)
    def _syst_err_q(self, cmd: Command) -> str:
        return self.format_error(*self.pop_error())

    @scpi(":SYSTem:ERRor:ALL?", nargs=0)
    def _syst_err_all_q(self, cmd: Command) -> str:
        if not self.errors:
            return self.format_error(*self.pop_error())
        out = [self.format_error(c, m) for c, m in self.errors]
        self.errors.clear()
        return ",".join(out)

    @scpi(":SYSTem:ERRor:COUNt?", nargs=0)
    def _syst_err_count_q(self, cmd: Command) -> str:
        return str(len(self.errors))

    @scpi(":SYSTem:VERSion?", nargs=0)
    def _syst_version_q(self, cmd: Command) -> str:
        return self.scpi_version

    @scpi(":STATus:PRESet", nargs=0)
    def _stat_preset(self, cmd: Command) -> None:
        return None


ScpiInstrument._compile_table()

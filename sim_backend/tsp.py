"""TSP engine for simulated Keithley 2600B/707B: a small, safe interpreter for a Lua subset.

It must never eval/exec, import, or getattr arbitrary objects: scripts see only what models expose.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
import re
import types
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from .scpi import ESR_OPC, esr_bit

__all__ = [
    "LuaTable",
    "PyFunction",
    "TspError",
    "TspErrorQueue",
    "TspFormat",
    "TspInstrument",
    "TspLocalNode",
    "TspObject",
    "TspRuntimeError",
    "TspScript",
    "check_number",
    "format_tsp_number",
]

SYNTAX_ERROR = -285
RUNTIME_ERROR = -286
SEVERITY_RECOVERABLE = 20


class TspError(Exception):
    """An instrument error with an explicit code: queued as is, the chunk stops."""

    def __init__(self, code: int, message: str, severity: int = SEVERITY_RECOVERABLE) -> None:
        self.code = code
        self.message = message
        self.severity = severity
        super().__init__(f"{code}: {message}")


class TspRuntimeError(Exception):
    """A Lua runtime error; queued as ``-286 TSP Runtime error at line N: <message>``."""

    def __init__(self, message: str, line: int | None = None) -> None:
        self.message = message
        self.line = line
        super().__init__(message)


class _LuaSyntaxError(Exception):
    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.message = message
        super().__init__(message)


def check_number(value: Any, argn: int, fname: str) -> float | int:
    """Return ``value`` if it is a Lua number (or numeric string), else a Lua-style error."""
    t = type(value)
    if t is int or t is float:
        return value
    if t is str:
        n = _str_to_number(value)
        if n is not None:
            return n
    raise TspRuntimeError(
        f"bad argument #{argn} to '{fname}' (number expected, got {_type_name(value)})"
    )


def format_tsp_number(x: float, precision: int = 6) -> str:
    """Format a number the way the 2600B ``print`` does (``1.00000e-03`` for precision 6)."""
    if type(x) is int and not -_MAXINT <= x <= _MAXINT:
        x = _num_result(x)
    if precision <= 0:
        return f"{x:.14g}"
    return f"{x:.{min(precision, 16) - 1}e}"


# ---------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------


class _BoolKey:
    __slots__ = ("value",)

    def __init__(self, value: bool) -> None:
        self.value = value


_TRUE_KEY, _FALSE_KEY = _BoolKey(True), _BoolKey(False)


class LuaTable:
    """A Lua table: array part for keys 1..n plus a hash part."""

    __slots__ = ("array", "hash")

    def __init__(self, array: Iterable[Any] = (), hash: Mapping[Any, Any] | None = None) -> None:
        self.array: list[Any] = list(array)
        self.hash: dict[Any, Any] = {}
        for k, v in (hash or {}).items():
            self.set(k, v)

    @staticmethod
    def _key(key: Any) -> Any:
        t = type(key)
        if t is float:
            if key != key:
                raise TspRuntimeError("table index is NaN")
            if key.is_integer():
                return int(key)
        elif t is bool:
            return _TRUE_KEY if key else _FALSE_KEY
        elif key is None:
            raise TspRuntimeError("table index is nil")
        return key

    def get(self, key: Any) -> Any:
        if type(key) is int:
            if 0 < key <= len(self.array):
                return self.array[key - 1]
            return self.hash.get(key)
        if key is None:
            return None
        key = self._key(key)
        if type(key) is int and 0 < key <= len(self.array):
            return self.array[key - 1]
        return self.hash.get(key)

    def set(self, key: Any, value: Any) -> None:
        key = self._key(key)
        arr = self.array
        if type(key) is int:
            n = len(arr)
            if 0 < key <= n:
                arr[key - 1] = value
                while arr and arr[-1] is None:
                    arr.pop()
                return
            if key == n + 1 and value is not None:
                arr.append(value)
                h = self.hash
                h.pop(key, None)
                k = key + 1
                while k in h:
                    arr.append(h.pop(k))
                    k += 1
                return
        if value is None:
            self.hash.pop(key, None)
        else:
            self.hash[key] = value

    def length(self) -> int:
        return len(self.array)

    def items(self) -> list[tuple[Any, Any]]:
        out = [(i + 1, v) for i, v in enumerate(self.array) if v is not None]
        for k, v in self.hash.items():
            out.append((k.value if type(k) is _BoolKey else k, v))
        return out

    def to_python(self) -> list[Any] | dict[Any, Any]:
        """A list when the table is a sequence, else a dict (values converted recursively)."""
        if not self.hash:
            return [_to_py(v) for v in self.array]
        return {k: _to_py(v) for k, v in self.items()}


class PyFunction:
    """A Python callable exposed to scripts. ``raw`` builtins get Lua values, return tuples."""

    __slots__ = ("_sig", "fn", "name", "owner", "raw")

    def __init__(
        self, fn: Callable[..., Any], name: str = "?", owner: Any = None, raw: bool = False
    ) -> None:
        self.fn = fn
        self.name = name
        self.owner = owner
        self.raw = raw
        self._sig: inspect.Signature | None = None

    def invoke(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        if self.raw:
            return self.fn(*args)
        for a in args:
            if type(a) is LuaTable:
                args = tuple(_to_py(x) for x in args)
                break
        try:
            result = self.fn(*args)
        except TypeError:
            if self._arity_ok(len(args)):
                raise
            raise TspRuntimeError(f"wrong number of arguments to '{self.name}'") from None
        if result is None:
            return (None,)
        if type(result) is tuple:
            return tuple(_from_py(r) for r in result)
        return (_from_py(result),)

    def _arity_ok(self, n: int) -> bool:
        if self._sig is None:
            try:
                self._sig = inspect.signature(self.fn)
            except (TypeError, ValueError):
                return True
        try:
            self._sig.bind(*([None] * n))
        except TypeError:
            return False
        return True


_FUNCTION_TYPES = (
    types.FunctionType,
    types.MethodType,
    types.BuiltinFunctionType,
    types.BuiltinMethodType,
    functools.partial,
)


def _from_py(v: Any) -> Any:
    """Python value -> Lua value (numbers normalised, functions wrapped, others as is)."""
    t = type(v)
    if t is float or t is int or t is str or t is bool or v is None:
        return v
    if isinstance(v, (LuaTable, TspObject, PyFunction, _LuaFunction)):
        return v
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, numbers.Integral):
        return _num_result(int(v))
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("latin-1")
    if isinstance(v, numbers.Real):
        return float(v)
    if isinstance(v, _FUNCTION_TYPES):
        return PyFunction(v, getattr(v, "__name__", "?"))
    return v  # dict/list/tuple/ndarray: read-only indexable; anything else: opaque userdata


def _to_py(v: Any) -> Any:
    return v.to_python() if type(v) is LuaTable else v


class TspObject:
    """Base for model objects visible to scripts; only allow-listed names are reachable.

    ``TSP_FIELDS`` (read/write), ``TSP_READONLY`` (read), ``TSP_METHODS`` (call) accumulate over
    the class hierarchy. Writes go through ``setattr``, so properties can validate and raise
    :class:`TspError`. Override ``tsp_index(key)`` for other keys (e.g. numbers), ``tsp_call``
    to make the object callable.
    """

    TSP_FIELDS: ClassVar[Iterable[str]] = ()
    TSP_READONLY: ClassVar[Iterable[str]] = ()
    TSP_METHODS: ClassVar[Iterable[str]] = ()
    _tsp_readable: ClassVar[frozenset[str]] = frozenset()
    _tsp_writable: ClassVar[frozenset[str]] = frozenset()
    _tsp_methods: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fields: set[str] = set()
        readonly: set[str] = set()
        methods: set[str] = set()
        for klass in reversed(cls.__mro__):
            fields |= set(vars(klass).get("TSP_FIELDS", ()))
            readonly |= set(vars(klass).get("TSP_READONLY", ()))
            methods |= set(vars(klass).get("TSP_METHODS", ()))
        for name in fields | readonly | methods:
            if not name.isidentifier() or name.startswith("_"):
                raise TypeError(f"{cls.__name__}: TSP name {name!r} is not allowed")
        cls._tsp_writable = frozenset(fields)
        cls._tsp_readable = frozenset(fields | readonly)
        cls._tsp_methods = frozenset(methods)

    def tsp_get(self, key: Any) -> Any:
        cls = type(self)
        if type(key) is str:
            if key in cls._tsp_readable:
                return _from_py(getattr(self, key))
            if key in cls._tsp_methods:
                try:
                    cache = self._tsp_fn_cache  # type: ignore[has-type]
                except AttributeError:
                    cache = self._tsp_fn_cache = {}
                fn = cache.get(key)
                if fn is None:
                    fn = cache[key] = PyFunction(getattr(self, key), key, owner=self)
                return fn
        return self.tsp_index(key)

    def tsp_set(self, key: Any, value: Any) -> None:
        cls = type(self)
        if type(key) is str and key in cls._tsp_writable:
            setattr(self, key, _to_py(value))
            return
        if type(key) is str and (key in cls._tsp_readable or key in cls._tsp_methods):
            raise TspRuntimeError(f"attempt to modify read-only field '{key}'")
        raise TspRuntimeError(f"attempt to set unknown field '{key}'")

    def tsp_index(self, key: Any) -> Any:
        """Value for keys that are not allow-listed names; nil by default."""
        return None


def _type_name(v: Any) -> str:
    if v is None:
        return "nil"
    t = type(v)
    if t is bool:
        return "boolean"
    if t is int or t is float:
        return "number"
    if t is str:
        return "string"
    if t is LuaTable or t is dict or t is list or t is tuple or t is np.ndarray:
        return "table"
    if t is PyFunction or t is _LuaFunction:
        return "function"
    return "userdata"


_NUMSTR = re.compile(r"\s*([+-]?(?:0[xX][0-9A-Fa-f]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?))\s*")


def _str_to_number(s: str) -> int | float | None:
    m = _NUMSTR.fullmatch(s)
    if m is None:
        return None
    txt = m.group(1)
    if "x" in txt or "X" in txt:
        return int(txt, 16)
    v = float(txt)
    return int(v) if v.is_integer() and "." not in txt and "e" not in txt.lower() else v


def _tostring(v: Any) -> str:
    """Lua ``tostring``: numbers as ``%.14g``."""
    t = type(v)
    if t is str:
        return v
    if t is int or t is float:
        return f"{_num_result(v):.14g}"
    if v is None:
        return "nil"
    if t is bool:
        return "true" if v else "false"
    return f"{_type_name(v)}: 0x{id(v):08x}"


# ---------------------------------------------------------------------------------------------
# Lexer
# ---------------------------------------------------------------------------------------------

_MAXINT = 2**53  # Lua numbers are doubles: larger integers become floats
_MAXSTR = 1 << 24  # longest string a script may build by concatenation


def _num_result(r: Any) -> Any:
    """Keep integer results exact only while a double could hold them."""
    if type(r) is int and not -_MAXINT <= r <= _MAXINT:
        try:
            return float(r)
        except OverflowError:
            return math.copysign(math.inf, r)
    return r


_KEYWORDS = frozenset(
    "and break do else elseif end false for function if in local nil not or repeat return "
    "then true until while".split()
)
_LEX = re.compile(
    r"""
    (?P<ws>[ \t\r\f\v]+)
  | (?P<nl>\n)
  | (?P<lcomment>--\[(?P<lceq>=*)\[.*?\](?P=lceq)\])
  | (?P<comment>--[^\n]*)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<num>0[xX][0-9A-Fa-f]+|(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
  | (?P<str>"(?:[^"\\\n]|\\(?:.|\n))*"|'(?:[^'\\\n]|\\(?:.|\n))*')
  | (?P<lstr>\[(?P<lseq>=*)\[.*?\](?P=lseq)\])
  | (?P<op>\.\.\.|\.\.|==|~=|<=|>=|[-+*/%^\#<>=(){}\[\];:,.])
    """,
    re.X | re.S,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}
_ESC = re.compile(r"\\(\d{1,3}|.|\n)", re.S)

# token: (kind, value, line, raw); kind is the keyword/operator text, or <name>, <number>,
# <string>, <eof>.
Token = tuple[str, Any, int, str]


def _unescape(body: str) -> str:
    def rep(m: re.Match[str]) -> str:
        s = m.group(1)
        if s.isdigit():
            return chr(int(s) & 0xFF)
        return _ESCAPES.get(s, s)

    return _ESC.sub(rep, body) if "\\" in body else body


def _tokenize(src: str) -> list[Token]:
    toks: list[Token] = []
    pos, line, n = 0, 1, len(src)
    match = _LEX.match
    while pos < n:
        m = match(src, pos)
        if m is None:
            c = src[pos]
            if c in "\"'":
                rest = src[pos:].split("\n", 1)[0]
                raise _LuaSyntaxError(line, f"unfinished string near '{rest}'")
            if src.startswith("[[", pos) or src.startswith("--[[", pos):
                raise _LuaSyntaxError(line, "unfinished long string near '<eof>'")
            raise _LuaSyntaxError(line, f"unexpected symbol near '{c}'")
        kind = m.lastgroup
        text = m.group()
        pos = m.end()
        if kind == "ws" or kind == "comment":
            continue
        if kind == "nl":
            line += 1
            continue
        if kind == "lcomment":
            line += text.count("\n")
            continue
        if kind == "name":
            toks.append((text if text in _KEYWORDS else "<name>", text, line, text))
        elif kind == "num":
            if pos < n and (src[pos].isalnum() or src[pos] in "_."):
                raise _LuaSyntaxError(line, f"malformed number near '{text}{src[pos]}'")
            if text[:2] in ("0x", "0X"):
                value: Any = int(text, 16)
            elif "." in text or "e" in text or "E" in text:
                value = float(text)
            else:
                value = int(text)
            if type(value) is int and not -_MAXINT <= value <= _MAXINT:
                value = float(text) if text[:2] not in ("0x", "0X") else float(value)
            toks.append(("<number>", value, line, text))
        elif kind == "str":
            toks.append(("<string>", _unescape(text[1:-1]), line, text))
            line += text.count("\n")
        elif kind == "lstr":
            eq = len(m.group("lseq"))
            body = text[2 + eq : -2 - eq]
            if body.startswith("\r\n"):
                body = body[2:]
            elif body.startswith("\n"):
                body = body[1:]
            toks.append(("<string>", body, line, text))
            line += text.count("\n")
        else:
            toks.append((text, text, line, text))
    toks.append(("<eof>", None, line, "<eof>"))
    return toks


# ---------------------------------------------------------------------------------------------
# Parser -> AST (tuples)
# ---------------------------------------------------------------------------------------------

_BINARY_PRIORITY = {
    "or": (1, 1), "and": (2, 2),
    "<": (3, 3), ">": (3, 3), "<=": (3, 3), ">=": (3, 3), "~=": (3, 3), "==": (3, 3),
    "..": (5, 4), "+": (6, 6), "-": (6, 6), "*": (7, 7), "/": (7, 7), "%": (7, 7),
    "^": (10, 9),
}  # fmt: skip
_UNARY_PRIORITY = 8
_BLOCK_END = frozenset(("else", "elseif", "end", "until", "<eof>"))


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.toks = tokens
        self.pos = 0
        self.loops = 0
        self.vararg_ok = [True]

    # helpers
    def peek(self) -> Token:
        return self.toks[self.pos]

    def advance(self) -> Token:
        tok = self.toks[self.pos]
        self.pos += 1
        return tok

    def accept(self, kind: str) -> bool:
        if self.toks[self.pos][0] == kind:
            self.pos += 1
            return True
        return False

    def error(self, message: str, tok: Token | None = None) -> _LuaSyntaxError:
        tok = tok or self.peek()
        return _LuaSyntaxError(tok[2], f"{message} near '{tok[3]}'")

    def expect(self, kind: str) -> Token:
        tok = self.peek()
        if tok[0] != kind:
            raise self.error(f"'{kind}' expected")
        self.pos += 1
        return tok

    def expect_match(self, kind: str, opener: str, line: int) -> None:
        tok = self.peek()
        if tok[0] == kind:
            self.pos += 1
            return
        if line == tok[2]:
            raise self.error(f"'{kind}' expected")
        raise self.error(f"'{kind}' expected (to close '{opener}' at line {line})")

    def name(self) -> str:
        tok = self.peek()
        if tok[0] != "<name>":
            raise self.error("<name> expected")
        self.pos += 1
        return tok[1]

    # chunk / blocks
    def chunk(self) -> list[tuple[Any, ...]]:
        body = self.block()
        if self.peek()[0] != "<eof>":
            raise self.error("'<eof>' expected")
        return body

    def block(self) -> list[tuple[Any, ...]]:
        stats: list[tuple[Any, ...]] = []
        while True:
            kind = self.peek()[0]
            if kind in _BLOCK_END:
                return stats
            if kind == "return":
                line = self.advance()[2]
                exprs = (
                    []
                    if self.peek()[0] in _BLOCK_END or self.peek()[0] == ";"
                    else (self.explist())
                )
                self.accept(";")
                stats.append(("return", exprs, line))
                return stats
            if kind == "break":
                tok = self.advance()
                if not self.loops:
                    raise self.error("no loop to break", tok)
                self.accept(";")
                stats.append(("break", tok[2]))
                return stats
            stats.append(self.statement())
            self.accept(";")

    def statement(self) -> tuple[Any, ...]:
        tok = self.peek()
        kind, line = tok[0], tok[2]
        if kind == "if":
            self.advance()
            clauses = []
            cond = self.expr()
            self.expect("then")
            clauses.append((cond, self.block()))
            orelse = None
            while True:
                k = self.peek()[0]
                if k == "elseif":
                    self.advance()
                    cond = self.expr()
                    self.expect("then")
                    clauses.append((cond, self.block()))
                elif k == "else":
                    self.advance()
                    orelse = self.block()
                    self.expect_match("end", "if", line)
                    break
                else:
                    self.expect_match("end", "if", line)
                    break
            return ("if", clauses, orelse, line)
        if kind == "while":
            self.advance()
            cond = self.expr()
            self.expect("do")
            body = self.loop_block()
            self.expect_match("end", "while", line)
            return ("while", cond, body, line)
        if kind == "do":
            self.advance()
            body = self.block()
            self.expect_match("end", "do", line)
            return ("do", body, line)
        if kind == "repeat":
            self.advance()
            body = self.loop_block()
            self.expect_match("until", "repeat", line)
            cond = self.expr()
            return ("repeat", body, cond, line)
        if kind == "for":
            self.advance()
            first = self.name()
            if self.accept("="):
                start = self.expr()
                self.expect(",")
                stop = self.expr()
                step = self.expr() if self.accept(",") else None
                self.expect("do")
                body = self.loop_block()
                self.expect_match("end", "for", line)
                return ("fornum", first, start, stop, step, body, line)
            names = [first]
            while self.accept(","):
                names.append(self.name())
            self.expect("in")
            exprs = self.explist()
            self.expect("do")
            body = self.loop_block()
            self.expect_match("end", "for", line)
            return ("forin", names, exprs, body, line)
        if kind == "function":
            self.advance()
            n1 = self.name()
            target: tuple[Any, ...] = ("name", n1, line)
            fname = n1
            method = False
            while self.peek()[0] in (".", ":"):
                sep = self.advance()[0]
                key = self.name()
                fname += sep + key
                target = ("index", target, ("str", key), line)
                if sep == ":":
                    method = True
                    break
            func = self.funcbody(line, fname, method)
            return ("assign", [target], [func], line)
        if kind == "local":
            self.advance()
            if self.accept("function"):
                n1 = self.name()
                return ("localfunction", n1, self.funcbody(line, n1, False), line)
            names = [self.name()]
            while self.accept(","):
                names.append(self.name())
            exprs = self.explist() if self.accept("=") else []
            return ("local", names, exprs, line)
        return self.exprstat()

    def loop_block(self) -> list[tuple[Any, ...]]:
        self.loops += 1
        try:
            return self.block()
        finally:
            self.loops -= 1

    def exprstat(self) -> tuple[Any, ...]:
        line = self.peek()[2]
        e = self.suffixedexp()
        if self.peek()[0] in ("=", ","):
            targets = [e]
            while self.accept(","):
                targets.append(self.suffixedexp())
            for t in targets:
                if t[0] not in ("name", "index"):
                    raise self.error("syntax error")
            self.expect("=")
            return ("assign", targets, self.explist(), line)
        if e[0] not in ("call", "method"):
            raise self.error("'=' expected")
        return ("callstat", e, line)

    def funcbody(self, line: int, name: str, method: bool) -> tuple[Any, ...]:
        self.expect("(")
        params = ["self"] if method else []
        vararg = False
        if self.peek()[0] != ")":
            while True:
                if self.accept("..."):
                    vararg = True
                    break
                params.append(self.name())
                if not self.accept(","):
                    break
        self.expect(")")
        saved_loops, self.loops = self.loops, 0
        self.vararg_ok.append(vararg)
        try:
            body = self.block()
        finally:
            self.vararg_ok.pop()
            self.loops = saved_loops
        self.expect_match("end", "function", line)
        return ("function", params, vararg, body, line, name)

    # expressions
    def explist(self) -> list[tuple[Any, ...]]:
        exprs = [self.expr()]
        while self.accept(","):
            exprs.append(self.expr())
        return exprs

    def expr(self, limit: int = 0) -> tuple[Any, ...]:
        tok = self.peek()
        kind = tok[0]
        if kind in ("not", "-", "#"):
            self.advance()
            operand = self.expr(_UNARY_PRIORITY)
            if kind == "-" and operand[0] == "num":
                left: tuple[Any, ...] = ("num", -operand[1])
            else:
                left = ("unop", kind, operand, tok[2])
        else:
            left = self.simpleexp()
        while True:
            tok = self.peek()
            prio = _BINARY_PRIORITY.get(tok[0])
            if prio is None or prio[0] <= limit:
                return left
            self.advance()
            right = self.expr(prio[1])
            op = tok[0]
            if op == "and" or op == "or":
                left = (op, left, right)
            else:
                left = ("binop", op, left, right, tok[2])

    def simpleexp(self) -> tuple[Any, ...]:
        tok = self.peek()
        kind = tok[0]
        if kind == "<number>":
            self.advance()
            return ("num", tok[1])
        if kind == "<string>":
            self.advance()
            return ("str", tok[1])
        if kind == "nil":
            self.advance()
            return ("nil",)
        if kind == "true":
            self.advance()
            return ("true",)
        if kind == "false":
            self.advance()
            return ("false",)
        if kind == "...":
            if not self.vararg_ok[-1]:
                raise self.error("cannot use '...' outside a vararg function")
            self.advance()
            return ("vararg",)
        if kind == "{":
            return self.table()
        if kind == "function":
            self.advance()
            return self.funcbody(tok[2], "anonymous", False)
        return self.suffixedexp()

    def primaryexp(self) -> tuple[Any, ...]:
        tok = self.peek()
        if tok[0] == "<name>":
            self.advance()
            return ("name", tok[1], tok[2])
        if tok[0] == "(":
            self.advance()
            e = self.expr()
            self.expect_match(")", "(", tok[2])
            return ("paren", e)
        raise self.error("unexpected symbol")

    def suffixedexp(self) -> tuple[Any, ...]:
        e = self.primaryexp()
        while True:
            tok = self.peek()
            kind, line = tok[0], tok[2]
            if kind == ".":
                self.advance()
                e = ("index", e, ("str", self.name()), line)
            elif kind == "[":
                self.advance()
                key = self.expr()
                self.expect("]")
                e = ("index", e, key, line)
            elif kind == ":":
                self.advance()
                name = self.name()
                e = ("method", e, name, self.callargs(), line)
            elif kind in ("(", "<string>", "{"):
                e = ("call", e, self.callargs(), line)
            else:
                return e

    def callargs(self) -> list[tuple[Any, ...]]:
        tok = self.peek()
        if tok[0] == "<string>":
            self.advance()
            return [("str", tok[1])]
        if tok[0] == "{":
            return [self.table()]
        if tok[0] != "(":
            raise self.error("function arguments expected")
        self.advance()
        if self.accept(")"):
            return []
        args = self.explist()
        self.expect_match(")", "(", tok[2])
        return args

    def table(self) -> tuple[Any, ...]:
        line = self.expect("{")[2]
        items: list[tuple[Any, ...]] = []
        pairs: list[tuple[tuple[Any, ...], tuple[Any, ...]]] = []
        while self.peek()[0] != "}":
            tok = self.peek()
            if tok[0] == "[":
                self.advance()
                key = self.expr()
                self.expect("]")
                self.expect("=")
                pairs.append((key, self.expr()))
            elif tok[0] == "<name>" and self.toks[self.pos + 1][0] == "=":
                self.pos += 2
                pairs.append((("str", tok[1]), self.expr()))
            else:
                items.append(self.expr())
            if not (self.accept(",") or self.accept(";")):
                break
        self.expect_match("}", "{", line)
        return ("table", items, pairs, line)


# ---------------------------------------------------------------------------------------------
# Compiler: AST -> Python closures over a frame
# ---------------------------------------------------------------------------------------------


class _Frame:
    __slots__ = ("parent", "slots", "varargs")

    def __init__(self, nslots: int, parent: _Frame | None, varargs: tuple[Any, ...]) -> None:
        self.slots: list[Any] = [None] * nslots
        self.parent = parent
        self.varargs = varargs


class _Ret:
    __slots__ = ("values",)

    def __init__(self, values: tuple[Any, ...]) -> None:
        self.values = values


_BREAK = object()


class _Proto:
    __slots__ = ("body", "name", "nparams", "nslots", "vararg")

    def __init__(self, name: str) -> None:
        self.name = name
        self.body: Callable[[_Frame], Any] = lambda f: None
        self.nslots = 0
        self.nparams = 0
        self.vararg = False


class _LuaFunction:
    __slots__ = ("frame", "proto", "rt")

    def __init__(self, proto: _Proto, frame: _Frame | None, rt: _Runtime) -> None:
        self.proto = proto
        self.frame = frame
        self.rt = rt

    def invoke(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        p = self.proto
        rt = self.rt
        rt.depth += 1
        if rt.depth > rt.max_depth:
            rt.depth = 0
            raise TspRuntimeError("stack overflow")
        try:
            np_ = p.nparams
            frame = _Frame(p.nslots, self.frame, tuple(args[np_:]) if p.vararg else ())
            slots = frame.slots
            for i in range(min(np_, len(args))):
                slots[i] = args[i]
            r = p.body(frame)
        finally:
            rt.depth -= 1
        if type(r) is _Ret:
            return r.values
        return ()


class _Runtime:
    __slots__ = ("depth", "max_depth", "max_steps", "steps")

    def __init__(self, max_steps: int) -> None:
        self.steps = 0
        self.max_steps = max_steps
        self.depth = 0
        self.max_depth = 100

    def tick(self) -> None:
        self.steps += 1
        if self.steps > self.max_steps:
            raise TspRuntimeError("script step limit exceeded")


def _describe(node: tuple[Any, ...], fs: _FuncState) -> str:
    """Lua's wording for the variable an error is about: ``global 'x'``, ``field 'y'`` ..."""
    kind = node[0]
    if kind == "name":
        return f"local '{node[1]}'" if fs.resolve(node[1]) is not None else f"global '{node[1]}'"
    if kind == "index" and node[2][0] == "str":
        return f"field '{node[2][1]}'"
    if kind == "method":
        return f"method '{node[2]}'"
    return ""


def _err_value(desc: str, v: Any) -> str:
    return f"{desc} (a {_type_name(v)} value)" if desc else f"a {_type_name(v)} value"


def _index(obj: Any, key: Any, desc: str) -> Any:
    t = type(obj)
    if t is LuaTable:
        return obj.get(key)
    if isinstance(obj, TspObject):
        return obj.tsp_get(key)
    if t is dict:
        if type(key) is float and key.is_integer():
            key = int(key)
        return _from_py(obj.get(key))
    if t is list or t is tuple or t is np.ndarray:
        if type(key) is float and key.is_integer():
            key = int(key)
        if type(key) is int and 0 < key <= len(obj):
            return _from_py(obj[key - 1])
        return None
    raise TspRuntimeError(f"attempt to index {_err_value(desc, obj)}")


def _setindex(obj: Any, key: Any, value: Any, desc: str) -> None:
    t = type(obj)
    if t is LuaTable:
        obj.set(key, value)
    elif isinstance(obj, TspObject):
        obj.tsp_set(key, value)
    elif t is dict or t is list or t is tuple or t is np.ndarray:
        raise TspRuntimeError(f"attempt to modify read-only table {desc}".rstrip())
    else:
        raise TspRuntimeError(f"attempt to index {_err_value(desc, obj)}")


def _call(fn: Any, args: tuple[Any, ...], desc: str) -> tuple[Any, ...]:
    t = type(fn)
    if t is PyFunction or t is _LuaFunction:
        return fn.invoke(args)
    if isinstance(fn, TspObject) and hasattr(type(fn), "tsp_call"):
        r = fn.tsp_call(*args)  # type: ignore[attr-defined]
        return r if type(r) is tuple else (_from_py(r),)
    raise TspRuntimeError(f"attempt to call {_err_value(desc, fn)}")


def _tonum(v: Any) -> Any:
    t = type(v)
    if t is int or t is float:
        return v
    if t is str:
        return _str_to_number(v)
    return None


def _arith(op: str, a: Any, b: Any, da: str, db: str) -> Any:
    x, y = _tonum(a), _tonum(b)
    if x is None or y is None:
        bad, desc = (a, da) if x is None else (b, db)
        raise TspRuntimeError(f"attempt to perform arithmetic on {_err_value(desc, bad)}")
    return _ARITH[op](x, y)


def _div(x: Any, y: Any) -> float:
    try:
        return x / y
    except ZeroDivisionError:
        if x == 0 or x != x:
            return math.nan
        return math.copysign(math.inf, x) * math.copysign(1.0, y)


def _mod(x: Any, y: Any) -> Any:
    if y == 0:
        return math.nan
    return x - math.floor(x / y) * y


def _pow(x: Any, y: Any) -> float:
    try:
        return math.pow(x, y)
    except ValueError:
        return math.nan
    except OverflowError:
        return math.inf


_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": lambda x, y: _num_result(x + y),
    "-": lambda x, y: _num_result(x - y),
    "*": lambda x, y: _num_result(x * y),
    "/": _div,
    "%": _mod,
    "^": _pow,
}


def _eq(a: Any, b: Any) -> bool:
    ta, tb = type(a), type(b)
    if ta is tb:
        if ta is int or ta is float or ta is str or ta is bool:
            return a == b
        return a is b
    if (ta is int or ta is float) and (tb is int or tb is float):
        return a == b
    return False


def _lt(a: Any, b: Any, op: str) -> bool:
    ta, tb = type(a), type(b)
    if ((ta is int or ta is float) and (tb is int or tb is float)) or (ta is str and tb is str):
        if op == "<":
            return a < b
        if op == "<=":
            return a <= b
        if op == ">":
            return a > b
        return a >= b
    n1, n2 = _type_name(a), _type_name(b)
    if n1 == n2:
        raise TspRuntimeError(f"attempt to compare two {n1} values")
    raise TspRuntimeError(f"attempt to compare {n1} with {n2}")


def _concat(a: Any, b: Any, da: str, db: str) -> str:
    for v, d in ((a, da), (b, db)):
        t = type(v)
        if not (t is str or t is int or t is float):
            raise TspRuntimeError(f"attempt to concatenate {_err_value(d, v)}")
    out = _tostring(a) + _tostring(b)
    if len(out) > _MAXSTR:
        raise TspRuntimeError("string length overflow")
    return out


def _length(v: Any, desc: str) -> int:
    t = type(v)
    if t is str:
        return len(v)
    if t is LuaTable:
        return v.length()
    if t is list or t is tuple or t is np.ndarray:
        return len(v)
    raise TspRuntimeError(f"attempt to get length of {_err_value(desc, v)}")


class _FuncState:
    def __init__(self, parent: _FuncState | None, proto: _Proto) -> None:
        self.parent = parent
        self.proto = proto
        self.blocks: list[dict[str, int]] = [{}]

    def declare(self, name: str) -> int:
        slot = self.proto.nslots
        self.proto.nslots += 1
        self.blocks[-1][name] = slot
        return slot

    def resolve(self, name: str) -> tuple[int, int] | None:
        fs: _FuncState | None = self
        depth = 0
        while fs is not None:
            for block in reversed(fs.blocks):
                if name in block:
                    return depth, block[name]
            fs = fs.parent
            depth += 1
        return None


Ev = Callable[[_Frame], Any]


class _Compiler:
    """Turns the AST into closures ``f(frame)``; globals and runtime are bound in."""

    def __init__(self, globals_: dict[str, Any], rt: _Runtime) -> None:
        self.g = globals_
        self.rt = rt
        self.fs: _FuncState | None = None

    def chunk(self, ast: list[tuple[Any, ...]], name: str = "chunk") -> _Proto:
        proto = _Proto(name)
        proto.vararg = True
        self.fs = _FuncState(None, proto)
        proto.body = self.block(ast, new_scope=False)
        self.fs = None
        return proto

    # -- blocks and statements ----------------------------------------------------------
    def block(self, stats: list[tuple[Any, ...]], new_scope: bool = True) -> Ev:
        fs = self.fs
        assert fs is not None
        if new_scope:
            fs.blocks.append({})
        try:
            compiled = [self.stat(s) for s in stats]
        finally:
            if new_scope:
                fs.blocks.pop()
        if not compiled:
            return lambda f: None
        if len(compiled) == 1:
            return compiled[0]
        seq = tuple(compiled)

        def run(f: _Frame) -> Any:
            for s in seq:
                r = s(f)
                if r is not None:
                    return r
            return None

        return run

    def stat(self, s: tuple[Any, ...]) -> Ev:
        return getattr(self, "s_" + s[0])(s)

    def s_callstat(self, s: tuple[Any, ...]) -> Ev:
        call = self.multi(s[1])

        def run(f: _Frame) -> None:
            call(f)

        return run

    def s_assign(self, s: tuple[Any, ...]) -> Ev:
        _, targets, exprs, _line = s
        if len(targets) == 1 and len(exprs) == 1:
            setter = self.setter(targets[0])
            ev = self.expr(exprs[0])

            def run1(f: _Frame) -> None:
                setter(f, ev(f))

            return run1
        setters = [self.setter(t) for t in targets]
        values = self.explist(exprs, len(targets))

        def run(f: _Frame) -> None:
            vals = values(f)
            for st, v in zip(setters, vals, strict=True):
                st(f, v)

        return run

    def s_local(self, s: tuple[Any, ...]) -> Ev:
        _, names, exprs, _line = s
        values = self.explist(exprs, len(names)) if exprs else None
        fs = self.fs
        assert fs is not None
        slots = [fs.declare(n) for n in names]  # declared after the values are compiled

        def run(f: _Frame) -> None:
            sl = f.slots
            if values is None:
                for i in slots:
                    sl[i] = None
            else:
                for i, v in zip(slots, values(f), strict=True):
                    sl[i] = v

        return run

    def s_localfunction(self, s: tuple[Any, ...]) -> Ev:
        _, name, func, _line = s
        fs = self.fs
        assert fs is not None
        slot = fs.declare(name)  # visible inside its own body (recursion)
        make = self.expr(func)

        def run(f: _Frame) -> None:
            f.slots[slot] = make(f)

        return run

    def s_return(self, s: tuple[Any, ...]) -> Ev:
        exprs = s[1]
        if not exprs:
            empty = _Ret(())
            return lambda f: empty
        if len(exprs) == 1 and exprs[0][0] not in ("call", "method", "vararg"):
            ev = self.expr(exprs[0])
            return lambda f: _Ret((ev(f),))
        values = self.explist(exprs, None)
        return lambda f: _Ret(tuple(values(f)))

    def s_break(self, s: tuple[Any, ...]) -> Ev:
        return lambda f: _BREAK

    def s_do(self, s: tuple[Any, ...]) -> Ev:
        return self.block(s[1])

    def s_if(self, s: tuple[Any, ...]) -> Ev:
        _, clauses, orelse, _line = s
        compiled = tuple((self.expr(c), self.block(b)) for c, b in clauses)
        other = self.block(orelse) if orelse is not None else None

        def run(f: _Frame) -> Any:
            for cond, body in compiled:
                v = cond(f)
                if v is not None and v is not False:
                    return body(f)
            if other is not None:
                return other(f)
            return None

        return run

    def s_while(self, s: tuple[Any, ...]) -> Ev:
        _, cond_node, body_node, _line = s
        cond = self.expr(cond_node)
        body = self.block(body_node)
        tick = self.rt.tick

        def run(f: _Frame) -> Any:
            while True:
                v = cond(f)
                if v is None or v is False:
                    return None
                tick()
                r = body(f)
                if r is not None:
                    return None if r is _BREAK else r

        return self._lined(run, s[3])

    def s_repeat(self, s: tuple[Any, ...]) -> Ev:
        _, body_node, cond_node, _line = s
        fs = self.fs
        assert fs is not None
        fs.blocks.append({})  # the condition sees the body's locals
        try:
            body = self.block(body_node, new_scope=False)
            cond = self.expr(cond_node)
        finally:
            fs.blocks.pop()
        tick = self.rt.tick

        def run(f: _Frame) -> Any:
            while True:
                tick()
                r = body(f)
                if r is not None:
                    return None if r is _BREAK else r
                v = cond(f)
                if v is not None and v is not False:
                    return None

        return self._lined(run, s[3])

    def s_fornum(self, s: tuple[Any, ...]) -> Ev:
        _, var, start_n, stop_n, step_n, body_node, _line = s
        start = self.expr(start_n)
        stop = self.expr(stop_n)
        step = self.expr(step_n) if step_n is not None else None
        fs = self.fs
        assert fs is not None
        fs.blocks.append({})
        try:
            slot = fs.declare(var)
            body = self.block(body_node)
        finally:
            fs.blocks.pop()
        rt = self.rt

        def run(f: _Frame) -> Any:
            a = _tonum(start(f))
            b = _tonum(stop(f))
            c = _tonum(step(f)) if step is not None else 1
            if a is None:
                raise TspRuntimeError("'for' initial value must be a number")
            if b is None:
                raise TspRuntimeError("'for' limit must be a number")
            if c is None:
                raise TspRuntimeError("'for' step must be a number")
            if c == 0:
                raise TspRuntimeError("'for' step is zero")
            sl = f.slots
            i = a
            while (i <= b) if c > 0 else (i >= b):
                rt.steps += 1
                if rt.steps > rt.max_steps:
                    raise TspRuntimeError("script step limit exceeded")
                sl[slot] = i
                r = body(f)
                if r is not None:
                    return None if r is _BREAK else r
                i += c
            return None

        return self._lined(run, s[6])

    def s_forin(self, s: tuple[Any, ...]) -> Ev:
        _, names, exprs, body_node, line = s
        values = self.explist(exprs, 3)
        fs = self.fs
        assert fs is not None
        fs.blocks.append({})
        try:
            slots = [fs.declare(n) for n in names]
            body = self.block(body_node)
        finally:
            fs.blocks.pop()
        tick = self.rt.tick

        def run(f: _Frame) -> Any:
            fn, state, ctrl = values(f)
            sl = f.slots
            while True:
                tick()
                rs = _call(fn, (state, ctrl), "for iterator")
                if not rs or rs[0] is None:
                    return None
                ctrl = rs[0]
                for i, slot in enumerate(slots):
                    sl[slot] = rs[i] if i < len(rs) else None
                r = body(f)
                if r is not None:
                    return None if r is _BREAK else r

        return self._lined(run, line)

    # -- assignment targets ---------------------------------------------------------------
    def setter(self, node: tuple[Any, ...]) -> Callable[[_Frame, Any], None]:
        fs = self.fs
        assert fs is not None
        if node[0] == "name":
            name, line = node[1], node[2]
            res = fs.resolve(name)
            if res is None:
                g = self.g

                def set_global(f: _Frame, v: Any) -> None:
                    g[name] = v

                return set_global
            depth, slot = res
            if depth == 0:

                def set_local(f: _Frame, v: Any) -> None:
                    f.slots[slot] = v

                return set_local

            def set_upvalue(f: _Frame, v: Any) -> None:
                fr = f
                for _ in range(depth):
                    fr = fr.parent  # type: ignore[assignment]
                fr.slots[slot] = v

            return set_upvalue
        _, obj_n, key_n, line = node
        obj = self.expr(obj_n)
        desc = _describe(obj_n, fs)
        if key_n[0] == "str":
            key = key_n[1]

            def set_field(f: _Frame, v: Any) -> None:
                o = obj(f)
                try:
                    if type(o) is LuaTable:
                        o.set(key, v)
                    else:
                        _setindex(o, key, v, desc)
                except TspRuntimeError as e:
                    if e.line is None:
                        e.line = line
                    raise

            return set_field
        keyev = self.expr(key_n)

        def set_index(f: _Frame, v: Any) -> None:
            o = obj(f)
            k = keyev(f)
            try:
                _setindex(o, k, v, desc)
            except TspRuntimeError as e:
                if e.line is None:
                    e.line = line
                raise

        return set_index

    # -- expressions ----------------------------------------------------------------------
    @staticmethod
    def _lined(ev: Ev, line: int) -> Ev:
        def run(f: _Frame) -> Any:
            try:
                return ev(f)
            except TspRuntimeError as e:
                if e.line is None:
                    e.line = line
                raise

        return run

    def explist(self, exprs: list[tuple[Any, ...]], n: int | None) -> Callable[[_Frame], list]:
        """Evaluate an expression list adjusted to ``n`` values (None: keep all)."""
        if not exprs:
            return lambda f: [None] * (n or 0)
        singles = [self.expr(e) for e in exprs[:-1]]
        last = exprs[-1]
        last_multi = self.multi(last) if last[0] in ("call", "method", "vararg") else None
        last_single = self.expr(last) if last_multi is None else None

        def run(f: _Frame) -> list:
            vals = [ev(f) for ev in singles]
            if last_multi is not None:
                vals.extend(last_multi(f))
            else:
                vals.append(last_single(f))  # type: ignore[misc]
            if n is not None:
                if len(vals) < n:
                    vals.extend([None] * (n - len(vals)))
                elif len(vals) > n:
                    del vals[n:]
            return vals

        return run

    def multi(self, node: tuple[Any, ...]) -> Callable[[_Frame], tuple[Any, ...]]:
        """Compile a call or ``...`` to a closure returning all its values."""
        kind = node[0]
        fs = self.fs
        assert fs is not None
        if kind == "vararg":
            return lambda f: f.varargs
        if kind == "call":
            _, fn_n, arg_ns, line = node
            fn = self.expr(fn_n)
            args = self.args(arg_ns)
            desc = _describe(fn_n, fs)

            def call(f: _Frame) -> tuple[Any, ...]:
                callee = fn(f)
                a = args(f)
                try:
                    if type(callee) is PyFunction:
                        return callee.invoke(a)
                    return _call(callee, a, desc)
                except TspRuntimeError as e:
                    if e.line is None:
                        e.line = line
                    raise

            return call
        if kind == "method":
            _, obj_n, name, arg_ns, line = node
            obj = self.expr(obj_n)
            args = self.args(arg_ns)
            desc = f"method '{name}'"
            odesc = _describe(obj_n, fs)

            def mcall(f: _Frame) -> tuple[Any, ...]:
                o = obj(f)
                try:
                    callee = _index(o, name, odesc)
                    a = args(f)
                    if type(callee) is PyFunction and callee.owner is o:
                        return callee.invoke(a)
                    return _call(callee, (o, *a), desc)
                except TspRuntimeError as e:
                    if e.line is None:
                        e.line = line
                    raise

            return mcall
        ev = self.expr(node)
        return lambda f: (ev(f),)

    def args(self, arg_ns: list[tuple[Any, ...]]) -> Callable[[_Frame], tuple[Any, ...]]:
        if not arg_ns:
            return lambda f: ()
        if all(a[0] not in ("call", "method", "vararg") for a in arg_ns):
            evs = [self.expr(a) for a in arg_ns]
            if len(evs) == 1:
                e0 = evs[0]
                return lambda f: (e0(f),)
            return lambda f: tuple([e(f) for e in evs])
        values = self.explist(arg_ns, None)
        return lambda f: tuple(values(f))

    def expr(self, node: tuple[Any, ...]) -> Ev:
        return getattr(self, "e_" + node[0])(node)

    def e_nil(self, node: tuple[Any, ...]) -> Ev:
        return lambda f: None

    def e_true(self, node: tuple[Any, ...]) -> Ev:
        return lambda f: True

    def e_false(self, node: tuple[Any, ...]) -> Ev:
        return lambda f: False

    def e_num(self, node: tuple[Any, ...]) -> Ev:
        v = node[1]
        return lambda f: v

    e_str = e_num

    def e_vararg(self, node: tuple[Any, ...]) -> Ev:
        return lambda f: f.varargs[0] if f.varargs else None

    def e_paren(self, node: tuple[Any, ...]) -> Ev:
        return self.expr(node[1])

    def e_call(self, node: tuple[Any, ...]) -> Ev:
        m = self.multi(node)

        def first(f: _Frame) -> Any:
            r = m(f)
            return r[0] if r else None

        return first

    e_method = e_call

    def e_name(self, node: tuple[Any, ...]) -> Ev:
        fs = self.fs
        assert fs is not None
        name = node[1]
        res = fs.resolve(name)
        if res is None:
            get = self.g.get
            return lambda f: get(name)
        depth, slot = res
        if depth == 0:
            return lambda f: f.slots[slot]
        if depth == 1:
            return lambda f: f.parent.slots[slot]  # type: ignore[union-attr]

        def upvalue(f: _Frame) -> Any:
            fr = f
            for _ in range(depth):
                fr = fr.parent  # type: ignore[assignment]
            return fr.slots[slot]

        return upvalue

    def e_index(self, node: tuple[Any, ...]) -> Ev:
        fs = self.fs
        assert fs is not None
        _, obj_n, key_n, line = node
        obj = self.expr(obj_n)
        desc = _describe(obj_n, fs)
        if key_n[0] == "str":
            key = key_n[1]

            def field(f: _Frame) -> Any:
                o = obj(f)
                if type(o) is LuaTable:
                    return o.get(key)
                try:
                    return _index(o, key, desc)
                except TspRuntimeError as e:
                    if e.line is None:
                        e.line = line
                    raise

            return field
        keyev = self.expr(key_n)

        def index(f: _Frame) -> Any:
            o = obj(f)
            k = keyev(f)
            try:
                return _index(o, k, desc)
            except TspRuntimeError as e:
                if e.line is None:
                    e.line = line
                raise

        return index

    def e_function(self, node: tuple[Any, ...]) -> Ev:
        _, params, vararg, body, _line, name = node
        proto = _Proto(name)
        proto.vararg = vararg
        parent = self.fs
        fs = _FuncState(parent, proto)
        self.fs = fs
        try:
            for p in params:
                fs.declare(p)
            proto.nparams = len(params)
            proto.body = self.block(body, new_scope=False)
        finally:
            self.fs = parent
        rt = self.rt
        return lambda f: _LuaFunction(proto, f, rt)

    def e_table(self, node: tuple[Any, ...]) -> Ev:
        _, items, pairs, _line = node
        consts = all(i[0] in ("num", "str", "true", "false") for i in items) and not pairs
        if consts:
            values = [i[1] if i[0] in ("num", "str") else i[0] == "true" for i in items]
            return lambda f: LuaTable(values)
        arr = self.explist(items, None) if items else None
        kv = [(self.expr(k), self.expr(v)) for k, v in pairs]

        def make(f: _Frame) -> LuaTable:
            t = LuaTable()
            for k, v in kv:
                t.set(k(f), v(f))
            if arr is not None:
                for i, v in enumerate(arr(f), 1):
                    t.set(i, v)
            return t

        return self._lined(make, node[3])

    def e_and(self, node: tuple[Any, ...]) -> Ev:
        a, b = self.expr(node[1]), self.expr(node[2])

        def run(f: _Frame) -> Any:
            v = a(f)
            return b(f) if v is not None and v is not False else v

        return run

    def e_or(self, node: tuple[Any, ...]) -> Ev:
        a, b = self.expr(node[1]), self.expr(node[2])

        def run(f: _Frame) -> Any:
            v = a(f)
            return v if v is not None and v is not False else b(f)

        return run

    def e_unop(self, node: tuple[Any, ...]) -> Ev:
        _, op, operand, line = node
        ev = self.expr(operand)
        fs = self.fs
        assert fs is not None
        desc = _describe(operand, fs)
        if op == "not":

            def lnot(f: _Frame) -> bool:
                v = ev(f)
                return v is None or v is False

            return lnot
        if op == "#":
            return self._lined(lambda f: _length(ev(f), desc), line)

        def neg(f: _Frame) -> Any:
            v = ev(f)
            t = type(v)
            if t is int or t is float:
                return -v
            n = _tonum(v)
            if n is None:
                raise TspRuntimeError(f"attempt to perform arithmetic on {_err_value(desc, v)}")
            return -n

        return self._lined(neg, line)

    def e_binop(self, node: tuple[Any, ...]) -> Ev:
        _, op, a_n, b_n, line = node
        a, b = self.expr(a_n), self.expr(b_n)
        fs = self.fs
        assert fs is not None
        da, db = _describe(a_n, fs), _describe(b_n, fs)
        if op in _ARITH:
            fn = _ARITH[op]

            def arith(f: _Frame) -> Any:
                x, y = a(f), b(f)
                tx, ty = type(x), type(y)
                if (tx is int or tx is float) and (ty is int or ty is float):
                    return fn(x, y)
                return _arith(op, x, y, da, db)

            return self._lined(arith, line)
        if op == "..":
            return self._lined(lambda f: _concat(a(f), b(f), da, db), line)
        if op == "==":
            return lambda f: _eq(a(f), b(f))
        if op == "~=":
            return lambda f: not _eq(a(f), b(f))
        return self._lined(lambda f: _lt(a(f), b(f), op), line)


# ---------------------------------------------------------------------------------------------
# Built-in objects
# ---------------------------------------------------------------------------------------------


class TspFormat(TspObject):
    """The ``format`` object: data format, ASCII precision and byte order for output."""

    TSP_FIELDS = ("data", "asciiprecision", "byteorder")
    TSP_READONLY = (
        "ASCII", "SREAL", "REAL32", "REAL", "REAL64", "DREAL",
        "NORMAL", "BIGENDIAN", "NETWORK", "SWAPPED", "LITTLEENDIAN",
    )  # fmt: skip
    ASCII, SREAL, REAL32, REAL, REAL64, DREAL = 1, 2, 2, 3, 3, 3
    NORMAL, BIGENDIAN, NETWORK, SWAPPED, LITTLEENDIAN = 0, 0, 0, 1, 1

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._data = 1
        self._precision = 6
        self._byteorder = 1

    @staticmethod
    def _check(value: Any, low: int, high: int) -> int:
        v = check_number(value, 1, "format")
        if v < low:
            raise TspError(1102, "Parameter too small")
        if v > high:
            raise TspError(1101, "Parameter too big")
        return int(v)

    @property
    def data(self) -> int:
        return self._data

    @data.setter
    def data(self, value: Any) -> None:
        self._data = self._check(value, 1, 3)

    @property
    def asciiprecision(self) -> int:
        return self._precision

    @asciiprecision.setter
    def asciiprecision(self, value: Any) -> None:
        self._precision = self._check(value, 0, 16)

    @property
    def byteorder(self) -> int:
        return self._byteorder

    @byteorder.setter
    def byteorder(self, value: Any) -> None:
        self._byteorder = self._check(value, 0, 1)


class TspErrorQueue(TspObject):
    """The ``errorqueue`` object (entries: code, message, severity, node)."""

    TSP_READONLY = ("count",)
    TSP_METHODS = ("clear", "next")

    def __init__(self, instrument: TspInstrument) -> None:
        self._instrument = instrument

    @property
    def count(self) -> int:
        return len(self._instrument.errors)

    def clear(self) -> None:
        self._instrument.errors.clear()

    def next(self) -> tuple[int, str, int, int]:
        return self._instrument.pop_error()


class TspLocalNode(TspObject):
    """The ``localnode`` object: identity fields from ``*IDN?`` plus a few settings."""

    TSP_FIELDS = ("linefreq", "prompts", "prompts4882", "showerrors")
    TSP_READONLY = ("model", "serialno", "revision", "description")

    def __init__(self, idn: str) -> None:
        fields = [p.strip() for p in idn.split(",")] + ["", "", "", ""]
        model = fields[1]
        self.model = model[6:].strip() if model.lower().startswith("model ") else model
        self.serialno = fields[2]
        self.revision = fields[3]
        self.description = f"{fields[0]} {self.model}".strip()
        self.linefreq = 60
        self.prompts = 0
        self.prompts4882 = 1
        self.showerrors = 0


class TspScript(TspObject):
    """A script stored by ``loadscript``: ``name()`` or ``name.run()`` runs it."""

    TSP_READONLY = ("name", "source")
    TSP_METHODS = ("run", "save")

    def __init__(self, instrument: TspInstrument, name: str, source: str, proto: Any) -> None:
        self._instrument = instrument
        self._proto = proto
        self.name = name
        self.source = source

    def run(self) -> tuple[Any, ...]:
        return self._instrument._run_proto(self._proto)

    def save(self) -> None:
        """No non-volatile memory in the simulation: a no-op."""

    def tsp_call(self, *args: Any) -> tuple[Any, ...]:
        return self.run()


# ---------------------------------------------------------------------------------------------
# Instrument base
# ---------------------------------------------------------------------------------------------

_SCRIPT_START = re.compile(
    r"\s*(loadscript|loadandrunscript)(?![A-Za-z0-9_])[ \t]*([A-Za-z_][A-Za-z0-9_]*)?[ \t\r]*"
)
_FAST_ASSIGN = re.compile(
    r"\s*([A-Za-z_][A-Za-z0-9_]*(?:\s*(?:\.\s*[A-Za-z_][A-Za-z0-9_]*|\[\s*\d+\s*\]))*)"
    r"\s*=\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*;?\s*"
)
_CACHE_LIMIT = 512


class TspInstrument:
    """Base of simulated TSP instruments: message handling, error queue, built-in globals.

    Models expose objects through ``tsp_namespace()`` (called once, on the first message)::

        class Source(TspObject):
            TSP_FIELDS = ("levelv", "func")  # read/write attributes
            TSP_READONLY = ("OUTPUT_DCVOLTS",)  # read-only attributes and constants
            TSP_METHODS = ("reset",)  # callable from scripts

        class Smu2600(TspInstrument):
            def tsp_namespace(self) -> dict[str, Any]:
                return {"smua": self.smua}

    Python functions get Lua tables as ``list`` (sequences) or ``dict``; they return a value,
    ``None`` (nil) or a ``tuple`` (several values); lists/dicts/ndarrays they return are
    read-only tables. Errors: raise :class:`TspError` (own code) or :class:`TspRuntimeError`
    (-286). Hooks: ``reset()`` (``reset()``/``*RST``; call super), ``trigger()`` (``*TRG``),
    ``delay(s)``, ``waitcomplete()``, ``clear_status()`` (``*CLS``).
    """

    idn: ClassVar[str] = "Keithley Instruments Inc., Model SIM, 0, 0.0.0"
    termination: ClassVar[str] = "\n"
    error_queue_size: ClassVar[int] = 30
    node: ClassVar[int] = 1
    max_steps: ClassVar[int] = 1_000_000

    def __init__(self, idn: str | None = None) -> None:
        if idn is not None:
            self.idn = idn
        self.errors: deque[tuple[int, str, int, int]] = deque()
        self.esr = 0
        self.ese = 0
        self.sre = 0
        self.format = TspFormat()
        self.errorqueue = TspErrorQueue(self)
        self.localnode = TspLocalNode(self.idn)
        self._out: list[bytes] = []
        self._rt = _Runtime(self.max_steps)
        self._globals: dict[str, Any] | None = None
        self._compiler: _Compiler | None = None
        self._chunks: dict[str, _Proto] = {}
        self._setters: dict[str, Callable[[_Frame, Any], None]] = {}
        self._capture: tuple[str, str | None, list[str]] | None = None
        self._term = self.termination.encode("latin-1")

    # -- hooks -----------------------------------------------------------------------------
    def tsp_namespace(self) -> dict[str, Any]:
        """Model globals (objects, functions); merged over the built-ins once, on first use."""
        return {}

    def reset(self) -> None:
        """``reset()`` / ``*RST``: reset the output format; models extend (call super)."""
        self.format.reset()

    def trigger(self) -> None:
        """``*TRG`` hook."""

    def delay(self, seconds: float) -> None:
        """``delay(s)`` hook: models advance simulated time."""

    def waitcomplete(self) -> None:
        """``waitcomplete()`` hook: simulated operations are complete already."""

    def clear_status(self) -> None:
        """``*CLS``: clear the error queue and event registers."""
        self.errors.clear()
        self.esr = 0

    # -- error queue -----------------------------------------------------------------------
    def push_error(
        self, code: int, message: str, severity: int = SEVERITY_RECOVERABLE, node: int | None = None
    ) -> None:
        """Queue an error; when full the last entry becomes -350 Queue overflow."""
        self.esr |= esr_bit(code)
        q = self.errors
        if len(q) >= self.error_queue_size:
            if q[-1][0] != -350:
                q[-1] = (-350, "Queue overflow", SEVERITY_RECOVERABLE, self.node)
            return
        q.append((code, message, severity, self.node if node is None else node))

    def pop_error(self) -> tuple[int, str, int, int]:
        """Oldest entry, or ``(0, "Queue Is Empty", 0, 0)``."""
        return self.errors.popleft() if self.errors else (0, "Queue Is Empty", 0, 0)

    # -- output ----------------------------------------------------------------------------
    def format_number(self, x: float) -> str:
        return format_tsp_number(x, self.format.asciiprecision)

    def write_output(self, data: str | bytes) -> None:
        """Append raw text/bytes to the reply of the message being handled."""
        self._out.append(data if isinstance(data, bytes) else data.encode("latin-1", "replace"))

    def _print_str(self, v: Any) -> str:
        t = type(v)
        if t is int or t is float:
            return self.format_number(v)
        return _tostring(v)

    def emit_numbers(self, values: Sequence[Any]) -> None:
        """Write values as printnumber/printbuffer do: ASCII ``, ``-joined, or ``#0`` binary."""
        fmt = self.format
        if fmt.data == 1:
            self.write_output(", ".join(self._print_str(v) for v in values) + self.termination)
            return
        for v in values:
            if not (type(v) is int or type(v) is float):
                raise TspRuntimeError(f"bad argument to binary output ({_type_name(v)} value)")
        dtype = ("<" if fmt.byteorder == 1 else ">") + ("f4" if fmt.data == 2 else "f8")
        payload = np.asarray(values, dtype=dtype).tobytes()
        self._out.append(b"#0" + payload + self._term)

    # -- built-ins -------------------------------------------------------------------------
    def _builtins(self) -> dict[str, Any]:
        def raw(fn: Callable[..., tuple[Any, ...]], name: str) -> PyFunction:
            return PyFunction(fn, name, raw=True)

        def lua_print(*args: Any) -> tuple[Any, ...]:
            self.write_output("\t".join(self._print_str(a) for a in args) + self.termination)
            return ()

        def printnumber(*args: Any) -> tuple[Any, ...]:
            self.emit_numbers([check_number(a, i, "printnumber") for i, a in enumerate(args, 1)])
            return ()

        def printbuffer(*args: Any) -> tuple[Any, ...]:
            if len(args) < 3:
                raise TspRuntimeError("bad argument count to 'printbuffer'")
            start = int(check_number(args[0], 1, "printbuffer"))
            end = int(check_number(args[1], 2, "printbuffer"))
            bufs = [_buffer_values(b, i) for i, b in enumerate(args[2:], 3)]
            n = min(len(b) for b in bufs)
            if start < 1 or end > n or start > end:
                raise TspRuntimeError("bad argument to 'printbuffer' (index out of range)")
            values = [b[i] for i in range(start - 1, end) for b in bufs]
            self.emit_numbers([_from_py(v) for v in values])
            return ()

        def tostring(v: Any = None, *_: Any) -> tuple[Any, ...]:
            return (_tostring(v),)

        def tonumber(v: Any = None, base: Any = None, *_: Any) -> tuple[Any, ...]:
            if base is not None and type(v) is str:
                try:
                    return (int(v.strip(), int(check_number(base, 2, "tonumber"))),)
                except ValueError:
                    return (None,)
            return (_tonum(v),)

        def lua_type(*args: Any) -> tuple[Any, ...]:
            if not args:
                raise TspRuntimeError("bad argument #1 to 'type' (value expected)")
            return (_type_name(args[0]),)

        def ipairs(t: Any = None, *_: Any) -> tuple[Any, ...]:
            def it(state: Any, i: Any) -> tuple[Any, ...]:
                i += 1
                v = _index(state, i, "")
                return (None,) if v is None else (i, v)

            return (raw(it, "ipairs_iterator"), t, 0)

        def pairs(t: Any = None, *_: Any) -> tuple[Any, ...]:
            if type(t) is LuaTable:
                items = t.items()
            elif type(t) is dict:
                items = [(k, _from_py(v)) for k, v in t.items()]
            elif type(t) in (list, tuple, np.ndarray):
                items = [(i, _from_py(v)) for i, v in enumerate(t, 1)]
            else:
                raise TspRuntimeError(
                    f"bad argument #1 to 'pairs' (table expected, got {_type_name(t)})"
                )
            pos = [0]

            def it(state: Any, key: Any) -> tuple[Any, ...]:
                if pos[0] >= len(items):
                    return (None,)
                k, v = items[pos[0]]
                pos[0] += 1
                return (k, v)

            return (raw(it, "pairs_iterator"), t, None)

        def unpack(t: Any = None, *_: Any) -> tuple[Any, ...]:
            if type(t) is LuaTable:
                return tuple(t.array)
            raise TspRuntimeError("bad argument #1 to 'unpack' (table expected)")

        def lua_error(msg: Any = None, *_: Any) -> tuple[Any, ...]:
            raise TspRuntimeError(_tostring(msg))

        def lua_assert(*args: Any) -> tuple[Any, ...]:
            if not args or args[0] is None or args[0] is False:
                msg = args[1] if len(args) > 1 else "assertion failed!"
                raise TspRuntimeError(_tostring(msg))
            return args

        def lua_delay(*args: Any) -> tuple[Any, ...]:
            seconds = check_number(args[0] if args else None, 1, "delay")
            if seconds < 0:
                raise TspError(1102, "Parameter too small")
            self.delay(float(seconds))
            return ()

        def lua_reset(*_: Any) -> tuple[Any, ...]:
            self.reset()
            return ()

        def lua_waitcomplete(*_: Any) -> tuple[Any, ...]:
            self.waitcomplete()
            return ()

        def lua_opc(*_: Any) -> tuple[Any, ...]:
            self.esr |= ESR_OPC
            return ()

        return {
            "print": raw(lua_print, "print"),
            "printnumber": raw(printnumber, "printnumber"),
            "printbuffer": raw(printbuffer, "printbuffer"),
            "tostring": raw(tostring, "tostring"),
            "tonumber": raw(tonumber, "tonumber"),
            "type": raw(lua_type, "type"),
            "ipairs": raw(ipairs, "ipairs"),
            "pairs": raw(pairs, "pairs"),
            "unpack": raw(unpack, "unpack"),
            "error": raw(lua_error, "error"),
            "assert": raw(lua_assert, "assert"),
            "delay": raw(lua_delay, "delay"),
            "reset": raw(lua_reset, "reset"),
            "waitcomplete": raw(lua_waitcomplete, "waitcomplete"),
            "opc": raw(lua_opc, "opc"),
            "math": _math_table(),
            "string": _string_table(),
            "table": _table_table(),
            "format": self.format,
            "errorqueue": self.errorqueue,
            "localnode": self.localnode,
        }

    def _ensure_globals(self) -> dict[str, Any]:
        if self._globals is None:
            g = self._builtins()
            for k, v in self.tsp_namespace().items():
                g[k] = _from_py(v)
            self._globals = g
            self._compiler = _Compiler(g, self._rt)
        return self._globals

    # -- message handling ------------------------------------------------------------------
    def handle(self, message: str | bytes) -> bytes | None:
        """Execute one message (statements, a script block or a ``*`` command); return output."""
        text = message.decode("latin-1") if isinstance(message, (bytes, bytearray)) else message
        self._ensure_globals()
        self._out = []
        try:
            self._process(text)
        finally:
            out, self._out = self._out, []
        return b"".join(out) or None

    def _process(self, text: str) -> None:
        while text:
            if self._capture is not None:
                text = self._continue_capture(text)
                continue
            stripped = text.strip()
            if not stripped:
                return
            if stripped.startswith("*"):
                self._common(stripped)
                return
            m = _SCRIPT_START.match(text)
            if m is not None and (m.end() == len(text) or text[m.end()] == "\n"):
                kind, name = m.group(1), m.group(2)
                if kind == "loadscript" and name is None:
                    self.push_error(
                        SYNTAX_ERROR, "TSP Syntax error at line 1: loadscript needs a name"
                    )
                    return
                self._capture = (kind, name, [])
                text = text[m.end() + 1 :]
                continue
            self.execute(text)
            return

    def _continue_capture(self, text: str) -> str:
        assert self._capture is not None
        kind, name, lines = self._capture
        parts = text.split("\n")
        for i, line in enumerate(parts):
            if line.strip() == "endscript":
                self._capture = None
                self._finish_script(kind, name, "\n".join(lines))
                return "\n".join(parts[i + 1 :])
            lines.append(line)
        return ""

    def _finish_script(self, kind: str, name: str | None, source: str) -> None:
        proto = self._compile(source, cache=False)
        if proto is None:
            return
        g = self._ensure_globals()
        if name is not None:
            g[name] = TspScript(self, name, source, proto)
        if kind == "loadandrunscript":
            self._run_protected(proto)

    def execute(self, source: str) -> None:
        """Compile (cached) and run one chunk; errors go to the queue."""
        m = _FAST_ASSIGN.fullmatch(source)
        if m is not None:
            setter = self._setters.get(m.group(1))
            if setter is None:
                setter = self._compile_setter(m.group(1))
            if setter is not None:
                txt = m.group(2)
                value: Any = float(txt) if ("." in txt or "e" in txt or "E" in txt) else int(txt)
                self._run_protected(None, setter, value)
                return
        proto = self._compile(source)
        if proto is not None:
            self._run_protected(proto)

    def _compile_setter(self, target: str) -> Callable[[_Frame, Any], None] | None:
        try:
            toks = _tokenize(target)
            parser = _Parser(toks)
            node = parser.suffixedexp()
        except _LuaSyntaxError:
            return None
        if parser.peek()[0] != "<eof>" or node[0] not in ("name", "index"):
            return None
        compiler = self._compiler
        assert compiler is not None
        compiler.fs = _FuncState(None, _Proto("setter"))
        try:
            setter = compiler.setter(node)
        finally:
            compiler.fs = None
        if len(self._setters) >= _CACHE_LIMIT:
            self._setters.clear()
        self._setters[target] = setter
        return setter

    def _compile(self, source: str, cache: bool = True) -> _Proto | None:
        proto = self._chunks.get(source) if cache else None
        if proto is not None:
            return proto
        try:
            ast = _Parser(_tokenize(source)).chunk()
        except _LuaSyntaxError as e:
            self.push_error(SYNTAX_ERROR, f"TSP Syntax error at line {e.line}: {e.message}")
            return None
        except RecursionError:
            self.push_error(SYNTAX_ERROR, "TSP Syntax error at line 1: chunk has too many levels")
            return None
        compiler = self._compiler
        assert compiler is not None
        try:
            proto = compiler.chunk(ast)
        except RecursionError:
            self.push_error(SYNTAX_ERROR, "TSP Syntax error at line 1: chunk has too many levels")
            return None
        if cache:
            if len(self._chunks) >= _CACHE_LIMIT:
                self._chunks.clear()
            self._chunks[source] = proto
        return proto

    def _run_proto(self, proto: _Proto) -> tuple[Any, ...]:
        r = proto.body(_Frame(proto.nslots, None, ()))
        return r.values if type(r) is _Ret else ()

    def _run_protected(
        self,
        proto: _Proto | None,
        setter: Callable[[_Frame, Any], None] | None = None,
        value: Any = None,
    ) -> None:
        rt = self._rt
        rt.steps = 0
        rt.depth = 0
        try:
            if proto is not None:
                self._run_proto(proto)
            else:
                assert setter is not None
                setter(_Frame(0, None, ()), value)
        except TspRuntimeError as e:
            self.push_error(RUNTIME_ERROR, f"TSP Runtime error at line {e.line or 1}: {e.message}")
        except TspError as e:
            self.push_error(e.code, e.message, e.severity)
        except RecursionError:
            self.push_error(RUNTIME_ERROR, "TSP Runtime error at line 1: stack overflow")

    # -- IEEE 488.2 common commands ----------------------------------------------------------
    def _common(self, text: str) -> None:
        for part in text.split(";"):
            words = part.split()
            if not words:
                continue
            cmd = words[0].upper()
            arg = words[1] if len(words) > 1 else None
            if cmd == "*IDN?":
                self.write_output(self.idn + self.termination)
            elif cmd == "*RST":
                self.reset()
            elif cmd == "*CLS":
                self.clear_status()
            elif cmd == "*OPC":
                self.esr |= ESR_OPC
            elif cmd == "*OPC?":
                self.write_output("1" + self.termination)
            elif cmd == "*WAI":
                self.waitcomplete()
            elif cmd == "*TRG":
                self.trigger()
            elif cmd == "*TST?":
                self.write_output("0" + self.termination)
            elif cmd == "*ESR?":
                value, self.esr = self.esr, 0
                self.write_output(f"{value}{self.termination}")
            elif cmd in ("*ESE?", "*SRE?"):
                self.write_output(f"{self.ese if cmd == '*ESE?' else self.sre}{self.termination}")
            elif cmd == "*STB?":
                self.write_output(f"{self.status_byte()}{self.termination}")
            elif cmd in ("*ESE", "*SRE") and arg is not None and arg.isdigit() and int(arg) < 256:
                if cmd == "*ESE":
                    self.ese = int(arg)
                else:
                    self.sre = int(arg) & 0xBF
            else:
                self.push_error(
                    SYNTAX_ERROR, f"TSP Syntax error at line 1: unexpected symbol near '{part[:1]}'"
                )
                return

    def status_summary(self) -> int:
        """Status-byte bits summarised from model register sets (models override)."""
        return 0

    def status_byte(self) -> int:
        """Status byte: model summaries, EAV (bit 2), ESB (bit 5), MSS (bit 6)."""
        stb = self.status_summary() & 0x9B
        if self.errors:
            stb |= 0x04
        if self.esr & self.ese:
            stb |= 0x20
        if stb & self.sre:
            stb |= 0x40
        return stb


def _buffer_values(b: Any, argn: int) -> Sequence[Any]:
    """A printbuffer argument as a sequence: a table/list or a TspObject with ``readings``."""
    t = type(b)
    if t is LuaTable:
        return b.array
    if t is list or t is tuple or t is np.ndarray:
        return b
    if isinstance(b, TspObject) and "readings" in type(b)._tsp_readable:
        return _buffer_values(b.tsp_get("readings"), argn)
    raise TspRuntimeError(
        f"bad argument #{argn} to 'printbuffer' (buffer expected, got {_type_name(b)})"
    )


# -- standard library subset (pure functions, no I/O) ------------------------------------------


def _math_table() -> LuaTable:
    def f1(fn: Callable[[float], Any], name: str) -> PyFunction:
        def run(*args: Any) -> tuple[Any, ...]:
            x = check_number(args[0] if args else None, 1, name)
            try:
                return (fn(x),)
            except (ValueError, OverflowError):
                return (math.nan,)

        return PyFunction(run, name, raw=True)

    def f2(fn: Callable[[float, float], Any], name: str) -> PyFunction:
        def run(*args: Any) -> tuple[Any, ...]:
            x = check_number(args[0] if args else None, 1, name)
            y = check_number(args[1] if len(args) > 1 else None, 2, name)
            try:
                return (fn(x, y),)
            except (ValueError, OverflowError, ZeroDivisionError):
                return (math.nan,)

        return PyFunction(run, name, raw=True)

    def fminmax(fn: Callable[..., Any], name: str) -> PyFunction:
        def run(*args: Any) -> tuple[Any, ...]:
            nums = [check_number(a, i, name) for i, a in enumerate(args, 1)]
            if not nums:
                raise TspRuntimeError(
                    f"bad argument #1 to '{name}' (number expected, got no value)"
                )
            return (fn(nums),)

        return PyFunction(run, name, raw=True)

    return LuaTable(
        hash={
            "abs": f1(abs, "abs"),
            "ceil": f1(math.ceil, "ceil"),
            "floor": f1(math.floor, "floor"),
            "sqrt": f1(math.sqrt, "sqrt"),
            "exp": f1(math.exp, "exp"),
            "log": f1(math.log, "log"),
            "log10": f1(math.log10, "log10"),
            "sin": f1(math.sin, "sin"),
            "cos": f1(math.cos, "cos"),
            "tan": f1(math.tan, "tan"),
            "asin": f1(math.asin, "asin"),
            "acos": f1(math.acos, "acos"),
            "atan": f1(math.atan, "atan"),
            "pow": f2(_pow, "pow"),
            "mod": f2(math.fmod, "mod"),
            "fmod": f2(math.fmod, "fmod"),
            "atan2": f2(math.atan2, "atan2"),
            "min": fminmax(min, "min"),
            "max": fminmax(max, "max"),
            "pi": math.pi,
            "huge": math.inf,
        }
    )


_FORMAT_SPEC = re.compile(r"%(?:%|[-+ #0]*\d{0,2}(?:\.\d{1,2})?[cdiouxXeEfgGqs])")


def _string_table() -> LuaTable:
    def arg_str(args: tuple[Any, ...], i: int, name: str) -> str:
        v = args[i] if len(args) > i else None
        if type(v) is str:
            return v
        if type(v) is int or type(v) is float:
            return _tostring(v)
        raise TspRuntimeError(
            f"bad argument #{i + 1} to '{name}' (string expected, got {_type_name(v)})"
        )

    def s_len(*a: Any) -> tuple[Any, ...]:
        return (len(arg_str(a, 0, "len")),)

    def s_upper(*a: Any) -> tuple[Any, ...]:
        return (arg_str(a, 0, "upper").upper(),)

    def s_lower(*a: Any) -> tuple[Any, ...]:
        return (arg_str(a, 0, "lower").lower(),)

    def s_rep(*a: Any) -> tuple[Any, ...]:
        s = arg_str(a, 0, "rep")
        n = int(check_number(a[1] if len(a) > 1 else None, 2, "rep"))
        if len(s) * max(n, 0) > 1_000_000:
            raise TspRuntimeError("string.rep result too large")
        return (s * max(n, 0),)

    def s_sub(*a: Any) -> tuple[Any, ...]:
        s = arg_str(a, 0, "sub")
        i = int(check_number(a[1] if len(a) > 1 else 1, 2, "sub"))
        j = int(check_number(a[2] if len(a) > 2 and a[2] is not None else -1, 3, "sub"))
        n = len(s)
        i = max(i + n + 1 if i < 0 else i, 1)
        j = min(j + n + 1 if j < 0 else j, n)
        return (s[i - 1 : j] if i <= j else "",)

    def s_format(*a: Any) -> tuple[Any, ...]:
        fmt = arg_str(a, 0, "format")
        out: list[str] = []
        pos = 0
        argi = 1
        for m in _FORMAT_SPEC.finditer(fmt):
            literal = fmt[pos : m.start()]
            if "%" in literal:
                raise TspRuntimeError("invalid option to 'format'")
            out.append(literal)
            pos = m.end()
            spec = m.group()
            if spec == "%%":
                out.append("%")
                continue
            conv = spec[-1]
            v = a[argi] if len(a) > argi else None
            argi += 1
            if conv in "dicoxXu":
                n = check_number(v, argi, "format")
                out.append((spec[:-1] + ("d" if conv in "iu" else conv)) % int(n))
            elif conv in "eEfgG":
                out.append(spec % float(check_number(v, argi, "format")))
            elif conv == "q":
                out.append('"' + _tostring(v).replace("\\", "\\\\").replace('"', '\\"') + '"')
            else:
                out.append(spec % _tostring(v))
        rest = fmt[pos:]
        if "%" in rest:
            raise TspRuntimeError("invalid option to 'format'")
        out.append(rest)
        return ("".join(out),)

    return LuaTable(
        hash={
            "len": PyFunction(s_len, "len", raw=True),
            "upper": PyFunction(s_upper, "upper", raw=True),
            "lower": PyFunction(s_lower, "lower", raw=True),
            "rep": PyFunction(s_rep, "rep", raw=True),
            "sub": PyFunction(s_sub, "sub", raw=True),
            "format": PyFunction(s_format, "format", raw=True),
        }
    )


def _table_table() -> LuaTable:
    def tbl(a: tuple[Any, ...], name: str) -> LuaTable:
        t = a[0] if a else None
        if type(t) is not LuaTable:
            raise TspRuntimeError(
                f"bad argument #1 to '{name}' (table expected, got {_type_name(t)})"
            )
        return t

    def t_insert(*a: Any) -> tuple[Any, ...]:
        t = tbl(a, "insert")
        n = t.length()
        if len(a) == 2:
            t.set(n + 1, a[1])
        elif len(a) == 3:
            pos = int(check_number(a[1], 2, "insert"))
            for i in range(n, pos - 1, -1):
                t.set(i + 1, t.get(i))
            t.set(pos, a[2])
        else:
            raise TspRuntimeError("wrong number of arguments to 'insert'")
        return ()

    def t_remove(*a: Any) -> tuple[Any, ...]:
        t = tbl(a, "remove")
        n = t.length()
        if n == 0:
            return (None,)
        pos = int(check_number(a[1], 2, "remove")) if len(a) > 1 else n
        v = t.get(pos)
        for i in range(pos, n):
            t.set(i, t.get(i + 1))
        t.set(n, None)
        return (v,)

    def t_getn(*a: Any) -> tuple[Any, ...]:
        return (tbl(a, "getn").length(),)

    def t_concat(*a: Any) -> tuple[Any, ...]:
        t = tbl(a, "concat")
        sep = a[1] if len(a) > 1 and a[1] is not None else ""
        parts = []
        for v in t.array:
            if not (type(v) is str or type(v) is int or type(v) is float):
                raise TspRuntimeError("invalid value (at index) in table for 'concat'")
            parts.append(_tostring(v))
        return (_tostring(sep).join(parts),)

    return LuaTable(
        hash={
            "insert": PyFunction(t_insert, "insert", raw=True),
            "remove": PyFunction(t_remove, "remove", raw=True),
            "getn": PyFunction(t_getn, "getn", raw=True),
            "concat": PyFunction(t_concat, "concat", raw=True),
        }
    )

"""Tests of the TSP (Lua-subset) engine with tiny example models."""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np
import pytest

from sim_backend.tsp import (
    LuaTable,
    TspError,
    TspInstrument,
    TspObject,
    TspRuntimeError,
    check_number,
    format_tsp_number,
)

EMPTY = b"0.00000e+00\tQueue Is Empty\t0.00000e+00\t0.00000e+00\n"


# -- a tiny 2600B-like model ---------------------------------------------------------------------


class Buffer(TspObject):
    TSP_FIELDS = ("appendmode", "collecttimestamps")
    TSP_READONLY = ("readings", "sourcevalues", "timestamps", "n")
    TSP_METHODS = ("clear",)

    def __init__(self) -> None:
        self.appendmode = 0
        self.collecttimestamps = 0
        self.readings: list[float] = []
        self.sourcevalues: list[float] = []
        self.timestamps: list[float] = []

    @property
    def n(self) -> int:
        return len(self.readings)

    def clear(self) -> None:
        self.readings.clear()
        self.sourcevalues.clear()
        self.timestamps.clear()


class Source(TspObject):
    TSP_FIELDS = ("func", "levelv", "leveli", "limiti", "output")
    TSP_READONLY = ("compliance",)

    def __init__(self) -> None:
        self.func = 1
        self.leveli = 0.0
        self.limiti = 1e-4
        self.output = 0
        self.compliance = False
        self._levelv = 0.0

    @property
    def levelv(self) -> float:
        return self._levelv

    @levelv.setter
    def levelv(self, value: Any) -> None:
        v = check_number(value, 1, "levelv")
        if abs(v) > 200:
            raise TspError(1101, "Parameter too big")
        self._levelv = float(v)


class Measure(TspObject):
    TSP_FIELDS = ("nplc",)
    TSP_METHODS = ("i", "v", "iv")

    def __init__(self, smu: Smu) -> None:
        self.smu = smu
        self.nplc = 1.0

    def i(self, buffer: Buffer | None = None) -> float:
        value = self.smu.source.levelv / 1e3  # a 1 kOhm resistor
        if buffer is not None:
            buffer.readings.append(value)
        return value

    def v(self) -> float:
        return self.smu.source.levelv

    def iv(self, ibuf: Buffer | None = None, vbuf: Buffer | None = None) -> tuple[float, float]:
        return self.i(ibuf), self.v()


class TriggerSource(TspObject):
    TSP_FIELDS = ("action", "stimulus")
    TSP_METHODS = ("listv", "linearv")

    def __init__(self) -> None:
        self.action = 0
        self.stimulus = 0
        self.values: list[float] = []

    def listv(self, values: list[float]) -> None:
        if not isinstance(values, list):
            raise TspRuntimeError("bad argument #1 to 'listv' (table expected)")
        self.values = [float(check_number(v, 1, "listv")) for v in values]

    def linearv(self, start: float, stop: float, points: int) -> None:
        n = int(check_number(points, 3, "linearv"))
        self.values = list(np.linspace(start, stop, n))


class TriggerMeasure(TspObject):
    TSP_FIELDS = ("action",)
    TSP_METHODS = ("iv",)

    def __init__(self) -> None:
        self.action = 0
        self.buffers: tuple[Buffer, Buffer] | None = None

    def iv(self, ibuf: Buffer, vbuf: Buffer) -> None:
        self.buffers = (ibuf, vbuf)


class SmuTrigger(TspObject):
    TSP_FIELDS = ("count",)
    TSP_READONLY = ("source", "measure")
    TSP_METHODS = ("initiate",)

    def __init__(self, smu: Smu) -> None:
        self.smu = smu
        self.count = 1
        self.source = TriggerSource()
        self.measure = TriggerMeasure()

    def initiate(self) -> None:
        assert self.measure.buffers is not None
        ibuf, vbuf = self.measure.buffers
        for k, v in enumerate(self.source.values):
            ibuf.readings.append(v / 1e3)
            ibuf.sourcevalues.append(v)
            ibuf.timestamps.append(k * 1e-3)
            vbuf.readings.append(v)


class Smu(TspObject):
    TSP_READONLY = (
        "source",
        "measure",
        "trigger",
        "nvbuffer1",
        "nvbuffer2",
        "OUTPUT_DCVOLTS",
        "OUTPUT_DCAMPS",
        "OUTPUT_ON",
        "OUTPUT_OFF",
        "ENABLE",
    )
    TSP_METHODS = ("reset",)
    OUTPUT_DCAMPS, OUTPUT_DCVOLTS = 0, 1
    OUTPUT_OFF, OUTPUT_ON = 0, 1
    ENABLE = 1

    def __init__(self) -> None:
        self.source = Source()
        self.measure = Measure(self)
        self.trigger = SmuTrigger(self)
        self.nvbuffer1 = Buffer()
        self.nvbuffer2 = Buffer()
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1
        self.source.levelv = 0.0
        self.source.output = 0


class Timer(TspObject):
    TSP_FIELDS = ("delay", "count", "passthrough", "stimulus")
    TSP_READONLY = ("EVENT_ID",)

    def __init__(self, k: int) -> None:
        self.delay = 0.0
        self.count = 1
        self.passthrough = False
        self.stimulus = 0
        self.EVENT_ID = 100 + k


class Trigger(TspObject):
    TSP_READONLY = ("timer",)

    def __init__(self) -> None:
        self.timer = [Timer(k) for k in range(1, 5)]


class K2636(TspInstrument):
    idn = "Keithley Instruments Inc., Model 2636B, 4308079, 3.2.2"

    def __init__(self) -> None:
        super().__init__()
        self.smua = Smu()
        self.trigger_obj = Trigger()
        self.delays: list[float] = []
        self.resets = 0
        self.triggers = 0

    def tsp_namespace(self) -> dict[str, Any]:
        return {"smua": self.smua, "trigger": self.trigger_obj}

    def reset(self) -> None:
        super().reset()
        self.resets += 1
        self.smua.reset()

    def delay(self, seconds: float) -> None:
        self.delays.append(seconds)

    def trigger(self) -> None:
        self.triggers += 1


# -- a tiny 707B-like switch matrix --------------------------------------------------------------


class Channel(TspObject):
    TSP_METHODS = ("close", "open", "getclose", "exclusiveclose")

    def __init__(self) -> None:
        self.closed: list[str] = []

    @staticmethod
    def _parse(spec: Any) -> list[str]:
        if not isinstance(spec, str):
            raise TspRuntimeError("bad argument #1 (string expected)")
        return [c.strip().upper() for c in spec.split(",") if c.strip()]

    def close(self, spec: str) -> None:
        for c in self._parse(spec):
            if c not in self.closed:
                self.closed.append(c)

    def exclusiveclose(self, spec: str) -> None:
        self.closed = self._parse(spec)

    def open(self, spec: str) -> None:
        names = self._parse(spec)
        if names == ["ALLSLOTS"]:
            self.closed = []
        else:
            self.closed = [c for c in self.closed if c not in names]

    def getclose(self, spec: str) -> str | None:
        return ";".join(sorted(self.closed)) or None


class K707(TspInstrument):
    idn = "Keithley Instruments Inc., Model 707B, 04089762, 1.6.0"

    def __init__(self) -> None:
        super().__init__()
        self.channel = Channel()

    def tsp_namespace(self) -> dict[str, Any]:
        return {"channel": self.channel}


@pytest.fixture
def k() -> K2636:
    return K2636()


def codes(inst: TspInstrument) -> list[int]:
    return [e[0] for e in inst.errors]


def last_message(inst: TspInstrument) -> str:
    return inst.errors[-1][1]


# -- statements and queries ----------------------------------------------------------------------


def test_assignment_and_print_formats_like_2600b(k: K2636) -> None:
    assert k.handle("smua.source.levelv = 0.5") is None
    assert k.smua.source.levelv == 0.5
    assert k.handle("print(smua.source.levelv)") == b"5.00000e-01\n"
    assert k.handle("print(1e-3)") == b"1.00000e-03\n"
    assert k.handle("print(10)") == b"1.00000e+01\n"
    assert k.handle("print(true, false, nil)") == b"true\tfalse\tnil\n"
    assert k.handle('print("abc", 2)') == b"abc\t2.00000e+00\n"
    assert not k.errors


def test_ascii_precision(k: K2636) -> None:
    k.handle("format.asciiprecision = 10")
    assert k.handle("print(2.54)") == b"2.540000000e+00\n"
    assert k.handle("format.asciiprecision = 3 printnumber(2.54, 1)") == b"2.54e+00, 1.00e+00\n"
    k.handle("reset()")
    assert k.handle("print(format.asciiprecision)") == b"6.00000e+00\n"
    assert not k.errors


def test_constants_and_function_assignment(k: K2636) -> None:
    k.handle("smua.source.func = smua.OUTPUT_DCVOLTS smua.source.output = smua.OUTPUT_ON")
    assert k.smua.source.func == 1 and k.smua.source.output == 1
    k.handle("format.data = format.ASCII")
    assert k.format.data == 1
    k.handle("trigger.timer[1].delay = 1e-3 trigger.timer[2].passthrough = true")
    assert k.trigger_obj.timer[0].delay == 1e-3
    assert k.trigger_obj.timer[1].passthrough is True
    k.handle("smua.trigger.source.stimulus = trigger.timer[2].EVENT_ID")
    assert k.smua.trigger.source.stimulus == 102
    assert not k.errors


def test_measure_queries(k: K2636) -> None:
    k.handle("smua.source.levelv = 2")
    assert k.handle("print(smua.measure.i())") == b"2.00000e-03\n"
    assert k.handle("print(smua.measure.iv())") == b"2.00000e-03\t2.00000e+00\n"
    assert k.handle("print(smua.source.compliance)") == b"false\n"


def test_several_statements_in_one_message(k: K2636) -> None:
    reply = k.handle(
        "smua.source.levelv = 1 print(smua.measure.v()); smua.source.levelv = 3\n"
        "print(smua.source.levelv)"
    )
    assert reply == b"1.00000e+00\n3.00000e+00\n"


def test_calls_with_tables_and_buffers(k: K2636) -> None:
    k.handle("smua.nvbuffer1.clear() smua.nvbuffer2.clear()")
    k.handle("smua.trigger.source.listv({1, 2.5, -3e-3})")
    assert k.smua.trigger.source.values == [1.0, 2.5, -3e-3]
    k.handle("smua.trigger.source.linearv(0, 1, 11)")
    assert len(k.smua.trigger.source.values) == 11
    k.handle("smua.trigger.measure.iv(smua.nvbuffer1, smua.nvbuffer2)")
    k.handle("smua.trigger.count = 11 smua.trigger.initiate() waitcomplete()")
    assert k.handle("print(smua.nvbuffer1.n)") == b"1.10000e+01\n"
    assert k.handle("print(smua.nvbuffer1.readings[2])") == b"1.00000e-04\n"
    reply = k.handle("printbuffer(1, 3, smua.nvbuffer1.readings, smua.nvbuffer1.sourcevalues)")
    assert reply == (
        b"0.00000e+00, 0.00000e+00, 1.00000e-04, 1.00000e-01, 2.00000e-04, 2.00000e-01\n"
    )
    assert k.handle("printbuffer(2, 2, smua.nvbuffer2)") == b"1.00000e-01\n"
    assert not k.errors


def test_printbuffer_binary_formats(k: K2636) -> None:
    k.handle("smua.trigger.source.listv({0.5, -1, 2})")
    k.handle("smua.trigger.measure.iv(smua.nvbuffer1, smua.nvbuffer2) smua.trigger.initiate()")
    k.handle("format.data = format.REAL32")
    reply = k.handle("printbuffer(1, 3, smua.nvbuffer2.readings)")
    assert reply is not None and reply[:2] == b"#0" and reply[-1:] == b"\n"
    assert np.frombuffer(reply[2:-1], dtype="<f4").tolist() == [0.5, -1.0, 2.0]
    k.handle("format.byteorder = format.BIGENDIAN format.data = format.REAL64")
    reply = k.handle("printbuffer(1, 3, smua.nvbuffer2.readings)")
    assert reply is not None
    assert np.frombuffer(reply[2:-1], dtype=">f8").tolist() == [0.5, -1.0, 2.0]
    reply = k.handle("printnumber(1.5)")
    assert reply == b"#0" + np.array([1.5], dtype=">f8").tobytes() + b"\n"
    assert k.handle("print(1.5)") == b"1.50000e+00\n"  # print() stays ASCII


def test_switch_matrix_model() -> None:
    sw = K707()
    assert sw.handle("print(localnode.model)") == b"707B\n"
    sw.handle('channel.close("1A01,1B02")')
    assert sw.handle('print(channel.getclose("allslots"))') == b"1A01;1B02\n"
    sw.handle('channel.open("allslots")')
    assert sw.handle('print(channel.getclose("allslots"))') == b"nil\n"
    sw.handle("channel.close(12)")
    assert codes(sw) == [-286]


def test_idn_and_localnode(k: K2636) -> None:
    assert k.handle("*IDN?") == b"Keithley Instruments Inc., Model 2636B, 4308079, 3.2.2\n"
    assert k.handle("print(localnode.model, localnode.serialno)") == b"2636B\t4308079\n"
    assert k.handle(b"print(localnode.revision)\n") == b"3.2.2\n"


def test_common_commands(k: K2636) -> None:
    k.handle("smua.source.levelv = 3")
    assert k.handle("*RST") is None
    assert k.resets == 1 and k.smua.source.levelv == 0.0
    assert k.handle("*OPC?") == b"1\n"
    k.handle("bogus(")
    k.handle("*CLS")
    assert not k.errors
    k.handle("*TRG")
    assert k.triggers == 1
    k.handle("*XYZ")
    assert codes(k) == [-285]


# -- tables, arithmetic, control flow ------------------------------------------------------------


def test_tables_arithmetic_and_loops(k: K2636) -> None:
    assert k.handle("t = {1, 2.5, -3e-3, x = 4} print(#t, t[2], t.x, t[3])") == (
        b"3.00000e+00\t2.50000e+00\t4.00000e+00\t-3.00000e-03\n"
    )
    assert k.handle("print(1 + 2 * 3 - 4 / 2, 2 ^ 10, 7 % 3, -2 ^ 2)") == (
        b"5.00000e+00\t1.02400e+03\t1.00000e+00\t-4.00000e+00\n"
    )
    assert k.handle('print("a" .. 1 .. "b", 1 == 1.0, "1" == 1, not nil)') == (
        b"a1b\ttrue\tfalse\ttrue\n"
    )
    src = "s = 0 for i = 1, 10 do if i % 2 == 0 then s = s + i end end print(s)"
    assert k.handle(src) == b"3.00000e+01\n"
    src = "s = 0 for i = 10, 1, -3 do s = s + i end print(s)"
    assert k.handle(src) == b"2.20000e+01\n"
    src = "n = 0 while n < 5 do n = n + 1 if n == 3 then break end end print(n)"
    assert k.handle(src) == b"3.00000e+00\n"
    src = "n = 0 repeat local m = n n = m + 2 until m >= 4 print(n)"
    assert k.handle(src) == b"6.00000e+00\n"
    src = "t = {} for i = 1, 3 do t[i] = i * i end s = 0 for _, v in ipairs(t) do s = s + v end"
    k.handle(src)
    src = "print(s)"
    assert k.handle(src) == b"1.40000e+01\n"
    assert not k.errors


def test_functions_locals_and_closures(k: K2636) -> None:
    src = """
    local function fact(n) if n <= 1 then return 1 end return n * fact(n - 1) end
    function counter() local c = 0 return function() c = c + 1 return c end end
    local inc = counter() inc() inc()
    print(fact(5), inc())
    local a, b = (function(...) return ... end)(7, 8, 9)
    print(a, b)
    """
    assert k.handle(src) == b"1.20000e+02\t3.00000e+00\n7.00000e+00\t8.00000e+00\n"
    assert not k.errors


def test_string_and_math_library(k: K2636) -> None:
    assert k.handle('print(string.format("%5.2f|%d|%s|%%", 3.14159, 7, "x"))') == b" 3.14|7|x|%\n"
    assert k.handle('print(string.upper("ab"), string.sub("hello", 2, 3), tostring(1.5))') == (
        b"AB\tel\t1.5\n"
    )
    assert k.handle("print(math.floor(2.7), math.max(1, 5, 3), math.abs(-2))") == (
        b"2.00000e+00\t5.00000e+00\t2.00000e+00\n"
    )
    assert k.handle('print(tonumber("1e3"), tonumber("x"), type(smua), type({}))') == (
        b"1.00000e+03\tnil\tuserdata\ttable\n"
    )


def test_delay_and_user_globals(k: K2636) -> None:
    k.handle("delay(0.001) delay(2)")
    assert k.delays == [0.001, 2.0]
    k.handle("myvar = 42")
    assert k.handle("print(myvar)") == b"4.20000e+01\n"
    assert k.handle("print(undefined_name)") == b"nil\n"  # Lua: an unset global is nil


# -- scripts -------------------------------------------------------------------------------------


def test_loadscript_then_call_and_run(k: K2636) -> None:
    msg = "loadscript sweep\nx = 0\nfor i = 1, 4 do x = x + i end\nprint(x)\nendscript"
    assert k.handle(msg) is None  # stored, not run
    assert k.handle("sweep()") == b"1.00000e+01\n"
    assert k.handle("sweep.run()") == b"1.00000e+01\n"
    assert k.handle("print(sweep.name)") == b"sweep\n"


def test_loadandrunscript_with_crlf_and_trailing_statements(k: K2636) -> None:
    msg = "loadandrunscript\r\nlocal t = {1, 2}\r\nprint(#t)\r\nendscript\nprint(5)"
    assert k.handle(msg) == b"2.00000e+00\n5.00000e+00\n"


def test_script_sent_line_by_line(k: K2636) -> None:
    for line in ["loadscript ramp", "for v = 1, 3 do", "smua.source.levelv = v", "end"]:
        assert k.handle(line) is None
    assert k.smua.source.levelv == 0.0  # still being captured
    k.handle("endscript")
    k.handle("ramp()")
    assert k.smua.source.levelv == 3.0
    assert not k.errors


def test_script_with_syntax_error_is_not_stored(k: K2636) -> None:
    k.handle("loadscript bad\nfor i = 1 do\nend\nendscript")
    assert codes(k) == [-285]
    assert last_message(k).startswith("TSP Syntax error at line 1:")
    k.handle("bad()")
    assert codes(k) == [-285, -286]
    assert "attempt to call global 'bad' (a nil value)" in last_message(k)


# -- errors --------------------------------------------------------------------------------------


def test_errorqueue_next_and_count(k: K2636) -> None:
    assert k.handle("print(errorqueue.count)") == b"0.00000e+00\n"
    assert k.handle("print(errorqueue.next())") == EMPTY
    assert k.handle("print(errorqueue.next())").startswith(b"0.00000e+00\tQueue Is Empty")
    k.handle("x = = 1")
    assert k.handle("print(errorqueue.count)") == b"1.00000e+00\n"
    reply = k.handle("print(errorqueue.next())")
    assert reply == (
        b"-2.85000e+02\tTSP Syntax error at line 1: unexpected symbol near '='"
        b"\t2.00000e+01\t1.00000e+00\n"
    )
    k.handle("x = = 1 errorqueue.clear()")  # a syntax error runs nothing
    assert codes(k) == [-285]
    k.handle("errorqueue.clear()")
    assert not k.errors


def test_syntax_error_runs_nothing_runtime_error_keeps_earlier_output(k: K2636) -> None:
    assert k.handle("smua.source.levelv = 1 print(") is None
    assert k.smua.source.levelv == 0.0
    assert codes(k) == [-285]
    reply = k.handle("print(1)\nsmua.source.levelv = 2\nsmua.bogus.x = 1\nsmua.source.levelv = 3")
    assert reply == b"1.00000e+00\n"
    assert k.smua.source.levelv == 2.0
    assert codes(k) == [-285, -286]
    assert last_message(k) == (
        "TSP Runtime error at line 3: attempt to index field 'bogus' (a nil value)"
    )


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("smua.xyz.abc = 1", "attempt to index field 'xyz' (a nil value)"),
        ("print(smua.source.nothing.x)", "attempt to index field 'nothing' (a nil value)"),
        ("foo()", "attempt to call global 'foo' (a nil value)"),
        ("smua.bogus()", "attempt to call field 'bogus' (a nil value)"),
        ("smua.source.levlv = 1", "attempt to set unknown field 'levlv'"),
        ("smua.source.compliance = true", "attempt to modify read-only field 'compliance'"),
        ("smua.OUTPUT_ON = 3", "attempt to modify read-only field 'OUTPUT_ON'"),
        ("x = nil + 1", "attempt to perform arithmetic on a nil value"),
        ("x = undefined * 2", "attempt to perform arithmetic on global 'undefined' (a nil value)"),
        ("x = 1 < 'a'", "attempt to compare number with string"),
        ('x = "a" .. {}', "attempt to concatenate a table value"),
        ("smua.trigger.source.linearv(0, 1)", "wrong number of arguments to 'linearv'"),
        ("smua.trigger.source.linearv(0, 1, 'x')", "bad argument #3 to 'linearv'"),
        ("error('custom')", "custom"),
    ],
)
def test_runtime_errors(k: K2636, source: str, message: str) -> None:
    assert k.handle(source) is None
    assert codes(k) == [-286]
    assert last_message(k).startswith(f"TSP Runtime error at line 1: {message}")


@pytest.mark.parametrize(
    ("source", "near"),
    [
        ("x = = 1", "'='"),
        ("smua.source.levelv", "'<eof>'"),
        ("for i = 1 do end", "'do'"),
        ("print('abc)", "''abc)'"),
        ("x = 3abc", "'3a'"),
        ("if x then", "'<eof>'"),
    ],
)
def test_syntax_errors(k: K2636, source: str, near: str) -> None:
    assert k.handle(source) is None
    assert codes(k) == [-285]
    assert last_message(k).startswith("TSP Syntax error at line 1: ")
    assert last_message(k).endswith(f"near {near}")


def test_model_error_codes_and_stop(k: K2636) -> None:
    k.handle("smua.source.levelv = 500 smua.source.leveli = 1")
    assert k.errors[-1][:2] == (1101, "Parameter too big")
    assert k.smua.source.leveli == 0.0
    k.handle("format.data = 7")
    assert k.errors[-1][:2] == (1101, "Parameter too big")


def test_error_queue_overflow() -> None:
    class Small(K2636):
        error_queue_size = 3

    inst = Small()
    for _ in range(5):
        inst.handle("foo()")
    assert codes(inst) == [-286, -286, -350]
    assert inst.handle("print(errorqueue.next())").startswith(b"-2.86000e+02")
    inst.handle("errorqueue.next() errorqueue.next()")
    assert inst.handle("print(errorqueue.next())") == EMPTY


def test_runaway_loops_are_stopped() -> None:
    class Fast(K2636):
        max_steps = 1000

    inst = Fast()
    inst.handle("while true do end")
    inst.handle("local function f() return f() + 1 end f()")
    assert codes(inst) == [-286, -286]
    assert "step limit" in inst.errors[0][1]
    assert "stack overflow" in inst.errors[1][1]


def test_esr_and_status_byte(k: K2636) -> None:
    k.handle("x = = 1")
    assert k.handle("*ESR?") == b"16\n"  # -285/-286 are execution-error class codes (EXE)
    k.handle("*ESE 16")
    k.handle("x = = 1")
    assert int(k.handle("*STB?") or b"0") & 0x24 == 0x24


# -- safety --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        'print(__import__("os"))',
        'os.execute("echo hacked")',
        'io.open("/etc/passwd")',
        'loadstring("print(1)")()',
        'dofile("/etc/passwd")',
        'require("os")',
        "print(smua.__class__.__init__)",
        "print(smua.source.__dict__.x)",
        "print(smua.reset.__globals__)",
        'getmetatable("").__index = nil',
        "x = smua.measure.i.__self__.smu",
    ],
)
def test_nothing_reaches_python_internals(
    k: K2636, source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("eval/exec/compile/__import__ must never be called")

    real_import = builtins.__import__

    def guarded_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.split(".")[0] in ("os", "subprocess", "io", "shutil"):
            forbidden()
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    monkeypatch.setattr(builtins, "compile", forbidden)
    monkeypatch.setattr(builtins, "__import__", guarded_import)
    assert k.handle(source) is None
    monkeypatch.undo()
    assert codes(k) == [-286]


def test_private_python_attributes_are_invisible(k: K2636) -> None:
    assert k.handle("print(smua.source._levelv, smua.resets, smua.__dict__)") == (
        b"nil\tnil\tnil\n"
    )
    with pytest.raises(TypeError):

        class Bad(TspObject):
            TSP_FIELDS = ("_secret",)


def test_lua_table_helpers() -> None:
    t = LuaTable([1, 2])
    t.set(3.0, "c")
    t.set("k", True)
    t.set(True, "b")
    assert t.length() == 3
    assert t.get(3) == "c" and t.get(True) == "b" and t.get(1) == 1
    assert t.items() == [(1, 1), (2, 2), (3, "c"), ("k", True), (True, "b")]
    assert LuaTable([1, 2.5]).to_python() == [1, 2.5]
    t.set(3, None)
    assert t.length() == 2


def test_format_tsp_number() -> None:
    assert format_tsp_number(1e-3) == "1.00000e-03"
    assert format_tsp_number(-2.5, 3) == "-2.50e+00"
    assert format_tsp_number(0) == "0.00000e+00"


def test_numbers_behave_as_doubles(k: K2636) -> None:
    assert k.handle("x = 1 for i = 1, 60 do x = x * 1000000 end print(x)") == b"inf\n"
    assert k.handle("print(123456789012345678901234567890, 1/0, 0x10)") == (
        b"1.23457e+29\tinf\t1.60000e+01\n"
    )
    assert not k.errors


def test_string_growth_is_bounded(k: K2636) -> None:
    k.handle('s = "x" while true do s = s .. s end')
    assert codes(k) == [-286]
    assert last_message(k).endswith("string length overflow")


def test_script_keyword_after_leading_whitespace(k: K2636) -> None:
    assert k.handle("\n  loadscript a\nprint(1)\nendscript\na()") == b"1.00000e+00\n"


def test_status_byte_includes_model_summary_bits() -> None:
    """A model's register-tree summary (``status_summary``) reaches ``*STB?``, masked to the
    summary bits (EAV/ESB/MSS stay the base class's)."""

    class Summary(TspInstrument):
        def status_summary(self) -> int:
            return 0xFF

    inst = Summary()
    assert inst.handle("*STB?") == b"155\n"  # 0x9B: MSB, SSB, QSB, MAV, OSB
    inst.handle("*SRE 1")
    assert inst.handle("*STB?") == b"219\n"  # + MSS

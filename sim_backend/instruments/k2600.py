"""Simulated Keithley 2600B System SourceMeter (TSP): smua/smub driving bench terminals.

Real TSP names (smuX.source/measure/nvbufferN/trigger, trigger.timer[N]) on our TSP engine.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np

from dendrolab.errors import ParameterError
from sim_backend.bench import Bench
from sim_backend.instruments.options import check_options, model_idn
from sim_backend.tsp import (
    TspError,
    TspInstrument,
    TspLocalNode,
    TspObject,
    TspRuntimeError,
    check_number,
)

__all__ = ["Keithley2600BSim", "ReadingBuffer"]

OVERFLOW = 9.91e37  # what a fixed-range reading above 101 % of the range returns
OFF, ON, HIGH_Z = 0, 1, 2  # smuX.OUTPUT_OFF / OUTPUT_ON / OUTPUT_HIGH_Z
DCAMPS, DCVOLTS = 0, 1
DISABLE, ENABLE, ASYNC = 0, 1, 2
SOURCE_IDLE, SOURCE_HOLD = 0, 1
DELAY_AUTO = -1
SENSE_LOCAL, SENSE_REMOTE, SENSE_CALA = 0, 1, 3  # smuX.sense (manual 7-233)
BUFFER_CAPACITY = 60_000  # readings per nvbuffer (approximate; the manual quotes > 60 000)
TIMERS = 8

# Source/measure ranges per family (volts, amperes). The 10 A pulse-only range is not modelled.
_V_LOW = (0.1, 1.0, 6.0, 40.0)
_V_HIGH = (0.2, 2.0, 20.0, 200.0)
_I_DECADES = (100e-9, 1e-6, 10e-6, 100e-6, 1e-3, 10e-3, 100e-3, 1.0)
_FAMILIES: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "260": (_V_LOW, (*_I_DECADES, 3.0)),
    "261": (_V_HIGH, (*_I_DECADES, 1.5)),
    "263": (_V_HIGH, (100e-12, 1e-9, 10e-9, *_I_DECADES, 1.5)),  # low-current models
}
# model -> (family, number of SMU channels)
_MODELS: dict[str, tuple[str, int]] = {
    "2601B": ("260", 1), "2602B": ("260", 2), "2604B": ("260", 2),
    "2611B": ("261", 1), "2612B": ("261", 2), "2614B": ("261", 2),
    "2634B": ("263", 2), "2635B": ("263", 1), "2636B": ("263", 2),
}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Parameter checks (the 2600B reports 1101/1102 for numbers out of range, -224 for bad choices)


def _number(value: Any, name: str) -> float:
    return float(check_number(value, 1, name))


def _ranged(value: Any, low: float, high: float, name: str) -> float:
    v = _number(value, name)
    # bounds derived from range tables (0.2 * 0.1) carry rounding: allow 1e-12 relative
    if not v >= low - abs(low) * 1e-12:  # also catches NaN
        raise TspError(1102, "Parameter too small")
    if v > high + abs(high) * 1e-12:
        raise TspError(1101, "Parameter too big")
    return v


def _choice(value: Any, allowed: tuple[int, ...], name: str) -> int:
    if type(value) is bool:
        value = int(value)
    v = _number(value, name)
    if v not in allowed:
        raise TspError(-224, "Illegal parameter value")
    return int(v)


def _count(value: Any, low: int, high: int, name: str) -> int:
    v = _ranged(value, low, high, name)
    if not v.is_integer():
        raise TspError(-224, "Illegal parameter value")
    return int(v)


def _pick_range(ranges: tuple[float, ...], magnitude: float) -> float:
    """Smallest range that holds ``magnitude`` (the top range if none does)."""
    for r in ranges:
        if magnitude <= r * 1.01:
            return r
    return ranges[-1]


def _unsupported(detail: str) -> TspError:
    return TspError(-221, f"Settings conflict; {detail} (not supported by the simulation)")


# ---------------------------------------------------------------------------------------------
# Reading buffers


class ReadingBuffer(TspObject):
    """``smuX.nvbufferN`` (or ``smuX.makebuffer(n)``): readings with source values and times.

    With ``appendmode = 0`` a new measurement (spot reading or sweep) replaces the contents.
    Timestamps are relative to the first reading in the buffer; ``timestamps``/``sourcevalues``
    are nil unless collected. A full buffer stops storing (fill once).
    """

    TSP_FIELDS = ("appendmode", "collecttimestamps", "collectsourcevalues")
    TSP_READONLY = ("n", "capacity", "readings", "sourcevalues", "timestamps")
    TSP_METHODS = ("clear",)

    def __init__(
        self, capacity: int = BUFFER_CAPACITY, on_clear: Callable[[], None] | None = None
    ) -> None:
        self.capacity = capacity
        self._on_clear = on_clear  # dedicated buffers: the owner updates status BAV
        self._append = 0
        self._stamps = 0
        self._sources = 0
        self._readings: list[float] = []
        self._levels: list[float] = []
        self._times: list[float] = []
        self._t0 = 0.0

    @property
    def appendmode(self) -> int:
        return self._append

    @appendmode.setter
    def appendmode(self, value: Any) -> None:
        self._append = _choice(value, (0, 1), "appendmode")

    @property
    def collecttimestamps(self) -> int:
        return self._stamps

    @collecttimestamps.setter
    def collecttimestamps(self, value: Any) -> None:
        self._stamps = _choice(value, (0, 1), "collecttimestamps")

    @property
    def collectsourcevalues(self) -> int:
        return self._sources

    @collectsourcevalues.setter
    def collectsourcevalues(self, value: Any) -> None:
        self._sources = _choice(value, (0, 1), "collectsourcevalues")

    @property
    def n(self) -> int:
        return len(self._readings)

    @property
    def readings(self) -> list[float]:
        return self._readings  # scripts see lists as read-only tables: no copy per index

    @property
    def sourcevalues(self) -> list[float] | None:
        return self._levels if self._sources else None

    @property
    def timestamps(self) -> list[float] | None:
        return self._times if self._stamps else None

    def clear(self) -> None:
        self._readings = []
        self._levels = []
        self._times = []
        if self._on_clear is not None:
            self._on_clear()

    def start(self) -> None:
        """A new measurement begins: without append mode the old contents go."""
        if not self._append:
            self.clear()

    def store(self, value: float, level: float, t_s: float) -> None:
        """Append a reading; times are kept relative to the buffer's first reading."""
        if len(self._readings) < self.capacity:
            if not self._readings:
                self._t0 = t_s
            self._readings.append(value)
            self._levels.append(level)
            self._times.append(t_s - self._t0)

    def tsp_index(self, key: Any) -> Any:
        """``buf[i]`` is the i-th reading."""
        if type(key) is float and key.is_integer():
            key = int(key)
        if type(key) is int and 0 < key <= len(self._readings):
            return self._readings[key - 1]
        return None


def _buffer_arg(value: Any, argn: int, fname: str) -> ReadingBuffer | None:
    if value is None or isinstance(value, ReadingBuffer):
        return value
    raise TspRuntimeError(f"bad argument #{argn} to '{fname}' (reading buffer expected)")


# ---------------------------------------------------------------------------------------------
# One SMU channel: smuX.source, smuX.measure


class _Ranges:
    """Range fields shared by ``smuX.source`` and ``smuX.measure`` (each keeps its own values):
    setting a range picks the instrument range that covers it and turns autorange off."""

    _smu: _Smu
    _rangev: float
    _rangei: float
    _autorangev: int
    _autorangei: int

    @property
    def rangev(self) -> float:
        return self._rangev

    @rangev.setter
    def rangev(self, value: Any) -> None:
        ranges = self._smu.v_ranges
        v = _ranged(value, -ranges[-1] * 1.01, ranges[-1] * 1.01, "rangev")
        self._rangev = _pick_range(ranges, abs(v))
        self._autorangev = 0

    @property
    def rangei(self) -> float:
        return self._rangei

    @rangei.setter
    def rangei(self, value: Any) -> None:
        ranges = self._smu.i_ranges
        v = _ranged(value, -ranges[-1] * 1.01, ranges[-1] * 1.01, "rangei")
        self._rangei = _pick_range(ranges, abs(v))
        self._autorangei = 0

    @property
    def autorangev(self) -> int:
        return self._autorangev

    @autorangev.setter
    def autorangev(self, value: Any) -> None:
        self._autorangev = _choice(value, (0, 1), "autorangev")

    @property
    def autorangei(self) -> int:
        return self._autorangei

    @autorangei.setter
    def autorangei(self, value: Any) -> None:
        self._autorangei = _choice(value, (0, 1), "autorangei")


class _Source(_Ranges, TspObject):
    """``smuX.source``: function, levels, ranges, limits, output state, compliance."""

    TSP_FIELDS = (
        "func", "levelv", "leveli", "rangev", "rangei", "autorangev", "autorangei",
        "limitv", "limiti", "output", "offmode", "delay",
    )  # fmt: skip
    TSP_READONLY = ("compliance",)

    def __init__(self, smu: _Smu) -> None:
        self._smu = smu
        self.defaults()

    def defaults(self) -> None:
        smu = self._smu
        self._func = DCVOLTS
        self._levelv = 0.0
        self._leveli = 0.0
        self._rangev = smu.v_ranges[0]
        self._rangei = smu.i_ranges[0]
        self._autorangev = 1
        self._autorangei = 1
        self._limiti = 0.1
        self._limitv = 20.0
        self._output = OFF
        self._offmode = 0
        self._delay = 0.0

    # -- function and levels ------------------------------------------------------------------
    @property
    def func(self) -> int:
        return self._func

    @func.setter
    def func(self, value: Any) -> None:
        self._func = _choice(value, (DCAMPS, DCVOLTS), "func")
        self._smu.active_level = None
        self._smu.drive()

    @property
    def levelv(self) -> float:
        return self._levelv

    @levelv.setter
    def levelv(self, value: Any) -> None:
        top = self._smu.v_ranges[-1] * 1.01
        self._levelv = _ranged(value, -top, top, "levelv")
        if self._autorangev:
            self._rangev = _pick_range(self._smu.v_ranges, abs(self._levelv))
        if self._func == DCVOLTS:
            self._smu.active_level = None
            self._smu.drive()

    @property
    def leveli(self) -> float:
        return self._leveli

    @leveli.setter
    def leveli(self, value: Any) -> None:
        top = self._smu.i_ranges[-1] * 1.01
        self._leveli = _ranged(value, -top, top, "leveli")
        if self._autorangei:
            self._rangei = _pick_range(self._smu.i_ranges, abs(self._leveli))
        if self._func == DCAMPS:
            self._smu.active_level = None
            self._smu.drive()

    # -- limits ---------------------------------------------------------------------------------
    @property
    def limiti(self) -> float:
        return self._limiti

    @limiti.setter
    def limiti(self, value: Any) -> None:
        ranges = self._smu.i_ranges
        self._limiti = _ranged(value, ranges[0] * 0.1, ranges[-1], "limiti")

    @property
    def limitv(self) -> float:
        return self._limitv

    @limitv.setter
    def limitv(self, value: Any) -> None:
        ranges = self._smu.v_ranges
        self._limitv = _ranged(value, ranges[0] * 0.1, ranges[-1], "limitv")
        if self._func == DCAMPS:
            self._smu.drive()

    # -- output ---------------------------------------------------------------------------------
    @property
    def output(self) -> int:
        return self._output

    @output.setter
    def output(self, value: Any) -> None:
        state = _choice(value, (OFF, ON, HIGH_Z), "output")
        self._output = ON if state == ON else OFF
        if state == HIGH_Z:
            self._offmode = HIGH_Z
        self._smu.active_level = None
        self._smu.drive()

    @property
    def offmode(self) -> int:
        return self._offmode

    @offmode.setter
    def offmode(self, value: Any) -> None:
        self._offmode = _choice(value, (0, 1, 2), "offmode")

    @property
    def delay(self) -> float:
        return self._delay

    @delay.setter
    def delay(self, value: Any) -> None:
        v = _number(value, "delay")
        self._delay = float(DELAY_AUTO) if v == DELAY_AUTO else _ranged(v, 0.0, 1e4, "delay")

    @property
    def compliance(self) -> bool:
        """Live: is the source clamped at its limit right now (false with the output off)?"""
        return self._smu.in_compliance()


class _Measure(_Ranges, TspObject):
    """``smuX.measure``: integration, ranges, delay, count; spot readings i/v/iv/r/p."""

    TSP_FIELDS = (
        "nplc", "rangei", "rangev", "autorangei", "autorangev", "delay", "count", "interval",
        "autozero",
    )  # fmt: skip
    TSP_METHODS = ("i", "v", "iv", "r", "p")

    def __init__(self, smu: _Smu) -> None:
        self._smu = smu
        self.defaults()

    def defaults(self) -> None:
        self._nplc = 1.0
        self._rangei = self._smu.i_ranges[0]
        self._rangev = self._smu.v_ranges[0]
        self._autorangei = 1
        self._autorangev = 1
        self._delay = 0.0
        self._count = 1
        self._interval = 0.0
        self._autozero = 2

    @property
    def nplc(self) -> float:
        return self._nplc

    @nplc.setter
    def nplc(self, value: Any) -> None:
        self._nplc = _ranged(value, 0.001, 25.0, "nplc")

    @property
    def delay(self) -> float:
        return self._delay

    @delay.setter
    def delay(self, value: Any) -> None:
        v = _number(value, "delay")
        self._delay = float(DELAY_AUTO) if v == DELAY_AUTO else _ranged(v, 0.0, 1e4, "delay")

    @property
    def count(self) -> int:
        return self._count

    @count.setter
    def count(self, value: Any) -> None:
        self._count = _count(value, 1, BUFFER_CAPACITY, "count")

    @property
    def interval(self) -> float:
        return self._interval

    @interval.setter
    def interval(self, value: Any) -> None:
        self._interval = _ranged(value, 0.0, 1.0, "interval")

    @property
    def autozero(self) -> int:
        return self._autozero

    @autozero.setter
    def autozero(self, value: Any) -> None:
        self._autozero = _choice(value, (0, 1, 2), "autozero")

    # -- spot measurements ------------------------------------------------------------------------
    def i(self, buf: Any = None) -> float:
        return self._smu.spot("iv", _buffer_arg(buf, 1, "i"), None)[0]

    def v(self, buf: Any = None) -> float:
        return self._smu.spot("iv", None, _buffer_arg(buf, 1, "v"))[1]

    def iv(self, ibuf: Any = None, vbuf: Any = None) -> tuple[float, float]:
        return self._smu.spot("iv", _buffer_arg(ibuf, 1, "iv"), _buffer_arg(vbuf, 2, "iv"))

    def r(self, buf: Any = None) -> float:
        i, v = self._smu.spot("r", _buffer_arg(buf, 1, "r"))
        return _ratio(v, i)

    def p(self, buf: Any = None) -> float:
        i, v = self._smu.spot("p", _buffer_arg(buf, 1, "p"))
        return v * i


def _ratio(v: float, i: float) -> float:
    return OVERFLOW if i == 0 or abs(i) >= OVERFLOW or abs(v) >= OVERFLOW else v / i


# ---------------------------------------------------------------------------------------------
# Trigger model: smuX.trigger.* and trigger.timer[N]


class _Timer(TspObject):
    """``trigger.timer[N]``: delay, count, passthrough, stimulus, EVENT_ID."""

    TSP_FIELDS = ("delay", "count", "passthrough", "stimulus")
    TSP_READONLY = ("EVENT_ID",)
    TSP_METHODS = ("reset",)

    def __init__(self, number: int) -> None:
        self.number = number
        self.EVENT_ID = 20 + number
        self.reset()

    def reset(self) -> None:
        self._delay = 10e-6
        self._count = 1
        self._passthrough = False
        self._stimulus = 0

    @property
    def delay(self) -> float:
        return self._delay

    @delay.setter
    def delay(self, value: Any) -> None:
        self._delay = _ranged(value, 0.0, 100e3, "delay")

    @property
    def count(self) -> int:
        return self._count

    @count.setter
    def count(self, value: Any) -> None:
        self._count = _count(value, 1, 1_048_575, "count")

    @property
    def passthrough(self) -> bool:
        return self._passthrough

    @passthrough.setter
    def passthrough(self, value: Any) -> None:
        self._passthrough = bool(_choice(value, (0, 1), "passthrough"))

    @property
    def stimulus(self) -> int:
        return self._stimulus

    @stimulus.setter
    def stimulus(self, value: Any) -> None:
        self._stimulus = _count(value, 0, 1_000_000, "stimulus")


class _TriggerSystem(TspObject):
    """The ``trigger`` global: only its timers are modelled."""

    TSP_READONLY = ("timer",)

    def __init__(self) -> None:
        self.timer = [_Timer(k) for k in range(1, TIMERS + 1)]

    def by_event(self, event_id: int) -> _Timer | None:
        for t in self.timer:
            if t.EVENT_ID == event_id:
                return t
        return None


class _Action(TspObject):
    """An event-detector layer: ``action`` and ``stimulus`` (0 = go immediately)."""

    TSP_FIELDS = ("action", "stimulus")
    ACTIONS: ClassVar[tuple[int, ...]] = (DISABLE, ENABLE)

    def __init__(self, action: int) -> None:
        self._default = action
        self.reset()

    def reset(self) -> None:
        self._action = self._default
        self._stimulus = 0

    @property
    def action(self) -> int:
        return self._action

    @action.setter
    def action(self, value: Any) -> None:
        self._action = _choice(value, self.ACTIONS, "action")

    @property
    def stimulus(self) -> int:
        return self._stimulus

    @stimulus.setter
    def stimulus(self, value: Any) -> None:
        self._stimulus = _count(value, 0, 1_000_000, "stimulus")


class _TriggerSource(_Action):
    """``smuX.trigger.source``: the sweep (listv/linearv/listi/lineari) and its limits."""

    TSP_FIELDS = ("limiti", "limitv")
    TSP_METHODS = ("listv", "linearv", "listi", "lineari")

    def __init__(self, smu: _Smu) -> None:
        self._smu = smu
        super().__init__(DISABLE)

    def reset(self) -> None:
        super().reset()
        self.values: list[float] = []
        self.kind = "v"
        self._limiti = 0.0  # LIMIT_AUTO: use smuX.source.limiti
        self._limitv = 0.0

    @property
    def limiti(self) -> float:
        return self._limiti

    @limiti.setter
    def limiti(self, value: Any) -> None:
        v = _number(value, "limiti")
        ranges = self._smu.i_ranges
        self._limiti = 0.0 if v == 0 else _ranged(v, ranges[0] * 0.1, ranges[-1], "limiti")

    @property
    def limitv(self) -> float:
        return self._limitv

    @limitv.setter
    def limitv(self, value: Any) -> None:
        v = _number(value, "limitv")
        ranges = self._smu.v_ranges
        self._limitv = 0.0 if v == 0 else _ranged(v, ranges[0] * 0.1, ranges[-1], "limitv")

    def _set(self, kind: str, values: list[float]) -> None:
        top = (self._smu.v_ranges if kind == "v" else self._smu.i_ranges)[-1] * 1.01
        self.values = [_ranged(x, -top, top, f"list{kind}") for x in values]
        self.kind = kind

    def _list(self, kind: str, table: Any) -> None:
        name = f"list{kind}"
        if not isinstance(table, list):
            raise TspRuntimeError(f"bad argument #1 to '{name}' (table expected)")
        if not 1 <= len(table) <= BUFFER_CAPACITY:
            raise TspError(
                1102 if not table else 1101,
                "Parameter too small" if not table else "Parameter too big",
            )
        self._set(kind, [_number(x, name) for x in table])

    def _linear(self, kind: str, start: Any, stop: Any, points: Any) -> None:
        name = f"linear{kind}"
        a = float(check_number(start, 1, name))
        b = float(check_number(stop, 2, name))
        n = check_number(points, 3, name)
        n = _count(n, 1, BUFFER_CAPACITY, name)
        self._set(kind, np.linspace(a, b, n).tolist())

    def listv(self, table: Any) -> None:
        self._list("v", table)

    def listi(self, table: Any) -> None:
        self._list("i", table)

    def linearv(self, start: Any, stop: Any, points: Any) -> None:
        self._linear("v", start, stop, points)

    def lineari(self, start: Any, stop: Any, points: Any) -> None:
        self._linear("i", start, stop, points)


class _TriggerMeasure(_Action):
    """``smuX.trigger.measure``: what each measure action takes and into which buffers."""

    TSP_METHODS = ("i", "v", "iv", "r", "p")
    ACTIONS = (DISABLE, ENABLE, ASYNC)

    def reset(self) -> None:
        super().reset()
        self.kind: str | None = None
        self.buffers: tuple[ReadingBuffer | None, ...] = ()

    def _configure(self, kind: str, *bufs: Any) -> None:
        checked = tuple(_buffer_arg(b, k, kind) for k, b in enumerate(bufs, 1))
        if any(b is None for b in checked):
            raise TspRuntimeError(f"bad argument to '{kind}' (reading buffer expected)")
        self.kind, self.buffers = kind, checked

    def i(self, buf: Any = None) -> None:
        self._configure("i", buf)

    def v(self, buf: Any = None) -> None:
        self._configure("v", buf)

    def iv(self, ibuf: Any = None, vbuf: Any = None) -> None:
        self._configure("iv", ibuf, vbuf)

    def r(self, buf: Any = None) -> None:
        self._configure("r", buf)

    def p(self, buf: Any = None) -> None:
        self._configure("p", buf)


class _TriggerEnd(_Action):
    """``smuX.trigger.endpulse``: after each point go back to the idle level, or hold."""

    ACTIONS = (SOURCE_IDLE, SOURCE_HOLD)


class _TriggerEndSweep(TspObject):
    """``smuX.trigger.endsweep``: at the end of the sweep go to the idle level, or hold."""

    TSP_FIELDS = ("action",)

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._action = SOURCE_IDLE

    @property
    def action(self) -> int:
        return self._action

    @action.setter
    def action(self, value: Any) -> None:
        self._action = _choice(value, (SOURCE_IDLE, SOURCE_HOLD), "action")


class _TriggerArm(TspObject):
    """``smuX.trigger.arm``: how often the trigger layer runs (stimulus 0 only)."""

    TSP_FIELDS = ("count", "stimulus")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._count = 1
        self._stimulus = 0

    @property
    def count(self) -> int:
        return self._count

    @count.setter
    def count(self, value: Any) -> None:
        self._count = _count(value, 0, 1_048_575, "count")

    @property
    def stimulus(self) -> int:
        return self._stimulus

    @stimulus.setter
    def stimulus(self, value: Any) -> None:
        self._stimulus = _count(value, 0, 1_000_000, "stimulus")


class _SmuTrigger(TspObject):
    """``smuX.trigger``: the SMU's trigger model; ``initiate()`` runs the whole sweep.

    Supported subset (anything else is refused with -221 at ``initiate()``): arm stimulus 0;
    finite arm and trigger counts; a source stimulus of 0 or a timer started by this SMU's
    ``ARMED_EVENT_ID`` (its events pace the points); measure and end-pulse stimuli of 0 or a
    one-shot, non-passthrough timer started by this SMU's ``SOURCE_COMPLETE_EVENT_ID``; measure
    action ENABLE/DISABLE (not ASYNC). A sweep list shorter than the trigger count repeats.
    """

    TSP_FIELDS = ("count",)
    TSP_READONLY = (
        "source", "measure", "endpulse", "endsweep", "arm",
        "ARMED_EVENT_ID", "SWEEPING_EVENT_ID", "SOURCE_COMPLETE_EVENT_ID",
        "MEASURE_COMPLETE_EVENT_ID", "PULSE_COMPLETE_EVENT_ID", "SWEEP_COMPLETE_EVENT_ID",
        "IDLE_EVENT_ID",
    )  # fmt: skip
    TSP_METHODS = ("initiate", "abort")

    def __init__(self, smu: _Smu, base_event: int) -> None:
        self._smu = smu
        (
            self.ARMED_EVENT_ID,
            self.SWEEPING_EVENT_ID,
            self.SOURCE_COMPLETE_EVENT_ID,
            self.MEASURE_COMPLETE_EVENT_ID,
            self.PULSE_COMPLETE_EVENT_ID,
            self.SWEEP_COMPLETE_EVENT_ID,
            self.IDLE_EVENT_ID,
        ) = range(base_event, base_event + 7)
        self.source = _TriggerSource(smu)
        self.measure = _TriggerMeasure(DISABLE)
        self.endpulse = _TriggerEnd(SOURCE_HOLD)
        self.endsweep = _TriggerEndSweep()
        self.arm = _TriggerArm()
        self._count = 1

    def reset(self) -> None:
        for layer in (self.source, self.measure, self.endpulse, self.endsweep, self.arm):
            layer.reset()
        self._count = 1

    @property
    def count(self) -> int:
        return self._count

    @count.setter
    def count(self, value: Any) -> None:
        self._count = _count(value, 0, 268_435_455, "count")

    def abort(self) -> None:
        """Sweeps run to completion inside ``initiate()``: nothing is ever running."""

    # -- planning -----------------------------------------------------------------------------
    def _timer(self, event_id: int, layer: str) -> _Timer:
        timer = self._smu.instrument.trigger_system.by_event(event_id)
        if timer is None:
            raise _unsupported(f"{self._smu.letter}.trigger.{layer}.stimulus = {event_id}")
        return timer

    def _source_times(self, n: int) -> list[float] | None:
        """Times (from the arm event) of the source events, or None to go immediately."""
        stim = self.source.stimulus
        if stim == 0:
            return None
        timer = self._timer(stim, "source")
        if timer.stimulus != self.ARMED_EVENT_ID:
            raise _unsupported(
                f"timer {timer.number} paces the source but is not started by "
                f"{self._smu.letter}.trigger.ARMED_EVENT_ID"
            )
        first = 0 if timer.passthrough else 1
        if timer.count + 1 - first < n:
            raise _unsupported(
                f"timer {timer.number} gives {timer.count + 1 - first} source events for {n} "
                "points (the sweep would wait forever)"
            )
        times = [(k + first) * timer.delay for k in range(n)]
        return times

    def _offset(self, stim: int, layer: str) -> float:
        """Delay of a measure/end-pulse event after the source action completes."""
        if stim == 0:
            return 0.0
        timer = self._timer(stim, layer)
        if timer.stimulus != self.SOURCE_COMPLETE_EVENT_ID or timer.passthrough or timer.count != 1:
            raise _unsupported(
                f"timer {timer.number} drives {layer} but is not a one-shot, non-passthrough "
                f"timer started by {self._smu.letter}.trigger.SOURCE_COMPLETE_EVENT_ID"
            )
        return timer.delay

    # -- running ------------------------------------------------------------------------------
    def initiate(self) -> None:
        smu, src, meas = self._smu, self.source, self.measure
        n, arms = self._count, self.arm.count
        if n == 0 or arms == 0:
            raise _unsupported("an infinite trigger or arm count")
        if self.arm.stimulus != 0:
            raise _unsupported(f"{smu.letter}.trigger.arm.stimulus = {self.arm.stimulus}")
        if meas.action == ASYNC:
            raise _unsupported(f"{smu.letter}.trigger.measure.action = {smu.letter}.ASYNC")
        sweeping = src.action == ENABLE
        if sweeping and not src.values:
            raise _unsupported("a source action without a sweep list")
        if sweeping and (src.kind == "v") != (smu.source.func == DCVOLTS):
            raise _unsupported(f"a {src.kind} sweep with the other source function")
        measuring = meas.action == ENABLE
        if measuring and meas.kind is None:
            raise _unsupported("a measure action without buffers (call trigger.measure.iv(...))")
        times = self._source_times(n)
        t_meas = self._offset(meas.stimulus, "measure")
        t_end = self._offset(self.endpulse.stimulus, "endpulse")

        bench = smu.bench
        limit = src.limiti if smu.source.func == DCVOLTS else src.limitv
        if measuring:
            for buf in meas.buffers:
                assert buf is not None
                buf.start()
        for _ in range(arms):
            t_arm = bench.now_s
            for k in range(n):
                if times is not None:
                    smu.wait_until(t_arm + times[k])
                if sweeping:
                    smu.active_level = src.values[k % len(src.values)]
                    smu.drive()
                if smu.source.delay > 0:
                    bench.advance(smu.source.delay)
                t_done = bench.now_s
                if measuring:
                    smu.wait_until(t_done + t_meas)
                    assert meas.kind is not None
                    smu.take(meas.kind, meas.buffers, limit or None)
                if self.endpulse.action == SOURCE_IDLE and sweeping:
                    smu.wait_until(t_done + t_end)
                    smu.active_level = None
                    smu.drive()
        if self.endsweep.action == SOURCE_IDLE and smu.active_level is not None:
            smu.active_level = None
            smu.drive()


# ---------------------------------------------------------------------------------------------
# The channel and the instrument


class _Smu(TspObject):
    """``smua`` / ``smub``: one channel driving the bench terminal ``<name>/<1|2>``."""

    TSP_FIELDS = ("sense",)
    TSP_READONLY = (
        "source", "measure", "trigger", "nvbuffer1", "nvbuffer2",
        "SENSE_LOCAL", "SENSE_REMOTE", "SENSE_CALA",
        "OUTPUT_DCAMPS", "OUTPUT_DCVOLTS", "OUTPUT_OFF", "OUTPUT_ON", "OUTPUT_HIGH_Z",
        "OUTPUT_NORMAL", "OUTPUT_ZERO", "AUTORANGE_OFF", "AUTORANGE_ON", "DISABLE", "ENABLE",
        "ASYNC", "SOURCE_IDLE", "SOURCE_HOLD", "DELAY_OFF", "DELAY_AUTO", "LIMIT_AUTO",
        "AUTOZERO_OFF", "AUTOZERO_ONCE", "AUTOZERO_AUTO",
    )  # fmt: skip
    TSP_METHODS = ("reset", "makebuffer")
    OUTPUT_DCAMPS, OUTPUT_DCVOLTS = DCAMPS, DCVOLTS
    OUTPUT_OFF, OUTPUT_ON, OUTPUT_HIGH_Z = OFF, ON, HIGH_Z
    OUTPUT_NORMAL, OUTPUT_ZERO = 0, 1
    AUTORANGE_OFF, AUTORANGE_ON = 0, 1
    DISABLE, ENABLE, ASYNC = DISABLE, ENABLE, ASYNC
    SOURCE_IDLE, SOURCE_HOLD = SOURCE_IDLE, SOURCE_HOLD
    DELAY_OFF, DELAY_AUTO = 0, DELAY_AUTO
    LIMIT_AUTO = 0
    AUTOZERO_OFF, AUTOZERO_ONCE, AUTOZERO_AUTO = 0, 1, 2
    SENSE_LOCAL, SENSE_REMOTE, SENSE_CALA = SENSE_LOCAL, SENSE_REMOTE, SENSE_CALA

    def __init__(self, instrument: Keithley2600BSim, index: int, family: str) -> None:
        self.instrument = instrument
        self.bench: Bench = instrument.bench
        self.letter = "smu" + "ab"[index]
        self.terminal = f"{instrument.name}/{index + 1}"
        self.v_ranges, self.i_ranges = _FAMILIES[family]
        self.active_level: float | None = None  # a sweep level replacing the programmed one
        self.source = _Source(self)
        self.measure = _Measure(self)
        self.trigger = _SmuTrigger(self, 1 + 10 * index)
        self.nvbuffer1 = ReadingBuffer(on_clear=self._buffers_cleared)
        self.nvbuffer2 = ReadingBuffer(on_clear=self._buffers_cleared)
        self.vlimit = self.ilimit = False  # limit flags of the last reading (status VLMT/ILMT)
        self._sense = SENSE_LOCAL

    @property
    def sense(self) -> int:
        return self._sense

    @sense.setter
    def sense(self, value: Any) -> None:
        """``smuX.sense`` (manual 7-233): LOCAL/REMOTE any time; CALA only with calibration
        enabled, which the simulation never is, so CALA is refused like a locked instrument."""
        mode = _choice(value, (SENSE_LOCAL, SENSE_REMOTE, SENSE_CALA), "sense")
        if mode == SENSE_CALA:
            raise TspError(-221, "Settings conflict; calibration is not enabled")
        self._sense = mode

    def _buffers_cleared(self) -> None:
        self.instrument.status.smu_event(self, None, None, None)

    def reset(self) -> None:
        """``smuX.reset()``: defaults, output off (buffers keep their readings)."""
        self._sense = SENSE_LOCAL
        self.source.defaults()
        self.measure.defaults()
        self.trigger.reset()
        self.active_level = None
        self.drive()

    def makebuffer(self, size: Any) -> ReadingBuffer:
        return ReadingBuffer(_count(size, 1, BUFFER_CAPACITY, "makebuffer"))

    # -- driving the bench ----------------------------------------------------------------------
    def level(self) -> float:
        """The level being sourced: a sweep point, else the programmed level."""
        if self.active_level is not None:
            return self.active_level
        return self.source.levelv if self.source.func == DCVOLTS else self.source.leveli

    def drive(self) -> None:
        """Apply output state, function and level to the bench terminal."""
        if self.source.output != ON:
            self.bench.source(self.terminal, None)
        elif self.source.func == DCVOLTS:
            self.bench.source(self.terminal, self.level())
        else:
            self._settle_current()

    def _settle_current(self, limit_v: float | None = None) -> bool:
        """Source current: solve for the voltage giving it and hold that; True if at limitv.

        Emulated with the bench's compliance clamp: at ±limitv with a current limit of |I| the
        clamp finds the voltage at which the devices conduct I (zero time passes).
        """
        target = self.level()
        vmax = limit_v or self.source.limitv
        bench, term = self.bench, self.terminal
        if not target:
            bench.source(term, 0.0)  # 0 A into passive devices: 0 V (no clamp to solve)
            return False
        bench.source(term, math.copysign(vmax, target))
        r = bench.measure(term, 0.0, abs(target))
        if r.tripped:
            bench.source(term, r.v_v)
            return False
        return target != 0

    def in_compliance(self) -> bool:
        """Is the source at its limit now? Updates the VLMT/ILMT status bits (manual 12-7)."""
        self.vlimit = self.ilimit = False
        if self.source.output == ON:
            if self.source.func == DCAMPS:
                self.vlimit = self._settle_current()
            else:
                self.ilimit = self.bench.measure(self.terminal, 0.0, self.source.limiti).tripped
        self.instrument.status.smu_event(self, self.vlimit, self.ilimit, None)
        return self.vlimit or self.ilimit

    def wait_until(self, t_s: float) -> None:
        self.bench.advance(t_s - self.bench.now_s)

    # -- measuring ------------------------------------------------------------------------------
    def _read(self, limit: float | None) -> tuple[float, float, float]:
        """One integration: (current, voltage, start time); ranges and overflow applied."""
        bench, term = self.bench, self.terminal
        aperture = self.measure.nplc / self.instrument.localnode.linefreq
        t0 = bench.now_s
        m = self.measure
        self.vlimit = self.ilimit = False
        if self.source.output != ON:
            return 0.0, bench.measure(term, aperture).v_v, t0
        if self.source.func == DCVOLTS:
            r = bench.measure(term, aperture, limit or self.source.limiti)
            i = r.i_a
            self.ilimit = r.tripped
            if m.autorangei:
                m._rangei = _pick_range(self.i_ranges, abs(i))
            elif abs(i) > m.rangei * 1.01:
                i = OVERFLOW
            return i, r.v_v, t0
        self._settle_current(limit)
        r = bench.measure(term, aperture, abs(self.level()) or None)
        self.vlimit = self._settle_current(limit)
        v = r.v_v
        if m.autorangev:
            m._rangev = _pick_range(self.v_ranges, abs(v))
        elif abs(v) > m.rangev * 1.01:
            v = OVERFLOW
        return r.i_a, v, t0

    def take(
        self, kind: str, buffers: tuple[ReadingBuffer | None, ...], limit: float | None = None
    ) -> tuple[float, float]:
        """One measure action: delay, then ``measure.count`` readings stored into buffers."""
        m = self.measure
        if m.delay > 0:
            self.bench.advance(m.delay)
        i = v = 0.0
        start = self.bench.now_s
        for k in range(m.count):
            if k:
                self.wait_until(start + k * m.interval)
            i, v, t0 = self._read(limit)
            values = {"i": (i,), "v": (v,), "iv": (i, v), "r": (_ratio(v, i),), "p": (v * i,)}
            for buf, value in zip(buffers, values[kind], strict=False):
                if buf is not None:
                    buf.store(value, self.level(), t0)
            overflow = abs(i) >= OVERFLOW or abs(v) >= OVERFLOW
            self.instrument.status.smu_event(self, self.vlimit, self.ilimit, overflow)
        return i, v

    def spot(self, kind: str, *buffers: ReadingBuffer | None) -> tuple[float, float]:
        """``smuX.measure.Y([buffers])``: the last (current, voltage) of ``measure.count``."""
        for buf in buffers:
            if buf is not None:
                buf.start()
        return self.take(kind, buffers)


class _LocalNode(TspLocalNode):
    """``localnode`` with a checked line frequency (it sets the NPLC integration time)."""

    @property
    def linefreq(self) -> float:
        return self._linefreq

    @linefreq.setter
    def linefreq(self, value: Any) -> None:
        self._linefreq = _choice(value, (50, 60), "linefreq")


# ---------------------------------------------------------------------------------------------
# Status model (manual section 12 / appendix E): the measurement event register tree feeding the
# status byte, the standard event register and the service request enable. Each register set has
# condition (R), event (R, cleared by reading), enable/ntr/ptr (RW, 0..65535); an event bit is set
# on a 0->1 condition transition allowed by ptr or a 1->0 one allowed by ntr; a set's summary
# (event AND enable) is a condition bit of its parent.

_MEASUREMENT_SMU_BITS = {
    "VOLTAGE_LIMIT": 1, "VLMT": 1, "CURRENT_LIMIT": 2, "ILMT": 2,
    "READING_OVERFLOW": 128, "ROF": 128, "BUFFER_AVAILABLE": 256, "BAV": 256,
}  # fmt: skip
_REGISTER_CLASSES: dict[tuple[str, tuple[tuple[str, int], ...]], type[_Register]] = {}


class _Register(TspObject):
    """One status register set; subclasses made by :func:`_register` add the bit constants."""

    TSP_FIELDS = ("enable", "ntr", "ptr")
    TSP_READONLY = ("condition", "event")
    ALL: ClassVar[int] = 0

    def __init__(self, parent: _Register | None = None, parent_bit: int = 0) -> None:
        self._parent = parent
        self._parent_bit = parent_bit
        self._condition = 0
        self.status_reset()

    def status_reset(self) -> None:
        """Status reset defaults: enable 0, ntr 0, ptr all bits, event cleared."""
        self._enable = 0
        self._ntr = 0
        self._ptr = self.ALL
        self._event = 0
        self._propagate()

    def clear_event(self) -> None:
        self._event = 0
        self._propagate()

    @property
    def condition(self) -> int:
        return self._condition

    @property
    def event(self) -> int:
        """Reading the event register clears it (manual 12-19)."""
        value = self._event
        if value:
            self.clear_event()
        return value

    @property
    def enable(self) -> int:
        return self._enable

    @enable.setter
    def enable(self, value: Any) -> None:
        self._enable = _count(value, 0, 65535, "enable")
        self._propagate()

    @property
    def ntr(self) -> int:
        return self._ntr

    @ntr.setter
    def ntr(self, value: Any) -> None:
        self._ntr = _count(value, 0, 65535, "ntr")

    @property
    def ptr(self) -> int:
        return self._ptr

    @ptr.setter
    def ptr(self, value: Any) -> None:
        self._ptr = _count(value, 0, 65535, "ptr")

    def set_bits(self, mask: int, on: bool) -> None:
        """Set or clear condition bits; latch the allowed transitions into the event register."""
        old = self._condition
        new = old | mask if on else old & ~mask
        if new == old:
            return
        self._condition = new
        latched = (new & ~old & self._ptr) | (old & ~new & self._ntr)
        if latched:
            self._event |= latched
            self._propagate()

    def summary(self) -> bool:
        return bool(self._event & self._enable)

    def _propagate(self) -> None:
        if self._parent is not None:
            self._parent.set_bits(self._parent_bit, self.summary())


def _register(name: str, bits: Mapping[str, int]) -> type[_Register]:
    """A register-set class whose bit constants are ``bits`` (cached per name and bits)."""
    key = (name, tuple(sorted(bits.items())))
    cls = _REGISTER_CLASSES.get(key)
    if cls is None:
        attrs: dict[str, Any] = dict(bits)
        attrs["TSP_READONLY"] = tuple(bits)
        attrs["ALL"] = sum(set(bits.values()))
        cls = _REGISTER_CLASSES[key] = type(name, (_Register,), attrs)
    return cls


class _Measurement(_Register):
    """``status.measurement`` (bits B0 VLMT, B1 ILMT, B7 ROF, B8 BAV, B11 INT or OE, B13 INST)
    and its sub-register sets."""

    TSP_READONLY = (
        "voltage_limit", "current_limit", "reading_overflow", "buffer_available", "instrument",
    )  # fmt: skip


class _MeasurementInstrument(_Register):
    """``status.measurement.instrument``: SMUA (B1) / SMUB (B2) summaries, and ``.smuX``."""


class _StatusStandard(TspObject):
    """``status.standard``: the IEEE 488.2 standard event register (``*ESR?``/``*ESE``)."""

    TSP_FIELDS = ("enable", "ntr", "ptr")
    TSP_READONLY = (
        "condition", "event",
        "OPERATION_COMPLETE", "OPC", "QUERY_ERROR", "QYE", "DEVICE_DEPENDENT_ERROR", "DDE",
        "EXECUTION_ERROR", "EXE", "COMMAND_ERROR", "CME", "USER_REQUEST", "URQ",
        "POWER_ON", "PON",
    )  # fmt: skip
    OPERATION_COMPLETE = OPC = 1
    QUERY_ERROR = QYE = 4
    DEVICE_DEPENDENT_ERROR = DDE = 8
    EXECUTION_ERROR = EXE = 16
    COMMAND_ERROR = CME = 32
    USER_REQUEST = URQ = 64
    POWER_ON = PON = 128

    def __init__(self, instrument: TspInstrument) -> None:
        self._instrument = instrument
        self.status_reset()

    def status_reset(self) -> None:
        self._ntr = 0
        self._ptr = 255

    @property
    def condition(self) -> int:
        return self._instrument.esr

    @property
    def event(self) -> int:
        value, self._instrument.esr = self._instrument.esr, 0
        return value

    @property
    def enable(self) -> int:
        return self._instrument.ese

    @enable.setter
    def enable(self, value: Any) -> None:
        self._instrument.ese = _count(value, 0, 255, "enable")

    @property
    def ntr(self) -> int:
        return self._ntr

    @ntr.setter
    def ntr(self, value: Any) -> None:
        self._ntr = _count(value, 0, 255, "ntr")

    @property
    def ptr(self) -> int:
        return self._ptr

    @ptr.setter
    def ptr(self, value: Any) -> None:
        self._ptr = _count(value, 0, 255, "ptr")


class _Status(TspObject):
    """``status``: status byte (``condition``), ``request_enable``, ``node_enable``,
    ``standard.*``, the ``measurement.*`` tree, and ``reset()``.

    Not modelled: the operation, questionable and system register trees.
    """

    TSP_FIELDS = ("request_enable", "node_enable")
    TSP_READONLY = (
        "condition", "measurement", "standard",
        "MEASUREMENT_SUMMARY_BIT", "MSB", "SYSTEM_SUMMARY_BIT", "SSB",
        "ERROR_AVAILABLE", "EAV", "QUESTIONABLE_SUMMARY_BIT", "QSB",
        "MESSAGE_AVAILABLE", "MAV", "EVENT_SUMMARY_BIT", "ESB",
        "MASTER_SUMMARY_STATUS", "MSS", "OPERATION_SUMMARY_BIT", "OSB",
    )  # fmt: skip
    TSP_METHODS = ("reset",)
    MEASUREMENT_SUMMARY_BIT = MSB = 1
    SYSTEM_SUMMARY_BIT = SSB = 2
    ERROR_AVAILABLE = EAV = 4
    QUESTIONABLE_SUMMARY_BIT = QSB = 8
    MESSAGE_AVAILABLE = MAV = 16
    EVENT_SUMMARY_BIT = ESB = 32
    MASTER_SUMMARY_STATUS = MSS = 64
    OPERATION_SUMMARY_BIT = OSB = 128

    def __init__(self, instrument: Keithley2600BSim, letters: list[str], family: str) -> None:
        self._instrument = instrument
        self.summary_bits = 0  # status byte bits fed by the register trees (MSB)
        smu_bits = {f"SMU{x[-1].upper()}": 2 << k for k, x in enumerate(letters)}
        lock = (
            {"INTERLOCK": 2048, "INT": 2048}
            if family != "260"
            else {"OUTPUT_ENABLE": 2048, "OE": 2048}
        )
        measurement_bits = {
            "VOLTAGE_LIMIT": 1, "VLMT": 1, "CURRENT_LIMIT": 2, "ILMT": 2,
            "READING_OVERFLOW": 128, "ROF": 128, "BUFFER_AVAILABLE": 256, "BAV": 256,
            **lock, "INSTRUMENT_SUMMARY": 8192, "INST": 8192,
        }  # fmt: skip
        meas_cls = _register("_Measurement", measurement_bits)
        meas = type("_MeasurementTree", (meas_cls, _Measurement), {})(self._root_bit(1), 1)
        sub = _register("_MeasurementSmus", smu_bits)
        meas.voltage_limit = sub(meas, 1)
        meas.current_limit = sub(meas, 2)
        meas.reading_overflow = sub(meas, 128)
        meas.buffer_available = sub(meas, 256)
        inst_cls = type(
            "_MeasurementInstrumentTree",
            (_register("_MeasurementInstrument", smu_bits), _MeasurementInstrument),
            {"TSP_READONLY": tuple(letters)},
        )
        inst = inst_cls(meas, 8192)
        smu_cls = _register("_MeasurementSmu", _MEASUREMENT_SMU_BITS)
        self._smu_regs: dict[str, tuple[_Register, int]] = {}
        for letter in letters:
            reg = smu_cls(inst, smu_bits[f"SMU{letter[-1].upper()}"])
            setattr(inst, letter, reg)
            self._smu_regs[letter] = (reg, smu_bits[f"SMU{letter[-1].upper()}"])
        meas.instrument = inst
        self.measurement = meas
        self.standard = _StatusStandard(instrument)
        self._request_enable = 0
        self._node_enable = 0

    def _root_bit(self, bit: int) -> _Register:
        """A stand-in parent that writes a summary into the status byte."""
        status = self

        class _Byte(_Register):
            def set_bits(self, mask: int, on: bool) -> None:
                status.summary_bits = (
                    status.summary_bits | mask if on else (status.summary_bits & ~mask)
                )

        return _Byte()

    def registers(self) -> list[_Register]:
        meas = self.measurement
        regs: list[_Register] = [
            meas, meas.voltage_limit, meas.current_limit, meas.reading_overflow,
            meas.buffer_available, meas.instrument,
        ]  # fmt: skip
        regs += [reg for reg, _ in self._smu_regs.values()]
        return regs

    def smu_event(
        self, smu: _Smu, vlimit: bool | None, ilimit: bool | None, overflow: bool | None
    ) -> None:
        """New hardware conditions of one SMU (None: unchanged); BAV is always re-read."""
        reg, bit = self._smu_regs[smu.letter]
        meas = self.measurement
        bav = bool(smu.nvbuffer1.n or smu.nvbuffer2.n)
        for flag, mask, group in (
            (vlimit, 1, meas.voltage_limit),
            (ilimit, 2, meas.current_limit),
            (overflow, 128, meas.reading_overflow),
            (bav, 256, meas.buffer_available),
        ):
            if flag is not None:
                reg.set_bits(mask, flag)
                group.set_bits(bit, flag)

    @property
    def condition(self) -> int:
        return self._instrument.status_byte()

    @property
    def request_enable(self) -> int:
        return self._instrument.sre

    @request_enable.setter
    def request_enable(self, value: Any) -> None:
        self._instrument.sre = _count(value, 0, 255, "request_enable") & 0xBF

    @property
    def node_enable(self) -> int:
        return self._node_enable

    @node_enable.setter
    def node_enable(self, value: Any) -> None:
        self._node_enable = _count(value, 0, 255, "node_enable") & 0xBF

    def clear_events(self) -> None:
        """``*CLS``: clear every event register."""
        for reg in self.registers():
            reg.clear_event()

    def reset(self) -> None:
        """``status.reset()``: event registers cleared, enable/ntr/ptr to defaults."""
        for reg in self.registers():
            reg.status_reset()
        self.standard.status_reset()
        self._instrument.esr = 0
        self._instrument.ese = 0
        self._instrument.sre = 0
        self._node_enable = 0


# ---------------------------------------------------------------------------------------------
# Front-panel display (manual 7-xx "display.*"): the non-interactive subset a remote program uses.

DISPLAY_SMUA, DISPLAY_SMUB, DISPLAY_SMUA_SMUB, DISPLAY_USER = 0, 1, 2, 3
_ROW_WIDTH = (20, 32)  # characters on the top and bottom line of the user screen
_TEXT_CODES = re.compile(r"\$[NRBDF]")  # $N new line, $R/$B/$D/$F attributes ($$ is a dollar)


class _Display(TspObject):
    """``display``: screen selection, the user screen (clear/settext/gettext/setcursor/getcursor),
    ``locallockout``, ``numpad``, ``sendkey``/``getlastkey``.

    Not modelled: the functions that wait for an operator (``inputvalue``, ``menu``, ``prompt``,
    ``waitkey``) and the per-SMU display settings (``display.smuX.*``). Key codes given to
    ``sendkey`` are recorded for ``getlastkey`` but have no front-panel effect.
    """

    TSP_FIELDS = ("screen", "locallockout", "numpad")
    TSP_READONLY = (
        "SMUA", "SMUB", "SMUA_SMUB", "USER", "LOCK", "UNLOCK", "ENABLE", "DISABLE", "KEY_NONE",
    )  # fmt: skip
    TSP_METHODS = ("clear", "settext", "gettext", "setcursor", "getcursor", "sendkey", "getlastkey")
    SMUA, SMUB, SMUA_SMUB, USER = DISPLAY_SMUA, DISPLAY_SMUB, DISPLAY_SMUA_SMUB, DISPLAY_USER
    UNLOCK, LOCK = 0, 1
    DISABLE, ENABLE = 0, 1
    KEY_NONE = 0

    def __init__(self, instrument: Keithley2600BSim) -> None:
        self._screens = (
            (DISPLAY_SMUA, DISPLAY_SMUB, DISPLAY_SMUA_SMUB, DISPLAY_USER)
            if len(instrument.smus) > 1
            else (DISPLAY_SMUA, DISPLAY_USER)
        )
        self._lines = ["", ""]
        self._cursor = [1, 1, 0]
        self._lastkey = 0
        self._lockout = 0
        self._numpad = 1
        self.reset()

    def reset(self) -> None:
        """Instrument reset: the SMU screen, an empty user screen, the cursor home."""
        self._screen = self._screens[-2]
        self._lines = ["", ""]
        self._cursor = [1, 1, 0]

    @property
    def screen(self) -> int:
        return self._screen

    @screen.setter
    def screen(self, value: Any) -> None:
        self._screen = _choice(value, self._screens, "screen")

    @property
    def locallockout(self) -> int:
        return self._lockout

    @locallockout.setter
    def locallockout(self, value: Any) -> None:
        self._lockout = _choice(value, (0, 1), "locallockout")

    @property
    def numpad(self) -> int:
        return self._numpad

    @numpad.setter
    def numpad(self, value: Any) -> None:
        self._numpad = _choice(value, (0, 1), "numpad")

    def clear(self) -> None:
        """Switch to the user screen and blank both lines."""
        self._screen = DISPLAY_USER
        self._lines = ["", ""]
        self._cursor = [1, 1, self._cursor[2]]

    def settext(self, text: Any = None) -> None:
        """Write at the cursor; ``$N`` moves to line 2; text past the line end is dropped."""
        if type(text) is not str:
            raise TspRuntimeError("bad argument #1 to 'settext' (string expected)")
        self._screen = DISPLAY_USER
        plain = text.replace("$$", "\0")
        row, col = self._cursor[0], self._cursor[1]
        for k, part in enumerate(re.split(r"\$N", plain)):
            if k:
                row, col = 2, 1
            chars = _TEXT_CODES.sub("", part).replace("\0", "$")
            width = _ROW_WIDTH[row - 1]
            line = self._lines[row - 1].ljust(col - 1)
            room = chars[: max(width - col + 1, 0)]
            self._lines[row - 1] = line[: col - 1] + room + line[col - 1 + len(room) :]
            col = min(col + len(room), width)
        self._cursor[0], self._cursor[1] = row, col

    def gettext(self, embellished: Any = None, row: Any = None, *_: Any) -> str:
        """Both lines joined by ``$N`` (attribute codes are not kept), or one line."""
        if row is None:
            return f"{self._lines[0].ljust(_ROW_WIDTH[0])}$N{self._lines[1]}"
        r = _choice(row, (1, 2), "gettext")
        return self._lines[r - 1]

    def setcursor(self, row: Any = None, column: Any = None, style: Any = 0) -> None:
        """Out-of-range values clamp as the manual says (row 2, last column, invisible)."""
        r = int(check_number(row, 1, "setcursor"))
        c = int(check_number(column, 2, "setcursor"))
        st = int(check_number(style, 3, "setcursor"))
        r = r if r in (1, 2) else 2
        width = _ROW_WIDTH[r - 1]
        c = c if 1 <= c <= width else width
        self._screen = DISPLAY_USER
        self._cursor = [r, c, st if st in (0, 1) else 0]

    def getcursor(self) -> tuple[int, int, int]:
        self._screen = DISPLAY_USER
        return self._cursor[0], self._cursor[1], self._cursor[2]

    def sendkey(self, code: Any = None) -> None:
        self._lastkey = _count(check_number(code, 1, "sendkey"), 0, 255, "sendkey")

    def getlastkey(self) -> int:
        return self._lastkey


def idn_model(idn: str) -> str:
    """The model field of an ``*IDN?`` string without its ``Model`` prefix (``2636B``)."""
    field = idn.split(",")[1].strip()
    return field[6:].strip() if field.lower().startswith("model ") else field


class Keithley2600BSim(TspInstrument):
    """Keithley 2600B (default 2636B) on the bench: smua -> ``<name>/1``, smub -> ``<name>/2``.

    Options: ``idn`` (its model field picks ranges and channels: 2601B/2602B/2604B/2611B/2612B/
    2614B/2634B/2635B/2636B), ``serial``, ``line_frequency_hz`` (50 or 60; NPLC time base).

    Deviations, documented: output off (any offmode) leaves the terminal open; sourcing current
    re-solves the voltage at each action/reading and holds it in between; the bench clamps a
    voltage source only while it measures; DELAY_AUTO adds no delay; event IDs are arbitrary
    numbers; only the trigger-model subset described in ``_SmuTrigger`` runs.
    """

    idn = "Keithley Instruments Inc., Model 2636B, 4308079, 3.2.2"
    OPTIONS: ClassVar[set[str]] = {"idn", "serial", "line_frequency_hz"}

    def __init__(self, bench: Bench, name: str, options: Mapping[str, Any] | None = None) -> None:
        who = f"{type(self).__name__} {name!r}"
        opts = check_options(options, self.OPTIONS, who)
        idn = model_idn(opts, type(self).idn, who)
        model = idn_model(idn).upper()
        if model not in _MODELS:
            raise ParameterError(
                f"{who}: model {model!r} in idn is not a 2600B; known: {', '.join(_MODELS)}"
            )
        freq = opts.get("line_frequency_hz", 50)
        if isinstance(freq, bool) or freq not in (50, 60):
            raise ParameterError(f"{who}: line_frequency_hz must be 50 or 60, got {freq!r}")
        super().__init__(idn)
        self.bench = bench
        self.name = name
        self.localnode = _LocalNode(self.idn)
        self.localnode.linefreq = int(freq)
        self.trigger_system = _TriggerSystem()
        family, channels = _MODELS[model]
        self.smus = [_Smu(self, k, family) for k in range(channels)]
        self.status = _Status(self, [smu.letter for smu in self.smus], family)
        self.display = _Display(self)

    def tsp_namespace(self) -> dict[str, Any]:
        names = {smu.letter: smu for smu in self.smus}
        return {
            **names, "trigger": self.trigger_system, "status": self.status,
            "display": self.display,
        }  # fmt: skip

    def status_summary(self) -> int:
        """Status byte bits from the register trees (B0: measurement summary)."""
        return self.status.summary_bits

    def clear_status(self) -> None:
        """``*CLS``: error queue, standard event register and every event register."""
        super().clear_status()
        self.status.clear_events()

    def reset(self) -> None:
        """``reset()`` / ``*RST``: every channel to defaults with its output off; timers reset."""
        super().reset()
        for smu in self.smus:
            smu.reset()
        for timer in self.trigger_system.timer:
            timer.reset()
        self.display.reset()

    def delay(self, seconds: float) -> None:
        self.bench.advance(seconds)

"""Simulated Keithley 2450 SourceMeter in native SCPI mode (reference manual 2450-901-01).

Source/limit/measure settings (with the averaging filter), reading buffers and their statistics,
the operation/questionable status registers, linear and list sweeps run at ``:INIT``; every
reading goes through the bench and costs source delay + NPLC of simulated time.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from sim_backend.bench import Bench
from sim_backend.instruments.options import check_options, model_idn
from sim_backend.instruments.smu_common import (
    Sample,
    SmuChannel,
    format_e,
    line_frequency,
    pick_range,
)
from sim_backend.scpi import (
    Command,
    ScpiError,
    ScpiInstrument,
    parse_choice,
    parse_number,
    scpi,
)

V_RANGES = (0.02, 0.2, 2.0, 20.0, 200.0)
R_RANGES = (20.0, 200.0, 2e3, 2e4, 2e5, 2e6, 2e7, 2e8)  # 2-wire/4-wire ohms ranges
I_RANGES = (1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
V_MAX, I_MAX = 210.0, 1.05
OVERFLOW = 9.9e37
DEFAULT_BUFFERS = ("defbuffer1", "defbuffer2")
DEFAULT_CAPACITY = 100_000
MAX_CAPACITY = 11_000_000  # not in the notes: a generous cap so a typo cannot eat the host's RAM
LIST_CHUNK_MAX = 100  # values per :SOUR:LIST command (manual 6-78)
# Auto source delay (not in the notes; close to the 2450 tables): V ranges <= 20 V, 200 V, I.
AUTO_DELAY_V, AUTO_DELAY_V200, AUTO_DELAY_I = 50e-6, 1.1e-3, 1e-3
# Buffer status bits: measurement STAT (front terminals) and SOURSTAT (readback, limit, output).
STAT_FRONT, STAT_QUESTIONABLE = 8, 1
SSTAT_READBACK, SSTAT_LIMIT, SSTAT_OUTPUT = 2, 8, 32

_ELEMENTS = (
    "READing",
    "SOURce",
    "RELative",
    "TSTamp",
    "UNIT",
    "SOURUNIT",
    "STATus",
    "SOURSTATus",
    "DATE",
    "TIME",
)
_BINARY_ELEMENTS = {"READ", "SOUR", "REL"}
_ROW_INDEX = {"READ": 0, "SOUR": 1, "REL": 2, "STAT": 3, "SOURSTAT": 4}
_UNITS = ("Amp DC", "Volt DC", "Ohm")  # unit codes 0, 1, 2
_SENSE_FUNCS = {"CURR": 0, "VOLT": 1, "RES": 2}
_SENSE_NAMES = {0: '"CURR:DC"', 1: '"VOLT:DC"', 2: '"RES"'}
_SENSE_KEYS = ("CURR", "VOLT", "RES")
_NCOLS = 7  # values per reading (_Buffer.NAMES)
_FLUSH_ROWS = 4096  # pending single readings that go to the columns in one write
_FLUSH_VALUES = _NCOLS * _FLUSH_ROWS
_READ_ONLY = ("READ",)
#: ``:FORM:ASC:PREC`` -> format spec of ASCII readings (0: the default 7 significant digits).
_ASCII_SPECS = {p: f".{p - 1 if p else 6}E" for p in range(17)}


#: (elements, precision) -> ``str.format`` pattern of an ASCII row (None when some element is
#: not a plain row value, e.g. UNIT or DATE); ``rel`` is the relative time.
_ROW_PATTERNS: dict[tuple[tuple[str, ...], int], str | None] = {}
_UNSET = object()


#: Each range's top as ``pick_range`` tests it (``r * (1 + 1e-9)``): the smallest range that
#: holds |x| is ``ranges[bisect_left(tops, |x|)]`` (none past the end, or for NaN).
_I_TOPS = tuple(r * (1 + 1e-9) for r in I_RANGES)
_V_TOPS = tuple(r * (1 + 1e-9) for r in V_RANGES)
#: The top of the largest voltage range <= 20 V as ``pick_range`` tests it (the auto source
#: delay is the short one up to there; ``_source_delay`` runs after every new level).
_V_LOW_TOP = max(r for r in V_RANGES if r <= 20.0) * (1 + 1e-9)

#: ``tuple.__new__``: a ``Sample`` exactly as ``Sample(...)`` makes it, without the call through
#: the named tuple's Python-level ``__new__`` (one per spot reading).
_new_tuple = tuple.__new__


def _row_pattern(elements: tuple[str, ...], precision: int) -> str | None:
    if not all(e in _ROW_INDEX for e in elements):
        return None
    spec = _ASCII_SPECS.get(precision)
    if spec is None:
        spec = f".{precision - 1 if precision else 6}E"
    fields = ("rel" if e == "REL" else str(_ROW_INDEX[e]) for e in elements)
    return ",".join(f"{{{f}:{spec}}}" for f in fields)


def _fn(cmd: Command) -> str:
    """Which function a ``<function>`` header names (CURRent / VOLTage / RESistance)."""
    h = cmd.header
    if ":CURR" in h:
        return "CURR"
    if ":RES" in h:
        return "RES"
    return "VOLT"


def _e(value: float) -> str:
    return f"{value:.6E}"


class _Stats:
    """Running statistics of the readings that entered a buffer (``:TRACe:STATistics``).

    They include readings a continuous buffer has since overwritten (manual, TRACe:STATistics:
    AVERage?) and are cleared with the buffer or by ``:TRACe:STATistics:CLEar``. Chunks merge
    by Chan's pairwise update (mean and sum of squared deviations), so a small spread on a
    large mean keeps its digits.
    """

    __slots__ = ("m2", "maximum", "mean", "minimum", "n")

    def __init__(self) -> None:
        self.n = 0
        self.mean = self.m2 = 0.0
        self.minimum, self.maximum = math.inf, -math.inf

    def add(self, values: np.ndarray) -> None:
        k = values.size
        if not k:
            return
        mean_b = float(values.mean())
        m2_b = float(((values - mean_b) ** 2).sum())
        n = self.n + k
        delta = mean_b - self.mean
        self.mean += delta * k / n
        self.m2 += m2_b + delta * delta * self.n * k / n
        self.n = n
        self.minimum = min(self.minimum, float(values.min()))
        self.maximum = max(self.maximum, float(values.max()))

    def value(self, which: str) -> float:
        """AVER, MAX, MIN, PK2P or STDD; 0 for an empty buffer (not in the manual)."""
        if not self.n:
            return 0.0
        if which == "AVER":
            return self.mean
        if which == "MAX":
            return self.maximum
        if which == "MIN":
            return self.minimum
        if which == "PK2P":
            return self.maximum - self.minimum
        return math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else 0.0  # sample deviation


class _StatusRegister:
    """One event register set of the 2450 status model (operation or questionable): condition,
    latched event, enable mask and the event numbers mapped to each bit (manual, STATus
    subsystem). The simulation raises no mapped events, so condition and event stay 0."""

    __slots__ = ("condition", "enable", "event", "maps")

    def __init__(self) -> None:
        self.condition = self.event = self.enable = 0
        self.maps: dict[int, tuple[int, int]] = {}


class _Buffer:
    """One reading buffer: columns in numpy arrays, a ring when the fill mode is continuous.

    Single readings (``append``) first collect in a flat list (``_flat``, row after row; or,
    once a continuous buffer is full, ``_wrap``, rows that overwrite the oldest) and reach the
    columns in one numpy operation when the buffer is read, extended, full, or holds 4096 of
    them: ``count`` includes them; ``cols`` and ``start`` are current after ``_flush``.
    """

    __slots__ = ("_flat", "_wrap", "alloc", "capacity", "cols", "count", "fill", "start", "stats")

    NAMES = ("read", "sour", "t", "stat", "sstat", "unit", "sunit")

    def __init__(self, capacity: int, fill: str = "CONT") -> None:
        self.capacity = capacity
        self.fill = fill
        self.clear()

    def clear(self) -> None:
        self.alloc = 0
        self.cols = [np.empty(0) for _ in self.NAMES]
        self.count = 0
        self.start = 0
        self._flat: list[float] = []
        self._wrap: list[tuple[float, ...]] = []
        self.stats = _Stats()

    def _grow(self, needed: int) -> None:
        size = min(self.capacity, max(1024, 2 * needed))
        if size <= self.alloc:
            return
        cols = []
        for c in self.cols:
            new = np.empty(size)
            new[: self.count] = c[: self.count]
            cols.append(new)
        self.cols = cols
        self.alloc = size

    def _flush(self) -> None:
        """Move the readings collected by ``append`` into the columns (oldest first)."""
        flat = self._flat
        if flat:
            data = np.array(flat, dtype=float).reshape(-1, _NCOLS)
            flat.clear()
            k = len(data)
            self.stats.add(data[:, 0])
            n0 = self.count - k  # pending readings follow the stored ones (start is 0)
            self.count = n0
            if n0 + k > self.alloc:
                self._grow(n0 + k)
            for j, c in enumerate(self.cols):
                c[n0 : n0 + k] = data[:, j]
            self.count = n0 + k
        if self._wrap:
            rows, self._wrap = self._wrap, []
            self._ring_extend(rows)

    def extend(self, rows: list[tuple[float, ...]]) -> None:
        """Store readings (tuples in ``NAMES`` order), oldest first."""
        self._flush()
        k = len(rows)
        if not k:
            return
        cap = self.capacity
        if self.fill == "ONCE":
            k = min(k, cap - self.count)
            rows = rows[:k]
            if not k:
                return
        if self.count + k <= cap and self.start == 0:
            if self.count + k > self.alloc:
                self._grow(self.count + k)
            data = np.array(rows, dtype=float)
            self.stats.add(data[:, 0])
            for j, c in enumerate(self.cols):
                c[self.count : self.count + k] = data[:, j]
            self.count += k
            return
        self._ring_extend(rows)

    def _ring_extend(self, rows: list[tuple[float, ...]]) -> None:
        """Continuous fill past the capacity: a ring over the full allocation."""
        cap = self.capacity
        k = len(rows)
        self.stats.add(np.array([r[0] for r in rows], dtype=float))  # overwritten ones count too
        self._grow(cap)
        if k >= cap:
            rows = rows[-cap:]
            data = np.array(rows, dtype=float)
            for j, c in enumerate(self.cols):
                c[:] = data[:, j]
            self.start, self.count = 0, cap
            return
        data = np.array(rows, dtype=float)
        pos = (self.start + self.count + np.arange(k)) % cap
        for j, c in enumerate(self.cols):
            c[pos] = data[:, j]
        overflow = max(0, self.count + k - cap)
        self.start = (self.start + overflow) % cap
        self.count = min(cap, self.count + k)

    def append(self, row: tuple[float, ...]) -> None:
        """Store one reading (the spot-reading fast path of ``extend``)."""
        if len(row) != _NCOLS:
            raise ValueError(f"a reading has {_NCOLS} values, not {len(row)}")
        n = self.count
        cap = self.capacity
        if n < cap and not self.start:
            flat = self._flat
            flat.extend(row)
            self.count = n + 1
            if len(flat) >= _FLUSH_VALUES:
                self._flush()
            return
        if self.fill == "ONCE" or cap <= 1:
            self.extend([row])  # ONCE and full: dropped
            return
        # continuous fill, full: the reading will replace the oldest one (collected, then one
        # ring write for many)
        wrap = self._wrap
        wrap.append(row)
        if len(wrap) >= _FLUSH_ROWS:
            self._flush()

    def rows(self, first: int, last: int) -> list[np.ndarray]:
        """Columns of readings ``first..last`` (1-based, inclusive, oldest = 1)."""
        self._flush()
        if self.start == 0:
            return [c[first - 1 : last] for c in self.cols]
        idx = (self.start + np.arange(first - 1, last)) % self.alloc
        return [c[idx] for c in self.cols]

    def t_first(self) -> float:
        if not self.count:
            return 0.0
        if self._wrap:
            self._flush()
        flat = self._flat
        if len(flat) == _NCOLS * self.count:  # every reading still pending
            return float(flat[2])
        return float(self.cols[2][self.start])


class Keithley2450Sim(ScpiInstrument):
    """Keithley 2450 in SCPI mode on bench terminal ``<name>/1``."""

    idn: ClassVar[str] = "KEITHLEY INSTRUMENTS,MODEL 2450,04488850,1.7.3c"
    error_format: ClassVar[str] = '{code},"{message}"'
    stop_on_error: ClassVar[bool] = True
    OPTIONS: ClassVar[tuple[str, ...]] = ("idn", "serial", "line_frequency_hz")

    def __init__(self, bench: Bench, name: str, options: Mapping[str, Any] | None = None) -> None:
        where = f"keithley2450 {name!r}"
        opts = check_options(options, self.OPTIONS, where)
        idn = model_idn(opts, type(self).idn, where)
        super().__init__(idn)
        self.bench = bench
        self.name = name
        self.terminal = f"{name}/1"
        self.line_frequency_hz = line_frequency(opts, where)
        self.ch = SmuChannel(bench, self.terminal)
        self._error_times: deque[float] = deque()
        self._elements_cache: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._read_args_cache: dict[str, tuple[str, tuple[str, ...]]] = {}
        self.buffers: dict[str, _Buffer] = {}
        self.status = {"OPER": _StatusRegister(), "QUES": _StatusRegister()}
        self.reset()

    # -- state -----------------------------------------------------------------------------
    def reset(self) -> None:
        """``*RST`` defaults (2450 manual): V source at 0 V, 105 uA limit, measure current."""
        self.ch.off()
        ch = self.ch
        ch.func, ch.level_v, ch.level_a = "VOLT", 0.0, 0.0
        ch.ilim, ch.vlim = 105e-6, 21.0
        self.src_range = {"VOLT": 0.2, "CURR": 1e-8}
        self.src_auto = {"VOLT": True, "CURR": True}
        self.src_delay = {"VOLT": AUTO_DELAY_V, "CURR": AUTO_DELAY_I}
        self.src_delay_auto = {"VOLT": True, "CURR": True}
        self.readback = {"VOLT": True, "CURR": True}
        self.smode = {"VOLT": "NORM", "CURR": "NORM"}
        self.sense = 0  # CURR
        self.meas_range = {"CURR": 1e-4, "VOLT": 20.0, "RES": 2e5}
        self.meas_auto = {"CURR": True, "VOLT": True, "RES": True}
        self.nplc = {"CURR": 1.0, "VOLT": 1.0, "RES": 1.0}
        self.rsense = {"CURR": False, "VOLT": False, "RES": False}
        self.azero = {"CURR": True, "VOLT": True, "RES": True}
        self.ocomp = False  # :SENS:RES:OCOM (no thermal offsets on the bench: stored only)
        # averaging filter ([:SENSe[1]]:<function>:AVERage): off, repeating, 10 readings
        self.avg_on = {"CURR": False, "VOLT": False, "RES": False}
        self.avg_tcon = {"CURR": "REP", "VOLT": "REP", "RES": "REP"}
        self.avg_count = {"CURR": 10, "VOLT": 10, "RES": 10}
        self._stack: deque[float] | None = None  # the moving filter's readings
        self.count = 1
        self.terminals = "FRON"
        self.user_delays: dict[tuple[str, str, int], float] = {}
        self.lists: dict[str, list[float]] = {"VOLT": [], "CURR": []}
        self.sweep: dict[str, Any] | None = None
        self.form = "ASC"
        self.precision = 0
        self.byteorder = "SWAP"
        self.tripped = False
        self._delay_pending = True
        self.buffers = {b: _Buffer(DEFAULT_CAPACITY) for b in DEFAULT_BUFFERS}

    def clear_status(self) -> None:
        super().clear_status()
        self._error_times.clear()

    def push_error(self, code: int, message: str | None = None) -> None:
        """Errors also carry the time they happened (``:SYST:EVEN:NEXT?``)."""
        before = len(self.errors)
        super().push_error(code, message)
        if len(self.errors) > before:
            self._error_times.append(self.bench.now_s)

    def pop_error(self) -> tuple[int, str]:
        if self._error_times:
            self._error_times.popleft()
        return super().pop_error()

    # -- helpers ---------------------------------------------------------------------------
    def _aperture(self, func: str | None = None) -> float:
        name = func or ("CURR", "VOLT", "RES")[self.sense]
        return self.nplc[name] / self.line_frequency_hz

    def _source_delay(self, level_v: float | None = None) -> float:
        """The source delay in use (auto: by the range of ``level_v``, default the level)."""
        ch = self.ch
        f = ch.func
        if not self.src_delay_auto[f]:
            return self.src_delay[f]
        if f == "CURR":
            return AUTO_DELAY_I
        if self.src_auto["VOLT"]:  # the voltage source range in use: pick_range(V_RANGES, level)
            # is above 20 V (or None: the top range) exactly when |level| is above _V_LOW_TOP
            x = ch.level_v if level_v is None else level_v
            return AUTO_DELAY_V if abs(x) <= _V_LOW_TOP else AUTO_DELAY_V200
        return AUTO_DELAY_V200 if self.src_range["VOLT"] > 20.0 else AUTO_DELAY_V

    def _buffer(self, cmd: Command, index: int) -> tuple[str, _Buffer]:
        name = cmd.string(index) if cmd.has(index) else "defbuffer1"
        buf = self.buffers.get(name)
        if buf is None:
            raise ScpiError(-224, "Illegal parameter value")
        return name, buf

    def _elements(self, cmd: Command, start: int) -> tuple[str, ...]:
        """Buffer elements from parameter ``start`` on (READ when none), parsed once per text."""
        args = cmd.args[start:]
        if not args:
            return ("READ",)
        key = ",".join(args)
        hit = self._elements_cache.get(key)
        if hit is None:
            if len(args) > 14:
                raise ScpiError(-108)
            hit = (key, tuple(parse_choice(a, _ELEMENTS) for a in args))
            self._elements_cache[key] = hit
        return hit[1]

    # -- measurement -----------------------------------------------------------------------
    def _record(self, s: Sample, level: float) -> tuple[float, ...]:
        """One buffer row from a bench sample (reading by the sense function, source value)."""
        ch = self.ch
        sense = self.sense
        stat = STAT_FRONT
        if sense == 2:
            value = s.v_v / s.i_a if s.i_a else OVERFLOW
            if self.meas_auto["RES"]:
                r = pick_range(R_RANGES, value)
                self.meas_range["RES"] = r if r is not None else R_RANGES[-1]
            elif abs(value) > self.meas_range["RES"] * 1.05:
                value, stat = OVERFLOW, STAT_FRONT | STAT_QUESTIONABLE
        else:
            value = s.i_a if sense == 0 else s.v_v
            name = "CURR" if sense == 0 else "VOLT"
            if self.meas_auto[name]:
                # pick_range(ranges, value), by bisecting the tops it tests (no Python loop)
                ranges, tops = (I_RANGES, _I_TOPS) if sense == 0 else (V_RANGES, _V_TOPS)
                a = abs(value)
                k = bisect_left(tops, a)
                if k < len(ranges) and a == a:  # (NaN fits no range)
                    self.meas_range[name] = ranges[k]
            elif abs(value) > self.meas_range[name] * 1.05:
                value, stat = OVERFLOW, STAT_FRONT | STAT_QUESTIONABLE
        func = ch.func
        output = ch.output
        compliance = s.in_compliance
        if self.readback[func] and output:
            sour = s.v_v if func == "VOLT" else s.i_a
            sstat = SSTAT_READBACK
        else:
            sour, sstat = level, 0
        if compliance:
            sstat |= SSTAT_LIMIT
        if output:
            sstat |= SSTAT_OUTPUT
        self.tripped = compliance
        return (value, sour, s.t_s, stat, sstat, sense, 1 if func == "VOLT" else 0)

    def _take(self, n: int, buf: _Buffer) -> tuple[float, ...]:
        """``n`` readings at the present settings into ``buf``; returns the last row."""
        ch = self.ch
        if self._delay_pending:
            if ch.output:
                self.bench.advance(self._source_delay())
            self._delay_pending = False
        key = _SENSE_KEYS[self.sense]
        aperture = self.nplc[key] / self.line_frequency_hz
        level = ch.level_v if ch.func == "VOLT" else ch.level_a
        if self.avg_on[key]:
            rows = self._filtered([self._record(ch.measure(aperture * self._repeat(key)), level)
                                   for _ in range(n)])
            buf.extend(rows)
            return rows[-1]
        if n == 1:
            if ch.output and ch.func == "VOLT":  # ch.measure, inlined for the voltage source
                bench = ch.bench
                t0 = bench.now_s
                i, v, tripped, _t = bench.measure(ch.terminal, aperture, ch.ilim)
                row = self._record(_new_tuple(Sample, (i, v, tripped, t0)), level)
            else:
                row = self._record(ch.measure(aperture), level)
            buf.append(row)
            return row
        rows = [self._record(ch.measure(aperture), level) for _ in range(n)]
        buf.extend(rows)
        return rows[-1]

    def _repeat(self, key: str) -> int:
        """Readings a repeating filter averages (1 when the filter is off or moving): the
        simulation takes them as one reading over that many apertures."""
        if self.avg_on[key] and self.avg_tcon[key] == "REP":
            return self.avg_count[key]
        return 1

    def _filtered(self, rows: list[tuple[float, ...]]) -> list[tuple[float, ...]]:
        """Apply a moving filter of the sense function to new rows: the average of the last
        COUNt readings; the first reading fills the whole stack (2450 manual, AVERage)."""
        key = _SENSE_KEYS[self.sense]
        if not self.avg_on[key] or self.avg_tcon[key] != "MOV":
            return rows
        count = self.avg_count[key]
        stack = self._stack
        out = []
        for row in rows:
            if stack is None:
                stack = self._stack = deque([row[0]] * count, maxlen=count)
            stack.append(row[0])
            out.append((sum(stack) / count, *row[1:]))
        return out

    def _reply_row(self, buf: _Buffer, row: tuple[float, ...], elements: tuple[str, ...]) -> bytes:
        """Reply for one reading (``:READ?``, ``:MEAS?``): plain formatting when ASCII."""
        if elements == _READ_ONLY and self.form == "ASC":  # the spot-reading loop
            spec = _ASCII_SPECS.get(self.precision)
            if spec is not None:
                return format(row[0], spec).encode()
        if self.form == "ASC":
            key = (elements, self.precision)
            pattern = _ROW_PATTERNS.get(key, _UNSET)
            if pattern is _UNSET:
                pattern = _row_pattern(elements, self.precision)
                if len(_ROW_PATTERNS) >= 1024:
                    _ROW_PATTERNS.clear()
                _ROW_PATTERNS[key] = pattern
            if pattern is not None:
                if "REL" in elements:
                    t0 = buf.t_first()
                    return pattern.format(*row, rel=row[2] - t0).encode()
                return pattern.format(*row).encode()
        return self._reply(buf, [np.array([v]) for v in row], elements)

    def _reply(self, buf: _Buffer, cols: list[np.ndarray], elements: tuple[str, ...]) -> bytes:
        """Format readings (columns as in ``_Buffer.NAMES``) as the elements asked for."""
        n = cols[0].size
        if self.form != "ASC":
            if not set(elements) <= _BINARY_ELEMENTS:
                raise ScpiError(1133, "Parameter 4, Syntax error, expected valid name parameters")
            table = np.column_stack([self._numeric(buf, cols, e) for e in elements])
            code = ("<" if self.byteorder == "SWAP" else ">") + (
                "f8" if self.form == "REAL" else "f4"
            )
            payload = table.astype(code).tobytes()
            length = str(len(payload)).encode()
            return b"#" + str(len(length)).encode() + length + payload
        digits = self.precision - 1 if self.precision else 6
        if all(e in ("READ", "SOUR", "REL", "STAT", "SOURSTAT") for e in elements):
            if len(elements) == 1:
                return format_e(self._numeric(buf, cols, elements[0]), digits)
            table = np.column_stack([self._numeric(buf, cols, e) for e in elements])
            return format_e(table, digits)
        columns = [self._text(buf, cols, e, digits) for e in elements]
        return ",".join(",".join(row) for row in zip(*columns, strict=True)).encode() if n else b""

    def _numeric(self, buf: _Buffer, cols: list[np.ndarray], element: str) -> np.ndarray:
        if element == "READ":
            return cols[0]
        if element == "SOUR":
            return cols[1]
        if element == "REL":
            return cols[2] - buf.t_first()
        if element == "STAT":
            return cols[3]
        return cols[4]  # SOURSTAT

    def _text(self, buf: _Buffer, cols: list[np.ndarray], element: str, digits: int) -> list[str]:
        if element in ("READ", "SOUR", "REL", "STAT", "SOURSTAT"):
            return format_e(self._numeric(buf, cols, element), digits).decode().split(",")
        if element == "UNIT":
            return [_UNITS[int(u)] for u in cols[5].tolist()]
        if element == "SOURUNIT":
            return [_UNITS[int(u)] for u in cols[6].tolist()]
        out = []
        for t in cols[2].tolist():
            whole = math.floor(t)
            tm = time.gmtime(whole)
            ns = round((t - whole) * 1e9)
            date = f"{tm.tm_mon:02d}/{tm.tm_mday:02d}/{tm.tm_year:04d}"
            clock = f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d}.{ns:09d}"
            out.append(
                date if element == "DATE" else clock if element == "TIME" else f"{date} {clock}"
            )
        return out

    # -- identification, language, errors -------------------------------------------------
    @scpi("*LANG?", nargs=0)
    def _lang_q(self, cmd: Command) -> str:
        return "SCPI"

    @scpi("*LANG", nargs=1)
    def _lang(self, cmd: Command) -> None:
        cmd.choice(0, ("SCPI", "TSP", "SCPI2400"))  # takes effect after a power cycle only

    @scpi(":STATus:CLEar", nargs=0)
    def _stat_clear(self, cmd: Command) -> None:
        self.esr = 0
        for reg in self.status.values():
            reg.event = 0

    # status model (reference manual, STATus subsystem and appendix "Status model"): the
    # operation and questionable event registers; enable, event, condition and bit maps.
    @scpi(":STATus:PRESet", nargs=0)
    def _stat_preset(self, cmd: Command) -> None:
        """Clears the enable and event registers of both (the maps stay)."""
        for reg in self.status.values():
            reg.enable = reg.event = 0

    def _reg(self, cmd: Command) -> _StatusRegister:
        return self.status["OPER" if ":OPER" in cmd.header else "QUES"]

    @scpi(":STATus:OPERation:ENABle", nargs=1)
    @scpi(":STATus:QUEStionable:ENABle", nargs=1)
    def _stat_enable(self, cmd: Command) -> None:
        self._reg(cmd).enable = cmd.number(0, minimum=0, maximum=65535, integer=True)

    @scpi(":STATus:OPERation:ENABle?", nargs=0)
    @scpi(":STATus:QUEStionable:ENABle?", nargs=0)
    def _stat_enable_q(self, cmd: Command) -> str:
        return str(self._reg(cmd).enable)

    @scpi(":STATus:OPERation[:EVENt]?", nargs=0)
    @scpi(":STATus:QUEStionable[:EVENt]?", nargs=0)
    def _stat_event_q(self, cmd: Command) -> str:
        """Reading the event register clears it."""
        reg = self._reg(cmd)
        value, reg.event = reg.event, 0
        return str(value)

    @scpi(":STATus:OPERation:CONDition?", nargs=0)
    @scpi(":STATus:QUEStionable:CONDition?", nargs=0)
    def _stat_cond_q(self, cmd: Command) -> str:
        return str(self._reg(cmd).condition)

    @scpi(":STATus:OPERation:MAP", nargs=(2, 3))
    @scpi(":STATus:QUEStionable:MAP", nargs=(2, 3))
    def _stat_map(self, cmd: Command) -> None:
        """``<bitNumber 0..14>, <setEvent>[, <clearEvent>]``; event 0 means no mapping."""
        bit = cmd.number(0, minimum=0, maximum=14, integer=True)
        set_event = cmd.number(1, minimum=0, integer=True)
        clear_event = cmd.number(2, minimum=0, integer=True) if cmd.has(2) else 0
        self._reg(cmd).maps[bit] = (set_event, clear_event)

    @scpi(":STATus:OPERation:MAP?", nargs=1)
    @scpi(":STATus:QUEStionable:MAP?", nargs=1)
    def _stat_map_q(self, cmd: Command) -> str:
        bit = cmd.number(0, minimum=0, maximum=14, integer=True)
        set_event, clear_event = self._reg(cmd).maps.get(bit, (0, 0))
        return f"{set_event},{clear_event}"

    def status_summary(self) -> int:
        """Status byte bits 3 (questionable summary) and 7 (operation summary)."""
        ques, oper = self.status["QUES"], self.status["OPER"]
        return (0x08 if ques.event & ques.enable else 0) | (0x80 if oper.event & oper.enable else 0)

    @scpi(":SYSTem:BEEPer[:IMMediate]", nargs=2)
    def _beep(self, cmd: Command) -> None:
        """``<frequency 20..8000 Hz>, <duration 0.001..100 s>``: overlapped, the clock does not
        wait for it."""
        cmd.number(0, minimum=20.0, maximum=8000.0, unit="HZ")
        cmd.number(1, minimum=0.001, maximum=100.0, unit="S")

    @scpi(":ROUTe:TERMinals", nargs=1)
    def _terminals(self, cmd: Command) -> None:
        self.terminals = cmd.choice(0, ("FRONt", "REAR"))

    @scpi(":ROUTe:TERMinals?", nargs=0)
    def _terminals_q(self, cmd: Command) -> str:
        return self.terminals

    @scpi(":SYSTem:EVENtlog:NEXT?", nargs=(0, 1))
    def _event_next_q(self, cmd: Command) -> str:
        t = self._error_times[0] if self._error_times else 0.0
        code, message = self.pop_error()
        if code == 0:
            return '0,"No error;0,0,0"'
        sec = math.floor(t)
        return f'{code},"{message};1,{sec},{round((t - sec) * 1e9)}"'

    @scpi(":SYSTem:ERRor:CODE[:NEXT]?", nargs=0)
    def _err_code_q(self, cmd: Command) -> str:
        return str(self.pop_error()[0])

    @scpi(":SYSTem:CLEar", nargs=0)
    def _syst_clear(self, cmd: Command) -> None:
        self.errors.clear()
        self._error_times.clear()

    @scpi(":SYSTem:LFRequency?", nargs=0)
    def _lfr_q(self, cmd: Command) -> str:
        return str(int(self.line_frequency_hz))

    # -- output ----------------------------------------------------------------------------
    @scpi(":OUTPut[1][:STATe]", nargs=1)
    def _outp(self, cmd: Command) -> None:
        on = cmd.boolean(0)
        if on and not self.ch.output:
            self._delay_pending = True
        self.ch.set_output(on)

    @scpi(":OUTPut[1][:STATe]?", nargs=0)
    def _outp_q(self, cmd: Command) -> str:
        return "1" if self.ch.output else "0"

    @scpi(":OUTPut[1]:SMODe", nargs=1)
    @scpi(":OUTPut[1]:VOLTage:SMODe", nargs=1)
    @scpi(":OUTPut[1]:CURRent:SMODe", nargs=1)
    def _smode(self, cmd: Command) -> None:
        mode = cmd.choice(0, ("NORMal", "HIMPedance", "ZERO", "GUARd"))
        funcs = (_fn(cmd),) if ":VOLT" in cmd.header or ":CURR" in cmd.header else ("VOLT", "CURR")
        for f in funcs:
            self.smode[f] = mode

    @scpi(":OUTPut[1]:SMODe?", nargs=0)
    @scpi(":OUTPut[1]:VOLTage:SMODe?", nargs=0)
    @scpi(":OUTPut[1]:CURRent:SMODe?", nargs=0)
    def _smode_q(self, cmd: Command) -> str:
        f = _fn(cmd) if ":VOLT" in cmd.header or ":CURR" in cmd.header else self.ch.func
        return self.smode[f]

    # -- source ----------------------------------------------------------------------------
    @scpi(":SOURce[1]:FUNCtion[:MODE]", nargs=1)
    def _src_func(self, cmd: Command) -> None:
        func = cmd.choice(0, ("VOLTage", "CURRent"))
        if func != self.ch.func:
            self.ch.func = func
            self._delay_pending = True
            self.ch.apply()

    @scpi(":SOURce[1]:FUNCtion[:MODE]?", nargs=0)
    def _src_func_q(self, cmd: Command) -> str:
        return self.ch.func

    @scpi(":SOURce[1]:VOLTage[:LEVel][:IMMediate][:AMPLitude]", nargs=1)
    @scpi(":SOURce[1]:CURRent[:LEVel][:IMMediate][:AMPLitude]", nargs=1)
    def _level(self, cmd: Command) -> None:
        func = "CURR" if ":CURR" in cmd.header else "VOLT"  # _fn(cmd) for these two headers
        top = V_MAX if func == "VOLT" else I_MAX
        value = parse_number(cmd.arg(0), minimum=-top, maximum=top, default=0.0)
        if abs(value) > top or (
            not self.src_auto[func] and abs(value) > self.src_range[func] * 1.05
        ):
            raise ScpiError(-222)  # beyond the model maximum, or the fixed source range
        ch = self.ch
        if func == "VOLT":
            ch.level_v = value
        else:
            ch.level_a = value
        if func == ch.func:
            self._delay_pending = True
            if ch.output:
                if func == "VOLT":  # ch.apply(), inlined for the voltage source
                    ch.bench.source(ch.terminal, value)
                else:
                    ch.apply()

    @scpi(":SOURce[1]:VOLTage[:LEVel][:IMMediate][:AMPLitude]?", nargs=0)
    @scpi(":SOURce[1]:CURRent[:LEVel][:IMMediate][:AMPLitude]?", nargs=0)
    def _level_q(self, cmd: Command) -> str:
        return _e(self.ch.level_v if _fn(cmd) == "VOLT" else self.ch.level_a)

    @scpi(":SOURce[1]:VOLTage:RANGe", nargs=1)
    @scpi(":SOURce[1]:CURRent:RANGe", nargs=1)
    def _src_range(self, cmd: Command) -> None:
        func = _fn(cmd)
        table = V_RANGES if func == "VOLT" else I_RANGES
        value = cmd.number(
            0, minimum=-table[-1] * 1.05, maximum=table[-1] * 1.05, default=table[-1]
        )
        r = pick_range(table, value)
        if r is None:
            r = table[-1]
        level = self.ch.level_v if func == "VOLT" else self.ch.level_a
        if abs(level) > r * 1.05:
            raise ScpiError(-221)
        self.src_range[func] = r
        self.src_auto[func] = False

    @scpi(":SOURce[1]:VOLTage:RANGe?", nargs=0)
    @scpi(":SOURce[1]:CURRent:RANGe?", nargs=0)
    def _src_range_q(self, cmd: Command) -> str:
        func = _fn(cmd)
        if self.src_auto[func]:
            level = self.ch.level_v if func == "VOLT" else self.ch.level_a
            r = pick_range(V_RANGES if func == "VOLT" else I_RANGES, level)
            return _e(r if r is not None else self.src_range[func])
        return _e(self.src_range[func])

    @scpi(":SOURce[1]:VOLTage:RANGe:AUTO", nargs=1)
    @scpi(":SOURce[1]:CURRent:RANGe:AUTO", nargs=1)
    def _src_auto(self, cmd: Command) -> None:
        self.src_auto[_fn(cmd)] = cmd.boolean(0)

    @scpi(":SOURce[1]:VOLTage:RANGe:AUTO?", nargs=0)
    @scpi(":SOURce[1]:CURRent:RANGe:AUTO?", nargs=0)
    def _src_auto_q(self, cmd: Command) -> str:
        return "1" if self.src_auto[_fn(cmd)] else "0"

    @scpi(":SOURce[1]:VOLTage:ILIMit[:LEVel]", nargs=1)
    def _ilim(self, cmd: Command) -> None:
        self.ch.ilim = cmd.number(0, minimum=1e-9, maximum=I_MAX, default=105e-6)
        if self.ch.output:
            self.ch.apply()

    @scpi(":SOURce[1]:VOLTage:ILIMit[:LEVel]?", nargs=0)
    def _ilim_q(self, cmd: Command) -> str:
        return _e(self.ch.ilim)

    @scpi(":SOURce[1]:CURRent:VLIMit[:LEVel]", nargs=1)
    def _vlim(self, cmd: Command) -> None:
        self.ch.vlim = cmd.number(0, minimum=0.02, maximum=V_MAX, default=21.0)
        if self.ch.output:
            self.ch.apply()

    @scpi(":SOURce[1]:CURRent:VLIMit[:LEVel]?", nargs=0)
    def _vlim_q(self, cmd: Command) -> str:
        return _e(self.ch.vlim)

    @scpi(":SOURce[1]:VOLTage:ILIMit[:LEVel]:TRIPped?", nargs=0)
    @scpi(":SOURce[1]:CURRent:VLIMit[:LEVel]:TRIPped?", nargs=0)
    def _trip_q(self, cmd: Command) -> str:
        """The limit state now: a zero-length look at the device when the output is on."""
        ch = self.ch
        if ch.func != _fn(cmd) or not ch.output:
            return "0"
        self.tripped = ch.measure(0.0).in_compliance
        return "1" if self.tripped else "0"

    @scpi(":SOURce[1]:VOLTage:DELay", nargs=1)
    @scpi(":SOURce[1]:CURRent:DELay", nargs=1)
    def _src_delay(self, cmd: Command) -> None:
        func = _fn(cmd)
        self.src_delay[func] = cmd.number(0, minimum=0.0, maximum=1e4, default=0.0)
        self.src_delay_auto[func] = False

    @scpi(":SOURce[1]:VOLTage:DELay?", nargs=0)
    @scpi(":SOURce[1]:CURRent:DELay?", nargs=0)
    def _src_delay_q(self, cmd: Command) -> str:
        func = _fn(cmd)
        if self.src_delay_auto[func] and func == self.ch.func:
            return _e(self._source_delay())
        return _e(self.src_delay[func])

    @scpi(":SOURce[1]:VOLTage:DELay:AUTO", nargs=1)
    @scpi(":SOURce[1]:CURRent:DELay:AUTO", nargs=1)
    def _src_delay_auto(self, cmd: Command) -> None:
        self.src_delay_auto[_fn(cmd)] = cmd.boolean(0)

    @scpi(":SOURce[1]:VOLTage:DELay:AUTO?", nargs=0)
    @scpi(":SOURce[1]:CURRent:DELay:AUTO?", nargs=0)
    def _src_delay_auto_q(self, cmd: Command) -> str:
        return "1" if self.src_delay_auto[_fn(cmd)] else "0"

    @scpi(":SOURce[1]:VOLTage:READ:BACK", nargs=1)
    @scpi(":SOURce[1]:CURRent:READ:BACK", nargs=1)
    def _readback(self, cmd: Command) -> None:
        self.readback[_fn(cmd)] = cmd.boolean(0)

    @scpi(":SOURce[1]:VOLTage:READ:BACK?", nargs=0)
    @scpi(":SOURce[1]:CURRent:READ:BACK?", nargs=0)
    def _readback_q(self, cmd: Command) -> str:
        return "1" if self.readback[_fn(cmd)] else "0"

    # -- source lists and sweeps -----------------------------------------------------------
    def _list_values(self, cmd: Command, func: str) -> list[float]:
        top = V_MAX if func == "VOLT" else I_MAX
        values = cmd.numbers(0, minimum=-top, maximum=top)
        if len(values) > LIST_CHUNK_MAX:
            raise ScpiError(-223)
        return [float(v) for v in values]

    @scpi(":SOURce[1]:LIST:VOLTage", nargs=(1, None))
    @scpi(":SOURce[1]:LIST:CURRent", nargs=(1, None))
    def _list(self, cmd: Command) -> None:
        func = _fn(cmd)
        self.lists[func] = self._list_values(cmd, func)

    @scpi(":SOURce[1]:LIST:VOLTage:APPend", nargs=(1, None))
    @scpi(":SOURce[1]:LIST:CURRent:APPend", nargs=(1, None))
    def _list_append(self, cmd: Command) -> None:
        func = _fn(cmd)
        self.lists[func].extend(self._list_values(cmd, func))

    @scpi(":SOURce[1]:LIST:VOLTage?", nargs=0)
    @scpi(":SOURce[1]:LIST:CURRent?", nargs=0)
    def _list_q(self, cmd: Command) -> bytes:
        values = self.lists[_fn(cmd)]
        return format_e(values) if values else b""

    @scpi(":SOURce[1]:LIST:VOLTage:POINts?", nargs=0)
    @scpi(":SOURce[1]:LIST:CURRent:POINts?", nargs=0)
    def _list_points_q(self, cmd: Command) -> str:
        return str(len(self.lists[_fn(cmd)]))

    def _sweep_func(self, cmd: Command) -> str:
        func = _fn(cmd)
        if func != self.ch.func:
            raise ScpiError(-221)  # the sweep's function must be the source function
        return func

    def _sweep_delay(self, cmd: Command, index: int) -> float | None:
        """Delay parameter: -1 auto (None), 0, or 50 us .. 10 ks."""
        if not cmd.has(index):
            return None
        d = cmd.number(index, minimum=-1.0, maximum=1e4)
        if d == -1:
            return None
        if d != 0 and d < 50e-6:
            raise ScpiError(-222)
        return float(d)

    def _sweep_tail(self, cmd: Command, index: int, *, ranges: bool) -> dict[str, Any]:
        """Optional trailing sweep parameters from ``index``: count, [rangeType], failAbort,
        [dual], bufferName."""
        out: dict[str, Any] = {
            "count": 1,
            "fail_abort": False,
            "dual": False,
            "buffer": "defbuffer1",
        }
        i = index
        if cmd.has(i):
            out["count"] = cmd.number(i, minimum=1, maximum=268_435_455, integer=True)
        i += 1
        if ranges:
            if cmd.has(i):
                cmd.choice(i, ("AUTO", "BEST", "FIXed"))
            i += 1
        if cmd.has(i):
            out["fail_abort"] = cmd.boolean(i)
        i += 1
        if ranges:
            if cmd.has(i):
                out["dual"] = cmd.boolean(i)
            i += 1
        if cmd.has(i):
            name = cmd.string(i)
            if name not in self.buffers:
                raise ScpiError(-224)
            out["buffer"] = name
        return out

    def _linear(
        self, func: str, start: float, stop: float, points: int, cmd: Command, delay_index: int
    ) -> None:
        top = V_MAX if func == "VOLT" else I_MAX
        if abs(start) > top or abs(stop) > top:
            raise ScpiError(-222)
        delay = self._sweep_delay(cmd, delay_index)
        tail = self._sweep_tail(cmd, delay_index + 1, ranges=True)
        levels = np.linspace(start, stop, points).tolist()
        self.sweep = {"func": func, "levels": levels, "delay": delay, **tail}

    @scpi(":SOURce[1]:SWEep:VOLTage:LINear", nargs=(3, 9))
    @scpi(":SOURce[1]:SWEep:CURRent:LINear", nargs=(3, 9))
    def _sweep_lin(self, cmd: Command) -> None:
        func = self._sweep_func(cmd)
        start, stop = cmd.number(0), cmd.number(1)
        points = cmd.number(2, minimum=2, maximum=1_000_000, integer=True)
        self._linear(func, start, stop, points, cmd, 3)

    @scpi(":SOURce[1]:SWEep:VOLTage:LINear:STEP", nargs=(3, 9))
    @scpi(":SOURce[1]:SWEep:CURRent:LINear:STEP", nargs=(3, 9))
    def _sweep_lin_step(self, cmd: Command) -> None:
        func = self._sweep_func(cmd)
        start, stop, step = cmd.number(0), cmd.number(1), cmd.number(2)
        if step == 0 or (stop - start) * step < 0:
            raise ScpiError(-222)
        points = math.floor((stop - start) / step + 1e-9) + 1
        if not 2 <= points <= 1_000_000:
            raise ScpiError(-222)
        self._linear(func, start, start + step * (points - 1), points, cmd, 3)

    @scpi(":SOURce[1]:SWEep:VOLTage:LIST", nargs=(1, 5))
    @scpi(":SOURce[1]:SWEep:CURRent:LIST", nargs=(1, 5))
    def _sweep_list(self, cmd: Command) -> None:
        func = self._sweep_func(cmd)
        values = self.lists[func]
        if not values:
            raise ScpiError(-221)
        first = cmd.number(0, minimum=1, maximum=len(values), integer=True)
        delay = self._sweep_delay(cmd, 1)
        tail = self._sweep_tail(cmd, 2, ranges=False)
        self.sweep = {"func": func, "levels": list(values[first - 1 :]), "delay": delay, **tail}

    # -- sense -----------------------------------------------------------------------------
    @scpi("[:SENSe[1]]:FUNCtion[:ON]", nargs=1)
    def _sense_func(self, cmd: Command) -> None:
        text = cmd.string(0).upper().replace(" ", "")
        base = text.split(":", 1)[0]
        func = parse_choice(base, ("CURRent", "VOLTage", "RESistance"))
        if ":" in text and (func == "RES" or parse_choice(text.split(":", 1)[1], ("DC",)) != "DC"):
            raise ScpiError(-224)
        if _SENSE_FUNCS[func] != self.sense:
            self._stack = None
        self.sense = _SENSE_FUNCS[func]

    @scpi("[:SENSe[1]]:FUNCtion[:ON]?", nargs=0)
    def _sense_func_q(self, cmd: Command) -> str:
        return _SENSE_NAMES[self.sense]

    @scpi("[:SENSe[1]]:CURRent[:DC]:RANGe[:UPPer]", nargs=1)
    @scpi("[:SENSe[1]]:VOLTage[:DC]:RANGe[:UPPer]", nargs=1)
    @scpi("[:SENSe[1]]:RESistance:RANGe[:UPPer]", nargs=1)
    def _meas_range(self, cmd: Command) -> None:
        """The smallest range that holds the value (ohms: 20 ohm .. 200 Mohm, from 0)."""
        func = _fn(cmd)
        table = {"CURR": I_RANGES, "VOLT": V_RANGES, "RES": R_RANGES}[func]
        value = cmd.number(
            0, minimum=0.0 if func == "RES" else -table[-1] * 1.05, maximum=table[-1] * 1.05,
            default=table[-1]
        )
        r = pick_range(table, value)
        self.meas_range[func] = r if r is not None else table[-1]
        self.meas_auto[func] = False

    @scpi("[:SENSe[1]]:CURRent[:DC]:RANGe[:UPPer]?", nargs=0)
    @scpi("[:SENSe[1]]:VOLTage[:DC]:RANGe[:UPPer]?", nargs=0)
    @scpi("[:SENSe[1]]:RESistance:RANGe[:UPPer]?", nargs=0)
    def _meas_range_q(self, cmd: Command) -> str:
        return _e(self.meas_range[_fn(cmd)])

    @scpi("[:SENSe[1]]:CURRent[:DC]:RANGe:AUTO", nargs=1)
    @scpi("[:SENSe[1]]:VOLTage[:DC]:RANGe:AUTO", nargs=1)
    @scpi("[:SENSe[1]]:RESistance:RANGe:AUTO", nargs=1)
    def _meas_auto(self, cmd: Command) -> None:
        self.meas_auto[_fn(cmd)] = cmd.boolean(0)

    @scpi("[:SENSe[1]]:CURRent[:DC]:RANGe:AUTO?", nargs=0)
    @scpi("[:SENSe[1]]:VOLTage[:DC]:RANGe:AUTO?", nargs=0)
    @scpi("[:SENSe[1]]:RESistance:RANGe:AUTO?", nargs=0)
    def _meas_auto_q(self, cmd: Command) -> str:
        return "1" if self.meas_auto[_fn(cmd)] else "0"

    @scpi("[:SENSe[1]]:CURRent[:DC]:NPLCycles", nargs=1)
    @scpi("[:SENSe[1]]:VOLTage[:DC]:NPLCycles", nargs=1)
    @scpi("[:SENSe[1]]:RESistance:NPLCycles", nargs=1)
    def _nplc(self, cmd: Command) -> None:
        self.nplc[_fn(cmd)] = float(cmd.number(0, minimum=0.01, maximum=10.0, default=1.0))

    @scpi("[:SENSe[1]]:CURRent[:DC]:NPLCycles?", nargs=0)
    @scpi("[:SENSe[1]]:VOLTage[:DC]:NPLCycles?", nargs=0)
    @scpi("[:SENSe[1]]:RESistance:NPLCycles?", nargs=0)
    def _nplc_q(self, cmd: Command) -> str:
        return _e(self.nplc[_fn(cmd)])

    @scpi("[:SENSe[1]]:CURRent[:DC]:RSENse", nargs=1)
    @scpi("[:SENSe[1]]:VOLTage[:DC]:RSENse", nargs=1)
    @scpi("[:SENSe[1]]:RESistance:RSENse", nargs=1)
    def _rsense(self, cmd: Command) -> None:
        self.rsense[_fn(cmd)] = cmd.boolean(0)

    @scpi("[:SENSe[1]]:CURRent[:DC]:RSENse?", nargs=0)
    @scpi("[:SENSe[1]]:VOLTage[:DC]:RSENse?", nargs=0)
    @scpi("[:SENSe[1]]:RESistance:RSENse?", nargs=0)
    def _rsense_q(self, cmd: Command) -> str:
        return "1" if self.rsense[_fn(cmd)] else "0"

    @scpi("[:SENSe[1]]:CURRent[:DC]:AZERo[:STATe]", nargs=1)
    @scpi("[:SENSe[1]]:VOLTage[:DC]:AZERo[:STATe]", nargs=1)
    @scpi("[:SENSe[1]]:RESistance:AZERo[:STATe]", nargs=1)
    def _azero(self, cmd: Command) -> None:
        self.azero[_fn(cmd)] = cmd.boolean(0)

    @scpi("[:SENSe[1]]:CURRent[:DC]:AZERo[:STATe]?", nargs=0)
    @scpi("[:SENSe[1]]:VOLTage[:DC]:AZERo[:STATe]?", nargs=0)
    @scpi("[:SENSe[1]]:RESistance:AZERo[:STATe]?", nargs=0)
    def _azero_q(self, cmd: Command) -> str:
        return "1" if self.azero[_fn(cmd)] else "0"

    @scpi("[:SENSe[1]]:RESistance:OCOMpensated", nargs=1)
    def _ocomp(self, cmd: Command) -> None:
        self.ocomp = cmd.boolean(0)

    @scpi("[:SENSe[1]]:RESistance:OCOMpensated?", nargs=0)
    def _ocomp_q(self, cmd: Command) -> str:
        return "1" if self.ocomp else "0"

    # averaging filter (reference manual, SENSe1 subsystem: <function>:AVERage)
    @scpi("[:SENSe[1]]:CURRent[:DC]:AVERage[:STATe]", nargs=1)
    @scpi("[:SENSe[1]]:VOLTage[:DC]:AVERage[:STATe]", nargs=1)
    @scpi("[:SENSe[1]]:RESistance:AVERage[:STATe]", nargs=1)
    def _avg(self, cmd: Command) -> None:
        self.avg_on[_fn(cmd)] = cmd.boolean(0)
        self._stack = None

    @scpi("[:SENSe[1]]:CURRent[:DC]:AVERage[:STATe]?", nargs=0)
    @scpi("[:SENSe[1]]:VOLTage[:DC]:AVERage[:STATe]?", nargs=0)
    @scpi("[:SENSe[1]]:RESistance:AVERage[:STATe]?", nargs=0)
    def _avg_q(self, cmd: Command) -> str:
        return "1" if self.avg_on[_fn(cmd)] else "0"

    @scpi("[:SENSe[1]]:CURRent[:DC]:AVERage:COUNt", nargs=1)
    @scpi("[:SENSe[1]]:VOLTage[:DC]:AVERage:COUNt", nargs=1)
    @scpi("[:SENSe[1]]:RESistance:AVERage:COUNt", nargs=1)
    def _avg_count(self, cmd: Command) -> None:
        self.avg_count[_fn(cmd)] = cmd.number(0, minimum=1, maximum=100, integer=True,
                                              default=10)
        self._stack = None

    @scpi("[:SENSe[1]]:CURRent[:DC]:AVERage:COUNt?", nargs=(0, 1))
    @scpi("[:SENSe[1]]:VOLTage[:DC]:AVERage:COUNt?", nargs=(0, 1))
    @scpi("[:SENSe[1]]:RESistance:AVERage:COUNt?", nargs=(0, 1))
    def _avg_count_q(self, cmd: Command) -> str:
        if cmd.has(0):
            which = cmd.choice(0, ("DEFault", "MINimum", "MAXimum"))
            return str({"DEF": 10, "MIN": 1, "MAX": 100}[which])
        return str(self.avg_count[_fn(cmd)])

    @scpi("[:SENSe[1]]:CURRent[:DC]:AVERage:TCONtrol", nargs=1)
    @scpi("[:SENSe[1]]:VOLTage[:DC]:AVERage:TCONtrol", nargs=1)
    @scpi("[:SENSe[1]]:RESistance:AVERage:TCONtrol", nargs=1)
    def _avg_tcon(self, cmd: Command) -> None:
        self.avg_tcon[_fn(cmd)] = cmd.choice(0, ("REPeat", "MOVing"))
        self._stack = None

    @scpi("[:SENSe[1]]:CURRent[:DC]:AVERage:TCONtrol?", nargs=0)
    @scpi("[:SENSe[1]]:VOLTage[:DC]:AVERage:TCONtrol?", nargs=0)
    @scpi("[:SENSe[1]]:RESistance:AVERage:TCONtrol?", nargs=0)
    def _avg_tcon_q(self, cmd: Command) -> str:
        return self.avg_tcon[_fn(cmd)]

    @scpi("[:SENSe[1]]:AZERo:ONCE", nargs=0)
    def _azero_once(self, cmd: Command) -> None:
        self.bench.advance(self._aperture())  # one fresh reference measurement

    @scpi(":SOURce[1]:VOLTage:DELay:USER#", nargs=1, suffix=(1, 5))
    @scpi(":SOURce[1]:CURRent:DELay:USER#", nargs=1, suffix=(1, 5))
    @scpi("[:SENSe[1]]:CURRent[:DC]:DELay:USER#", nargs=1, suffix=(1, 5))
    @scpi("[:SENSe[1]]:VOLTage[:DC]:DELay:USER#", nargs=1, suffix=(1, 5))
    @scpi("[:SENSe[1]]:RESistance:DELay:USER#", nargs=1, suffix=(1, 5))
    def _user_delay(self, cmd: Command) -> None:
        """Stored for trigger-model dynamic delays (this model runs none of those)."""
        key = ("SOUR" if cmd.header.startswith(":SOUR") else "SENS", _fn(cmd), cmd.suffix)
        self.user_delays[key] = float(cmd.number(0, minimum=0.0, maximum=1e4, default=0.0))

    @scpi(":SOURce[1]:VOLTage:DELay:USER#?", nargs=0, suffix=(1, 5))
    @scpi(":SOURce[1]:CURRent:DELay:USER#?", nargs=0, suffix=(1, 5))
    @scpi("[:SENSe[1]]:CURRent[:DC]:DELay:USER#?", nargs=0, suffix=(1, 5))
    @scpi("[:SENSe[1]]:VOLTage[:DC]:DELay:USER#?", nargs=0, suffix=(1, 5))
    @scpi("[:SENSe[1]]:RESistance:DELay:USER#?", nargs=0, suffix=(1, 5))
    def _user_delay_q(self, cmd: Command) -> str:
        key = ("SOUR" if cmd.header.startswith(":SOUR") else "SENS", _fn(cmd), cmd.suffix)
        return _e(self.user_delays.get(key, 0.0))

    @scpi("[:SENSe[1]]:COUNt", nargs=1)
    def _count(self, cmd: Command) -> None:
        self.count = cmd.number(0, minimum=1, maximum=300_000, integer=True, default=1)

    @scpi("[:SENSe[1]]:COUNt?", nargs=0)
    def _count_q(self, cmd: Command) -> str:
        return str(self.count)

    # -- reading ---------------------------------------------------------------------------
    @scpi(":READ?", nargs=(0, 15))
    def _read_q(self, cmd: Command) -> bytes:
        raw = cmd.raw
        if raw:
            # (buffer name, elements) parsed once per parameter text; the buffer itself is
            # looked up on every call (it may have been deleted or created since)
            hit = self._read_args_cache.get(raw)
            if hit is None:
                name, buf = self._buffer(cmd, 0)
                elements = self._elements(cmd, 1)
                cache = self._read_args_cache
                if len(cache) >= 256:
                    cache.clear()
                cache[raw] = (name, elements)
            else:
                name, elements = hit
                buf = self.buffers.get(name)
                if buf is None:
                    raise ScpiError(-224, "Illegal parameter value")
        else:  # plain :READ? (the spot-reading loop): defbuffer1, READ
            buf = self.buffers.get("defbuffer1")
            if buf is None:
                raise ScpiError(-224, "Illegal parameter value")
            row = self._take(self.count, buf)
            if self.form == "ASC":  # _reply_row's spot-reading case, inlined
                spec = _ASCII_SPECS.get(self.precision)
                if spec is not None:
                    return format(row[0], spec).encode()
            return self._reply_row(buf, row, _READ_ONLY)
        row = self._take(self.count, buf)
        return self._reply_row(buf, row, elements)

    @scpi(":FETCh?", nargs=(0, 15))
    def _fetch_q(self, cmd: Command) -> bytes:
        _, buf = self._buffer(cmd, 0)
        elements = self._elements(cmd, 1)
        if not buf.count:
            raise ScpiError(-230)
        return self._reply_row(
            buf, tuple(float(c[0]) for c in buf.rows(buf.count, buf.count)), elements
        )

    @scpi(":MEASure?", nargs=(0, 15))
    @scpi(":MEASure:CURRent[:DC]?", nargs=(0, 15))
    @scpi(":MEASure:VOLTage[:DC]?", nargs=(0, 15))
    @scpi(":MEASure:RESistance?", nargs=(0, 15))
    def _measure_q(self, cmd: Command) -> bytes:
        _, buf = self._buffer(cmd, 0)
        elements = self._elements(cmd, 1)
        if cmd.header not in (":MEAS?", ":MEASURE?") and _SENSE_FUNCS[_fn(cmd)] != self.sense:
            self.sense = _SENSE_FUNCS[_fn(cmd)]
            self._stack = None
        row = self._take(self.count, buf)
        return self._reply_row(buf, row, elements)

    # -- trigger: sweeps run at :INIT ------------------------------------------------------
    @scpi(":INITiate[:IMMediate]", nargs=0)
    def _init(self, cmd: Command) -> None:
        sweep = self.sweep
        if sweep is None:  # no sweep loaded: a simple loop of :SENS:COUN readings
            self._take(self.count, self.buffers["defbuffer1"])
            return
        self._run_sweep(sweep)

    def _run_sweep(self, sweep: dict[str, Any]) -> None:
        """Config list: clear the buffer, output on, per point level + delay + measure, off."""
        ch, bench = self.ch, self.bench
        buf = self.buffers[sweep["buffer"]]
        buf.clear()
        levels = sweep["levels"]
        if sweep["dual"]:
            levels = levels + levels[::-1]
        levels = levels * sweep["count"]
        func = sweep["func"]
        aperture = self._aperture() * self._repeat(_SENSE_KEYS[self.sense])
        delay = sweep["delay"]
        ch.output = True
        got = None
        if func == "VOLT":  # one device on the terminal: the bench runs the loop (same numbers)
            settle = ([delay] * len(levels) if delay is not None
                      else [self._source_delay(level) for level in levels])
            got = bench.sweep(ch.terminal, levels, settle, aperture, ch.ilim,
                              sweep["fail_abort"])
        if got is not None:
            if got:
                ch.level_v = levels[len(got) - 1]
            rows = [self._record(Sample(*r), level)  # got stops early on a fail-abort trip
                    for r, level in zip(got, levels, strict=False)]
        else:
            rows = []
            for level in levels:
                if func == "VOLT":
                    ch.level_v = level
                else:
                    ch.level_a = level
                ch.apply()
                bench.advance(self._source_delay() if delay is None else delay)
                s = ch.measure(aperture)
                rows.append(self._record(s, level))
                if sweep["fail_abort"] and s.in_compliance:
                    break
        buf.extend(self._filtered(rows))
        ch.off()
        self._delay_pending = True

    @scpi(":ABORt", nargs=0)
    def _abort(self, cmd: Command) -> None:
        return None  # everything started by :INIT has already finished in simulated time

    # -- buffers ---------------------------------------------------------------------------
    @scpi(":TRACe:MAKE", nargs=(2, 3))
    def _trace_make(self, cmd: Command) -> None:
        name = cmd.string(0)
        size = cmd.number(1, minimum=1, maximum=MAX_CAPACITY, integer=True)
        if cmd.has(2):
            cmd.choice(2, ("STANdard", "COMPact", "FULL", "WRITable", "FULLWRITable"))
        if name in self.buffers or not name or len(name) > 31:
            raise ScpiError(-224)
        self.buffers[name] = _Buffer(max(size, 10), "ONCE")

    @scpi(":TRACe:DELete", nargs=1)
    def _trace_delete(self, cmd: Command) -> None:
        name = cmd.string(0)
        if name in DEFAULT_BUFFERS or name not in self.buffers:
            raise ScpiError(-224)
        del self.buffers[name]

    @scpi(":TRACe:CLEar", nargs=(0, 1))
    def _trace_clear(self, cmd: Command) -> None:
        self._buffer(cmd, 0)[1].clear()

    @scpi(":TRACe:POINts", nargs=(1, 2))
    def _trace_points(self, cmd: Command) -> None:
        size = cmd.number(0, minimum=1, maximum=MAX_CAPACITY, integer=True)
        _, buf = self._buffer(cmd, 1)
        buf.capacity = max(size, 10)
        buf.clear()

    @scpi(":TRACe:POINts?", nargs=(0, 1))
    def _trace_points_q(self, cmd: Command) -> str:
        return str(self._buffer(cmd, 0)[1].capacity)

    @scpi(":TRACe:ACTual?", nargs=(0, 1))
    def _trace_actual_q(self, cmd: Command) -> str:
        return str(self._buffer(cmd, 0)[1].count)

    @scpi(":TRACe:ACTual:STARt?", nargs=(0, 1))
    def _trace_start_q(self, cmd: Command) -> str:
        return "1" if self._buffer(cmd, 0)[1].count else "0"

    @scpi(":TRACe:ACTual:END?", nargs=(0, 1))
    def _trace_end_q(self, cmd: Command) -> str:
        return str(self._buffer(cmd, 0)[1].count)

    @scpi(":TRACe:FILL:MODE", nargs=(1, 2))
    def _trace_fill(self, cmd: Command) -> None:
        mode = cmd.choice(0, ("CONTinuous", "ONCE"))
        self._buffer(cmd, 1)[1].fill = mode

    @scpi(":TRACe:FILL:MODE?", nargs=(0, 1))
    def _trace_fill_q(self, cmd: Command) -> str:
        return self._buffer(cmd, 0)[1].fill

    @scpi(":TRACe:TRIGger", nargs=(0, 1))
    def _trace_trigger(self, cmd: Command) -> None:
        self._take(self.count, self._buffer(cmd, 0)[1])

    @scpi(":TRACe:DATA?", nargs=(2, 16))
    def _trace_data_q(self, cmd: Command) -> bytes:
        first = cmd.number(0, integer=True)
        last = cmd.number(1, integer=True)
        _, buf = self._buffer(cmd, 2)
        elements = self._elements(cmd, 3)
        if not 1 <= first <= last <= buf.count:
            raise ScpiError(-222)
        return self._reply(buf, buf.rows(first, last), elements)

    @scpi(":TRACe:STATistics:AVERage?", nargs=(0, 1))
    @scpi(":TRACe:STATistics:MAXimum?", nargs=(0, 1))
    @scpi(":TRACe:STATistics:MINimum?", nargs=(0, 1))
    @scpi(":TRACe:STATistics:PK2Pk?", nargs=(0, 1))
    @scpi(":TRACe:STATistics:STDDev?", nargs=(0, 1))
    def _trace_stat_q(self, cmd: Command) -> str:
        """One statistic of every reading that entered the buffer (overwritten ones too)."""
        buf = self._buffer(cmd, 0)[1]
        buf._flush()
        which = cmd.header.rsplit(":", 1)[1]
        key = next(k for k in ("AVER", "MAX", "MIN", "PK2P", "STDD") if which.startswith(k))
        return _e(buf.stats.value(key))

    @scpi(":TRACe:STATistics:CLEar", nargs=(0, 1))
    def _trace_stat_clear(self, cmd: Command) -> None:
        """Clears the statistics, not the readings."""
        buf = self._buffer(cmd, 0)[1]
        buf._flush()
        buf.stats = _Stats()

    # -- data format -----------------------------------------------------------------------
    @scpi(":FORMat[:DATA]", nargs=1)
    def _form(self, cmd: Command) -> None:
        self.form = cmd.choice(0, ("ASCii", "REAL", "SREal"))

    @scpi(":FORMat[:DATA]?", nargs=0)
    def _form_q(self, cmd: Command) -> str:
        return self.form

    @scpi(":FORMat:ASCii:PRECision", nargs=1)
    def _precision(self, cmd: Command) -> None:
        self.precision = cmd.number(0, minimum=0, maximum=16, integer=True, default=0)

    @scpi(":FORMat:ASCii:PRECision?", nargs=0)
    def _precision_q(self, cmd: Command) -> str:
        return str(self.precision)

    @scpi(":FORMat:BORDer", nargs=1)
    def _border(self, cmd: Command) -> None:
        self.byteorder = cmd.choice(0, ("NORMal", "SWAPped"))

    @scpi(":FORMat:BORDer?", nargs=0)
    def _border_q(self, cmd: Command) -> str:
        return self.byteorder

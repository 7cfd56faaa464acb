"""Simulated Keysight B2900A/B SMUs (B2901A/B2902A/B2911A/B2912A) speaking their SCPI.

One or two channels on bench terminals ``<name>/1`` and ``<name>/2``; DC and pulsed list/sweep
outputs run on the ARM-TRIGger model at ``:INIT`` as timed events on the shared bench clock.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from dendrolab.errors import ParameterError
from sim_backend.bench import Bench
from sim_backend.instruments.options import check_options, model_idn
from sim_backend.instruments.smu_common import (
    Sample,
    SmuChannel,
    format_e,
    line_frequency,
    pick_range,
)
from sim_backend.scpi import Command, ScpiError, ScpiInstrument, parse_choice, scpi

NAN_REPLY = 9.91e37  # ASCII "not a number"
OVERFLOW = 9.9e37
V_RANGES = (0.2, 2.0, 20.0, 200.0)
I_RANGES = (1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 1.5, 3.0)
V_MAX, I_MAX = 210.0, 3.03  # DC maxima (datasheet; not in the notes)
POINTS_MAX = 2500  # sweep and list points (notes §1.3, B2900 Ed. 2)
COUNT_MAX = 100_000
APER_MIN, APER_MAX = 8e-6, 2.0
PULSE_WIDTH_MIN, PULSE_WIDTH_MAX = 50e-6, 100e3
TIMER_MIN, TIMER_MAX = 1e-5, 1e5  # :TRIG:TIM interval (not in the notes)
# Status word bits (SCPI reference 1-14): current source, compliance, range overflow.
STAT_CURRENT_SOURCE, STAT_COMPLIANCE, STAT_OVERFLOW = 1, 2, 8192
ELEMENTS = ("VOLT", "CURR", "RES", "TIME", "STAT", "SOUR")  # the fixed output order
_ELEMENT_OPTIONS = ("VOLTage", "CURRent", "RESistance", "TIME", "STATus", "SOURce")
#: ``:FORMat:ELEMents:SENSe`` parameter text -> the elements it selects (``_elements``)
_ELEMENTS_BY_TEXT: dict[str, tuple[str, ...]] = {}
#: element tuple -> their positions in a data row (``_data``'s spot replies)
_ELEMENT_INDEX: dict[tuple[str, ...], tuple[int, ...]] = {}
_TRIGGER_SOURCES = (
    "AINT",
    "BUS",
    "TIMer",
    "INT1",
    "INT2",
    "LAN",
    *(f"EXT{n}" for n in range(1, 15)),
)
_SRC, _MEAS = 0, 1


def _fn(cmd: Command) -> str:
    h = cmd.header
    if ":CURR" in h:
        return "CURR"
    if ":RES" in h:
        return "RES"
    return "VOLT"


def _layer(cmd: Command) -> tuple[str, ...]:
    h = cmd.header
    if ":ACQ" in h:
        return ("ACQ",)
    if ":TRAN" in h:
        return ("TRAN",)
    return ("ACQ", "TRAN")


def _nr3(value: float) -> str:
    return f"{value:+.6E}" if math.isfinite(value) else f"{NAN_REPLY:+.6E}"


class _Layer:
    """ARM-TRIGger settings of one action (acquire or transient) of one channel."""

    __slots__ = ("count", "delay", "source", "timer")

    def __init__(self) -> None:
        self.source = "AINT"
        self.timer = TIMER_MIN
        self.count: float = 1
        self.delay = 0.0


class _Channel:
    """Settings and results of one B2900 channel."""

    def __init__(self, bench: Bench, terminal: str) -> None:
        self.smu = SmuChannel(bench, terminal)
        self.reset()

    def reset(self) -> None:
        smu = self.smu
        smu.off()
        smu.func, smu.level_v, smu.level_a = "VOLT", 0.0, 0.0
        smu.ilim, smu.vlim = 1e-4, 2.0
        self.shape = "DC"
        self.trig_level = {"VOLT": 0.0, "CURR": 0.0}
        self.mode = {"VOLT": "FIX", "CURR": "FIX"}
        self.start = {"VOLT": 0.0, "CURR": 0.0}
        self.stop = {"VOLT": 0.0, "CURR": 0.0}
        self.points = 1
        self.spacing, self.stair, self.direction, self.ranging = "LIN", "SING", "UP", "BEST"
        self.lists: dict[str, list[float]] = {"VOLT": [0.0], "CURR": [0.0]}
        self.pulse_delay, self.pulse_width = 0.0, PULSE_WIDTH_MIN
        self.src_range = {"VOLT": 2.0, "CURR": 1e-4}
        self.src_auto = {"VOLT": True, "CURR": True}
        self.meas_range = {"VOLT": 2.0, "CURR": 1e-4}
        self.meas_auto = {"VOLT": True, "CURR": True}
        self.aperture_plc = 0.1
        self.aperture_auto = False
        self.sense = {"VOLT", "CURR"}
        self.remote_sense = False  # :SENS:REM (4-wire); the bench has no lead resistance
        self.res_mode = "MAN"  # :SENS:RES:MODE
        self.res_ocomp = False  # :SENS:RES:OCOM
        self.acq, self.tran = _Layer(), _Layer()
        self.on_auto, self.off_auto, self.off_mode = True, False, "NORM"
        self.tripped = False
        self.armed: dict[str, Any] | None = None
        self.clear_data()

    def clear_data(self) -> None:
        self.data: list[tuple[float, ...]] = []  # rows in ELEMENTS order
        self.cur_level = 0.0

    def layer(self, name: str) -> _Layer:
        return self.acq if name == "ACQ" else self.tran

    def sequence(self) -> list[float]:
        """Levels the transient actions output, by source mode (FIX: the triggered level)."""
        f = self.smu.func
        mode = self.mode[f]
        if mode == "FIX":
            return [self.trig_level[f]]
        if mode == "LIST":
            return list(self.lists[f])
        start, stop, n = self.start[f], self.stop[f], self.points
        if self.spacing == "LOG":
            if start == 0 or stop == 0 or (start > 0) != (stop > 0):
                raise ScpiError(-221)
            seq = np.geomspace(start, stop, n).tolist()
        else:
            seq = np.linspace(start, stop, n).tolist()
        if self.direction == "DOWN":
            seq.reverse()
        if self.stair == "DOUB":
            seq = seq + seq[::-1]
        return seq


class KeysightB2900Sim(ScpiInstrument):
    """Keysight B2901A/B2902A/B2911A/B2912A; ``channels`` option overrides the IDN's count."""

    idn: ClassVar[str] = "Keysight Technologies,B2902A,MY51143745,3.4.2011.5100"
    error_format: ClassVar[str] = '{code:+d},"{message}"'
    suffix_range: ClassVar[tuple[int, int]] = (1, 2)
    stop_on_error: ClassVar[bool] = False
    OPTIONS: ClassVar[tuple[str, ...]] = ("idn", "serial", "channels", "line_frequency_hz")

    def __init__(self, bench: Bench, name: str, options: Mapping[str, Any] | None = None) -> None:
        where = f"keysight_b2900 {name!r}"
        opts = check_options(options, self.OPTIONS, where)
        idn = model_idn(opts, type(self).idn, where)
        super().__init__(idn)
        fields = [p.strip() for p in idn.split(",")]
        model = fields[1] if len(fields) > 1 else ""
        m = re.search(r"B29\d([12])", model)
        default_channels = int(m.group(1)) if m else 2
        channels = opts.get("channels", default_channels)
        if isinstance(channels, bool) or channels not in (1, 2):
            raise ParameterError(f"{where}: channels must be 1 or 2, got {channels!r}")
        self.bench = bench
        self.name = name
        self.line_frequency_hz = line_frequency(opts, where)
        self.i_ranges = (1e-8, *I_RANGES) if re.search(r"B291", model) else I_RANGES
        self.chans = {c: _Channel(bench, f"{name}/{c}") for c in range(1, int(channels) + 1)}
        self._chanlists: dict[str, tuple[int, ...]] = {}  # ``_chanlist``'s, per list text
        self.reset()

    # -- state -----------------------------------------------------------------------------
    def reset(self) -> None:
        for ch in self.chans.values():
            ch.reset()
        self.form = "ASC"
        self.byteorder = "NORM"
        self.elements = ELEMENTS
        self.timer_origin = self.bench.now_s
        self.timer_auto_reset = True

    def trigger(self) -> None:
        """``*TRG``: one bus trigger for every channel armed on BUS."""
        self._bus_trigger(list(self.chans))

    # -- helpers ---------------------------------------------------------------------------
    def _ch(self, cmd: Command) -> _Channel:
        ch = self.chans.get(cmd.suffix)
        if ch is None:
            raise ScpiError(-114)
        return ch

    def _chanlist(self, cmd: Command, index: int = 0) -> list[int]:
        if not cmd.has(index):
            return [1]
        # a pure function of the list's text (the channel set is fixed at creation):
        # remembered per text, as ``(@1)`` comes with every reading; refusals are not kept
        text = cmd.args[index]
        hit = self._chanlists.get(text)
        if hit is None:
            chans = cmd.channels(index)
            if not chans or any(c not in self.chans for c in chans):
                raise ScpiError(-224)
            hit = tuple(sorted(set(chans)))  # channel 1 data first, whatever the list order
            if len(self._chanlists) >= 256:
                self._chanlists.clear()
            self._chanlists[text] = hit
        return list(hit)

    def _aperture(self, ch: _Channel) -> float:
        return ch.aperture_plc / self.line_frequency_hz

    def _level_limit(self, func: str) -> float:
        return V_MAX if func == "VOLT" else I_MAX

    # -- measurement core --------------------------------------------------------------------
    def _row(self, ch: _Channel, s: Sample, t_start: float, level: float) -> tuple[float, ...]:
        """One data row (ELEMENTS order) from a bench sample; updates ranges and trip state."""
        stat = STAT_CURRENT_SOURCE if ch.smu.func == "CURR" else 0
        compliance = s.in_compliance
        if compliance:
            stat |= STAT_COMPLIANCE
        sense, meas_auto, meas_range = ch.sense, ch.meas_auto, ch.meas_range
        v = s.v_v
        if "VOLT" not in sense:
            v = math.nan
        elif meas_auto["VOLT"]:
            r = pick_range(V_RANGES, v)
            meas_range["VOLT"] = r if r is not None else V_RANGES[-1]
        elif abs(v) > meas_range["VOLT"] * 1.05:
            v = OVERFLOW
            stat |= STAT_OVERFLOW
        i = s.i_a
        if "CURR" not in sense:
            i = math.nan
        elif meas_auto["CURR"]:
            table = self.i_ranges
            r = pick_range(table, i)
            meas_range["CURR"] = r if r is not None else table[-1]
        elif abs(i) > meas_range["CURR"] * 1.05:
            i = OVERFLOW
            stat |= STAT_OVERFLOW
        if "RES" in sense:
            res = s.v_v / s.i_a if s.i_a else OVERFLOW
        else:
            res = math.nan
        ch.tripped = compliance
        return (v, i, res, t_start - self.timer_origin, float(stat), level)

    def _spot(self, ch: _Channel) -> None:
        """One measurement at the immediate (DC) level: ``:MEASure?``."""
        if not ch.smu.output and ch.on_auto:
            ch.smu.set_output(True)
        s = ch.smu.measure(self._aperture(ch))
        ch.clear_data()
        ch.data.append(self._row(ch, s, s.t_s, ch.smu.level))

    def _plan(
        self, c: int, layers: tuple[str, ...], t0: float, first: int, last: int, bus: bool
    ) -> tuple[list[tuple[float, int, int, int, float]], float]:
        """Timed events of trigger points ``first..last-1`` of channel ``c`` from ``t0``.

        Returns (events, end time). Events are (time, kind, seq, channel, value): a source
        level change (value = level) or a sample at the middle of an aperture (value = start).
        """
        ch = self.chans[c]
        seq = ch.sequence()
        if not seq:
            raise ScpiError(-221)
        pulse = ch.shape == "PULS"
        base = ch.smu.level
        aperture = self._aperture(ch)
        tran_need = ch.tran.delay + (ch.pulse_delay + ch.pulse_width if pulse else 0.0)
        acq_need = ch.acq.delay + aperture
        periods = {}
        for name, lay, other in (("TRAN", ch.tran, ch.acq), ("ACQ", ch.acq, ch.tran)):
            if bus:
                periods[name] = 0.0
            elif lay.source == "TIM":
                periods[name] = lay.timer
            elif other.source == "TIM":
                periods[name] = other.timer
            else:
                periods[name] = max(tran_need, acq_need)
        if pulse and "TRAN" in layers and not bus and periods["TRAN"] < tran_need - 1e-15:
            raise ScpiError(-221)  # pulses would overlap the next trigger
        events: list[tuple[float, int, int, int, float]] = []
        end = t0
        n = len(seq)
        order = 0
        if "TRAN" in layers:
            period = periods["TRAN"]
            for k in range(first, min(last, int(ch.tran.count))):
                t = t0 + (k - first) * period + ch.tran.delay
                level = seq[k % n]
                if pulse:
                    t += ch.pulse_delay
                    events.append((t, _SRC, order, c, level))
                    events.append((t + ch.pulse_width, _SRC, order + 1, c, base))
                    order += 2
                    end = max(end, t + ch.pulse_width)
                else:
                    events.append((t, _SRC, order, c, level))
                    order += 1
                    end = max(end, t)
        if "ACQ" in layers:
            period = periods["ACQ"]
            prev_end = t0
            for k in range(first, min(last, int(ch.acq.count))):
                start = max(t0 + (k - first) * period + ch.acq.delay, prev_end)
                events.append((start + aperture / 2, _MEAS, order, c, start))
                order += 1
                prev_end = start + aperture
            end = max(end, prev_end)
        return events, end

    def _execute(self, events: list[tuple[float, int, int, int, float]], end: float) -> None:
        """Run merged events in time order on the bench (level changes, then samples)."""
        bench = self.bench
        events.sort()
        chans = self.chans
        for t, kind, _order, c, value in events:
            if t > bench.now_s:
                bench.advance(t - bench.now_s)
            ch = chans[c]
            if kind == _SRC:
                ch.cur_level = value
                ch.smu.apply(value)
            else:
                s = ch.smu.measure(0.0, level=ch.cur_level)
                ch.data.append(self._row(ch, s, value, ch.cur_level))
        if end > bench.now_s:
            bench.advance(end - bench.now_s)

    def _start(self, ch: _Channel) -> None:
        if not ch.smu.output and ch.on_auto:
            ch.smu.set_output(True)
        ch.clear_data()
        ch.cur_level = ch.smu.level

    def _finish(self, ch: _Channel) -> None:
        """Back to the immediate (DC) level after the trigger system goes idle."""
        ch.armed = None
        if ch.off_auto:
            ch.smu.off()
        elif ch.smu.output:
            ch.smu.apply()

    def _initiate(self, chans: list[int], layers: tuple[str, ...]) -> None:
        t0 = self.bench.now_s
        if self.timer_auto_reset:
            self.timer_origin = t0
        timed: list[int] = []
        for c in chans:
            ch = self.chans[c]
            sources = {ch.layer(name).source for name in layers}
            counts = [ch.layer(name).count for name in layers]
            if sources <= {"AINT", "TIM"}:
                if any(math.isinf(n) for n in counts):
                    raise ScpiError(-221)  # an endless timed run cannot be simulated
                ch.sequence()  # validate before anything moves
                timed.append(c)
            elif sources != {"BUS"} and "BUS" in sources:
                raise ScpiError(-221)  # mixed bus/timed layers: not simulated
        events: list[tuple[float, int, int, int, float]] = []
        end = t0
        for c in chans:
            ch = self.chans[c]
            self._start(ch)
            if c in timed:
                ev, e = self._plan(c, layers, t0, 0, COUNT_MAX + 1, bus=False)
                events.extend(ev)
                end = max(end, e)
            else:
                ch.armed = {"layers": layers, "next": 0}
        self._execute(events, end)
        for c in timed:
            self._finish(self.chans[c])

    def _bus_trigger(self, chans: list[int]) -> None:
        events: list[tuple[float, int, int, int, float]] = []
        t0 = end = self.bench.now_s
        fired = []
        for c in chans:
            ch = self.chans[c]
            armed = ch.armed
            if armed is None or {ch.layer(x).source for x in armed["layers"]} != {"BUS"}:
                continue
            k = armed["next"]
            ev, e = self._plan(c, armed["layers"], t0, k, k + 1, bus=True)
            events.extend(ev)
            end = max(end, e)
            armed["next"] = k + 1
            fired.append(c)
        self._execute(events, end)
        for c in fired:
            ch = self.chans[c]
            armed = ch.armed
            if armed is not None and all(
                armed["next"] >= ch.layer(x).count for x in armed["layers"]
            ):
                self._finish(ch)

    # -- data replies ----------------------------------------------------------------------
    def _format(self, values: np.ndarray) -> bytes:
        if self.form == "ASC":
            return format_e(np.where(np.isnan(values), NAN_REPLY, values), plus=True)
        dtype = (">" if self.byteorder == "NORM" else "<") + (
            "f4" if self.form == "REAL,32" else "f8"
        )
        payload = np.asarray(values, dtype=float).astype(dtype).tobytes()
        length = str(len(payload)).encode()
        return b"#" + str(len(length)).encode() + length + payload

    def _data(self, chans: list[int], elements: tuple[str, ...], latest: bool) -> bytes:
        """Rows of the listed channels interleaved per point (missing points are NaN)."""
        if latest and len(chans) == 1 and self.form == "ASC":  # spot-reading fast path
            rows = self.chans[chans[0]].data
            if rows:
                last = rows[-1]
                if len(elements) == 1:
                    return _nr3(last[ELEMENTS.index(elements[0])]).encode()
                idx = _ELEMENT_INDEX.get(elements)
                if idx is None:  # (a handful of element tuples: kept for good)
                    idx = _ELEMENT_INDEX[elements] = tuple(ELEMENTS.index(e) for e in elements)
                return ",".join([_nr3(last[k]) for k in idx]).encode()
        idx = [ELEMENTS.index(e) for e in elements]
        if latest and self.form == "ASC" and len(idx) * len(chans) < 16:
            # several channels' spot readings (``:MEAS:CURR? (@1,2)``): the general path's
            # numbers without its arrays -- the last row of each channel (NaN if none) in
            # channel order, NaN sent as NAN_REPLY, as ``format_e`` formats fewer than 16
            values: list[float] = []
            for c in chans:
                rows = self.chans[c].data
                values += ([float(rows[-1][k]) for k in idx] if rows else [math.nan] * len(idx))
            return b",".join(format(NAN_REPLY if v != v else v, "+.6E").encode()
                             for v in values)
        tables = []
        for c in chans:
            rows = self.chans[c].data
            if latest:
                rows = rows[-1:]
            table = np.array(rows, dtype=float).reshape(-1, len(ELEMENTS))[:, idx]
            tables.append(table)
        n = max(max(t.shape[0] for t in tables), 1)
        width = len(idx)
        out = np.full((n, width * len(tables)), np.nan)
        for j, t in enumerate(tables):
            out[: t.shape[0], j * width : (j + 1) * width] = t
        return self._format(out.ravel())

    # -- output ----------------------------------------------------------------------------
    @scpi(":OUTPut#[:STATe]", nargs=1)
    def _outp(self, cmd: Command) -> None:
        ch = self._ch(cmd)
        on = cmd.boolean(0)
        if not on:
            ch.armed = None
        ch.smu.set_output(on)

    @scpi(":OUTPut#[:STATe]?", nargs=0)
    def _outp_q(self, cmd: Command) -> str:
        return "1" if self._ch(cmd).smu.output else "0"

    @scpi(":OUTPut#:ON:AUTO", nargs=1)
    def _on_auto(self, cmd: Command) -> None:
        self._ch(cmd).on_auto = cmd.boolean(0)

    @scpi(":OUTPut#:ON:AUTO?", nargs=0)
    def _on_auto_q(self, cmd: Command) -> str:
        return "1" if self._ch(cmd).on_auto else "0"

    @scpi(":OUTPut#:OFF:AUTO", nargs=1)
    def _off_auto(self, cmd: Command) -> None:
        self._ch(cmd).off_auto = cmd.boolean(0)

    @scpi(":OUTPut#:OFF:AUTO?", nargs=0)
    def _off_auto_q(self, cmd: Command) -> str:
        return "1" if self._ch(cmd).off_auto else "0"

    @scpi(":OUTPut#:OFF:MODE", nargs=1)
    def _off_mode(self, cmd: Command) -> None:
        self._ch(cmd).off_mode = cmd.choice(0, ("NORMal", "HIZ", "ZERO"))

    @scpi(":OUTPut#:OFF:MODE?", nargs=0)
    def _off_mode_q(self, cmd: Command) -> str:
        return self._ch(cmd).off_mode

    # -- source ----------------------------------------------------------------------------
    @scpi("[:SOURce#]:FUNCtion:MODE", nargs=1)
    def _func_mode(self, cmd: Command) -> None:
        ch = self._ch(cmd)
        func = cmd.choice(0, ("VOLTage", "CURRent"))
        if func != ch.smu.func:
            ch.smu.func = func
            ch.smu.apply()

    @scpi("[:SOURce#]:FUNCtion:MODE?", nargs=0)
    def _func_mode_q(self, cmd: Command) -> str:
        return self._ch(cmd).smu.func

    @scpi("[:SOURce#]:FUNCtion[:SHAPe]", nargs=1)
    def _shape(self, cmd: Command) -> None:
        self._ch(cmd).shape = cmd.choice(0, ("DC", "PULSe"))

    @scpi("[:SOURce#]:FUNCtion[:SHAPe]?", nargs=0)
    def _shape_q(self, cmd: Command) -> str:
        return self._ch(cmd).shape

    def _level_value(self, cmd: Command, func: str) -> float:
        top = self._level_limit(func)
        return float(cmd.number(0, minimum=-top, maximum=top, default=0.0))

    @scpi("[:SOURce#]:VOLTage[:LEVel][:IMMediate][:AMPLitude]", nargs=1)
    @scpi("[:SOURce#]:CURRent[:LEVel][:IMMediate][:AMPLitude]", nargs=1)
    def _level(self, cmd: Command) -> None:
        ch = self._ch(cmd)
        func = _fn(cmd)
        value = self._level_value(cmd, func)
        if func == "VOLT":
            ch.smu.level_v = value
        else:
            ch.smu.level_a = value
        if func == ch.smu.func and ch.smu.output and ch.armed is None:
            ch.smu.apply()

    @scpi("[:SOURce#]:VOLTage[:LEVel][:IMMediate][:AMPLitude]?", nargs=0)
    @scpi("[:SOURce#]:CURRent[:LEVel][:IMMediate][:AMPLitude]?", nargs=0)
    def _level_q(self, cmd: Command) -> str:
        smu = self._ch(cmd).smu
        return _nr3(smu.level_v if _fn(cmd) == "VOLT" else smu.level_a)

    @scpi("[:SOURce#]:VOLTage[:LEVel]:TRIGgered[:AMPLitude]", nargs=1)
    @scpi("[:SOURce#]:CURRent[:LEVel]:TRIGgered[:AMPLitude]", nargs=1)
    def _trig_level(self, cmd: Command) -> None:
        func = _fn(cmd)
        self._ch(cmd).trig_level[func] = self._level_value(cmd, func)

    @scpi("[:SOURce#]:VOLTage[:LEVel]:TRIGgered[:AMPLitude]?", nargs=0)
    @scpi("[:SOURce#]:CURRent[:LEVel]:TRIGgered[:AMPLitude]?", nargs=0)
    def _trig_level_q(self, cmd: Command) -> str:
        return _nr3(self._ch(cmd).trig_level[_fn(cmd)])

    @scpi("[:SOURce#]:VOLTage:MODE", nargs=1)
    @scpi("[:SOURce#]:CURRent:MODE", nargs=1)
    def _mode(self, cmd: Command) -> None:
        self._ch(cmd).mode[_fn(cmd)] = cmd.choice(0, ("FIXed", "LIST", "SWEep"))

    @scpi("[:SOURce#]:VOLTage:MODE?", nargs=0)
    @scpi("[:SOURce#]:CURRent:MODE?", nargs=0)
    def _mode_q(self, cmd: Command) -> str:
        return self._ch(cmd).mode[_fn(cmd)]

    @scpi("[:SOURce#]:VOLTage:RANGe", nargs=1)
    @scpi("[:SOURce#]:CURRent:RANGe", nargs=1)
    def _src_range(self, cmd: Command) -> None:
        ch, func = self._ch(cmd), _fn(cmd)
        table = V_RANGES if func == "VOLT" else self.i_ranges
        value = cmd.number(0, minimum=-table[-1], maximum=table[-1], default=table[-1])
        ch.src_range[func] = pick_range(table, value) or table[-1]
        ch.src_auto[func] = False

    @scpi("[:SOURce#]:VOLTage:RANGe?", nargs=0)
    @scpi("[:SOURce#]:CURRent:RANGe?", nargs=0)
    def _src_range_q(self, cmd: Command) -> str:
        ch, func = self._ch(cmd), _fn(cmd)
        if ch.src_auto[func]:
            table = V_RANGES if func == "VOLT" else self.i_ranges
            level = ch.smu.level_v if func == "VOLT" else ch.smu.level_a
            return _nr3(pick_range(table, level) or table[-1])
        return _nr3(ch.src_range[func])

    @scpi("[:SOURce#]:VOLTage:RANGe:AUTO", nargs=1)
    @scpi("[:SOURce#]:CURRent:RANGe:AUTO", nargs=1)
    def _src_auto(self, cmd: Command) -> None:
        self._ch(cmd).src_auto[_fn(cmd)] = cmd.boolean(0)

    @scpi("[:SOURce#]:VOLTage:RANGe:AUTO?", nargs=0)
    @scpi("[:SOURce#]:CURRent:RANGe:AUTO?", nargs=0)
    def _src_auto_q(self, cmd: Command) -> str:
        return "1" if self._ch(cmd).src_auto[_fn(cmd)] else "0"

    @scpi("[:SOURce#]:VOLTage:STARt", nargs=1)
    @scpi("[:SOURce#]:CURRent:STARt", nargs=1)
    def _start_level(self, cmd: Command) -> None:
        func = _fn(cmd)
        self._ch(cmd).start[func] = self._level_value(cmd, func)

    @scpi("[:SOURce#]:VOLTage:STARt?", nargs=0)
    @scpi("[:SOURce#]:CURRent:STARt?", nargs=0)
    def _start_level_q(self, cmd: Command) -> str:
        return _nr3(self._ch(cmd).start[_fn(cmd)])

    @scpi("[:SOURce#]:VOLTage:STOP", nargs=1)
    @scpi("[:SOURce#]:CURRent:STOP", nargs=1)
    def _stop_level(self, cmd: Command) -> None:
        func = _fn(cmd)
        self._ch(cmd).stop[func] = self._level_value(cmd, func)

    @scpi("[:SOURce#]:VOLTage:STOP?", nargs=0)
    @scpi("[:SOURce#]:CURRent:STOP?", nargs=0)
    def _stop_level_q(self, cmd: Command) -> str:
        return _nr3(self._ch(cmd).stop[_fn(cmd)])

    @scpi("[:SOURce#]:VOLTage:POINts", nargs=1)
    @scpi("[:SOURce#]:CURRent:POINts", nargs=1)
    @scpi("[:SOURce#]:SWEep:POINts", nargs=1)
    def _points(self, cmd: Command) -> None:
        self._ch(cmd).points = cmd.number(0, minimum=1, maximum=POINTS_MAX, integer=True, default=1)

    @scpi("[:SOURce#]:VOLTage:POINts?", nargs=0)
    @scpi("[:SOURce#]:CURRent:POINts?", nargs=0)
    @scpi("[:SOURce#]:SWEep:POINts?", nargs=0)
    def _points_q(self, cmd: Command) -> str:
        return f"{self._ch(cmd).points:+d}"

    @scpi("[:SOURce#]:SWEep:SPACing", nargs=1)
    def _spacing(self, cmd: Command) -> None:
        self._ch(cmd).spacing = cmd.choice(0, ("LINear", "LOGarithmic"))

    @scpi("[:SOURce#]:SWEep:SPACing?", nargs=0)
    def _spacing_q(self, cmd: Command) -> str:
        return self._ch(cmd).spacing

    @scpi("[:SOURce#]:SWEep:STAir", nargs=1)
    def _stair(self, cmd: Command) -> None:
        self._ch(cmd).stair = cmd.choice(0, ("SINGle", "DOUBle"))

    @scpi("[:SOURce#]:SWEep:STAir?", nargs=0)
    def _stair_q(self, cmd: Command) -> str:
        return self._ch(cmd).stair

    @scpi("[:SOURce#]:SWEep:DIRection", nargs=1)
    def _direction(self, cmd: Command) -> None:
        self._ch(cmd).direction = cmd.choice(0, ("UP", "DOWN"))

    @scpi("[:SOURce#]:SWEep:DIRection?", nargs=0)
    def _direction_q(self, cmd: Command) -> str:
        return self._ch(cmd).direction

    @scpi("[:SOURce#]:SWEep:RANGing", nargs=1)
    def _ranging(self, cmd: Command) -> None:
        self._ch(cmd).ranging = cmd.choice(0, ("BEST", "AUTO", "FIXed"))

    @scpi("[:SOURce#]:SWEep:RANGing?", nargs=0)
    def _ranging_q(self, cmd: Command) -> str:
        return self._ch(cmd).ranging

    def _list_values(self, cmd: Command, func: str) -> list[float]:
        top = self._level_limit(func)
        return [float(v) for v in cmd.numbers(0, minimum=-top, maximum=top)]

    @scpi("[:SOURce#]:LIST:VOLTage[:LEVel]", nargs=(1, None))
    @scpi("[:SOURce#]:LIST:CURRent[:LEVel]", nargs=(1, None))
    def _list(self, cmd: Command) -> None:
        ch, func = self._ch(cmd), _fn(cmd)
        values = self._list_values(cmd, func)
        if len(values) > POINTS_MAX:
            raise ScpiError(-223)
        ch.lists[func] = values

    @scpi("[:SOURce#]:LIST:VOLTage:APPend", nargs=(1, None))
    @scpi("[:SOURce#]:LIST:CURRent:APPend", nargs=(1, None))
    def _list_append(self, cmd: Command) -> None:
        ch, func = self._ch(cmd), _fn(cmd)
        values = self._list_values(cmd, func)
        if len(ch.lists[func]) + len(values) > POINTS_MAX:
            raise ScpiError(-223)
        ch.lists[func].extend(values)

    @scpi("[:SOURce#]:LIST:VOLTage[:LEVel]?", nargs=0)
    @scpi("[:SOURce#]:LIST:CURRent[:LEVel]?", nargs=0)
    def _list_q(self, cmd: Command) -> bytes:
        return format_e(self._ch(cmd).lists[_fn(cmd)], plus=True)

    @scpi("[:SOURce#]:LIST:VOLTage:POINts?", nargs=0)
    @scpi("[:SOURce#]:LIST:CURRent:POINts?", nargs=0)
    def _list_points_q(self, cmd: Command) -> str:
        return f"{len(self._ch(cmd).lists[_fn(cmd)]):+d}"

    @scpi("[:SOURce#]:PULSe:DELay", nargs=1)
    def _pulse_delay(self, cmd: Command) -> None:
        self._ch(cmd).pulse_delay = float(cmd.number(0, minimum=0.0, maximum=99999.9, default=0.0))

    @scpi("[:SOURce#]:PULSe:DELay?", nargs=0)
    def _pulse_delay_q(self, cmd: Command) -> str:
        return _nr3(self._ch(cmd).pulse_delay)

    @scpi("[:SOURce#]:PULSe:WIDTh", nargs=1)
    def _pulse_width(self, cmd: Command) -> None:
        self._ch(cmd).pulse_width = float(
            cmd.number(0, minimum=PULSE_WIDTH_MIN, maximum=PULSE_WIDTH_MAX, default=PULSE_WIDTH_MIN)
        )

    @scpi("[:SOURce#]:PULSe:WIDTh?", nargs=0)
    def _pulse_width_q(self, cmd: Command) -> str:
        return _nr3(self._ch(cmd).pulse_width)

    # -- sense -----------------------------------------------------------------------------
    def _functions(self, cmd: Command) -> set[str]:
        return {
            parse_choice(a, ("VOLTage", "CURRent", "RESistance"), quoted=True) for a in cmd.args
        }

    @scpi(":SENSe#:FUNCtion[:ON]", nargs=(1, 3))
    def _sense_on(self, cmd: Command) -> None:
        ch = self._ch(cmd)
        ch.sense = ch.sense | self._functions(cmd)

    @scpi(":SENSe#:FUNCtion:OFF", nargs=(1, 3))
    def _sense_off(self, cmd: Command) -> None:
        ch = self._ch(cmd)
        ch.sense = ch.sense - self._functions(cmd)

    @scpi(":SENSe#:FUNCtion[:ON]:ALL", nargs=0)
    def _sense_all(self, cmd: Command) -> None:
        self._ch(cmd).sense = {"VOLT", "CURR", "RES"}

    @scpi(":SENSe#:FUNCtion:OFF:ALL", nargs=0)
    def _sense_none(self, cmd: Command) -> None:
        self._ch(cmd).sense = set()

    @scpi(":SENSe#:FUNCtion[:ON]?", nargs=0)
    def _sense_q(self, cmd: Command) -> str:
        on = [f'"{f}"' for f in ("VOLT", "CURR", "RES") if f in self._ch(cmd).sense]
        return ",".join(on) if on else '""'

    @scpi(":SENSe#:FUNCtion:STATe?", nargs=1)
    def _sense_state_q(self, cmd: Command) -> str:
        (func,) = self._functions(cmd)
        return "1" if func in self._ch(cmd).sense else "0"

    @scpi(":SENSe#:CURRent[:DC]:PROTection[:LEVel]", nargs=1)
    def _iprot(self, cmd: Command) -> None:
        ch = self._ch(cmd)
        ch.smu.ilim = float(cmd.number(0, minimum=1e-9, maximum=I_MAX, default=1e-4))
        if ch.smu.output and ch.armed is None:
            ch.smu.apply()

    @scpi(":SENSe#:VOLTage[:DC]:PROTection[:LEVel]", nargs=1)
    def _vprot(self, cmd: Command) -> None:
        ch = self._ch(cmd)
        ch.smu.vlim = float(cmd.number(0, minimum=2e-4, maximum=V_MAX, default=2.0))
        if ch.smu.output and ch.armed is None:
            ch.smu.apply()

    @scpi(":SENSe#:CURRent[:DC]:PROTection[:LEVel]?", nargs=0)
    @scpi(":SENSe#:VOLTage[:DC]:PROTection[:LEVel]?", nargs=0)
    def _prot_q(self, cmd: Command) -> str:
        smu = self._ch(cmd).smu
        return _nr3(smu.ilim if _fn(cmd) == "CURR" else smu.vlim)

    @scpi(":SENSe#:CURRent[:DC]:PROTection:TRIPped?", nargs=0)
    @scpi(":SENSe#:VOLTage[:DC]:PROTection:TRIPped?", nargs=0)
    def _trip_q(self, cmd: Command) -> str:
        """In compliance now: a zero-length look at the device when the output is on."""
        ch = self._ch(cmd)
        limited = "CURR" if ch.smu.func == "VOLT" else "VOLT"
        if _fn(cmd) != limited or not ch.smu.output:
            return "0"
        ch.tripped = ch.smu.measure(0.0).in_compliance
        return "1" if ch.tripped else "0"

    @scpi(":SENSe#:CURRent[:DC]:RANGe[:UPPer]", nargs=1)
    @scpi(":SENSe#:VOLTage[:DC]:RANGe[:UPPer]", nargs=1)
    def _meas_range(self, cmd: Command) -> None:
        ch, func = self._ch(cmd), _fn(cmd)
        table = V_RANGES if func == "VOLT" else self.i_ranges
        value = cmd.number(0, minimum=-table[-1], maximum=table[-1], default=table[-1])
        ch.meas_range[func] = pick_range(table, value) or table[-1]
        ch.meas_auto[func] = False

    @scpi(":SENSe#:CURRent[:DC]:RANGe[:UPPer]?", nargs=0)
    @scpi(":SENSe#:VOLTage[:DC]:RANGe[:UPPer]?", nargs=0)
    def _meas_range_q(self, cmd: Command) -> str:
        return _nr3(self._ch(cmd).meas_range[_fn(cmd)])

    @scpi(":SENSe#:CURRent[:DC]:RANGe:AUTO", nargs=1)
    @scpi(":SENSe#:VOLTage[:DC]:RANGe:AUTO", nargs=1)
    def _meas_auto(self, cmd: Command) -> None:
        self._ch(cmd).meas_auto[_fn(cmd)] = cmd.boolean(0)

    @scpi(":SENSe#:CURRent[:DC]:RANGe:AUTO?", nargs=0)
    @scpi(":SENSe#:VOLTage[:DC]:RANGe:AUTO?", nargs=0)
    def _meas_auto_q(self, cmd: Command) -> str:
        return "1" if self._ch(cmd).meas_auto[_fn(cmd)] else "0"

    @scpi(":SENSe#:CURRent[:DC]:APERture", nargs=1)
    @scpi(":SENSe#:VOLTage[:DC]:APERture", nargs=1)
    @scpi(":SENSe#:RESistance:APERture", nargs=1)
    def _aper(self, cmd: Command) -> None:
        """Common to all functions; out-of-range values are set to MIN/MAX (manual 4-73)."""
        lf = self.line_frequency_hz
        t = cmd.number(0, minimum=APER_MIN, maximum=APER_MAX, default=0.1 / lf, clip=True)
        self._ch(cmd).aperture_plc = float(t) * lf

    @scpi(":SENSe#:CURRent[:DC]:APERture?", nargs=0)
    @scpi(":SENSe#:VOLTage[:DC]:APERture?", nargs=0)
    @scpi(":SENSe#:RESistance:APERture?", nargs=0)
    def _aper_q(self, cmd: Command) -> str:
        return _nr3(self._aperture(self._ch(cmd)))

    @scpi(":SENSe#:CURRent[:DC]:NPLCycles", nargs=1)
    @scpi(":SENSe#:VOLTage[:DC]:NPLCycles", nargs=1)
    @scpi(":SENSe#:RESistance:NPLCycles", nargs=1)
    def _nplc(self, cmd: Command) -> None:
        lf = self.line_frequency_hz
        self._ch(cmd).aperture_plc = float(
            cmd.number(0, minimum=APER_MIN * lf, maximum=APER_MAX * lf, default=0.1, clip=True)
        )

    @scpi(":SENSe#:CURRent[:DC]:NPLCycles?", nargs=0)
    @scpi(":SENSe#:VOLTage[:DC]:NPLCycles?", nargs=0)
    @scpi(":SENSe#:RESistance:NPLCycles?", nargs=0)
    def _nplc_q(self, cmd: Command) -> str:
        return _nr3(self._ch(cmd).aperture_plc)

    @scpi(":SENSe#:CURRent[:DC]:APERture:AUTO", nargs=1)
    @scpi(":SENSe#:VOLTage[:DC]:APERture:AUTO", nargs=1)
    @scpi(":SENSe#:CURRent[:DC]:NPLCycles:AUTO", nargs=1)
    @scpi(":SENSe#:VOLTage[:DC]:NPLCycles:AUTO", nargs=1)
    def _aper_auto(self, cmd: Command) -> None:
        self._ch(cmd).aperture_auto = cmd.boolean(0)

    @scpi(":SENSe#:CURRent[:DC]:APERture:AUTO?", nargs=0)
    @scpi(":SENSe#:VOLTage[:DC]:APERture:AUTO?", nargs=0)
    @scpi(":SENSe#:CURRent[:DC]:NPLCycles:AUTO?", nargs=0)
    @scpi(":SENSe#:VOLTage[:DC]:NPLCycles:AUTO?", nargs=0)
    def _aper_auto_q(self, cmd: Command) -> str:
        return "1" if self._ch(cmd).aperture_auto else "0"

    @scpi(":SENSe#:REMote", nargs=1)
    def _remote(self, cmd: Command) -> None:
        """Remote (4-wire) or local (2-wire) sensing (SCPI reference, SENSe subsystem). Stored
        and reported: the bench wiring has no lead resistance for it to compensate."""
        self._ch(cmd).remote_sense = cmd.boolean(0)

    @scpi(":SENSe#:REMote?", nargs=0)
    def _remote_q(self, cmd: Command) -> str:
        return "1" if self._ch(cmd).remote_sense else "0"

    @scpi(":SENSe#:RESistance:MODE", nargs=1)
    def _res_mode(self, cmd: Command) -> None:
        """MANual (the resistance is measured V / measured I at the programmed source) or AUTO
        (the channel picks the test current by the resistance range)."""
        self._ch(cmd).res_mode = cmd.choice(0, ("MANual", "AUTO"))

    @scpi(":SENSe#:RESistance:MODE?", nargs=0)
    def _res_mode_q(self, cmd: Command) -> str:
        return self._ch(cmd).res_mode

    @scpi(":SENSe#:RESistance:OCOMpensated", nargs=1)
    def _res_ocomp(self, cmd: Command) -> None:
        """Offset compensation of resistance readings: stored (no offsets on the bench)."""
        self._ch(cmd).res_ocomp = cmd.boolean(0)

    @scpi(":SENSe#:RESistance:OCOMpensated?", nargs=0)
    def _res_ocomp_q(self, cmd: Command) -> str:
        return "1" if self._ch(cmd).res_ocomp else "0"

    # -- trigger ---------------------------------------------------------------------------
    @scpi(":TRIGger#[:ALL]:SOURce[:SIGNal]", nargs=1)
    @scpi(":TRIGger#:ACQuire:SOURce[:SIGNal]", nargs=1)
    @scpi(":TRIGger#:TRANsient:SOURce[:SIGNal]", nargs=1)
    def _trig_source(self, cmd: Command) -> None:
        ch = self._ch(cmd)
        source = cmd.choice(0, _TRIGGER_SOURCES)
        for name in _layer(cmd):
            ch.layer(name).source = source

    @scpi(":TRIGger#[:ALL]:SOURce[:SIGNal]?", nargs=0)
    @scpi(":TRIGger#:ACQuire:SOURce[:SIGNal]?", nargs=0)
    @scpi(":TRIGger#:TRANsient:SOURce[:SIGNal]?", nargs=0)
    def _trig_source_q(self, cmd: Command) -> str:
        return self._ch(cmd).layer(_layer(cmd)[0]).source

    @scpi(":TRIGger#[:ALL]:TIMer", nargs=1)
    @scpi(":TRIGger#:ACQuire:TIMer", nargs=1)
    @scpi(":TRIGger#:TRANsient:TIMer", nargs=1)
    def _trig_timer(self, cmd: Command) -> None:
        ch = self._ch(cmd)
        t = float(cmd.number(0, minimum=TIMER_MIN, maximum=TIMER_MAX, default=TIMER_MIN))
        for name in _layer(cmd):
            ch.layer(name).timer = t

    @scpi(":TRIGger#[:ALL]:TIMer?", nargs=0)
    @scpi(":TRIGger#:ACQuire:TIMer?", nargs=0)
    @scpi(":TRIGger#:TRANsient:TIMer?", nargs=0)
    def _trig_timer_q(self, cmd: Command) -> str:
        return _nr3(self._ch(cmd).layer(_layer(cmd)[0]).timer)

    @scpi(":TRIGger#[:ALL]:COUNt", nargs=1)
    @scpi(":TRIGger#:ACQuire:COUNt", nargs=1)
    @scpi(":TRIGger#:TRANsient:COUNt", nargs=1)
    def _trig_count(self, cmd: Command) -> None:
        ch = self._ch(cmd)
        n = cmd.number(0, minimum=1, maximum=COUNT_MAX, default=1, keywords=("INFinity",))
        n = n if math.isinf(n) else round(n)
        for name in _layer(cmd):
            ch.layer(name).count = n

    @scpi(":TRIGger#[:ALL]:COUNt?", nargs=0)
    @scpi(":TRIGger#:ACQuire:COUNt?", nargs=0)
    @scpi(":TRIGger#:TRANsient:COUNt?", nargs=0)
    def _trig_count_q(self, cmd: Command) -> str:
        n = self._ch(cmd).layer(_layer(cmd)[0]).count
        return "+9.9E+37" if math.isinf(n) else f"{int(n):+d}"

    @scpi(":TRIGger#[:ALL]:DELay", nargs=1)
    @scpi(":TRIGger#:ACQuire:DELay", nargs=1)
    @scpi(":TRIGger#:TRANsient:DELay", nargs=1)
    def _trig_delay(self, cmd: Command) -> None:
        ch = self._ch(cmd)
        d = float(cmd.number(0, minimum=0.0, maximum=100.0, default=0.0))
        for name in _layer(cmd):
            ch.layer(name).delay = d

    @scpi(":TRIGger#[:ALL]:DELay?", nargs=0)
    @scpi(":TRIGger#:ACQuire:DELay?", nargs=0)
    @scpi(":TRIGger#:TRANsient:DELay?", nargs=0)
    def _trig_delay_q(self, cmd: Command) -> str:
        return _nr3(self._ch(cmd).layer(_layer(cmd)[0]).delay)

    @scpi(":TRIGger[:ALL]", nargs=(0, 1))
    @scpi(":TRIGger:ACQuire", nargs=(0, 1))
    @scpi(":TRIGger:TRANsient", nargs=(0, 1))
    def _trig_now(self, cmd: Command) -> None:
        self._bus_trigger(self._chanlist(cmd))

    @scpi(":INITiate[:IMMediate][:ALL]", nargs=(0, 1))
    @scpi(":INITiate[:IMMediate]:ACQuire", nargs=(0, 1))
    @scpi(":INITiate[:IMMediate]:TRANsient", nargs=(0, 1))
    def _init(self, cmd: Command) -> None:
        self._initiate(self._chanlist(cmd), _layer(cmd))

    @scpi(":ABORt[:ALL]", nargs=(0, 1))
    @scpi(":ABORt:ACQuire", nargs=(0, 1))
    @scpi(":ABORt:TRANsient", nargs=(0, 1))
    def _abort(self, cmd: Command) -> None:
        for c in self._chanlist(cmd):
            ch = self.chans[c]
            if ch.armed is not None:
                self._finish(ch)

    # -- measure / fetch / read ------------------------------------------------------------
    @scpi(":MEASure?", nargs=(0, 1))
    def _measure_q(self, cmd: Command) -> bytes:
        chans = self._chanlist(cmd)
        for c in chans:
            self._spot(self.chans[c])
        return self._data(chans, self.elements, latest=True)

    @scpi(":MEASure:CURRent[:DC]?", nargs=(0, 1))
    @scpi(":MEASure:VOLTage[:DC]?", nargs=(0, 1))
    @scpi(":MEASure:RESistance?", nargs=(0, 1))
    def _measure_one_q(self, cmd: Command) -> bytes:
        chans = self._chanlist(cmd)
        func = _fn(cmd)
        for c in chans:
            ch = self.chans[c]
            if func not in ch.sense:  # (sense sets are replaced, never changed in place)
                ch.sense = ch.sense | {func}
            self._spot(ch)
        return self._data(chans, (func,), latest=True)

    @scpi(":FETCh[:SCALar]?", nargs=(0, 1))
    @scpi(":FETCh:ARRay?", nargs=(0, 1))
    def _fetch_q(self, cmd: Command) -> bytes:
        return self._data(self._chanlist(cmd), self.elements, latest=":ARR" not in cmd.header)

    @scpi(":FETCh[:SCALar]:CURRent[:DC]?", nargs=(0, 1))
    @scpi(":FETCh[:SCALar]:VOLTage[:DC]?", nargs=(0, 1))
    @scpi(":FETCh[:SCALar]:RESistance?", nargs=(0, 1))
    @scpi(":FETCh[:SCALar]:TIME?", nargs=(0, 1))
    @scpi(":FETCh[:SCALar]:STATus?", nargs=(0, 1))
    @scpi(":FETCh[:SCALar]:SOURce?", nargs=(0, 1))
    @scpi(":FETCh:ARRay:CURRent[:DC]?", nargs=(0, 1))
    @scpi(":FETCh:ARRay:VOLTage[:DC]?", nargs=(0, 1))
    @scpi(":FETCh:ARRay:RESistance?", nargs=(0, 1))
    @scpi(":FETCh:ARRay:TIME?", nargs=(0, 1))
    @scpi(":FETCh:ARRay:STATus?", nargs=(0, 1))
    @scpi(":FETCh:ARRay:SOURce?", nargs=(0, 1))
    def _fetch_one_q(self, cmd: Command) -> bytes:
        element = parse_choice(cmd.header.rstrip("?").rsplit(":", 1)[-1], (*_ELEMENT_OPTIONS, "DC"))
        if element == "DC":
            element = _fn(cmd)
        return self._data(self._chanlist(cmd), (element,), latest=":ARR" not in cmd.header)

    @scpi(":READ[:SCALar]?", nargs=(0, 1))
    @scpi(":READ:ARRay?", nargs=(0, 1))
    def _read_q(self, cmd: Command) -> bytes:
        chans = self._chanlist(cmd)
        self._initiate(chans, ("ACQ", "TRAN"))
        return self._data(chans, self.elements, latest=":ARR" not in cmd.header)

    # -- format ----------------------------------------------------------------------------
    @scpi(":FORMat[:DATA]", nargs=(1, 2))
    def _form(self, cmd: Command) -> None:
        kind = cmd.choice(0, ("ASCii", "REAL", "REAL32", "REAL64"))
        if kind == "ASC":
            if cmd.has(1):
                raise ScpiError(-108)
            self.form = "ASC"
            return
        if kind == "REAL":
            bits = cmd.number(1, integer=True) if cmd.has(1) else 64
            if bits not in (32, 64):
                raise ScpiError(-224)
        else:
            bits = int(kind[4:])
        self.form = f"REAL,{bits}"

    @scpi(":FORMat[:DATA]?", nargs=0)
    def _form_q(self, cmd: Command) -> str:
        return self.form

    @scpi(":FORMat:BORDer", nargs=1)
    def _border(self, cmd: Command) -> None:
        self.byteorder = cmd.choice(0, ("NORMal", "SWAPped"))

    @scpi(":FORMat:BORDer?", nargs=0)
    def _border_q(self, cmd: Command) -> str:
        return self.byteorder

    @scpi(":FORMat:ELEMents:SENSe", nargs=(1, 6))
    def _elements(self, cmd: Command) -> None:
        # the tuple is a pure function of the parameter text: remembered per text (a host
        # sends the same one before every reading); a text that fails is never kept
        elements = _ELEMENTS_BY_TEXT.get(cmd.raw)
        if elements is None:
            chosen = {cmd.choice(i, _ELEMENT_OPTIONS) for i in range(len(cmd.args))}
            elements = tuple(e for e in ELEMENTS if e in chosen)
            if len(_ELEMENTS_BY_TEXT) >= 256:
                _ELEMENTS_BY_TEXT.clear()
            _ELEMENTS_BY_TEXT[cmd.raw] = elements
        self.elements = elements

    @scpi(":FORMat:ELEMents:SENSe?", nargs=0)
    def _elements_q(self, cmd: Command) -> str:
        return ",".join(self.elements)

    # -- system ----------------------------------------------------------------------------
    @scpi(":SYSTem:TIME:TIMer:COUNt?", nargs=0)
    def _timer_q(self, cmd: Command) -> str:
        return _nr3(self.bench.now_s - self.timer_origin)

    @scpi(":SYSTem:TIME:TIMer:COUNt:RESet", nargs=0)
    def _timer_reset(self, cmd: Command) -> None:
        self.timer_origin = self.bench.now_s

    @scpi(":SYSTem:TIME:TIMer:COUNt:RESet:AUTO", nargs=1)
    def _timer_auto(self, cmd: Command) -> None:
        self.timer_auto_reset = cmd.boolean(0)

    @scpi(":SYSTem:TIME:TIMer:COUNt:RESet:AUTO?", nargs=0)
    def _timer_auto_q(self, cmd: Command) -> str:
        return "1" if self.timer_auto_reset else "0"

    @scpi(":SYSTem:LFRequency", nargs=1)
    def _lfr(self, cmd: Command) -> None:
        value = cmd.number(0, integer=True)
        if value not in (50, 60):
            raise ScpiError(-224)
        self.line_frequency_hz = float(value)

    @scpi(":SYSTem:LFRequency?", nargs=0)
    def _lfr_q(self, cmd: Command) -> str:
        return f"{int(self.line_frequency_hz):+d}"

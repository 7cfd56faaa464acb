"""Shared parts of the simulated SMUs (2450, B2900): one source-measure channel on the bench,
range tables, and a fast vectorised ``%.<n>E`` formatter for bulk ASCII replies.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from dendrolab.errors import ParameterError
from sim_backend.bench import Bench


def line_frequency(opts: Mapping[str, Any], where: str) -> float:
    """``line_frequency_hz`` option: 50 (default) or 60, like the drivers' default."""
    value = opts.get("line_frequency_hz", 50)
    if isinstance(value, bool) or value not in (50, 60):
        raise ParameterError(f"{where}: line_frequency_hz must be 50 or 60, got {value!r}")
    return float(value)


def pick_range(ranges: Sequence[float], value: float) -> float | None:
    """The smallest range that holds ``|value|`` (None: above the largest)."""
    a = abs(value)
    for r in ranges:
        if a <= r * (1 + 1e-9):
            return r
    return None


# ---------------------------------------------------------------------------------------------
# Bench channel


class Sample(NamedTuple):
    """One measurement: device current and voltage, compliance flag, start time (bench clock)."""

    i_a: float
    v_v: float
    in_compliance: bool
    t_s: float


class SmuChannel:
    """One SMU output on a bench terminal: source function, levels, limits, output state.

    The bench only has voltage sources. A current source is modelled as zero-time probes (a
    voltage source at the voltage limit clamped to the programmed current by ``bench.measure``'s
    ``limit_a``) that find the voltage the device needs; that voltage is then held, and
    re-probed at the middle and end of every aperture, so the device sees what a current
    source would give it rather than the voltage limit.
    """

    __slots__ = (
        "bench",
        "func",
        "hold_v",
        "ilim",
        "level_a",
        "level_v",
        "output",
        "terminal",
        "vlim",
    )

    def __init__(self, bench: Bench, terminal: str) -> None:
        self.bench = bench
        self.terminal = terminal
        self.func = "VOLT"
        self.level_v = 0.0
        self.level_a = 0.0
        self.ilim = 1e-4
        self.vlim = 2.0
        self.output = False
        self.hold_v = 0.0  # voltage held by a current source between probes

    @property
    def level(self) -> float:
        return self.level_v if self.func == "VOLT" else self.level_a

    def set_output(self, on: bool) -> None:
        self.output = on
        self.apply()

    def apply(self, level: float | None = None) -> None:
        """Put the programmed (or given) level on the terminal; output off is open."""
        if not self.output:
            self.bench.source(self.terminal, None)
            return
        if self.func == "VOLT":
            self.bench.source(self.terminal, self.level_v if level is None else level)
        else:
            self._probe_current(self.level_a if level is None else level)

    def _probe_current(self, amps: float) -> Sample:
        """Zero-time look: the voltage at which the device takes ``amps`` (or the limit)."""
        bench, term = self.bench, self.terminal
        bench.source(term, math.copysign(self.vlim, amps))
        r = bench.measure(term, 0.0, limit_a=abs(amps))
        if r.tripped:  # the device takes the programmed current below the voltage limit
            sample = Sample(math.copysign(abs(amps), r.i_a) if amps else 0.0, r.v_v, False, r.t_s)
        else:  # it cannot: the source sits at its voltage limit
            sample = Sample(r.i_a, r.v_v, True, r.t_s)
        self.hold_v = sample.v_v
        bench.source(term, sample.v_v)
        return sample

    def _measure_current_source(self, amps: float, aperture_s: float) -> Sample:
        bench = self.bench
        t0 = bench.now_s
        self._probe_current(amps)
        bench.advance(aperture_s / 2)
        s = self._probe_current(amps)
        bench.advance(aperture_s / 2)
        if aperture_s > 0:
            self._probe_current(amps)
        return Sample(s.i_a, s.v_v, s.in_compliance, t0)

    def measure(self, aperture_s: float, level: float | None = None) -> Sample:
        """Measure over ``aperture_s`` at the programmed (or given) level, with compliance."""
        bench = self.bench
        if not self.output:
            t0 = bench.now_s
            bench.advance(aperture_s)
            return Sample(0.0, 0.0, False, t0)
        if self.func == "VOLT":
            t0 = bench.now_s
            r = bench.measure(self.terminal, aperture_s, limit_a=self.ilim)
            return Sample(r.i_a, r.v_v, r.tripped, t0)
        return self._measure_current_source(self.level_a if level is None else level, aperture_s)

    def off(self) -> None:
        self.output = False
        self.bench.source(self.terminal, None)


# ---------------------------------------------------------------------------------------------
# Fast "%.<d>E" formatting of many numbers (bulk replies: :TRAC:DATA?, :FETC:ARR?)

_DIGITS = np.frombuffer(b"0123456789", dtype=np.uint8)


def format_e(values: Any, digits: int = 6, *, plus: bool = False, sep: bytes = b",") -> bytes:
    """``sep.join(f"{x:+.{digits}E}")`` (``plus``) or ``f"{x:.{digits}E}"``, vectorised.

    Exactly Python's formatting: values the fast path could round differently (near ties,
    non-finite, exponents of three digits) are formatted by Python and spliced in.
    """
    x = np.asarray(values, dtype=float).ravel()
    n = x.size
    if n == 0:
        return b""
    spec = f"{'+' if plus else ''}.{digits}E"
    if n < 16 or not 1 <= digits <= 8:
        return sep.join(format(v, spec).encode() for v in x.tolist())
    ax = np.abs(x)
    ok = np.isfinite(ax) & (ax < 9.0e99) & ((ax >= 1e-98) | (ax == 0))
    safe = np.where(ok & (ax > 0), ax, 1.0)
    e = np.floor(np.log10(safe)).astype(np.int64)
    top = 10.0 ** (digits + 1)
    for attempt in range(3):  # log10 can be one off next to powers of ten
        s = safe * np.power(10.0, (digits - e).astype(float))
        up = s >= top
        down = s < top / 10
        if attempt == 2 or not (up.any() or down.any()):
            break
        e = e + up - down
    frac = s - np.floor(s)
    ok &= (np.abs(frac - 0.5) > 1e-5) & (s < top) & (s >= top / 10)
    m = np.rint(s)
    carry = m >= top  # 9.9999996 -> 10.000000: one more decade
    m = np.where(carry, top / 10, m)
    e = e + carry
    zero = ax == 0
    m = np.where(zero, 0.0, m).astype(np.int64)
    e = np.where(zero, 0, e)
    width = digits + 7 + len(sep)  # sign, d, '.', digits, 'E', sign, 2 exponent digits, sep
    buf = np.empty((n, width), dtype=np.uint8)
    neg = np.signbit(x)
    buf[:, 0] = np.where(neg, ord("-"), ord("+"))
    pw = 10 ** np.arange(digits, -1, -1, dtype=np.int64)
    dig = _DIGITS[(m[:, None] // pw[None, :]) % 10]
    buf[:, 1] = dig[:, 0]
    buf[:, 2] = ord(".")
    buf[:, 3 : 3 + digits] = dig[:, 1:]
    k = 3 + digits
    buf[:, k] = ord("E")
    buf[:, k + 1] = np.where(e < 0, ord("-"), ord("+"))
    ae = np.abs(e)
    buf[:, k + 2] = _DIGITS[(ae // 10) % 10]
    buf[:, k + 3] = _DIGITS[ae % 10]
    buf[:, k + 4 :] = np.frombuffer(sep, dtype=np.uint8)
    keep = np.ones((n, width), dtype=bool)
    if not plus:
        keep[:, 0] = neg
    data = buf[keep].tobytes()
    out_len = len(data) - len(sep)
    bad = np.flatnonzero(~ok)
    if bad.size == 0:
        return data[:out_len]
    row_len = keep.sum(axis=1)
    ends = np.cumsum(row_len)
    starts = ends - row_len
    pieces: list[bytes] = []
    prev = 0
    xs = x[bad].tolist()
    for r, v in zip(bad.tolist(), xs, strict=True):
        pieces.append(data[prev : int(starts[r])])
        pieces.append(format(v, spec).encode() + sep)
        prev = int(ends[r])
    pieces.append(data[prev:])
    return b"".join(pieces)[: -len(sep)]

"""Pieces every comparison case shares: the sweep, the wire messages, RSS, the progress counter.

Kept free of heavy imports: the parent process imports this module too, and it must not pay for
(or depend on) numpy, pyvisa or a peer package.
"""

from __future__ import annotations

import mmap
import os
import struct
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

SMU_ADDRESS = "USB0::0x05E6::0x2450::04488850::INSTR"
READ_CMD = ':READ? "defbuffer1",READ,SOUR'
# What dendrolab's driver sends for configure_source_voltage(limit_a=1e-3),
# configure_measure(nplc=0.01), output_on(): the raw cases send the same before sweeping.
CONFIGURE = (":SOUR:FUNC VOLT", ":SOUR:VOLT:ILIM 0.001", ":SOUR:VOLT:RANG:AUTO ON",
             ':SENS:FUNC "CURR"', ":SENS:CURR:RANG:AUTO ON", ":SENS:CURR:NPLC 0.01", ":OUTP ON")
SIM_YAML = Path(__file__).resolve().parents[1] / "compare_sim.yaml"
V_MAX = 0.5  # sweep 0 .. 0.5 V: below the dendrite's switching threshold, no compliance trips
COLUMNS = ("voltage_v", "current_a", "time_s")  # what every tool stores per point

Tick = Callable[[int], None]  # called with the number of points handed to storage so far


def sweep_levels(n: int) -> list[float]:
    """n distinct levels 0 .. V_MAX as Python floats (what a user loop would iterate)."""
    if n <= 1:
        return [0.0] * n
    step = V_MAX / (n - 1)
    return [k * step for k in range(n)]


def lazy_levels(n: int, span: int = 1_000_000) -> Iterator[float]:
    """Distinct-ish levels for the long memory and crash runs, without a list of n floats."""
    step = V_MAX / span
    return (step * (k % span) for k in range(n))


def premade(n: int) -> tuple[list[float], list[float], list[float]]:
    """Voltage, current, time columns for the storage-only layer (no instrument involved)."""
    v = sweep_levels(n)
    return v, [1e-7 * x for x in v], [1e-5 * k for k in range(n)]


def rss_kib() -> int:
    """Resident set size of this process now, KiB (Linux /proc; resource maxrss elsewhere)."""
    return _status_field("VmRSS:")


def peak_rss_kib() -> int:
    """Peak resident set size so far, KiB."""
    return _status_field("VmHWM:")


def _status_field(key: str) -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


class Progress:
    """Shared counters in a memory-mapped file: the child writes how many points it handed to
    storage (slot 0) and, in memory runs, RSS samples; the parent reads them while the child
    runs and after a kill -9 (the page cache keeps the values)."""

    SLOTS = 10
    COUNT, MARK_RSS, MARK_POINTS, MARK_NS, LAST_RSS, LAST_POINTS, LAST_NS, RECENT_NS = range(8)

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.ftruncate(fd, 8 * self.SLOTS)
            self._mm = mmap.mmap(fd, 8 * self.SLOTS)
        finally:
            os.close(fd)

    def tick(self, count: int) -> None:
        struct.pack_into("<q", self._mm, 0, count)

    def set(self, slot: int, value: int) -> None:
        struct.pack_into("<q", self._mm, 8 * slot, value)

    @classmethod
    def read_all(cls, path: Path) -> tuple[int, ...]:
        try:
            data = Path(path).read_bytes()
        except OSError:
            data = b""
        if len(data) < 8 * cls.SLOTS:
            return (0,) * cls.SLOTS
        return struct.unpack_from(f"<{cls.SLOTS}q", data, 0)

    @classmethod
    def read(cls, path: Path) -> int:
        return cls.read_all(path)[cls.COUNT]


def count_csv_rows(path: Path, fields: int = len(COLUMNS)) -> int:
    """Complete data rows of a CSV file: lines that end in a newline, are not '#' comments or
    the column-label line, and hold ``fields`` numbers. A kill may leave half a last line."""
    rows = 0
    labels_seen = False
    with open(path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n") or line.startswith(b"#"):
                continue
            parts = line.split(b",")
            if len(parts) != fields:
                continue
            try:
                [float(p) for p in parts]
            except ValueError:
                if not labels_seen:
                    labels_seen = True
                continue
            rows += 1
    return rows


class Case(ABC):
    """One tool's way of doing the sweep. A child process runs exactly one case.

    ``setup`` imports and connects (counted in time to first point); ``full`` is the whole
    stack into a fresh store at ``path``, opened and closed inside the call; ``layer`` times the
    pieces (driver calls alone, the store call alone on pre-made data, raw transport).
    """

    name: str = ""
    suffix: str = ""  # store file extension; "" = the case stores nothing
    layers: tuple[str, ...] = ()  # extra layers this case reports besides "full"

    @abstractmethod
    def versions(self) -> dict[str, str]:
        """Versions of the packages on this case's path (for the report)."""

    @abstractmethod
    def setup(self) -> None:
        """Import, connect and configure the SMU."""

    def prepare(self, path: Path) -> None:
        """Untimed preparation of a store (QCoDeS: the database file and experiment)."""
        path.parent.mkdir(parents=True, exist_ok=True)

    @abstractmethod
    def full(self, levels: Iterable[float], n: int, path: Path, tick: Tick | None = None) -> None:
        """Set V, read I, persist (v, i, t) for every level: the tool's normal data path."""

    def rows(self, path: Path) -> int:
        """Rows on disk in ``path``, read back the way a user of the tool would."""
        raise NotImplementedError

    def layer(self, name: str, n: int, tmp: Path) -> float:
        """Seconds for n points of one layer (see ``layers``)."""
        raise NotImplementedError(name)

    @abstractmethod
    def teardown(self) -> None:
        """Leave the instrument safe (0 V, output off)."""

"""One clock for everything above VISA that waits or stamps time: the runner and the drivers.

A VISA library may supply its own through a generic hook, ``visalib.clock()`` returning an object
with ``now()`` (seconds, monotonic) and ``sleep(seconds)``; a simulator hands out its virtual
clock there (a wait costs no wall time, so runs are reproducible and faster than real time).
Libraries without the hook get the wall clock. Nothing here asks whether a library is simulated.
"""

from __future__ import annotations

import time
from typing import Any, Protocol


class Clock(Protocol):
    """What the runner and drivers need of time."""

    def now(self) -> float:
        """Seconds on a monotonic scale (only differences mean anything)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass."""
        ...


class WallClock:
    """The host's own monotonic clock: real waits (what a real VISA library gets)."""

    kind = "wall"

    @staticmethod
    def now() -> float:
        return time.perf_counter()

    @staticmethod
    def sleep(seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


WALL_CLOCK = WallClock()


def clock_of(source: Any) -> Clock:
    """The clock of a VISA library, resource manager or resource (``visalib.clock()``), or the
    wall clock when the library offers none."""
    lib = getattr(source, "visalib", source)
    hook = getattr(lib, "clock", None)
    if callable(hook):
        clock = hook()
        if clock is not None:
            return clock
    return WALL_CLOCK

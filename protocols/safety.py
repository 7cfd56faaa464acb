"""Signals become exceptions during a run, so every exit path reaches the safe-state code.

Ctrl-C (SIGINT) and SIGTERM raise ``RunInterrupted`` in the main thread; the runner's ``finally``
then ramps sources to 0 V and turns outputs off. Only the main thread can own signal handlers;
elsewhere this is a no-op and the caller's own handling applies.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from dendrolab.errors import DendrolabError


class RunInterrupted(DendrolabError):
    """The run was stopped by a signal (Ctrl-C or SIGTERM); instruments were made safe."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"run interrupted by {signal.Signals(signum).name}; "
                         "instruments were put in their safe state")


@contextmanager
def signals_raise() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise ``RunInterrupted`` (once; then default)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        # A second signal while we are already making things safe must not cut that short.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        raise RunInterrupted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)

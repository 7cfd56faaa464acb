"""Fixtures for running third-party (peer) drivers against the ``@dendrosim`` bench.

The ``@dendrosim`` library object is cached per bench file by pyvisa and its bench state persists,
so every test starts from a reset library and closes the manager at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

pyvisa = pytest.importorskip("pyvisa")


@pytest.fixture
def dendrosim_rm() -> Iterator[pyvisa.ResourceManager]:
    """A ``ResourceManager("@dendrosim")`` on a freshly reset packaged bench; closed after."""
    rm = pyvisa.ResourceManager("@dendrosim")
    rm.visalib.reset()
    yield rm
    rm.close()


def drain_errors(rm: pyvisa.ResourceManager, address: str, query: str = ":SYST:ERR?") -> list[str]:
    """Every entry left in the instrument's error queue, read over a plain session until 0."""
    res = rm.open_resource(address)
    try:
        res.read_termination = res.write_termination = "\n"
        out = []
        for _ in range(100):
            reply = res.query(query).strip()
            if int(float(reply.split(",", 1)[0])) == 0:
                return out
            out.append(reply)
        raise AssertionError(f"{address}: error queue does not empty: {out[-3:]}")
    finally:
        res.close()


@pytest.fixture
def error_queue(dendrosim_rm: pyvisa.ResourceManager) -> Callable[[str], list[str]]:
    """``error_queue(address)``: drain the queue of the instrument at ``address``."""
    return lambda address, query=":SYST:ERR?": drain_errors(dendrosim_rm, address, query)

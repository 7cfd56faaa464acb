"""Fixtures for simulated instruments: a bench with one dendrite, and a loopback resource.

``LoopbackResource`` gives our drivers a pyvisa-Resource-shaped object that talks straight to a
simulated model's ``handle()``, so model and driver can be tested together without the backend.
"""

from __future__ import annotations

import pytest

from sim_backend.bench import Bench


class LoopbackResource:
    """write/query/read/read_raw over a model's ``handle()``; a query with no reply times out."""

    def __init__(self, model) -> None:
        self.model = model
        self.read_termination = "\n"
        self.write_termination = "\n"
        self.timeout = 2000
        self.sent: list[str] = []
        self._out = b""

    def write(self, text: str) -> None:
        self.sent.append(text)
        reply = self.model.handle(text)
        if reply:
            self._out += reply

    def read_raw(self) -> bytes:
        if not self._out:
            raise TimeoutError("VI_ERROR_TMO: no reply queued")
        out, self._out = self._out, b""
        return out

    def read(self) -> str:
        return self.read_raw().decode().rstrip("\r\n")

    def query(self, text: str) -> str:
        self.write(text)
        return self.read()


@pytest.fixture
def dendrite_bench() -> Bench:
    """A noise-free bench: one dendrite ``d1`` wired to terminals smu/1, smu/2, pulse/1, pulse/2."""
    return Bench({
        "seed": 1, "noise": False,
        "devices": {"d1": {"kind": "dendrite"}},
        "wiring": {"smu/1": "d1", "smu/2": "d1", "pulse/1": "d1", "pulse/2": "d1"},
    })


@pytest.fixture
def loopback():
    return LoopbackResource

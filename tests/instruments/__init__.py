"""Driver tests pin exact wire traffic against a scripted fake pyvisa Resource.

The fakes here stand in for pyvisa objects only; they know nothing of instrument behaviour
beyond the replies a test scripts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyvisa import constants
from pyvisa.errors import VisaIOError

# Replies every instrument gives when its error queue is empty and nothing is pending.
NO_ERRORS: dict[str, str] = {
    "*OPC?": "1",
    ":SYST:ERR?": '+0,"No error"',
    "SYST:ERR?": '+0,"No error"',
    "print(errorqueue.count)": "0.00000e+00",
}


class FakeResource:
    """Records every write/query; answers queries from a script.

    ``replies`` maps an exact command to a reply, or to a list of replies consumed in order.
    An unscripted query times out like a real instrument that did not answer.
    """

    def __init__(
        self,
        replies: Mapping[str, str | list[str]] | None = None,
        *,
        resource_name: str = "FAKE::1::INSTR",
        defaults: bool = True,
        broken: bool = False,
    ) -> None:
        self.replies: dict[str, Any] = {
            k: (list(v) if isinstance(v, list) else v) for k, v in (replies or {}).items()
        }
        self.defaults = dict(NO_ERRORS) if defaults else {}
        self.resource_name = resource_name
        self.broken = broken
        self.traffic: list[tuple[str, str]] = []
        self.timeouts_seen: list[float] = []
        self.read_termination: str | None = None
        self.write_termination: str | None = "\r\n"
        self.timeout: float = 2000.0
        self.closed = False

    @property
    def commands(self) -> list[str]:
        return [cmd for _, cmd in self.traffic]

    @property
    def writes(self) -> list[str]:
        return [cmd for kind, cmd in self.traffic if kind == "w"]

    def clear_traffic(self) -> None:
        self.traffic.clear()

    def write(self, command: str) -> int:
        if self.broken:
            raise VisaIOError(constants.StatusCode.error_connection_lost)
        self.traffic.append(("w", command))
        return len(command)

    def query(self, command: str) -> str:
        if self.broken:
            raise VisaIOError(constants.StatusCode.error_connection_lost)
        self.traffic.append(("q", command))
        self.timeouts_seen.append(self.timeout)
        if command in self.replies:
            reply = self.replies[command]
            if isinstance(reply, list):
                if not reply:
                    raise VisaIOError(constants.StatusCode.error_timeout)
                return reply.pop(0)
            return reply
        if command in self.defaults:
            return self.defaults[command]
        raise VisaIOError(constants.StatusCode.error_timeout)

    def close(self) -> None:
        self.closed = True


class FakeResourceManager:
    """Hands out pre-built FakeResources by address; records what was opened and closed."""

    def __init__(self, visa_library: str, resources: Mapping[str, FakeResource]) -> None:
        self.visa_library = visa_library
        self.resources = dict(resources)
        self.opened: list[str] = []
        self.closed = False

    def open_resource(self, address: str) -> FakeResource:
        if address not in self.resources:
            raise VisaIOError(constants.StatusCode.error_resource_not_found)
        self.opened.append(address)
        return self.resources[address]

    def close(self) -> None:
        self.closed = True

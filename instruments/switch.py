"""Switch matrices: one ``SwitchMatrix`` over per-model tables (Keithley 707B/708B, TSP).

Routes a row to a column and opens everything; card geometry lives in the table. The driver
must not know about simulation or branch on the model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dendrolab.errors import ParameterError
from instruments.base import Instrument, ModelSpec, Query, Step, TspErrorQueue

Q = Query


@dataclass(frozen=True, kw_only=True)
class SwitchDialect:
    """Command templates; ``$channels`` is a channel list such as ``1A01`` or ``allslots``."""

    close: tuple[Step, ...]
    exclusive_close: tuple[Step, ...]  # open every other crosspoint and close the list, at once
    open: tuple[Step, ...]
    closed: tuple[Step, ...]
    reset: tuple[Step, ...]
    all_channels: str
    channel_name: str  # str.format template with slot, row, column
    none_reply: str  # what the closed-list query answers when nothing is closed
    settings: Mapping[str, str]


@dataclass(frozen=True, kw_only=True)
class SwitchSpec(ModelSpec):
    dialect: SwitchDialect
    slots: tuple[int, ...]
    rows: str
    columns: int


class SwitchMatrix(Instrument):
    """A row/column switch matrix; ``safe_state`` opens every crosspoint."""

    capability = "matrix"
    spec: SwitchSpec

    def crosspoint(self, row: str, column: int, slot: int = 1) -> str:
        """Channel name of a crosspoint, checked against the card geometry (e.g. ``1A01``)."""
        s = self.spec
        if slot not in s.slots:
            raise ParameterError(f"{self._where()}: slot {slot} not in {list(s.slots)}")
        if not isinstance(row, str) or len(row) != 1 or row.upper() not in s.rows:
            raise ParameterError(f"{self._where()}: row {row!r} not one of {s.rows}")
        if int(column) != column or not 1 <= column <= s.columns:
            raise ParameterError(f"{self._where()}: column {column} not in 1..{s.columns}")
        return s.dialect.channel_name.format(slot=slot, row=row.upper(), column=int(column))

    def route(self, row: str, column: int, *, slot: int = 1, exclusive: bool = False) -> None:
        """Close the crosspoint row x column (after opening all others if ``exclusive``)."""
        name = self.crosspoint(row, column, slot)
        if exclusive:
            self._run(self.spec.dialect.open, channels=self.spec.dialect.all_channels)
        self._run(self.spec.dialect.close, channels=name)
        self._after_config()

    def route_set(self, crosspoints: Sequence[tuple[str, int, int]]) -> None:
        """Exactly these crosspoints closed, every other open, in one command: ``(row, column,
        slot)`` each (an empty set opens all). For patterns such as a row of input bits."""
        names = [self.crosspoint(row, column, slot) for row, column, slot in crosspoints]
        if names:
            self._run(self.spec.dialect.exclusive_close, channels=",".join(names))
        else:
            self._run(self.spec.dialect.open, channels=self.spec.dialect.all_channels)
        self._after_config()

    def unroute(self, row: str, column: int, *, slot: int = 1) -> None:
        self._run(self.spec.dialect.open, channels=self.crosspoint(row, column, slot))
        self._after_config()

    def open_all(self) -> None:
        self._run(self.spec.dialect.open, channels=self.spec.dialect.all_channels)
        self._after_config()

    def closed_channels(self) -> list[str]:
        """Crosspoints the instrument reports closed, e.g. ``["1A01", "1B02"]``."""
        reply = self._run(self.spec.dialect.closed, channels=self.spec.dialect.all_channels)[0]
        if reply.strip().lower() in ("", self.spec.dialect.none_reply):
            return []
        return [p for p in re.split(r"[;,\s]+", reply.strip()) if p]

    def reset(self) -> None:
        """Instrument reset (opens all channels on the 707B)."""
        self._run(self.spec.dialect.reset)

    def safe_state(self) -> None:
        """Open every crosspoint; log and carry on if the connection is broken."""
        self._best_effort(
            "open all", self._run, self.spec.dialect.open, channels=self.spec.dialect.all_channels
        )

    def settings(self) -> dict[str, Any]:
        snapshot = super().settings()
        snapshot["instrument"] = self._query_settings(
            self.spec.dialect.settings, channels=self.spec.dialect.all_channels
        )
        return snapshot


# =============================================================================================
# Command tables.

K707B_DIALECT = SwitchDialect(
    close=('channel.close("$channels")',),
    exclusive_close=('channel.exclusiveclose("$channels")',),
    open=('channel.open("$channels")',),
    closed=(Q('print(channel.getclose("$channels"))'),),
    reset=("reset()",),
    all_channels="allslots",
    channel_name="{slot}{row}{column:02d}",
    none_reply="nil",
    settings={"closed": 'print(channel.getclose("$channels"))'},
)

# Geometry of the 7174A 8x12 matrix card; six slots in a 707B, one in a 708B (not in the notes).
K707B = SwitchSpec(
    name="Keithley 707B",
    idn_model=r"(?:MODEL\s+)?(?P<model>707B)",
    channels={1: ""},
    errors=TspErrorQueue(),
    dialect=K707B_DIALECT,
    slots=(1, 2, 3, 4, 5, 6),
    rows="ABCDEFGH",
    columns=12,
)
K708B = SwitchSpec(
    name="Keithley 708B",
    idn_model=r"(?:MODEL\s+)?(?P<model>708B)",
    channels={1: ""},
    errors=TspErrorQueue(),
    dialect=K707B_DIALECT,
    slots=(1,),
    rows="ABCDEFGH",
    columns=12,
)

SWITCH_MODELS: tuple[SwitchSpec, ...] = (K707B, K708B)

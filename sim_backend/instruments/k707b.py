"""Simulated Keithley 707B/708B switching matrix (TSP) with 7174A-style 8x12 cards.

Closing a crosspoint joins its row's instrument terminal to its column's device port(s) on the
bench. A column may carry a board trace joining several device pins (e.g. one word line shared by
the arrays of a layer): closing it then joins the row terminal to every pin of the trace.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from dendrolab.errors import ParameterError
from sim_backend.bench import Bench
from sim_backend.instruments.k2600 import _choice, idn_model
from sim_backend.instruments.options import check_options, model_idn
from sim_backend.tsp import TspError, TspInstrument, TspObject, TspRuntimeError, check_number

__all__ = ["Keithley707BSim"]

ROWS = "ABCDEFGH"
COLUMNS = 12
SLOTS = {"707B": 6, "708B": 1}
#: Relay settle time per switching operation (assumed: the notes and manual pages we could read
#: give none for the 7174A; a few ms is typical of its reed relays). Option ``settle_time_s``.
SETTLE_S = 3e-3
BREAK_BEFORE_MAKE, MAKE_BEFORE_BREAK, RULE_OFF = 1, 2, 0

_CHANNEL = re.compile(r"([1-9])([A-Ha-h])(\d\d)")
_TERMINAL = re.compile(r"[^/\s]+/[^/\s]+")

Crosspoint = tuple[int, str, int]  # slot, row, column
#: ``slot[N].idn`` of the simulated cards: model, description, firmware, serial (manual 7-168
#: format). Firmware and serial are placeholders; option ``card_idn`` replaces the string.
CARD_IDN = "7174,8x12 Low Current Matrix,01.00a,00000000"
PSEUDO_NONE = 0
#: Most channel lists a matrix remembers parsed (``_Channel._parse``).
PARSE_CACHE = 1024


def _name(cp: Crosspoint) -> str:
    return f"{cp[0]}{cp[1]}{cp[2]:02d}"


class _Channel(TspObject):
    """The ``channel`` object: close/open/exclusiveclose/getclose and the connect rule.

    Channel lists are strings of channels (``1A01``), rectangular ranges (``1A01:1C04``) and,
    where the manual allows them, ``slotN``/``allslots``, separated by commas or semicolons.
    Channel patterns are not modelled. Any bad item rejects the whole call (-286).
    """

    TSP_FIELDS = ("connectrule",)
    TSP_READONLY = ("BREAK_BEFORE_MAKE", "MAKE_BEFORE_BREAK", "OFF")
    TSP_METHODS = ("close", "open", "exclusiveclose", "getclose")
    BREAK_BEFORE_MAKE, MAKE_BEFORE_BREAK, OFF = BREAK_BEFORE_MAKE, MAKE_BEFORE_BREAK, RULE_OFF

    def __init__(self, matrix: Keithley707BSim) -> None:
        self._matrix = matrix
        self._rule = BREAK_BEFORE_MAKE
        self._parsed: dict[tuple[str, str, bool], tuple[Crosspoint, ...]] = {}

    @property
    def connectrule(self) -> int:
        return self._rule

    @connectrule.setter
    def connectrule(self, value: Any) -> None:
        self._rule = _choice(value, (RULE_OFF, BREAK_BEFORE_MAKE, MAKE_BEFORE_BREAK), "connectrule")

    # -- channel lists ------------------------------------------------------------------------
    def _parse(self, spec: Any, fname: str, scopes: bool) -> list[Crosspoint]:
        if type(spec) is not str:
            kind = "nil" if spec is None else "number" if type(spec) in (int, float) else "value"
            raise TspRuntimeError(f"bad argument #1 to '{fname}' (string expected, got {kind})")
        # A list's crosspoints depend on the text and the fixed slot count only: remembered
        # (a board steps through the same few lists); refused lists raise every time.
        key = (spec, fname, scopes)
        known = self._parsed.get(key)
        if known is None:
            known = tuple(self._parse_list(spec, fname, scopes))
            if len(self._parsed) >= PARSE_CACHE:
                self._parsed.clear()
            self._parsed[key] = known
        return list(known)

    def _parse_list(self, spec: str, fname: str, scopes: bool) -> list[Crosspoint]:
        items = [p.strip() for p in re.split(r"[,;]", spec)]
        if not any(items):
            raise TspRuntimeError(f"bad argument #1 to '{fname}' (empty channel list)")
        out: list[Crosspoint] = []
        for item in items:
            if not item:
                continue
            out.extend(self._item(item, fname, scopes))
        return out

    def _item(self, item: str, fname: str, scopes: bool) -> Iterable[Crosspoint]:
        slots = self._matrix.slots
        low = item.lower()
        if low == "allslots" or re.fullmatch(r"slot\d+", low):
            if not scopes:
                raise TspRuntimeError(f"bad argument #1 to '{fname}' ({item} is not allowed)")
            wanted = range(1, slots + 1) if low == "allslots" else (int(low[4:]),)
            if not all(1 <= s <= slots for s in wanted):
                raise TspRuntimeError(f"bad argument #1 to '{fname}' (no slot '{item}')")
            return [(s, r, c) for s in wanted for r in ROWS for c in range(1, COLUMNS + 1)]
        first, _, last = item.partition(":")
        a = self._channel(first.strip(), item, fname)
        b = self._channel(last.strip(), item, fname) if last else a
        if a[0] != b[0] or a[1] > b[1] or a[2] > b[2]:
            raise TspRuntimeError(f"bad argument #1 to '{fname}' (invalid range '{item}')")
        rows = ROWS[ROWS.index(a[1]) : ROWS.index(b[1]) + 1]
        return [(a[0], r, c) for r in rows for c in range(a[2], b[2] + 1)]

    def _channel(self, text: str, item: str, fname: str) -> Crosspoint:
        m = _CHANNEL.fullmatch(text)
        if m is None or not 1 <= int(m.group(3)) <= COLUMNS or int(m.group(1)) > self._matrix.slots:
            raise TspRuntimeError(f"bad argument #1 to '{fname}' (invalid channel '{item}')")
        return int(m.group(1)), m.group(2).upper(), int(m.group(3))

    # -- functions ----------------------------------------------------------------------------
    def close(self, spec: Any = None) -> None:
        """Close the listed crosspoints; nothing else opens (``slotN``/``allslots`` refused)."""
        self._matrix.switch(opening=(), closing=self._parse(spec, "close", scopes=False))

    def open(self, spec: Any = None) -> None:
        self._matrix.switch(opening=self._parse(spec, "open", scopes=True), closing=())

    def exclusiveclose(self, spec: Any = None) -> None:
        """Close exactly the listed crosspoints; ``""`` opens everything."""
        if type(spec) is str and not spec.strip():
            wanted: list[Crosspoint] = []
        else:
            wanted = self._parse(spec, "exclusiveclose", scopes=False)
        keep = set(wanted)
        others = [cp for cp in self._matrix.closed if cp not in keep]
        self._matrix.switch(opening=others, closing=wanted, rule=self._rule)

    def getclose(self, spec: Any = None) -> str | None:
        """Closed crosspoints within the list, sorted, ``;``-separated; nil if none."""
        scope = set(self._parse(spec, "getclose", scopes=True))
        found = sorted(cp for cp in self._matrix.closed if cp in scope)
        return ";".join(_name(cp) for cp in found) or None


class _Slot(TspObject):
    """``slot[N]``: ``idn`` (read-only) and ``pseudocard``.

    Every slot holds a card here, so ``pseudocard`` reads nil and writing it is refused, as the
    manual says for a slot with an installed card (707B reference manual, slot attributes).
    """

    TSP_FIELDS = ("pseudocard",)
    TSP_READONLY = ("idn",)

    def __init__(self, idn: str) -> None:
        self.idn = idn

    @property
    def pseudocard(self) -> None:
        return None

    @pseudocard.setter
    def pseudocard(self, value: Any) -> None:
        check_number(value, 1, "pseudocard")
        raise TspError(-221, "Settings conflict; a card is installed in this slot")


class _Slots(TspObject):
    """The ``slot`` table: ``slot[1]`` .. ``slot[N]`` and ``slot.PSEUDO_NONE``."""

    TSP_READONLY = ("PSEUDO_NONE",)
    PSEUDO_NONE = PSEUDO_NONE

    def __init__(self, count: int, idn: str) -> None:
        self._slots = [_Slot(idn) for _ in range(count)]

    def tsp_index(self, key: Any) -> Any:
        if type(key) is float and key.is_integer():
            key = int(key)
        if type(key) is int and 1 <= key <= len(self._slots):
            return self._slots[key - 1]
        return None


class Keithley707BSim(TspInstrument):
    """Keithley 707B (six slots) or 708B (one slot, from the ``idn`` model), 8x12 cards.

    Options: ``idn``, ``serial``, ``settle_time_s`` (relay settle per switching step, default
    3 ms), and the wiring of the cards, either for slot 1::

        rows: {A: "smu/1", B: "pulse/1"}        # row letter -> instrument terminal
        columns: {1: "d1", 2: "d2.top",         # column number -> device[.port], or
                  3: ["a1.g1", "a2.g1"]}        # a list: one trace joining several pins

    or per slot: ``slots: {1: {rows: {...}, columns: {...}}, 2: {...}}`` (not both forms).
    Closing ``1A01`` with row A and column 1 wired calls ``bench.close_route`` for the key
    ``<name>:1A01`` with one link per port of the column (all of a list close and open
    together, as one relay does); opening it calls ``bench.open_route``. Unwired rows/columns
    switch nothing.
    Settle time is added once per step that changes a relay (two steps for an exclusive close
    that opens and closes, unless ``channel.connectrule = channel.OFF``).
    """

    idn = "Keithley Instruments Inc., Model 707B, 04089762, 01.10h"
    OPTIONS: ClassVar[set[str]] = {
        "idn", "serial", "settle_time_s", "rows", "columns", "slots", "card_idn",
    }  # fmt: skip

    def __init__(self, bench: Bench, name: str, options: Mapping[str, Any] | None = None) -> None:
        who = f"{type(self).__name__} {name!r}"
        opts = check_options(options, self.OPTIONS, who)
        idn = model_idn(opts, type(self).idn, who)
        model = idn_model(idn).upper()
        if model not in SLOTS:
            raise ParameterError(f"{who}: model {model!r} in idn is not a 707B or 708B")
        self.slots = SLOTS[model]
        settle = _seconds(opts.get("settle_time_s", SETTLE_S))
        if settle is None:
            raise ParameterError(f"{who}: settle_time_s must be a number in [0, 1] s")
        super().__init__(idn)
        self.bench = bench
        self.name = name
        self.settle_s = settle
        self.rows, self.columns = self._wiring(opts, who)
        self._routes: dict[Crosspoint, tuple[str, tuple[tuple[str, str], ...]]] = {}
        self.closed: set[Crosspoint] = set()
        self.channel = _Channel(self)
        card = opts.get("card_idn", CARD_IDN)
        if not isinstance(card, str) or card.count(",") != 3:
            raise ParameterError(
                f"{who}: card_idn must be 'model,description,firmware,serial', got {card!r}"
            )
        self.slot = _Slots(self.slots, card)

    # -- wiring options -----------------------------------------------------------------------
    def _wiring(
        self, opts: Mapping[str, Any], who: str
    ) -> tuple[dict[tuple[int, str], str], dict[tuple[int, int], tuple[str, ...]]]:
        if "slots" in opts and ("rows" in opts or "columns" in opts):
            raise ParameterError(f"{who}: give rows/columns (slot 1) or slots, not both")
        per_slot = opts.get("slots")
        if per_slot is None:
            per_slot = {1: {k: opts[k] for k in ("rows", "columns") if k in opts}}
        if not isinstance(per_slot, Mapping):
            raise ParameterError(f"{who}: slots must be a mapping slot -> {{rows, columns}}")
        rows: dict[tuple[int, str], str] = {}
        columns: dict[tuple[int, int], tuple[str, ...]] = {}
        for key, spec in per_slot.items():
            slot = _int_key(key)
            if slot is None or not 1 <= slot <= self.slots:
                raise ParameterError(f"{who}: slot {key!r} not in 1..{self.slots}")
            where = f"{who} slot {slot}"
            spec = _mapping(spec, where)
            unknown = set(spec) - {"rows", "columns"}
            if unknown:
                raise ParameterError(f"{where}: unknown key(s) {sorted(map(str, unknown))}")
            for row, term in _mapping(spec.get("rows"), f"{where} rows").items():
                letter = str(row).upper()
                if len(letter) != 1 or letter not in ROWS:
                    raise ParameterError(f"{where}: row {row!r} not one of {ROWS}")
                if not isinstance(term, str) or not _TERMINAL.fullmatch(term):
                    raise ParameterError(
                        f"{where}: row {letter} -> {term!r} is not a terminal like 'smu/1'"
                    )
                rows[(slot, letter)] = term
            for col, port in _mapping(spec.get("columns"), f"{where} columns").items():
                number = _int_key(col)
                if number is None or not 1 <= number <= COLUMNS:
                    raise ParameterError(f"{where}: column {col!r} not in 1..{COLUMNS}")
                columns[(slot, number)] = self._check_ports(port, f"{where} column {number}")
        return rows, columns

    def _check_ports(self, value: Any, where: str) -> tuple[str, ...]:
        """One ``device[.port]`` or a non-empty list of distinct ones (a trace to several pins)."""
        ports = value if isinstance(value, list | tuple) else [value]
        if not ports:
            raise ParameterError(f"{where}: an empty list joins no port; give 'device[.port]' "
                                 "or a list of them")
        seen: set[tuple[str, str]] = set()
        for port in ports:
            if not isinstance(port, str):
                raise ParameterError(f"{where}: {port!r} is not 'device[.port]'")
            target = self.bench.check_port(port, where)  # device and port exist (array lines)
            if target in seen:
                raise ParameterError(f"{where}: port {port!r} is listed twice")
            seen.add(target)
        return tuple(ports)

    # -- switching ----------------------------------------------------------------------------
    def _links(self, cp: Crosspoint) -> list[tuple[str, str]]:
        term = self.rows.get((cp[0], cp[1]))
        ports = self.columns.get((cp[0], cp[2]))
        return [(term, port) for port in ports] if term is not None and ports else []

    def _exchange(self, opening: Iterable[Crosspoint], closing: Iterable[Crosspoint]
                  ) -> tuple[bool, bool]:
        """Open and close at one bench instant (one wiring change on the bench): the bench
        holds no state a relay passes through between the two, only the settle time counts."""
        out = [cp for cp in sorted(set(opening)) if cp in self.closed]
        into = [cp for cp in sorted(set(closing)) if cp not in self.closed]
        self.closed.difference_update(out)
        self.closed.update(into)
        routes = [self._route(cp) for cp in out]
        added = [self._route(cp) for cp in into]
        self.bench.switch_routes([name for name, links in routes if links],
                                 [(name, list(links)) for name, links in added if links])
        return bool(out), bool(into)

    def _route(self, cp: Crosspoint) -> tuple[str, tuple[tuple[str, str], ...]]:
        """The bench route of a crosspoint: its name and links (none: nothing wired), kept
        per crosspoint (the wiring is fixed when the matrix is made)."""
        route = self._routes.get(cp)
        if route is None:
            route = self._routes[cp] = (f"{self.name}:{_name(cp)}", tuple(self._links(cp)))
        return route

    def switch(
        self,
        opening: Iterable[Crosspoint],
        closing: Iterable[Crosspoint],
        rule: int = BREAK_BEFORE_MAKE,
    ) -> None:
        """Open and close the crosspoints, then wait a settle time for each of the two steps
        that moved a relay (one for RULE_OFF); which relays the bench joins first is not
        observable on it, so break-before-make and make-before-break differ only in timing."""
        moved = self._exchange(opening, closing)
        settles = sum(moved) if rule != RULE_OFF else int(any(moved))
        self.bench.advance(settles * self.settle_s)

    # -- TSP instrument hooks -----------------------------------------------------------------
    def tsp_namespace(self) -> dict[str, Any]:
        return {"channel": self.channel, "slot": self.slot}

    def reset(self) -> None:
        """``reset()`` / ``*RST``: all crosspoints open, connect rule back to break-before-make."""
        super().reset()
        self.switch(opening=list(self.closed), closing=())
        self.channel.connectrule = BREAK_BEFORE_MAKE

    def delay(self, seconds: float) -> None:
        self.bench.advance(seconds)


def _seconds(value: Any) -> float | None:
    """A time in [0, 1] s; numeric strings count (YAML reads ``3e-3`` as a string)."""
    if isinstance(value, bool):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if 0 <= seconds <= 1 else None


def _int_key(key: Any) -> int | None:
    if isinstance(key, bool):
        return None
    if isinstance(key, int):
        return key
    if isinstance(key, str) and key.strip().isdigit():
        return int(key)
    return None


def _mapping(value: Any, where: str) -> Mapping[Any, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ParameterError(f"{where}: must be a mapping")
    return value

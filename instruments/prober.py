"""Probe stations: one ``Prober`` over per-dialect command tables (MPI SENTIO, FormFactor Velox).

The wafer engine steps, contacts and separates through this vendor-neutral interface; the
dialects (command templates, reply framing, error codes, timeouts) live in the tables at the
bottom, so ``Prober`` never branches on the model. Safety policy (separate before every move, on
every error) belongs to the engine, not here. ``ManualProber`` is the same interface for a
station without remote control: it asks an operator to place the needles.

Sources (command syntax and reply framing, see ``research/wafer.md`` §1.1, §1.2):
MPI SENTIO remote commands as used by MPI's own ``sentio-prober-control`` package
(``Sentio/Response.py``, ``Sentio/Enumerations.py``, ``Sentio/ProberSentio.py``,
``CommandGroups/Wafermap*.py``) and MPI's Examples-Python; FormFactor Velox SCI commands as
documented by FormFactor's ``velox`` module and used over GPIB by NYC_eChar_GUI
``Drivers/ProbeStations.py`` and the PSI46 wafer tester (code 703 = end of wafer).
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from dendrolab.errors import DendrolabError, InstrumentError, ParameterError
from instruments.base import (
    CapabilityError,
    Instrument,
    ModelSpec,
    Query,
    Step,
    UserLimits,
    render,
)

log = logging.getLogger(__name__)

Q = Query

# Sanity bounds for die indices and subsites, checked before any I/O. They are not station
# limits (the notes give none): a 300 mm wafer of 0.1 mm dies still fits.
INDEX_MAX = 10_000
SITE_MAX = 9_999
BIN_MAX = 9_999


# ---------------------------------------------------------------------------------------------
# Errors.


class ProberError(InstrumentError):
    """The station answered a command with an error code (``code`` as on the wire)."""

    def __init__(self, message: str, *, code: int = -1, command: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.command = command


class ProberFramingError(InstrumentError):
    """A reply that does not follow the dialect's framing (garbled, truncated or out of step)."""


class ProberExecutionError(ProberError):
    """SENTIO error 2 (ExecutionError): the command failed on the station."""


class ContactHeightNotSetError(ProberError):
    """SENTIO error 23: no contact height is taught, so contact/separation cannot be used."""


class SteppingBelowSeparationError(ProberError):
    """SENTIO error 38 (SteppingWithWrongZPosition): a step was asked while below separation."""


class OperatorAbort(DendrolabError):
    """The operator of a manual probe station chose to abort."""


# ---------------------------------------------------------------------------------------------
# Positions and replies.


@dataclass(frozen=True)
class ProbePosition:
    """Where the needles are: die (column, row), subsite and chuck x/y/z in µm.

    Step methods fill x/y/z with NaN (the step reply does not carry them); ``where()`` reads
    every field back from the station. ``last_die``/``last_site``: this is the last die of the
    route / the last subsite of the die.
    """

    col: int
    row: int
    site: int | None
    x_um: float = math.nan
    y_um: float = math.nan
    z_um: float = math.nan
    last_die: bool = False
    last_site: bool = False


@dataclass(frozen=True)
class ProberReply:
    """One parsed reply: error ``code``, status flags (SENTIO), async ``cmd_id`` and fields."""

    code: int
    status: int
    cmd_id: int
    fields: tuple[str, ...]
    text: str


@dataclass(frozen=True)
class SentioFraming:
    """``<code>,<cmd_id>,<message>``: error in bits 0-9 of code, status flags from bit 10 up.

    Status bit 0 = last die (EndOfRoute), bit 1 = last subsite (``Sentio/Response.py``,
    ``StatusBits``). The message is itself comma-separated.
    """

    last_die_flag: int = 1
    last_site_flag: int = 2
    pattern: ClassVar[re.Pattern[str]] = re.compile(r"\s*(\d+)\s*,\s*(\d+)\s*,(.*)", re.S)

    def parse(self, reply: str) -> ProberReply | None:
        m = self.pattern.fullmatch(reply)
        if m is None:
            return None
        word, text = int(m.group(1)), m.group(3).strip()
        fields = tuple(p.strip() for p in text.split(",")) if text else ()
        return ProberReply(word & 1023, word >> 10, int(m.group(2)), fields, text)

    def describe(self) -> str:
        return "'<code>,<cmd_id>,<message>'"


@dataclass(frozen=True)
class VeloxFraming:
    """``<code>: <space-separated values>``; ``0:`` alone is success (GPIB / socket framing)."""

    last_die_flag: int = 0  # no status bits: the end of the wafer is error 703
    last_site_flag: int = 0
    pattern: ClassVar[re.Pattern[str]] = re.compile(r"\s*(-?\d+):(.*)", re.S)

    def parse(self, reply: str) -> ProberReply | None:
        m = self.pattern.fullmatch(reply)
        if m is None:
            return None
        text = m.group(2).strip()
        return ProberReply(int(m.group(1)), 0, 0, tuple(text.split()), text)

    def describe(self) -> str:
        return "'<code>: <values>'"


@dataclass(frozen=True)
class InlineErrors:
    """Probers report errors in each reply, not in a queue: there is nothing to drain."""

    def drain(self, ask: Any) -> list[Any]:
        return []


@dataclass(frozen=True)
class FlagCheck:
    """A precondition read from one reply field: ``kind`` ``flag`` (0/1) or ``height``
    (a taught height, ``-1`` = not set)."""

    command: Step
    field: int
    kind: str = "flag"


# ---------------------------------------------------------------------------------------------
# Dialect tables.


@dataclass(frozen=True, kw_only=True)
class ProberDialect:
    """Command templates of one prober family; ``None``: the family has no such command.

    Reply layouts name the payload fields of a reply (``None`` ignores a field). Names the
    driver uses: ``col row site last_site_index x_um y_um z_um cur_die dies_count``.
    Template fields: ``$path $restore $site $col $row $next_site $bin $cmd_id $timeout``.
    """

    name: str
    framing: SentioFraming | VeloxFraming
    remote_mode: tuple[Step, ...] | None
    local_mode: tuple[Step, ...] | None
    load_map: Step | None
    load_project: Step | None
    first: Step
    first_at_site: Step | None
    next: Step
    next_at_site: Step | None
    goto: Step
    next_subsite: Step
    step_layout: tuple[str | None, ...]
    subsite_layout: tuple[str | None, ...]
    contact: Step
    separate: Step
    z_layout: tuple[str | None, ...]
    where: tuple[Step, ...]
    where_layouts: tuple[tuple[str | None, ...], ...]
    bin: Step
    contact_set: FlagCheck | None
    home_set: FlagCheck | None
    version: Step | None
    background: Mapping[str, Step]  # name -> start_... command answering a cmd_id
    wait_complete: Step | None
    end_of_route_codes: frozenset[int]
    error_names: Mapping[int, str]
    error_classes: Mapping[int, type[ProberError]]
    path_forbidden: str  # characters a path may not contain (separators of the framing)
    timeouts_s: Mapping[str, float]  # step, z, map, background margin


@dataclass(frozen=True, kw_only=True)
class ProberSpec(ModelSpec):
    dialect: ProberDialect


# ---------------------------------------------------------------------------------------------


def _as_index(value: Any, name: str, low: int, high: int, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ParameterError(f"{where}: {name} must be an integer, got {value!r:.40}")
    if not low <= value <= high:
        raise ParameterError(f"{where}: {name}={value} is outside [{low}, {high}]")
    return value


def _int_field(text: str) -> int:
    number = float(text)
    if not number.is_integer():
        raise ValueError(text)
    return int(number)


class Prober(Instrument):
    """A remote-controlled probe station: step over the wafer map, contact, separate, read back.

    ``end_of_route`` is True once a step reply said this is the last die of the route (SENTIO
    status bit) or a step went past it (SENTIO error 11, Velox 703); ``next()`` then returns
    ``None`` instead of raising, since running out of dies is how every wafer ends.
    """

    capability = "prober"
    spec: ProberSpec

    def __init__(
        self,
        resource: Any,
        spec: ProberSpec,
        *,
        channel: int = 1,
        limits: UserLimits | None = None,
        auto_check_errors: bool = True,
    ) -> None:
        super().__init__(
            resource, spec, channel=channel, limits=limits, auto_check_errors=auto_check_errors
        )
        self.dialect = spec.dialect
        self.end_of_route = False
        self.last_reply: ProberReply | None = None
        self._position: ProbePosition | None = None
        self._last_site_index: int | None = None
        self._in_contact: bool | None = None

    # --- wire ------------------------------------------------------------------------------

    def _ask(
        self,
        step: Step,
        *,
        end_ok: bool = False,
        cmd_ids: frozenset[int] | None = frozenset({0}),
        **values: Any,
    ) -> ProberReply | None:
        """Send one command, parse its reply strictly, raise on error codes.

        Returns ``None`` (and sets ``end_of_route``) when ``end_ok`` and the code says the
        route is exhausted. ``cmd_ids``: the command ids the reply may carry (a synchronous
        command answers 0; anything else is an async reply out of step), ``None``: any.
        """
        mapping = {k: str(v) for k, v in values.items()}
        command = render(step, {**self._tokens(), **mapping})
        reply_text = self._query(command)
        reply = self.dialect.framing.parse(reply_text)
        if reply is None:
            raise ProberFramingError(
                f"{self._where()}: reply {reply_text[:80]!r} to {command[:60]!r} is not "
                f"{self.dialect.framing.describe()}"
            )
        if cmd_ids is not None and reply.cmd_id not in cmd_ids:
            raise ProberFramingError(
                f"{self._where()}: reply {reply_text[:80]!r} to {command[:60]!r} carries "
                f"command id {reply.cmd_id}, expected {sorted(cmd_ids)}: a reply out of step"
            )
        self.last_reply = reply
        if reply.code == 0:
            return reply
        if end_ok and reply.code in self.dialect.end_of_route_codes:
            self.end_of_route = True
            return None
        name = self.dialect.error_names.get(reply.code, "error")
        cls = self.dialect.error_classes.get(reply.code, ProberError)
        raise cls(
            f"{self._where()}: {command[:60]!r} failed with {self.dialect.name} error "
            f"{reply.code} ({name}): {reply.text[:120] or 'no message'}",
            code=reply.code,
            command=command,
        )

    def _fields(
        self, reply: ProberReply, layout: Sequence[str | None], command: str
    ) -> dict[str, str]:
        """Name the payload fields; fewer fields than the layout is a framing error."""
        wanted = [name for name in layout if name is not None]
        if len(reply.fields) < len(layout) and wanted:
            raise ProberFramingError(
                f"{self._where()}: reply {reply.text[:80]!r} to {command!r} has "
                f"{len(reply.fields)} field(s), expected {len(layout)} ({', '.join(wanted)})"
            )
        return {name: reply.fields[i] for i, name in enumerate(layout) if name is not None}

    def _numbers(self, named: Mapping[str, str], command: str) -> dict[str, float | int]:
        out: dict[str, float | int] = {}
        for name, text in named.items():
            try:
                out[name] = (
                    float(text) if name.endswith("_um") else _int_field(text)
                )
            except ValueError:
                raise ProberFramingError(
                    f"{self._where()}: field {name}={text[:30]!r} in the reply to {command!r} "
                    f"is not a number"
                ) from None
        return out

    def _require(self, step: Step | None, what: str) -> Step:
        if step is None:
            raise CapabilityError(f"{self.spec.name} has no remote command to {what}")
        return step

    # --- session ---------------------------------------------------------------------------

    def remote_mode(self) -> None:
        """Select the remote command set (SENTIO ``*RCS 1``; Velox needs nothing)."""
        if self.dialect.remote_mode:
            self._run(self.dialect.remote_mode)

    def local_mode(self) -> None:
        """Give the station's UI back to the operator (SENTIO ``*LOCAL``)."""
        if self.dialect.local_mode:
            self._run(self.dialect.local_mode)

    def version(self) -> str:
        """The station software's version text (SENTIO ``status:get_version``)."""
        step = self._require(self.dialect.version, "report its version")
        reply = self._ask(step)
        assert reply is not None
        return reply.text

    def _check_path(self, path: Any) -> str:
        text = os.fspath(path) if isinstance(path, os.PathLike) else path
        if not isinstance(text, str) or not text.strip():
            raise ParameterError(f"{self._where()}: expected a file path, got {path!r:.60}")
        bad = sorted({c for c in text if c in self.dialect.path_forbidden or ord(c) < 32})
        if bad:
            raise ParameterError(
                f"{self._where()}: path {text[:80]!r} contains {bad!r}, which the "
                f"{self.dialect.name} command syntax cannot carry; rename or move the file"
            )
        return text

    def load_map(self, path: str) -> None:
        """Load a wafer-map file on the station (SENTIO ``map:open``, Velox ``OpenWaferMap``).

        The path is the station PC's path; the file format is the station's own.
        """
        step = self._require(self.dialect.load_map, "load a wafer map")
        text = self._check_path(path)
        with self._timeout_for(self.dialect.timeouts_s["map"]):
            self._ask(step, path=text)
        self._reset_route()

    def load_project(self, path: str, *, restore_heights: bool = True) -> None:
        """Open a station project (map, heights, home): SENTIO ``open_project``."""
        step = self._require(self.dialect.load_project, "open a project")
        text = self._check_path(path)
        with self._timeout_for(self.dialect.timeouts_s["map"]):
            self._ask(step, path=text, restore=str(bool(restore_heights)))
        self._reset_route()

    def _reset_route(self) -> None:
        self.end_of_route = False
        self._position = None
        self._last_site_index = None

    # --- stepping --------------------------------------------------------------------------

    def _step(self, step: Step, layout: Sequence[str | None], *, route: bool, end_ok: bool = False,
              **values: Any) -> ProbePosition | None:
        """One stepping command; ``route``: a die step, whose reply says where the route is."""
        with self._timeout_for(self.dialect.timeouts_s["step"]):
            reply = self._ask(step, end_ok=end_ok, **values)
        if reply is None:
            return None
        pos = self._position_from(reply, layout, str(step))
        if route:
            self.end_of_route = pos.last_die
        return pos

    def _position_from(
        self, reply: ProberReply, layout: Sequence[str | None], command: str
    ) -> ProbePosition:
        values = self._numbers(self._fields(reply, layout, command), command)
        framing = self.dialect.framing
        if "last_site_index" in values:
            self._last_site_index = int(values["last_site_index"])
        old = self._position
        col = int(values.get("col", old.col if old else 0))
        row = int(values.get("row", old.row if old else 0))
        same_die = old is not None and (old.col, old.row) == (col, row)
        last_die = bool(framing.last_die_flag and reply.status & framing.last_die_flag) or bool(
            "col" not in values and same_die and old is not None and old.last_die
        )
        site = values.get("site", old.site if old else None)
        site = None if site is None else int(site)
        if framing.last_site_flag:
            last_site = bool(reply.status & framing.last_site_flag)
        else:
            last_site = self._last_site_index is not None and site == self._last_site_index
        self._position = ProbePosition(col, row, site, last_die=last_die, last_site=last_site)
        return self._position

    def first(self, site: int | None = None) -> ProbePosition:
        """Step to the first die of the route (optionally at a given subsite)."""
        if site is None:
            pos = self._step(self.dialect.first, self.dialect.step_layout, route=True)
        else:
            site = _as_index(site, "site", 0, SITE_MAX, self._where())
            step = self._require(self.dialect.first_at_site, "step to the first die at a site")
            pos = self._step(step, self.dialect.step_layout, route=True, site=site)
        assert pos is not None
        return pos

    def next(self, site: int | None = None) -> ProbePosition | None:
        """Step to the next die of the route; ``None`` (``end_of_route``) past the last one.

        Without ``site`` the subsite is the family's choice (SENTIO keeps the current one);
        with it, the step lands on that subsite (SENTIO only).
        """
        if site is None:
            return self._step(self.dialect.next, self.dialect.step_layout, route=True,
                              end_ok=True)
        site = _as_index(site, "site", 0, SITE_MAX, self._where())
        step = self._require(self.dialect.next_at_site, "step to the next die at a site")
        return self._step(step, self.dialect.step_layout, route=True, end_ok=True, site=site)

    def goto(self, col: int, row: int, site: int | None = None) -> ProbePosition:
        """Step to die (col, row) at subsite ``site`` (0-based; ``None`` = subsite 0)."""
        where = self._where()
        col = _as_index(col, "col", -INDEX_MAX, INDEX_MAX, where)
        row = _as_index(row, "row", -INDEX_MAX, INDEX_MAX, where)
        site = 0 if site is None else _as_index(site, "site", 0, SITE_MAX, where)
        pos = self._step(self.dialect.goto, self.dialect.step_layout, route=True,
                         col=col, row=row, site=site)
        assert pos is not None
        return pos

    def next_subsite(self) -> ProbePosition:
        """Step to the next subsite of the current die (``last_site`` marks the last one)."""
        step = self.dialect.next_subsite
        values: dict[str, Any] = {}
        if "next_site" in step:  # the family needs the target subsite spelled out
            if self._position is None or self._position.site is None:
                self.where()
            pos = self._position
            assert pos is not None
            if pos.site is None:
                raise InstrumentError(f"{self._where()}: the station reports no current subsite")
            if self._last_site_index is not None and pos.site >= self._last_site_index:
                raise ParameterError(
                    f"{self._where()}: already on the last subsite ({pos.site}) of die "
                    f"({pos.col}, {pos.row}); step to the next die instead"
                )
            values["next_site"] = pos.site + 1
        result = self._step(step, self.dialect.subsite_layout, route=False, **values)
        assert result is not None
        return result

    # --- z ---------------------------------------------------------------------------------

    def _move_z(self, step: Step) -> float:
        with self._timeout_for(self.dialect.timeouts_s["z"]):
            reply = self._ask(step)
        assert reply is not None
        values = self._numbers(self._fields(reply, self.dialect.z_layout, str(step)), str(step))
        return float(values.get("z_um", math.nan))

    def contact(self) -> float:
        """Move the chuck up to contact height; returns the new z in µm (NaN if not reported)."""
        z = self._move_z(self.dialect.contact)
        self._in_contact = True
        return z

    def separate(self) -> float:
        """Move the chuck down to separation height; returns the new z in µm (NaN if not
        reported)."""
        z = self._move_z(self.dialect.separate)
        self._in_contact = False
        return z

    # --- read back -------------------------------------------------------------------------

    def where(self) -> ProbePosition:
        """Read die, subsite and chuck x/y/z back from the station."""
        named: dict[str, float | int] = {}
        for step, layout in zip(self.dialect.where, self.dialect.where_layouts, strict=True):
            reply = self._ask(step)
            assert reply is not None
            named.update(self._numbers(self._fields(reply, layout, str(step)), str(step)))
        if "last_site_index" in named:
            self._last_site_index = int(named["last_site_index"])
        old = self._position
        site = int(named["site"]) if "site" in named else None
        if "cur_die" in named and "dies_count" in named:
            last_die = int(named["dies_count"]) > 0 and named["cur_die"] == named["dies_count"]
        else:
            last_die = bool(old and old.last_die and (old.col, old.row) == (
                named.get("col"), named.get("row")))
        if self._last_site_index is not None and site is not None:
            last_site = site == self._last_site_index
        else:
            last_site = bool(old and old.last_site and old.site == site)
        self._position = ProbePosition(
            col=int(named["col"]),
            row=int(named["row"]),
            site=site,
            x_um=float(named.get("x_um", math.nan)),
            y_um=float(named.get("y_um", math.nan)),
            z_um=float(named.get("z_um", math.nan)),
            last_die=last_die,
            last_site=last_site,
        )
        return self._position

    def bin(self, code: int) -> None:
        """Give the current die (SENTIO: die and subsite) a bin code on the station's map."""
        code = _as_index(code, "bin", 0, BIN_MAX, self._where())
        values: dict[str, Any] = {"bin": code}
        if "$col" in self.dialect.bin or "$site" in self.dialect.bin:
            pos = self._position if self._position is not None else self.where()
            values.update(col=pos.col, row=pos.row, site=0 if pos.site is None else pos.site)
        self._ask(self.dialect.bin, **values)

    def _check_flag(self, check: FlagCheck | None, what: str) -> bool:
        if check is None:
            raise CapabilityError(f"{self.spec.name} has no remote command to tell {what}")
        reply = self._ask(check.command)
        assert reply is not None
        if len(reply.fields) <= check.field:
            raise ProberFramingError(
                f"{self._where()}: reply {reply.text[:80]!r} to {check.command!r} has no "
                f"field {check.field + 1}"
            )
        text = reply.fields[check.field]
        try:
            value = float(text)
        except ValueError:
            raise ProberFramingError(
                f"{self._where()}: field {text[:30]!r} of the reply to {check.command!r} is "
                f"not a number"
            ) from None
        return value != -1 if check.kind == "height" else value != 0

    def is_contact_set(self) -> bool:
        """Whether a contact height is taught (needed before contact/separate and stepping)."""
        return self._check_flag(self.dialect.contact_set, "whether a contact height is set")

    def has_home(self) -> bool:
        """Whether a home position is set (SENTIO ``get_chuck_site_status``)."""
        return self._check_flag(self.dialect.home_set, "whether a home position is set")

    # --- background commands ---------------------------------------------------------------

    def start(self, name: str) -> int:
        """Start a documented background command (SENTIO ``start_...``); returns its cmd_id.

        Every started command must be collected with ``wait_complete`` (SENTIO keeps the
        responses otherwise).
        """
        if name not in self.dialect.background:
            raise CapabilityError(
                f"{self.spec.name}: no background command {name!r}; "
                f"available: {sorted(self.dialect.background) or 'none'}"
            )
        reply = self._ask(self.dialect.background[name], cmd_ids=None)
        assert reply is not None
        if reply.cmd_id <= 0:
            raise ProberFramingError(
                f"{self._where()}: background command {name!r} answered without a command id "
                f"({reply.text[:60]!r})"
            )
        return reply.cmd_id

    def wait_complete(self, cmd_id: int, timeout_s: float = 90.0) -> str:
        """Wait (on the station) for a background command; returns its message."""
        step = self._require(self.dialect.wait_complete, "wait for a background command")
        cmd_id = _as_index(cmd_id, "cmd_id", 1, 2**31 - 1, self._where())
        if isinstance(timeout_s, bool) or not (
            isinstance(timeout_s, (int, float)) and math.isfinite(timeout_s)
            and 0 < timeout_s <= 86_400
        ):
            raise ParameterError(f"{self._where()}: timeout_s must be in (0, 86400] s")
        seconds = math.ceil(timeout_s)
        with self._timeout_for(seconds + self.dialect.timeouts_s["background"]):
            reply = self._ask(step, cmd_ids=frozenset({0, cmd_id}), cmd_id=cmd_id,
                              timeout=seconds)
        assert reply is not None
        return reply.text

    # --- safety and snapshots --------------------------------------------------------------

    def _proves_in_step(self) -> bool:
        """``resync``'s check by ``*IDN?`` alone: the stations document no ``*OPC?`` (SENTIO's
        star commands are ``*IDN?``, ``*RCS``, ``*LOCAL``), so asking it would only time out. A
        stale prober reply (``0,0,...`` or ``0: ...``) is never an identity, so one ``*IDN?``
        after a clear or drain proves the session is in step."""
        return self._answers_identity(self._query("*IDN?"))

    def safe_state(self) -> None:
        """Separate the chuck from the needles; log and carry on if that fails."""
        if self._best_effort("separate", self.separate) is None:
            self._in_contact = None

    def settings(self) -> dict[str, Any]:
        snapshot = super().settings()
        snapshot["dialect"] = self.dialect.name
        snapshot["end_of_route"] = self.end_of_route
        try:
            snapshot["position"] = asdict(self.where())
        except InstrumentError as exc:
            snapshot["position"] = None
            snapshot["position_error"] = str(exc)[:200]
        return snapshot


# ---------------------------------------------------------------------------------------------
# Manual probing.


def _default_prompt(text: str) -> str:
    try:
        import click
    except ImportError:  # pragma: no cover - click ships with the CLI
        return input(text + " ")
    return str(click.prompt(text, default="", show_default=False))


@dataclass
class ManualProber:
    """The ``Prober`` interface for a station without remote control.

    The operator places the needles on each device of ``devices`` ((col, row) or
    (col, row, site) tuples) in turn and confirms (Enter / ``y``), skips (``s``; recorded in
    ``skipped``) or aborts (``a``/``q``: ``OperatorAbort``). ``where()`` returns what was
    confirmed; x/y/z are unknown (NaN). No VISA resource is involved.
    """

    devices: Sequence[Sequence[int]]
    prompt: Callable[[str], str] = _default_prompt
    capability: ClassVar[str] = "prober"
    skipped: list[tuple[int, int, int | None]] = field(default_factory=list)
    bins: dict[tuple[int, int, int | None], int] = field(default_factory=dict)
    end_of_route: bool = False
    identity: None = None
    _spots: list[tuple[int, int, int | None]] = field(default_factory=list, repr=False)
    _index: int = -1
    _position: ProbePosition | None = None
    _in_contact: bool = False

    def __post_init__(self) -> None:
        spots = []
        for k, dev in enumerate(self.devices):
            where = f"manual prober: device {k + 1}"
            if isinstance(dev, (str, bytes)) or not isinstance(dev, Sequence) or not (
                    2 <= len(dev) <= 3):
                raise ParameterError(f"{where}: expected (col, row) or (col, row, site), "
                                     f"got {dev!r:.60}")
            col = _as_index(dev[0], "col", -INDEX_MAX, INDEX_MAX, where)
            row = _as_index(dev[1], "row", -INDEX_MAX, INDEX_MAX, where)
            site = _as_index(dev[2], "site", 0, SITE_MAX, where) if len(dev) == 3 else None
            spots.append((col, row, site))
        if not spots:
            raise ParameterError("manual prober: the device list is empty")
        self._spots = spots

    address = "manual"

    # The session calls of the remote interface are no-ops here.
    def remote_mode(self) -> None:
        """Nothing to select: the operator is the remote interface."""

    def local_mode(self) -> None:
        """Nothing to give back."""

    def load_map(self, path: str) -> None:
        raise CapabilityError("manual prober: there is no station map; give the device list")

    def _ask_operator(self, spot: tuple[int, int, int | None]) -> bool:
        """Prompt until the operator confirms (True), skips (False) or aborts (raises)."""
        col, row, site = spot
        label = f"die ({col}, {row})" + ("" if site is None else f" site {site}")
        n = self._spots.index(spot) + 1 if spot in self._spots else 0
        text = (f"[{n}/{len(self._spots)}] place the needles on {label}; "
                f"Enter = in contact, s = skip, a = abort")
        while True:
            answer = str(self.prompt(text)).strip().lower()
            if answer in ("", "y", "yes", "ok", "c"):
                return True
            if answer in ("s", "skip"):
                self.skipped.append(spot)
                return False
            if answer in ("a", "abort", "q", "quit"):
                raise OperatorAbort(f"operator aborted at {label}")
            text = f"please answer Enter (in contact), s (skip) or a (abort) for {label}"

    def _confirm(self, spot: tuple[int, int, int | None]) -> ProbePosition:
        last = self._index == len(self._spots) - 1
        self._position = ProbePosition(spot[0], spot[1], spot[2], last_die=last, last_site=True)
        self._in_contact = True
        self.end_of_route = last
        return self._position

    def _advance(self) -> ProbePosition | None:
        while self._index + 1 < len(self._spots):
            self._index += 1
            spot = self._spots[self._index]
            if self._ask_operator(spot):
                return self._confirm(spot)
        self.end_of_route = True
        self._in_contact = False
        return None

    def first(self, site: int | None = None) -> ProbePosition | None:
        """Prompt for the first device (``None`` if the operator skipped every one)."""
        self._index = -1
        self.end_of_route = False
        return self._advance()

    def next(self) -> ProbePosition | None:
        """Prompt for the next device; ``None`` (``end_of_route``) after the last one."""
        return self._advance()

    def next_subsite(self) -> ProbePosition | None:
        """Devices are a flat list: the next subsite is the next device."""
        return self._advance()

    def goto(self, col: int, row: int, site: int | None = None) -> ProbePosition | None:
        """Prompt for one given device (it need not be in the list); ``None`` if skipped."""
        where = "manual prober"
        spot = (_as_index(col, "col", -INDEX_MAX, INDEX_MAX, where),
                _as_index(row, "row", -INDEX_MAX, INDEX_MAX, where),
                None if site is None else _as_index(site, "site", 0, SITE_MAX, where))
        if spot in self._spots:
            self._index = self._spots.index(spot)
        if not self._ask_operator(spot):
            return None
        return self._confirm(spot)

    def contact(self) -> float:
        """The operator confirmed contact when placing the needles."""
        self._in_contact = True
        return math.nan

    def separate(self) -> float:
        """Recorded only: the next placement prompt tells the operator to move."""
        self._in_contact = False
        return math.nan

    def where(self) -> ProbePosition:
        if self._position is None:
            raise InstrumentError("manual prober: no device has been confirmed yet")
        return self._position

    def bin(self, code: int) -> None:
        code = _as_index(code, "bin", 0, BIN_MAX, "manual prober")
        pos = self.where()
        self.bins[(pos.col, pos.row, pos.site)] = code

    def is_contact_set(self) -> bool:
        return True

    def safe_state(self) -> None:
        """Never prompts (it runs during teardown): logs a reminder instead."""
        if self._in_contact:
            log.warning("manual prober: lift the needles from the device")
        self._in_contact = False

    def check_errors(self) -> None:
        """No instrument, no error queue."""

    def resync(self) -> bool:
        """No session to bring back in step."""
        return True

    def settings(self) -> dict[str, Any]:
        return {
            "capability": self.capability,
            "model": "manual",
            "address": self.address,
            "dialect": "manual",
            "end_of_route": self.end_of_route,
            "position": asdict(self._position) if self._position else None,
            "devices": len(self._spots),
            "skipped": [list(s) for s in self.skipped],
        }

    def __enter__(self) -> ManualProber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.safe_state()


# =============================================================================================
# Command tables.

# SENTIO RemoteCommandError names (Enumerations.py), for messages.
SENTIO_ERRORS: Mapping[int, str] = {
    1: "internal error",
    2: "ExecutionError",
    3: "CommandHandlerNotFound",
    6: "InvalidParameter",
    7: "InvalidNumberOfParameters",
    8: "ArgumentOutOfBounds",
    9: "FileNotFound",
    11: "EndOfRoute: stepped past the last die",
    12: "InvalidOperation",
    13: "NotSupported",
    14: "SubsiteNotRoutable",
    15: "ProjectRequired",
    18: "HomePositionNotSet",
    19: "Timeout",
    23: "ContactHeightNotSet",
    30: "CommandPending",
    31: "async command aborted",
    32: "unknown async command id",
    38: "SteppingWithWrongZPosition: stepping while below separation",
}

SENTIO_DIALECT = ProberDialect(
    name="SENTIO",
    framing=SentioFraming(),
    remote_mode=("*RCS 1",),  # no reply
    local_mode=("*LOCAL",),  # no reply
    load_map=Q("map:open $path"),
    load_project=Q("open_project $path, $restore"),
    first=Q("map:step_first_die"),
    first_at_site=Q("map:step_first_die $site"),
    next=Q("map:step_next_die"),  # keeps the current subsite
    next_at_site=Q("map:step_next_die $site"),
    goto=Q("map:step_die $col, $row, $site"),
    next_subsite=Q("map:subsite:step_next"),
    step_layout=("col", "row", "site"),
    subsite_layout=("col", "row", "site"),
    contact=Q("move_chuck_contact"),
    separate=Q("move_chuck_separation"),
    z_layout=("z_um",),
    where=(
        Q("map:die:get_current_index"),
        Q("map:die:get_current_subsite"),
        Q("get_chuck_xy Wafer, Z"),
        Q("get_chuck_z Z"),
    ),
    where_layouts=(("route_index", "col", "row"), ("site",), ("x_um", "y_um"), ("z_um",)),
    bin=Q("map:bins:set_bin $bin, $col, $row, $site"),
    contact_set=FlagCheck(Q("get_chuck_site_status Wafer"), 1),  # hasHome,hasContact,...
    home_set=FlagCheck(Q("get_chuck_site_status Wafer"), 0),
    version=Q("status:get_version"),
    background={"initialization": Q("start_initialization")},
    wait_complete=Q("wait_complete $cmd_id, $timeout"),
    end_of_route_codes=frozenset({11}),
    error_names=SENTIO_ERRORS,
    error_classes={
        2: ProberExecutionError,
        23: ContactHeightNotSetError,
        38: SteppingBelowSeparationError,
    },
    path_forbidden=",",  # parameters are comma-separated
    # Not in the notes for SENTIO: a z move gets Velox's 60 s; a step (no soak time in
    # SENTIO's stepping) ten times that; loading a project or map two minutes.
    timeouts_s={"step": 600.0, "z": 60.0, "map": 120.0, "background": 30.0},
)

VELOX_ERRORS: Mapping[int, str] = {703: "end of wafer"}

VELOX_DIALECT = ProberDialect(
    name="Velox",
    framing=VeloxFraming(),
    remote_mode=None,  # GPIB / socket commands are accepted as they come
    local_mode=None,
    load_map=Q("OpenWaferMap $path"),
    load_project=None,
    first=Q("StepFirstDie"),  # defaults ClearBins=1 RecalcRoute=1
    first_at_site=None,
    next=Q("StepNextDie"),  # no parameters: next die in the route
    next_at_site=None,
    goto=Q("StepNextDie $col $row $site"),
    next_subsite=Q("StepNextSubDie $next_site"),  # 0-based subdie
    step_layout=("col", "row", "site", "last_site_index"),
    subsite_layout=("site", "last_site_index"),
    contact=Q("MoveChuckContact"),  # default velocity 100 %
    separate=Q("MoveChuckSeparation"),
    z_layout=(),  # "0:" alone
    where=(Q("ReadMapPosition2"), Q("ReadChuckPosition Y Z")),
    where_layouts=(
        ("col", "row", None, None, "site", "last_site_index", "cur_die", "dies_count"),
        ("x_um", "y_um", "z_um"),
    ),
    bin=Q("BinMapDie $bin"),
    contact_set=FlagCheck(Q("ReadChuckHeights Y"), 0, "height"),  # Contact -1 = not set
    home_set=None,
    version=None,
    background={},
    wait_complete=None,
    end_of_route_codes=frozenset({703}),
    error_names=VELOX_ERRORS,
    error_classes={},
    path_forbidden=" ",  # parameters are space-separated
    # Velox's own: 60 s for a z move, up to 6000 s for StepNextDie (includes soak time).
    timeouts_s={"step": 6000.0, "z": 60.0, "map": 120.0, "background": 30.0},
)

# *IDN? of SENTIO (docstring of sentio_prober_control/__init__.py):
# "MPI Corporation,Sentio - Probe System Software Suite,0,23.2.99.0" -> model "SENTIO".
SENTIO = ProberSpec(
    name="MPI SENTIO",
    idn_model=r"(?P<model>Sentio)\b.*",
    errors=InlineErrors(),  # type: ignore[arg-type]
    dialect=SENTIO_DIALECT,
)

# The notes give no Velox *IDN? string; any model field naming Velox matches -> "VELOX".
VELOX = ProberSpec(
    name="FormFactor Velox",
    idn_model=r"(?:.*\W)?(?P<model>Velox)(?:\W.*)?",
    errors=InlineErrors(),  # type: ignore[arg-type]
    dialect=VELOX_DIALECT,
)

PROBER_MODELS: tuple[ProberSpec, ...] = (SENTIO, VELOX)

__all__ = [
    "PROBER_MODELS",
    "SENTIO",
    "VELOX",
    "ContactHeightNotSetError",
    "ManualProber",
    "OperatorAbort",
    "ProbePosition",
    "Prober",
    "ProberDialect",
    "ProberError",
    "ProberExecutionError",
    "ProberFramingError",
    "ProberReply",
    "ProberSpec",
    "SteppingBelowSeparationError",
]

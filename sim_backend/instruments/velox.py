"""Simulated FormFactor Velox probe station (also SUSS ProberBench), GPIB / socket framing.

Why: the second prober dialect of the wafer loop, testable without a station. Commands are
Velox SCI commands with space-separated parameters; each gets one ``<code>: <values>`` reply
(``0:`` alone on success without values), as FormFactor's ``velox`` module documents them and
raw-GPIB drivers (NYC_eChar_GUI ``Drivers/ProbeStations.py``, SiLab basil ``SussProber``) read
them; shared/research/wafer.md §1.2. Code 703 is the end of the wafer after a step (the PSI46
wafer tester checks it after ``BinStepDie``).

Velox steps move the chuck to separation and back to the z it had (the station does the z
moves itself), so stepping in contact is allowed here, unlike SENTIO. Error codes other than
703 are not in any public source we could read; ``E_UNKNOWN`` and ``E_NO_CONTACT`` are this
simulator's choices (a driver should treat every non-zero code as a failure with its text).
Subdies are 0-based (``ReadMapPosition2``); ``ReadMapPosition`` (1-based) is not modelled.
"""

from __future__ import annotations

from typing import Any, ClassVar

from dendrolab.errors import ParameterError
from sim_backend.instruments.sentio import (
    E_BOUNDS,
    E_CONTACT_NOT_SET,
    ProberCore,
    ProberError,
    load_map,
)

__all__ = ["VeloxSim"]

#: End of wafer (documented). The others are this simulator's (see the module docstring).
E_END_OF_WAFER = 703
E_UNKNOWN = 1
E_BAD_PARAM = 2
E_NO_CONTACT = 23   # "no contact height set" (assumed)
E_OUT_OF_RANGE = 8
E_NO_DIE = 2       # no current die (assumed)
E_FILE = 9


def _fmt(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:.3f}".rstrip("0")


class VeloxSim(ProberCore):
    """FormFactor Velox SCI commands over GPIB or the station socket."""

    # -- framing -----------------------------------------------------------------------------
    def handle(self, message: bytes | str) -> bytes | None:
        text = (message.decode("latin-1") if isinstance(message, (bytes, bytearray))
                else str(message)).strip()
        if not text:
            return None
        if text.upper() == "*IDN?":
            return f"{self.idn}\n".encode()
        head, *args = text.split()
        handler = self._COMMANDS.get(head.lower())
        try:
            if handler is None:
                raise ProberError(E_UNKNOWN, f"Unknown command {head}")
            values = handler(self, args)
        except ProberError as exc:
            code = {E_CONTACT_NOT_SET: E_NO_CONTACT, E_BOUNDS: E_OUT_OF_RANGE}.get(
                exc.code, exc.code)
            return f"{code}: {exc.text}\n".encode()
        return (f"0: {values}\n" if values else "0:\n").encode()

    # -- helpers -----------------------------------------------------------------------------
    @staticmethod
    def _int(text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise ProberError(E_BAD_PARAM, f"Invalid parameter {text!r}") from None

    def _nargs(self, args: list[str], lo: int, hi: int) -> None:
        if not lo <= len(args) <= hi:
            raise ProberError(E_BAD_PARAM, f"Wrong number of parameters ({len(args)})")

    def _reply(self) -> str:
        col, row = self.col_row()
        return f"{col} {row} {self.site} {len(self.sites) - 1}"

    def _go(self, index: int, site: int) -> str:
        self.move_to(index, site, in_contact_ok=True)
        return self._reply()

    # -- map ---------------------------------------------------------------------------------
    def _open_map(self, args: list[str]) -> str:
        self._nargs(args, 1, 1)
        path = self._resolve(args[0].strip('"'))
        try:
            self.route, self.sites = load_map(path, self.wafer)
        except FileNotFoundError:
            raise ProberError(E_FILE, f"File not found {args[0]}") from None
        except ParameterError as exc:
            raise ProberError(E_BAD_PARAM, str(exc)) from None
        self.map_path, self.index, self.site, self.bins = path, None, 0, {}
        return ""

    def _first(self, args: list[str]) -> str:
        self._nargs(args, 0, 2)
        if not args or args[0] != "0":
            self.bins = {}
        return self._go(0, 0)

    def _next_index(self) -> int:
        nxt = 0 if self.index is None else self.index + 1
        if nxt >= len(self.route):
            raise ProberError(E_END_OF_WAFER, "End of wafer")
        return nxt

    def _next(self, args: list[str]) -> str:
        if not args:
            return self._go(self._next_index(), 0)
        self._nargs(args, 3, 3)
        col, row, site = (self._int(a) for a in args)
        index = self.find_die(col, row)
        return self._go(index, 0 if site == -1 else self.check_site(site))

    def _step_to_die(self, args: list[str]) -> str:
        self._nargs(args, 1, 2)
        number = self._int(args[0])
        if not 1 <= number <= len(self.route):
            raise ProberError(E_OUT_OF_RANGE, f"Die number {number} out of range")
        site = self.check_site(self._int(args[1])) if len(args) > 1 else 0
        return self._go(number - 1, site)

    def _bin(self, code: int) -> None:
        if self.index is not None:
            col, row = self.col_row()
            self.bins[(col, row, self.site)] = code

    def _bin_step(self, args: list[str]) -> str:
        if len(args) not in (1, 4):
            raise ProberError(E_BAD_PARAM, f"Wrong number of parameters ({len(args)})")
        self._bin(self._int(args[0]))
        if len(args) == 4:
            return self._next(args[1:])
        return self._go(self._next_index(), self.site)

    def _bin_map(self, args: list[str]) -> str:
        self._nargs(args, 1, 1)
        self.die_id()
        self._bin(self._int(args[0]))
        col, row = self.col_row()
        return f"{col} {row}"

    def _sub_die(self, args: list[str]) -> str:
        self._nargs(args, 0, 1)
        self.die_id()
        if args:
            site = self.check_site(self._int(args[0]))
        else:
            if self.last_site():
                raise ProberError(E_END_OF_WAFER, "End of wafer")
            site = self.site + 1
        self.move_to(self.index, site, in_contact_ok=True)   # type: ignore[arg-type]
        return f"{self.site} {len(self.sites) - 1}"

    def _num_selected(self, args: list[str]) -> str:
        return str(len(self.route))

    def _selected_coords(self, args: list[str]) -> str:
        self._nargs(args, 1, 1)
        i = self._int(args[0])
        if not 1 <= i <= len(self.route):
            raise ProberError(E_OUT_OF_RANGE, f"Die index {i} out of range")
        col, row = self.col_row(i - 1)
        return f"{col} {row}"

    def _map_position(self, args: list[str]) -> str:
        self._nargs(args, 0, 2)
        if self.index is None:
            raise ProberError(E_NO_DIE, "No die selected")
        col, row = self.col_row()
        x, y = self.xy_um()
        hx, hy = self.home_um()
        return (f"{col} {row} {_fmt(x - hx)} {_fmt(y - hy)} {self.site} {len(self.sites) - 1} "
                f"{self.index + 1} {len(self.route)} 0 0")

    # -- chuck -------------------------------------------------------------------------------
    def _contact(self, args: list[str]) -> str:
        self._nargs(args, 0, 1)
        self.contact()
        return ""

    def _separation(self, args: list[str]) -> str:
        self._nargs(args, 0, 1)
        self.separate()
        return ""

    def _chuck_position(self, args: list[str]) -> str:
        self._nargs(args, 0, 3)
        x, y = self.xy_um()
        return f"{_fmt(x)} {_fmt(y)} {_fmt(self.z_um())}"

    def _heights(self, args: list[str]) -> str:
        if self.contact_um is None:
            return "-1 0 0 0 0"
        return f"{_fmt(self.contact_um)} 0 0 {_fmt(self.gap_um)} 0"

    def _prober_status(self, args: list[str]) -> str:
        return f"0 {int(self.in_contact)} R 0"

    _COMMANDS: ClassVar[dict[str, Any]] = {
        "openwafermap": _open_map,
        "stepfirstdie": _first,
        "stepnextdie": _next,
        "steptodie": _step_to_die,
        "binstepdie": _bin_step,
        "binmapdie": _bin_map,
        "stepnextsubdie": _sub_die,
        "getnumselecteddies": _num_selected,
        "getselecteddiecoords": _selected_coords,
        "readmapposition2": _map_position,
        "movechuckcontact": _contact,
        "movechuckseparation": _separation,
        "readchuckposition": _chuck_position,
        "readchuckheights": _heights,
        "readproberstatus": _prober_status,
    }


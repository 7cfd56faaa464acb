"""Simulated MPI SENTIO probe station (native remote command set, ``*RCS 1``).

Why: the wafer loop must be testable without a station (SENTIO's demo mode has to be requested
from MPI). The command syntax, the ``code,cmd_id,message`` replies (error code in bits 0-9,
status bits from bit 10: 1 = last die of the route, 2 = last subsite) and the error codes follow
MPI's ``sentio-prober-control`` package (``Sentio/Response.py``, ``Sentio/Enumerations.py``,
``CommandGroups/Wafermap*.py``) and its examples, as summarised in shared/research/wafer.md §1.1.
The ``*IDN?`` reply format is the one ``sentio_prober_control``'s docstring shows. Only the
wafer-scan subset is modelled; anything else answers error 3 (no command handler).

Background commands: ``start_async_cmd`` (the one MPI's ``async_command.py`` example sends) and
``start_initialization`` (which our driver uses; not confirmed in a public source) answer a
``cmd_id`` and finish ``async_time_s`` of bench time later; ``wait_complete <id>, <timeout_s>``,
``wait_all <timeout_s>``, ``query_command_status <id>`` (30 while pending) and
``abort_command <id>`` collect them (32 for an unknown id, 19 on a timeout).

Choices where no source says: ``map:subsite:step_next`` on the last subsite answers 11; native
commands are accepted before ``*RCS 1``; ``*RCS?`` answers a bare ``0``/``1``.

The wafer map and the route are the station's simulated ``Wafer`` (``ProberCore``): stepping
moves the chuck in bench time, contact puts the needles on the device at (die, site) of the
bench's probe station (``Bench.station``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import yaml

from dendrolab.errors import ParameterError
from sim_backend.bench import Bench

__all__ = ["ProberCore", "ProberError", "SentioSim", "load_map"]

#: Modelled stage times (bench seconds; options of the same names). Assumed typical values for
#: a 200/300 mm semi-automatic station: no manual gives them.
STEP_TIME_S = 0.3        # one die step (XY move + settle)
SUBSITE_TIME_S = 0.05    # one subsite step inside a die
Z_TIME_S = 0.1           # contact <-> separation
#: Default heights (um from the chuck zero): contact, and the separation gap below it.
CONTACT_UM = 10000.0
SEPARATION_GAP_UM = 300.0

# SENTIO RemoteCommandError codes (Enumerations.py) used here.
E_OK, E_EXECUTION, E_NO_HANDLER, E_PARAM, E_NPARAMS, E_BOUNDS = 0, 2, 3, 6, 7, 8
E_FILE, E_END_OF_ROUTE, E_CONTACT_NOT_SET, E_PENDING, E_NO_ID, E_WRONG_Z = 9, 11, 23, 30, 32, 38
#: SENTIO status bits (above bit 10 of the code): StatusBits.EndOfRoute, .LastSite.
S_LAST_DIE, S_LAST_SITE = 1, 2


class ProberError(Exception):
    """A remote command failed: the station's error code and text."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


def load_map(path: str | Path | None, wafer: Any) -> tuple[list[int], list[str]]:
    """The route (die ids of ``wafer``, in probing order) and subsites of a wafer-map file.

    Format (YAML, ``sim_backend/benches/wafer-map.yaml`` is an example)::

        dies: all               # or a list of [col, row] pairs: the route, in order
        sites: all              # or a list of site names (D<row><col>): the subsites, in order

    ``all`` (and no file) is every die of the wafer in map order (rows from the top, columns
    from the left) and every named site. Raises ``ParameterError`` on a bad file.
    """
    spec: Mapping[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(str(p))
        try:
            spec = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ParameterError(f"{p}: not valid YAML: {exc}") from None
        if not isinstance(spec, Mapping) or set(spec) - {"dies", "sites", "format"}:
            raise ParameterError(f"{p}: a wafer map has the keys dies, sites (and format)")
    by_pos = {(int(c), int(r)): int(d) for d, c, r in
              zip(wafer.dies["die"], wafer.dies["col"], wafer.dies["row"], strict=True)}
    dies_spec = spec.get("dies", "all")
    if dies_spec == "all":
        route = [int(d) for d in wafer.dies["die"]]
    else:
        route = []
        for item in dies_spec if isinstance(dies_spec, list) else [None]:
            if (not isinstance(item, list) or len(item) != 2
                    or not all(isinstance(v, int) for v in item)):
                raise ParameterError(f"wafer map {path}: dies must be 'all' or [col, row] pairs")
            die = by_pos.get((item[0], item[1]))
            if die is None:
                raise ParameterError(f"wafer map {path}: no die at column {item[0]}, row "
                                     f"{item[1]}")
            route.append(die)
    names = [str(n) for n in wafer.site_names]
    sites_spec = spec.get("sites", "all")
    if sites_spec == "all":
        sites = names
    else:
        if not isinstance(sites_spec, list) or not all(s in names for s in sites_spec):
            raise ParameterError(f"wafer map {path}: sites must be 'all' or names of "
                                 f"{', '.join(names)}")
        sites = [str(s) for s in sites_spec]
    if not route or not sites:
        raise ParameterError(f"wafer map {path}: no dies or no sites")
    return route, sites


def _num(value: float) -> str:
    """A number as SENTIO >= 26 prints it (``545`` rather than ``545.0``)."""
    return str(int(value)) if value == int(value) else f"{value:.3f}".rstrip("0")


class ProberCore:
    """Vendor-neutral stage state: map, route, position, z, bins, and the bench link."""

    def __init__(self, bench: Bench, name: str, options: Mapping[str, Any]) -> None:
        self.bench = bench
        self.name = name
        known = {"idn", "station", "map", "step_time_s", "subsite_time_s", "z_time_s",
                 "contact_um", "separation_gap_um", "async_time_s"}
        unknown = set(options) - known
        if unknown:
            raise ParameterError(f"prober {name}: unknown option(s) "
                                 f"{', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
        self.idn = str(options.get("idn", ""))
        self.station = bench.station(str(options.get("station", name)))
        self.step_time_s = _opt(options, "step_time_s", STEP_TIME_S, name)
        self.subsite_time_s = _opt(options, "subsite_time_s", SUBSITE_TIME_S, name)
        self.z_time_s = _opt(options, "z_time_s", Z_TIME_S, name)
        contact = options.get("contact_um", CONTACT_UM)
        self.contact_um: float | None = (None if contact is None
                                         else _opt(options, "contact_um", CONTACT_UM, name))
        self.gap_um = _opt(options, "separation_gap_um", SEPARATION_GAP_UM, name)
        self.map_path = self._resolve(options.get("map"))
        self.route, self.sites = load_map(self.map_path, self.station.wafer)
        self.index: int | None = None      # route index of the present die
        self.site = 0                      # subsite index
        self.in_contact = False
        self.bins: dict[tuple[int, int, int], int] = {}

    def _resolve(self, path: object) -> Path | None:
        if path is None:
            return None
        p = Path(str(path))
        if not p.is_absolute() and self.bench.base_dir is not None:
            p = self.bench.base_dir / p
        return p

    # -- geometry ----------------------------------------------------------------------------
    @property
    def wafer(self) -> Any:
        return self.station.wafer

    def die_id(self) -> int:
        if self.index is None:
            raise ProberError(E_EXECUTION, "No current die: step to a die first")
        return self.route[self.index]

    def col_row(self, index: int | None = None) -> tuple[int, int]:
        d = self.route[self.index if index is None else index]
        return int(self.wafer.dies["col"][d]), int(self.wafer.dies["row"][d])

    def xy_um(self) -> tuple[float, float]:
        """Chuck position (um, wafer centre = 0) of the present die and subsite."""
        if self.index is None:
            return 0.0, 0.0
        row = self.wafer.sites[self.wafer.site_index(self.die_id(), self.sites[self.site])]
        return round(float(row["x_mm"]) * 1000, 3), round(float(row["y_mm"]) * 1000, 3)

    def home_um(self) -> tuple[float, float]:
        """Chuck position (um) of the home die: the first die of the route, subsite 0."""
        row = self.wafer.sites[self.wafer.site_index(self.route[0], self.sites[0])]
        return round(float(row["x_mm"]) * 1000, 3), round(float(row["y_mm"]) * 1000, 3)

    def z_um(self) -> float:
        if self.contact_um is None:
            return 0.0
        return self.contact_um if self.in_contact else self.contact_um - self.gap_um

    def last_die(self) -> bool:
        return self.index is not None and self.index == len(self.route) - 1

    def last_site(self) -> bool:
        return self.site == len(self.sites) - 1

    def find_die(self, col: int, row: int) -> int:
        for i, d in enumerate(self.route):
            if (int(self.wafer.dies["col"][d]), int(self.wafer.dies["row"][d])) == (col, row):
                return i
        raise ProberError(E_BOUNDS, f"Die {col}, {row} is not in the route")

    def check_site(self, site: int) -> int:
        if not 0 <= site < len(self.sites):
            raise ProberError(E_BOUNDS, f"Subsite {site} out of range 0..{len(self.sites) - 1}")
        return site

    # -- motion ------------------------------------------------------------------------------
    def move_to(self, index: int, site: int, *, in_contact_ok: bool = False) -> None:
        """Step the chuck to route ``index``, subsite ``site`` (XY move in bench time)."""
        if self.in_contact and not in_contact_ok:
            raise ProberError(E_WRONG_Z, "Stepping with the chuck in contact is not allowed; "
                              "move to separation first")
        was = self.in_contact
        if was:
            self.separate()
        same_die = index == self.index
        self.index, self.site = index, site
        self.bench.advance(self.subsite_time_s if same_die else self.step_time_s)
        if was:
            self.contact()

    def contact(self) -> None:
        if self.contact_um is None:
            raise ProberError(E_CONTACT_NOT_SET, "Contact height is not set")
        if self.index is None:
            raise ProberError(E_EXECUTION, "No current die: step to a die first")
        if not self.in_contact:
            self.bench.advance(self.z_time_s)
        self.in_contact = True
        self.station.touch_down(self.die_id(), self.sites[self.site])

    def separate(self) -> None:
        if self.contact_um is None:
            raise ProberError(E_CONTACT_NOT_SET, "Contact height is not set")
        self.station.lift()
        if self.in_contact:
            self.bench.advance(self.z_time_s)
        self.in_contact = False


def _opt(options: Mapping[str, Any], key: str, default: float, name: str) -> float:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ParameterError(f"prober {name}: option {key} = {value!r}: must be a number >= 0")
    return float(value)


class SentioSim(ProberCore):
    """MPI SENTIO: one command per line, ``code,cmd_id,message`` replies (see module doc)."""

    def __init__(self, bench: Bench, name: str, options: Mapping[str, Any]) -> None:
        opts = dict(options)
        self.async_time_s = _opt(opts, "async_time_s", 1.0, name)
        super().__init__(bench, name, opts)
        self.rcs = 0
        self._next_id = 1
        self._jobs: dict[int, float] = {}    # async command id -> bench time it completes

    # -- framing -----------------------------------------------------------------------------
    def handle(self, message: bytes | str) -> bytes | None:
        text = (message.decode("latin-1") if isinstance(message, (bytes, bytearray))
                else str(message)).strip()
        if not text:
            return None
        head, _, rest = text.partition(" ")
        low = head.lower()
        if low.startswith("*"):
            return self._star(low, rest.strip())
        args = [a.strip() for a in rest.split(",")] if rest.strip() else []
        try:
            handler = self._COMMANDS.get(low)
            if handler is None:
                raise ProberError(E_NO_HANDLER, f"Command handler not found: {head}")
            result = handler(self, args)
        except ProberError as exc:
            return f"{exc.code},0,{exc.text}\n".encode()
        if isinstance(result, tuple):
            status, cmd_id, msg = result
        else:
            status, cmd_id, msg = 0, 0, result
        return f"{status << 10},{cmd_id},{msg}\n".encode()

    def _star(self, head: str, rest: str) -> bytes | None:
        if head == "*idn?":
            return f"{self.idn}\n".encode()
        if head == "*rcs":
            self.rcs = 1 if rest == "1" else 0
            return None
        if head == "*rcs?":
            return f"{self.rcs}\n".encode()
        if head == "*local":
            return None
        return f"{E_NO_HANDLER},0,Command handler not found: {head}\n".encode()

    # -- helpers -----------------------------------------------------------------------------
    def _nargs(self, args: list[str], lo: int, hi: int) -> None:
        if not lo <= len(args) <= hi:
            raise ProberError(E_NPARAMS, f"Invalid number of parameters: {len(args)}")

    def _int(self, text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise ProberError(E_PARAM, f"Invalid parameter: {text!r}") from None

    def _site_arg(self, args: list[str], i: int, default: int) -> int:
        return self.check_site(self._int(args[i])) if len(args) > i else default

    def _pos(self, status: int = 0) -> tuple[int, int, str]:
        col, row = self.col_row()
        if self.last_die():
            status |= S_LAST_DIE
        if self.last_site():
            status |= S_LAST_SITE
        return status, 0, f"{col},{row},{self.site}"

    def _step(self, index: int, site: int) -> tuple[int, int, str]:
        self.move_to(index, site)
        return self._pos()

    # -- wafer map ---------------------------------------------------------------------------
    def _map_open(self, args: list[str]) -> str:
        self._nargs(args, 1, 1)
        path = self._resolve(args[0])
        try:
            self.route, self.sites = load_map(path, self.wafer)
        except FileNotFoundError:
            raise ProberError(E_FILE, f"File not found: {args[0]}") from None
        except ParameterError as exc:
            raise ProberError(E_EXECUTION, str(exc)) from None
        self.map_path, self.index, self.site, self.bins = path, None, 0, {}
        return ""

    def _first(self, args: list[str]) -> tuple[int, int, str]:
        self._nargs(args, 0, 1)
        return self._step(0, self._site_arg(args, 0, 0))

    def _next(self, args: list[str]) -> tuple[int, int, str]:
        self._nargs(args, 0, 1)
        if self.in_contact:
            raise ProberError(E_WRONG_Z, "Stepping with the chuck in contact is not allowed; "
                              "move to separation first")
        nxt = 0 if self.index is None else self.index + 1
        if nxt >= len(self.route):
            raise ProberError(E_END_OF_ROUTE, "End of route")
        return self._step(nxt, self._site_arg(args, 0, self.site))

    def _bin_step(self, args: list[str]) -> tuple[int, int, str]:
        self._nargs(args, 1, 1)
        self._bin(self._int(args[0]))
        return self._next([])

    def _bin(self, code: int) -> None:
        if self.index is not None:
            col, row = self.col_row()
            self.bins[(col, row, self.site)] = code

    def _step_die(self, args: list[str]) -> tuple[int, int, str]:
        self._nargs(args, 2, 3)
        index = self.find_die(self._int(args[0]), self._int(args[1]))
        return self._step(index, self._site_arg(args, 2, 0))

    def _step_die_seq(self, args: list[str]) -> tuple[int, int, str]:
        self._nargs(args, 1, 2)
        seq = self._int(args[0])
        if not 0 <= seq < len(self.route):
            raise ProberError(E_BOUNDS, f"Route index {seq} out of range 0..{len(self.route) - 1}")
        return self._step(seq, self._site_arg(args, 1, 0))

    def _sub_next(self, args: list[str]) -> tuple[int, int, str]:
        self._nargs(args, 0, 0)
        self.die_id()
        if self.last_site():
            raise ProberError(E_END_OF_ROUTE, "End of subsites")
        return self._step(self.index, self.site + 1)   # type: ignore[arg-type]

    def _sub_step(self, args: list[str]) -> tuple[int, int, str]:
        self._nargs(args, 1, 1)
        self.die_id()
        site = (self.sites.index(args[0]) if args[0] in self.sites
                else self.check_site(self._int(args[0])))
        return self._step(self.index, site)   # type: ignore[arg-type]

    def _sub_bin_step(self, args: list[str]) -> tuple[int, int, str]:
        self._nargs(args, 1, 1)
        self._bin(self._int(args[0]))
        return self._sub_next([])

    def _set_bin(self, args: list[str]) -> str:
        self._nargs(args, 4, 4)
        code, col, row, site = (self._int(a) for a in args)
        self.find_die(col, row)
        self.bins[(col, row, self.check_site(site))] = code
        return ""

    def _num_dies(self, args: list[str]) -> str:
        self._nargs(args, 0, 1)
        kind = (args[0] if args else "Selected").lower()
        if kind not in ("selected", "present", "total"):
            raise ProberError(E_PARAM, f"Invalid parameter: {args[0]!r}")
        return str(len(self.route) if kind == "selected" else len(self.wafer.dies))

    # -- chuck -------------------------------------------------------------------------------
    def _contact(self, args: list[str]) -> str:
        self._nargs(args, 0, 0)
        self.contact()
        return _num(self.z_um())

    def _separation(self, args: list[str]) -> str:
        self._nargs(args, 0, 0)
        self.separate()
        return _num(self.z_um())

    def _xy(self, args: list[str]) -> str:
        x, y = self.xy_um()
        return f"{_num(x)},{_num(y)}"

    def _z(self, args: list[str]) -> str:
        return _num(self.z_um())

    def _site_status(self, args: list[str]) -> str:
        return f"1,{int(self.contact_um is not None)},0,1"

    def _site_heights(self, args: list[str]) -> str:
        if self.contact_um is None:
            return "0,0,0,0"
        return f"{_num(self.contact_um)},{_num(self.contact_um - self.gap_um)},0,0"

    def _current_index(self, args: list[str]) -> str:
        self.die_id()
        col, row = self.col_row()
        return f"{self.index},{col},{row}"

    def _current_subsite(self, args: list[str]) -> str:
        return str(self.site)

    # -- status and async --------------------------------------------------------------------
    def _version(self, args: list[str]) -> str:
        return f"Version: {self.idn.rsplit(',', 1)[-1] if self.idn else '25.2.0.0'}"

    def _machine_status(self, args: list[str]) -> str:
        return "Ready"

    def _start_async(self, args: list[str]) -> tuple[int, int, str]:
        cmd_id = self._next_id
        self._next_id += 1
        self._jobs[cmd_id] = self.bench.now_s + self.async_time_s
        return 0, cmd_id, ""

    def _job(self, args: list[str]) -> int:
        cmd_id = self._int(args[0])
        if cmd_id not in self._jobs:
            raise ProberError(E_NO_ID, f"Unknown command id {cmd_id}")
        return cmd_id

    def _wait_complete(self, args: list[str]) -> tuple[int, int, str]:
        self._nargs(args, 1, 2)
        cmd_id = self._job(args)
        timeout = float(args[1]) if len(args) > 1 else 60.0
        left = self._jobs[cmd_id] - self.bench.now_s
        if left > timeout:
            self.bench.advance(timeout)
            raise ProberError(19, f"Timeout waiting for command {cmd_id}")
        self.bench.advance(left)
        del self._jobs[cmd_id]
        return 0, cmd_id, ""

    def _wait_all(self, args: list[str]) -> str:
        self._nargs(args, 0, 1)
        for cmd_id in sorted(self._jobs):
            self._wait_complete([str(cmd_id), *args])
        return ""

    def _query_status(self, args: list[str]) -> tuple[int, int, str]:
        self._nargs(args, 1, 1)
        cmd_id = self._job(args)
        if self._jobs[cmd_id] > self.bench.now_s:
            raise ProberError(E_PENDING, f"Command {cmd_id} is pending")
        del self._jobs[cmd_id]
        return 0, cmd_id, ""

    def _abort(self, args: list[str]) -> tuple[int, int, str]:
        self._nargs(args, 1, 1)
        cmd_id = self._job(args)
        del self._jobs[cmd_id]
        return 0, cmd_id, ""

    _COMMANDS: ClassVar[dict[str, Any]] = {
        "map:open": _map_open,
        "map:step_first_die": _first,
        "map:step_next_die": _next,
        "map:bin_step_next_die": _bin_step,
        "map:step_die": _step_die,
        "map:step_die_seq": _step_die_seq,
        "map:subsite:step_next": _sub_next,
        "map:subsite:step": _sub_step,
        "map:subsite:bin_step_next": _sub_bin_step,
        "map:subsite:get_num": lambda self, a: str(len(self.sites)),
        "map:bins:set_bin": _set_bin,
        "map:get_num_dies": _num_dies,
        "map:die:get_current_index": _current_index,
        "map:die:get_current_subsite": _current_subsite,
        "move_chuck_contact": _contact,
        "move_chuck_separation": _separation,
        "get_chuck_xy": _xy,
        "chuck:get_xy": _xy,
        "get_chuck_z": _z,
        "get_chuck_site_status": _site_status,
        "get_chuck_site_heights": _site_heights,
        "status:get_version": _version,
        "status:get_machine_status": _machine_status,
        "start_async_cmd": _start_async,
        "start_initialization": _start_async,
        "wait_complete": _wait_complete,
        "wait_all": _wait_all,
        "query_command_status": _query_status,
        "abort_command": _abort,
    }

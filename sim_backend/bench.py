"""The simulated bench: one clock, the devices under test, and the wiring between them.

Instrument models talk to devices only through this class: set a terminal's source level, drive
a waveform on a terminal, measure a terminal. Time is simulated: it advances by what instruments
do (pulse widths, apertures, delays, a per-command host latency), never by sleeping. Devices are
brought up to the present lazily, when a terminal wired to them is touched.

Wiring model: every device has ports (``top`` for two-terminal devices, ``in``/``out`` for the
dendrite-soma unit, plus ``gate`` for a 1T1R synapse, ``r<i>``/``g<j>``/``s<j>`` lines for a 1T1R
array, see ``sim_backend.array_dut``); each instrument terminal (``<name>/<ch>``)
connects to ports directly or through switch-matrix crosspoints. A port's voltage is the sum of the
levels of the sources connected to it whose output is on (an output that is off is open).
Array ports take their own branch (``_array_*``), entered only for terminals wired to one, so the
per-point paths of the two-terminal devices stay as they are.

Host time (``host_time``): ``virtual`` (default) is reproducible: every host command costs
``host_latency_s`` of bench time and a host wait passes through ``sleep`` (the clock the VISA
library hands the runner and drivers), instantly in wall time. ``wall`` is for testing real-time
behaviour and is not reproducible: a host idle for ``host_idle_s`` or longer lets that real time
pass on the bench too, and how long Python took shows in the data.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from dendrolab.errors import ParameterError
from sim_backend.physics.presets import DeviceModels, load_models
from sim_backend.physics.rng import device_keys
from sim_backend.physics.waveform import Waveform

HOST_TIMES = ("virtual", "wall")
PORTS = {"dendrite": ("top",), "soma": ("top",), "synapse": ("top", "gate"),
         "unit": ("in", "out"), "array": ("r<row>", "g<column>", "s<column>")}
#: Kinds whose port names are dynamic (parsed by the DUT's ``parse_port``), with no main port.
LINE_KINDS = ("array",)
#: Keys a bench entry of kind ``array`` accepts.
ARRAY_KEYS = ("kind", "rows", "cols", "die", "device")


def _clamp(dut: Any, i: float, v: float, limit_a: float | None) -> tuple[float, float, bool]:
    """A source in compliance: a current at the limit is held there and the device voltage
    drops to where the device conducts it. ``(current, device voltage, tripped)``."""
    if limit_a is not None and abs(i) >= limit_a * (1 - 1e-9):
        i = limit_a if i > 0 else -limit_a
        return i, dut.voltage_at(i), True
    return i, v, False


#: ``tuple.__new__``: makes a ``Reading`` exactly as ``Reading(...)`` does, without the call
#: through the named tuple's Python-level ``__new__`` (one reading per measurement).
_new_tuple = tuple.__new__


class Reading(NamedTuple):
    """One measurement at a terminal: current into the device, the device voltage, a trip flag
    (a named tuple: one is made per reading)."""

    i_a: float
    v_v: float
    tripped: bool
    t_s: float


class SpikeTrain(NamedTuple):
    """A unit's soma spikes as an instrument on its ``out`` port sees them (``Bench.spikes``).

    ``base_a``/``peak_a``: the soma-branch current just before and just after a switch, both at
    the node level where the device fires (OFF branch, then ON branch, with the circuit's sense
    resistor ``r_load_ohm``), from the device's own (D2D-varied) nominal thresholds; the
    per-cycle C2C spread of a spike's height is not in them. ``charge_c``: soma-branch charge
    since the bench started (a difference over a window, divided by it, is the mean current).
    """

    times_s: np.ndarray
    base_a: float
    peak_a: float
    charge_c: float
    r_load_ohm: float


@dataclass
class _Slot:
    name: str
    kind: str
    dut: Any
    t_s: float = 0.0          # the device's own time: it has been brought up to here
    v: float = 0.0            # voltage on its main port since t_s


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ParameterError(f"{where}: must be a mapping")
    return value


class Bench:
    """Clock + devices + wiring. Thread-safe through ``lock`` (held by the VISA layer)."""

    def __init__(self, config: Mapping[str, Any] | None = None, *,
                 base_dir: Path | None = None) -> None:
        cfg = _mapping(config, "bench")
        known = {"seed", "models", "noise", "host_latency_s", "host_time", "host_idle_s",
                 "wafer_id", "devices", "wiring", "wafer"}
        unknown = set(cfg) - known
        if unknown:
            raise ParameterError(f"bench: unknown key(s) {', '.join(sorted(unknown))}; "
                                 f"known: {', '.join(sorted(known))}")
        self.lock = threading.RLock()
        self.seed = _int(cfg.get("seed", 0), "bench.seed")
        self.wafer_id = _int(cfg.get("wafer_id", 0), "bench.wafer_id")
        self.host_latency_s = _float(cfg.get("host_latency_s", 0.0), "bench.host_latency_s")
        self.host_time = cfg.get("host_time", "virtual")
        if self.host_time not in HOST_TIMES:
            raise ParameterError(f"bench.host_time = {self.host_time!r}: must be 'virtual' "
                                 "(reproducible: host latency per command, waits take no wall "
                                 "time) or 'wall' (real time between host commands passes on the "
                                 "bench: not reproducible)")
        self.host_idle_s = _float(cfg.get("host_idle_s", 2e-3), "bench.host_idle_s")
        self._host_mark: float | None = None
        models_src = cfg.get("models")
        if isinstance(models_src, str) and base_dir is not None and models_src.endswith(
                (".yaml", ".yml")):
            models_src = str((base_dir / models_src).resolve())
        models = load_models(models_src)
        if not bool(cfg.get("noise", True)):
            models = models.without_noise()
        self.models: DeviceModels = models
        self.now_s = 0.0
        self.slots: dict[str, _Slot] = {}
        for index, (name, spec) in enumerate(_mapping(cfg.get("devices"), "bench.devices")
                                             .items()):
            self.slots[str(name)] = self._make_slot(str(name), spec, index)
        # terminal -> [(slot name, port)] fixed wiring; matrix crosspoints add to it.
        self.wires: dict[str, list[tuple[str, str]]] = {}
        for term, target in _mapping(cfg.get("wiring"), "bench.wiring").items():
            targets = target if isinstance(target, list) else [target]
            for t in targets:
                self.wires.setdefault(str(term), []).append(self._port(str(t), f"wiring {term}"))
        self.levels: dict[str, float] = {}     # terminal -> level of a source whose output is on
        self.routes: dict[str, list[tuple[str, str]]] = {}   # closed crosspoint id -> links
        self.base_dir = base_dir
        self.stations: dict[str, ProbeStation] = {
            str(name): ProbeStation(self, str(name), spec)
            for name, spec in _mapping(cfg.get("wafer"), "bench.wafer").items()}
        self._rebuild()

    # ------------------------------------------------------------------ construction
    def _make_slot(self, name: str, spec: object, index: int) -> _Slot:
        spec = _mapping(spec, f"bench.devices.{name}")
        kind = spec.get("kind")
        if kind not in PORTS:
            raise ParameterError(
                f"bench.devices.{name}.kind = {kind!r}: must be one of {', '.join(PORTS)}")
        die = _int(spec.get("die", 0), f"bench.devices.{name}.die")
        dev = _int(spec.get("device", index), f"bench.devices.{name}.device")
        from sim_backend import duts

        if kind == "array":
            return self._make_array(name, spec, die, dev)
        keys = device_keys(self.seed, self.wafer_id, die, dev)
        return _Slot(name, kind, duts.make(kind, self.models, keys))

    def _make_array(self, name: str, spec: Mapping[str, Any], die: int, dev: int) -> _Slot:
        """An R x C 1T1R array: cell (i, j) is keyed as device ``dev + (i-1)*C + (j-1)`` of
        ``die`` (the path every bench device takes), so its D2D draws are its own."""
        from sim_backend import duts
        from sim_backend.array_dut import MAX_SIDE

        where = f"bench.devices.{name}"
        unknown = set(spec) - set(ARRAY_KEYS)
        if unknown:
            raise ParameterError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}"
                                 f"; an array takes {', '.join(ARRAY_KEYS)}")
        sides = []
        for key in ("rows", "cols"):
            if key not in spec:
                raise ParameterError(f"{where}.{key}: missing (an array needs rows and cols)")
            n = _int(spec[key], f"{where}.{key}")
            if not 1 <= n <= MAX_SIDE:
                raise ParameterError(f"{where}.{key} = {n}: must be in 1..{MAX_SIDE}")
            sides.append(n)
        rows, cols = sides
        if dev < 0 or die < 0:
            raise ParameterError(f"{where}: die and device must be >= 0")
        keys = device_keys(self.seed, self.wafer_id, die, dev + np.arange(rows * cols))
        return _Slot(name, "array", duts.make_array(self.models, keys, rows, cols))

    def check_port(self, text: str, where: str) -> tuple[str, str]:
        """``(device, port)`` of a ``device[.port]`` text, or a one-line ``ParameterError``."""
        return self._port(text, where)

    def _port(self, text: str, where: str) -> tuple[str, str]:
        name, _, port = text.partition(".")
        slot = self.slots.get(name)
        if slot is None:
            raise ParameterError(f"{where}: unknown device {name!r}; devices: "
                                 f"{', '.join(self.slots) or 'none'}")
        if slot.kind in LINE_KINDS:
            if slot.dut.parse_port(port) is None:
                dut = slot.dut
                raise ParameterError(
                    f"{where}: {dut.rows}x{dut.cols} array {name!r} has no port {port!r}; "
                    f"ports: r1..r{dut.rows}, g1..g{dut.cols}, s1..s{dut.cols}")
            return name, port
        port = port or PORTS[slot.kind][0]
        if port not in PORTS[slot.kind]:
            raise ParameterError(f"{where}: {slot.kind} {name!r} has no port {port!r}; "
                                 f"ports: {', '.join(PORTS[slot.kind])}")
        return name, port

    def _rebuild(self) -> None:
        """Derive every wiring view from scratch (fixed wiring plus the closed routes)."""
        links: dict[str, list[tuple[str, str]]] = {t: list(v) for t, v in self.wires.items()}
        for pairs in self.routes.values():
            for term, target in pairs:
                links.setdefault(term, []).append(target)
        self._links = links
        feeds: dict[tuple[str, str], list[str]] = {}
        for term, targets in links.items():
            for target in targets:
                feeds.setdefault(target, []).append(term)
        self._feeds = feeds
        self._targets: dict[str, list[tuple[_Slot, str, bool]]] = {}
        self._plain: dict[str, bool] = {}
        self._array_lines: dict[str, list[tuple[_Slot, str, int]]] = {}
        self._array_reads: dict[str, list[tuple[_Slot, str, np.ndarray]]] = {}
        # array -> (regrouping epoch, [(feeding terminals, letter, line indices)])
        # (and the groups' single terminals, or None when a group has several)
        self._array_fed: dict[str, tuple[int, list[tuple[tuple[str, ...], str, np.ndarray]],
                                         tuple[str, ...] | None]] = {}
        self._fed_epoch = getattr(self, "_fed_epoch", 0)
        self._array_slot_list: dict[str, list[_Slot]] = {}
        # array port -> its group key; array -> group key -> line indices (see _regroup)
        self._port_group: dict[tuple[str, str], tuple[tuple[str, ...], str, int]] = {}
        self._groups: dict[str, dict[tuple[tuple[str, ...], str], set[int]]] = {}
        # array -> group key -> its sorted line indices (``_regroup``; dropped on a change)
        self._group_lines: dict[str, dict[tuple[tuple[str, ...], str], np.ndarray]] = {}
        self._derive(set(links))
        self._regroup([target for target in feeds if self.slots[target[0]].kind in LINE_KINDS])

    def _relink(self, added: list[tuple[str, tuple[str, str]]],
                removed: list[tuple[str, tuple[str, str]]]) -> None:
        """Apply a route change to the wiring views: only the terminals and arrays it touches
        are derived again (a board has hundreds of fixed links; a route moves a few)."""
        for term, target in removed:
            self._links[term].remove(target)
            self._feeds[target].remove(term)
            if not self._feeds[target]:
                del self._feeds[target]
        for term, target in added:
            self._links.setdefault(term, []).append(target)
            self._feeds.setdefault(target, []).append(term)
        changes = added + removed
        self._derive({t for t, _ in changes})
        self._regroup(list(dict.fromkeys(target for _t, target in changes
                                         if self.slots[target[0]].kind in LINE_KINDS)))

    def _regroup(self, ports: list[tuple[str, str]]) -> None:
        """Move array ports between their arrays' line groups -- lines grouped by (feeding
        terminals, letter), so a refresh sums each group's levels once -- and rebuild the
        group lists of the arrays touched. A group's index array is remembered until its
        members change (``_group_lines``; a word-line step moves one line of one group)."""
        touched: dict[str, set[tuple[tuple[str, ...], str]]] = {}
        port_group, all_groups = self._port_group, self._groups
        feeds, slots = self._feeds, self.slots
        for target in ports:
            n = target[0]
            old = port_group.pop(target, None)
            groups = all_groups.get(n)
            if groups is None:
                groups = all_groups[n] = {}
            changed = touched.get(n)
            if changed is None:
                changed = touched[n] = set()
            if old is not None:
                okey = old[:2]
                members = groups[okey]
                members.discard(old[2])
                changed.add(okey)
                if not members:
                    del groups[okey]
            terms = feeds.get(target)
            if terms:
                letter, index = slots[n].dut.parse_port(target[1])
                key = (tuple(terms), letter)
                members = groups.get(key)
                if members is None:
                    members = groups[key] = set()
                members.add(index)
                port_group[target] = (*key, index)
                changed.add(key)
        for n, changed in touched.items():
            self._fed_epoch += 1  # a new key for every regrouping (ArrayDut.set_lines)
            arrays = self._group_lines.setdefault(n, {})
            for key in changed:  # every membership change passes here: no stale array
                arrays.pop(key, None)
            fed = []
            for key, idx in self._groups[n].items():
                lines = arrays.get(key)
                if lines is None:
                    lines = arrays[key] = np.array(sorted(idx), dtype=np.intp)
                fed.append((key[0], key[1], lines))
            # the groups' terminals when each group has one (the usual board): a refresh reads
            # their levels without a sum per group (``_array_refresh``)
            single = (tuple(terms[0] for terms, _l, _i in fed)
                      if all(len(terms) == 1 for terms, _l, _i in fed) else None)
            self._array_fed[n] = (self._fed_epoch, fed, single)

    def _derive(self, terms: set[str]) -> None:
        """The per-terminal views of ``terms``."""
        for term in terms:
            targets = self._links.get(term, [])
            if not targets:
                self._links.pop(term, None)
                for view in (self._targets, self._plain, self._array_lines, self._array_reads,
                             self._array_slot_list):
                    view.pop(term, None)
                continue
            slots = [(self.slots[n], p) for n, p in targets]
            # hot-path view: [(slot, port, is main port)] (array lines go through _array_lines)
            plain_targets = [(slot, p, p == PORTS[slot.kind][0]) for slot, p in slots
                             if slot.kind not in LINE_KINDS]
            self._targets[term] = plain_targets
            lines = [(slot, *slot.dut.parse_port(p)) for slot, p in slots
                     if slot.kind in LINE_KINDS]
            # Plain: every target a plain main port (no charge integration, no soma output,
            # no array line): a reading needs the state at mid-aperture only (``measure``).
            self._plain[term] = not lines and all(
                main and port != "out" and not getattr(slot.dut, "integrating", False)
                for slot, port, main in plain_targets)
            if not lines:
                self._array_lines.pop(term, None)
                self._array_reads.pop(term, None)
                self._array_slot_list.pop(term, None)
                continue
            self._array_lines[term] = lines
            self._array_slot_list[term] = list({id(s): s for s, _l, _i in lines}.values())
            # its reading plan is made when the terminal is first measured (``_array_read_plan``;
            # the word-line driver, whose lines move on every step, is never measured there)
            self._array_reads.pop(term, None)
        self._array_terms = frozenset(self._array_lines)

    def _array_read_plan(self, terminal: str) -> list[tuple[_Slot, str, np.ndarray]]:
        """The lines one reading of an array terminal sums, per (array, letter), as index
        arrays (kept in ``_array_reads`` until ``_derive`` changes the terminal's lines)."""
        by_line: dict[tuple[str, str], tuple[_Slot, list[int]]] = {}
        for slot, letter, index in self._array_lines[terminal]:
            by_line.setdefault((slot.name, letter), (slot, []))[1].append(index)
        plan = self._array_reads[terminal] = [(slot, key[1], np.array(idx, dtype=np.intp))
                                              for key, (slot, idx) in by_line.items()]
        return plan

    # ------------------------------------------------------------------ time
    def advance(self, dt_s: float) -> None:
        """Let simulated time pass (devices catch up lazily)."""
        if dt_s > 0:
            self.now_s += dt_s

    def sleep(self, dt_s: float) -> None:
        """A host wait of ``dt_s`` (the clock hook's ``sleep``): bench time passes at once in
        ``virtual`` mode; in ``wall`` mode the host really waits and the gap is counted by the
        next ``host_command``."""
        if self.host_time == "wall":
            time.sleep(max(dt_s, 0.0))
            return
        with self.lock:
            self.advance(dt_s)

    def host_command(self) -> None:
        """A host command arrived: advance the clock by the host latency, or (``host_time:
        wall``) by the real time since the previous command ended when the host was idle for at
        least ``host_idle_s`` (a deliberate PC-timed wait), so such waits pass on the bench too.
        """
        dt = self.host_latency_s
        if self.host_time == "wall" and self._host_mark is not None:
            gap = time.perf_counter() - self._host_mark
            if gap >= self.host_idle_s:
                dt = max(dt, gap)
        self.advance(dt)

    def host_done(self) -> None:
        """The present host command is finished: real time from here on counts as a host gap."""
        self._host_mark = time.perf_counter()

    def _sync(self, slot: _Slot) -> None:
        dt = self.now_s - slot.t_s
        if dt > 0:
            slot.dut.hold(slot.v, dt)
            slot.t_s = self.now_s

    def _port_voltage(self, name: str, port: str) -> float:
        levels = self.levels
        total = 0.0
        for t in self._feeds.get((name, port), ()):
            total += levels.get(t, 0.0)
        return total

    def _refresh(self, slot: _Slot) -> None:
        """The device's port voltages from the levels now on (``_port_voltage``, inlined for
        the main port: this runs on every source change and reading)."""
        kind = slot.kind
        if kind in LINE_KINDS:
            self._array_refresh(slot)
            return
        levels = self.levels
        total = 0.0
        for t in self._feeds.get((slot.name, PORTS[kind][0]), ()):
            total += levels.get(t, 0.0)
        slot.v = total
        if kind == "synapse":
            slot.dut.gate_v = self._port_voltage(slot.name, "gate")

    # ------------------------------------------------------------------ sources
    def source(self, terminal: str, level_v: float | None) -> None:
        """Set a terminal's output: a level in volts, or None for output off (open)."""
        if terminal in self._array_terms:
            self._array_source(terminal, level_v)
            return
        targets = self._targets.get(terminal, ())
        now = self.now_s
        for slot, _port, _main in targets:  # _sync, inlined
            dt = now - slot.t_s
            if dt > 0:
                slot.dut.hold(slot.v, dt)
                slot.t_s = now
        levels = self.levels
        if level_v is None:
            levels.pop(terminal, None)
        else:
            levels[terminal] = float(level_v)
        for slot, _port, _main in targets:  # _refresh, inlined for the main port
            kind = slot.kind
            v = 0.0
            for t in self._feeds.get((slot.name, PORTS[kind][0]), ()):
                v += levels.get(t, 0.0)
            slot.v = v
            if kind == "synapse":
                slot.dut.gate_v = self._port_voltage(slot.name, "gate")

    def drive(self, terminal: str, wave: Waveform) -> None:
        """Apply a waveform on a terminal from now on; the clock advances by its duration.

        The other sources on the same ports keep their levels and add to the waveform. While it
        runs, the terminal's own held level is replaced by the waveform; afterwards it is back.
        """
        own = self.levels.get(terminal, 0.0)
        if terminal in self._array_terms:
            self._array_drive(terminal, wave, own)
        for slot, port, main in self._targets.get(terminal, ()):
            self._sync(slot)
            if main:
                offset = self._port_voltage(slot.name, port) - own
                slot.dut.drive(Waveform(wave.v + offset, wave.dt))
            slot.t_s = self.now_s + float(wave.duration_s)
        self.advance(float(wave.duration_s))

    # ------------------------------------------------------------------ measurement
    def measure(self, terminal: str, aperture_s: float = 0.0,
                limit_a: float | None = None) -> Reading:
        """Measure the current a terminal sources into its devices over an aperture.

        The state evolves over the aperture and the current is taken at its midpoint (the
        average to second order); at a unit's ``out`` port it is the aperture average of the
        soma current (charge / aperture), as an integrating ADC sees a spike train. With
        ``limit_a`` the source clamps like an SMU in compliance: the current is held at the
        limit, the device voltage drops to where it conducts it, and ``tripped`` is set. The
        clamp holds until the source level changes or the next measurement re-evaluates it.
        """
        aperture = max(aperture_s, 0.0)
        targets = self._targets.get(terminal, ())
        if targets and self._plain[terminal]:
            # No target integrates charge: the devices catch up lazily, so the syncs at the
            # start and the end of the aperture are left to the next event (one hold from the
            # last event to mid-aperture is the same exact propagation as two).
            half = aperture / 2
            now = self.now_s = self.now_s + half
            levels = self.levels
            total_i, v_dev, tripped = 0.0, levels.get(terminal, 0.0), False
            for slot, _port, _main in targets:
                # _sync, then _read_port with no aperture (with _refresh and _clamp), inlined
                dut = slot.dut
                dt = now - slot.t_s
                if dt > 0:
                    dut.hold(slot.v, dt)
                    slot.t_s = now
                if limit_a is not None:
                    dut.limit_a = limit_a
                kind = slot.kind
                v = 0.0
                for t in self._feeds.get((slot.name, PORTS[kind][0]), ()):
                    v += levels.get(t, 0.0)
                slot.v = v_dev = v
                if kind == "synapse":
                    dut.gate_v = self._port_voltage(slot.name, "gate")
                i = dut.read(v)
                if limit_a is not None and abs(i) >= limit_a * (1 - 1e-9):
                    i = limit_a if i > 0 else -limit_a
                    v_dev = dut.voltage_at(i)
                    if not dut.self_limiting:
                        slot.v = v_dev   # the clamped voltage is what the device sees from now on
                    tripped = True
                total_i += i
            self.now_s = now + half
            return _new_tuple(Reading, (total_i, v_dev, tripped, self.now_s))
        if terminal in self._array_terms:
            return self._array_measure(terminal, aperture, limit_a)
        if not targets:
            self.advance(aperture)
            return Reading(0.0, self.levels.get(terminal, 0.0), False, self.now_s)
        sync = self._sync
        charge0 = []
        for slot, port, main in targets:
            sync(slot)
            if port == "out":
                charge0.append(slot.dut.charge_c)
            elif main and getattr(slot.dut, "integrating", False):
                charge0.append(slot.dut.charge_in_c)
        self.now_s += aperture / 2
        total_i, v_dev, tripped = 0.0, self.levels.get(terminal, 0.0), False
        for slot, _port, main in targets:
            sync(slot)
            if not main:
                continue
            got = self._read_port(slot, limit_a, aperture)
            if got is not None:
                total_i += got[0]
                v_dev = got[1]
                tripped = tripped or got[2]
        self.now_s += aperture / 2
        out = iter(charge0)
        for slot, port, main in targets:
            sync(slot)
            if port == "out":
                q0 = next(out)
                i_out = ((slot.dut.charge_c - q0) / aperture if aperture > 0
                         else slot.dut.read_out())
                total_i -= i_out
            elif main and getattr(slot.dut, "integrating", False):
                q0 = next(out)
                if aperture > 0:
                    total_i += (slot.dut.charge_in_c - q0) / aperture
        return Reading(total_i, v_dev, tripped, self.now_s)

    def sweep(self, terminal: str, levels: Sequence[float], settle_s: Sequence[float],
              aperture_s: float, limit_a: float | None, stop_on_trip: bool = False,
              ) -> list[tuple[float, float, bool, float]] | None:
        """A source sweep on ``terminal``: per level, ``source`` it, wait its settle time,
        ``measure`` over the aperture with ``limit_a``; rows ``(i, v, tripped, t at the start
        of the aperture)``, stopping after the first trip when ``stop_on_trip``.

        The same hold and read calls in the same order as that loop (so the same numbers, noise
        included), run with local variables for the one-device case instruments sweep most;
        None when the terminal feeds several devices or integrates (the caller loops then).
        """
        targets = self._targets.get(terminal, ())
        if len(targets) != 1 or not self._plain[terminal]:
            return None
        slot = targets[0][0]
        dut = slot.dut
        hold, read = dut.hold, dut.read
        self._sync(slot)
        offset = self._port_voltage(slot.name, PORTS[slot.kind][0]) - self.levels.get(
            terminal, 0.0)  # what the other sources add to this terminal's level
        self._refresh(slot)  # (a synapse's gate voltage stays as it is during the sweep)
        if limit_a is not None:
            dut.limit_a = limit_a
        half = max(aperture_s, 0.0) / 2
        now, t, held = self.now_s, slot.t_s, slot.v
        rows: list[tuple[float, float, bool, float]] = []
        level = self.levels.get(terminal)
        for level, settle in zip(levels, settle_s, strict=True):
            if now > t:  # source(): the devices catch up at the voltage they held
                hold(held, now - t)
                t = now
            v = held = offset + level
            now += max(settle, 0.0)
            start = now
            now += half
            if now > t:  # measure(): the state at mid-aperture
                hold(v, now - t)
                t = now
            i, v, tripped = _clamp(dut, read(v), v, limit_a)
            if tripped and not dut.self_limiting:
                held = v
            now += half
            rows.append((i, v, tripped, start))
            if tripped and stop_on_trip:
                break
        self.now_s, slot.t_s, slot.v = now, t, held
        if level is not None:
            self.levels[terminal] = float(level)
        return rows

    def _read_port(self, slot: _Slot, limit_a: float | None,
                   aperture: float) -> tuple[float, float, bool] | None:
        """Current into a device's main port at its present voltage, clamped like an SMU in
        compliance: ``(current, device voltage, tripped)``; None for an integrating device
        over an aperture (its current is the charge average, taken by the caller)."""
        dut = slot.dut
        if limit_a is not None:
            dut.limit_a = limit_a
        self._refresh(slot)      # re-evaluate any clamp from the programmed level
        v = slot.v
        if aperture > 0 and getattr(dut, "integrating", False):
            return None
        i, v, tripped = _clamp(dut, dut.read(v), v, limit_a)
        if tripped and not dut.self_limiting:
            slot.v = v   # the clamped voltage is what the device sees from now on
        return i, v, tripped

    # ------------------------------------------------------------------ array lines
    def _array_refresh(self, slot: _Slot) -> None:
        """An array's line voltages from the levels now on (lines nothing feeds: 0 V); the
        array skips the work when its groups and their levels are those it already holds."""
        get = self.levels.get
        epoch, fed, single = self._array_fed.get(slot.name, (0, (), ()))
        if single is not None:  # sum([x]) is 0 + x: the same float (-0.0 becomes 0.0 alike)
            volts = [0.0 + get(t, 0.0) for t in single]
        else:
            volts = [sum([get(t, 0.0) for t in terms]) for terms, _l, _i in fed]
        key = (epoch, *volts)
        dut = slot.dut
        prev = dut.lines_key
        if key == prev:
            return
        if type(prev) is tuple and len(prev) == len(key) and prev[0] == epoch:
            # the lines hold this grouping's previous levels: rewrite only the groups whose
            # level changed (groups never share a line; a sum is never -0.0, so != is exact)
            dut.update_lines([(letter, index, v) for (_t, letter, index), v, old
                              in zip(fed, volts, prev[1:], strict=True) if v != old], key)
            return
        dut.set_lines(((letter, index, v) for (_t, letter, index), v
                       in zip(fed, volts, strict=True)), key=key)

    def _array_slots(self, terminal: str) -> list[_Slot]:
        return self._array_slot_list[terminal]

    def _array_source(self, terminal: str, level_v: float | None) -> None:
        """``source`` for a terminal on array lines (and any plain ports it also feeds)."""
        # the same syncs and refreshes in the same order as ``source`` (arrays first), with
        # the array ones inlined: a write-verify loop changes a level some seven times a pulse
        arrays = self._array_slot_list[terminal]
        plain = self._targets.get(terminal, ())
        now = self.now_s
        for slot in arrays:
            dt = now - slot.t_s
            if dt > 0:
                slot.dut.hold(slot.v, dt)
                slot.t_s = now
        for slot, _p, _m in plain:
            self._sync(slot)
        if level_v is None:
            self.levels.pop(terminal, None)
        else:
            self.levels[terminal] = float(level_v)
        refresh = self._array_refresh
        for slot in arrays:
            refresh(slot)
        for slot, _p, _m in plain:
            self._refresh(slot)

    def _array_drive(self, terminal: str, wave: Waveform, own: float) -> None:
        """``drive`` on array lines: each line at (what the other sources add) + the waveform."""
        end = self.now_s + float(wave.duration_s)
        for slot in self._array_slots(terminal):
            self._sync(slot)
            self._array_refresh(slot)
            dut = slot.dut
            lines = [(letter, index, dut.line_voltage(letter, index) - own)
                     for s, letter, index in self._array_lines[terminal] if s is slot]
            dut.drive_lines(lines, wave)
            slot.t_s = end

    def _array_measure(self, terminal: str, aperture: float, limit_a: float | None) -> Reading:
        """``measure`` for a terminal on array lines: the current it sources into them at
        mid-aperture (sign: into ``r<i>`` the row's cell currents, into ``s<j>`` minus the
        column's), plus its plain ports. In compliance the current is held at the limit and a
        single line's voltage drops to where it conducts it (until a level changes); with
        several targets the reading is clamped and the voltage reported is the source level.
        """
        now = self.now_s = self.now_s + aperture / 2
        v_dev = self.levels.get(terminal, 0.0)
        lines = self._array_lines[terminal]
        total_i, tripped = 0.0, False
        for slot in self._array_slot_list[terminal]:
            dt = now - slot.t_s  # _sync, inlined (one reading per sense channel and step)
            if dt > 0:
                slot.dut.hold(slot.v, dt)
                slot.t_s = now
            self._array_refresh(slot)
        reads = self._array_reads.get(terminal)
        if reads is None:
            reads = self._array_read_plan(terminal)
        for slot, letter, index in reads:
            total_i += slot.dut.read_line(letter, index)
        plain = self._targets.get(terminal, ())
        for slot, _port, main in plain:
            self._sync(slot)
            if main:
                got = self._read_port(slot, limit_a, 0.0)
                if got is not None:
                    total_i += got[0]
                    tripped = tripped or got[2]
        if limit_a is not None and abs(total_i) >= limit_a * (1 - 1e-9):
            total_i = limit_a if total_i > 0 else -limit_a
            tripped = True
            if len(lines) == 1 and not plain:
                slot, letter, index = lines[0]
                v_dev = slot.dut.line_voltage_at(letter, index, total_i)
                slot.dut.set_line(letter, index, v_dev)
        self.now_s += aperture / 2
        return _new_tuple(Reading, (total_i, v_dev, tripped, self.now_s))

    # ------------------------------------------------------------------ spike outputs
    def spikes(self, terminal: str, t_start_s: float, t_stop_s: float) -> list[SpikeTrain]:
        """The soma spikes in ``[t_start_s, t_stop_s)`` of every unit whose ``out`` port
        ``terminal`` is wired to, each unit brought up to now first (for a counter)."""
        trains = []
        for slot, port, _main in self._targets.get(terminal, ()):
            if port != "out" or slot.kind != "unit":
                continue
            self._sync(slot)
            dut = slot.dut
            times = dut.spike_times
            lo = bisect_left(times, t_start_s)
            hi = max(bisect_left(times, t_stop_s), lo)
            unit = dut.unit
            p, r_load = unit.soma.p, float(unit.r_load)
            r_off, r_on = float(p["r_off_ohm"][0]), float(p["r_on_ohm"][0])
            node_th = float(p["v_th_v"][0]) * (r_off + r_load) / r_off
            trains.append(SpikeTrain(np.asarray(times[lo:hi], dtype=float),
                                     node_th / (r_off + r_load),
                                     (node_th - float(p["v_on0_v"][0])) / (r_on + r_load),
                                     float(dut.charge_c), r_load))
        return trains

    # ------------------------------------------------------------------ switch matrix
    def close_route(self, crosspoint: str, links: list[tuple[str, str]]) -> None:
        """Close a matrix crosspoint joining terminals to device ports (``links`` of it)."""
        self.switch_routes((), [(crosspoint, links)])

    def open_route(self, crosspoint: str) -> None:
        self.switch_routes([crosspoint], ())

    def switch_routes(self, opening: Sequence[str],
                      closing: Sequence[tuple[str, list[tuple[str, str]]]]) -> None:
        """Open and close several crosspoints at one instant (one relay operation of a
        matrix): the devices they touch are brought up to now, the wiring is rebuilt once."""
        removed: list[tuple[str, tuple[str, str]]] = []
        for crosspoint in opening:
            removed += self.routes.pop(crosspoint, None) or []
        added: list[tuple[str, tuple[str, str]]] = []
        for crosspoint, links in closing:
            pairs = [(t, self._port(p, f"route {crosspoint}")) for t, p in links]
            self.routes[crosspoint] = pairs
            added += pairs
        if not added and not removed:
            return
        slots = [self.slots[n] for n in dict.fromkeys(n for _t, (n, _p) in added + removed)]
        for slot in slots:
            self._sync(slot)
        self._relink(added, removed)
        for slot in slots:
            self._refresh(slot)

    # ------------------------------------------------------------------ probe stations
    def station(self, name: str) -> ProbeStation:
        """The probe station (``bench.wafer.<name>``) a simulated prober moves."""
        found = self.stations.get(name)
        if found is None:
            raise ParameterError(f"bench.wafer: no probe station {name!r}; stations: "
                                 f"{', '.join(self.stations) or 'none'}")
        return found

    # ------------------------------------------------------------------ inspection
    def device(self, name: str) -> Any:
        """The DUT object of a named device, brought up to the present (for tests and demos)."""
        slot = self.slots[name]
        self._sync(slot)
        return slot.dut

    def terminals(self) -> list[str]:
        return sorted(self._links)


def _int(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ParameterError(f"{where} = {value!r}: must be an integer")
    return int(value)


def _float(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ParameterError(f"{where} = {value!r}: must be a number >= 0")
    return float(value)


#: Device kinds a probe needle can land on (those ``Wafer.scale_for`` knows).
PROBE_KINDS = ("dendrite", "soma", "synapse")


class ProbeStation:
    """A chuck holding one simulated wafer under needles wired to instrument terminals.

    Bench file (``bench.wafer.<station>``, the station named by the prober's ``station``
    option, default its resource ``name``)::

        wafer:
          sentio:
            id: 1                      # wafer id (keys its variation); default bench.wafer_id
            params: {a_r: 0.1}         # overrides of the models' ``wafer`` section
            probe: {probe_smu/1: dendrite}   # terminal -> device kind[.port] under the needle

    In contact at (die, site) the probe terminals are wired (a bench route named
    ``probe:<station>``) to the device there: built on first contact from its wafer keys, the
    wafer's parameter scales and its defect state, kept afterwards with its own state (while
    separated its ports are open, so it relaxes at 0 V over the bench time that passes).
    """

    def __init__(self, bench: Bench, name: str, spec: object) -> None:
        where = f"bench.wafer.{name}"
        spec = _mapping(spec, where)
        unknown = set(spec) - {"id", "params", "probe"}
        if unknown:
            raise ParameterError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; "
                                 "known: id, params, probe")
        self.bench, self.name = bench, name
        self.wafer_id = _int(spec.get("id", bench.wafer_id), f"{where}.id")
        params = dict(_mapping(spec.get("params"), f"{where}.params"))
        fields = {f.name for f in dataclasses.fields(bench.models.wafer)}
        bad = set(params) - fields
        if bad:
            raise ParameterError(f"{where}.params: unknown wafer parameter(s) "
                                 f"{', '.join(sorted(bad))}; see the models' wafer section")
        self.params = bench.models.wafer.replace(**params) if params else bench.models.wafer
        self.probe: list[tuple[str, str, str]] = []     # (terminal, kind, port)
        for term, target in _mapping(spec.get("probe"), f"{where}.probe").items():
            kind, _, port = str(target).partition(".")
            if kind not in PROBE_KINDS:
                raise ParameterError(f"{where}.probe.{term} = {target!r}: the kind must be one "
                                     f"of {', '.join(PROBE_KINDS)}")
            port = port or PORTS[kind][0]
            if port not in PORTS[kind]:
                raise ParameterError(f"{where}.probe.{term}: a {kind} has no port {port!r}; "
                                     f"ports: {', '.join(PORTS[kind])}")
            self.probe.append((str(term), kind, port))
        self._wafer: Any = None
        self.contact: tuple[int, str] | None = None

    @property
    def wafer(self) -> Any:
        """The station's ``Wafer`` (built on first use)."""
        if self._wafer is None:
            from sim_backend.physics.wafer import Wafer

            self._wafer = Wafer(self.params, seed=self.bench.seed, wafer_id=self.wafer_id)
        return self._wafer

    @property
    def route_id(self) -> str:
        return f"probe:{self.name}"

    def slot_name(self, die: int, site: str, kind: str) -> str:
        """The bench slot of the device of ``kind`` at (die, site) (no dots: see ``_port``)."""
        return f"{self.name}:{die}:{site}:{kind}"

    def _slot(self, die: int, site: str, kind: str) -> _Slot:
        bench = self.bench
        name = self.slot_name(die, site, kind)
        slot = bench.slots.get(name)
        if slot is None:
            from sim_backend import duts

            wafer = self.wafer
            row = wafer.sites[wafer.site_index(die, site):][:1]
            scale = wafer.scale_for(kind, row)
            defect = int(wafer.defects(row)[0])
            dut = duts.make(kind, bench.models, wafer.keys(row), scale=scale, defect=defect)
            slot = bench.slots[name] = _Slot(name, kind, dut, t_s=bench.now_s)
        return slot

    def device(self, die: int, site: str, kind: str | None = None) -> Any:
        """The DUT at (die, site) (built if needed, brought up to the present)."""
        kind = kind or (self.probe[0][1] if self.probe else "dendrite")
        slot = self._slot(die, site, kind)
        self.bench._sync(slot)
        return slot.dut

    def touch_down(self, die: int, site: str) -> None:
        """Needles down on (die, site): the probe terminals reach the devices there."""
        if self.contact == (die, site):
            return
        self.lift()
        links = [(term, f"{self._slot(die, site, kind).name}.{port}")
                 for term, kind, port in self.probe]
        if links:
            self.bench.close_route(self.route_id, links)
        self.contact = (die, site)

    def lift(self) -> None:
        """Needles up: the probe terminals are open."""
        if self.contact is not None:
            self.bench.open_route(self.route_id)
            self.contact = None

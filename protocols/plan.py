"""Compile a validated protocol into a Plan: loops expanded, every step checked, bounded and timed.

Pure computation before any I/O: it must not open instruments or import the simulator. Instrument
limits come from the driver model tables in ``instruments``, looked up by the bench's model names.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dendrolab.errors import ProtocolError, clip, show
from instruments.base import UserLimits
from instruments.counter import SLOPES, frequency_timeout_s
from instruments.factory import lookup_model
from protocols.schema import (
    DEVICE_ID,
    Action,
    LocatedProtocolError,
    Loop,
    Node,
    Protocol,
    Where,
    fmt_num,
    load_protocol,
    node_size,
)

PLAN_FORMAT = "dendrolab-plan"
PLAN_VERSION = 1

ACTIONS = (
    "smu.setup",
    "smu.read",
    "smu.linear_sweep",
    "smu.list_sweep",
    "smu.pulsed_sweep",
    "smu.write_verify",
    "smu.off",
    "pulse.train",
    "pulse.arb",
    "matrix.route",
    "matrix.open_all",
    "counter.start",
    "counter.fetch",
    "counter.frequency",
    "wait",
)
# action prefix -> driver kind
CAPABILITY = {"smu": "smu", "pulse": "pulse", "matrix": "matrix", "counter": "counter"}

# Plan steps after loop expansion. A step is a Python object, a journal entry and an HDF5 group in
# the run file: 10^6 of them took 1.5 GB and 16-45 s only to check; 10^5 check in under 2 s and
# about 130 MB. Many repetitions belong inside one step (``count``, ``cycles``, a sweep's points).
MAX_STEPS = 100_000
MAX_POINTS_PER_STEP = 1_000_000  # recorded points (or sweep levels) of one step
MAX_TOTAL_POINTS = 100_000_000  # recorded points of a whole plan
MAX_ARB_SAMPLES = 16_000_000  # arbitrary-waveform samples when the model is unknown
ARB_POINTS_MIN = 8  # fewest arbitrary-waveform samples we ever generate
LINE_FREQUENCY_HZ = 50.0  # 50 Hz gives the longer NPLC time: conservative for time and energy
POINT_OVERHEAD_S = 1e-3  # per-measurement overhead when the model is unknown
HOST_STEP_S = 1e-3  # estimated host time of a configuration step (setup, route, off)
COUNTER_GATE_MIN_S = 1e-6  # counter gate limits when the model is unknown (53230A, 1 us steps)
COUNTER_GATE_MAX_S = 1000.0
COUNTER_GATE_STEP_S = 1e-6
COUNTER_IMPEDANCES_OHM = (50.0, 1e6)
COUNTER_RANGES_V = (5.0, 50.0)
RECORD_DTYPE = "float64"

LoopValue = int | float | str  # a loop variable's value as the protocol gives it


@functools.lru_cache(maxsize=64)
def _lookup(model: str) -> Any:
    return lookup_model(model)


class ProtocolLimitError(LocatedProtocolError):
    """A plan step breaks a protocol, bench or instrument limit (message names file:line: field)."""


@dataclass(frozen=True)
class RoleInfo:
    """What the bench says about a role: model (e.g. ``"2450"``), user limits, default channel."""

    model: str | None
    limits: UserLimits = field(default_factory=UserLimits)
    channel: int = 1
    load_ohm: float = math.inf  # pulse generators: the load they drive (inf = high-Z)


def roles_from_bench_config(config: Any) -> dict[str, RoleInfo]:
    """RoleInfo for every role of an ``instruments.BenchConfig`` (roles without a model too)."""
    out = {}
    for name, rc in config.roles.items():
        load = rc.options.get("load_ohm", math.inf) if rc.options else math.inf
        try:
            load_ohm = float(load)
        except (TypeError, ValueError):
            load_ohm = math.inf
        out[name] = RoleInfo(model=rc.model, limits=rc.limits, channel=rc.channel,
                             load_ohm=load_ohm)
    return out


# ---------------------------------------------------------------------------------------------
# Plan data.


@dataclass(frozen=True)
class PlanStep:
    """One instrument-level step: an action from ``ACTIONS`` with SI params and its bounds.

    ``energy_j`` is an upper bound (|V| x compliance x source-on time); ``records`` maps dataset
    name -> (units, points); ``line``/``field`` point back into the protocol file.
    """

    index: int
    name: str
    role: str | None
    channel: int | None
    action: str
    params: Mapping[str, Any]
    timing: str  # "hardware" or "pc"
    duration_s: float
    v_max_v: float
    i_max_a: float
    energy_j: float
    records: Mapping[str, tuple[str, int]]
    device: str | None = None
    start_s: float = 0.0
    line: int | None = None
    field: str | None = None
    loop_vars: Mapping[str, LoopValue] = dataclasses.field(default_factory=dict)

    def executed(self) -> dict[str, Any]:
        """What the runner does (hashed): no estimates, no file positions."""
        return {
            "index": self.index,
            "name": self.name,
            "role": self.role,
            "channel": self.channel,
            "device": self.device,
            "action": self.action,
            "params": dict(self.params),
            "timing": self.timing,
            "records": {k: [u, n] for k, (u, n) in self.records.items()},
        }

    def to_dict(self) -> dict[str, Any]:
        out = self.executed()
        out.update(
            duration_s=self.duration_s,
            start_s=self.start_s,
            v_max_v=self.v_max_v,
            i_max_a=self.i_max_a,
            energy_j=self.energy_j,
            line=self.line,
            field=self.field,
            loop_vars=dict(self.loop_vars),
        )
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlanStep:
        return cls(
            index=int(data["index"]),
            name=str(data["name"]),
            role=data["role"],
            channel=data["channel"],
            action=str(data["action"]),
            params=dict(data["params"]),
            timing=str(data["timing"]),
            duration_s=float(data["duration_s"]),
            v_max_v=float(data["v_max_v"]),
            i_max_a=float(data["i_max_a"]),
            energy_j=float(data["energy_j"]),
            records={k: (str(v[0]), int(v[1])) for k, v in data["records"].items()},
            device=data.get("device"),
            start_s=float(data.get("start_s", 0.0)),
            line=data.get("line"),
            field=data.get("field"),
            loop_vars=_loop_vars(data.get("loop_vars", {})),
        )


def _loop_vars(data: Any) -> dict[str, LoopValue]:
    """Loop variables read back from JSON (absent in plans written before they existed)."""
    if not isinstance(data, dict):
        raise ValueError(f"loop_vars must be a mapping, got {show(data)}")
    for key, value in data.items():
        if not isinstance(key, str) or isinstance(value, bool) or not isinstance(
                value, (int, float, str)):
            raise ValueError(f"loop_vars {show(key)}: {show(value)} is not a number or text")
    return dict(data)


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def steps_hash(steps: Sequence[PlanStep]) -> str:
    """sha256 of the canonical JSON of what the steps execute (not of estimates or lines).

    Hashed step by step: the same digest as hashing the JSON list at once, without building it.
    ``loop_vars`` are not hashed: they label a step (as its name, which is hashed, already does)
    but change nothing it executes, and plans written before they existed still verify.
    """
    digest = hashlib.sha256(b"[")
    sep = b""
    for s in steps:
        digest.update(sep + _canonical(s.executed()).encode())
        sep = b","
    digest.update(b"]")
    return digest.hexdigest()


@dataclass(frozen=True)
class Plan:
    """A checked, timed list of steps; the contract between ``dendrolab check`` and the runner."""

    protocol: str
    description: str
    figure: str
    device: str | None
    source: str
    source_sha256: str
    limits: Mapping[str, float | None]
    steps: tuple[PlanStep, ...]
    duration_s: float
    energy_j: float
    hash: str
    bench: Mapping[str, str | None] | None  # role -> model checked against; None: no bench
    line_frequency_hz: float = LINE_FREQUENCY_HZ
    warnings: tuple[str, ...] = ()

    @property
    def bench_checked(self) -> bool:
        return self.bench is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PLAN_FORMAT,
            "version": PLAN_VERSION,
            "protocol": self.protocol,
            "description": self.description,
            "figure": self.figure,
            "device": self.device,
            "source": self.source,
            "source_sha256": self.source_sha256,
            "limits": dict(self.limits),
            "bench": dict(self.bench) if self.bench is not None else None,
            "line_frequency_hz": self.line_frequency_hz,
            "duration_s": self.duration_s,
            "energy_j": self.energy_j,
            "hash": self.hash,
            "warnings": list(self.warnings),
            "steps": [s.to_dict() for s in self.steps],
        }

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        """Rebuild a plan written by ``to_json``; the step hash must still match."""
        try:
            data = json.loads(text)
            if data.get("format") != PLAN_FORMAT or data.get("version") != PLAN_VERSION:
                raise ValueError(f"not a {PLAN_FORMAT} version {PLAN_VERSION} document")
            steps = tuple(PlanStep.from_dict(s) for s in data["steps"])
            plan = cls(
                protocol=data["protocol"],
                description=data["description"],
                figure=data["figure"],
                device=data["device"],
                source=data["source"],
                source_sha256=data["source_sha256"],
                limits=data["limits"],
                steps=steps,
                duration_s=float(data["duration_s"]),
                energy_j=float(data["energy_j"]),
                hash=data["hash"],
                bench=data["bench"],
                line_frequency_hz=float(data["line_frequency_hz"]),
                warnings=tuple(data["warnings"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ProtocolError(f"not a valid plan JSON: {clip(str(exc), 200)}") from None
        if steps_hash(steps) != plan.hash:
            raise ProtocolError("plan JSON was modified: its steps do not match its hash")
        return plan

    def data_layout(self) -> dict[str, Any]:
        """Datasets the run file will hold, per step: dtype, units and (maximum) points."""
        layout = {}
        for s in self.steps:
            if not s.records:
                continue
            exact = s.action != "smu.write_verify"
            layout[s.name] = {
                "index": s.index,
                "action": s.action,
                "datasets": {
                    name: {"dtype": RECORD_DTYPE, "units": units, "points": points,
                           "exact": exact}
                    for name, (units, points) in s.records.items()
                },
            }
        return {"version": PLAN_VERSION, "steps": layout}

    @property
    def points(self) -> int:
        return sum(n for s in self.steps for _, n in list(s.records.values())[:1])

    def summary(self, max_steps: int = 12) -> list[str]:
        """Human-readable lines for ``dendrolab check``."""
        fig = f" ({self.figure})" if self.figure else ""
        lim = self.limits
        v_peak = max((s.v_max_v for s in self.steps), default=0.0)
        i_peak = max((s.i_max_a for s in self.steps), default=0.0)
        counts = Counter(s.action for s in self.steps)
        recorded = [s for s in self.steps if s.records]
        quantities = list(dict.fromkeys(name for s in recorded for name in s.records))
        lines = [
            f"protocol {self.protocol}{fig}: {self.description}".rstrip(": "),
            f"source {self.source}  device {self.device or '-'}",
        ]
        if self.bench is None:
            lines.append("checked against protocol limits only: no bench information, so "
                         "instrument and bench limits were NOT checked")
        else:
            models = ", ".join(f"{r}={m or '?'}" for r, m in sorted(self.bench.items()))
            lines.append(f"checked against protocol limits and the bench: {models}")
        lines += [
            f"steps {len(self.steps)}: "
            + ", ".join(f"{a} x{n}" for a, n in sorted(counts.items())),
            f"duration ~{_si(self.duration_s, 's')} (estimate; 1 PLC = "
            f"{1e3 / self.line_frequency_hz:g} ms)",
            f"energy bound {_si(self.energy_j, 'J')} of {_si(lim['energy_max_j'] or 0, 'J')};"
            f" peak |V| {_si(v_peak, 'V')} (limit {_si(lim['voltage_max_v'] or 0, 'V')}); "
            f"peak compliance {_si(i_peak, 'A')} (limit {_si(lim['current_max_a'] or 0, 'A')})",
            f"records: {len(recorded)} steps, {self.points} points per quantity "
            f"({', '.join(quantities) or 'none'}; {RECORD_DTYPE})",
            f"plan hash sha256:{self.hash}",
        ]
        lines += [f"warning: {w}" for w in self.warnings]
        shown = self.steps if len(self.steps) <= max_steps else self.steps[: max_steps - 2]
        for s in shown:
            lines.append(_step_line(s))
        if len(shown) < len(self.steps):
            lines.append(f"  ... {len(self.steps) - len(shown) - 1} more steps ...")
            lines.append(_step_line(self.steps[-1]))
        return lines


def _si(value: float, unit: str) -> str:
    if value == 0 or not math.isfinite(value):
        return f"{value:g} {unit}"
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"),
                          (1e-6, "u"), (1e-9, "n"), (1e-12, "p")):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def _step_line(s: PlanStep) -> str:
    target = f"{s.role}/{s.channel}" if s.role else "-"
    return (f"  [{s.index:>4}] {s.action:<17} {target:<12} {_si(s.duration_s, 's'):>9}  "
            f"{s.name}")


# ---------------------------------------------------------------------------------------------
# Compiler.


@dataclass
class _Setup:
    limit_a: float
    integration_s: float
    device: str | None


@dataclass(frozen=True)
class _Target:
    name: str  # the protocol's instrument name
    role: str  # the bench role
    channel: int
    device: str | None
    model: Any  # (capability, spec, normalised model) or None
    info: RoleInfo | None
    where: Where

    @property
    def label(self) -> str:
        return f"{self.role}/{self.channel}"

    @property
    def spec(self) -> Any:
        return self.model[1] if self.model else None

    def model_name(self) -> str:
        return self.spec.name if self.spec is not None else "?"


@dataclass(frozen=True)
class _Gate:
    """A totalize gate opened by a count_start: when (plan time), how long, where in the file."""

    opens_s: float
    gate_s: float
    level_v: float
    index: int
    name: str
    label: str
    where: Where


@dataclass
class _Leaf:
    """What an action compiles to, before the index, name and bounds checks are applied."""

    action: str
    target: _Target | None
    params: dict[str, Any]
    timing: str
    duration_s: float
    v_max_v: float
    i_max_a: float
    energy_j: float
    records: dict[str, tuple[str, int]] = field(default_factory=dict)


def compile_protocol(
    protocol: Protocol | str | os.PathLike[str],
    bench_roles: Mapping[str, RoleInfo] | None = None,
    *,
    device: str | None = None,
    max_steps: int = MAX_STEPS,
    line_frequency_hz: float = LINE_FREQUENCY_HZ,
) -> Plan:
    """Expand, check and time a protocol (or a protocol file) into a Plan, before any I/O.

    With ``bench_roles`` every step is also checked against its role's model table and user
    limits; without it only the protocol's own limits are checked (the plan says so).
    ``device`` overrides the protocol's device id.
    """
    if not isinstance(protocol, Protocol):
        protocol = load_protocol(protocol)
    if line_frequency_hz not in (50.0, 60.0):
        raise ProtocolError(f"line_frequency_hz must be 50 or 60, got {line_frequency_hz}")
    if device is not None and not DEVICE_ID.fullmatch(device):
        raise ProtocolError(f"device id {show(device)} must match {DEVICE_ID.pattern}")
    return _Compiler(protocol, bench_roles, device, max_steps, line_frequency_hz).run()


def check_file(
    path: str | os.PathLike[str], bench_roles: Mapping[str, RoleInfo] | None = None, **kw: Any
) -> Plan:
    """Load, validate and compile one protocol file (what ``dendrolab check FILE`` does)."""
    return compile_protocol(load_protocol(path), bench_roles, **kw)


class StepNames:
    """Unique step names in linear time: a repeated name gets the first free ``#2``, ``#3``, ...

    Each base name remembers the next suffix to try, so n steps sharing a name cost O(n) set
    lookups in all (``probes`` counts them), not O(n^2). Names only accumulate, so a suffix
    passed over once never becomes free again: the result is the same as trying 2, 3, ... anew.
    """

    def __init__(self) -> None:
        self.taken: set[str] = set()
        self.next_suffix: dict[str, int] = {}
        self.probes = 0

    def unique(self, name: str) -> str:
        self.probes += 1
        if name in self.taken:
            k = self.next_suffix.get(name, 2)
            while True:
                self.probes += 1
                candidate = f"{name}#{k}"
                if candidate not in self.taken:
                    break
                k += 1
            self.next_suffix[name] = k + 1
            name = candidate
        self.taken.add(name)
        return name

    def __contains__(self, name: object) -> bool:
        return name in self.taken

    def __len__(self) -> int:
        return len(self.taken)


class _Compiler:
    def __init__(
        self,
        protocol: Protocol,
        bench: Mapping[str, RoleInfo] | None,
        device: str | None,
        max_steps: int,
        line_frequency_hz: float,
    ) -> None:
        self.p = protocol
        self.lim = protocol.limits
        self.bench = bench
        self.device = device or protocol.device
        self.max_steps = max_steps
        self.lf = line_frequency_hz
        self.steps: list[PlanStep] = []
        self.names = StepNames()
        self.setups: dict[tuple[str, int], _Setup] = {}
        self.uses: dict[str, tuple[str, Where]] = {}
        self.energy = 0.0
        self.time = 0.0
        self.points = 0
        self.warnings: list[str] = []
        self.current: tuple[int, str] | None = None
        self.checked_models: dict[str, str | None] = {}
        self.targets: dict[tuple[Any, ...], _Target] = {}
        self.volt_bounds: dict[tuple[Any, ...], list[tuple[float, float, str]]] = {}
        self.arb_names: dict[str, str] = {}
        #: counter (role, channel) -> the totalize gate a count_start opened, until count_fetch
        self.gates: dict[tuple[str, int], _Gate] = {}

    # --- errors --------------------------------------------------------------------------------

    def fail(self, where: Where, message: str) -> ProtocolLimitError:
        step = f" [step {self.current[0]} {show(self.current[1], 120)}]" if self.current else ""
        return ProtocolLimitError(
            f"{where.text()}: {message}{step}",
            source=where.source,
            line=where.line,
            field=where.path,
            step=self.current[1] if self.current else None,
        )

    # --- driver ----------------------------------------------------------------------------

    def run(self) -> Plan:
        total = 0
        for node in self.p.steps:
            total += node_size(node)
            if total > self.max_steps:
                raise self.fail(
                    node.where,
                    f"the plan would have {self.p.size:,} steps, more than the cap of "
                    f"{self.max_steps:,}; this part expands to {node_size(node):,} (repeat "
                    "inside a step instead: read count, pulses count, spike_train cycles)",
                )
        self._expand(self.p.steps, {}, ())
        for gate in self.gates.values():
            self.current = (gate.index, gate.name)
            raise self.fail(gate.where, f"this count_start on {gate.label} is never fetched: "
                                        "add a count_fetch on the same counter after it")

        if self.bench is None:
            self.warnings.insert(0, "no bench information: instrument limits not checked")
        steps = tuple(self.steps)
        return Plan(
            protocol=self.p.name,
            description=self.p.description,
            figure=self.p.figure,
            device=self.device,
            source=self.p.source,
            source_sha256=self.p.text_sha256,
            limits=self.lim.as_dict(),
            steps=steps,
            duration_s=self.time,
            energy_j=self.energy,
            hash=steps_hash(steps),
            bench=None if self.bench is None else dict(self.checked_models),
            line_frequency_hz=self.lf,
            warnings=tuple(self.warnings),
        )

    def _expand(self, nodes: Sequence[Node], env: Mapping[str, Any], path: tuple[str, ...]
                ) -> None:
        """Depth-first expansion; ``env`` (the loop variables, outermost first) is one shared,
        never mutated dict per loop iteration: it becomes every step's ``loop_vars``."""
        for node in nodes:
            if isinstance(node, Loop):
                head = (*path, node.name) if node.name else path
                for value in node.values:
                    self._expand(node.body, {**env, node.var: value},
                                 (*head, f"{node.var}={_label(value)}"))
            else:
                self._action(node, env, path)

    def _action(self, node: Action, env: Mapping[str, Any], path: tuple[str, ...]) -> None:
        index = len(self.steps)
        self.current = (index, f"step {index}")
        fields = node.resolve(env)
        leaf_name = fields.get("name") or node.keyword.split(".")[0]
        name = self.names.unique("/".join((*path, leaf_name)))
        self.current = (index, name)
        compile_leaf = getattr(self, "_c_" + node.keyword.replace(".", "_"))
        leaf: _Leaf = compile_leaf(node, fields)
        self._bounds(node, leaf)
        step = PlanStep(
            index=index,
            name=name,
            role=leaf.target.role if leaf.target else None,
            channel=leaf.target.channel if leaf.target else None,
            action=leaf.action,
            params=leaf.params,
            timing=leaf.timing,
            duration_s=leaf.duration_s,
            v_max_v=leaf.v_max_v,
            i_max_a=leaf.i_max_a,
            energy_j=leaf.energy_j,
            records=leaf.records,
            device=leaf.target.device if leaf.target else None,
            start_s=self.time,
            line=node.where.line,
            field=node.where.path,
            loop_vars=env,
        )
        self.steps.append(step)
        self.time += leaf.duration_s
        self.current = None

    def _bounds(self, node: Action, leaf: _Leaf) -> None:
        """Per-step and cumulative energy, power, duration and point counts."""
        lim, w = self.lim, node.where
        numbers = (leaf.duration_s, leaf.energy_j, leaf.v_max_v, leaf.i_max_a)
        if not all(math.isfinite(x) for x in numbers):
            raise self.fail(w, "duration or energy bound is not finite (values far too large)")
        if lim.step_energy_max_j is not None and leaf.energy_j > lim.step_energy_max_j:
            raise self.fail(w, f"energy bound {fmt_num(leaf.energy_j)} J exceeds "
                               f"limits.step_energy_max_j = {fmt_num(lim.step_energy_max_j)} J")
        power = leaf.v_max_v * leaf.i_max_a
        if lim.power_max_w is not None and power > lim.power_max_w:
            raise self.fail(w, f"peak power bound {fmt_num(power)} W (|V| {fmt_num(leaf.v_max_v)}"
                               f" V x {fmt_num(leaf.i_max_a)} A) exceeds limits.power_max_w = "
                               f"{fmt_num(lim.power_max_w)} W")
        self.energy += leaf.energy_j
        if self.energy > lim.energy_max_j:
            raise self.fail(w, f"cumulative energy bound reaches {fmt_num(self.energy)} J at "
                               f"this step, above limits.energy_max_j = "
                               f"{fmt_num(lim.energy_max_j)} J")
        end = self.time + leaf.duration_s
        if lim.duration_max_s is not None and end > lim.duration_max_s:
            raise self.fail(w, f"estimated time reaches {fmt_num(end)} s at this step, above "
                               f"limits.duration_max_s = {fmt_num(lim.duration_max_s)} s")
        points = max((n for _, n in leaf.records.values()), default=0)
        if points > MAX_POINTS_PER_STEP:
            raise self.fail(w, f"{points:,} recorded points in one step; at most "
                               f"{MAX_POINTS_PER_STEP:,}")
        self.points += points
        if self.points > MAX_TOTAL_POINTS:
            raise self.fail(w, f"the plan records more than {MAX_TOTAL_POINTS:,} points")

    # --- targets ---------------------------------------------------------------------------

    def _target(self, node: Action, fields: Mapping[str, Any], capability: str,
                role_key: str = "role", channel_key: str = "channel") -> _Target:
        """The bench role, channel, model and device a step's instrument name stands for."""
        key = (fields[role_key], fields.get(channel_key), capability)
        cached = self.targets.get(key)
        if cached is not None:
            return cached
        target = self._new_target(node, fields, capability, role_key, channel_key)
        self.targets[key] = target
        return target

    def _new_target(self, node: Action, fields: Mapping[str, Any], capability: str,
                    role_key: str, channel_key: str) -> _Target:
        name = fields[role_key]
        decl = self.p.instruments[name]
        where = node.wheres.get(role_key, node.where)
        info: RoleInfo | None = None
        model = None
        if self.bench is not None:
            if decl.role not in self.bench:
                raise self.fail(decl.where, f"the bench has no role {decl.role!r} (used by "
                                            f"{node.where.path}); bench roles: "
                                            f"{clip(', '.join(sorted(self.bench)), 300)}")
            info = self.bench[decl.role]
            self.checked_models[decl.role] = info.model
            if info.model is not None:
                found = _lookup(info.model)
                if found is None:
                    raise self.fail(decl.where, f"bench role {decl.role!r} has model "
                                                f"{show(info.model)}, which no driver table "
                                                "knows")
                driver, spec, normalised = found
                if driver.capability != capability:
                    raise self.fail(where, f"{name!r} is bench role {decl.role!r}, a {spec.name}"
                                           f" ({driver.capability}); this step needs a "
                                           f"{capability}")
                model = (driver.capability, spec, normalised)
            else:
                self._warn(f"role {decl.role!r}: no model given; its instrument limits were "
                           "not checked")
        seen = self.uses.get(decl.role)
        if seen is not None and seen[0] != capability:
            raise self.fail(where, f"bench role {decl.role!r} is used as a {seen[0]} at "
                                   f"{seen[1].text()} and as a {capability} here")
        self.uses.setdefault(decl.role, (capability, where))
        channel = fields.get(channel_key)
        if channel is None:
            channel = decl.channel if decl.channel is not None else (info.channel if info else 1)
        if model is not None and channel not in model[1].channels:
            cw = node.wheres.get(channel_key, decl.where)
            raise self.fail(cw, f"{model[1].name} (role {decl.role!r}) has no channel {channel};"
                                f" channels: {sorted(model[1].channels)}")
        device = decl.device if decl.device is not None else self.device
        return _Target(name, decl.role, int(channel), device, model, info, where)

    def _warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)

    def _setup_of(self, node: Action, t: _Target) -> _Setup:
        setup = self.setups.get((t.role, t.channel))
        if setup is None:
            raise self.fail(node.where, f"{t.name!r} ({t.label}) sources voltage here but no "
                                        "smu_setup came before it: set its compliance first")
        return setup

    # --- shared checks -----------------------------------------------------------------------

    def _w(self, node: Action, key: str) -> Where:
        return node.wheres.get(key) or node.where.key(key)

    def _volts(self, node: Action, key: str, values: Sequence[float], t: _Target | None,
               kind: str = "smu") -> None:
        """Every level against protocol limits, bench user limits and the model maximum."""
        if not values:
            return
        w = self._w(node, key)
        if not all(math.isfinite(v) for v in values):
            raise self.fail(w, "levels must be finite numbers")
        hi, lo = max(values), min(values)
        bounds = self._volt_bounds(t, kind)
        for low, high, what in bounds:
            if hi > high or lo < low:
                bad = hi if hi > high else lo
                at = ""
                if len(values) > 1:
                    at = f" (value #{list(values).index(bad)})"
                raise self.fail(w, f"{fmt_num(bad)} V{at} is outside [{fmt_num(low)}, "
                                   f"{fmt_num(high)}] V ({what})")

    def _volt_bounds(self, t: _Target | None, kind: str) -> list[tuple[float, float, str]]:
        """(low, high, what) voltage windows for a target: protocol, bench user, model."""
        cache_key = (id(t), kind)
        cached = self.volt_bounds.get(cache_key)
        if cached is not None:
            return cached
        bounds = [(self.lim.voltage_min_v, self.lim.voltage_max_v,
                   "protocol limits voltage_min_v..voltage_max_v")]
        if t is not None and t.info is not None:
            ul = t.info.limits
            bounds.append((ul.voltage_min_v, ul.voltage_max_v, f"bench limits of role {t.role!r}"))
        if t is not None and t.spec is not None:
            if kind == "pulse":
                pl = t.spec.limits
                load = t.info.load_ohm if t.info else math.inf
                m = (pl.open_circuit_v_max if math.isinf(load)
                     else pl.open_circuit_v_max * load / (load + pl.source_impedance_ohm))
                bounds.append((-m, m, f"{t.model_name()} maximum into the load"))
            else:
                m = t.spec.limits.voltage_max_v
                bounds.append((-m, m, f"{t.model_name()} maximum"))
        self.volt_bounds[cache_key] = bounds  # targets are cached: their ids stay valid
        return bounds

    def _range(self, node: Action, key: str, value: float, low: float, high: float,
               unit: str, what: str) -> None:
        if not (low <= value <= high):
            u = f" {unit}" if unit else ""
            side = f"must be >= {fmt_num(low)}{u}" if value < low else \
                f"must be <= {fmt_num(high)}{u}"
            raise self.fail(self._w(node, key), f"{side} ({what}), got {fmt_num(value)}{u}")

    def _overhead(self, t: _Target) -> float:
        return t.spec.limits.point_overhead_s if t.spec is not None else POINT_OVERHEAD_S

    def _iv_records(self, n: int) -> dict[str, tuple[str, int]]:
        return {"voltage_v": ("V", n), "current_a": ("A", n), "time_s": ("s", n)}

    def _pulse_current(self, t: _Target) -> float:
        """Compliance of an SMU already set up on the same device, else the protocol's limit."""
        found = [s.limit_a for s in self.setups.values()
                 if t.device is not None and s.device == t.device]
        return max(found) if found else self.lim.current_max_a

    # --- SMU actions -------------------------------------------------------------------------

    def _c_smu_setup(self, node: Action, f: Mapping[str, Any]) -> _Leaf:
        t = self._target(node, f, "smu")
        limit = f["compliance_a"]
        cap, cap_what = self.lim.current_max_a, "protocol limit current_max_a"
        if t.info is not None and t.info.limits.current_max_a < cap:
            cap, cap_what = t.info.limits.current_max_a, f"bench limit of role {t.role!r}"
        if t.spec is not None and t.spec.limits.current_max_a < cap:
            cap, cap_what = t.spec.limits.current_max_a, f"{t.model_name()} maximum"
        self._range(node, "compliance_a", limit, 1e-15, cap, "A", cap_what)
        if f["nplc"] is not None and f["aperture_s"] is not None:
            raise self.fail(node.where, "give nplc or aperture_s, not both")
        nplc, aperture = f["nplc"], f["aperture_s"]
        if nplc is None and aperture is None:
            nplc = 1.0
        if t.spec is not None:
            lim = t.spec.limits
            has_aperture = t.spec.dialect.measure_aperture is not None
            if aperture is not None and has_aperture:
                self._range(node, "aperture_s", aperture, lim.aperture_min_s, lim.aperture_max_s,
                            "s", f"{t.model_name()} aperture range")
            else:
                key = "nplc" if aperture is None else "aperture_s"
                n = nplc if aperture is None else aperture * self.lf
                if not lim.nplc_min <= n <= lim.nplc_max:
                    raise self.fail(self._w(node, key), f"{fmt_num(n)} PLC is outside "
                                    f"{fmt_num(lim.nplc_min)}..{fmt_num(lim.nplc_max)} PLC "
                                    f"({t.model_name()} NPLC range)")
            if f["range_v"] is not None:
                self._range(node, "range_v", f["range_v"], 0, lim.voltage_max_v, "V",
                            f"{t.model_name()} maximum")
            if f["range_a"] is not None:
                self._range(node, "range_a", f["range_a"], 0, lim.current_max_a, "A",
                            f"{t.model_name()} maximum")
        if f["range_v"] is not None:
            self._volts(node, "range_v", [f["range_v"]], None)
        integration = aperture if aperture is not None else nplc / self.lf
        self.setups[(t.role, t.channel)] = _Setup(limit, integration, t.device)
        params = {"limit_a": limit, "range_v": f["range_v"], "nplc": nplc,
                  "aperture_s": aperture, "range_a": f["range_a"]}
        return _Leaf("smu.setup", t, params, "pc", HOST_STEP_S, 0.0, limit, 0.0)

    def _c_read(self, node: Action, f: Mapping[str, Any]) -> _Leaf:
        t = self._target(node, f, "smu")
        setup = self._setup_of(node, t)
        v, n = f["v"], f["count"]
        self._volts(node, "v", [v], t)
        self._range(node, "count", n, 1, MAX_POINTS_PER_STEP, "", "plan cap")
        dt = n * (f["delay_s"] + setup.integration_s + self._overhead(t))
        params = {"level_v": v, "count": n, "delay_s": f["delay_s"]}
        return _Leaf("smu.read", t, params, "pc", dt, abs(v), setup.limit_a,
                     abs(v) * setup.limit_a * dt, self._iv_records(n))

    def _sweep_common(self, node: Action, f: Mapping[str, Any], levels: Sequence[float],
                      table_max: str) -> tuple[_Target, _Setup]:
        t = self._target(node, f, "smu")
        setup = self._setup_of(node, t)
        n = len(levels)
        linear = table_max == "sweep_points_max"
        key = "points" if linear else "levels_v"
        self._range(node, key, n, 1, MAX_POINTS_PER_STEP, "", "plan cap on points per step")
        if t.spec is not None:
            self._range(node, key, n, 1, getattr(t.spec.limits, table_max), "",
                        f"{t.model_name()} {table_max.replace('_', ' ')}")
        if linear:
            self._volts(node, "start_v", [f["start_v"]], t)
            self._volts(node, "stop_v", [f["stop_v"]], t)
        else:
            self._volts(node, key, levels, t)
        return t, setup

    def _c_sweep_linear(self, node: Action, f: Mapping[str, Any]) -> _Leaf:
        n = f["points"]
        self._range(node, "points", n, 2, MAX_POINTS_PER_STEP, "", "plan cap on points per step")
        start, stop = f["start_v"], f["stop_v"]
        levels = [start + (stop - start) * k / (n - 1) for k in range(n)]
        t, setup = self._sweep_common(node, f, levels, "sweep_points_max")
        per_point = f["delay_s"] + setup.integration_s + self._overhead(t)
        params = {"start_v": start, "stop_v": stop, "points": n, "delay_s": f["delay_s"]}
        return _Leaf("smu.linear_sweep", t, params, "hardware", n * per_point,
                     max(abs(start), abs(stop)), setup.limit_a,
                     setup.limit_a * per_point * math.fsum(abs(v) for v in levels),
                     self._iv_records(n))

    def _c_sweep_list(self, node: Action, f: Mapping[str, Any]) -> _Leaf:
        levels = f["levels_v"]
        t, setup = self._sweep_common(node, f, levels, "list_points_max")
        per_point = f["delay_s"] + setup.integration_s + self._overhead(t)
        n = len(levels)
        params = {"levels_v": list(levels), "delay_s": f["delay_s"]}
        return _Leaf("smu.list_sweep", t, params, "hardware", n * per_point,
                     max(abs(v) for v in levels), setup.limit_a,
                     setup.limit_a * per_point * math.fsum(abs(v) for v in levels),
                     self._iv_records(n))

    def _c_sweep_pulsed(self, node: Action, f: Mapping[str, Any]) -> _Leaf:
        levels = f["levels_v"]
        t, setup = self._sweep_common(node, f, levels, "list_points_max")
        width, period, base = f["width_s"], f["period_s"], f["base_v"]
        self._volts(node, "base_v", [base], t)
        self._range(node, "period_s", period, 2 * width, math.inf, "s",
                    "duty cycle <= 50 %: period_s >= 2 x width_s")
        if t.spec is not None:
            lim = t.spec.limits
            if t.spec.dialect.pulsed_list_sweep is None or math.isnan(lim.pulse_width_min_s):
                raise self.fail(node.where, f"{t.model_name()} (role {t.role!r}) has no hardware"
                                            " pulse mode; use a pulse generator or a list sweep")
            self._range(node, "width_s", width, lim.pulse_width_min_s, lim.pulse_width_max_s,
                        "s", f"{t.model_name()} pulse width range")
        if setup.integration_s > 0.9 * width:
            raise self.fail(self._w(node, "width_s"), f"the integration time "
                            f"{fmt_num(setup.integration_s)} s (from smu_setup) does not fit in "
                            f"90 % of the {fmt_num(width)} s pulse; lower nplc/aperture_s")
        n = len(levels)
        on = math.fsum(abs(v) for v in levels) * width + n * abs(base) * (period - width)
        params = {"levels_v": list(levels), "width_s": width, "period_s": period, "base_v": base}
        return _Leaf("smu.pulsed_sweep", t, params, "hardware", n * period,
                     max(abs(base), *(abs(v) for v in levels)), setup.limit_a,
                     setup.limit_a * on, self._iv_records(n))

    def _c_output_off(self, node: Action, f: Mapping[str, Any]) -> _Leaf:
        t = self._target(node, f, "smu")
        return _Leaf("smu.off", t, {}, "pc", HOST_STEP_S, 0.0, 0.0, 0.0)

    def _c_write_verify(self, node: Action, f: Mapping[str, Any]) -> _Leaf:
        t = self._target(node, f, "smu")
        gate_fields = {"gate_role": f["gate_role"] or f["role"], "gate_channel":
                       f["gate_channel"]}
        g = self._target(node, gate_fields, "smu", "gate_role", "gate_channel")
        if (g.role, g.channel) == (t.role, t.channel):
            raise self.fail(self._w(node, "gate_channel"), "the gate must be another SMU channel"
                                                           " than the bitline")
        bit, gate = self._setup_of(node, t), self._setup_of(node, g)
        width = f["width_s"]
        period = f["period_s"] if f["period_s"] is not None else 2 * width
        self._range(node, "period_s", period, 2 * width, math.inf, "s",
                    "duty cycle <= 50 %: period_s >= 2 x width_s")
        if f["v_read"] == 0:
            raise self.fail(self._w(node, "v_read"), "must not be 0 (conductance is I / V)")
        for key in ("v_set", "v_reset", "v_read"):
            self._volts(node, key, [f[key]], t)
        self._volts(node, "gate_v", [f["gate_v"]], g)
        if t.spec is not None:
            lim = t.spec.limits
            if t.spec.dialect.pulsed_list_sweep is None or math.isnan(lim.pulse_width_min_s):
                raise self.fail(node.where, f"{t.model_name()} (role {t.role!r}) has no hardware"
                                            " pulse mode for SET/RESET pulses")
            self._range(node, "width_s", width, lim.pulse_width_min_s, lim.pulse_width_max_s,
                        "s", f"{t.model_name()} pulse width range")
        if bit.integration_s > 0.9 * width:
            # a verify read is a DC read, but a pulse must still fit its own acquisition window
            self._warn(f"{node.where.text()}: integration longer than 0.9 x width_s; the runner "
                       "must lower it for the SET/RESET pulses")
        n = f["max_pulses"]
        t_read = bit.integration_s + self._overhead(t)
        t_pulse = period + self._overhead(t)
        duration = (n + 1) * t_read + n * t_pulse
        v_pulse = max(abs(f["v_set"]), abs(f["v_reset"]))
        energy = bit.limit_a * ((n + 1) * abs(f["v_read"]) * t_read + n * v_pulse * width)
        energy += gate.limit_a * abs(f["gate_v"]) * duration
        params = {
            "target_s": f["target_s"], "tol_rel": f["tol_rel"], "v_set": f["v_set"],
            "v_reset": f["v_reset"], "width_s": width, "period_s": period,
            "v_read": f["v_read"], "max_pulses": n, "gate_v": f["gate_v"],
            "gate_role": g.role, "gate_channel": g.channel,
        }
        records = {**self._iv_records(n + 1), "pulse_v": ("V", n + 1)}
        return _Leaf("smu.write_verify", t, params, "pc", duration,
                     max(v_pulse, abs(f["v_read"]), abs(f["gate_v"])), bit.limit_a, energy,
                     records)

    # --- pulse generator -----------------------------------------------------------------------

    def _c_pulses(self, node: Action, f: Mapping[str, Any]) -> _Leaf:
        t = self._target(node, f, "pulse")
        amp, base, width, n = f["amplitude_v"], f["base_v"], f["width_s"], f["count"]
        period = f["period_s"] if f["period_s"] is not None else 2 * width
        self._range(node, "count", n, 1, 1_000_000_000, "", "plan cap on pulses per step")
        self._volts(node, "amplitude_v", [amp], t, "pulse")
        self._volts(node, "base_v", [base], t, "pulse")
        if amp == base:
            raise self.fail(self._w(node, "amplitude_v"), "equals base_v: nothing to pulse")
        edge = f["edge_s"]
        if period <= width + (edge or 0.0):
            raise self.fail(self._w(node, "period_s"), f"must exceed width_s (+ edge_s) = "
                                                       f"{fmt_num(width + (edge or 0.0))} s")
        if amp < base:  # inhibitory: the pulse function only goes up, so play it as a waveform
            return self._arb(node, t, [amp], width, period, None, base, n, "count")
        if t.spec is not None:
            lim = t.spec.limits
            name = t.model_name()
            self._range(node, "width_s", width, lim.width_min_s, lim.width_max_s, "s",
                        f"{name} pulse width range")
            e = lim.edge_min_s if edge is None else edge
            if edge is not None:
                self._range(node, "edge_s", edge, lim.edge_min_s, lim.edge_max_s, "s",
                            f"{name} edge time range")
            self._range(node, "edge_s" if edge is not None else "width_s",
                        e, 0, lim.edge_to_width_max * width, "s",
                        f"{name}: edges at most {lim.edge_to_width_max:g} x width")
            self._range(node, "period_s", period, width + e + lim.width_min_s, lim.period_max_s,
                        "s", f"{name}: period >= width + edge + minimum width")
            self._range(node, "count", n, 1, lim.burst_cycles_max, "", f"{name} burst cycles")
            self._range(node, "amplitude_v", amp - base, lim.amplitude_min_vpp, math.inf, "V",
                        f"{name} minimum amplitude above base_v")
        i = self._pulse_current(t)
        e_on = width + (edge or 0.0)
        energy = i * n * (abs(amp) * e_on + abs(base) * (period - e_on))
        params = {"high_v": amp, "low_v": base, "width_s": width, "period_s": period,
                  "count": n, "edge_s": edge}
        return _Leaf("pulse.train", t, params, "hardware", n * period,
                     max(abs(amp), abs(base)), i, energy)

    def _c_spike_train(self, node: Action, f: Mapping[str, Any]) -> _Leaf:
        t = self._target(node, f, "pulse")
        amps, width, times = list(f["amplitudes_v"]), f["width_s"], f["times_s"]
        if (f["period_s"] is None) == (times is None):
            raise self.fail(node.where, "give either period_s (uniform spacing) or times_s "
                                        "(a start time per pulse)")
        if times is not None:
            if len(amps) == 1:
                amps = amps * len(times)
            if len(amps) != len(times):
                raise self.fail(self._w(node, "times_s"), f"{len(times)} start times for "
                                                          f"{len(amps)} amplitudes")
            for k in range(len(times)):
                if times[k] < 0 or (k and times[k] - times[k - 1] <= width):
                    raise self.fail(self._w(node, "times_s"), f"start time #{k} "
                                    f"({fmt_num(times[k])} s) must be >= 0 and more than "
                                    "width_s after the previous one")
        elif f["period_s"] <= width:
            raise self.fail(self._w(node, "period_s"), f"must exceed width_s = {fmt_num(width)}")
        self._range(node, "amplitudes_v", len(amps), 1, 100_000, "", "pulses per spike train")
        self._volts(node, "amplitudes_v", amps, t, "pulse")
        self._volts(node, "base_v", [f["base_v"]], t, "pulse")
        return self._arb(node, t, amps, width, f["period_s"], times, f["base_v"],
                         f["cycles"], "cycles")

    def _arb(self, node: Action, t: _Target, amps: list[float], width: float,
             period: float | None, times: list[float] | None, base: float, cycles: int,
             cycles_key: str) -> _Leaf:
        """A pulse sequence as a run-length arbitrary waveform on a common sample grid.

        Samples start at base_v (a generator idles on its first sample); a uniform train keeps
        its period exactly, so ``cycles`` repeats of it are seamless.
        """
        lim = t.spec.limits if t.spec is not None else None
        name = t.model_name()
        self._range(node, cycles_key, cycles, 1, lim.burst_cycles_max if lim else 1_000_000_000,
                    "", f"{name} burst cycles" if lim else "plan cap")
        if times is None:
            assert period is not None
            tick = self._grid(node, [width, period])
            p_ticks = round(period * 1e12) // tick
            if p_ticks <= round(width * 1e12) // tick:
                raise self.fail(self._w(node, "period_s"), "must exceed width_s by at least 1 ps")
            starts = [j * p_ticks for j in range(len(amps))]
            span = len(amps) * p_ticks
        else:
            tick = self._grid(node, [width, *times])
            starts = [round(x * 1e12) // tick for x in times]
            span = starts[-1] + 2 * (round(width * 1e12) // tick)
        k = round(width * 1e12) // tick
        minimum = max(ARB_POINTS_MIN, lim.arb_points_min if lim else 0)
        sub = max(1, math.ceil(minimum / span))
        if times is None:
            sub = max(sub, math.ceil(2 / (p_ticks - k)))  # room for the leading base sample
        lead = 1 if times is None or starts[0] == 0 else 0
        total = span * sub + (0 if times is None else lead)
        dt = tick * 1e-12 / sub
        rate = 1.0 / dt
        cap = lim.arb_points_max if lim else MAX_ARB_SAMPLES
        if total > cap:
            raise self.fail(self._w(node, "width_s"), f"this pulse sequence needs {total:,} "
                            f"waveform samples at {fmt_num(rate)} Sa/s; at most {cap:,}"
                            f"{f' ({name})' if lim else ''}: use rounder times")
        if lim is not None:
            self._range(node, "width_s", rate, lim.sample_rate_min_sa_s, lim.sample_rate_max_sa_s,
                        "Sa/s", f"{name} sample rate these times need")
        levels: list[float] = []
        counts: list[int] = []

        def put(level: float, n: int) -> None:
            if n <= 0:
                return
            if levels and levels[-1] == level:
                counts[-1] += n
            else:
                levels.append(level)
                counts.append(n)

        pos = 0
        for start, amp in zip(starts, amps, strict=True):
            at = start * sub + lead
            put(base, at - pos)
            put(amp, k * sub)
            pos = at + k * sub
        put(base, total - pos)
        level_key = "amplitudes_v" if "amplitudes_v" in node.fields else "amplitude_v"
        if max(levels) - min(levels) < (lim.amplitude_min_vpp if lim else 1e-12):
            raise self.fail(self._w(node, level_key), "all levels equal base_v: nothing to play")
        i = self._pulse_current(t)
        on = math.fsum(abs(v) * n for v, n in zip(levels, counts, strict=True))
        energy = i * cycles * dt * on
        text = repr((levels, counts, rate))
        arb_name = self.arb_names.get(text)
        if arb_name is None:
            arb_name = "w" + hashlib.sha256(text.encode()).hexdigest()[:11]
            self.arb_names[text] = arb_name
        params = {"name": arb_name, "levels_v": levels, "samples": counts,
                  "sample_rate_sa_s": rate, "cycles": cycles}
        return _Leaf("pulse.arb", t, params, "hardware", cycles * total * dt,
                     max(abs(v) for v in levels), i, energy)

    def _grid(self, node: Action, durations: Sequence[float]) -> int:
        """Greatest common sample period (integer picoseconds) of the given times."""
        g = 0
        for d in durations:
            if not 0 <= d <= 1e6:
                raise self.fail(self._w(node, "width_s"), f"time {fmt_num(d)} s is too long for "
                                                          "an arbitrary waveform (at most 1e6 s)")
            ps = round(d * 1e12)
            if abs(ps * 1e-12 - d) > 1e-9 * abs(d) + 1e-16:
                raise self.fail(self._w(node, "width_s"), f"time {d!r} s is not a whole number "
                                                          "of picoseconds")
            g = math.gcd(g, ps)
        if g == 0:
            raise self.fail(self._w(node, "width_s"), "times shorter than 1 ps")
        return g

    # --- counter -------------------------------------------------------------------------------

    def _counter_settings(self, node: Action, f: Mapping[str, Any], t: _Target
                          ) -> dict[str, Any]:
        """Gate and input fields checked against the model (or generic limits): SI params."""
        lim = t.spec.limits if t.spec is not None else None
        name = t.model_name() if lim is not None else "counter"
        gate = f["gate_s"]
        low, high, step = ((lim.gate_min_s, lim.gate_max_s, lim.gate_step_s) if lim else
                           (COUNTER_GATE_MIN_S, COUNTER_GATE_MAX_S, COUNTER_GATE_STEP_S))
        self._range(node, "gate_s", gate, low, high, "s", f"{name} gate time range")
        steps = gate / step
        if abs(steps - round(steps)) > 1e-6:
            raise self.fail(self._w(node, "gate_s"), f"must be a whole number of "
                                                     f"{fmt_num(step)} s steps ({name} gate "
                                                     f"resolution), got {fmt_num(gate)} s")
        slope = SLOPES.get(str(f["slope"]).strip().upper())
        if slope is None:
            raise self.fail(self._w(node, "slope"), f"must be POS or NEG, got {show(f['slope'])}")
        coupling = str(f["coupling"]).strip().upper()
        if coupling not in ("AC", "DC"):
            raise self.fail(self._w(node, "coupling"), f"must be AC or DC, got "
                                                       f"{show(f['coupling'])}")
        for key, allowed, unit in (
                ("impedance_ohm", lim.impedances_ohm if lim else COUNTER_IMPEDANCES_OHM, "ohm"),
                ("range_v", lim.ranges_v if lim else COUNTER_RANGES_V, "V")):
            if f[key] not in allowed:
                raise self.fail(self._w(node, key), f"must be one of "
                                f"{', '.join(fmt_num(a) for a in allowed)} {unit} ({name}), "
                                f"got {fmt_num(f[key])}")
        rng = f["range_v"]
        self._range(node, "level_v", f["level_v"], -rng, rng, "V",
                    f"trigger level within the {fmt_num(rng)} V input range")
        return {"gate_s": gate, "level_v": f["level_v"], "slope": slope,
                "impedance_ohm": f["impedance_ohm"], "coupling": coupling, "range_v": rng}

    def _no_open_gate(self, node: Action, t: _Target, what: str) -> None:
        gate = self.gates.get((t.role, t.channel))
        if gate is not None:
            raise self.fail(node.where, f"{what} on {t.label} while the totalize gate of "
                                        f"{gate.name!r} ({gate.where.text()}) is open: "
                                        "count_fetch it first")

    def _c_count_start(self, node: Action, f: Mapping[str, Any]) -> _Leaf:
        t = self._target(node, f, "counter")
        params = self._counter_settings(node, f, t)
        self._no_open_gate(node, t, "count_start")
        assert self.current is not None
        # the gate opens when the step ends (INITiate is its last command)
        self.gates[(t.role, t.channel)] = _Gate(self.time + HOST_STEP_S, params["gate_s"],
                                                params["level_v"], *self.current, t.label,
                                                node.where)
        return _Leaf("counter.start", t, params, "pc", HOST_STEP_S, 0.0, 0.0, 0.0)

    def _c_count_fetch(self, node: Action, f: Mapping[str, Any]) -> _Leaf:
        t = self._target(node, f, "counter")
        gate = self.gates.pop((t.role, t.channel), None)
        if gate is None:
            raise self.fail(node.where, f"no totalize gate is open on {t.label}: a count_start "
                                        "on the same counter must come before count_fetch")
        closes = gate.opens_s + gate.gate_s
        if self.time > closes:
            self._warn(f"{node.where.text()}: the steps since {gate.name!r} take about "
                       f"{fmt_num(self.time - gate.opens_s)} s, longer than its "
                       f"{fmt_num(gate.gate_s)} s gate: later events are not counted")
        params = {"gate_s": gate.gate_s, "level_v": gate.level_v, "start_step": gate.name}
        records = {"count": ("", 1), "gate_s": ("s", 1), "level_v": ("V", 1),
                   "time_s": ("s", 1)}
        return _Leaf("counter.fetch", t, params, "pc", max(closes - self.time, 0.0) +
                     POINT_OVERHEAD_S, 0.0, 0.0, 0.0, records)

    def _c_frequency(self, node: Action, f: Mapping[str, Any]) -> _Leaf:
        t = self._target(node, f, "counter")
        params = self._counter_settings(node, f, t)
        self._no_open_gate(node, t, "a frequency measurement")
        gate, settle = params["gate_s"], f["settle_s"]
        timeout = frequency_timeout_s(gate)
        duration = settle + gate + POINT_OVERHEAD_S
        v_max = i_max = energy = 0.0
        if (f["hold_role"] is None) != (f["hold_v"] is None):
            raise self.fail(node.where, "give hold_role and hold_v together (an SMU holding "
                                        "the input level), or neither")
        hold: dict[str, Any] = {"hold_role": None, "hold_channel": None, "hold_v": None}
        if f["hold_role"] is not None:
            h = self._target(node, {"hold_role": f["hold_role"],
                                    "hold_channel": f["hold_channel"]},
                             "smu", "hold_role", "hold_channel")
            setup = self._setup_of(node, h)
            self._volts(node, "hold_v", [f["hold_v"]], h)
            v_max, i_max = abs(f["hold_v"]), setup.limit_a
            # bound: the source stays on through settling and up to the counter's timeout
            energy = v_max * i_max * (settle + timeout + POINT_OVERHEAD_S)
            hold = {"hold_role": h.role, "hold_channel": h.channel, "hold_v": f["hold_v"]}
        params.update(hold, settle_s=settle, timeout_s=timeout)
        records = {"frequency_hz": ("Hz", 1), "gate_s": ("s", 1), "level_v": ("V", 1),
                   "hold_v": ("V", 1), "time_s": ("s", 1)}
        return _Leaf("counter.frequency", t, params, "hardware", duration, v_max, i_max,
                     energy, records)

    # --- matrix and wait -----------------------------------------------------------------------

    def _c_route(self, node: Action, f: Mapping[str, Any]) -> _Leaf:
        t = self._target(node, f, "matrix")
        row, column, slot = str(f["row"]), f["column"], f["slot"]
        rows, columns, slots = "ABCDEFGHIJKLMNOPQRSTUVWXYZ", 1000, range(1, 101)
        what = "a single letter"
        if t.spec is not None:
            rows, columns, slots = t.spec.rows, t.spec.columns, t.spec.slots
            what = f"{t.model_name()} rows {rows}"
        if len(row) != 1 or row.upper() not in rows:
            raise self.fail(self._w(node, "row"), f"row {show(row)} is not {what}")
        self._range(node, "column", column, 1, columns, "", f"{t.model_name()} columns")
        if slot not in slots:
            raise self.fail(self._w(node, "slot"), f"slot {slot} not in {list(slots)[:12]}")
        params = {"row": row.upper(), "column": column, "slot": slot,
                  "exclusive": bool(f["exclusive"])}
        return _Leaf("matrix.route", t, params, "pc", HOST_STEP_S, 0.0, 0.0, 0.0)

    def _c_open_all(self, node: Action, f: Mapping[str, Any]) -> _Leaf:
        t = self._target(node, f, "matrix")
        return _Leaf("matrix.open_all", t, {}, "pc", HOST_STEP_S, 0.0, 0.0, 0.0)

    def _c_wait(self, node: Action, f: Mapping[str, Any]) -> _Leaf:
        return _Leaf("wait", None, {"duration_s": f["s"]}, "pc", f["s"], 0.0, 0.0, 0.0)


def _label(value: Any) -> str:
    if isinstance(value, float):
        text = format(value, ".6g")
    else:
        text = str(value)
    return "".join(c if c.isalnum() or c in "_.:+-" else "_" for c in text)[:40]


def arb_waveform(params: Mapping[str, Any]) -> np.ndarray:
    """The samples a ``pulse.arb`` step uploads: ``levels_v`` repeated ``samples`` times each."""
    return np.repeat(np.asarray(params["levels_v"], dtype=float),
                     np.asarray(params["samples"], dtype=np.int64))


def iter_records(plan: Plan) -> Iterator[tuple[PlanStep, str, str, int]]:
    """(step, dataset, units, points) for every declared dataset, in plan order."""
    for s in plan.steps:
        for name, (units, points) in s.records.items():
            yield s, name, units, points

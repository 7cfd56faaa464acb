"""Bench configuration (roles -> VISA addresses) and the ``InstrumentSet`` that opens them.

The set owns one pyvisa ResourceManager, opens and identifies each role, and on exit puts every
instrument in its safe state before closing resources and then the manager. It must not know
whether the VISA library is real or simulated: that is only the ``visa_library`` string.

YAML format::

    visa_library: "bench.yaml@dendrosim"   # or "@py", "@ivi"; optional (pyvisa default)
    instruments:
      smu:
        address: "USB0::0x05E6::0x2450::04488850::INSTR"
        model: "2450"              # optional: checked against *IDN?
        channel: 1                 # optional, default 1 (2600B: 1=smua, 2=smub)
        timeout_ms: 10000          # optional VISA timeout
        limits: {voltage_min_v: -2, voltage_max_v: 2, current_max_a: 1e-3}   # optional
        options: {line_frequency_hz: 50}   # optional driver keyword arguments
    board: {...}                   # optional: a dendritic board's wiring (protocols/board.py)
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dendrolab.errors import DendrolabError, InstrumentError, ParameterError
from instruments.base import Identity, Instrument, UserLimits, as_number
from instruments.factory import Identified, build_driver, identify_resource, lookup_model

log = logging.getLogger(__name__)

_ROLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOP_KEYS = {"visa_library", "instruments", "board"}
_ROLE_KEYS = {"address", "model", "channel", "timeout_ms", "limits", "options"}


@dataclass(frozen=True)
class RoleConfig:
    role: str
    address: str
    model: str | None = None
    channel: int = 1
    timeout_ms: float | None = None
    limits: UserLimits = field(default_factory=UserLimits)
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BenchConfig:
    visa_library: str
    roles: Mapping[str, RoleConfig]
    source: str = "<mapping>"
    #: The raw ``board`` section (a dendritic board's wiring, parsed by ``protocols.board``).
    board: Mapping[str, Any] | None = None

    def role(self, name: str) -> RoleConfig:
        if name not in self.roles:
            raise ParameterError(
                f"{self.source}: unknown role {name!r}; configured roles: {sorted(self.roles)}"
            )
        return self.roles[name]


def load_bench_config(path: str | os.PathLike[str]) -> BenchConfig:
    """Read and validate a bench YAML file (relative VISA library paths resolve next to it)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ParameterError(f"{p}: cannot read bench configuration: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ParameterError(f"{p}: not valid YAML: {exc}") from exc
    return parse_bench_config(data, base_dir=p.parent, source=str(p))


def parse_bench_config(
    data: Any, *, base_dir: Path | None = None, source: str = "<mapping>"
) -> BenchConfig:
    """Validate a bench mapping; every problem names the key that is wrong."""
    if not isinstance(data, Mapping):
        raise ParameterError(f"{source}: expected a mapping with 'instruments', got {data!r:.60}")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ParameterError(f"{source}: unknown key(s) {unknown}; allowed: {sorted(_TOP_KEYS)}")
    library = data.get("visa_library", "") or ""
    if not isinstance(library, str):
        raise ParameterError(f"{source}: visa_library must be a string like '@py'")
    instruments = data.get("instruments")
    if not isinstance(instruments, Mapping) or not instruments:
        raise ParameterError(f"{source}: 'instruments' must map role names to entries")
    roles = {
        str(role): _parse_role(str(role), entry, f"{source}: instruments.{role}")
        for role, entry in instruments.items()
    }
    board = data.get("board")
    if board is not None and not isinstance(board, Mapping):
        raise ParameterError(f"{source}: board must be a mapping (see protocols/board.py)")
    return BenchConfig(_resolve_library(library, base_dir), roles, source, board)


def _parse_role(role: str, entry: Any, where: str) -> RoleConfig:
    if not _ROLE_NAME.fullmatch(role):
        raise ParameterError(f"{where}: role names are identifiers (letters, digits, _)")
    if not isinstance(entry, Mapping):
        raise ParameterError(f"{where}: expected a mapping with at least 'address'")
    unknown = sorted(set(entry) - _ROLE_KEYS)
    if unknown:
        raise ParameterError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(_ROLE_KEYS)}")
    address = entry.get("address")
    if not isinstance(address, str) or not address.strip():
        raise ParameterError(f"{where}: missing 'address' (a VISA resource name)")
    model = entry.get("model")
    if model is not None:
        model = str(model)
        if lookup_model(model) is None:
            raise ParameterError(f"{where}: unknown model {model!r}")
    channel = entry.get("channel", 1)
    if isinstance(channel, bool) or not isinstance(channel, int) or channel < 1:
        raise ParameterError(f"{where}.channel: expected a positive integer, got {channel!r}")
    timeout = entry.get("timeout_ms")
    if timeout is not None:
        timeout = as_number(timeout, f"{where}.timeout_ms")
        if timeout <= 0:
            raise ParameterError(f"{where}.timeout_ms: expected a positive number of ms")
    limits = entry.get("limits")
    if limits is not None and not isinstance(limits, Mapping):
        raise ParameterError(f"{where}.limits: expected a mapping")
    options = entry.get("options") or {}
    if not isinstance(options, Mapping):
        raise ParameterError(f"{where}.options: expected a mapping")
    return RoleConfig(
        role=role,
        address=address.strip(),
        model=model,
        channel=channel,
        timeout_ms=float(timeout) if timeout is not None else None,
        limits=UserLimits.from_mapping(limits, f"{where}.limits"),
        options=dict(options),
    )


def _resolve_library(library: str, base_dir: Path | None) -> str:
    """Make ``sim.yaml@backend`` point next to the bench file if that file exists there."""
    path, at, backend = library.rpartition("@")
    if not at or not path or base_dir is None or Path(path).is_absolute():
        return library
    candidate = base_dir / path
    return f"{candidate.resolve()}@{backend}" if candidate.exists() else library


def _default_rm_factory(visa_library: str) -> Any:
    import pyvisa

    return pyvisa.ResourceManager(visa_library)


class InstrumentSet:
    """Open every role of a bench on one ResourceManager; close it all, safely, on exit."""

    def __init__(
        self,
        config: BenchConfig,
        *,
        rm_factory: Callable[[str], Any] | None = None,
    ) -> None:
        self.config = config
        self._rm_factory = rm_factory or _default_rm_factory
        self.rm: Any = None
        self._resources: dict[str, Any] = {}
        self._timeouts: dict[str, float] = {}
        self._drivers: dict[str, Instrument] = {}

    @classmethod
    def from_file(
        cls, path: str | os.PathLike[str], *, rm_factory: Callable[[str], Any] | None = None
    ) -> InstrumentSet:
        return cls(load_bench_config(path), rm_factory=rm_factory)

    # --- lifetime --------------------------------------------------------------------------

    def open(self) -> InstrumentSet:
        """Create the ResourceManager, open, identify and build each role (in file order)."""
        if self.rm is not None:
            return self
        try:
            self.rm = self._rm_factory(self.config.visa_library)
        except DendrolabError:
            raise
        except Exception as exc:
            raise InstrumentError(
                f"{self.config.source}: cannot load VISA library "
                f"{self.config.visa_library!r}: {exc}"
            ) from exc
        try:
            identified: dict[str, Identified] = {}
            for role, rc in self.config.roles.items():
                try:
                    self._drivers[role] = self._open_role(role, rc, identified)
                except DendrolabError as exc:
                    raise type(exc)(f"role {role!r}: {exc}") from exc
        except BaseException:
            self.close()
            raise
        return self

    def _open_role(self, role: str, rc: RoleConfig, identified: dict[str, Identified]) -> Any:
        """Open (or share, for a second channel) the role's resource and build its driver."""
        resource = self._resources.get(rc.address)
        if resource is None:
            try:
                resource = self.rm.open_resource(rc.address)
            except Exception as exc:
                raise InstrumentError(f"cannot open {rc.address!r}: {exc}") from exc
            self._resources[rc.address] = resource
            self._timeouts[rc.address] = 0.0
        if rc.timeout_ms is not None and rc.timeout_ms > self._timeouts[rc.address]:
            # roles sharing a resource (two SMU channels) share its timeout: the longest wins
            resource.timeout = self._timeouts[rc.address] = rc.timeout_ms
        if rc.address not in identified:
            identified[rc.address] = identify_resource(resource)
        return build_driver(
            identified[rc.address],
            resource,
            channel=rc.channel,
            limits=rc.limits,
            expected_model=rc.model,
            options=rc.options,
        )

    def resync(self) -> dict[str, bool]:
        """Each open session back to a known message state (``Instrument.resync``), once per
        resource; returns address -> verified. Never raises."""
        done: dict[str, bool] = {}
        seen: set[int] = set()
        for role, driver in self._drivers.items():
            if id(driver.resource) in seen:  # two channels of one instrument share a session
                continue
            seen.add(id(driver.resource))
            try:
                done[driver.address] = driver.resync()
            except Exception as exc:  # resync should not raise; a bug must not stop teardown
                log.warning("role %r: resync failed: %s", role, exc)
                done[driver.address] = False
        return done

    def safe_state(self) -> None:
        """Every session resynchronised, then every instrument to its safe state (each one best
        effort, never raises): a query cut by a signal must not shift the safe-state replies."""
        self.resync()
        for role, driver in self._drivers.items():
            try:
                driver.safe_state()
            except Exception as exc:  # safe_state should not raise; a bug must not stop teardown
                log.warning("role %r: safe_state failed: %s", role, exc)

    def close(self) -> None:
        """Safe state, then close every resource, then the ResourceManager. Idempotent."""
        self.safe_state()
        for address, resource in self._resources.items():
            try:
                resource.close()
            except Exception as exc:
                log.warning("closing %s failed: %s", address, exc)
        if self.rm is not None:
            try:
                self.rm.close()
            except Exception as exc:
                log.warning("closing the ResourceManager failed: %s", exc)
        self._drivers.clear()
        self._resources.clear()
        self._timeouts.clear()
        self.rm = None

    def __enter__(self) -> InstrumentSet:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- access ----------------------------------------------------------------------------

    def __getitem__(self, role: str) -> Instrument:
        if role not in self._drivers:
            self.config.role(role)  # raises with the list of configured roles
            raise InstrumentError(f"role {role!r} is configured but the set is not open")
        return self._drivers[role]

    def driver(self, role: str, channel: int | None = None) -> Instrument:
        """The role's driver, or one for another channel of the same instrument (built once).

        A protocol may address e.g. channel 2 of the SMU configured as ``soma_smu`` (channel 1);
        that driver shares the resource and is made safe and closed with the set.
        """
        base = self[role]
        rc = self.config.role(role)
        if channel is None or channel == rc.channel:
            return base
        key = f"{role}#ch{channel}"
        if key not in self._drivers:
            identified = {rc.address: identify_resource(self._resources[rc.address])}
            self._drivers[key] = self._open_role(
                key, RoleConfig(key, rc.address, rc.model, channel, rc.timeout_ms, rc.limits,
                                rc.options), identified)
        return self._drivers[key]

    def __contains__(self, role: object) -> bool:
        return role in self._drivers

    def __iter__(self) -> Iterator[str]:
        return iter(self._drivers)

    @property
    def roles(self) -> list[str]:
        return list(self.config.roles)

    def identities(self) -> dict[str, Identity | None]:
        return {role: d.identity for role, d in self._drivers.items()}

    def settings(self) -> dict[str, dict[str, Any]]:
        """Every role's settings snapshot (for the run file)."""
        return {role: d.settings() for role, d in self._drivers.items()}

    def check_errors(self) -> None:
        for d in self._drivers.values():
            d.check_errors()

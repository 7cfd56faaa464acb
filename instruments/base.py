"""Common driver base: identity parsing, error queues, wire I/O over a given pyvisa Resource.

Must not open or close the ResourceManager, know about simulation, or branch on model names:
model differences live in the per-capability tables that subclasses pass in as a ``ModelSpec``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from string import Template
from typing import Any, ClassVar

from pyvisa.errors import Error as VisaError

from dendrolab.errors import InstrumentError, ParameterError
from instruments.clock import clock_of

log = logging.getLogger(__name__)

# How many entries we read from an error queue before we stop trusting it (a broken instrument
# that never answers "0" must not hang the driver).
MAX_ERROR_DRAIN = 64
#: ``Instrument.resync``: verification rounds, replies dropped per round, read timeout meanwhile.
RESYNC_ATTEMPTS = 3
MAX_STALE_REPLIES = 16
DRAIN_TIMEOUT_MS = 100.0


class CapabilityError(ParameterError):
    """The connected model cannot do what was asked (e.g. hardware pulses on a 2450)."""


class Query(str):
    """A command template whose reply the driver reads (plain ``str`` steps are writes)."""


Step = str  # a write template, or a ``Query``


def fmt(value: float) -> str:
    """Format a number for the wire: 9 significant digits, no trailing zeros, never ``-0``."""
    return format(float(value) + 0.0, ".9g")


def fmt_list(values: Sequence[float], spec: str = ".9g") -> str:
    return ",".join(format(float(v) + 0.0, spec) for v in values)


def parse_floats(reply: str) -> list[float]:
    """Split a reply on commas, semicolons, tabs or spaces and convert every field to float."""
    try:  # common case: comma-separated numbers (float() ignores surrounding whitespace)
        return [float(p) for p in reply.split(",")]
    except ValueError:
        pass
    parts = [p for p in re.split(r"[,;\s]+", reply.strip()) if p]
    try:
        return [float(p) for p in parts]
    except ValueError as exc:
        raise InstrumentError(f"expected numbers in reply {reply[:80]!r}: {exc}") from exc


def parse_bool(reply: str) -> bool:
    """Instrument booleans: SCPI ``0``/``1``/``ON``/``OFF``, TSP ``true``/``false``."""
    text = reply.strip().lower()
    if text in ("1", "on", "true"):
        return True
    if text in ("0", "off", "false"):
        return False
    try:
        return float(text) != 0.0
    except ValueError as exc:
        raise InstrumentError(f"expected a boolean reply, got {reply!r}") from exc


# Compiled command templates: template text -> ``str.format`` pattern (None: the template has an
# invalid ``$`` placeholder and goes through ``Template.substitute`` for its exact error).
_COMPILED: dict[str, str | None] = {}
_COMPILED_MAX = 4096  # entries; list sweeps fill values into templates, so bound the cache
_COMPILE_TEXT_MAX = 512  # longer texts (filled lists) are not cached


def _compile(step: str) -> str | None:
    """Translate a ``string.Template`` into an equivalent ``str.format`` pattern."""
    out = []
    pos = 0
    for m in Template.pattern.finditer(step):
        out.append(step[pos : m.start()].replace("{", "{{").replace("}", "}}"))
        name = m.group("named") or m.group("braced")
        if name is not None:
            out.append("{" + name + "}")
        elif m.group("escaped") is not None:
            out.append("$")
        else:
            return None
        pos = m.end()
    out.append(step[pos:].replace("{", "{{").replace("}", "}}"))
    return "".join(out)


def render(step: str, mapping: Mapping[str, Any]) -> str:
    """``Template(step).substitute(mapping)``, with the template compiled once per text."""
    try:
        pattern = _COMPILED[step]
    except KeyError:
        pattern = _compile(step)
        if len(step) <= _COMPILE_TEXT_MAX:
            if len(_COMPILED) >= _COMPILED_MAX:
                _COMPILED.clear()
            _COMPILED[step] = pattern
    if pattern is None:
        return Template(step).substitute(mapping)
    return pattern.format_map(mapping)


def check_range(name: str, value: float, low: float, high: float, where: str) -> None:
    """Raise ParameterError unless low <= value <= high (and value is finite)."""
    if not math.isfinite(value) or value < low or value > high:
        raise ParameterError(f"{where}: {name}={value:g} is outside [{low:g}, {high:g}]")


@dataclass(frozen=True)
class Identity:
    """What ``*IDN?`` said, split into its four fields (model normalised, e.g. ``2450``)."""

    vendor: str
    model: str
    serial: str
    firmware: str


def split_idn(reply: str) -> tuple[str, str, str, str]:
    """Split an ``*IDN?`` reply into stripped (vendor, model field, serial, firmware)."""
    parts = [p.strip() for p in reply.strip().split(",")]
    if len(parts) < 2 or not parts[1]:
        raise InstrumentError(f"*IDN? reply {reply!r} does not have vendor,model,serial,firmware")
    parts += [""] * (4 - len(parts))
    return parts[0], parts[1], parts[2], ",".join(parts[3:])


# ---------------------------------------------------------------------------------------------
# Error queues: how a family reports errors (a strategy in the table, not a model branch).


@dataclass(frozen=True)
class InstrumentMessage:
    code: int
    message: str

    def __str__(self) -> str:
        return f"{self.code},{self.message!r}"


@dataclass(frozen=True)
class ScpiErrorQueue:
    """SCPI ``SYST:ERR?`` polled until code 0 (``<code>,"<message>"``)."""

    query: str = ":SYST:ERR?"

    def drain(self, ask: Any) -> list[InstrumentMessage]:
        found: list[InstrumentMessage] = []
        for _ in range(MAX_ERROR_DRAIN):
            reply = ask(self.query)
            match = re.match(r'\s*([+-]?\d+)\s*,\s*"?(.*?)"?\s*$', reply, re.S)
            if not match:
                raise InstrumentError(f"cannot parse error-queue reply {reply!r}")
            code = int(match.group(1))
            if code == 0:
                return found
            found.append(InstrumentMessage(code, match.group(2)))
        found.append(InstrumentMessage(0, f"error queue not empty after {MAX_ERROR_DRAIN} reads"))
        return found


@dataclass(frozen=True)
class TspErrorQueue:
    """TSP ``errorqueue.count`` then ``errorqueue.next()`` (``code<TAB>message<TAB>…``)."""

    count_query: str = "print(errorqueue.count)"
    next_query: str = "print(errorqueue.next())"

    def drain(self, ask: Any) -> list[InstrumentMessage]:
        count = int(parse_floats(ask(self.count_query))[0])
        found: list[InstrumentMessage] = []
        for _ in range(min(count, MAX_ERROR_DRAIN)):
            fields_ = ask(self.next_query).split("\t")
            try:
                code = int(float(fields_[0]))
            except ValueError:
                code = -1
            message = fields_[1].strip() if len(fields_) > 1 else fields_[0].strip()
            if code != 0:
                found.append(InstrumentMessage(code, message))
        return found


# ---------------------------------------------------------------------------------------------
# User limits and model specs.


def as_number(value: Any, where: str) -> float:
    """A YAML number; PyYAML reads ``1e-3`` (no dot) as a string, so numeric strings count."""
    if isinstance(value, bool):
        raise ParameterError(f"{where}: expected a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{where}: expected a number, got {value!r}") from None
    if math.isnan(number):
        raise ParameterError(f"{where}: expected a number, got {value!r}")
    return number


@dataclass(frozen=True)
class UserLimits:
    """The bench's own safety limits for one role, tighter than the instrument's."""

    voltage_min_v: float = -math.inf
    voltage_max_v: float = math.inf
    current_max_a: float = math.inf

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, where: str = "limits") -> UserLimits:
        """Build from a YAML mapping; unknown keys and non-numbers are errors, not ignored."""
        if not data:
            return cls()
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ParameterError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(known)}")
        values = {key: as_number(value, f"{where}.{key}") for key, value in data.items()}
        limits = cls(**values)
        if limits.voltage_min_v > limits.voltage_max_v:
            raise ParameterError(f"{where}: voltage_min_v must not exceed voltage_max_v")
        if limits.current_max_a <= 0:
            raise ParameterError(f"{where}: current_max_a must be positive")
        return limits

    def as_dict(self) -> dict[str, float | None]:
        return {k: (v if math.isfinite(v) else None) for k, v in asdict(self).items()}


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """One row of a capability's model table: how to recognise, address and talk to a model."""

    name: str  # human name, e.g. "Keithley 2450"
    idn_model: str  # regex for the *IDN? MODEL field; group "model" is the normalised model
    channels: Mapping[int, str] = field(default_factory=lambda: {1: "1"})
    errors: ScpiErrorQueue | TspErrorQueue = field(default_factory=ScpiErrorQueue)
    read_termination: str = "\n"
    write_termination: str = "\n"

    def match(self, model_field: str) -> str | None:
        """Return the normalised model if this spec's regex matches the MODEL field."""
        m = re.fullmatch(self.idn_model, model_field.strip(), re.IGNORECASE)
        if not m:
            return None
        return (m.groupdict().get("model") or m.group(0)).upper()


# ---------------------------------------------------------------------------------------------


class Instrument:
    """Base of every driver: wire I/O, identity, errors, safe state, context manager."""

    capability: ClassVar[str] = "instrument"

    def __init__(
        self,
        resource: Any,
        spec: ModelSpec,
        *,
        channel: int = 1,
        limits: UserLimits | None = None,
        auto_check_errors: bool = True,
    ) -> None:
        if channel not in spec.channels:
            raise ParameterError(
                f"{spec.name}: channel {channel} does not exist; channels: {sorted(spec.channels)}"
            )
        self.resource = resource
        self.spec = spec
        self.channel = channel
        self.limits = limits or UserLimits()
        self.auto_check_errors = auto_check_errors
        self.identity: Identity | None = None
        #: Waits (ramps, settling) go through the VISA library's clock: see instruments.clock.
        self.clock = clock_of(resource)
        with contextlib.suppress(AttributeError):
            resource.read_termination = spec.read_termination
            resource.write_termination = spec.write_termination

    # --- wire ------------------------------------------------------------------------------

    @property
    def address(self) -> str:
        return str(getattr(self.resource, "resource_name", "?"))

    def _where(self) -> str:
        return f"{self.spec.name} at {self.address}"

    def _write(self, command: str) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s <- %s", self.address, command)
        try:
            self.resource.write(command)
        except VisaError as exc:
            raise InstrumentError(
                f"{self._where()}: writing {command[:60]!r} failed: {exc}"
            ) from exc

    def _query(self, command: str) -> str:
        debug = log.isEnabledFor(logging.DEBUG)
        if debug:
            log.debug("%s <- %s", self.address, command)
        try:
            reply = str(self.resource.query(command)).strip()
        except VisaError as exc:
            raise InstrumentError(
                f"{self._where()}: no usable reply to {command[:60]!r}: {exc}"
            ) from exc
        if debug:
            log.debug("%s -> %s", self.address, reply[:200])
        return reply

    def _tokens(self) -> dict[str, str]:
        """Template fields every command can use (``$ch`` is the channel token of the table)."""
        return {"ch": self.spec.channels[self.channel]}

    def _run(self, steps: Sequence[Step], **values: Any) -> list[str]:
        """Send a table entry: format each template, write it or query it; return the replies."""
        mapping = self._tokens()
        if values:
            mapping = {**mapping, **{k: str(v) for k, v in values.items()}}
        replies = []
        for step in steps:
            text = render(step, mapping)
            if isinstance(step, Query):
                replies.append(self._query(text))
            else:
                self._write(text)
        return replies

    @contextlib.contextmanager
    def _timeout_for(self, seconds: float) -> Iterator[None]:
        """Stretch the VISA timeout for an operation expected to take ``seconds`` on the box."""
        old = getattr(self.resource, "timeout", None)
        wanted_ms = 2000.0 * seconds + 5000.0
        if isinstance(old, (int, float)) and wanted_ms > old:
            self.resource.timeout = wanted_ms
            try:
                yield
            finally:
                self.resource.timeout = old
        else:
            yield

    # --- identity and errors ---------------------------------------------------------------

    def identify(self) -> Identity:
        """Query ``*IDN?`` and check that the model field matches this driver's table row."""
        vendor, model_field, serial, firmware = split_idn(self._query("*IDN?"))
        model = self.spec.match(model_field)
        if model is None:
            raise InstrumentError(
                f"{self.address}: *IDN? says model {model_field!r}, but this driver was built "
                f"for {self.spec.name} (pattern {self.spec.idn_model!r})"
            )
        self.identity = Identity(vendor, model, serial, firmware)
        return self.identity

    def drain_errors(self) -> list[InstrumentMessage]:
        """Read the instrument's error queue until it is empty and return what was in it."""
        return self.spec.errors.drain(self._query)

    def check_errors(self) -> None:
        """Drain the error queue; raise InstrumentError quoting every message if there were any."""
        found = self.drain_errors()
        if found:
            text = "; ".join(str(m) for m in found)
            raise InstrumentError(f"{self._where()} reported {len(found)} error(s): {text}")

    def _after_config(self) -> None:
        if self.auto_check_errors:
            self.check_errors()

    @contextlib.contextmanager
    def deferred_errors(self) -> Iterator[None]:
        """Read the error queue once when the block ends instead of after every command: for
        tight loops of configuration commands (a matrix stepping word lines), where the check
        would double the traffic. Errors still raise, at the end of the block; a block left by
        an exception does not read the queue (the caller's cleanup does)."""
        was = self.auto_check_errors
        self.auto_check_errors = False
        try:
            yield
        finally:
            self.auto_check_errors = was
        if was:
            self.check_errors()

    # --- resynchronisation -----------------------------------------------------------------

    def resync(self, attempts: int = RESYNC_ATTEMPTS) -> bool:
        """Bring the session back to a known message state and prove it; never raises.

        A query cut between its write and its read (Ctrl-C, SIGTERM, an exception) leaves the
        reply queued, and every later query would read the answer one behind. This sends a VISA
        device clear (``viClear``: IEEE 488.2 device clear empties the input and output queues
        and leaves settings alone; GPIB SDC, USBTMC INITIATE_CLEAR, VXI-11 device_clear), then
        checks that ``*IDN?`` answers this instrument's identity and ``*OPC?`` answers 1 (both
        IEEE 488.2 common commands). Any single stale reply makes one of the two answers wrong;
        then queued replies are read off with a short timeout (raw sockets may not support a
        device clear) and the check repeats. Returns True once verified.
        """
        for attempt in range(max(1, attempts)):
            clear = getattr(self.resource, "clear", None) if attempt == 0 else None
            if clear is not None:
                self._best_effort_io(clear)
            else:
                self._drain_replies()
            try:
                if self._proves_in_step():
                    return True
            except Exception as exc:  # a timeout or garbage: drain and ask again
                log.debug("%s: resync check %d failed: %s", self._where(), attempt + 1, exc)
        log.warning("%s: could not resynchronise the session after %d attempt(s)",
                    self._where(), max(1, attempts))
        return False

    def _proves_in_step(self) -> bool:
        """The check ``resync`` makes after a clear or drain (a family without ``*OPC?``
        overrides this): ``*IDN?`` answers this instrument and ``*OPC?`` answers 1."""
        return self._answers_identity(self._query("*IDN?")) and parse_bool(self._query("*OPC?"))

    def _best_effort_io(self, action: Any) -> None:
        try:
            action()
        except Exception as exc:  # not every resource or interface supports it
            log.debug("%s: %s: %s", self._where(), getattr(action, "__name__", action), exc)

    def _drain_replies(self) -> int:
        """Read and drop queued replies until the instrument has none (a short read timeout)."""
        read = getattr(self.resource, "read", None)
        if read is None:
            return 0
        old = getattr(self.resource, "timeout", None)
        dropped = 0
        try:
            if isinstance(old, (int, float)):
                self.resource.timeout = min(old, DRAIN_TIMEOUT_MS)
            for _ in range(MAX_STALE_REPLIES):
                reply = read()
                dropped += 1
                log.debug("%s: dropped stale reply %.80r", self._where(), reply)
        except Exception:  # the timeout that says the queue is empty
            pass
        finally:
            if isinstance(old, (int, float)):
                with contextlib.suppress(Exception):
                    self.resource.timeout = old
        return dropped

    def _answers_identity(self, reply: str) -> bool:
        """True if ``reply`` is this instrument's ``*IDN?`` (any IDN before identification)."""
        try:
            vendor, model_field, serial, _ = split_idn(reply)
        except InstrumentError:
            return False
        if self.identity is None:
            return self.spec.match(model_field) is not None
        return (vendor == self.identity.vendor and serial == self.identity.serial
                and self.spec.match(model_field) == self.identity.model)

    # --- safety and snapshots --------------------------------------------------------------

    def safe_state(self) -> None:
        """Bring the instrument to a state that cannot harm the device; never raises."""

    def _best_effort(self, what: str, action: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return action(*args, **kwargs)
        except Exception as exc:  # a broken connection must not stop the teardown
            log.warning("%s: %s failed during safe_state: %s", self._where(), what, exc)
            return None

    def settings(self) -> dict[str, Any]:
        """A snapshot of driver state and the instrument's own settings, for run files."""
        return {
            "capability": self.capability,
            "model": self.spec.name,
            "address": self.address,
            "channel": self.channel,
            "identity": asdict(self.identity) if self.identity else None,
            "user_limits": self.limits.as_dict(),
        }

    def _query_settings(self, queries: Mapping[str, str], **values: Any) -> dict[str, str]:
        return {
            name: self._run((Query(template),), **values)[0] for name, template in queries.items()
        }

    def __enter__(self) -> Instrument:
        return self

    def __exit__(self, *exc: object) -> None:
        self.safe_state()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec.name!r}, {self.address!r}, ch={self.channel})"

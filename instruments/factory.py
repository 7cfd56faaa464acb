"""Pick the driver class and table row for a resource from its ``*IDN?`` model field.

Identification only: no configuration is sent, resources are not closed here (the caller owns
them) and nothing here knows whether the resource is real or simulated.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pyvisa.errors import Error as VisaError

from dendrolab.errors import InstrumentError, ParameterError
from instruments.base import Identity, Instrument, ModelSpec, UserLimits, split_idn
from instruments.counter import COUNTER_MODELS, Counter
from instruments.prober import PROBER_MODELS, Prober
from instruments.pulse import PULSE_MODELS, PulseGenerator
from instruments.smu import SMU_MODELS, Smu
from instruments.switch import SWITCH_MODELS, SwitchMatrix

# Every supported model: (driver class, table row). Order matters only if regexes overlap.
MODEL_TABLE: tuple[tuple[type[Instrument], ModelSpec], ...] = (
    *((Smu, spec) for spec in SMU_MODELS),
    *((PulseGenerator, spec) for spec in PULSE_MODELS),
    *((SwitchMatrix, spec) for spec in SWITCH_MODELS),
    *((Prober, spec) for spec in PROBER_MODELS),
    *((Counter, spec) for spec in COUNTER_MODELS),
)


@dataclass(frozen=True)
class Identified:
    identity: Identity
    driver: type[Instrument]
    spec: ModelSpec


def supported_models() -> list[str]:
    return [spec.name for _, spec in MODEL_TABLE]


def lookup_model(model_field: str) -> tuple[type[Instrument], ModelSpec, str] | None:
    """Find the table row whose regex matches a model field (``MODEL 2450``, ``B2902A``…)."""
    for driver, spec in MODEL_TABLE:
        model = spec.match(model_field)
        if model is not None:
            return driver, spec, model
    return None


def identify_resource(resource: Any) -> Identified:
    """Ask ``*IDN?`` (LF-terminated, as every supported model is) and find the driver."""
    with contextlib.suppress(AttributeError):
        resource.read_termination = "\n"
        resource.write_termination = "\n"
    address = getattr(resource, "resource_name", "?")
    try:
        reply = str(resource.query("*IDN?")).strip()
    except VisaError as exc:
        raise InstrumentError(f"{address}: no reply to *IDN?: {exc}") from exc
    vendor, model_field, serial, firmware = split_idn(reply)
    found = lookup_model(model_field)
    if found is None:
        raise InstrumentError(
            f"{address}: *IDN? model {model_field!r} ({reply!r}) is not in any driver table; "
            f"supported: {', '.join(supported_models())}"
        )
    driver, spec, model = found
    return Identified(Identity(vendor, model, serial, firmware), driver, spec)


def _normalise(model: str) -> str:
    text = model.strip().upper()
    return text[len("MODEL") :].strip() if text.startswith("MODEL") else text


def build_driver(
    found: Identified,
    resource: Any,
    *,
    channel: int = 1,
    limits: UserLimits | None = None,
    expected_model: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> Instrument:
    """Instantiate the identified driver; check the model the bench expected, if any."""
    if expected_model is not None and _normalise(expected_model) != found.identity.model:
        raise InstrumentError(
            f"{getattr(resource, 'resource_name', '?')}: expected model {expected_model!r}, "
            f"but *IDN? says {found.identity.model!r} ({found.identity.vendor})"
        )
    options = dict(options or {})
    accepted = set(inspect.signature(found.driver).parameters) - {"resource", "spec"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ParameterError(
            f"{found.spec.name}: unsupported driver option(s) {unknown}; "
            f"{found.driver.__name__} accepts {sorted(accepted)}"
        )
    driver = found.driver(resource, found.spec, channel=channel, limits=limits, **options)
    driver.identity = found.identity
    return driver


def connect(
    resource: Any,
    *,
    channel: int = 1,
    limits: UserLimits | None = None,
    expected_model: str | None = None,
    **options: Any,
) -> Instrument:
    """Identify an open resource and return its capability driver (Smu, PulseGenerator, …)."""
    return build_driver(
        identify_resource(resource),
        resource,
        channel=channel,
        limits=limits,
        expected_model=expected_model,
        options=options,
    )


def open_instrument(
    rm: Any,
    address: str,
    role: str | None = None,
    *,
    channel: int = 1,
    limits: UserLimits | None = None,
    expected_model: str | None = None,
    **options: Any,
) -> Instrument:
    """Open ``address`` on the caller's ResourceManager and connect; the caller closes it."""
    label = f"role {role!r} ({address})" if role else address
    try:
        resource = rm.open_resource(address)
    except (VisaError, ValueError, OSError) as exc:
        raise InstrumentError(f"{label}: cannot open resource: {exc}") from exc
    try:
        return connect(
            resource, channel=channel, limits=limits, expected_model=expected_model, **options
        )
    except Exception:
        with contextlib.suppress(Exception):
            resource.close()
        raise

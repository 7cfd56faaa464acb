"""Typed, unit-carrying parameter sets with validation and the two calibration handles.

Every physics parameter is declared with ``param(...)``: its unit, its allowed range and its *kind*
(``rate``, ``time``, ``voltage``), so presets can be rescaled generically and a bad value gets an
error that names the parameter. Parameter sets are frozen dataclasses: share them freely.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

import numpy as np

from dendrolab.errors import ParameterError

T = TypeVar("T", bound="ParamSet")

#: Kinds that the calibration handles act on: rates scale with the time scale, times inversely,
#: voltages with the voltage scale. Anything else (ratios, sigmas, resistances) is left alone.
#: Kind ``sigma`` marks a noise or variation magnitude: ``without_noise()`` zeroes those.
SCALABLE_KINDS = ("rate", "time", "voltage")


def param(
    default: Any,
    unit: str,
    doc: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    kind: str | None = None,
    choices: tuple[str, ...] | None = None,
) -> Any:
    """Declare one parameter: default, unit, one-line meaning, bounds and calibration kind."""
    meta = {"unit": unit, "doc": doc, "lo": lo, "hi": hi, "lo_open": lo_open, "kind": kind,
            "choices": choices}
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True)
class ParamSet:
    """Base for a device's parameters; subclasses set ``section`` (the YAML key)."""

    section: ClassVar[str] = "params"

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, self._check(f, getattr(self, f.name)))

    def _check(self, f: dataclasses.Field, value: Any) -> Any:
        meta = f.metadata
        name = f"{self.section}.{f.name}"
        if meta.get("choices"):
            if value not in meta["choices"]:
                raise ParameterError(
                    f"{name} = {value!r}: must be one of {', '.join(meta['choices'])}")
            return value
        if isinstance(f.default, bool):
            if not isinstance(value, bool):
                raise ParameterError(f"{name} = {value!r}: must be true or false")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParameterError(
                f"{name} = {value!r}: must be a number ({meta['doc']}, {meta['unit']})")
        value = float(value)
        if not math.isfinite(value):
            raise ParameterError(f"{name} = {value!r}: must be finite ({meta['unit']})")
        lo, hi = meta.get("lo"), meta.get("hi")
        if lo is not None and (value < lo or (meta.get("lo_open") and value == lo)):
            op = ">" if meta.get("lo_open") else ">="
            raise ParameterError(
                f"{name} = {value:g}: must be {op} {lo:g} {meta['unit']} ({meta['doc']})")
        if hi is not None and value > hi:
            raise ParameterError(
                f"{name} = {value:g}: must be <= {hi:g} {meta['unit']} ({meta['doc']})")
        return value

    @classmethod
    def from_mapping(cls: type[T], data: Mapping[str, Any] | None, where: str = "") -> T:
        """Build from a YAML mapping; unknown keys and bad values raise ``ParameterError``."""
        prefix = f"{where}: " if where else ""
        if data is not None and not isinstance(data, Mapping):
            raise ParameterError(f"{prefix}{cls.section}: must be a mapping of name: value")
        data = dict(data or {})
        known = {f.name for f in dataclasses.fields(cls)}
        for key in data:
            if key not in known:
                raise ParameterError(
                    f"{prefix}{cls.section}.{key}: unknown parameter; "
                    f"known: {', '.join(sorted(known))}")
        try:
            return cls(**data)
        except ParameterError as exc:
            raise ParameterError(f"{prefix}{exc}") from None

    def replace(self: T, **changes: Any) -> T:
        """A copy with some parameters changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def merged(self: T, data: Mapping[str, Any] | None, where: str = "") -> T:
        """A copy with the keys of ``data`` overriding this set (unknown keys rejected)."""
        if data is not None and not isinstance(data, Mapping):
            prefix = f"{where}: " if where else ""
            raise ParameterError(f"{prefix}{self.section}: must be a mapping of name: value")
        return type(self).from_mapping({**self.to_dict(), **dict(data or {})}, where)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def scaled(self: T, time_scale: float = 1.0, voltage_scale: float = 1.0) -> T:
        """Apply the calibration handles: rates x time_scale, times / time_scale, volts x scale."""
        if not (time_scale > 0 and voltage_scale > 0):
            raise ParameterError(
                f"time_scale and voltage_scale must be > 0, got {time_scale}, {voltage_scale}")
        factor = {"rate": time_scale, "time": 1.0 / time_scale, "voltage": voltage_scale}
        changes = {}
        for f in dataclasses.fields(self):
            kind = f.metadata.get("kind")
            if kind in factor:
                changes[f.name] = getattr(self, f.name) * factor[kind]
        return dataclasses.replace(self, **changes)

    def without_noise(self: T) -> T:
        """A copy with every noise and variation magnitude (kind ``sigma``) set to zero."""
        zero = {f.name: 0.0 for f in dataclasses.fields(self) if f.metadata.get("kind") == "sigma"}
        return dataclasses.replace(self, **zero)

    @classmethod
    def describe(cls) -> list[tuple[str, Any, str, str]]:
        """(name, default, unit, meaning) rows, for docs and ``--help`` tables."""
        return [(f.name, f.default, f.metadata["unit"], f.metadata["doc"])
                for f in dataclasses.fields(cls)]


def positive_factors(value: object, n: int, what: str) -> np.ndarray:
    """Per-device multiplicative factors (scalar or (n,)) as a fresh (n,) array, all finite > 0."""
    arr = np.asarray(value, dtype=float)
    try:
        arr = np.broadcast_to(arr, (n,)).astype(float)
    except ValueError:
        raise ParameterError(f"{what}: shape {arr.shape} does not fit {n} devices") from None
    if not np.all(np.isfinite(arr) & (arr > 0)):
        raise ParameterError(f"{what}: every factor must be finite and > 0")
    return arr

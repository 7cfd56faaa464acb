"""Device model sets: the named presets and user YAML files that override them.

A model file names a base preset, the two calibration handles (time scale, voltage scale) and
per-section overrides. Handles rescale the base preset; values written in the file are taken
literally. Only plain data is read (``yaml.safe_load``); nothing from a file is imported or run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from dendrolab.errors import ParameterError

from .dendrite import DendriteParams
from .params import ParamSet
from .soma import CircuitParams, SomaParams
from .synapse import SynapseParams
from .wafer import WaferParams

DEFAULT_PRESET = "li2020-original"
#: Sections the calibration handles act on: the neuron devices and their circuit. The synapse
#: array and the wafer geometry are separate technologies and keep their own scales.
SCALED_SECTIONS = ("dendrite", "soma", "circuit")
_TOP_KEYS = {"description", "base", "time_scale", "voltage_scale"}


@dataclasses.dataclass(frozen=True)
class DeviceModels:
    """Every parameter set of one simulated technology, plus where it came from."""

    dendrite: DendriteParams = dataclasses.field(default_factory=DendriteParams)
    soma: SomaParams = dataclasses.field(default_factory=SomaParams)
    circuit: CircuitParams = dataclasses.field(default_factory=CircuitParams)
    synapse: SynapseParams = dataclasses.field(default_factory=SynapseParams)
    wafer: WaferParams = dataclasses.field(default_factory=WaferParams)
    name: str = DEFAULT_PRESET
    description: str = ""

    def sections(self) -> dict[str, ParamSet]:
        return {s: getattr(self, s) for s in _SECTIONS}

    def without_noise(self) -> DeviceModels:
        """Noise-free copy: no cycle-to-cycle, read or device-to-device spread, no defects."""
        return dataclasses.replace(
            self, **{s: p.without_noise() for s, p in self.sections().items()})

    def scaled(self, time_scale: float = 1.0, voltage_scale: float = 1.0) -> DeviceModels:
        """Apply the calibration handles to the neuron devices (see ``SCALED_SECTIONS``)."""
        return dataclasses.replace(self, **{
            s: getattr(self, s).scaled(time_scale, voltage_scale) for s in SCALED_SECTIONS})

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (for run-file metadata and round trips through ``load_models``)."""
        out: dict[str, Any] = {"description": self.description}
        out.update({s: p.to_dict() for s, p in self.sections().items()})
        return out


_SECTIONS = tuple(f.name for f in dataclasses.fields(DeviceModels)
                  if f.name not in ("name", "description"))


def preset_names() -> list[str]:
    """Names of the packaged presets."""
    folder = resources.files("sim_backend") / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _read_yaml(text: str, where: str) -> Mapping[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ParameterError(f"{where}{line}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ParameterError(f"{where}: a model file must be a mapping of sections")
    return data


def _preset_mapping(name: str) -> Mapping[str, Any]:
    if name not in preset_names():
        raise ParameterError(
            f"unknown preset {name!r}; available: {', '.join(preset_names())}")
    text = (resources.files("sim_backend") / "presets" / f"{name}.yaml").read_text()
    return _read_yaml(text, f"preset {name}")


def _number(data: Mapping[str, Any], key: str, where: str) -> float:
    value = data.get(key, 1.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ParameterError(f"{where}: {key} = {value!r}: must be a number > 0")
    return float(value)


def _build(data: Mapping[str, Any], where: str, name: str, depth: int = 0) -> DeviceModels:
    unknown = set(data) - _TOP_KEYS - set(_SECTIONS)
    if unknown:
        raise ParameterError(
            f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
            f"known: {', '.join(sorted(_TOP_KEYS | set(_SECTIONS)))}")
    base_name = data.get("base")
    if base_name is not None:
        if depth > 4:
            raise ParameterError(f"{where}: preset bases nest too deeply")
        try:
            base_data = _preset_mapping(str(base_name))
        except ParameterError as exc:
            raise ParameterError(f"{where}: base: {exc}") from None
        base = _build(base_data, f"preset {base_name}", str(base_name), depth + 1)
    else:
        base = DeviceModels()
    base = base.scaled(_number(data, "time_scale", where), _number(data, "voltage_scale", where))
    changes = {s: getattr(base, s).merged(data.get(s), where) for s in _SECTIONS if s in data}
    description = str(data.get("description", base.description))
    return dataclasses.replace(base, name=name, description=description, **changes)


def load_models(source: str | Path | Mapping[str, Any] | None = None, *,
                time_scale: float = 1.0, voltage_scale: float = 1.0) -> DeviceModels:
    """Device models from a preset name, a YAML file path, or a mapping (default preset if None).

    Extra ``time_scale``/``voltage_scale`` arguments rescale the result once more, after loading.
    """
    if source is None:
        source = DEFAULT_PRESET
    if isinstance(source, Mapping):
        models = _build(source, "model mapping", "custom")
    elif isinstance(source, str) and source in preset_names():
        models = _build(_preset_mapping(source), f"preset {source}", source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ParameterError(
                f"{source}: no such model file or preset; presets: {', '.join(preset_names())}")
        models = _build(_read_yaml(path.read_text(), str(path)), str(path), path.stem)
    if time_scale != 1.0 or voltage_scale != 1.0:
        models = models.scaled(time_scale, voltage_scale)
    return models

"""Simulated instrument models speaking the real command sets, and their allow-list.

A bench YAML names a model by one of the keys of ``MODELS``; nothing else can be loaded, and no
string from a file is ever imported or evaluated.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from dendrolab.errors import ParameterError

#: model key (as written in a bench YAML) -> (module, class) of our own code.
MODELS: dict[str, tuple[str, str]] = {
    "keithley2450": ("sim_backend.instruments.k2450", "Keithley2450Sim"),
    "keysight_b2900": ("sim_backend.instruments.b2900", "KeysightB2900Sim"),
    "keysight_33500b": ("sim_backend.instruments.awg33500", "Keysight33500BSim"),
    "keysight_33600a": ("sim_backend.instruments.awg33500", "Keysight33600ASim"),
    "keithley2600b": ("sim_backend.instruments.k2600", "Keithley2600BSim"),
    "keithley707b": ("sim_backend.instruments.k707b", "Keithley707BSim"),
    "mpi_sentio": ("sim_backend.instruments.sentio", "SentioSim"),
    "formfactor_velox": ("sim_backend.instruments.velox", "VeloxSim"),
    "keysight_53220a": ("sim_backend.instruments.counter532x0", "Keysight53220ASim"),
    "keysight_53230a": ("sim_backend.instruments.counter532x0", "Keysight53230ASim"),
}


def model_class(key: str) -> Any:
    """The simulated-instrument class registered under ``key`` (allow-list only)."""
    try:
        module, cls = MODELS[key]
    except KeyError:
        raise ParameterError(
            f"unknown simulated instrument model {key!r}; known: {', '.join(sorted(MODELS))}"
        ) from None
    return getattr(import_module(module), cls)

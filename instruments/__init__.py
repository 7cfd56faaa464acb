"""VISA instrument drivers: one class per capability with per-model command tables.

Drivers know nothing about simulation: real and simulated instruments differ only in the VISA
library string.
"""

from instruments.base import (
    CapabilityError,
    Identity,
    Instrument,
    InstrumentMessage,
    ModelSpec,
    UserLimits,
)
from instruments.bench_config import (
    BenchConfig,
    InstrumentSet,
    RoleConfig,
    load_bench_config,
    parse_bench_config,
)
from instruments.counter import COUNTER_MODELS, Counter, CounterInput
from instruments.factory import MODEL_TABLE, connect, identify_resource, open_instrument
from instruments.pulse import PULSE_MODELS, PulseGenerator
from instruments.smu import SMU_MODELS, Reading, Smu, SweepResult
from instruments.switch import SWITCH_MODELS, SwitchMatrix

__all__ = [
    "COUNTER_MODELS",
    "MODEL_TABLE",
    "PULSE_MODELS",
    "SMU_MODELS",
    "SWITCH_MODELS",
    "BenchConfig",
    "CapabilityError",
    "Counter",
    "CounterInput",
    "Identity",
    "Instrument",
    "InstrumentMessage",
    "InstrumentSet",
    "ModelSpec",
    "PulseGenerator",
    "Reading",
    "RoleConfig",
    "Smu",
    "SweepResult",
    "SwitchMatrix",
    "UserLimits",
    "connect",
    "identify_resource",
    "load_bench_config",
    "open_instrument",
    "parse_bench_config",
]

"""A small simulated wafer bench for tests: one 2450 whose needles go through a SENTIO.

Written to a folder as a pyvisa-sim bench (``sim.yaml``) and a roles file (``bench.yaml``)
pointing at it, so wafer runs, the simulated station and the analysis share one fixture text.
By default the devices are noise free (``noise: false``); ``noise=True`` turns the models' own
noise on (device-to-device mismatch, read and cycle-to-cycle noise) and ``models`` overrides
model sections (written as ``models.yaml`` on top of the default preset).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

SMU = "USB0::0x05E6::0x2450::04488850::INSTR"
PROBER = "TCPIP0::192.0.2.20::35555::SOCKET"

SIM = """\
spec: "1.1"
bench:
  seed: {seed}
  noise: {noise}{models}
  host_time: virtual
  wafer:
    sentio:
      id: 1
      params: {params}
      probe: {{smu/1: dendrite}}
devices:
  k2450:
    eom: {{USB INSTR: {{q: "\\n", r: "\\n"}}}}
    error: ERROR
    dialogues: [{{q: "*IDN?", r: "KEITHLEY INSTRUMENTS,MODEL 2450,04488850,1.7.3c"}}]
  sentio:
    delimiter: ""
    eom: {{TCPIP SOCKET: {{q: "\\n", r: "\\n"}}}}
    error: ERROR
    dialogues: [{{q: "*IDN?", r: "MPI Corporation,Sentio - Probe System Software Suite,0,25.2"}}]
resources:
  {smu}: {{device: k2450, model: keithley2450, name: smu}}
  {prober}:
    device: sentio
    model: mpi_sentio
    name: sentio
    options: {{step_time_s: {step_s}, subsite_time_s: {subsite_s}, z_time_s: {z_s}}}
"""
ROLES = """\
visa_library: "sim.yaml@dendrosim"
instruments:
  smu:    {{address: "{smu}", model: "2450"}}
  prober: {{address: "{prober}", model: "SENTIO"}}
"""
#: Stage timing (step, subsite, z) in bench seconds: fast for stepping tests, or realistic.
FAST_STAGE = (0.0005, 0.0005, 0.0)
REAL_STAGE = (0.3, 0.05, 0.1)


def sim_yaml(params: Mapping[str, float], *, seed: int = 3,
             stage: tuple[float, float, float] = FAST_STAGE, noise: bool = False,
             models_file: str | None = None) -> str:
    """The bench text with these ``WaferParams`` overrides on the station's wafer."""
    flow = "{" + ", ".join(f"{k}: {v}" for k, v in params.items()) + "}"
    step_s, subsite_s, z_s = stage
    return SIM.format(seed=seed, params=flow, smu=SMU, prober=PROBER, step_s=step_s,
                      subsite_s=subsite_s, z_s=z_s, noise=str(bool(noise)).lower(),
                      models=f"\n  models: {models_file}" if models_file else "")


def write_wafer_bench(folder: Path, params: Mapping[str, float], *,
                      models: Mapping[str, Mapping[str, float]] | None = None,
                      **kw: object) -> Path:
    """``sim.yaml`` and ``bench.yaml`` (roles ``smu`` and ``prober``) in ``folder``, and with
    ``models`` (section -> parameter overrides) a ``models.yaml`` on the default preset;
    returns the roles file."""
    folder.mkdir(parents=True, exist_ok=True)
    if models is not None:
        (folder / "models.yaml").write_text(yaml.safe_dump(
            {"base": "li2020-original", **{k: dict(v) for k, v in models.items()}}))
        kw["models_file"] = "models.yaml"
    (folder / "sim.yaml").write_text(sim_yaml(params, **kw))  # type: ignore[arg-type]
    roles = folder / "bench.yaml"
    roles.write_text(ROLES.format(smu=SMU, prober=PROBER))
    return roles

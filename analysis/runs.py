"""Reading run files for analysis: summaries and step data, on top of the run-file reader.

Only reads; the layout itself is specified in docs/runfile.md and implemented in protocols/.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from protocols.runfile import RunReader


def load_steps(path: str | Path) -> tuple[dict, list[tuple[str, dict[str, np.ndarray]]]]:
    """(root attributes, [(step name, {dataset: array})...]) for the steps that recorded data."""
    with RunReader(path) as reader:
        attrs = dict(reader.attrs)
        steps = []
        for info in reader.steps:
            if "current_a" in info.units:
                steps.append((info.name, dict(reader.step(info.index).arrays)))
    return attrs, steps


def describe_run(path: str | Path) -> list[str]:
    """Human-readable summary lines for ``dendrolab inspect``."""
    with RunReader(path) as reader:
        a = reader.attrs
        lines = [
            f"run        {a.get('uuid', '')}",
            f"protocol   {a.get('protocol_name', '')} ({a.get('figure', '')})",
            f"status     {reader.status}; started {a.get('start_time', '')}, "
            f"stopped {a.get('stop_time', '') or '-'}",
            f"device     {a.get('device_id', '') or '-'}; operator {a.get('operator', '') or '-'}",
            f"software   dendrolab {a.get('software_version', '')}; VISA "
            f"{a.get('visa_library', '')}",
        ]
        sim = {k[len("library_"):]: v for k, v in a.items() if k.startswith("library_")}
        if sim:
            lines.append("library    " + ", ".join(f"{k}={v}" for k, v in sorted(sim.items())))
        lines.append("instruments:")
        for snap in reader.instruments.values():
            ident = snap.identity
            lines.append(f"  {snap.name:12s} {ident.get('vendor', '')} {ident.get('model', '')} "
                         f"s/n {ident.get('serial', '')}")
        steps = reader.steps
        done = sum(s.status == "done" for s in steps)
        lines.append(f"steps: {done}/{len(steps)} done")
        for s in steps:
            units = ", ".join(f"{k} [{u}]" for k, u in s.units.items())
            lines.append(f"  {s.index:4d} {s.status:8s} {s.rows:6d} pts  {s.name}  ({units})")
    return lines

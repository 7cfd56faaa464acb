"""Piecewise-constant (PWC) voltage waveforms: the one input format of every physics model.

A waveform is K segments (volts, seconds), shared by all devices as 1-D arrays or per device as
(N x K) arrays. Edges and ramps are split into sub-segments held at their midpoint voltage, which
is second-order accurate and keeps every device update exact within a segment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dendrolab.errors import ParameterError


@dataclass(frozen=True)
class Waveform:
    """K piecewise-constant segments; ``v`` and ``dt`` are (K,) or (N, K) arrays."""

    v: np.ndarray
    dt: np.ndarray

    def __post_init__(self) -> None:
        v = np.asarray(self.v, dtype=float)
        dt = np.asarray(self.dt, dtype=float)
        if v.ndim not in (1, 2) or dt.ndim not in (1, 2):
            raise ParameterError("waveform arrays must be (K,) or (N, K)")
        if v.shape[-1] != dt.shape[-1]:
            raise ParameterError(
                f"waveform has {v.shape[-1]} voltages but {dt.shape[-1]} durations")
        if not (np.all(np.isfinite(v)) and np.all(np.isfinite(dt))):
            raise ParameterError("waveform contains NaN or Inf")
        if np.any(dt < 0):
            raise ParameterError("waveform segment durations must be >= 0 s")
        object.__setattr__(self, "v", v)
        object.__setattr__(self, "dt", dt)

    @property
    def n_segments(self) -> int:
        return self.v.shape[-1]

    @property
    def duration_s(self) -> np.ndarray | float:
        total = self.dt.sum(axis=-1)
        return float(total) if np.ndim(total) == 0 else total

    def segment(self, k: int) -> tuple[np.ndarray | float, np.ndarray | float]:
        """(volts, seconds) of segment k: scalars for a shared waveform, (N,) arrays otherwise."""
        v = self.v[..., k]
        dt = self.dt[..., k]
        return (v if np.ndim(v) else float(v)), (dt if np.ndim(dt) else float(dt))

    def __add__(self, other: Waveform) -> Waveform:
        return concat(self, other)

    def split(self, k: int, fraction: float = 0.5) -> Waveform:
        """The same waveform with segment k cut in two at ``fraction`` of its duration."""
        v = np.insert(self.v, k + 1, self.v[..., k], axis=-1)
        dt = np.insert(self.dt, k + 1, self.dt[..., k] * (1 - fraction), axis=-1)
        dt[..., k] = self.dt[..., k] * fraction
        return Waveform(v, dt)


def concat(*waves: Waveform) -> Waveform:
    """Join waveforms in time (shared and per-device parts broadcast together)."""
    if not waves:
        raise ParameterError("concat needs at least one waveform")
    n = max((w.v.shape[0] for w in waves if w.v.ndim == 2), default=None)

    def widen(a: np.ndarray) -> np.ndarray:
        return np.broadcast_to(a, (n, a.shape[-1])) if n is not None and a.ndim == 1 else a

    v = np.concatenate([widen(w.v) for w in waves], axis=-1)
    dt = np.concatenate([widen(w.dt) for w in waves], axis=-1)
    return Waveform(v, dt)


def dc(volts: float, duration_s: float) -> Waveform:
    """One constant segment."""
    return Waveform(np.array([volts], float), np.array([duration_s], float))


def ramp(v_start: float, v_stop: float, duration_s: float, segments: int = 8) -> Waveform:
    """A linear ramp as ``segments`` midpoint-held steps."""
    if segments < 1:
        raise ParameterError("ramp needs at least one segment")
    edges = np.linspace(v_start, v_stop, segments + 1)
    return Waveform((edges[:-1] + edges[1:]) / 2, np.full(segments, duration_s / segments))


def pulse_train(
    amplitude_v: float,
    width_s: float,
    gap_s: float,
    count: int,
    *,
    base_v: float = 0.0,
    edge_s: float = 0.0,
    edge_segments: int = 4,
) -> Waveform:
    """``count`` pulses of ``width_s`` at ``amplitude_v``, each followed by ``gap_s`` at base.

    ``width_s`` is the flat top; a non-zero ``edge_s`` adds rise and fall ramps of that length.
    """
    if count < 0 or width_s < 0 or gap_s < 0 or edge_s < 0:
        raise ParameterError("pulse count, width, gap and edge must be >= 0")
    parts = []
    if edge_s > 0:
        parts.append(ramp(base_v, amplitude_v, edge_s, edge_segments))
    parts.append(dc(amplitude_v, width_s))
    if edge_s > 0:
        parts.append(ramp(amplitude_v, base_v, edge_s, edge_segments))
    if gap_s > 0:
        parts.append(dc(base_v, gap_s))
    one = concat(*parts)
    return Waveform(np.tile(one.v, count), np.tile(one.dt, count))


def staircase(levels_v: np.ndarray, dwell_s: float) -> Waveform:
    """A DC sweep: each level held for ``dwell_s`` (the dwell matters for volatile devices)."""
    levels = np.asarray(levels_v, float)
    return Waveform(levels, np.full(levels.shape[-1], dwell_s))


def triangle(v_peak: float, period_s: float, steps_per_quarter: int = 50) -> Waveform:
    """One period 0 -> +peak -> 0 -> -peak -> 0 as a midpoint-held staircase."""
    q = period_s / 4
    return concat(ramp(0, v_peak, q, steps_per_quarter), ramp(v_peak, 0, q, steps_per_quarter),
                  ramp(0, -v_peak, q, steps_per_quarter), ramp(-v_peak, 0, q, steps_per_quarter))

"""Devices under test as the bench sees them: two-terminal elements driven by held voltages.

Each DUT wraps a one-device physics batch and keeps its state there, so its physics, variation
and noise streams are exactly those of ``sim_backend.physics``. The dendrite adds a scalar fast
path (plain floats, same equations, same keyed draws fetched in blocks) because a simulated
set-V/read-I pair must cost microseconds, and numpy on one element costs tens of them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from sim_backend.physics import rng
from sim_backend.physics.dendrite import (
    ARG_MAX,
    BDT_MAX,
    C2C_STREAM,
    READ_STREAM,
    SINH_MAX,
    DendriteArray,
)
from sim_backend.physics.presets import DeviceModels
from sim_backend.physics.soma import READ_STREAM as SOMA_READ_STREAM
from sim_backend.physics.soma import SomaArray, iv_sweep
from sim_backend.physics.synapse import _EXP_CAP as _SYN_EXP_CAP
from sim_backend.physics.synapse import STUCK_HIGH, STUCK_LOW, STUCK_NONE, SynapseArray
from sim_backend.physics.unit import DendriteSomaUnit
from sim_backend.physics.wafer import DEFECT_OK, DEFECT_OPEN, DEFECT_SHORTED, DEFECT_STUCK
from sim_backend.physics.waveform import Waveform

_BLOCK = 256
_expm1, _sinh = math.expm1, math.sinh
#: Compliance used for state logic when no SMU limit has been applied yet (A).
_NO_LIMIT = 1.0


class _DrawBlock:
    """Keyed draws for one device, fetched ``_BLOCK`` events at a time (values are per event)."""

    def __init__(self, keys: np.ndarray, stream: str, sigma: float, lognormal: bool) -> None:
        self.keys, self.stream, self.sigma, self.lognormal = keys, stream, sigma, lognormal
        self.start = -2 * _BLOCK
        self.values: list[float] = []

    def __call__(self, event: int) -> float:
        if not self.start <= event < self.start + _BLOCK:
            self.start = event - event % _BLOCK
            ev = np.arange(self.start, self.start + _BLOCK)
            z = (rng.lognormal(self.keys, self.stream, self.sigma, ev) if self.lognormal
                 else rng.normal(self.keys, self.stream, ev))
            self.values = z.tolist()
        return self.values[event - self.start]


class DendriteDut:
    """One volatile dendrite; ``hold`` and ``read`` run on floats, ``drive`` on the batch engine.

    In the scalar path the state lives in plain floats (``_w``, polarity, pulse counter, the
    present pulse's C2C-scaled rates) and is copied to and from the one-device batch around
    every batch call, so both paths see one state.
    """

    kind = "dendrite"
    limit_a: float | None = None
    self_limiting = False

    def __init__(self, array: DendriteArray) -> None:
        if array.n != 1:
            raise ValueError("a DUT wraps exactly one device")
        self.array = array
        p = {k: float(a[0]) for k, a in array.p.items()}
        self.g_off, self.rho, self.v0 = p["g_off_s"], p["rho"], p["v0_v"]
        self.kappa = p["kappa_rect"]
        self.inv_vp, self.inv_vm = 1.0 / p["v_plus_v"], 1.0 / p["v_minus_v"]
        self.kp, self.km, self.inv_tau = p["k_plus_per_s"], p["k_minus_per_s"], 1.0 / p["tau_r_s"]
        self.exponential = array.params.mapping == "exponential"
        self.read_sigma = array.params.read_noise_rel
        self.c2c_on = array._c2c_on
        # Facilitation and OU state noise are not linear in w: those use the batch engine.
        self.scalar = array._exact_only
        self.reads = 0
        self._c2c = _DrawBlock(array.keys, C2C_STREAM, array.params.c2c_sigma_ln, True)
        self._read = _DrawBlock(array.keys, READ_STREAM, 1.0, False)
        self._pull()

    # --------------------------------------------------------------- state
    def _pull(self) -> None:
        a = self.array
        self._w = float(a.w[0])
        self._pol = int(a._polarity[0])
        self._events = int(a.events[0])
        self._kp_eff = float(a._kp_eff[0])
        self._km_eff = float(a._km_eff[0])
        # the last hold's voltage with its decay rate b and fixed point r+/b (a one-entry cache)
        self._rate_v, self._rate_b, self._rate_target = math.nan, 0.0, 0.0

    def _push(self) -> None:
        a = self.array
        a.w[0] = self._w
        a._polarity[0] = self._pol
        a._pol_all = self._pol
        a.events[0] = self._events
        if self.c2c_on:
            a._kp_eff[0] = self._kp_eff
            a._km_eff[0] = self._km_eff

    @property
    def w(self) -> float:
        return self._w

    def conductance(self, w: float) -> float:
        if self.exponential:
            return self.g_off * self.rho ** w
        return self.g_off * (1.0 + (self.rho - 1.0) * w)

    def hold(self, v: float, dt: float) -> None:
        """Advance the state with ``v`` held for ``dt`` seconds (exact)."""
        if not dt > 0:
            return
        if not self.scalar:
            self._batch(lambda a: a.step(v, dt))
            return
        sign = (v > 0) - (v < 0)
        if sign != self._pol:
            if sign != 0:
                self._start_pulse()
            self._pol = sign
        w = self._w
        if sign == 0:
            self._w = w * math.exp(-min(dt * self.inv_tau, BDT_MAX))
            return
        if v == self._rate_v:  # the voltage of the last hold (a sweep holds each level twice)
            b, target = self._rate_b, self._rate_target
        else:
            if sign > 0:
                r_p = self._kp_eff * _expm1(min(v * self.inv_vp, ARG_MAX))
                r_m = 0.0
            else:
                r_p = 0.0
                r_m = self._km_eff * _expm1(min(-v * self.inv_vm, ARG_MAX))
            b = r_p + r_m + self.inv_tau
            target = r_p / b
            self._rate_v, self._rate_b, self._rate_target = v, b, target
        x = b * dt
        if BDT_MAX < x:  # min(b * dt, BDT_MAX) without the call (same value, NaN included)
            x = BDT_MAX
        em = _expm1(-x)
        w = w + w * em - target * em
        if 0.0 > w:  # min(max(w, 0.0), 1.0) without the calls (same value, NaN included)
            w = 0.0
        elif 1.0 < w:
            w = 1.0
        self._w = w

    def _start_pulse(self) -> None:
        """A new pulse: the next keyed C2C factor on k+ and k- (as ``DendriteArray`` does)."""
        if self.c2c_on:
            f = self._c2c(self._events)
            self._kp_eff = self.kp * f
            self._km_eff = self.km * f
            self._rate_v = math.nan  # the rates of the last hold are stale
        self._events += 1

    def _batch(self, action: Any) -> None:
        self._push()
        action(self.array)
        self._pull()

    def drive(self, wave: Waveform) -> None:
        """Apply a whole PWC waveform (pulse trains): segment by segment on the scalar path
        (the same exact update as the batch engine's shared segments, without numpy per
        segment), else the batch engine in one call."""
        if self.scalar and wave.v.ndim == 1 and wave.dt.ndim == 1:
            hold = self.hold
            for v, dt in zip(wave.v.tolist(), wave.dt.tolist(), strict=True):
                hold(v, dt)
            return
        self._batch(lambda a: a.run(wave))

    def current(self, v: float) -> float:
        """Noise-free current (A) at ``v`` in the present state."""
        x = max(-SINH_MAX, min(SINH_MAX, v / self.v0))
        i = self.conductance(self._w) * self.v0 * math.sinh(x)
        return self.kappa * i if v < 0 else i

    def read(self, v: float) -> float:
        """Current as a measurement sees it: with this device's next keyed read-noise draw.

        ``current`` (with ``conductance``) and the draw block's look-up are inlined: the same
        operations in the same order, once per reading.
        """
        v0 = self.v0
        x = v / v0
        if not x < SINH_MAX:  # max(-SINH_MAX, min(SINH_MAX, x)), NaN included
            x = SINH_MAX
        if not x > -SINH_MAX:
            x = -SINH_MAX
        w = self._w
        if self.exponential:
            g = self.g_off * self.rho ** w
        else:
            g = self.g_off * (1.0 + (self.rho - 1.0) * w)
        i = g * v0 * _sinh(x)
        if v < 0:
            i = self.kappa * i
        if self.read_sigma:
            event = self.reads
            block = self._read
            k = event - block.start
            z = block.values[k] if 0 <= k < _BLOCK else block(event)
            i *= 1.0 + self.read_sigma * z
            self.reads = event + 1
        return i

    def voltage_at(self, i: float) -> float:
        """The voltage at which the present state conducts ``i`` (for compliance clamping)."""
        g = self.conductance(self._w) * self.v0
        if i < 0:
            g *= self.kappa
        return self.v0 * math.asinh(i / g)


class SynapseDut:
    """One 1T1R cell: bitline voltage on ``top``, gate voltage on ``gate`` (held by the bench).

    Holds (pulses) and reads run on plain floats with the equations of ``SynapseArray.pulse``
    and ``read`` and the same keyed draws (fetched in blocks); every scalar step writes the
    state back to the one-device array, so the array always shows it. A configured relaxation
    law and whole waveforms use the batch engine.
    """

    kind = "synapse"
    limit_a: float | None = None
    self_limiting = False

    def __init__(self, array: SynapseArray) -> None:
        if array.n != 1:
            raise ValueError("a DUT wraps exactly one device")
        self.array = array
        self.gate_v = 0.0
        pr = array.params
        self._ages = bool(pr.relax_drift_rel or pr.relax_sigma_a_rel or pr.relax_sigma_b_rel)
        p = {k: float(a[0]) for k, a in array.p.items()}
        self.g_min, self.g_max, self.eps = p["g_min_s"], p["g_max_s"], p["eps_nl"]
        self.k_set, self.v_set = p["k_set_per_s"], p["v_set_v"]
        self.k_reset, self.v_reset = p["k_reset_per_s"], p["v_reset_v"]
        self.v_g0, self.s_g = p["v_g0_v"], p["s_g_v"]
        self.free = int(array.stuck[0]) == STUCK_NONE
        self.read_sigma, self.add_rel = pr.read_noise_rel, pr.c2c_add_rel
        self.reset_fraction = pr.relax_reset_fraction
        self._step = _DrawBlock(array.keys, "c2c.step", pr.c2c_sigma_ln, True)
        self._add = _DrawBlock(array.keys, "c2c.add", 1.0, False)
        self._read = _DrawBlock(array.keys, "read.synapse", 1.0, False)
        self._gate_cache = (math.nan, 0.0)   # (gate voltage, its SET target)
        self._pull()

    def _pull(self) -> None:
        a = self.array
        self._g, self._g_prog = float(a.g_s[0]), float(a.g_prog_s[0])
        self._age = float(a.age_s[0])
        self._pulses, self._reads = int(a.n_pulses[0]), int(a.n_reads[0])
        self._relax_event = int(a._relax_event[0])

    def _g_sat(self, vg: float) -> float:
        """``SynapseArray.g_sat`` for this cell (cached per gate voltage)."""
        if vg != self._gate_cache[0]:
            z = max(-_SYN_EXP_CAP, min(_SYN_EXP_CAP, (vg - self.v_g0) / self.s_g))
            frac = 1.0 / (1.0 + math.exp(-z))
            self._gate_cache = (vg, self.g_min + (self.g_max - self.g_min) * frac)
        return self._gate_cache[1]

    def hold(self, v: float, dt: float) -> None:
        """A held bitline voltage acts as one pulse of that width; 0 V only ages the cell
        (which changes nothing unless a relaxation law is configured: then the batch engine).
        """
        if not dt > 0:
            return
        if self._ages:
            self.array.pulse(v, dt, self.gate_v)
            self._pull()
            return
        if v == 0.0:
            return
        self._pulse(v, dt)

    def _pulse(self, v: float, width: float) -> None:
        """``SynapseArray.pulse`` for one active pulse (v != 0, width > 0), no relaxation law."""
        if not (math.isfinite(v) and math.isfinite(width)):
            self.array.pulse(v, width, self.gate_v)     # raises the batch engine's error
        ev = self._pulses
        if v > 0:
            rate = self.k_set * math.exp(min(v / self.v_set, _SYN_EXP_CAP))
        else:
            rate = self.k_reset * math.exp(min(-v / self.v_reset, _SYN_EXP_CAP))
        x = rate * width
        frac = -math.expm1(-x)
        g, gmin, gmax = self._g, self.g_min, self.g_max
        gap = max(self._g_sat(self.gate_v) - g, 0.0) if v > 0 else min(gmin - g, 0.0)
        step = gap * -math.expm1(-(x * self._step(ev)))
        if self.add_rel:
            sig = self.add_rel * (gmax - gmin) * math.sqrt(-math.expm1(-2.0 * x))
            step = step + sig * self._add(ev)
        new = min(max(g + step, gmin), gmax)
        a = self.array
        if self.free:
            if frac >= self.reset_fraction:           # programming: restart the relaxation clock
                self._g_prog = new
                self._relax_event = ev
                self._age = 0.0
                a._relax_event[0] = ev
            else:                                     # weak: shift the baseline only
                self._g_prog = self._g_prog + (new - g)
                self._age += width
            self._g = min(max(self._g_prog, gmin), gmax) if frac < self.reset_fraction else new
            a.g_s[0], a.g_prog_s[0] = self._g, self._g_prog
        else:
            self._age += width
        a.age_s[0] = self._age
        self._pulses = ev + 1
        a.n_pulses[0] = ev + 1

    def drive(self, wave: Waveform) -> None:
        self.array.run(wave, self.gate_v)
        self._pull()

    def current(self, v: float) -> float:
        return self._g * v * (1.0 + self.eps * v * v)

    def read(self, v: float) -> float:
        # A gate that is off blocks the access transistor: no current through the cell.
        if self.gate_v <= 0:
            return 0.0
        i = self._g * v * (1.0 + self.eps * v * v)
        ev = self._reads
        self._reads = ev + 1
        self.array.n_reads[0] = ev + 1
        if self.read_sigma:
            i = i * (1.0 + self.read_sigma * self._read(ev))
        return i

    def voltage_at(self, i: float) -> float:
        return _invert(self.current, i)


def _invert(current: Any, i: float, v_max: float = 40.0) -> float:
    """Voltage where a monotonic I-V reaches ``i`` (bisection; for compliance clamping)."""
    lo, hi = (0.0, v_max) if i >= 0 else (-v_max, 0.0)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if current(mid) < i:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


class SomaDut:
    """One NbOx threshold switch sourced straight across by an SMU (quasi-static, hysteretic).

    With no series element the node follows the source, so the state only changes when the
    source crosses V_th (fire) or V_hold (release); a compliance below the holding current pins
    the ON state at the hold point, as in ``iv_sweep``.
    """

    kind = "soma"
    #: The compliance enters the switching rule itself (``iv_sweep``): the bench keeps the
    #: programmed level as the device's drive instead of substituting the clamped voltage.
    self_limiting = True

    def __init__(self, array: SomaArray) -> None:
        self.array = array
        self.limit_a = _NO_LIMIT
        self.reads = 0

    def hold(self, v: float, dt: float) -> None:
        iv_sweep(self.array, np.array([v]), self.limit_a)

    def drive(self, wave: Waveform) -> None:
        iv_sweep(self.array, wave.v[wave.dt > 0] if wave.v.ndim == 1 else wave.v[0],
                 self.limit_a)

    def read(self, v: float) -> float:
        """The current with read noise; at the compliance exactly the limit, so the SMU sees
        the clamp (noise must not pull a clamped reading below the limit and hide the trip)."""
        _, i = iv_sweep(self.array, np.array([v]), self.limit_a)
        i = float(i[0, 0])
        sigma = self.array.params.read_noise_rel
        if sigma:
            noise = float(rng.normal(self.array.keys, SOMA_READ_STREAM, self.reads)[0])
            self.reads += 1  # one draw per reading, used or not: the stream stays aligned
            if abs(i) < self.limit_a * (1 - 1e-9):
                i *= 1.0 + sigma * noise
        return i

    def voltage_at(self, i: float) -> float:
        """The device voltage ``iv_sweep`` settled on at the clamped current (in ``read``)."""
        return float(self.array.v[0])


class UnitDut:
    """A dendrite-soma unit: input port ``in`` (through the dendrite), output ``out`` (soma).

    Both ports read as an integrating SMU sees a spike train: the charge that flowed over the
    aperture divided by the aperture (``integrating``); spikes are also logged with times.
    """

    integrating = True

    kind = "unit"
    limit_a: float | None = None
    self_limiting = False

    def __init__(self, unit: DendriteSomaUnit) -> None:
        self.unit = unit
        self.t_s = 0.0
        self.charge_c = 0.0       # through the soma branch (the ``out`` port)
        self.charge_in_c = 0.0    # through the dendrite from the input (the ``in`` port)
        self.spike_times: list[float] = []
        self.reads = 0

    def _run(self, wave: Waveform) -> None:
        v0 = float(self.unit.soma.v[0])
        rec = self.unit.run(wave)
        q_soma = float(rec.charge_c.sum())
        self.charge_c += q_soma
        # KCL at the soma node: input charge = soma-branch charge + charge stored on C_m.
        self.charge_in_c += q_soma + self.unit.c_m * (float(self.unit.soma.v[0]) - v0)
        if rec.time_s.size:
            self.spike_times.extend((self.t_s + rec.time_s).tolist())
        self.t_s += float(wave.duration_s)

    def hold(self, v: float, dt: float) -> None:
        if dt > 0:
            self._run(Waveform(np.array([v]), np.array([dt])))

    def drive(self, wave: Waveform) -> None:
        self._run(wave)

    def current(self, v: float) -> float:
        return float(self.unit.input_current(v)[0])

    def read(self, v: float) -> float:
        return self.current(v)

    def voltage_at(self, i: float) -> float:
        return _invert(self.current, i)

    def read_out(self) -> float:
        """Instantaneous soma-branch current (A)."""
        return float(self.unit.soma_current()[0])


def make_array(models: DeviceModels, keys: np.ndarray, rows: int, cols: int,
               scale: Mapping[str, np.ndarray] | None = None) -> Any:
    """A ``rows`` x ``cols`` 1T1R array (``ArrayDut``) whose cells are keyed by ``keys``
    (shape (rows*cols,), row-major) and scaled by ``scale`` (per-cell factors), if given."""
    from sim_backend.array_dut import ArrayDut

    return ArrayDut(SynapseArray(models.synapse, keys=keys, scale=scale), rows, cols)


def make(kind: str, models: DeviceModels, keys: np.ndarray,
         scale: Mapping[str, np.ndarray] | None = None, defect: int = 0) -> Any:
    """A DUT of ``kind`` for one device keyed by ``keys`` (shape (1,)); arrays: ``make_array``.

    ``scale`` holds per-parameter factors (a wafer site's ``Wafer.scale_for``) and ``defect`` a
    wafer defect state (``physics.wafer.DEFECT_*``): shorted and open devices are replaced by
    ``ShortedDut`` / ``OpenDut``, a stuck one is frozen (``stuck_dut``). With neither the DUT
    is exactly what it always was.
    """
    if defect == DEFECT_SHORTED:
        return ShortedDut(kind, keys)
    if defect == DEFECT_OPEN:
        return OpenDut(kind, keys)
    if defect == DEFECT_STUCK:
        return stuck_dut(kind, models, keys, scale)
    if defect != DEFECT_OK:
        raise ValueError(f"unknown defect state {defect!r}")
    if scale is not None:
        return _make_scaled(kind, models, keys, scale)
    if kind == "dendrite":
        return DendriteDut(DendriteArray(models.dendrite, keys=keys))
    if kind == "synapse":
        return SynapseDut(SynapseArray(models.synapse, keys=keys))
    if kind == "soma":
        return SomaDut(SomaArray(models.soma, keys=keys))
    if kind == "unit":
        return UnitDut(DendriteSomaUnit(DendriteArray(models.dendrite, keys=keys),
                                        SomaArray(models.soma, keys=keys), models.circuit))
    raise ValueError(f"no DUT for kind {kind!r}")


def _make_scaled(kind: str, models: DeviceModels, keys: np.ndarray,
                 scale: Mapping[str, np.ndarray]) -> Any:
    if kind == "dendrite":
        return DendriteDut(DendriteArray(models.dendrite, keys=keys, scale=scale))
    if kind == "synapse":
        return SynapseDut(SynapseArray(models.synapse, keys=keys, scale=scale))
    if kind == "soma":
        return SomaDut(SomaArray(models.soma, keys=keys, scale=scale))
    raise ValueError(f"no wafer-scaled DUT for kind {kind!r}")


# ------------------------------------------------------------------ wafer defects
#: A shorted device: the needles land on a metal short (ohm). Any source hits its compliance.
SHORT_OHM = 1.0
#: An open device: what an SMU reads on an open needle, a keyed noise floor (A rms) and the
#: leakage of the probe path (ohm), typical of a triaxial probe station.
OPEN_NOISE_A = 20e-15
OPEN_LEAK_OHM = 1e14
#: Stream deciding whether a stuck device is stuck ON (u < 0.5) or OFF, as ``SynapseArray``
#: splits its stuck cells half and half between G_max and G_min.
STUCK_STREAM = "defect.stuck_on"


class _DefectDut:
    """Common part of the defect stand-ins: a two-terminal element with no state."""

    limit_a: float | None = None
    self_limiting = False
    gate_v = 0.0

    def __init__(self, kind: str, keys: np.ndarray) -> None:
        self.kind = kind
        self.keys = keys
        self.reads = 0

    def hold(self, v: float, dt: float) -> None:
        """No state to evolve."""

    def drive(self, wave: Waveform) -> None:
        """No state to evolve."""


class ShortedDut(_DefectDut):
    """A shorted device (wafer defect): ``SHORT_OHM`` across the needles."""

    defect = "shorted"

    def current(self, v: float) -> float:
        return v / SHORT_OHM

    def read(self, v: float) -> float:
        return v / SHORT_OHM

    def voltage_at(self, i: float) -> float:
        return i * SHORT_OHM


class OpenDut(_DefectDut):
    """An open device (wafer defect): probe-path leakage plus a keyed noise floor."""

    defect = "open"

    def __init__(self, kind: str, keys: np.ndarray) -> None:
        super().__init__(kind, keys)
        self._noise = _DrawBlock(keys, "read.open", 1.0, False)

    def current(self, v: float) -> float:
        return v / OPEN_LEAK_OHM

    def read(self, v: float) -> float:
        i = v / OPEN_LEAK_OHM + OPEN_NOISE_A * self._noise(self.reads)
        self.reads += 1
        return i

    def voltage_at(self, i: float) -> float:
        return i * OPEN_LEAK_OHM


class StuckDut:
    """A device that never switches (wafer defect): the real device frozen in its state.

    Reads go through the device's own ``read`` (its I-V and read noise), ``hold`` and ``drive``
    change nothing. ``stuck_on`` says which state it is frozen in.
    """

    defect = "stuck"
    self_limiting = False

    def __init__(self, inner: Any, stuck_on: bool) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.stuck_on = stuck_on
        self.limit_a: float | None = None

    @property
    def gate_v(self) -> float:
        return self.inner.gate_v

    @gate_v.setter
    def gate_v(self, value: float) -> None:
        self.inner.gate_v = value

    def hold(self, v: float, dt: float) -> None:
        """Frozen: no state change."""

    def drive(self, wave: Waveform) -> None:
        """Frozen: no state change."""

    def current(self, v: float) -> float:
        return self.inner.current(v)

    def read(self, v: float) -> float:
        return self.inner.read(v)

    def voltage_at(self, i: float) -> float:
        return self.inner.voltage_at(i)


class _FrozenSoma:
    """A threshold switch stuck in one branch: ohmic at R_on (ON) or R_off (OFF)."""

    kind = "soma"
    gate_v = 0.0

    def __init__(self, array: SomaArray, on: bool) -> None:
        self.array = array
        self.r = float(array.p["r_on_ohm" if on else "r_off_ohm"][0])
        self.reads = 0

    def current(self, v: float) -> float:
        return v / self.r

    def read(self, v: float) -> float:
        i = v / self.r
        sigma = self.array.params.read_noise_rel
        if sigma:
            i *= 1.0 + sigma * float(rng.normal(self.array.keys, SOMA_READ_STREAM, self.reads)[0])
            self.reads += 1
        return i

    def voltage_at(self, i: float) -> float:
        return i * self.r


def stuck_dut(kind: str, models: DeviceModels, keys: np.ndarray,
              scale: Mapping[str, np.ndarray] | None = None) -> StuckDut:
    """A stuck device of ``kind``: ON or OFF by the keyed draw ``STUCK_STREAM``.

    dendrite: state w pinned at 1 (ON) or 0 (OFF, its rest state); synapse: the array's own
    stuck cell at G_max or G_min; soma: the ON or the OFF branch, never switching.
    """
    on = bool(rng.uniform(keys, STUCK_STREAM)[0] < 0.5)
    if kind == "dendrite":
        arr = DendriteArray(models.dendrite, keys=keys, scale=scale)
        arr.w[0] = 1.0 if on else 0.0
        return StuckDut(DendriteDut(arr), on)
    if kind == "synapse":
        syn = SynapseArray(models.synapse, keys=keys, scale=scale)
        syn.stuck[0] = STUCK_HIGH if on else STUCK_LOW
        syn.g_s[0] = syn.g_prog_s[0] = syn.p["g_max_s" if on else "g_min_s"][0]
        return StuckDut(SynapseDut(syn), on)
    if kind == "soma":
        return StuckDut(_FrozenSoma(SomaArray(models.soma, keys=keys, scale=scale), on), on)
    raise ValueError(f"no stuck DUT for kind {kind!r}")

"""Dendrite-soma unit: validation items U1 (default exp2 method), U2 (stepper halving, exp2
against it), S3 (both methods); see also test_unit_exp2.py."""

from __future__ import annotations

import numpy as np
import pytest

from dendrolab.errors import ParameterError
from sim_backend.physics.dendrite import DendriteArray, DendriteParams
from sim_backend.physics.soma import CircuitParams, SomaArray, SomaParams, analytic_period
from sim_backend.physics.unit import DendriteSomaUnit
from sim_backend.physics.waveform import Waveform, concat, dc

DEND = DendriteParams().without_noise()
SOMA = SomaParams().without_noise()
CIRCUIT = CircuitParams()
#: A dendrite that is just a 100 kOhm resistor: no state change, sinh(V/V0) linear to 2e-6.
RESISTOR = DendriteParams(g_off_s=1e-5, rho=1.0, v0_v=1e3, k_plus_per_s=0.0,
                          k_minus_per_s=0.0).without_noise()

#: The standard train of spec §3.4 (100 us pulses, 20 pulses), per device amplitude and gap.
AMPS = np.array([4.5, 5.0, 5.25, 5.5, 6.0, 5.25, 5.5])
GAPS = np.array([100, 100, 100, 100, 100, 20, 400]) * 1e-6


def make_unit(n, dend=DEND, soma=SOMA, circuit=CIRCUIT):
    return DendriteSomaUnit(DendriteArray(dend, n), SomaArray(soma, n), circuit)


def train(amps, gaps, count=20, width=100e-6):
    k = 2 * count
    v = np.tile([1.0, 0.0], count)[None, :] * np.asarray(amps)[:, None]
    dt = np.where(np.arange(k) % 2 == 0, width, np.asarray(gaps)[:, None])
    return Waveform(v, dt)


@pytest.fixture(scope="module")
def standard():
    """The standard trains at the default sub-step."""
    unit = make_unit(AMPS.size)
    return unit, unit.run(train(AMPS, GAPS))


#: U2 re-runs 5.25 V and 5.5 V (first 12 pulses) and 6 V (first 4; dt 0 after) at h / 2.
U2_ROWS = [2, 3, 4]
U2_PULSES = [12, 12, 4]


@pytest.fixture(scope="module")
def half_step():
    wave = train(AMPS[U2_ROWS], GAPS[U2_ROWS])
    dt = wave.dt.copy()
    for row, count in enumerate(U2_PULSES):
        dt[row, 2 * count:] = 0.0
    unit = make_unit(len(U2_ROWS))
    return unit.run(Waveform(wave.v, dt), h=CIRCUIT.unit_step_s / 2, method="stepper")


@pytest.fixture(scope="module")
def full_step():
    """The same runs with the stepper at h (U2 proper: halving h)."""
    wave = train(AMPS[U2_ROWS], GAPS[U2_ROWS])
    dt = wave.dt.copy()
    for row, count in enumerate(U2_PULSES):
        dt[row, 2 * count:] = 0.0
    return make_unit(len(U2_ROWS)).run(Waveform(wave.v, dt), method="stepper")


def first_pulse(rec):
    seg = rec.first_spike_segment()
    return np.where(seg >= 0, seg // 2, -1)


# ------------------------------------------------------------------ U1
def test_U1_firing_is_gated_by_the_dendrite(standard):
    unit, rec = standard
    pulse = first_pulse(rec)
    assert rec.total()[0] == 0 and rec.total()[1] == 0          # <= 5.0 V: no spikes at all
    # Spec §3.4 observations: 5.25 V first at pulse ~11, 5.5 V at ~3, 6 V from pulse 1.
    assert 8 <= pulse[2] + 1 <= 14
    assert 2 <= pulse[3] + 1 <= 5
    assert pulse[4] == 0
    assert np.all(np.diff(pulse[2:5]) < 0)                       # earlier with amplitude
    per_pulse = rec.counts[:, ::2]
    assert per_pulse[4, -1] >= 8 and per_pulse[3, -1] >= 2       # rising to several per pulse
    assert np.all(rec.counts[:, 1::2][:, 1:] <= 1)               # gaps: at most a late spike
    assert np.array_equal(unit.dendrite.events, np.full(AMPS.size, 20))   # one C2C draw a pulse


def test_U1_first_spike_pulse_increases_with_gap(standard):
    _, rec = standard
    pulse = first_pulse(rec)
    for by_gap in (pulse[[5, 2]], pulse[[3, 6]]):   # 5.25 V at 20/100 us, 5.5 V at 100/400 us
        assert np.all(by_gap >= 0)
        assert by_gap[1] > by_gap[0]
    assert pulse[5] + 1 <= 8 and pulse[6] + 1 >= 4


def test_U1_without_series_soma_the_dendrite_sees_the_full_input(standard):
    """The soma steals voltage: the dendrite of a firing unit ends less potentiated at 5.25 V
    than a bare dendrite driven by the same train, and a more potentiated one fires more."""
    _, rec = standard
    bare = DendriteArray(DEND, 1)
    bare.run(train([5.25], [100e-6]))
    assert rec.w_end[2, -1] < bare.w[0]
    assert np.all(np.diff(rec.w_end[[0, 1, 2, 3, 4], -1]) > 0)


# ------------------------------------------------------------------ U2
def test_U2_halving_h_changes_little(full_step, half_step):
    a, b = full_step, half_step
    assert np.max(np.abs(a.counts - b.counts)) <= 1
    assert b.total()[2] > 10
    ta, tb = a.first_spike_time(), b.first_spike_time()
    assert np.all(np.isfinite(ta)) and np.all(np.isfinite(tb))
    assert np.max(np.abs(ta / tb - 1)) < 0.01


def test_U2_exp2_agrees_with_the_half_step_stepper(standard, half_step):
    """The default method against the stepper at h / 2, tighter than U2's own bounds."""
    a = standard[1]
    counts_a = a.counts[U2_ROWS].copy()
    for row, count in enumerate(U2_PULSES):
        counts_a[row, 2 * count:] = 0
    assert np.max(np.abs(counts_a - half_step.counts)) <= 1
    ta, tb = a.first_spike_time()[U2_ROWS], half_step.first_spike_time()
    assert np.max(np.abs(ta / tb - 1)) < 0.002


def test_U2_adaptive_steps_agree_with_fixed_steps():
    amps, gaps = np.array([5.5, 5.75]), np.array([100e-6, 100e-6])
    wave = train(amps, gaps, count=3)
    fixed = make_unit(2).run(wave, adaptive=False, method="stepper")
    adaptive = make_unit(2).run(wave, method="stepper")
    tangent = make_unit(2).run(wave, coupling="tangent", method="stepper")
    exp2 = make_unit(2).run(wave)
    for rec in (adaptive, tangent, exp2):
        assert np.max(np.abs(rec.counts - fixed.counts)) <= 1
        assert rec.first_spike_time() == pytest.approx(fixed.first_spike_time(), rel=0.005)


# ------------------------------------------------------------------ S3 (stepper) and numerics
@pytest.mark.parametrize(("method", "rel"), [("stepper", 0.01), ("exp2", 1e-4)])
def test_S3_unit_with_resistor_dendrite_matches_analytic_period(method, rel):
    """A linear dendrite makes the frozen model exact: exp2 meets the period to 1e-4."""
    volts = np.array([2.0, 3.0, 5.0])
    unit = make_unit(3, dend=RESISTOR)
    rec = unit.run(Waveform(volts[:, None], np.array([1e-3])), method=method)
    period = analytic_period(volts, SOMA, CIRCUIT)
    for j in range(3):
        isi = np.diff(rec.times(j))
        assert isi.size >= 8
        assert np.max(np.abs(isi / period[j] - 1)) < rel
    assert np.allclose(unit.dendrite.w, 0.0)


def test_unit_fast_forward_long_segment_keeps_counting():
    """Resistor dendrite over 10 s at 3 V (~300 000 spikes): exact count, fast."""
    unit = make_unit(1, dend=RESISTOR)
    rec = unit.run(dc(3.0, 10.0))
    period = analytic_period(3.0, SOMA, CIRCUIT)
    latency = rec.time_s[0]
    assert abs(rec.total()[0] - ((10.0 - latency) / period + 1)) <= 1
    # Real dendrite, 6.5 V: one 5 ms segment vs two 2.5 ms (fast-forward restarts each time).
    rec = make_unit(2).run(Waveform(np.full((2, 2), 6.5), np.array([[5e-3, 0.0], [2.5e-3] * 2])))
    assert rec.total()[0] == pytest.approx(rec.total()[1], rel=2e-3)
    assert rec.total()[0] > 500


def test_chord_conductance_small_signal_limit():
    unit = make_unit(2)
    unit.dendrite.w[:] = [0.0, 0.5]
    g = unit.chord_conductance(np.array([0.0, 0.0]))
    assert g == pytest.approx(DEND.g_off_s * DEND.rho ** np.array([0.0, 0.5]), rel=1e-9)
    g_neg = unit.chord_conductance(np.array([-1e-9, 1e-9]))
    assert np.all(np.isfinite(g_neg)) and np.all(g_neg > 0)


def test_N5_unit_no_nan_at_extreme_voltage_and_durations():
    wave = concat(dc(20.0, 1e-9), dc(20.0, 100.0), dc(0.0, 100.0), dc(-20.0, 1e-9),
                  dc(-20.0, 100.0), dc(0.0, 1e-9), dc(2.0, 100.0))
    unit = DendriteSomaUnit(DendriteArray(DendriteParams(), 3), SomaArray(SomaParams(), 3),
                            CIRCUIT)
    rec = unit.run(wave)
    for a in (rec.v_end, rec.i_end, rec.charge_c, rec.w_end, unit.soma.v, unit.dendrite.w):
        assert np.all(np.isfinite(a))
    assert np.all((rec.w_end >= 0) & (rec.w_end <= 1))
    assert np.all(rec.on_end[:, [1, 4]])                          # latched ON at +-20 V
    assert np.all(rec.w_end[:, 2] < 1e-6)                         # relaxed after 100 s at 0 V
    assert np.all(rec.counts[:, 6] == 0)                          # 2 V cannot open the dendrite


def test_unit_rejects_bad_arguments():
    with pytest.raises(ParameterError, match="somas"):
        DendriteSomaUnit(DendriteArray(DEND, 2), SomaArray(SOMA, 3))
    unit = make_unit(1)
    with pytest.raises(ParameterError, match="coupling"):
        unit.run(dc(1.0, 1e-6), coupling="bogus")
    with pytest.raises(ParameterError, match="sub-step"):
        unit.run(dc(1.0, 1e-6), h=0.0)
    with pytest.raises(ParameterError, match="method"):
        unit.run(dc(1.0, 1e-6), method="rk4")
    with pytest.raises(ParameterError, match="kernel"):
        unit.run(dc(1.0, 1e-6), kernel="gpu")
    with pytest.raises(ParameterError, match="tol"):
        unit.run(dc(1.0, 1e-6), tol=0.0)


def test_unit_measurement_currents():
    unit = make_unit(1)
    unit.run(dc(3.0, 50e-6))
    v = unit.soma.v[0]
    assert unit.soma_current()[0] == pytest.approx(v / SOMA.r_off_ohm)
    i_in = unit.input_current(3.0)[0]
    assert i_in == pytest.approx(unit.dendrite.current(np.array([3.0 - v]))[0])

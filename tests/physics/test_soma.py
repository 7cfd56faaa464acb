"""Soma (NbOx threshold switch) and its exact RC engine: validation items S1-S6 of the spec."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from dendrolab.errors import ParameterError
from sim_backend.physics.rng import device_keys
from sim_backend.physics.soma import (
    CircuitParams,
    SomaArray,
    SomaCircuit,
    SomaParams,
    analytic_period,
    iv_sweep,
    oscillates,
)
from sim_backend.physics.waveform import Waveform, concat, dc

CLEAN = SomaParams().without_noise()
CIRCUIT = CircuitParams()


def run_dc(volts, duration, params=CLEAN, circuit=CIRCUIT, n=None):
    """One constant segment per device (volts may be an array: one device each)."""
    volts = np.atleast_1d(np.asarray(volts, float))
    soma = SomaArray(params, n or volts.size)
    wave = Waveform(volts[:, None] * np.ones((soma.n, 1)), np.array([duration]))
    return soma, SomaCircuit(soma, circuit).run(wave)


# ------------------------------------------------------------------ parameters & conventions
def test_params_validate_hysteresis_order():
    with pytest.raises(ParameterError, match=r"v_hold_v.*v_th_v"):
        SomaParams(v_th_v=0.7, v_hold_v=0.8)
    with pytest.raises(ParameterError, match="v_on0_v"):
        SomaParams(v_on0_v=0.8)
    with pytest.raises(ParameterError, match="r_off_ohm"):
        SomaParams(r_off_ohm=-1.0)
    scaled = SomaParams().scaled(time_scale=10, voltage_scale=0.5)
    assert scaled.v_th_v == pytest.approx(0.6) and scaled.min_on_dwell_s == pytest.approx(2e-9)
    assert CircuitParams().scaled(time_scale=100).unit_step_s == pytest.approx(1e-9)


def test_d2d_scale_and_keys_conventions():
    p = SomaParams()
    big = SomaArray(p, 50)
    # Per-device values depend on the device key only (batch independence, N3/N4).
    few = SomaArray(p, keys=device_keys(0, 0, 0, np.array([7, 3])))
    assert np.array_equal(few.p["r_off_ohm"], big.p["r_off_ohm"][[7, 3]])
    assert np.array_equal(few.v_th, big.v_th[[7, 3]])
    spread = np.std(np.log(SomaArray(p, 2000).p["r_off_ohm"]))
    assert spread == pytest.approx(p.d2d_r_off_sigma_ln, rel=0.1)
    scaled = SomaArray(CLEAN, 3, scale={"v_th_v": np.array([1.0, 1.1, 1.2])})
    assert np.allclose(scaled.p["v_th_v"], 1.2 * np.array([1.0, 1.1, 1.2]))
    with pytest.raises(ParameterError, match="unknown"):
        SomaArray(CLEAN, 2, scale={"nope": 1.0})
    assert np.all(SomaArray(p, 500).v_hold < SomaArray(p, 500).v_th)


# ------------------------------------------------------------------ S1 DC sweep
def _extract(v, i, r_off, r_on):
    """(V_th, V_hold) from an up-then-down sweep: the switch is where V/I jumps."""
    r = np.abs(v / np.where(i == 0, np.nan, i))
    on = r < np.sqrt(r_off * r_on)
    half = v.size // 2
    k_th = np.argmax(on[:half])
    k_hold = half + np.argmax(~on[half:])
    return k_th, k_hold


def test_S1_dc_sweep_thresholds_with_compliance():
    step = 0.01
    up = np.round(np.arange(0.0, 1.8 + step / 2, step), 10)
    sweep = np.r_[up, up[::-1]]
    soma = SomaArray(CLEAN, 1)
    v, i = iv_sweep(soma, sweep, compliance_a=1e-3)
    k_th, k_hold = _extract(sweep, i[0], 200e3, 2e3)
    # V_th lies in (previous point, switching point]; V_hold in [release point, previous point).
    assert sweep[k_th] - step < CLEAN.v_th_v <= sweep[k_th] + 1e-12
    assert sweep[k_hold] - 1e-12 <= CLEAN.v_hold_v < sweep[k_hold] + step
    assert sweep[k_th] > sweep[k_hold]
    # Same bias (1.0 V, between hold and threshold): up-sweep OFF, down-sweep ON.
    j_up = np.flatnonzero(np.isclose(sweep, 1.0))[0]
    j_dn = np.flatnonzero(np.isclose(sweep, 1.0))[1]
    ratio = (v[0, j_up] / i[0, j_up]) / (v[0, j_dn] / i[0, j_dn])
    assert ratio == pytest.approx(CLEAN.r_off_ohm / CLEAN.r_on_ohm, rel=1e-9)
    assert np.all(np.abs(i) <= 1e-3 + 1e-15)


def test_S1_compliance_clamps_and_symmetric_polarity():
    soma = SomaArray(CLEAN, 1)
    sweep = np.r_[np.linspace(0, 3, 61), np.linspace(3, 0, 61), np.linspace(0, -3, 61)]
    v, i = iv_sweep(soma, sweep, compliance_a=0.5e-3)
    assert np.max(np.abs(i)) == pytest.approx(0.5e-3)
    top = np.argmax(sweep)
    assert v[0, top] == pytest.approx(0.5e-3 * CLEAN.r_on_ohm)     # clamped: V_dev = I_c R_on
    neg = sweep < -CLEAN.v_th_v - 1e-9
    assert np.all(i[0, neg] == pytest.approx(-0.5e-3))                # fires at -V_th too
    assert soma.n_spikes[0] == 2


def test_S1_noisy_devices_track_their_cycle_thresholds():
    soma = SomaArray(SomaParams(), 40)
    step = 0.005
    up = np.arange(0.0, 2.2, step)
    th = soma.v_th.copy()
    _, i_up = iv_sweep(soma, up, compliance_a=2e-3)
    hold = soma.v_hold.copy()
    _, i_dn = iv_sweep(soma, up[::-1], compliance_a=2e-3)
    fired = np.argmax(np.abs(i_up) > 2 * up / soma.p["r_off_ohm"][:, None] + 1e-12, axis=1)
    released = np.argmax(np.abs(i_dn) < 1e-5, axis=1)
    assert np.all(np.abs(up[fired] - th) < step + 1e-12)
    assert np.all(np.abs(up[::-1][released] - hold) < step + 1e-12)
    assert np.std(th / soma.p["v_th_v"]) > 0.01                       # C2C really drawn


# ------------------------------------------------------------------ S2 oscillation window
def test_S2_spikes_iff_oscillation_condition_both_boundaries():
    circuit = CircuitParams(r_series_ohm=5e3)
    lo = CLEAN.v_th_v * (5e3 + CLEAN.r_off_ohm) / CLEAN.r_off_ohm   # V_inf,off = V_th
    hi = CLEAN.v_hold_v * (5e3 + CLEAN.r_on_ohm) / CLEAN.r_on_ohm   # V_inf,on = V_hold
    volts = np.array([lo * 0.999, lo * 1.001, hi * 0.999, hi * 1.001])
    assert list(oscillates(volts, CLEAN, circuit)) == [False, True, True, False]
    _, rec = run_dc(volts, 2e-3, circuit=circuit)
    counts = rec.total()
    assert counts[0] == 0                      # never reaches V_th
    assert counts[1] >= 10 and counts[2] >= 10
    assert counts[3] == 1                      # fires once, then latches ON
    assert rec.on_end[3, 0] and not rec.on_end[0, 0]
    period = analytic_period(volts, CLEAN, circuit)
    assert np.isinf(period[[0, 3]]).all()
    for j in (1, 2):
        assert np.diff(rec.times(j)) == pytest.approx(period[j], rel=1e-9)


# ------------------------------------------------------------------ S3 period
def test_S3_exact_period_matches_analytic():
    volts = np.array([2.0, 3.0, 5.0])
    period = analytic_period(volts, CLEAN, CIRCUIT)
    assert period == pytest.approx([105e-6, 33e-6, 15e-6], rel=0.02)
    assert analytic_period(1.79, CLEAN, CIRCUIT) == np.inf            # no firing below ~1.8 V
    _, rec = run_dc(volts, 1e-3)
    for j in range(3):
        isi = np.diff(rec.times(j))
        assert isi.size >= 8
        assert np.max(np.abs(isi / period[j] - 1)) < 1e-9


def test_S3_period_with_options_matches_analytic():
    """Affine ON branch, sense resistor, switching delay and a dwell-limited ON phase."""
    for p, c in [
        (CLEAN.replace(v_on0_v=0.3), CircuitParams(r_load_ohm=1e3)),
        (CLEAN.replace(delay_t0_s=2e-6, delay_vd_v=0.2), CIRCUIT),
        (CLEAN.replace(min_on_dwell_s=3e-6), CIRCUIT),
    ]:
        period = analytic_period(4.0, p, c)
        assert np.isfinite(period)
        _, rec = run_dc(4.0, 40 * period, params=p, circuit=c)
        isi = np.diff(rec.times(0))
        assert isi.size >= 30
        assert np.max(np.abs(isi / period - 1)) < 1e-9
    # The options really change the period.
    base = analytic_period(4.0, CLEAN, CIRCUIT)
    assert analytic_period(4.0, CLEAN.replace(min_on_dwell_s=3e-6), CIRCUIT) > base + 1e-6
    assert analytic_period(4.0, CLEAN.replace(delay_t0_s=2e-6), CIRCUIT) > base


def test_switch_delay_fires_late_or_not_at_all():
    """Reaching V_th arms the switch; it fires t_d later unless the node falls back first."""
    p = CLEAN.replace(delay_t0_s=5e-6, delay_vd_v=10.0)
    t_cross = run_dc(3.0, 1e-3)[1].first_spike_time()[0]
    v_inf_off = 3.0 * CLEAN.r_off_ohm / (CLEAN.r_off_ohm + CIRCUIT.r_series_ohm)
    t_d = 5e-6 * np.exp(-(v_inf_off - CLEAN.v_th_v) / 10.0)
    late = SomaCircuit(SomaArray(p, 1), CIRCUIT).run(dc(3.0, t_cross + 2 * t_d))
    assert late.first_spike_time()[0] == pytest.approx(t_cross + t_d, rel=1e-9)
    soma = SomaArray(p, 1)
    cut = SomaCircuit(soma, CIRCUIT).run(concat(dc(3.0, t_cross + 0.2 * t_d), dc(0.0, 50e-6)))
    assert cut.total()[0] == 0 and not soma.armed[0]


def test_S3_engine_matches_solve_ivp_reference():
    """Piecewise ODE with threshold events integrated by solve_ivp at tight tolerance."""
    vin, c = 3.0, CIRCUIT.c_m_f
    rs, r_off, r_on = CIRCUIT.r_series_ohm, CLEAN.r_off_ohm, CLEAN.r_on_ohm

    def rhs(r):
        return lambda t, y: [((vin - y[0]) / rs - y[0] / r) / c]

    def level(x):
        def ev(t, y):
            return y[0] - x
        ev.terminal = True
        return ev

    t, y, spikes = 0.0, 0.0, []
    while len(spikes) < 3:
        sol = solve_ivp(rhs(r_off), (t, 1.0), [y], method="DOP853", rtol=1e-13, atol=1e-16,
                        events=level(CLEAN.v_th_v))
        t, y = sol.t_events[0][0], CLEAN.v_th_v
        spikes.append(t)
        sol = solve_ivp(rhs(r_on), (t, 1.0), [y], method="DOP853", rtol=1e-13, atol=1e-16,
                        events=level(CLEAN.v_hold_v))
        t, y = sol.t_events[0][0], CLEAN.v_hold_v
    _, rec = run_dc(vin, spikes[-1] + 1e-6)
    assert rec.times(0)[:3] == pytest.approx(spikes, rel=1e-8)
    # Charging phase sampled at segment ends: exact exponential.
    soma = SomaArray(CLEAN, 1)
    rec = SomaCircuit(soma, CIRCUIT).run(Waveform(np.full(10, vin), np.full(10, 1e-6)))
    ref = solve_ivp(rhs(r_off), (0, 1e-5), [0.0], method="Radau", rtol=1e-10, atol=1e-14,
                    t_eval=np.arange(1, 11) * 1e-6)
    assert rec.v_end[0] == pytest.approx(ref.y[0], rel=1e-8)


# ------------------------------------------------------------------ S4 f-V
def test_S4_rate_rises_and_latency_falls_with_amplitude():
    volts = np.linspace(2.0, 20.0, 10)
    _, rec = run_dc(volts, 20e-3)
    rate = rec.total() / 20e-3
    assert np.all(np.diff(rate) > 0)
    assert rate == pytest.approx(1 / analytic_period(volts, CLEAN, CIRCUIT), rel=0.01)
    latency = rec.first_spike_time()
    assert np.all(np.diff(latency) < 0)


def test_S4_spike_output_is_an_on_phase_current_burst():
    circuit = CircuitParams(r_load_ohm=50.0)
    soma = SomaArray(CLEAN, 1)
    sc = SomaCircuit(soma, circuit)
    rec = sc.run(dc(3.0, 100e-6))
    t1 = rec.first_spike_time()[0]
    assert np.isfinite(t1)
    soma2 = SomaArray(CLEAN, 1)
    sc2 = SomaCircuit(soma2, circuit)
    sc2.run(dc(3.0, t1 + 1e-12))
    i_on = sc2.soma_current()[0]
    sc2.run(dc(3.0, 0.999 * analytic_period(3.0, CLEAN, circuit)))     # back OFF, just before
    i_off = sc2.soma_current()[0]
    assert soma2.on.sum() == 0
    # Just after the switch the node sits at the threshold seen through R_L: v = V_th (R_off +
    # R_L) / R_off, and the whole of it now drives the ON branch R_on + R_L.
    v_node = CLEAN.v_th_v * (CLEAN.r_off_ohm + 50) / CLEAN.r_off_ohm
    assert i_on == pytest.approx(v_node / (CLEAN.r_on_ohm + 50), rel=1e-5)
    assert i_on / i_off > 50
    assert sc2.load_voltage()[0] == pytest.approx(i_off * 50)
    noisy = SomaCircuit(SomaArray(SomaParams(), 200), circuit)
    noisy.run(dc(1.0, 1e-3))
    clean = noisy.soma_current()
    read = noisy.soma_current(noise_event=0)
    assert np.std(read / clean - 1) == pytest.approx(SomaParams().read_noise_rel, rel=0.2)
    assert np.array_equal(noisy.soma_current(), clean)             # reading never changes state


# ------------------------------------------------------------------ S5 LIF under pulses
def _pulses(amp, width, gaps, count):
    gaps = np.asarray(gaps, float)
    v = np.tile([amp, 0.0], count)
    dt = np.where(np.arange(2 * count) % 2 == 0, width, gaps[:, None])
    return Waveform(np.broadcast_to(v, dt.shape), dt)


def test_S5_pulses_to_first_spike_grow_with_gap():
    gaps = [0.1e-6, 1e-6, 2e-6, 3e-6]
    soma = SomaArray(CLEAN, 4)
    rec = SomaCircuit(soma, CIRCUIT).run(_pulses(3.0, 5e-6, gaps, 60))
    first_pulse = rec.first_spike_segment() // 2
    assert np.all(first_pulse >= 1)
    assert np.all(np.diff(first_pulse) > 0)
    # A gap that leaks more than a pulse can add never fires (leaky integration).
    far = SomaCircuit(SomaArray(CLEAN, 1), CIRCUIT).run(_pulses(3.0, 5e-6, [10e-6], 60))
    assert far.total()[0] == 0


def test_S5_leak_time_constant_is_cm_times_rs_parallel_roff():
    soma = SomaArray(CLEAN, 1)
    wave = concat(dc(2.0, 20e-6), Waveform(np.zeros(20), np.full(20, 10e-6)))
    rec = SomaCircuit(soma, CIRCUIT).run(wave)
    t = np.arange(1, 21) * 10e-6
    slope = np.polyfit(t, np.log(rec.v_end[0, 1:]), 1)[0]
    r_par = 1 / (1 / CIRCUIT.r_series_ohm + 1 / CLEAN.r_off_ohm)
    assert -1 / slope == pytest.approx(CIRCUIT.c_m_f * r_par, rel=1e-6)
    assert rec.total()[0] == 0


# ------------------------------------------------------------------ S6 stochastic firing
def _predicted_cv(vin, sigma_rel, p=CLEAN, c=CIRCUIT):
    """Propagate V_th ~ N(V_th, (sigma V_th)^2) through the period formula (delta method).

    ISI_c = t_on(theta_c) + t_off(theta_c+1): theta_c is where spike c fired (discharge starts
    there), theta_c+1 the next threshold (charge ends there); the two draws are independent.
    """
    gs, g_off, g_on = 1 / c.r_series_ohm, 1 / p.r_off_ohm, 1 / p.r_on_ohm
    vinf_off, tau_off = gs * vin / (gs + g_off), c.c_m_f / (gs + g_off)
    vinf_on, tau_on = gs * vin / (gs + g_on), c.c_m_f / (gs + g_on)
    d_off = tau_off / (vinf_off - p.v_th_v)
    d_on = tau_on / (p.v_th_v - vinf_on)
    sd = sigma_rel * p.v_th_v * np.hypot(d_off, d_on)
    return sd / analytic_period(vin, p, c)


@pytest.mark.parametrize("sigma", [0.01, 0.03])
def test_S6_isi_cv_follows_vth_c2c_sigma(sigma):
    p = CLEAN.replace(c2c_v_th_rel=sigma)
    soma = SomaArray(p, 8)
    rec = SomaCircuit(soma, CIRCUIT).run(dc(3.0, 10e-3))
    isi = np.concatenate([np.diff(rec.times(i)) for i in range(8)])
    assert isi.size > 2000
    cv = isi.std() / isi.mean()
    assert cv == pytest.approx(_predicted_cv(3.0, sigma), rel=0.2)
    assert isi.mean() == pytest.approx(analytic_period(3.0, CLEAN, CIRCUIT), rel=0.02)


def test_S6_seeded_runs_reproducible_and_batch_independent():
    p = SomaParams()
    keys = device_keys(5, 1, 2, np.arange(6))
    recs = [SomaCircuit(SomaArray(p, keys=k), CIRCUIT).run(dc(3.0, 1e-3))
            for k in (keys, keys, keys[[4]])]
    assert np.array_equal(recs[0].time_s, recs[1].time_s)
    assert np.array_equal(recs[2].times(0), recs[0].times(4))


# ------------------------------------------------------------------ numerics
def test_N2_splitting_a_segment_changes_nothing():
    wave = concat(dc(3.0, 200e-6), dc(0.0, 50e-6), dc(4.0, 100e-6))
    a = SomaCircuit(SomaArray(CLEAN, 1), CIRCUIT).run(wave)
    b = SomaCircuit(SomaArray(CLEAN, 1), CIRCUIT).run(wave.split(0, 0.37).split(3, 0.5))
    assert b.time_s == pytest.approx(a.time_s, rel=1e-12, abs=1e-18)
    assert b.v_end[0, -1] == pytest.approx(a.v_end[0, -1], rel=1e-9)
    assert b.charge_c.sum() == pytest.approx(a.charge_c.sum(), rel=1e-9)


def test_long_segments_fast_forward_exactly():
    """A 1 s DC segment (~30 000 spikes) costs a few events and counts exactly."""
    period = analytic_period(3.0, CLEAN, CIRCUIT)
    _, rec = run_dc(3.0, 1.0)
    t = rec.times(0)
    assert rec.total()[0] == t.size
    assert t[-1] <= 1.0
    assert np.max(np.abs(np.diff(t) / period - 1)) < 1e-6
    latency = t[0]
    assert rec.total()[0] == int(np.floor((1.0 - latency) / period)) + 1
    capped = SomaCircuit(SomaArray(CLEAN, 1), CIRCUIT).run(dc(3.0, 1.0), max_times_per_segment=10)
    assert capped.total()[0] == rec.total()[0] and capped.time_s.size == 10
    assert capped.n_dropped == rec.total()[0] - 10


def test_N5_no_nan_at_extreme_voltage_and_durations():
    wave = concat(dc(20.0, 1e-9), dc(20.0, 100.0), dc(0.0, 100.0), dc(-20.0, 1e-9),
                  dc(-20.0, 100.0), dc(0.5, 1e-9))
    soma = SomaArray(SomaParams(), 3)
    rec = SomaCircuit(soma, CIRCUIT).run(wave, max_events_per_segment=2000)
    for a in (rec.v_end, rec.i_end, rec.charge_c, rec.time_s, soma.v, soma.v_th):
        assert np.all(np.isfinite(a))
    assert np.all(rec.counts[:, 1] > 1e6) and np.all(rec.counts[:, 4] > 1e6)
    assert np.all(rec.counts[:, [2, 5]] == 0)
    assert np.all(np.abs(soma.v) < 20.0)

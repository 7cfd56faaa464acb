"""Numerics items N1-N5 of device-models.md §4, applied to the dendrite model.

N1 reference solutions come from scipy ``solve_ivp`` (Radau, rtol 1e-10) integrated segment by
segment; N3/N4 compare batches against single devices with the same keyed noise streams.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from sim_backend.physics.dendrite import DendriteArray, DendriteParams, exact_update
from sim_backend.physics.rng import device_keys
from sim_backend.physics.waveform import Waveform, concat, dc, pulse_train

P0 = DendriteParams().without_noise()
#: Everything noisy at once: D2D, C2C, OU state noise and read noise.
NOISY = DendriteParams(state_noise_sigma=2.0, c2c_sigma_ln=0.1)


def mixed_wave() -> Waveform:
    """Excitatory, inhibitory, sub-threshold and read segments, edges, long and short gaps."""
    return concat(
        pulse_train(5.0, 100e-6, 100e-6, 6),
        pulse_train(4.0, 50e-6, 20e-6, 3, edge_s=5e-6),
        dc(0.2, 10e-6), dc(0.0, 1e-3),
        pulse_train(-5.0, 100e-6, 50e-6, 2),
        pulse_train(6.0, 1e-6, 1e-6, 4),
        dc(-1.0, 2e-3), dc(3.0, 5e-3), dc(0.0, 4e-3),
    )


def reference(arr: DendriteArray, wave: Waveform, i: int, c: float = 0.0) -> np.ndarray:
    """w of device i after every segment, from solve_ivp(Radau) on the ODE of §3.2."""
    kp, km = arr.p["k_plus_per_s"][i], arr.p["k_minus_per_s"][i]
    vp, vm, tau = arr.p["v_plus_v"][i], arr.p["v_minus_v"][i], arr.p["tau_r_s"][i]
    w, out = 0.0, []
    v_all = np.broadcast_to(wave.v, (arr.n, wave.n_segments))[i]
    dt_all = np.broadcast_to(wave.dt, (arr.n, wave.n_segments))[i]
    for v, dt in zip(v_all, dt_all, strict=True):
        rp = kp * np.expm1(max(v, 0.0) / vp)
        rm = km * np.expm1(max(-v, 0.0) / vm)

        def rhs(_t, y, rp=rp, rm=rm):
            return [rp * (1 + c * y[0]) * (1 - y[0]) - rm * y[0] - y[0] / tau]

        def jac(_t, y, rp=rp, rm=rm):
            return [[rp * c * (1 - y[0]) - rp * (1 + c * y[0]) - rm - 1 / tau]]

        if dt > 0:
            sol = solve_ivp(rhs, (0.0, dt), [w], method="Radau", jac=jac, rtol=1e-10,
                            atol=1e-14)
            w = float(sol.y[0, -1])
        out.append(w)
    return np.array(out)


def test_N1_exact_update_matches_solve_ivp():
    """N1: exact PWC propagator vs Radau (rtol 1e-10) on a mixed train, D2D on: < 1e-8."""
    wave = mixed_wave()
    p = P0.replace(d2d_k_plus_sigma_ln=0.2, d2d_tau_r_sigma_ln=0.1, d2d_v_plus_sigma_ln=0.03,
                   d2d_k_minus_sigma_ln=0.2)
    arr = DendriteArray(p, 3, keys=device_keys(1, 0, 0, np.arange(3)))
    w = arr.run(wave, record=True)
    assert w.max() > 0.5                                   # the train really drives the state
    for i in range(arr.n):
        np.testing.assert_allclose(w[i], reference(arr, wave, i), rtol=0, atol=1e-8)


def test_N1_facilitation_exponential_euler_converges_to_solve_ivp():
    """N1 (facilitation): exp-Euler sub-steps are first order; h = 0.1 us is within 2e-4."""
    wave = pulse_train(5.0, 100e-6, 100e-6, 5)
    errs = []
    for h in (2e-7, 1e-7):
        p = P0.replace(facilitation=2.0, facilitation_step_s=h)
        arr = DendriteArray(p, 1)
        w = arr.run(wave, record=True)[0]
        errs.append(np.abs(w - reference(arr, wave, 0, c=2.0)).max())
    assert errs[1] < 2e-4
    assert errs[0] / errs[1] == pytest.approx(2.0, rel=0.15)   # halving h halves the error


def random_splits(wave: Waveform, count: int, seed: int) -> Waveform:
    g = np.random.default_rng(seed)                        # test inputs only
    for _ in range(count):
        wave = wave.split(int(g.integers(wave.n_segments)), float(g.uniform(0.05, 0.95)))
    return wave


@pytest.mark.parametrize("params", [P0, P0.replace(c2c_sigma_ln=0.2, d2d_k_plus_sigma_ln=0.2)],
                         ids=["noise-free", "c2c+d2d"])
def test_N2_splitting_segments_changes_nothing(params):
    """N2: any segment cut in two gives the same state (1e-12), also with per-pulse C2C noise."""
    n = 4
    keys = device_keys(3, 0, 0, np.arange(n))
    wave = mixed_wave()
    per_device = Waveform(np.linspace(0.6, 1.2, n)[:, None] * wave.v[None, :], wave.dt)
    for base in (wave, per_device):
        a = DendriteArray(params, keys=keys)
        wa = a.run(base, record=True)
        b = DendriteArray(params, keys=keys)
        b.run(random_splits(base, 40, seed=5))
        np.testing.assert_allclose(b.w, a.w, rtol=0, atol=1e-12)
        assert np.array_equal(a.events, b.events)
        assert wa.max() > 0.3
    # The split at every single segment, in step() form, segment by segment.
    a = DendriteArray(params, keys=keys)
    b = DendriteArray(params, keys=keys)
    for v, dt in zip(wave.v, wave.dt, strict=True):
        a.step(v, dt)
        for frac in (0.3, 0.7):
            b.step(v, dt * frac)
        np.testing.assert_allclose(b.w, a.w, rtol=0, atol=1e-12)


def test_N2_exact_update_composes():
    """N2 at the function level: two half steps equal one full step for any rates."""
    g = np.random.default_rng(0)
    w = g.uniform(0, 1, 1000)
    rp, rm = 10 ** g.uniform(-3, 6, 1000), 10 ** g.uniform(-3, 6, 1000)
    dt = 10 ** g.uniform(-9, -2, 1000)
    one = exact_update(w, rp, rm, 3e-3, dt)
    two = exact_update(exact_update(w, rp, rm, 3e-3, dt / 2), rp, rm, 3e-3, dt / 2)
    np.testing.assert_allclose(two, one, rtol=0, atol=1e-12)


@pytest.mark.parametrize("params", [NOISY, NOISY.replace(facilitation=1.5,
                                                          facilitation_step_s=5e-6)],
                         ids=["noisy", "noisy+facilitation"])
def test_N3_batch_equals_single_devices(params):
    """N3: a batch of N gives the N single-device results (state, events, noisy reads)."""
    n = 6
    keys = device_keys(7, 1, 2, np.arange(n))
    wave = mixed_wave()
    per_device = Waveform(np.linspace(0.7, 1.1, n)[:, None] * wave.v[None, :], wave.dt)
    for w_batch in (wave, per_device):
        batch = DendriteArray(params, keys=keys)
        batch.run(w_batch)
        reads = batch.current(0.2, noise_event=5)
        assert reads.std() > 0
        for i in range(n):
            one = DendriteArray(params, keys=keys[i:i + 1])
            one.run(w_batch if w_batch.v.ndim == 1 else
                    Waveform(w_batch.v[i:i + 1], w_batch.dt))
            np.testing.assert_allclose(one.w, batch.w[i], rtol=1e-13, atol=1e-15)
            assert one.events[0] == batch.events[i]
            np.testing.assert_allclose(one.current(0.2, noise_event=5), reads[i], rtol=1e-13)
            for name, val in batch.p.items():
                assert one.p[name][0] == val[i]


def test_N4_deterministic_and_order_independent():
    """N4: same seed -> same result; device order and batch size do not matter."""
    n = 50
    keys = device_keys(21, 0, 3, np.arange(n))
    wave = mixed_wave()

    def final(k: np.ndarray, params: DendriteParams = NOISY) -> np.ndarray:
        arr = DendriteArray(params, keys=k)
        arr.run(wave)
        return np.stack([arr.w, arr.current(0.2, noise_event=1)])

    ref = final(keys)
    assert np.array_equal(final(keys), ref)
    perm = np.random.default_rng(2).permutation(n)
    np.testing.assert_allclose(final(keys[perm]), ref[:, perm], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(final(keys[10:17]), ref[:, 10:17], rtol=1e-13, atol=1e-15)
    other = final(device_keys(22, 0, 3, np.arange(n)))
    assert not np.allclose(other, ref)


@pytest.mark.parametrize("params", [
    DendriteParams(),
    DendriteParams(state_noise_sigma=50.0, facilitation=3.0, facilitation_step_s=1e-3),
    DendriteParams(facilitation=-0.9, facilitation_step_s=1e-4, mapping="linear",
                   kappa_rect=0.0),
    DendriteParams().scaled(time_scale=100.0, voltage_scale=0.6),
], ids=["default", "ou+facilitation", "negative-facilitation-linear", "optimized-scale"])
def test_N5_invariants_at_extremes(params):
    """N5: 0 <= w <= 1 and no NaN/Inf (no FP warnings) at +-20 V and dt from 1 ns to 100 s."""
    n, k = 64, 60
    g = np.random.default_rng(11)                         # test inputs only
    v = g.choice([-20.0, -7.0, -1e-3, 0.0, 1e-3, 0.2, 5.0, 20.0], size=(n, k))
    dt = 10 ** g.uniform(-9, 2, size=(n, k))
    dt[:, :4] = [1e-9, 100.0, 1e-9, 100.0]
    arr = DendriteArray(params, n, keys=device_keys(4, 0, 0, np.arange(n)))
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        w = arr.run(Waveform(v, dt), record=True)
        for volts in (20.0, -20.0):
            for dur in (1e-9, 100.0):
                arr.step(volts, dur)
                assert np.all((arr.w >= 0) & (arr.w <= 1))
        for state in (np.zeros(n), np.ones(n)):
            for volts in (-20.0, 20.0):
                i = arr.current(volts, state, noise_event=0)
                assert np.all(np.isfinite(i)) and np.all(np.sign(i) == np.sign(volts) * (i != 0))
        rp, rm = arr.rates(np.array([-20.0, 20.0]).repeat(n // 2))
    assert np.all(np.isfinite(w)) and np.all((w >= 0) & (w <= 1))
    assert np.all(np.isfinite(rp)) and np.all(np.isfinite(rm))
    assert w.max() > 0.99                                 # +20 V really saturates

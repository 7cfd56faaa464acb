"""Synapse (1T1R analog RRAM) validation: Y1-Y5 of device-models.md §4, plus numerics checks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.optimize import curve_fit

from dendrolab.errors import ParameterError
from sim_backend.physics import rng
from sim_backend.physics.synapse import STUCK_HIGH, STUCK_LOW, SynapseArray, SynapseParams
from sim_backend.physics.waveform import Waveform, concat, dc, pulse_train

V_W, T_W = 1.5, 100e-9       # the reference programming pulse


def _noise_free(**kw: float) -> SynapseParams:
    return SynapseParams().without_noise().replace(**kw)


def _rate_set(p: SynapseParams, v: float) -> float:
    return p.k_set_per_s * np.exp(v / p.v_set_v)


def _rate_reset(p: SynapseParams, v: float) -> float:
    return p.k_reset_per_s * np.exp(abs(v) / p.v_reset_v)


def test_Y1_read_linearity_within_2_percent() -> None:
    """Y1: I/(G V) - 1 = eps V^2 stays below 2 % for |V| <= 0.2 V; reading leaves G alone."""
    arr = SynapseArray(_noise_free(), 4)
    for k in range(4):
        arr.pulse(np.where(np.arange(4) >= k, V_W, 0.0), 3 * T_W)
    g0 = arr.conductance()
    assert np.unique(g0).size == 4
    for v in np.linspace(-0.2, 0.2, 9):
        if v == 0:
            continue
        dev = arr.read(v) / (g0 * v) - 1
        np.testing.assert_allclose(dev, arr.params.eps_nl * v * v, rtol=1e-12)
        assert np.all(np.abs(dev) < 0.02)
    assert np.all(np.abs(arr.read(0.2) / (g0 * 0.2) - 1) > 0.005)   # the cubic term exists
    np.testing.assert_array_equal(arr.conductance(), g0)
    np.testing.assert_array_equal(arr.read(0.0), 0.0)


def _neurosim(p: np.ndarray, a: float, b: float, g0: float) -> np.ndarray:
    return g0 + b * (1 - np.exp(-p / a))


def test_Y2_potentiation_depression_match_configured_nonlinearity() -> None:
    """Y2: noise-free curves are monotonic, saturate at G_sat(V_g) / G_min, and a NeuroSim fit
    G(p) = G0 + B (1 - exp(-p/A)) gives A = 1/(r(V) t_p) and B = G_sat - G_min analytically."""
    prm = _noise_free()
    arr = SynapseArray(prm, 1)
    gmin = arr.p["g_min_s"][0]
    gsat = float(arr.g_sat()[0])
    pot = [arr.conductance()[0]]
    for _ in range(120):
        arr.pulse(V_W, T_W)
        pot.append(arr.conductance()[0])
    dep = [pot[-1]]
    for _ in range(120):
        arr.pulse(-V_W, T_W)
        dep.append(arr.conductance()[0])
    pot, dep, p = np.array(pot), np.array(dep), np.arange(121.0)
    assert np.all(np.diff(pot) > 0) and np.all(np.diff(dep) < 0)
    assert np.diff(pot)[-1] < 0.02 * np.diff(pot)[0]          # saturating, not linear
    assert abs(pot[-1] - gsat) < 1e-3 * (gsat - gmin)
    assert abs(dep[-1] - gmin) < 1e-3 * (gsat - gmin)

    a_set = 1 / (_rate_set(prm, V_W) * T_W)
    a_reset = 1 / (_rate_reset(prm, V_W) * T_W)
    (a_fit, b_fit), _ = curve_fit(lambda q, a, b: _neurosim(q, a, b, gmin), p, pot,
                                  p0=(20, 1e-5), xtol=1e-14, ftol=1e-14)
    assert a_fit == pytest.approx(a_set, rel=1e-6)
    assert b_fit == pytest.approx(gsat - gmin, rel=1e-6)
    (a_fit, b_fit), _ = curve_fit(lambda q, a, b: _neurosim(q, a, b, dep[0]), p, dep,
                                  p0=(20, -1e-5), xtol=1e-14, ftol=1e-14)
    assert a_fit == pytest.approx(a_reset, rel=1e-6)
    assert b_fit == pytest.approx(gmin - dep[0], rel=1e-6)
    # Useful default step: 20-50 reference pulses from G_min to 95 % of the window.
    assert 20 <= np.argmax(pot >= gmin + 0.95 * (gsat - gmin)) <= 50


def test_Y2_gate_voltage_sets_saturation_level() -> None:
    """Y2: the SET saturation follows the logistic G_sat(V_g); SET never lowers G."""
    prm = _noise_free()
    vg = np.array([0.8, 0.95, 1.0, 1.1, 1.3])
    arr = SynapseArray(prm, vg.size)
    for _ in range(300):
        arr.pulse(V_W, T_W, v_gate=vg)
    expect = prm.g_min_s + (prm.g_max_s - prm.g_min_s) / (1 + np.exp(-(vg - prm.v_g0_v)
                                                                      / prm.s_g_v))
    np.testing.assert_allclose(arr.conductance(), expect, rtol=1e-9)
    assert np.all(np.diff(arr.conductance()) > 0)
    before = arr.conductance()
    arr.pulse(V_W, T_W, v_gate=0.5)                   # target below G: nothing happens
    np.testing.assert_array_equal(arr.conductance(), before)


def _write_verify(arr: SynapseArray, target: float, *, accept: float = 0.01,
                  max_pulses: int = 150, n_avg: int = 16, v_read: float = 0.2) -> np.ndarray:
    """A simple instrument-side loop: averaged read, then a SET or RESET pulse whose width is
    chosen from *nominal* rates to close about half of the error. Returns converged flags."""
    prm = arr.params
    rng_g = prm.g_max_s - prm.g_min_s
    gsat_nom = prm.g_min_s + rng_g / (1 + np.exp(-(prm.v_gate_v - prm.v_g0_v) / prm.s_g_v))
    r_set, r_reset = _rate_set(prm, V_W), _rate_reset(prm, V_W)
    done = np.zeros(arr.n, bool)
    for _ in range(max_pulses):
        i = np.mean([arr.read(v_read) for _ in range(n_avg)], axis=0)
        g = i / (v_read * (1 + prm.eps_nl * v_read ** 2))
        err = target - g
        done |= np.abs(err) <= accept * target
        if done.all():
            break
        up = err > 0
        gap = np.where(up, gsat_nom - g, g - prm.g_min_s)
        frac = np.clip(0.5 * np.abs(err) / np.maximum(gap, 0.05 * rng_g), 1e-6, 0.5)
        width = -np.log1p(-frac) / np.where(up, r_set, r_reset)
        arr.pulse(np.where(done, 0.0, np.where(up, V_W, -V_W)), np.where(done, 0.0, width))
    return done


def test_Y3_write_verify_reaches_16_distinguishable_levels() -> None:
    """Y3: with all noise on, a write-verify loop (2 % tolerance) places >= 16 levels in
    3-15 uS whose true-conductance bands do not overlap, for >= 90 % of non-stuck cells."""
    arr = SynapseArray(SynapseParams(), 200, keys=rng.device_keys(7, 0, 0, np.arange(200)))
    free = arr.stuck == 0
    targets = np.geomspace(3e-6, 15e-6, 16)
    bands = []
    for tgt in targets:
        done = _write_verify(arr, tgt)
        ok = done & free
        assert ok.sum() >= 0.9 * free.sum(), (tgt, ok.sum())
        g = arr.conductance()[ok]
        assert np.mean(np.abs(g / tgt - 1) <= 0.02) >= 0.95
        bands.append((g.min(), g.max()))
    lows, highs = np.array(bands).T
    assert np.all(highs[:-1] < lows[1:])               # 16 distinguishable levels


def test_Y4_read_noise_cv_matches_config() -> None:
    """Y4: relative read noise is Gaussian with CV = read_noise_rel, and never changes G."""
    prm = SynapseParams()
    arr = SynapseArray(prm, 4000)
    g = arr.conductance()
    ideal = g * 0.2 * (1 + arr.p["eps_nl"] * 0.04)
    rel = arr.read(0.2) / ideal - 1
    assert np.std(rel) == pytest.approx(prm.read_noise_rel, rel=0.05)
    assert abs(np.mean(rel)) < 4 * prm.read_noise_rel / np.sqrt(rel.size)
    one = np.array([arr.read(0.2)[0] for _ in range(2000)])
    assert np.std(one) / np.mean(one) == pytest.approx(prm.read_noise_rel, rel=0.08)
    np.testing.assert_array_equal(arr.conductance(), g)
    # An explicit noise_event is reproducible.
    np.testing.assert_array_equal(arr.read(0.2, noise_event=3), arr.read(0.2, noise_event=3))


@pytest.mark.parametrize("name, sigma_field", [
    ("g_max_s", "d2d_g_max_sigma_ln"), ("g_min_s", "d2d_g_min_sigma_ln"),
    ("k_set_per_s", "d2d_k_set_sigma_ln"), ("k_reset_per_s", "d2d_k_reset_sigma_ln")])
def test_Y4_d2d_distributions_are_lognormal(name: str, sigma_field: str) -> None:
    """Y4: per-device parameters on 2000 devices pass a log-normal KS test with the set sigma."""
    prm = SynapseParams()
    arr = SynapseArray(prm, 2000, keys=rng.device_keys(11, 0, 0, np.arange(2000)))
    sigma = getattr(prm, sigma_field)
    z = np.log(arr.p[name] / getattr(prm, name)) / sigma
    assert stats.kstest(z, "norm").pvalue > 0.01
    assert np.std(z) == pytest.approx(1.0, rel=0.06)
    # And the KS test can fail: a wrong sigma is rejected.
    assert stats.kstest(z * 1.3, "norm").pvalue < 1e-3


def test_Y4_stuck_fraction_and_stuck_cells_never_move() -> None:
    """Y4: stuck cells are stuck_fraction of all (half low, half high, binomial tolerance)."""
    prm = SynapseParams()
    n = 20000
    arr = SynapseArray(prm, n)
    lo, hi = np.sum(arr.stuck == STUCK_LOW), np.sum(arr.stuck == STUCK_HIGH)
    mean, sd = n * prm.stuck_fraction / 2, np.sqrt(n * prm.stuck_fraction / 2)
    assert abs(lo - mean) < 4 * sd and abs(hi - mean) < 4 * sd
    for v in (V_W, -V_W, V_W):
        for _ in range(10):
            arr.pulse(v, T_W)
    np.testing.assert_array_equal(arr.g_s[arr.stuck == STUCK_LOW],
                                  arr.p["g_min_s"][arr.stuck == STUCK_LOW])
    np.testing.assert_array_equal(arr.g_s[arr.stuck == STUCK_HIGH],
                                  arr.p["g_max_s"][arr.stuck == STUCK_HIGH])
    assert not np.any(SynapseArray(prm.without_noise(), n).stuck)


def test_Y5_no_pulses_means_constant_conductance_when_relaxation_off() -> None:
    """Y5 (law off, the default): time, 0 V segments, reads and weak read pulses keep G."""
    arr = SynapseArray(SynapseParams(), 500)
    for _ in range(8):
        arr.pulse(V_W, T_W)
    g0 = arr.conductance()
    arr.relax(1e6)
    arr.run(dc(0.0, 100.0))
    for _ in range(50):
        arr.read(0.2)
    np.testing.assert_array_equal(arr.conductance(), g0)
    arr.run(pulse_train(0.2, 20e-3, 0.0, 100))              # 100 reads of 1 PLC as pulses
    assert np.max(np.abs(arr.conductance() / g0 - 1)) < 1e-3
    arr.run(dc(0.2, 100.0))                                  # 100 s of DC read bias
    assert np.max(np.abs(arr.conductance() / g0 - 1)) < 3e-3


def test_Y5_relaxation_law_on_matches_mean_and_spread() -> None:
    """Y5 (law on): G - G_prog has mean m ln(1+t/t0) and sigma a ln(1+t/t0) + b(1-e^-t/t0),
    in units of the range, and relax(t1); relax(t2) equals relax(t1 + t2)."""
    m, a, b = -0.004, 0.002, 0.01
    prm = _noise_free(relax_drift_rel=m, relax_sigma_a_rel=a, relax_sigma_b_rel=b)
    arr = SynapseArray(prm, 4000)
    for _ in range(8):
        arr.pulse(V_W, T_W)
    g_prog = arr.conductance()
    span = arr.p["g_max_s"] - arr.p["g_min_s"]
    twin = SynapseArray(prm, 4000)
    for _ in range(8):
        twin.pulse(V_W, T_W)
    elapsed = 0.0
    for t in (10.0, 1e3, 1e5):
        arr.relax(t - elapsed)
        elapsed = t
        x = (arr.conductance() - g_prog) / span
        ln_t = np.log1p(t / prm.relax_t0_s)
        sig = a * ln_t + b * (1 - np.exp(-t / prm.relax_t0_s))
        assert np.mean(x) == pytest.approx(m * ln_t, abs=4 * sig / np.sqrt(x.size))
        assert np.std(x) == pytest.approx(sig, rel=0.05)
    twin.relax(1e5)
    np.testing.assert_allclose(twin.conductance(), arr.conductance(), rtol=1e-13)
    # A new programming pulse restarts the clock; reads do not move G.
    arr.pulse(V_W, T_W)
    np.testing.assert_allclose(arr.age_s, 0.0)
    g1 = arr.conductance()
    arr.read(0.2)
    np.testing.assert_array_equal(arr.conductance(), g1)


def test_N5_extreme_voltages_and_durations_stay_finite_and_bounded() -> None:
    """N5: +-20 V and 1 ns-100 s pulses give no NaN/Inf and G_min <= G <= G_max."""
    arr = SynapseArray(SynapseParams(), 64)
    for v in (20.0, -20.0, 0.2, -0.2, 3.0, -3.0):
        for w in (1e-9, 1e-3, 100.0):
            arr.pulse(v, w, v_gate=20.0)
            g = arr.conductance()
            assert np.all(np.isfinite(g))
            assert np.all(g >= arr.p["g_min_s"]) and np.all(g <= arr.p["g_max_s"])
            assert np.all(np.isfinite(arr.read(20.0)))
    arr.pulse(20.0, 1.0)
    free = arr.stuck == 0
    np.testing.assert_allclose(arr.g_s[free], arr.g_sat()[free], rtol=0.05)


def test_N3_N4_batch_independence_and_determinism() -> None:
    """N3/N4: a device's trajectory depends only on its key and its own events."""
    keys = rng.device_keys(5, 1, 2, np.arange(50))
    full = SynapseArray(SynapseParams(), keys=keys)
    part = SynapseArray(SynapseParams(), keys=keys[[31, 4, 17]])
    again = SynapseArray(SynapseParams(), keys=keys)
    for arr in (full, part, again):
        for v in (V_W, V_W, -V_W, 1.3, -1.2):
            arr.pulse(v, T_W)
    np.testing.assert_array_equal(part.conductance(), full.conductance()[[31, 4, 17]])
    np.testing.assert_array_equal(again.conductance(), full.conductance())
    np.testing.assert_array_equal(part.read(0.2), full.read(0.2)[[31, 4, 17]])
    other = SynapseArray(SynapseParams(), keys=rng.device_keys(6, 1, 2, np.arange(50)))
    for v in (V_W, V_W, -V_W, 1.3, -1.2):
        other.pulse(v, T_W)
    assert not np.allclose(other.conductance(), full.conductance())


def test_run_applies_segments_as_pulses() -> None:
    """run(): each non-zero segment is one pulse of its width, 0 V segments do nothing, and a
    per-device (N, K) waveform equals per-device pulse calls."""
    prm = SynapseParams()
    a, b = SynapseArray(prm, 20), SynapseArray(prm, 20)
    a.run(concat(pulse_train(V_W, T_W, 1e-6, 5), pulse_train(-V_W, T_W, 1e-6, 2)))
    for v in [V_W] * 5 + [-V_W] * 2:
        b.pulse(v, T_W)
    np.testing.assert_array_equal(a.conductance(), b.conductance())
    np.testing.assert_array_equal(a.n_pulses, 7)
    amps = np.linspace(1.2, 1.6, 20)
    c, d = SynapseArray(prm, 20), SynapseArray(prm, 20)
    c.run(Waveform(np.stack([amps, np.zeros(20), amps], axis=1), np.full((20, 3), T_W)))
    for v in (amps, 0.0, amps):
        d.pulse(v, T_W)
    np.testing.assert_array_equal(c.conductance(), d.conductance())
    with pytest.raises(ParameterError):
        c.run(Waveform(np.zeros((3, 2)), np.ones((3, 2))))


def test_scale_injection_and_parameter_errors() -> None:
    """Wafer scales multiply the nominal before D2D; bad names and values are rejected."""
    prm = SynapseParams()
    base = SynapseArray(prm, 10)
    sc = np.linspace(0.8, 1.2, 10)
    scaled = SynapseArray(prm, 10, scale={"g_max_s": sc})
    np.testing.assert_allclose(scaled.p["g_max_s"], base.p["g_max_s"] * sc, rtol=1e-14)
    with pytest.raises(ParameterError):
        SynapseArray(prm, 10, scale={"tau_r_s": sc})
    with pytest.raises(ParameterError):
        SynapseParams(g_min_s=-1.0)
    with pytest.raises(ParameterError):
        SynapseArray(prm)
    with pytest.raises(ParameterError):
        base.pulse(V_W, -1.0)
    scaled_t = prm.scaled(time_scale=10.0, voltage_scale=2.0)
    assert scaled_t.k_set_per_s == pytest.approx(10 * prm.k_set_per_s)
    assert scaled_t.v_set_v == pytest.approx(2 * prm.v_set_v)

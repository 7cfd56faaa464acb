"""Dendrite model (volatile TaOx memristor): validation items D1-D9 of device-models.md §4.

Deterministic checks run noise free against the analytic model and the spec's §3.2 prototype
table (read at 0.2 V right after the last pulse); statistical checks use seeded keys.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from numpy.polynomial.hermite_e import hermegauss
from scipy.optimize import curve_fit

from dendrolab.errors import ParameterError
from sim_backend.physics.dendrite import (
    DendriteArray,
    DendriteParams,
    exact_update,
    nonlinearity,
)
from sim_backend.physics.rng import device_keys
from sim_backend.physics.waveform import Waveform, concat, dc, pulse_train, staircase, triangle

P0 = DendriteParams().without_noise()
TAU = P0.tau_r_s
WIDTH = 100e-6


def train(amp: float, count: int, gap: float = 100e-6, width: float = WIDTH) -> Waveform:
    """``count`` pulses, ``gap`` between them, none after the last (the read follows at once)."""
    last = pulse_train(amp, width, 0.0, 1)
    return last if count == 1 else pulse_train(amp, width, gap, count - 1) + last


def ratio(arr: DendriteArray, v_read: float = 0.2) -> np.ndarray:
    """Noise-free read ratio I(V_read, w) / I(V_read, 0) per device."""
    return arr.current(v_read) / arr.current(v_read, np.zeros(arr.n))


def run_ratio(wave: Waveform, params: DendriteParams = P0, n: int = 1) -> np.ndarray:
    arr = DendriteArray(params, n)
    arr.run(wave)
    return ratio(arr)


def pad_batch(waves: list[Waveform]) -> Waveform:
    """Per-device (N, K) waveform: shorter rows padded in front with (0 V, 0 s) segments."""
    k = max(w.n_segments for w in waves)
    v = np.zeros((len(waves), k))
    dt = np.zeros((len(waves), k))
    for i, w in enumerate(waves):
        v[i, k - w.n_segments:] = w.v
        dt[i, k - w.n_segments:] = w.dt
    return Waveform(v, dt)


# ---------------------------------------------------------------------- parameters, API
def test_params_defaults_kinds_and_validation():
    p = DendriteParams()
    assert DendriteParams.section == "dendrite"
    assert (p.g_off_s, p.rho, p.v0_v, p.tau_r_s) == (1e-7, 20.0, 1.0, 3e-3)
    assert p.k_plus_per_s * np.expm1(5 / p.v_plus_v) == pytest.approx(2000, rel=1e-3)
    kinds = {f.name: f.metadata["kind"] for f in dataclasses.fields(DendriteParams)}
    assert kinds["k_plus_per_s"] == kinds["k_minus_per_s"] == "rate"
    assert kinds["tau_r_s"] == kinds["facilitation_step_s"] == "time"
    assert kinds["v0_v"] == kinds["v_plus_v"] == kinds["v_minus_v"] == "voltage"
    sigmas = [n for n, k in kinds.items() if k == "sigma"]
    assert len(sigmas) == 9 and all(getattr(p.without_noise(), n) == 0 for n in sigmas)
    s = p.scaled(time_scale=100, voltage_scale=0.6)
    assert s.tau_r_s == pytest.approx(3e-5) and s.k_plus_per_s == pytest.approx(9.08)
    assert s.v_plus_v == pytest.approx(0.3) and s.rho == p.rho
    for bad in ({"tau_r_s": 0}, {"rho": -1}, {"mapping": "cubic"}, {"facilitation": -1},
                {"c2c_sigma_ln": -0.1}, {"v_plus_v": float("nan")}):
        with pytest.raises(ParameterError):
            DendriteParams(**bad)


def test_array_construction_scale_and_d2d():
    with pytest.raises(ParameterError):
        DendriteArray(P0)                                  # neither n nor keys
    with pytest.raises(ParameterError):
        DendriteArray(P0, 3, keys=device_keys(0, 0, 0, np.arange(4)))
    with pytest.raises(ParameterError):
        DendriteArray(P0, 2, scale={"tau_r": np.ones(2)})  # unknown name
    with pytest.raises(ParameterError):
        DendriteArray(P0, 2, scale={"tau_r_s": np.array([1.0, -1.0])})
    arr = DendriteArray(P0, 3, scale={"tau_r_s": np.array([1.0, 2.0, 0.5])})
    np.testing.assert_allclose(arr.p["tau_r_s"], [3e-3, 6e-3, 1.5e-3])
    with pytest.raises(ValueError):
        arr.p["tau_r_s"][0] = 1.0                          # per-device parameters are read-only
    assert arr.w.shape == arr.events.shape == (3,) and not arr.w.any()

    n = 20_000
    d2d = DendriteArray(DendriteParams(), n, keys=device_keys(3, 0, 0, np.arange(n)))
    for name, sigma in (("g_off_s", 0.15), ("rho", 0.1), ("k_plus_per_s", 0.2),
                        ("k_minus_per_s", 0.2), ("tau_r_s", 0.1), ("v_plus_v", 0.03)):
        ln = np.log(d2d.p[name] / getattr(P0, name))
        assert abs(ln.mean()) < 4 * sigma / np.sqrt(n)
        assert ln.std() == pytest.approx(sigma, rel=0.03), name
    for name in ("v0_v", "v_minus_v", "kappa_rect"):
        assert np.all(d2d.p[name] == getattr(P0, name))
    # k- has its own stream: independent of k+.
    corr = np.corrcoef(np.log(d2d.p["k_plus_per_s"]), np.log(d2d.p["k_minus_per_s"]))[0, 1]
    assert abs(corr) < 0.03


def test_exact_update_function_and_nonlinearity():
    w0, rp, rm, dt = np.array([0.0, 0.3, 1.0]), 2000.0, 0.0, 1e-4
    b = rp + rm + 1 / TAU
    expect = rp / b + (w0 - rp / b) * np.exp(-b * dt)
    np.testing.assert_allclose(exact_update(w0, rp, rm, TAU, dt), expect, rtol=1e-14)
    np.testing.assert_allclose(exact_update(w0, 0.0, 0.0, TAU, 2e-3), w0 * np.exp(-2 / 3),
                               rtol=1e-14)
    out = exact_update(np.array([0.0, 1.0]), 1e30, 1e30, 1e-9, 100.0)
    assert np.all((out >= 0) & (out <= 1)) and out == pytest.approx(0.5)
    assert nonlinearity(5.0, 1.0) == pytest.approx(2 * np.cosh(2.5), rel=1e-14)
    assert nonlinearity(5.0, 1.0) == pytest.approx(12.3, abs=0.05)
    assert nonlinearity(2.0, 1.0) == pytest.approx(3.1, abs=0.02)


def test_rates_current_and_state_mapping():
    arr = DendriteArray(P0, 2)
    rp, rm = arr.rates(5.0)
    np.testing.assert_allclose(rp, 2000, rtol=1e-3)
    assert not rm.any()
    rp, rm = arr.rates(-5.0)
    assert not rp.any() and np.allclose(rm, 2000, rtol=1e-3)
    w = np.array([0.0, 1.0])
    i = arr.current(0.2, w)
    assert i[0] == pytest.approx(1e-7 * np.sinh(0.2))
    assert i[1] / i[0] == pytest.approx(20.0)
    lin = DendriteArray(P0.replace(mapping="linear"), 2)
    np.testing.assert_allclose(lin.current(0.2, np.array([0.5, 1.0])) / i[0], [10.5, 20.0])
    # (N, M) evaluation: M sample voltages per device.
    iv = arr.current(np.tile([-1.0, 0.0, 1.0], (2, 1)), w[:, None])
    assert iv.shape == (2, 3) and np.allclose(iv[:, 0], -iv[:, 2]) and not iv[:, 1].any()


def test_step_and_run_validation_reset_copy():
    arr = DendriteArray(P0, 2)
    for v, dt in ((np.ones(3), 1e-3), (1.0, -1e-3), (np.nan, 1e-3), (1.0, np.inf)):
        with pytest.raises(ParameterError):
            arr.step(v, dt)
    with pytest.raises(ParameterError):
        arr.run(Waveform(np.ones((3, 2)), np.ones((3, 2))))
    arr.run(train(5, 5))
    twin = arr.copy()
    assert np.array_equal(twin.w, arr.w) and twin.w is not arr.w
    twin.run(train(5, 5))
    assert np.all(twin.w > arr.w)
    events = arr.events.copy()
    arr.reset()
    assert not arr.w.any() and np.array_equal(arr.events, events)


def test_time_scale_handle_compresses_dynamics():
    """Rates x s and tau_r / s: the same trajectory on a time axis divided by s."""
    fast = DendriteParams().without_noise().scaled(time_scale=100.0)
    slow_w = DendriteArray(P0, 1)
    slow_w.run(train(5, 20) + dc(0, 2e-3))
    fast_w = DendriteArray(fast, 1)
    fast_w.run(train(5, 20, gap=1e-6, width=1e-6) + dc(0, 2e-5))
    assert fast_w.w[0] == pytest.approx(slow_w.w[0], rel=1e-10)


# ---------------------------------------------------------------------- D1 .. D9
def test_D1_quasistatic_iv_nonlinearity_and_rectification():
    """D1: a 40 ns sweep leaves w unchanged; NL = I(5 V)/I(2.5 V) = 12.3 (V0 = 1 V) within 1 %."""
    levels = np.round(np.linspace(-5, 5, 41), 12)
    for kappa in (1.0, 0.2):
        arr = DendriteArray(P0.replace(kappa_rect=kappa), 1)
        w = arr.run(staircase(levels, 1e-9), record=True)[0]
        assert w.max() < 1e-4
        i = arr.current(levels[None, :], w[None, :])[0]
        at = {float(v): float(x) for v, x in zip(levels, i, strict=True)}
        nl = at[5.0] / at[2.5]
        assert nl == pytest.approx(nonlinearity(5.0, 1.0), rel=0.01)
        assert nl == pytest.approx(12.3, rel=0.01)
        assert at[2.0] / at[1.0] == pytest.approx(nonlinearity(2.0, 1.0), rel=0.01)
        assert at[-5.0] == pytest.approx(-kappa * at[5.0], rel=1e-3)   # odd, or rectified
        assert np.all(np.diff(i[levels > 0]) > 0) and at[0.0] == 0.0


def test_D2_on_off_ratio_standard_train():
    """D2: 20 x 5 V / 100 us / 100 us gap, read at 0.2 V: ratio 9.7 (10 +- 2); one pulse 1.71."""
    r = run_ratio(train(5, 20))[0]
    assert r == pytest.approx(9.7, rel=0.02) and 8 <= r <= 12
    assert run_ratio(train(5, 1))[0] == pytest.approx(1.71, rel=0.02)
    # With D2D and C2C on, the population median stays in the 10 +- 2 band.
    n = 500
    arr = DendriteArray(DendriteParams(), n, keys=device_keys(11, 0, 0, np.arange(n)))
    arr.run(train(5, 20))
    assert 8 <= np.median(ratio(arr)) <= 12


def test_D3_relaxation_tau_fit_and_table():
    """D3: ln(I/I_off) decays with tau_r (fit within 5 %); ratio < 1.1 by 10 ms; §3.2 table."""
    arr = DendriteArray(P0, 1)
    arr.run(train(5, 20))
    t = np.arange(1, 51) * 0.2e-3
    w = arr.run(staircase(np.zeros(50), 0.2e-3), record=True)[0]
    ln_ratio = np.log(arr.current(0.2, w) / arr.current(0.2, np.zeros(1)))
    slope = np.polyfit(t, np.log(ln_ratio), 1)[0]
    assert -1 / slope == pytest.approx(TAU, rel=0.05)
    expected = {1e-3: 5.1, 2e-3: 3.2, 5e-3: 1.54, 10e-3: 1.08}
    got = {ts: float(np.exp(ln_ratio[round(ts / 0.2e-3) - 1])) for ts in expected}
    for ts, r in expected.items():
        assert got[ts] == pytest.approx(r, rel=0.02), ts
    assert got[10e-3] < 1.1

    # With D2D on, each device's fitted tau is its own tau_r; linear mapping: I - I_off decays.
    n = 8
    for mapping in ("exponential", "linear"):
        p = DendriteParams(mapping=mapping).without_noise().replace(d2d_tau_r_sigma_ln=0.3)
        arr = DendriteArray(p, n, keys=device_keys(5, 0, 0, np.arange(n)))
        arr.run(train(5, 20))
        w = arr.run(staircase(np.zeros(20), 0.5e-3), record=True)
        i = arr.current(0.2, w)
        i_off = arr.current(0.2, np.zeros(n))[:, None]
        y = np.log(np.log(i / i_off)) if mapping == "exponential" else np.log(i - i_off)
        tau_fit = -1 / np.polyfit(np.arange(1, 21) * 0.5e-3, y.T, 1)[0]
        np.testing.assert_allclose(tau_fit, arr.p["tau_r_s"], rtol=1e-6)


def test_D4_integration_monotonic_in_count_and_gap():
    """D4: ratio rises with pulse count, falls with gap; gaps >= 3 tau_r ~ single pulse (5 %)."""
    counts = np.arange(1, 21)
    by_count = run_ratio(pad_batch([train(5, int(c)) for c in counts]), n=counts.size)
    assert np.all(np.diff(by_count) > 0)
    gaps = np.array([10e-6, 20e-6, 50e-6, 100e-6, 200e-6, 500e-6, 1e-3, 2e-3, 5e-3, 10e-3])
    by_gap = run_ratio(pad_batch([train(5, 20, gap=g) for g in gaps]), n=gaps.size)
    assert np.all(np.diff(by_gap) < 0)
    single = run_ratio(train(5, 1))[0]
    for g in (3 * TAU, 5 * TAU, 10 * TAU):
        assert run_ratio(train(5, 20, gap=g))[0] == pytest.approx(single, rel=0.05)
    # §3.2 table: 20 x 5 V at gaps 20 us / 0.5 ms / 2 ms / 10 ms.
    table = {20e-6: 12.0, 0.5e-3: 5.05, 2e-3: 2.46, 10e-3: 1.73}
    got = run_ratio(pad_batch([train(5, 20, gap=g) for g in table]), n=len(table))
    np.testing.assert_allclose(got, list(table.values()), rtol=0.02)


def test_D4_paired_pulse_index_follows_exponential():
    """D4: PPI = ln(I2/I_off) / ln(I1/I_off) = 1 + A exp(-dt/tau_r); the fit returns tau_r."""
    intervals = np.array([50e-6, 0.2e-3, 0.5e-3, 1e-3, 2e-3, 4e-3, 8e-3, 15e-3])
    one = np.log(run_ratio(train(5, 1))[0])
    two = np.log(run_ratio(pad_batch([train(5, 2, gap=g) for g in intervals]),
                           n=intervals.size))
    ppi = two / one
    assert np.all(np.diff(ppi) < 0) and ppi[-1] == pytest.approx(1.0, abs=0.01)
    (a, tau), _ = curve_fit(lambda t, a, tau: 1 + a * np.exp(-t / tau), intervals, ppi,
                            p0=(1.0, 1e-3))
    assert tau == pytest.approx(TAU, rel=0.02)
    b = DendriteArray(P0, 1).rates(5.0)[0][0] + 1 / TAU
    assert a == pytest.approx(np.exp(-b * WIDTH), rel=0.02)


def test_D5_amplitude_filtering():
    """D5: after 20 pulses ratio < 1.2 at 3 V and < 1.05 at 2 V, monotonic; ratio 2 at 3.5-4.5 V."""
    amps = np.round(np.arange(0.5, 6.001, 0.01), 6)
    shape = train(1.0, 20)
    wave = Waveform(amps[:, None] * shape.v[None, :], shape.dt)
    r = run_ratio(wave, n=amps.size)
    assert np.all(np.diff(r) > 0)
    at = dict(zip(amps.tolist(), r, strict=True))
    assert at[3.0] < 1.2 and at[2.0] < 1.05
    for amp, expect in ((4.0, 2.11), (3.0, 1.13), (2.0, 1.02), (1.0, 1.00), (5.0, 9.7)):
        assert at[amp] == pytest.approx(expect, rel=0.02), amp
    v_half = np.interp(2.0, r, amps)
    assert 3.5 <= v_half <= 4.5


def test_D6_inhibition_and_interleaving():
    """D6: 10 excitatory then 10 inhibitory pulses: 8.4 -> 1.16 (< 1.3); interleaved +-: 2.7."""
    arr = DendriteArray(P0, 1)
    arr.run(train(5, 10))
    assert ratio(arr)[0] == pytest.approx(8.4, rel=0.02)
    arr.run(dc(0, 100e-6) + train(-5, 10))
    assert ratio(arr)[0] == pytest.approx(1.16, rel=0.02) and ratio(arr)[0] < 1.3
    pair = train(5, 1) + dc(0, 100e-6) + train(-5, 1)
    interleaved = concat(*([pair + dc(0, 100e-6)] * 9), pair)
    r = run_ratio(interleaved)[0]
    assert r == pytest.approx(2.7, rel=0.02) and r < run_ratio(train(5, 20))[0]
    # Negative voltage alone only relaxes faster: never excites.
    assert run_ratio(train(-5, 20))[0] == 1.0


def test_D7_volatile_whatever_the_history():
    """D7: after 20 tau_r at 0 V, w < 1e-3 for any history (noise and D2D on)."""
    n, k = 400, 30
    g = np.random.default_rng(7)                  # test inputs only; the model uses keyed draws
    v = g.choice([-20.0, -5.0, 0.0, 0.2, 3.0, 5.0, 20.0], size=(n, k))
    dt = 10 ** g.uniform(-9, 0, size=(n, k))
    arr = DendriteArray(DendriteParams(), n, keys=device_keys(2, 0, 0, np.arange(n)))
    arr.run(Waveform(v, dt))
    arr.w[:5] = 1.0                               # worst case: saturated
    assert arr.w.max() > 0.9
    arr.step(0.0, 20 * TAU)
    assert arr.w.max() < 1e-3


def test_D7_endurance_c2c_cv_no_drift():
    """D7: 200 cycles; peak-current CV = C2C sigma propagated through the model; no drift."""
    n, cycles, sigma = 8, 200, 0.05
    p = P0.replace(c2c_sigma_ln=sigma)
    arr = DendriteArray(p, n, keys=device_keys(9, 0, 0, np.arange(n)))
    peaks = np.empty((cycles, n))
    for c in range(cycles):
        assert arr.w.max() < 1e-3
        arr.step(5.0, WIDTH)
        peaks[c] = arr.current(5.0)
        arr.step(0.0, 20 * TAU)
    assert np.array_equal(arr.events, np.full(n, cycles))
    # Expected CV: peak current as a function of k+ x exp(sigma z), Gauss-Hermite over z.
    z, wq = hermegauss(40)
    wq = wq / wq.sum()
    ref = DendriteArray(P0, z.size, scale={"k_plus_per_s": np.exp(sigma * z)})
    ref.step(5.0, WIDTH)
    ip = ref.current(5.0)
    mean = np.sum(wq * ip)
    cv_expected = np.sqrt(np.sum(wq * (ip - mean) ** 2)) / mean
    cv = peaks.std() / peaks.mean()
    assert cv == pytest.approx(cv_expected, rel=0.1)
    assert 0.02 < cv < 0.1                          # the same order as the configured 5 %
    first, last = peaks[: cycles // 2].ravel(), peaks[cycles // 2:].ravel()
    se = peaks.std() * np.sqrt(2 / first.size)
    assert abs(first.mean() - last.mean()) < 4 * se
    slope = np.polyfit(np.arange(cycles), peaks.mean(axis=1) / peaks.mean(), 1)[0]
    assert abs(slope * cycles) < 0.02              # < 2 % over the whole run


def test_D8_sweep_rate_hysteresis():
    """D8: triangular-sweep loop area is non-monotonic in period, peaks at tau_r..10 tau_r."""
    steps = 100
    edges = np.concatenate([np.linspace(0, 5, steps + 1), np.linspace(5, -5, 2 * steps + 1)[1:],
                            np.linspace(-5, 0, steps + 1)[1:]])
    dv = np.diff(edges)
    periods = np.logspace(-6, 1, 36)
    waves = [triangle(5.0, float(p), steps) for p in periods]
    arr = DendriteArray(P0, periods.size)
    w = arr.run(Waveform(np.stack([x.v for x in waves]), np.stack([x.dt for x in waves])),
                record=True)
    i = arr.current(waves[0].v[None, :], w)
    half = 2 * steps
    area = (np.abs(np.sum(i[:, :half] * dv[:half], axis=1))
            + np.abs(np.sum(i[:, half:] * dv[half:], axis=1)))
    best = int(np.argmax(area))
    assert TAU <= periods[best] <= 10 * TAU
    assert np.all(np.diff(area[: best + 1]) > 0) and np.all(np.diff(area[best:]) < 0)
    assert area[0] < 1e-3 * area[best] and area[-1] < 1e-3 * area[best]


def test_D9_read_disturb():
    """D9: 10^4 reads at 0.2 V / 10 us change the read ratio by < 1 % (OFF and ON states)."""
    reads = pulse_train(0.2, 10e-6, 10e-6, 10_000)
    quiet = dc(0.0, float(reads.duration_s))
    off = DendriteArray(P0, 1)
    off.run(reads)
    assert abs(ratio(off)[0] - 1) < 0.01
    on_read, on_quiet = DendriteArray(P0, 1), DendriteArray(P0, 1)
    for a, tail in ((on_read, reads), (on_quiet, quiet)):
        a.run(train(5, 20))
        a.run(tail)
    assert abs(ratio(on_read)[0] / ratio(on_quiet)[0] - 1) < 0.01


def test_read_noise_measurement_only():
    """Read noise: CV = read_noise_rel, keyed by event, and never fed back into w."""
    p = DendriteParams().replace(read_noise_rel=0.02)
    arr = DendriteArray(p, 1, keys=device_keys(4, 0, 0, [0]))
    arr.run(train(5, 20))
    w = arr.w.copy()
    samples = arr.current(np.full((1, 20_000), 0.2), noise_event=np.arange(20_000))[0]
    assert np.array_equal(arr.w, w)
    assert samples.std() / samples.mean() == pytest.approx(0.02, rel=0.03)
    assert samples.mean() == pytest.approx(arr.current(0.2)[0], rel=1e-3)
    a, b = arr.current(0.2, noise_event=3), arr.current(0.2, noise_event=3)
    assert np.array_equal(a, b) and not np.array_equal(a, arr.current(0.2, noise_event=4))


def test_c2c_one_draw_per_pulse():
    """A pulse (run of same-polarity driven segments) gets one C2C factor and one event."""
    p = DendriteParams().without_noise().replace(c2c_sigma_ln=0.3)
    edged = pulse_train(5.0, WIDTH, 100e-6, 10, edge_s=5e-6, edge_segments=4)
    flat = pulse_train(5.0, WIDTH, 100e-6, 10)
    keys = device_keys(1, 0, 0, np.arange(3))
    a = DendriteArray(p, keys=keys)
    a.run(edged)
    assert np.array_equal(a.events, [10, 10, 10])
    a.run(concat(train(5, 1), train(-5, 1), dc(0, 1e-3)))   # polarity change = new pulse
    assert np.array_equal(a.events, [12, 12, 12])
    # The draws are keyed per device and pulse: noisy devices differ from each other ...
    b = DendriteArray(p, keys=keys)
    b.run(flat)
    assert len(set(b.w.round(12))) == 3
    # ... and the noise-free model is their median-k behaviour.
    c = DendriteArray(p.without_noise(), 1)
    c.run(flat)
    assert b.w.min() < c.w[0] * 1.5 and b.w.max() > c.w[0] / 1.5


def test_facilitation_makes_pulse_response_sigmoidal():
    """Facilitation k+ (1 + c w): first increments grow with pulse number (sigmoidal onset)."""
    p = DendriteParams(facilitation=8.0).without_noise()
    wave = train(3.5, 30, gap=20e-6)
    arr = DendriteArray(p, 1)
    w = arr.run(wave, record=True)[0][::2]          # after each pulse
    dw = np.diff(np.concatenate([[0.0], w]))
    assert dw[1] > dw[0] and dw.argmax() > 0 and dw[-1] < dw.max()
    plain = DendriteArray(P0, 1)
    wp = plain.run(wave, record=True)[0][::2]
    assert np.all(np.diff(np.diff(np.concatenate([[0.0], wp]))) < 0)   # concave without it
    assert w[-1] > wp[-1]

"""Device metric extractors: known answers on synthetic data and closed loops through the simulator.

Synthetic: exact branch-function I-Vs give back ``a``, exact exponentials give back tau, a
hand-built hysteretic sweep gives back V_th / V_hold, and run files written with ``RunWriter`` give
back the numbers put in. Simulator: every built-in protocol with an extractor, run on the
packaged simulated bench (li2020-original preset), checked against the preset's parameters
(``dendrolab params li2020-original``).
"""

from __future__ import annotations

import json
import math
import uuid

import numpy as np
import pandas as pd
import pytest

import dendrolab.cli
from analysis import metrics as M
from dendrolab.errors import RunFileError
from protocols.runfile import DatasetSpec, InstrumentSpec, RunLayout, RunWriter, StepSpec
from protocols.runner import run_protocol

VIT = (DatasetSpec("voltage_v", "V"), DatasetSpec("current_a", "A"), DatasetSpec("time_s", "s"))


# ---------------------------------------------------------------------------- pure functions
def test_branch_function_ends_linear_limit_and_no_overflow():
    u = np.linspace(0, 1, 11)
    for a in (-20.0, -1.0, 0.0, 1e-12, 5.556, 300.0):
        f = M.branch_function(u, a)
        assert f[0] == pytest.approx(0.0, abs=1e-12) and f[-1] == pytest.approx(1.0)
        assert np.all(np.isfinite(f)) and np.all(np.diff(f) >= 0)
    np.testing.assert_allclose(M.branch_function(u, 0.0), u)
    assert M.branch_function(0.5, 5.556) == pytest.approx(0.059, abs=5e-4)  # network.md table


@pytest.mark.parametrize("a", [-10.0, 0.0, 2.63, 50 * 0.1 / 0.9, 12.5, 40.0])
def test_fit_branch_a_recovers_a_and_nl_from_exact_iv(a):
    v = np.linspace(-2.0, 2.0, 41)  # both polarities: the fit uses the one with larger |V|
    i = 3e-6 * np.sign(v) * M.branch_function(np.abs(v) / 2.0, a)
    fit = M.fit_branch_a(v, i)
    assert fit.quality == "ok", fit.reason
    assert fit.params["a"] == pytest.approx(a, abs=1e-4)
    assert fit.params["nl"] == pytest.approx(a / (50 + a), abs=1e-5)
    ratio = M.iv_ratio(v, i)  # exact branch function: I(V)/I(V/2) = e^(a/2) + 1
    assert ratio.params["ratio"] == pytest.approx(math.exp(a / 2) + 1, rel=1e-9)


def test_nl_maps_the_network_default():
    assert M.nl_from_a(50 * 0.1 / 0.9) == pytest.approx(0.1)
    assert math.isnan(M.nl_from_a(-60.0))


def test_normalisation_uses_the_wider_polarity_and_the_mean_at_vmax():
    v = np.array([-1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 2.0, 1.0])
    i = np.array([-9.0, -9.0, 0.0, 1.0, 2.0, 3.0, 5.0, 2.0])
    u, y = M.normalise_iv(v, i)
    np.testing.assert_allclose(u, [0.25, 0.5, 1.0, 1.0, 0.5])
    np.testing.assert_allclose(y, [0.25, 0.5, 0.75, 1.25, 0.5])


def test_iv_fits_fail_cleanly_on_too_few_or_zero_points():
    assert M.fit_branch_a([0.0, 1.0], [0.0, 1e-6]).quality == "failed"
    assert M.iv_ratio([0.6, 0.8, 1.0], [1, 2, 3]).quality == "failed"  # nothing at V/2
    zigzag = np.r_[np.zeros(20), 1.0] + np.tile([0, 0.4], 11)[:21]
    bad = M.fit_branch_a(np.linspace(0, 1, 21), zigzag)
    assert bad.quality in ("poor", "failed") and bad.reason


def test_fit_exponential_decay_exact_tau():
    t = 0.01 + np.arange(40) * 1e-3
    i = 3e-7 + 5e-6 * np.exp(-(t - t[0]) / 2.5e-3)
    fit = M.fit_exponential_decay(t, i)
    assert fit.quality == "ok", fit.reason
    assert fit.params["tau"] == pytest.approx(2.5e-3, rel=1e-6)
    assert fit.params["i_inf"] == pytest.approx(3e-7, rel=1e-6)
    assert fit.params["amp"] == pytest.approx(5e-6, rel=1e-6)
    assert fit.params["r2"] == pytest.approx(1.0, abs=1e-9)


def test_fit_exponential_decay_flags():
    t = np.arange(20) * 1e-3
    assert M.fit_exponential_decay(t, np.full(20, 1e-6)).quality == "failed"
    assert M.fit_exponential_decay(t[:3], t[:3]).quality == "failed"
    slow = M.fit_exponential_decay(t, 1e-6 * np.exp(-t / 0.2))  # tau 10x the record
    assert slow.quality == "poor" and "outside the record" in slow.reason
    rng = np.random.default_rng(3)
    noisy = M.fit_exponential_decay(t, 1e-6 * np.exp(-t / 3e-3) + 2e-7 * rng.standard_normal(20))
    assert noisy.quality in ("poor", "failed")


def test_crossing_threshold_interpolates_and_flags():
    x = np.array([2.0, 3.0, 4.0, 5.0])
    fit = M.crossing_threshold(x, np.array([1.0, 1.5, 2.5, 6.0]), 2.0)
    assert fit.quality == "ok" and fit.params["x"] == pytest.approx(3.5)
    assert M.crossing_threshold(x, np.ones(4), 2.0).quality == "failed"
    assert M.crossing_threshold(x, np.full(4, 3.0), 2.0).quality == "poor"


def _switch_sweep(v_th: float, v_hold: float, r_off: float = 2e5, i_cc: float = 1e-4):
    up = np.round(np.arange(0, 2.0 + 1e-9, 0.02), 10)
    levels = np.r_[up, up[-2::-1]]
    on, i = False, []
    for k, v in enumerate(levels):
        rising = k < up.size
        on = (v >= v_th) if rising and not on else (on and not (not rising and v <= v_hold))
        i.append(i_cc if on else v / r_off)
    return levels, np.array(i)


def test_threshold_switch_known_vth_vhold():
    levels, i = _switch_sweep(1.2, 0.7)
    fit = M.threshold_switch(levels, i)
    assert fit.quality == "ok", fit.reason
    assert fit.params["v_th"] == pytest.approx(1.2)
    assert fit.params["v_hold"] == pytest.approx(0.7)
    assert fit.params["r_off"] == pytest.approx(2e5, rel=1e-9)
    ohmic = M.threshold_switch(levels, levels / 2e5)
    assert ohmic.quality == "failed" and "no switching" in ohmic.reason


# ---------------------------------------------------------------------------- synthetic run files
def _write(path, protocol_name, steps):
    """A completed run file whose steps are (name, arrays, params, loop_vars)."""
    specs = []
    for name, arrays, params, loop in steps:
        ds = tuple(DatasetSpec(k, {"voltage_v": "V", "current_a": "A", "time_s": "s"}.get(k, ""))
                   for k in arrays)
        n = len(next(iter(arrays.values())))
        specs.append(StepSpec(name, n, ds, instrument="smu", params=params, loop_vars=loop))
    meta = {"uuid": str(uuid.uuid4()), "start_time": "2026-05-01T14:00:00Z",
            "protocol": "steps: []\n", "protocol_name": protocol_name, "plan_hash": "x",
            "device_id": "d9", "wafer_id": "W1"}
    layout = RunLayout(steps=tuple(specs),
                       instruments=(InstrumentSpec("smu", {"idn": "SYNTH"}, {}),))
    with RunWriter.create(path, meta, layout) as writer:
        for name, arrays, _, _ in steps:
            with writer.step(name) as step:
                step.write_block(**{k: np.asarray(v, dtype=float) for k, v in arrays.items()})
    return path


def test_relaxation_extractor_on_a_written_run(tmp_path):
    t = np.arange(50) * 1e-3
    steps = []
    for cycle, tau in ((1, 2e-3), (2, 4e-3)):
        i = np.r_[np.full(5, 2e-7), np.full(5, 1e-4),
                  2e-7 + 1.8e-6 * np.exp(-(t[10:] - t[10]) / tau)]
        v = np.r_[np.full(5, 2.0), np.full(5, 5.0), np.full(40, 2.0)]
        steps.append((f"cycle={cycle}/off_on_relax",
                      {"voltage_v": v, "current_a": i, "time_s": t}, {}, {"cycle": cycle}))
    path = _write(tmp_path / "relax.h5", "dendrite-relaxation", steps)
    df = M.extract(path)
    assert list(df.columns) == M.COLUMNS
    tau = df[df.metric == "relax_tau"].set_index("loop_vars")["value"]
    assert tau['{"cycle": 1}'] == pytest.approx(2e-3, rel=1e-6)
    assert tau['{"cycle": 2}'] == pytest.approx(4e-3, rel=1e-6)
    onoff = df[df.metric == "on_off_ratio"]
    np.testing.assert_allclose(onoff["value"], 10.0)  # (2e-7 + 1.8e-6) / 2e-7
    assert set(df.quality) == {"ok"} and set(df.device_id) == {"d9"}


def test_pm_pulses_amplitude_sweep_and_generic_on_written_runs(tmp_path):
    read = {"voltage_v": [0.2] * 3, "time_s": [0, 1, 2]}
    pm = _write(tmp_path / "pm.h5", "dendrite-pm-pulses", [
        ("baseline", {**read, "current_a": [1e-8, 2e-8, 3e-8]}, {}, {}),
        ("amplitude_v=5/response", {**read, "current_a": [1.5e-7, 1e-7, 5e-8]}, {},
         {"amplitude_v": 5.0}),
        ("amplitude_v=-5/response", {**read, "current_a": [1e-8, 1e-8, 1e-8]}, {},
         {"amplitude_v": -5.0})])
    steps = [("baseline", {**read, "current_a": [1e-8] * 3}, {}, {})]
    for amp, after in ((2.0, 1e-8), (3.0, 1.5e-8), (4.0, 3.5e-8), (5.0, 8e-8)):
        one = {"voltage_v": [0.2], "time_s": [0.0]}
        lv = {"amplitude_v": amp}
        steps += [(f"sweep/amplitude_v={amp:g}/before", {**one, "current_a": [1e-8]}, {}, lv),
                  (f"sweep/amplitude_v={amp:g}/after_{amp:.1f}V", {**one, "current_a": [after]},
                   {}, lv)]
    sweep = _write(tmp_path / "amp.h5", "dendrite-amplitude-sweep", steps)
    user = _write(tmp_path / "user.h5", "my-protocol",
                  [("probe", {**read, "current_a": [-1e-6, 2e-6, -3e-6]}, {}, {})])
    df = M.extract([pm, sweep, user])
    get = df.set_index(["protocol", "metric"])["value"]
    assert get["dendrite-pm-pulses", "on_off_ratio"] == pytest.approx(7.5)
    assert get["dendrite-amplitude-sweep", "amplitude_threshold"] == pytest.approx(3.25)
    assert get["my-protocol", "mean_abs_current"] == pytest.approx(2e-6)


def test_write_verify_on_a_written_run(tmp_path):
    def wv(target, g_reads):
        g = np.asarray(g_reads)
        pulses = np.r_[np.full(g.size - 1, 1.15), 0.0]
        arrays = {"voltage_v": np.full(g.size, 0.2), "current_a": 0.2 * g,
                  "time_s": np.arange(g.size), "pulse_v": pulses}
        return (f"program/target_s={target:g}/write_verify", arrays,
                {"target_s": target, "tol_rel": 0.05}, {"target_s": target})
    path = _write(tmp_path / "wv.h5", "synapse-write-verify",
                  [wv(5e-6, [2e-6, 4e-6, 5.1e-6]), wv(1.5e-5, [5e-6, 9e-6, 1.2e-5])])
    df = M.extract(path).set_index(["metric", "loop_vars"])
    assert df.loc[("g_min", "{}"), "value"] == pytest.approx(2e-6)
    assert df.loc[("g_max", "{}"), "value"] == pytest.approx(1.2e-5)
    assert df.loc[("pulses_to_target", '{"target_s": 5e-06}'), "value"] == 2
    miss = df.loc[("pulses_to_target", '{"target_s": 1.5e-05}')]
    assert miss["quality"] == "failed" and "not reached" in miss["reason"]


def test_bad_files_raise_one_error_or_become_rows(tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all")
    with pytest.raises(RunFileError):
        M.extract(junk)
    with pytest.raises(RunFileError):
        M.extract(tmp_path / "missing.h5")
    df = M.extract([junk, tmp_path / "missing.h5"], on_error="skip")
    assert list(df.metric) == ["error", "error"] and set(df.quality) == {"failed"}
    assert all("\n" not in r for r in df.reason)


def test_csv_and_parquet_round_trip(tmp_path):
    path = _write(tmp_path / "u.h5", "my-protocol",
                  [("probe", {"voltage_v": [0.2], "time_s": [0.0], "current_a": [1e-6]}, {},
                    {"k": 1})])
    df = M.extract(path)
    back_csv = pd.read_csv(M.to_csv(df, tmp_path / "m.csv"))
    back_pq = pd.read_parquet(M.to_parquet(df, tmp_path / "m.parquet"))
    for back in (back_csv, back_pq):
        assert list(back.columns) == M.COLUMNS
        assert back["value"].iloc[0] == pytest.approx(1e-6)
        assert back["loop_vars"].iloc[0] == '{"k": 1}'


# ---------------------------------------------------------------------------- simulated bench
SIM = ["dendrite-pm-pulses", "dendrite-relaxation", "dendrite-iv", "wafer-iv",
       "dendrite-amplitude-sweep", "soma-iv", "unit-firing", "synapse-write-verify", "read"]


@pytest.fixture(scope="module")
def sim_table(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim_runs")
    bench = dendrolab.cli._sim_bench()
    paths = [run_protocol(name, bench, root / f"{name}.h5") for name in SIM]
    return M.extract(paths)


def _rows(df, protocol, metric):
    return df[(df.protocol == protocol) & (df.metric == metric)]


def test_sim_every_protocol_gives_ok_metrics(sim_table):
    assert set(sim_table.protocol) == set(SIM)
    # soma-iv's 100 uA compliance clamps every ON point: R_on is reported failed, with why
    clamped = (sim_table.protocol == "soma-iv") & (sim_table.metric == "r_on")
    assert len(sim_table[clamped]) == 3
    assert sim_table[clamped].reason.str.contains("compliance clamps").all()
    bad = sim_table[(sim_table.quality != "ok") & ~clamped]
    assert bad.empty, bad[["protocol", "step", "metric", "reason"]].to_string()


def test_sim_dendrite_on_off_and_relaxation(sim_table):
    # li2020-original: rho = 20 between w = 1 and w = 0; tau_r = 3 ms (d2d sigma_ln 0.1);
    # at the 2 V read r+ = 0.0908 (e^(2/0.5) - 1) = 4.9 /s adds to 1/tau_r.
    pm = _rows(sim_table, "dendrite-pm-pulses", "on_off_ratio")["value"]
    assert len(pm) == 1 and 3 < pm.iloc[0] < 20
    relax = _rows(sim_table, "dendrite-relaxation", "on_off_ratio")["value"]
    assert len(relax) == 3 and relax.between(3, 20).all()
    tau_state = _rows(sim_table, "dendrite-relaxation", "relax_tau_state")["value"]
    expected = 1 / (1 / 3e-3 + 0.0908 * (math.exp(4) - 1))
    assert tau_state.between(expected / 1.4, expected * 1.4).all(), tau_state.tolist()
    tau = _rows(sim_table, "dendrite-relaxation", "relax_tau")["value"]
    assert (tau.to_numpy() < tau_state.to_numpy()).all()  # I = I_off rho^w decays faster than w


def test_sim_iv_nonlinearity_matches_sinh(sim_table):
    # dendrite I ~ V0 sinh(V/V0), V0 = 1 V: I(V)/I(V/2) = sinh(V)/sinh(V/2); read noise 1 %
    off = _rows(sim_table, "dendrite-iv", "iv_ratio").set_index("step")["value"]
    assert off["off_state_iv"] == pytest.approx(math.sinh(1) / math.sinh(0.5), rel=0.04)
    assert off["relaxed_iv"] == pytest.approx(math.sinh(1) / math.sinh(0.5), rel=0.04)
    wafer = _rows(sim_table, "wafer-iv", "iv_ratio")["value"].iloc[0]
    assert wafer == pytest.approx(math.sinh(0.3) / math.sinh(0.15), rel=0.04)
    nl = _rows(sim_table, "dendrite-iv", "branch_nl").set_index("step")["value"]
    assert 0 < nl["off_state_iv"] < 0.05  # a sinh this weak is nearly linear on [0, 1] V


def test_sim_amplitude_threshold(sim_table):
    thr = _rows(sim_table, "dendrite-amplitude-sweep", "amplitude_threshold")["value"].iloc[0]
    assert 3.0 < thr < 5.0  # "responds strongly above ~4 V"
    ratios = _rows(sim_table, "dendrite-amplitude-sweep", "response_ratio")
    assert len(ratios) == 31
    amp = ratios["loop_vars"].map(lambda s: json.loads(s)["amplitude_v"])
    lo, hi = ratios["value"][amp == 2.0].iloc[0], ratios["value"][amp == 5.0].iloc[0]
    assert hi > 3 * lo


def test_sim_soma_vth_vhold(sim_table):
    # v_th 1.2 V (c2c 3 %, d2d 5 %), v_hold 0.7 V (c2c 3 %), r_off 200 kOhm (d2d sigma_ln 0.2)
    v_th = _rows(sim_table, "soma-iv", "v_th")["value"].to_numpy()
    v_hold = _rows(sim_table, "soma-iv", "v_hold")["value"].to_numpy()
    assert len(v_th) == 3 and np.all(v_th > v_hold)
    assert np.all(np.abs(v_th - 1.2) < 0.2) and np.all(np.abs(v_hold - 0.7) < 0.1)
    r_off = _rows(sim_table, "soma-iv", "r_off")["value"]
    assert r_off.between(2e5 * math.exp(-0.6), 2e5 * math.exp(0.6)).all()


def test_sim_unit_firing_threshold(sim_table):
    thr = _rows(sim_table, "unit-firing", "firing_threshold")["value"].iloc[0]
    assert 4.0 < thr <= 6.0
    g = _rows(sim_table, "unit-firing", "input_conductance")["value"].to_numpy()
    assert len(g) == 5 and np.all(np.diff(g) > 0)


def test_sim_synapse_write_verify(sim_table):
    # g_min 2 uS, g_max 20 uS (d2d sigma_ln 0.15); targets 5, 10, 15 uS within 5 %
    g_min = _rows(sim_table, "synapse-write-verify", "g_min")["value"].iloc[0]
    g_max = _rows(sim_table, "synapse-write-verify", "g_max")["value"].iloc[0]
    assert 2e-6 * math.exp(-0.45) < g_min < g_max < 2e-5 * math.exp(0.45)
    n = _rows(sim_table, "synapse-write-verify", "pulses_to_target")["value"]
    assert len(n) == 3 and n.between(1, 50).all()
    final = _rows(sim_table, "synapse-write-verify", "g_final")["value"].to_numpy()
    np.testing.assert_allclose(final, [5e-6, 1e-5, 1.5e-5], rtol=0.05)


def test_sim_generic_extractor_on_the_read_protocol(sim_table):
    # "read" has no dedicated extractor: mean |I| at 0.2 V ~ 0.2 V x g_off 100 nS (sigma_ln 0.15)
    rows = _rows(sim_table, "read", "mean_abs_current")
    assert len(rows) == 1
    assert 2e-8 * math.exp(-0.45) < rows["value"].iloc[0] < 2e-8 * math.exp(0.45)
    assert _rows(sim_table, "soma-iv", "mean_abs_current").empty  # generic only when asked


def test_sim_wafer_runs_carry_their_site_and_iv_metrics(tmp_path):
    from pathlib import Path

    from protocols.wafer import run_wafer

    bench = Path(dendrolab.cli.__file__).parent / "benches" / "wafer-sim.yaml"
    run_wafer(["wafer-iv"], bench, "WM", tmp_path / "out", dies="0,2;0,3", sites="0")
    paths = sorted((tmp_path / "out" / "WM").rglob("*.h5"))
    assert len(paths) == 2
    df = M.extract(paths)
    assert set(zip(df.die_col, df.die_row, strict=True)) == {(0, 2), (0, 3)}
    assert set(df.wafer_id) == {"WM"} and set(df.quality) == {"ok"}
    ratio = df[df.metric == "iv_ratio"]["value"]
    np.testing.assert_allclose(ratio, math.sinh(0.3) / math.sinh(0.15), rtol=0.04)
    back = pd.read_parquet(M.to_parquet(df, tmp_path / "w.parquet"))
    assert back["die_col"].tolist() == df["die_col"].tolist()


# ---------------------------------------------------------------------------- integration,
# inhibition, endurance, synapse levels
def test_gain_per_pulse_is_the_chord_and_needs_two_pulse_numbers():
    fit = M.gain_per_pulse(np.array([1, 5, 10, 20]), 1.0 + 0.25 * np.array([1, 5, 10, 20]))
    assert fit.quality == "ok" and fit.params["gain"] == pytest.approx(0.25)
    sat = M.gain_per_pulse(np.array([1, 5, 20]), np.array([2.0, 6.0, 7.0]))
    assert sat.params["gain"] == pytest.approx(5.0 / 19)
    assert M.gain_per_pulse(np.array([3, 3]), np.array([1.0, 2.0])).quality == "failed"


def test_fit_log_drift_known_slope_sigma_and_flags():
    c = np.arange(1, 201)
    rng = np.random.default_rng(7)
    noise = rng.standard_normal(200)
    noise = (noise - noise.mean()) / noise.std()
    i = 2e-8 * np.exp(-1e-3 * c + 0.02 * noise)
    fit = M.fit_log_drift(c, i)
    assert fit.quality == "ok", fit.reason
    assert fit.params["slope"] == pytest.approx(-1e-3, abs=4 * fit.params["slope_se"])
    assert fit.params["slope_se"] == pytest.approx(0.02 / math.sqrt(200 * 200**2 / 12), rel=0.1)
    assert fit.params["sigma_ln"] == pytest.approx(0.02, rel=0.05)
    exact = M.fit_log_drift(c, 1e-7 * np.exp(2e-3 * c))
    assert exact.params["slope"] == pytest.approx(2e-3, rel=1e-9)
    assert exact.params["sigma_ln"] == pytest.approx(0.0, abs=1e-9)
    saturating = M.fit_log_drift(c, 1e-7 * (2 - np.exp(-c / 30)))  # ln I bends: not a line
    assert saturating.quality == "poor" and "not linear" in saturating.reason
    assert M.fit_log_drift(c[:5], i[:5]).quality == "poor"
    assert M.fit_log_drift(c[:2], i[:2]).quality == "failed"
    assert M.fit_log_drift(c[:4], np.r_[0.0, -1.0, 0.0, 1.0]).quality == "failed"


def test_distinct_levels_merges_overlapping_tolerance_bands():
    assert M.distinct_levels(np.array([5e-6, 1e-5, 1.5e-5]), 0.05) == 3
    assert M.distinct_levels(np.array([5e-6, 5.2e-6, 1e-5]), 0.05) == 2  # 5.2 within 5 % bands
    assert M.distinct_levels(np.array([]), 0.05) == 0


def test_integration_extractor_on_a_written_run(tmp_path):
    one = {"voltage_v": [0.2], "time_s": [0.0]}
    steps = [("baseline", {"voltage_v": [0.2] * 2, "time_s": [0, 1],
                           "current_a": [1e-8, 3e-8]}, {}, {})]  # mean 2e-8
    for amp, gain in ((4.0, 0.1), (5.0, 0.5)):
        for n in (1, 5, 10, 20):
            lv = {"amplitude_v": amp, "n_pulses": n}
            pre = f"series/amplitude_v={amp:g}/n_pulses={n}"
            steps += [(f"{pre}/pulses", {"t_done_s": [0.0]},
                       {"width_s": 1e-4, "period_s": 2e-4, "count": n}, lv),
                      (f"{pre}/response", {**one, "current_a": [2e-8 * (1 + gain * n)]}, {}, lv)]
    path = _write(tmp_path / "integ.h5", "dendrite-integration", steps)
    df = M.extract(path)
    assert set(df.quality) == {"ok"}, df[df.quality != "ok"].reason.tolist()
    ratio = _rows(df, "dendrite-integration", "integration_ratio")
    assert len(ratio) == 8
    want = [1 + g * n for g in (0.1, 0.5) for n in (1, 5, 10, 20)]
    np.testing.assert_allclose(ratio["value"], want, rtol=1e-12)
    gain = _rows(df, "dendrite-integration", "gain_per_pulse")
    lv = [json.loads(s) for s in gain["loop_vars"]]
    assert [d["amplitude_v"] for d in lv] == [4.0, 5.0]
    assert all(d["interval_s"] == pytest.approx(1e-4) and d["width_s"] == 1e-4 for d in lv)
    np.testing.assert_allclose(gain["value"], [0.1, 0.5], rtol=1e-12)


def test_inhibition_extractor_on_a_written_run(tmp_path):
    read = {"voltage_v": [0.2] * 2, "time_s": [0, 1]}
    steps = []
    for n, (exc, inh) in {1: (1e-7, 5e-8), 2: (1.2e-7, 1e-7), 3: (1e-8, 1e-8)}.items():
        lv, pre = {"n_exc": n}, f"inputs/n_exc={n}"
        steps += [(f"{pre}/baseline", {**read, "current_a": [2e-8, 2e-8]}, {}, lv),
                  (f"{pre}/after_excitatory", {**read, "current_a": [exc, exc / 2]}, {}, lv),
                  (f"{pre}/after_inhibition", {**read, "current_a": [inh, inh / 2]}, {}, lv)]
    df = M.extract(_write(tmp_path / "inh.h5", "dendrite-inhibition", steps))
    ratio = df[df.metric == "inhibition_ratio"].set_index("loop_vars")["value"]
    assert ratio['{"n_exc": 1}'] == pytest.approx(0.5)
    assert ratio['{"n_exc": 2}'] == pytest.approx(1e-7 / 1.2e-7)
    sup = df[df.metric == "inhibition_suppression"].set_index("loop_vars")
    assert sup.loc['{"n_exc": 1}', "value"] == pytest.approx(5e-8 / 8e-8)
    assert sup.loc['{"n_exc": 2}', "value"] == pytest.approx(2e-8 / 1e-7)
    bad = sup.loc['{"n_exc": 3}']  # read below baseline: no excitatory response to suppress
    assert bad["quality"] == "failed" and "no excitatory response" in bad["reason"]


def test_endurance_extractor_on_a_written_run(tmp_path):
    steps = [("baseline", {"voltage_v": [0.2], "time_s": [0.0], "current_a": [1e-8]}, {}, {})]
    for c in range(1, 31):
        steps.append((f"cycle={c}/response", {"voltage_v": [0.2], "time_s": [0.0],
                                              "current_a": [4e-8 * math.exp(-0.01 * c)]},
                      {}, {"cycle": c}))
    df = M.extract(_write(tmp_path / "end.h5", "dendrite-endurance", steps))
    get = df.set_index("metric")
    assert get.loc["endurance_drift", "value"] == pytest.approx(-0.01, rel=1e-9)
    assert get.loc["endurance_sigma_ln", "value"] == pytest.approx(0.0, abs=1e-9)
    reads = df[df.metric == "endurance_read_ratio"]["value"].to_numpy()
    np.testing.assert_allclose(reads, 4 * np.exp(-0.01 * np.arange(1, 31)), rtol=1e-12)
    empty = M.extract(_write(tmp_path / "e0.h5", "dendrite-endurance", steps[:1]))
    assert set(empty.quality) == {"failed"}


def test_write_verify_levels_reached_counts_only_reached_targets(tmp_path):
    def wv(target, g_final):
        arrays = {"voltage_v": [0.2, 0.2], "current_a": [0.2 * 1e-6, 0.2 * g_final],
                  "time_s": [0, 1], "pulse_v": [1.15, 0.0]}
        return (f"program/target_s={target:g}/write_verify", arrays,
                {"target_s": target, "tol_rel": 0.05}, {"target_s": target})
    path = _write(tmp_path / "wv.h5", "synapse-write-verify",
                  [wv(5e-6, 5.1e-6), wv(1e-5, 1.0e-5), wv(1.5e-5, 1.2e-5)])
    row = M.extract(path).set_index("metric").loc["levels_reached"]
    assert row["value"] == 2 and row["quality"] == "ok"


NEW_SIM = ["dendrite-integration", "dendrite-inhibition", "dendrite-endurance"]


@pytest.fixture(scope="module")
def sim_new(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim_new")
    bench = dendrolab.cli._sim_bench()
    return M.extract([run_protocol(name, bench, root / f"{name}.h5") for name in NEW_SIM])


def _lv(rows, key):
    return rows["loop_vars"].map(lambda s: json.loads(s).get(key)).to_numpy()


def test_sim_new_protocols_give_ok_metrics(sim_new):
    assert set(sim_new.protocol) == set(NEW_SIM)
    bad = sim_new[sim_new.quality != "ok"]
    assert bad.empty, bad[["protocol", "step", "metric", "reason"]].to_string()


def test_sim_integration_grows_with_pulses_and_amplitude(sim_new):
    # li2020-original responds strongly above ~4 V: more pulses integrate at 4 and 5 V, while
    # 2 V barely moves the state (ratio ~ 1 within the 1 % read noise).
    ratio = _rows(sim_new, "dendrite-integration", "integration_ratio")
    series = ratio[ratio.step.str.startswith("series/")]
    amp, n = _lv(series, "amplitude_v"), _lv(series, "n_pulses")
    for a in (4.0, 5.0):
        r = series["value"].to_numpy()[amp == a][np.argsort(n[amp == a])]
        assert np.all(np.diff(r) > 0), r
    assert np.all(np.abs(series["value"].to_numpy()[amp == 2.0] - 1) < 0.05)
    gain = _rows(sim_new, "dendrite-integration", "gain_per_pulse")
    g = dict(zip(_lv(gain, "amplitude_v"), gain["value"], strict=True))
    assert g[2.0] < 0.01 < g[4.0] < g[5.0]
    three = gain[gain.step == "three_pulses"]
    assert len(three) == 1 and three["value"].iloc[0] > 0
    assert json.loads(three["loop_vars"].iloc[0])["interval_s"] == pytest.approx(1e-4)


def test_sim_inhibition_lowers_the_response(sim_new):
    ratio = _rows(sim_new, "dendrite-inhibition", "inhibition_ratio")
    assert len(ratio) == 3 and ratio["value"].between(0.2, 0.95).all()
    sup = _rows(sim_new, "dendrite-inhibition", "inhibition_suppression")["value"].to_numpy()
    n_exc = _lv(_rows(sim_new, "dendrite-inhibition", "inhibition_suppression"), "n_exc")
    s = sup[np.argsort(n_exc)]
    assert np.all((s > 0) & (s < 1)) and np.all(np.diff(s) < 0)  # one inhibits less of more


def test_sim_endurance_original_device_barely_drifts(sim_new):
    # the original class barely responds to 3 V / 10 us: no drift over 200 cycles, and the
    # cycle-to-cycle sigma of ln I is the 1 % read noise
    get = _rows(sim_new, "dendrite-endurance", "endurance_drift")["value"].iloc[0]
    se = _rows(sim_new, "dendrite-endurance", "endurance_drift_se")["value"].iloc[0]
    assert abs(get) * 200 < 0.05 and abs(get) < 5 * se + 1e-5
    sigma = _rows(sim_new, "dendrite-endurance", "endurance_sigma_ln")["value"].iloc[0]
    assert 0.003 < sigma < 0.03
    assert len(_rows(sim_new, "dendrite-endurance", "endurance_read_ratio")) == 200


def test_sim_synapse_levels_reached(sim_table):
    levels = _rows(sim_table, "synapse-write-verify", "levels_reached")["value"]
    assert levels.tolist() == [3.0]  # 5, 10, 15 uS all reached, 5 % bands far apart

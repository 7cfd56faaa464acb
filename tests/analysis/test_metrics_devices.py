"""Soma ON-state resistance and synapse LTP/LTD nonlinearity: synthetic known answers, and
closed loops through the simulated bench (soma-on-state, synapse-ltp-ltd)."""

from __future__ import annotations

import numpy as np
import pytest

import dendrolab.cli
from analysis import metrics as M
from protocols.runner import run_protocol
from sim_backend.bench import Bench
from sim_backend.physics.presets import load_models


# ---------------------------------------------------------------------------- soma R_on
def test_fit_on_state_recovers_r_on_and_drops_clamped_points():
    i = np.linspace(2e-4, 8e-4, 12)
    v = 0.1 + 2500.0 * i
    on = np.ones(i.size, dtype=bool)
    # three clamped readings at the compliance (the limit itself, voltage meaningless)
    i_all = np.r_[i, [1e-3] * 3]
    v_all = np.r_[v, [9.0, 9.5, 9.9]]
    fit = M.fit_on_state(v_all, i_all, np.r_[on, [True] * 3])
    assert fit.quality == "ok", fit.reason
    assert fit.params["r_on"] == pytest.approx(2500.0, rel=1e-9)
    assert fit.params["v_0"] == pytest.approx(0.1, abs=1e-9)


def test_fit_on_state_fails_when_every_on_point_is_clamped():
    i = np.full(8, 1e-4)
    fit = M.fit_on_state(np.full(8, 0.7), i, np.ones(8, dtype=bool))
    assert fit.quality == "failed" and "compliance" in fit.reason


def test_soma_extractor_finds_r_on_in_a_synthetic_unclamped_sweep():
    up = np.round(np.arange(0, 1.6 + 1e-9, 0.02), 10)
    levels = np.r_[up, up[-2::-1]]
    on, i = False, []
    for k, v in enumerate(levels):
        rising = k < up.size
        on = (v >= 1.2) if rising and not on else (on and not (not rising and v <= 0.7))
        i.append(v / 2e3 if on else v / 2e5)
    i = np.array(i)
    fit = M.threshold_switch(levels, i)
    on = M.on_state_mask(levels, i)
    assert levels[on][0] == pytest.approx(1.2) and levels[on][-1] == pytest.approx(0.72)
    on_fit = M.fit_on_state(levels, i, on)
    assert fit.params["v_th"] == pytest.approx(1.2) and fit.params["v_hold"] == pytest.approx(0.7)
    assert on_fit.quality == "ok"
    assert on_fit.params["r_on"] == pytest.approx(2e3, rel=1e-9)


# ---------------------------------------------------------------------------- LTP / LTD
#: NeuroSim's Nonlinearity-NormA table at the points quoted in research/network.md 3.2.
NEUROSIM_TABLE = [(0.01, 126.27), (0.1, 12.63), (1.0, 1.252), (2.0, 0.609), (2.4, 0.499),
                  (5.0, 0.192), (9.0, 0.0228)]


@pytest.mark.parametrize(("label", "a_norm"), NEUROSIM_TABLE)
def test_nl_label_reproduces_the_neurosim_table(label, a_norm):
    assert M.neurosim_nl_label(1 / a_norm) == pytest.approx(label, rel=5e-3)
    assert M.neurosim_nl_label(-1 / a_norm) == pytest.approx(-label, rel=5e-3)


def test_update_curve_ends_mirror_and_line():
    x = np.linspace(0, 1, 11)
    for c in (-7.0, 0.0, 3.0):
        y = M.update_curve(x, c)
        assert y[0] == pytest.approx(0) and y[-1] == pytest.approx(1)
    assert np.allclose(1 - M.update_curve(1 - x, 4.0), M.update_curve(x, -4.0))
    assert np.allclose(M.update_curve(x, 0.0), x)


@pytest.mark.parametrize("c", [0.8, 4.0, -2.5])
def test_fit_update_recovers_curvature_ends_and_noise(c):
    rng = np.random.default_rng(3)
    p = np.arange(81)
    g0, g1, sigma = 2e-6, 2e-5, 0.01
    g = g0 + (g1 - g0) * M.update_curve(p / 80, c)
    noisy = g + rng.normal(0, sigma * (g1 - g0), p.size)
    fit = M.fit_update(noisy)
    assert fit.quality == "ok", fit.reason
    assert fit.params["c"] == pytest.approx(c, abs=0.4)
    assert np.sign(fit.params["nl"]) == np.sign(c)
    assert fit.params["g_start"] == pytest.approx(g0, abs=0.03 * (g1 - g0))
    assert fit.params["g_end"] == pytest.approx(g1, abs=0.03 * (g1 - g0))
    assert fit.params["sigma_c2c"] == pytest.approx(sigma, rel=0.25)
    assert fit.params["pulses"] == 80
    exact = M.fit_update(g)
    assert exact.params["c"] == pytest.approx(c, rel=1e-4)
    assert exact.params["nl"] == pytest.approx(M.neurosim_nl_label(c), rel=1e-3)


def test_fit_update_flags_falling_and_short_traces():
    assert M.fit_update(np.linspace(2e-5, 1e-6, 20)).quality == "failed"
    assert M.fit_update(np.ones(3)).quality == "failed"


# ---------------------------------------------------------------------------- simulated bench
@pytest.fixture(scope="module")
def sim_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim_devices")
    bench = dendrolab.cli._sim_bench()
    names = ["soma-on-state", "synapse-ltp-ltd", "unit-spikes", "unit-oscillation"]
    return M.extract([run_protocol(n, bench, root / f"{n}.h5") for n in names])


def _values(table, protocol, metric):
    rows = table[(table.protocol == protocol) & (table.metric == metric)]
    assert (rows.quality == "ok").all(), rows.reason.tolist()
    return rows["value"].to_numpy()


def test_sim_soma_on_state_recovers_the_configured_r_on(sim_runs):
    r_on_set = load_models("li2020-original").soma.r_on_ohm
    r_on = _values(sim_runs, "soma-on-state", "r_on")
    assert r_on.size == 3
    assert np.allclose(r_on, r_on_set, rtol=0.03)   # 1 % read noise over ~60 points
    v_th, v_hold = (_values(sim_runs, "soma-on-state", m) for m in ("v_th", "v_hold"))
    assert np.all(v_th > v_hold)


def test_sim_synapse_ltp_ltd_curvature_and_window(sim_runs):
    nl_ltp = _values(sim_runs, "synapse-ltp-ltd", "nl_ltp")
    nl_ltd = _values(sim_runs, "synapse-ltp-ltd", "nl_ltd")
    assert nl_ltp.size == nl_ltd.size == 2
    # both curves saturate: potentiation concave (positive label), depression steep first
    # (negative label on NeuroSim's shared axis)
    assert np.all(nl_ltp > 0.5) and np.all(nl_ltd < -0.5)
    g_min = _values(sim_runs, "synapse-ltp-ltd", "g_min")[0]
    g_max = _values(sim_runs, "synapse-ltp-ltd", "g_max")[0]
    bench = Bench({"devices": {"c1": {"kind": "synapse"}}})
    g_sat = bench.device("c1")._g_sat(1.6)   # the gate-limited conductance ceiling
    assert g_min < g_max <= g_sat * 1.05
    assert _values(sim_runs, "synapse-ltp-ltd", "on_off")[0] > 5


def test_sim_unit_spikes_per_pulse_and_threshold(sim_runs):
    rows = sim_runs[(sim_runs.protocol == "unit-spikes")]
    counts = rows[rows.metric == "spike_count"].set_index("step")["value"]
    rates = rows[rows.metric == "spikes_per_pulse"].set_index("step")["value"]
    assert len(counts) == 5 and (rows.quality == "ok").all()
    assert np.allclose(rates.to_numpy(), counts.to_numpy() / 20)      # 20 pulses per burst
    assert np.all(np.diff(rates.to_numpy()) >= 0) and rates.iloc[-1] > 10
    thr = _values(sim_runs, "unit-spikes", "firing_threshold")[0]
    # ground truth (physics, fresh device): < 1 spike per pulse at 5.0 V, 7 at 5.5 V
    assert 5.0 < thr < 5.5


def test_sim_unit_oscillation_rises_with_input(sim_runs):
    rows = sim_runs[(sim_runs.protocol == "unit-oscillation")
                    & (sim_runs.metric == "oscillation_frequency")]
    f = rows["value"].to_numpy()
    assert len(f) == 7 and (rows.quality == "ok").all()
    assert f[0] == f[1] == 0.0                       # 4.5 and 4.75 V: no oscillation
    assert rows.reason.iloc[0].startswith("counter timed out")
    assert np.all(np.diff(f[2:]) > 0) and 1e4 < f[2] < f[-1] < 3e5
    assert _values(sim_runs, "unit-oscillation", "oscillation_onset")[0] == 5.0


# ---------------------------------------------------------------------------- written runs
def _counts_run(tmp_path, counts, pulses=20):
    """A unit-spikes run file: per amplitude a count_start, a 20-pulse step and a fetch."""
    from tests.analysis.test_metrics import _write

    steps = []
    for amp, count in counts.items():
        lv = {"amplitude_v": amp}
        steps += [(f"input/amplitude_v={amp:g}/count_start", {"t_done_s": [0.0]},
                   {"gate_s": 0.1}, lv),
                  (f"input/amplitude_v={amp:g}/pulses", {"t_done_s": [0.0]},
                   {"count": pulses, "high_v": amp, "width_s": 2e-4}, lv),
                  (f"input/amplitude_v={amp:g}/spikes",
                   {"count": [count], "gate_s": [0.1], "level_v": [0.01], "time_s": [0.0]},
                   {"gate_s": 0.1, "start_step": f"input/amplitude_v={amp:g}/count_start"}, lv)]
    return _write(tmp_path / "spikes.h5", "unit-spikes", steps)


def test_unit_spikes_extractor_on_a_written_run(tmp_path):
    path = _counts_run(tmp_path, {4.0: 0, 5.0: 10, 6.0: 60})
    df = M.extract(path)
    rate = df[df.metric == "spikes_per_pulse"].set_index("step")["value"]
    assert list(rate) == [0.0, 0.5, 3.0]                  # count / 20 pulses
    thr = df[df.metric == "firing_threshold"].iloc[0]
    assert thr["quality"] == "ok"
    assert thr["value"] == pytest.approx(5.0 + 0.5 / 2.5)  # 1 spike/pulse between 0.5 and 3
    (tmp_path / "lost").mkdir()
    rows = M.extract(_counts_run(tmp_path / "lost", {5.0: float("nan"), 6.0: 20}))
    bad = rows[rows.metric == "spike_count"].iloc[0]
    assert bad["quality"] == "failed" and "gate was lost" in bad["reason"]


def test_unit_oscillation_extractor_on_a_written_run(tmp_path):
    from tests.analysis.test_metrics import _write

    steps = [(f"input/input_v={v:g}/osc",
              {"frequency_hz": [f], "gate_s": [0.01], "level_v": [0.01], "hold_v": [v],
               "time_s": [0.0]}, {"hold_v": v}, {"input_v": v})
             for v, f in ((4.5, float("nan")), (5.0, 2e4), (5.5, 8e4))]
    df = M.extract(_write(tmp_path / "osc.h5", "unit-oscillation", steps))
    f = df[df.metric == "oscillation_frequency"]
    assert list(f["value"]) == [0.0, 2e4, 8e4] and (f.quality == "ok").all()
    onset = df[df.metric == "oscillation_onset"].iloc[0]
    assert onset["value"] == 5.0 and onset["quality"] == "ok"


def test_unit_firing_extractor_on_a_written_run(tmp_path):
    from tests.analysis.test_metrics import _write

    steps = []
    for amp, i in ((4.0, 1e-6), (4.5, 1.2e-6), (5.0, 6e-6), (5.5, 8e-6)):
        steps.append((f"input/amplitude_v={amp:g}/pulses",
                      {"voltage_v": [amp] * 3, "current_a": [i] * 3, "time_s": [0, 1, 2]},
                      {}, {"amplitude_v": amp}))
    df = M.extract(_write(tmp_path / "uf.h5", "unit-firing", steps))
    thr = df[df.metric == "firing_threshold"].iloc[0]
    assert thr["value"] == 5.0 and thr["quality"] == "ok"  # conductance x4.6 from 4.5 to 5 V
    g = df[df.metric == "input_conductance"]["value"].to_numpy()
    assert g == pytest.approx([1e-6 / 4.0, 1.2e-6 / 4.5, 6e-6 / 5.0, 8e-6 / 5.5])


def test_ltp_ltd_extractor_on_a_written_run(tmp_path):
    from tests.analysis.test_metrics import _write

    p = np.arange(41) / 40
    g_ltp = 2e-6 + 1.8e-5 * M.update_curve(p, 4.0)
    g_ltd = (2e-6 + 1.8e-5 * M.update_curve(p, -3.0))[::-1]   # depression, read in time order

    def step(name, g, sign):
        return (f"cycle=1/{name}", {"voltage_v": np.full(g.size, 0.2), "current_a": 0.2 * g,
                                    "time_s": np.arange(g.size),
                                    "pulse_v": np.full(g.size, sign)}, {}, {"cycle": 1})
    df = M.extract(_write(tmp_path / "ltp.h5", "synapse-ltp-ltd",
                          [step("ltp", g_ltp, 1.15), step("ltd", g_ltd, -1.15)]))
    get = df.set_index("metric")["value"]
    assert get["nl_ltp"] == pytest.approx(M.neurosim_nl_label(4.0), rel=1e-3)
    assert get["nl_ltd"] == pytest.approx(M.neurosim_nl_label(-3.0), rel=1e-3)
    assert get["g_min"] == pytest.approx(2e-6, rel=1e-4)
    assert get["g_max"] == pytest.approx(2e-5, rel=1e-4)
    assert get["max_num_level_ltp"] == 40 and get["on_off"] == pytest.approx(10, rel=1e-3)

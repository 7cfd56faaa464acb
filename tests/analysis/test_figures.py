"""Per-protocol figures: each built-in protocol run on the simulated bench, its figure checked.

Why: a figure can silently show the wrong thing (a missing amplitude, a linear axis where the
paper's is log, a V_th marker that disagrees with the metric table). These tests assert on the
matplotlib Figure object itself, closed-loop through the simulator, and that ``plot_run``
writes the PNG (with the generic plot kept for protocols without a figure).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import dendrolab.cli
from analysis import figures, metrics
from analysis.plots import plot_run
from dendrolab.errors import DendrolabError
from protocols.runfile_reader import RunReader
from protocols.runner import run_protocol

PROTOCOLS = list(figures.FIGURES)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("figruns")
    paths = {}
    for name in [*PROTOCOLS, "read"]:
        paths[name] = out / f"{name}.h5"
        run_protocol(name, dendrolab.cli._sim_bench(), paths[name])
    return paths


def _figure(runs: dict[str, Path], name: str):
    with RunReader(runs[name]) as reader:
        fig = figures.figure_for(reader)
        found = metrics.EXTRACTORS[name](reader) if name in metrics.EXTRACTORS else []
    assert fig is not None
    return fig, found


def _vlines(ax) -> dict[str, float]:
    return {ln.get_label(): float(ln.get_xdata()[0]) for ln in ax.get_lines()
            if list(ln.get_ydata()) == [0, 1]}


def _amps(runs: dict[str, Path], name: str, leaf: str) -> list[float]:
    with RunReader(runs[name]) as reader:
        return sorted({float(s.loop_vars["amplitude_v"]) for s in reader.steps
                       if s.name.endswith(leaf) and "amplitude_v" in s.loop_vars})


def test_amplitude_sweep_ed2a(runs: dict[str, Path]) -> None:
    fig, found = _figure(runs, "dendrite-amplitude-sweep")
    ax_t, ax_r = fig.axes[:2]
    amps = _amps(runs, "dendrite-amplitude-sweep", "before")
    assert len(amps) == 31
    assert len(ax_t.get_lines()) == len(amps)            # one current-vs-time line per amplitude
    for line in ax_t.get_lines():
        t = np.asarray(line.get_xdata())
        assert t[0] == 0 and t[-1] > 0                   # read before, then after the train
    ratio = ax_r.get_lines()[0]
    np.testing.assert_allclose(ratio.get_xdata(), amps)
    thr = next(m for m in found if m.name == "amplitude_threshold")
    assert math.isfinite(thr.value) and 2.0 < thr.value < 5.0
    marks = [v for k, v in _vlines(ax_r).items() if k.startswith("threshold")]
    assert marks == [pytest.approx(thr.value)]
    # the threshold sits where the plotted ratio crosses 2
    y = np.interp(thr.value, ratio.get_xdata(), ratio.get_ydata())
    assert y == pytest.approx(2.0, rel=1e-6)
    plt.close(fig)


def test_relaxation_ed3d(runs: dict[str, Path]) -> None:
    fig, found = _figure(runs, "dendrite-relaxation")
    ax_i, ax_v = fig.axes[:2]
    assert ax_i.get_yscale() == "log"
    lines = ax_i.get_lines()
    assert len(lines) == 3                               # three cycles
    for line in lines:
        i = np.asarray(line.get_ydata())
        assert np.nanmax(i) > 10 * i[0] and i[-1] < np.nanmax(i) / 10   # OFF -> ON -> relaxed
    assert {float(np.max(ln.get_ydata())) for ln in ax_v.get_lines()} == {5.0}
    taus = [m for m in found if m.name == "relax_tau"]
    assert all(f"tau {m.value * 1e3:.3g} ms" in ln.get_label() for m, ln in zip(taus, lines,
                                                                              strict=True))
    plt.close(fig)


def test_dendrite_iv_ed2c_ed4(runs: dict[str, Path]) -> None:
    fig, _ = _figure(runs, "dendrite-iv")
    ax_s, ax_h = fig.axes[:2]
    assert ax_s.get_yscale() == "log" and ax_h.get_yscale() == "log"
    labels = [ln.get_label().split(" (")[0] for ln in ax_s.get_lines()]
    assert labels == ["off state", "on state", "relaxed"]
    with RunReader(runs["dendrite-iv"]) as reader:
        on = next(reader.step(s.index) for s in reader.steps if s.name.endswith("on_state_iv"))
    np.testing.assert_allclose(ax_s.get_lines()[1].get_xdata(), on["voltage_v"])
    loop = ax_h.get_lines()[0].get_xdata()
    assert min(loop) == pytest.approx(-5) and max(loop) == pytest.approx(5)
    plt.close(fig)


def test_soma_iv_ed7c_marks_metrics(runs: dict[str, Path]) -> None:
    fig, found = _figure(runs, "soma-iv")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    marks = {ln.get_gid(): float(ln.get_xdata()[0]) for ln in ax.get_lines() if ln.get_gid()}
    expected = {f"{m.name}:{m.step}": m.value for m in found if m.name in ("v_th", "v_hold")}
    assert len(expected) == 6                            # V_th and V_hold of three cycles
    assert marks == pytest.approx(expected)
    assert all(v_hold < v_th for v_hold, v_th in zip(
        [m.value for m in found if m.name == "v_hold"],
        [m.value for m in found if m.name == "v_th"], strict=True))
    plt.close(fig)


def test_integration_ed2b(runs: dict[str, Path]) -> None:
    fig, _ = _figure(runs, "dendrite-integration")
    ax_r = fig.axes[0]
    lines = {ln.get_label(): ln for ln in ax_r.get_lines() if not ln.get_label().startswith("_")}
    amps = _amps(runs, "dendrite-integration", "response")
    assert sorted(lines) == sorted(f"{a:g} V" for a in amps)
    top, low = lines[f"{max(amps):g} V"], lines[f"{min(amps):g} V"]
    np.testing.assert_array_equal(top.get_xdata(), [1, 5, 10, 20])
    assert top.get_ydata()[-1] > 3 > low.get_ydata()[-1]   # integration only at high amplitude
    assert np.all(np.diff(top.get_ydata()) > 0)
    plt.close(fig)


def test_inhibition_ed3(runs: dict[str, Path]) -> None:
    fig, _ = _figure(runs, "dendrite-inhibition")
    ax_b, ax_t = fig.axes[:2]
    with RunReader(runs["dendrite-inhibition"]) as reader:
        def first(leaf: str, n: int) -> float:
            d = next(reader.step(s.index) for s in reader.steps
                     if s.name.endswith(leaf) and s.loop_vars.get("n_exc") == n)
            return float(np.mean(d["current_a"])) if leaf == "baseline" else float(
                d["current_a"][0])
        expected = [[first(leaf, n) / first("baseline", n) for n in (1, 2, 3)]
                    for leaf in ("after_excitatory", "after_inhibition")]
    bars = [p.get_height() for p in ax_b.patches]
    assert len(bars) == 6                                # 3 input counts x (exc, exc + inh)
    assert bars == pytest.approx(expected[0] + expected[1])
    assert all(i < e for e, i in zip(expected[0], expected[1], strict=True))
    assert len(ax_t.get_lines()) == 6
    plt.close(fig)


def test_endurance_ed7b_every_cycle(runs: dict[str, Path]) -> None:
    fig, _ = _figure(runs, "dendrite-endurance")
    ax = fig.axes[0]
    on = ax.get_lines()[0]
    np.testing.assert_array_equal(on.get_xdata(), np.arange(1, 201))
    assert ax.get_yscale() == "log"
    plt.close(fig)


def test_unit_firing_ed7d(runs: dict[str, Path]) -> None:
    fig, found = _figure(runs, "unit-firing")
    ax_p, ax_a = fig.axes[:2]
    amps = _amps(runs, "unit-firing", "pulses")
    assert len(ax_p.get_lines()) == len(amps) == 5
    assert all(len(ln.get_xdata()) == 20 for ln in ax_p.get_lines())   # every pulse
    thr = next(m for m in found if m.name == "firing_threshold")
    marks = [v for k, v in _vlines(ax_a).items() if k.startswith("firing")]
    assert marks == [pytest.approx(thr.value)]
    plt.close(fig)


def test_write_verify_targets(runs: dict[str, Path]) -> None:
    fig, found = _figure(runs, "synapse-write-verify")
    ax = fig.axes[0]
    targets = sorted(float(ln.get_ydata()[0]) for ln in ax.get_lines()
                     if str(ln.get_gid()).startswith("target:"))
    assert targets == pytest.approx([5.0, 10.0, 15.0])    # uS
    data = [ln for ln in ax.get_lines() if not ln.get_gid()]
    assert len(data) == 3
    pulses = [m.value for m in found if m.name == "pulses_to_target"]
    finals = [m for m in found if m.name == "g_final"]
    for line, n, g in zip(data, pulses, finals, strict=True):
        assert line.get_xdata()[0] == 0                 # first verify read before any pulse
        assert line.get_xdata()[-1] == n                # last read after all the pulses
        assert line.get_ydata()[-1] == pytest.approx(g.value * 1e6)
    plt.close(fig)


@pytest.mark.parametrize("name", [*PROTOCOLS, "read"])
def test_plot_run_writes_png(runs: dict[str, Path], name: str, tmp_path: Path) -> None:
    png = plot_run(runs[name], tmp_path / f"{name}.png")
    assert png == tmp_path / f"{name}.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_generic_protocol_has_no_figure(runs: dict[str, Path]) -> None:
    with RunReader(runs["read"]) as reader:
        assert figures.figure_for(reader) is None


def test_plot_run_default_path_and_bad_file(runs: dict[str, Path], tmp_path: Path) -> None:
    src = runs["soma-iv"]
    copy = tmp_path / "soma.h5"
    copy.write_bytes(src.read_bytes())
    assert plot_run(copy) == tmp_path / "soma.png" and (tmp_path / "soma.png").exists()
    bad = tmp_path / "bad.h5"
    bad.write_text("not a run file")
    with pytest.raises(DendrolabError):
        plot_run(bad)


def test_pm_pulses_ed1_traces_and_baseline(runs: dict[str, Path]) -> None:
    fig, found = _figure(runs, "dendrite-pm-pulses")
    ax = fig.axes[0]
    labels = [ln.get_label() for ln in ax.get_lines()]
    assert "after +5 V train" in labels and "after -5 V train" in labels
    assert "after +V then -V pulses" in labels
    base = next(ln for ln in ax.get_lines() if ln.get_gid() == "baseline")
    plus = next(ln for ln in ax.get_lines() if ln.get_label() == "after +5 V train")
    minus = next(ln for ln in ax.get_lines() if ln.get_label() == "after -5 V train")
    # the excitatory train raises the read well above the baseline; the inhibitory one does not
    assert plus.get_ydata()[0] > 3 * base.get_ydata()[0]
    assert minus.get_ydata()[0] < 1.5 * base.get_ydata()[0]
    on_off = next(m for m in found if m.name == "on_off_ratio")
    assert f"ON/OFF {on_off.value:.3g}" in ax.get_title()
    plt.close(fig)


def test_soma_on_state_shows_r_on(runs: dict[str, Path]) -> None:
    fig, found = _figure(runs, "soma-on-state")
    labels = [ln.get_label() for ln in fig.axes[0].get_lines()]
    r_on = [m for m in found if m.name == "r_on"]
    assert len(r_on) == 3
    for m in r_on:
        assert any(f"R_on {m.value:.4g} ohm" in lab for lab in labels)
    plt.close(fig)


def test_ltp_ltd_curves_and_labels(runs: dict[str, Path]) -> None:
    fig, found = _figure(runs, "synapse-ltp-ltd")
    ax = fig.axes[0]
    fits = [ln for ln in ax.get_lines() if str(ln.get_gid()).startswith("fit:")]
    assert len(fits) == 4                       # ltp and ltd of two cycles
    labels = [ln.get_label() for ln in fits]
    for m in found:
        if m.name in ("nl_ltp", "nl_ltd"):
            assert f"NL_{m.name[3:].upper()} {m.value:+.2f}" in labels
    # potentiation then depression on one axis: 60 + 60 pulses per cycle
    assert max(float(np.max(ln.get_xdata())) for ln in fits) == pytest.approx(120)
    plt.close(fig)


def test_unit_spikes_ed7d_counted(runs: dict[str, Path]) -> None:
    fig, found = _figure(runs, "unit-spikes")
    ax = fig.axes[0]
    line = next(ln for ln in ax.get_lines() if ln.get_gid() == "spikes_per_pulse")
    rates = sorted((m.loop_vars["amplitude_v"], m.value) for m in found
                   if m.name == "spikes_per_pulse")
    assert list(line.get_xdata()) == [a for a, _ in rates]
    assert list(line.get_ydata()) == [r for _, r in rates]
    thr = next(m for m in found if m.name == "firing_threshold")
    mark = next(ln for ln in ax.get_lines() if ln.get_gid() == "firing_threshold")
    assert float(mark.get_xdata()[0]) == pytest.approx(thr.value)
    plt.close(fig)


def test_unit_oscillation_f_v(runs: dict[str, Path]) -> None:
    fig, found = _figure(runs, "unit-oscillation")
    ax = fig.axes[0]
    line = next(ln for ln in ax.get_lines() if ln.get_gid() == "frequency")
    freqs = [m.value / 1e3 for m in found if m.name == "oscillation_frequency"]
    assert np.allclose(np.sort(line.get_ydata()), np.sort(freqs))
    assert ax.get_ylabel() == "oscillation frequency (kHz)"
    plt.close(fig)

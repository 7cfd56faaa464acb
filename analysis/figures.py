"""Per-protocol figures drawn like the panels of Li et al. 2020 (Extended Data) they reproduce.

Why: the generic plot ("|I| mean against read step") shows that a run measured something, not
whether it reproduced the paper. Each built-in protocol knows what its steps mean (their leaf
names and loop variables), so its figure can be the paper's panel: current against time per
amplitude and the amplitude threshold (ED2a), the OFF/ON/relax trace (ED3d), I-V overlays on a
log |I| axis (ED2c/ED4), the soma I-V with V_th/V_hold (ED7c), the read ratio against pulse number
(ED2b), excitation cancelled by inhibition (ED3a-c), endurance with every cycle (ED7b), input
current per pulse and counted spikes per pulse against amplitude (ED7d), the unit's
oscillation frequency against its input, potentiation/depression with NeuroSim's labels, the
+/- pulse responses (ED1) and write-verify conductance against pulse number
(synapse programming).

Run files are read only through ``protocols.runfile_reader.RunReader`` (the analysis contract);
numbers shown on a figure (thresholds, V_th, V_hold) come from ``analysis.metrics`` so the figure
and the metric table cannot disagree. Every builder returns a matplotlib ``Figure`` (Agg backend,
imported lazily) and does not save it; ``figure_for`` picks the builder by ``protocol_name`` and
returns None for protocols without one (``analysis.plots.plot_run`` then draws the generic plot).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from analysis import metrics
from protocols.runfile_reader import RunReader, StepData

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _plt() -> Any:
    """pyplot, imported lazily on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _leaf(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def _steps(reader: RunReader, leaf: str | Callable[[str], bool]) -> list[StepData]:
    """Steps that recorded a current, whose leaf name equals (or satisfies) ``leaf``."""
    match = leaf if callable(leaf) else (lambda s: s == leaf)
    return [reader.step(info.index) for info in reader.steps
            if "current_a" in info.units and match(_leaf(info.name))]


def _title(reader: RunReader, panel: str) -> str:
    attrs = reader.attrs
    return f"{panel}: {attrs.get('protocol_name', '')} {attrs.get('device_id', '') or ''}".strip()


def _colors(n: int) -> list:
    plt = _plt()
    cmap = plt.get_cmap("viridis")
    return [cmap(k / max(n - 1, 1)) for k in range(n)]


def _abs_log(i: np.ndarray) -> np.ndarray:
    """|I| with exact zeros (0 V points) left out (NaN), so they do not stretch a log axis."""
    a = np.abs(np.asarray(i, dtype=float))
    return np.where(a > 0, a, np.nan)


# ---------------------------------------------------------------------------- ED2a
def fig_amplitude_sweep(reader: RunReader) -> Figure:
    """ED2a: read current against time for each amplitude (before and after its pulse train,
    t = 0 at the read before) and the read ratio against amplitude with the amplitude
    threshold (``metrics.extract_amplitude_sweep``) marked."""
    plt = _plt()
    before = {json.dumps(d.info.loop_vars, sort_keys=True): d for d in _steps(reader, "before")}
    pairs = []
    for after in _steps(reader, lambda s: s.startswith("after_")):
        ref = before.get(json.dumps(after.info.loop_vars, sort_keys=True))
        amp = after.info.loop_vars.get("amplitude_v")
        if ref is not None and isinstance(amp, (int, float)):
            pairs.append((float(amp), ref, after))
    pairs.sort(key=lambda p: p[0])
    fig, (ax_t, ax_r) = plt.subplots(1, 2, figsize=(12, 4.5))
    amps, ratios = [], []
    for color, (amp, ref, after) in zip(_colors(len(pairs)), pairs, strict=True):
        t0 = float(ref["time_s"][0])
        t = np.concatenate([ref["time_s"], after["time_s"]]) - t0
        i = np.concatenate([ref["current_a"], after["current_a"]])
        ax_t.plot(t * 1e3, i * 1e9, "o-", color=color, ms=3, lw=1, label=f"{amp:g} V")
        off, on = float(np.mean(ref["current_a"])), float(np.mean(after["current_a"]))
        if off > 0:
            amps.append(amp)
            ratios.append(on / off)
    ax_t.set(xlabel="time from read before the train (ms)", ylabel="read current (nA)",
             title=_title(reader, "ED2a"))
    if 0 < len(pairs) <= 12:
        ax_t.legend(fontsize=7, title="amplitude")
    elif pairs:
        sm = plt.cm.ScalarMappable(cmap="viridis",
                                   norm=plt.Normalize(pairs[0][0], pairs[-1][0]))
        fig.colorbar(sm, ax=ax_t, label="amplitude (V)")
    ax_r.plot(amps, ratios, "o-", ms=4, color="k", label="read after / before")
    criterion = 2.0
    ax_r.axhline(criterion, color="grey", ls="--", lw=1, label=f"criterion x{criterion:g}")
    thr = next((m for m in metrics.extract_amplitude_sweep(reader, criterion=criterion)
                if m.name == "amplitude_threshold"), None)
    if thr is not None and math.isfinite(thr.value):
        ax_r.axvline(thr.value, color="C3", lw=1.5,
                     label=f"threshold {thr.value:.3g} V ({thr.quality})")
    ax_r.set(xlabel="pulse amplitude (V)", ylabel="read ratio I_after / I_before",
             title="amplitude threshold")
    ax_r.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------- ED3d
def fig_relaxation(reader: RunReader) -> Figure:
    """ED3d: the hardware-timed OFF reads, switching level and relaxation reads of each cycle
    (current and applied level against time), with the fitted relaxation time in the legend."""
    plt = _plt()
    steps = _steps(reader, "off_on_relax")
    taus = {m.step: m for m in metrics.extract_relaxation(reader) if m.name == "relax_tau"}
    fig, (ax_i, ax_v) = plt.subplots(2, 1, figsize=(8, 6), sharex=True,
                                     gridspec_kw={"height_ratios": [3, 1]})
    for color, data in zip(_colors(len(steps)), steps, strict=True):
        t = (data["time_s"] - data["time_s"][0]) * 1e3
        tau = taus.get(data.info.name)
        lab = ", ".join(f"{k}={v}" for k, v in data.info.loop_vars.items()) or data.info.name
        if tau is not None and math.isfinite(tau.value):
            lab += f" (tau {tau.value * 1e3:.3g} ms)"
        ax_i.semilogy(t, _abs_log(data["current_a"]), "o-", ms=2.5, lw=0.8, color=color,
                      label=lab)
        ax_v.plot(t, metrics._levels(data), drawstyle="steps-post", color=color, lw=1)
    ax_i.set(ylabel="|I| (A)", title=_title(reader, "ED3d OFF / ON / relax"))
    if steps:
        ax_i.legend(fontsize=7)
    ax_v.set(xlabel="time in sweep (ms)", ylabel="level (V)")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------- ED2c / ED4
IV_STEPS = ("off_state_iv", "on_state_iv", "relaxed_iv")


def fig_dendrite_iv(reader: RunReader) -> Figure:
    """ED2c/ED4a,b: OFF, ON and relaxed small-signal I-V overlaid on log |I| (with the branch
    nonlinearity NL in the legend), and the +-5 V hysteresis loop on log |I|."""
    plt = _plt()
    fig, (ax_s, ax_h) = plt.subplots(1, 2, figsize=(12, 4.5))
    for leaf, color in zip(IV_STEPS, ("C0", "C3", "C2"), strict=True):
        for data in _steps(reader, leaf):
            v, i = data["voltage_v"], data["current_a"]
            nl = metrics.fit_branch_a(v, i).params["nl"]
            lab = leaf.replace("_iv", "").replace("_", " ")
            if math.isfinite(nl):
                lab += f" (NL {nl:.2f})"
            ax_s.plot(v, _abs_log(i), "o-", ms=3, lw=1, color=color, label=lab)
    ax_s.set_yscale("log")
    ax_s.set(xlabel="V (V)", ylabel="|I| (A)", title=_title(reader, "ED2c/ED4 I-V"))
    if ax_s.lines:
        ax_s.legend(fontsize=8)
    for data in _steps(reader, "hysteresis_loop"):
        ax_h.plot(data["voltage_v"], _abs_log(data["current_a"]), ".-", ms=2, lw=0.8,
                  color="k", label="+-5 V loop")
    ax_h.set_yscale("log")
    ax_h.set(xlabel="V (V)", ylabel="|I| (A)", title="hysteresis loop")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------- ED7c
def fig_soma_iv(reader: RunReader) -> Figure:
    """ED7c: soma threshold-switching I-V of every cycle on log |I| against the source level,
    with V_th and V_hold of each cycle (``metrics.extract_soma_iv``) as vertical lines and R_on
    in the legend where the ON branch was measured unclamped (soma-on-state)."""
    plt = _plt()
    steps = _steps(reader, "up_down")
    found = {(m.step, m.name): m for m in metrics.extract_soma_iv(reader)}
    fig, ax = plt.subplots(figsize=(7, 5))
    for color, data in zip(_colors(len(steps)), steps, strict=True):
        name = data.info.name
        lab = ", ".join(f"{k}={v}" for k, v in data.info.loop_vars.items()) or name
        r_on = found.get((name, "r_on"))
        if r_on is not None and r_on.quality == metrics.OK:
            lab += f", R_on {r_on.value:.4g} ohm"
        ax.plot(metrics._levels(data), _abs_log(data["current_a"]), ".-", ms=2, lw=0.8,
                color=color, label=lab)
        for key, ls in (("v_th", "--"), ("v_hold", ":")):
            m = found.get((name, key))
            if m is not None and math.isfinite(m.value):
                ax.axvline(m.value, color=color, ls=ls, lw=1.2, gid=f"{key}:{name}",
                           label=f"{'V_th' if key == 'v_th' else 'V_hold'} {m.value:.3g} V")
    ax.set_yscale("log")
    ax.set(xlabel="source level (V)", ylabel="|I| (A)", title=_title(reader, "ED7c soma I-V"))
    if steps:
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------- ED2b
def fig_integration(reader: RunReader) -> Figure:
    """ED2b: read ratio (read after n pulses / mean baseline read) against pulse number, one line
    per amplitude; ED4c: the decay reads after each of the three closely spaced pulses."""
    plt = _plt()
    base = _steps(reader, "baseline")
    off = float(np.mean(base[0]["current_a"])) if base and base[0]["current_a"].size else math.nan
    series: dict[float, list[tuple[float, float]]] = {}
    for data in _steps(reader, "response"):
        lv = data.info.loop_vars
        amp, n = lv.get("amplitude_v"), lv.get("n_pulses")
        if isinstance(amp, (int, float)) and isinstance(n, (int, float)) and data["current_a"].size:
            series.setdefault(float(amp), []).append(
                (float(n), float(data["current_a"][0]) / off if off > 0 else math.nan))
    fig, (ax_r, ax_d) = plt.subplots(1, 2, figsize=(12, 4.5))
    for color, amp in zip(_colors(len(series)), sorted(series), strict=True):
        pts = sorted(series[amp])
        ax_r.plot([p[0] for p in pts], [p[1] for p in pts], "o-", ms=4, color=color,
                  label=f"{amp:g} V")
    ax_r.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax_r.set(xlabel="number of pulses", ylabel="read ratio I / I_baseline",
             title=_title(reader, "ED2b integration"))
    if series:
        ax_r.legend(fontsize=8, title="amplitude")
    decays = _steps(reader, "decay")
    for color, data in zip(_colors(len(decays)), decays, strict=True):
        t0 = float(data["time_s"][0]) if data["time_s"].size else 0.0
        lab = ", ".join(f"{k}={v}" for k, v in data.info.loop_vars.items()) or data.info.name
        ax_d.plot((data["time_s"] - t0) * 1e3, data["current_a"] * 1e9, "o-", ms=3,
                  color=color, label=lab)
    ax_d.set(xlabel="time from first read after the pulses (ms)", ylabel="read current (nA)",
             title="ED4c decay after closely spaced pulses")
    if decays:
        ax_d.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------- ED3a-c
def fig_inhibition(reader: RunReader) -> Figure:
    """ED3a-c: read ratio (first read / mean baseline read) after the excitatory inputs alone
    and with the inhibitory input, per number of excitatory inputs (bars), and the read decays
    after each (solid: excitatory only, dashed: with inhibition)."""
    plt = _plt()
    groups: dict[str, dict[str, StepData]] = {}
    for leaf in ("baseline", "after_excitatory", "after_inhibition"):
        for data in _steps(reader, leaf):
            groups.setdefault(json.dumps(data.info.loop_vars, sort_keys=True), {})[leaf] = data
    rows = []
    for key, g in groups.items():
        if len(g) == 3 and all(d["current_a"].size for d in g.values()):
            off = float(np.mean(g["baseline"]["current_a"]))
            lv = json.loads(key)
            rows.append((lv.get("n_exc", key), g, off))
    rows.sort(key=lambda r: (0, r[0], "") if isinstance(r[0], (int, float)) else (1, 0, str(r[0])))
    fig, (ax_b, ax_t) = plt.subplots(1, 2, figsize=(12, 4.5))
    x = np.arange(len(rows))
    for k, (leaf, lab) in enumerate((("after_excitatory", "excitatory only"),
                                     ("after_inhibition", "with inhibition"))):
        heights = [float(g[leaf]["current_a"][0]) / off if off > 0 else math.nan
                   for _, g, off in rows]
        ax_b.bar(x + (k - 0.5) * 0.38, heights, width=0.38, color=("C3", "C0")[k], label=lab)
    ax_b.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax_b.set_xticks(x, [f"{n} exc." for n, _, _ in rows])
    ax_b.set(ylabel="read ratio I / I_baseline", title=_title(reader, "ED3a-c inhibition"))
    ax_b.legend(fontsize=8)
    for color, (n, g, _) in zip(_colors(len(rows)), rows, strict=True):
        for leaf, ls in (("after_excitatory", "-"), ("after_inhibition", "--")):
            d = g[leaf]
            ax_t.plot((d["time_s"] - d["time_s"][0]) * 1e3, d["current_a"] * 1e9, "o" + ls,
                      ms=3, color=color, label=f"{n} exc., {leaf.split('_')[1]}")
    ax_t.set(xlabel="time from first read (ms)", ylabel="read current (nA)",
             title="read decay")
    if rows:
        ax_t.legend(fontsize=7)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------- ED7b
def fig_endurance(reader: RunReader) -> Figure:
    """ED7b: the read after every cycle's pulse train against cycle number (every cycle drawn),
    with the baseline (OFF) read as a reference line, on log |I|."""
    plt = _plt()
    pts = []
    for data in _steps(reader, "response"):
        cyc = data.info.loop_vars.get("cycle")
        if isinstance(cyc, (int, float)) and data["current_a"].size:
            pts.append((float(cyc), float(data["current_a"][0])))
    pts.sort()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot([p[0] for p in pts], _abs_log(np.array([p[1] for p in pts])), "o", ms=2.5,
            color="C3", label="read after train (ON)")
    base = _steps(reader, "baseline")
    if base and base[0]["current_a"].size:
        ax.axhline(abs(float(np.mean(base[0]["current_a"]))), color="C0", ls="--",
                   label="baseline read (OFF)")
    ax.set_yscale("log")
    ax.set(xlabel="cycle", ylabel="|I| read (A)",
           title=_title(reader, f"ED7b endurance, {len(pts)} cycles"))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------- ED7d
def fig_unit_firing(reader: RunReader) -> Figure:
    """ED7d: input current of every pulse against pulse number, one line per amplitude, and
    the mean input current against amplitude with the firing threshold
    (``metrics.extract_unit_firing``) marked. The file holds charge per pulse, not spike
    times, so spikes per pulse are shown as what they add to the input current (unit-spikes
    counts them: ``fig_unit_spikes``)."""
    plt = _plt()
    steps = [d for d in _steps(reader, "pulses")
             if isinstance(d.info.loop_vars.get("amplitude_v"), (int, float))]
    steps.sort(key=lambda d: float(d.info.loop_vars["amplitude_v"]))
    fig, (ax_p, ax_a) = plt.subplots(1, 2, figsize=(12, 4.5))
    amps, means = [], []
    for color, data in zip(_colors(len(steps)), steps, strict=True):
        amp = float(data.info.loop_vars["amplitude_v"])
        i = data["current_a"]
        ax_p.plot(np.arange(1, i.size + 1), i * 1e6, "o-", ms=3, color=color, label=f"{amp:g} V")
        if i.size:
            amps.append(amp)
            means.append(float(np.mean(i)))
    ax_p.set(xlabel="pulse number", ylabel="input current per pulse (uA)",
             title=_title(reader, "ED7d unit firing"))
    if steps:
        ax_p.legend(fontsize=8, title="amplitude")
    ax_a.plot(amps, np.array(means) * 1e6, "o-", color="k", ms=4, label="mean per pulse")
    thr = next((m for m in metrics.extract_unit_firing(reader)
                if m.name == "firing_threshold"), None)
    if thr is not None and math.isfinite(thr.value):
        ax_a.axvline(thr.value, color="C3", lw=1.5, label=f"firing threshold {thr.value:g} V")
    ax_a.set(xlabel="input amplitude (V)", ylabel="input current (uA)",
             title="input current against amplitude")
    ax_a.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------- ED7d (counted)
def _marked_curve(reader: RunReader, found: list[metrics.Metric], *, metric: str, loop_var: str,
                  scale: float, gid: str, label: str, mark: str, mark_gid: str,
                  mark_label: str, xlabel: str, ylabel: str, panel: str) -> Figure:
    """One metric against a loop variable (a point per step, x ascending), with a vertical line
    at the run-level metric ``mark`` (a threshold or onset) labelled ``mark_label``."""
    plt = _plt()
    pts = sorted((float(m.loop_vars[loop_var]), m.value) for m in found
                 if m.name == metric and math.isfinite(m.value)
                 and isinstance(m.loop_vars.get(loop_var), (int, float)))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if pts:
        xs, ys = zip(*pts, strict=True)
        ax.plot(xs, np.array(ys) * scale, "o-", color="k", ms=5, gid=gid, label=label)
    at = next((m for m in found if m.name == mark), None)
    if at is not None and math.isfinite(at.value):
        ax.axvline(at.value, color="C3", lw=1.5, gid=mark_gid,
                   label=f"{mark_label} {at.value:.3g} V")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=_title(reader, panel))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def fig_unit_spikes(reader: RunReader) -> Figure:
    """ED7d: soma spikes per input pulse against pulse amplitude, as the frequency counter
    totalized them over each burst, with the firing threshold (spikes per pulse reaching 1,
    ``metrics.extract_unit_spikes``) marked."""
    return _marked_curve(
        reader, metrics.extract_unit_spikes(reader), metric="spikes_per_pulse",
        loop_var="amplitude_v", scale=1.0, gid="spikes_per_pulse",
        label="spikes per pulse (counted)", mark="firing_threshold", mark_gid="firing_threshold",
        mark_label="firing threshold", xlabel="input pulse amplitude (V)",
        ylabel="soma spikes per input pulse", panel="ED7d unit spikes")


def fig_unit_oscillation(reader: RunReader) -> Figure:
    """Unit oscillation: the counter's frequency of the soma's spikes against the DC input
    level (0 where the counter timed out), with the oscillation onset marked."""
    return _marked_curve(
        reader, metrics.extract_unit_oscillation(reader), metric="oscillation_frequency",
        loop_var="input_v", scale=1e-3, gid="frequency", label="soma spike frequency",
        mark="oscillation_onset", mark_gid="onset", mark_label="onset",
        xlabel="DC input level (V)", ylabel="oscillation frequency (kHz)",
        panel="unit oscillation f-V")


# ---------------------------------------------------------------------------- write-verify
def fig_write_verify(reader: RunReader) -> Figure:
    """Write-verify: conductance of every verify read against the number of programming pulses
    applied before it, one line per target, with each target and its tolerance band."""
    plt = _plt()
    steps = [d for d in _steps(reader, lambda s: True) if "pulse_v" in d.arrays]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for color, data in zip(_colors(len(steps)), steps, strict=True):
        v, i, pv = data["voltage_v"], data["current_a"], data["pulse_v"]
        ok = v != 0
        # pulse_v[k] is the pulse decided after read k (0: within tolerance, stop), so read k
        # comes after the non-zero pulses before it
        n = (np.cumsum(pv != 0) - (pv != 0))[ok]
        ax.plot(n, i[ok] / v[ok] * 1e6, "o-", ms=3, color=color, label=data.info.name)
        target, tol = data.info.params.get("target_s"), data.info.params.get("tol_rel", 0.05)
        if isinstance(target, (int, float)) and target > 0:
            ax.axhline(target * 1e6, color=color, ls="--", lw=1, gid=f"target:{target:g}")
            ax.axhspan(target * (1 - tol) * 1e6, target * (1 + tol) * 1e6, color=color,
                       alpha=0.15)
    ax.set(xlabel="programming pulses applied", ylabel="verify conductance (uS)",
           title=_title(reader, "write-verify"))
    if steps:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------- ED1a,b
def fig_pm_pulses(reader: RunReader) -> Figure:
    """ED1a,b: the read current after the excitatory (+V) train and after the inhibitory (-V)
    train against time since the read-out began, and after 10 excitatory pulses directly
    followed by 10 inhibitory ones, with the baseline read as a horizontal line; the ON/OFF
    ratio (``metrics.extract_pm_pulses``) in the title."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    base = _steps(reader, "baseline")
    if base and base[0]["current_a"].size:
        i0 = float(np.mean(np.abs(base[0]["current_a"])))
        ax.axhline(i0 * 1e6, color="0.4", ls="--", lw=1, gid="baseline", label="baseline read")
    curves = [(d, f"after {float(d.info.loop_vars['amplitude_v']):+g} V train")
              for d in _steps(reader, "response")
              if isinstance(d.info.loop_vars.get("amplitude_v"), (int, float))]
    curves += [(d, "after +V then -V pulses") for d in _steps(reader, "after_exc_then_inh")]
    for color, (data, lab) in zip(_colors(len(curves)), curves, strict=True):
        i = np.abs(data["current_a"])
        t = data.arrays.get("time_s")
        t = (t - t[0]) * 1e3 if t is not None and t.size else np.arange(i.size, dtype=float)
        ax.plot(t, i * 1e6, "o-", ms=3, color=color, label=lab)
    on_off = next((m for m in metrics.extract_pm_pulses(reader) if m.name == "on_off_ratio"),
                  None)
    extra = (f" (ON/OFF {on_off.value:.3g})" if on_off is not None and
             math.isfinite(on_off.value) else "")
    ax.set(xlabel="time since the read-out began (ms)", ylabel="|I| at the read voltage (uA)",
           title=_title(reader, "ED1a,b +/- pulses") + extra)
    if curves:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------- LTP / LTD
def fig_ltp_ltd(reader: RunReader) -> Figure:
    """Synapse LTP/LTD: the conductance read after every identical pulse, potentiation then
    depression on one pulse axis per cycle, with the fitted NeuroSim update curves and their
    labels (``metrics.fit_update``; NeuroSim's NL_LTP/NL_LTD, not the dendrite I-V NL)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    steps = [d for d in _steps(reader, lambda s: s in ("ltp", "ltd")) if "pulse_v" in d.arrays]
    cycles: dict[str, list[StepData]] = {}
    for data in steps:
        cycles.setdefault(data.info.name.rsplit("/", 1)[0], []).append(data)
    for color, (cycle, parts) in zip(_colors(len(cycles)), cycles.items(), strict=True):
        start = 0
        for data in parts:
            leaf = _leaf(data.info.name)
            g = metrics.read_conductance(data["voltage_v"], data["current_a"])
            n = start + np.arange(g.size)
            ax.plot(n, g * 1e6, "o", ms=2.5, color=color,
                    label=f"{cycle} {leaf}" if cycle != data.info.name else leaf)
            fit = metrics.fit_update(g if leaf == "ltp" else g[::-1])
            if fit.quality != metrics.FAILED:
                x = np.linspace(0.0, 1.0, 200)
                p = fit.params
                curve = p["g_start"] + (p["g_end"] - p["g_start"]) * metrics.update_curve(
                    x if leaf == "ltp" else 1 - x, p["c"])
                ax.plot(start + x * (g.size - 1), curve * 1e6, "-", lw=1.2, color=color,
                        gid=f"fit:{data.info.name}",
                        label=f"NL_{leaf.upper()} {p['nl']:+.2f}")
            start += g.size - 1
    ax.set(xlabel="pulse number", ylabel="conductance at the read voltage (uS)",
           title=_title(reader, "LTP/LTD (NeuroSim NL labels)"))
    if steps:
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


#: Figure builder for each built-in protocol (by ``protocol_name``).
FIGURES: dict[str, Callable[[RunReader], Figure]] = {
    "dendrite-amplitude-sweep": fig_amplitude_sweep,
    "dendrite-relaxation": fig_relaxation,
    "dendrite-iv": fig_dendrite_iv,
    "soma-iv": fig_soma_iv,
    "soma-on-state": fig_soma_iv,
    "dendrite-pm-pulses": fig_pm_pulses,
    "synapse-ltp-ltd": fig_ltp_ltd,
    "dendrite-integration": fig_integration,
    "dendrite-inhibition": fig_inhibition,
    "dendrite-endurance": fig_endurance,
    "unit-firing": fig_unit_firing,
    "unit-spikes": fig_unit_spikes,
    "unit-oscillation": fig_unit_oscillation,
    "synapse-write-verify": fig_write_verify,
}


def builder_for(protocol: str) -> Callable[[RunReader], Figure] | None:
    """The figure builder of a protocol: a built-in's (``FIGURES``) or a board run's
    (``network-infer`` / ``network-program``: ``analysis.board_plots.BOARD_FIGURES``)."""
    from analysis.board_plots import BOARD_FIGURES

    return FIGURES.get(protocol) or BOARD_FIGURES.get(protocol)


def figure_for(reader: RunReader) -> Figure | None:
    """The paper-style figure of this run's protocol, or None if it has no builder."""
    builder = builder_for(str(reader.attrs.get("protocol_name", "")))
    return builder(reader) if builder is not None else None

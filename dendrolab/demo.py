"""Physics demo: the paper's device behaviour from the simulator alone, as one figure.

It drives the physics models directly (no instruments) so a device scientist can check at a glance
that the simulated dendrite filters, integrates, relaxes and is inhibited, and that the soma and
the dendrite-soma unit fire as they should. It writes files only into ``out_dir``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

READ_V = 0.2
WIDTH_S = 100e-6


def _read_ratio(dendrite, w: np.ndarray) -> np.ndarray:
    """Read current at 0.2 V relative to the relaxed OFF state (noise free)."""
    return dendrite.current(READ_V, w) / dendrite.current(READ_V, np.zeros_like(w))


def run_physics_demo(out_dir: Path, preset: str = "li2020-original") -> Iterator[str]:
    """Run the demo; yields progress and result lines, writes ``physics.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sim_backend.physics.dendrite import DendriteArray
    from sim_backend.physics.presets import load_models
    from sim_backend.physics.soma import SomaArray, analytic_period, iv_sweep
    from sim_backend.physics.unit import DendriteSomaUnit
    from sim_backend.physics.waveform import concat, dc, pulse_train

    models = load_models(preset).without_noise()
    scale = models.dendrite.tau_r_s / 3e-3          # time axis of the preset, for the demo
    width, gap_std = WIDTH_S * scale, WIDTH_S * scale
    vscale = models.dendrite.v_plus_v / 0.5
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    yield f"preset {models.name}: {models.description}"
    fig, axes = plt.subplots(2, 3, figsize=(14, 8))

    # (a) amplitude filtering: 20 pulses at each amplitude, one device per amplitude.
    amps = np.linspace(1.0, 5.0, 41) * vscale
    d = DendriteArray(models.dendrite, len(amps))
    train = pulse_train(1.0, width, gap_std, 20)
    for k in range(train.n_segments):
        v, dt = train.segment(k)
        d.step(v * amps, dt)
    ratio = _read_ratio(d, d.w)
    ax = axes[0, 0]
    ax.plot(amps, ratio, "o-", ms=3)
    ax.set(xlabel="pulse amplitude (V)", ylabel="read ratio I/I_off after 20 pulses",
           title="Amplitude filtering (ED2a)")
    yield f"filtering: ratio after 20 pulses {ratio[0]:.2f} at {amps[0]:.1f} V, " \
          f"{ratio[-1]:.2f} at {amps[-1]:.1f} V"

    # (b) temporal integration: ratio vs pulse count for several gaps.
    ax = axes[0, 1]
    for gap in np.array([20e-6, 0.5e-3, 2e-3, 10e-3]) * scale:
        d = DendriteArray(models.dendrite, 1)
        w = d.run(pulse_train(5.0 * vscale, width, gap, 20), record=True)[0, 1::2]
        ax.plot(np.arange(1, 21), _read_ratio(d, w), "o-", ms=3, label=f"gap {gap * 1e3:g} ms")
    ax.set(xlabel="pulse number", ylabel="read ratio", title="Temporal integration (ED2b)")
    ax.legend(fontsize=8)

    # (c) relaxation after the standard train, and inhibition.
    ax = axes[0, 2]
    d = DendriteArray(models.dendrite, 1)
    d.run(pulse_train(5.0 * vscale, width, gap_std, 20))
    t = np.linspace(0, 20e-3 * scale, 200)
    w_relax = d.w[0] * np.exp(-t / models.dendrite.tau_r_s)
    ax.semilogy(t * 1e3, _read_ratio(d, w_relax), label="after 20 x 5 V")
    d2 = DendriteArray(models.dendrite, 1)
    d2.run(concat(pulse_train(5.0 * vscale, width, gap_std, 10),
                  pulse_train(-5.0 * vscale, width, gap_std, 10)))
    ax.axhline(float(_read_ratio(d2, d2.w)[0]), color="C3", ls="--",
               label="10 exc. + 10 inh. pulses")
    ax.set(xlabel="time after train (ms)", ylabel="read ratio", title="Relaxation, inhibition")
    ax.legend(fontsize=8)
    yield f"standard train: ratio {_read_ratio(d, d.w)[0]:.2f}; after inhibition " \
          f"{_read_ratio(d2, d2.w)[0]:.2f}; relaxation tau {models.dendrite.tau_r_s * 1e3:g} ms"

    # (d) soma threshold switching I-V with compliance.
    ax = axes[1, 0]
    soma = SomaArray(models.soma, 1)
    up = np.linspace(0, 2.0 * vscale, 81)
    sweep = np.concatenate([up, up[::-1]])
    _, i = iv_sweep(soma, sweep, 1e-3)
    ax.semilogy(sweep, np.abs(i[0]) + 1e-9, "-")
    ax.set(xlabel="source voltage (V)", ylabel="|I| (A)", title="Soma threshold switching (ED7c)")
    yield f"soma: V_th {models.soma.v_th_v:.2f} V > V_hold {models.soma.v_hold_v:.2f} V"

    # (e) soma oscillator f-V curve through R_s.
    ax = axes[1, 1]
    vin = np.linspace(1.0, 6.0, 101) * vscale
    period = analytic_period(vin, models.soma, models.circuit)
    ax.plot(vin, np.where(np.isfinite(period), 1 / period, 0) / 1e3)
    ax.set(xlabel="input voltage (V)", ylabel="spike rate (kHz)", title="Soma oscillator f-V")

    # (f) dendrite-soma unit: spikes per pulse vs amplitude.
    ax = axes[1, 2]
    amps_u = np.array([4.5, 5.0, 5.25, 5.5, 5.75, 6.0]) * vscale
    unit = DendriteSomaUnit(DendriteArray(models.dendrite, len(amps_u)),
                            SomaArray(models.soma, len(amps_u)), models.circuit)
    base = pulse_train(1.0, width, gap_std, 20)
    wave = concat(base, dc(0.0, 0.0))
    rec = unit.run(type(wave)(np.outer(amps_u, wave.v), wave.dt))
    counts = rec.counts[:, 0::2]
    for j, a in enumerate(amps_u):
        ax.plot(np.arange(1, 21), counts[j, :20], "o-", ms=3, label=f"{a:.2f} V")
    ax.set(xlabel="input pulse number", ylabel="soma spikes in pulse",
           title="Dendrite-soma unit (ED7d)")
    ax.legend(fontsize=8)
    totals = ", ".join(f"{a:.2f} V: {int(c)}" for a, c in zip(amps_u, rec.total(), strict=True))
    yield f"unit spikes over 20 pulses: {totals}"

    fig.tight_layout()
    path = out_dir / "physics.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    yield f"wrote {path}"


#: Built-in protocols the demo runs on the simulated bench, in order.
DEMO_PROTOCOLS = ("dendrite-amplitude-sweep", "dendrite-integration", "dendrite-inhibition",
                  "dendrite-relaxation", "dendrite-iv", "soma-iv", "soma-on-state", "unit-firing",
                  "unit-spikes", "unit-oscillation", "synapse-write-verify", "synapse-ltp-ltd")

#: Headline metrics the demo prints after analysing its runs: (protocol, metric, label, unit
#: shown, scale); the median over the run's rows of quality ok.
HEADLINES = (
    ("dendrite-relaxation", "on_off_ratio", "dendrite ON/OFF at read", "", 1.0),
    ("dendrite-relaxation", "relax_tau", "dendrite relaxation tau", "ms", 1e3),
    ("dendrite-iv", "branch_nl", "dendrite branch NL (network's a/(50+a))", "", 1.0),
    ("dendrite-amplitude-sweep", "amplitude_threshold", "dendrite amplitude threshold", "V", 1.0),
    ("soma-iv", "v_th", "soma V_th", "V", 1.0),
    ("soma-iv", "v_hold", "soma V_hold", "V", 1.0),
    ("soma-on-state", "r_on", "soma R_on", "kohm", 1e-3),
    ("unit-firing", "firing_threshold", "unit firing threshold (input current)", "V", 1.0),
    ("unit-spikes", "firing_threshold", "unit firing threshold (1 spike per pulse)", "V", 1.0),
    ("unit-oscillation", "oscillation_onset", "unit oscillation onset", "V", 1.0),
    ("synapse-ltp-ltd", "nl_ltp", "synapse NL_LTP (NeuroSim label)", "", 1.0),
    ("synapse-ltp-ltd", "nl_ltd", "synapse NL_LTD (NeuroSim label)", "", 1.0),
    ("synapse-ltp-ltd", "on_off", "synapse G_max/G_min", "", 1.0),
)


def headline_lines(metrics) -> list[str]:
    """One line per headline metric found in an analysis metrics table (median of ok rows)."""
    lines = []
    for protocol, metric, label, unit, scale in HEADLINES:
        rows = metrics[(metrics.protocol == protocol) & (metrics.metric == metric)
                       & (metrics.quality == "ok")]
        if len(rows):
            value = float(rows["value"].median()) * scale
            lines.append(f"  {label}: {value:.3g}{' ' + unit if unit else ''}")
    return lines


def run_bench_demo(out_dir: Path, bench: Path,
                   protocols: tuple[str, ...] = DEMO_PROTOCOLS) -> Iterator[str]:
    """Run real protocols through the bench into HDF5 run files, plot each, write report.md."""
    from analysis.plots import plot_run
    from analysis.runs import describe_run
    from protocols.runner import run_clock_s, run_protocol

    runs_dir = Path(out_dir) / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    report = ["# dendrolab demo report", "",
              f"Bench: `{bench}`. Each run is one HDF5 file; `dendrolab inspect FILE` shows it.",
              ""]
    for name in protocols:
        path = runs_dir / f"{name}.h5"
        path.unlink(missing_ok=True)
        wall0 = time.perf_counter()
        run_protocol(name, bench, path)
        wall_s = time.perf_counter() - wall0
        simulated_s = run_clock_s(path) or 0.0
        png = plot_run(path)
        summary = describe_run(path)
        status = next(x for x in summary if x.startswith("status")).split(";")[0].split()[-1]
        steps = next(x for x in summary if x.startswith("steps:"))
        yield (f"{name}: {status}, {steps}, {simulated_s:.3g} s of bench time in "
               f"{wall_s:.2f} s, {path}")
        report += [f"## {name}", "", f"![{name}]({png.relative_to(out_dir)})", "", "```",
                   *summary[:6], "```", ""]
    from analysis.report import run_analysis

    analysed = run_analysis([runs_dir], Path(out_dir) / "analysis")
    yield (f"analysed {analysed.runs} runs into {len(analysed.metrics)} metric rows: "
           f"{analysed.report}")
    heads = headline_lines(analysed.metrics)
    yield from heads
    report += ["## Analysis", "", f"Metrics, summary and the HTML report: "
               f"[{analysed.report.relative_to(out_dir)}]({analysed.report.relative_to(out_dir)})",
               "", *heads, ""]
    network = []
    for line in run_network_demo(Path(out_dir) / "network", analysed.metrics):
        network.append(line)
        yield line
    report += ["## Network from the measured devices", "", *network, ""]
    board = []
    for line in run_board_demo(Path(out_dir) / "board"):
        board.append(line)
        yield line
    report += ["## Hardware inference on the simulated board (docs/board.md)", "", *board, ""]
    board_png = Path(out_dir) / "board" / "network-infer.png"
    if board_png.is_file():
        report += [f"![board]({board_png.relative_to(out_dir)})", ""]
    report += ["## Device models alone", "", "![physics](physics.png)", ""]
    (Path(out_dir) / "report.md").write_text("\n".join(report))
    yield f"wrote {Path(out_dir) / 'report.md'}"


def run_network_demo(out_dir: Path, metrics) -> Iterator[str]:
    """The authors' network on the bundled digits: with dendrites (NL 0.1), linear (NL 0), and
    with the devices just measured (branch functions and synapse statistics from ``metrics``);
    accuracy and power advantage (``analysis.network.demo.demo_network``)."""
    from analysis.network.demo import demo_network

    res = demo_network(out_dir, seed=0, metrics=metrics)
    yield (f"network (digits, {res['settings']['n_hidden']} hidden, seed 0): test accuracy "
           f"{res['acc_dendrites']:.1%} with dendrites (NL 0.1), {res['acc_linear']:.1%} "
           f"without; power advantage {res['advantage']:.2f}x")
    if res["acc_device"] is not None:
        yield (f"network with the measured simulated devices: {res['acc_device']:.1%} "
               f"({res['acc_device_ideal_synapses']:.1%} with ideal synapses), power "
               f"advantage {res['advantage_device']:.2f}x over the linear network at the "
               f"measured dendrite ON/OFF {res['on_off_device']:.3g}")
        for line in res["device"]:
            yield f"  {line}"
    a = res["assumptions"]
    yield (f"power: our reconstruction of ED Fig 6's definition (V {a.v_applied_v:g} V, "
           f"dendrite ON/OFF {a.on_off:g}, I_on {a.i_on_a:g} A, {a.time_steps} x "
           f"{a.dt_s:g} s per image; every assumption in docs/network-power.md, "
           f"`dendrolab network sweep --assume KEY=VALUE` changes them)")
    yield f"wrote {res['model']} ({res['seconds']:.1f} s of training)"


#: Test images the demo runs through the simulated board (the whole set: `network infer`).
BOARD_DEMO_IMAGES = 30


def run_board_demo(out_dir: Path, images: int = BOARD_DEMO_IMAGES) -> Iterator[str]:
    """The paper's central experiment on the packaged simulated board: a MATLAB-variant
    64-32-10 digits network trained, written onto the board's 1T1R arrays by write-verify, and
    ``images`` test digits run through arrays, dendrites and somas into one run file; then the
    closed loop against the software mirror of the same board."""
    from analysis.network.board_runs import PAPER_INFERENCE_S, closed_loop, read_board_run
    from analysis.network.data import load_digits
    from analysis.network.layout import digits_layout
    from analysis.network.model import NetConfig
    from analysis.network.modelfile import save_model
    from analysis.network.train import train
    from protocols import board_run as br

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    roles = Path(__file__).resolve().parent / "benches" / "board-sim.yaml"
    wall0 = time.perf_counter()
    cfg = NetConfig(digits_layout(), 32, variant="matlab")
    res = train(cfg, load_digits(seed=0), epochs=300, lr=0.1, batch=32, seed=0,
                clamp_grad="pass")
    model = save_model(out_dir / "board-model.npz", res.params, cfg, seed=0)
    path = out_dir / "network-infer.h5"
    path.unlink(missing_ok=True)
    br.run(br.prepare(br.INFER, model, roles, limit=images), path)
    from analysis.plots import plot_run

    plot_run(path)
    run = read_board_run(path)
    loop = closed_loop(run)
    s = run.summary
    assert s is not None
    yield (f"board 64-32-10 (7 arrays, {run.cells} cells, {run.failed_cells} stuck, their "
           f"known errors corrected by the host): {len(run.images)} test digits, accuracy "
           f"{loop.board_accuracy:.1%} "
           f"(software network {loop.software_accuracy:.1%}); the software mirror with the "
           f"board's read-back conductances and calibrations agrees on {loop.agreement:.1%}")
    yield (f"per image: {sum(s['energy_j'].values()):.3g} J in the devices, "
           f"{s['duration_s'] * 1e3:.0f} ms on the bench clock (the paper: {PAPER_INFERENCE_S} "
           f"for the optimised unit); {path} in {time.perf_counter() - wall0:.0f} s")

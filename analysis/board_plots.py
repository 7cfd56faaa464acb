"""The figure of a board run (``dendrolab plot RUN.h5`` for ``network-infer`` and
``network-program`` runs, and the "Hardware inference" section of ``dendrolab analyze``).

Why these panels: an inference run is judged by what the board decided (confusion matrix,
accuracy as the images went by), what it cost (energy per image by part: array reads, dendrite
pulses, soma pulses) and whether the devices behaved as the network assumed -- each dendrite's
calibrated response r(u) against the branch function F_a fitted to it and the authors' NL = 0.1
curve, each soma's I(V) ladder with the threshold the host found, and the read-back
conductances against their targets (failed cells marked). A programming run shows the map alone:
read-back against target, the relative error, and where the failed cells sit in each array.

Builders take a ``RunReader`` (the ``analysis.figures.FIGURES`` contract) and return a matplotlib
``Figure`` on the Agg backend without saving it; no mathtext (plain log tick labels).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from analysis.board_report import ProgramMap, program_map
from protocols.runfile_reader import RunReader

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: The authors' dendrite nonlinearity, drawn on every r(u) panel: F_a with a = 50 NL/(1 - NL).
AUTHORS_NL = 0.1
ENERGY_LABELS = ("array reads", "dendrite pulses", "soma pulses")


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plain_log(ax: Any, axis: str = "y") -> None:
    """A log axis with "1e-06" labels (mathtext labels cost more than the rest of a plot)."""
    from matplotlib import ticker

    getattr(ax, f"set_{axis}scale")("log")
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(ticker.LogFormatter())
    target.set_minor_formatter(ticker.NullFormatter())


def _title(run: Any) -> str:
    from pathlib import Path

    model = Path(str(run.attrs.get("model_path", ""))).name
    return f"{run.kind}: {Path(run.path).name} (model {model})"


# ---------------------------------------------------------------------------- panels
def _scatter(ax: Any, pm: ProgramMap) -> None:
    """Read-back conductance against target, failed cells marked."""
    ok = pm.converged & np.isfinite(pm.readback_s)
    bad = pm.failed & np.isfinite(pm.readback_s)
    t, g = pm.target_s * 1e6, pm.readback_s * 1e6
    ax.plot(t[ok], g[ok], ".", ms=2, alpha=0.5, label=f"converged ({int(ok.sum())})")
    ax.plot(t[bad], g[bad], "x", color="tab:red", ms=5,
            label=f"failed to converge ({int(pm.failed.sum())})")
    fin = np.concatenate([t[np.isfinite(t)], g[np.isfinite(g)]])
    if fin.size:
        lo, hi = float(fin.min()), float(fin.max())
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="read-back = target")
    ax.set(xlabel="target conductance (µS)", ylabel="read-back conductance (µS)",
           title=f"read-back vs target, {pm.cells} cells")
    ax.legend(fontsize=7, loc="upper left")


def _error_hist(ax: Any, pm: ProgramMap, tol: float | None) -> None:
    err = pm.rel_error
    err = err[np.isfinite(err)]
    if not err.size:
        ax.text(0.5, 0.5, "no read-back yet", ha="center", transform=ax.transAxes)
        return
    pos = np.maximum(err, 1e-5)
    bins = np.geomspace(max(pos.min(), 1e-5), max(pos.max(), 1e-4) * 1.01, 40)
    ax.hist(pos[~pm.failed[np.isfinite(pm.rel_error)]], bins=bins, alpha=0.7, label="converged")
    ax.hist(pos[pm.failed[np.isfinite(pm.rel_error)]], bins=bins, alpha=0.8, color="tab:red",
            label="failed")
    _plain_log(ax, "x")
    if tol is not None:
        ax.axvline(tol, color="k", ls="--", lw=0.8, label=f"verify tolerance {tol:g}")
    ax.set(xlabel="|read-back - target| / target", ylabel="cells",
           title=f"relative error: median {np.median(err):.3g}")
    ax.legend(fontsize=7)


def _failed_map(ax: Any, pm: ProgramMap, board: Any, layer: int) -> None:
    """One layer's arrays stacked (branch by branch): relative error per cell, failed cells
    marked with a red x; white lines between arrays."""
    arrays = board.layers[layer].arrays
    offsets = np.cumsum([0, *(a.n_rows for a in arrays)])
    grid = np.full((int(offsets[-1]), max(a.n_cols for a in arrays)), np.nan)
    sel = pm.layer == layer
    rows = offsets[pm.branch[sel]] + pm.row[sel]
    grid[rows, pm.column[sel]] = pm.rel_error[sel]
    good = pm.rel_error[sel & pm.converged]
    good = good[np.isfinite(good)]
    top = max(float(np.percentile(good, 99)) * 100 if good.size else 1.0, 1e-3)
    im = ax.imshow(grid * 100, aspect="auto", cmap="viridis", vmin=0, vmax=top,
                   interpolation="nearest")
    bad = sel & pm.failed
    ax.plot(pm.column[bad], offsets[pm.branch[bad]] + pm.row[bad], "x", color="tab:red", ms=5,
            mew=1.5)
    for off in offsets[1:-1]:
        ax.axhline(off - 0.5, color="w", lw=1.5)
    ax.set_yticks(list((offsets[:-1] + offsets[1:] - 1) / 2),
                  [f"array {b + 1}" for b in range(len(arrays))], fontsize=7)
    ax.set(xlabel="column (G+ even, G- odd)",
           title=f"layer {layer + 1}: {int(bad.sum())} failed cell(s) (x)")
    cb = ax.figure.colorbar(im, ax=ax, fraction=0.04)
    cb.set_label("relative error (%), capped at the 99th percentile of converged cells",
                 fontsize=6)


def _confusion(ax: Any, conf: np.ndarray, accuracy: float) -> None:
    n = conf.shape[0]
    ax.imshow(conf, cmap="Blues", interpolation="nearest")
    top = conf.max() if conf.size else 0
    for i in range(n):
        for j in range(n):
            if conf[i, j]:
                ax.text(j, i, str(int(conf[i, j])), ha="center", va="center", fontsize=7,
                        color="w" if conf[i, j] > top / 2 else "k")
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set(xlabel="predicted", ylabel="true label",
           title=f"confusion, accuracy {100 * accuracy:.1f} % ({int(conf.sum())} images)")


def _energy(ax: Any, energy: np.ndarray) -> None:
    data = [energy[:, k] for k in range(energy.shape[1])] + [energy.sum(axis=1)]
    data = [np.where(d > 0, d, np.nan) for d in data]
    ax.boxplot([d[np.isfinite(d)] for d in data], showfliers=True)
    ax.set_xticks(range(1, len(data) + 1), [*ENERGY_LABELS, "total"], fontsize=8)
    _plain_log(ax, "y")
    ax.set(ylabel="energy per image (J)",
           title=f"energy per image: mean total {np.nanmean(data[-1]):.3g} J")


def _running(ax: Any, images: Any, loop: Any) -> None:
    correct = (images["label"].to_numpy() == images["predicted"].to_numpy()).astype(float)
    n = np.arange(1, correct.size + 1)
    running = np.cumsum(correct) / n
    ax.plot(n, 100 * running, "-", label="board (running)")
    if loop is not None:
        ax.axhline(100 * loop.mirror_accuracy, color="tab:orange", ls="--", lw=1,
                   label=f"software mirror {100 * loop.mirror_accuracy:.1f} % "
                         f"(agrees on {100 * loop.agreement:.1f} %)")
        ax.axhline(100 * loop.software_accuracy, color="tab:green", ls=":", lw=1.2,
                   label=f"ideal software {100 * loop.software_accuracy:.1f} %")
    ax.set(xlabel="image", ylabel="accuracy (%)", ylim=(0, 102),
           title=f"running accuracy: {100 * running[-1]:.1f} % after {correct.size}")
    ax.legend(fontsize=7, loc="lower right")


def _dendrites(ax: Any, cal: Any) -> None:
    from analysis.metrics import branch_function
    from analysis.network.board_mirror import fit_branch_a

    u = np.linspace(0, 1, 101)
    a_authors = 50 * AUTHORS_NL / (1 - AUTHORS_NL)
    ax.plot(u, branch_function(u, a_authors), "k-", lw=2.2, alpha=0.35,
            label=f"authors' NL {AUTHORS_NL:g} (a = {a_authors:.3g})")
    colors = _plt().get_cmap("tab10")
    n = 0
    for k, layer in enumerate(cal.dendrites):
        for b, lad in enumerate(layer):
            full = float(abs(lad.current(1.0)))
            if not full > 0:
                continue
            r = np.abs(lad.i_a) / full
            try:
                a = fit_branch_a(lad.x, r)
            except ValueError:
                a = math.nan
            c = colors(n % 10)
            ax.plot(lad.x, r, "o", ms=2.5, color=c,
                    label=f"L{k + 1} branch {b + 1}: fitted a = {a:.3g}")
            if math.isfinite(a):
                ax.plot(u, branch_function(u, a), "-", lw=0.8, color=c)
            n += 1
    ax.set(xlabel="drive u (fraction of dendrite v_max)", ylabel="r = I(u) / I(1)",
           title="dendrite calibration: r(u) and fitted F_a")
    ax.legend(fontsize=6, loc="upper left")


def _somas(ax: Any, cal: Any, i_full_a: float) -> None:
    colors = _plt().get_cmap("tab10")
    n = 0
    for k, layer in enumerate(cal.somas):
        for s, lad in enumerate(layer):
            c = colors(n % 10)
            v_th, i_on = cal.soma_fire(k, s, i_full_a)
            label = (f"L{k + 1} soma {s + 1}: V_th {v_th:.2f} V" if math.isfinite(v_th)
                     else f"L{k + 1} soma {s + 1}: never fires")
            ax.plot(lad.x, np.abs(lad.i_a) * 1e3, "-", lw=0.9, color=c, label=label)
            if math.isfinite(v_th):
                ax.plot([v_th], [i_on * 1e3], "o", color=c, ms=4)
                ax.axvline(v_th, color=c, ls=":", lw=0.6)
            n += 1
    ax.set(xlabel="soma drive (V)", ylabel="|I| (mA)",
           title="soma ladders I(V), thresholds (o)")
    ax.legend(fontsize=6, loc="upper left", ncol=1 if n <= 8 else 2)


# ---------------------------------------------------------------------------- figures
def fig_board_program(reader: RunReader) -> Figure:
    """A programming run: read-back vs target, relative error histogram, failed-cell maps."""
    from analysis.network.board_runs import read_board_run

    plt = _plt()
    run = read_board_run(reader.path)
    pm = program_map(reader)
    fig, axes = plt.subplots(2, 2, figsize=(13, 9.5))
    _scatter(axes[0, 0], pm)
    _error_hist(axes[0, 1], pm, run.board.program.get("tol_rel"))
    for k in range(2):
        _failed_map(axes[1, k], pm, run.board, k)
    fig.suptitle(_title(run), fontsize=10)
    fig.tight_layout()
    return fig


def fig_board_infer(reader: RunReader) -> Figure:
    """An inference run: confusion, energy by part, running accuracy, dendrite and soma
    calibration, read-back vs target."""
    from analysis.network.board_runs import closed_loop, read_board_run
    from dendrolab.errors import DendrolabError

    plt = _plt()
    run = read_board_run(reader.path)
    pm = program_map(reader)
    fig, axes = plt.subplots(2, 3, figsize=(18, 10))
    images = run.images
    if run.summary is not None:
        conf, acc = run.summary["confusion"], run.summary["accuracy"]
    elif not images.empty:
        n_out = run.board.outputs
        conf = np.zeros((n_out, n_out), dtype=int)
        np.add.at(conf, (images["label"].to_numpy(), images["predicted"].to_numpy()), 1)
        acc = float(np.mean(images["label"] == images["predicted"]))
    else:
        conf, acc = None, math.nan
    empty = "no images in this run yet"
    if conf is not None:
        _confusion(axes[0, 0], np.asarray(conf), acc)
    if not images.empty:
        _energy(axes[0, 1], np.stack(images["energy_j"].to_numpy()))
        try:
            loop = closed_loop(run)
        except (DendrolabError, OSError):
            loop = None   # the model file is gone: the board's own curve still stands
        _running(axes[0, 2], images, loop)
    else:
        for ax in axes[0]:
            ax.text(0.5, 0.5, empty, ha="center", transform=ax.transAxes)
    if run.calibration is not None:
        _dendrites(axes[1, 0], run.calibration)
        _somas(axes[1, 1], run.calibration, float(run.board.soma["i_full_a"]))
    else:
        for ax in axes[1, :2]:
            ax.text(0.5, 0.5, "no calibration in this run yet", ha="center",
                    transform=ax.transAxes)
    _scatter(axes[1, 2], pm)
    fig.suptitle(_title(run), fontsize=10)
    fig.tight_layout()
    return fig


#: Builders by ``protocol_name`` (registered in ``analysis.figures.FIGURES``).
BOARD_FIGURES = {"network-infer": fig_board_infer, "network-program": fig_board_program}

__all__ = ["BOARD_FIGURES", "fig_board_infer", "fig_board_program"]

"""Plots of run files: one PNG per run, showing what its protocol measured.

Built-in protocols get their paper-style figure (``analysis.figures``); any other protocol gets
the generic plot below (mean |I| per read step and every sweep). Reads run files only (through
``protocols.runfile_reader`` / ``analysis.runs``); never touches instruments.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from analysis.runs import load_steps


def _is_sweep(arrays: dict[str, np.ndarray]) -> bool:
    v = arrays.get("voltage_v")
    return v is not None and v.size > 3 and np.ptp(v) > 1e-9


def _is_iv(arrays: dict[str, np.ndarray]) -> bool:
    """A staircase over many levels is an I-V; a few held levels (switch, read) is a transient."""
    v = arrays["voltage_v"]
    return np.unique(np.round(v, 9)).size > max(3, v.size // 4)


def plot_run(path: str | Path, png: str | Path | None = None) -> Path:
    """Write a PNG (default: the run file's name with ``.png``) and return its path: the
    protocol's paper-style figure if it has one, else the generic plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from analysis.figures import figure_for
    from protocols.runfile_reader import RunReader

    path = Path(path)
    out = Path(png) if png is not None else path.with_suffix(".png")
    with RunReader(path) as reader:
        fig = figure_for(reader)
    if fig is not None:
        fig.savefig(out, dpi=100)
        plt.close(fig)
        return out
    return _plot_generic(path, out)


def _plot_generic(path: Path, out: Path) -> Path:
    """Reads in run order (mean current per read step) and every sweep's I-V."""
    import matplotlib.pyplot as plt

    attrs, steps = load_steps(path)
    reads = [(name, a) for name, a in steps if not _is_sweep(a) and a["current_a"].size]
    sweeps = [(name, a) for name, a in steps if _is_sweep(a)]
    panels = int(bool(reads)) + int(bool(sweeps)) or 1
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 4.5), squeeze=False)
    axes = list(axes[0])
    title = f"{attrs.get('protocol_name', path.stem)} ({attrs.get('figure', '')})"
    if reads:
        ax = axes.pop(0)
        i = np.array([np.mean(np.abs(a["current_a"])) for _, a in reads])
        ax.semilogy(np.arange(len(i)), i, "o-", ms=3)
        ax.set(xlabel="read step (run order)", ylabel="|I| mean (A)", title=title)
        if len(reads) <= 12:
            ax.set_xticks(range(len(reads)), [n.rsplit("/", 1)[-1] for n, _ in reads],
                          rotation=45, ha="right", fontsize=7)
    if sweeps:
        ax = axes.pop(0)
        iv = all(_is_iv(a) for _, a in sweeps)
        for name, a in sweeps[:24]:
            x = a["voltage_v"] if iv else a["time_s"] - a["time_s"][0]
            ax.plot(x, np.abs(a["current_a"]) + 1e-15, ".-", ms=2, lw=0.8,
                    label=name if len(sweeps) <= 8 else None)
        ax.set_yscale("log")
        ax.set(xlabel="V (V)" if iv else "time in sweep (s)", ylabel="|I| (A)",
               title=f"{title}: {'I-V sweeps' if iv else 'hardware-timed transients'}")
        if len(sweeps) <= 8:
            ax.legend(fontsize=7)
    if not steps:
        axes[0].text(0.5, 0.5, "no measured data in this run", ha="center")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out

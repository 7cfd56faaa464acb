"""Extended Data Fig 6 sweeps: power advantage and accuracy against the dendrite nonlinearity.

Why jobs: a sweep over NL x ON/OFF x V_applied x seed is many independent trainings. Training
does not depend on ON/OFF or V (they are properties of the hardware the trained network runs on,
``analysis.network.power``), so one job = one (NL, seed): it trains that network once and
evaluates its power at every (ON/OFF, V) on the test set. The jobs go through
``analysis.parallel.map_jobs`` (a local thread pool by default, dask processes or a
``tcp://host:port`` cluster), and every job seeds everything from its own description, so the
table is identical whichever scheduler ran it.

The advantage of a network at (NL, seed) is the energy of the NL = 0 network trained with the
same seed (the reference "without dendrites", under ``PowerAssumptions.reference()``) over its
own energy, both at the same (ON/OFF, V) and on the same test images. The NL = 0 job always runs,
even if NL = 0 is not in the requested grid.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from analysis.network.power import PowerAssumptions, operating_power
from dendrolab.errors import ParameterError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

COLUMNS = ["nl", "on_off", "v_applied", "seed", "accuracy", "val_accuracy",
           "operating_accuracy", "energy_with_j", "energy_without_j", "advantage",
           "hidden_share", "train_seconds"]

#: ED Fig 6 panels (caption, notes §1.10): a) ON/OFF 10 and 100 at 5 V; b) several V at
#: ON/OFF 10; c) 2 V and ON/OFF 100; d) accuracy.
PANEL_A_V, PANEL_A_ON_OFFS = 5.0, (10.0, 100.0)
PANEL_B_ON_OFF = 10.0
PANEL_C = (2.0, 100.0)
FIGURE_NAMES = ("ed6a_advantage_on_off.png", "ed6b_advantage_voltage.png",
                "ed6c_advantage_2v_on_off_100.png", "ed6d_accuracy.png")


#: Training settings per variant that train digits in seconds (our choice, docs/network-power.md):
#: the MATLAB normalisation divides only by maxima above 1, so it wants N(0, 1) weights; the
#: PyTorch one is scale-free and trains at a small rate from N(0, 0.1^2).
VARIANT_TRAINING: dict[str, dict[str, float]] = {
    "matlab": {"lr": 0.1, "init_scale": 1.0},
    "pytorch": {"lr": 0.005, "init_scale": 0.1},
}


@dataclass(frozen=True)
class SweepSpec:
    """The grid and how each network is trained. Picklable (jobs carry it to workers).

    ``base``: every power assumption except ON/OFF and V, which the grid sets. Training
    defaults are small (a quick digits sweep); raise ``n_hidden``/``epochs`` for real figures.
    """

    nls: tuple[float, ...] = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3)
    on_offs: tuple[float, ...] = (10.0, 100.0)
    voltages: tuple[float, ...] = (2.0, 3.0, 4.0, 5.0)
    seeds: tuple[int, ...] = (0,)
    dataset: str = "digits"
    svhn_dir: str | None = None
    limit: int | None = None
    data_seed: int = 0
    n_hidden: int = 100
    variant: str = "matlab"
    theta: float = 0.11
    epochs: int = 40
    lr: float = 0.1
    batch: int = 32
    init_scale: float = 1.0
    clamp_grad: str = "exact"
    base: PowerAssumptions = field(default_factory=PowerAssumptions)

    def __post_init__(self) -> None:
        for name in ("nls", "on_offs", "voltages", "seeds"):
            values = tuple(getattr(self, name))
            if not values:
                raise ParameterError(f"the sweep needs at least one value in {name}")
            if len(set(values)) != len(values):
                raise ParameterError(f"{name} has repeated values: {values}")
            object.__setattr__(self, name, values)
        for nl in self.nls:
            if not 0.0 <= nl < 1.0:
                raise ParameterError(f"NL must be in [0, 1), got {nl}")
        for r in self.on_offs:  # validated by the assumptions themselves
            self.base.with_(on_off=r)
        for v in self.voltages:
            self.base.with_(v_applied_v=v)
        if any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) for s in self.seeds):
            raise ParameterError(f"seeds must be integers, got {self.seeds}")
        if self.clamp_grad not in ("exact", "pass"):
            raise ParameterError(f"clamp_grad must be exact or pass, got {self.clamp_grad!r}")
        if self.n_hidden < 1 or self.epochs < 1:
            raise ParameterError(f"need n_hidden >= 1 and epochs >= 1, got {self.n_hidden}, "
                                 f"{self.epochs}")

    @classmethod
    def for_variant(cls, variant: str = "matlab", **changes: Any) -> SweepSpec:
        """A spec whose ``lr``/``init_scale`` default to ``VARIANT_TRAINING[variant]``."""
        if variant not in VARIANT_TRAINING:
            raise ParameterError(f"variant must be one of {', '.join(VARIANT_TRAINING)}, "
                                 f"got {variant!r}")
        given = {k: v for k, v in changes.items() if v is not None}
        return cls(variant=variant, **{**VARIANT_TRAINING[variant], **given})

    def jobs(self) -> list[SweepJob]:
        """One job per (NL, seed), NL = 0 first (the reference); NL = 0 added if missing."""
        nls = sorted({0.0, *self.nls})
        return [SweepJob(self, float(nl), int(seed)) for nl in nls for seed in self.seeds]

    def points(self) -> int:
        """Rows of the result table: NL x ON/OFF x V x seeds."""
        return len(self.nls) * len(self.on_offs) * len(self.voltages) * len(self.seeds)

    def describe(self) -> list[str]:
        return [f"Sweep: NL {list(self.nls)} x ON/OFF {list(self.on_offs)} x V "
                f"{list(self.voltages)} x seeds {list(self.seeds)} "
                f"({len(self.jobs())} trainings, {self.points()} points)",
                f"  data {self.dataset} (split seed {self.data_seed}), "
                f"{self.n_hidden} hidden, {self.variant} variant, theta {self.theta:g}; "
                f"{self.epochs} epochs, lr {self.lr:g}, batch {self.batch}, "
                f"init scale {self.init_scale:g}, clamp gradient {self.clamp_grad}",
                "  reference (without dendrites): the NL = 0 network trained with the same seed"]


@dataclass(frozen=True)
class SweepJob:
    """One training: the network at ``nl`` from ``seed``, evaluated at every (ON/OFF, V)."""

    spec: SweepSpec
    nl: float
    seed: int


@functools.lru_cache(maxsize=2)
def _dataset(name: str, svhn_dir: str | None, seed: int, limit: int | None) -> Any:
    from analysis.network.data import load_dataset

    return load_dataset(name, svhn_dir=svhn_dir, seed=seed, limit=limit)


def train_network(spec: SweepSpec, nl: float, seed: int,
                  progress: Callable[[int, int], Any] | None = None) -> tuple[Any, Any, Any]:
    """(TrainResult, NetConfig, Dataset): the network at ``nl`` trained from ``seed`` as the
    sweep trains it (``spec``'s data set, size and training settings)."""
    from analysis.network.model import NetConfig
    from analysis.network.train import train

    data = _dataset(spec.dataset, spec.svhn_dir, spec.data_seed, spec.limit)
    cfg = NetConfig(data.layout, spec.n_hidden, nl=nl, theta=spec.theta, variant=spec.variant)
    result = train(cfg, data, epochs=spec.epochs, lr=spec.lr, batch=spec.batch, seed=seed,
                   init_scale=spec.init_scale, progress=progress, clamp_grad=spec.clamp_grad)
    return result, cfg, data


def run_job(job: SweepJob) -> dict[str, Any]:
    """Train one network and evaluate its power at every (ON/OFF, V): plain picklable values.

    Returns accuracies and, per (ON/OFF, V), the energy per image with dendrites (its own
    assumptions), as a reference (``assumptions.reference()``, used when NL = 0), the share of
    the hidden layer in it and the accuracy at that operating point.
    """
    spec = job.spec
    result, cfg, data = train_network(spec, job.nl, job.seed)
    points = []
    for r in spec.on_offs:
        for v in spec.voltages:
            assumptions = spec.base.with_(on_off=r, v_applied_v=v)
            own = operating_power(result.params, data.x_test, cfg, assumptions)
            point = {"on_off": r, "v_applied": v, "energy_j": own.mean_energy_j,
                     "hidden_share": _share(own),
                     "operating_accuracy": own.accuracy(data.y_test)}
            if job.nl == 0.0:
                ref = operating_power(result.params, data.x_test, cfg, assumptions.reference())
                point["reference_energy_j"] = ref.mean_energy_j
            points.append(point)
    return {"nl": job.nl, "seed": job.seed, "accuracy": result.test_acc,
            "val_accuracy": result.val_acc, "train_seconds": result.seconds, "points": points}


def _share(power: Any) -> float:
    total = power.mean_energy_j
    if total == 0.0:
        return math.nan
    hidden = power.layer("hidden")
    part = float(np.mean(hidden.soma_energy_j))
    if power.assumptions.count_dendrites:
        part += float(np.mean(hidden.dendrite_energy_j))
    return part / total


def assemble(spec: SweepSpec, results: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The tidy table (``COLUMNS``) from job results: one row per NL x ON/OFF x V x seed."""
    reference = {(res["seed"], p["on_off"], p["v_applied"]): p["reference_energy_j"]
                 for res in results if res["nl"] == 0.0 for p in res["points"]}
    wanted = set(spec.nls)
    rows = []
    for res in results:
        if res["nl"] not in wanted:
            continue
        for p in res["points"]:
            e_without = reference[(res["seed"], p["on_off"], p["v_applied"])]
            e_with = p["energy_j"]
            if e_with > 0:
                adv = e_without / e_with
            else:
                adv = math.inf if e_without > 0 else math.nan
            rows.append({"nl": res["nl"], "on_off": p["on_off"], "v_applied": p["v_applied"],
                         "seed": res["seed"], "accuracy": res["accuracy"],
                         "val_accuracy": res["val_accuracy"],
                         "operating_accuracy": p["operating_accuracy"],
                         "energy_with_j": e_with, "energy_without_j": e_without,
                         "advantage": adv, "hidden_share": p["hidden_share"],
                         "train_seconds": res["train_seconds"]})
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.sort_values(["nl", "on_off", "v_applied", "seed"], kind="stable") \
        .reset_index(drop=True)


def run_sweep(spec: SweepSpec, *, scheduler: str | None = None, workers: int | None = None,
              progress: Callable[[int, int], Any] | None = None) -> pd.DataFrame:
    """Run every job of ``spec`` through ``map_jobs`` and return the tidy table.

    ``scheduler``: None (local threads), ``"sync"``, ``"processes"`` or ``"tcp://host:port"``
    (see ``analysis.parallel.map_jobs``). ``progress(done, total)`` counts finished trainings.
    """
    from analysis.parallel import map_jobs

    results = map_jobs(run_job, spec.jobs(), scheduler=scheduler, workers=workers,
                       progress=progress)
    return assemble(spec, results)


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds per (NL, ON/OFF, V)."""
    keys = ["nl", "on_off", "v_applied"]
    values = ["advantage", "accuracy", "operating_accuracy", "energy_with_j",
              "energy_without_j"]
    grouped = frame.groupby(keys)[values]
    out = grouped.mean().join(grouped.std(ddof=0).add_suffix("_std"))
    out["seeds"] = frame.groupby(keys).size()
    return out.reset_index()


def _fmt(values: pd.Series) -> str:
    return ", ".join(f"{nl:g}: {v:.3g}" for nl, v in values.items())


def ed6_lines(frame: pd.DataFrame, *, panel_a_v: float = PANEL_A_V,
              panel_a_on_offs: Sequence[float] = PANEL_A_ON_OFFS,
              panel_b_on_off: float = PANEL_B_ON_OFF,
              panel_c: tuple[float, float] = PANEL_C) -> list[str]:
    """The ED Fig 6 numbers as printable lines: advantage per NL (mean over seeds) for each
    panel's operating points, then accuracy per NL. Missing operating points are skipped."""
    lines = []
    for r in panel_a_on_offs:
        part = _select(frame, r, panel_a_v)
        if not part.empty:
            lines.append(f"ED6a advantage at {panel_a_v:g} V, ON/OFF {r:g} (NL: value): "
                         f"{_fmt(part.groupby('nl')['advantage'].mean())}")
    for v in sorted(frame["v_applied"].unique()):
        part = _select(frame, panel_b_on_off, v)
        if not part.empty:
            lines.append(f"ED6b advantage at ON/OFF {panel_b_on_off:g}, {v:g} V: "
                         f"{_fmt(part.groupby('nl')['advantage'].mean())}")
    part = _select(frame, panel_c[1], panel_c[0])
    if not part.empty:
        lines.append(f"ED6c advantage at {panel_c[0]:g} V, ON/OFF {panel_c[1]:g}: "
                     f"{_fmt(part.groupby('nl')['advantage'].mean())}")
    per_net = frame.drop_duplicates(["nl", "seed"])
    lines.append(f"ED6d test accuracy of the trained networks: "
                 f"{_fmt(per_net.groupby('nl')['accuracy'].mean())}")
    return lines


# ------------------------------------------------------------------------- figures
def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _select(frame: pd.DataFrame, on_off: float | None, v: float | None) -> pd.DataFrame:
    mask = np.ones(len(frame), dtype=bool)
    if on_off is not None:
        mask &= np.array([_close(r, on_off) for r in frame["on_off"]], dtype=bool)
    if v is not None:
        mask &= np.array([_close(x, v) for x in frame["v_applied"]], dtype=bool)
    return frame[mask]


def _curve(ax: Any, part: pd.DataFrame, column: str, label: str) -> bool:
    if part.empty:
        return False
    g = part.groupby("nl")[column]
    mean, std = g.mean(), g.std(ddof=0).fillna(0.0)
    ax.errorbar(mean.index, mean.to_numpy(), yerr=std.to_numpy(), marker="o", capsize=3,
                label=label)
    return True


def _advantage_axes(ax: Any, title: str, drew: bool, missing: str) -> None:
    ax.set_xlabel("dendrite nonlinearity NL")
    ax.set_ylabel("power advantage (without / with dendrites)")
    ax.set_title(title)
    if drew:
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.legend()
    else:
        ax.text(0.5, 0.5, f"not in this sweep: {missing}", ha="center", va="center",
                transform=ax.transAxes)


def ed6_figures(frame: pd.DataFrame, *, panel_a_v: float = PANEL_A_V,
                panel_a_on_offs: Sequence[float] = PANEL_A_ON_OFFS,
                panel_b_on_off: float = PANEL_B_ON_OFF,
                panel_c: tuple[float, float] = PANEL_C) -> dict[str, Figure]:
    """The four ED Fig 6 panels as matplotlib Figures, keyed by ``FIGURE_NAMES``.

    Points are means over seeds, error bars their standard deviation. A panel whose (ON/OFF, V)
    is not in the sweep says so instead of drawing.
    """
    plt = _plt()
    figs: dict[str, Figure] = {}
    fig, ax = plt.subplots(figsize=(5.5, 4))
    drew = False
    for r in panel_a_on_offs:
        drew |= _curve(ax, _select(frame, r, panel_a_v), "advantage", f"ON/OFF {r:g}")
    _advantage_axes(ax, f"ED6a: V_applied = {panel_a_v:g} V", drew,
                    f"V = {panel_a_v:g} with ON/OFF {', '.join(f'{r:g}' for r in panel_a_on_offs)}")
    figs[FIGURE_NAMES[0]] = fig

    fig, ax = plt.subplots(figsize=(5.5, 4))
    drew = False
    for v in sorted(frame["v_applied"].unique()):
        drew |= _curve(ax, _select(frame, panel_b_on_off, v), "advantage", f"{v:g} V")
    _advantage_axes(ax, f"ED6b: ON/OFF = {panel_b_on_off:g}", drew, f"ON/OFF {panel_b_on_off:g}")
    figs[FIGURE_NAMES[1]] = fig

    fig, ax = plt.subplots(figsize=(5.5, 4))
    v_c, r_c = panel_c
    drew = _curve(ax, _select(frame, r_c, v_c), "advantage", f"{v_c:g} V, ON/OFF {r_c:g}")
    _advantage_axes(ax, f"ED6c: V_applied = {v_c:g} V, ON/OFF = {r_c:g}", drew,
                    f"V = {v_c:g} with ON/OFF {r_c:g}")
    figs[FIGURE_NAMES[2]] = fig

    fig, ax = plt.subplots(figsize=(5.5, 4))
    per_net = frame.drop_duplicates(["nl", "seed"])
    _curve(ax, per_net, "accuracy", "trained network (ideal)")
    _curve(ax, _select(frame, panel_a_on_offs[-1], panel_a_v), "operating_accuracy",
           f"operated at {panel_a_v:g} V, ON/OFF {panel_a_on_offs[-1]:g}")
    ax.set_xlabel("dendrite nonlinearity NL")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_title("ED6d: recognition accuracy")
    if len(ax.lines):
        ax.legend()
    figs[FIGURE_NAMES[3]] = fig
    for f in figs.values():
        f.tight_layout()
    return figs


def save_ed6_figures(frame: pd.DataFrame, out_dir: str | os.PathLike[str],
                     **panels: Any) -> list[Path]:
    """Draw ``ed6_figures`` and write them as PNG into ``out_dir``; returns the paths."""
    plt = _plt()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in ed6_figures(frame, **panels).items():
        path = out / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


__all__ = ["COLUMNS", "FIGURE_NAMES", "VARIANT_TRAINING", "SweepJob", "SweepSpec", "assemble",
           "ed6_figures", "ed6_lines", "run_job", "run_sweep", "save_ed6_figures", "summarise",
           "train_network"]

"""``dendrolab network sweep | compare``: the ED Fig 6 power sweeps and the ED Fig 8 table.

Why a module of its own: the power and platform analysis is a separate layer over the network
(``analysis.network.power``, ``platforms``, ``sweep``); its commands join the ``network`` group of
``dendrolab.network_cli`` when this module is imported (``register``). Every power assumption is
printed and written next to the results, because the authors published no power model and every
number here rests on those choices.
"""

from __future__ import annotations

import math
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any

import click

from dendrolab.errors import ParameterError, clip
from dendrolab.network_cli import ProgressBar, data_options, network, pct

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _floats(text: str, option: str) -> tuple[float, ...]:
    """``"0,0.1, 0.2"`` -> (0.0, 0.1, 0.2); ``inf`` allowed; one-line error otherwise."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = float(part)
        except ValueError:
            raise ParameterError(f"{option} wants comma-separated numbers, got "
                                 f"{clip(part)!r}") from None
        if math.isnan(value):
            raise ParameterError(f"{option}: nan is not a value")
        out.append(value)
    if not out:
        raise ParameterError(f"{option} needs at least one value")
    return tuple(out)


def _ints(text: str, option: str) -> tuple[int, ...]:
    values = _floats(text, option)
    if any(not math.isfinite(v) or v != int(v) for v in values):
        raise ParameterError(f"{option} wants comma-separated integers, got {clip(text)!r}")
    return tuple(int(v) for v in values)


def _convert(cls: type, key: str, text: str) -> Any:
    hints = typing.get_type_hints(cls)
    kind = hints[key]
    if kind is bool:
        low = text.strip().lower()
        if low in _TRUE | _FALSE:
            return low in _TRUE
        raise ParameterError(f"{key} wants true or false, got {clip(text)!r}")
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise ParameterError(f"{key} wants an integer, got {clip(text)!r}") from None
    if kind is float:
        try:
            return float(text)
        except ValueError:
            raise ParameterError(f"{key} wants a number, got {clip(text)!r}") from None
    return text.strip()


def _key_values(cls: type, items: tuple[str, ...], option: str) -> dict[str, Any]:
    """``KEY=VALUE`` items -> field values of dataclass ``cls``, converted by field type."""
    names = [f.name for f in fields(cls)]
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ParameterError(f"{option} wants KEY=VALUE, got {clip(item)!r}")
        if key not in names:
            raise ParameterError(f"{option}: unknown key {clip(key)!r}; known: "
                                 f"{', '.join(names)}")
        out[key] = _convert(cls, key, value)
    return out


def _assumptions(items: tuple[str, ...]) -> Any:
    from analysis.network.power import PowerAssumptions

    return PowerAssumptions(**_key_values(PowerAssumptions, items, "--assume"))


def _assume_option(f):
    return click.option("--assume", "assume", multiple=True, metavar="KEY=VALUE",
                        help="Set a power-model assumption (repeatable), e.g. i_on_a=2e-6, "
                             "soma_current=input, drive_exponent=0, reference_leak=true, "
                             "time_steps=5. All are listed in the output and docs/"
                             "network-power.md.")(f)


def _training_options(f):
    f = click.option("--clamp-grad", type=click.Choice(["exact", "pass"]), default="exact",
                     show_default=True,
                     help="Gradient at the output somas' clamp: exact (PyTorch autograd) or "
                          "pass (straight through; keeps outputs from starving in short "
                          "trainings, docs/network.md).")(f)
    f = click.option("--init-scale", type=click.FloatRange(min=0, min_open=True),
                     default=None, help="Initial weights ~ N(0, scale^2) (sweep default 1).")(f)
    f = click.option("--batch", type=click.IntRange(min=1), default=None,
                     help="Batch size (sweep default 32).")(f)
    f = click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Learning rate (default: matlab 0.1, pytorch 0.005).")(f)
    f = click.option("--epochs", type=click.IntRange(min=1), default=None,
                     help="Epochs per network (sweep default 40: quick; raise for real "
                          "figures).")(f)
    f = click.option("--hidden", type=click.IntRange(min=1), default=None,
                     help="Hidden neurons (sweep default 100; a multiple of the 4 output "
                          "branches).")(f)
    f = click.option("--theta", type=float, default=0.11, show_default=True,
                     help="Soma threshold.")(f)
    return click.option("--variant", type=click.Choice(["matlab", "pytorch"]),
                        default="matlab", show_default=True,
                        help="Dendrite normalisation. matlab (rectified branch inputs, the code "
                             "that existed when ED Fig 6 was made) is the default here; pytorch "
                             "lets linear branches carry negative, inhibiting currents "
                             "(see docs/network-power.md).")(f)


def _spec(variant: str, **kw: Any) -> Any:
    from analysis.network.sweep import SweepSpec

    return SweepSpec.for_variant(variant, **kw)


def _echo_lines(lines: list[str]) -> None:
    for line in lines:
        click.echo(line)


@click.command("sweep")
@click.option("--nl", "nls", default="0,0.05,0.1,0.15,0.2,0.3", show_default=True,
              help="Dendrite nonlinearities NL, comma-separated (NL = 0, the reference without "
                   "dendrites, is always trained).")
@click.option("--on-off", "on_offs", default="10,100", show_default=True,
              help="Dendrite ON/OFF ratios, comma-separated (inf allowed).")
@click.option("--voltage", "voltages", default="2,3,4,5", show_default=True,
              help="Applied voltages in V, comma-separated.")
@click.option("--seeds", default="0", show_default=True,
              help="Training seeds, comma-separated (e.g. 0,1,2): mean and spread in the "
                   "figures.")
@data_options
@_training_options
@_assume_option
@click.option("--scheduler", default=None,
              help="Where the trainings run: threads (default, this machine), sync, processes, "
                   "or a dask cluster tcp://host:port. The table is identical either way.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Threads for the default scheduler (default: one per core).")
@click.option("--out", "out_dir", required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Folder for sweep.csv, summary.csv, assumptions.txt and the ED6 PNGs.")
def sweep_cmd(nls: str, on_offs: str, voltages: str, seeds: str, data_name: str,
              svhn_dir: Path | None, limit: int | None, variant: str, theta: float,
              hidden: int | None, epochs: int | None, lr: float | None, batch: int | None,
              init_scale: float | None, clamp_grad: str, assume: tuple[str, ...],
              scheduler: str | None, workers: int | None, out_dir: Path) -> None:
    """Extended Data Fig 6: power advantage and accuracy against the dendrite nonlinearity.

    Trains one network per (NL, seed) and evaluates its power on the test set at every
    (ON/OFF, V); the advantage is the energy of the NL = 0 network (same seed, no dendrite
    devices) over the energy with dendrites. Writes the tidy table, a per-point summary, the
    four ED6 panels and the assumptions, and prints the ED6 numbers.
    """
    from analysis.network.sweep import ed6_lines, run_sweep, save_ed6_figures, summarise

    if out_dir.exists() and not out_dir.is_dir():
        raise ParameterError(f"{clip(str(out_dir), 120)} is a file; --out wants a folder")
    base = _assumptions(assume)
    if any(item.partition("=")[0].strip() in ("on_off", "v_applied_v") for item in assume):
        raise ParameterError("set ON/OFF and V with --on-off and --voltage, not --assume")
    spec = _spec(nls=_floats(nls, "--nl"), on_offs=_floats(on_offs, "--on-off"),
                 voltages=_floats(voltages, "--voltage"), seeds=_ints(seeds, "--seeds"),
                 dataset=data_name, svhn_dir=None if svhn_dir is None else str(svhn_dir),
                 limit=limit, variant=variant, theta=theta, n_hidden=hidden, epochs=epochs,
                 lr=lr, batch=batch, init_scale=init_scale, clamp_grad=clamp_grad, base=base)
    text = [*spec.describe(), *base.describe(),
            "  (on_off and v_applied_v above are overridden by the grid)"]
    _echo_lines(text)
    bar = ProgressBar("trainings")
    try:
        frame = run_sweep(spec, scheduler=scheduler, workers=workers, progress=bar)
    finally:
        bar.close()
    out_dir.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out_dir / "sweep.csv", index=False)
    summarise(frame).to_csv(out_dir / "summary.csv", index=False)
    (out_dir / "assumptions.txt").write_text("\n".join(text) + "\n", encoding="utf-8")
    paths = save_ed6_figures(frame, out_dir)
    _echo_lines(ed6_lines(frame))
    click.echo(f"wrote {out_dir / 'sweep.csv'} ({len(frame)} rows), summary.csv, "
               f"assumptions.txt and {len(paths)} figures")


def _model_energy(path: Path, data_name: str, svhn_dir: Path | None, limit: int | None,
                  assumptions: Any, reference: bool) -> dict[str, Any]:
    """Energy and accuracy of a saved model on its test split, under the assumptions."""
    from analysis.network.data import load_dataset
    from analysis.network.modelfile import load_model
    from analysis.network.power import operating_power

    params, cfg, meta = load_model(path)
    metrics = meta.get("metrics", {}) or {}
    seed = int(metrics.get("data_seed", meta.get("seed", 0)))
    data = load_dataset(data_name, svhn_dir=svhn_dir, seed=seed, limit=limit)
    if data.layout != cfg.layout:
        raise ParameterError(f"{clip(str(path), 120)} is for the {cfg.layout.name!r} layout, "
                             f"the data are {data.name!r}; pass --data {cfg.layout.name}")
    if reference and cfg.nl != 0.0:
        raise ParameterError(f"--reference {clip(str(path), 120)} has NL = {cfg.nl:g}; the "
                             "network without dendrites must have NL = 0")
    a = assumptions.reference() if reference else assumptions
    device = None if reference else meta.get("device")
    power = operating_power(params, data.x_test, cfg, a, device=device)
    stored = metrics.get("test_acc_ideal_synapses", metrics.get("test_acc"))
    return {"cfg": cfg, "energy": power.mean_energy_j,
            "accuracy": power.accuracy(data.y_test),
            "float_accuracy": math.nan if stored is None else float(stored)}


@click.command("compare")
@click.option("--model", "model_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Model file (dendrolab network train --out) of the network "
                                 "with dendrites; default: train one here (sweep settings).")
@click.option("--reference", "reference_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Model file of the network without dendrites (NL = 0) for "
                                 "the reference row.")
@data_options
@click.option("--nl", type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
              default=0.1, show_default=True,
              help="NL of the network trained here when no --model is given.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Training seed when no --model is given.")
@_training_options
@_assume_option
@click.option("--cost", "costs", multiple=True, metavar="KEY=VALUE",
              help="Set a platform cost (repeatable), e.g. cpu_overhead=10, asic_mac_j=0.5e-12 "
                   "(all listed in the output).")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="CSV file for the table.")
def compare_cmd(model_path: Path | None, reference_path: Path | None, data_name: str,
                svhn_dir: Path | None, limit: int | None, nl: float, seed: int, variant: str,
                theta: float, hidden: int | None, epochs: int | None, lr: float | None,
                batch: int | None, init_scale: float | None, clamp_grad: str,
                assume: tuple[str, ...], costs: tuple[str, ...], out_path: Path | None) -> None:
    """Extended Data Fig 8-style table: energy per inference and accuracy of CPU, ASIC and this
    network, each figure with its source or its stated assumption.

    The network's energy comes from the power model at the --assume operating point (default
    5 V, ON/OFF 100); CPU and ASIC rows from the architecture's operation count times energy per
    operation (assumptions, --cost), plus the paper's abstract ratios applied to our energy.
    """
    from analysis.network.platforms import (
        PlatformCosts,
        format_table,
        op_count_for,
        platform_table,
        write_platform_csv,
    )
    from analysis.network.power import operating_power

    if out_path is not None and out_path.is_dir():
        raise ParameterError(f"{clip(str(out_path), 120)} is a directory; --out wants a CSV "
                             "file name")
    assumptions = _assumptions(assume)
    cost = PlatformCosts(**_key_values(PlatformCosts, costs, "--cost"))
    ref: dict[str, Any] | None = None
    if model_path is not None:
        net = _model_energy(model_path, data_name, svhn_dir, limit, assumptions, False)
        source = f"model file {model_path}"
        if reference_path is not None:
            ref = _model_energy(reference_path, data_name, svhn_dir, limit, assumptions, True)
    else:
        if reference_path is not None:
            raise ParameterError("--reference needs --model (or neither: both are trained "
                                 "here)")
        from analysis.network.sweep import train_network

        spec = _spec(dataset=data_name, svhn_dir=None if svhn_dir is None else str(svhn_dir),
                     limit=limit, variant=variant, theta=theta, n_hidden=hidden, epochs=epochs,
                     lr=lr, batch=batch, init_scale=init_scale, clamp_grad=clamp_grad)
        runs = {}
        for name, value in (("with dendrites", nl), ("without dendrites", 0.0)):
            bar = ProgressBar(f"training NL {value:g} ({name})")
            try:
                runs[name] = train_network(spec, value, seed, progress=bar)
            finally:
                bar.close()
        res, cfg, data = runs["with dendrites"]
        p = operating_power(res.params, data.x_test, cfg, assumptions)
        net = {"cfg": cfg, "energy": p.mean_energy_j, "accuracy": p.accuracy(data.y_test),
               "float_accuracy": res.test_acc}
        res0, cfg0, _ = runs["without dendrites"]
        p0 = operating_power(res0.params, data.x_test, cfg0, assumptions.reference())
        ref = {"cfg": cfg0, "energy": p0.mean_energy_j, "accuracy": p0.accuracy(data.y_test)}
        source = f"trained here: {spec.describe()[1].strip()}, seed {seed}"
    if not net["energy"] > 0:
        raise ParameterError("the network drew no soma current on the test set (every soma "
                             "silent); the energy ratio is undefined at these assumptions")
    cfg = net["cfg"]
    ops = op_count_for(cfg.layout, cfg.n_hidden, cfg.n_out)
    float_acc = net["float_accuracy"]
    frame = platform_table(ops, network_energy_j=net["energy"], network_accuracy=net["accuracy"],
                           reference_energy_j=None if ref is None else ref["energy"],
                           reference_accuracy=None if ref is None else ref["accuracy"],
                           float_accuracy=None if math.isnan(float_acc) else float_acc,
                           costs=cost)
    click.echo(f"network: {cfg.describe()} ({source})")
    _echo_lines(assumptions.describe())
    _echo_lines(cost.describe())
    _echo_lines(format_table(frame))
    if ref is not None:
        click.echo(f"power advantage of the dendrites: {ref['energy'] / net['energy']:.3g}x; "
                   f"accuracy with {pct(net['accuracy'])}, without {pct(ref['accuracy'])}")
    if out_path is not None:
        write_platform_csv(frame, out_path)
        click.echo(f"wrote {out_path}")


def register(group: click.Group = network) -> click.Group:
    """Add ``sweep`` and ``compare`` to ``group`` (the ``network`` group by default)."""
    group.add_command(sweep_cmd, "sweep")
    group.add_command(compare_cmd, "compare")
    return group


register()

__all__ = ["compare_cmd", "register", "sweep_cmd"]

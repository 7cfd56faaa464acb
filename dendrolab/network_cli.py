"""``dendrolab network``: train and evaluate the authors' dendritic network, optionally on measured
devices.

A click group of its own so that ``dendrolab/cli.py`` registers it with
``main.add_command(network)`` and other modules add commands with ``network.add_command(...)``.
Like the main CLI, heavy modules are imported inside commands and every ``DendrolabError`` (or
file-system refusal) becomes one line on stderr with exit code 2 -- also when the group is
invoked on its own (tests).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from dendrolab.clickgroup import OneLineErrors
from dendrolab.errors import ParameterError, clip

#: Per data set defaults: digits reach >= 95 % in seconds; SVHN is the authors' run (notes §1.8).
DEFAULTS: dict[str, dict[str, Any]] = {
    "digits": {"hidden": 256, "epochs": 300, "lr": 0.1, "batch": 32},
    "svhn": {"hidden": 500, "epochs": 100, "lr": 0.005, "batch": 128},
}


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
def network() -> None:
    """Simulate the authors' dendritic network (Li et al. 2020) in numpy.

    3072-500-10 on SVHN with 9 dendrite branches per hidden neuron, or the 8x8 digits bundled
    with scikit-learn (default, no download). Dendrite branches and synapses may be measured
    devices (--devices METRICS.csv from `dendrolab analyze`). See docs/network.md.
    """


class ProgressBar:
    """A click progress bar with ETA on stderr, redrawn at most every 0.2 s."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: Any = None
        self.shown = 0
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = click.progressbar(length=total, label=self.label, show_eta=True,
                                         show_percent=True, file=sys.stderr).__enter__()
        now = time.monotonic()
        if done >= total or now - self.last >= 0.2:
            self.bar.update(done - self.shown)
            self.shown, self.last = done, now

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def _device_params(items: tuple[str, ...]) -> dict[str, Any]:
    """``KEY=VALUE`` overrides of DeviceModel fields (numbers parsed, else text)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"--device-param wants KEY=VALUE, got {clip(item)!r}")
        text = value.strip()
        try:
            parsed: Any = int(text)
        except ValueError:
            try:
                parsed = float(text)
            except ValueError:
                parsed = text
        out[key.strip()] = parsed
    return out


def _device(path: Path | None, branch: str, seed: int, params: tuple[str, ...]):
    from analysis.network.devices import DeviceModel

    overrides = _device_params(params)
    if path is None:
        return DeviceModel(seed=seed).with_(**overrides) if overrides else None
    return DeviceModel.from_metrics(path, branch=branch, seed=seed, **overrides)


def _check_out(path: Path, force: bool) -> None:
    where = clip(str(path), 120)
    if path.is_dir():
        raise ParameterError(f"{where} is a directory; give a model file name, e.g. model.npz")
    if path.exists() and not force:
        raise ParameterError(f"{where} already exists; choose another name or add --force")
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise ParameterError(f"{where}: {clip(str(parent), 120)} is not a directory")


def _device_options(f):
    f = click.option("--device-param", "device_params", multiple=True, metavar="KEY=VALUE",
                     help="Set a device field, e.g. read_sigma=0.02, levels=16, stuck_off=0.01, "
                          "c2c_sigma=0.05 (repeatable; see docs/network.md).")(f)
    f = click.option("--device-branch", default="auto", show_default=True,
                     type=click.Choice(["auto", "median", "empirical", "lognormal", "config"]),
                     help="How measured branch_a values become branch functions: auto (draw "
                          "per branch from several devices, or the one), median, empirical, "
                          "lognormal fit, or config (keep --nl).")(f)
    return click.option("--devices", "devices_path", default=None,
                        type=click.Path(dir_okay=False, path_type=Path),
                        help="Device-metrics table (CSV or Parquet, columns of "
                             "analysis.metrics.COLUMNS): measured branch functions and synapse "
                             "statistics.")(f)


def data_options(f):
    f = click.option("--limit", type=click.IntRange(min=1), default=None,
                     help="SVHN: use only the first N images of each file (quick runs).")(f)
    f = click.option("--svhn-dir", type=click.Path(file_okay=False, path_type=Path),
                     default=None,
                     help="Directory with train_32x32.mat and test_32x32.mat (SVHN format 2).")(f)
    return click.option("--data", "data_name", type=click.Choice(["digits", "svhn"]),
                        default="digits", show_default=True,
                        help="digits: scikit-learn's 8x8 digits (bundled); svhn: your .mat "
                             "files.")(f)


def pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.2f} %"


@network.command("train")
@data_options
@click.option("--nl", type=click.FloatRange(0.0, 1.0, max_open=True), default=0.1,
              show_default=True, help="Dendrite nonlinearity NL (a = 50 NL/(1 - NL)); 0 = "
                                      "linear branches.")
@click.option("--theta", type=float, default=0.11, show_default=True,
              help="Soma threshold (PyTorch 0.11, MATLAB 0.1).")
@click.option("--variant", type=click.Choice(["pytorch", "matlab"]), default="pytorch",
              show_default=True, help="Which of the authors' dendrite normalisations.")
@click.option("--hidden", type=click.IntRange(min=1), default=None,
              help="Hidden neurons (default: digits 256, svhn 500; a multiple of the 4 output "
                   "branches).")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Epochs (default: digits 300, svhn 100).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Learning rate, x0.1 for the last 10 % of epochs (default: digits 0.1, "
                   "svhn 0.005 as the authors').")
@click.option("--batch", type=click.IntRange(min=1), default=None,
              help="Batch size (default: digits 32, svhn 128).")
@click.option("--momentum", type=click.FloatRange(0, 1, max_open=True), default=0.9,
              show_default=True, help="SGD momentum.")
@click.option("--weight-decay", type=click.FloatRange(min=0), default=5e-4, show_default=True,
              help="SGD weight decay.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the data split, initial weights, shuffling and device draws.")
@click.option("--clamp-grad", type=click.Choice(["exact", "pass"]), default="exact",
              show_default=True,
              help="Gradient at the output somas' clamp at 0: exact (the authors' PyTorch "
                   "autograd; an output that stops firing early gets no gradient and its class "
                   "can be lost in short trainings) or pass (straight through the clamp; our "
                   "choice for short trainings, docs/network.md).")
@_device_options
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Model file to write (.npz: weights, architecture, seed, "
                                 "device, accuracy).")
@click.option("--force", is_flag=True, help="Overwrite an existing --out file.")
def train_cmd(data_name: str, svhn_dir: Path | None, limit: int | None, nl: float,
              theta: float, variant: str, hidden: int | None, epochs: int | None,
              lr: float | None, batch: int | None, momentum: float, weight_decay: float,
              seed: int, clamp_grad: str, devices_path: Path | None, device_branch: str,
              device_params: tuple[str, ...], out_path: Path | None, force: bool) -> None:
    """Train the network and print validation and test accuracy.

    The best epoch is chosen on a validation split held out of the training data (never the
    test set). With --devices, training uses the measured branch functions; the test accuracy
    then includes the synapse non-idealities (also printed without them).
    """
    if out_path is not None:
        _check_out(out_path, force)
    from analysis.network.data import load_dataset
    from analysis.network.demo import _metrics
    from analysis.network.model import NetConfig
    from analysis.network.modelfile import save_model
    from analysis.network.train import train

    d = DEFAULTS[data_name]
    device = _device(devices_path, device_branch, seed, device_params)
    data = load_dataset(data_name, svhn_dir=svhn_dir, seed=seed, limit=limit)
    cfg = NetConfig(data.layout, hidden or d["hidden"], nl=nl, theta=theta, variant=variant)
    click.echo(f"data: {data.describe()}")
    click.echo(f"network: {cfg.describe()}")
    if device is not None:
        for line in device.describe():
            click.echo(f"device: {line}")
    bar = ProgressBar("training")
    try:
        res = train(cfg, data, epochs=epochs or d["epochs"], lr=lr or d["lr"],
                    batch=batch or d["batch"], momentum=momentum, weight_decay=weight_decay,
                    seed=seed, device=device, progress=bar, clamp_grad=clamp_grad)
    finally:
        bar.close()
    click.echo(f"best epoch {res.best_epoch} of {len(res.history)} (chosen on validation), "
               f"{res.seconds:.1f} s")
    click.echo(f"validation accuracy: {pct(res.val_acc)}")
    click.echo(f"test accuracy: {pct(res.test_acc)}")
    if device is not None and device.synapse_effects:
        click.echo(f"test accuracy with ideal synapses: {pct(res.test_acc_ideal)}")
    if out_path is not None:
        if out_path.parent != Path(""):
            out_path.parent.mkdir(parents=True, exist_ok=True)
        save_model(out_path, res.params, cfg, seed=seed, device=device,
                   metrics=_metrics(res, data_name, seed))
        click.echo(f"wrote {out_path}")


@network.command("evaluate")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@data_options
@_device_options
@click.option("--ideal", is_flag=True,
              help="Ignore the device stored in the model file (ideal synapses, the network's "
                   "NL).")
@click.option("--seed", type=int, default=None,
              help="Seed of the digits split and the device draws (default: the model's).")
def evaluate_cmd(model: Path, data_name: str, svhn_dir: Path | None, limit: int | None,
                 devices_path: Path | None, device_branch: str, device_params: tuple[str, ...],
                 ideal: bool, seed: int | None) -> None:
    """Accuracy of a saved MODEL on the validation and test splits.

    Uses the device stored in the model file, or --devices (a metrics table), or none with
    --ideal. The digits split is the one the model was trained with (its seed).
    """
    from analysis.network.data import load_dataset
    from analysis.network.modelfile import load_model
    from analysis.network.train import evaluate

    params, cfg, meta = load_model(model)
    seed = int(meta.get("metrics", {}).get("data_seed", meta.get("seed", 0))) \
        if seed is None else seed
    data = load_dataset(data_name, svhn_dir=svhn_dir, seed=seed, limit=limit)
    if data.layout != cfg.layout:
        raise ParameterError(f"the model is for the {cfg.layout.name!r} layout "
                             f"({cfg.n_in} inputs), the data are {data.name!r} "
                             f"({data.layout.n_in} inputs); pass --data {cfg.layout.name}")
    device = None
    if devices_path is not None or device_params:
        device = _device(devices_path, device_branch, seed, device_params)
    elif not ideal:
        device = meta["device"]
    click.echo(f"model: {model} ({cfg.describe()}, seed {meta.get('seed')})")
    click.echo(f"data: {data.describe()}")
    click.echo("device: none (ideal)" if device is None else
               "\n".join(f"device: {line}" for line in device.describe()))
    val = evaluate(params, cfg, data.x_val, data.y_val, device)
    test = evaluate(params, cfg, data.x_test, data.y_test, device)
    click.echo(f"validation accuracy: {pct(val)}")
    click.echo(f"test accuracy: {pct(test)}")

"""A few-second network section for ``dendrolab demo``: digits with and without dendrites.

Why: it shows, end to end and from one seed, what the network part of the pipeline does --
train the authors' network on the bundled digits with dendrites (NL 0.1) and with linear
branches (NL 0), and, given a device-metrics table, with the measured devices' branch functions
and synapse statistics -- and leaves a model file behind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from analysis.network.data import load_digits
from analysis.network.devices import DeviceModel
from analysis.network.model import NetConfig, forward
from analysis.network.modelfile import save_model
from analysis.network.power import PowerAssumptions, operating_advantage
from analysis.network.train import train

#: Settings for the digits that reach >= 95 % test accuracy in seconds (benchmarks/bench_network).
DIGITS = {"n_hidden": 256, "epochs": 300, "lr": 0.1, "batch": 32}
#: A smaller, faster setting for the demo (about 1-2 s per training run here). Short training
#: with the exact gradient can starve output somas (an output that stops firing gets no
#: gradient; seed 0 lost 4 classes with NL 0), so the demo lets the gradient through the output
#: clamp (``model.CLAMP_GRADS``): no starved output at seeds 0-2, 93-96 % either way.
DIGITS_QUICK = {"n_hidden": 128, "epochs": 100, "lr": 0.1, "batch": 32, "clamp_grad": "pass"}


def demo_network(out_dir: Path, seed: int = 0, metrics: Any = None,
                 settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train on digits with NL 0.1 and NL 0 (and with measured devices if ``metrics`` is a
    metrics table: DataFrame, CSV/Parquet path or rows); save the NL 0.1 (or device) model.

    Returns ``acc_dendrites`` / ``acc_linear`` (test accuracy, fractions), ``advantage`` (the
    power advantage of the NL 0.1 network over the linear one on the test images, at the default
    ``power.PowerAssumptions``, returned as ``assumptions``; ``advantage_device`` for the
    measured devices, with their dendrite ON/OFF ratio ``on_off_device``),
    ``starved_dendrites`` / ``starved_linear`` (output somas that fire on < 1 % of the test
    images: classes the network lost in training, see docs/network.md; seen with NL 0 and short
    training), ``acc_device`` and
    ``acc_device_ideal_synapses`` (None without metrics), ``device`` (description lines),
    ``model`` (path of the saved model file), ``seconds`` and the settings used.
    """
    s = {**DIGITS_QUICK, **(settings or {})}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = load_digits(seed=seed)
    fit = {"epochs": s["epochs"], "lr": s["lr"], "batch": s["batch"], "seed": seed,
           "clamp_grad": s.get("clamp_grad", "exact")}
    assumptions = PowerAssumptions()
    with_d = train(NetConfig(data.layout, s["n_hidden"], nl=0.1), data, **fit)
    linear = train(NetConfig(data.layout, s["n_hidden"], nl=0.0), data, **fit)
    result: dict[str, Any] = {
        "acc_dendrites": with_d.test_acc, "acc_linear": linear.test_acc,
        "val_dendrites": with_d.val_acc, "val_linear": linear.val_acc,
        "starved_dendrites": starved_outputs(with_d, data.x_test),
        "starved_linear": starved_outputs(linear, data.x_test),
        "acc_device": None, "acc_device_ideal_synapses": None, "device": None,
        "advantage": operating_advantage((with_d.params, with_d.cfg), (linear.params, linear.cfg),
                                         data.x_test, assumptions).advantage,
        "advantage_device": None, "assumptions": assumptions,
        "seconds": with_d.seconds + linear.seconds, "settings": s, "seed": seed,
    }
    kept, device = with_d, None
    if metrics is not None:
        device = DeviceModel.from_metrics(metrics, seed=seed)
        dev = train(NetConfig(data.layout, s["n_hidden"], nl=0.1), data, device=device, **fit)
        measured = measured_power_assumptions(metrics)
        result.update(acc_device=dev.test_acc, acc_device_ideal_synapses=dev.test_acc_ideal,
                      device=device.describe(), seconds=result["seconds"] + dev.seconds,
                      on_off_device=measured.on_off,
                      advantage_device=operating_advantage(
                          (dev.params, dev.cfg), (linear.params, linear.cfg), data.x_test,
                          measured, device=device).advantage)
        kept = dev
    assert kept.cfg is not None
    path = save_model(out_dir / "network_digits.npz", kept.params, kept.cfg, seed=seed,
                      device=device, metrics=_metrics(kept, "digits", seed))
    result["model"] = os.fspath(path)
    return result


def measured_power_assumptions(metrics: Any) -> PowerAssumptions:
    """The default power assumptions with the dendrite ON/OFF ratio measured in ``metrics``
    (median of the ok ``on_off_ratio`` rows of dendrite runs), when there is one."""
    import pandas as pd

    table = metrics if isinstance(metrics, pd.DataFrame) else None
    if table is None or "metric" not in table.columns:
        return PowerAssumptions()
    rows = table[(table["metric"] == "on_off_ratio") & (table["quality"] == "ok")
                 & table["protocol"].astype(str).str.startswith("dendrite")]
    values = pd.to_numeric(rows["value"], errors="coerce").dropna()
    values = values[values > 1]
    return PowerAssumptions(on_off=float(values.median())) if len(values) else PowerAssumptions()


def starved_outputs(res: Any, x: Any, min_fraction: float = 0.01) -> int:
    """How many output somas fire (y > 0) on fewer than ``min_fraction`` of the images ``x``.

    Such an output gets almost no gradient (the soma is clamped at 0): its class is lost.
    """
    y = forward(res.params, x, res.cfg).y
    return int(np.count_nonzero((y > 0).mean(axis=0) < min_fraction))


def _metrics(res: Any, data_name: str, data_seed: int) -> dict[str, Any]:
    """What a model file records about its training run."""
    return {"data": data_name, "data_seed": data_seed, "val_acc": res.val_acc,
            "test_acc": res.test_acc, "test_acc_ideal_synapses": res.test_acc_ideal,
            "best_epoch": res.best_epoch, "seconds": res.seconds, **res.settings}

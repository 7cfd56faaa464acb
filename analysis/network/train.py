"""Train the dendritic network with SGD + momentum; select the best epoch on the validation split.

Why this shape: it follows the authors' PyTorch training (notes §1.8) -- SGD with momentum 0.9,
weight decay 5e-4 added to the gradient (PyTorch's coupled form), batch 128, cross-entropy on the
soma outputs, the learning rate x0.1 at 90 % of the run (their MultiStepLR milestone 90 of 100) --
except that the checkpoint is chosen on a validation split held out of the training data, never
on the test set (the authors selected on test). The test accuracy is computed once, for the
selected weights.

With a measured device (``devices.DeviceModel``) the network is trained with the device's branch
functions (one ``a`` per branch and neuron) and ideal synapses; validation uses the same. The
synapse non-idealities (spread, noise, levels, stuck cells) are an inference effect: ``test_acc``
includes them, ``test_acc_ideal`` does not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analysis.network.data import Dataset
from analysis.network.model import (
    CLAMP_GRADS,
    NetConfig,
    Packed,
    Params,
    _infer_packed,
    _loss_and_grads_packed,
    init_params,
    predict,
)
from dendrolab.errors import ParameterError


@dataclass
class TrainResult:
    """Selected weights, per-epoch history and accuracies (fractions in [0, 1])."""

    params: Params
    history: list[dict[str, float]]
    val_acc: float
    test_acc: float
    seconds: float = 0.0
    best_epoch: int = 0
    test_acc_ideal: float = float("nan")
    cfg: NetConfig | None = None
    seed: int = 0
    settings: dict[str, Any] = field(default_factory=dict)


def evaluate(params: Params, cfg: NetConfig, x: np.ndarray, y: np.ndarray, device: Any = None,
             *, rng: np.random.Generator | None = None) -> float:
    """Accuracy (fraction correct) of ``predict`` on (x, y); with ``device``, seeded noise."""
    y = np.asarray(y)
    if y.size == 0:
        return float("nan")
    return float(np.mean(predict(params, x, cfg, device, rng=rng) == y))


def _check(epochs: int, lr: float, momentum: float, weight_decay: float, batch: int) -> None:
    if epochs < 1 or batch < 1:
        raise ParameterError(f"need epochs >= 1 and batch >= 1, got {epochs}, {batch}")
    if not lr > 0 or not 0 <= momentum < 1 or weight_decay < 0:
        raise ParameterError(f"need lr > 0, 0 <= momentum < 1, weight_decay >= 0; got {lr}, "
                             f"{momentum}, {weight_decay}")


def _accuracy_packed(pk: Packed, xp: np.ndarray, y: np.ndarray, cfg: NetConfig, a1: Any,
                     a2: Any, chunk: int = 4096) -> float:
    if y.size == 0:
        return float("nan")
    hits = 0
    for lo in range(0, y.size, chunk):
        s, _ = _infer_packed(pk, xp[lo:lo + chunk], cfg, a1=a1, a2=a2)
        hits += int(np.count_nonzero(s.argmax(axis=1) == y[lo:lo + chunk]))
    return hits / y.size


def train(cfg: NetConfig, data: Dataset, *, epochs: int, lr: float, momentum: float = 0.9,
          weight_decay: float = 5e-4, batch: int = 128, seed: int, device: Any = None,
          progress: Callable[[int, int], None] | None = None, init_scale: float = 1.0,
          lr_drop_at: float | None = 0.9, lr_drop: float = 0.1,
          clamp_grad: str = "exact") -> TrainResult:
    """Train from ``init_params(cfg, seed)``; return the epoch with the best validation accuracy.

    ``clamp_grad``: ``exact`` (the authors' PyTorch gradient) or ``pass`` (straight through the
    output somas' clamp, which keeps outputs from starving; ``model.CLAMP_GRADS``).

    ``progress(done, total)`` is called after every batch (``total`` = epochs x batches).
    Learning rate ``lr`` until ``lr_drop_at`` x epochs, then ``lr * lr_drop`` (None: constant).
    Everything random (init, shuffling, device draws) follows ``seed`` and the device's seed.
    """
    _check(epochs, lr, momentum, weight_decay, batch)
    if clamp_grad not in CLAMP_GRADS:
        raise ParameterError(f"clamp_grad must be one of {CLAMP_GRADS}, got {clamp_grad!r}")
    if data.layout != cfg.layout:
        raise ParameterError(f"data set {data.name!r} has layout {data.layout.name!r}, the "
                             f"network {cfg.layout.name!r}")
    if data.y_train.size == 0:
        raise ParameterError("no training data")
    t0 = time.perf_counter()
    pk = Packed.from_params(init_params(cfg, seed, scale=init_scale), cfg)
    shuffle = np.random.default_rng([seed, 1])
    a1, a2 = device.branch_a(cfg) if device is not None else (None, None)
    xtr, ytr = pk.pack_x(data.x_train), np.asarray(data.y_train, dtype=np.int64)
    xval, yval = pk.pack_x(data.x_val), np.asarray(data.y_val, dtype=np.int64)
    v1, v2 = np.zeros_like(pk.w1), np.zeros_like(pk.w2)
    wd = np.float32(weight_decay)
    mu = np.float32(momentum)
    best: tuple[float, int, np.ndarray, np.ndarray] | None = None
    history: list[dict[str, float]] = []
    n = ytr.size
    per_epoch = -(-n // batch)
    drop_epoch = None if lr_drop_at is None else max(1, round(lr_drop_at * epochs))
    for epoch in range(1, epochs + 1):
        rate = lr if drop_epoch is None or epoch <= drop_epoch else lr * lr_drop
        step = np.float32(rate)
        order = shuffle.permutation(n)
        total_loss, hits = 0.0, 0
        for lo in range(0, n, batch):
            idx = order[lo:lo + batch]
            loss, g1, g2, s = _loss_and_grads_packed(pk, xtr[idx], ytr[idx], cfg, a1, a2,
                                                     clamp_grad)
            total_loss += loss * idx.size
            hits += int(np.count_nonzero(s.argmax(axis=1) == ytr[idx]))
            # PyTorch SGD: g += wd w; v = mu v + g (v = g at the first step); w -= lr v
            for w, g, v in ((pk.w1, g1, v1), (pk.w2, g2, v2)):
                if wd:
                    g += wd * w
                v *= mu
                v += g
                w -= step * v
            if progress is not None:
                progress((epoch - 1) * per_epoch + lo // batch + 1, epochs * per_epoch)
        val_acc = _accuracy_packed(pk, xval, yval, cfg, a1, a2)
        history.append({"epoch": epoch, "loss": total_loss / n, "train_acc": hits / n,
                        "val_acc": val_acc, "lr": rate})
        score = -1.0 if np.isnan(val_acc) else val_acc
        if best is None or score > best[0]:
            best = (score, epoch, pk.w1.copy(), pk.w2.copy())
    assert best is not None
    pk.w1, pk.w2 = best[2], best[3]
    params = pk.unpack()
    ideal_device = device.branches_only() if device is not None else None
    test_ideal = evaluate(params, cfg, data.x_test, data.y_test, ideal_device)
    test_acc = (evaluate(params, cfg, data.x_test, data.y_test, device)
                if device is not None else test_ideal)
    return TrainResult(params=params, history=history, val_acc=history[best[1] - 1]["val_acc"],
                       test_acc=test_acc, seconds=time.perf_counter() - t0, best_epoch=best[1],
                       test_acc_ideal=test_ideal, cfg=cfg, seed=seed,
                       settings={"epochs": epochs, "lr": lr, "momentum": momentum,
                                 "weight_decay": weight_decay, "batch": batch,
                                 "init_scale": init_scale, "lr_drop_at": lr_drop_at,
                                 "lr_drop": lr_drop, "clamp_grad": clamp_grad})

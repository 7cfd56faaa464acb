"""Data sets for the network: scikit-learn's 8x8 digits (default) and SVHN from the user's files.

Why: the digits ship inside scikit-learn, so the default needs no download at run time; SVHN is
the authors' data set (notes §1.3) and is read from the user's ``train_32x32.mat`` /
``test_32x32.mat``. Part of the *training* set is held out for model selection: the authors
selected checkpoints on the test set (notes §1.8, §1.11); we do not.

Inputs are float32 in [0, 1] (digits: pixel/16; SVHN: uint8/255, raw RGB as the authors'
``ToTensor()``), flattened in the layout's order (``layout`` module docstring); labels int64 0-9.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analysis.network.layout import BranchLayout, digits_layout, svhn_layout
from dendrolab.errors import DendrolabError, ParameterError, clip


class DataError(DendrolabError):
    """A data file is missing, unreadable or not in the expected format."""


@dataclass
class Dataset:
    """Train / validation / test splits (x float32 in [0, 1], y int64) and their branch layout."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str
    layout: BranchLayout

    def describe(self) -> str:
        return (f"{self.name}: {len(self.y_train)} train / {len(self.y_val)} validation / "
                f"{len(self.y_test)} test, {self.x_train.shape[1]} inputs")


def stratified_split(y: np.ndarray, fraction: float, rng: np.random.Generator
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(keep, held) index arrays: ``fraction`` of every class held out (at least one if any)."""
    if not 0.0 <= fraction < 1.0:
        raise ParameterError(f"split fraction must be in [0, 1), got {fraction}")
    held = []
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        idx = idx[rng.permutation(idx.size)]
        k = round(fraction * idx.size)
        if fraction > 0 and k == 0 and idx.size > 1:
            k = 1
        held.append(idx[:k])
    held_idx = np.sort(np.concatenate(held)) if held else np.array([], dtype=np.intp)
    mask = np.ones(y.size, dtype=bool)
    mask[held_idx] = False
    return np.flatnonzero(mask), held_idx


def load_digits(seed: int = 0, val_fraction: float = 0.15, test_fraction: float = 0.25
                ) -> Dataset:
    """scikit-learn's 1797 8x8 handwritten digits, scaled /16, stratified seeded split.

    ``test_fraction`` of every class goes to test, then ``val_fraction`` of the *whole* set
    (taken from what remains) to validation; the rest is training.
    """
    from sklearn.datasets import load_digits as _sk_load

    if val_fraction + test_fraction >= 1.0 or min(val_fraction, test_fraction) < 0:
        raise ParameterError(f"val_fraction + test_fraction must be < 1 and both >= 0, got "
                             f"{val_fraction} + {test_fraction}")
    bunch = _sk_load()
    x = (np.asarray(bunch.data, dtype=np.float32) / np.float32(16.0))
    y = np.asarray(bunch.target, dtype=np.int64)
    rng = np.random.default_rng(seed)
    rest, test = stratified_split(y, test_fraction, rng)
    frac_of_rest = val_fraction / (1.0 - test_fraction)
    keep, val = stratified_split(y[rest], frac_of_rest, rng)
    train, val = rest[keep], rest[val]
    return Dataset(x[train], y[train], x[val], y[val], x[test], y[test], "digits",
                   digits_layout())


def _read_svhn_mat(path: str | os.PathLike[str], limit: int | None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(x (N, 3072) float32 HWC-flattened in [0, 1], y (N,) int64 0-9) from one SVHN .mat."""
    import scipy.io

    p = Path(path)
    name = clip(str(p), 120)
    if not p.is_file():
        raise DataError(f"{name}: no such SVHN file (expected e.g. train_32x32.mat)")
    try:
        mat = scipy.io.loadmat(str(p), variable_names=["X", "y"])
    except Exception as exc:  # scipy raises ValueError/TypeError/OSError/... on non-.mat input
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(f"{name}: not a readable MATLAB .mat file ({clip(reason, 80)})") from None
    if "X" not in mat or "y" not in mat:
        missing = [k for k in ("X", "y") if k not in mat]
        raise DataError(f"{name}: no variable {' or '.join(missing)} (an SVHN format-2 file "
                        f"holds X (32, 32, 3, N) and y (N, 1))")
    xs, ys = mat["X"], np.asarray(mat["y"])
    if xs.ndim != 4 or xs.shape[:3] != (32, 32, 3):
        raise DataError(f"{name}: X has shape {xs.shape}, expected (32, 32, 3, N)")
    n = xs.shape[3]
    if ys.size != n or (ys.ndim == 2 and 1 not in ys.shape) or ys.ndim > 2:
        raise DataError(f"{name}: y has shape {ys.shape}, expected ({n}, 1)")
    if not np.issubdtype(xs.dtype, np.number) or not np.issubdtype(ys.dtype, np.number):
        raise DataError(f"{name}: X and y must be numeric")
    y = ys.reshape(-1).astype(np.int64)
    if y.size and (y.min() < 0 or y.max() > 10):
        raise DataError(f"{name}: labels must be 0-10 (10 means digit 0), found "
                        f"{y.min()}..{y.max()}")
    if limit is not None:
        xs, y = xs[..., :limit], y[:limit]
    y = np.where(y == 10, 0, y)
    x = np.ascontiguousarray(np.transpose(xs, (3, 0, 1, 2))).reshape(xs.shape[3], -1)
    scale = np.float32(1.0 / 255.0) if xs.dtype == np.uint8 else np.float32(1.0)
    return x.astype(np.float32) * scale, y


def load_svhn(train_path: str | os.PathLike[str], test_path: str | os.PathLike[str],
              val_fraction: float = 0.1, seed: int = 0, limit: int | None = None) -> Dataset:
    """SVHN (format 2, 32x32 cropped digits) from the user's .mat files; the authors' layout.

    ``val_fraction`` of the training file (stratified, seeded) becomes the validation split.
    ``limit`` keeps the first ``limit`` images of each file (quick runs). Label 10 means digit 0.
    uint8 images are divided by 255; other numeric types are taken as already in [0, 1].
    """
    if limit is not None and limit < 1:
        raise ParameterError(f"limit must be >= 1, got {limit}")
    x_tr, y_tr = _read_svhn_mat(train_path, limit)
    x_te, y_te = _read_svhn_mat(test_path, limit)
    keep, val = stratified_split(y_tr, val_fraction, np.random.default_rng(seed))
    return Dataset(x_tr[keep], y_tr[keep], x_tr[val], y_tr[val], x_te, y_te, "svhn",
                   svhn_layout())


def load_dataset(name: str, *, svhn_dir: str | os.PathLike[str] | None = None, seed: int = 0,
                 limit: int | None = None) -> Dataset:
    """``"digits"`` or ``"svhn"`` (files ``train_32x32.mat`` / ``test_32x32.mat`` in svhn_dir)."""
    if name == "digits":
        return load_digits(seed=seed)
    if name == "svhn":
        if svhn_dir is None:
            raise ParameterError("SVHN needs the directory holding train_32x32.mat and "
                                 "test_32x32.mat (--svhn-dir)")
        d = Path(svhn_dir)
        return load_svhn(d / "train_32x32.mat", d / "test_32x32.mat", seed=seed, limit=limit)
    raise ParameterError(f"unknown data set {name!r}; known: digits, svhn")


def synthetic_svhn_shape(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random images of SVHN shape (n, 3072) float32 and random labels: for benchmarks only."""
    rng = np.random.default_rng(seed)
    return (rng.random((n, 3072), dtype=np.float32),
            rng.integers(0, 10, size=n).astype(np.int64))

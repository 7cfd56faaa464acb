"""Data loading: the bundled digits split and SVHN .mat files of the real format."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from analysis.network.data import DataError, load_dataset, load_digits, load_svhn
from analysis.network.layout import digits_layout, svhn_layout
from dendrolab.errors import DendrolabError


def test_digits_split_is_stratified_disjoint_and_seeded():
    d = load_digits(seed=0)
    n = len(d.y_train) + len(d.y_val) + len(d.y_test)
    assert n == 1797
    assert len(d.y_test) == pytest.approx(0.25 * n, abs=10)
    assert len(d.y_val) == pytest.approx(0.15 * n, abs=10)
    for x in (d.x_train, d.x_val, d.x_test):
        assert x.dtype == np.float32 and x.shape[1] == 64
        assert x.min() >= 0 and x.max() <= 1
    assert d.y_train.dtype == np.int64
    assert d.layout == digits_layout()
    for y in (d.y_val, d.y_test):  # every class in every split
        assert set(np.unique(y)) == set(range(10))
    # disjoint: no image of the test split appears in training (digits has no duplicates
    # across these rows with the same label and pixels more than by chance)
    rows = {r.tobytes() for r in d.x_train}
    assert sum(r.tobytes() in rows for r in d.x_test) <= 2
    again, other = load_digits(seed=0), load_digits(seed=1)
    assert np.array_equal(again.x_test, d.x_test) and np.array_equal(again.y_val, d.y_val)
    assert not np.array_equal(other.y_test, d.y_test)


def test_digits_bad_fractions():
    with pytest.raises(DendrolabError, match="fraction"):
        load_digits(val_fraction=0.5, test_fraction=0.5)


def _write_svhn(path, n, seed=0, labels=None):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
    y = (rng.integers(1, 11, size=(n, 1)) if labels is None
         else np.asarray(labels).reshape(n, 1)).astype(np.uint8)
    scipy.io.savemat(str(path), {"X": x, "y": y})
    return x, y


def test_svhn_mat_pixels_labels_and_split(tmp_path):
    xs, ys = _write_svhn(tmp_path / "train_32x32.mat", 60, labels=np.arange(60) % 10 + 1)
    _write_svhn(tmp_path / "test_32x32.mat", 20, seed=1)
    d = load_svhn(tmp_path / "train_32x32.mat", tmp_path / "test_32x32.mat", val_fraction=0.2)
    assert d.layout == svhn_layout() and d.name == "svhn"
    # stratified: round(0.2 x 6) = 1 image of each of the 10 classes
    assert len(d.y_train) == 50 and len(d.y_val) == 10 and len(d.y_test) == 20
    assert d.x_train.shape == (50, 3072) and d.x_train.dtype == np.float32
    assert set(np.unique(d.y_val)) <= set(range(10)) and len(np.unique(d.y_val)) == 10
    # label 10 means digit 0; pixel (row r, column c, channel ch) of image i is feature
    # (r * 32 + c) * 3 + ch, scaled by 1/255
    full = load_svhn(tmp_path / "train_32x32.mat", tmp_path / "test_32x32.mat",
                     val_fraction=0.0)
    assert np.array_equal(full.y_train, np.where(ys[:, 0] == 10, 0, ys[:, 0]))
    i, r, c, ch = 5, 3, 17, 2
    assert full.x_train[i, (r * 32 + c) * 3 + ch] == pytest.approx(xs[r, c, ch, i] / 255)
    short = load_svhn(tmp_path / "train_32x32.mat", tmp_path / "test_32x32.mat", limit=10)
    assert len(short.y_train) + len(short.y_val) == 10 and len(short.y_test) == 10


def test_load_dataset_svhn_dir(tmp_path):
    _write_svhn(tmp_path / "train_32x32.mat", 20)
    _write_svhn(tmp_path / "test_32x32.mat", 5)
    d = load_dataset("svhn", svhn_dir=tmp_path)
    assert len(d.y_test) == 5
    with pytest.raises(DendrolabError, match="svhn-dir"):
        load_dataset("svhn")
    with pytest.raises(DendrolabError, match="unknown data set"):
        load_dataset("mnist")


def _one_line_error(call) -> str:
    with pytest.raises(DataError) as info:
        call()
    msg = str(info.value)
    assert "\n" not in msg and isinstance(info.value, DendrolabError)
    return msg


def test_svhn_bad_files(tmp_path):
    good = tmp_path / "test_32x32.mat"
    _write_svhn(good, 4)

    def load(p):
        return lambda: load_svhn(p, good)

    assert "no such SVHN file" in _one_line_error(load(tmp_path / "missing.mat"))
    text = tmp_path / "text.mat"
    text.write_text("hello, not a mat file\n" * 10)
    assert "not a readable MATLAB .mat file" in _one_line_error(load(text))
    keys = tmp_path / "keys.mat"
    scipy.io.savemat(str(keys), {"images": np.zeros((32, 32, 3, 2), np.uint8)})
    assert "no variable X or y" in _one_line_error(load(keys))
    shape = tmp_path / "shape.mat"
    scipy.io.savemat(str(shape), {"X": np.zeros((28, 28, 1, 2), np.uint8),
                                  "y": np.ones((2, 1), np.uint8)})
    assert "(32, 32, 3, N)" in _one_line_error(load(shape))
    count = tmp_path / "count.mat"
    scipy.io.savemat(str(count), {"X": np.zeros((32, 32, 3, 3), np.uint8),
                                  "y": np.ones((2, 1), np.uint8)})
    assert "y has shape" in _one_line_error(load(count))
    bad_labels = tmp_path / "labels.mat"
    scipy.io.savemat(str(bad_labels), {"X": np.zeros((32, 32, 3, 2), np.uint8),
                                       "y": np.array([[3], [12]], np.uint8)})
    assert "labels must be 0-10" in _one_line_error(load(bad_labels))

"""``dendrolab network train | evaluate`` through click's CliRunner (small, fast runs)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import scipy.io
from click.testing import CliRunner

from analysis.metrics import COLUMNS
from analysis.network.modelfile import load_model
from dendrolab.network_cli import network


def _run(*args: str):
    return CliRunner().invoke(network, list(args))


def _error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def _accuracy(output: str, which: str) -> str:
    match = re.search(rf"^{which} accuracy: ([\d.]+ %)$", output, re.MULTILINE)
    assert match, output
    return match.group(1)


def test_help_lists_the_commands():
    result = _run("--help")
    assert result.exit_code == 0
    assert "train" in result.output and "evaluate" in result.output


def test_train_then_evaluate_the_saved_model(tmp_path):
    out = tmp_path / "models" / "m.npz"
    result = _run("train", "--epochs", "3", "--hidden", "16", "--seed", "2", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "chosen on validation" in result.output
    test_acc = _accuracy(result.output, "test")
    _accuracy(result.output, "validation")
    _, cfg, meta = load_model(out)
    assert cfg.n_hidden == 16 and cfg.nl == 0.1 and meta["seed"] == 2
    assert meta["metrics"]["epochs"] == 3 and meta["metrics"]["data"] == "digits"
    again = _run("evaluate", str(out))
    assert again.exit_code == 0, again.output
    assert _accuracy(again.output, "test") == test_acc  # same split from the stored seed
    assert "device: none (ideal)" in again.output
    # an existing model file is not overwritten without --force
    assert "already exists" in _error_line(_run("train", "--epochs", "1", "--hidden", "16",
                                                "--out", str(out)))
    forced = _run("train", "--epochs", "1", "--hidden", "16", "--out", str(out), "--force")
    assert forced.exit_code == 0, forced.output


def test_train_with_measured_devices(tmp_path):
    rows = []
    for i, a in enumerate((3.0, 5.0, 9.0)):
        row = dict.fromkeys(COLUMNS, "")
        row.update(uuid=str(i), device_id=f"d{i}", metric="branch_a", value=a, unit="1",
                   quality="ok")
        rows.append(row)
    table = tmp_path / "metrics.csv"
    pd.DataFrame(rows, columns=COLUMNS).to_csv(table, index=False)
    out = tmp_path / "dev.npz"
    result = _run("train", "--epochs", "2", "--hidden", "16", "--devices", str(table),
                  "--device-param", "levels=8", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "a drawn per branch from 3 measured devices" in result.output
    assert "levels 8" in result.output
    assert re.search(r"^test accuracy with ideal synapses: [\d.]+ %$", result.output,
                     re.MULTILINE)
    dev = load_model(out)[2]["device"]
    assert dev.branch == "empirical" and dev.levels == 8
    ideal = _run("evaluate", str(out), "--ideal")
    assert "device: none (ideal)" in ideal.output
    stored = _run("evaluate", str(out))
    assert "3 measured devices" in stored.output


def test_svhn_from_mat_files(tmp_path):
    rng = np.random.default_rng(0)
    for name, n in (("train_32x32.mat", 40), ("test_32x32.mat", 12)):
        scipy.io.savemat(str(tmp_path / name), {
            "X": rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8),
            "y": rng.integers(1, 11, (n, 1)).astype(np.uint8)})
    result = _run("train", "--data", "svhn", "--svhn-dir", str(tmp_path), "--epochs", "1",
                  "--hidden", "8", "--out", str(tmp_path / "s.npz"))
    assert result.exit_code == 0, result.output
    assert "3072-8-10 (svhn: 9 hidden branches, 4 output branches)" in result.output
    # a digits model cannot be evaluated on SVHN
    _run("train", "--epochs", "1", "--hidden", "8", "--out", str(tmp_path / "d.npz"))
    msg = _error_line(_run("evaluate", str(tmp_path / "d.npz"), "--data", "svhn",
                           "--svhn-dir", str(tmp_path)))
    assert "layout" in msg


@pytest.mark.parametrize(("args", "needle"), [
    (("train", "--data", "svhn"), "svhn-dir"),
    (("train", "--data", "svhn", "--svhn-dir", "/nonexistent-dir"), "no such SVHN file"),
    (("train", "--hidden", "10", "--epochs", "1"), "divisible"),
    (("train", "--epochs", "1", "--devices", "/nonexistent.csv"), "no such metrics table"),
    (("train", "--epochs", "1", "--device-param", "levels"), "KEY=VALUE"),
    (("train", "--epochs", "1", "--device-param", "bogus=1"), "unknown device field"),
    (("evaluate", "/nonexistent/model.npz"), "no such model file"),
])
def test_one_line_errors(args, needle):
    assert needle in _error_line(_run(*args))


def test_bad_model_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_text("not a model\n" * 50)
    assert "not a dendrolab model file" in _error_line(_run("evaluate", str(bad)))

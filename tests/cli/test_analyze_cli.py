"""``dendrolab analyze`` end to end (a subprocess, as a user runs it): a folder of simulated runs
with corrupt, truncated and foreign files gives the tables and the offline report, exit 0 and one
warning line; bad input is one error line, exit 2, nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.analysis.test_report import BAD_FILES, make_folder


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dendrolab", *args], capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_folder(tmp_path_factory.mktemp("cli-analyze"))


def test_analyze_a_folder_with_bad_files(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run("analyze", str(data), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1, result.stderr
    assert f"{len(BAD_FILES)} file(s) skipped" in warnings[0]
    assert str(out / "problems.csv") in warnings[0]
    assert "analysed 6 run(s)" in result.stdout
    metrics = pd.read_csv(out / "metrics.csv")
    on_off = metrics[(metrics["protocol"] == "dendrite-relaxation")
                     & (metrics["metric"] == "on_off_ratio")]
    assert len(on_off) >= 1
    assert {"v_th", "g_linear", "iv_ratio"} <= set(metrics["metric"])
    assert len(pd.read_parquet(out / "metrics.parquet")) == len(metrics)
    assert {"all", "wafer", "die", "device"} == set(pd.read_csv(out / "summary.csv")["level"])
    assert sorted(Path(p).name for p in pd.read_csv(out / "problems.csv")["path"]) == sorted(
        BAD_FILES)
    page = (out / "report.html").read_text(encoding="utf-8")
    assert '<img src="data:image/png;base64,' in page
    assert "http://" not in page and "https://" not in page


def test_analyze_by_wafer_and_several_sources(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "w"
    result = run("analyze", str(data / "wafers"), str(data / "relax.h5"), "--out", str(out),
                 "--by", "wafer")
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["level"]) == {"wafer"}
    assert set(summary["wafer"]) == {"W1", "(no wafer)"}
    assert pd.read_csv(out / "problems.csv").empty


def one_line_error(result: subprocess.CompletedProcess, text: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and text in lines[0], result.stderr


def test_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    out = tmp_path / "out"
    one_line_error(run("analyze", str(tmp_path / "no-such-folder"), "--out", str(out)),
                   "no-such-folder")
    (tmp_path / "empty").mkdir()
    one_line_error(run("analyze", str(tmp_path / "empty"), "--out", str(out)), "no run files")
    assert not out.exists()
    (tmp_path / "run.h5").write_bytes(b"not hdf5")
    (tmp_path / "file").write_text("x")
    one_line_error(run("analyze", str(tmp_path / "run.h5"), "--out", str(tmp_path / "file")),
                   "file")

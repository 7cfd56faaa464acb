"""``dendrolab analyze`` end to end (a subprocess, as a user runs it): a folder of simulated runs
with corrupt, truncated and foreign files gives the tables and the offline report, exit 0 and one
warning line; bad input is one error line, exit 2, nothing written."""

from __future__ import annotations

import json
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


def test_analyze_wafer_is_by_wafer(data: Path, tmp_path: Path) -> None:
    """`dendrolab analyze wafer SOURCES` = `--by wafer` (the issue's spelling)."""
    out = tmp_path / "w"
    result = subprocess.run([sys.executable, "-m", "dendrolab", "analyze", "wafer",
                             str(data / "wafers"), "--out", str(out)], capture_output=True,
                            text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert set(pd.read_csv(out / "summary.csv")["level"]) == {"wafer"}
    clash = subprocess.run([sys.executable, "-m", "dendrolab", "analyze", "wafer",
                            str(data / "wafers"), "--by", "die", "--out", str(tmp_path / "x")],
                           capture_output=True, text=True, timeout=300, cwd=tmp_path)
    one_line_error(clash, "groups by wafer")


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


# ---------------------------------------------------------------------------------------------
# --scheduler and --export, in process through click's CliRunner


def invoke(*args: str):
    from click.testing import CliRunner

    from dendrolab.cli import main

    return CliRunner().invoke(main, ["analyze", *args])


@pytest.fixture(scope="module")
def bench_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dendrite, a soma and two synapse write-verify runs of the simulated bench."""
    from dendrolab.cli import _sim_bench
    from protocols.runner import run_protocol

    folder = tmp_path_factory.mktemp("cli-bench") / "runs"
    folder.mkdir()
    for name in ("dendrite-relaxation", "soma-iv", "synapse-write-verify"):
        run_protocol(name, _sim_bench(), folder / f"{name}.h5")
    run_protocol("synapse-write-verify", _sim_bench(), folder / "synapse-again.h5")
    return folder


@pytest.fixture(scope="module")
def analysed(bench_runs: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The folder analysed in process with the defaults, and with dask threads, no export."""
    root = tmp_path_factory.mktemp("cli-analysed")
    plain = invoke(str(bench_runs), "--out", str(root / "plain"))
    threads = invoke(str(bench_runs), "--out", str(root / "threads"), "--scheduler", "threads",
                     "--no-export")
    return {"root": root, "plain": plain, "threads": threads}


def test_threads_scheduler_gives_the_same_tables(analysed: dict) -> None:
    root, plain, threads = analysed["root"], analysed["plain"], analysed["threads"]
    assert plain.exit_code == threads.exit_code == 0, (plain.output, threads.output)
    assert "analysing" in plain.stderr and "analysing" in threads.stderr   # the progress bar
    for name in ("metrics.csv", "summary.csv"):
        a, b = (pd.read_csv(root / d / name) for d in ("plain", "threads"))
        pd.testing.assert_frame_equal(a, b)
    assert len(pd.read_csv(root / "plain" / "metrics.csv")) > 10


def test_export_is_on_for_synapse_runs_and_listed_in_the_report(analysed: dict) -> None:
    out, result = analysed["root"] / "plain", analysed["plain"]
    names = ("aihwkit_device.json", "neurosim_device.txt", "memtorch_params.yaml",
             "step_curve.csv")
    assert all((out / n).is_file() for n in names)
    assert "exported aihwkit_device.json" in result.stdout
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<h2>Exports</h2>" in page and all(n in page for n in names)
    aih = json.loads((out / "aihwkit_device.json").read_text())
    assert aih["conductance_uS"]["g_max"] > aih["conductance_uS"]["g_min"] > 0
    assert aih["measured"]["pulses_up"] > 0
    # two runs of the same simulated cell: one device, so no device-to-device spread
    assert aih["device"]["dw_min_dtod"] is None and aih["notes"]["dw_min_dtod"]
    off = analysed["root"] / "threads"          # --no-export
    assert not (off / "aihwkit_device.json").exists()
    assert "<h2>Exports</h2>" not in (off / "report.html").read_text(encoding="utf-8")


def test_export_without_synapse_runs_warns(bench_runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke(str(bench_runs / "soma-iv.h5"), "--out", str(out), "--export")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("warning")]
    assert lines == ["warning: no synapse runs (synapse-write-verify, synapse-ltp-ltd): "
                     "nothing exported"]
    assert not (out / "aihwkit_device.json").exists()
    assert (out / "metrics.csv").is_file()


def test_scheduler_without_dask_is_one_line_naming_the_extra(bench_runs: Path, tmp_path: Path,
                                                             monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "dask", None)     # as if the extra were not installed
    out = tmp_path / "out"
    result = invoke(str(bench_runs), "--out", str(out), "--scheduler", "threads")
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --scheduler threads: dask is not "
                                                   "installed"), result.stderr
    assert "pip install 'dendrolab[parallel]'" in lines[0]
    assert not out.exists()
    # the default needs no dask, and without synapse runs says nothing about exports
    default = invoke(str(bench_runs / "soma-iv.h5"), "--out", str(out))
    assert default.exit_code == 0 and "warning" not in default.stderr


def test_unknown_scheduler_is_one_line(bench_runs: Path, tmp_path: Path) -> None:
    result = invoke(str(bench_runs), "--out", str(tmp_path / "o"), "--scheduler", "gpu")
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("error: --scheduler 'gpu': use threads")
    assert not (tmp_path / "o").exists()

"""benchmarks/compare.py end to end on a tiny sweep: behaviour only, never speed.

Runs dendrolab's own cases and the two raw transports (CI does not install PyMeasure or QCoDeS;
they are hidden here so the "not installed" path is exercised either way), one repeat, no memory
run, one short kill -9 run of dendrolab.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "compare.py"
N = 50
RAN = ("raw-pyvisa-sim", "raw-dendrosim", "dendrolab", "dendrolab-2msg", "dendrolab-buffered")
HIDDEN = ("pymeasure", "qcodes")
STORES = ("raw-pyvisa-sim", "dendrolab", "dendrolab-2msg", "dendrolab-buffered")

sys.path.insert(0, str(ROOT / "benchmarks"))

from compare_cases import HIDE_ENV, missing  # noqa: E402
from compare_cases.common import count_csv_rows  # noqa: E402
from compare_cases.report import NOT_INSTALLED  # noqa: E402


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("compare")
    env = {**os.environ, HIDE_ENV: ",".join(HIDDEN)}
    cmd = [sys.executable, str(SCRIPT), "--quick", "--points", str(N), "--peer-points", str(N),
           "--skip-memory", "--crash-cases", "dendrolab", "--crash-seconds", "0.2",
           "--no-plot", "--out", str(out), "--cases", ",".join(RAN + HIDDEN)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stdout


def rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "compare.csv", newline="") as f:
        return {r["case"]: r for r in csv.DictReader(f)}


def test_one_row_per_case_in_csv_and_markdown(run: tuple[Path, str]) -> None:
    out, stdout = run
    table = rows(out)
    assert list(table) == [*RAN, *HIDDEN]
    md = (out / "compare.md").read_text()
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| case | N |"))
    end = lines.index("", start)
    main_table = [line.split(" | ")[0].removeprefix("| ") for line in lines[start + 2 : end]]
    assert main_table == [*RAN, *HIDDEN]
    assert md in stdout  # the table is printed too
    assert "Targets" in md and "raw-dendrosim transport" in md


def test_rows_on_disk_verified_and_times_positive(run: tuple[Path, str]) -> None:
    table = rows(run[0])
    for case in RAN:
        r = table[case]
        assert r["status"] == "ok", r
        layer = "full" if case in STORES else "transport1"
        assert float(r[f"{layer}_us_median"]) > 0
        assert float(r[f"{layer}_us_min"]) <= float(r[f"{layer}_us_max"])
        assert float(r["ttfp_s_median"]) > 0
        if case in STORES:
            assert int(r["rows_on_disk"]) == N and r["rows_verified"] == "True"
    assert float(table["raw-dendrosim"]["transport2_us_median"]) > 0
    assert float(table["dendrolab"]["driver_us_median"]) > 0
    assert float(table["dendrolab"]["storage_us_median"]) > 0


def test_hidden_peers_reported_not_installed(run: tuple[Path, str]) -> None:
    table = rows(run[0])
    for case in HIDDEN:
        assert table[case]["status"] == NOT_INSTALLED
        assert table[case]["full_us_median"] == ""
    assert NOT_INSTALLED in (run[0] / "compare.md").read_text()


def test_crash_run_recovers_at_most_what_was_acquired(run: tuple[Path, str]) -> None:
    r = rows(run[0])["dendrolab"]
    acquired, recovered = int(r["crash_acquired"]), int(r["crash_recovered"])
    assert acquired > 0
    assert 0 <= recovered <= acquired
    assert rows(run[0])["raw-dendrosim"]["crash_acquired"] == ""  # only dendrolab was killed


def test_missing_honours_hide_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(HIDE_ENV, "pymeasure")
    assert missing("pymeasure") == ["pymeasure"]
    assert missing("dendrolab") == []


def test_csv_row_count_skips_header_labels_and_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(b"#Procedure: <x>\n#\tPoints: 3\nVoltage (V),Current (A),Time (s)\n"
                     b"0.0,1e-09,0.0\n0.1,2e-09,1e-05\n0.2,3e-0")
    assert count_csv_rows(path) == 2

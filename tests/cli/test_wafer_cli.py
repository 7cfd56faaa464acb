"""``dendrolab wafer run`` / ``wafer resume`` end to end (subprocesses, as a user runs them):
a small wafer on the packaged simulated bench, and bad input as one line, exit 2, with nothing
opened or written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from protocols.runfile import RunReader
from protocols.wafer import JOURNAL, journal_devices


def run(*args: str, cwd=None, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dendrolab", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300, input=stdin)


def one_line_error(result: subprocess.CompletedProcess, text: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and text in lines[0], result.stderr


def test_wafer_run_then_resume_on_the_simulated_bench(tmp_path: Path) -> None:
    out = tmp_path / "wafers"
    result = run("wafer", "run", "wafer-iv", "read", "--sim", "--wafer", "W1", "--out", str(out),
                 "--dies", "2,0;3,0", "--sites", "D00,D11")
    assert result.returncode == 0, result.stderr
    assert "of 4 devices" in result.stdout
    directory = out / "W1"
    states = {(r["col"], r["row"], r["site"]): r for r in journal_devices(directory)}
    assert sorted(states) == [(2, 0, 0), (2, 0, 5), (3, 0, 0), (3, 0, 5)]
    done = [d for d, r in states.items() if r["state"] == "done"]
    assert f"{len(done)} done" in result.stdout
    for col, row, site in done:
        for proto in ("wafer-iv", "read"):
            with RunReader(directory / f"{col}_{row}_{site}" / f"{proto}.h5") as reader:
                assert reader.status == "completed"
                assert reader.attrs["protocol_name"] == proto
                assert (reader.attrs["die_col"], reader.attrs["subsite_id"]) == (col, site)
    stamps = {p: p.stat().st_mtime_ns for p in directory.rglob("*.h5")}
    # a finished wafer resumes to the same result, touching no run file
    again = run("wafer", "resume", str(directory))
    assert again.returncode == 0, again.stderr
    assert f"{len(done)} done" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in directory.rglob("*.h5")} == stamps
    # the same wafer again is refused: resume it instead
    one_line_error(run("wafer", "run", "wafer-iv", "--sim", "--wafer", "W1", "--out", str(out)),
                   "wafer resume")


@pytest.fixture
def dead_bench(tmp_path: Path) -> Path:
    """Roles whose VISA library cannot load: any instrument I/O would fail with that."""
    bench = tmp_path / "bench.yaml"
    bench.write_text('visa_library: "missing.yaml@dendrosim"\ninstruments:\n'
                     '  smu: {address: "USB0::0x05E6::0x2450::04488851::INSTR", model: "2450"}\n'
                     '  prober: {address: "TCPIP0::192.0.2.20::35555::SOCKET", '
                     'model: "SENTIO"}\n')
    return bench


@pytest.mark.parametrize("args, text", [
    (["--sites", "D00,Q7"], "--sites"),
    (["--dies", "3,4;5"], "--dies"),
    (["--wafer", "a b"], "wafer id"),
])
def test_bad_input_is_one_line_and_opens_nothing(tmp_path, dead_bench, args, text) -> None:
    base = ["wafer", "run", "wafer-iv", "--bench", str(dead_bench), "--wafer", "W1",
            "--out", str(tmp_path / "out")]
    result = run(*base, *args)
    one_line_error(result, text)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_missing_prober_role_is_one_line(tmp_path) -> None:
    bench = tmp_path / "b.yaml"
    bench.write_text('visa_library: "missing.yaml@dendrosim"\ninstruments:\n'
                     '  smu: {address: "USB0::0x05E6::0x2450::04488851::INSTR"}\n')
    one_line_error(run("wafer", "run", "wafer-iv", "--bench", str(bench), "--wafer", "W1",
                       "--out", str(tmp_path / "out")), "no role 'prober'")
    one_line_error(run("wafer", "run", "wafer-iv", "--bench", str(bench), "--sim", "--wafer",
                       "W1"), "not both")


def test_unknown_die_is_one_line_and_writes_nothing(tmp_path) -> None:
    out = tmp_path / "out"
    one_line_error(run("wafer", "run", "wafer-iv", "--sim", "--wafer", "W1", "--out", str(out),
                       "--dies", "2,0;77,3"), "no die at column 77, row 3")
    assert not (out / "W1" / JOURNAL).exists() and not list(out.rglob("*.h5"))


def test_resume_of_a_folder_without_a_journal(tmp_path) -> None:
    one_line_error(run("wafer", "resume", str(tmp_path)), "no wafer journal")


# ---------------------------------------------------------------------------------------------
# --manual: the operator answers on stdin


def test_manual_without_dies_is_one_line_and_opens_nothing(tmp_path, dead_bench) -> None:
    out = tmp_path / "out"
    base = ["wafer", "run", "wafer-iv", "--bench", str(dead_bench), "--wafer", "W1",
            "--out", str(out), "--manual"]
    one_line_error(run(*base, "--sites", "0,1"), "--manual needs --dies")
    one_line_error(run(*base, "--dies", "3,4;5,6"), "--manual needs --sites")
    one_line_error(run(*base, "--dies", "3,4", "--sites", "0", "--map", "x.map"), "--map")
    assert not out.exists() or not any(out.iterdir())


def test_manual_skip_abort_then_resume_end_to_end(tmp_path) -> None:
    """On the packaged simulated bench with nobody touching the needles down: a confirmed
    device reads open at the contact check, a skipped one is journalled 'operator skipped', an
    abort exits 1 with the resume hint; the resume asks only about the device left."""
    out = tmp_path / "wafers"
    first = run("wafer", "run", "wafer-iv", "--sim", "--wafer", "WM", "--out", str(out),
                "--manual", "--dies", "2,0;3,0;4,0", "--sites", "D00", stdin="\ns\na\n")
    assert first.returncode == 1, first.stderr
    assert "Traceback" not in first.stderr
    assert "[3/3] place the needles on die (4, 0) site 0" in first.stderr
    assert "aborted: operator aborted at die (4, 0) site 0" in first.stderr
    assert "wafer resume" in first.stderr
    assert "0 done, 2 skipped of 3 devices" in first.stdout
    directory = out / "WM"
    states = {(r["col"], r["row"], r["site"]): r for r in journal_devices(directory)}
    assert {d: (r["state"], r["reason"]) for d, r in states.items()} == {
        (2, 0, 0): ("skipped", "contact: open"), (3, 0, 0): ("skipped", "operator skipped")}
    again = run("wafer", "resume", str(directory), stdin="s\n")
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("place the needles") == 1 and "die (4, 0)" in again.stderr
    assert "0 done, 3 skipped of 3 devices" in again.stdout
    # a finished wafer asks nothing
    done = run("wafer", "resume", str(directory), stdin="")
    assert done.returncode == 0 and "place the needles" not in done.stderr
    # end of input is an abort too (resumable), never a traceback
    eof = run("wafer", "run", "read", "--sim", "--wafer", "WE", "--out", str(out), "--manual",
              "--dies", "2,0", "--sites", "0", stdin="")
    assert eof.returncode == 1 and "Traceback" not in eof.stderr
    assert "aborted: no answer from the operator" in eof.stderr
    assert (out / "WE" / JOURNAL).exists() and not list((out / "WE").rglob("*.h5"))

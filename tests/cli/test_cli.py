"""The ``dendrolab`` command line end to end (subprocesses, as a user runs it)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dendrolab.errors import ProtocolError


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dendrolab", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def test_help_is_fast_and_lists_commands():
    result = run("--help")
    assert result.returncode == 0
    assert "demo" in result.stdout and "params" in result.stdout


def test_help_does_not_import_the_heavy_stack():
    code = ("import sys, dendrolab.cli; "
            "print(sorted(m for m in ('numpy', 'h5py', 'pyvisa', 'sim_backend') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_params_lists_presets_and_parameters_with_units():
    listing = run("params")
    assert listing.returncode == 0 and "li2020-optimized" in listing.stdout
    table = run("params", "li2020-original")
    assert "[dendrite]" in table.stdout and "tau_r_s" in table.stdout and "0.003" in table.stdout


def test_bad_preset_is_one_line_exit_2_no_traceback():
    result = run("params", "no-such-preset")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("error: no-such-preset")


def test_demo_runs_protocols_into_hdf5_and_writes_the_report(tmp_path):
    result = run("demo", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    assert (out / "physics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    runs = sorted((out / "runs").glob("*.h5"))
    assert len(runs) >= 8 and len(list((out / "runs").glob("*.png"))) == len(runs)
    report = (out / "report.md").read_text()
    assert all(f"## {p.stem}" in report for p in runs)
    assert result.stdout.count(": completed,") == len(runs)
    # The unit fires only above an amplitude window (ED7d), visible in the summary line.
    unit_line = next(line for line in result.stdout.splitlines()
                     if line.startswith("unit spikes"))
    counts = [int(part.rsplit(":", 1)[1]) for part in unit_line.split(": ", 1)[1].split(", ")]
    assert counts[0] == 0 and counts[-1] > counts[2] > 0
    # The runs are analysed into the HTML report, and the headline metrics are printed.
    assert (out / "analysis" / "report.html").is_file()
    assert (out / "analysis" / "metrics.csv").is_file()
    assert "## Analysis" in report
    heads = dict(line.strip().split(": ", 1) for line in result.stdout.splitlines()
                 if line.startswith("  ") and ": " in line)
    assert float(heads["soma R_on"].split()[0]) == pytest.approx(2.0, rel=0.05)
    assert float(heads["dendrite ON/OFF at read"]) > 5
    assert float(heads["synapse NL_LTP (NeuroSim label)"]) > 0
    # The network section: digits with and without dendrites, and with the measured devices.
    net = next(line for line in result.stdout.splitlines() if line.startswith("network (digits"))
    accs = [float(a) for a in re.findall(r"([0-9.]+)% with dendrites", net) + re.findall(
        r"([0-9.]+)% without", net)]
    assert len(accs) == 2 and min(accs) > 85
    assert "power advantage" in net
    assert "network with the measured simulated devices" in result.stdout
    # Hardware inference: the network written onto the simulated board and run on test digits.
    board = next(line for line in result.stdout.splitlines() if line.startswith("board 64-32-10"))
    acc, agree = re.findall(r"accuracy ([0-9.]+)%.*agrees on ([0-9.]+)%", board)[0]
    assert float(acc) > 60 and float(agree) >= 80
    assert (out / "board" / "network-infer.h5").is_file()
    assert "## Hardware inference on the simulated board" in report
    assert (out / "network" / "network_digits.npz").is_file()
    assert "## Network from the measured devices" in report


def test_protocols_lists_the_builtins_with_figures():
    result = run("protocols")
    assert result.returncode == 0
    assert "dendrite-amplitude-sweep" in result.stdout and "ED2a" in result.stdout


def test_check_prints_the_plan_and_duration_without_io():
    result = run("check", "dendrite-relaxation", "--sim")
    assert result.returncode == 0, result.stderr
    assert "dendrite-relaxation" in result.stdout
    assert "s" in result.stdout and "step" in result.stdout.lower()


def test_run_inspect_plot_end_to_end(tmp_path):
    out = tmp_path / "read.h5"
    result = run("run", "read", "--sim", "--out", str(out), "--operator", "ada",
                 "--sample", "S1")
    assert result.returncode == 0, result.stderr
    assert out.exists()
    info = run("inspect", str(out))
    assert info.returncode == 0
    assert "status     completed" in info.stdout and "operator ada" in info.stdout
    png = run("plot", str(out))
    assert png.returncode == 0 and out.with_suffix(".png").exists()


@pytest.mark.parametrize(("args", "message"), [
    (("run", "read"), "no bench: give --bench FILE"),
    (("run", "read", "--sim", "--bench", "x.yaml"), "either --bench FILE or --sim"),
    (("run", "no-such-protocol", "--sim"), "no-such-protocol"),
    (("check", "read", "--bench", "missing.yaml"), "missing.yaml: no such bench file"),
    (("inspect", "missing.h5"), "missing.h5"),
    (("resume", "missing.h5"), "missing.h5"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, args, message):
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert message in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_unsafe_protocol_is_refused_before_any_io(tmp_path):
    bad = tmp_path / "too-hot.yaml"
    bad.write_text("protocol: too-hot\ndevice: d1\ninstruments: {smu: smu}\n"
                   "limits: {voltage_max_v: 1, current_max_a: 1e-3, energy_max_j: 1}\n"
                   "steps:\n  - smu_setup: {role: smu, compliance_a: 1e-4, nplc: 0.01}\n"
                   "  - read: {role: smu, v: 5.0}\n")
    result = run("run", str(bad), "--sim", "--out", str(tmp_path / "r.h5"), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "too-hot.yaml:" in result.stderr
    assert not (tmp_path / "r.h5").exists()


# --- paths and long values: one line, exit 2, nothing written, no instrument touched ----------


def one_line_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    err = result.stderr
    assert "Traceback" not in err and err.count("\n") == 1 and err.startswith("error: "), err
    assert len(err) < 400, len(err)
    for needle in needles:
        assert needle in err, err
    return err


def test_paths_the_file_system_refuses_are_one_line_errors(tmp_path):
    long_name = "p" * 300
    (tmp_path / "afile").write_text("not a directory")
    (tmp_path / "adir").mkdir()
    cases = [
        (("check", f"{long_name}.yaml"), ("File name too long",)),
        (("run", f"{long_name}.yaml", "--sim"), ("File name too long",)),
        (("check", "read", "--bench", f"{long_name}.yaml"), ("File name too long",)),
        (("run", "read", "--sim", "--out", f"{long_name}.h5"),
         ("the file name is 303 bytes", "at most")),
        (("run", "read", "--sim", "--out", f"{long_name}/x.h5"),
         ("the directory name", "is 300 bytes")),
        (("run", "read", "--sim", "--out", "afile/x.h5"),
         ("afile/x.h5: afile is a file, not a directory",)),
        (("run", "read", "--sim", "--out", "afile/sub/x.h5"), ("afile is a file",)),
        (("run", "read", "--sim", "--out", "afile"), ("afile already exists",)),
    ]
    for args, needles in cases:
        one_line_error(run(*args, cwd=tmp_path), *needles)
    usage = run("run", "read", "--sim", "--out", "adir", cwd=tmp_path)  # click's usage error
    assert usage.returncode == 2 and "'adir' is a directory" in usage.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "afile"]
    assert list((tmp_path / "adir").iterdir()) == []


def test_the_out_path_is_checked_before_the_protocol_and_the_bench(tmp_path):
    """No protocol file, no bench file: the --out error still comes first, so no instrument
    can have been opened (or even a protocol read) before a bad output path is refused."""
    (tmp_path / "afile").write_text("x")
    result = run("run", "no-such-protocol", "--bench", "no-such-bench.yaml", "--out",
                 "afile/x.h5", cwd=tmp_path)
    one_line_error(result, "afile is a file, not a directory")


def test_run_creates_missing_directories_for_out(tmp_path):
    result = run("run", "read", "--sim", "--out", "new/sub/r.h5", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "new" / "sub" / "r.h5").is_file()


def test_unwritable_out_directory_is_refused_first(tmp_path, monkeypatch):
    """In process, with the permission answer forced (root may write anywhere): the refusal
    comes before the protocol is even looked up."""
    from click.testing import CliRunner

    from dendrolab import cli

    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(cli.os, "access", lambda p, mode: False if Path(p) == Path("locked")
                        else real_access(p, mode))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli.main, ["run", "no-such-protocol", "--sim", "--out",
                                           "locked/r.h5"])
    assert result.exit_code == 2
    assert "error: locked/r.h5: cannot write in locked (permission denied)" in result.output
    assert list(locked.iterdir()) == []


def test_huge_values_come_back_clipped(tmp_path):
    """A 1 MB step name used to be echoed whole (a 1 MB line on stderr)."""
    proto = tmp_path / "big.yaml"
    proto.write_text("protocol: big\ninstruments: {smu: smu}\n"
                     "limits: {voltage_max_v: 1, current_max_a: 1e-3, energy_max_j: 1}\n"
                     "steps:\n  - smu_setup: {role: smu, compliance_a: 1e-4}\n"
                     f"  - read: {{role: smu, v: 0.1, name: {'n' * 1_000_000}}}\n")
    err = one_line_error(run("check", str(proto)), "big.yaml:6: steps[1].read.name")
    assert "(1,000,000 chars)" in err
    err = one_line_error(run("run", "read", "--sim", "--device", "d" * 100_000))  # argv limit
    assert "(100,000 chars)" in err


def test_yaml11_sexagesimal_count_is_refused(tmp_path):
    proto = tmp_path / "s.yaml"
    proto.write_text("protocol: s\ninstruments: {smu: smu}\n"
                     "limits: {voltage_max_v: 1, current_max_a: 1e-3, energy_max_j: 1}\n"
                     "steps:\n  - smu_setup: {role: smu, compliance_a: 1e-4}\n"
                     "  - read: {role: smu, v: 0.1, count: 1:20}\n")
    one_line_error(run("check", str(proto)), "s.yaml:6: steps[1].read.count", "base-60")


@pytest.mark.parametrize("exc", [
    ProtocolError("first line\nsecond line " + "v" * 1_000_000),
    OSError(36, "File name too long", "f" * 5_000),
])
def test_the_last_guard_prints_one_short_line(monkeypatch, exc):
    """Whatever a command raises of ours (or the file system's), stderr gets one clipped line."""
    from click.testing import CliRunner

    import protocols.library
    from dendrolab import cli

    def refuse():
        raise exc

    monkeypatch.setattr(protocols.library, "list_builtins", refuse)
    result = CliRunner().invoke(cli.main, ["protocols"])
    assert result.exit_code == 2 and not isinstance(result.exception, type(exc))
    line = result.output
    assert line.startswith("error: ") and line.count("\n") == 1 and len(line) <= 1010, line[:200]
    assert "first line second line" in line or "File name too long" in line

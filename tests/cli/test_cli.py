"""The ``dendrolab`` command line end to end (subprocesses, as a user runs it)."""

from __future__ import annotations

import subprocess
import sys

import pytest


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

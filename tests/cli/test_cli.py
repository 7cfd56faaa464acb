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


@pytest.mark.parametrize("preset", ["li2020-original", "li2020-optimized"])
def test_demo_writes_the_physics_figure(tmp_path, preset):
    result = run("demo", "--out", str(tmp_path / "out"), "--preset", preset)
    assert result.returncode == 0, result.stderr
    png = tmp_path / "out" / "physics.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The unit fires only above an amplitude window (ED7d), visible in the summary line.
    unit_line = next(line for line in result.stdout.splitlines() if line.startswith("unit"))
    counts = [int(part.rsplit(":", 1)[1]) for part in unit_line.split(": ", 1)[1].split(", ")]
    assert counts[0] == 0 and counts[-1] > counts[2] > 0

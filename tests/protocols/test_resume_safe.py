"""Every way a run ends leaves the instruments safe and the record complete.

Through the real stack on ``@dendrosim``: a query cut by a signal between its write and its read
(raised from inside the VISA transport, deterministic, never a timed signal), and a run killed
after its last step and then resumed.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import pyvisa
from pyvisa import constants

from dendrolab.cli import _sim_bench
from dendrolab.errors import RunFileError
from instruments import bench_config
from protocols.library import builtin_path
from protocols.runfile import RunReader
from protocols.runner import RUN_CLOCK_EVENT, resume_run, run_protocol
from protocols.safety import RunInterrupted
from sim_backend.visa import DendroSimVisaLibrary

BENCH = _sim_bench()
SMU = "USB0::0x05E6::0x2450::04488850::INSTR"
SMU_SESSION = "USB0::0x05E6::0x2450::04488850::0::INSTR"   # the name pyvisa canonicalises to
READ = ':READ? "defbuffer1",READ,SOUR'


def fresh_library() -> DendroSimVisaLibrary:
    lib = pyvisa.ResourceManager("@dendrosim").visalib
    lib.reset()
    return lib


class CutQuery:
    """Wraps the library's write/read: records the SMU's traffic and raises RunInterrupted
    inside the ``n``-th read of a spot reading, after its write, before its reply is taken."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, n: int) -> None:
        self.n, self.reads, self.traffic = n, 0, []
        self.last = ""
        write, read = DendroSimVisaLibrary.write, DendroSimVisaLibrary.read

        def is_smu(lib: DendroSimVisaLibrary, session: int) -> bool:
            attrs = lib.sessions[session].attrs
            return attrs[constants.ResourceAttribute.resource_name] == SMU_SESSION

        def cut_write(lib, session, data):
            if is_smu(lib, session):
                self.last = bytes(data).decode().strip()
                self.traffic.append(self.last)
            return write(lib, session, data)

        def cut_read(lib, session, count):
            if is_smu(lib, session) and self.last == READ:
                self.reads += 1
                if self.reads == self.n:
                    self.traffic.append("<interrupted>")
                    raise RunInterrupted(signal.SIGTERM)
            return read(lib, session, count)

        monkeypatch.setattr(DendroSimVisaLibrary, "write", cut_write)
        monkeypatch.setattr(DendroSimVisaLibrary, "read", cut_read)

    def after_cut(self) -> list[str]:
        return self.traffic[self.traffic.index("<interrupted>") + 1:]


def test_a_query_cut_by_a_signal_does_not_shift_the_safe_state(tmp_path, monkeypatch):
    """SIGTERM inside a 40-reading ``read`` at 0.2 V: the ramp down starts at 0.2 V, and the
    after-snapshot reads the SMU as it is (0 V, output off)."""
    lib = fresh_library()
    protocol = tmp_path / "long-read.yaml"
    protocol.write_text(builtin_path("read").read_text().replace("count: 10", "count: 40"))
    cut = CutQuery(monkeypatch, n=20)
    with pytest.raises(RunInterrupted):
        run_protocol(protocol, BENCH, tmp_path / "cut.h5")
    after = cut.after_cut()
    level = after.index(":SOUR:VOLT?")
    ramp = [c for c in after[level + 1:] if c.startswith(":SOUR:VOLT ")][:5]
    assert ramp == [":SOUR:VOLT 0.16", ":SOUR:VOLT 0.12", ":SOUR:VOLT 0.08", ":SOUR:VOLT 0.04",
                    ":SOUR:VOLT 0"]
    assert lib.bench.levels == {}                    # no terminal is sourced any more
    with RunReader(tmp_path / "cut.h5") as reader:
        assert reader.status == "interrupted"
        after_smu = reader.instruments["smu"].settings_after["instrument"]
    assert after_smu["output"] == "0"
    assert after_smu["source_function"] == "VOLT"
    assert float(after_smu["source_level"]) == 0.0
    assert float(after_smu["source_limit"]) == pytest.approx(1e-4)


def test_kill_after_the_last_step_then_resume_leaves_instruments_safe(tmp_path):
    """A SIGKILL once every step is done: the resume opens the bench, ramps the SMU (left
    sourcing, as a killed run leaves a real one) to 0 V and off, writes the after-snapshots and
    the run clock, and only then marks the run completed."""
    out = tmp_path / "killed.h5"
    child = ("import os, signal, sys\n"
             "from dendrolab.cli import _sim_bench\n"
             "from protocols.runner import run_protocol\n"
             "def progress(step, _duration):\n"
             "    if step.index == 2:\n"
             "        os.kill(os.getpid(), signal.SIGKILL)\n"
             "run_protocol('read', _sim_bench(), sys.argv[1], progress=progress)\n")
    proc = subprocess.run([sys.executable, "-c", child, str(out)], capture_output=True,
                          timeout=300)
    assert proc.returncode == -signal.SIGKILL
    with RunReader(out) as reader:
        assert reader.status == "running" and reader.next_step is None
        assert reader.instruments["smu"].settings_after is None

    lib = fresh_library()
    smu = pyvisa.ResourceManager("@dendrosim").open_resource(SMU)
    smu.write(":SOUR:VOLT 0.3")
    smu.write(":OUTP ON")
    assert lib.bench.levels                          # the SMU drives its terminal
    path, start = resume_run(out)
    assert (path, start) == (out, 3)
    assert lib.bench.levels == {}
    with RunReader(out) as reader:
        assert reader.status == "completed"
        after = reader.instruments["smu"].settings_after
        events = [e["kind"] for e in reader.events()]
        assert all(s.status == "done" and s.attempts == 1 for s in reader.steps)
    assert after is not None and after["instrument"]["output"] == "0"
    assert float(after["instrument"]["source_level"]) == 0.0
    assert RUN_CLOCK_EVENT in events and "resume_reread" not in events   # nothing re-measured


def test_resume_of_a_completed_run_opens_nothing(tmp_path, monkeypatch):
    fresh_library()
    path = run_protocol("read", BENCH, tmp_path / "done.h5")
    def no_io(self):
        raise AssertionError("instruments were opened to resume a completed run")

    monkeypatch.setattr(bench_config.InstrumentSet, "open", no_io)
    with pytest.raises(RunFileError, match="completed run"):
        resume_run(path)
    assert Path(path).is_file()

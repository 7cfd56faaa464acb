"""Kill -9 harness for run files: a child that writes or resumes a run and reports durable rows,
and the parent's checks. The child prints a count only after the writer returned it; the parent
judges a killed file by those printed counts alone, never by guessing.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from protocols.runfile import (
    DatasetSpec,
    InstrumentSpec,
    RunLayout,
    RunReader,
    RunWriter,
    StepSpec,
)
from protocols.runfile_layout import LAYOUT_VERSION

# (name, n_points, rows actually produced, block_points, mode, largest write_block)
PLAN = (
    ("small", 300, 300, 64, "append", 1),
    ("bulk", 120_000, 120_000, 8192, "blocks", 20_000),
    ("timed", 20_000, 20_000, 4096, "append", 1),
    ("aligned", 80_000, 80_000, 10_000, "blocks", 10_000),
    ("short", 9_000, 6_500, 2048, "blocks", 3_000),
)
MAX_IN_FLIGHT = {i: max(p[3], p[5]) for i, p in enumerate(PLAN)}


def layout() -> RunLayout:
    """The crash scenario's layout: contiguous and chunked steps, append and block paths."""
    steps = tuple(
        StepSpec(name, n, (DatasetSpec("voltage_v", "V"), DatasetSpec("current_a", "A"),
                           DatasetSpec("index", "", "int64")), block_points=block,
                 instrument="smu", params={"mode": mode})
        for name, n, _, block, mode, _ in PLAN)
    return RunLayout(steps, (InstrumentSpec("smu", {"idn": "SIM,2450"}, {"nplc": 0.01}),))


def expected(step: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The values the child writes at (step, row): any loss or duplicate shows up."""
    return step * 1e7 + rows, -(rows * 1e-9) - step, rows.astype(np.int64)


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def child(path: str) -> None:
    """Write the plan into ``path`` (resuming it if it exists), reporting every durable count.

    Run as ``python crash_writer.py PATH``; one line each, stdout flushed per line: ``S`` (imports
    done), ``C`` (created) or ``R <reset_step> <next_step>`` (resumed), ``A`` (settings_after
    rewritten: a whole compressed slot chunk replaced), ``F <step> <rows>`` (durable),
    ``D <step> <rows>`` (step done), ``E <step>`` (its event logged), ``X`` (closed as completed).
    """
    rng = random.Random(os.getpid())
    _say("S")
    if os.path.exists(path):
        writer = RunWriter.resume(path, max_block_s=0.002)
        _say(f"R {-1 if writer.reset_step is None else writer.reset_step} "
             f"{-1 if writer.next_step is None else writer.next_step}")
    else:
        meta = {"uuid": str(uuid.uuid4()), "start_time": "2026-01-01T00:00:00Z",
                "protocol": "crash test plan\n", "operator": "crash_writer", "sim_seed": 1}
        writer = RunWriter.create(path, meta, layout(), max_block_s=0.002)
        _say("C")
        writer.log_event("started", {"pid": os.getpid()})
    writer.set_settings_after("smu", {"nplc": 0.01, "output": True, "pid": os.getpid()})
    _say("A")
    start = writer.next_step
    for i in range(len(PLAN) if start is None else start, len(PLAN)):
        _, _, produce, _, mode, biggest = PLAN[i]
        with writer.step(i) as step:
            durable = 0
            if mode == "append":
                v, a, k = expected(i, np.arange(produce))
                for row in range(produce):
                    step.append(float(v[row]), float(a[row]), int(k[row]))
                    if step.durable_rows != durable:
                        durable = step.durable_rows
                        _say(f"F {i} {durable}")
            else:
                row = 0
                while row < produce:
                    n = min(produce - row, rng.randint(1, biggest))
                    v, a, k = expected(i, np.arange(row, row + n))
                    durable = step.write_block(voltage_v=v, current_a=a, index=k)
                    row += n
                    _say(f"F {i} {durable}")
            _say(f"D {i} {step.end()}")
        if writer._next_event < writer.layout.event_slots:  # a fresh slot chunk per step
            writer.log_event("step_done", {"step": i, "pid": os.getpid()})
            _say(f"E {i} {os.getpid()}")
    writer.set_settings_after("smu", {"nplc": 0.01, "output": False})
    writer.close("completed")
    _say("X")


@dataclass
class Reported:
    """What the children printed so far for one file: the parent's only evidence."""

    created: bool = False
    completed: bool = False
    rows: dict[int, int] = field(default_factory=dict)
    done: set[int] = field(default_factory=set)
    prior: dict[int, int] = field(default_factory=dict)
    events: set[tuple[int, int]] = field(default_factory=set)

    def feed(self, line: str) -> None:
        parts = line.split()
        if not parts:
            return
        tag = parts[0]
        if tag in ("C", "R"):
            self.created = True
        elif tag == "F":
            self.rows[int(parts[1])] = int(parts[2])
        elif tag == "D":
            self.rows[int(parts[1])] = int(parts[2])
            self.done.add(int(parts[1]))
        elif tag == "E":
            self.events.add((int(parts[1]), int(parts[2])))
        elif tag == "X":
            self.completed = True

    def before_resume(self, path: Path) -> None:
        """A resume keeps done steps and clears the unfinished one by design, so from now on the
        (already checked) file state is what is owed: done steps in full, others nothing."""
        with RunReader(path) as reader:
            for info in reader.steps:
                self.rows[info.index] = info.rows if info.status == "done" else 0
                self.prior[info.index] = info.rows  # still there if killed before the reset
                if info.status == "done":
                    self.done.add(info.index)


def run_child(path: Path, kill_after_s: float | None) -> tuple[list[str], bool]:
    """Start the child; SIGKILL it ``kill_after_s`` after it reported 'S'. Returns its lines and
    whether the kill landed before it finished."""
    here = Path(__file__).resolve()
    proc = subprocess.Popen([sys.executable, str(here), str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=here.parents[2])
    assert proc.stdout is not None
    lines = [proc.stdout.readline().strip()]
    killed = False
    if kill_after_s is not None:
        time.sleep(kill_after_s)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            killed = True
    rest, errors = proc.communicate()
    if not killed and proc.returncode != 0:
        raise RuntimeError(f"crash_writer failed on {path} with code {proc.returncode}:\n"
                           f"{errors[-3000:]}")
    return lines + rest.splitlines(), killed


def check_file(path: Path, rep: Reported) -> dict[str, int]:
    """Assert a (possibly killed) file keeps every reported row; returns per-file counters."""
    if not path.exists():
        assert not rep.created, f"{path} vanished although creation was reported"
        return {"absent": 1}
    with h5py.File(path, "r") as plain:  # plain h5py, no flags, no h5clear
        assert int(plain.attrs["dendrolab_layout"]) == LAYOUT_VERSION
        plain.visititems(lambda name, obj: obj.attrs.keys())
    lost = 0
    with RunReader(path) as reader:
        statuses = [s.status for s in reader.steps]
        assert statuses.count("running") <= 1, statuses
        first_open = next((i for i, s in enumerate(statuses) if s != "done"), len(statuses))
        assert all(s == "pending" for s in statuses[first_open + 1:]), statuses
        for i, info in enumerate(reader.steps):
            data = reader.step(i)
            owed = rep.rows.get(i, 0)
            assert info.rows >= owed, f"step {i}: {info.rows} rows on disk, {owed} reported"
            most = max(owed + MAX_IN_FLIGHT[i], rep.prior.get(i, 0))
            assert info.rows <= most, f"step {i}: {info.rows} rows on disk, {owed} reported"
            lost = max(lost, owed - info.rows)
            if i in rep.done:
                assert info.status == "done" and info.rows == owed
            for got, want in zip((data["voltage_v"], data["current_a"], data["index"]),
                                 expected(i, np.arange(info.rows)), strict=True):
                np.testing.assert_array_equal(got, want)
        events = reader.events()
        kinds = [e["kind"] for e in events]
        assert set(kinds) <= {"started", "resume", "step_done"}, kinds
        logged = {(e["step"], e["pid"]) for e in events if e["kind"] == "step_done"}
        assert rep.events <= logged, f"reported events lost: {rep.events - logged}"
        after = reader.instruments["smu"].settings_after  # None only if a kill tore a rewrite
        assert after is None or after["nplc"] == 0.01, after
        if rep.completed:
            assert reader.status == "completed"
            assert after == {"nplc": 0.01, "output": False}
        assert reader.status in ("running", "completed")
    return {"opened": 1, "lost_rows": lost}


def kill_loop(folder: Path, kills: int, seed: int, max_delay_s: float = 0.6) -> dict[str, int]:
    """Kill children at random moments, resuming each file until it completes; check every file."""
    rng = random.Random(seed)
    totals = {"kills": 0, "opened": 0, "absent": 0, "completed": 0, "resumes": 0, "lost_rows": 0}
    n_file, rep = 0, Reported()
    path = folder / "run0.h5"
    while totals["kills"] < kills:
        if path.exists():
            rep.before_resume(path)
            totals["resumes"] += 1
        lines, killed = run_child(path, rng.uniform(0.0, max_delay_s))
        for line in lines:
            rep.feed(line)
        if killed and lines[-1] != "X":  # a kill after 'X' only interrupted interpreter exit
            totals["kills"] += 1  # phase = the child's last report (S: creating or resuming)
            phase = f"after_{lines[-1].split()[0] if lines[-1] else 'nothing'}"
            totals[phase] = totals.get(phase, 0) + 1
        for key, value in check_file(path, rep).items():
            totals[key] = max(totals[key], value) if key == "lost_rows" else totals[key] + value
        if not rep.completed and path.exists():  # closed, but killed before it could say so
            with RunReader(path) as reader:
                rep.completed = reader.status == "completed"
        if rep.completed:
            totals["completed"] += 1
            n_file, rep = n_file + 1, Reported()
            path = folder / f"run{n_file}.h5"
    return totals


def finish_and_check(path: Path) -> None:
    """Resume a killed file to completion and check every step holds exactly its rows."""
    if path.exists():
        with RunReader(path) as r:
            if r.status == "completed":
                return
    lines, _ = run_child(path, None)
    assert lines[-1] == "X", lines[-3:]
    with RunReader(path) as reader:
        assert reader.status == "completed"
        for i, (_, _, produce, *_rest) in enumerate(PLAN):
            data = reader.step(i)
            assert reader.steps[i].rows == produce
            np.testing.assert_array_equal(data["index"], np.arange(produce))
            np.testing.assert_array_equal(data["voltage_v"], expected(i, np.arange(produce))[0])


if __name__ == "__main__":
    child(sys.argv[1])

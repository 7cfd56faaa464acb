"""Runner: execute a checked plan on an open instrument set, persisting each step to a run file.

It maps the plan's action vocabulary 1:1 onto driver calls and knows nothing about simulation:
real and simulated benches differ only in the bench file's VISA library. Every exit path (normal,
exception, Ctrl-C, SIGTERM) ends with every instrument in its safe state and the file closed
with an honest status; a killed run is continued by ``resume_run``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import getpass
import hashlib
import logging
import math
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from dendrolab.errors import DendrolabError, ProtocolError, RunFileError, clip
from instruments.bench_config import InstrumentSet, load_bench_config
from instruments.clock import Clock, clock_of
from instruments.counter import CounterInput
from protocols.library import builtin_path, resolve_protocol
from protocols.plan import Plan, PlanStep, arb_waveform, compile_protocol, roles_from_bench_config
from protocols.runfile import (
    DatasetSpec,
    InstrumentSpec,
    RunLayout,
    RunReader,
    RunWriter,
    StepSpec,
    StepWriter,
)
from protocols.safety import RunInterrupted, signals_raise

log = logging.getLogger(__name__)

#: Dataset of a step that records nothing else: when it finished, run clock since run start.
DONE_DATASET = "t_done_s"

Progress = Callable[[PlanStep, float], None]
#: Event logged when a run (or a resumed part) ends: its run-clock kind and elapsed seconds.
RUN_CLOCK_EVENT = "run_clock"
#: ``StepSpec`` fields, read once: loop variables go into the run file once the layout has them.
_STEP_SPEC_FIELDS = frozenset(f.name for f in dataclasses.fields(StepSpec))
#: Longest path echoed whole in an error message (longer ones are shortened in the middle).
_ECHO_MAX = 120


@dataclass
class RunInfo:
    """Who and what a run is about (goes into the run file's attributes)."""

    operator: str = field(default_factory=lambda: _user())
    sample_id: str = ""
    wafer_id: str = ""
    die_id: str = ""
    device_id: str | None = None


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:   # no login name in some containers
        return ""


# ---------------------------------------------------------------------------------------------
# Layout and metadata


def layout_for(plan: Plan, instruments: InstrumentSet) -> RunLayout:
    """Declare every step's datasets (from the plan) and each instrument's snapshot up front."""
    steps = []
    for s in plan.steps:
        if s.records:
            points = max(n for _, n in s.records.values())
            datasets = tuple(DatasetSpec(name, units) for name, (units, _) in s.records.items())
        else:
            points, datasets = 1, (DatasetSpec(DONE_DATASET, "s"),)
        extra: dict[str, Any] = {}
        if "loop_vars" in _STEP_SPEC_FIELDS:
            extra["loop_vars"] = dict(getattr(s, "loop_vars", {}) or {})
        steps.append(StepSpec(s.name, max(points, 1), datasets, instrument=s.role or "",
                              params=dict(s.params), **extra))
    return RunLayout(tuple(steps), instrument_specs(instruments))


def instrument_specs(instruments: InstrumentSet) -> tuple[InstrumentSpec, ...]:
    """Each open role's identity and settings, with room for its after-run snapshot."""
    return tuple(InstrumentSpec(role, dataclasses.asdict(identity) if identity is not None
                                else {}, _safe_settings(instruments[role]),
                                after_capacity=64 * 1024)
                 for role, identity in instruments.identities().items())


def _safe_settings(driver: Any) -> dict[str, Any]:
    try:
        return driver.settings()
    except DendrolabError as exc:
        return {"error": str(exc)}


def library_metadata(instruments: InstrumentSet) -> dict[str, Any]:
    """Whatever the VISA library says about itself (a simulator reports its seed and models)."""
    lib = getattr(instruments.rm, "visalib", None)
    describe = getattr(lib, "run_metadata", None)
    return dict(describe()) if callable(describe) else {}


# ---------------------------------------------------------------------------------------------
# Execution


class _Executor:
    """Runs plan steps against drivers; one method per action.

    Waits and timestamps go through the VISA library's clock (``instruments.clock``): the wall
    clock on real instruments, the bench's virtual clock on a simulator (reproducible).
    """

    def __init__(self, plan: Plan, instruments: InstrumentSet, writer: RunWriter,
                 clock: Clock, t0: float) -> None:
        self.plan, self.instruments, self.writer = plan, instruments, writer
        self.clock, self.t0 = clock, t0

    def elapsed(self) -> float:
        """Run-clock seconds since the run (or the resumed part of it) started."""
        return self.clock.now() - self.t0

    def driver(self, step: PlanStep) -> Any:
        if step.role is None:
            raise ProtocolError(f"step {step.name!r} names no instrument role")
        return self.instruments.driver(step.role, step.channel)

    def run(self, step: PlanStep) -> None:
        handler = getattr(self, "_" + step.action.replace(".", "_"), None)
        if handler is None:
            raise ProtocolError(f"step {step.name!r}: action {step.action!r} is not supported")
        with self.writer.step(step.index) as out:
            handler(step, dict(step.params), out)
            if not step.records:
                out.append(self.elapsed())

    # -- SMU ---------------------------------------------------------------------------------
    def _smu_setup(self, step: PlanStep, p: dict[str, Any], out: StepWriter) -> None:
        smu = self.driver(step)
        smu.configure_source_voltage(p["limit_a"], range_v=p.get("range_v"))
        smu.configure_measure(nplc=p.get("nplc"), aperture_s=p.get("aperture_s"),
                              range_a=p.get("range_a"))

    def _smu_read(self, step: PlanStep, p: dict[str, Any], out: StepWriter) -> None:
        smu = self.driver(step)
        smu.set_voltage(p["level_v"])
        smu.output_on()
        if p.get("delay_s"):
            self.clock.sleep(p["delay_s"])
        for _ in range(int(p.get("count", 1))):
            r = smu.measure_iv()
            out.append(r.voltage_v, r.current_a, self.elapsed())
        smu.set_voltage(0.0)
        smu.output_off()

    def _sweep_result(self, result: Any, out: StepWriter) -> None:
        out.write_block(voltage_v=result.voltage_v, current_a=result.current_a,
                        time_s=result.time_s)

    def _smu_linear_sweep(self, step: PlanStep, p: dict[str, Any], out: StepWriter) -> None:
        smu = self.driver(step)
        self._sweep_result(smu.linear_sweep(p["start_v"], p["stop_v"], int(p["points"]),
                                            delay_s=p.get("delay_s", 0.0)), out)
        smu.output_off()

    def _smu_list_sweep(self, step: PlanStep, p: dict[str, Any], out: StepWriter) -> None:
        smu = self.driver(step)
        self._sweep_result(smu.list_sweep(p["levels_v"], delay_s=p.get("delay_s", 0.0)), out)
        smu.output_off()

    def _smu_pulsed_sweep(self, step: PlanStep, p: dict[str, Any], out: StepWriter) -> None:
        smu = self.driver(step)
        self._sweep_result(smu.pulsed_list_sweep(p["levels_v"], width_s=p["width_s"],
                                                 period_s=p["period_s"],
                                                 base_v=p.get("base_v", 0.0)), out)
        smu.output_off()

    def _smu_off(self, step: PlanStep, p: dict[str, Any], out: StepWriter) -> None:
        smu = self.driver(step)
        smu.set_voltage(0.0)
        smu.output_off()

    def _smu_write_verify(self, step: PlanStep, p: dict[str, Any], out: StepWriter) -> None:
        """Read G = I / V_read; within tolerance stop, else one SET or RESET pulse; repeat."""
        smu = self.driver(step)
        gate = (self.instruments.driver(p["gate_role"], p.get("gate_channel"))
                if p.get("gate_role") else None)
        with holding(gate, p.get("gate_v")), holding(smu, p["v_read"]):
            for r, pulse_v in write_verify_loop(
                    smu, target_s=p["target_s"], tol_rel=p["tol_rel"], v_set=p["v_set"],
                    v_reset=p["v_reset"], width_s=p["width_s"], v_read=p["v_read"],
                    max_pulses=int(p["max_pulses"]), period_s=p.get("period_s")):
                out.append(r.voltage_v, r.current_a, self.elapsed(), pulse_v)

    # -- pulse generator ---------------------------------------------------------------------
    def _pulse_train(self, step: PlanStep, p: dict[str, Any], out: StepWriter) -> None:
        gen = self.driver(step)
        gen.pulse_train(p["high_v"], p["width_s"], p["period_s"], int(p["count"]),
                        low_v=p.get("low_v", 0.0), edge_s=p.get("edge_s"))
        gen.output_on()
        gen.trigger()
        gen.output_off()

    def _pulse_arb(self, step: PlanStep, p: dict[str, Any], out: StepWriter) -> None:
        gen = self.driver(step)
        gen.upload_arb(p["name"], arb_waveform(p), p["sample_rate_sa_s"])
        gen.configure_burst(int(p.get("cycles", 1)))
        gen.output_on()
        gen.trigger()
        gen.output_off()

    # -- counter -------------------------------------------------------------------------------
    def _counter_start(self, step: PlanStep, p: dict[str, Any], out: StepWriter) -> None:
        self.driver(step).start_totalize(p["gate_s"], _counter_input(p))

    def _counter_fetch(self, step: PlanStep, p: dict[str, Any], out: StepWriter) -> None:
        """The count of the gate its count_start opened; NaN when that gate is gone (opened by
        a run that was killed before this step: a resume cannot reopen the past)."""
        counter = self.driver(step)
        if not counter.armed:
            self.writer.log_event("counter_gate_lost", {"step": step.name,
                                                        "start_step": p.get("start_step")})
            out.append(math.nan, p["gate_s"], p["level_v"], self.elapsed())
            return
        count = counter.fetch_count()
        out.append(float(count), p["gate_s"], p["level_v"], self.elapsed())

    def _counter_frequency(self, step: PlanStep, p: dict[str, Any], out: StepWriter) -> None:
        """Hold the input (if asked), settle, read the frequency; the hold ends at 0 V, off."""
        counter = self.driver(step)
        hold = (self.instruments.driver(p["hold_role"], p.get("hold_channel"))
                if p.get("hold_role") else None)
        with holding(hold, p.get("hold_v")):
            if hold is not None and p.get("settle_s"):
                self.clock.sleep(p["settle_s"])
            f = counter.measure_frequency(p["gate_s"], _counter_input(p))
            out.append(f, p["gate_s"], p["level_v"],
                       p["hold_v"] if hold is not None else math.nan, self.elapsed())

    # -- switch matrix and host ----------------------------------------------------------------
    def _matrix_route(self, step: PlanStep, p: dict[str, Any], out: StepWriter) -> None:
        self.driver(step).route(p["row"], int(p["column"]), slot=int(p.get("slot", 1)),
                                exclusive=bool(p.get("exclusive", False)))

    def _matrix_open_all(self, step: PlanStep, p: dict[str, Any], out: StepWriter) -> None:
        self.driver(step).open_all()

    def _wait(self, step: PlanStep, p: dict[str, Any], out: StepWriter) -> None:
        self.clock.sleep(float(p["duration_s"]))


def write_verify_loop(smu: Any, *, target_s: float, tol_rel: float, v_set: float,
                      v_reset: float, width_s: float, v_read: float, max_pulses: int,
                      period_s: float | None = None) -> Iterator[tuple[Any, float]]:
    """The write-verify loop on an SMU already holding ``v_read`` on the selected cell: read
    G = I / v_read; within ``tol_rel`` of the target stop, else one SET (below) or RESET (above)
    pulse from ``v_read``, and repeat, at most ``max_pulses`` pulses. Yields (reading, pulse
    volts; 0 = done) per read, before that pulse is applied (a caller records it first)."""
    for _ in range(max_pulses + 1):
        r = smu.measure_iv()
        error = (r.current_a / v_read - target_s) / target_s
        pulse_v = 0.0 if abs(error) <= tol_rel else (v_set if error < 0 else v_reset)
        yield r, pulse_v
        if pulse_v == 0.0:
            return
        smu.pulsed_list_sweep([pulse_v], width_s=width_s,
                              period_s=period_s or 2 * width_s, base_v=v_read)
        smu.set_voltage(v_read)
        smu.output_on()


@contextlib.contextmanager
def holding(smu: Any, level_v: float | None) -> Iterator[None]:
    """``smu`` sources ``level_v`` for the block; 0 V and output off on every exit (no-op for
    None: a step without that instrument)."""
    if smu is None:
        yield
        return
    try:
        smu.set_voltage(level_v)
        smu.output_on()
        yield
    finally:
        smu.set_voltage(0.0)
        smu.output_off()


def _counter_input(p: dict[str, Any]) -> CounterInput:
    return CounterInput(p["level_v"], p["slope"], p["impedance_ohm"], p["coupling"],
                        p["range_v"])


# ---------------------------------------------------------------------------------------------
# Entry points


def prepare(protocol_ref: str | Path, bench_path: str | Path, *,
            device: str | None = None) -> tuple[Plan, Any]:
    """Load the bench file and compile the protocol against its roles: no instrument I/O."""
    config = load_bench_config(bench_path)
    protocol = resolve_protocol(protocol_ref)
    plan = compile_protocol(protocol, roles_from_bench_config(config), device=device)
    return plan, config


def _executor(plan: Plan, instruments: InstrumentSet, writer: RunWriter) -> _Executor:
    """An executor on the instrument set's clock, its run time starting now."""
    clock = clock_of(instruments.rm)
    return _Executor(plan, instruments, writer, clock, clock.now())


def _execute(executor: _Executor, start: int, progress: Progress | None) -> None:
    plan, instruments = executor.plan, executor.instruments
    for step in plan.steps[start:]:
        executor.run(step)
        if progress is not None:
            progress(step, step.duration_s)
    instruments.check_errors()


def safe_state_except(instruments: InstrumentSet, spare: frozenset[str]) -> None:
    """``InstrumentSet.safe_state`` for every driver whose capability is not in ``spare``
    (sessions resynchronised first, each driver best effort, never raises). The wafer engine
    spares the prober: a run's own safe state must not lift the needles mid-device."""
    if not spare:
        instruments.safe_state()
        return
    instruments.resync()
    for role in list(instruments):
        driver = instruments[role]
        if getattr(driver, "capability", "") in spare:
            continue
        try:
            driver.safe_state()
        except Exception as exc:  # safe_state should not raise; a bug must not stop teardown
            log.warning("role %r: safe_state failed: %s", role, exc)


def finish(writer: RunWriter, instruments: InstrumentSet, error: BaseException | None,
            executor: _Executor, start: int, spare: frozenset[str] = frozenset()) -> None:
    """Safe state first (always), then the run clock and after-snapshots, then the status."""
    safe_state_except(instruments, spare)
    try:  # how long the run took on its clock (bench seconds on a simulator): an event
        writer.log_event(RUN_CLOCK_EVENT, {"clock": getattr(executor.clock, "kind", "custom"),
                                           "elapsed_s": executor.elapsed(),
                                           "from_step": start})
    except (DendrolabError, OSError):
        pass
    for role in list(instruments):
        if role in instruments.config.roles:
            try:
                writer.set_settings_after(role, _safe_settings(instruments[role]))
            except (DendrolabError, OSError):
                pass
    status = ("completed" if error is None else
              "interrupted" if isinstance(error, (RunInterrupted, KeyboardInterrupt))
              else "failed")
    writer.close(status)


def _echo(path: Path | str) -> str:
    """A path for an error message, clipped in the middle if very long (``errors.clip``)."""
    return clip(str(path), _ECHO_MAX)


def check_out_path(path: Path) -> None:
    """Everything about a new run file's path that can be known before any instrument I/O.

    The parent must be an existing, writable directory (proved by creating and removing an empty
    probe file next to where the run goes), the name must fit the file system, and the file must
    not exist (runs are never overwritten). Raises RunFileError with one line.
    """
    where = _echo(path)
    parent = path.parent
    try:
        name_max = os.pathconf(parent if parent.is_dir() else ".", "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    if len(os.fsencode(path.name)) > name_max:
        raise RunFileError(f"{where}: the file name is {len(os.fsencode(path.name))} bytes; "
                           f"this file system allows at most {name_max}")
    try:
        if path.exists() or path.is_symlink():
            raise RunFileError(f"{where} already exists; choose another name (runs are never "
                               "overwritten; `dendrolab resume` continues an unfinished one)")
        if not parent.exists():
            raise RunFileError(f"{where}: the directory {_echo(parent)} does not exist")
        if not parent.is_dir():
            raise RunFileError(f"{where}: {_echo(parent)} is not a directory")
        probe = parent / f".{path.name[:40]}.{uuid.uuid4().hex[:12]}.probe"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))
        raise RunFileError(f"{where}: cannot create a file in {_echo(parent)} ({reason})"
                           ) from None


def protocol_text(protocol_ref: str | Path, plan: Plan) -> str:
    """The text the plan was compiled from: a protocol file, or a built-in's file (the same
    order as ``resolve_protocol``); its hash must be the plan's, so a file edited since the
    check is caught before any I/O."""
    try:
        path = Path(protocol_ref)
        if not path.is_file():
            path = builtin_path(str(protocol_ref))
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"{_echo(protocol_ref)}: cannot read the protocol again: "
                            f"{getattr(exc, 'strerror', None) or exc}") from None
    if hashlib.sha256(text.encode("utf-8")).hexdigest() != plan.source_sha256:
        raise ProtocolError(f"{_echo(path)} changed after it was checked; run it again")
    return text


def run_protocol(protocol_ref: str | Path, bench_path: str | Path,
                 out_path: str | Path | Callable[[Plan], Path], *,
                 info: RunInfo | None = None, progress: Progress | None = None,
                 on_plan: Callable[[Plan], None] | None = None) -> Path:
    """Check, open the bench, run every step into a new run file; returns its path.

    The plan is compiled and checked, the protocol and bench texts read and the output path
    checked (``check_out_path``) before any instrument is touched: bad input raises before I/O
    and writes nothing. ``out_path`` may be a function of the plan.
    """
    info = info or RunInfo()
    plan, config = prepare(protocol_ref, bench_path, device=info.device_id)
    try:
        out_path = Path(out_path(plan) if callable(out_path) else out_path)
    except OSError as exc:  # e.g. a caller's mkdir on a bad path
        raise RunFileError(f"{_echo(exc.filename or '')}: cannot prepare the run file's "
                           f"directory ({exc.strerror or exc})") from None
    check_out_path(out_path)
    text = protocol_text(protocol_ref, plan)
    try:
        bench_text = Path(bench_path).read_text()
        bench_resolved = str(Path(bench_path).resolve())
    except OSError as exc:
        raise RunFileError(f"{_echo(bench_path)}: cannot read the bench file: "
                           f"{exc.strerror or exc}") from None
    if on_plan is not None:
        on_plan(plan)
    with signals_raise(), InstrumentSet(config) as instruments:
        run_plan(plan, instruments, out_path, protocol_text=text,
                 bench_text=bench_text, bench_path=bench_resolved, info=info,
                 progress=progress)
    return out_path


def run_plan(plan: Plan, instruments: InstrumentSet, out_path: str | Path, *,
             protocol_text: str, bench_text: str, bench_path: str,
             info: RunInfo | None = None, attrs: dict[str, Any] | None = None,
             progress: Progress | None = None,
             spare: frozenset[str] = frozenset()) -> Path:
    """Run a checked plan on an already open instrument set into a new run file.

    The caller has checked ``out_path`` (``check_out_path``) and owns the set, its signals
    (``signals_raise``) and the instruments' final safe state. ``attrs`` are extra run
    attributes (the wafer engine's die, subsite and position, docs/runfile.md); they may not
    replace the runner's own. At the end (also on an exception) every instrument whose
    capability is not in ``spare`` goes to its safe state (the wafer engine spares
    ``"prober"``: it separates itself), then the after-snapshots and the status are written.
    """
    info = info or RunInfo()
    config = instruments.config
    meta = {
        "uuid": str(uuid.uuid4()),
        "start_time": datetime.now(timezone.utc).isoformat(),
        "protocol": protocol_text,
        "protocol_name": plan.protocol,
        "figure": plan.figure,
        "plan_hash": plan.hash,
        "plan": plan.to_json(),
        "bench_config": bench_text,
        "bench_path": bench_path,
        "visa_library": config.visa_library,
        "operator": info.operator,
        "sample_id": info.sample_id,
        "wafer_id": info.wafer_id,
        "die_id": info.die_id,
        "device_id": plan.device or "",
        **{f"library_{k}": v for k, v in library_metadata(instruments).items()},
    }
    clash = sorted(set(attrs or {}) & set(meta))
    if clash:
        raise RunFileError(f"extra run attributes {clash} would replace the runner's own")
    meta.update(attrs or {})
    out_path = Path(out_path)
    writer = RunWriter.create(out_path, meta, layout_for(plan, instruments))
    executor = _executor(plan, instruments, writer)
    error: BaseException | None = None
    try:
        _execute(executor, 0, progress)
    except BaseException as exc:
        error = exc
        raise
    finally:
        finish(writer, instruments, error, executor, 0, spare)
    return out_path


def resume_run(path: str | Path, *, progress: Progress | None = None,
               on_plan: Callable[[Plan, int], None] | None = None) -> tuple[Path, int]:
    """Continue an unfinished run in the same file from its first unfinished step.

    Memristor operations are not idempotent: before continuing, the device is re-read (the
    first read step's level on its SMU) and that reading is kept in the file's resume log.
    The instruments are always opened, even when every step is already done (a kill after the
    last step): the resume ends like a run, with every instrument in its safe state and the
    after-snapshots written before the file is marked completed.
    Returns the path and the index of the step the run continued from (the number of steps
    when none was left).
    """
    path = Path(path)
    with RunReader(path) as reader:
        attrs = reader.attrs
        status, pending = reader.status, reader.next_step
    try:
        plan = Plan.from_json(str(attrs["plan"]))
        bench_text = str(attrs["bench_config"])
    except KeyError as exc:
        raise RunFileError(f"{path}: not a run written by `dendrolab run` (no {exc})") from None
    if status == "completed":
        raise RunFileError(f"{path} is a completed run; there is nothing to resume")
    bench_path = Path(str(attrs.get("bench_path", "")))
    if not bench_path.is_file() or bench_path.read_text() != bench_text:
        raise RunFileError(f"{path}: the bench file {bench_path} is missing or changed since "
                           "the run started; resume needs the same bench")
    config = load_bench_config(bench_path)
    if on_plan is not None and pending is not None:
        on_plan(plan, pending)
    with signals_raise(), InstrumentSet(config) as instruments:
        start = resume_plan(plan, instruments, path, progress=progress)
    return path, len(plan.steps) if start is None else start


def resume_plan(plan: Plan, instruments: InstrumentSet, path: str | Path, *,
                progress: Progress | None = None,
                spare: frozenset[str] = frozenset()) -> int | None:
    """Continue an unfinished run file on an already open instrument set (``resume_run``'s
    core): the device is re-read, then the first unfinished step onwards are run; the ending
    is ``run_plan``'s (safe state except ``spare`` capabilities, snapshots, status).
    Returns the step it continued from (None when every step was already done)."""
    writer = RunWriter.resume(path)
    start = writer.next_step
    executor = _executor(plan, instruments, writer)
    error: BaseException | None = None
    try:
        if start is not None:
            _reread_device(executor, start)
            _execute(executor, start, progress)
    except BaseException as exc:
        error = exc
        raise
    finally:
        finish(writer, instruments, error, executor,
                len(plan.steps) if start is None else start, spare)
    return start


def _reread_device(executor: _Executor, start: int) -> None:
    """Measure the device once before continuing, as the first read step of the plan does."""
    plan, writer = executor.plan, executor.writer
    setup = next((s for s in plan.steps if s.action == "smu.setup"), None)
    read = next((s for s in plan.steps if s.action == "smu.read"), None)
    if setup is None or read is None:
        return
    smu = executor.driver(read)
    p = dict(setup.params)
    smu.configure_source_voltage(p["limit_a"], range_v=p.get("range_v"))
    smu.configure_measure(nplc=p.get("nplc"), aperture_s=p.get("aperture_s"),
                          range_a=p.get("range_a"))
    smu.set_voltage(read.params["level_v"])
    smu.output_on()
    r = smu.measure_iv()
    smu.set_voltage(0.0)
    smu.output_off()
    writer.log_event("resume_reread", {"before_step": plan.steps[start].name,
                                       "voltage_v": r.voltage_v, "current_a": r.current_a,
                                       "time": datetime.now(timezone.utc).isoformat()})


def run_clock_s(path: str | Path) -> float | None:
    """Run-clock seconds a run took (bench seconds on a simulator; summed over resumed parts),
    from its ``run_clock`` events; None for a file without them."""
    with RunReader(path) as reader:
        spans = [float(e["elapsed_s"]) for e in reader.events()
                 if e.get("kind") == RUN_CLOCK_EVENT]
    return sum(spans) if spans else None


def read_points(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """Every step's datasets of a run file (for quick checks and tests)."""
    with RunReader(path) as reader:
        return {s.name: dict(reader.step(s.name).arrays) for s in reader.steps}


__all__ = ["RUN_CLOCK_EVENT", "RunInfo", "check_out_path", "layout_for", "prepare",
           "protocol_text", "read_points", "resume_plan", "resume_run", "run_clock_s", "run_plan",
           "run_protocol", "safe_state_except"]

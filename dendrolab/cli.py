"""The ``dendrolab`` command line: a thin click layer over the library.

Heavy modules (numpy, h5py, pyvisa, the simulator) are imported inside commands so that
``dendrolab --help`` stays fast. Every ``DendrolabError`` becomes one line on stderr and exit 2.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import click

from dendrolab import __version__
from dendrolab.clickgroup import OneLineErrors, one_line
from dendrolab.errors import ParameterError, RunFileError, clip


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dendrolab")
def main() -> None:
    """dendrolab: measure artificial dendrites, somas and synapse arrays.

    Runs on real instruments over VISA or, with no hardware, on the simulated bench
    (VISA library "@dendrosim").
    """


def _sim_bench() -> Path:
    from importlib import resources

    return Path(str(resources.files("dendrolab") / "benches" / "sim.yaml"))


def _bench_option(f):
    f = click.option("--sim", is_flag=True,
                     help="Use the packaged simulated bench (VISA library @dendrosim).")(f)
    return click.option("--bench", "bench_path", type=click.Path(dir_okay=False, path_type=Path),
                        help="Bench file: roles -> VISA addresses and the VISA library.")(f)


def _is_file(path: Path) -> bool:
    """``path.is_file()``, but a path the file system refuses is a one-line error."""
    try:
        return path.is_file()
    except OSError as exc:  # e.g. ENAMETOOLONG (is_file only swallows "does not exist")
        raise ParameterError(f"{clip(str(path), 120)}: cannot use this path "
                             f"({exc.strerror or exc})") from None


def _resolve_bench(bench_path: Path | None, sim: bool, required: bool = True) -> Path | None:
    if bench_path is not None and sim:
        raise ParameterError("give either --bench FILE or --sim, not both")
    if sim:
        return _sim_bench()
    if bench_path is None and required:
        raise ParameterError("no bench: give --bench FILE (your instruments) or --sim "
                             "(the simulated bench)")
    if bench_path is not None and not _is_file(bench_path):
        raise ParameterError(f"{clip(str(bench_path), 120)}: no such bench file")
    return bench_path


@main.command()
def protocols() -> None:
    """List the built-in protocols (usable as-is and as examples)."""
    from protocols.library import list_builtins

    for info in list_builtins():
        click.echo(f"{info.name:28s} {info.figure:10s} {info.description}")


@main.command()
@click.argument("protocol")
@_bench_option
@click.option("--device", help="Device id to run on (overrides the protocol's).")
@click.option("--json", "as_json", is_flag=True, help="Print the full plan as JSON.")
def check(protocol: str, bench_path: Path | None, sim: bool, device: str | None,
          as_json: bool) -> None:
    """Validate PROTOCOL (a file or built-in name) and print its plan and duration. No I/O.

    With --bench or --sim the plan is also checked against each instrument model's limits.
    """
    from protocols.library import resolve_protocol
    from protocols.plan import compile_protocol, roles_from_bench_config

    bench = _resolve_bench(bench_path, sim, required=False)
    roles = None
    if bench is not None:
        from instruments.bench_config import load_bench_config

        roles = roles_from_bench_config(load_bench_config(bench))
    plan = compile_protocol(resolve_protocol(protocol), roles, device=device)
    if as_json:
        click.echo(plan.to_json(indent=2))
        return
    for line in plan.summary():
        click.echo(line)


def _pathconf(path: Path, name: str, default: int) -> int:
    try:
        value = os.pathconf(path, name)
    except (OSError, ValueError, AttributeError):
        return default
    return value if value and value > 0 else default


def check_out_path(path: Path) -> None:
    """Everything about a run file's path that can be known without writing, before any I/O.

    Each name fits the file system, the whole path fits ``PATH_MAX``, no ancestor is a file, the
    nearest existing ancestor is a directory we may write in (missing ones are created later),
    and the file does not exist yet (runs are never overwritten). Raises ``RunFileError``.
    The runner checks again, by writing a probe, when it has the final path.
    """
    where = clip(str(path), 120)
    if not path.name or path.name in (".", ".."):
        raise RunFileError(f"{where}: give a file name for the run file, e.g. run.h5")
    absolute = Path(os.path.abspath(path))
    existing = next((p for p in absolute.parents if _exists(p)), Path(absolute.anchor))
    name_max = _pathconf(existing, "PC_NAME_MAX", 255)
    for part in absolute.parts[1:]:
        size = len(os.fsencode(part))
        if size > name_max:
            what = ("file name" if part == absolute.name else
                    f"directory name {clip(part, 40)!r}")
            raise RunFileError(f"{where}: the {what} is {size} bytes; this file system allows "
                               f"at most {name_max}")
    path_max = _pathconf(existing, "PC_PATH_MAX", 4096)
    if len(os.fsencode(str(absolute))) >= path_max:
        raise RunFileError(f"{where}: the path is {len(os.fsencode(str(absolute)))} bytes; at "
                           f"most {path_max - 1}")
    for ancestor in path.parents if not path.is_absolute() else absolute.parents:
        mode = _mode(ancestor)
        if mode is None:
            continue  # missing: created later (unless a higher ancestor is a file)
        if not stat.S_ISDIR(mode):
            raise RunFileError(f"{where}: {clip(str(ancestor), 120)} is a file, not a directory")
        if not os.access(ancestor, os.W_OK | os.X_OK):
            raise RunFileError(f"{where}: cannot write in {clip(str(ancestor), 120)} "
                               "(permission denied)")
        break
    mode = _mode(path)
    if mode is not None:
        what = "is a directory" if stat.S_ISDIR(mode) else "already exists"
        raise RunFileError(f"{where} {what}; choose another name (runs are never overwritten; "
                           "`dendrolab resume` continues an unfinished one)")


def _mode(path: Path) -> int | None:
    """``lstat`` mode, or None if nothing is there (or a parent is not a directory)."""
    try:
        return os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise RunFileError(f"{clip(str(path), 120)}: cannot use this path "
                           f"({exc.strerror or exc})") from None


def _exists(path: Path) -> bool:
    try:
        return _mode(path) is not None
    except RunFileError:  # e.g. a name too long: reported by the name check
        return False


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunFileError(f"{clip(str(path), 120)}: cannot create its directory "
                           f"({exc.strerror or exc})") from None


class _PlanProgress:
    """A click progress bar over the plan's expected duration (the ETA comes from the plan)."""

    def __init__(self) -> None:
        self.bar = None

    def start(self, plan, done_steps: int = 0) -> None:
        total_ms = max(1, int(sum(s.duration_s for s in plan.steps) * 1000))
        self.bar = click.progressbar(length=total_ms, label=plan.protocol, show_eta=True,
                                     show_percent=True, file=sys.stderr).__enter__()
        self.bar.update(int(sum(s.duration_s for s in plan.steps[:done_steps]) * 1000))

    def step(self, _step, duration_s: float) -> None:
        self.bar.update(max(0, int(duration_s * 1000)))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


@main.command()
@click.argument("protocol")
@_bench_option
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Run file to write (default: runs/<protocol>-<time>.h5).")
@click.option("--device", help="Device id to run on (overrides the protocol's).")
@click.option("--operator", default=None, help="Operator name stored in the run file.")
@click.option("--sample", "sample_id", default="", help="Sample id stored in the run file.")
@click.option("--wafer", "wafer_id", default="", help="Wafer id stored in the run file.")
@click.option("--die", "die_id", default="", help="Die id stored in the run file.")
def run(protocol: str, bench_path: Path | None, sim: bool, out_path: Path | None,
        device: str | None, operator: str | None, sample_id: str, wafer_id: str,
        die_id: str) -> None:
    """Run PROTOCOL on a bench and write one HDF5 run file.

    The protocol is checked against the bench before any instrument is touched. Ctrl-C or
    SIGTERM stops the run with every source at 0 V and outputs off; the file keeps every step
    done so far, and `dendrolab resume RUN.h5` continues it.
    """
    import time as _time

    if out_path is not None:
        check_out_path(out_path)  # before the protocol, the bench or any instrument
    from protocols.runner import RunInfo, run_protocol

    bench = _resolve_bench(bench_path, sim)
    info = RunInfo(sample_id=sample_id, wafer_id=wafer_id, die_id=die_id, device_id=device)
    if operator is not None:
        info.operator = operator
    def choose_out(plan) -> Path:
        path = out_path or Path("runs") / f"{plan.protocol}-{_time.strftime('%Y%m%d-%H%M%S')}.h5"
        check_out_path(path)
        _make_parent(path)
        return path

    bar = _PlanProgress()
    try:
        path = run_protocol(protocol, bench, choose_out, info=info, progress=bar.step,
                            on_plan=bar.start)
    finally:
        bar.close()
    click.echo(f"wrote {path}")


@main.command()
@click.argument("run_file", type=click.Path(dir_okay=False, path_type=Path))
def resume(run_file: Path) -> None:
    """Continue an interrupted or crashed run in RUN_FILE from its first unfinished step.

    The device is re-read first (memristor operations are not idempotent) and that reading is
    logged in the file; steps already done are never repeated. A board run (network program /
    infer) is continued by `dendrolab network resume`.
    """
    from dendrolab.errors import DendrolabError
    from protocols.runfile import RunReader
    from protocols.runner import resume_run

    try:
        with RunReader(run_file) as reader:
            kind = str(reader.attrs.get("protocol_name", ""))
    except (DendrolabError, OSError):
        kind = ""   # resume_run says what is wrong with the file
    if kind in ("network-program", "network-infer"):
        from dendrolab.network_board_cli import resume_board

        resume_board(run_file)
        return

    bar = _PlanProgress()

    def on_plan(plan, start: int) -> None:
        click.echo(f"resuming {plan.protocol} at step {start}: {plan.steps[start].name}",
                   err=True)
        bar.start(plan, start)

    try:
        path, start = resume_run(run_file, progress=bar.step, on_plan=on_plan)
    finally:
        bar.close()
    click.echo(f"completed {path} (continued from step {start})")


def _wafer_sim_bench() -> Path:
    from importlib import resources

    return Path(str(resources.files("dendrolab") / "benches" / "wafer-sim.yaml"))


class _WaferProgress:
    """A click progress bar over the whole map: planned seconds of every device (the ETA comes
    from the plans), devices done / skipped in the label."""

    def __init__(self, wafer: str) -> None:
        self.wafer, self.bar, self.device_ms, self.spent = wafer, None, 1, 0

    def __call__(self, event) -> None:
        if self.bar is None:
            self.device_ms = max(1, int(event.device_s * 1000))
            self.bar = click.progressbar(length=max(1, event.total) * self.device_ms,
                                         label=self.wafer, show_eta=True, show_percent=True,
                                         file=sys.stderr).__enter__()
            self.bar.update((event.done + event.skipped) * self.device_ms)
        if event.kind == "device":
            self.spent = 0
        elif event.kind == "step":
            ms = min(max(0, int(event.duration_s * 1000)), self.device_ms - self.spent)
            self.spent += ms
            self.bar.update(ms)
        elif event.kind == "device_done":
            self.bar.update(self.device_ms - self.spent)
            self.spent = self.device_ms
        self.bar.label = f"{self.wafer} {event.done} done {event.skipped} skipped"

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def _wafer_report(summary) -> None:
    click.echo(f"wafer {summary.directory}: {summary.done} done, {summary.skipped} skipped "
               f"of {summary.total} devices")
    for device, reason in summary.reasons.items():
        click.echo(f"  skipped {device}: {reason}")


def _operator_prompt(text: str) -> str:
    """The manual station's question, on stderr below the progress bar; the answer from stdin.
    End of input is an abort (the wafer stays resumable), never a traceback."""
    from instruments.prober import OperatorAbort

    click.echo("", err=True)
    try:
        return str(click.prompt(text, default="", show_default=False, err=True))
    except click.exceptions.Abort:
        raise OperatorAbort("no answer from the operator (end of input)") from None


def _wafer_pass(call, bar: _WaferProgress):
    """Run one wafer pass; an operator's abort prints what was done and how to continue,
    exit 1 (the wafer is resumable, nothing is wrong with the input)."""
    from protocols.wafer import WaferAborted

    try:
        try:
            return call()
        finally:
            bar.close()
    except WaferAborted as exc:
        _wafer_report(exc.summary)
        click.echo(f"aborted: {one_line(str(exc))}", err=True)
        sys.exit(1)


@main.group(cls=OneLineErrors)
def wafer() -> None:
    """Unattended runs over a wafer map on a probe station (role `prober` of the bench), or
    operator-placed needles on a manual station (`--manual`)."""


@wafer.command("run")
@click.argument("protocols", nargs=-1, required=True)
@click.option("--bench", "bench_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Bench file with roles `prober` (the station) and `smu` (on the needles).")
@click.option("--sim", is_flag=True,
              help="Use the packaged simulated wafer bench (SENTIO + 2450 on @dendrosim).")
@click.option("--wafer", "wafer_id", required=True, help="Wafer id (names OUT/<wafer>).")
@click.option("--map", "map_path", default=None,
              help="Wafer map file to load on the station (default: its current map).")
@click.option("--dies", default="all", show_default=True,
              help="Dies as col,row pairs separated by ';' (e.g. '3,4;5,6'), or all.")
@click.option("--sites", default="all", show_default=True,
              help="Subsites: 0-based indices or names D00..D33, comma-separated, or all.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("wafers"), show_default=True, help="Folder for wafer directories.")
@click.option("--kind", default="dendrite", show_default=True,
              type=click.Choice(["dendrite", "soma", "synapse", "unit"]),
              help="Device kind recorded in every run file.")
@click.option("--bin", "bin_code", type=int, default=None,
              help="Bin code given on the station to every skipped die.")
@click.option("--operator", default=None, help="Operator name stored in the run files.")
@click.option("--manual", is_flag=True,
              help="Manual station: prompt the operator to place the needles on each device "
                   "(Enter = in contact, s = skip, a = abort); needs explicit --dies and "
                   "--sites, and only role `smu`.")
def wafer_run(protocols: tuple[str, ...], bench_path: Path | None, sim: bool, wafer_id: str,
              map_path: str | None, dies: str, sites: str, out_dir: Path, kind: str,
              bin_code: int | None, operator: str | None, manual: bool) -> None:
    """Run PROTOCOL... at every selected device of a wafer, one run file per device and protocol.

    At each device: separate, step, contact, read the position back, check contact (open /
    short / ok); then each protocol into OUT/<wafer>/<col>_<row>_<site>/<protocol>.h5. The
    journal OUT/<wafer>/wafer.jsonl records every device; after a crash `dendrolab wafer resume
    OUT/<wafer>` continues. Ctrl-C or SIGTERM: instruments safe, then the needles separated.

    With --manual the operator is asked at each device of --dies x --sites to place the needles
    and confirm, skip (journalled 'operator skipped') or abort (exit 1; instruments safe,
    `dendrolab wafer resume` asks again from the next unmeasured device).
    """
    from protocols.wafer import run_wafer

    if bench_path is not None and sim:
        raise ParameterError("give either --bench FILE or --sim, not both")
    bench = _wafer_sim_bench() if sim else _resolve_bench(bench_path, False)
    bar = _WaferProgress(wafer_id)
    summary = _wafer_pass(lambda: run_wafer(
        list(protocols), bench, wafer_id, out_dir, map_path=map_path, dies=dies, sites=sites,
        kind=kind, bin_skipped=bin_code, operator=operator, progress=bar, manual=manual,
        prompt=_operator_prompt if manual else None), bar)
    _wafer_report(summary)


@wafer.command("resume")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def wafer_resume(directory: Path) -> None:
    """Continue the wafer run in DIRECTORY (OUT/<wafer>) at its first unmeasured device.

    Complete run files are kept; an unfinished one is continued like `dendrolab resume` (the
    device re-read first); every device is measured exactly once. A manual wafer (run with
    --manual) prompts the operator again, from the next unmeasured device.
    """
    from protocols.wafer import resume_wafer

    bar = _WaferProgress(directory.name)
    summary = _wafer_pass(lambda: resume_wafer(directory, progress=bar,
                                               prompt=_operator_prompt), bar)
    _wafer_report(summary)


@main.command()
@click.argument("run_file", type=click.Path(dir_okay=False, path_type=Path))
def inspect(run_file: Path) -> None:
    """Summarise RUN_FILE: metadata, instruments, steps with status and points."""
    from analysis.runs import describe_run

    for line in describe_run(run_file):
        click.echo(line)


@main.command()
@click.argument("run_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              help="PNG to write (default: next to the run file).")
def plot(run_file: Path, out_path: Path | None) -> None:
    """Plot RUN_FILE as a PNG: the figure its protocol reproduces."""
    from analysis.plots import plot_run

    click.echo(f"wrote {plot_run(run_file, out_path)}")


@main.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("dendrolab-demo"), show_default=True,
              help="Folder for the demo's plots and summary.")
@click.option("--preset", default="li2020-original", show_default=True,
              help="Device model preset or YAML model file.")
def demo(out_dir: Path, preset: str) -> None:
    """Run the main job on the simulated bench and write runs, plots and a report.

    Runs the paper's experiments as built-in protocols through the @dendrosim VISA library
    into one HDF5 file each, plots every run, writes report.md, and adds the physics figure
    of the device models alone (amplitude filtering, integration, relaxation, soma, unit).
    """
    import time

    from dendrolab.demo import run_bench_demo, run_physics_demo

    wall0 = time.perf_counter()
    for line in run_bench_demo(out_dir, _sim_bench()):
        click.echo(line)
    for line in run_physics_demo(out_dir, preset):
        click.echo(line)
    click.echo(f"demo done in {time.perf_counter() - wall0:.1f} s")


@main.command()
@click.argument("source", required=False)
def params(source: str | None) -> None:
    """List device model parameters (units, values) of a preset or model file.

    SOURCE is a preset name or a YAML model file; without it, the presets are listed.
    """
    from sim_backend.physics.presets import load_models, preset_names

    if source is None:
        for name in preset_names():
            click.echo(f"{name:20s} {load_models(name).description}")
        return
    models = load_models(source)
    for section, pset in models.sections().items():
        click.echo(f"[{section}]")
        for name, _default, unit, doc in pset.describe():
            click.echo(f"  {name:26s} {getattr(pset, name)!s:>12} {unit:8s} {doc}")


@main.command()
@click.argument("sources", nargs=-1, required=True)
@click.option("--out", "out_dir", type=click.Path(path_type=Path),
              default=Path("analysis-out"), show_default=True,
              help="Folder for metrics.csv/.parquet, summary.csv, problems.csv, report.html.")
@click.option("--by", default="auto", show_default=True,
              type=click.Choice(["auto", "wafer", "die", "device"]),
              help="Grouping of the summary: auto = every level the data allows (all, wafer, "
                   "die, device); wafer = per wafer (histograms split by wafer); die; device.")
@click.option("--scheduler", default=None, metavar="NAME|ADDRESS",
              help="Where the per-file extraction runs. Default: in this process, one file "
                   "after the other (no extra needed; fastest for a wafer). 'threads' or "
                   "'processes': dask on this machine (processes cost ~1.5 s to start, worth it "
                   "when each file needs much CPU); 'tcp://host:port': the dask scheduler of a "
                   "cluster (started with `dask scheduler` / `dask worker`). Dask comes with "
                   "the optional extra: pip install 'dendrolab[parallel]'.")
@click.option("--export/--no-export", default=None,
              help="Write aihwkit_device.json, neurosim_device.txt, memtorch_params.yaml and "
                   "step_curve.csv (device parameters for network simulators, see "
                   "docs/exports.md) into --out. Default: on when synapse runs are among the "
                   "sources.")
def analyze(sources: tuple[str, ...], out_dir: Path, by: str, scheduler: str | None,
            export: bool | None) -> None:
    """Analyse run files: SOURCES are run files, folders (searched for *.h5) or globs.

    Writes tables (metrics.csv, metrics.parquet, summary.csv, problems.csv) and one
    self-contained report.html (figures embedded, opens offline) into --out, plus the network
    simulators' device files for synapse runs (--export). `dendrolab analyze wafer SOURCES...`
    is the same grouped by wafer (`--by wafer`); a folder that is really named `wafer` is
    analysed as a source. Corrupt, truncated, foreign or unfinished files are listed in
    problems.csv and skipped (exit 0, one warning line).
    """
    from analysis.report import check_scheduler, run_analysis

    if len(sources) > 1 and sources[0] == "wafer" and not os.path.exists("wafer"):
        if by not in ("auto", "wafer"):
            raise ParameterError(f"`analyze wafer` groups by wafer; drop --by {by} or the "
                                 "word wafer")
        sources, by = sources[1:], "wafer"

    check_scheduler(scheduler)   # before any file is read: a one-line error, nothing written
    bar = None
    shown = 0

    def progress(done: int, total: int) -> None:
        nonlocal bar, shown
        if bar is None:
            bar = click.progressbar(length=total, label="analysing", file=sys.stderr).__enter__()
        bar.update(done - shown)   # per file in this process, per batch under dask
        shown = done

    try:
        result = run_analysis(list(sources), out_dir, progress, by=by, scheduler=scheduler,
                              export=export)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    click.echo(f"analysed {result.runs} run(s): {result.report}")
    if result.exports:
        click.echo("exported " + ", ".join(p.name for p in result.exports.values()))
    if result.export_note:
        click.echo(f"warning: {result.export_note}", err=True)
    if len(result.problems):
        click.echo(f"warning: {len(result.problems)} file(s) skipped (corrupt, truncated, foreign "
                   f"or unfinished); listed in {result.out_dir / 'problems.csv'}", err=True)


# `dendrolab network ...`: train / evaluate (network_cli), sweep / compare (network_sweep_cli)
# and program / infer / resume on a board (network_board_cli), which add their commands to the
# same group when imported.
from dendrolab import network_board_cli as _network_board_cli  # noqa: E402,F401
from dendrolab import network_sweep_cli as _network_sweep_cli  # noqa: E402,F401
from dendrolab.network_cli import network  # noqa: E402

main.add_command(network)

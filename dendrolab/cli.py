"""The ``dendrolab`` command line: a thin click layer over the library.

Heavy modules (numpy, h5py, pyvisa, the simulator) are imported inside commands so that
``dendrolab --help`` stays fast. Every ``DendrolabError`` becomes one line on stderr and exit 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dendrolab import __version__
from dendrolab.errors import DendrolabError


class _Group(click.Group):
    """Turns our own errors into a one-line message and exit code 2, never a traceback."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except DendrolabError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
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


def _resolve_bench(bench_path: Path | None, sim: bool, required: bool = True) -> Path | None:
    from dendrolab.errors import ParameterError

    if bench_path is not None and sim:
        raise ParameterError("give either --bench FILE or --sim, not both")
    if sim:
        return _sim_bench()
    if bench_path is None and required:
        raise ParameterError("no bench: give --bench FILE (your instruments) or --sim "
                             "(the simulated bench)")
    if bench_path is not None and not bench_path.is_file():
        raise ParameterError(f"{bench_path}: no such bench file")
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

    from protocols.runner import RunInfo, run_protocol

    bench = _resolve_bench(bench_path, sim)
    info = RunInfo(sample_id=sample_id, wafer_id=wafer_id, die_id=die_id, device_id=device)
    if operator is not None:
        info.operator = operator
    def choose_out(plan) -> Path:
        path = out_path or Path("runs") / f"{plan.protocol}-{_time.strftime('%Y%m%d-%H%M%S')}.h5"
        path.parent.mkdir(parents=True, exist_ok=True)
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
    logged in the file; steps already done are never repeated.
    """
    from protocols.runner import resume_run

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

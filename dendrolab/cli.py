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


@main.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("dendrolab-demo"), show_default=True,
              help="Folder for the demo's plots and summary.")
@click.option("--preset", default="li2020-original", show_default=True,
              help="Device model preset or YAML model file.")
def demo(out_dir: Path, preset: str) -> None:
    """Run the physics demo on the simulated devices and write a plot.

    Shows the paper's dendrite behaviour (amplitude filtering, temporal integration, relaxation,
    inhibition), soma firing and the dendrite-soma unit, from the device models alone.
    """
    from dendrolab.demo import run_physics_demo

    for line in run_physics_demo(out_dir, preset):
        click.echo(line)


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

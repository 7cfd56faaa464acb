"""ED Fig 6 sweeps: one training per (NL, seed), identical results on every scheduler, the tidy
table's bookkeeping, the figures, and the trend the issue requires (advantage grows with NL)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from analysis.network import sweep
from analysis.network.power import PowerAssumptions
from analysis.network.sweep import (
    COLUMNS,
    FIGURE_NAMES,
    SweepSpec,
    assemble,
    run_sweep,
    save_ed6_figures,
    summarise,
)
from dendrolab.errors import DendrolabError, ParameterError

TINY = SweepSpec(nls=(0.0, 0.1, 0.2), on_offs=(10.0, 100.0), voltages=(2.0, 5.0), seeds=(0,),
                 n_hidden=40, epochs=10)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return run_sweep(TINY, scheduler="sync")


def test_table_shape_and_columns(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == COLUMNS
    assert len(frame) == TINY.points() == 3 * 2 * 2
    assert sorted(frame["nl"].unique()) == [0.0, 0.1, 0.2]
    # one training per (NL, seed): accuracy is shared by all (ON/OFF, V) of a network
    assert (frame.groupby(["nl", "seed"])["accuracy"].nunique() == 1).all()
    assert (frame["energy_with_j"] > 0).all()
    assert frame["advantage"].to_numpy() == pytest.approx(
        (frame["energy_without_j"] / frame["energy_with_j"]).to_numpy())


def test_reference_energy_does_not_depend_on_on_off(frame: pd.DataFrame) -> None:
    """The network without dendrites has no dendrite devices (default assumptions)."""
    ref = frame.groupby(["v_applied", "seed"])["energy_without_j"].nunique()
    assert (ref == 1).all()


def test_advantage_grows_with_nl(frame: pd.DataFrame) -> None:
    """The ED6 trend: the nonlinearity suppresses weak branch currents (ON/OFF 100, 5 V)."""
    part = frame[(frame["on_off"] == 100.0) & (frame["v_applied"] == 5.0)].set_index("nl")
    adv = part["advantage"]
    assert adv[0.0] < adv[0.1] < adv[0.2]
    assert adv[0.2] > 1.5
    # at NL = 0 the only difference to the reference is the 1/R floor: a little more power
    assert 0.8 < adv[0.0] < 1.0


def test_threads_give_the_same_table(frame: pd.DataFrame) -> None:
    seen: list[tuple[int, int]] = []
    threaded = run_sweep(TINY, workers=2, progress=lambda d, t: seen.append((d, t)))
    cols = [c for c in COLUMNS if c != "train_seconds"]
    pd.testing.assert_frame_equal(threaded[cols], frame[cols])
    assert sorted(seen) == [(k, 3) for k in range(1, 4)]


def test_cluster_gives_the_same_table(frame: pd.DataFrame, tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    small = replace(TINY, on_offs=(100.0,), voltages=(5.0,))
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None, local_directory=tmp_path) as cluster:
        remote = run_sweep(small, scheduler=cluster.scheduler_address)
    cols = [c for c in COLUMNS if c != "train_seconds"]
    local = frame[(frame["on_off"] == 100.0) & (frame["v_applied"] == 5.0)]
    pd.testing.assert_frame_equal(remote[cols], local[cols].reset_index(drop=True))


def test_reference_job_runs_even_when_nl0_is_not_requested() -> None:
    spec = replace(TINY, nls=(0.2,))
    assert [j.nl for j in spec.jobs()] == [0.0, 0.2]
    fake = [{"nl": 0.0, "seed": 0, "accuracy": 0.5, "val_accuracy": 0.5, "train_seconds": 0.0,
             "points": [{"on_off": r, "v_applied": v, "energy_j": 1.0, "hidden_share": 0.9,
                         "operating_accuracy": 0.5, "reference_energy_j": 3.0}
                        for r in spec.on_offs for v in spec.voltages]},
            {"nl": 0.2, "seed": 0, "accuracy": 0.6, "val_accuracy": 0.6, "train_seconds": 0.0,
             "points": [{"on_off": r, "v_applied": v, "energy_j": 0.0 if v == 2.0 else 1.5,
                         "hidden_share": 0.9, "operating_accuracy": 0.6}
                        for r in spec.on_offs for v in spec.voltages]}]
    table = assemble(spec, fake)
    assert table["nl"].unique().tolist() == [0.2]
    assert table.loc[table["v_applied"] == 5.0, "advantage"].tolist() == [2.0, 2.0]
    assert all(math.isinf(a) for a in table.loc[table["v_applied"] == 2.0, "advantage"])


def test_summary_and_figures(frame: pd.DataFrame, tmp_path: Path) -> None:
    both = pd.concat([frame, frame.assign(seed=1)], ignore_index=True)
    summary = summarise(both)
    assert len(summary) == 12 and (summary["seeds"] == 2).all()
    assert (summary["advantage_std"] == 0).all()
    paths = save_ed6_figures(frame, tmp_path / "figs")
    assert [p.name for p in paths] == list(FIGURE_NAMES)
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a grid without the panel's operating point still draws (with a note), never fails
    only = frame[frame["v_applied"] == 2.0]
    assert len(save_ed6_figures(only, tmp_path / "partial")) == 4


@pytest.mark.parametrize("bad, match", [({"nls": ()}, "at least one"),
                                        ({"nls": (0.1, 1.0)}, "NL must be in"),
                                        ({"on_offs": (0.5,)}, "on_off"),
                                        ({"voltages": (-1.0,)}, "v_applied_v"),
                                        ({"seeds": (0, 0)}, "repeated"),
                                        ({"epochs": 0}, "epochs")])
def test_bad_specs_are_one_line_errors(bad: dict, match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        SweepSpec(**bad)


def test_a_failing_job_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = replace(TINY, dataset="svhn")  # no --svhn-dir: every job fails the same way
    with pytest.raises(DendrolabError, match="SVHN needs the directory"):
        run_sweep(spec, scheduler="sync")


def test_training_defaults_follow_the_variant() -> None:
    assert (SweepSpec.for_variant("pytorch").lr, SweepSpec.for_variant("pytorch").init_scale) \
        == (0.005, 0.1)
    spec = SweepSpec.for_variant("matlab", lr=0.3, epochs=None)
    assert (spec.variant, spec.lr, spec.init_scale, spec.epochs) == ("matlab", 0.3, 1.0, 40)
    with pytest.raises(ParameterError, match="variant must be one of"):
        SweepSpec.for_variant("keras")


def test_describe_names_the_grid() -> None:
    text = "\n".join(TINY.describe())
    assert "3 trainings, 12 points" in text and "NL = 0 network" in text
    assert isinstance(TINY.base, PowerAssumptions)
    assert sweep.PANEL_C == (2.0, 100.0)


# ------------------------------------------------------------------------- CLI
def _cli():
    from click.testing import CliRunner

    from dendrolab.network_cli import network
    from dendrolab.network_sweep_cli import register

    register(network)
    return CliRunner(), network


def test_cli_sweep_writes_table_figures_and_assumptions(tmp_path: Path) -> None:
    runner, network = _cli()
    out = tmp_path / "ed6"
    result = runner.invoke(network, ["sweep", "--nl", "0,0.2", "--on-off", "100",
                                     "--voltage", "5", "--hidden", "20", "--epochs", "3",
                                     "--assume", "time_steps=4", "--scheduler", "sync",
                                     "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "sweep.csv")
    assert list(table.columns) == COLUMNS and len(table) == 2
    assert sorted(p.name for p in out.glob("*.png")) == sorted(FIGURE_NAMES)
    text = (out / "assumptions.txt").read_text()
    assert "time_steps = 4" in text and "on_off" in text and "NL [0.0, 0.2]" in text
    assert "time_steps = 4" in result.output
    assert "ED6a advantage at 5 V, ON/OFF 100" in result.output
    assert (out / "summary.csv").is_file()


@pytest.mark.parametrize("args, message", [
    (["--nl", "0,x"], "--nl wants comma-separated numbers"),
    (["--seeds", "0.5"], "--seeds wants comma-separated integers"),
    (["--assume", "volts=3"], "unknown key 'volts'"),
    (["--assume", "count_dendrites=maybe"], "count_dendrites wants true or false"),
    (["--assume", "on_off=5"], "set ON/OFF and V with --on-off"),
    (["--on-off", "0.5"], "on_off must be >= 1"),
    (["--scheduler", "gpu"], "unknown scheduler 'gpu'"),
])
def test_cli_sweep_bad_input_is_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    runner, network = _cli()
    result = runner.invoke(network, ["sweep", "--nl", "0", "--hidden", "4", "--epochs", "1",
                                     "--voltage", "5", *args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    lines = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], result.output


def test_cli_sweep_out_must_be_a_folder(tmp_path: Path) -> None:
    runner, network = _cli()
    file = tmp_path / "f.txt"
    file.write_text("x")
    result = runner.invoke(network, ["sweep", "--out", str(file)])
    assert result.exit_code != 0


def test_spec_carries_the_clamp_gradient_choice():
    from analysis.network.sweep import SweepSpec
    from dendrolab.errors import ParameterError

    spec = SweepSpec(clamp_grad="pass")
    assert "clamp gradient pass" in spec.describe()[1]
    with pytest.raises(ParameterError, match="clamp_grad"):
        SweepSpec(clamp_grad="bogus")

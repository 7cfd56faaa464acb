"""Platform table: the operation counts of the architecture, the arithmetic, and that every
figure names its source or its assumption."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from analysis.network.layout import digits_layout, svhn_layout
from analysis.network.platforms import (
    COLUMNS,
    PlatformCosts,
    format_table,
    op_count,
    op_count_for,
    platform_table,
    write_platform_csv,
)
from dendrolab.errors import ParameterError


def test_authors_svhn_network_op_count() -> None:
    ops = op_count_for(svhn_layout(), 500, 10)
    assert ops.macs == 3072 * 500 + 500 * 10 == 1_541_000
    assert ops.branch_evals == 9 * 500 + 4 * 10 == 4540
    assert ops.somas == 510
    assert ops.elementwise == 5050
    assert ops == op_count(3072, 500, 10, 9, 4)


def test_digits_op_count() -> None:
    ops = op_count_for(digits_layout(), 100)
    assert (ops.macs, ops.branch_evals, ops.somas) == (64 * 100 + 100 * 10, 3 * 100 + 40, 110)


def test_cpu_and_asic_arithmetic() -> None:
    ops = op_count(3072, 500, 10, 9, 4)
    costs = PlatformCosts()
    assert costs.cpu_energy_j(ops) == pytest.approx(1_541_000 * 9.6e-12 + 5050 * 37e-12)
    assert costs.asic_energy_j(ops) == pytest.approx(1_541_000 * 1e-12 + 5050 * 3.7e-12)
    doubled = PlatformCosts(cpu_overhead=2.0)
    assert doubled.cpu_energy_j(ops) == pytest.approx(2 * costs.cpu_energy_j(ops))


def test_table_rows_ratios_and_sources(tmp_path) -> None:
    ops = op_count(3072, 500, 10, 9, 4)
    frame = platform_table(ops, network_energy_j=2e-9, network_accuracy=0.9,
                           reference_energy_j=6e-9, reference_accuracy=0.88,
                           float_accuracy=0.91)
    assert list(frame.columns) == COLUMNS
    by = frame.set_index("platform")
    assert by.loc["CPU (paper ratio)", "energy_per_inference_j"] == pytest.approx(2e-6)
    assert by.loc["ASIC (paper ratio)", "ratio_to_network"] == pytest.approx(70)
    assert by.loc["This network (with dendrites)", "ratio_to_network"] == 1.0
    assert by.loc["This network without dendrites (NL = 0)", "ratio_to_network"] == 3.0
    assert by.loc["CPU (estimate)", "accuracy"] == 0.91
    assert by.loc["This network (with dendrites)", "accuracy"] == 0.9
    assert math.isnan(by.loc["ASIC (paper ratio)", "accuracy"])
    for row in frame.itertuples():  # every figure says where it comes from
        assert len(row.energy_source) > 20 and len(row.accuracy_source) > 10
        assert any(word in row.energy_source for word in ("assumption", "computed", "abstract"))
    assert "1,541,000 MACs" in by.loc["CPU (estimate)", "energy_source"]
    assert "s41565-020-0722-5" in by.loc["ASIC (paper ratio)", "energy_source"]
    path = write_platform_csv(frame, tmp_path / "sub" / "platforms.csv")
    back = pd.read_csv(path)
    assert back["energy_per_inference_j"].tolist() == pytest.approx(
        frame["energy_per_inference_j"].tolist())
    lines = format_table(frame)
    assert lines[0].startswith("platform") and any("sources:" == ln for ln in lines)


def test_without_reference_and_bad_input() -> None:
    ops = op_count(64, 40, 10, 3, 4)
    frame = platform_table(ops, network_energy_j=1e-9, network_accuracy=0.95)
    assert len(frame) == 5
    with pytest.raises(ParameterError, match="network energy"):
        platform_table(ops, network_energy_j=0.0, network_accuracy=0.9)
    with pytest.raises(ParameterError, match="n_hidden must be a positive integer"):
        op_count(64, 0, 10, 3, 4)
    with pytest.raises(ParameterError, match="cpu_mult_j"):
        PlatformCosts(cpu_mult_j=-1.0)


def test_costs_describe_every_field() -> None:
    text = "\n".join(PlatformCosts().describe())
    for name in ("cpu_mult_j", "cpu_add_j", "cpu_weight_fetch_j", "cpu_elementwise_j",
                 "cpu_overhead", "asic_mac_j", "asic_elementwise_j"):
        assert name in text
    assert "ASSUMPTIONS" in text


# ------------------------------------------------------------------------- CLI
def _cli():
    from click.testing import CliRunner

    from dendrolab.network_cli import network
    from dendrolab.network_sweep_cli import register

    register(network)
    return CliRunner(), network


def test_cli_compare_trains_and_writes_the_table(tmp_path) -> None:
    runner, network = _cli()
    out = tmp_path / "platforms.csv"
    result = runner.invoke(network, ["compare", "--hidden", "20", "--epochs", "3",
                                     "--cost", "cpu_overhead=2", "--assume", "on_off=inf",
                                     "--out", str(out)])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    assert len(frame) == 6 and frame["energy_source"].str.len().min() > 20
    ops = op_count(64, 20, 10, 3, 4)
    cpu = frame.set_index("platform").loc["CPU (estimate)", "energy_per_inference_j"]
    assert cpu == pytest.approx(PlatformCosts(cpu_overhead=2.0).cpu_energy_j(ops))
    assert "cpu_overhead = 2" in result.output and "on_off = inf" in result.output
    assert "power advantage of the dendrites" in result.output


def test_cli_compare_from_model_files(tmp_path) -> None:
    from analysis.network.model import NetConfig, init_params
    from analysis.network.modelfile import save_model

    runner, network = _cli()
    lay = digits_layout()
    paths = {}
    for nl in (0.1, 0.0):
        cfg = NetConfig(lay, 8, nl=nl, variant="matlab")
        paths[nl] = save_model(tmp_path / f"m{nl}.npz", init_params(cfg, 1), cfg, seed=0,
                               metrics={"test_acc": 0.5, "data_seed": 0})
    result = runner.invoke(network, ["compare", "--model", str(paths[0.1]),
                                     "--reference", str(paths[0.0])])
    assert result.exit_code == 0, result.output
    assert "50.00 %" in result.output  # the CPU row takes the model file's accuracy
    swapped = runner.invoke(network, ["compare", "--model", str(paths[0.1]),
                                      "--reference", str(paths[0.1])])
    assert swapped.exit_code == 2 and "must have NL = 0" in swapped.output
    missing = runner.invoke(network, ["compare", "--model", str(tmp_path / "none.npz")])
    assert missing.exit_code == 2 and "no such model file" in missing.output
    assert len(missing.output.strip().splitlines()) == 1
    bad = runner.invoke(network, ["compare", "--cost", "cpu_mult_j=-1", "--model",
                                  str(paths[0.1])])
    assert bad.exit_code == 2 and "cpu_mult_j must be a positive number" in bad.output

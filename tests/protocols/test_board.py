"""The board description: the packaged simulated board parses; every mistake is one line."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from dendrolab.errors import ParameterError
from instruments.bench_config import load_bench_config, parse_bench_config
from protocols.board import Crosspoint, parse_board
from protocols.board_run import load_board

ROLES = Path(__file__).resolve().parents[2] / "dendrolab" / "benches" / "board-sim.yaml"
SIZES, BLOCKS = (24, 16, 24), 4


@pytest.fixture(scope="module")
def packaged() -> dict:
    return yaml.safe_load(ROLES.read_text())


def test_packaged_board_parses(packaged):
    board = load_board(load_bench_config(ROLES))
    assert (board.hidden, board.outputs, board.input_bits, board.levels) == (32, 10, 4, 15)
    l1, l2 = board.layers
    assert [a.n_rows for a in l1.arrays] == [24, 16, 24] and l1.arrays[0].n_cols == 64
    assert [a.n_rows for a in l2.arrays] == [8] * 4 and l2.arrays[0].n_cols == 20
    assert len(l1.dendrites) == 3 and len(l2.dendrites) == 4
    assert len(l1.somas) == 8 and len(l2.somas) == 10
    assert set(board.roles()) <= set(packaged["instruments"])
    # every array's columns split into two sense groups: 32 (10) word-line steps per plane
    assert l1.arrays[0].sense == ("sense1a", "sense1b") and l1.arrays[0].group_cols == 32
    assert l2.arrays[3].sense == ("sense7a", "sense7b") and l2.arrays[3].group_cols == 10
    # matrix columns count across 12-column cards
    cp = l1.arrays[1].rows.crosspoint(0)
    assert cp == Crosspoint("m1", "A", 25) and (cp.slot, cp.card_column) == (3, 1)


def _broken(packaged: dict, path: str, value) -> dict:
    data = copy.deepcopy(packaged["board"])
    node = data
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[int(k)] if k.isdigit() else node[k]
    last = keys[-1]
    if value is KeyError:
        del node[last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return data


@pytest.mark.parametrize("path, value, words", [
    ("hidden", 30, "multiple of the 4 output branches"),
    ("read_v", 5.0, "read_v"),
    ("g_max_s", 1e-6, "g_max_s"),
    ("program.v_set", -1.0, "v_set must be > 0"),
    ("dendrite.period_s", 1e-4, "twice width_s"),
    ("soma.i_full_a", 1.0, "soma.i_full_a"),
    ("layers.0.arrays", [], "one per branch"),
    ("layers.0.arrays.1.rows.first", 70, "pass column 72"),
    ("layers.0.arrays.1.rows.row", "Z", "matrix row"),
    ("layers.0.arrays.1.rows.first", 1, "carries both"),
    ("layers.1.somas", "soma", "at least one"),
    ("colour", 1, "unknown key"),
    ("correct_failed", "yes", "expected true or false"),
    ("layers.0.arrays.0.sense", ["s1", "s2", "s3"], "do not split 64 columns"),
    ("layers.0.arrays.0.sense", ["s1", "s1"], "appears twice"),
    ("layers.0.arrays.0.sense", [], "expected an SMU role"),
    ("layers.0.arrays.0.sense", "sense1a", "same number of sense roles"),
    ("layers.0.arrays.1.sense", ["sense1a", "x"], r"\['sense1a'\] read two column groups"),
])
def test_mistakes_are_one_line_errors(packaged, path, value, words):
    with pytest.raises(ParameterError, match=words) as err:
        parse_board(_broken(packaged, path, value), SIZES, BLOCKS)
    assert "\n" not in str(err.value)


def test_board_roles_must_exist_and_voltages_must_fit_the_bench_limits(packaged):
    data = copy.deepcopy(packaged)
    del data["instruments"]["soma"]
    with pytest.raises(ParameterError, match=r"role\(s\) \['soma'\]"):
        load_board(parse_bench_config(data))
    data = copy.deepcopy(packaged)
    data["instruments"]["dend"]["limits"]["voltage_max_v"] = 3.0
    with pytest.raises(ParameterError, match=r"dendrite driver 'dend' would apply 4\.5 V"):
        load_board(parse_bench_config(data))
    data = copy.deepcopy(packaged)
    del data["board"]
    with pytest.raises(ParameterError, match="no 'board' section"):
        load_board(parse_bench_config(data))

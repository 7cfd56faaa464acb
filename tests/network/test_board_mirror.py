"""The board mirror: the host's arithmetic on calibrations, against known answers."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.network.board_mirror import (
    BoardCalibration,
    Ladder,
    agreement,
    fit_branch_a,
    ideal_calibration,
    mirror,
)
from analysis.network.layout import BranchLayout, digits_layout
from analysis.network.model import NetConfig, Params, branch_function, forward, init_params
from dendrolab.errors import ParameterError
from protocols import board_math as bm
from protocols.board import Board, parse_board

I_FULL = 1e-3  # soma full scale of every test board (A)


def _board(layout: BranchLayout, hidden: int, outputs: int, bits: int, *, name: str | None = None,
           somas: tuple[int, int] = (1, 1)) -> Board:
    """A board for ``layout`` (each array's rows on its own matrix, so no crosspoint clashes)."""
    blocks = layout.output_blocks
    layers = []
    for k, sizes in enumerate((layout.branch_sizes, (hidden // blocks,) * blocks)):
        layers.append({
            "arrays": [{"rows": {"matrix": f"r{k}{b}", "row": "A", "first": 1},
                        "gates": {"matrix": f"g{k}", "row": "B", "first": 1},
                        "sense": f"sense{k}{b}"}
                       for b in range(len(sizes))],
            "dendrites": [{"smu": "dend"}] * len(sizes),
            "somas": [{"smu": "soma"}] * somas[k]})
    data = {"layout": name or layout.name, "hidden": hidden, "outputs": outputs,
            "input_bits": bits, "rows_smu": "rows", "gates_smu": "gates",
            "soma": {"gain_v": 1.0, "v_max": 8.0, "i_full_a": I_FULL},
            "layers": layers}
    return parse_board(data, layout.branch_sizes, blocks)


# ------------------------------------------------------------------ ideal board vs software
@pytest.fixture(scope="module")
def trained():
    from analysis.network.data import load_digits
    from analysis.network.train import train

    data = load_digits(seed=0)
    cfg = NetConfig(data.layout, 32, variant="matlab")
    result = train(cfg, data, epochs=150, lr=0.1, seed=0, clamp_grad="pass")
    return result.params, cfg, data


@pytest.mark.parametrize("branch", ["table", "fit"])
def test_ideal_board_agrees_with_the_software_network(trained, branch):
    """Exact equality is impossible, for two reasons: the board quantises the inputs and the
    hidden outputs (8 bits: errors up to 1/510), and the host calibrates a soma's threshold as
    the first ladder voltage reading >= FIRE_FRACTION of full scale, so even an ideal soma reads
    at least 5 % from theta up where the software's tanh starts at 0. Both move s a little; the
    labels can only change where the software's top two outputs are that close."""
    params, cfg, data = trained
    board = _board(cfg.layout, 32, 10, bits=8)
    cal = ideal_calibration(params, cfg, board)
    software = forward(params, data.x_test, cfg, keep=True)
    res = mirror(params, cfg, board, cal, data.x_test, branch=branch)
    assert res.labels.shape == (450,) and res.hidden.shape == (450, 32)
    assert agreement(res.labels, software.s.argmax(axis=1)) >= 0.98
    # the hidden layer: the 5 % step at threshold plus half a code at most
    assert software.hidden is not None
    err = np.abs(res.hidden / board.levels - software.hidden.y)
    assert err.max() <= bm.FIRE_FRACTION + 0.5 / board.levels + 1e-6
    assert np.median(err) < 1e-2
    if branch == "fit":  # the fitted a of every ideal dendrite is the network's own
        assert res.branch_a is not None
        for a in res.branch_a:
            np.testing.assert_allclose(a, cfg.a, rtol=1e-3)


def test_ideal_conductances_realise_the_weights_row_for_row(trained):
    params, cfg, _ = trained
    board = _board(cfg.layout, 32, 10, bits=4)
    cal = ideal_calibration(params, cfg, board)
    for k, (w, rows) in enumerate(((params.w1, cfg.layout.hidden_branches),
                                   (params.w2, cfg.layout.output_branches(32)))):
        assert cal.w_max[k] == pytest.approx(float(np.abs(w).max()))
        for b, r in enumerate(rows):
            g = cal.conductance[k][b]
            assert g.min() >= board.g_min_s * (1 - 1e-12)
            assert g.max() <= board.g_max_s * (1 + 1e-12)
            eff = bm.effective_weights(g, board.g_min_s, board.g_max_s, cal.w_max[k])
            np.testing.assert_allclose(eff, w[r], atol=1e-6 * cal.w_max[k])


# ------------------------------------------------------------------ hand-built network
def _tiny() -> tuple[NetConfig, Params, Board]:
    """4 inputs in two interleaved branches ([0, 3], [1, 2]), 4 hidden units (output blocks
    [0, 1], [2, 3]), 2 outputs; linear dendrites, theta 0.5, 1-bit codes.

    Hidden unit h copies input (3, 2, 0, 1)[h]; s_out0 = h0 + 0.3 h2 = x3 + 0.3 x0 and
    s_out1 = 0.2 h1 + 0.8 h3 = 0.2 x2 + 0.8 x1 (each branch sum <= 1: no normalisation)."""
    layout = BranchLayout("tiny", (np.array([0, 3]), np.array([1, 2])), 2)
    cfg = NetConfig(layout, 4, n_out=2, nl=0.0, theta=0.5, variant="matlab")
    w1 = np.zeros((4, 4))
    for h, i in enumerate((3, 2, 0, 1)):
        w1[i, h] = 1.0
    w2 = np.zeros((4, 2))
    w2[0, 0], w2[2, 0], w2[1, 1], w2[3, 1] = 1.0, 0.3, 0.2, 0.8
    return cfg, Params(w1, w2), _board(layout, 4, 2, bits=1, somas=(1, 2))


def _pairs(w: np.ndarray, board: Board) -> np.ndarray:
    """Conductance columns of one branch's weights (w_max = 1), written out by hand."""
    span = board.g_max_s - board.g_min_s
    return bm.columns(board.g_min_s + span * np.maximum(w, 0),
                      board.g_min_s + span * np.maximum(-w, 0))


def _tiny_calibration(board: Board, out_soma1: Ladder | None = None) -> BoardCalibration:
    # array rows in branch order: layer 1 inputs (0, 3) and (1, 2); layer 2 hidden (0, 1), (2, 3)
    g1 = (_pairs(np.array([[0, 0, 1, 0], [1, 0, 0, 0]]), board),      # inputs 0, 3
          _pairs(np.array([[0, 0, 0, 1], [0, 1, 0, 0]]), board))      # inputs 1, 2
    g2 = (_pairs(np.array([[1.0, 0.0], [0.0, 0.2]]), board),          # hidden 0, 1
          _pairs(np.array([[0.3, 0.0], [0.0, 0.8]]), board))          # hidden 2, 3
    linear = Ladder([0.0, 1.0], [0.0, 1e-4])
    # hidden soma: 1 % at 1 V is below the fire fraction, so its threshold is 2 V (ON current 5 %,
    # the readout's zero); V = 2 + (s - 0.5) gives 1.5 V for s = 0, where interpolating through
    # (1 V, 1 %) would read ~50 % (code 1), and 2.5 V (full scale above the ON current) for s = 1
    hidden_soma = Ladder([0.0, 1.0, 2.0, 2.5, 8.0],
                         np.array([0.0, 0.01, 0.05, 1.05, 1.05]) * I_FULL)
    out0 = Ladder([0.0, 2.0, 3.0, 8.0], np.array([0.0, 0.2, 0.6, 0.6]) * I_FULL)  # fires at 2 V
    out1 = out_soma1 or Ladder([0.0, 1.0, 2.5, 8.0],
                               np.array([0.0, 0.1, 0.4, 1.0]) * I_FULL)  # fires at 1 V
    return BoardCalibration((g1, g2), (1.0, 1.0), ((linear,) * 2, (linear,) * 2),
                            ((hidden_soma,), (out0, out1)))


def _all_inputs() -> np.ndarray:
    return np.array([[(k >> i) & 1 for i in range(4)] for k in range(16)], dtype=float)


def test_hand_built_network_follows_the_branch_row_orders():
    cfg, params, board = _tiny()
    cal = _tiny_calibration(board)
    ideal = ideal_calibration(params, cfg, board)
    for k in range(2):  # ideal_calibration puts the rows in the same order as written by hand
        for got, want in zip(ideal.conductance[k], cal.conductance[k], strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-12)
    x = _all_inputs()
    res = mirror(params, cfg, board, cal, x)
    np.testing.assert_array_equal(res.hidden, x[:, [3, 2, 0, 1]].astype(int))
    s0, s1 = x[:, 3] + 0.3 * x[:, 0], 0.2 * x[:, 2] + 0.8 * x[:, 1]
    np.testing.assert_allclose(res.s_out, np.stack([s0, s1], axis=1), atol=1e-12)
    # readings above the ON current at the threshold (the readout's zero):
    # out0: V = 2 + (s - 0.5), fires from 2 V at 0.2: s 1 -> 2.5 V -> 0.4 - 0.2; 1.3 -> 2.8 V ->
    # 0.52 - 0.2; out1: V = 1 + (s - 0.5), fires from 1 V at 0.1: s 0.8 -> 1.3 V -> 0.16 - 0.1;
    # 1.0 -> 1.5 V -> 0.2 - 0.1
    y0 = {0.0: 0.0, 0.3: 0.0, 1.0: 0.2, 1.3: 0.32}
    y1 = {0.0: 0.0, 0.2: 0.0, 0.8: 0.06, 1.0: 0.1}
    want_y = np.array([[y0[round(a, 1)], y1[round(b, 1)]] for a, b in zip(s0, s1, strict=True)])
    np.testing.assert_allclose(res.y_out, want_y, atol=1e-12)
    # labels: the larger reading; ties (both 0) go to the larger s, then to output 0
    want = np.where(want_y[:, 0] > want_y[:, 1], 0,
                    np.where(want_y[:, 1] > want_y[:, 0], 1, np.where(s1 > s0, 1, 0)))
    np.testing.assert_array_equal(res.labels, want)
    only_x2 = 4  # x2 = 1 alone: both readings 0, s = (0, 0.2): the tie goes to output 1
    assert res.y_out[only_x2].tolist() == [0.0, 0.0] and res.labels[only_x2] == 1
    assert res.labels[0] == 0  # nothing on: y and s tie, argmax takes output 0
    fit = mirror(params, cfg, board, cal, x, branch="fit")  # linear dendrites: a = 0
    assert fit.branch_a is not None and all(np.all(a == 0.0) for a in fit.branch_a)
    np.testing.assert_array_equal(fit.labels, res.labels)


def test_a_soma_that_never_fires_reads_zero():
    cfg, params, board = _tiny()
    dead = Ladder([0.0, 8.0], [0.0, 0.04 * I_FULL])  # below the fire fraction everywhere
    res = mirror(params, cfg, board, _tiny_calibration(board, out_soma1=dead), _all_inputs())
    assert np.all(res.y_out[:, 1] == 0.0)
    assert res.y_out[:, 0].max() == pytest.approx(0.32)


def test_dendrite_table_reads_the_ladder_over_its_full_scale():
    cfg, params, board = _tiny()
    cal = _tiny_calibration(board)
    curved = Ladder([0.0, 0.5, 1.0], [0.0, 1e-5, 4e-5])  # F(0.5) = 0.25, F(1) = 1
    cal = BoardCalibration(cal.conductance, cal.w_max, ((curved,) * 2, cal.dendrites[1]),
                           cal.somas)
    assert cal.dendrite_full(0, 1) == pytest.approx(4e-5)
    x = np.array([[1.0, 1.0, 1.0, 1.0]])
    res = mirror(params, cfg, board, cal, x)
    # every hidden u is 0 or 1 with 1-bit inputs: f = u exactly at the ladder points
    np.testing.assert_allclose(res.f[0], res.u[0], atol=1e-12)
    res2 = mirror(params, cfg, _board(cfg.layout, 4, 2, bits=8, somas=(1, 2)), cal,
                  np.array([[0.5, 0.0, 0.0, 0.0]]))
    # input 0 at half drive (code 128 of 255): hidden unit 2 gets u = 128/255, and f lies
    # on the ladder's segment from (0.5, 0.25) to (1, 1)
    u = 128 / 255
    assert res2.u[0][0, 0, 2] == pytest.approx(u)
    assert res2.f[0][0, 0, 2] == pytest.approx(0.25 + (u - 0.5) * 1.5)


# ------------------------------------------------------------------ branch fit and predict
@pytest.mark.parametrize("a", [0.3, 50 * 0.1 / 0.9, 30.0, 300.0])
def test_fit_branch_a_recovers_a_known_a(a):
    u = np.linspace(0.0, 1.0, 11)
    current = 3e-5 * branch_function(u, a)  # a noiseless ladder, normalised as the host does
    r = bm.ratio(current, current[-1])
    assert fit_branch_a(u, r) == pytest.approx(a, rel=0.01)


def test_fit_branch_a_is_zero_for_linear_and_sublinear_curves():
    u = np.linspace(0.0, 1.0, 11)
    assert fit_branch_a(u, u) == 0.0
    assert fit_branch_a(u, np.sqrt(u)) == 0.0
    with pytest.raises(ParameterError, match="equal length"):
        fit_branch_a(u, u[:-1])


def test_predict_breaks_ties_by_the_soma_input():
    y = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 0.5], [0.2, 0.7, 0.7], [0.1, 0.9, 0.3]])
    s = np.array([[-1.0, 0.5, 0.2], [2.0, 3.0, 9.0], [5.0, 1.0, 2.0], [0.0, -1.0, 7.0]])
    np.testing.assert_array_equal(bm.predict(y, s), [1, 1, 2, 1])


def test_agreement():
    assert agreement(np.array([1, 2, 3, 4]), np.array([1, 2, 0, 4])) == 0.75
    assert np.isnan(agreement(np.array([], dtype=int), np.array([], dtype=int)))
    with pytest.raises(ParameterError, match="one length"):
        agreement(np.array([1, 2]), np.array([1, 2, 3]))


# ------------------------------------------------------------------ refusals
def _refuse(match: str, fn, *args, **kwargs) -> None:
    with pytest.raises(ParameterError, match=match) as info:
        fn(*args, **kwargs)
    assert "\n" not in str(info.value)


def test_refuses_the_pytorch_variant_and_mismatched_shapes():
    lay = digits_layout()
    cfg = NetConfig(lay, 8, variant="matlab")
    params = init_params(cfg, 0)
    board = _board(lay, 8, 10, bits=4)
    cal = ideal_calibration(params, cfg, board)
    x = np.zeros((2, 64))
    torch = NetConfig(lay, 8, variant="pytorch")
    _refuse("matlab variant only", mirror, params, torch, board, cal, x)
    _refuse("matlab variant only", ideal_calibration, params, torch, board)
    _refuse("does not fit the board", mirror, params, cfg, _board(lay, 16, 10, bits=4), cal, x)
    _refuse("does not fit the board", mirror, params, cfg, _board(lay, 8, 12, bits=4), cal, x)
    _refuse("does not fit the board", mirror, params, cfg,
            _board(lay, 8, 10, bits=4, name="svhn"), cal, x)
    other = BranchLayout("digits", (np.arange(32), np.arange(32, 64)), 4)  # same name, 2 branches
    _refuse("branches have", mirror, init_params(NetConfig(other, 8), 0),
            NetConfig(other, 8, variant="matlab"), board, cal, x)
    _refuse("weights", mirror, Params(params.w1[:, :4], params.w2), cfg, board, cal, x)
    _refuse(r"inputs must be \(N, 64\)", mirror, params, cfg, board, cal, np.zeros((2, 63)))
    _refuse("branch must be one of", mirror, params, cfg, board, cal, x, branch="spline")
    _refuse("soma_v", ideal_calibration, params, cfg, board, soma_v=9.0)


def test_refuses_a_calibration_that_does_not_match_the_board():
    cfg, params, board = _tiny()
    cal = _tiny_calibration(board)
    x = _all_inputs()
    short = BoardCalibration(((cal.conductance[0][0][:1], cal.conductance[0][1]),
                              cal.conductance[1]), cal.w_max, cal.dendrites, cal.somas)
    _refuse(r"conductance\[0\]\[0\] has shape", mirror, params, cfg, board, short, x)
    flat = Ladder([0.0, 1.0], [0.0, 0.0])
    dark = BoardCalibration(cal.conductance, cal.w_max, ((flat, flat), cal.dendrites[1]),
                            cal.somas)
    _refuse("no current at u = 1", mirror, params, cfg, board, dark, x)
    one = BoardCalibration((cal.conductance[0][:1], cal.conductance[1]), cal.w_max,
                           cal.dendrites, cal.somas)
    _refuse("for 2 branches", mirror, params, cfg, board, one, x)
    _refuse("2 layers", BoardCalibration, cal.conductance[:1], cal.w_max, cal.dendrites,
            cal.somas)
    _refuse("w_max", BoardCalibration, cal.conductance, (1.0, 0.0), cal.dendrites, cal.somas)


@pytest.mark.parametrize(("x", "i", "match"), [
    ([0.0, 1.0], [0.0], "equal length"),
    ([0.0], [0.0], "equal length"),
    ([0.0, 0.5, 0.4], [0.0, 1.0, 2.0], "rise strictly"),
    ([0.0, np.nan], [0.0, 1.0], "non-finite"),
])
def test_ladder_checks(x, i, match):
    _refuse(match, Ladder, x, i)

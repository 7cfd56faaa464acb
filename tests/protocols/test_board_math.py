"""The host's arithmetic on a dendritic board against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from protocols import board_math as bm


def test_pairs_realise_the_weights_with_one_device_at_rest():
    w = np.array([[0.5, -1.0], [0.0, 0.25]])
    gp, gm, w_max = bm.pair_targets(w, 4e-6, 14e-6)
    assert w_max == 1.0
    np.testing.assert_allclose(gp, [[9e-6, 4e-6], [4e-6, 6.5e-6]])
    np.testing.assert_allclose(gm, [[4e-6, 14e-6], [4e-6, 4e-6]])
    cols = bm.columns(gp, gm)
    assert cols.shape == (2, 4)
    np.testing.assert_allclose(cols[:, 0::2], gp)
    np.testing.assert_allclose(bm.effective_weights(cols, 4e-6, 14e-6, w_max), w, atol=1e-15)


def test_bit_planes_add_up_to_the_direct_column_current():
    rng = np.random.default_rng(3)
    g = rng.uniform(4e-6, 14e-6, (6, 4))                   # 6 rows, 2 neurons (4 columns)
    x = rng.uniform(0, 1, 6)
    bits, read_v = 4, 0.2
    codes = bm.encode(x, bits)
    planes = np.stack([(bm.bit_plane(codes, k) * read_v) @ g for k in range(bits)])
    z = bm.branch_sums(planes, bits, read_v, 4e-6, 14e-6, 2.0)
    direct = (codes / 15) @ bm.effective_weights(g, 4e-6, 14e-6, 2.0)
    np.testing.assert_allclose(z, direct, rtol=1e-12)


def test_encode_rounds_and_clips():
    np.testing.assert_array_equal(bm.encode(np.array([-0.2, 0.0, 0.5, 1.0, 3.0]), 4),
                                  [0, 0, 8, 15, 15])


def test_dendrite_inputs_follow_the_matlab_rule():
    z = np.array([[2.0, -1.0, 1.0], [0.5, 0.25, -3.0]])
    np.testing.assert_allclose(bm.dendrite_inputs(z), [[1.0, 0.0, 0.5], [0.5, 0.25, 0.0]])


def test_soma_drive_bias_and_clip():
    s = np.array([0.0, 0.11, 1.11, 10.0])
    np.testing.assert_allclose(bm.soma_drive(s, 1.2, 0.11, 1.1, 4.0),
                               [1.2 - 0.121, 1.2, 2.3, 4.0])


def test_fire_point_and_soma_output():
    v = np.array([0.0, 1.0, 1.1, 1.2, 2.0])
    i = np.array([0.0, 5e-6, 6e-6, 6e-4, 1e-3])
    assert bm.fire_point(v, i, 1.8e-3) == (1.2, 6e-4)
    assert np.isnan(bm.fire_threshold(v, i * 1e-3, 1.8e-3))
    np.testing.assert_allclose(bm.soma_output(np.array([5e-6, 6e-4, 1.5e-3, 5e-3]), 6e-4, 1.8e-3),
                               [0.0, 0.0, 0.5, 1.0])


def test_predict_breaks_ties_by_soma_input():
    y = np.array([[0.0, 0.0, 0.0], [0.5, 0.2, 0.5], [0.1, 0.9, 0.0]])
    s = np.array([[0.0, 0.3, 0.1], [1.0, 2.0, 1.5], [0.0, 0.0, 9.0]])
    np.testing.assert_array_equal(bm.predict(y, s), [1, 2, 1])


@pytest.mark.parametrize("bits", [1, 4, 8])
def test_quantise_is_encode(bits):
    y = np.linspace(0, 1, 11)
    np.testing.assert_array_equal(bm.quantise(y, bits), bm.encode(y, bits))


def test_on_current_is_the_on_branch_line_at_threshold():
    """A 2 kohm ON branch from 1.2 V with 2 % noise on every point: the line through the ON
    points within ON_FIT_SPAN_V finds the current at threshold better than its one point."""
    v = np.round(np.arange(0, 4.001, 0.05), 6)
    true = np.where(v >= 1.2, (v - 0.05) / 2e3, 1e-6)
    rng = np.random.default_rng(1)
    errors_line, errors_point = [], []
    for _ in range(50):
        i = true * (1 + 0.02 * rng.standard_normal(v.size))
        v_th, i_on = bm.fire_point(v, i, 1.8e-3)
        assert v_th == 1.2
        errors_line.append(abs(i_on - true[v == 1.2][0]))
        errors_point.append(abs(i[v == 1.2][0] - true[v == 1.2][0]))
    assert np.mean(errors_line) < 0.8 * np.mean(errors_point)

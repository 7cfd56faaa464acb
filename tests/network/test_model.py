"""The network's layouts, branch function, forward invariants and explicit gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.metrics import branch_function as metrics_branch_function
from analysis.network.layout import BranchLayout, digits_layout, svhn_layout
from analysis.network.model import (
    NetConfig,
    Packed,
    Params,
    branch_function,
    cross_entropy,
    forward,
    init_params,
    loss_and_grads,
    predict,
)
from dendrolab.errors import DendrolabError


# ------------------------------------------------------------------ layouts
def test_svhn_layout_is_the_authors_nine_branches():
    lay = svhn_layout()
    assert lay.n_in == 3072 and lay.n_hidden_branches == 9 and lay.output_blocks == 4
    assert lay.branch_sizes == (320, 384, 320) * 3
    assert np.array_equal(np.sort(np.concatenate(lay.hidden_branches)), np.arange(3072))

    def feature(row: int, col: int, ch: int) -> int:  # HWC flattening
        return (row * 32 + col) * 3 + ch

    # branch 0 = R, columns 1-10 (0-based 0-9); branch 1 = R, 11-22; branch 3 = G, 1-10 ...
    assert feature(0, 0, 0) in lay.hidden_branches[0]
    assert feature(31, 9, 0) in lay.hidden_branches[0]
    assert feature(0, 10, 0) in lay.hidden_branches[1]
    assert feature(7, 21, 0) in lay.hidden_branches[1]
    assert feature(7, 22, 0) in lay.hidden_branches[2]
    assert feature(0, 0, 1) in lay.hidden_branches[3]
    assert feature(3, 31, 2) in lay.hidden_branches[8]


def test_digits_layout_three_vertical_strips():
    lay = digits_layout()
    assert lay.n_in == 64 and lay.branch_sizes == (24, 16, 24) and lay.output_blocks == 4
    cols = [sorted({int(i) % 8 for i in b}) for b in lay.hidden_branches]
    assert cols == [[0, 1, 2], [3, 4], [5, 6, 7]]


@pytest.mark.parametrize("branches", [
    (np.array([0, 1]), np.array([1, 2])),        # overlap
    (np.array([0, 1]), np.array([3])),            # gap
    (np.array([0, 1]), np.array([], dtype=int)),  # empty branch
])
def test_layout_must_partition_the_inputs(branches):
    with pytest.raises(DendrolabError, match="branch"):
        BranchLayout("bad", branches, 1)


def test_layout_equality_compares_the_index_arrays():
    assert digits_layout() == digits_layout()
    assert digits_layout() != svhn_layout()
    other = BranchLayout("digits", tuple(b.copy() for b in digits_layout().hidden_branches), 2)
    assert other != digits_layout()


def test_config_checks_and_a():
    cfg = NetConfig(digits_layout(), 8)
    assert cfg.a == pytest.approx(50 * 0.1 / 0.9)
    assert NetConfig(digits_layout(), 8, nl=0.0).a == 0.0
    with pytest.raises(DendrolabError, match="divisible"):
        NetConfig(digits_layout(), 10)
    with pytest.raises(DendrolabError, match="NL"):
        NetConfig(digits_layout(), 8, nl=1.0)
    with pytest.raises(DendrolabError, match="variant"):
        NetConfig(digits_layout(), 8, variant="keras")


# ------------------------------------------------------------------ branch function
def test_branch_function_known_values():
    a = 50 * 0.1 / 0.9
    u = np.array([0.0, 0.5, 0.9, 1.0])
    f = branch_function(u, a)
    # notes §1.5 table: f(0.5) = 0.059, f(0.9) = 0.572 at NL 0.1
    assert f[0] == 0.0 and f[3] == pytest.approx(1.0)
    assert f[1] == pytest.approx(math.expm1(a * 0.5) / math.expm1(a))
    assert round(float(f[1]), 3) == 0.059 and round(float(f[2]), 3) == 0.572
    assert np.allclose(f, metrics_branch_function(u, a))


def test_branch_function_linear_for_a_le_0_and_stable_for_large_a():
    u = np.linspace(-1, 1, 21, dtype=np.float32)
    assert np.array_equal(branch_function(u, 0.0), u)
    assert np.array_equal(branch_function(u, -3.0), u)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        big = branch_function(u, 500.0)
    assert big.dtype == np.float32 and np.isfinite(big).all()
    assert big[-1] == pytest.approx(1.0) and abs(big[:-1]).max() < 1e-6
    # float32 large-a form agrees with float64 exact values
    u64 = np.linspace(-1, 1, 41)
    for a in (1e-4, 0.5, 5.5, 79.0, 81.0, 200.0):
        exact = np.array([math.expm1(a * x) / math.expm1(a) for x in u64])
        got = branch_function(u64.astype(np.float32), a)
        assert np.allclose(got, exact, atol=2e-6), a


def test_branch_function_per_element_a():
    u = np.linspace(-1, 1, 5)[None, None, :].repeat(2, axis=1)  # (1, 2, 5)
    a = np.array([[0.0] * 5, [5.0] * 5])  # (B=2, M=5): one linear branch, one a = 5
    f = branch_function(u, a)
    assert np.allclose(f[0, 0], u[0, 0])
    assert np.allclose(f[0, 1], branch_function(u[0, 1], 5.0))


# ------------------------------------------------------------------ forward
@pytest.fixture
def net():
    cfg = NetConfig(digits_layout(), 12)
    params = init_params(cfg, seed=3)
    x = np.random.default_rng(0).random((7, 64), dtype=np.float32)
    return cfg, params, x


def test_forward_shapes_and_dtype(net):
    cfg, params, x = net
    fw = forward(params, x, cfg, keep=True)
    assert fw.y.shape == (7, 10) and fw.y.dtype == np.float32
    assert fw.hidden.u.shape == (7, 3, 12) and fw.hidden.d.shape == (7, 3, 12)
    assert fw.hidden.s.shape == (7, 12) and fw.hidden.y.shape == (7, 12)
    assert fw.output.u.shape == (7, 4, 10) and fw.output.y.shape == (7, 10)
    assert np.array_equal(fw.output.y, fw.y)
    with pytest.raises(DendrolabError, match="inputs"):
        forward(params, x[:, :10], cfg)


def test_pytorch_normalisation_invariants(net):
    cfg, params, x = net
    fw = forward(params, x, cfg, keep=True)
    for tr in (fw.hidden, fw.output):
        # per sample and branch, over the layer's neurons: max |u| = 1 and max |d| = 1,
        # unless every partial sum of that branch is 0 (e.g. a block of silent hidden units)
        live = np.abs(tr.u).max(axis=2) > 0
        assert live.mean() > 0.5
        assert np.allclose(np.abs(tr.u).max(axis=2)[live], 1.0)
        assert np.allclose(np.abs(tr.d).max(axis=2)[live], 1.0)
        assert (tr.d[~live] == 0).all()
        assert np.allclose(tr.s, tr.d.sum(axis=1), atol=1e-6)
        expected = np.maximum(2 / (1 + np.exp(-(tr.s.astype(float) - cfg.theta))) - 1, 0)
        assert np.allclose(tr.y, expected, atol=1e-6)
        assert (tr.y >= 0).all() and (tr.y < 1).all()


def test_forward_is_invariant_to_the_weight_scale(net):
    cfg, params, x = net
    scaled = Params(params.w1 * 8, params.w2 * 0.25)
    assert np.allclose(forward(params, x, cfg).y, forward(scaled, x, cfg).y, atol=1e-6)


def test_nl0_branches_are_linear(net):
    cfg, params, x = net
    fw = forward(params, x, NetConfig(cfg.layout, 12, nl=0.0), keep=True)
    assert np.allclose(fw.hidden.d, fw.hidden.u)


def test_matlab_variant_rectifies_and_divides_only_above_1(net):
    cfg, params, x = net
    mcfg = NetConfig(cfg.layout, 12, variant="matlab", nl=0.0)
    big = forward(params, x, mcfg, keep=True)  # N(0,1) weights: branch sums far above 1
    assert (big.hidden.u >= 0).all()
    assert np.allclose(big.hidden.u.max(axis=2), 1.0)
    tiny = Params(params.w1 * 1e-3, params.w2)
    fw = forward(tiny, x, mcfg, keep=True)
    pk = Packed.from_params(tiny, mcfg)
    xp = pk.pack_x(x)
    z0 = xp[:, pk.off1[0]:pk.off1[1]] @ pk.w1[pk.off1[0]:pk.off1[1]]
    assert fw.hidden.u.max() < 1.0  # not divided: every branch max is below 1
    assert np.allclose(fw.hidden.u[:, 0, :], np.maximum(z0, 0), atol=1e-7)
    assert np.allclose(fw.hidden.d, fw.hidden.u)  # NL 0, no second normalisation


@pytest.mark.parametrize(("variant", "nl", "per_branch"), [
    ("pytorch", 0.1, False), ("pytorch", 0.0, False), ("pytorch", 0.7, False),
    ("matlab", 0.1, False), ("pytorch", 0.1, True), ("matlab", 0.3, True)])
def test_inference_path_equals_the_training_path(net, variant, nl, per_branch):
    from analysis.network.devices import DeviceModel

    cfg, params, x = net
    cfg = NetConfig(cfg.layout, 12, nl=nl, variant=variant)
    dev = DeviceModel(branch="empirical", a_values=(0.0, 3.0, 90.0)) if per_branch else None
    fast = forward(params, x, cfg, device=dev)
    full = forward(params, x, cfg, device=dev, keep=True)
    assert np.allclose(fast.y, full.y, atol=1e-6) and np.allclose(fast.s, full.s, atol=1e-5)


def test_predict_is_argmax_of_the_outputs(net):
    cfg, params, x = net
    y = forward(params, x, cfg).y
    labels = predict(params, x, cfg)
    unique = (y.max(axis=1) > 0) & ((y == y.max(axis=1, keepdims=True)).sum(axis=1) == 1)
    assert unique.any()
    assert np.array_equal(labels[unique], y.argmax(axis=1)[unique])
    assert np.array_equal(predict(params, x, cfg, chunk=3), labels)


def test_init_is_reproducible_and_normal():
    cfg = NetConfig(svhn_layout(), 500)
    a, b, c = init_params(cfg, 1), init_params(cfg, 1), init_params(cfg, 2)
    assert a.w1.dtype == np.float32 and a.w1.shape == (3072, 500) and a.w2.shape == (500, 10)
    assert np.array_equal(a.w1, b.w1) and np.array_equal(a.w2, b.w2)
    assert not np.array_equal(a.w1, c.w1)
    assert abs(a.w1.std() - 1) < 0.01 and abs(a.w1.mean()) < 0.01


def test_packing_round_trip():
    cfg = NetConfig(svhn_layout(), 8)
    p = init_params(cfg, 0)
    pk = Packed.from_params(p, cfg)
    assert pk.off1 == [0, 320, 704, 1024, 1344, 1728, 2048, 2368, 2752, 3072]
    back = pk.unpack()
    assert np.array_equal(back.w1, p.w1) and np.array_equal(back.w2, p.w2)


# ------------------------------------------------------------------ loss and gradients
def test_cross_entropy_known_values():
    loss, g = cross_entropy(np.zeros((4, 10), np.float32), np.array([0, 1, 2, 3]))
    assert loss == pytest.approx(math.log(10))
    assert np.allclose(g.sum(axis=1), 0, atol=1e-7) and g[0, 0] == pytest.approx((0.1 - 1) / 4)
    # soma outputs are confined to [0, 1): the best loss is ln(1 + 9/e) (notes §1.6)
    best = np.zeros((1, 10))
    best[0, 0] = 1.0
    assert cross_entropy(best, np.array([0]))[0] == pytest.approx(math.log(1 + 9 / math.e))


def _numeric_check(params, x, labels, cfg, device=None, n_checks=25, seed=0):
    _, g = loss_and_grads(params, x, labels, cfg, device=device)
    rng = np.random.default_rng(seed)
    h = 1e-6
    for name in ("w1", "w2"):
        w, gw = getattr(params, name), getattr(g, name)
        assert gw.shape == w.shape
        for _ in range(n_checks):
            i = tuple(int(rng.integers(0, s)) for s in w.shape)
            old = w[i]
            w[i] = old + h
            lp, _ = loss_and_grads(params, x, labels, cfg, device=device)
            w[i] = old - h
            lm, _ = loss_and_grads(params, x, labels, cfg, device=device)
            w[i] = old
            num = (lp - lm) / (2 * h)
            assert gw[i] == pytest.approx(num, rel=1e-4, abs=1e-8), (name, i)


@pytest.mark.parametrize(("variant", "nl"), [("pytorch", 0.1), ("pytorch", 0.0),
                                              ("pytorch", 0.3), ("matlab", 0.1)])
def test_gradient_matches_finite_differences(variant, nl):
    cfg = NetConfig(digits_layout(), 8, nl=nl, variant=variant)
    p = init_params(cfg, seed=5)
    params = Params(p.w1.astype(np.float64), p.w2.astype(np.float64) * 3)  # float64 for FD
    rng = np.random.default_rng(1)
    x = rng.random((6, 64))
    labels = rng.integers(0, 10, 6)
    loss, _ = loss_and_grads(params, x, labels, cfg)
    assert math.log(1 + 9 / math.e) <= loss < 3
    _numeric_check(params, x, labels, cfg)


def test_gradient_with_per_branch_device_a():
    from analysis.network.devices import DeviceModel

    cfg = NetConfig(digits_layout(), 8)
    dev = DeviceModel(branch="empirical", a_values=(0.0, 2.0, 9.0), seed=4)
    p = init_params(cfg, seed=2)
    params = Params(p.w1.astype(np.float64), p.w2.astype(np.float64))
    rng = np.random.default_rng(3)
    _numeric_check(params, rng.random((5, 64)), rng.integers(0, 10, 5), cfg, device=dev)


def test_float32_gradient_close_to_float64():
    cfg = NetConfig(digits_layout(), 8)
    p32 = init_params(cfg, seed=5)
    p64 = Params(p32.w1.astype(np.float64), p32.w2.astype(np.float64))
    rng = np.random.default_rng(1)
    x, labels = rng.random((16, 64)), rng.integers(0, 10, 16)
    l32, g32 = loss_and_grads(p32, x, labels, cfg)
    l64, g64 = loss_and_grads(p64, x, labels, cfg)
    assert g32.w1.dtype == np.float32
    assert l32 == pytest.approx(l64, rel=1e-5)
    assert np.allclose(g32.w1, g64.w1, atol=1e-5 * np.abs(g64.w1).max())
    assert np.allclose(g32.w2, g64.w2, atol=1e-5 * np.abs(g64.w2).max())


def test_clamp_pass_gradient_flows_through_clamped_outputs_only():
    """``clamp_grad="pass"`` changes only what the output clamp blocks: with no output ever
    clamped (theta far below every soma input) it is the exact gradient; with outputs silent
    on every sample, their weights get a gradient the exact one (almost) lacks."""
    rng = np.random.default_rng(2)
    x = rng.random((6, 64))
    labels = rng.integers(0, 10, 6)
    never = NetConfig(digits_layout(), 8, nl=0.1, theta=-20.0)
    p = init_params(never, seed=5)
    params = Params(p.w1.astype(np.float64), p.w2.astype(np.float64))
    assert (forward(params, x, never).y > 0).all()
    _, g_e = loss_and_grads(params, x, labels, never)
    _, g_p = loss_and_grads(params, x, labels, never, clamp_grad="pass")
    assert np.array_equal(g_p.w1, g_e.w1) and np.array_equal(g_p.w2, g_e.w2)

    cfg = NetConfig(digits_layout(), 8, nl=0.1)
    fw = forward(params, x, cfg, keep=True)
    silent = (fw.output.y == 0).all(axis=0)
    assert silent.any()                                # the test can fail
    loss_e, g_e = loss_and_grads(params, x, labels, cfg)
    loss_p, g_p = loss_and_grads(params, x, labels, cfg, clamp_grad="pass")
    assert loss_p == loss_e                            # the same forward pass
    # exact: only the few weights the shared max-normalisation couples in; pass: every weight
    # of a silent output gets the soma's own slope
    assert np.count_nonzero(g_p.w2[:, silent]) > 2 * np.count_nonzero(g_e.w2[:, silent])
    with pytest.raises(DendrolabError, match="clamp_grad"):
        loss_and_grads(params, x, labels, cfg, clamp_grad="bogus")

"""Measured devices: branch functions from a metrics table and synapse non-idealities."""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import pandas as pd
import pytest

from analysis.metrics import COLUMNS
from analysis.network.devices import DeviceError, DeviceModel, quantise
from analysis.network.layout import digits_layout
from analysis.network.model import (
    NetConfig,
    Params,
    _branch_sums,
    forward,
    init_params,
    layer_forward,
)
from dendrolab.errors import DendrolabError


@pytest.fixture
def net():
    cfg = NetConfig(digits_layout(), 16)
    params = init_params(cfg, seed=0)
    x = np.random.default_rng(1).random((50, 64), dtype=np.float32)
    return cfg, params, x


def _row(metric, value, device="d1", quality="ok", unit="1"):
    row = dict.fromkeys(COLUMNS, "")
    row.update(uuid=f"u-{device}-{metric}-{value}", device_id=device, wafer_id="W1", die_col=1,
               die_row=2, metric=metric, value=value, unit=unit, quality=quality)
    return row


# ------------------------------------------------------------------ identity and seeds
def test_ideal_device_changes_nothing(net):
    cfg, params, x = net
    plain = forward(params, x, cfg).y
    assert np.array_equal(forward(params, x, cfg, device=DeviceModel()).y, plain)
    # a conductance window with zero spread, no levels: the same weights up to rounding
    window = DeviceModel(g_min=0.1, g_max=1.0)
    assert window.synapse_effects
    assert np.allclose(forward(params, x, cfg, device=window).y, plain, atol=1e-5)


def test_zero_spread_is_identical_across_seeds_and_spread_follows_the_seed(net):
    cfg, params, x = net
    zero = [forward(params, x, cfg, device=DeviceModel(levels=8, seed=s)).y for s in (1, 2)]
    assert np.array_equal(zero[0], zero[1])
    noisy = DeviceModel(d2d_sigma=0.3, c2c_sigma=0.1, read_sigma=0.02, seed=1)
    a = forward(params, x, cfg, device=noisy).y
    b = forward(params, x, cfg, device=noisy).y
    c = forward(params, x, cfg, device=noisy.with_(seed=2)).y
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)
    # per-forward noise from the caller's generator
    r1 = forward(params, x, cfg, device=noisy, rng=np.random.default_rng(5)).y
    r2 = forward(params, x, cfg, device=noisy, rng=np.random.default_rng(6)).y
    assert not np.allclose(r1, r2)


def test_two_levels_give_sign_like_weights(net):
    cfg, params, _ = net
    real = DeviceModel(levels=2).realise(params, cfg)
    w = real.effective_weights().w1
    w_max = np.abs(params.w1).max()
    packed = np.take(params.w1, cfg.layout.permutation(), axis=0)
    assert set(np.unique(np.round(w / w_max, 6))) <= {-1.0, 0.0, 1.0}
    big = np.abs(packed) > w_max / 2
    assert np.array_equal(np.sign(w[big]), np.sign(packed[big]))
    assert (w[~big] == 0).all()


def test_quantise_levels():
    g = np.array([0.0, 0.1, 0.3, 0.4, 0.99, 1.0], np.float32)
    assert np.allclose(quantise(g, 0.0, 1.0, 5), [0, 0, 0.25, 0.5, 1, 1])
    assert np.array_equal(quantise(g, 0.0, 1.0, 0), g)


def test_many_levels_approach_the_ideal_weights(net):
    cfg, params, _ = net
    packed = np.take(params.w1, cfg.layout.permutation(), axis=0)
    w_max = np.abs(packed).max()
    for levels in (16, 256):
        w = DeviceModel(levels=levels).realise(params, cfg).effective_weights().w1
        assert np.abs(w - packed).max() <= w_max / (levels - 1) / 2 * 1.0001


def test_stuck_fraction_on_a_large_matrix():
    cfg = NetConfig(digits_layout(), 400)
    big = Params(np.random.default_rng(0).standard_normal((64 * 50, 400)).astype(np.float32)[:64],
                 np.zeros((400, 10), np.float32) + 0.5)
    dev = DeviceModel(stuck_off=0.04, stuck_on=0.02, seed=3)
    syn = dev.realise(big, cfg).syn1
    n = 2 * syn.free[0].size  # two devices per weight
    stuck = 1 - (syn.free[0].sum() + syn.free[1].sum()) / n
    tol = 5 * math.sqrt(0.06 * 0.94 / n)
    assert stuck == pytest.approx(0.06, abs=tol)
    at_max = ((syn.gp == dev.g_max) & ~syn.free[0]).sum() + ((syn.gm == dev.g_max)
                                                            & ~syn.free[1]).sum()
    assert at_max / n == pytest.approx(0.02, abs=5 * math.sqrt(0.02 * 0.98 / n))


def test_d2d_spread_is_multiplicative_with_the_given_sigma():
    cfg = NetConfig(digits_layout(), 400)
    w = Params(np.ones((64, 400), np.float32), np.ones((400, 10), np.float32))
    syn = DeviceModel(d2d_sigma=0.1, seed=1).realise(w, cfg).syn1
    assert syn.gp.mean() == pytest.approx(1.0, abs=0.005)
    assert syn.gp.std() == pytest.approx(0.1, rel=0.03)
    assert (syn.gm == 0).all()  # g_min = 0: the other device of the pair carries no current


def test_read_noise_std_on_the_branch_sums():
    rng = np.random.default_rng(0)
    x = rng.random((2000, 64), dtype=np.float32)
    w = rng.standard_normal((64, 4)).astype(np.float32)
    offsets = [0, 24, 40, 64]
    noisy = layer_forward(x, w, offsets, 5.0, "pytorch", 0.11, read_std=0.05,
                           rng=np.random.default_rng(1))
    dz = noisy.z - _branch_sums(x, w, offsets)
    norms = np.stack([np.linalg.norm(x[:, a:b], axis=1) for a, b in pairwise(offsets)], 1)
    ratio = dz / norms[:, :, None]
    assert ratio.std() == pytest.approx(0.05, rel=0.03)
    assert abs(ratio.mean()) < 0.003


# ------------------------------------------------------------------ branch functions
def test_fixed_and_per_branch_a(net):
    cfg, params, x = net
    fixed = DeviceModel(branch="fixed", a=cfg.a)
    assert np.array_equal(forward(params, x, cfg, device=fixed).y, forward(params, x, cfg).y)
    emp = DeviceModel(branch="empirical", a_values=(1.0, 4.0, 12.0), seed=7)
    a1, a2 = emp.branch_a(cfg)
    assert a1.shape == (3, 16) and a2.shape == (4, 10)
    assert set(np.unique(a1)) | set(np.unique(a2)) == {1.0, 4.0, 12.0}
    assert np.array_equal(emp.branch_a(cfg)[0], a1)  # fixed by the seed
    assert not np.array_equal(emp.with_(seed=8).branch_a(cfg)[0], a1)
    logn = DeviceModel(branch="lognormal", a=5.0, a_sigma_ln=0.2, seed=1)
    big = NetConfig(digits_layout(), 4000)
    la = logn.branch_a(big)[0]
    assert np.median(la) == pytest.approx(5.0, rel=0.02)
    assert np.log(la).std() == pytest.approx(0.2, rel=0.05)
    assert not np.allclose(forward(params, x, cfg, device=emp).y, forward(params, x, cfg).y)


def test_from_metrics_three_devices():
    rows = [_row("branch_a", 3.0, "d1"), _row("branch_a", 5.0, "d2"), _row("branch_a", 9.0, "d3"),
            _row("branch_a", 4.0, "d1"), _row("branch_a", 2.0, "d1"),   # d1 median 3
            _row("branch_a", 100.0, "d4", quality="poor"),
            _row("branch_a", float("nan"), "d5"), _row("iv_ratio", 12.0, "d1")]
    table = pd.DataFrame(rows, columns=COLUMNS)
    med = DeviceModel.from_metrics(table, branch="median")
    assert med.branch == "fixed" and med.a == 5.0
    auto = DeviceModel.from_metrics(table)
    assert auto.branch == "empirical" and sorted(auto.a_values) == [3.0, 5.0, 9.0]
    assert not auto.synapse_effects
    logn = DeviceModel.from_metrics(table, branch="lognormal")
    assert logn.a == pytest.approx((3 * 5 * 9) ** (1 / 3))
    one = DeviceModel.from_metrics([_row("branch_a", 6.5, "d9")])
    assert one.branch == "fixed" and one.a == 6.5
    assert "3 device(s)" in auto.source


def test_from_metrics_synapse_statistics_and_overrides(tmp_path):
    rows = [_row("g_min", 1e-6, d, unit="S") for d in ("s1", "s2", "s3")]
    rows += [_row("g_max", g, d, unit="S") for d, g in (("s1", 1e-5), ("s2", 2e-5),
                                                       ("s3", 1.5e-5))]
    rows += [_row("levels_reached", 6, "s1"), _row("levels_reached", 8, "s2")]
    rows += [_row("endurance_sigma_ln", 0.05, "e1")]
    path = tmp_path / "metrics.csv"
    pd.DataFrame(rows, columns=COLUMNS).to_csv(path, index=False)
    dev = DeviceModel.from_metrics(path, read_sigma=0.01)
    assert dev.branch == "config"  # no branch_a rows: the network's NL
    assert dev.g_min == 1e-6 and dev.g_max == 1.5e-5
    # levels_reached counts the write-verify targets (a lower bound): weights stay continuous
    assert dev.levels in (None, 0) and "lower bound" in dev.source
    ltp = DeviceModel.from_metrics([*rows, _row("max_num_level_ltp", 60, "s1"),
                                    _row("max_num_level_ltp", 40, "s2")])
    assert ltp.levels == 51          # median pulses from G_min to G_max, + 1
    assert dev.d2d_sigma == pytest.approx(np.log([1e-5, 2e-5, 1.5e-5]).std(ddof=1))
    assert dev.dendrite_sigma == 0.05 and dev.read_sigma == 0.01
    assert "read_sigma=0.01" in dev.source
    assert any("ON/OFF 15" in line for line in dev.describe())


def test_from_metrics_errors(tmp_path):
    with pytest.raises(DeviceError, match="no usable ok rows"):
        DeviceModel.from_metrics([_row("iv_ratio", 3.0)])
    with pytest.raises(DeviceError, match="lacks column"):
        DeviceModel.from_metrics(pd.DataFrame({"name": ["x"]}))
    with pytest.raises(DeviceError, match="no such metrics table"):
        DeviceModel.from_metrics(tmp_path / "nope.csv")
    with pytest.raises(DeviceError, match="no ok 'branch_a'"):
        DeviceModel.from_metrics([_row("g_min", 1e-6)], branch="median")
    with pytest.raises(DeviceError, match="unknown device field"):
        DeviceModel.from_metrics([_row("branch_a", 3.0)], readnoise=0.1)


@pytest.mark.parametrize("kw", [{"levels": 1}, {"g_min": 2.0, "g_max": 1.0},
                                {"stuck_off": 0.7, "stuck_on": 0.5}, {"d2d_sigma": -0.1},
                                {"branch": "fixed"}, {"branch": "empirical"},
                                {"branch": "bogus"}])
def test_invalid_device_descriptions(kw):
    with pytest.raises(DendrolabError):
        DeviceModel(**kw)


def test_dict_round_trip():
    dev = DeviceModel(branch="empirical", a_values=(2.0, 3.0), levels=4, g_min=0.1, seed=9,
                      source="test")
    assert DeviceModel.from_dict(dev.to_dict()) == dev
    plain = DeviceModel()
    d = plain.to_dict()
    d["a"] = None  # JSON null for NaN
    assert DeviceModel.from_dict(d).branch == "config"


def test_from_metrics_c2c_and_stuck_synapses():
    """c2c from the LTP/LTD fits' residual (relative to the window, made multiplicative at its
    middle); stuck fractions from synapses whose window collapsed (G_max/G_min < 1.2)."""
    rows = []
    windows = {"s1": (1e-6, 2e-5), "s2": (1e-6, 2e-5), "s3": (1e-6, 1.05e-6),
               "s4": (1.9e-5, 2e-5)}          # s3 stuck low, s4 stuck high
    for dev, (lo, hi) in windows.items():
        rows += [_row("g_min", lo, dev, unit="S"), _row("g_max", hi, dev, unit="S")]
    rows += [_row("sigma_c2c_ltp", 0.02, "s1"), _row("sigma_c2c_ltd", 0.04, "s2")]
    dev = DeviceModel.from_metrics(rows)
    g_lo, g_hi = 1e-6, float(np.median([2e-5, 2e-5, 1.05e-6, 2e-5]))
    assert dev.c2c_sigma == pytest.approx(0.03 * (g_hi - g_lo) / ((g_hi + g_lo) / 2))
    assert dev.stuck_off == pytest.approx(0.25) and dev.stuck_on == pytest.approx(0.25)
    assert "stuck = 2 of 4" in dev.source

"""Power model: synthetic traces with known currents, the assumptions' effect, and the network
operated at R = inf, V = v_ref reproducing the trained network exactly."""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import numpy as np
import pytest

from analysis.network.layout import digits_layout
from analysis.network.model import NetConfig, branch_function, forward, init_params, predict
from analysis.network.power import (
    PowerAssumptions,
    dendrite_currents,
    network_power,
    operating_advantage,
    operating_power,
    power_advantage,
    soma_function,
)
from dendrolab.errors import ParameterError

THETA = 0.11


def _trace(d: np.ndarray) -> SimpleNamespace:
    return SimpleNamespace(d=np.asarray(d, dtype=np.float64))


def _ideal(**kw: object) -> PowerAssumptions:
    return PowerAssumptions(on_off=math.inf, **kw)  # type: ignore[arg-type]


def test_zero_input_gives_only_the_leakage_floor() -> None:
    n, b, m = 4, 3, 5
    a = PowerAssumptions(on_off=10.0, i_on_a=2e-6, v_applied_v=5.0, v_ref_v=5.0,
                         time_steps=3, dt_s=1e-5, count_dendrites=True)
    res = network_power(_trace(np.zeros((n, b, m))), a, theta=THETA)
    t = 3e-5
    # every branch conducts I_on/R; every soma sees b/R = 0.3 of drive
    assert res.dendrite_energy_j == pytest.approx(np.full(n, 5.0 * b * m * 2e-7 * t))
    y = math.tanh((0.3 - THETA) / 2)
    assert res.per_layer[0].soma_output == pytest.approx(np.full((n, m), y))
    assert res.soma_energy_j == pytest.approx(np.full(n, 5.0 * m * y * 1e-6 * t))
    assert res.energy_j == pytest.approx(res.soma_energy_j + res.dendrite_energy_j)
    assert res.power_w == pytest.approx(res.energy_j / t)
    # without leakage a silent input draws nothing at all
    silent = network_power(_trace(np.zeros((n, b, m))), a.with_(on_off=math.inf))
    assert np.all(silent.energy_j == 0.0)


def test_dendrite_current_formula_and_infinite_on_off() -> None:
    d = np.array([0.0, 0.25, 1.0])
    a = PowerAssumptions(on_off=4.0, i_on_a=1e-6)
    assert dendrite_currents(d, a) == pytest.approx(1e-6 * (0.25 + 0.75 * d))
    assert dendrite_currents(d, a.with_(on_off=math.inf)) == pytest.approx(1e-6 * d)
    rng = np.random.default_rng(0)
    tr = _trace(rng.uniform(0, 1, (6, 3, 8)))
    big = network_power(tr, a.with_(on_off=1e12), theta=THETA).energy_j
    assert big == pytest.approx(network_power(tr, a.with_(on_off=math.inf)).energy_j, rel=1e-9)


def test_voltage_scales_energy_linearly_when_currents_are_fixed() -> None:
    """drive_exponent = 0: currents do not depend on V, so E = V·I·T doubles with V."""
    tr = _trace(np.random.default_rng(1).uniform(-0.1, 1, (5, 3, 7)))
    a = PowerAssumptions(drive_exponent=0.0, on_off=20.0, count_dendrites=True)
    e1 = network_power(tr, a.with_(v_applied_v=2.0)).energy_j
    e2 = network_power(tr, a.with_(v_applied_v=4.0)).energy_j
    assert e2 == pytest.approx(2 * e1)
    # ohmic dendrites (exponent 1) at twice the voltage: twice the soma drive, so the energy
    # grows by more than 2x for the somas (V·y(2s)) and exactly 4x for the dendrite currents
    o1 = network_power(tr, a.with_(drive_exponent=1.0, v_applied_v=2.0))
    o2 = network_power(tr, a.with_(drive_exponent=1.0, v_applied_v=4.0))
    assert o2.dendrite_energy_j == pytest.approx(4 * o1.dendrite_energy_j)
    assert np.all(o2.soma_energy_j >= 2 * o1.soma_energy_j)


def test_soma_at_reference_point_matches_the_network_soma() -> None:
    d = np.random.default_rng(2).uniform(-0.2, 1, (3, 4, 6))
    res = network_power(_trace(d), _ideal(), theta=THETA)
    assert res.per_layer[0].soma_output == pytest.approx(soma_function(d.sum(axis=1), THETA))
    assert soma_function(np.array([THETA, -5.0, 50.0]), THETA) == pytest.approx([0, 0, 1])


def test_soma_current_modes() -> None:
    d = np.full((2, 3, 4), 0.5)
    a = _ideal(i_on_a=1e-6, i_soma_max_a=3e-6)
    out = network_power(_trace(d), a)
    inp = network_power(_trace(d), a.with_(soma_current="input"))
    # input mode: the soma passes its input current 3 x 0.5 µA = 1.5 µA instead of 3 µA
    assert inp.soma_energy_j == pytest.approx(out.soma_energy_j * 1.5 / 3.0)


def test_advantage_is_one_for_the_reference_itself() -> None:
    tr = _trace(np.random.default_rng(3).uniform(0, 1, (8, 3, 10)))
    assert power_advantage(tr, tr, _ideal()).advantage == pytest.approx(1.0)
    leaky = PowerAssumptions(on_off=10.0, reference_leak=True)
    assert power_advantage(tr, tr, leaky).advantage == pytest.approx(1.0)
    # without reference leakage a leaky dendrite network only adds power
    assert power_advantage(tr, tr, leaky.with_(reference_leak=False)).advantage < 1.0


def test_nonlinearity_suppresses_weak_branches_and_raises_the_advantage() -> None:
    """Same branch inputs through f_a for growing NL: the advantage grows with NL."""
    u = np.random.default_rng(4).uniform(0, 1, (50, 3, 20))
    u[:, :, 0] = 1.0  # the per-sample maximum of every branch, as the normalisation makes it
    ref = _trace(branch_function(u, 0.0))
    advantages = []
    for nl in (0.0, 0.05, 0.1, 0.2, 0.4):
        a = 50 * nl / (1 - nl)
        advantages.append(power_advantage(_trace(branch_function(u, a)), ref,
                                          PowerAssumptions(on_off=100.0)).advantage)
    assert advantages[0] < 1.0  # NL = 0 with the 1/R floor costs a little more than no dendrite
    assert all(b > a for a, b in itertools.pairwise(advantages))
    assert advantages[-1] > 3.0


def test_forward_and_traces_of_layers() -> None:
    d = np.zeros((2, 3, 4))
    fw = SimpleNamespace(hidden=_trace(d), output=_trace(np.zeros((2, 4, 10))))
    res = network_power(fw, _ideal())
    assert res.layers == ("hidden", "output")
    assert set(res.summary()) >= {"energy_j", "hidden_soma_j", "output_dendrite_j"}
    assert network_power([_trace(d), _trace(d)]).layers == ("layer0", "layer1")
    with pytest.raises(ParameterError, match="keep=True"):
        network_power(SimpleNamespace(hidden=None, output=None))
    with pytest.raises(ParameterError, match="Forward with traces"):
        network_power(3)
    with pytest.raises(ParameterError, match="images, branches, neurons"):
        network_power(_trace(np.zeros((2, 3))))


@pytest.mark.parametrize("bad", [{"v_applied_v": 0.0}, {"on_off": 0.5}, {"time_steps": 0},
                                 {"soma_current": "both"}, {"drive_exponent": -1.0},
                                 {"dt_s": math.nan}])
def test_bad_assumptions_are_one_line_errors(bad: dict) -> None:
    with pytest.raises(ParameterError, match=next(iter(bad))):
        PowerAssumptions(**bad)
    with pytest.raises(ParameterError, match="unknown power assumption"):
        PowerAssumptions().with_(volts=3)


def test_describe_lists_every_assumption_with_its_value() -> None:
    a = PowerAssumptions(on_off=10.0, v_applied_v=2.0)
    text = a.describe()
    for name, value in (("v_applied_v", "2 V"), ("on_off", "10"), ("i_on_a", "1e-06 A"),
                        ("time_steps", "2"), ("reference_leak", "False")):
        assert any(line.startswith(f"  {name} = {value}") for line in text), name
    assert all("\n" not in line for line in text)


@pytest.fixture(scope="module")
def nets() -> dict[float, tuple]:
    lay = digits_layout()
    out = {}
    for nl in (0.0, 0.2):
        cfg = NetConfig(lay, 8, nl=nl)
        out[nl] = (init_params(cfg, seed=5), cfg)
    return out


def test_operating_point_reproduces_the_trained_network(nets: dict) -> None:
    params, cfg = nets[0.2]
    x = np.random.default_rng(6).uniform(0, 1, (30, 64)).astype(np.float32)
    res = operating_power(params, x, cfg, _ideal(), chunk=7)
    fw = forward(params, x, cfg, keep=True)
    assert res.output == pytest.approx(fw.y, abs=1e-6)
    assert np.array_equal(res.predictions, predict(params, x, cfg))
    assert res.per_layer[0].soma_output == pytest.approx(fw.hidden.y, abs=1e-6)
    # the trace path agrees at the reference point (ideal hidden = physical hidden)
    assert network_power(fw, _ideal(), theta=cfg.theta).energy_j == pytest.approx(res.energy_j)
    labels = predict(params, x, cfg)
    assert res.accuracy(labels) == 1.0
    # with leakage the output layer sees the leaky hidden activity: the paths now differ
    leaky = PowerAssumptions(on_off=3.0)
    op = operating_power(params, x, cfg, leaky)
    assert not np.allclose(op.per_layer[1].soma_energy_j,
                           network_power(fw, leaky, theta=cfg.theta).per_layer[1].soma_energy_j,
                           rtol=1e-3, atol=0.0)


def test_operating_advantage_of_the_reference_is_one(nets: dict) -> None:
    x = np.random.default_rng(7).uniform(0, 1, (20, 64)).astype(np.float32)
    same = operating_advantage(nets[0.0], nets[0.0], x, PowerAssumptions(reference_leak=True))
    assert same.advantage == pytest.approx(1.0)
    # the same network with leaky dendrites against no dendrite devices: only extra power
    leaky = operating_advantage(nets[0.0], nets[0.0], x, PowerAssumptions(on_off=10.0))
    assert leaky.advantage < 1.0
    assert leaky.without_dendrites.assumptions.on_off == math.inf


def test_operating_point_with_a_measured_device_matches_forward(nets: dict) -> None:
    from analysis.network.devices import DeviceModel

    params, cfg = nets[0.2]
    device = DeviceModel(branch="lognormal", a=6.0, a_sigma_ln=0.3, read_sigma=0.05,
                         d2d_sigma=0.1, seed=3)
    x = np.random.default_rng(8).uniform(0, 1, (25, 64)).astype(np.float32)
    res = operating_power(params, x, cfg, _ideal(), device=device)  # one chunk: same draws
    fw = forward(params, x, cfg, device=device)
    assert res.output == pytest.approx(fw.y, abs=1e-6)
    assert not np.allclose(res.output, forward(params, x, cfg).y, atol=1e-3)

"""Training (SGD + momentum, validation-based selection), model files and the demo section."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from analysis.network.data import Dataset, load_digits
from analysis.network.devices import DeviceModel
from analysis.network.layout import digits_layout, svhn_layout
from analysis.network.model import NetConfig, Params, init_params, loss_and_grads, predict
from analysis.network.modelfile import ModelFileError, load_model, save_model
from analysis.network.train import evaluate, train
from dendrolab.errors import DendrolabError


def _templates(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A small task for the mechanics (not for accuracy): three random binary images plus
    noise, one per class."""
    templates = np.random.default_rng(99).random((3, 64)) > 0.5
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = 0.7 * templates[y] + 0.3 * rng.random((n, 64))
    return x.astype(np.float32), y.astype(np.int64)


def _easy(seed: int = 0) -> Dataset:
    xs = [_templates(n, seed + k) for k, n in enumerate((240, 60, 90))]
    return Dataset(xs[0][0], xs[0][1], xs[1][0], xs[1][1], xs[2][0], xs[2][1], "templates",
                   digits_layout())


CFG = NetConfig(digits_layout(), 8, n_out=3)


def test_learns_the_digits():
    # The per-branch max-normalisation makes each branch winner-take-most over the layer's
    # neurons, so tiny networks on tiny synthetic tasks often lose a class for good (an output
    # soma clamped at 0 for every sample gets no gradient); the real digits are the easy task.
    data = load_digits(seed=0)
    cfg = NetConfig(digits_layout(), 128)
    before = evaluate(init_params(cfg, 0), cfg, data.x_test, data.y_test)
    res = train(cfg, data, epochs=30, lr=0.1, batch=32, seed=0)
    assert before < 0.3
    assert res.test_acc >= 0.75 and res.val_acc >= 0.75
    assert res.history[-1]["loss"] < res.history[0]["loss"]
    assert [h["epoch"] for h in res.history] == list(range(1, 31))
    assert res.test_acc == evaluate(res.params, cfg, data.x_test, data.y_test)
    assert res.params.w1.dtype == np.float32 and res.params.w1.shape == (64, 128)


def test_reproducible_from_the_seed():
    data = _easy()
    a = train(CFG, data, epochs=3, lr=0.2, batch=16, seed=4)
    b = train(CFG, data, epochs=3, lr=0.2, batch=16, seed=4)
    c = train(CFG, data, epochs=3, lr=0.2, batch=16, seed=5)
    assert np.array_equal(a.params.w1, b.params.w1) and np.array_equal(a.params.w2, b.params.w2)
    assert a.history == b.history
    assert not np.array_equal(a.params.w1, c.params.w1)


def test_selection_uses_validation_never_test():
    data = _easy()
    res = train(CFG, data, epochs=8, lr=0.2, batch=16, seed=1)
    vals = [h["val_acc"] for h in res.history]
    assert res.best_epoch == int(np.argmax(vals)) + 1 and res.val_acc == max(vals)
    # scrambling the test labels changes the test accuracy, never the selected weights
    scrambled = Dataset(data.x_train, data.y_train, data.x_val, data.y_val, data.x_test,
                        (data.y_test + 1) % 3, data.name, data.layout)
    other = train(CFG, scrambled, epochs=8, lr=0.2, batch=16, seed=1)
    assert other.best_epoch == res.best_epoch
    assert np.array_equal(other.params.w1, res.params.w1)


def test_one_step_is_pytorch_sgd_with_weight_decay():
    data = _easy()
    n = data.y_train.size
    lr, wd = 0.05, 1e-2
    res = train(CFG, data, epochs=1, lr=lr, batch=n, weight_decay=wd, seed=2, lr_drop_at=None)
    p0 = init_params(CFG, 2)
    _, g = loss_and_grads(p0, data.x_train, data.y_train, CFG)
    # first step: v = g + wd w, w <- w - lr v (momentum buffer starts at the gradient)
    assert np.allclose(res.params.w1, p0.w1 - lr * (g.w1 + wd * p0.w1), atol=1e-6)
    assert np.allclose(res.params.w2, p0.w2 - lr * (g.w2 + wd * p0.w2), atol=1e-6)


def test_progress_and_learning_rate_schedule():
    data = _easy()
    calls = []
    res = train(CFG, data, epochs=10, lr=0.1, batch=100, seed=0,
                progress=lambda done, total: calls.append((done, total)))
    per_epoch = 3  # ceil(240 / 100)
    assert calls == [(k, 10 * per_epoch) for k in range(1, 10 * per_epoch + 1)]
    assert [h["lr"] for h in res.history] == [0.1] * 9 + [pytest.approx(0.01)]


def test_train_refuses_bad_input():
    data = _easy()
    with pytest.raises(DendrolabError, match="layout"):
        train(NetConfig(svhn_layout(), 8), data, epochs=1, lr=0.1, seed=0)
    with pytest.raises(DendrolabError, match="lr"):
        train(CFG, data, epochs=1, lr=0.0, seed=0)


def test_device_training_uses_measured_branches_and_reports_both_accuracies():
    data = _easy()
    dev = DeviceModel(branch="empirical", a_values=(2.0, 8.0), levels=2, seed=3)
    res = train(CFG, data, epochs=10, lr=0.2, batch=16, seed=0, device=dev)
    assert res.test_acc_ideal == evaluate(res.params, CFG, data.x_test, data.y_test,
                                          dev.branches_only())
    assert res.test_acc == evaluate(res.params, CFG, data.x_test, data.y_test, dev)
    # the measured branch functions were used in training: a fresh run with the network's NL
    # gives other weights
    plain = train(CFG, data, epochs=10, lr=0.2, batch=16, seed=0)
    assert not np.array_equal(plain.params.w1, res.params.w1)


# ------------------------------------------------------------------ model files
def test_model_file_round_trip(tmp_path):
    data = _easy()
    dev = DeviceModel(branch="fixed", a=7.0, read_sigma=0.01, seed=2)
    res = train(CFG, data, epochs=2, lr=0.2, batch=16, seed=3, device=dev)
    path = save_model(tmp_path / "m.npz", res.params, CFG, seed=3, device=dev,
                      metrics={"test_acc": res.test_acc, "nan": float("nan")})
    params, cfg, meta = load_model(path)
    assert cfg == CFG
    assert np.array_equal(params.w1, res.params.w1) and np.array_equal(params.w2, res.params.w2)
    assert meta["seed"] == 3 and meta["device"] == dev
    assert meta["metrics"]["test_acc"] == res.test_acc and meta["metrics"]["nan"] is None
    assert meta["config"]["a"] == pytest.approx(CFG.a)
    assert np.array_equal(predict(params, data.x_test, cfg, dev),
                          predict(res.params, data.x_test, CFG, dev))
    with np.load(path) as z:  # readable without dendrolab, no pickles
        assert json.loads(str(z["meta"]))["format"] == "dendrolab-network-model"
    svhn = NetConfig(svhn_layout(), 4, nl=0.2, variant="matlab", theta=0.1)
    p = save_model(tmp_path / "s.npz", init_params(svhn, 0), svhn, seed=0)
    assert load_model(p)[1] == svhn and load_model(p)[2]["device"] is None


def _one_line(call) -> str:
    with pytest.raises(ModelFileError) as info:
        call()
    assert "\n" not in str(info.value)
    return str(info.value)


def test_bad_model_files(tmp_path):
    assert "no such model file" in _one_line(lambda: load_model(tmp_path / "none.npz"))
    text = tmp_path / "t.npz"
    text.write_text("not a model")
    assert "not an .npz" in _one_line(lambda: load_model(text))
    other = tmp_path / "o.npz"
    np.savez(other, a=np.zeros(3))
    assert "missing" in _one_line(lambda: load_model(other))
    p = save_model(tmp_path / "m.npz", init_params(CFG, 0), CFG, seed=0)
    with np.load(p) as z:
        arrays = {k: z[k] for k in z.files}
    bad = tmp_path / "bad.npz"
    np.savez(bad, **{**arrays, "w2": np.zeros((8, 4), np.float32)})
    assert "do not match" in _one_line(lambda: load_model(bad))
    truncated = tmp_path / "cut.npz"
    truncated.write_bytes(p.read_bytes()[:200])
    _one_line(lambda: load_model(truncated))
    with zipfile.ZipFile(tmp_path / "z.npz", "w") as zf:
        zf.writestr("meta.npy", b"garbage")
    _one_line(lambda: load_model(tmp_path / "z.npz"))
    with pytest.raises(ModelFileError, match="do not match"):
        save_model(tmp_path / "x.npz", Params(np.zeros((3, 3)), np.zeros((3, 3))), CFG, seed=0)


def test_demo_network(tmp_path):
    from analysis.network.demo import demo_network

    rows = [{"metric": "branch_a", "value": v, "quality": "ok", "device_id": f"d{i}",
             "uuid": str(i)} for i, v in enumerate((4.0, 6.0, 9.0))]
    out = demo_network(tmp_path, seed=0, metrics=rows,
                       settings={"n_hidden": 16, "epochs": 4, "batch": 64})
    for key in ("acc_dendrites", "acc_linear", "acc_device", "acc_device_ideal_synapses"):
        assert 0.0 <= out[key] <= 1.0
    assert 0 <= out["starved_linear"] <= 10 and 0 <= out["starved_dendrites"] <= 10
    # only branch rows in the table: ideal synapses, so both device accuracies agree
    assert out["acc_device"] == out["acc_device_ideal_synapses"]
    _, cfg, meta = load_model(out["model"])
    assert cfg.n_hidden == 16 and meta["device"].branch == "empirical"
    assert "3 measured devices" in out["device"][0]


def test_clamp_pass_keeps_outputs_from_starving():
    """Seed 0, linear branches, the demo's short training: with the exact gradient four output
    somas stop firing for good (their classes are lost); through the clamp none does."""
    from analysis.network.data import load_digits
    from analysis.network.demo import starved_outputs
    from analysis.network.model import NetConfig
    from analysis.network.train import train

    data = load_digits(seed=0)
    cfg = NetConfig(data.layout, 128, nl=0.0)
    kw = {"epochs": 100, "lr": 0.1, "batch": 32, "seed": 0}
    exact = train(cfg, data, **kw)
    passed = train(cfg, data, clamp_grad="pass", **kw)
    assert starved_outputs(exact, data.x_test) >= 2
    assert starved_outputs(passed, data.x_test) == 0
    assert passed.test_acc > exact.test_acc + 0.2
    assert passed.settings["clamp_grad"] == "pass"

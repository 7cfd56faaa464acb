"""Network benchmarks (issue 13 targets): ``python benchmarks/bench_network.py [--seeds 0 1 2]
[--skip-digits] [--svhn-fraction 1.0] [--inference-images 20000]``.

Targets, on this 2-core machine:

* digits: >= 95 % test accuracy with dendrites (NL 0.1), trained from a seed in <= 60 s
  (settings ``analysis.network.demo.DIGITS``); the same without dendrites (NL 0) for comparison;
  also the demo's quicker settings (``DIGITS_QUICK``), with the number of "starved" output somas
  (firing on < 1 % of test images: a class lost in training);
* 3072-500-10 inference >= 10 000 images/s (random N(0, 1) weights, random inputs of SVHN shape,
  float32, batches of 4096 through ``model.predict``);
* one SVHN training epoch: 73,257 synthetic images of SVHN shape (random pixels and labels),
  batch 128, SGD + momentum, 500 hidden units; with ``--svhn-fraction f < 1`` a fraction of the
  epoch is timed and the full epoch extrapolated linearly (printed as such).

Prints figures; asserts nothing (speed never goes into tests).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.network.data import Dataset, load_digits, synthetic_svhn_shape
from analysis.network.demo import DIGITS, DIGITS_QUICK, starved_outputs
from analysis.network.devices import DeviceModel
from analysis.network.layout import svhn_layout
from analysis.network.model import NetConfig, init_params, predict
from analysis.network.train import train

SVHN_TRAIN = 73_257
TARGET_DIGITS_ACC, TARGET_DIGITS_S, TARGET_IPS = 0.95, 60.0, 10_000


def bench_digits(seeds: list[int], settings: dict, name: str, check: bool) -> None:
    print(f"== digits (8x8, scikit-learn), {name}: {settings}")
    for nl in (0.1, 0.0):
        accs, times = [], []
        for seed in seeds:
            data = load_digits(seed=seed)
            cfg = NetConfig(data.layout, settings["n_hidden"], nl=nl)
            res = train(cfg, data, epochs=settings["epochs"], lr=settings["lr"],
                        batch=settings["batch"], seed=seed,
                        clamp_grad=settings.get("clamp_grad", "exact"))
            accs.append(res.test_acc)
            times.append(res.seconds)
            print(f"  NL {nl:<4g} seed {seed}: test {100 * res.test_acc:6.2f} %  val "
                  f"{100 * res.val_acc:6.2f} %  best epoch {res.best_epoch:3d}  "
                  f"{res.seconds:5.1f} s  starved outputs {starved_outputs(res, data.x_test)}")
        label = "with dendrites" if nl > 0 else "without (linear branches)"
        ok = ""
        if nl > 0 and check:
            met = min(accs) >= TARGET_DIGITS_ACC and max(times) <= TARGET_DIGITS_S
            ok = f"  target >= {100 * TARGET_DIGITS_ACC:.0f} % in <= {TARGET_DIGITS_S:.0f} s: " \
                 f"{'met' if met else 'NOT met'}"
        print(f"  NL {nl:g} {label}: mean test {100 * np.mean(accs):.2f} % "
              f"(min {100 * min(accs):.2f}, max {100 * max(accs):.2f}), mean "
              f"{np.mean(times):.1f} s per training{ok}")


def bench_inference(n_images: int) -> None:
    print(f"== inference 3072-500-10, {n_images} random images of SVHN shape, float32")
    cfg = NetConfig(svhn_layout(), 500)
    params = init_params(cfg, 0)
    x, _ = synthetic_svhn_shape(n_images, seed=1)
    predict(params, x[:4096], cfg)  # warm-up (page faults, BLAS threads)
    for name, device in (("ideal", None),
                         ("device: 64 levels, d2d 5 %, read 1 %",
                          DeviceModel(levels=64, d2d_sigma=0.05, read_sigma=0.01, g_min=0.01))):
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            predict(params, x, cfg, device)
            best = min(best, time.perf_counter() - t0)
        ips = n_images / best
        tail = f"  (target >= {TARGET_IPS}: {'met' if ips >= TARGET_IPS else 'NOT met'})" \
            if device is None else ""
        print(f"  {name}: {ips:,.0f} images/s (best of 3, {best:.2f} s){tail}")


def bench_svhn_epoch(fraction: float) -> None:
    n = max(128, round(SVHN_TRAIN * fraction))
    print(f"== one SVHN training epoch, 3072-500-10, batch 128: {n} synthetic images"
          + ("" if n == SVHN_TRAIN else f" ({100 * fraction:.0f} % of {SVHN_TRAIN:,})"))
    x, y = synthetic_svhn_shape(n + 2000, seed=2)
    data = Dataset(x[:n], y[:n], x[n:n + 1000], y[n:n + 1000], x[n + 1000:], y[n + 1000:],
                   "svhn-synthetic", svhn_layout())
    cfg = NetConfig(svhn_layout(), 500)
    res = train(cfg, data, epochs=1, lr=0.005, batch=128, seed=0)
    secs = res.seconds
    if n == SVHN_TRAIN:
        print(f"  measured: {secs:.1f} s per epoch ({n / secs:,.0f} images/s, incl. validation "
              f"of 1000 and test of 1000 images)")
    else:
        full = secs * SVHN_TRAIN / n
        print(f"  measured {secs:.1f} s for {n} images; EXTRAPOLATED full epoch ~ {full:.0f} s")
    per_run = secs * SVHN_TRAIN / n * 600 / 3600
    print(f"  => the authors' 600-epoch schedule would take ~ {per_run:.1f} h here")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--skip-digits", action="store_true")
    ap.add_argument("--skip-svhn", action="store_true")
    ap.add_argument("--svhn-fraction", type=float, default=1.0)
    ap.add_argument("--inference-images", type=int, default=20_000)
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"numpy {np.__version__}")
    if not args.skip_digits:
        bench_digits(args.seeds, DIGITS, "benchmark settings", check=True)
        bench_digits(args.seeds, DIGITS_QUICK, "demo settings", check=False)
    bench_inference(args.inference_images)
    if not args.skip_svhn:
        bench_svhn_epoch(args.svhn_fraction)


if __name__ == "__main__":
    main()

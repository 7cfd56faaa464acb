"""Physics simulator speed: devices x segments per second, and the dendrite-soma unit.

Run: ``python benchmarks/bench_physics.py``. Prints best-of-3 wall times. Targets (issue 3):
10^4 dendrites x 2*10^3 segments in <= 0.5 s, shared and per-device waveforms.
"""

from __future__ import annotations

import time

import numpy as np

from sim_backend.physics.dendrite import DendriteArray
from sim_backend.physics.presets import load_models
from sim_backend.physics.soma import SomaArray, SomaCircuit
from sim_backend.physics.unit import DendriteSomaUnit
from sim_backend.physics.waveform import Waveform, pulse_train

N, PULSES = 10_000, 1_000          # 2 segments per pulse -> 2000 segments


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def row(label: str, seconds: float, work: float, unit: str) -> None:
    print(f"  {label:52s} {seconds * 1e3:9.1f} ms   {work / seconds:12.3g} {unit}/s")


def main() -> None:
    models = load_models("li2020-original")
    quiet = models.without_noise()
    train = pulse_train(5.0, 100e-6, 100e-6, PULSES)
    k = train.n_segments
    rng = np.random.default_rng(0)
    amps = rng.uniform(3.0, 5.0, N)
    per_dev_v = Waveform(np.outer(amps, train.v), train.dt)
    per_dev_vdt = Waveform(np.outer(amps, train.v),
                           np.outer(rng.uniform(0.5, 1.5, N), train.dt))
    work = N * k
    print(f"dendrite: {N} devices x {k} segments = {work:.2e} device-segments")
    for label, params, wave in [
        ("shared waveform, noise free", quiet.dendrite, train),
        ("shared waveform, default noise (C2C per pulse)", models.dendrite, train),
        ("per-device voltages (N x K), noise free", quiet.dendrite, per_dev_v),
        ("per-device voltages and durations, noise free", quiet.dendrite, per_dev_vdt),
        ("per-device voltages and durations, default noise", models.dendrite, per_dev_vdt),
    ]:
        def run(params=params, wave=wave) -> None:
            DendriteArray(params, N).run(wave)
        row(label, best_of(run), work, "device-segments")

    print("soma (exact event engine through R_s = 100 kOhm), 1000 devices, 20 ms at 2-6 V:")
    vin = np.linspace(2.0, 6.0, 1000)
    dc_wave = Waveform(vin[:, None], np.full((1000, 1), 20e-3))

    def soma_run() -> None:
        rec = SomaCircuit(SomaArray(quiet.soma, 1000), quiet.circuit).run(dc_wave)
        soma_run.spikes = int(rec.total().sum())
    t = best_of(soma_run)
    row(f"{soma_run.spikes} spikes", t, soma_run.spikes, "spikes")

    print("dendrite-soma unit, 20 x 100 us pulses at 6 V (exp2: default method; stepper: "
          "first order, h = 0.1 us):")
    unit_train = pulse_train(6.0, 100e-6, 100e-6, 20)
    cases = [(1, "exp2", "float", quiet), (1, "exp2", "numpy", quiet),
             (100, "exp2", "float", quiet), (100, "exp2", "numpy", quiet),
             (100, "exp2", "float", models), (100, "exp2", "numpy", models),
             (1000, "exp2", "numpy", quiet), (1, "stepper", "numpy", quiet)]
    for n, method, kernel, mod in cases:
        def unit_run(n=n, method=method, kernel=kernel, mod=mod) -> None:
            unit = DendriteSomaUnit(DendriteArray(mod.dendrite, n), SomaArray(mod.soma, n),
                                    mod.circuit)
            rec = unit.run(unit_train, method=method, kernel=kernel)
            unit_run.spikes = int(rec.total().sum())
        t = best_of(unit_run, 3 if n * (method == "exp2") == 1 else 1)
        sim_t = unit_train.duration_s
        noise = "noise-free" if mod is quiet else "default noise"
        print(f"  {n:4d} units {method:7s} {kernel:5s} {noise:13s}: {t * 1e3:9.1f} ms for "
              f"{sim_t * 1e3:.0f} ms simulated ({unit_run.spikes} spikes; "
              f"{n * sim_t / t:.3g} unit-seconds per second)")


if __name__ == "__main__":
    main()

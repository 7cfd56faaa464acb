"""The unit's default exp2 method: against the fine-step stepper, kernel against kernel.

Tolerances: exp2's local error tolerance (default 1e-3 V / 1e-3 in w per step) gives spike times
within ~0.1 us of the converged solution over 1 ms of firing, closer than the first-order stepper
at its default sub-step (its error halves with h and tends to the same limit).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sim_backend.physics.dendrite import DendriteArray, DendriteParams
from sim_backend.physics.soma import CircuitParams, SomaArray, SomaParams
from sim_backend.physics.unit import DendriteSomaUnit
from sim_backend.physics.waveform import Waveform

DEND = DendriteParams().without_noise()
SOMA = SomaParams().without_noise()
CIRCUIT = CircuitParams()


def make_unit(n, dend=DEND, soma=SOMA, circuit=CIRCUIT, keys=None):
    if keys is not None:
        return DendriteSomaUnit(DendriteArray(dend, keys=keys), SomaArray(soma, keys=keys),
                                circuit)
    return DendriteSomaUnit(DendriteArray(dend, n), SomaArray(soma, n), circuit)


def train(amps, count, width=100e-6, gap=100e-6):
    v = np.tile([1.0, 0.0], count)[None, :] * np.asarray(amps, dtype=float)[:, None]
    return Waveform(v, np.tile([width, gap], count))


@pytest.fixture(scope="module")
def reference():
    """Fine-step reference: the fixed-step stepper at h / 4 (5.5 V and 6 V, 6 pulses)."""
    wave = train([5.5, 6.0], 6)
    rec = make_unit(2).run(wave, h=CIRCUIT.unit_step_s / 4, method="stepper", adaptive=False)
    return wave, rec


def test_exp2_agrees_with_the_fine_step_reference(reference):
    wave, ref = reference
    for kernel in ("float", "numpy"):
        rec = make_unit(2).run(wave, kernel=kernel)
        assert np.array_equal(rec.counts, ref.counts)                   # every spike, per pulse
        assert ref.total()[0] >= 3 and ref.total()[1] >= 25
        assert np.max(np.abs(rec.time_s - ref.time_s)) < 0.3e-6         # spike times to 0.3 us
        assert np.allclose(rec.w_end, ref.w_end, atol=1e-4)
        assert np.allclose(rec.charge_c.sum(axis=1), ref.charge_c.sum(axis=1), rtol=1e-3)


def test_exp2_error_shrinks_with_its_tolerance(reference):
    """Tightening tol moves exp2 towards the converged solution (tol 1e-7 stands in for it)."""
    wave, _ = reference
    best = make_unit(2).run(wave, tol=1e-7)
    errs = []
    for tol in (1e-2, 1e-3, 1e-4):
        rec = make_unit(2).run(wave, tol=tol)
        assert np.array_equal(rec.counts, best.counts)
        errs.append(np.max(np.abs(rec.time_s - best.time_s)))
    assert errs[0] > 3 * errs[1] > 9 * errs[2]
    assert errs[1] < 0.15e-6


def test_float_and_numpy_kernels_agree_with_noise():
    """Default noise (dendrite C2C per pulse, soma thresholds per cycle), per-device amplitudes:
    same spikes, times to 1e-9 relative, same state and draw counters."""
    keys = np.arange(10, 16, dtype=np.uint64) * 7919
    amps = np.array([4.5, 5.25, 5.5, 5.75, 6.0, 6.5])
    wave = train(amps, 5)
    runs = {}
    for kernel in ("float", "numpy"):
        unit = make_unit(6, DendriteParams(), SomaParams(), keys=keys)
        runs[kernel] = (unit, unit.run(wave, kernel=kernel))
    (uf, rf), (un, rn) = runs["float"], runs["numpy"]
    assert np.array_equal(rf.counts, rn.counts)
    assert rf.total().sum() > 100
    assert np.allclose(rf.time_s, rn.time_s, rtol=1e-9, atol=0)
    for a, b in ((rf.w_end, rn.w_end), (rf.v_end, rn.v_end), (rf.charge_c, rn.charge_c)):
        assert np.allclose(a, b, rtol=1e-9, atol=1e-15)
    assert np.array_equal(uf.soma.n_spikes, un.soma.n_spikes)
    assert np.array_equal(uf.dendrite.events, un.dendrite.events)
    assert np.allclose(uf.soma.v_th, un.soma.v_th, rtol=1e-12)


def test_a_unit_gives_the_same_result_alone_and_in_a_batch():
    """N3: per-unit steps, so a unit's spikes do not depend on its neighbours (both kernels)."""
    keys = np.array([11, 12, 13], dtype=np.uint64)
    wave = train([5.5, 6.0, 5.75], 4)
    for kernel in ("float", "numpy"):
        batch = make_unit(3, DendriteParams(), SomaParams(), keys=keys).run(wave, kernel=kernel)
        alone = make_unit(1, DendriteParams(), SomaParams(), keys=keys[1:2]).run(
            Waveform(wave.v[1:2], wave.dt), kernel=kernel)
        assert np.array_equal(batch.counts[1], alone.counts[0])
        assert np.allclose(batch.times(1), alone.times(0), rtol=1e-12)


def test_split_segments_give_the_same_spikes():
    """N2 (to the method's tolerance): one 200 us pulse, or the same pulse as 40 holds of 5 us
    (how the bench drives a unit between readings)."""
    one = make_unit(1).run(Waveform(np.array([6.0]), np.array([200e-6])))
    many = make_unit(1).run(Waveform(np.full(40, 6.0), np.full(40, 5e-6)))
    assert one.total()[0] == many.total()[0] >= 4
    assert np.max(np.abs(one.time_s - many.time_s)) < 0.1e-6


def test_switch_delay_falls_back_to_the_numpy_kernel():
    soma = dataclasses.replace(SOMA, delay_t0_s=50e-9)
    wave = train([6.0], 2)
    auto = make_unit(1, soma=soma).run(wave)
    numpy = make_unit(1, soma=soma).run(wave, kernel="numpy")
    assert np.array_equal(auto.counts, numpy.counts) and auto.total()[0] >= 4
    assert np.array_equal(auto.time_s, numpy.time_s)

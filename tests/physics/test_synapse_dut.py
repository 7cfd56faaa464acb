"""The synapse DUT's float path against the ``SynapseArray`` batch engine (same numbers)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sim_backend.duts import SynapseDut
from sim_backend.physics import rng
from sim_backend.physics.synapse import STUCK_NONE, SynapseArray, SynapseParams

#: (bitline V, width s, gate V) holds: SET at two gates, RESET, weak holds, a 0 V wait.
SEQUENCE = [(1.5, 100e-9, 1.6), (0.0, 1e-3, 1.6), (1.5, 200e-9, 1.2), (-1.4, 100e-9, 1.6),
            (0.2, 1e-5, 1.6), (2.0, 50e-9, 0.9), (-2.0, 1e-6, 1.6), (1.6, 1e-3, 1.6)]


def _pair(params: SynapseParams, device: int) -> tuple[SynapseDut, SynapseArray]:
    keys = rng.device_keys(7, 1, 2, [device])
    return SynapseDut(SynapseArray(params, keys=keys)), SynapseArray(params, keys=keys)


def _play(dut: SynapseDut, ref: SynapseArray, rounds: int) -> tuple[np.ndarray, np.ndarray]:
    """The same holds and 0.2 V reads through the DUT and through the batch engine."""
    got, want = [], []
    for _ in range(rounds):
        for v, width, gate in SEQUENCE:
            dut.gate_v = gate
            dut.hold(v, width)
            if v != 0.0:                     # the DUT skips 0 V holds (no relaxation law)
                ref.pulse(v, width, gate)
            got.append(dut.read(0.2))
            want.append(float(ref.read(0.2)[0]))
    return np.array(got), np.array(want)


@pytest.mark.parametrize("device", range(6))
def test_float_path_matches_batch_engine_bit_for_bit(device: int) -> None:
    """Noise on (C2C factor, additive C2C, read noise): every reading and the final state are
    identical to the last bit, over more draws than one fetched block."""
    dut, ref = _pair(SynapseParams(), device)
    got, want = _play(dut, ref, rounds=40)
    assert np.array_equal(got, want)
    assert np.unique(got).size > 100                       # the noise really is in there
    a = dut.array
    for name in ("g_s", "g_prog_s", "age_s", "n_pulses", "n_reads", "_relax_event"):
        assert np.array_equal(getattr(a, name), getattr(ref, name)), name
    assert dut.current(0.3) == pytest.approx(float(ref.g_s[0]) * 0.3 * (1 + 0.25 * 0.09))


def test_stuck_cell_float_path_matches_and_never_moves() -> None:
    params = dataclasses.replace(SynapseParams(), stuck_fraction=1.0)
    dut, ref = _pair(params, 0)
    assert int(dut.array.stuck[0]) != STUCK_NONE
    g0 = float(dut.array.g_s[0])
    got, want = _play(dut, ref, rounds=3)
    assert np.array_equal(got, want)
    assert float(dut.array.g_s[0]) == g0
    assert np.array_equal(dut.array.age_s, ref.age_s)


def test_relaxation_law_uses_the_batch_engine_and_stays_in_step() -> None:
    params = dataclasses.replace(SynapseParams(), relax_drift_rel=-0.01, relax_sigma_a_rel=0.01)
    dut, ref = _pair(params, 1)
    dut.gate_v = 1.6
    for v, width in [(1.5, 100e-9), (0.0, 10.0), (0.2, 1e-5), (0.0, 100.0)]:
        dut.hold(v, width)
        ref.pulse(v, width, 1.6)
        assert dut.read(0.2) == float(ref.read(0.2)[0])
    assert float(dut.array.g_s[0]) != float(dut.array.g_prog_s[0])   # the law did act


def test_gate_off_reads_zero_without_using_a_read_draw() -> None:
    dut, ref = _pair(SynapseParams(), 2)
    dut.gate_v = 0.0
    assert dut.read(0.2) == 0.0
    dut.gate_v = 1.0
    assert dut.read(0.2) == float(ref.read(0.2)[0])


def test_drive_runs_the_batch_engine_and_the_float_path_continues_from_it() -> None:
    from sim_backend.physics.waveform import Waveform
    dut, ref = _pair(SynapseParams(), 3)
    dut.gate_v = 1.6
    wave = Waveform(np.array([1.5, 0.0, -1.4, 1.5]), np.array([1e-7, 1e-6, 1e-7, 1e-7]))
    dut.drive(wave)
    ref.run(wave, 1.6)
    dut.hold(1.5, 1e-7)
    ref.pulse(1.5, 1e-7, 1.6)
    assert dut.read(0.2) == float(ref.read(0.2)[0])

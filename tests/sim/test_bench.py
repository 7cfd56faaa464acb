"""The bench: clock, wiring, compliance, routing, and DUT fast paths equal to the batch physics."""

from __future__ import annotations

import numpy as np
import pytest

from dendrolab.errors import ParameterError
from sim_backend.bench import Bench
from sim_backend.duts import DendriteDut
from sim_backend.physics.dendrite import DendriteArray, DendriteParams
from sim_backend.physics.presets import load_models
from sim_backend.physics.rng import device_keys
from sim_backend.physics.waveform import pulse_train


def bench(devices, wiring, **extra) -> Bench:
    return Bench({"seed": 3, "noise": False, "devices": devices, "wiring": wiring, **extra})


def test_scalar_dendrite_path_equals_the_batch_engine_with_noise():
    params = DendriteParams()
    keys = device_keys(7, 0, 2, np.array([5]))
    ref = DendriteArray(params, keys=keys)
    dut = DendriteDut(DendriteArray(params, keys=keys))
    segments = [(5.0, 1e-4), (0.0, 1e-4)] * 15 + [(0.2, 1e-3), (-5.0, 1e-4), (-4.0, 2e-5),
                                                   (0.0, 1e-3), (3.0, 1e-4), (3.5, 1e-4)]
    for v, dt in segments:
        ref.step(v, dt)
        dut.hold(v, dt)
    train = pulse_train(4.0, 1e-4, 1e-4, 5)
    ref.run(train)
    dut.drive(train)
    for v, dt in [(5.0, 1e-4), (0.0, 3e-4)]:
        ref.step(v, dt)
        dut.hold(v, dt)
    assert dut.w == pytest.approx(float(ref.w[0]), rel=1e-13)
    assert dut._events == int(ref.events[0])
    for event in range(3):
        assert dut.read(0.2) == pytest.approx(float(ref.current(0.2, noise_event=event)[0]),
                                              rel=1e-13)


def test_measurement_sums_the_sources_on_a_port_and_off_outputs_are_open():
    b = bench({"d": {"kind": "dendrite"}}, {"smu/1": "d", "awg/1": "d"})
    b.source("smu/1", 0.2)
    alone = b.measure("smu/1", 0.0).i_a
    b.source("awg/1", 0.1)
    both = b.measure("smu/1", 0.0)
    assert both.v_v == pytest.approx(0.3) and both.i_a > alone
    b.source("awg/1", None)
    assert b.measure("smu/1", 0.0).i_a == pytest.approx(alone, rel=1e-6)


def test_devices_relax_lazily_while_time_passes():
    b = bench({"d": {"kind": "dendrite"}}, {"smu/1": "d", "awg/1": "d"})
    b.source("awg/1", 0.0)
    b.drive("awg/1", pulse_train(5.0, 1e-4, 1e-4, 20))
    assert b.now_s == pytest.approx(4e-3)
    w_after = b.device("d").w
    b.advance(3e-3)                                   # one tau_r of the default model
    assert b.device("d").w == pytest.approx(w_after * np.exp(-1.0), rel=1e-9)


def test_compliance_clamps_current_and_device_voltage_until_the_level_changes():
    b = bench({"d": {"kind": "dendrite"}}, {"smu/1": "d"})
    b.source("smu/1", 5.0)
    r = b.measure("smu/1", 1e-3, limit_a=1e-6)
    assert r.tripped and r.i_a == pytest.approx(1e-6) and r.v_v < 5.0
    assert b.slots["d"].v == pytest.approx(r.v_v)      # the clamp holds between readings
    b.source("smu/1", 0.1)
    r2 = b.measure("smu/1", 1e-3, limit_a=1e-6)
    assert not r2.tripped and r2.v_v == pytest.approx(0.1)


def test_matrix_routes_connect_and_disconnect():
    b = bench({"d": {"kind": "dendrite"}}, {})
    b.source("probe/1", 1.0)
    assert b.measure("probe/1", 0.0).i_a == 0.0
    b.close_route("m:1A01", [("probe/1", "d")])
    assert b.measure("probe/1", 0.0).i_a > 0
    b.open_route("m:1A01")
    assert b.measure("probe/1", 0.0).i_a == 0.0


def test_unit_input_reads_as_an_integrating_adc_and_rises_when_the_soma_fires():
    b = bench({"u": {"kind": "unit"}}, {"s/1": "u.in"})
    readings = {}
    for v in (4.0, 6.0):
        b.source("s/1", v)
        readings[v] = b.measure("s/1", 200e-6).i_a
        b.source("s/1", 0.0)
        b.advance(20e-3)
    assert readings[6.0] > 3 * readings[4.0]
    assert len(b.device("u").spike_times) > 0


def test_a_noisy_soma_in_compliance_always_reports_the_trip():
    """Read noise must not pull a clamped reading below the limit and hide the compliance."""
    b = Bench({"seed": 3, "noise": True, "devices": {"s": {"kind": "soma"}},
               "wiring": {"k/1": "s"}})
    soma = load_models().soma
    b.source("k/1", soma.v_th_v + 0.3)
    readings = [b.measure("k/1", 1e-3, limit_a=1e-4) for _ in range(50)]
    assert all(r.tripped and r.i_a == 1e-4 for r in readings)
    b.source("k/1", 0.1)                  # below V_hold, well under the limit: noisy, no trip
    low = [b.measure("k/1", 1e-3, limit_a=1e-4) for _ in range(20)]
    assert not any(r.tripped for r in low) and len({r.i_a for r in low}) > 1


def test_soma_threshold_switching_with_hysteresis():
    b = bench({"s": {"kind": "soma"}}, {"k/1": "s"})
    soma = load_models().soma
    currents = {}
    for v in (0.5, 1.0, soma.v_th_v + 0.05, 1.0, 0.5):
        b.source("k/1", v)
        currents.setdefault(v, []).append(b.measure("k/1", 1e-3, limit_a=1e-3).i_a)
    assert currents[1.0][1] / currents[1.0][0] == pytest.approx(soma.r_off_ohm / soma.r_on_ohm,
                                                                rel=1e-6)
    assert currents[0.5][1] == pytest.approx(currents[0.5][0])   # released below V_hold


def test_virtual_host_time_counts_latency_and_waits_only(monkeypatch):
    b = bench({"d": {"kind": "dendrite"}}, {}, host_latency_s=1e-3)
    assert b.host_time == "virtual"                        # the default: reproducible
    b.host_command()
    b.host_done()
    import time

    time.sleep(0.01)                                       # slow Python between commands
    b.host_command()
    assert b.now_s == pytest.approx(2e-3, abs=0)           # ... does not pass on the bench
    slept = []
    monkeypatch.setattr(time, "sleep", slept.append)
    b.sleep(5.0)                                           # a host wait: bench time, at once
    assert slept == []
    assert b.now_s == 5.0 + 2e-3


def test_wall_host_time_lets_real_gaps_pass(monkeypatch):
    wall = bench({"d": {"kind": "dendrite"}}, {}, host_latency_s=1e-4, host_idle_s=5e-3,
                 host_time="wall")
    wall.host_command()
    wall.host_done()
    wall.host_command()                      # a short gap counts as the latency only
    assert wall.now_s == pytest.approx(2e-4)
    wall.host_done()
    import time

    slept = []
    monkeypatch.setattr(time, "sleep", slept.append)
    wall.sleep(0.01)                         # a wait really waits ...
    assert slept == [0.01]
    clock = iter([100.0])
    monkeypatch.setattr(time, "perf_counter", lambda: next(clock))
    wall._host_mark = 99.99                  # (the host went idle 10 ms before "now")
    wall.host_command()                      # ... and the gap passes on the bench
    assert wall.now_s == pytest.approx(2e-4 + 0.01)


@pytest.mark.parametrize(("config", "message"), [
    ({"devices": {"d": {"kind": "memristor"}}}, r"kind = 'memristor': must be one of"),
    ({"devices": {"d": {"kind": "dendrite"}}, "wiring": {"a/1": "e"}}, r"unknown device 'e'"),
    ({"devices": {"d": {"kind": "dendrite"}}, "wiring": {"a/1": "d.gate"}}, r"has no port 'gate'"),
    ({"seed": 1.5}, r"bench.seed = 1.5: must be an integer"),
    ({"host_time": "fast"}, r"host_time = 'fast'"),
    ({"host_time": "latency"}, r"must be 'virtual'"),
    ({"clock": 1}, r"unknown key\(s\) clock"),
])
def test_bad_bench_configs_are_clear_errors(config, message):
    with pytest.raises(ParameterError, match=message):
        Bench(config)


def test_device_variation_is_keyed_by_site_not_by_order():
    a = Bench({"seed": 9, "devices": {"x": {"kind": "dendrite", "die": 4, "device": 2},
                                      "y": {"kind": "dendrite", "die": 1, "device": 0}}})
    b = Bench({"seed": 9, "devices": {"y": {"kind": "dendrite", "die": 1, "device": 0},
                                      "x": {"kind": "dendrite", "die": 4, "device": 2}}})
    assert a.device("x").g_off == b.device("x").g_off
    assert a.device("x").g_off != a.device("y").g_off

"""Simulated Keithley 2600B: TSP replies, errors, compliance, sweeps, pulses, and our Smu driver."""

from __future__ import annotations

import numpy as np
import pytest

from dendrolab.errors import ParameterError
from instruments.factory import connect
from instruments.smu import Smu
from sim_backend.bench import Bench
from sim_backend.instruments import model_class
from sim_backend.instruments.k2600 import Keithley2600BSim

EMPTY = b"0.00000e+00\tQueue Is Empty\t0.00000e+00\t0.00000e+00\n"
DENDRITE = {"seed": 1, "noise": False, "devices": {"d1": {"kind": "dendrite"}}}


def fresh_bench() -> Bench:
    return Bench({**DENDRITE, "wiring": {"smu/1": "d1", "smu/2": "d1"}})


def reference(steps: list[tuple[float, float, float]], delay: float = 0.0) -> list[float]:
    """Currents an identical bench gives for (level, aperture, limit) measurements in a row."""
    bench = fresh_bench()
    out = []
    for level, aperture, limit in steps:
        bench.source("smu/1", level)
        bench.advance(delay)
        out.append(bench.measure("smu/1", aperture, limit).i_a)
    return out


def e(x: float) -> str:
    return f"{x:.5e}"


@pytest.fixture
def bench() -> Bench:
    return fresh_bench()


@pytest.fixture
def k(bench: Bench) -> Keithley2600BSim:
    return Keithley2600BSim(bench, "smu")


def codes(inst: Keithley2600BSim) -> list[int]:
    return [err[0] for err in inst.errors]


# -- identity and options ----------------------------------------------------------------------


def test_registered_identity_and_localnode(k: Keithley2600BSim) -> None:
    assert model_class("keithley2600b") is Keithley2600BSim
    assert k.handle("*IDN?") == b"Keithley Instruments Inc., Model 2636B, 4308079, 3.2.2\n"
    assert k.handle("print(localnode.model)") == b"2636B\n"
    assert k.handle("print(localnode.linefreq)") == b"5.00000e+01\n"


def test_options(bench: Bench) -> None:
    k = Keithley2600BSim(
        bench,
        "smu",
        {"idn": "Keithley Instruments Inc., Model 2601B, 1, 4.0.8", "serial": 77,
         "line_frequency_hz": 60},
    )  # fmt: skip
    assert k.handle("*IDN?") == b"Keithley Instruments Inc., Model 2601B, 77, 4.0.8\n"
    assert k.handle("print(localnode.linefreq)") == b"6.00000e+01\n"
    assert k.handle("print(smub)") == b"nil\n"  # single-channel model
    k.handle("smub.source.levelv = 1")
    assert codes(k) == [-286]
    with pytest.raises(ParameterError, match="unknown option"):
        Keithley2600BSim(bench, "smu", {"linefreq": 50})
    with pytest.raises(ParameterError, match="not a 2600B"):
        Keithley2600BSim(bench, "smu", {"idn": "Keithley Instruments Inc., Model 2450, 1, 1"})
    with pytest.raises(ParameterError, match="line_frequency_hz"):
        Keithley2600BSim(bench, "smu", {"line_frequency_hz": 55})


# -- statements as third-party drivers send them --------------------------------------------------


def test_pymeasure_and_qcodes_style_statements(k: Keithley2600BSim, bench: Bench) -> None:
    assert k.handle("smua.source.levelv=0.5") is None
    assert k.handle("print(smua.source.levelv)") == b"5.00000e-01\n"
    assert "smu/1" not in bench.levels  # output still off: terminal open
    k.handle("smua.source.func = smua.OUTPUT_DCVOLTS; smua.source.output = smua.OUTPUT_ON")
    assert bench.levels["smu/1"] == 0.5
    reply = k.handle("print(smua.source.output) print(smua.source.func)\nprint(smua.measure.nplc)")
    assert reply == b"1.00000e+00\n1.00000e+00\n1.00000e+00\n"
    k.handle("smub.source.levelv = -1.5 smub.source.output = smub.OUTPUT_ON")
    assert bench.levels["smu/2"] == -1.5
    k.handle("smua.source.output = smua.OUTPUT_OFF")
    assert "smu/1" not in bench.levels
    k.handle("smub.source.output = smub.OUTPUT_HIGH_Z")
    assert k.handle("print(smub.source.output, smub.source.offmode)") == (
        b"0.00000e+00\t2.00000e+00\n"
    )
    assert not k.errors


def test_spot_measurements_follow_the_device_and_the_clock(
    k: Keithley2600BSim, bench: Bench
) -> None:
    k.handle("smua.source.limiti = 1e-3 smua.source.levelv = 1 smua.source.output = 1")
    i1, i2 = reference([(1.0, 0.02, 1e-3), (1.0, 0.02, 1e-3)])
    assert k.handle("print(smua.measure.i())") == f"{e(i1)}\n".encode()
    assert bench.now_s == pytest.approx(0.02)  # 1 PLC at 50 Hz
    assert k.handle("print(smua.measure.iv())") == f"{e(i2)}\t1.00000e+00\n".encode()
    k.handle("smua.measure.nplc = 0.1 smua.measure.delay = 0.005 smua.measure.count = 3 "
             "smua.measure.interval = 0.01")  # fmt: skip
    t0 = bench.now_s
    k.handle("x = smua.measure.v()")
    assert bench.now_s - t0 == pytest.approx(0.005 + 2 * 0.01 + 0.002)
    k.handle("delay(0.25)")
    assert bench.now_s - t0 == pytest.approx(0.277)
    assert k.handle("print(smub.measure.i())") == b"0.00000e+00\n"  # smub output off
    assert float(k.handle("print(smua.measure.r())")) == pytest.approx(1.0 / i2, rel=1e-2)


def test_errors_are_queued_like_the_instrument(k: Keithley2600BSim) -> None:
    assert k.handle("print(errorqueue.next())") == EMPTY
    k.handle("smua.source.levelv = 1 smua.source.levelv = 500")
    assert k.handle("print(smua.source.levelv)") == b"1.00000e+00\n"  # not applied
    k.handle("smua.measure.nplc = 0.0001")
    k.handle("smua.source.func = 7")
    k.handle("smua.source.levelv = ")
    k.handle("smua.sorce.levelv = 1")
    assert k.handle("print(errorqueue.count)") == b"5.00000e+00\n"
    assert k.handle("print(errorqueue.next())") == (
        b"1.10100e+03\tParameter too big\t2.00000e+01\t1.00000e+00\n"
    )
    assert k.handle("print(errorqueue.next())").startswith(b"1.10200e+03\tParameter too small")
    assert k.handle("print(errorqueue.next())").startswith(b"-2.24000e+02\tIllegal parameter")
    assert k.handle("print(errorqueue.next())").startswith(
        b"-2.85000e+02\tTSP Syntax error at line 1:"
    )
    assert k.handle("print(errorqueue.next())") == (
        b"-2.86000e+02\tTSP Runtime error at line 1: attempt to index field 'sorce' (a nil value)"
        b"\t2.00000e+01\t1.00000e+00\n"
    )
    k.handle("smua.source.compliance = true errorqueue.clear()")
    assert k.handle("print(errorqueue.count)") == b"1.00000e+00\n"  # the runtime error stopped it
    k.handle("errorqueue.clear()")
    assert k.handle("print(errorqueue.count)") == b"0.00000e+00\n"


def test_compliance_clamps_and_reports(k: Keithley2600BSim) -> None:
    k.handle("smua.source.limiti = 1e-8 smua.source.levelv = 1 smua.source.output = 1")
    assert k.handle("print(smua.source.compliance)") == b"true\n"
    i, v = (float(x) for x in k.handle("print(smua.measure.iv())").split(b"\t"))
    assert i == 1e-8
    assert 0.05 < v < 0.5  # the device voltage dropped to where it conducts the limit
    k.handle("smua.source.limiti = 1e-3")
    assert k.handle("print(smua.source.compliance)") == b"false\n"
    k.handle("smua.source.output = 0")
    assert k.handle("print(smua.source.compliance)") == b"false\n"


def test_ranges_autorange_and_overflow(k: Keithley2600BSim) -> None:
    k.handle("smua.source.levelv = 1 smua.source.output = 1")
    k.handle("x = smua.measure.i()")
    assert k.handle("print(smua.measure.autorangei, smua.measure.rangei)") == (
        b"1.00000e+00\t1.00000e-06\n"
    )
    k.handle("smua.measure.rangei = 1e-9")  # a fixed range turns autorange off
    assert k.handle("print(smua.measure.autorangei)") == b"0.00000e+00\n"
    assert k.handle("print(smua.measure.i())") == b"9.91000e+37\n"
    k.handle("smua.source.rangev = 1.5")
    assert k.handle("print(smua.source.rangev, smua.source.autorangev)") == (
        b"2.00000e+00\t0.00000e+00\n"
    )
    k.handle("smua.source.rangev = 250")
    assert codes(k) == [1101]


def test_current_source(k: Keithley2600BSim) -> None:
    k.handle("smua.source.func = smua.OUTPUT_DCAMPS smua.source.limitv = 5")
    k.handle("smua.source.leveli = 1e-7 smua.source.output = smua.OUTPUT_ON")
    i, v = (float(x) for x in k.handle("print(smua.measure.iv())").split(b"\t"))
    assert i == pytest.approx(1e-7, rel=1e-3)
    assert 0.5 < v < 1.0
    assert k.handle("print(smua.source.compliance)") == b"false\n"
    k.handle("smua.source.leveli = 1e-3")  # far more than the device takes at 5 V
    assert k.handle("print(smua.source.compliance)") == b"true\n"
    assert k.handle("print(smua.measure.v())") == b"5.00000e+00\n"
    assert not k.errors


def test_reset_turns_outputs_off_and_restores_defaults(k: Keithley2600BSim, bench: Bench) -> None:
    k.handle("smua.source.levelv = 2 smua.source.output = 1 smua.measure.nplc = 5")
    k.handle("format.data = format.REAL32")
    assert bench.levels["smu/1"] == 2.0
    k.handle("reset()")
    assert "smu/1" not in bench.levels
    reply = k.handle("print(smua.source.levelv, smua.measure.nplc, smua.source.output)")
    assert reply == b"0.00000e+00\t1.00000e+00\t0.00000e+00\n"
    k.handle("smua.source.output = 1 smua.reset()")
    assert "smu/1" not in bench.levels
    k.handle("smub.source.output = 1 *RST")
    assert "smu/2" not in bench.levels and k.format.data == 1


# -- buffers ---------------------------------------------------------------------------------------


def test_buffers_with_spot_measurements(k: Keithley2600BSim, bench: Bench) -> None:
    k.handle("smua.source.levelv = 1 smua.source.output = 1")
    k.handle("smua.measure.i(smua.nvbuffer1) smua.measure.i(smua.nvbuffer1)")
    assert k.handle("print(smua.nvbuffer1.n)") == b"1.00000e+00\n"  # append mode off: replaced
    assert k.handle("print(smua.nvbuffer1.timestamps)") == b"nil\n"  # not collected
    k.handle("smua.nvbuffer1.clear() smua.nvbuffer1.appendmode = 1")
    k.handle("smua.nvbuffer1.collecttimestamps = 1 smua.nvbuffer1.collectsourcevalues = 1")
    k.handle("smua.measure.count = 2 smua.measure.iv(smua.nvbuffer1, smua.nvbuffer2)")
    k.handle("smua.measure.count = 1 smua.measure.i(smua.nvbuffer1)")
    assert k.handle("print(smua.nvbuffer1.n, smua.nvbuffer2.n)") == b"3.00000e+00\t2.00000e+00\n"
    assert k.handle("printbuffer(1, 3, smua.nvbuffer1.timestamps)") == (
        b"0.00000e+00, 2.00000e-02, 4.00000e-02\n"
    )
    assert k.handle("printbuffer(1, 2, smua.nvbuffer2)") == b"1.00000e+00, 1.00000e+00\n"
    assert k.handle("print(smua.nvbuffer1.sourcevalues[3])") == b"1.00000e+00\n"
    assert k.handle("print(smua.nvbuffer1[2] == smua.nvbuffer1.readings[2])") == b"true\n"
    assert k.handle("print(smua.nvbuffer1[4])") == b"nil\n"
    buf = k.handle("b = smua.makebuffer(10) b.appendmode = 1 smua.measure.v(b) print(b.n)")
    assert buf == b"1.00000e+00\n"
    assert not k.errors


# -- sweeps ----------------------------------------------------------------------------------------

SWEEP_SETUP = (
    "smua.source.limiti = 1e-3 "
    "smua.nvbuffer1.clear() smua.nvbuffer2.clear() smua.nvbuffer1.collecttimestamps = 1 "
    "smua.trigger.source.action = smua.ENABLE "
    "smua.trigger.measure.iv(smua.nvbuffer1, smua.nvbuffer2) "
    "smua.trigger.measure.action = smua.ENABLE "
)


def test_list_sweep_ascii(k: Keithley2600BSim, bench: Bench) -> None:
    k.handle(SWEEP_SETUP + "smua.trigger.source.listv({0.1, 0.5, 1})")
    k.handle("smua.measure.delay = 0.001 smua.trigger.count = 3 smua.source.output = 1")
    k.handle("smua.trigger.initiate() waitcomplete()")
    assert bench.now_s == pytest.approx(3 * 0.021)
    expected = reference([(0.1, 0.02, 1e-3), (0.5, 0.02, 1e-3), (1.0, 0.02, 1e-3)], 0.001)
    reply = k.handle("printbuffer(1, 3, smua.nvbuffer1.readings, smua.nvbuffer2.readings)")
    want = f"{e(expected[0])}, 1.00000e-01, {e(expected[1])}, 5.00000e-01, {e(expected[2])}, "
    assert reply == f"{want}1.00000e+00\n".encode()
    assert k.handle("printbuffer(1, 3, smua.nvbuffer1.timestamps)") == (
        b"0.00000e+00, 2.10000e-02, 4.20000e-02\n"
    )
    assert bench.levels["smu/1"] == 0.0  # end of sweep: back to the idle level (levelv)
    assert not k.errors


def test_linear_sweep_real32_and_repeating_list(k: Keithley2600BSim) -> None:
    k.handle(SWEEP_SETUP + "smua.trigger.source.linearv(-1, 1, 5) smua.trigger.count = 7")
    k.handle("smua.source.output = 1 smua.trigger.initiate() waitcomplete()")
    k.handle("format.data = format.REAL32")
    reply = k.handle("printbuffer(1, 7, smua.nvbuffer2.readings)")
    assert reply[:2] == b"#0" and reply[-1:] == b"\n" and len(reply) == 2 + 4 * 7 + 1
    volts = np.frombuffer(reply[2:-1], dtype="<f4")
    np.testing.assert_array_equal(volts, [-1, -0.5, 0, 0.5, 1, -1, -0.5])  # the list repeats
    assert k.handle("print(1)") == b"1.00000e+00\n"  # print stays ASCII


def test_end_of_sweep_hold_keeps_the_last_level(k: Keithley2600BSim, bench: Bench) -> None:
    k.handle(SWEEP_SETUP + "smua.trigger.source.listv({0.3, 0.7}) smua.trigger.count = 2")
    k.handle("smua.trigger.endsweep.action = smua.SOURCE_HOLD smua.source.output = 1")
    k.handle("smua.trigger.initiate()")
    assert bench.levels["smu/1"] == 0.7
    assert k.handle("print(smua.source.levelv)") == b"0.00000e+00\n"  # the idle level
    k.handle("smua.source.levelv = 0.2")
    assert bench.levels["smu/1"] == 0.2


PULSE_SETUP = (
    SWEEP_SETUP + "smua.measure.nplc = 0.01 smua.source.levelv = 0.1 smua.measure.delay = 0.0007 "
    "smua.trigger.source.listv({1, 2, 3}) "
    "trigger.timer[1].delay = 0.01 trigger.timer[1].count = 2 "
    "trigger.timer[1].passthrough = true "
    "trigger.timer[1].stimulus = smua.trigger.ARMED_EVENT_ID "
    "smua.trigger.source.stimulus = trigger.timer[1].EVENT_ID "
    "trigger.timer[2].delay = 0.001 trigger.timer[2].count = 1 "
    "trigger.timer[2].passthrough = false "
    "trigger.timer[2].stimulus = smua.trigger.SOURCE_COMPLETE_EVENT_ID "
    "smua.trigger.endpulse.stimulus = trigger.timer[2].EVENT_ID "
    "smua.trigger.endpulse.action = smua.SOURCE_IDLE "
    "smua.trigger.count = 3 smua.trigger.arm.count = 1 smua.source.output = 1"
)


def test_pulsed_sweep_timing_and_idle_level(k: Keithley2600BSim, bench: Bench) -> None:
    k.handle(PULSE_SETUP)
    assert not k.errors
    levels: list[tuple[float, float | None]] = []
    original = bench.source

    def spy(terminal: str, level: float | None) -> None:
        levels.append((round(bench.now_s, 9), level))
        original(terminal, level)

    bench.source = spy  # type: ignore[method-assign]
    t0 = bench.now_s
    k.handle("smua.trigger.initiate() waitcomplete()")
    assert bench.now_s - t0 == pytest.approx(2 * 0.01 + 0.001)  # last point ends with its pulse
    pulses = [(round(t - t0, 9), v) for t, v in levels]
    assert pulses == [
        (0.0, 1.0), (0.001, 0.1), (0.01, 2.0), (0.011, 0.1), (0.02, 3.0), (0.021, 0.1),
    ]  # fmt: skip
    assert k.handle("printbuffer(1, 3, smua.nvbuffer1.timestamps, smua.nvbuffer2)") == (
        b"0.00000e+00, 1.00000e+00, 1.00000e-02, 2.00000e+00, 2.00000e-02, 3.00000e+00\n"
    )
    k.handle("smua.trigger.arm.count = 2 smua.trigger.initiate()")  # two arms: 2 x the train
    assert k.handle("print(smua.nvbuffer1.n)") == b"6.00000e+00\n"


@pytest.mark.parametrize(
    ("setup", "detail"),
    [
        ("smua.trigger.count = 0", "infinite"),
        ("trigger.timer[1].count = 1", "gives 2 source events for 3 points"),
        ("trigger.timer[1].stimulus = 0", "not started by smua.trigger.ARMED_EVENT_ID"),
        ("trigger.timer[2].passthrough = true", "drives endpulse"),
        ("smua.trigger.measure.action = smua.ASYNC", "ASYNC"),
        ("smua.trigger.arm.stimulus = trigger.timer[3].EVENT_ID", "arm.stimulus"),
        ("smua.source.func = smua.OUTPUT_DCAMPS", "other source function"),
    ],
)
def test_unsupported_trigger_setups_are_refused(
    k: Keithley2600BSim, bench: Bench, setup: str, detail: str
) -> None:
    k.handle(PULSE_SETUP + " " + setup)
    t0 = bench.now_s
    k.handle("smua.trigger.initiate()")
    assert codes(k) == [-221]
    assert detail in k.errors[0][1]
    assert bench.now_s == t0
    assert k.handle("print(smua.nvbuffer1.n)") == b"0.00000e+00\n"


# -- our driver end to end ------------------------------------------------------------------------


def test_smu_driver_end_to_end(dendrite_bench: Bench, loopback) -> None:
    model = Keithley2600BSim(dendrite_bench, "smu")
    smu = connect(loopback(model))
    assert isinstance(smu, Smu) and smu.identity is not None and smu.identity.model == "2636B"
    smu.configure_source_voltage(limit_a=1e-4)
    smu.configure_measure(nplc=1.0)
    smu.set_voltage(1.0)
    smu.output_on()
    reading = smu.measure_iv()
    assert reading.voltage_v == 1.0 and 5e-8 < reading.current_a < 5e-7
    assert smu.in_compliance() is False

    result = smu.list_sweep([0.2, 0.4, 0.6], delay_s=0.001)
    np.testing.assert_array_equal(result.voltage_v, [0.2, 0.4, 0.6])
    assert np.all(np.diff(result.current_a) > 0)
    np.testing.assert_allclose(result.time_s, [0.0, 0.021, 0.042])

    lin = smu.linear_sweep(0.0, 1.0, 5)
    np.testing.assert_allclose(lin.voltage_v, [0, 0.25, 0.5, 0.75, 1.0])

    smu.configure_measure(nplc=0.01)
    t0 = dendrite_bench.now_s
    pulsed = smu.pulsed_list_sweep([1.0, 2.0], width_s=1e-3, period_s=1e-2, base_v=0.0)
    assert dendrite_bench.now_s - t0 == pytest.approx(0.011)
    np.testing.assert_allclose(pulsed.time_s, [0.0, 0.01])
    np.testing.assert_array_equal(pulsed.voltage_v, [1.0, 2.0])

    snap = smu.settings()["instrument"]
    assert snap["output"] == "1.00000e+00" and snap["source_limit"] == "1.00000e-04"
    smu.ramp_step_s = 0.0
    smu.safe_state()
    assert "smu/1" not in dendrite_bench.levels
    assert model.handle("print(smua.source.levelv)") == b"0.00000e+00\n"
    assert smu.drain_errors() == []


def test_smub_driver_in_current_mode(dendrite_bench: Bench, loopback) -> None:
    smu = connect(loopback(Keithley2600BSim(dendrite_bench, "smu")), channel=2)
    smu.configure_source_current(limit_v=5.0)
    smu.configure_measure(nplc=1.0)
    smu.set_current(2e-7)
    smu.output_on()
    reading = smu.measure_iv()
    assert reading.current_a == pytest.approx(2e-7, rel=1e-3) and 0.5 < reading.voltage_v < 2
    assert dendrite_bench.levels["smu/2"] == pytest.approx(reading.voltage_v, rel=1e-2)


# -- smuX.sense, status model, display (peer drivers use these) ---------------------------------


def test_sense_round_trip_reset_and_cala_refused(k: Keithley2600BSim) -> None:
    assert k.handle("print(smua.sense, smua.SENSE_LOCAL, smua.SENSE_REMOTE, smua.SENSE_CALA)") == (
        b"0.00000e+00\t0.00000e+00\t1.00000e+00\t3.00000e+00\n"
    )
    k.handle("smua.sense = smua.SENSE_REMOTE smub.sense = 1")
    assert k.handle("print(smua.sense, smub.sense)") == b"1.00000e+00\t1.00000e+00\n"
    k.handle("smua.sense = smua.SENSE_CALA")  # calibration is never enabled
    k.handle("smua.sense = 2")
    assert codes(k) == [-221, -224]
    assert k.handle("print(smua.sense)") == b"1.00000e+00\n"
    k.handle("smua.reset()")
    assert k.handle("print(smua.sense, smub.sense)") == b"0.00000e+00\t1.00000e+00\n"
    k.handle("reset()")
    assert k.handle("print(smub.sense)") == b"0.00000e+00\n"


def test_measurement_status_registers_defaults_and_limits(k: Keithley2600BSim) -> None:
    smu = "status.measurement.instrument.smua"
    assert k.handle(f"print({smu}.condition, {smu}.enable, {smu}.ntr, {smu}.ptr)") == (
        b"0.00000e+00\t0.00000e+00\t0.00000e+00\t3.87000e+02\n"
    )
    assert k.handle("print(status.measurement.instrument.ptr, status.measurement.ptr)") == (
        b"6.00000e+00\t1.06270e+04\n"
    )
    assert k.handle(f"print({smu}.VLMT, {smu}.ILMT, {smu}.ROF, {smu}.BAV)") == (
        b"1.00000e+00\t2.00000e+00\t1.28000e+02\t2.56000e+02\n"
    )
    # current limit: voltage source into the dendrite with a 1 nA limit (QCoDeS's query)
    k.handle("smua.source.limiti = 1e-9 smua.source.levelv = 1 smua.source.output = 1")
    reply = k.handle(f"print(smua.measure.i(), {smu}.condition)").decode().split("\t")
    assert float(reply[0]) == pytest.approx(1e-9)
    assert float(reply[1]) == 2  # ILMT, no buffer used
    assert k.handle("print(status.measurement.current_limit.condition)") == b"2.00000e+00\n"
    # the event latched on the rising edge; reading it clears it
    assert k.handle(f"print({smu}.event, {smu}.event)") == b"2.00000e+00\t0.00000e+00\n"
    k.handle("smua.source.limiti = 0.1")
    k.handle("smua.measure.i(smua.nvbuffer1)")
    assert k.handle(f"print({smu}.condition)") == b"2.56000e+02\n"  # BAV, ILMT gone
    k.handle("smua.nvbuffer1.clear()")
    assert k.handle(f"print({smu}.condition)") == b"0.00000e+00\n"
    assert not k.errors


def test_measurement_summary_reaches_the_status_byte(k: Keithley2600BSim) -> None:
    k.handle("smua.source.limiti = 1e-9 smua.source.levelv = 1 smua.source.output = 1")
    k.handle("smua.measure.i()")
    assert k.handle("print(status.condition)") == b"0.00000e+00\n"  # nothing enabled yet
    k.handle(
        "status.measurement.instrument.smua.enable = status.measurement.instrument.smua.ILMT "
        "status.measurement.instrument.enable = status.measurement.instrument.SMUA "
        "status.measurement.enable = status.measurement.INST "
        "status.request_enable = status.MSB"
    )
    assert k.handle("print(status.measurement.condition)") == b"8.19200e+03\n"
    assert k.handle("print(status.condition)") == b"6.50000e+01\n"  # MSB + MSS
    assert k.handle("*STB?") == b"65\n"
    k.handle("*CLS")
    assert k.handle("print(status.condition)") == b"0.00000e+00\n"
    k.handle("status.reset()")
    assert k.handle("print(status.measurement.instrument.smua.enable, status.request_enable)") == (
        b"0.00000e+00\t0.00000e+00\n"
    )
    assert not k.errors


def test_status_register_writes_are_checked(k: Keithley2600BSim) -> None:
    k.handle("status.measurement.enable = 65536")
    k.handle("status.measurement.instrument.smua.ptr = -1")
    k.handle("status.measurement.instrument.smua.condition = 1")
    k.handle("status.measurement.instrument.smua.event = 1")
    assert codes(k) == [1101, 1102, -286, -286]
    k.handle("status.measurement.instrument.smua.ntr = 3")
    assert k.handle("print(status.measurement.instrument.smua.ntr)") == b"3.00000e+00\n"


def test_status_single_channel_model_has_no_smub(bench: Bench) -> None:
    k = Keithley2600BSim(bench, "smu", {"idn": "Keithley Instruments Inc., Model 2601B, 1, 4.0.8"})
    assert k.handle("print(status.measurement.instrument.SMUB)") == b"nil\n"
    assert k.handle("print(status.measurement.instrument.ptr, status.measurement.OE)") == (
        b"2.00000e+00\t2.04800e+03\n"
    )
    assert k.handle("print(status.measurement.INT)") == b"nil\n"  # the 2601B has output enable


def test_current_source_at_zero_amps(k: Keithley2600BSim) -> None:
    """0 A is a legal level (PyMeasure ramps to it when shutting down); it must not crash."""
    k.handle("smua.source.func = smua.OUTPUT_DCAMPS smua.source.leveli = 1e-6")
    k.handle("smua.source.output = 1 smua.source.leveli = 0")
    assert k.handle("print(smua.measure.v(), smua.source.compliance)") == (b"0.00000e+00\tfalse\n")
    assert not k.errors


def test_display_user_screen(k: Keithley2600BSim) -> None:
    assert k.handle("print(display.screen, display.SMUA_SMUB, display.USER)") == (
        b"2.00000e+00\t2.00000e+00\t3.00000e+00\n"
    )
    k.handle('display.clear() display.settext("Soma $Bs1$N  ok")')
    assert k.handle("print(display.gettext())") == b"Soma s1             $N  ok\n"
    assert k.handle("print(display.getcursor())") == b"2.00000e+00\t5.00000e+00\t0.00000e+00\n"
    k.handle("display.setcursor(1, 99)")  # out of range: last column of the row
    assert k.handle("print(display.getcursor())") == b"1.00000e+00\t2.00000e+01\t0.00000e+00\n"
    k.handle("display.screen = display.SMUA_SMUB display.sendkey(75)")
    assert k.handle("print(display.screen, display.getlastkey())") == (
        b"2.00000e+00\t7.50000e+01\n"
    )
    k.handle("display.screen = 7")
    k.handle("display.settext(5)")
    assert codes(k) == [-224, -286]
    k.handle("reset()")
    assert k.handle("print(display.gettext(false, 1))") == b"\n"

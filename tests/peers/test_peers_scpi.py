"""Peer drivers (PyMeasure, QCoDeS) run unchanged on the ``@dendrosim`` SCPI instruments.

Each test connects a third-party driver to the simulated bench, reads every parameter it
declares, sources, measures and (where the driver can) sweeps, then closes; the instrument's
error queue must be empty and nothing may be logged at WARNING or warned.

Drivers covered: PyMeasure ``Keithley2450`` and ``Agilent33500``; QCoDeS ``Keithley2450``,
``Keysight33622A`` / ``Keysight33522B`` and ``KeysightB2962A`` (the B2960 shares the B2900 SCPI
command family: ``:SOUR<c>:VOLT``, ``:SENS<c>:CURR:PROT``, ``:MEAS:CURR? (@c)``, ``:SENS<c>:REM``).
PyMeasure has no B2900-family driver.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.peers.conftest import drain_errors

pyvisa = pytest.importorskip("pyvisa")

K2450 = "USB0::0x05E6::0x2450::04488850::INSTR"
AWG = "TCPIP0::192.0.2.11::inst0::INSTR"
B2900 = "TCPIP0::192.0.2.13::inst0::INSTR"
AWG_33500B = "TCPIP0::192.0.2.21::inst0::INSTR"

pytestmark = [
    pytest.mark.filterwarnings("error"),
    # PyMeasure's own deprecation: Keithley2450.error is an alias of next_error that warns
    # whenever it is read (keithley2450.py); reading every property reads it too.
    pytest.mark.filterwarnings(
        "ignore:Deprecated to use `error`, use `next_error` instead.:FutureWarning"
    ),
]


@pytest.fixture
def quiet(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fails the test when anything logs at WARNING or above (drivers, pyvisa, our backend)."""
    caplog.set_level(logging.WARNING)
    yield
    loud = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.WARNING]
    assert not loud, loud


def read_properties(obj: Any, skip: dict[str, str]) -> dict[str, Any]:
    """Read every property of a PyMeasure instrument or channel; ``skip`` maps names the driver
    cannot read on this instrument to the reason. Write-only settings are left out."""
    values: dict[str, Any] = {}
    for klass in type(obj).__mro__:
        for name, attr in vars(klass).items():
            if not isinstance(attr, property) or name in values or name in skip:
                continue
            try:
                values[name] = getattr(obj, name)
            except LookupError as exc:  # Instrument.setting: "Property can not be read."
                if "can not be read" not in str(exc):
                    raise
    return values


def bench_clock(rm: Any) -> float:
    return rm.visalib.bench.now_s


# ---------------------------------------------------------------------------------------------
# Keithley 2450


PYMEASURE_2450_SKIP = {
    # 2400-emulation features the driver's docstring says a 2450 in SCPI mode does not have:
    "buffer_data": "bare :TRAC:DATA? (the 2450 needs start, end): -109 on the real instrument",
    # the 2450 returns one statistic per query; these index a 2400-style 3-value list
    **{f"{s}_{q}": "indexes a list; the 2450 :TRAC:STAT query returns one value"
       for s in ("mean", "max", "min", "std") for q in ("voltage", "current", "resistance")},
    "options": "*OPT? is not a 2450 common command",
}


def test_pymeasure_keithley2450(dendrosim_rm, error_queue, quiet) -> None:
    keithley = pytest.importorskip("pymeasure.instruments.keithley")
    k = keithley.Keithley2450(K2450, visa_library="@dendrosim")
    try:
        values = read_properties(k, PYMEASURE_2450_SKIP)
        assert values["id"].startswith("KEITHLEY INSTRUMENTS,MODEL 2450")
        assert values["wires"] == 2 and values["current_filter_state"] == 0
        assert values["resistance_range"] == pytest.approx(2e5)
        k.reset()
        k.apply_voltage(compliance_current=1e-4)
        k.measure_current(nplc=0.1)
        k.current_filter_type, k.current_filter_count = "MOV", 4
        k.current_filter_state = "ON"
        assert (k.current_filter_type, k.current_filter_count) == ("MOV", 4)
        k.write(":TRAC:CLE")
        k.enable_source()
        assert k.source_enabled
        readings = []
        for v in (0.1, 0.15, 0.2):  # a point-by-point sweep, the way this driver can
            k.source_voltage = v
            readings.append(k.current)
        assert all(0 < i < 1e-4 for i in readings)
        assert k.means == pytest.approx(np.mean(readings), rel=1e-5)
        assert k.maximums == pytest.approx(max(readings), rel=1e-6)
        assert k.minimums == pytest.approx(min(readings), rel=1e-6)
        assert k.standard_devs == pytest.approx(np.std(readings, ddof=1), rel=1e-4)
        k.measure_resistance(auto_range=False, resistance=2e7)
        k.wires = 4
        assert k.resistance > 0 and k.resistance_range == pytest.approx(2e7)
        k.measure_voltage()
        k.voltage_filter_type, k.voltage_filter_count = "REP", 3
        k.apply_current(compliance_voltage=1.0)
        k.source_current = 1e-7
        assert 0 < k.voltage <= 1.0
        k.current_output_off_state, k.voltage_output_off_state = "HIMP", "ZERO"
        assert (k.current_output_off_state, k.voltage_output_off_state) == ("HIMP", "ZERO")
        k.beep(1000, 0.1)
        k.use_rear_terminals()
        k.use_front_terminals()
        k.ramp_to_current(0.0, steps=3, pause=0)
        k.disable_source()
        assert k.check_errors() == []
        read_properties(k, PYMEASURE_2450_SKIP)
    finally:
        k.adapter.close()
    assert error_queue(K2450) == []


def test_qcodes_keithley2450(dendrosim_rm, error_queue, quiet) -> None:
    drivers = pytest.importorskip("qcodes.instrument_drivers.Keithley")
    k = drivers.Keithley2450("peer_k2450", K2450, visalib="@dendrosim")
    try:
        # The driver's user_delay parameters read USER<user_number>: it must be set first
        # (left at None it sends ":...:DELay:USERNone?", which no 2450 accepts); sweep_axis
        # needs a sweep set up. Both are the driver's preconditions, not instrument features.
        for name, sub in k.submodules.items():
            if name.startswith(("_source_", "_sense_")):
                sub.user_number(1)
            if name.startswith("_source_"):
                sub.sweep_setup(0.0, 0.1, 3)
        k.snapshot(update=True)
        k.reset()
        k.source.function("voltage")
        k.sense.function("current")
        k.source.limit(1e-4)
        k.sense.nplc(0.1)
        k.output_enabled(True)
        k.source.voltage(0.2)
        i = k.sense.current()
        assert 0 < i < 1e-4
        assert not k.source.limit_tripped()
        k.source.sweep_setup(0.0, 0.5, 11)
        t0 = bench_clock(dendrosim_rm)
        sweep = k.sense.sweep()
        assert len(sweep) == 11 and sweep[-1] > sweep[0] > -1e-9
        assert bench_clock(dendrosim_rm) - t0 >= 11 * 0.1 / 50  # 11 apertures of 0.1 PLC
        k.output_enabled(True)  # the sweep's trigger model ends with the output off
        with k.buffer("peerbuf", 100) as buf:
            buf.elements(["measurement", "source_value", "relative_time"])
            k.sense.count(3)
            k.sense.current()
            data = buf.get_data(1, 3)
            assert len(data) == 9 and buf.number_of_readings() == 3
        k.sense.count(1)
        k.sense.function("resistance")
        k.sense.auto_range(False)
        k.sense.range(2e7)
        assert k.sense.range() == pytest.approx(2e7)
        assert k.sense.resistance() > 0
        k.sense.auto_zero_enabled(False)
        assert k.sense.auto_zero_enabled() is False
        k.sense.function("current")
        k.source.function("current")
        k.snapshot(update=True)
        k.output_enabled(False)
        k.clear_event_register()
        k.clear_event_log()
        k.abort()
    finally:
        k.close()
    assert error_queue(K2450) == []


# ---------------------------------------------------------------------------------------------
# Keysight 33500B / 33600A


_33500B_BENCH = """\
spec: "1.1"
bench:
  seed: 1
  noise: false
  devices: {d1: {kind: dendrite, die: 0, device: 0}}
  wiring: {pulse/1: d1}
devices:
  k33522:
    eom: {TCPIP INSTR: {q: "\\n", r: "\\n"}}
    error: ERROR
    dialogues:
      - {q: "*IDN?", r: "Agilent Technologies,33522B,MY52201807,3.05-1.19-2.00-52-00"}
resources:
  TCPIP0::192.0.2.21::inst0::INSTR: {device: k33522, model: keysight_33500b, name: pulse}
"""


@pytest.fixture(params=["33622A", "33522B"])
def awg(request, dendrosim_rm, tmp_path: Path) -> Iterator[tuple[str, str, str, Any]]:
    """(model, VISA library string, address, resource manager): the packaged bench's 33622A,
    or a 33522B on a one-dendrite bench of its own."""
    if request.param == "33622A":
        yield "33622A", "@dendrosim", AWG, dendrosim_rm
        return
    path = tmp_path / "bench33500b.yaml"
    path.write_text(_33500B_BENCH)
    rm = pyvisa.ResourceManager(f"{path}@dendrosim")
    yield "33522B", f"{path}@dendrosim", AWG_33500B, rm
    rm.close()


PYMEASURE_33500_SKIP = {
    "options": "*OPT? reply format not established from the manual; left unimplemented",
}


def test_pymeasure_agilent33500(awg, quiet) -> None:
    agilent = pytest.importorskip("pymeasure.instruments.agilent")
    model, library, address, rm = awg
    a = agilent.Agilent33500(address, visa_library=library)
    try:
        values = read_properties(a, PYMEASURE_33500_SKIP)
        assert model in values["id"]
        assert values["phase"] == 0 and values["ext_trig_out"] is False
        for ch in (a.ch_1, a.ch_2):
            read_properties(ch, PYMEASURE_33500_SKIP)
        a.shape = "PULS"
        a.output_load = "INF"
        a.pulse_period = 1e-3
        a.pulse_width = 1e-4
        a.voltage_high, a.voltage_low = 1.0, 0.0
        a.burst_mode = "TRIG"
        a.burst_ncycles = 5
        a.burst_state = True
        a.trigger_source = "BUS"
        a.output = True
        t0 = bench_clock(rm)
        a.trigger()
        assert bench_clock(rm) - t0 >= 5e-3  # five 1 ms periods played on the bench
        a.phase = 90
        a.ch_2.phase = -45
        assert (a.phase, a.ch_2.phase) == (90, -45)
        a.phase_sync()
        a.ext_trig_out = True
        assert a.ext_trig_out is True
        a.display = "dendrolab"
        assert a.ask("DISP:TEXT?").strip() == '"dendrolab"'
        a.clear_display()
        a.beep()
        a.output = False
        a.data_volatile_clear()
        a.data_arb("spike", [0, 8000, 16000, 32767, 16000, 8000, 0, 0], data_format="DAC")
        a.arb_file = "spike"
        a.arb_advance = "TRIG"
        a.arb_filter = "STEP"
        assert (a.arb_advance, a.arb_filter) == ("TRIG", "STEP")
        assert a.check_errors() == []
        read_properties(a, PYMEASURE_33500_SKIP)
    finally:
        a.adapter.close()
    assert drain_errors(rm, address, "SYST:ERR?") == []


def test_qcodes_keysight33xxx(awg, quiet) -> None:
    keysight = pytest.importorskip("qcodes.instrument_drivers.Keysight")
    model, library, address, rm = awg
    cls = getattr(keysight, f"Keysight{model}")
    awg_ = cls(f"peer_{model}", address, visalib=library, silent=True)
    try:
        awg_.snapshot(update=True)
        assert awg_.sync.output() == "ON" and awg_.sync.source() == 1
        awg_.sync.output("OFF")
        awg_.sync.source(2)
        assert (awg_.sync.output(), awg_.sync.source()) == ("OFF", 2)
        ch = awg_.ch1
        ch.frequency_mode("CW")
        assert ch.frequency_mode() == "CW"
        ch.function_type("PULS")
        ch.frequency(1e3)
        ch.pulse_width(1e-4)
        ch.phase(90)
        assert ch.phase() == 90
        awg_.sync_channel_phases()
        ch.burst_mode("N Cycle")
        ch.burst_ncycles(3)
        ch.burst_state("ON")
        ch.trigger_source("BUS")
        ch.output("ON")
        t0 = bench_clock(rm)
        awg_.force_trigger()
        assert bench_clock(rm) - t0 >= 3e-3
        awg_.snapshot(update=True)
        ch.output("OFF")
        assert awg_.error() == (0, "No error")
    finally:
        awg_.close()
    assert drain_errors(rm, address, "SYST:ERR?") == []


# ---------------------------------------------------------------------------------------------
# Keysight B2900 (QCoDeS' B2962A driver: same SCPI family)


def test_qcodes_keysight_b2962a_on_b2902a(dendrosim_rm, error_queue, quiet) -> None:
    keysight = pytest.importorskip("qcodes.instrument_drivers.Keysight")
    b = keysight.KeysightB2962A("peer_b2902", B2900, visalib="@dendrosim")
    try:
        b.snapshot(update=True)
        assert b.ch1.remote_sensing() is False
        gate = b.ch2  # the synapse cell's gate: open the transistor
        gate.source_mode("voltage")
        gate.source_voltage(1.5)
        gate.enable(1)
        ch = b.ch1
        ch.source_mode("voltage")
        ch.current_limit(1e-3)
        ch.source_voltage(0.3)
        ch.remote_sensing(True)
        assert ch.remote_sensing() is True
        ch.enable(1)
        assert ch.voltage() == pytest.approx(0.3, abs=1e-6)
        i = ch.current()
        assert 0 < i <= 1e-3
        r = ch.resistance()
        assert math.isfinite(r) and r > 0
        ch.source_mode("current")
        ch.voltage_limit(1.0)
        ch.source_current(1e-7)
        assert ch.source_current() == pytest.approx(1e-7)
        b.snapshot(update=True)
        ch.enable(0)
        gate.enable(0)
    finally:
        b.close()
    assert error_queue(B2900) == []


# ---------------------------------------------------------------------------------------------


def test_quiet_fixture_would_catch_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """The WARNING check is live: a driver-style warning record is seen by the same filter."""
    caplog.set_level(logging.WARNING)
    logging.getLogger("qcodes.instrument.base").warning("Snapshot: Could not update parameter")
    assert [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_error_queue_helper_reports_a_rejected_command(dendrosim_rm) -> None:
    """The queue check can fail: a command the 2450 rejects shows up in it."""
    res = dendrosim_rm.open_resource(K2450)
    res.write(":STAT:MEAS:ENAB 512")  # 2400 emulation only: not a 2450 SCPI command
    res.close()
    errors: Callable[[], list[str]] = lambda: drain_errors(dendrosim_rm, K2450)  # noqa: E731
    assert errors() == ['-113,"Undefined header"']
    assert errors() == []

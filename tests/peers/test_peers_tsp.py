"""Peer drivers for our TSP instruments run unchanged on ``@dendrosim``.

QCoDeS ``Keithley2636B`` and PyMeasure ``Keithley2600`` drive the packaged bench's 2636B: connect,
read every parameter, source, measure, sweep, close; afterwards the instrument's error queue is
empty and nothing was logged at WARNING or above. Neither library has a 707B driver (QCoDeS has
the S46 and 3706A switches, PyMeasure no Keithley switch matrix), so the 707B's slot attributes
are exercised over a plain pyvisa session.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import pytest

pyvisa = pytest.importorskip("pyvisa")

K2636 = "TCPIP0::192.0.2.12::inst0::INSTR"
K707B = "GPIB0::16::INSTR"
# ``dendrosim_rm`` (a reset ``ResourceManager("@dendrosim")``) comes from tests/peers/conftest.py.


def error_count(rm: pyvisa.ResourceManager, address: str) -> int:
    """``errorqueue.count`` over a plain pyvisa session, listing the entries if any."""
    raw = rm.open_resource(address, read_termination="\n", write_termination="\n")
    try:
        count = int(float(raw.query("print(errorqueue.count)")))
        entries = [raw.query("print(errorqueue.next())") for _ in range(count)]
        assert not entries, entries
        return count
    finally:
        raw.close()


def no_warnings(caplog: pytest.LogCaptureFixture) -> None:
    loud = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.WARNING]
    assert not loud, loud


# -- QCoDeS ----------------------------------------------------------------------------------------


@pytest.fixture
def qcodes_k2636(dendrosim_rm: pyvisa.ResourceManager) -> Iterator[object]:
    pytest.importorskip("qcodes")
    from qcodes.instrument import Instrument
    from qcodes.instrument_drivers.Keithley import Keithley2636B

    inst = Keithley2636B("soma_smu", K2636, visalib="@dendrosim")
    yield inst
    Instrument.close_all()


@pytest.mark.filterwarnings("error")
def test_qcodes_keithley2636b(
    qcodes_k2636, dendrosim_rm: pyvisa.ResourceManager, caplog: pytest.LogCaptureFixture
) -> None:
    from qcodes.dataset import LinSweep
    from qcodes.instrument_drivers.Keithley._Keithley_2600 import (
        Keithley2600MeasurementStatus as Status,
    )

    caplog.set_level(logging.WARNING)
    k = qcodes_k2636
    assert k.model == "2636B"
    snap = k.snapshot(update=True)
    for ch in ("smua", "smub"):
        params = snap["submodules"][ch]["parameters"]
        assert params["four_wire_measurement"]["value"] is False
        assert params["linefreq"]["value"] == 50
        assert params["limiti"]["value"] == pytest.approx(0.1)

    a = k.smua
    a.four_wire_measurement(True)
    assert a.four_wire_measurement() is True
    a.four_wire_measurement(False)
    a.mode("voltage")
    a.nplc(0.1)
    a.sourcerange_v(2)
    assert a.sourcerange_v() == 2 and a.source_autorange_v_enabled() is False
    a.measurerange_i(1e-6)
    assert a.measurerange_i() == pytest.approx(1e-6)
    a.measure_autorange_i_enabled(True)
    a.limiti(1e-4)
    a.output(True)
    a.volt(0.3)
    i = a.curr()
    assert 0 < i < 1e-4
    assert a.curr.measurement_status is Status.NORMAL
    assert a.volt() == pytest.approx(0.3)
    assert a.res() == pytest.approx(0.3 / a.curr(), rel=0.2)

    a.mode("current")  # 100 uA into the soma with a 20 mV limit: voltage compliance
    a.limitv(0.02)
    a.curr(1e-4)
    assert a.volt() == pytest.approx(0.02)
    assert a.volt.measurement_status is Status.VOLTAGE_COMPLIANCE_ERROR
    a.limitv(20)
    a.mode("voltage")

    a.setup_fastsweep(LinSweep(a.volt, 0.0, 0.3, 25, 0.0))
    sweep = a.fastsweep()
    assert sweep.shape == (25,)
    assert sweep[0] == pytest.approx(0.0, abs=1e-12) and np.all(np.diff(sweep) > 0)

    a.timetrace_npts(20)
    a.timetrace_dt(0.05)  # longer than the 0.1 PLC aperture: no QCoDeS warning
    trace = a.timetrace()
    assert trace.shape == (20,) and np.all(trace > 0)

    b = k.smub
    b.mode("current")
    b.limitv(2)
    b.curr(1e-7)
    b.output(True)
    assert 0 < b.volt() < 2
    assert b.volt.measurement_status is Status.NORMAL
    b.curr(0.0)

    k.display_settext("dendrolab")
    k.display_clear()
    k.display_normal()
    k.exit_key()
    k.reset()
    assert a.output() is False and a.four_wire_measurement() is False
    assert error_count(dendrosim_rm, K2636) == 0
    no_warnings(caplog)


# -- PyMeasure -------------------------------------------------------------------------------------

# PyMeasure's own deprecation notice for Keithley2600 (SCPIUnknownMixin), raised on every
# construction; it is about the driver class, not the instrument.
SCPI_UNKNOWN = (
    "ignore:It is not known whether this device support SCPI commands or not:FutureWarning"
)


@pytest.fixture
def pymeasure_k2600(dendrosim_rm: pyvisa.ResourceManager) -> Iterator[object]:
    pytest.importorskip("pymeasure")
    from pymeasure.instruments.keithley import Keithley2600

    inst = Keithley2600(K2636, visa_library="@dendrosim")
    yield inst
    inst.adapter.close()


QUERIES = (
    "source_output", "source_mode", "current", "source_current", "compliance_current",
    "source_current_range", "current_range", "voltage", "source_voltage", "compliance_voltage",
    "source_voltage_range", "voltage_range", "resistance", "wires_mode",
)  # fmt: skip


@pytest.mark.filterwarnings("error", SCPI_UNKNOWN)  # later filters take precedence
def test_pymeasure_keithley2600(
    pymeasure_k2600,
    dendrosim_rm: pyvisa.ResourceManager,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pymeasure.instruments.keithley import keithley2600

    caplog.set_level(logging.WARNING)
    monkeypatch.setattr(keithley2600.time, "sleep", lambda s: None)  # ramps pause in wall time
    k = pymeasure_k2600
    assert k.id == "Keithley Instruments Inc., Model 2636B, 4308079, 3.2.2"
    for ch in (k.ChA, k.ChB):
        values = {name: getattr(ch, name) for name in QUERIES}
        assert values["wires_mode"] == "2" and values["source_output"] == "OFF"
        assert values["source_mode"] == "voltage"
        # measure_nplc is read too; PyMeasure maps its value through a list (map_values with a
        # range), so the number it returns is not the instrument's (a PyMeasure bug).
        ch.measure_nplc  # noqa: B018
    assert k.next_error == (0, "Queue Is Empty")

    a = k.ChA
    a.wires_mode = "4"
    assert a.wires_mode == "4"
    a.wires_mode = "2"
    a.apply_voltage(compliance_current=1e-4)
    a.measure_current(nplc=0.1)
    a.source_output = "ON"
    a.source_voltage = 0.3
    assert a.source_voltage == pytest.approx(0.3)
    assert 0 < a.current < 1e-4
    a.voltage_range = 2
    a.ramp_to_voltage(0.2, steps=3, pause=0)
    assert a.voltage == pytest.approx(0.2)
    a.auto_range_source()
    a.shutdown()
    assert a.source_output == "OFF"

    b = k.ChB
    b.apply_current(compliance_voltage=2)
    b.measure_voltage(nplc=0.1)
    b.source_current = 1e-5  # PyMeasure writes %f: smaller currents would be sent as 0
    b.source_output = "ON"
    assert 0 < b.voltage <= 2
    b.shutdown()  # ramps the current to 0 A, then output off
    assert b.source_output == "OFF" and b.source_current == 0

    assert k.check_errors() == []
    assert error_count(dendrosim_rm, K2636) == 0
    no_warnings(caplog)


# -- 707B: no peer driver; its slot attributes over plain pyvisa ---------------------------------


@pytest.mark.filterwarnings("error")
def test_707b_slot_attributes(dendrosim_rm: pyvisa.ResourceManager) -> None:
    m = dendrosim_rm.open_resource(K707B, read_termination="\n", write_termination="\n")
    try:
        card = "7174,8x12 Low Current Matrix,01.00a,00000000"
        for n in range(1, 7):
            assert m.query(f"print(slot[{n}].idn)") == card
        assert m.query("print(slot[7], slot[1].pseudocard, slot.PSEUDO_NONE)") == (
            "nil\tnil\t0.00000e+00"
        )
        assert m.query("print(errorqueue.count)") == "0.00000e+00"
        m.write("slot[1].pseudocard = slot.PSEUDO_NONE")  # a card is installed: refused
        assert m.query("print(errorqueue.count)") == "1.00000e+00"
        assert m.query("print(errorqueue.next())").startswith("-2.21000e+02\t")
    finally:
        m.close()

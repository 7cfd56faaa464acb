"""The ``@dendrosim`` pyvisa backend end to end: discovery, the default bench, real drivers.

These go through real pyvisa: ResourceManager, Resource.write/query/read_raw and our drivers.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import pyvisa
from pyvisa import constants, errors, rname

from dendrolab.errors import ParameterError
from instruments.factory import connect
from sim_backend.visa import DendroSimVisaLibrary, _block_incomplete, default_bench_path

SMU = "USB0::0x05E6::0x2450::04488850::INSTR"
AWG = "TCPIP0::192.0.2.11::inst0::INSTR"
TSP_SMU = "TCPIP0::192.0.2.12::inst0::INSTR"
B2900 = "TCPIP0::192.0.2.13::inst0::INSTR"
MATRIX = "GPIB0::16::INSTR"


@pytest.fixture
def rm():
    """The packaged bench, reset to a fresh state for each test."""
    manager = pyvisa.ResourceManager("@dendrosim")
    manager.visalib.reset()
    yield manager
    for res in list(manager.list_opened_resources()):
        res.close()
    manager.visalib.reset()


def test_backend_is_discovered_by_name():
    assert "dendrosim" in pyvisa.highlevel.list_backends()


def test_default_bench_lists_real_addresses(rm):
    listed = rm.list_resources()
    for address in (SMU, AWG, TSP_SMU, B2900, MATRIX):
        assert rname.to_canonical_name(address) in listed


def test_pyvisa_library_env_var_selects_backend(monkeypatch):
    monkeypatch.setenv("PYVISA_LIBRARY", f"{default_bench_path()}@dendrosim")
    manager = pyvisa.ResourceManager()
    assert isinstance(manager.visalib, DendroSimVisaLibrary)


def test_idn_comes_from_the_yaml_and_models_answer(rm):
    smu = rm.open_resource(SMU, read_termination="\n", write_termination="\n")
    assert smu.query("*IDN?") == "KEITHLEY INSTRUMENTS,MODEL 2450,04488850,1.7.3c"
    assert float(smu.query(":sour:volt 0.25;:SOURce:VOLTage?")) == 0.25


def test_compound_queries_return_one_message(rm):
    smu = rm.open_resource(SMU, read_termination="\n", write_termination="\n")
    reply = smu.query("*IDN?;:SYST:ERR?")
    assert reply.count(";") == 1 and reply.endswith('"No error"')


def test_bad_command_gives_no_reply_and_an_error_entry(rm):
    smu = rm.open_resource(SMU, read_termination="\n", write_termination="\n")
    smu.write(":SOUR:BOGUS 1")
    with pytest.raises(errors.VisaIOError) as info:
        smu.read()
    assert info.value.error_code == constants.VI_ERROR_TMO
    assert smu.query(":SYST:ERR?").startswith("-113")


def test_device_clear_drops_pending_replies_and_keeps_settings_and_errors(rm):
    """viClear (QCoDeS calls it on connect): unread replies go, settings and errors stay."""
    smu = rm.open_resource(SMU, read_termination="\n", write_termination="\n")
    smu.write(":SOUR:VOLT 0.3;:SOUR:BOGUS")
    smu.write("*IDN?")
    smu.clear()
    with pytest.raises(errors.VisaIOError):
        smu.read()  # the *IDN? reply was dropped
    assert float(smu.query(":SOUR:VOLT?")) == 0.3
    assert smu.query(":SYST:ERR?").startswith("-113")


def test_empty_read_fails_fast_even_with_long_timeout(rm, monkeypatch):
    """Nothing to read: the time-out error comes at once, without waiting (pyvisa-sim itself
    polls the clock until the timeout runs out; any such wait would hit the patched clock)."""
    import time

    smu = rm.open_resource(SMU, read_termination="\n", write_termination="\n", timeout=5000)

    def no_waiting(*_args: object) -> float:
        raise AssertionError("the read waited")

    for name in ("sleep", "time", "monotonic", "perf_counter"):
        monkeypatch.setattr(time, name, no_waiting)
    with pytest.raises(errors.VisaIOError) as err:
        smu.read()
    assert err.value.error_code == constants.VI_ERROR_TMO


def test_large_reply_is_read_in_chunks(rm):
    smu = rm.open_resource(SMU, read_termination="\n", write_termination="\n")
    smu.chunk_size = 1024
    smu.write(':SOUR:SWE:VOLT:LIN 0,0.5,2000,0,1,BEST,OFF,OFF,"defbuffer1"')
    smu.write(":INIT")
    assert smu.query("*OPC?") == "1"
    values = smu.query_ascii_values(':TRAC:DATA? 1,2000,"defbuffer1",SOUR,READ')
    assert len(values) == 4000
    np.testing.assert_allclose(values[0::2], np.linspace(0, 0.5, 2000), rtol=1e-6, atol=1e-12)


def test_output_buffers_are_per_session(rm):
    a = rm.open_resource(SMU, read_termination="\n", write_termination="\n")
    b = rm.open_resource(SMU, read_termination="\n", write_termination="\n")
    a.write("*IDN?")
    with pytest.raises(errors.VisaIOError):
        b.read()
    assert a.read().startswith("KEITHLEY")


def test_pulses_from_the_awg_raise_the_current_the_smu_reads_then_it_relaxes(rm):
    """Drivers on both instruments share the dendrite d1 through the bench wiring."""
    smu = connect(rm.open_resource(SMU))
    awg = connect(rm.open_resource(AWG))
    smu.configure_source_voltage(limit_a=1e-3)
    smu.configure_measure(nplc=0.01)
    smu.set_voltage(0.2)
    smu.output_on()
    before = smu.measure_current()
    awg.pulse_train(5.0, 100e-6, 200e-6, 20)
    awg.output_on()
    t0 = rm.visalib.bench.now_s
    awg.trigger()
    assert rm.visalib.bench.now_s - t0 >= 20 * 200e-6 - 1e-12
    after = smu.measure_current()
    assert after > 3 * before
    rm.visalib.bench.advance(30e-3)               # the device relaxes while nobody acts
    relaxed = smu.measure_current()
    assert relaxed < 1.3 * before
    smu.safe_state()
    awg.safe_state()
    assert rm.visalib.bench.levels == {}


def test_reset_gives_a_fresh_bench_even_for_open_sessions(rm):
    smu = rm.open_resource(SMU, read_termination="\n", write_termination="\n")
    smu.write(":SOUR:VOLT 1.5")
    old = rm.visalib.bench
    rm.visalib.reset()
    assert rm.visalib.bench is not old and rm.visalib.bench.now_s == 0.0
    assert float(smu.query(":SOUR:VOLT?")) == 0.0


def test_tsp_instruments_receive_whole_messages(rm):
    k26 = rm.open_resource(TSP_SMU, read_termination="\n", write_termination="\n")
    k26.write("smua.source.levelv = 0.5; smua.source.limiti = 1e-3")
    assert float(k26.query("print(smua.source.levelv)")) == 0.5


def test_same_yaml_loads_under_plain_sim():
    manager = pyvisa.ResourceManager(f"{default_bench_path()}@sim")
    try:
        smu = manager.open_resource(SMU, read_termination="\n", write_termination="\n")
        assert smu.query("*IDN?").startswith("KEITHLEY INSTRUMENTS,MODEL 2450")
        assert smu.query(":READ?") == "ERROR"          # plain pyvisa-sim has no physics
    finally:
        manager.close()


def _bench_file(tmp_path, body: str):
    path = tmp_path / "bench.yaml"
    path.write_text(textwrap.dedent(body))
    return path


def test_unknown_model_in_bench_yaml_is_refused(tmp_path):
    path = _bench_file(tmp_path, """\
        spec: "1.1"
        devices:
          x:
            eom: {USB INSTR: {q: "\\n", r: "\\n"}}
            dialogues: [{q: "*IDN?", r: "X"}]
        resources:
          USB0::1::2::3::INSTR: {device: x, model: "os:system", name: evil}
        """)
    with pytest.raises(ParameterError, match="unknown simulated instrument model 'os:system'"):
        DendroSimVisaLibrary(str(path))


def test_model_without_terminal_name_is_refused(tmp_path):
    path = _bench_file(tmp_path, """\
        spec: "1.1"
        devices:
          x:
            eom: {USB INSTR: {q: "\\n", r: "\\n"}}
            dialogues: [{q: "*IDN?", r: "KEITHLEY INSTRUMENTS,MODEL 2450,1,1"}]
        resources:
          USB0::1::2::4::INSTR: {device: x, model: keithley2450}
        """)
    with pytest.raises(ParameterError, match="needs a 'name'"):
        DendroSimVisaLibrary(str(path))


@pytest.mark.parametrize(("buf", "incomplete"), [
    (b":DATA:ARB x,#15ab\n", True),
    (b":DATA:ARB x,#15ab\ncd\n", False),
    (b'"#9 in a string"\n', False),
    (b":DATA #210" + b"\n" * 10 + b"\n", False),
    (b":DATA #2", True),
])
def test_definite_blocks_may_contain_the_terminator(buf, incomplete):
    assert _block_incomplete(buf) is incomplete


def test_library_presents_a_real_path(rm):
    """``@dendrosim`` names its bench file as its library path, never pyvisa-sim's ``unset``."""
    path = rm.visalib.library_path
    assert str(path) == str(default_bench_path())
    assert str(path) != "unset"


def test_closing_a_pymeasure_instrument_leaves_other_sessions_open(rm):
    """PyMeasure closes the whole ResourceManager when the library path reads ``unset`` (its
    pyvisa-sim workaround); on ``@dendrosim`` every other open session must keep working."""
    keithley = pytest.importorskip("pymeasure.instruments.keithley")
    ours = rm.open_resource(TSP_SMU, read_termination="\n", write_termination="\n")
    theirs = keithley.Keithley2450(SMU, visa_library="@dendrosim")
    assert "2450" in theirs.id
    theirs.adapter.close()
    assert "2636B" in ours.query("*IDN?")
    assert rm.session is not None

"""Bench configuration loader and InstrumentSet lifetime (one RM, shared resources, teardown)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyvisa import constants
from pyvisa.errors import VisaIOError

from dendrolab.errors import InstrumentError, ParameterError
from instruments import InstrumentSet, PulseGenerator, Smu, SwitchMatrix, load_bench_config
from instruments.bench_config import parse_bench_config
from instruments.smu import K2450
from tests.instruments import FakeResource, FakeResourceManager

K2450_ADDR = "USB0::0x05E6::0x2450::04488850::INSTR"
K2636_ADDR = "GPIB0::26::INSTR"
AWG_ADDR = "TCPIP0::192.0.2.11::inst0::INSTR"
MATRIX_ADDR = "GPIB0::16::INSTR"

VALID = f"""
visa_library: "sim.yaml@dendrosim"
instruments:
  smu:
    address: "{K2450_ADDR}"
    model: "2450"
    limits: {{voltage_min_v: -2, voltage_max_v: 2, current_max_a: 1e-3}}  # a string to PyYAML
    options: {{line_frequency_hz: 60}}
  soma_smu:
    address: "{K2636_ADDR}"
    channel: 2
  dendrite_smu:
    address: "{K2636_ADDR}"
    channel: 1
    timeout_ms: 20000
  pulse:
    address: "{AWG_ADDR}"
    model: 33622A
    limits: {{voltage_min_v: -1.5, voltage_max_v: 1.5}}
  matrix:
    address: "{MATRIX_ADDR}"
"""

IDNS = {
    K2450_ADDR: "KEITHLEY INSTRUMENTS,MODEL 2450,04488850,1.7.3c",
    K2636_ADDR: "Keithley Instruments Inc., Model 2636B, 4308079, 3.2.2",
    AWG_ADDR: "Keysight Technologies,33622A,MY53804342,A.02.00-2.25-03-64-02",
    MATRIX_ADDR: "Keithley Instruments Inc., Model 707B, 01234567, 1.4.1",
}


#: What every session hears before its safe state (``Instrument.resync``'s check).
RESYNC = ["*IDN?", "*OPC?"]


def write(tmp_path: Path, text: str, name: str = "bench.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def fake_bench(idns=IDNS):
    resources = {
        addr: FakeResource({"*IDN?": idn}, resource_name=addr) for addr, idn in idns.items()
    }
    made: list[FakeResourceManager] = []

    def factory(library: str) -> FakeResourceManager:
        made.append(FakeResourceManager(library, resources))
        return made[-1]

    return resources, made, factory


def test_valid_config(tmp_path):
    (tmp_path / "sim.yaml").write_text("spec: '1.1'\n", encoding="utf-8")
    config = load_bench_config(write(tmp_path, VALID))
    assert config.visa_library == f"{(tmp_path / 'sim.yaml').resolve()}@dendrosim"
    assert list(config.roles) == ["smu", "soma_smu", "dendrite_smu", "pulse", "matrix"]
    smu = config.role("smu")
    assert smu.address == K2450_ADDR and smu.model == "2450" and smu.channel == 1
    assert smu.limits.voltage_max_v == 2.0 and smu.limits.current_max_a == 1e-3
    assert smu.options == {"line_frequency_hz": 60}
    assert config.role("soma_smu").channel == 2
    assert config.role("dendrite_smu").timeout_ms == 20000.0
    assert config.role("pulse").model == "33622A"


def test_library_strings_without_a_local_file_are_kept():
    for library in ("@py", "", "missing.yaml@sim", "/abs/bench.yaml@dendrosim"):
        data = {"visa_library": library, "instruments": {"smu": {"address": K2450_ADDR}}}
        assert parse_bench_config(data, base_dir=Path("/nonexistent")).visa_library == library


def test_unknown_role(tmp_path):
    config = load_bench_config(write(tmp_path, VALID))
    with pytest.raises(ParameterError, match=r"unknown role 'probe'.*'matrix'"):
        config.role("probe")
    _, _, factory = fake_bench()
    with InstrumentSet(config, rm_factory=factory) as bench:
        with pytest.raises(ParameterError, match="unknown role 'probe'"):
            bench["probe"]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("instruments: [unclosed", "not valid YAML"),
        ("instruments:\n  smu: {address: 'x'\n", "not valid YAML"),
        ("- just\n- a list\n", "expected a mapping"),
        ("visa_library: '@py'\n", "'instruments' must map"),
        ("instruments: {}\n", "'instruments' must map"),
        ("instrument: {smu: {address: x}}\n", r"unknown key\(s\) \['instrument'\]"),
        ("visa_library: 3\ninstruments: {smu: {address: x}}\n", "visa_library must be"),
        ("instruments: {smu: {model: '2450'}}\n", r"instruments.smu: missing 'address'"),
        ("instruments: {smu: {address: ''}}\n", "missing 'address'"),
        ("instruments: {smu: 'USB0::1::INSTR'}\n", "expected a mapping with at least 'address'"),
        ("instruments: {smu: {address: x, model: K9999}}\n", "unknown model 'K9999'"),
        ("instruments: {smu: {address: x, chanel: 2}}\n", r"unknown key\(s\) \['chanel'\]"),
        ("instruments: {smu: {address: x, channel: 0}}\n", "channel: expected a positive"),
        ("instruments: {smu: {address: x, channel: true}}\n", "channel: expected a positive"),
        ("instruments: {smu: {address: x, timeout_ms: -1}}\n", "timeout_ms"),
        ("instruments: {smu: {address: x, timeout_ms: soon}}\n", "timeout_ms"),
        ("instruments: {smu: {address: x, limits: [1]}}\n", "limits: expected a mapping"),
        ("instruments: {smu: {address: x, limits: {volts: 1}}}\n", r"unknown key\(s\) \['volts'\]"),
        ("instruments: {smu: {address: x, limits: {voltage_max_v: hi}}}\n", "expected a number"),
        (
            "instruments: {smu: {address: x, limits: {voltage_min_v: 2, voltage_max_v: 1}}}\n",
            "must not exceed",
        ),
        ("instruments: {smu: {address: x, limits: {current_max_a: 0}}}\n", "must be positive"),
        ("instruments: {smu: {address: x, options: [1]}}\n", "options: expected a mapping"),
        ("instruments: {'bad role': {address: x}}\n", "role names are identifiers"),
    ],
)
def test_bad_configs_are_clear_errors(tmp_path, text, match):
    with pytest.raises(ParameterError, match=match):
        load_bench_config(write(tmp_path, text))


def test_missing_file(tmp_path):
    with pytest.raises(ParameterError, match="cannot read"):
        load_bench_config(tmp_path / "nope.yaml")


def test_instrument_set_opens_identifies_and_shares_a_resource(tmp_path):
    resources, made, factory = fake_bench()
    config = load_bench_config(write(tmp_path, VALID))
    with InstrumentSet(config, rm_factory=factory) as bench:
        (rm,) = made
        assert rm.visa_library == "sim.yaml@dendrosim"
        assert rm.opened == [K2450_ADDR, K2636_ADDR, AWG_ADDR, MATRIX_ADDR]
        assert isinstance(bench["smu"], Smu) and bench["smu"].line_frequency_hz == 60.0
        assert bench["soma_smu"].resource is bench["dendrite_smu"].resource
        assert (bench["soma_smu"].channel, bench["dendrite_smu"].channel) == (2, 1)
        assert isinstance(bench["pulse"], PulseGenerator)
        assert bench["pulse"].limits.voltage_max_v == 1.5
        assert isinstance(bench["matrix"], SwitchMatrix)
        assert bench.identities()["soma_smu"].model == "2636B"
        assert resources[K2636_ADDR].timeout == 20000.0
        assert resources[K2636_ADDR].commands == ["*IDN?"]  # identified once for two roles
        for fake in resources.values():
            fake.clear_traffic()
    # teardown: each session resynchronised once (a shared one too), safe state on every role,
    # then every resource closed, then the RM
    assert resources[MATRIX_ADDR].commands == [*RESYNC, 'channel.open("allslots")']
    assert resources[AWG_ADDR].commands == [*RESYNC, "OUTP1 OFF"]
    assert resources[K2636_ADDR].commands[:2] == RESYNC
    assert resources[K2636_ADDR].commands.count("*IDN?") == 1
    assert resources[K2636_ADDR].commands[-1] == "smua.source.output = smua.OUTPUT_OFF"
    assert "smub.source.output = smub.OUTPUT_OFF" in resources[K2636_ADDR].commands
    assert resources[K2450_ADDR].commands[-1] == ":OUTP OFF"
    assert all(fake.closed for fake in resources.values())
    assert made[0].closed


def test_expected_model_mismatch_closes_everything(tmp_path):
    idns = dict(IDNS)
    idns[AWG_ADDR] = "Agilent Technologies,33522A,MY50002453,5.02-1.19-2.00-58-00"
    resources, made, factory = fake_bench(idns)
    config = load_bench_config(write(tmp_path, VALID))
    with pytest.raises(InstrumentError, match=r"role 'pulse': .*expected model '33622A'"):
        InstrumentSet(config, rm_factory=factory).open()
    assert made[0].opened == [K2450_ADDR, K2636_ADDR, AWG_ADDR]  # stopped at the bad role
    assert [fake.closed for fake in resources.values()] == [True, True, True, False]
    assert resources[K2450_ADDR].commands[-1] == ":OUTP OFF"  # opened roles made safe
    assert made[0].closed


def test_unreachable_address_is_an_instrument_error(tmp_path):
    idns = {k: v for k, v in IDNS.items() if k != MATRIX_ADDR}
    resources, made, factory = fake_bench(idns)
    config = load_bench_config(write(tmp_path, VALID))
    with pytest.raises(InstrumentError, match=r"role 'matrix': cannot open 'GPIB0::16::INSTR'"):
        InstrumentSet(config, rm_factory=factory).open()
    assert made[0].closed and all(fake.closed for fake in resources.values())


def test_unknown_instrument_on_the_bus(tmp_path):
    idns = dict(IDNS)
    idns[MATRIX_ADDR] = "ACME,WIDGET,1,1"
    _, made, factory = fake_bench(idns)
    config = load_bench_config(write(tmp_path, VALID))
    with pytest.raises(InstrumentError, match=r"role 'matrix': .*'WIDGET'"):
        InstrumentSet(config, rm_factory=factory).open()
    assert made[0].closed


def test_visa_library_that_cannot_load(tmp_path):
    def factory(library):
        raise OSError("no such backend")

    config = load_bench_config(write(tmp_path, VALID))
    with pytest.raises(InstrumentError, match="cannot load VISA library"):
        InstrumentSet(config, rm_factory=factory).open()


def test_close_survives_broken_instruments(tmp_path):
    resources, made, factory = fake_bench()
    config = load_bench_config(write(tmp_path, VALID))
    bench = InstrumentSet(config, rm_factory=factory).open()
    for fake in resources.values():
        fake.broken = True
    bench.close()
    bench.close()  # idempotent
    assert made[0].closed and all(fake.closed for fake in resources.values())


def test_settings_of_the_whole_set(tmp_path):
    _, _, factory = fake_bench({MATRIX_ADDR: IDNS[MATRIX_ADDR]})
    data = {"instruments": {"matrix": {"address": MATRIX_ADDR}}}
    with InstrumentSet(parse_bench_config(data), rm_factory=factory) as bench:
        bench["matrix"].resource.replies['print(channel.getclose("allslots"))'] = "nil"
        snap = bench.settings()
        assert snap["matrix"]["identity"]["model"] == "707B"
        assert snap["matrix"]["instrument"] == {"closed": "nil"}
        assert list(bench) == ["matrix"] and "matrix" in bench and bench.roles == ["matrix"]


def test_default_factory_uses_pyvisa(tmp_path):
    """The real pyvisa path: a pyvisa-sim library whose resource is not an instrument we know."""
    pytest.importorskip("pyvisa_sim")
    data = {
        "visa_library": "@sim",
        "instruments": {"smu": {"address": "ASRL1::INSTR", "timeout_ms": 100}},
    }
    with pytest.raises(InstrumentError, match="role 'smu'"):
        InstrumentSet(parse_bench_config(data)).open()


SIM_YAML = """
spec: "1.1"
devices:
  k2450:
    eom:
      USB INSTR: {q: "\\n", r: "\\n"}
    error: ERROR
    dialogues:
      - {q: "*IDN?", r: "KEITHLEY INSTRUMENTS,MODEL 2450,04488850,1.7.3c"}
resources:
  USB0::0x05E6::0x2450::04488850::INSTR: {device: k2450}
"""


def test_real_pyvisa_path_with_a_pyvisa_sim_library(tmp_path):
    """Only the library string differs from a real bench; identification goes through pyvisa."""
    pytest.importorskip("pyvisa_sim")
    write(tmp_path, SIM_YAML, "sim.yaml")
    bench_text = f"""
visa_library: "sim.yaml@sim"
instruments:
  smu: {{address: "{K2450_ADDR}", model: "2450", timeout_ms: 200}}
"""
    config = load_bench_config(write(tmp_path, bench_text))
    with InstrumentSet(config) as bench:
        assert bench.identities()["smu"].serial == "04488850"
        assert isinstance(bench["smu"], Smu)
        rm = bench.rm
    assert bench.rm is None and rm is not None


# --- resynchronisation before safe state --------------------------------------------------


class QueuedResource:
    """A message-based session: each query's reply waits in an output queue until read, so a
    query cut between its write and its read leaves its reply behind (as on a real bus).
    ``device_clear`` False models a raw socket, where a VISA clear empties nothing."""

    def __init__(self, replies: dict[str, str], *, device_clear: bool = True) -> None:
        self.replies = replies
        self.device_clear = device_clear
        self.out: list[str] = []
        self.traffic: list[str] = []
        self.timeout = 2000.0
        self.read_timeouts: list[float] = []
        self.resource_name = K2450_ADDR

    def write(self, command: str) -> int:
        self.traffic.append(command)
        if command in self.replies:
            self.out.append(self.replies[command])
        return len(command)

    def read(self) -> str:
        self.read_timeouts.append(self.timeout)
        if not self.out:
            raise VisaIOError(constants.StatusCode.error_timeout)
        return self.out.pop(0)

    def query(self, command: str) -> str:
        self.write(command)
        return self.read()

    def clear(self) -> None:
        self.traffic.append("<device clear>")
        if self.device_clear:
            self.out.clear()

    def close(self) -> None:
        pass


K2450_REPLIES = {"*IDN?": IDNS[K2450_ADDR], "*OPC?": "1", ":SOUR:VOLT?": "2.000000E-01",
                 ':READ? "defbuffer1",READ,SOUR': "1.234000E-06,2.000000E-01",
                 ":SYST:ERR?": '0,"No error"'}


def _identified_smu(resource: QueuedResource) -> Smu:
    smu = Smu(resource, K2450)
    smu.identify()
    smu._mode = "v"
    resource.traffic.clear()
    return smu


def _interrupt_a_read(resource: QueuedResource) -> None:
    """What a signal between a query's write and its read leaves behind."""
    resource.write(':READ? "defbuffer1",READ,SOUR')


@pytest.mark.parametrize("device_clear", [True, False])
def test_resync_drops_the_reply_of_an_interrupted_query(device_clear):
    res = QueuedResource(K2450_REPLIES, device_clear=device_clear)
    smu = _identified_smu(res)
    _interrupt_a_read(res)
    assert smu._query(":SOUR:VOLT?") == "1.234000E-06,2.000000E-01"   # one behind: the defect
    _interrupt_a_read(res)
    res.traffic.clear()
    assert smu.resync() is True
    assert res.out == []
    assert smu._query(":SOUR:VOLT?") == "2.000000E-01"                 # in step again
    assert res.traffic[0] == "<device clear>"
    if not device_clear:  # the stale reply is read off with a short timeout, then restored
        assert min(res.read_timeouts) <= 100.0 and res.timeout == 2000.0


def test_resync_catches_a_stale_identity_reply():
    """A cut ``*IDN?`` leaves an answer that looks right; the ``*OPC?`` after it does not."""
    res = QueuedResource(K2450_REPLIES, device_clear=False)
    smu = _identified_smu(res)
    res.write("*IDN?")
    assert smu.resync() is True
    assert res.traffic.count("*IDN?") == 3 and res.out == []


def test_resync_rejects_another_instrument_and_never_raises():
    res = QueuedResource({**K2450_REPLIES}, device_clear=True)
    smu = _identified_smu(res)
    res.replies["*IDN?"] = "KEITHLEY INSTRUMENTS,MODEL 2450,99999999,1.7.3c"  # other serial
    assert smu.resync(attempts=3) is False
    assert res.traffic.count("*IDN?") == 3                           # bounded, then gives up


def test_safe_state_ramps_from_the_real_level_after_an_interrupted_query(tmp_path):
    """InstrumentSet.safe_state resyncs first: the ramp starts at the level really sourced."""
    res = QueuedResource(K2450_REPLIES, device_clear=True)
    config = parse_bench_config({"instruments": {"smu": {"address": K2450_ADDR}}})
    with InstrumentSet(config, rm_factory=lambda _lib: FakeResourceManager("", {
            K2450_ADDR: res})) as bench:
        bench["smu"]._mode = "v"
        _interrupt_a_read(res)
        res.traffic.clear()
        bench.safe_state()
        ramp = [c for c in res.traffic if c.startswith(":SOUR:VOLT ")]
        assert ramp == [":SOUR:VOLT 0.16", ":SOUR:VOLT 0.12", ":SOUR:VOLT 0.08",
                        ":SOUR:VOLT 0.04", ":SOUR:VOLT 0"]
        assert res.traffic[-1] == ":OUTP OFF"

"""Identification: real *IDN? variants map to the right driver and table row."""

from __future__ import annotations

import pytest

from dendrolab.errors import InstrumentError, ParameterError
from instruments import PulseGenerator, Smu, SwitchMatrix, connect, open_instrument
from instruments.base import Identity, split_idn
from instruments.smu import K2450
from tests.instruments import FakeResource, FakeResourceManager

REAL_IDNS = [
    (
        "KEITHLEY INSTRUMENTS,MODEL 2450,04488850,1.7.3c",
        Smu,
        "Keithley 2450",
        Identity("KEITHLEY INSTRUMENTS", "2450", "04488850", "1.7.3c"),
    ),
    (
        "KEITHLEY INSTRUMENTS INC.,MODEL 2450,01234567,1.0.0i",
        Smu,
        "Keithley 2450",
        Identity("KEITHLEY INSTRUMENTS INC.", "2450", "01234567", "1.0.0i"),
    ),
    (
        "Keithley Instruments Inc., Model 2636B, 4308079, 3.2.2",
        Smu,
        "Keithley 2612B/2614B/2634B/2636B",
        Identity("Keithley Instruments Inc.", "2636B", "4308079", "3.2.2"),
    ),
    (
        "Keithley Instruments Inc., Model 2604B, 04089762, 4.0.8",
        Smu,
        "Keithley 2602B/2604B",
        Identity("Keithley Instruments Inc.", "2604B", "04089762", "4.0.8"),
    ),
    (
        "Keysight Technologies,B2902A,MY51143745,3.4.2011.5100",
        Smu,
        "Keysight B2902/B2912",
        Identity("Keysight Technologies", "B2902A", "MY51143745", "3.4.2011.5100"),
    ),
    (
        "Agilent Technologies,B2902A,MY51143745,2.0.1225.1",
        Smu,
        "Keysight B2902/B2912",
        Identity("Agilent Technologies", "B2902A", "MY51143745", "2.0.1225.1"),
    ),
    (
        "Keysight Technologies,B2911A,MY12345678,3.4.2011.5100",
        Smu,
        "Keysight B2901/B2911",
        Identity("Keysight Technologies", "B2911A", "MY12345678", "3.4.2011.5100"),
    ),
    (
        "Agilent Technologies,33522A,MY50002453,5.02-1.19-2.00-58-00",
        PulseGenerator,
        "Keysight 33500 (2 channels)",
        Identity("Agilent Technologies", "33522A", "MY50002453", "5.02-1.19-2.00-58-00"),
    ),
    (
        "Agilent Technologies,33510B,MY52201807,3.05-1.19-2.00-52-00",
        PulseGenerator,
        "Keysight 33500 (2 channels)",
        Identity("Agilent Technologies", "33510B", "MY52201807", "3.05-1.19-2.00-52-00"),
    ),
    (
        "Keysight Technologies,33622A,MY53804342,A.02.00-2.25-03-64-02",
        PulseGenerator,
        "Keysight 33600A (2 channels)",
        Identity("Keysight Technologies", "33622A", "MY53804342", "A.02.00-2.25-03-64-02"),
    ),
    (
        "Agilent Technologies,33622A,MY53804342,A.02.00-2.25-03-64-02",
        PulseGenerator,
        "Keysight 33600A (2 channels)",
        Identity("Agilent Technologies", "33622A", "MY53804342", "A.02.00-2.25-03-64-02"),
    ),
    (
        "Keithley Instruments Inc., Model 707B, 01234567, 1.4.1",
        SwitchMatrix,
        "Keithley 707B",
        Identity("Keithley Instruments Inc.", "707B", "01234567", "1.4.1"),
    ),
]


@pytest.mark.parametrize(("idn", "cls", "spec_name", "identity"), REAL_IDNS)
def test_connect_picks_driver_from_the_model_field(idn, cls, spec_name, identity):
    fake = FakeResource({"*IDN?": idn})
    driver = connect(fake)
    assert type(driver) is cls
    assert driver.spec.name == spec_name
    assert driver.identity == identity
    assert fake.commands == ["*IDN?"]
    assert fake.read_termination == "\n"
    assert fake.write_termination == "\n"


@pytest.mark.parametrize(("idn", "cls", "spec_name", "identity"), REAL_IDNS)
def test_identify_on_a_driver_returns_the_identity_record(idn, cls, spec_name, identity):
    fake = FakeResource({"*IDN?": idn})
    driver = connect(fake)
    fake.clear_traffic()
    assert driver.identify() == identity
    assert fake.commands == ["*IDN?"]


def test_unknown_model_is_a_clear_error():
    fake = FakeResource({"*IDN?": "Tektronix,AFG3102,C012345,SCPI:99.0 FV:3.2.3"})
    with pytest.raises(InstrumentError, match=r"'AFG3102' .*not in any driver table"):
        connect(fake)


def test_identify_rejects_a_different_model_than_the_table_row():
    fake = FakeResource({"*IDN?": "Keysight Technologies,B2902A,MY51143745,3.4.2011.5100"})
    smu = Smu(fake, K2450)
    with pytest.raises(InstrumentError, match=r"B2902A.*Keithley 2450"):
        smu.identify()


def test_idn_without_a_model_field_is_rejected():
    with pytest.raises(InstrumentError, match="vendor,model"):
        split_idn("garbage")


def test_expected_model_mismatch_and_unknown_options():
    idn = "KEITHLEY INSTRUMENTS,MODEL 2450,04488850,1.7.3c"
    with pytest.raises(InstrumentError, match="expected model 'B2902A'"):
        connect(FakeResource({"*IDN?": idn}), expected_model="B2902A")
    assert connect(FakeResource({"*IDN?": idn}), expected_model="MODEL 2450").identity
    with pytest.raises(ParameterError, match="unsupported driver option"):
        connect(FakeResource({"*IDN?": idn}), load_ohm=50)


def test_missing_channel_is_rejected():
    fake = FakeResource({"*IDN?": "Keysight Technologies,B2911A,MY1,3.4"})
    with pytest.raises(ParameterError, match="channel 2 does not exist"):
        connect(fake, channel=2)


def test_timeout_on_idn_is_an_instrument_error():
    with pytest.raises(InstrumentError, match=r"no reply to \*IDN\?"):
        connect(FakeResource({}))


def test_open_instrument_opens_identifies_and_closes_on_failure():
    good = FakeResource({"*IDN?": "Keithley Instruments Inc., Model 2636B, 4308079, 3.2.2"})
    bad = FakeResource({"*IDN?": "ACME,WIDGET,1,1"})
    rm = FakeResourceManager("@py", {"GPIB0::26::INSTR": good, "GPIB0::27::INSTR": bad})
    smu = open_instrument(rm, "GPIB0::26::INSTR", "soma_smu", channel=2)
    assert isinstance(smu, Smu) and smu.channel == 2 and not good.closed
    with pytest.raises(InstrumentError, match="WIDGET"):
        open_instrument(rm, "GPIB0::27::INSTR")
    assert bad.closed
    with pytest.raises(InstrumentError, match=r"role 'x'.*cannot open"):
        open_instrument(rm, "GPIB0::28::INSTR", "x")

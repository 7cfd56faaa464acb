"""Error queues: SCPI SYST:ERR? and TSP errorqueue drained; messages quoted in the exception."""

from __future__ import annotations

import pytest

from dendrolab.errors import InstrumentError
from instruments.pulse import PULSE_MODELS, PulseGenerator
from instruments.smu import B2900_MODELS, K2450, K2600B_MODELS, Smu
from instruments.switch import K707B, SwitchMatrix
from tests.instruments import FakeResource

SCPI = [
    (Smu, K2450, ":SYST:ERR?"),
    (Smu, B2900_MODELS[1], ":SYST:ERR?"),
    (PulseGenerator, PULSE_MODELS[1], "SYST:ERR?"),
    (PulseGenerator, PULSE_MODELS[3], "SYST:ERR?"),
]
TSP = [(Smu, K2600B_MODELS[2]), (SwitchMatrix, K707B)]
COUNT, NEXT = "print(errorqueue.count)", "print(errorqueue.next())"


@pytest.mark.parametrize(("cls", "spec", "query"), SCPI, ids=lambda x: getattr(x, "name", ""))
def test_scpi_no_errors(cls, spec, query):
    fake = FakeResource({query: '+0,"No error"'})
    cls(fake, spec).check_errors()
    assert fake.commands == [query]


@pytest.mark.parametrize(("cls", "spec", "query"), SCPI, ids=lambda x: getattr(x, "name", ""))
def test_scpi_two_errors_raise_with_both_messages(cls, spec, query):
    replies = ['-113,"Undefined header"', '-222,"Data out of range"', '+0,"No error"']
    fake = FakeResource({query: replies})
    with pytest.raises(InstrumentError, match="2 error") as info:
        cls(fake, spec).check_errors()
    assert "-113,'Undefined header'" in str(info.value)
    assert "-222,'Data out of range'" in str(info.value)
    assert fake.commands == [query] * 3


@pytest.mark.parametrize(("cls", "spec"), TSP, ids=lambda x: getattr(x, "name", ""))
def test_tsp_no_errors(cls, spec):
    fake = FakeResource({COUNT: "0.00000e+00"})
    cls(fake, spec).check_errors()
    assert fake.commands == [COUNT]


@pytest.mark.parametrize(("cls", "spec"), TSP, ids=lambda x: getattr(x, "name", ""))
def test_tsp_two_errors_raise_with_both_messages(cls, spec):
    fake = FakeResource(
        {
            COUNT: "2.00000e+00",
            NEXT: [
                "-2.85000e+02\tTSP Syntax error at line 1: unexpected symbol\t2.00000e+00\t0",
                "-2.22000e+02\tParameter data out of range\t2.00000e+00\t0",
            ],
        }
    )
    with pytest.raises(InstrumentError) as info:
        cls(fake, spec).check_errors()
    assert "TSP Syntax error at line 1: unexpected symbol" in str(info.value)
    assert "-222,'Parameter data out of range'" in str(info.value)
    assert fake.commands == [COUNT, NEXT, NEXT]


def test_errors_after_a_configuration_block_surface_immediately():
    fake = FakeResource({":SYST:ERR?": ['-222,"Data out of range"', '+0,"No error"']})
    smu = Smu(fake, K2450)
    with pytest.raises(InstrumentError, match="Data out of range"):
        smu.configure_source_voltage(limit_a=1e-3)


def test_auto_check_can_be_switched_off():
    fake = FakeResource()
    Smu(fake, K2450, auto_check_errors=False).configure_source_voltage(limit_a=1e-3)
    assert ":SYST:ERR?" not in fake.commands


def test_unparseable_error_reply():
    fake = FakeResource({":SYST:ERR?": "garbage"})
    with pytest.raises(InstrumentError, match="cannot parse"):
        Smu(fake, K2450).check_errors()


def test_a_queue_that_never_empties_stops():
    fake = FakeResource({":SYST:ERR?": '-100,"Command error"'})
    with pytest.raises(InstrumentError, match="not empty after 64"):
        Smu(fake, K2450).check_errors()

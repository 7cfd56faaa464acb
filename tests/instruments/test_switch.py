"""Switch matrix driver: exact TSP traffic for the Keithley 707B."""

from __future__ import annotations

import logging

import pytest

from dendrolab.errors import InstrumentError, ParameterError
from instruments.switch import K707B, K708B, SwitchMatrix
from tests.instruments import FakeResource

GETCLOSE = 'print(channel.getclose("allslots"))'


def make(spec=K707B, replies=None):
    fake = FakeResource(replies)
    return SwitchMatrix(fake, spec), fake


def test_route_row_to_column():
    sw, fake = make()
    sw.route("b", 3)
    assert fake.commands == ['channel.close("1B03")', "print(errorqueue.count)"]


def test_exclusive_route_opens_everything_first():
    sw, fake = make()
    sw.route("A", 12, slot=2, exclusive=True)
    assert fake.commands == [
        'channel.open("allslots")',
        'channel.close("2A12")',
        "print(errorqueue.count)",
    ]


def test_unroute_open_all_reset():
    sw, fake = make()
    sw.unroute("H", 1, slot=6)
    sw.open_all()
    sw.reset()
    assert fake.commands == [
        'channel.open("6H01")',
        "print(errorqueue.count)",
        'channel.open("allslots")',
        "print(errorqueue.count)",
        "reset()",
    ]


def test_deferred_errors_read_the_queue_once_at_the_end():
    """A tight loop of routes (a board stepping word lines) checks the queue once, and a
    refused route still raises when the block ends."""
    sw, fake = make()
    with sw.deferred_errors():
        sw.route_set([("B", 1, 1)])
        sw.route_set([("B", 2, 1)])
    assert fake.commands == ['channel.exclusiveclose("1B01")', 'channel.exclusiveclose("1B02")',
                             "print(errorqueue.count)"]
    assert sw.auto_check_errors
    sw, fake = make(replies={"print(errorqueue.count)": ["1.00000e+00", "0.00000e+00"],
                             "print(errorqueue.next())": "1115\tExpected a row\t0\t1"})
    with pytest.raises(InstrumentError, match="1 error"), sw.deferred_errors():
        sw.route_set([("B", 1, 1)])
    sw, fake = make()
    with pytest.raises(RuntimeError), sw.deferred_errors():
        sw.route_set([("B", 1, 1)])
        raise RuntimeError
    assert fake.commands == ['channel.exclusiveclose("1B01")'] and sw.auto_check_errors


def test_closed_channels():
    sw, fake = make(replies={GETCLOSE: ["1A01;1B03", "nil"]})
    assert sw.closed_channels() == ["1A01", "1B03"]
    assert sw.closed_channels() == []
    assert fake.commands == [GETCLOSE, GETCLOSE]


def test_safe_state_opens_all():
    sw, fake = make()
    sw.safe_state()
    assert fake.commands == ['channel.open("allslots")']


def test_safe_state_survives_a_broken_connection(caplog):
    sw = SwitchMatrix(FakeResource(broken=True), K707B)
    with caplog.at_level(logging.WARNING):
        sw.safe_state()
    assert "open all failed" in caplog.text


def test_settings_snapshot():
    sw, fake = make(replies={GETCLOSE: "1A01"})
    snap = sw.settings()
    assert snap["instrument"] == {"closed": "1A01"}
    assert fake.commands == [GETCLOSE]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"row": "J", "column": 1}, "row 'J'"),
        ({"row": "AB", "column": 1}, "row 'AB'"),
        ({"row": "A", "column": 13}, "column 13"),
        ({"row": "A", "column": 0}, "column 0"),
        ({"row": "A", "column": 1, "slot": 7}, "slot 7"),
    ],
)
def test_bad_crosspoints_are_rejected_before_any_io(kwargs, match):
    sw, fake = make()
    with pytest.raises(ParameterError, match=match):
        sw.route(**kwargs)
    assert fake.commands == []


def test_708b_has_one_slot():
    sw, fake = make(K708B)
    with pytest.raises(ParameterError, match="slot 2"):
        sw.route("A", 1, slot=2)
    assert fake.commands == []

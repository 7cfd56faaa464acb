"""Simulated Keithley 707B: channel lists, errors, settle time, bench routes, our driver."""

from __future__ import annotations

import pytest

from dendrolab.errors import ParameterError
from instruments.factory import connect
from instruments.switch import SwitchMatrix
from sim_backend.bench import Bench
from sim_backend.instruments import model_class
from sim_backend.instruments.k707b import SETTLE_S, Keithley707BSim
from sim_backend.instruments.k2600 import Keithley2600BSim

GETCLOSE = 'print(channel.getclose("allslots"))'


@pytest.fixture
def bench() -> Bench:
    """One dendrite reachable only through the matrix: row A = smu/1, column 1 = d1."""
    return Bench({"seed": 1, "noise": False, "devices": {"d1": {"kind": "dendrite"}}})


@pytest.fixture
def sw(bench: Bench) -> Keithley707BSim:
    return Keithley707BSim(bench, "matrix", {"rows": {"A": "smu/1"}, "columns": {1: "d1"}})


def codes(inst: Keithley707BSim) -> list[int]:
    return [err[0] for err in inst.errors]


def test_identity(sw: Keithley707BSim, bench: Bench) -> None:
    assert model_class("keithley707b") is Keithley707BSim
    assert sw.handle("*IDN?") == b"Keithley Instruments Inc., Model 707B, 04089762, 01.10h\n"
    assert sw.handle("print(localnode.model)") == b"707B\n"
    one = Keithley707BSim(bench, "m", {"idn": "Keithley Instruments Inc., Model 708B, 1, 01.10h"})
    one.handle('channel.close("2A01")')
    assert codes(one) == [-286]  # the 708B has one slot


def test_close_getclose_open(sw: Keithley707BSim) -> None:
    assert sw.handle(GETCLOSE) == b"nil\n"
    sw.handle('channel.close("1C03,1A01; 2B12")')
    assert sw.handle(GETCLOSE) == b"1A01;1C03;2B12\n"  # sorted by slot, row, column
    assert sw.handle('print(channel.getclose("slot2"))') == b"2B12\n"
    assert sw.handle('print(channel.getclose("1A01:1B12"))') == b"1A01\n"
    sw.handle('channel.close("1B03:1B05")')
    assert sw.handle('print(channel.getclose("slot1"))') == b"1A01;1B03;1B04;1B05;1C03\n"
    sw.handle('channel.open("1B04, 2B12")')
    assert sw.handle(GETCLOSE) == b"1A01;1B03;1B05;1C03\n"
    sw.handle('channel.close("3A01:3B02")')  # a rectangular block
    assert sw.handle('print(channel.getclose("slot3"))') == b"3A01;3A02;3B01;3B02\n"
    sw.handle('channel.exclusiveclose("1H12")')
    assert sw.handle(GETCLOSE) == b"1H12\n"
    sw.handle('channel.exclusiveclose("")')
    assert sw.handle(GETCLOSE) == b"nil\n"
    sw.handle('channel.close("1A01") channel.open("allslots")')
    assert sw.handle(GETCLOSE) == b"nil\n"
    assert not sw.errors


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ('channel.close("1A01,1Z01")', "invalid channel '1Z01'"),
        ('channel.close("1A13")', "invalid channel '1A13'"),
        ('channel.close("7A01")', "invalid channel '7A01'"),
        ('channel.close("1A05:1A01")', "invalid range '1A05:1A01'"),
        ('channel.close("allslots")', "allslots is not allowed"),
        ('channel.exclusiveclose("slot1")', "slot1 is not allowed"),
        ('channel.open("slot9")', "no slot 'slot9'"),
        ('channel.open("")', "empty channel list"),
        ("channel.close(12)", "string expected, got number"),
        ("print(channel.getclose())", "string expected, got nil"),
    ],
)
def test_bad_channel_lists_change_nothing(
    sw: Keithley707BSim, bench: Bench, command: str, message: str
) -> None:
    sw.handle('channel.close("1B02")')
    t0 = bench.now_s
    assert sw.handle(command) is None
    assert codes(sw) == [-286]
    assert sw.errors[0][1].startswith("TSP Runtime error at line 1: bad argument #1 to '")
    assert sw.errors[0][1].endswith(f"({message})")
    assert sw.handle(GETCLOSE) == b"1B02\n" and bench.now_s == t0
    reply = sw.handle("print(errorqueue.next())")
    assert reply.startswith(b"-2.86000e+02\tTSP Runtime error at line 1: bad argument #1")


def test_relay_settle_time(sw: Keithley707BSim, bench: Bench) -> None:
    sw.handle('channel.close("1A01,1A02")')
    assert bench.now_s == pytest.approx(SETTLE_S)
    sw.handle('channel.close("1A01")')  # no relay moves: no settle time
    assert bench.now_s == pytest.approx(SETTLE_S)
    sw.handle('channel.exclusiveclose("1A02,1B01")')  # break before make: open, then close
    assert bench.now_s == pytest.approx(3 * SETTLE_S)
    sw.handle('channel.connectrule = channel.OFF channel.exclusiveclose("1C01")')
    assert bench.now_s == pytest.approx(4 * SETTLE_S)
    assert sw.handle("print(channel.connectrule)") == b"0.00000e+00\n"
    slow = Keithley707BSim(bench, "slow", {"settle_time_s": "2e-2"})  # YAML gives a string
    t0 = bench.now_s
    slow.handle('channel.close("1A01")')
    assert bench.now_s - t0 == pytest.approx(0.02)


def test_crosspoints_make_bench_routes(sw: Keithley707BSim, bench: Bench) -> None:
    sw.handle('channel.close("1A01,1B01,1A02")')  # only 1A01 has a wired row and column
    assert bench.routes == {"matrix:1A01": [("smu/1", ("d1", "top"))]}
    sw.handle('channel.open("1A01")')
    assert bench.routes == {}
    sw.handle('channel.close("1A01") reset()')
    assert bench.routes == {} and sw.handle(GETCLOSE) == b"nil\n"
    sw.handle('channel.close("1A01") *RST')
    assert bench.routes == {}


def test_wiring_per_slot(bench: Bench) -> None:
    sw = Keithley707BSim(
        bench, "m", {"slots": {2: {"rows": {"h": "pulse/2"}, "columns": {"12": "d1.top"}}}}
    )
    sw.handle('channel.close("2H12,1H12")')
    assert bench.routes == {"m:2H12": [("pulse/2", ("d1", "top"))]}


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"row": {}}, "unknown option"),
        ({"rows": {"J": "smu/1"}}, "row 'J'"),
        ({"rows": {"A": "smu1"}}, "not a terminal"),
        ({"columns": {13: "d1"}}, "column 13"),
        ({"columns": {1: "d9"}}, "unknown device 'd9'"),
        ({"columns": {1: "d1.gate"}}, "no port 'gate'"),
        ({"rows": {}, "slots": {}}, "not both"),
        ({"slots": {7: {}}}, "slot 7"),
        ({"slots": {1: {"cols": {}}}}, "unknown key"),
        ({"settle_time_s": -1}, "settle_time_s"),
        ({"settle_time_s": "fast"}, "settle_time_s"),
        ({"idn": "Keithley Instruments Inc., Model 2636B, 1, 1"}, "not a 707B"),
    ],
)
def test_bad_options(bench: Bench, options: dict, match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        Keithley707BSim(bench, "m", options)


def test_switch_driver_routes_the_smu_to_the_dendrite(bench: Bench, loopback) -> None:
    matrix = connect(loopback(Keithley707BSim(bench, "matrix", {
        "rows": {"A": "smu/1"}, "columns": {1: "d1"}})))  # fmt: skip
    smu = connect(loopback(Keithley2600BSim(bench, "smu")))
    assert isinstance(matrix, SwitchMatrix)
    smu.configure_source_voltage(limit_a=1e-3)
    smu.set_voltage(1.0)
    smu.output_on()
    assert smu.measure_current() == 0.0  # route open: nothing connected

    matrix.route("A", 1)
    assert matrix.closed_channels() == ["1A01"]
    current = smu.measure_current()
    assert 5e-8 < current < 5e-7  # the dendrite at 1 V

    matrix.route("B", 3, exclusive=True)
    assert matrix.closed_channels() == ["1B03"]
    assert smu.measure_current() == 0.0
    matrix.route("A", 1)
    matrix.unroute("B", 3)
    assert matrix.settings()["instrument"] == {"closed": "1A01"}
    matrix.open_all()
    assert matrix.closed_channels() == [] and smu.measure_current() == 0.0
    matrix.route("A", 1)
    matrix.safe_state()
    assert matrix.closed_channels() == [] and bench.routes == {}
    matrix.reset()
    assert matrix.drain_errors() == [] and smu.drain_errors() == []


def test_slot_attributes(sw: Keithley707BSim, bench: Bench) -> None:
    """``slot[N].idn`` (read-only) and ``pseudocard`` (nil, not writable: every slot has a card)."""
    card = b"7174,8x12 Low Current Matrix,01.00a,00000000"
    assert sw.handle("print(slot[1].idn)") == card + b"\n"
    assert sw.handle("print(slot[6].idn)") == card + b"\n"
    assert sw.handle("print(slot[7], slot[0], slot.PSEUDO_NONE)") == b"nil\tnil\t0.00000e+00\n"
    assert sw.handle("print(slot[1].pseudocard)") == b"nil\n"
    sw.handle("slot[1].pseudocard = slot.PSEUDO_NONE")
    sw.handle('slot[1].idn = "x"')
    sw.handle("print(slot[7].idn)")
    assert codes(sw) == [-221, -286, -286]
    one = Keithley707BSim(
        bench,
        "m",
        {"idn": "Keithley Instruments Inc., Model 708B, 1, 01.10h", "card_idn": "7174,A,B,C"},
    )
    assert one.handle("print(slot[1].idn, slot[2])") == b"7174,A,B,C\tnil\n"
    with pytest.raises(ParameterError, match="card_idn"):
        Keithley707BSim(bench, "m", {"card_idn": "7174"})

"""Prober drivers: SENTIO and Velox wire traffic, reply framing, error codes, manual probing."""

from __future__ import annotations

import math

import pytest

from dendrolab.errors import DendrolabError, InstrumentError, ParameterError
from instruments.base import CapabilityError
from instruments.bench_config import InstrumentSet, parse_bench_config
from instruments.factory import connect
from instruments.prober import (
    SENTIO,
    VELOX,
    ContactHeightNotSetError,
    ManualProber,
    OperatorAbort,
    ProbePosition,
    Prober,
    ProberError,
    ProberExecutionError,
    ProberFramingError,
    SteppingBelowSeparationError,
)
from tests.instruments import FakeResource, FakeResourceManager

SENTIO_IDN = "MPI Corporation,Sentio - Probe System Software Suite,0,23.2.99.0"
VELOX_IDN = "FormFactor,Velox,0,3.5"  # hypothetical: the notes give no Velox *IDN? string

NAN = math.nan


def sentio(replies: dict | None = None) -> tuple[Prober, FakeResource]:
    res = FakeResource(replies, defaults=False, resource_name="TCPIP0::127.0.0.1::35555::SOCKET")
    return Prober(res, SENTIO), res


def velox(replies: dict | None = None) -> tuple[Prober, FakeResource]:
    res = FakeResource(replies, defaults=False, resource_name="GPIB0::28::INSTR")
    return Prober(res, VELOX), res


def same(a: ProbePosition, b: ProbePosition) -> bool:
    """Field-wise equality that treats NaN as equal to NaN."""
    for x, y in zip(vars(a).values(), vars(b).values(), strict=True):
        if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
            continue
        if x != y:
            return False
    return True


def vms(seconds: float) -> float:
    """The VISA timeout ``_timeout_for`` sets for an operation of ``seconds``."""
    return 2000.0 * seconds + 5000.0


# --- identification ----------------------------------------------------------------------


def test_connect_builds_a_sentio_prober_from_its_idn() -> None:
    res = FakeResource({"*IDN?": SENTIO_IDN}, defaults=False)
    driver = connect(res)
    assert isinstance(driver, Prober)
    assert driver.spec is SENTIO
    assert driver.identity is not None and driver.identity.model == "SENTIO"
    assert driver.identity.firmware == "23.2.99.0"
    assert res.commands == ["*IDN?"]


def test_connect_builds_a_velox_prober_and_checks_the_expected_model() -> None:
    res = FakeResource({"*IDN?": VELOX_IDN}, defaults=False)
    driver = connect(res, expected_model="Velox")
    assert isinstance(driver, Prober) and driver.spec is VELOX
    with pytest.raises(InstrumentError, match="expected model 'SENTIO'"):
        connect(FakeResource({"*IDN?": VELOX_IDN}, defaults=False), expected_model="SENTIO")


def test_a_model_that_merely_resembles_velox_is_not_a_prober() -> None:
    with pytest.raises(InstrumentError, match="not in any driver table"):
        connect(FakeResource({"*IDN?": "ACME,Velocity 9,1,1"}, defaults=False))


def test_bench_role_with_prober_model_opens_and_ends_separated() -> None:
    config = parse_bench_config({
        "visa_library": "@fake",
        "instruments": {"prober": {"address": "TCPIP0::10.0.0.5::35555::SOCKET",
                                   "model": "SENTIO", "timeout_ms": 30000}},
    })
    res = FakeResource({"*IDN?": SENTIO_IDN, "move_chuck_separation": "0,0,9000"},
                       defaults=False, resource_name="TCPIP0::10.0.0.5::35555::SOCKET")
    rm = FakeResourceManager("@fake", {"TCPIP0::10.0.0.5::35555::SOCKET": res})
    with InstrumentSet(config, rm_factory=lambda lib: rm) as bench:
        assert isinstance(bench["prober"], Prober)
        res.clear_traffic()
    # resync proved by *IDN? alone (no *OPC? on a prober), then safe state
    assert res.commands == ["*IDN?", "move_chuck_separation"]
    assert res.closed


class StaleResource(FakeResource):
    """A session with one stale reply queued: ``read`` hands it out, then times out."""

    def __init__(self, *args, stale: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.stale = list(stale)

    def read(self) -> str:
        from pyvisa import constants
        from pyvisa.errors import VisaIOError

        if not self.stale:
            raise VisaIOError(constants.StatusCode.error_timeout)
        self.traffic.append(("r", "<read>"))
        return self.stale.pop(0)

    def clear(self) -> None:  # a socket whose device clear does not flush the reply
        self.traffic.append(("c", "<clear>"))


def test_resync_drops_a_stale_step_reply_without_asking_opc() -> None:
    # the reply to an interrupted step is still queued: *IDN? reads it, its own reply lags
    res = StaleResource({"*IDN?": ["0,0,3,4,0", SENTIO_IDN]}, defaults=False,
                        stale=[SENTIO_IDN])
    p = Prober(res, SENTIO)
    assert p.resync() is True
    assert res.commands == ["<clear>", "*IDN?", "<read>", "*IDN?"]  # wrong -> drain -> proved
    res2 = StaleResource({"*IDN?": "0,0,3,4,0"}, defaults=False, stale=[])
    assert Prober(res2, SENTIO).resync() is False
    assert "*OPC?" not in res2.commands


def test_bench_config_accepts_velox_and_rejects_unknown_prober_models() -> None:
    cfg = parse_bench_config({"instruments": {"p": {"address": "GPIB0::28::INSTR",
                                                     "model": "Velox"}}})
    assert cfg.role("p").model == "Velox"
    with pytest.raises(ParameterError, match="unknown model"):
        parse_bench_config({"instruments": {"p": {"address": "GPIB0::28::INSTR",
                                                   "model": "UF200"}}})


# --- SENTIO wire traffic -------------------------------------------------------------------


def test_sentio_remote_and_local_mode_are_writes_without_replies() -> None:
    p, res = sentio()
    p.remote_mode()
    p.local_mode()
    assert res.traffic == [("w", "*RCS 1"), ("w", "*LOCAL")]


def test_sentio_load_map_and_project() -> None:
    p, res = sentio({
        r"map:open C:\maps\wafer7.xwmf": "0,0,",
        r"open_project C:\projects\dendrites, True": "0,0,",
        r"open_project C:\projects\dendrites, False": "0,0,",
    })
    p.load_map(r"C:\maps\wafer7.xwmf")
    p.load_project(r"C:\projects\dendrites")
    p.load_project(r"C:\projects\dendrites", restore_heights=False)
    assert res.commands == [r"map:open C:\maps\wafer7.xwmf",
                            r"open_project C:\projects\dendrites, True",
                            r"open_project C:\projects\dendrites, False"]
    assert res.timeouts_seen == [vms(120)] * 3
    assert res.timeout == 2000.0  # restored


def test_sentio_first_next_goto_and_status_bits() -> None:
    p, res = sentio({
        "map:step_first_die": "0,0,3,4,0",
        "map:step_first_die 2": "0,0,3,4,2",
        "map:step_next_die": ["0,0,4,4,0", "1024,0,5,4,0", "11,0,End of route reached"],
        "map:step_die 3, -2, 1": "0,0,3,-2,1",
        "map:step_die 7, 8, 0": "0,0,7,8,0",
    })
    assert same(p.first(), ProbePosition(3, 4, 0))
    assert p.end_of_route is False
    assert same(p.first(site=2), ProbePosition(3, 4, 2))
    assert same(p.next(), ProbePosition(4, 4, 0))
    last = p.next()
    assert last is not None and same(last, ProbePosition(5, 4, 0, last_die=True))
    assert p.end_of_route is True  # the last die: still to be measured
    assert p.next() is None  # error 11: past the end is a condition, not a crash
    assert p.end_of_route is True
    assert same(p.goto(3, -2, 1), ProbePosition(3, -2, 1))
    assert p.end_of_route is False
    assert same(p.goto(7, 8), ProbePosition(7, 8, 0))
    assert res.commands == ["map:step_first_die", "map:step_first_die 2", "map:step_next_die",
                            "map:step_next_die", "map:step_next_die", "map:step_die 3, -2, 1",
                            "map:step_die 7, 8, 0"]
    assert res.timeouts_seen == [vms(600)] * 7
    assert p.last_reply is not None and p.last_reply.cmd_id == 0


def test_sentio_next_at_a_site() -> None:
    p, res = sentio({"map:step_next_die 0": ["0,0,6,4,0", "11,0,End of route"]})
    assert same(p.next(site=0), ProbePosition(6, 4, 0))
    assert p.next(site=0) is None and p.end_of_route
    assert res.commands == ["map:step_next_die 0"] * 2
    res.clear_traffic()
    with pytest.raises(ParameterError, match="site"):
        p.next(site=-1)
    assert res.traffic == []


def test_sentio_error_11_with_status_bits_still_ends_the_route() -> None:
    p, _ = sentio({"map:step_next_die": str(11 | (3 << 10)) + ",0,EndOfRoute"})
    assert p.next() is None
    assert p.end_of_route
    assert p.last_reply is not None and (p.last_reply.code, p.last_reply.status) == (11, 3)


def test_sentio_next_subsite_reads_the_last_site_bit() -> None:
    p, res = sentio({"map:subsite:step_next": ["0,0,3,4,1", "2048,0,3,4,2"]})
    assert same(p.next_subsite(), ProbePosition(3, 4, 1))
    assert same(p.next_subsite(), ProbePosition(3, 4, 2, last_site=True))
    assert res.commands == ["map:subsite:step_next"] * 2


def test_sentio_contact_and_separate_return_z_with_z_timeouts() -> None:
    p, res = sentio({"move_chuck_contact": "0,0,9500.0", "move_chuck_separation": "0,0,9450"})
    assert p.contact() == 9500.0
    assert p.separate() == 9450.0  # SENTIO 26 number format
    assert res.commands == ["move_chuck_contact", "move_chuck_separation"]
    assert res.timeouts_seen == [vms(60)] * 2


def test_sentio_where_reads_everything_back() -> None:
    p, res = sentio({
        "map:die:get_current_index": "0,0,17,3,4",
        "map:die:get_current_subsite": "0,0,2",
        "get_chuck_xy Wafer, Z": "0,0,-1200.5,3400",
        "get_chuck_z Z": "0,0,9500.25",
    })
    assert same(p.where(), ProbePosition(3, 4, 2, -1200.5, 3400.0, 9500.25))
    assert res.commands == ["map:die:get_current_index", "map:die:get_current_subsite",
                            "get_chuck_xy Wafer, Z", "get_chuck_z Z"]


def test_sentio_where_keeps_the_last_die_flag_of_the_step_onto_that_die() -> None:
    p, _ = sentio({
        "map:step_next_die": "1024,0,5,4,0",
        "map:die:get_current_index": "0,0,51,5,4",
        "map:die:get_current_subsite": "0,0,0",
        "get_chuck_xy Wafer, Z": "0,0,1,2",
        "get_chuck_z Z": "0,0,3",
    })
    p.next()
    assert p.where().last_die is True


def test_sentio_bin_uses_the_current_die_and_site() -> None:
    p, res = sentio({"map:step_die 3, 4, 1": "0,0,3,4,1",
                     "map:bins:set_bin 2, 3, 4, 1": "0,0,"})
    p.goto(3, 4, 1)
    p.bin(2)
    assert res.commands[-1] == "map:bins:set_bin 2, 3, 4, 1"


def test_sentio_bin_without_a_known_position_reads_it_first() -> None:
    p, res = sentio({
        "map:die:get_current_index": "0,0,1,-3,7",
        "map:die:get_current_subsite": "0,0,0",
        "get_chuck_xy Wafer, Z": "0,0,0,0",
        "get_chuck_z Z": "0,0,0",
        "map:bins:set_bin 5, -3, 7, 0": "0,0,",
    })
    p.bin(5)
    assert res.commands[-1] == "map:bins:set_bin 5, -3, 7, 0"


def test_sentio_preconditions_and_version() -> None:
    p, res = sentio({
        "get_chuck_site_status Wafer": ["0,0,1,1,0,1", "0,0,1,0,0,1", "0,0,0,1,0,1"],
        "status:get_version": "0,0,Version: 25.2.1.0",
    })
    assert p.is_contact_set() is True
    assert p.is_contact_set() is False
    assert p.has_home() is False
    assert p.version() == "Version: 25.2.1.0"
    assert res.commands == ["get_chuck_site_status Wafer"] * 3 + ["status:get_version"]


def test_sentio_background_command_and_wait_complete() -> None:
    p, res = sentio({"start_initialization": "0,7,", "wait_complete 7, 180": "0,7,ok"})
    cmd_id = p.start("initialization")
    assert cmd_id == 7
    assert p.wait_complete(cmd_id, 180) == "ok"
    assert res.commands == ["start_initialization", "wait_complete 7, 180"]
    assert res.timeouts_seen[-1] == vms(180 + 30)


def test_sentio_background_errors() -> None:
    p, res = sentio({"start_initialization": "0,0,", "wait_complete 9, 5": "32,9,unknown id"})
    with pytest.raises(ProberFramingError, match="without a command id"):
        p.start("initialization")
    with pytest.raises(ProberError, match="error 32") as info:
        p.wait_complete(9, 5)
    assert info.value.code == 32
    res.clear_traffic()
    with pytest.raises(CapabilityError, match="available: \\['initialization'\\]"):
        p.start("loader")
    for bad in (0, -1, 1.5, "7", True):
        with pytest.raises(ParameterError):
            p.wait_complete(bad)  # type: ignore[arg-type]
    for bad_t in (0, -1, math.inf, math.nan, 1e9, True):
        with pytest.raises(ParameterError):
            p.wait_complete(3, bad_t)  # type: ignore[arg-type]
    assert res.traffic == []


# --- SENTIO error replies ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "call", "reply", "cls", "code"),
    [
        ("move_chuck_contact", "contact", "23,0,Contact height not set", ContactHeightNotSetError,
         23),
        ("move_chuck_separation", "separate", "23,0,no contact height",
         ContactHeightNotSetError, 23),
        ("map:step_next_die", "next", "38,0,Chuck below separation", SteppingBelowSeparationError,
         38),
        ("map:step_first_die", "first", "38,0,z wrong", SteppingBelowSeparationError, 38),
        ("map:step_first_die", "first", "2,0,Execution failed", ProberExecutionError, 2),
        # a real error-2 reply (SentioProberControl#11)
        ("move_chuck_contact", "contact",
         "2,0,Normal, Fast and Index speed options are not available.", ProberExecutionError, 2),
        ("map:step_first_die", "first", "13,0,no map", ProberError, 13),
        ("map:step_first_die", "first", "11,0,End of route", ProberError, 11),  # first: no die
    ],
)
def test_sentio_documented_errors_raise_precise_classes(
    command: str, call: str, reply: str, cls: type[ProberError], code: int
) -> None:
    p, _ = sentio({command: reply})
    with pytest.raises(cls) as info:
        getattr(p, call)()
    assert type(info.value) is cls
    assert info.value.code == code and info.value.command == command
    assert isinstance(info.value, InstrumentError) and isinstance(info.value, DendrolabError)
    assert f"error {code}" in str(info.value) and reply.split(",", 2)[2] in str(info.value)


def test_sentio_error_messages_name_the_documented_meaning() -> None:
    p, _ = sentio({"map:step_next_die": "38,0,x", "map:step_die 1, 1, 0": "11,0,x"})
    with pytest.raises(SteppingBelowSeparationError, match="SteppingWithWrongZPosition"):
        p.next()
    with pytest.raises(ProberError, match="EndOfRoute"):  # goto past the route is an error
        p.goto(1, 1)


@pytest.mark.parametrize(
    "reply",
    ["ok", "0,ok", "0,0", "", "x,0,3,4,0", "0,a,3,4,0", "-1,0,3,4,0", "0,0,3,4",
     "0,0,3,four,0", "0,0,3.5,4,0"],
)
def test_sentio_malformed_step_replies_are_framing_errors(reply: str) -> None:
    p, _ = sentio({"map:step_first_die": reply})
    with pytest.raises(ProberFramingError, match="map:step_first_die"):
        p.first()


def test_sentio_async_reply_to_a_sync_command_is_out_of_step() -> None:
    p, _ = sentio({"map:step_next_die": "0,5,3,4,0", "wait_complete 5, 10": "0,6,done"})
    with pytest.raises(ProberFramingError, match="command id 5"):
        p.next()
    with pytest.raises(ProberFramingError, match="command id 6"):
        p.wait_complete(5, 10)


def test_sentio_malformed_where_reply_is_a_framing_error() -> None:
    p, _ = sentio({"map:die:get_current_index": "0,0,17,3"})
    with pytest.raises(ProberFramingError, match="expected 3"):
        p.where()


def test_sentio_no_reply_is_an_instrument_error() -> None:
    p, _ = sentio({})
    with pytest.raises(InstrumentError, match="no usable reply"):
        p.contact()


# --- limits before any I/O -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "what"),
    [((1.5, 2), "col"), (("3", 2), "col"), ((True, 2), "col"), ((1, None), "row"),
     ((10**6, 0), "col"), ((0, -(10**6)), "row"), ((1, 2, -1), "site"), ((1, 2, 2.5), "site"),
     ((1, 2, 10**5), "site"), ((math.nan, 1), "col")],
)
@pytest.mark.parametrize("make", [sentio, velox])
def test_goto_checks_indices_before_any_io(make, args: tuple, what: str) -> None:
    p, res = make()
    with pytest.raises(ParameterError, match=what):
        p.goto(*args)
    assert res.traffic == []


@pytest.mark.parametrize("make", [sentio, velox])
def test_bin_and_first_check_arguments_before_any_io(make) -> None:
    p, res = make()
    for bad in (-1, 1.5, "2", True, 10**6):
        with pytest.raises(ParameterError, match="bin"):
            p.bin(bad)
    with pytest.raises(ParameterError, match="site"):
        p.first(site=-1)
    assert res.traffic == []


@pytest.mark.parametrize(
    ("make", "path", "bad"),
    [(sentio, r"C:\maps\a,b.xwmf", ","), (velox, r"C:\Program Files\w.map", " "),
     (sentio, "C:\\maps\\w.xwmf\nmove_chuck_contact", "\n"), (velox, "", ""),
     (sentio, "   ", ""), (velox, None, "")],
)
def test_load_map_rejects_paths_the_syntax_cannot_carry(make, path, bad: str) -> None:
    p, res = make()
    with pytest.raises(ParameterError) as info:
        p.load_map(path)
    assert repr(bad)[1:-1] in str(info.value) or "expected a file path" in str(info.value)
    assert res.traffic == []


# --- Velox wire traffic --------------------------------------------------------------------


def test_velox_needs_no_remote_mode_and_has_no_project() -> None:
    p, res = velox()
    p.remote_mode()
    p.local_mode()
    with pytest.raises(CapabilityError, match="open a project"):
        p.load_project(r"C:\p")
    with pytest.raises(CapabilityError, match="first die at a site"):
        p.first(site=1)
    with pytest.raises(CapabilityError, match="next die at a site"):
        p.next(site=1)
    with pytest.raises(CapabilityError):
        p.start("initialization")
    with pytest.raises(CapabilityError):
        p.wait_complete(1)
    with pytest.raises(CapabilityError):
        p.has_home()
    with pytest.raises(CapabilityError):
        p.version()
    assert res.traffic == []


def test_velox_load_map() -> None:
    p, res = velox({r"OpenWaferMap C:\maps\wafer7.map": "0:"})
    p.load_map(r"C:\maps\wafer7.map")
    assert res.commands == [r"OpenWaferMap C:\maps\wafer7.map"]
    assert res.timeouts_seen == [vms(120)]


def test_velox_stepping_and_703_end_of_wafer() -> None:
    p, res = velox({
        "StepFirstDie": "0: 3 4 0 2",
        "StepNextDie": ["0: 4 4 0 2", "703: End of wafer"],
        "StepNextDie 3 -2 1": "0: 3 -2 1 2",
        "StepNextDie 7 8 0": "0: 7 8 0 0",
    })
    assert same(p.first(), ProbePosition(3, 4, 0))
    assert same(p.next(), ProbePosition(4, 4, 0))
    assert p.end_of_route is False
    assert p.next() is None
    assert p.end_of_route is True
    assert same(p.goto(3, -2, 1), ProbePosition(3, -2, 1))
    assert p.end_of_route is False
    assert same(p.goto(7, 8), ProbePosition(7, 8, 0, last_site=True))  # one-site die
    assert res.commands == ["StepFirstDie", "StepNextDie", "StepNextDie", "StepNextDie 3 -2 1",
                            "StepNextDie 7 8 0"]
    assert res.timeouts_seen == [vms(6000)] * 5


def test_velox_next_subsite_spells_out_the_target_and_stops_at_the_last() -> None:
    p, res = velox({
        "StepFirstDie": "0: 3 4 0 2",
        "StepNextSubDie 1": "0: 1 2",
        "StepNextSubDie 2": "0: 2 2",
    })
    p.first()
    assert same(p.next_subsite(), ProbePosition(3, 4, 1))
    assert same(p.next_subsite(), ProbePosition(3, 4, 2, last_site=True))
    res.clear_traffic()
    with pytest.raises(ParameterError, match="last subsite"):
        p.next_subsite()
    assert res.traffic == []


def test_velox_next_subsite_reads_the_position_when_unknown() -> None:
    p, res = velox({
        "ReadMapPosition2": "0: 5 6 100.0 200.0 0 3 9 52 0 0",
        "ReadChuckPosition Y Z": "0: 1 2 3",
        "StepNextSubDie 1": "0: 1 3",
    })
    assert same(p.next_subsite(), ProbePosition(5, 6, 1))
    assert res.commands == ["ReadMapPosition2", "ReadChuckPosition Y Z", "StepNextSubDie 1"]


def test_velox_contact_separate_and_where() -> None:
    p, res = velox({
        "MoveChuckContact": "0:",
        "MoveChuckSeparation": "0:",
        "ReadMapPosition2": "0: 3 4 1200.0 -300.0 1 15 52 52 0 0",
        "ReadChuckPosition Y Z": "0: 10500.5 -2300.25 9800",
    })
    assert math.isnan(p.contact())
    assert math.isnan(p.separate())
    assert same(p.where(), ProbePosition(3, 4, 1, 10500.5, -2300.25, 9800.0, last_die=True))
    assert res.commands == ["MoveChuckContact", "MoveChuckSeparation", "ReadMapPosition2",
                            "ReadChuckPosition Y Z"]
    assert res.timeouts_seen[:2] == [vms(60)] * 2


def test_velox_bin_and_contact_height_check() -> None:
    p, res = velox({"BinMapDie 3": "0: 3 4", "ReadChuckHeights Y": ["0: -1 50 0 300 50",
                                                                     "0: 9500 50 0 300 50"]})
    p.bin(3)
    assert p.is_contact_set() is False
    assert p.is_contact_set() is True
    assert res.commands == ["BinMapDie 3", "ReadChuckHeights Y", "ReadChuckHeights Y"]


@pytest.mark.parametrize("reply", ["3 4 0 2", "0 3 4 0 2", "OK", "", "0: 3 x 0 2", "0: 3 4 0",
                                   "0:3,4,0,2"])
def test_velox_malformed_replies_are_framing_errors(reply: str) -> None:
    p, _ = velox({"StepFirstDie": reply})
    with pytest.raises(ProberFramingError, match="StepFirstDie"):
        p.first()


def test_velox_error_replies_raise_with_their_code() -> None:
    p, _ = velox({"MoveChuckContact": "704: Contact height not set",
                  "ReadMapPosition2": "703: End of wafer"})
    with pytest.raises(ProberError, match="704") as info:
        p.contact()
    assert info.value.code == 704 and "Contact height not set" in str(info.value)
    with pytest.raises(ProberError, match="end of wafer"):  # 703 outside a step is an error
        p.where()


# --- safe state and settings ---------------------------------------------------------------


@pytest.mark.parametrize("make", [sentio, velox])
def test_safe_state_separates(make) -> None:
    p, res = make({"move_chuck_separation": "0,0,9000", "MoveChuckSeparation": "0:"})
    p.safe_state()
    assert res.commands == [p.dialect.separate]


@pytest.mark.parametrize("replies", [{}, {"move_chuck_separation": "23,0,no height"},
                                     {"move_chuck_separation": "garbage"}])
def test_safe_state_never_raises(replies: dict) -> None:
    p, res = sentio(replies)
    p.safe_state()
    assert res.commands == ["move_chuck_separation"]
    broken = FakeResource(broken=True)
    Prober(broken, VELOX).safe_state()


def test_context_manager_separates_on_exit() -> None:
    p, res = sentio({"move_chuck_separation": "0,0,9000"})
    with pytest.raises(RuntimeError):
        with p:
            raise RuntimeError("measurement failed")
    assert res.commands == ["move_chuck_separation"]


def test_settings_snapshot_has_position_and_dialect() -> None:
    p, _ = velox({"ReadMapPosition2": "0: 3 4 1 2 0 1 5 52 0 0",
                  "ReadChuckPosition Y Z": "0: 10 20 30"})
    snap = p.settings()
    assert snap["capability"] == "prober" and snap["dialect"] == "Velox"
    assert snap["model"] == "FormFactor Velox"
    assert snap["position"] == {"col": 3, "row": 4, "site": 0, "x_um": 10.0, "y_um": 20.0,
                                "z_um": 30.0, "last_die": False, "last_site": False}
    p2, _ = sentio({})
    snap2 = p2.settings()
    assert snap2["position"] is None and "no usable reply" in snap2["position_error"]


def test_check_errors_has_no_queue_to_drain() -> None:
    p, res = sentio()
    p.check_errors()
    assert res.traffic == []


# --- manual probing ------------------------------------------------------------------------


class Script:
    """A scripted operator: answers in order, records every prompt."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.prompts: list[str] = []

    def __call__(self, text: str) -> str:
        self.prompts.append(text)
        if not self.answers:
            raise AssertionError(f"unexpected prompt: {text}")
        return self.answers.pop(0)


def test_manual_prober_walks_the_list_with_confirm_and_skip() -> None:
    op = Script("", "s", "y")
    mp = ManualProber([(0, 0), (1, 0, 2), (2, 1)], prompt=op)
    first = mp.first()
    assert first is not None and same(first, ProbePosition(0, 0, None, last_site=True))
    assert mp.contact() != mp.contact()  # NaN: no z read-back
    nxt = mp.next()
    assert nxt is not None and same(nxt, ProbePosition(2, 1, None, last_die=True, last_site=True))
    assert mp.end_of_route
    assert mp.skipped == [(1, 0, 2)]
    assert mp.next() is None
    assert len(op.prompts) == 3
    assert "die (1, 0) site 2" in op.prompts[1] and "[2/3]" in op.prompts[1]


def test_manual_prober_where_bin_and_reprompt() -> None:
    op = Script("maybe", "ok")
    mp = ManualProber([(4, 5, 1)], prompt=op)
    with pytest.raises(InstrumentError, match="no device"):
        mp.where()
    mp.first()
    assert same(mp.where(), ProbePosition(4, 5, 1, last_die=True, last_site=True))
    mp.bin(7)
    assert mp.bins == {(4, 5, 1): 7}
    assert "please answer" in op.prompts[1]
    with pytest.raises(ParameterError):
        mp.bin(-2)


def test_manual_prober_abort_and_goto() -> None:
    mp = ManualProber([(0, 0), (1, 1)], prompt=Script("a"))
    with pytest.raises(OperatorAbort, match=r"die \(0, 0\)"):
        mp.first()
    mp2 = ManualProber([(0, 0), (1, 1)], prompt=Script("", "s"))
    pos = mp2.goto(1, 1)
    assert pos is not None and (pos.col, pos.row) == (1, 1)
    assert mp2.goto(9, 9, 3) is None and mp2.skipped == [(9, 9, 3)]
    with pytest.raises(ParameterError):
        mp2.goto(1.5, 0)


def test_manual_prober_all_skipped_ends_the_route() -> None:
    mp = ManualProber([(0, 0), (1, 1)], prompt=Script("s", "skip"))
    assert mp.first() is None
    assert mp.end_of_route and len(mp.skipped) == 2


@pytest.mark.parametrize("devices", [[], [(1,)], [(1, 2, 3, 4)], ["ab"], [(1.5, 2)],
                                     [(0, 0, -1)], [(True, 0)]])
def test_manual_prober_checks_the_device_list(devices: list) -> None:
    with pytest.raises(ParameterError):
        ManualProber(devices, prompt=Script())


def test_manual_prober_safe_state_never_prompts_and_needs_no_resource() -> None:
    op = Script("")
    mp = ManualProber([(0, 0)], prompt=op)
    mp.first()
    mp.safe_state()  # would raise AssertionError from the script if it prompted
    assert len(op.prompts) == 1
    assert mp.settings()["position"]["col"] == 0
    assert mp.is_contact_set() and not hasattr(mp, "resource")
    with pytest.raises(CapabilityError):
        mp.load_map("x.map")


# --- closed loop on the simulated bench ----------------------------------------------------

SIM_PROBERS = [("TCPIP0::192.0.2.20::35555::SOCKET", SENTIO), ("GPIB0::28::INSTR", VELOX)]


@pytest.mark.parametrize(("address", "spec"), SIM_PROBERS)
def test_driver_walks_the_simulated_wafer(address: str, spec) -> None:
    """The driver against the packaged ``@dendrosim`` probers (same notes, built separately)."""
    pyvisa = pytest.importorskip("pyvisa")
    rm = pyvisa.ResourceManager("@dendrosim")
    try:
        try:
            res = rm.open_resource(address)
        except Exception as exc:  # the simulated station is not in this bench
            pytest.skip(f"no simulated prober at {address}: {exc}")
        p = connect(res)
        assert isinstance(p, Prober) and p.spec is spec
        p.remote_mode()
        assert p.is_contact_set()
        first = p.first()
        here = p.where()
        assert (here.col, here.row, here.site) == (first.col, first.row, first.site)
        assert all(math.isfinite(v) for v in (here.x_um, here.y_um, here.z_um))
        p.contact()
        p.separate()
        p.goto(first.col, first.row, 1)
        assert p.where().site == 1
        dies = 1
        while not p.end_of_route:
            if p.next() is None:
                break
            dies += 1
        assert dies > 1 and p.end_of_route
        assert p.next() is None  # past the end: a condition, not a crash
        if p.dialect.background:
            cmd_id = p.start("initialization")
            p.wait_complete(cmd_id, 600)
        p.safe_state()
        res.close()
    finally:
        rm.close()

"""Simulated MPI SENTIO: reply framing, status bits, every modelled error, route, heights,
positions, bins, async commands, map files and stage time on the bench clock."""

from __future__ import annotations

from pathlib import Path

import pytest
import pyvisa

from dendrolab.errors import ParameterError
from sim_backend.bench import Bench
from sim_backend.instruments import model_class
from sim_backend.instruments.sentio import SentioSim
from sim_backend.visa import default_bench_path

IDN = "MPI Corporation,Sentio - Probe System Software Suite,0,25.2.0.0"


def make_bench(**station) -> Bench:
    return Bench({"seed": 2, "noise": False,
                  "wafer": {"sentio": {"id": 1, "probe": {"smu/1": "dendrite"}, **station}}})


@pytest.fixture
def bench() -> Bench:
    return make_bench()


@pytest.fixture
def sentio(bench: Bench) -> SentioSim:
    s = SentioSim(bench, "sentio", {"idn": IDN})
    assert s.handle(b"*RCS 1") is None
    return s


def ask(model, text: str) -> str:
    reply = model.handle(text.encode())
    assert reply is not None and reply.endswith(b"\n") and reply.count(b"\n") == 1
    return reply.decode().rstrip("\n")


def parse(reply: str) -> tuple[int, int, int, str]:
    """(error code, status bits, cmd id, message) as sentio-prober-control's Response does."""
    code, cmd_id, msg = reply.split(",", 2)
    return int(code) & 1023, int(code) >> 10, int(cmd_id), msg


def test_registered_identity_and_star_commands(sentio: SentioSim) -> None:
    assert model_class("mpi_sentio") is SentioSim
    assert ask(sentio, "*IDN?") == IDN          # a bare line, not the 3-field reply
    assert ask(sentio, "*RCS?") == "1"
    assert sentio.handle(b"*LOCAL") is None     # no reply at all
    assert ask(sentio, "status:get_version") == "0,0,Version: 25.2.0.0"
    assert ask(sentio, "status:get_machine_status") == "0,0,Ready"
    assert sentio.handle(b"   ") is None


def test_route_is_the_wafer_map_in_order_with_status_bits(sentio: SentioSim) -> None:
    wafer = sentio.wafer
    expected = [(int(c), int(r)) for c, r in zip(wafer.dies["col"], wafer.dies["row"],
                                                 strict=True)]
    assert len(expected) == 52 and expected == sorted(expected, key=lambda cr: (cr[1], cr[0]))
    assert ask(sentio, "map:get_num_dies Selected") == "0,0,52"
    seen = []
    err, stat, _, msg = parse(ask(sentio, "map:step_first_die"))
    while True:
        assert err == 0
        col, row, site = (int(v) for v in msg.split(","))
        seen.append((col, row))
        assert site == 0
        assert bool(stat & 1) == (len(seen) == 52)           # EndOfRoute only on the last die
        err, stat, _, msg = parse(ask(sentio, "map:step_next_die"))
        if err:
            break
    assert seen == expected
    assert (err, msg) == (11, "End of route")                  # past the last die
    assert parse(ask(sentio, "map:die:get_current_index"))[3] == f"51,{seen[-1][0]},{seen[-1][1]}"


def test_subsites_last_site_bit_and_end(sentio: SentioSim) -> None:
    assert ask(sentio, "map:subsite:get_num") == "0,0,16"
    ask(sentio, "map:step_first_die 14")
    err, stat, _, msg = parse(ask(sentio, "map:subsite:step_next"))
    assert (err, msg.split(",")[2]) == (0, "15") and stat & 2          # LastSite
    assert parse(ask(sentio, "map:subsite:step_next"))[0] == 11
    assert parse(ask(sentio, "map:subsite:step D12"))[3].endswith(",6")  # by id
    assert parse(ask(sentio, "map:subsite:step 3"))[3].endswith(",3")    # by index
    assert ask(sentio, "map:die:get_current_subsite") == "0,0,3"
    # step_next_die keeps the current subsite unless one is given
    assert parse(ask(sentio, "map:step_next_die"))[3].endswith(",3")
    assert parse(ask(sentio, "map:step_next_die 5"))[3].endswith(",5")


def test_stepping_in_contact_is_error_38_and_moves_nothing(sentio: SentioSim,
                                                          bench: Bench) -> None:
    ask(sentio, "map:step_first_die")
    assert ask(sentio, "move_chuck_contact") == "0,0,10000"
    t = bench.now_s
    for cmd in ("map:step_next_die", "map:step_die 3, 0, 0", "map:subsite:step_next",
                "map:step_first_die"):
        err, _, _, msg = parse(ask(sentio, cmd))
        assert err == 38 and "separation" in msg
    assert bench.now_s == t
    assert ask(sentio, "map:die:get_current_index") == "0,0,0,2,0"
    assert ask(sentio, "move_chuck_separation") == "0,0,9700"
    assert parse(ask(sentio, "map:step_next_die"))[:1] == (0,)


def test_contact_height_not_set_is_error_23(bench: Bench) -> None:
    s = SentioSim(bench, "sentio", {"idn": IDN, "contact_um": None})
    ask(s, "map:step_first_die")
    assert parse(ask(s, "move_chuck_contact"))[0] == 23
    assert parse(ask(s, "move_chuck_separation"))[0] == 23
    assert ask(s, "get_chuck_site_status Wafer") == "0,0,1,0,0,1"   # hasHome, hasContact=0
    assert ask(s, "get_chuck_site_heights Wafer") == "0,0,0,0,0,0"
    assert bench.station("sentio").contact is None


def test_other_errors(sentio: SentioSim) -> None:
    assert parse(ask(sentio, "map:frobnicate"))[:1] == (3,)          # no command handler
    assert parse(ask(sentio, "*FOO"))[:1] == (3,)
    assert parse(ask(sentio, "move_chuck_contact"))[0] == 2           # no current die
    assert parse(ask(sentio, "map:die:get_current_index"))[0] == 2
    assert parse(ask(sentio, "map:step_die 1"))[0] == 7               # parameter count
    assert parse(ask(sentio, "map:step_die a, 0"))[0] == 6            # not a number
    assert parse(ask(sentio, "map:step_die 0, 0"))[0] == 8            # not on the wafer
    assert parse(ask(sentio, "map:step_die 2, 0, 16"))[0] == 8        # no subsite 16
    assert parse(ask(sentio, "map:step_die_seq 52"))[0] == 8
    assert parse(ask(sentio, "map:get_num_dies Bogus"))[0] == 6
    assert parse(ask(sentio, "map:open /no/such/map.yaml"))[0] == 9
    assert parse(ask(sentio, "wait_complete 99, 1"))[0] == 32


def test_goto_positions_heights_and_clock(sentio: SentioSim, bench: Bench) -> None:
    t0 = bench.now_s
    assert ask(sentio, "map:step_die 5, 7, 6") == "1024,0,5,7,6"   # (5, 7) is the last die
    assert bench.now_s - t0 == pytest.approx(0.3)                    # one die step
    row = sentio.wafer.sites[sentio.wafer.site_index(sentio.route[sentio.index], "D12")]
    x, y = round(row["x_mm"] * 1000), round(row["y_mm"] * 1000)
    assert ask(sentio, "get_chuck_xy Wafer, Z") == f"0,0,{x},{y}"
    assert ask(sentio, "chuck:get_xy Z") == f"0,0,{x},{y}"
    assert ask(sentio, "get_chuck_z Z") == "0,0,9700"
    t1 = bench.now_s
    ask(sentio, "map:subsite:step_next")
    assert bench.now_s - t1 == pytest.approx(0.05)                   # a subsite step
    ask(sentio, "move_chuck_contact")
    assert bench.now_s - t1 == pytest.approx(0.15)                   # + a z move
    assert ask(sentio, "get_chuck_z Z") == "0,0,10000"
    assert ask(sentio, "get_chuck_site_heights Wafer") == "0,0,10000,9700,0,0"
    assert ask(sentio, "get_chuck_site_status Wafer") == "0,0,1,1,0,1"
    seq = parse(ask(sentio, "map:die:get_current_index"))[3].split(",")[0]
    ask(sentio, "move_chuck_separation")
    assert ask(sentio, f"map:step_die_seq {seq}, 2") == "1024,0,5,7,2"
    assert ask(sentio, "map:step_die_seq 0, 2") == "0,0,2,0,2"


def test_bins(sentio: SentioSim) -> None:
    ask(sentio, "map:step_first_die")
    assert ask(sentio, "map:bin_step_next_die 7") == "0,0,3,0,0"
    ask(sentio, "map:subsite:bin_step_next 4")
    assert ask(sentio, "map:bins:set_bin 9, 5, 7, 3") == "0,0,"
    assert sentio.bins == {(2, 0, 0): 7, (3, 0, 0): 4, (5, 7, 3): 9}


def test_async_commands_take_bench_time(bench: Bench) -> None:
    s = SentioSim(bench, "sentio", {"idn": IDN, "async_time_s": 2.0})
    a, b = parse(ask(s, "start_async_cmd")), parse(ask(s, "start_async_cmd"))
    assert (a[0], a[2], b[2]) == (0, 1, 2)
    assert parse(ask(s, "query_command_status 1"))[0] == 30             # still pending
    t = bench.now_s
    assert ask(s, "wait_complete 1, 10") == "0,1,"
    assert bench.now_s - t == pytest.approx(2.0, abs=1e-3)
    assert ask(s, "query_command_status 2") == "0,2,"                  # done by now
    c = parse(ask(s, "start_async_cmd"))[2]
    assert parse(ask(s, f"wait_complete {c}, 0.5"))[0] == 19            # timeout
    assert ask(s, f"abort_command {c}") == f"0,{c},"
    s.handle(b"start_async_cmd")
    assert ask(s, "wait_all 10") == "0,0,"
    assert not s._jobs


def test_map_file_sets_route_and_subsites(bench: Bench, tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("dies: [[5, 7], [2, 0], [4, 3]]\nsites: [D33, D00]\n")
    s = SentioSim(bench, "sentio", {"idn": IDN, "map": str(path)})
    assert ask(s, "map:get_num_dies Selected") == "0,0,3"
    assert ask(s, "map:get_num_dies Total") == "0,0,52"
    assert ask(s, "map:subsite:get_num") == "0,0,2"
    assert ask(s, "map:step_first_die") == "0,0,5,7,0"
    ask(s, "map:subsite:step_next")
    assert s.sites[s.site] == "D00"
    assert ask(s, "map:step_next_die") == "2048,0,2,0,1"               # the last subsite
    assert parse(ask(s, "map:step_next_die"))[:2] == (0, 1 | 2)       # last die, last site
    other = tmp_path / "n.yaml"
    other.write_text("dies: all\nsites: [D11]\n")
    assert ask(s, f"map:open {other}") == "0,0,"
    assert ask(s, "map:subsite:get_num") == "0,0,1"
    bad = tmp_path / "bad.yaml"
    bad.write_text("dies: [[0, 0]]\n")
    err, _, _, msg = parse(ask(s, f"map:open {bad}"))
    assert err == 2 and "no die at column 0, row 0" in msg
    with pytest.raises(ParameterError, match="sites must be"):
        bad.write_text("sites: [X9]\n")
        SentioSim(bench, "sentio", {"map": str(bad)})


def test_options_are_checked(bench: Bench) -> None:
    with pytest.raises(ParameterError, match="unknown option"):
        SentioSim(bench, "sentio", {"speed": 1})
    with pytest.raises(ParameterError, match="step_time_s"):
        SentioSim(bench, "sentio", {"step_time_s": -1})
    with pytest.raises(ParameterError, match="no probe station 'other'"):
        SentioSim(bench, "other", {})


def test_socket_resource_on_the_packaged_bench() -> None:
    """The default bench has SENTIO on a TCPIP SOCKET resource (pyvisa-sim's parser takes
    ``TCPIP SOCKET`` eom entries), LF-terminated both ways; CR LF from a client works too."""
    rm = pyvisa.ResourceManager(f"{default_bench_path()}@dendrosim")
    try:
        assert "TCPIP0::192.0.2.20::35555::SOCKET" in rm.list_resources("?*")
        p = rm.open_resource("TCPIP0::192.0.2.20::35555::SOCKET", read_termination="\n",
                             write_termination="\r\n")
        assert p.query("*IDN?") == IDN
        p.write("*RCS 1")
        assert p.query("map:open wafer-map.yaml") == "0,0,"   # next to the bench file
        assert p.query("map:get_num_dies Selected") == "0,0,52"
        assert p.query("map:step_first_die") == "0,0,2,0,0"
        assert p.query("move_chuck_contact") == "0,0,10000"
        assert p.query("map:step_next_die").startswith("38,0,")
        assert p.query("move_chuck_separation") == "0,0,9700"
    finally:
        rm.visalib.reset()
        rm.close()

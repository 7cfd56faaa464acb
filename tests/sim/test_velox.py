"""Simulated FormFactor Velox: ``<code>: <values>`` framing, route and 703 at the end of the
wafer, subdies, read-back, heights, contact with no height set, and the GPIB resource."""

from __future__ import annotations

import pytest
import pyvisa

from sim_backend.bench import Bench
from sim_backend.instruments import model_class
from sim_backend.instruments.velox import VeloxSim
from sim_backend.visa import default_bench_path


@pytest.fixture
def bench() -> Bench:
    return Bench({"seed": 2, "noise": False,
                  "wafer": {"velox": {"id": 2, "probe": {"smu/1": "dendrite"}}}})


@pytest.fixture
def velox(bench: Bench) -> VeloxSim:
    return VeloxSim(bench, "velox", {"idn": "FormFactor,Velox,0,3.0"})


def ask(model, text: str) -> str:
    reply = model.handle(text.encode())
    assert reply is not None and reply.endswith(b"\n") and reply.count(b"\n") == 1
    return reply.decode().rstrip("\n")


def values(reply: str) -> list[str]:
    code, _, rest = reply.partition(":")
    assert code == "0", reply
    return rest.split()


def test_identity_and_framing(velox: VeloxSim) -> None:
    assert model_class("formfactor_velox") is VeloxSim
    assert ask(velox, "*IDN?") == "FormFactor,Velox,0,3.0"
    assert ask(velox, "GetNumSelectedDies") == "0: 52"
    assert ask(velox, "ReadChuckHeights Y") == "0: 10000 0 0 300 0"
    assert ask(velox, "ReadProberStatus") == "0: 0 0 R 0"
    assert ask(velox, "Frobnicate 1 2") == "1: Unknown command Frobnicate"
    assert ask(velox, "StepToDie x") == "2: Invalid parameter 'x'"
    assert ask(velox, "stepfirstdie") == "0: 2 0 0 15"         # commands are case-blind
    assert velox.handle(b"") is None


def test_route_and_end_of_wafer(velox: VeloxSim) -> None:
    wafer = velox.wafer
    expected = [f"{c} {r}" for c, r in zip(wafer.dies["col"], wafer.dies["row"], strict=True)]
    for i in (1, 2, 52):
        assert ask(velox, f"GetSelectedDieCoords {i}") == f"0: {expected[i - 1]}"
    assert ask(velox, "GetSelectedDieCoords 53").startswith("8: ")
    seen = [" ".join(values(ask(velox, "StepFirstDie"))[:2])]
    while True:
        reply = ask(velox, "StepNextDie")
        if not reply.startswith("0:"):
            break
        die_x, die_y, site, last = values(reply)
        assert (site, last) == ("0", "15")
        seen.append(f"{die_x} {die_y}")
    assert seen == expected
    assert reply == "703: End of wafer"


def test_goto_subdies_and_read_back(velox: VeloxSim, bench: Bench) -> None:
    assert ask(velox, "ReadMapPosition2").startswith("2: ")      # no die yet
    assert values(ask(velox, "StepFirstDie")) == ["2", "0", "0", "15"]
    t = bench.now_s
    assert values(ask(velox, "StepNextDie 4 3 6")) == ["4", "3", "6", "15"]
    assert bench.now_s - t == pytest.approx(0.3)
    assert values(ask(velox, "StepNextDie 4 3 -1")) == ["4", "3", "0", "15"]  # subdie 0
    assert values(ask(velox, "StepNextSubDie 14")) == ["14", "15"]
    assert values(ask(velox, "StepNextSubDie")) == ["15", "15"]
    assert ask(velox, "StepNextSubDie").startswith("703: ")
    assert ask(velox, "StepNextSubDie 16").startswith("8: ")
    assert ask(velox, "StepNextDie 0 0 0").startswith("8: ")   # not a die of the wafer
    row = velox.wafer.sites[velox.wafer.site_index(velox.route[velox.index], "D33")]
    x, y = round(row["x_mm"] * 1000), round(row["y_mm"] * 1000)
    assert ask(velox, "ReadChuckPosition Y Z") == f"0: {x} {y} 9700"
    home = velox.wafer.sites[velox.wafer.site_index(velox.route[0], "D00")]
    hx, hy = round(home["x_mm"] * 1000), round(home["y_mm"] * 1000)
    index = velox.index + 1
    assert ask(velox, "ReadMapPosition2 0 R") == (
        f"0: 4 3 {x - hx} {y - hy} 15 15 {index} 52 0 0")
    assert values(ask(velox, "StepToDie 1 2")) == ["2", "0", "2", "15"]


def test_contact_steps_through_separation_and_bins(velox: VeloxSim, bench: Bench) -> None:
    station = bench.station("velox")
    ask(velox, "StepFirstDie")
    assert ask(velox, "MoveChuckContact 100") == "0:"
    assert ask(velox, "ReadProberStatus") == "0: 0 1 R 0"
    assert station.contact == (velox.route[0], "D00")
    t = bench.now_s
    assert values(ask(velox, "BinStepDie 3")) == ["3", "0", "0", "15"]   # stays on subdie 0
    assert bench.now_s - t == pytest.approx(0.1 + 0.3 + 0.1)   # down, step, back up
    assert station.contact == (velox.route[1], "D00")
    assert ask(velox, "BinMapDie 5") == "0: 3 0"
    assert velox.bins == {(2, 0, 0): 3, (3, 0, 0): 5}
    assert ask(velox, "MoveChuckSeparation") == "0:"
    assert station.contact is None
    assert ask(velox, "ReadChuckPosition").endswith(" 9700")
    ask(velox, "StepFirstDie")                                    # clears the bins
    assert velox.bins == {}


def test_no_contact_height(bench: Bench) -> None:
    v = VeloxSim(bench, "velox", {"contact_um": None})
    ask(v, "StepFirstDie")
    assert ask(v, "ReadChuckHeights Y") == "0: -1 0 0 0 0"
    assert ask(v, "MoveChuckContact").startswith("23: ")
    assert ask(v, "MoveChuckSeparation").startswith("23: ")
    assert bench.station("velox").contact is None


def test_open_wafer_map(velox: VeloxSim, tmp_path) -> None:
    path = tmp_path / "route.yaml"
    path.write_text("dies: [[3, 0], [2, 0]]\nsites: [D00, D01]\n")
    assert ask(velox, f'OpenWaferMap "{path}"') == "0:"
    assert ask(velox, "GetNumSelectedDies") == "0: 2"
    assert values(ask(velox, "StepFirstDie")) == ["3", "0", "0", "1"]
    assert values(ask(velox, "StepNextDie")) == ["2", "0", "0", "1"]
    assert ask(velox, "StepNextDie") == "703: End of wafer"
    assert ask(velox, "OpenWaferMap /no/such.map").startswith("9: ")


def test_gpib_resource_on_the_packaged_bench() -> None:
    rm = pyvisa.ResourceManager(f"{default_bench_path()}@dendrosim")
    try:
        v = rm.open_resource("GPIB0::28::INSTR", read_termination="\n",
                             write_termination="\r\n")
        assert v.query("*IDN?") == "FormFactor,Velox,0,3.0"
        assert v.query("StepFirstDie") == "0: 2 0 0 15"
        assert v.query("MoveChuckContact") == "0:"
        assert v.query("MoveChuckSeparation") == "0:"
    finally:
        rm.visalib.reset()
        rm.close()

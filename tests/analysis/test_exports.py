"""Exports of synapse statistics to aihwkit / NeuroSim / MemTorch files: exact numbers from a
synthetic metric table with known values, parse-back of the written files, one-line errors, and a
closed loop through the simulated synapse-write-verify protocol."""

from __future__ import annotations

import json
import math
import re

import pandas as pd
import pytest
import yaml

import dendrolab.cli
from analysis import exports as E
from analysis import metrics as M
from dendrolab.errors import ParameterError
from protocols.runner import run_protocol


def _table(g_unit: str = "S", scale: float = 1.0) -> pd.DataFrame:
    """G window 4..16 uS; targets 5, 10, 15 uS reached in 10, 5, 5 pulses -> step 1 uS, N = 12."""
    rows = [("g_min", 4e-6, "S", "", "{}"), ("g_max", 16e-6, "S", "", "{}")]
    for step, n, g in (("program[0]", 10, 5e-6), ("program[1]", 5, 10e-6),
                       ("program[2]", 5, 15e-6)):
        rows += [("pulses_to_target", n, "1", step, step), ("g_final", g, "S", step, step)]
    out = pd.DataFrame(rows, columns=["metric", "value", "unit", "step", "loop_vars"])
    out["uuid"], out["quality"] = "u1", "ok"
    s = out["unit"] == "S"
    out.loc[s, "value"] *= scale
    out.loc[s, "unit"] = g_unit
    return out


def _spreads() -> pd.DataFrame:
    return pd.DataFrame({"metric": ["g_max", "g_min", "pulses_to_target"],
                         "space": ["ln", "ln", "linear"],
                         "sigma_ln": [0.1, 0.2, math.nan], "cv": [math.nan, math.nan, 0.25]})


def test_stats_exact() -> None:
    st = E.device_stats(_table())
    assert st.g_min_s == pytest.approx(4e-6) and st.g_max_s == pytest.approx(16e-6)
    assert st.step_s == pytest.approx(1e-6) and st.n_levels == 12


def test_units_in_microsiemens_give_same_stats() -> None:
    st = E.device_stats(_table("uS", 1e6))
    assert st.g_max_s == pytest.approx(16e-6) and st.n_levels == 12


def test_aihwkit_exact() -> None:
    d = E.aihwkit_device(E.device_stats(_table()), _spreads())
    dev = d["device"]
    assert dev["dw_min"] == pytest.approx(2 / 12)
    assert (dev["w_min"], dev["w_max"], dev["up_down"]) == (-1.0, 1.0, 0.0)
    k = 2 / 12e-6
    assert dev["w_max_dtod"] == pytest.approx(k * math.sqrt(math.expm1(0.01)) * 16e-6)
    assert dev["w_min_dtod"] == pytest.approx(k * math.sqrt(math.expm1(0.04)) * 4e-6)
    assert dev["dw_min_dtod"] == pytest.approx(0.25)
    assert d["conductance_uS"] == pytest.approx({"g_min": 4.0, "g_max": 16.0})
    assert "dw_min_std" in d["not_measured"] and "dw_min_std" not in dev


def test_neurosim_and_memtorch_exact() -> None:
    st = E.device_stats(_table())
    ns = E.neurosim_device(st, _spreads())
    assert ns["maxConductance"] == pytest.approx(16e-6) and ns["minConductance"] == 4e-6
    assert ns["maxNumLevelLTP"] == ns["maxNumLevelLTD"] == 12 and ns["nonlinearWrite"] is False
    assert "NL_LTP" not in ns and "sigmaCtoC" not in ns
    assert ns["maxConductanceVar"] == pytest.approx(math.sqrt(math.expm1(0.01)) * 16e-6)
    ns2 = E.neurosim_device(st, nl_ltp=2.4, nl_ltd=-4.88)
    assert (ns2["NL_LTP"], ns2["NL_LTD"], ns2["nonlinearWrite"]) == (2.4, -4.88, True)
    mt = E.memtorch_params(st)
    assert mt["memristor_model_params"] == pytest.approx({"r_on": 62500.0, "r_off": 250000.0})
    assert mt["non_idealities"]["FiniteConductanceStates"]["conductance_states"] == 12


def test_dendrite_nl_is_not_exported() -> None:
    t = pd.concat([_table(), pd.DataFrame({"metric": ["branch_nl", "iv_ratio"],
                                           "value": [0.5, 7.0], "unit": ["1", "1"],
                                           "uuid": "u2", "quality": "ok"})])
    ns = E.neurosim_device(E.device_stats(t))
    assert "NL_LTP" not in ns and "NL" not in ns


def test_files_parse_back(tmp_path) -> None:
    paths = E.write_exports(_table(), tmp_path, _spreads(), nl_ltp=1.75, nl_ltd=1.46)
    aih = json.loads(paths["aihwkit"].read_text())
    assert aih["device"]["dw_min"] == pytest.approx(2 / 12)
    mt = yaml.safe_load(paths["memtorch"].read_text())
    r_on = mt["memristor_model_params"]["r_on"]["StochasticParameter"]
    assert r_on["loc"] == pytest.approx(62500.0)
    assert r_on["scale"] == pytest.approx(62500.0 * math.sqrt(math.expm1(0.01)))
    text = paths["neurosim"].read_text()
    vals = dict(re.findall(r"^(\w+) = ([^;]+);$", text, re.M))
    assert float(vals["maxConductance"]) == pytest.approx(16e-6)
    assert int(vals["maxNumLevelLTD"]) == 12 and float(vals["NL_LTD"]) == 1.46
    assert vals["conductanceRangeVar"] == "true"
    assert "onoffratio = 4" in text


def test_n_levels_override() -> None:
    t = _table()
    st = E.device_stats(t[~t["metric"].isin(["pulses_to_target", "g_final"])], n_levels=60)
    assert st.n_levels == 60 and st.step_s == pytest.approx(12e-6 / 60)


@pytest.mark.parametrize("drop, name", [(["g_max"], "g_max"),
                                        (["pulses_to_target"], "pulses_to_target")])
def test_missing_metric_one_line_error(drop, name) -> None:
    t = _table()
    with pytest.raises(ParameterError, match=name) as e:
        E.device_stats(t[~t["metric"].isin(drop)])
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("bad, match", [
    (lambda t: t.assign(unit=t["unit"].replace("S", "ohm")), "unit"),
    (lambda t: t.drop(columns="value"), "value"),
])
def test_bad_input_one_line_error(bad, match) -> None:
    with pytest.raises(ParameterError, match=match) as e:
        E.device_stats(bad(_table()))
    assert "\n" not in str(e.value)


def test_bad_spreads_and_nl() -> None:
    st = E.device_stats(_table())
    with pytest.raises(ParameterError, match="2 rows"):
        E.aihwkit_device(st, pd.concat([_spreads(), _spreads()]))
    with pytest.raises(ParameterError, match="both"):
        E.neurosim_device(st, nl_ltp=1.0)


def test_closed_loop_simulator(tmp_path) -> None:
    path = tmp_path / "wv.h5"
    run_protocol("synapse-write-verify", dendrolab.cli._sim_bench(), path)
    table = M.extract([path])
    st = E.device_stats(table)
    g_final = table.loc[table["metric"] == "g_final", "value"].to_numpy(float)
    # the window holds every reached conductance; 5 -> 10 -> 15 uS targets set the step
    assert st.g_min_s <= g_final.min() and st.g_max_s >= g_final.max() > 10e-6
    n = table.loc[table["metric"] == "pulses_to_target", "value"].to_numpy(float)
    expect = (abs(g_final[1] - g_final[0]) + abs(g_final[2] - g_final[1])) / (n[1] + n[2])
    assert st.step_s == pytest.approx(expect)
    assert st.n_levels == round((st.g_max_s - st.g_min_s) / expect)
    paths = E.write_exports(table, tmp_path / "out")
    assert json.loads(paths["aihwkit"].read_text())["device"]["dw_min"] > 0

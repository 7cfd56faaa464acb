"""``analysis.report``: a folder of simulated runs (bench dendrite relaxation and soma I-V, a tiny
simulated wafer) plus corrupt, truncated and foreign files, analysed end to end; the tables are
checked against the metric table they are built from (closed loop), the grouping against the
wafer layout that was run, and the report page for being self-contained."""

from __future__ import annotations

import math
import re
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from analysis.report import NO_WAFER, _summarize, analyze, run_analysis
from dendrolab.cli import _sim_bench, _wafer_sim_bench
from dendrolab.errors import ParameterError
from protocols.runner import run_protocol
from protocols.wafer import run_wafer

BAD_FILES = ("corrupt.h5", "truncated.h5", "foreign.h5")


def make_folder(root: Path) -> Path:
    """Two bench runs, a 2-die x 2-site wafer of wafer-iv, and three unreadable files."""
    data = root / "data"
    data.mkdir(parents=True)
    run_protocol("dendrite-relaxation", _sim_bench(), data / "relax.h5")
    run_protocol("soma-iv", _sim_bench(), data / "soma.h5")
    run_wafer(["wafer-iv"], _wafer_sim_bench(), "W1", data / "wafers", dies="2,0;3,0",
              sites="D00,D11")
    (data / "corrupt.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    whole = (data / "relax.h5").read_bytes()
    (data / "truncated.h5").write_bytes(whole[: len(whole) // 2])
    with h5py.File(data / "foreign.h5", "w") as f:
        f["x"] = np.arange(3)
    return data


@pytest.fixture(scope="module")
def analysed(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("report")
    data = make_folder(root)
    calls: list[tuple[int, int]] = []
    result = run_analysis(data, root / "out", lambda d, t: calls.append((d, t)))
    return data, result, calls


def test_tables_are_written_and_hold_the_metrics(analysed) -> None:
    _, result, calls = analysed
    out = result.out_dir
    for name in ("metrics.csv", "metrics.parquet", "summary.csv", "problems.csv", "report.html"):
        assert (out / name).is_file(), name
    assert result.runs == 6
    assert calls == [(i, 6) for i in range(1, 7)]
    metrics = pd.read_csv(out / "metrics.csv")
    relax = metrics[metrics["protocol"] == "dendrite-relaxation"]
    on_off = relax[relax["metric"] == "on_off_ratio"]
    assert len(on_off) >= 1 and (on_off["value"] > 1).all()  # ON reads above OFF reads
    assert set(metrics[metrics["protocol"] == "soma-iv"]["metric"]) >= {"v_th", "v_hold"}
    wafer = metrics[metrics["protocol"] == "wafer-iv"]
    assert set(wafer["wafer"]) == {"W1"}
    assert sorted(set(zip(wafer["die_col"], wafer["subsite"], strict=True))) == [
        (2, 0), (2, 5), (3, 0), (3, 5)]
    parquet = pd.read_parquet(out / "metrics.parquet")
    assert len(parquet) == len(metrics)
    np.testing.assert_allclose(parquet["value"].to_numpy(float), metrics["value"].to_numpy(float))
    assert str(parquet["die_col"].dtype) == "Int64"
    assert "error" not in set(metrics["metric"])


def test_problems_list_every_unreadable_file(analysed) -> None:
    _, result, _ = analysed
    problems = pd.read_csv(result.out_dir / "problems.csv")
    assert sorted(Path(p).name for p in problems["path"]) == sorted(BAD_FILES)
    assert problems["reason"].str.len().gt(0).all()
    assert set(problems["kind"]) <= {"not-hdf5", "truncated", "foreign", "corrupt", "unreadable"}
    assert dict(zip(problems["path"].map(lambda p: Path(p).name), problems["kind"],
                    strict=True))["foreign.h5"] == "foreign"


def test_summary_closes_the_loop_with_the_metric_table(analysed) -> None:
    _, result, _ = analysed
    summary = pd.read_csv(result.out_dir / "summary.csv")
    metrics = result.metrics
    assert set(summary["level"]) == {"all", "wafer", "die", "device"}
    # every 'all' row: n and median of that protocol's metric values
    for row in summary[summary["level"] == "all"].itertuples():
        values = metrics[(metrics["protocol"] == row.protocol) & (metrics["metric"] == row.metric)
                         & (metrics["quality"] != "failed")]["value"].dropna()
        assert row.n == len(values)
        assert math.isclose(row.median, float(np.median(values)), rel_tol=1e-9)
    iv = summary[(summary["protocol"] == "wafer-iv") & (summary["metric"] == "g_linear")]
    assert iv[iv["level"] == "wafer"][["wafer", "n"]].values.tolist() == [["W1", 4]]
    dies = iv[iv["level"] == "die"]
    assert sorted(dies["die_col"]) == [2, 3] and set(dies["n"]) == {2}
    assert len(iv[iv["level"] == "device"]) == 4
    assert set(iv["space"]) == {"ln"}  # a conductance is log-normal: sigma of ln x
    bench = summary[(summary["level"] == "wafer") & (summary["protocol"] == "soma-iv")]
    assert set(bench["wafer"]) == {NO_WAFER}
    relax = summary[(summary["level"] == "device") & (summary["protocol"]
                                                      == "dendrite-relaxation")]
    assert set(relax["device_id"]) == {"d1"}


def test_report_page_is_self_contained(analysed) -> None:
    _, result, _ = analysed
    page = result.report.read_text(encoding="utf-8")
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    n_hist = result.metrics[result.metrics["quality"] != "failed"]["protocol"].nunique()
    wafer_metrics = result.metrics[result.metrics["wafer"].notna()
                                   & (result.metrics["quality"] != "failed")]
    n_maps = wafer_metrics.groupby(["wafer", "protocol", "metric"]).ngroups
    assert n_maps >= 2
    assert "<h2>Wafer maps</h2>" in page
    # a histogram figure per protocol + a die map per wafer metric + a bin map per wafer run
    # (the journal's contact verdicts) + a run plot per protocol; 2 dies: no variation panels
    assert "<h2>Wafer variation</h2>" in page and "wafer W1: bin map" in page
    assert len(images) == n_hist + n_maps + 1 + 3
    assert all(img.startswith("iVBORw0KGgo") for img in images)  # PNG signature in base64
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)
    assert not re.search(r"(https?|ftp):|//[a-z0-9]|href=|url\(", text, re.IGNORECASE)
    assert re.findall(r'src="([^"]*)"', text) == [""] * len(images)
    assert "<script" not in page and "<link" not in page
    for name in BAD_FILES:
        assert name in page


def test_by_wafer_groups_only_by_wafer(analysed, tmp_path: Path) -> None:
    data, _, _ = analysed
    result = run_analysis(data / "wafers", tmp_path / "w", by="wafer")
    assert result.runs == 4 and result.problems.empty
    summary = result.summary
    assert set(summary["level"]) == {"wafer"} and set(summary["wafer"]) == {"W1"}
    assert set(summary["n"]) == {4}
    assert analyze(data / "wafers", tmp_path / "w2") == tmp_path / "w2" / "report.html"


def test_failed_metrics_stay_out_of_the_summary() -> None:
    table = pd.DataFrame({
        "protocol": "p", "wafer": [None] * 4, "die_col": pd.array([None] * 4, dtype="Int64"),
        "die_row": pd.array([None] * 4, dtype="Int64"), "subsite": pd.array([None] * 4,
                                                                              dtype="Int64"),
        "device_id": "d", "metric": "r", "unit": "ohm", "value": [1e3, 1e4, 1e5, 1e12],
        "quality": ["ok", "ok", "poor", "failed"]})
    summary = _summarize(table, "auto")
    row = summary[summary["level"] == "all"].iloc[0]
    assert row["n"] == 3 and row["median"] == pytest.approx(1e4)
    assert row["sigma_ln"] == pytest.approx(math.log(10))  # ln values 3, 4, 5 (x ln 10)
    assert set(summary["level"]) == {"all", "wafer", "device"}


@pytest.mark.parametrize("sources, by, text", [
    ("nosuch-folder", "auto", "neither a file"),
    ("EMPTY", "auto", "no run files"),
    ("EMPTY", "lot", "--by"),
])
def test_bad_input_is_a_parameter_error(tmp_path: Path, sources: str, by: str, text: str) -> None:
    (tmp_path / "empty").mkdir()
    src = tmp_path / ("empty" if sources == "EMPTY" else sources)
    with pytest.raises(ParameterError, match=text):
        run_analysis(src, tmp_path / "out", by=by)
    assert not (tmp_path / "out").exists()

"""dendrolab next to the tools a lab would otherwise pick, on identical simulated SMU traffic.

The same 1-D sweep (set V on a Keithley 2450, read I, persist v, i, t per point) through:

  raw-pyvisa-sim      raw pyvisa over plain pyvisa-sim (@sim): the peers' transport floor
  pymeasure           PyMeasure Instrument + Procedure + Worker + Results CSV over pyvisa-sim
  qcodes              QCoDeS VisaInstrument + Measurement + DataSaver + SQLite over pyvisa-sim
  pymeasure-dendrosim the same PyMeasure stack over @dendrosim (same transport as dendrolab)
  qcodes-dendrosim    the same QCoDeS stack over @dendrosim (same transport as dendrolab)
  raw-dendrosim       raw pyvisa over @dendrosim, one compound message: dendrolab's floor
  dendrolab           smu.measure_at(v) + RunWriter append over @dendrosim
  dendrolab-2msg      smu.set_voltage(v) + smu.measure_iv() + append (two round trips)
  dendrolab-buffered  smu.list_sweep (hardware buffer) + write_block

The pyvisa-sim peers talk to benchmarks/compare_sim.yaml: same address, *IDN?, configure
commands and per-point messages as the @dendrosim 2450. Every case runs in a fresh subprocess
(``--child``), repeats are interleaved across cases so machine noise hits all of them alike, and
every timed run reads its rows back from disk. Then, per tool: RSS growth over --memory-points
points, and a kill -9 after --crash-seconds with the rows recovered from its file.

Results go to OUT/compare.md, OUT/compare.csv and OUT/compare.png (default benchmarks/results)
and the table is printed. Peers that are not installed are reported as such:
    pip install -e ".[compare]" && python benchmarks/compare.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare_cases import CASES, missing, report
from compare_cases import child as child_mode
from compare_cases.common import Progress

HERE = Path(__file__).resolve()
MEMORY_CASES = ("raw-pyvisa-sim", "pymeasure", "qcodes", "raw-dendrosim", "dendrolab",
                "dendrolab-buffered")
CRASH_CASES = ("raw-pyvisa-sim", "pymeasure", "qcodes", "dendrolab", "dendrolab-buffered")
DEFAULTS = {"points": 20_000, "peer_points": 20_000, "repeats": 3, "memory_points": 1_000_000,
            "crash_seconds": 6.0}
QUICK = {"points": 200, "peer_points": 200, "repeats": 1, "memory_points": 20_000,
         "crash_seconds": 1.0}
CRASH_CAPACITY = 5_000_000  # declared rows of the killed runs (dendrolab must declare them)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="benchmarks/compare.py", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--points", type=int,
                   help="points per timed sweep for the @dendrosim cases (default 20000)")
    p.add_argument("--peer-points", type=int,
                   help="points per timed sweep for the peer cases (default 20000: the same "
                        "sweep as dendrolab's)")
    p.add_argument("--repeats", type=int,
                   help="subprocess runs per case; median and min-max are reported (default 3)")
    p.add_argument("--cases", default=",".join(CASES),
                   help=f"comma list of cases (default all: {','.join(CASES)})")
    p.add_argument("--out", type=Path, default=HERE.parent / "results",
                   help="folder for compare.md/.csv/.png/.json (default benchmarks/results)")
    p.add_argument("--memory-points", type=int,
                   help="points of the memory run; RSS after 10^4 points vs at the end "
                        "(default 1000000)")
    p.add_argument("--memory-budget-s", type=float, default=300.0,
                   help="a memory run still going this long after its first point is stopped; "
                        "the table shows the points it reached (default 300)")
    p.add_argument("--skip-memory", action="store_true", help="no memory runs")
    p.add_argument("--crash-seconds", type=float,
                   help="kill -9 the crash run this long after its first stored point "
                        "(default 6: past QCoDeS's 5 s default write period)")
    p.add_argument("--skip-crash", action="store_true", help="no crash-durability runs")
    p.add_argument("--crash-cases",
                   help="comma list of cases to kill (default: every case that stores data)")
    p.add_argument("--no-plot", action="store_true", help="skip compare.png")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: defaults become 200 points (peers too), 1 repeat, "
                        "20000-point memory runs, 1 s crash runs; explicit flags still win")
    p.add_argument("--keep", action="store_true", help="keep the work folder of run files")
    g = p.add_argument_group("child mode (used by the harness itself)")
    g.add_argument("--child", choices=("run", "memory", "crash", "rows"),
                   help="run one mode of one case in this process and write its JSON: run = "
                        "warm-up + timed full stack + layers; memory; crash (killed by the "
                        "parent); rows (read back a store)")
    g.add_argument("--case", help="the one case a child runs")
    g.add_argument("--json", type=Path, help="where the child writes its result")
    g.add_argument("--workdir", type=Path, help="the child's scratch folder")
    g.add_argument("--store", type=Path, help="store file of a crash or rows child")
    g.add_argument("--progress", type=Path, help="progress counter file of a crash child")
    args = p.parse_args(argv)
    defaults = QUICK if args.quick else DEFAULTS
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def spawn(mode: str, case: str, points: int, workdir: Path, json_out: Path,
          **extra: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, str(HERE), "--child", mode, "--case", case, "--points", str(points),
           "--workdir", str(workdir), "--json", str(json_out)]
    for key, value in extra.items():
        cmd += [f"--{key}", str(value)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen[bytes], json_out: Path, timeout: float) -> dict[str, Any]:
    """Wait for a child; its JSON result, or an error entry (with its stderr tail)."""
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return {"error": f"timed out after {timeout:.0f} s"}
    if json_out.is_file():
        result = json.loads(json_out.read_text())
        if "error" in result:
            log(err.decode(errors="replace")[-2000:])
        return result
    tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
    return {"error": f"exit {proc.returncode}: {tail[0]}"}


def run_timed(cases: list[str], args: argparse.Namespace, work: Path
              ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, str]]:
    """All repeats, interleaved across cases; per case the list of child results."""
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in cases}
    errors: dict[str, str] = {}
    for rep in range(args.repeats):
        for case in cases:
            if case in errors:
                continue
            n = args.peer_points if CASES[case].peer else args.points
            d = work / f"{case}-run{rep}"
            out = d / "result.json"
            d.mkdir(parents=True)
            t_spawn = time.monotonic()
            res = finish(spawn("run", case, n, d, out), out, timeout=1800)
            if "error" in res:
                errors[case] = f"error: {res['error']}"
                log(f"[{case}] repeat {rep + 1}: {res['error']}")
                continue
            if res.get("first_point_mono") is not None:
                res["ttfp_s"] = res["first_point_mono"] - t_spawn
            runs[case].append(res)
            layers = ", ".join(f"{k} {1e6 * v['s'] / n:.1f}" for k, v in res["layers"].items())
            log(f"[{case}] repeat {rep + 1}/{args.repeats}, N={n}: {layers} µs/pt")
    return runs, errors


def run_memory(cases: list[str], args: argparse.Namespace, work: Path
               ) -> dict[str, dict[str, Any]]:
    """One memory run per case. A run that is still going --memory-budget-s after its first
    point is killed; the RSS samples it left in its progress file are reported with the point
    count it reached (slow peers, or a per-point cost that grows with the run)."""
    out: dict[str, dict[str, Any]] = {}
    for case in cases:
        m = args.memory_points
        d = work / f"{case}-memory"
        d.mkdir(parents=True)
        progress, result = d / "progress", d / "result.json"
        Progress(progress)
        log(f"[{case}] memory run, {m:,} points (budget {args.memory_budget_s:.0f} s) ...")
        proc = spawn("memory", case, m, d, result, progress=progress)
        spawned, first, stopped = time.monotonic(), None, False
        while proc.poll() is None:
            now = time.monotonic()
            if first is None and Progress.read(progress):
                first = now
            if now - (first or spawned) > args.memory_budget_s + (0 if first else 120):
                proc.kill()
                stopped = True
                break
            time.sleep(0.1)
        if stopped:
            proc.communicate()
            res: dict[str, Any] = {}
        else:
            res = finish(proc, result, timeout=600)
            if "error" in res:
                out[case] = res
                continue
        res.update(_memory_samples(Progress.read_all(progress)))
        if res["mark_points"] == 0:
            out[case] = {"error": "no RSS sample (never reached the first mark)"}
            continue
        notes = []
        if stopped:
            notes.append(f"stopped by the {args.memory_budget_s:.0f} s budget at "
                         f"{res['points']:,} of {m:,} points")
        elif res.get("rows") is not None and res["rows"] != m:
            notes.append(f"{res['rows']:,} rows on disk, expected {m:,}")
        res["note"] = "; ".join(notes)
        log(f"[{case}] RSS {res['rss_mark_kib'] / 1024:.1f} MiB after "
            f"{res['mark_points']:,} points, {res['rss_end_kib'] / 1024:.1f} MiB after "
            f"{res['points']:,}; last 10^3 points at {res['recent_us']:.1f} µs/pt")
        out[case] = res
    return out


def _memory_samples(slots: tuple[int, ...]) -> dict[str, Any]:
    p = Progress
    span = slots[p.LAST_POINTS] - slots[p.MARK_POINTS]
    return {"points": slots[p.LAST_POINTS], "mark_points": slots[p.MARK_POINTS],
            "rss_mark_kib": slots[p.MARK_RSS], "rss_end_kib": slots[p.LAST_RSS],
            "s": (slots[p.LAST_NS] - slots[p.MARK_NS]) / 1e9,
            "us_per_point": ((slots[p.LAST_NS] - slots[p.MARK_NS]) / 1e3 / span
                             if span > 0 else None),
            "recent_us": slots[p.RECENT_NS] / 1e3}


CRASH_NOTES = {
    "raw-pyvisa-sim": "CSV line flushed per point",
    "pymeasure": "Results CSV, one flushed line per emitted point",
    "qcodes": "DataSaver flushes to SQLite every write_period (default 5 s)",
    "dendrolab": "RunWriter append: durable per block (8192 rows) or after 1 s (max_block_s)",
    "dendrolab-buffered": "RunWriter write_block: durable on return",
}


def run_crash(cases: list[str], args: argparse.Namespace, work: Path
              ) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for case in cases:
        d = work / f"{case}-crash"
        d.mkdir(parents=True)
        suffix = {"qcodes": ".db", "pymeasure": ".csv", "raw-pyvisa-sim": ".csv"}.get(case, ".h5")
        store, progress = d / f"killed{suffix}", d / "progress"
        Progress(progress)  # the counter file exists (at 0) before the child starts
        proc = spawn("crash", case, CRASH_CAPACITY, d, d / "result.json", store=store,
                     progress=progress)
        deadline = time.monotonic() + 300
        while Progress.read(progress) == 0 and proc.poll() is None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.005)
        if proc.poll() is not None or Progress.read(progress) == 0:
            proc.kill()
            _, err = proc.communicate()
            tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            out[case] = {"error": f"crash child never stored a point: {tail[0]}"}
            continue
        time.sleep(args.crash_seconds)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
        acquired = Progress.read(progress)
        rows_json = d / "rows.json"
        res = finish(spawn("rows", case, 0, d, rows_json, store=store), rows_json, timeout=600)
        if "error" in res:
            out[case] = {"error": f"read-back failed: {res['error']}"}
        else:
            out[case] = {"acquired": acquired, "recovered": res["rows"],
                         "note": CRASH_NOTES.get(case, "")}
        log(f"[{case}] kill -9 after {args.crash_seconds:g} s: {out[case]}")
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        if not (args.case and args.json and args.workdir):
            raise SystemExit("--child needs --case, --json and --workdir")
        return child_mode.main(args.child, args.case, args.points, args.workdir, args.json,
                               args.store, args.progress)

    wanted = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in wanted if c not in CASES]
    if unknown:
        raise SystemExit(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(CASES)}")
    available = [c for c in wanted if not missing(c)]
    work = Path(tempfile.mkdtemp(prefix="dendrolab-compare-"))
    log(f"work folder {work}")
    try:
        runs, errors = run_timed(available, args, work)
        rows = {}
        for case in wanted:
            if case not in available:
                rows[case] = report.summarize(case, [], report.NOT_INSTALLED)
                rows[case]["missing"] = missing(case)
            else:
                rows[case] = report.summarize(case, runs[case], errors.get(case, "ok"))
        ok = [c for c in wanted if rows[c]["status"] == "ok"]
        memory = ({} if args.skip_memory else
                  run_memory([c for c in ok if c in MEMORY_CASES], args, work))
        kill = CRASH_CASES if args.crash_cases is None else args.crash_cases.split(",")
        crashes = ({} if args.skip_crash else
                   run_crash([c for c in ok if c in CRASH_CASES and c in kill], args, work))
    finally:
        if not args.keep:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
    versions: dict[str, str] = {"python": platform.python_version(), "git": _git()}
    for case in ok:
        for r in runs[case]:
            versions.update(r["versions"])
    settings = {"repeats": args.repeats, "crash_seconds": args.crash_seconds,
                "memory_points": args.memory_points, "memory_budget_s": args.memory_budget_s,
                "host": _host(), "command": _command(argv)}
    table = [rows[c] for c in wanted]
    md = report.markdown(table, memory, crashes, settings, versions)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compare.md").write_text(md)
    report.write_csv(args.out / "compare.csv", table, memory, crashes, args.crash_seconds)
    (args.out / "compare.json").write_text(json.dumps(
        {"settings": settings, "versions": versions, "rows": table, "memory": memory,
         "crash": crashes, "ratios": report.ratios(rows)}, indent=1, default=str))
    if not args.no_plot:
        report.write_png(args.out / "compare.png", table)
    print(md)
    return 0


def _host() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")),
                       cpu)
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}"


def _git() -> str:
    """Commit of the checkout, marked when the working tree has uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE.parent,
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=HERE.parent, capture_output=True, text=True,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + (" + uncommitted changes" if dirty else "")


def _command(argv: list[str] | None) -> str:
    given = sys.argv[1:] if argv is None else argv
    return shlex.join(["python", "benchmarks/compare.py", *given])


if __name__ == "__main__":
    sys.exit(main())


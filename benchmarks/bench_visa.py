"""Transport and instrument-model speed: ``@dendrosim`` side by side with plain pyvisa-sim.

Run: ``python benchmarks/bench_visa.py``. Both libraries run in this one process on the same
machine, through real pyvisa Resources, so the ratios hold on a noisy machine. Targets (issue 4):
set-V/read-I pair <= 20 us; 10 000-point ``:TRAC:DATA?`` <= 12 ms (pyvisa-sim ~280 ms).
Issue 10: a set-level/read pair with a NEW level every point (two messages, output on, real
physics) over ``@dendrosim`` <= 0.8x plain pyvisa-sim's static pair, measured interleaved.

``python benchmarks/bench_visa.py --loop newlevel --n 20000`` runs only that loop (for cProfile
or ``valgrind --tool=callgrind``: difference two ``--n`` values for instructions per pair).
"""

from __future__ import annotations

import argparse
import tempfile
import textwrap
import time
from pathlib import Path

import pyvisa

SMU = "USB0::0x05E6::0x2450::04488850::INSTR"
B2900 = "TCPIP0::192.0.2.13::inst0::INSTR"
N_POINTS = 10_000


def per_call(fn, n: int, repeats: int = 3) -> float:
    """Best-of-``repeats`` seconds per call of ``fn`` over ``n`` calls."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def plain_sim_yaml(folder: Path) -> Path:
    """A pyvisa-sim file with what pyvisa-sim can do: a dialogue, a property, a 10k-value trace."""
    trace = ",".join(f"{1e-7 * (1 + i % 7):.6E},{i * 5e-5:.6E}" for i in range(N_POINTS))
    text = textwrap.dedent(f"""\
        spec: "1.1"
        devices:
          k2450:
            eom:
              USB INSTR: {{q: "\\n", r: "\\n"}}
            error: ERROR
            dialogues:
              - {{q: "*IDN?", r: "KEITHLEY INSTRUMENTS,MODEL 2450,04488850,1.7.3c"}}
              - {{q: ":READ?", r: "1.234560E-07"}}
              - {{q: ":TRAC:DATA? 1,{N_POINTS},\\"defbuffer1\\",READ,REL", r: "{trace}"}}
            properties:
              volt:
                default: 0.0
                getter: {{q: ":SOUR:VOLT?", r: "{{:.6E}}"}}
                setter: {{q: ":SOUR:VOLT {{:.6f}}"}}
                specs: {{min: -200, max: 200, type: float}}
        resources:
          {SMU}: {{device: k2450}}
        """)
    path = folder / "plain.yaml"
    path.write_text(text)
    return path


def b2900_bench_yaml(folder: Path) -> Path:
    """A bench with a B2902A whose channel 1 drives a dendrite (the default bench wires it to
    the synapse cell, whose one-device physics runs on numpy and dominates a spot reading)."""
    text = textwrap.dedent("""\
        spec: "1.1"
        bench:
          seed: 1
          models: li2020-original
          devices:
            d1: {kind: dendrite, die: 0, device: 0}
          wiring:
            array_smu/1: d1
        devices:
          b2902:
            eom:
              TCPIP INSTR: {q: "\\n", r: "\\n"}
            error: ERROR
            dialogues:
              - {q: "*IDN?", r: "Keysight Technologies,B2902A,MY51143745,3.4.2011.5100"}
        resources:
          TCPIP0::192.0.2.13::inst0::INSTR: {device: b2902, model: keysight_b2900, name: array_smu}
        """)
    path = folder / "b2900.yaml"
    path.write_text(text)
    return path


def open_smu(library: str, address: str = SMU):
    rm = pyvisa.ResourceManager(library)
    res = rm.open_resource(address, read_termination="\n", write_termination="\n", timeout=2000)
    res.chunk_size = 1 << 20
    return rm, res


NEW_LEVEL_TARGET = 0.8  # issue 10: @dendrosim new-level pair / pyvisa-sim static pair
SETUP_2450 = (':SOUR:FUNC VOLT;:SOUR:VOLT:ILIM 1e-3;:SENS:FUNC "CURR";:SENS:CURR:NPLC 0.01;'
              ":OUTP ON")


def level_messages(n: int, repeats: int) -> list[list[str]]:
    """``repeats`` sweeps of ``n`` levels over 0..0.5 V, every message text distinct across the
    whole run (so no repeat replays a message the model has cached as a whole); formatted as
    the drivers format levels (``instruments.base.fmt``: 9 significant digits)."""
    total = n * repeats
    levels = [0.5 * k / (total - 1) for k in range(total)]
    return [[f":SOUR:VOLT {format(v + 0.0, '.9g')}" for v in levels[r::repeats]]
            for r in range(repeats)]


def new_level_pair(sim, ds, n: int = 2000, repeats: int = 7) -> tuple[float, float]:
    """Best-of-``repeats`` seconds per pair: plain pyvisa-sim's static pair and the ``@dendrosim``
    pair with a new level every point, timed alternately in the same run."""
    static = [":SOUR:VOLT 0.200000"] * n
    sweeps = level_messages(n, repeats)
    ds.write(SETUP_2450)
    best_sim = best_ds = float("inf")
    for r in range(repeats):
        w, q = sim.write, sim.query
        t0 = time.perf_counter()
        for msg in static:
            w(msg)
            q(":READ?")
        best_sim = min(best_sim, (time.perf_counter() - t0) / n)
        w, q = ds.write, ds.query
        t0 = time.perf_counter()
        for msg in sweeps[r]:
            w(msg)
            q(":READ?")
        best_ds = min(best_ds, (time.perf_counter() - t0) / n)
    assert ds.query(":SYST:ERR?") == '0,"No error"'
    return best_sim, best_ds


def loop_only(kind: str, n: int) -> None:
    """One loop alone, for profilers: ``static`` (plain pyvisa-sim) or ``newlevel``."""
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "static":
            _rm, res = open_smu(f"{plain_sim_yaml(Path(tmp))}@sim")
            for _ in range(n):
                res.write(":SOUR:VOLT 0.200000")
                res.query(":READ?")
            return
        _rm, res = open_smu("@dendrosim")
        res.write(SETUP_2450)
        for msg in level_messages(n, 1)[0]:
            res.write(msg)
            res.query(":READ?")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop", choices=("static", "newlevel"),
                        help="run only this loop (for cProfile / callgrind)")
    parser.add_argument("--n", type=int, default=20000, help="pairs for --loop")
    args = parser.parse_args()
    if args.loop:
        loop_only(args.loop, args.n)
        return
    with tempfile.TemporaryDirectory() as tmp:
        rm_sim, sim = open_smu(f"{plain_sim_yaml(Path(tmp))}@sim")
        rm_ds, ds = open_smu("@dendrosim")
        rm_ds.visalib.reset()
        rows = []
        t_static, t_new = new_level_pair(sim, ds)
        rm_ds.visalib.reset()

        n = 2000
        t_sim = per_call(lambda: sim.query("*IDN?"), n)
        t_ds = per_call(lambda: ds.query("*IDN?"), n)
        rows.append(("query *IDN?", t_sim, t_ds))

        def sim_pair() -> None:
            sim.write(":SOUR:VOLT 0.200000")
            sim.query(":READ?")

        ds.write(":SOUR:FUNC VOLT;:SOUR:VOLT:ILIM 1e-3;:SENS:FUNC \"CURR\";"
                 ":SENS:CURR:NPLC 0.01;:OUTP ON")
        t_sim = per_call(sim_pair, n)
        t_ds = per_call(lambda: (ds.write(":SOUR:VOLT 0.2"), ds.query(":READ?")), n)
        rows.append(("set V + read I (write, then query)", t_sim, t_ds))
        t_ds1 = per_call(lambda: ds.query(":SOUR:VOLT 0.2;:READ?"), n)
        rows.append(("set V + read I (one compound query)", None, t_ds1))
        extra = []
        t_sim = per_call(lambda: sim.write(":SOUR:VOLT 0.200000"), n)
        t_ds = per_call(lambda: ds.write(":SOUR:VOLT 0.2"), n)
        extra.append(("write :SOUR:VOLT 0.2 (no reply)", t_sim, t_ds))

        rm_b, b29 = open_smu(f"{b2900_bench_yaml(Path(tmp))}@dendrosim", B2900)
        b29.write(":SOUR1:FUNC:MODE VOLT;:SENS1:CURR:PROT 1e-3;:SENS1:CURR:APER 2e-4;:OUTP1 ON")
        t_b = per_call(lambda: b29.query(":SOUR1:VOLT 0.2;:MEAS:CURR? (@1)"), n)
        extra.append(("B2900 set V + measure I, dendrite (compound)", None, t_b))
        assert b29.query(":SYST:ERR?") == '+0,"No error"'
        b29.close()
        rm_b.close()
        b29 = rm_ds.open_resource(B2900, read_termination="\n", write_termination="\n")
        b29.write(":SOUR1:FUNC:MODE VOLT;:SENS1:CURR:PROT 1e-3;:SENS1:CURR:APER 2e-4;:OUTP1 ON")
        t_b = per_call(lambda: b29.query(":SOUR1:VOLT 0.2;:MEAS:CURR? (@1)"), 200)
        extra.append(("  same on the default bench (synapse c1)", None, t_b))
        b29.close()

        ds.write(f':SOUR:SWE:VOLT:LIN 0,0.5,{N_POINTS},0,1,BEST,OFF,OFF,"defbuffer1"')
        ds.write(":INIT")
        ds.query("*OPC?")
        cmd = f':TRAC:DATA? 1,{N_POINTS},"defbuffer1",READ,REL'
        t_sim = per_call(lambda: sim.query(cmd), 1)
        t_ds = per_call(lambda: ds.query(cmd), 3)
        assert len(ds.query(cmd).split(",")) == 2 * N_POINTS
        rows.append((f"{N_POINTS}-point :TRAC:DATA? (READ,REL)", t_sim, t_ds))
        t_parse = per_call(lambda: ds.query_ascii_values(cmd, container=list), 3)
        rows.append(("  same, parsed by query_ascii_values", None, t_parse))
        pair, static_pair = rows[2][2], rows[1][1]
        rows.extend(extra)

        print(f"{'case':44s} {'pyvisa-sim':>14s} {'@dendrosim':>14s} {'ratio':>8s}")
        for label, a, b in rows:
            a_txt = f"{a * 1e6:11.1f} us" if a is not None else " " * 14
            ratio = f"{a / b:7.1f}x" if a is not None else ""
            print(f"{label:44s} {a_txt} {b * 1e6:11.1f} us {ratio}")
        print(f"\nfull-physics set-V/read-I pair: {pair * 1e6:.1f} us "
              f"({1 / pair:,.0f} points/s); plain pyvisa-sim static pair: "
              f"{static_pair * 1e6:.1f} us")
        ratio = t_new / t_static
        print(f"new-level pair (issue 10, interleaved, best of 7): @dendrosim "
              f"{t_new * 1e6:.1f} us vs pyvisa-sim static pair {t_static * 1e6:.1f} us: "
              f"{ratio:.2f}x (target <= {NEW_LEVEL_TARGET}x: "
              f"{'met' if ratio <= NEW_LEVEL_TARGET else 'NOT met'})")
        sim.close()
        ds.close()
        rm_sim.close()


if __name__ == "__main__":
    main()

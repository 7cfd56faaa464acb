"""ED Fig 6 figures and sweep wall time: ``python benchmarks/bench_network_sweep.py [--seeds 0 1 2]
[--schedulers sync threads] [--variant matlab pytorch] [--hidden 100] [--epochs 40]
[--assume soma_current=input ...] [--out DIR]``.

Prints, per dendrite variant, the numbers of the four Extended Data Fig 6 panels measured with
our power model (``analysis.network.power``, every assumption printed): the power advantage
against NL at 5 V for ON/OFF 10 and 100 (a), against NL for each applied voltage at ON/OFF 10
(b), at 2 V and ON/OFF 100 (c), and the test accuracy against NL (d); then the wall time of the
whole sweep on each scheduler and whether the tables are identical. Digits by default (bundled);
the numbers are ours under stated assumptions, not the paper's (its ED6 data are not public).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.network.power import PowerAssumptions
from analysis.network.sweep import (
    COLUMNS,
    SweepSpec,
    ed6_lines,
    run_sweep,
    save_ed6_figures,
    summarise,
)


def _assumptions(items: list[str]) -> PowerAssumptions:
    from dendrolab.network_sweep_cli import _key_values

    return PowerAssumptions(**_key_values(PowerAssumptions, tuple(items), "--assume"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--schedulers", nargs="+", default=["sync", "threads"],
                    help="sync, threads, processes or tcp://host:port")
    ap.add_argument("--variant", nargs="+", default=["matlab", "pytorch"],
                    choices=["matlab", "pytorch"])
    ap.add_argument("--hidden", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--assume", nargs="*", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out", type=Path, default=None, help="write CSVs and PNGs here")
    args = ap.parse_args(argv)
    base = _assumptions(args.assume)
    print("\n".join(base.describe()))
    cols = [c for c in COLUMNS if c != "train_seconds"]
    for variant in args.variant:
        spec = SweepSpec.for_variant(variant, seeds=tuple(args.seeds), n_hidden=args.hidden,
                                     epochs=args.epochs, base=base)
        print(f"\n=== {variant} variant ===")
        print("\n".join(spec.describe()))
        tables = {}
        for scheduler in args.schedulers:
            t0 = time.perf_counter()
            tables[scheduler] = run_sweep(spec, scheduler=scheduler)
            wall = time.perf_counter() - t0
            print(f"sweep wall time, scheduler {scheduler}: {wall:.2f} s "
                  f"({len(spec.jobs())} trainings, {spec.points()} points)")
        frame = tables[args.schedulers[0]]
        for scheduler, other in tables.items():
            same = other[cols].equals(frame[cols])
            print(f"table identical to {args.schedulers[0]} under {scheduler}: {same}")
        print("\n".join(ed6_lines(frame)))
        spread = summarise(frame)
        worst = spread["advantage_std"].max()
        print(f"largest std of the advantage over {len(args.seeds)} seeds: {worst:.3g}")
        hidden_share = frame["hidden_share"].mean()
        print(f"mean share of the hidden layer in the energy with dendrites: "
              f"{100 * hidden_share:.1f} %")
        if args.out is not None:
            out = args.out / variant
            out.mkdir(parents=True, exist_ok=True)
            frame.to_csv(out / "sweep.csv", index=False)
            spread.to_csv(out / "summary.csv", index=False)
            save_ed6_figures(frame, out)
            print(f"wrote {out}")
    # the same sweep without the leakage-free reference: how much the choice matters
    if "matlab" in args.variant:
        spec = SweepSpec.for_variant("matlab", seeds=tuple(args.seeds[:1]),
                                     n_hidden=args.hidden, epochs=args.epochs,
                                     base=replace(base, reference_leak=True))
        frame = run_sweep(spec)
        print("\n=== matlab variant, reference_leak=True (reference keeps the 1/R floor) ===")
        print("\n".join(ed6_lines(frame)[:3]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

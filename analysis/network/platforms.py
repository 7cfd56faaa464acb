"""A platform table in the manner of Extended Data Fig 8: energy per inference and accuracy.

Why: the paper's headline is a comparison -- the dendritic network recognises digits at "more than
three orders of magnitude lower" power than a CPU and "70 times lower" than a typical ASIC
(abstract). ED Fig 8 itself (which CPU, which ASIC, absolute energies) is not in any public source
we could find (notes §2.2). So this table never shows a number without saying where it comes
from: every row carries an ``energy_source`` and an ``accuracy_source`` that is either a citation
or an explicit assumption (a ``PlatformCosts`` field the user can change).

Rows: CPU and ASIC *estimates* (operation count of the architecture x energy per operation),
the paper's two abstract ratios applied to our network's energy (what the paper's claim would
imply), and this network with and without dendrites (from ``analysis.network.power``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pandas as pd

from dendrolab.errors import ParameterError

PAPER = "Li et al., Nat. Nanotechnol. 15, 776 (2020)"
PAPER_URL = "https://www.nature.com/articles/s41565-020-0722-5"
#: Where the default per-operation energies come from (NOT in the research notes: assumptions).
HOROWITZ = ("Horowitz, ISSCC 2014 '1.1 Computing's energy problem', 45 nm, 0.9 V, as tabulated in "
            "https://pmc.ncbi.nlm.nih.gov/articles/PMC8934428/table/T3/")

#: What the network rows' energy is, and what it leaves out.
POWER_TEXT = ("power model with the printed PowerAssumptions: soma output currents (plus dendrite "
              "currents if count_dendrites) per ED Fig 6's definition; synapse-array reads, "
              "drivers and read-out circuits are not counted")

COLUMNS = ["platform", "energy_per_inference_j", "ratio_to_network", "accuracy",
           "energy_source", "accuracy_source"]


@dataclass(frozen=True)
class OpCount:
    """Operations of one inference of the branch network (no biases, notes §1.4).

    ``macs``: multiply-accumulates of the two full weight matrices; ``branch_evals``: dendrite
    function evaluations (one exp and one normalising divide each); ``somas``: soma function
    evaluations (one sigmoid each).
    """

    macs: int
    branch_evals: int
    somas: int

    @property
    def elementwise(self) -> int:
        """Non-MAC operations: branch functions plus somas."""
        return self.branch_evals + self.somas

    @property
    def weights(self) -> int:
        """Weights read once per inference (one per MAC)."""
        return self.macs


def op_count(n_in: int, n_hidden: int, n_out: int, hidden_branches: int,
             output_branches: int) -> OpCount:
    """Operation count of an ``n_in``-``n_hidden``-``n_out`` network with the given branches.

    The authors' SVHN network 3072-500-10 with 9 and 4 branches: 1,541,000 MACs,
    9·500 + 4·10 = 4,540 branch evaluations, 510 somas.
    """
    for name, value in (("n_in", n_in), ("n_hidden", n_hidden), ("n_out", n_out),
                        ("hidden_branches", hidden_branches),
                        ("output_branches", output_branches)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ParameterError(f"{name} must be a positive integer, got {value!r}")
    return OpCount(macs=n_in * n_hidden + n_hidden * n_out,
                   branch_evals=hidden_branches * n_hidden + output_branches * n_out,
                   somas=n_hidden + n_out)


def op_count_for(layout: Any, n_hidden: int, n_out: int = 10) -> OpCount:
    """``op_count`` from a ``BranchLayout`` (``n_in``, ``n_hidden_branches``, ``output_blocks``)."""
    return op_count(layout.n_in, n_hidden, n_out, layout.n_hidden_branches,
                    layout.output_blocks)


@dataclass(frozen=True)
class PlatformCosts:
    """Energy per operation of the comparison platforms. Every field is an ASSUMPTION.

    The research notes give no CPU or ASIC figure (ED Fig 8 was not found, notes §2.2). The CPU
    defaults are Horowitz's 45 nm arithmetic energies (``HOROWITZ``): a lower bound, because a
    real CPU adds instruction fetch/decode and its 6 MB of SVHN weights stream from DRAM, not an
    8 kB cache (raise ``cpu_overhead`` or ``cpu_weight_fetch_j`` to model that). The ASIC
    default is a round 1 pJ per 8-bit MAC including its on-chip weight read, our assumption.
    """

    cpu_mult_j: float = 3.7e-12
    cpu_add_j: float = 0.9e-12
    cpu_weight_fetch_j: float = 5e-12
    cpu_elementwise_j: float = 37e-12
    cpu_overhead: float = 1.0
    asic_mac_j: float = 1e-12
    asic_elementwise_j: float = 3.7e-12
    paper_cpu_ratio: float = 1000.0
    paper_asic_ratio: float = 70.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value <= 0:
                raise ParameterError(f"platform cost {f.name} must be a positive number, "
                                     f"got {value!r}")

    def cpu_energy_j(self, ops: OpCount) -> float:
        """CPU energy per inference: MACs·(mult + add + weight fetch) + elementwise, x overhead."""
        per_mac = self.cpu_mult_j + self.cpu_add_j + self.cpu_weight_fetch_j
        return self.cpu_overhead * (ops.macs * per_mac + ops.elementwise * self.cpu_elementwise_j)

    def asic_energy_j(self, ops: OpCount) -> float:
        """ASIC energy per inference: MACs·asic_mac_j + elementwise·asic_elementwise_j."""
        return ops.macs * self.asic_mac_j + ops.elementwise * self.asic_elementwise_j

    def describe(self) -> list[str]:
        """The cost assumptions as printable lines."""
        return [
            "Platform costs (all ASSUMPTIONS; ED Fig 8's platforms and numbers are not public):",
            f"  cpu_mult_j = {self.cpu_mult_j:g} J, cpu_add_j = {self.cpu_add_j:g} J per FP32 op "
            f"(default from {HOROWITZ})",
            f"  cpu_weight_fetch_j = {self.cpu_weight_fetch_j:g} J per 32-bit weight read "
            "(default: half of a 64-bit 8 kB cache access, same table; a lower bound, DRAM costs "
            "far more)",
            f"  cpu_elementwise_j = {self.cpu_elementwise_j:g} J per exp/divide/sigmoid "
            "(assumption: about 10 FP32 multiplies)",
            f"  cpu_overhead = {self.cpu_overhead:g} (x on all CPU energy; 1 = arithmetic and "
            "operand fetch only, no instruction overhead)",
            f"  asic_mac_j = {self.asic_mac_j:g} J per MAC incl. weight read, "
            f"asic_elementwise_j = {self.asic_elementwise_j:g} J (assumption)",
            f"  paper ratios: CPU {self.paper_cpu_ratio:g}x, ASIC {self.paper_asic_ratio:g}x the "
            f"network's energy ({PAPER}, abstract: {PAPER_URL})",
        ]


def _ops_text(ops: OpCount) -> str:
    return (f"{ops.macs:,} MACs + {ops.elementwise:,} elementwise ops "
            f"({ops.branch_evals:,} branch functions, {ops.somas:,} somas), computed from the "
            "architecture")


def platform_table(ops: OpCount, *, network_energy_j: float, network_accuracy: float,
                   reference_energy_j: float | None = None,
                   reference_accuracy: float | None = None,
                   float_accuracy: float | None = None,
                   costs: PlatformCosts | None = None,
                   power_text: str = POWER_TEXT) \
        -> pd.DataFrame:
    """ED Fig 8-style table: one row per platform, each figure with its source or assumption.

    ``network_energy_j``/``network_accuracy``: this network with dendrites under the power model
    (``analysis.network.power``); ``reference_*``: the network without dendrites (NL = 0);
    ``float_accuracy``: the trained network's ideal accuracy (what a CPU running it computes;
    defaults to ``network_accuracy``). ``ratio_to_network`` = energy / network energy.
    """
    costs = costs or PlatformCosts()
    if not (isinstance(network_energy_j, (int, float)) and network_energy_j > 0
            and math.isfinite(network_energy_j)):
        raise ParameterError(f"network energy must be a positive number of joules, "
                             f"got {network_energy_j!r}")
    float_acc = network_accuracy if float_accuracy is None else float_accuracy
    float_src = ("computed: the trained network evaluated in float on the test set (a CPU runs "
                 "it exactly)")
    rows: list[dict[str, Any]] = [
        {"platform": "CPU (estimate)", "energy_per_inference_j": costs.cpu_energy_j(ops),
         "accuracy": float_acc,
         "energy_source": f"{_ops_text(ops)} x CPU costs (assumption; defaults from {HOROWITZ}; "
                          f"overhead x{costs.cpu_overhead:g})",
         "accuracy_source": float_src},
        {"platform": "ASIC (estimate)", "energy_per_inference_j": costs.asic_energy_j(ops),
         "accuracy": float_acc,
         "energy_source": f"{_ops_text(ops)} x {costs.asic_mac_j:g} J/MAC, "
                          f"{costs.asic_elementwise_j:g} J/elementwise op (assumption)",
         "accuracy_source": "assumption: same as float (8-bit quantisation not modelled)"},
        {"platform": "CPU (paper ratio)",
         "energy_per_inference_j": costs.paper_cpu_ratio * network_energy_j,
         "accuracy": math.nan,
         "energy_source": f"{costs.paper_cpu_ratio:g} x this network's energy: the abstract's "
                          f"'more than three orders of magnitude lower than that of a central "
                          f"processing unit' ({PAPER}, "
                          f"{PAPER_URL}); a lower bound implied by the claim",
         "accuracy_source": "not public (ED Fig 8 not found, notes §2.2)"},
        {"platform": "ASIC (paper ratio)",
         "energy_per_inference_j": costs.paper_asic_ratio * network_energy_j,
         "accuracy": math.nan,
         "energy_source": f"{costs.paper_asic_ratio:g} x this network's energy: the abstract's "
                          f"'70 times lower than that of a typical application-specific "
                          f"integrated circuit chip' ({PAPER}, {PAPER_URL})",
         "accuracy_source": "not public (ED Fig 8 not found, notes §2.2)"},
        {"platform": "This network (with dendrites)", "energy_per_inference_j": network_energy_j,
         "accuracy": network_accuracy,
         "energy_source": f"computed: {power_text}",
         "accuracy_source": "computed: test set, physical soma outputs at the operating point"},
    ]
    if reference_energy_j is not None:
        rows.append({"platform": "This network without dendrites (NL = 0)",
                     "energy_per_inference_j": float(reference_energy_j),
                     "accuracy": math.nan if reference_accuracy is None else reference_accuracy,
                     "energy_source": f"computed: {power_text} (reference: no dendrite devices)",
                     "accuracy_source": "computed: test set, NL = 0 network trained with the "
                                        "same seed"})
    frame = pd.DataFrame(rows)
    frame["ratio_to_network"] = frame["energy_per_inference_j"] / network_energy_j
    return frame[COLUMNS]


def write_platform_csv(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write the table as CSV (creates the folder); returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    return out


def format_table(frame: pd.DataFrame) -> list[str]:
    """Printable lines: platform, energy, ratio, accuracy; then the numbered sources."""
    lines = [f"{'platform':42s} {'energy/inference':>17s} {'x network':>10s} {'accuracy':>9s}"]
    for row in frame.itertuples(index=False):
        acc = "-" if math.isnan(row.accuracy) else f"{100 * row.accuracy:.2f} %"
        lines.append(f"{row.platform:42s} {row.energy_per_inference_j:>15.3e} J "
                     f"{row.ratio_to_network:>10.3g} {acc:>9s}")
    lines.append("sources:")
    for row in frame.itertuples(index=False):
        lines.append(f"  {row.platform}: energy: {row.energy_source}; "
                     f"accuracy: {row.accuracy_source}")
    return lines


__all__ = ["COLUMNS", "HOROWITZ", "PAPER", "PAPER_URL", "POWER_TEXT", "OpCount", "PlatformCosts",
           "format_table", "op_count", "op_count_for", "platform_table", "write_platform_csv"]

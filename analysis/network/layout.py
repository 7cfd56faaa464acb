"""Which synapses feed which dendrite branch: the authors' SVHN layout and our digits adaptation.

Why: in the authors' network every input reaches every hidden neuron (a full weight matrix); the
branch only decides which *partial sum* goes through which dendrite nonlinearity (notes §1.4). A
layout is therefore a partition of the flattened input into index sets, plus the number of
contiguous blocks the hidden units are cut into for the output neurons' branches.

Flattening order (both layouts): row-major over (row, column[, channel]) -- for colour images the
HWC order of the SVHN ``.mat`` array after transposing ``X`` (32, 32, 3, N) to (N, 32, 32, 3), so
feature ``(row * W + col) * C + ch``. The authors' MATLAB flattens column-major instead; the order
does not matter for the network because each branch is a fixed index set (notes §1.4).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from dendrolab.errors import ParameterError


@dataclass(frozen=True, eq=False)
class BranchLayout:
    """A partition of the input features into hidden-neuron branches, plus the output blocks.

    ``hidden_branches[b]`` holds the flattened-input indices whose partial sum goes through branch
    ``b`` of every hidden neuron; together they cover ``range(n_in)`` exactly once.
    ``output_blocks``: the hidden units are split into this many contiguous equal blocks, one per
    branch of every output neuron (the authors use 4 blocks of 125 of their 500 hidden units).
    """

    name: str
    hidden_branches: tuple[np.ndarray, ...]
    output_blocks: int

    def __post_init__(self) -> None:
        branches = tuple(np.array(b, dtype=np.intp).ravel() for b in self.hidden_branches)
        if not branches or any(b.size == 0 for b in branches):
            raise ParameterError(f"layout {self.name!r}: every branch needs at least one input")
        every = np.concatenate(branches)
        n_in = every.size
        if every.min() < 0 or np.bincount(every, minlength=n_in).max() != 1 \
                or every.max() != n_in - 1:
            raise ParameterError(f"layout {self.name!r}: the branches must partition "
                                 f"range(n_in) (each input in exactly one branch)")
        if int(self.output_blocks) < 1:
            raise ParameterError(f"layout {self.name!r}: output_blocks must be >= 1, "
                                 f"got {self.output_blocks}")
        for b in branches:
            b.setflags(write=False)
        object.__setattr__(self, "hidden_branches", branches)
        object.__setattr__(self, "output_blocks", int(self.output_blocks))

    @property
    def n_in(self) -> int:
        return int(sum(b.size for b in self.hidden_branches))

    @property
    def n_hidden_branches(self) -> int:
        return len(self.hidden_branches)

    @property
    def branch_sizes(self) -> tuple[int, ...]:
        return tuple(int(b.size) for b in self.hidden_branches)

    def permutation(self) -> np.ndarray:
        """Input order that makes every branch contiguous (branch 0 first); see ``offsets``."""
        return np.concatenate(self.hidden_branches)

    def offsets(self) -> np.ndarray:
        """Start of each branch in ``permutation`` order, plus ``n_in`` at the end."""
        return np.concatenate([[0], np.cumsum(self.branch_sizes)]).astype(np.intp)

    def output_branches(self, n_hidden: int) -> tuple[np.ndarray, ...]:
        """Index sets of the output neurons' branches: ``output_blocks`` contiguous blocks."""
        if n_hidden % self.output_blocks:
            raise ParameterError(f"n_hidden = {n_hidden} is not divisible by the layout's "
                                 f"{self.output_blocks} output blocks")
        size = n_hidden // self.output_blocks
        return tuple(np.arange(k * size, (k + 1) * size) for k in range(self.output_blocks))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BranchLayout):
            return NotImplemented
        return (self.name == other.name and self.output_blocks == other.output_blocks
                and len(self.hidden_branches) == len(other.hidden_branches)
                and all(np.array_equal(a, b)
                        for a, b in zip(self.hidden_branches, other.hidden_branches, strict=True)))

    def __hash__(self) -> int:
        return hash((self.name, self.output_blocks, self.branch_sizes))

    def __repr__(self) -> str:
        return (f"BranchLayout({self.name!r}, n_in={self.n_in}, branches={self.branch_sizes}, "
                f"output_blocks={self.output_blocks})")


def strip_layout(name: str, height: int, width: int, channels: int,
                 column_edges: Sequence[int], output_blocks: int) -> BranchLayout:
    """Branches = channel x vertical strip, channel-major (R strips, then G, then B).

    ``column_edges`` are 0-based strip starts plus the width, e.g. ``(0, 10, 22, 32)`` for the
    authors' columns 1-10, 11-22, 23-32. Features are flattened HWC (module docstring).
    """
    edges = list(column_edges)
    if edges[0] != 0 or edges[-1] != width or any(b <= a for a, b in pairwise(edges)):
        raise ParameterError(f"column edges {edges} must rise from 0 to the width {width}")
    row, col, ch = np.meshgrid(np.arange(height), np.arange(width), np.arange(channels),
                               indexing="ij")
    flat = (row * width + col) * channels + ch  # equals np.arange in HWC order
    branches = []
    for c in range(channels):
        for lo, hi in pairwise(edges):
            mask = (ch == c) & (col >= lo) & (col < hi)
            branches.append(np.sort(flat[mask]))
    return BranchLayout(name, tuple(branches), output_blocks)


def svhn_layout() -> BranchLayout:
    """The authors' 9 branches: R, G, B x image columns 1-10, 11-22, 23-32 (320/384/320 inputs)
    of the 32x32x3 image flattened HWC; 4 output blocks (125 hidden units each for 500)."""
    return strip_layout("svhn", 32, 32, 3, (0, 10, 22, 32), output_blocks=4)


def digits_layout() -> BranchLayout:
    """Our adaptation to scikit-learn's 8x8 grayscale digits (row-major, 64 features).

    Grayscale has one channel, so the authors' 3 channels x 3 vertical strips becomes 3 vertical
    strips: columns 1-3, 4-5, 6-8 (24/16/24 inputs), mirroring their 10/12/10 of 32 columns as
    closely as 8 columns allow (the middle strip cannot be the widest: 3/2/3 keeps the strips
    symmetric, 2/4/2 would put half the image in one branch). 4 output blocks, as the authors'.
    This adaptation is our choice, not the authors'.
    """
    return strip_layout("digits", 8, 8, 1, (0, 3, 5, 8), output_blocks=4)


LAYOUTS = {"svhn": svhn_layout, "digits": digits_layout}


def layout_by_name(name: str) -> BranchLayout:
    """One of ``LAYOUTS`` by name (one-line error otherwise)."""
    try:
        return LAYOUTS[name]()
    except KeyError:
        raise ParameterError(f"unknown layout {name!r}; known: {', '.join(LAYOUTS)}") from None

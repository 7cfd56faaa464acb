"""Inference on a dendritic board: calibrate its dendrites and somas, then run images through it,
layer by layer, recording per image what the board read and decided.

One image on one layer (docs/board.md): the input codes go in bit-serially (the rows of every
'1' bit at ``read_v``, one plane per bit), one word-line step at a time while every array's
sense SMUs read their columns; the host adds the planes and pairs into branch sums and
normalises them (``board_math``); each branch's dendrite gets one pulse per neuron at
``v_max u`` and its current is the branch output; the somas get one pulse per neuron at the
calibrated drive of their summed input, and their current is the neuron's output. Hidden outputs
become the next layer's codes; the output layer's readings give the label. No files here beyond
the step writers handed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dendrolab.errors import InstrumentError
from protocols import board_math
from protocols.board import Board
from protocols.board_io import READ_APERTURE_S, BoardIO
from protocols.runfile import DatasetSpec, StepSpec

#: Dendrite calibration ladder (fractions of ``dendrite.v_max``) and its repeats.
CAL_U = np.round(np.linspace(0.0, 1.0, 21), 6)
CAL_REPEATS = 3
#: Soma calibration ladder step (V), from 0 to ``soma.v_max``, and its passes. One pass: the
#: mean of several passes smears the threshold (a pass that fires and one that does not average
#: to a fraction of the ON current), which put a step back into every output (measured: 88.7 %
#: agreement on 150 digits against 96.0 % with one pass).
SOMA_STEP_V = 0.05
SOMA_REPEATS = 1
#: Images per run-file step: a kill re-runs at most this many.
BLOCK = 10
ENERGY_PARTS = ("array", "dendrite", "soma")


@dataclass(frozen=True)
class Calibration:
    """Per layer: each branch dendrite's ladder (u, mean current) and full scale; each soma's
    ladder (V, mean current), threshold voltage and ON current there (``soma_fire``). The
    host's calibration and, through ``analysis.network.board_runs``, the mirror's."""

    dendrite_u: tuple[tuple[np.ndarray, ...], ...]
    dendrite_i: tuple[tuple[np.ndarray, ...], ...]
    soma_v: tuple[tuple[np.ndarray, ...], ...]
    soma_i: tuple[tuple[np.ndarray, ...], ...]
    i_full_a: float

    def dendrite_full(self, layer: int, branch: int) -> float:
        return float(self.dendrite_i[layer][branch][-1])

    def soma_fire(self, layer: int, soma: int) -> tuple[float, float]:
        """(threshold voltage, ON current there): ``board_math.fire_point`` of its ladder."""
        return board_math.fire_point(self.soma_v[layer][soma], self.soma_i[layer][soma],
                                     self.i_full_a)


def soma_ladder(board: Board) -> np.ndarray:
    n = round(board.soma["v_max"] / SOMA_STEP_V)
    return np.round(np.linspace(0.0, n * SOMA_STEP_V, n + 1), 6)


def calibration_steps(board: Board) -> list[StepSpec]:
    n_dend = sum(len(layer.dendrites) for layer in board.layers) * CAL_U.size * CAL_REPEATS
    n_soma = (sum(len(layer.somas) for layer in board.layers) * soma_ladder(board).size
              * SOMA_REPEATS)
    return [
        StepSpec("calibrate dendrites", n_dend, (
            DatasetSpec("layer", "", "int64"), DatasetSpec("branch", "", "int64"),
            DatasetSpec("u", ""), DatasetSpec("voltage_v", "V"), DatasetSpec("current_a", "A"))),
        StepSpec("calibrate somas", n_soma, (
            DatasetSpec("layer", "", "int64"), DatasetSpec("soma", "", "int64"),
            DatasetSpec("voltage_v", "V"), DatasetSpec("current_a", "A"))),
    ]


def _ladders(io: BoardIO, out: Any, kind: str, drive: np.ndarray, extra: dict[str, Any]
             ) -> dict[str, np.ndarray]:
    """One pulsed sweep at the levels ``drive`` (V) on every dendrite or soma (``kind``) of
    every layer, each written to ``out`` as rows (layer, branch or soma index, the ``extra``
    columns, applied voltage, current); returns all the rows."""
    board = io.board
    settings = board.dendrite if kind == "dendrite" else board.soma
    name = "branch" if kind == "dendrite" else "soma"
    parts = []
    for k, layer in enumerate(board.layers):
        for q, dev in enumerate(layer.dendrites if kind == "dendrite" else layer.somas):
            p = io.pulse(dev, drive, settings)
            n = drive.size
            rows = {"layer": np.full(n, k), name: np.full(n, q), **extra,
                    "voltage_v": p.levels_v, "current_a": p.current_a}
            out.write_block(**rows)
            parts.append(rows)
    return {key: np.concatenate([r[key] for r in parts]) for key in parts[0]}


def calibrate_dendrites(io: BoardIO, out: Any) -> dict[str, np.ndarray]:
    """Every dendrite's ladder (``CAL_REPEATS`` interleaved passes of ``CAL_U``) into ``out``;
    returns the rows written."""
    levels_u = np.tile(CAL_U, CAL_REPEATS)
    return _ladders(io, out, "dendrite", io.board.dendrite["v_max"] * levels_u,
                    {"u": levels_u})


def calibrate_somas(io: BoardIO, out: Any) -> dict[str, np.ndarray]:
    """Every soma's ladder 0 ... ``soma.v_max`` (``SOMA_REPEATS`` passes) into ``out``; returns
    the rows written."""
    return _ladders(io, out, "soma", np.tile(soma_ladder(io.board), SOMA_REPEATS), {})


def calibration_from(board: Board, dend: Any, soma: Any) -> Calibration:
    """A ``Calibration`` from the two calibration steps' data (mean over repeats); a soma that
    never fires or a dendrite that gives no current is a one-line error."""
    du, di, sv, si = [], [], [], []
    for k, layer in enumerate(board.layers):
        us, is_ = [], []
        for b in range(len(layer.dendrites)):
            sel = (dend["layer"] == k) & (dend["branch"] == b)
            u, i = np.asarray(dend["u"])[sel], np.abs(np.asarray(dend["current_a"])[sel])
            grid = np.unique(u)
            mean = np.array([i[u == g].mean() for g in grid])
            if not mean[-1] > 0:
                raise InstrumentError(f"layer {k + 1} dendrite {b + 1} gave no current at "
                                      f"{board.dendrite['v_max']:g} V: check its wiring")
            us.append(grid)
            is_.append(mean)
        du.append(tuple(us))
        di.append(tuple(is_))
        vs, cs = [], []
        for q in range(len(layer.somas)):
            sel = (soma["layer"] == k) & (soma["soma"] == q)
            v_all = np.asarray(soma["voltage_v"])[sel]
            i_all = np.abs(np.asarray(soma["current_a"])[sel])
            v = np.unique(v_all)
            i = np.array([i_all[v_all == x].mean() for x in v])
            if np.isnan(board_math.fire_threshold(v, i, board.soma["i_full_a"])):
                raise InstrumentError(f"layer {k + 1} soma {q + 1} never fired up to "
                                      f"{board.soma['v_max']:g} V: check its wiring or raise "
                                      "board.soma.v_max")
            vs.append(v)
            cs.append(i)
        sv.append(tuple(vs))
        si.append(tuple(cs))
    return Calibration(tuple(du), tuple(di), tuple(sv), tuple(si), board.soma["i_full_a"])


def image_datasets(board: Board) -> tuple[DatasetSpec, ...]:
    l1, l2 = board.layers
    bits = board.input_bits
    return (
        DatasetSpec("index", "", "int64"), DatasetSpec("label", "", "int64"),
        DatasetSpec("predicted", "", "int64"),
        DatasetSpec("soma_input", "", shape=(board.outputs,)),
        DatasetSpec("soma_output", "", shape=(board.outputs,)),
        DatasetSpec("soma_current_a", "A", shape=(board.outputs,)),
        DatasetSpec("hidden_code", "", "int64", shape=(board.hidden,)),
        DatasetSpec("energy_j", "J", shape=(len(ENERGY_PARTS),)),
        DatasetSpec("duration_s", "s"),
        DatasetSpec("column_current_1_a", "A", shape=(bits, len(l1.arrays), 2 * board.hidden)),
        DatasetSpec("column_current_2_a", "A", shape=(bits, len(l2.arrays), 2 * board.outputs)),
        DatasetSpec("dendrite_output_1", "", shape=(len(l1.arrays), board.hidden)),
        DatasetSpec("dendrite_output_2", "", shape=(len(l2.arrays), board.outputs)),
    )


@dataclass
class LayerResult:
    currents: np.ndarray   # (bits, branches, 2 M) sensed column currents
    f: np.ndarray          # (branches, M) dendrite outputs
    s: np.ndarray          # (M,) soma inputs
    i_soma: np.ndarray     # (M,) soma currents
    y: np.ndarray          # (M,) soma outputs in [0, 1]
    energy: np.ndarray     # (3,) J: array reads, dendrite pulses, soma pulses


def run_layer(io: BoardIO, k: int, codes: np.ndarray, rows: tuple[np.ndarray, ...],
              w_max: float, cal: Calibration, theta: float,
              offsets: tuple[np.ndarray, ...] | None = None) -> LayerResult:
    """One layer of one image on the board (module docstring). ``offsets`` (per branch, rows x
    columns, S: ``Programmed.offsets``) are the failed pairs' known conductance errors: each
    plane's column currents less ``read_v`` x its driven rows' offsets go into the sums (the
    currents recorded are the ones read)."""
    board = io.board
    layer = board.layers[k]
    bits, n_b, m = board.input_bits, len(layer.arrays), layer.n_neurons
    currents = np.zeros((bits, n_b, 2 * m))
    known = np.zeros_like(currents)
    energy = np.zeros(len(ENERGY_PARTS))
    with io.biased():
        for p in range(bits):
            masks = [board_math.bit_plane(codes[r], p) for r in rows]
            if any(mask.any() for mask in masks):  # an all-zero plane carries no current
                currents[p] = io.read_columns(k, masks, board.column_reads)
                if offsets is not None:
                    known[p] = [board.read_v * (mask @ off)
                                for mask, off in zip(masks, offsets, strict=True)]
    energy[0] = (board.read_v * np.abs(currents).sum() * READ_APERTURE_S
                 * board.column_reads)
    z = board_math.branch_sums(currents - known, bits, board.read_v, board.g_min_s,
                               board.g_max_s, w_max)
    u = board_math.dendrite_inputs(z)
    f = np.zeros((n_b, m))
    for b, dev in enumerate(layer.dendrites):
        if u[b].any():
            pulses = io.pulse(dev, board.dendrite["v_max"] * u[b], board.dendrite)
            f[b] = board_math.ratio(pulses.current_a, cal.dendrite_full(k, b))
            energy[1] += pulses.energy_j
    s = f.sum(axis=0)
    i_soma, y = np.zeros(m), np.zeros(m)
    for q, dev in enumerate(layer.somas):
        idx = np.arange(q, m, len(layer.somas))
        if idx.size == 0:
            continue
        v_th, i_on = cal.soma_fire(k, q)
        drive = board_math.soma_drive(s[idx], v_th, theta, board.soma["gain_v"],
                                      board.soma["v_max"])
        pulses = io.pulse(dev, drive, board.soma)
        i_soma[idx] = pulses.current_a
        y[idx] = board_math.soma_output(pulses.current_a, i_on, board.soma["i_full_a"])
        energy[2] += pulses.energy_j
    return LayerResult(currents, f, s, i_soma, y, energy)


def run_image(io: BoardIO, x: np.ndarray, rows: tuple[tuple[np.ndarray, ...], ...],
              w_max: tuple[float, float], cal: Calibration, theta: float,
              offsets: tuple[tuple[np.ndarray, ...], ...] | None = None
              ) -> tuple[LayerResult, LayerResult, np.ndarray, int]:
    """Both layers of one image (features in [0, 1]); returns the layers, the hidden codes and
    the predicted label. ``offsets``: per layer, ``run_layer``'s."""
    bits = io.board.input_bits
    off = offsets if offsets is not None else (None, None)
    h = run_layer(io, 0, board_math.encode(x, bits), rows[0], w_max[0], cal, theta, off[0])
    hidden = board_math.quantise(h.y, bits)
    o = run_layer(io, 1, hidden, rows[1], w_max[1], cal, theta, off[1])
    label = int(board_math.predict(o.y, o.s)[0])
    return h, o, hidden, label


def summary_step(board: Board) -> StepSpec:
    n = board.outputs
    return StepSpec("summary", 1, (
        DatasetSpec("images", "", "int64"), DatasetSpec("correct", "", "int64"),
        DatasetSpec("accuracy", ""), DatasetSpec("confusion", "", "int64", shape=(n, n)),
        DatasetSpec("energy_j", "J", shape=(len(ENERGY_PARTS),)),
        DatasetSpec("duration_s", "s")))


def confusion(labels: np.ndarray, predicted: np.ndarray, n: int) -> np.ndarray:
    """Confusion matrix: rows true label, columns predicted."""
    out = np.zeros((n, n), dtype=np.int64)
    np.add.at(out, (np.asarray(labels, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return out

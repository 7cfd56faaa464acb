"""The software mirror of the dendritic board: the host's arithmetic with physics replaced by the
board's own calibrations.

Why: issue 14's closed loop asks that the network simulated in software "with the conductances
read back from the bench and the same devices" agree with the bench's predictions. The mirror
therefore does, for every image at once, exactly what the inference host does on the board
(``protocols.board_math``: input codes, linear arrays, the MATLAB dendrite normalisation,
normalised dendrite and soma readings, quantised hidden outputs, the label rule), but where the
host applies a pulse and reads a current, the mirror reads that current off the device's
calibration ladder. Disagreement with the bench then measures what the calibrations miss
(device noise, drift, the interpolation between ladder points), not two versions of arithmetic.

Only the network's ``matlab`` variant has a board form: the board's dendrite pulses are
unipolar, which realises the rectified MATLAB normalisation and not the signed PyTorch one.

Assumptions (ours, not measured): dendrite currents between ladder points are linear in the
drive; a soma conducts nothing below the threshold the host calibrates
(``board_math.fire_threshold``) and is linear between ladder points at or above it, flat beyond
the ladder's ends; a soma that never fires on its ladder reads 0 for every image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from analysis.network.model import NetConfig, Params, branch_function
from dendrolab.errors import ParameterError
from protocols import board_math as bm
from protocols.board import Board
from protocols.board_program import layer_rows, network_targets

#: Branch rules of ``mirror``: the dendrite ladder itself, or F_a with a fitted to it.
BRANCH_RULES = ("table", "fit")
#: Ideal ladders (``ideal_calibration``): points per dendrite ladder (u in [0, 1]) and per soma
#: ladder (0 .. v_max); fine enough that interpolation errors stay below ~1e-3.
IDEAL_DENDRITE_POINTS = 129
IDEAL_SOMA_POINTS = 321
#: Largest a searched by ``fit_branch_a`` (NL = 0.99 gives a = 4950).
A_FIT_MAX = 5000.0


# ------------------------------------------------------------------------- data types
@dataclass(frozen=True, eq=False)
class Ladder:
    """One device calibration: drive levels ``x`` (ascending; a dendrite's u in [0, 1], a
    soma's volts) and the mean measured current ``i_a`` at each."""

    x: np.ndarray
    i_a: np.ndarray

    def __post_init__(self) -> None:
        x = np.array(self.x, dtype=np.float64)
        i = np.array(self.i_a, dtype=np.float64)
        if x.ndim != 1 or i.shape != x.shape or x.size < 2:
            raise ParameterError(f"a calibration ladder needs two 1-D arrays of equal length "
                                 f">= 2, got shapes {x.shape} and {i.shape}")
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(i))):
            raise ParameterError("a calibration ladder holds a non-finite drive or current")
        if np.any(np.diff(x) <= 0):
            raise ParameterError("a calibration ladder's drive levels must rise strictly")
        x.setflags(write=False)
        i.setflags(write=False)
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "i_a", i)

    def current(self, drive: np.ndarray | float) -> np.ndarray:
        """Current at ``drive`` by linear interpolation (flat beyond the ends)."""
        return np.interp(drive, self.x, self.i_a)


def _layers(value: Sequence[Sequence[object]], what: str) -> tuple[tuple, tuple]:
    if len(value) != 2:
        raise ParameterError(f"calibration {what}: expected 2 layers (hidden, output), "
                             f"got {len(value)}")
    return tuple(value[0]), tuple(value[1])  # type: ignore[return-value]


@dataclass(frozen=True, eq=False)
class BoardCalibration:
    """What the bench measured: read-back conductances and the device ladders.

    ``conductance[layer][b]``: (n_rows, 2 M) conductances in S of branch b's array, columns
    interleaved as ``board_math.columns`` (G+ of neuron n at 2n, G- at 2n + 1), rows in the
    branch's input order; ``w_max[layer]``: the weight scale the layer was programmed with
    (``board_math.pair_targets``); ``dendrites[layer][b]``: Ladder (u, I) of branch b's dendrite;
    ``somas[layer]``: Ladders (V, I), neuron n of the layer uses ``somas[layer][n % len]``.
    """

    conductance: tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]
    w_max: tuple[float, float]
    dendrites: tuple[tuple[Ladder, ...], tuple[Ladder, ...]]
    somas: tuple[tuple[Ladder, ...], tuple[Ladder, ...]]

    def __post_init__(self) -> None:
        g0, g1 = _layers(self.conductance, "conductance")
        conductance = tuple(tuple(np.array(g, dtype=np.float64) for g in layer)
                            for layer in (g0, g1))
        for k, layer in enumerate(conductance):
            for b, g in enumerate(layer):
                if g.ndim != 2 or g.shape[1] % 2 or not np.all(np.isfinite(g)):
                    raise ParameterError(f"calibration conductance[{k}][{b}]: expected a finite "
                                         f"(rows, 2 x neurons) array, got shape {g.shape}")
                g.setflags(write=False)
        w = tuple(float(v) for v in self.w_max)
        if len(w) != 2 or not all(math.isfinite(v) and v > 0 for v in w):
            raise ParameterError(f"calibration w_max: expected 2 positive numbers, got {w}")
        for name in ("dendrites", "somas"):
            layers = _layers(getattr(self, name), name)
            for k, layer in enumerate(layers):
                if not layer or not all(isinstance(d, Ladder) for d in layer):
                    raise ParameterError(f"calibration {name}[{k}]: expected a non-empty list "
                                         f"of Ladder")
            object.__setattr__(self, name, layers)
        object.__setattr__(self, "conductance", conductance)
        object.__setattr__(self, "w_max", w)

    def dendrite_full(self, layer: int, b: int) -> float:
        """The host's full scale of dendrite (layer, b): |ladder current| at u = 1."""
        return float(abs(self.dendrites[layer][b].current(1.0)))

    def soma_fire(self, layer: int, k: int, i_full_a: float) -> tuple[float, float]:
        """(threshold voltage, ON current there) of soma (layer, k): ``board_math.fire_point``."""
        lad = self.somas[layer][k]
        return bm.fire_point(lad.x, lad.i_a, i_full_a)


@dataclass(frozen=True, eq=False)
class MirrorResult:
    """The mirror's numbers for N images.

    ``labels`` (N,); ``s_out``/``y_out`` (N, outputs): output soma inputs and normalised
    readings; ``hidden`` (N, hidden): the hidden layer's quantised codes (the output layer's
    input codes); ``s_hidden``/``y_hidden`` (N, hidden); ``u``/``f``: per layer (N, branches,
    neurons) dendrite drives and normalised outputs; ``branch_a``: per layer (branches,) the
    fitted a of every dendrite (``branch="fit"``), else None.
    """

    labels: np.ndarray
    s_out: np.ndarray
    y_out: np.ndarray
    hidden: np.ndarray
    s_hidden: np.ndarray
    y_hidden: np.ndarray
    u: tuple[np.ndarray, np.ndarray]
    f: tuple[np.ndarray, np.ndarray]
    branch_a: tuple[np.ndarray, np.ndarray] | None = None


# ------------------------------------------------------------------------- branch fit
def _sse(u: np.ndarray, r: np.ndarray, a: float) -> float:
    return float(np.sum(np.square(branch_function(u, a) - r)))


def fit_branch_a(u: np.ndarray, r: np.ndarray) -> float:
    """Least-squares a >= 0 of r = F_a(u) = (e^(a u) - 1)/(e^a - 1): the network's branch
    function fitted to a dendrite's normalised curve (0 for a linear or sublinear curve)."""
    from scipy.optimize import minimize_scalar

    u = np.asarray(u, dtype=np.float64)
    r = np.asarray(r, dtype=np.float64)
    if u.ndim != 1 or r.shape != u.shape or u.size < 2:
        raise ParameterError(f"fit_branch_a needs two 1-D arrays of equal length >= 2, got "
                             f"shapes {u.shape} and {r.shape}")
    if not (np.all(np.isfinite(u)) and np.all(np.isfinite(r))):
        raise ParameterError("fit_branch_a: non-finite drive or response")
    grid = np.concatenate([[0.0], np.geomspace(1e-3, A_FIT_MAX, 241)])
    sse = np.array([_sse(u, r, a) for a in grid])
    j = int(np.argmin(sse))
    if j == 0:
        return 0.0
    lo, hi = grid[j - 1], grid[min(j + 1, grid.size - 1)]
    res = minimize_scalar(lambda a: _sse(u, r, a), bounds=(lo, hi), method="bounded",
                          options={"xatol": 1e-9 * max(hi, 1.0)})
    a = float(res.x) if res.fun <= sse[j] else float(grid[j])
    return a if _sse(u, r, a) < sse[0] else 0.0


# ------------------------------------------------------------------------- checks
def _check_network(params: Params, cfg: NetConfig, board: Board) -> None:
    if cfg.variant != "matlab":
        raise ParameterError(f"the board runs the matlab variant only (its unipolar dendrite "
                             f"pulses realise the MATLAB normalisation); got {cfg.variant!r}")
    if (board.layout, board.hidden, board.outputs) != (cfg.layout.name, cfg.n_hidden,
                                                        cfg.n_out):
        raise ParameterError(f"network {cfg.layout.name} {cfg.n_hidden} hidden/{cfg.n_out} "
                             f"outputs does not fit the board ({board.layout} {board.hidden} "
                             f"hidden/{board.outputs} outputs)")
    for k, rows in enumerate(layer_rows(cfg)):
        sizes = tuple(a.n_rows for a in board.layers[k].arrays)
        if sizes != tuple(r.size for r in rows):
            raise ParameterError(f"layer {k + 1}: the network's branches have "
                                 f"{tuple(r.size for r in rows)} inputs, the board's arrays "
                                 f"{sizes} rows")
    if params.w1.shape != (cfg.n_in, cfg.n_hidden) or params.w2.shape != (cfg.n_hidden,
                                                                          cfg.n_out):
        raise ParameterError(f"weights {params.w1.shape}, {params.w2.shape} do not match "
                             f"{cfg.describe()}")


def _check_calibration(cal: BoardCalibration, board: Board) -> None:
    for k, layer in enumerate(board.layers):
        if len(cal.conductance[k]) != len(layer.arrays) or len(cal.dendrites[k]) != len(
                layer.arrays):
            raise ParameterError(f"calibration layer {k + 1}: {len(cal.conductance[k])} "
                                 f"conductance maps and {len(cal.dendrites[k])} dendrite "
                                 f"ladders for {len(layer.arrays)} branches")
        for b, a in enumerate(layer.arrays):
            if cal.conductance[k][b].shape != (a.n_rows, a.n_cols):
                raise ParameterError(f"calibration conductance[{k}][{b}] has shape "
                                     f"{cal.conductance[k][b].shape}, the array "
                                     f"{(a.n_rows, a.n_cols)}")
            if not cal.dendrite_full(k, b) > 0:
                raise ParameterError(f"calibration: dendrite {b + 1} of layer {k + 1} reads "
                                     f"no current at u = 1 (no full scale)")


# ------------------------------------------------------------------------- mirror
def _soma_current(lad: Ladder, v_th: float, v: np.ndarray) -> np.ndarray:
    """A threshold switch: 0 below v_th, linear among the ladder points >= v_th (flat beyond).

    v_th is itself a ladder point (``fire_threshold``), so interpolating the whole ladder at
    v >= v_th never reaches below it."""
    if not math.isfinite(v_th):
        return np.zeros_like(v)
    return np.where(v >= v_th, lad.current(v), 0.0)


def _layer(x_eff: np.ndarray, layer: int, rows: Sequence[np.ndarray], cfg: NetConfig,
           board: Board, cal: BoardCalibration, branch: str
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """(u, f, s, y, a) of one layer for inputs ``x_eff`` in [0, 1] (N, layer inputs)."""
    z = np.stack([x_eff[:, r] @ bm.effective_weights(g, board.g_min_s, board.g_max_s,
                                                     cal.w_max[layer])
                  for r, g in zip(rows, cal.conductance[layer], strict=True)], axis=1)
    u = bm.dendrite_inputs(z)
    f = np.empty_like(u)
    fitted = np.zeros(len(rows)) if branch == "fit" else None
    for b, lad in enumerate(cal.dendrites[layer]):
        full = cal.dendrite_full(layer, b)
        if fitted is None:
            f[:, b] = bm.ratio(lad.current(u[:, b]), full)
        else:
            fitted[b] = fit_branch_a(lad.x, bm.ratio(lad.i_a, full))
            f[:, b] = branch_function(u[:, b], fitted[b])
    s = f.sum(axis=1)
    y = np.empty_like(s)
    somas = cal.somas[layer]
    for k, lad in enumerate(somas):
        v_th, i_on = cal.soma_fire(layer, k, board.soma["i_full_a"])
        cols = slice(k, None, len(somas))
        v = bm.soma_drive(s[:, cols], v_th if math.isfinite(v_th) else 0.0, cfg.theta,
                          board.soma["gain_v"], board.soma["v_max"])
        y[:, cols] = bm.soma_output(_soma_current(lad, v_th, v),
                                    i_on if math.isfinite(i_on) else 0.0,
                                    board.soma["i_full_a"])
    return u, f, s, y, fitted


def mirror(params: Params, cfg: NetConfig, board: Board, cal: BoardCalibration,
           x: np.ndarray, *, branch: str = "table") -> MirrorResult:
    """What the host computes on the board for every image (rows of ``x`` in [0, 1], the
    layout's feature order), with the devices replaced by their calibrations.

    ``branch="table"``: a dendrite's output is its ladder current at u (linear interpolation)
    over its full scale; ``"fit"``: F_a(u) with a fitted to that ladder (``fit_branch_a``), the
    network's own branch function with the board's measured a per dendrite. ``params`` is used
    only to check the network's shape: the weights the mirror applies are the read-back
    conductances.
    """
    if branch not in BRANCH_RULES:
        raise ParameterError(f"branch must be one of {BRANCH_RULES}, got {branch!r}")
    _check_network(params, cfg, board)
    _check_calibration(cal, board)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != cfg.n_in:
        raise ParameterError(f"inputs must be (N, {cfg.n_in}), got shape {x.shape}")
    rows1, rows2 = layer_rows(cfg)
    x1 = bm.encode(x, board.input_bits) / board.levels
    u1, f1, s1, y1, a1 = _layer(x1, 0, rows1, cfg, board, cal, branch)
    hidden = bm.quantise(y1, board.input_bits)
    u2, f2, s2, y2, a2 = _layer(hidden / board.levels, 1, rows2, cfg, board, cal, branch)
    fitted = None if a1 is None or a2 is None else (a1, a2)
    return MirrorResult(bm.predict(y2, s2), s2, y2, hidden, s1, y1, (u1, u2), (f1, f2), fitted)


def agreement(a_labels: np.ndarray, b_labels: np.ndarray) -> float:
    """Fraction of images on which two label vectors agree (NaN for none)."""
    a = np.asarray(a_labels)
    b = np.asarray(b_labels)
    if a.shape != b.shape or a.ndim != 1:
        raise ParameterError(f"agreement needs two label vectors of one length, got shapes "
                             f"{a.shape} and {b.shape}")
    return float(np.mean(a == b)) if a.size else float("nan")


# ------------------------------------------------------------------------- ideal board
def ideal_calibration(params: Params, cfg: NetConfig, board: Board, *,
                      soma_v: float | None = None) -> BoardCalibration:
    """The calibration an ideal board would give for this network: the reference of the mirror.

    Conductances exactly ``board_math.pair_targets`` of the weights; every dendrite ladder F_a(u)
    (a of ``cfg``) times a full scale (half the dendrite compliance; any value gives the same
    ratios); every soma a threshold switch with threshold ``soma_v`` volts (default: a quarter
    of the soma's v_max) that reads, from there up, the network's soma
    max(tanh((s - theta)/2), 0) through the host's drive V = soma_v + gain_v (s - theta) on top
    of an ON current of ``FIRE_FRACTION`` of full scale at its threshold (what the host
    calibrates, ``board_math.fire_point``, and subtracts, ``board_math.soma_output``). (The
    soma follows the
    network's tanh, not a threshold-linear line: the hidden somas' shape is the output layer's
    input, so a different shape is a different network.)
    """
    _check_network(params, cfg, board)
    v_max, gain, i_full = (board.soma[k] for k in ("v_max", "gain_v", "i_full_a"))
    v_th = 0.25 * v_max if soma_v is None else float(soma_v)
    if not 0.0 < v_th < v_max:
        raise ParameterError(f"soma_v = {v_th:g} V: must lie in (0, {v_max:g}) (the soma's "
                             f"v_max)")
    targets = network_targets(params, cfg, board)
    u = np.linspace(0.0, 1.0, IDEAL_DENDRITE_POINTS)
    dend = Ladder(u, 0.5 * board.dendrite["compliance_a"] * branch_function(u, cfg.a))
    v = np.union1d(np.linspace(0.0, v_max, IDEAL_SOMA_POINTS), [v_th])
    y = bm.FIRE_FRACTION + np.maximum(np.tanh((v - v_th) / (2.0 * gain)), 0.0)
    soma = Ladder(v, np.where(v >= v_th, i_full * y, 0.0))
    return BoardCalibration(
        targets.cols, targets.w_max,
        tuple((dend,) * len(layer.arrays) for layer in board.layers),  # type: ignore[arg-type]
        tuple((soma,) * len(layer.somas) for layer in board.layers))  # type: ignore[arg-type]


__all__ = ["A_FIT_MAX", "BRANCH_RULES", "BoardCalibration", "Ladder", "MirrorResult",
           "agreement", "fit_branch_a", "ideal_calibration", "mirror"]

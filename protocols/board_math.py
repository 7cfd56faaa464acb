"""The host's arithmetic on a dendritic board: weights to conductance pairs, images to bit planes,
column currents to branch sums, and the normalisations between the physical stages.

Why one module: the inference engine applies these to what it measures, image by image, and the
software mirror of the board (``analysis.network.board_mirror``) applies the very same functions
to the read-back conductances and calibrations, so the closed loop compares physics, not two
implementations of the arithmetic. Pure numpy: no instruments, no files. docs/board.md explains
each step; the dendrite rule is the authors' MATLAB normalisation (rectified: a unipolar pulse).
"""

from __future__ import annotations

import numpy as np

#: A soma reading at or above this fraction of ``i_full`` marks the soma's threshold voltage in
#: its calibration ladder (the first ladder voltage that fires).
FIRE_FRACTION = 0.05
#: The soma's ON current at its threshold is the line through its ladder's ON points within
#: this span above the threshold (at least 4 points, else the first firing point's current).
ON_FIT_SPAN_V = 1.0


def pair_targets(w: np.ndarray, g_min: float, g_max: float
                 ) -> tuple[np.ndarray, np.ndarray, float]:
    """Differential pair of one weight matrix ``w`` (inputs x neurons).

    Returns ``(g_plus, g_minus, w_max)``: w >= 0 puts G+ = g_min + (w / w_max)(g_max - g_min) and
    G- = g_min, w < 0 the mirror image, so G+ - G- = w (g_max - g_min) / w_max with w_max the
    layer's largest |w| (one device of every pair rests at g_min: the fewest programmed states).
    """
    w = np.asarray(w, dtype=np.float64)
    w_max = float(np.max(np.abs(w))) if w.size else 0.0
    if w_max == 0.0:
        w_max = 1.0
    span = (g_max - g_min) * np.abs(w) / w_max
    g_plus = g_min + np.where(w > 0, span, 0.0)
    g_minus = g_min + np.where(w < 0, span, 0.0)
    return g_plus, g_minus, w_max


def columns(g_plus: np.ndarray, g_minus: np.ndarray) -> np.ndarray:
    """Interleave a pair into array columns: neuron n's G+ at column 2n, G- at 2n+1 (0-based)."""
    out = np.empty((g_plus.shape[0], 2 * g_plus.shape[1]), dtype=np.float64)
    out[:, 0::2] = g_plus
    out[:, 1::2] = g_minus
    return out


def effective_weights(g_cols: np.ndarray, g_min: float, g_max: float, w_max: float
                      ) -> np.ndarray:
    """Weights (inputs x neurons) that conductances ``g_cols`` (interleaved columns) realise."""
    g_cols = np.asarray(g_cols, dtype=np.float64)
    return (g_cols[:, 0::2] - g_cols[:, 1::2]) * (w_max / (g_max - g_min))


def encode(x: np.ndarray, bits: int) -> np.ndarray:
    """Inputs in [0, 1] to integer codes 0 .. 2^bits - 1 (rounded; the board's input DAC)."""
    levels = 2 ** bits - 1
    return np.rint(np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0) * levels).astype(np.int64)


def bit_plane(codes: np.ndarray, k: int) -> np.ndarray:
    """Bit ``k`` (0 = least significant) of every code: the rows driven in plane k."""
    return ((np.asarray(codes) >> k) & 1).astype(bool)


def branch_sums(plane_currents: np.ndarray, bits: int, read_v: float, g_min: float,
                g_max: float, w_max: float) -> np.ndarray:
    """Branch partial sums in weight units from sensed column currents.

    ``plane_currents``: (bits, ..., 2 M) currents of every bit plane (least significant first),
    columns interleaved as ``columns``. The planes add with weights 2^k / (2^bits - 1), so the sum
    is the column current of the inputs ``codes / (2^bits - 1)``; the pair difference divided by
    ``read_v (g_max - g_min) / w_max`` gives sum_i x_i w_i.
    """
    i = np.asarray(plane_currents, dtype=np.float64)
    weights = 2.0 ** np.arange(bits) / (2 ** bits - 1)
    total = np.tensordot(weights, i, axes=(0, 0))
    diff = total[..., 0::2] - total[..., 1::2]
    return diff * (w_max / (read_v * (g_max - g_min)))


def dendrite_inputs(z: np.ndarray) -> np.ndarray:
    """The authors' MATLAB normalisation over the neurons (last axis) of each branch:
    u = max(z, 0) / max(max_j z_j, 1), so 0 <= u <= 1 (a unipolar pulse amplitude)."""
    z = np.maximum(np.asarray(z, dtype=np.float64), 0.0)
    return z / np.maximum(z.max(axis=-1, keepdims=True), 1.0)


def ratio(current_a: np.ndarray, full_a: np.ndarray | float) -> np.ndarray:
    """A response as a fraction of its full-scale current, clipped to [0, 1]."""
    return np.clip(np.abs(np.asarray(current_a, dtype=np.float64)) / full_a, 0.0, 1.0)


def soma_drive(s: np.ndarray, v_th: np.ndarray | float, theta: float, gain_v: float,
               v_max: float) -> np.ndarray:
    """Soma pulse amplitude for soma input ``s``: v_th + gain (s - theta), within [0, v_max].

    The calibrated bias puts the soma's own threshold voltage ``v_th`` at the network's theta,
    so the device decides whether the neuron fires; ``gain_v`` volts per unit of s sets the slope.
    """
    return np.clip(v_th + gain_v * (np.asarray(s, dtype=np.float64) - theta), 0.0, v_max)


def quantise(y: np.ndarray, bits: int) -> np.ndarray:
    """Soma outputs in [0, 1] to the next layer's input codes (the ADC of the readout)."""
    return encode(y, bits)


def predict(y_out: np.ndarray, s_out: np.ndarray) -> np.ndarray:
    """Label = the output soma with the largest reading; ties (e.g. several at 0 or saturated)
    go to the larger soma input s, as the software network's argmax of s would decide."""
    y = np.atleast_2d(np.asarray(y_out, dtype=np.float64))
    s = np.atleast_2d(np.asarray(s_out, dtype=np.float64))
    top = y.max(axis=1, keepdims=True)
    masked = np.where(y >= top, s, -np.inf)
    return masked.argmax(axis=1)


def fire_point(v_ladder: np.ndarray, i_ladder: np.ndarray, i_full: float
               ) -> tuple[float, float]:
    """(threshold voltage, ON current there) of a soma's calibration ladder: the first ladder
    voltage whose |current| reaches ``FIRE_FRACTION`` of ``i_full``, and the ON branch's line
    there (``ON_FIT_SPAN_V``); (NaN, NaN) if the soma never fires on the ladder."""
    v = np.asarray(v_ladder, dtype=np.float64)
    i = np.abs(np.asarray(i_ladder, dtype=np.float64))
    hit = np.flatnonzero(i >= FIRE_FRACTION * i_full)
    if not hit.size:
        return float("nan"), float("nan")
    v_th = float(v[hit[0]])
    # the ON branch just above threshold (below any compliance clamp): its line at v_th
    # averages out one ladder point's noise (an NbOx ON branch is a resistor)
    on = hit[(i[hit] < 0.95 * i.max()) & (v[hit] <= v_th + ON_FIT_SPAN_V)]
    if on.size >= 4:
        slope, icpt = np.polyfit(v[on], i[on], 1)
        return v_th, float(slope * v_th + icpt)
    return v_th, float(i[hit[0]])


def fire_threshold(v_ladder: np.ndarray, i_ladder: np.ndarray, i_full: float) -> float:
    """The threshold voltage of ``fire_point``."""
    return fire_point(v_ladder, i_ladder, i_full)[0]


def soma_output(current_a: np.ndarray, i_on_a: float, i_full_a: float) -> np.ndarray:
    """A soma's output in [0, 1]: its current above the ON current at its threshold, over
    ``i_full_a``. The offset is the readout's calibrated zero: an NbOx soma snaps from OFF to an
    ON current of 30-40 % of full scale as it fires, a step the network's soma function does
    not have (docs/board.md measures what it costs); below threshold the output is 0."""
    i = np.abs(np.asarray(current_a, dtype=np.float64))
    return np.clip((i - i_on_a) / i_full_a, 0.0, 1.0)

"""A power model for the dendritic network, rebuilt from the paper's definition (ED Fig 6).

Why: the paper's power claims (ED Fig 6, abstract) rest on a model the authors never published;
their code has no currents, voltages, ON/OFF ratio or time (notes §1.10). The caption gives only
the definition -- power is the integral over time steps of the applied voltage times each soma's
output current, and the power advantage is the power *without* dendrites over the power *with*
them. This module turns the network's normalised activity into currents under assumptions that
are all fields of ``PowerAssumptions`` (printed by ``describe()``), so every number can be traced
to a stated, adjustable choice. It is our reconstruction (notes §1.10 [inferred]), not the
authors' model, and its absolute values cannot be checked against the paper.

The physical picture (each step an assumption, see ``PowerAssumptions``):

* a dendrite is a conductance switched between G_off = G_on/R and G_on by its branch input
  through the network's dendrite function, read at the applied voltage:
  ``I_d = I_on(V)·[1/R + (1 − 1/R)·d]`` with ``d`` the network's dendrite output (``f(u)``);
  the 1/R floor is the OFF-state leakage a finite ON/OFF ratio implies, R → ∞ is the code;
* ``I_on(V) = i_on_a·(V/v_ref_v)^drive_exponent``; the soma's threshold is fixed in current and
  calibrated so that at ``v_ref_v`` one unit of the network's soma input is ``i_on_a`` (the
  trained network computes exactly as trained at R = ∞ and V = v_ref_v);
* the soma output is the network's soma function of the *physical* input,
  ``y = max(2σ(k·Σ_b[1/R + (1 − 1/R)·d_b] − θ) − 1, 0)`` with ``k = I_on(V)/i_on_a``, and its
  output current is ``y·i_soma_max_a`` (or ``y·Σ I_d`` if the soma passes its input current);
* energy per image = ``V·Σ_somas I_soma·dt`` summed over ``time_steps`` steps (a rate/expectation
  model: the current is constant over the steps of one image).

Nothing here is a formula in NL: the nonlinearity lowers power only through the activity of the
network (weak branch currents suppressed → smaller soma drive → fewer/weaker soma outputs), and
how ON/OFF and V move the advantage comes out of the same activity (the leakage floor adds drive
to every soma; the voltage scales the drive against a fixed soma threshold).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from dendrolab.errors import ParameterError

SOMA_CURRENT_MODES = ("output", "input")

#: (unit, meaning and source) per assumption field; ``describe()`` prints them in this order.
_FIELD_TEXT: dict[str, tuple[str, str]] = {
    "v_applied_v": ("V", "applied voltage: supply of every current counted, and the top of the "
                    "dendrite's operating range (u = 1). ED Fig 6 uses 5 V (a), several V (b), "
                    "2 V (c) [paper]"),
    "on_off": ("", "dendrite ON/OFF ratio R: OFF-state leakage floor I_on/R on every branch "
               "(R = inf: no leakage, the authors' code). ED Fig 6 uses 10 and 100 [paper]"),
    "i_on_a": ("A", "dendrite ON current at full drive (u = 1) at v_ref_v; also the soma's unit "
               "of input current (soma input 1 = i_on_a). Assumption: µA order of the group's "
               "dynamic memristor I-V (Zhong et al. 2021, notes §2.3)"),
    "v_ref_v": ("V", "voltage at which the physical currents equal the trained network's units "
                "(the soma threshold theta is calibrated there). Assumption"),
    "drive_exponent": ("", "dendrite read law I_on(V) = i_on_a·(V/v_ref_v)^p: 1 = ohmic "
                       "conductance, 0 = soma gain tracks V (then V cancels in the advantage), "
                       "3 = the cubic I-V of Zhong et al. 2021. Assumption"),
    "i_soma_max_a": ("A", "soma output current at full output (y -> 1) when soma_current is "
                     "'output'. Assumption"),
    "soma_current": ("", "'output': I_soma = y·i_soma_max_a (the soma emits its output); "
                     "'input': I_soma = y·sum of its dendrite currents (the firing soma passes "
                     "its input current). Assumption"),
    "time_steps": ("", "time steps per image over which the soma current is integrated "
                   "(constant over the steps: rate/expectation model). Assumption"),
    "dt_s": ("s", "length of one time step. Default from ED Fig 7: 10 µs operation time; one "
             "inference in 'tens of microseconds' at 5 V [paper caption]"),
    "count_dendrites": ("", "False: energy = soma output currents only (the paper's "
                        "definition); True: dendrite currents V·|I_d| added. Assumption"),
    "reference_leak": ("", "False: the network WITHOUT dendrites has no dendrite devices, so no "
                       "OFF floor (its synaptic currents go straight to the soma); True: it keeps "
                       "the same 1/R floor. Assumption"),
}


@dataclass(frozen=True)
class PowerAssumptions:
    """Every choice of the power model; all adjustable, all printed by ``describe()``.

    Defaults are assumptions unless the field text names a paper caption. The absolute energy
    scales with ``i_soma_max_a``/``i_on_a``, ``time_steps·dt_s`` and V; the advantage (a ratio)
    does not depend on ``i_soma_max_a``, ``time_steps`` or ``dt_s``.
    """

    v_applied_v: float = 5.0
    on_off: float = 100.0
    i_on_a: float = 1e-6
    v_ref_v: float = 5.0
    drive_exponent: float = 1.0
    i_soma_max_a: float = 1e-6
    soma_current: str = "output"
    time_steps: int = 2
    dt_s: float = 10e-6
    count_dendrites: bool = False
    reference_leak: bool = False

    def __post_init__(self) -> None:
        positive = ("v_applied_v", "i_on_a", "v_ref_v", "i_soma_max_a", "dt_s")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ParameterError(f"power assumption {name} must be a positive finite number, "
                                     f"got {value!r}")
        if not isinstance(self.on_off, (int, float)) or math.isnan(self.on_off) \
                or self.on_off < 1:
            raise ParameterError(f"power assumption on_off must be >= 1 (inf allowed), "
                                 f"got {self.on_off!r}")
        if not isinstance(self.drive_exponent, (int, float)) \
                or not math.isfinite(self.drive_exponent) or self.drive_exponent < 0:
            raise ParameterError(f"power assumption drive_exponent must be >= 0, "
                                 f"got {self.drive_exponent!r}")
        if self.soma_current not in SOMA_CURRENT_MODES:
            raise ParameterError(f"power assumption soma_current must be one of "
                                 f"{', '.join(SOMA_CURRENT_MODES)}, got {self.soma_current!r}")
        if isinstance(self.time_steps, bool) or not isinstance(self.time_steps, int) \
                or self.time_steps < 1:
            raise ParameterError(f"power assumption time_steps must be a positive integer, "
                                 f"got {self.time_steps!r}")

    @property
    def leak(self) -> float:
        """The OFF floor as a fraction of the ON current, 1/R (0 for R = inf)."""
        return 0.0 if math.isinf(self.on_off) else 1.0 / float(self.on_off)

    @property
    def i_on_at_v(self) -> float:
        """Dendrite ON current at the applied voltage, ``i_on_a·(V/v_ref_v)^drive_exponent``."""
        return self.i_on_a * (self.v_applied_v / self.v_ref_v) ** self.drive_exponent

    @property
    def drive(self) -> float:
        """Soma drive scale k = I_on(V)/i_on_a: 1 at v_ref_v (the trained operating point)."""
        return self.i_on_at_v / self.i_on_a

    @property
    def image_time_s(self) -> float:
        """Integration time of one image, ``time_steps·dt_s``."""
        return self.time_steps * self.dt_s

    def reference(self) -> PowerAssumptions:
        """The assumptions the network WITHOUT dendrites is evaluated under (same V and soma)."""
        return self if self.reference_leak else replace(self, on_off=math.inf)

    def with_(self, **changes: Any) -> PowerAssumptions:
        """A copy with some fields changed (validated again)."""
        names = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ParameterError(f"unknown power assumption(s): {', '.join(unknown)}; known: "
                                 f"{', '.join(sorted(names))}")
        return replace(self, **changes)

    def describe(self) -> list[str]:
        """The assumptions as printable lines: name = value unit, what it means, its source."""
        lines = ["Power model (our reconstruction of ED Fig 6's definition; notes §1.10):",
                 "  E_image = V_applied · sum over somas and time steps of I_soma · dt",
                 "  I_d = I_on(V)·[1/R + (1 - 1/R)·f(u)],  I_on(V) = i_on_a·(V/v_ref_v)^p",
                 "  soma input = sum_b I_d / i_on_a,  y = max(2σ(input - θ) - 1, 0)",
                 "  advantage = E(without dendrites: NL = 0, same soma, same V) / E(with)"]
        for f in fields(self):
            unit, text = _FIELD_TEXT[f.name]
            value = getattr(self, f.name)
            shown = f"{value:g}" if isinstance(value, float) else str(value)
            lines.append(f"  {f.name} = {shown}{' ' + unit if unit else ''}: {text}")
        return lines


@dataclass(frozen=True)
class LayerPower:
    """One layer's physical activity and per-image energy.

    ``soma_input`` (N, n): physical soma input in the trained network's units (current /
    ``i_on_a``); ``soma_output`` (N, n): physical soma outputs y in [0, 1); energies (N,) in J.
    """

    soma_input: np.ndarray
    soma_output: np.ndarray
    soma_energy_j: np.ndarray
    dendrite_energy_j: np.ndarray

    @staticmethod
    def concat(parts: Sequence[LayerPower]) -> LayerPower:
        return LayerPower(*(np.concatenate([getattr(p, f.name) for p in parts])
                            for f in fields(LayerPower)))


@dataclass(frozen=True)
class PowerResult:
    """Per-image energy and power of a network under one set of assumptions.

    ``energy_j`` follows the definition chosen in the assumptions (somas only, or somas plus
    dendrites); the split is always reported. Arrays have one entry per image.
    """

    assumptions: PowerAssumptions
    layers: tuple[str, ...]
    per_layer: tuple[LayerPower, ...] = field(repr=False)

    def _sum(self, attr: str) -> np.ndarray:
        return np.sum([getattr(p, attr) for p in self.per_layer], axis=0)

    @property
    def soma_energy_j(self) -> np.ndarray:
        return self._sum("soma_energy_j")

    @property
    def dendrite_energy_j(self) -> np.ndarray:
        return self._sum("dendrite_energy_j")

    @property
    def energy_j(self) -> np.ndarray:
        """Energy per image: somas, plus dendrites if ``count_dendrites``."""
        if self.assumptions.count_dendrites:
            return self.soma_energy_j + self.dendrite_energy_j
        return self.soma_energy_j

    @property
    def power_w(self) -> np.ndarray:
        """Mean power while one image is processed, energy / (time_steps·dt)."""
        return self.energy_j / self.assumptions.image_time_s

    @property
    def mean_energy_j(self) -> float:
        return float(np.mean(self.energy_j))

    def layer(self, name: str) -> LayerPower:
        try:
            return self.per_layer[self.layers.index(name)]
        except ValueError:
            raise ParameterError(f"no layer {name!r}; layers: {', '.join(self.layers)}") from None

    @property
    def output(self) -> np.ndarray:
        """The last layer's physical soma outputs (N, n_out)."""
        return self.per_layer[-1].soma_output

    @property
    def predictions(self) -> np.ndarray:
        """Labels at the operating point: argmax of the last layer's physical soma inputs (as
        ``model.predict`` takes argmax of s; ties among outputs clipped to 0 are broken)."""
        return self.per_layer[-1].soma_input.argmax(axis=1)

    def accuracy(self, labels: np.ndarray) -> float:
        """Fraction of ``predictions`` equal to ``labels``."""
        labels = np.asarray(labels)
        if labels.shape != self.predictions.shape:
            raise ParameterError(f"{labels.shape[0] if labels.ndim else 0} labels for "
                                 f"{self.predictions.shape[0]} images")
        return float(np.mean(self.predictions == labels)) if labels.size else math.nan

    def summary(self) -> dict[str, float]:
        """Mean per-image energies (J) split by layer and by soma/dendrite, and the mean power."""
        out = {"energy_j": self.mean_energy_j, "power_w": float(np.mean(self.power_w))}
        for name, p in zip(self.layers, self.per_layer, strict=True):
            out[f"{name}_soma_j"] = float(np.mean(p.soma_energy_j))
            out[f"{name}_dendrite_j"] = float(np.mean(p.dendrite_energy_j))
        return out


def soma_function(s: np.ndarray, theta: float) -> np.ndarray:
    """The authors' soma, ``max(2σ(s − θ) − 1, 0)`` = ``max(tanh((s − θ)/2), 0)`` (notes §1.6)."""
    return np.maximum(np.tanh((np.asarray(s, dtype=np.float64) - theta) / 2.0), 0.0)


def dendrite_currents(d: np.ndarray, assumptions: PowerAssumptions) -> np.ndarray:
    """Branch currents (A) from dendrite outputs ``d``: ``I_on(V)·[1/R + (1 − 1/R)·d]``.

    ``d`` is the network's dendrite output (``f(u)``, after the PyTorch variant's rescaling);
    it can be slightly negative in the PyTorch variant (reverse current below the floor).
    """
    leak = assumptions.leak
    return assumptions.i_on_at_v * (leak + (1.0 - leak) * np.asarray(d, dtype=np.float64))


def layer_power(d: np.ndarray, assumptions: PowerAssumptions, *, theta: float) -> LayerPower:
    """One layer's currents and energy per image from its dendrite outputs ``d`` (N, B, n)."""
    d = np.asarray(d)
    if d.ndim != 3:
        raise ParameterError(f"dendrite outputs must be (images, branches, neurons), "
                             f"got shape {d.shape}")
    i_d = dendrite_currents(d, assumptions)
    i_in = i_d.sum(axis=1)                       # (N, n) soma input current, A
    s_phys = i_in / assumptions.i_on_a           # the soma's threshold is fixed in current
    y = soma_function(s_phys, theta)
    if assumptions.soma_current == "output":
        i_soma = y * assumptions.i_soma_max_a
    else:
        i_soma = y * np.maximum(i_in, 0.0)
    v_t = assumptions.v_applied_v * assumptions.image_time_s  # constant over the time steps
    return LayerPower(soma_input=s_phys, soma_output=y,
                      soma_energy_j=v_t * i_soma.sum(axis=1),
                      dendrite_energy_j=v_t * np.abs(i_d).sum(axis=(1, 2)))


def _traces(trace_or_forward: Any) -> tuple[tuple[str, ...], list[np.ndarray]]:
    """(names, dendrite outputs) from a Forward (.hidden/.output), one trace, or a sequence."""
    if hasattr(trace_or_forward, "hidden") and hasattr(trace_or_forward, "output"):
        layers = [("hidden", trace_or_forward.hidden), ("output", trace_or_forward.output)]
    elif hasattr(trace_or_forward, "d"):
        layers = [("layer", trace_or_forward)]
    elif isinstance(trace_or_forward, Sequence) and not isinstance(trace_or_forward, str):
        layers = [(f"layer{k}", t) for k, t in enumerate(trace_or_forward)]
    else:
        raise ParameterError("network_power needs a Forward with traces (forward(..., "
                             "keep=True)), a layer trace, or a list of them; got "
                             f"{type(trace_or_forward).__name__}")
    names, ds = [], []
    for name, trace in layers:
        d = getattr(trace, "d", None)
        if d is None:
            raise ParameterError(f"the {name} layer has no trace: run forward(..., keep=True)")
        names.append(name)
        ds.append(np.asarray(d))
    if len({d.shape[0] for d in ds}) > 1:
        raise ParameterError("the layer traces disagree on the number of images")
    return tuple(names), ds


def network_power(trace_or_forward: Any, assumptions: PowerAssumptions | None = None, *,
                  theta: float = 0.11) -> PowerResult:
    """Per-image energy of a network from its traces (the dendrite outputs of every layer).

    Each layer's soma outputs are recomputed from the physical branch currents (leakage floor,
    drive at the applied voltage); the traces' own ``s``/``y`` are not used. For the output layer
    to see the *physical* hidden activity, pass traces from ``operating_forward``; a plain
    ``forward(..., keep=True)`` trace evaluates each layer on the ideal network's inputs.
    ``theta`` is the soma threshold of the network (``NetConfig.theta``).
    """
    assumptions = assumptions or PowerAssumptions()
    names, ds = _traces(trace_or_forward)
    per_layer = tuple(layer_power(d, assumptions, theta=theta) for d in ds)
    return PowerResult(assumptions, names, per_layer)


def operating_power(params: Any, x: np.ndarray, cfg: Any,
                    assumptions: PowerAssumptions | None = None, *, device: Any = None,
                    rng: np.random.Generator | None = None, chunk: int = 2048) -> PowerResult:
    """Run the network at the operating point and return its power, layer by layer.

    Unlike ``network_power`` on an ideal trace, the output layer here receives the *physical*
    hidden soma outputs (leakage floor, drive at V), so its activity, energy and
    ``PowerResult.predictions`` are those of the network operated under ``assumptions``. At
    R = inf and V = v_ref_v this is exactly the trained network. ``device``: a
    ``devices.DeviceModel`` or ``Realised`` (measured branch functions and synapses), as for
    ``model.forward``. Processes ``chunk`` images at a time (memory stays bounded for SVHN).
    """
    from analysis.network.model import Packed, check_x, layer_forward

    assumptions = assumptions or PowerAssumptions()
    x = check_x(x, cfg)
    pk = Packed.from_params(params, cfg)
    kw: dict[str, Any] = {}
    if device is not None:
        real = device.realise(params, cfg) if hasattr(device, "realise") else device
        rng = rng if rng is not None else real.default_rng()
        kw = real.forward_kwargs(pk, rng)
    a1 = cfg.a if kw.get("a1") is None else kw["a1"]
    a2 = cfg.a if kw.get("a2") is None else kw["a2"]
    w1 = pk.w1 if kw.get("w1") is None else kw["w1"]
    w2 = pk.w2 if kw.get("w2") is None else kw["w2"]
    noise = {"dendrite_sigma": kw.get("dendrite_sigma", 0.0), "rng": rng}
    hidden, output = [], []
    for lo in range(0, x.shape[0], max(1, int(chunk))):
        xp = pk.pack_x(x[lo:lo + chunk])
        h = layer_forward(xp, w1, pk.off1, a1, cfg.variant, cfg.theta,
                           read_std=kw.get("read1", 0.0), **noise)
        hp = layer_power(h.d, assumptions, theta=cfg.theta)
        o = layer_forward(hp.soma_output.astype(h.y.dtype), w2, pk.off2, a2, cfg.variant,
                           cfg.theta, read_std=kw.get("read2", 0.0), **noise)
        hidden.append(hp)
        output.append(layer_power(o.d, assumptions, theta=cfg.theta))
    if not hidden:
        raise ParameterError("no images to evaluate the power on")
    return PowerResult(assumptions, ("hidden", "output"),
                       (LayerPower.concat(hidden), LayerPower.concat(output)))


@dataclass(frozen=True)
class Advantage:
    """Power advantage = mean energy per image without dendrites / with dendrites."""

    advantage: float
    with_dendrites: PowerResult
    without_dendrites: PowerResult


def power_advantage(with_dendrites: Any, without_dendrites: Any,
                    assumptions: PowerAssumptions | None = None, *,
                    theta: float = 0.11) -> Advantage:
    """ED Fig 6's ratio: energy of the network WITHOUT dendrites over the one WITH them.

    ``with_dendrites``: traces of the network with dendrite nonlinearity (NL > 0), evaluated
    under ``assumptions``. ``without_dendrites``: traces of the reference network (NL = 0,
    linear branches), evaluated under ``assumptions.reference()`` -- the same voltage and soma,
    and no OFF floor unless ``reference_leak``. Both over the same images. The ratio is of the
    mean energies over the images (the integral over the test set).
    """
    assumptions = assumptions or PowerAssumptions()
    with_p = network_power(with_dendrites, assumptions, theta=theta)
    without_p = network_power(without_dendrites, assumptions.reference(), theta=theta)
    if with_p.energy_j.shape != without_p.energy_j.shape:
        raise ParameterError("the networks with and without dendrites were traced on different "
                             "numbers of images")
    return Advantage(_ratio(without_p.mean_energy_j, with_p.mean_energy_j), with_p, without_p)


def _ratio(e_without: float, e_with: float) -> float:
    if e_with == 0.0:
        return math.inf if e_without > 0 else math.nan
    return e_without / e_with


def operating_advantage(with_net: tuple[Any, Any], without_net: tuple[Any, Any],
                        x: np.ndarray, assumptions: PowerAssumptions | None = None, *,
                        device: Any = None) -> Advantage:
    """``power_advantage`` for two networks operated at the assumptions' operating point.

    ``with_net`` / ``without_net``: ``(params, cfg)`` of the network with dendrites and of the
    reference (NL = 0, normally trained with the same seed); both run on ``x`` through
    ``operating_power`` (the reference under ``assumptions.reference()``). ``device`` applies to
    the network with dendrites only (the reference has no dendrite devices).
    """
    assumptions = assumptions or PowerAssumptions()
    with_p = operating_power(with_net[0], x, with_net[1], assumptions, device=device)
    without_p = operating_power(without_net[0], x, without_net[1], assumptions.reference())
    return Advantage(_ratio(without_p.mean_energy_j, with_p.mean_energy_j), with_p, without_p)


__all__ = ["SOMA_CURRENT_MODES", "Advantage", "LayerPower", "PowerAssumptions", "PowerResult",
           "dendrite_currents", "layer_power", "network_power", "operating_advantage",
           "operating_power", "power_advantage", "soma_function"]

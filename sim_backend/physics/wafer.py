"""A 100 mm wafer: die grid, named device sites, hierarchical spatial variation and defects.

It only supplies per-site multiplicative parameter scales (through shared latent fields, so device
types at one site correlate) and defect states; device classes apply their own local mismatch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from dendrolab.errors import ParameterError

from . import rng
from .params import ParamSet, param

DEFECT_OK, DEFECT_SHORTED, DEFECT_OPEN, DEFECT_STUCK = 0, 1, 2, 3

LATENTS = ("t", "n")

DIE_DTYPE = np.dtype([("die", np.int32), ("col", np.int32), ("row", np.int32),
                      ("x_mm", np.float64), ("y_mm", np.float64)])
SITE_DTYPE = np.dtype([("die", np.int32), ("col", np.int32), ("row", np.int32),
                       ("site", "U8"), ("device", np.int32),
                       ("x_mm", np.float64), ("y_mm", np.float64)])


@dataclass(frozen=True)
class WaferParams(ParamSet):
    """Wafer geometry, variation magnitudes (log units of the latent fields) and defects."""

    section: ClassVar[str] = "wafer"

    diameter_mm: float = param(100.0, "mm", "wafer diameter", lo=0, lo_open=True)
    flat_length_mm: float = param(32.5, "mm", "primary flat chord length (SEMI 100 mm)", lo=0)
    edge_exclusion_mm: float = param(3.0, "mm", "unusable rim along edge and flat", lo=0)
    die_pitch_x_mm: float = param(10.0, "mm", "die step in x", lo=0, lo_open=True)
    die_pitch_y_mm: float = param(10.0, "mm", "die step in y", lo=0, lo_open=True)
    sites_x: int = param(4, "1", "device sites per die along x (named D<row><col>)", lo=1, hi=10)
    sites_y: int = param(4, "1", "device sites per die along y", lo=1, hi=10)
    site_pitch_x_mm: float = param(2.0, "mm", "site spacing in x within a die", lo=0)
    site_pitch_y_mm: float = param(2.0, "mm", "site spacing in y within a die", lo=0)
    sigma_wafer: float = param(0.03, "ln", "wafer-to-wafer offset sigma of each latent field",
                               lo=0, kind="sigma")
    a_r: float = param(0.0296, "ln", "thickness radial term a_r (r/R)^2 (+3 % centre to edge)",
                       kind="sigma")
    a_x: float = param(0.0, "ln", "thickness planar term a_x x/R", kind="sigma")
    a_y: float = param(0.0, "ln", "thickness planar term a_y y/R", kind="sigma")
    a_r_n: float = param(0.0, "ln", "stoichiometry radial term a_r_n (r/R)^2", kind="sigma")
    a_x_n: float = param(0.0, "ln", "stoichiometry planar term a_x_n x/R", kind="sigma")
    a_y_n: float = param(0.0, "ln", "stoichiometry planar term a_y_n y/R", kind="sigma")
    sigma_field: float = param(0.02, "ln", "sigma of the correlated random field Z of each latent",
                               lo=0, kind="sigma")
    corr_length_mm: float = param(15.0, "mm", "correlation length l of Z, cov exp(-d/l)",
                                  lo=0, lo_open=True)
    field_features: int = param(512, "1", "random Fourier features per latent field",
                                lo=16, hi=8192)
    sigma_die: float = param(0.015, "ln", "die-to-die offset sigma of each latent field", lo=0,
                             kind="sigma")
    defect_density_per_cm2: float = param(1.0, "1/cm^2", "Poisson defect density D0", lo=0,
                                          kind="sigma")
    defect_frac_shorted: float = param(0.4, "1", "share of defects that short a device",
                                       lo=0, hi=1)
    defect_frac_open: float = param(0.4, "1", "share of defects that open a device", lo=0, hi=1)
    defect_frac_stuck: float = param(0.2, "1", "share of defects that leave a device stuck",
                                     lo=0, hi=1)
    gain_g_off_t: float = param(5.0, "1", "dendrite ln G_off = -gain (t/t0 - 1)")
    gain_k_n: float = param(3.0, "1", "dendrite ln k+ and ln k- = gain (n/n0 - 1)")
    gain_tau_r_n: float = param(-1.0, "1", "dendrite ln tau_r = gain (n/n0 - 1)")
    gain_r_off_t: float = param(5.0, "1", "soma ln R_off = gain (t/t0 - 1)")
    gain_g_min_t: float = param(5.0, "1", "synapse ln G_min = -gain (t/t0 - 1)")

    def _check(self, f: Any, value: Any) -> Any:
        value = super()._check(f, value)
        if f.type in ("int", int):
            if value != int(value):
                raise ParameterError(f"{self.section}.{f.name} = {value:g}: must be an integer")
            return int(value)
        return value


@dataclass(frozen=True)
class _Field:
    """Random Fourier features of one stationary field with covariance exp(-d/l) (unit var)."""

    omega: np.ndarray  # (M, 2) wavevectors, rad/mm
    phase: np.ndarray  # (M,)

    def __call__(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        out = np.zeros(np.shape(x))
        # Chunk over features so that large point sets stay light on memory.
        for a in range(0, self.omega.shape[0], 128):
            om, ph = self.omega[a:a + 128], self.phase[a:a + 128]
            arg = np.multiply.outer(x, om[:, 0]) + np.multiply.outer(y, om[:, 1]) + ph
            out = out + np.cos(arg).sum(axis=-1)
        return out * math.sqrt(2.0 / self.omega.shape[0])


class Wafer:
    """One wafer: ``dies`` and ``sites`` tables (structured arrays) and its variation fields.

    Latent fields (log deviations of oxide thickness t/t0 and stoichiometry n/n0):
    u = delta_W + S(x, y) + Z(x, y) + delta_die, each part drawn from keyed streams of
    ``device_keys(seed, wafer_id, 0, 0)`` (wafer level) or ``device_keys(seed, wafer_id, die, 0)``.
    Device parameters follow from the latents (``scale_for``); local mismatch is the devices' own.
    """

    def __init__(self, params: WaferParams | None = None, seed: int = 0, wafer_id: int = 0
                 ) -> None:
        self.params = pr = params or WaferParams()
        self.seed, self.wafer_id = int(seed), int(wafer_id)
        if pr.sites_x > 1 and (pr.sites_x - 1) * pr.site_pitch_x_mm >= pr.die_pitch_x_mm:
            raise ParameterError("wafer: sites_x * site_pitch_x_mm does not fit in the die pitch")
        if pr.sites_y > 1 and (pr.sites_y - 1) * pr.site_pitch_y_mm >= pr.die_pitch_y_mm:
            raise ParameterError("wafer: sites_y * site_pitch_y_mm does not fit in the die pitch")
        if pr.flat_length_mm >= pr.diameter_mm:
            raise ParameterError("wafer.flat_length_mm must be shorter than the diameter")
        if pr.edge_exclusion_mm >= self.radius_mm:
            raise ParameterError("wafer.edge_exclusion_mm leaves no usable area")
        fracs = np.array([pr.defect_frac_shorted, pr.defect_frac_open, pr.defect_frac_stuck])
        if fracs.sum() <= 0:
            raise ParameterError("wafer: defect_frac_shorted/open/stuck must not all be zero")
        self._defect_cdf = np.cumsum(fracs / fracs.sum())
        self._wkey = rng.device_keys(self.seed, self.wafer_id, 0, 0)
        self._build_geometry()
        self._fields = {name: self._make_field(name) for name in LATENTS}
        self._offset = {name: pr.sigma_wafer * float(rng.normal(self._wkey, f"wafer.{name}")[0])
                        for name in LATENTS}
        dkeys = rng.device_keys(self.seed, self.wafer_id, self.dies["die"].astype(np.int64), 0)
        self._die_offset = {name: pr.sigma_die * rng.normal(dkeys, f"die.{name}")
                            for name in LATENTS}

    # -- geometry ----------------------------------------------------------------------------
    @property
    def radius_mm(self) -> float:
        return self.params.diameter_mm / 2

    @property
    def usable_radius_mm(self) -> float:
        return self.radius_mm - self.params.edge_exclusion_mm

    @property
    def flat_y_mm(self) -> float:
        """y of the flat chord (the flat is at the bottom, y < 0)."""
        return -math.sqrt(self.radius_mm ** 2 - (self.params.flat_length_mm / 2) ** 2)

    @property
    def die_area_cm2(self) -> float:
        return self.params.die_pitch_x_mm * self.params.die_pitch_y_mm / 100.0

    def in_usable(self, x_mm: object, y_mm: object) -> np.ndarray:
        """True where a point lies inside the edge exclusion (rim and flat)."""
        x, y = np.asarray(x_mm, float), np.asarray(y_mm, float)
        return (np.hypot(x, y) <= self.usable_radius_mm + 1e-9) & (
            y >= self.flat_y_mm + self.params.edge_exclusion_mm - 1e-9)

    def _build_geometry(self) -> None:
        pr = self.params
        px, py = pr.die_pitch_x_mm, pr.die_pitch_y_mm
        ni, nj = math.ceil(self.radius_mm / px), math.ceil(self.radius_mm / py)
        i, j = np.meshgrid(np.arange(-ni, ni), np.arange(-nj, nj), indexing="xy")
        i, j = i.ravel(), j.ravel()
        ok = np.ones(i.shape, bool)
        for di in (0, 1):          # a rectangle lies in the (convex) usable area iff its corners do
            for dj in (0, 1):
                ok &= self.in_usable((i + di) * px, (j + dj) * py)
        i, j = i[ok], j[ok]
        if i.size == 0:
            raise ParameterError("wafer: no full die fits inside the usable area")
        col = i - i.min()
        row = j.max() - j                                   # row 0 at the top of the wafer map
        order = np.lexsort((col, row))
        dies = np.zeros(i.size, DIE_DTYPE)
        dies["die"] = np.arange(i.size)
        dies["col"], dies["row"] = col[order], row[order]
        dies["x_mm"], dies["y_mm"] = (i[order] + 0.5) * px, (j[order] + 0.5) * py
        self.dies = dies
        self._i0, self._j0 = int(i.min()), int(j.min())
        lut = np.full((i.max() - i.min() + 1, j.max() - j.min() + 1), -1, np.int32)
        lut[i[order] - self._i0, j[order] - self._j0] = dies["die"]
        self._lut = lut

        nx, ny = int(pr.sites_x), int(pr.sites_y)
        sr, sc = np.divmod(np.arange(nx * ny), nx)
        names = np.array([f"D{r}{c}" for r, c in zip(sr, sc, strict=True)])
        dx = (sc - (nx - 1) / 2) * pr.site_pitch_x_mm
        dy = -(sr - (ny - 1) / 2) * pr.site_pitch_y_mm
        sites = np.zeros(dies.size * nx * ny, SITE_DTYPE)
        for fld in ("die", "col", "row"):
            sites[fld] = np.repeat(dies[fld], nx * ny)
        sites["site"] = np.tile(names, dies.size)
        sites["device"] = np.tile(np.arange(nx * ny), dies.size)
        sites["x_mm"] = np.repeat(dies["x_mm"], nx * ny) + np.tile(dx, dies.size)
        sites["y_mm"] = np.repeat(dies["y_mm"], nx * ny) + np.tile(dy, dies.size)
        self.sites = sites
        self.site_names = tuple(names)

    def die_of(self, x_mm: object, y_mm: object) -> np.ndarray:
        """Die id containing each point, -1 outside every full die."""
        x, y = np.asarray(x_mm, float), np.asarray(y_mm, float)
        i = np.floor(x / self.params.die_pitch_x_mm).astype(np.int64) - self._i0
        j = np.floor(y / self.params.die_pitch_y_mm).astype(np.int64) - self._j0
        inside = (i >= 0) & (i < self._lut.shape[0]) & (j >= 0) & (j < self._lut.shape[1])
        out = np.full(np.shape(x), -1, np.int32)
        out[inside] = self._lut[i[inside], j[inside]]
        return out

    def site_index(self, die: int, site: str) -> int:
        """Row of ``sites`` for a (die id, site name) pair."""
        hit = np.flatnonzero((self.sites["die"] == die) & (self.sites["site"] == site))
        if hit.size != 1:
            raise ParameterError(f"wafer: no site {site!r} on die {die}")
        return int(hit[0])

    def keys(self, sites: np.ndarray) -> np.ndarray:
        """Device keys (seed, wafer, die, device) for the given site rows, for device arrays."""
        return rng.device_keys(self.seed, self.wafer_id, np.asarray(sites["die"], np.int64),
                               np.asarray(sites["device"], np.int64))

    # -- variation ---------------------------------------------------------------------------
    def _make_field(self, name: str) -> _Field:
        """Wavevectors from the 2-D spectral density of exp(-d/l): p(w) = l^2/(2 pi)
        (1 + l^2 |w|^2)^(-3/2) (bivariate Cauchy). Radial CDF 1 - (1 + l^2 rho^2)^(-1/2) inverts
        to rho = sqrt((1 - u)^-2 - 1) / l; the angle and the phase are uniform."""
        m = np.arange(int(self.params.field_features))
        u = rng.uniform(self._wkey, f"field.{name}.radius", m)
        theta = 2 * np.pi * rng.uniform(self._wkey, f"field.{name}.angle", m)
        phase = 2 * np.pi * rng.uniform(self._wkey, f"field.{name}.phase", m)
        rho = np.sqrt(np.expm1(-2.0 * np.log1p(-u))) / self.params.corr_length_mm
        omega = np.stack([rho * np.cos(theta), rho * np.sin(theta)], axis=-1)
        return _Field(omega, phase)

    def latent_parts(self, x_mm: object, y_mm: object, die: object = None
                     ) -> dict[str, dict[str, np.ndarray]]:
        """Per latent ("t", "n"): the parts "wafer", "systematic", "field", "die" of its log
        deviation at the points (die offsets looked up from the position unless ``die`` given;
        0 outside full dies)."""
        pr = self.params
        x, y = np.asarray(x_mm, float), np.asarray(y_mm, float)
        x, y = np.broadcast_arrays(x, y)
        d = self.die_of(x, y) if die is None else np.broadcast_to(np.asarray(die, int), x.shape)
        rr = (x * x + y * y) / self.radius_mm ** 2
        xs, ys = x / self.radius_mm, y / self.radius_mm
        coef = {"t": (pr.a_r, pr.a_x, pr.a_y), "n": (pr.a_r_n, pr.a_x_n, pr.a_y_n)}
        out = {}
        for name in LATENTS:
            ar, ax, ay = coef[name]
            die_part = np.where(d >= 0, self._die_offset[name][np.maximum(d, 0)], 0.0)
            field = (pr.sigma_field * self._fields[name](x, y) if pr.sigma_field
                     else np.zeros(x.shape))
            out[name] = {"wafer": np.full(x.shape, self._offset[name]),
                         "systematic": ar * rr + ax * xs + ay * ys,
                         "field": field, "die": die_part}
        return out

    def latent(self, x_mm: object, y_mm: object, die: object = None) -> dict[str, np.ndarray]:
        """Log deviations u_t = ln(t/t0) and u_n = ln(n/n0) of the latent fields at the points."""
        parts = self.latent_parts(x_mm, y_mm, die)
        return {name: sum(parts[name].values()) for name in LATENTS}

    def scale_for(self, kind: str, sites: np.ndarray | Mapping[str, np.ndarray]
                  ) -> dict[str, np.ndarray]:
        """Multiplicative parameter factors for devices of ``kind`` at ``sites`` (rows of
        ``self.sites``), named as in the device parameter sets:

        dendrite: G_off ~ exp(-g (t/t0 - 1)), k+/k- ~ exp(g (n/n0 - 1)), tau_r ~ exp(g (n/n0-1));
        soma: V_th, V_hold ~ t, R_off ~ exp(g (t/t0 - 1)); synapse: G_max ~ n,
        G_min ~ exp(-g (t/t0 - 1)).
        """
        pr = self.params
        lat = self.latent(sites["x_mm"], sites["y_mm"], sites["die"])
        dt, dn = np.expm1(lat["t"]), np.expm1(lat["n"])    # t/t0 - 1, n/n0 - 1
        if kind == "dendrite":
            k = np.exp(pr.gain_k_n * dn)
            return {"g_off_s": np.exp(-pr.gain_g_off_t * dt), "k_plus_per_s": k,
                    "k_minus_per_s": k.copy(), "tau_r_s": np.exp(pr.gain_tau_r_n * dn)}
        if kind == "soma":
            t = np.exp(lat["t"])
            return {"v_th_v": t, "v_hold_v": t.copy(), "r_off_ohm": np.exp(pr.gain_r_off_t * dt)}
        if kind == "synapse":
            return {"g_max_s": np.exp(lat["n"]), "g_min_s": np.exp(-pr.gain_g_min_t * dt)}
        raise ParameterError(f"wafer.scale_for: unknown kind {kind!r}; "
                             "known: dendrite, soma, synapse")

    # -- defects -----------------------------------------------------------------------------
    @property
    def defect_probability(self) -> float:
        """Chance that one device is hit: 1 - exp(-D0 A_die / sites per die) (Poisson thinning,
        so a die is defect free with probability exp(-D0 A_die))."""
        n_sites = int(self.params.sites_x) * int(self.params.sites_y)
        return -math.expm1(-self.params.defect_density_per_cm2 * self.die_area_cm2 / n_sites)

    def defects(self, sites: np.ndarray | Mapping[str, np.ndarray]) -> np.ndarray:
        """Defect state per site row: 0 ok, 1 shorted, 2 open, 3 stuck (int8, deterministic)."""
        keys = self.keys(sites)
        hit = rng.uniform(keys, "defect") < self.defect_probability
        kind = 1 + np.searchsorted(self._defect_cdf, rng.uniform(keys, "defect.kind"))
        return np.where(hit, np.minimum(kind, 3), DEFECT_OK).astype(np.int8)

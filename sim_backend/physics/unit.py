"""Dendrite-soma unit: a dendrite in series between the input and the soma node (C_m parallel).

The circuit is nonlinear, so it is stepped with frozen dendrite chord conductance: per step the
node and the dendrite state move exactly and threshold crossings are located analytically. The
default method is second order with error control (a float kernel for a few units, numpy for
many); the first-order fixed-step stepper stays as the reference. It reuses the soma event rules
and must not change either device model.
"""

from __future__ import annotations

import math

import numpy as np

from dendrolab.errors import ParameterError

from . import rng
from .dendrite import ARG_MAX, BDT_MAX, C2C_STREAM, SINH_MAX, DendriteArray, exact_update
from .soma import (
    _MARGIN,
    C2C_V_HOLD_STREAM,
    C2C_V_TH_STREAM,
    EXP_MAX,
    CircuitParams,
    SomaArray,
    SpikeRecord,
    _advance_clock,
    _branch_charge,
    _check_stall,
    _FastForward,
    _next_event,
    _Recorder,
    _relax,
    _resolve,
    _wave_arrays,
)
from .waveform import Waveform

#: Below this dendrite voltage the chord conductance is taken at +-V_SMALL (small-signal limit).
V_SMALL = 1e-6
#: "auto" coupling: sub-steps longer than this fraction of the node time constant use the tangent.
STIFF_RATIO = 0.2
#: Dendrite linearisations: chord (spec §3.4), tangent (differential conductance), auto (chord
#: unless a sub-step is stiff, h > STIFF_RATIO tau, where the chord iteration can go unstable).
COUPLINGS = ("auto", "chord", "tangent")
#: "exp2" (default): second-order exponential predictor-corrector with step control;
#: "stepper": first-order exponential Euler on sub-steps h (the fine-step reference).
METHODS = ("exp2", "stepper")
#: exp2 kernels: "float" (plain floats, one unit at a time), "numpy" (all units in lockstep).
KERNELS = ("auto", "float", "numpy")
#: exp2 local error tolerance per step on the node voltage (V) and on the dendrite state w.
EXP2_TOL = 1e-3
#: "auto" kernel: up to this many units the float kernel is faster than numpy on the batch.
FLOAT_MAX_UNITS = 24
#: exp2 step-size controller: safety factor and bounds of the step change per step.
_SAFETY, _SHRINK_MIN, _GROW_MAX = 0.9, 0.2, 4.0
#: exp2 first step of a phase (segment start or after an event), as a fraction of the node tau.
_FIRST_STEP = 0.1
#: exp2 accepts any step this short (s) whatever its error estimate (no endless halving).
_H_FLOOR = 1e-15
#: Keyed draws fetched per call by the float kernel (values depend only on the event index).
_DRAW_BLOCK = 64


class DendriteSomaUnit:
    """N units: dendrite i drives soma i; state lives in the two device arrays.

    ``run`` sub-steps with h (default ``circuit.unit_step_s``). With ``adaptive`` a sub-step may
    double while the frozen dendrite conductance and its rates change by less than
    ``growth_tol`` (relative) over it; it falls back to h after every switching event. Coupling
    "chord" freezes G_d = I_d / V_d (spec §3.4); "auto" (default) does the same except on stiff
    sub-steps (longer than STIFF_RATIO x the node time constant), where the chord iteration can
    oscillate, and there uses the differential conductance (exponential Rosenbrock-Euler).
    Dendrite C2C noise is drawn once per input pulse (stream "c2c.k", counter ``events``) and
    facilitation is frozen per sub-step; the dendrite's Ornstein-Uhlenbeck state noise is not
    applied inside the unit.
    """

    def __init__(self, dendrite: DendriteArray, soma: SomaArray,
                 circuit: CircuitParams | None = None) -> None:
        if not isinstance(dendrite, DendriteArray) or not isinstance(soma, SomaArray):
            raise ParameterError("DendriteSomaUnit needs a DendriteArray and a SomaArray")
        if dendrite.n != soma.n:
            raise ParameterError(
                f"unit: {dendrite.n} dendrites but {soma.n} somas (one each per unit)")
        self.dendrite = dendrite
        self.soma = soma
        self.circuit = circuit if circuit is not None else CircuitParams()
        self.n = soma.n
        self.c_m = self.circuit.c_m_f
        self.r_load = self.circuit.r_load_ohm
        # Dendrite pulse bookkeeping (one C2C factor on k+ and k- per input pulse).
        self._polarity = np.zeros(self.n, dtype=np.int8)
        self._kfac = np.ones(self.n)

    # ------------------------------------------------------------------ dendrite pieces
    def chord_conductance(self, v_d: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
        """G_d = I_d(V_d, w) / V_d, with the small-signal limit near V_d = 0."""
        v_d = np.asarray(v_d, dtype=float)
        vs = np.where(np.abs(v_d) < V_SMALL, np.where(v_d < 0, -V_SMALL, V_SMALL), v_d)
        return self.dendrite.current(vs, w) / vs

    def _tangent(self, v_d: np.ndarray, w: np.ndarray, vin: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Dendrite linearised by its differential conductance: I_d ~ g (v_src - v)."""
        dv = 1e-4 * np.maximum(np.abs(v_d), 1.0)
        pts = v_d[:, None] + dv[:, None] * np.array([0.0, 1.0, -1.0])
        i = self.dendrite.current(pts, w[:, None])
        g = (i[:, 1] - i[:, 2]) / (2.0 * dv)
        ok = g > 0
        g = np.where(ok, g, self.chord_conductance(v_d, w))
        v_src = np.where(ok, vin - v_d + i[:, 0] / np.where(ok, g, 1.0), vin)
        return g, v_src

    def _rates(self, v_d: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rp, rm = self.dendrite.rates(v_d)
        fac = self.dendrite.p["facilitation"]
        return rp * self._kfac * (1.0 + fac * w), rm * self._kfac

    def _track_pulses(self, vin: np.ndarray, dt: np.ndarray) -> None:
        """A new input pulse (polarity change to non-zero) draws the dendrite C2C factor."""
        d = self.dendrite
        sign = np.sign(vin).astype(np.int8)
        live = dt > 0
        new = np.flatnonzero((sign != 0) & (sign != self._polarity) & live)
        if new.size:
            self._kfac[new] = rng.lognormal(d.keys[new], C2C_STREAM, d.params.c2c_sigma_ln,
                                            d.events[new])
            d.events[new] += 1
        self._polarity[live] = sign[live]

    # ------------------------------------------------------------------ run
    def run(self, wave: Waveform, h: float | None = None, *, method: str = "exp2",
            tol: float = EXP2_TOL, kernel: str = "auto", adaptive: bool = True,
            growth_tol: float = 1e-3, coupling: str = "auto", max_times_per_segment: int = 100_000,
            max_steps_per_segment: int = 50_000) -> SpikeRecord:
        """Drive the units with ``wave`` (V_in at the dendrite) and record the soma spikes.

        ``method`` "exp2" (default) takes steps whose local error (predictor vs corrector) stays
        below ``tol`` in volts and in w, starting each phase at a tenth of the node time constant
        (``h`` only caps that first step); ``kernel`` picks the float or the numpy kernel (same
        equations; "auto" by batch size). ``method`` "stepper" is the first-order sub-stepper
        with sub-step h (``adaptive``, ``coupling`` apply to it only). Long steady oscillations
        are fast-forwarded cycle by cycle while the dendrite drift per cycle keeps the
        conductance error below ``growth_tol``; noisy somas only past ``max_steps_per_segment``
        steps (then the last cycle is repeated, an approximation).
        """
        h = self.circuit.unit_step_s if h is None else float(h)
        if not h > 0 or not np.isfinite(h):
            raise ParameterError(f"unit sub-step h = {h!r}: must be > 0 s")
        if not growth_tol > 0:
            raise ParameterError(f"growth_tol = {growth_tol!r}: must be > 0")
        if coupling not in COUPLINGS:
            raise ParameterError(
                f"coupling = {coupling!r}: must be one of {', '.join(COUPLINGS)}")
        if method not in METHODS:
            raise ParameterError(f"method = {method!r}: must be one of {', '.join(METHODS)}")
        if kernel not in KERNELS:
            raise ParameterError(f"kernel = {kernel!r}: must be one of {', '.join(KERNELS)}")
        if not (tol > 0 and np.isfinite(tol)):
            raise ParameterError(f"tol = {tol!r}: must be > 0")
        n = self.n
        v_all, dt_all = _wave_arrays(wave, n)
        k_total = wave.n_segments
        rec = _Recorder(n, k_total, int(max_times_per_segment))
        w_end = np.zeros((n, k_total))
        s = self.soma
        if method == "exp2":
            use_float = kernel == "float" or (kernel == "auto" and n <= FLOAT_MAX_UNITS)
            if use_float and np.any(s.p["delay_t0_s"] > 0):
                use_float = False        # the switching delay lives in the numpy kernel only
            if use_float:
                _FloatKernel(self, tol, growth_tol, max_steps_per_segment, h).run(
                    v_all, dt_all, rec, w_end)
                return rec.finish(w_end)
        t0 = np.zeros(n)
        with np.errstate(under="ignore"):
            for k in range(k_total):
                vin = np.ascontiguousarray(v_all[:, k])
                dt = np.ascontiguousarray(dt_all[:, k])
                self._track_pulses(vin, dt)
                rec.new_segment()
                rec.t_start[:, k] = t0
                if method == "exp2":
                    rec.charge[:, k] = self._segment_exp2(k, vin, dt, t0, rec, h, tol,
                                                          growth_tol, max_steps_per_segment)
                else:
                    rec.charge[:, k] = self._segment(k, vin, dt, t0, rec, h, adaptive,
                                                     growth_tol, coupling,
                                                     max_steps_per_segment)
                rec.v_end[:, k] = s.v
                rec.on_end[:, k] = s.on
                g, e = s.branch(self.r_load)
                rec.i_end[:, k] = g * (s.v - e)
                w_end[:, k] = self.dendrite.w
                t0 = t0 + dt
        return rec.finish(w_end)

    def _model(self, idx: np.ndarray | slice, vin: np.ndarray, v: np.ndarray, w: np.ndarray,
               stiff: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Dendrite current as I = a - g_x v near node voltage v, and (r+, r-): (g_x, a, r+, r-).

        Chord (spec §3.4): g_x = I_d / V_d, a = g_x V_in. Where ``stiff`` (a step longer than
        STIFF_RATIO x the node tau, where the chord iteration can oscillate): the tangent,
        g_x = dI_d/dV_d, a = I_d + g_x v (exponential Rosenbrock-Euler).
        """
        gd, rp, rm, i, gt = self._sub_coefficients(idx, vin, v, w)
        if stiff.any():
            gx = np.where(stiff, gt, gd)
            a = np.where(stiff, i + gt * v, gd * vin)
            return gx, a, rp, rm
        return gd, gd * vin, rp, rm

    def _segment_exp2(self, k: int, vin: np.ndarray, dt: np.ndarray, t0: np.ndarray,
                      rec: _Recorder, h_cap: float, tol: float, ftol: float, budget: int
                      ) -> np.ndarray:
        """One segment, all units in lockstep; each unit takes its own step per iteration.

        A step freezes the coefficients at the start (predictor, exponential Euler), then at
        the mean of the start and predicted end (corrector, second order: the frozen RC and
        affine maps are exact for coefficients linear in time up to O(h^3)). The difference is
        the local error estimate. An event inside the step is located on the corrected model,
        then once more with the coefficients averaged up to the event.
        """
        s, d = self.soma, self.dendrite
        n, c_m = self.n, self.c_m
        tau_r = d.p["tau_r_s"]
        inv_tau = 1.0 / tau_r
        t_loc = np.zeros(n)
        q = np.zeros(n)
        h = np.full(n, np.nan)                  # NaN: first step of a phase, guessed from tau
        ff = _FastForward(n)
        cyc = {"w_off": np.full(n, np.nan), "b_int": np.zeros(n), "b_off": np.zeros(n)}
        stall = np.zeros(n, dtype=np.int64)
        steps = 0
        g, e = s.branch(self.r_load)
        l_th, l_hold = s.node_levels(self.r_load)
        while True:
            rem = dt - t_loc
            act = rem > 0
            if not act.any():
                break
            steps += 1
            v0, w0 = s.v.copy(), d.w.copy()
            gd0, rp0, rm0, i0, gtan0 = self._sub_coefficients(slice(None), vin, v0, w0)
            h = np.where(np.isnan(h), np.minimum(_FIRST_STEP * c_m / (gd0 + g), h_cap), h)
            lim = np.where(act, np.minimum(h, rem), 0.0)
            stiff = lim * (gd0 + g) > STIFF_RATIO * c_m
            gx0 = np.where(stiff, gtan0, gd0)
            a0 = np.where(stiff, i0 + gtan0 * v0, gd0 * vin)
            gt = gx0 + g
            vinf0, tau0 = (a0 + g * e) / gt, c_m / gt
            v1p = _relax(v0, vinf0, tau0, lim)
            w1p = exact_update(w0, rp0, rm0, tau_r, lim)
            gx1, a1, rp1, rm1 = self._model(slice(None), vin, v1p, w1p, stiff)
            gx, a, rp, rm = 0.5 * (gx0 + gx1), 0.5 * (a0 + a1), 0.5 * (rp0 + rp1), 0.5 * (rm0 + rm1)
            gt = gx + g
            vinf, tau = (a + g * e) / gt, c_m / gt
            v1 = _relax(v0, vinf, tau, lim)
            w1 = exact_update(w0, rp, rm, tau_r, lim)
            err = np.maximum(np.abs(v1 - v1p), np.abs(w1 - w1p)) / tol
            with np.errstate(divide="ignore"):
                fac = np.clip(_SAFETY / np.sqrt(err), _SHRINK_MIN, _GROW_MAX)
            t_ev, kind = _next_event(s, vinf, tau, l_th, l_hold)
            ok = act & ((err <= 1.0) | (t_ev <= 0) | (lim < _H_FLOOR))
            ev = ok & (t_ev <= lim)
            late = np.flatnonzero(ev & (t_ev > 0))
            if late.size:                       # re-average the coefficients up to the event
                te = t_ev[late]
                sub = late
                v_e = _relax(v0[sub], vinf[sub], tau[sub], te)
                w_e = exact_update(w0[sub], rp0[sub], rm0[sub], tau_r[sub], te)
                gx2, a2, rp2, rm2 = self._model(sub, vin[sub], v_e, w_e, stiff[sub])
                gx_r = 0.5 * (gx0[sub] + gx2)
                gt_r = gx_r + g[sub]
                vinf2, tau2 = vinf.copy(), tau.copy()
                vinf2[sub] = (0.5 * (a0[sub] + a2) + g[sub] * e[sub]) / gt_r
                tau2[sub] = c_m / gt_r
                t2, kind2 = _next_event(s, vinf2, tau2, l_th, l_hold)
                good = (t2[sub] <= lim[sub]) & (kind2[sub] == kind[sub])
                sub = sub[good]
                if sub.size:
                    vinf[sub], tau[sub], t_ev[sub] = vinf2[sub], tau2[sub], t2[sub]
                    rp[sub] = 0.5 * (rp0[sub] + rp2[good])
                    rm[sub] = 0.5 * (rm0[sub] + rm2[good])
            step = np.where(ev, t_ev, np.where(ok, lim, 0.0))
            q += _branch_charge(v0, vinf, tau, step, g, e)
            s.v[:] = _relax(v0, vinf, tau, step)
            d.w[:] = exact_update(w0, rp, rm, tau_r, step)
            cyc["b_int"] += (rp + rm + inv_tau) * step
            _advance_clock(s, step)
            t_loc += step
            end = ok & ~ev & (rem <= lim)
            t_loc[end] = dt[end]                       # finished exactly at the segment end
            h = np.where(act & ~ev, lim * fac, h)
            if not ev.any():
                continue
            h[ev] = np.nan
            _check_stall(stall, ev, t_ev)
            fire_idx, off_idx = _resolve(s, ev, kind, vinf, t_ev, l_th, l_hold, self.r_load)
            if fire_idx.size:
                rec.add(k, fire_idx, t0[fire_idx] + t_loc[fire_idx])
                ff.spiked(fire_idx, t_loc)
            if off_idx.size:
                self._fast_forward(k, ff, cyc, off_idx, vin, t_loc, dt, q, t0, rec, ftol,
                                   steps > budget)
            g, e = s.branch(self.r_load)
            l_th, l_hold = s.node_levels(self.r_load)
        return q

    def _sub_coefficients(self, idx: np.ndarray | slice, vin: np.ndarray, v: np.ndarray,
                          w: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Dendrite of units ``idx`` at node voltage v, state w: (chord G_d, r+, r-, I_d,
        dI_d/dV_d), the equations of ``chord_conductance`` and ``_rates``."""
        d = self.dendrite
        p = {name: a[idx] for name, a in d.p.items()}
        vd = vin - v
        vs = np.where(np.abs(vd) < V_SMALL, np.where(vd < 0, -V_SMALL, V_SMALL), vd)
        if d.params.mapping == "exponential":
            gw = p["g_off_s"] * np.power(p["rho"], w)
        else:
            gw = p["g_off_s"] * (1.0 + (p["rho"] - 1.0) * w)
        x = np.clip(vs / p["v0_v"], -SINH_MAX, SINH_MAX)
        i = gw * p["v0_v"] * np.sinh(x)
        gtan = gw * np.cosh(x)
        neg = vs < 0
        i = np.where(neg, p["kappa_rect"] * i, i)
        gtan = np.where(neg, p["kappa_rect"] * gtan, gtan)
        xp = np.minimum(np.maximum(vd, 0.0) * d._inv_vp[idx], ARG_MAX)
        xm = np.minimum(np.maximum(-vd, 0.0) * d._inv_vm[idx], ARG_MAX)
        kf = self._kfac[idx]
        rp = p["k_plus_per_s"] * np.expm1(xp) * kf * (1.0 + p["facilitation"] * w)
        rm = p["k_minus_per_s"] * np.expm1(xm) * kf
        return i / vs, rp, rm, i, gtan

    def _segment(self, k: int, vin: np.ndarray, dt: np.ndarray, t0: np.ndarray,
                 rec: _Recorder, h: float, adaptive: bool, tol: float, coupling: str,
                 budget: int) -> np.ndarray:
        s, d = self.soma, self.dendrite
        n = self.n
        tau_r = d.p["tau_r_s"]
        t_loc = np.zeros(n)
        q = np.zeros(n)
        sub_left = np.zeros(n)
        h_cur = np.full(n, h)
        ff = _FastForward(n)
        cyc = {"w_off": np.full(n, np.nan), "b_int": np.zeros(n), "b_off": np.zeros(n)}
        inv_tau = 1.0 / tau_r
        fresh = np.ones(n, dtype=bool)          # no step history yet: start with h
        lg0 = np.zeros(n)
        b0 = np.ones(n)
        stall = np.zeros(n, dtype=np.int64)
        steps = 0
        # Soma branch and node thresholds change only at switching events: refreshed there.
        g, e = s.branch(self.r_load)
        l_th, l_hold = s.node_levels(self.r_load)
        while True:
            rem = dt - t_loc
            act = rem > 0
            if not act.any():
                break
            steps += 1
            w = d.w
            vd = vin - s.v
            g_d = self.chord_conductance(vd, w)
            rp, rm = self._rates(vd, w)
            b = rp + rm + inv_tau
            new = act & (sub_left <= 0)
            if new.any():
                h_new = np.full(n, h)
                if adaptive:
                    # Step control from the change over the last full sub-step (no extra solve).
                    lg = np.log(np.maximum(g_d, 1e-300))
                    change = np.maximum(np.abs(lg - lg0), np.abs(b - b0) / b0)
                    with np.errstate(divide="ignore"):
                        h_ok = np.where(change > 0, 0.7 * tol * h_cur / change, np.inf)
                    h_new = np.where(fresh, h, np.clip(h_ok, h, 2.0 * h_cur))
                    lg0 = np.where(new, lg, lg0)
                    b0 = np.where(new, b, b0)
                    fresh = fresh & ~new
                sub_left = np.where(new, h_new, sub_left)
                h_cur = np.where(new, h_new, h_cur)
            lim = np.minimum(sub_left, rem)
            v_src = vin
            if coupling != "chord":
                stiff = act if coupling == "tangent" else (
                    act & (lim * (g_d + g) > STIFF_RATIO * self.c_m))
                if stiff.any():
                    g_t, v_t = self._tangent(vd, w, vin)
                    g_d = np.where(stiff, g_t, g_d)
                    v_src = np.where(stiff, v_t, vin)
            g_tot = g_d + g
            v_inf = (g_d * v_src + g * e) / g_tot
            tau = self.c_m / g_tot
            t_ev, kind = _next_event(s, v_inf, tau, l_th, l_hold)
            ev = act & (t_ev <= lim)
            step = np.where(ev, t_ev, np.where(act, lim, 0.0))
            q += _branch_charge(s.v, v_inf, tau, step, g, e)
            s.v[:] = _relax(s.v, v_inf, tau, step)
            d.w[:] = exact_update(w, rp, rm, tau_r, step)
            cyc["b_int"] += b * step
            _advance_clock(s, step)
            t_loc += step
            sub_left = sub_left - step
            end = act & ~ev & (rem <= lim)
            t_loc[end] = dt[end]                       # finished exactly at the segment end
            if not ev.any():
                continue
            _check_stall(stall, ev, t_ev)
            fire_idx, off_idx = _resolve(s, ev, kind, v_inf, t_ev, l_th, l_hold, self.r_load)
            h_cur[ev] = h
            fresh |= ev
            sub_left[ev] = np.minimum(sub_left[ev], h)
            if fire_idx.size:
                rec.add(k, fire_idx, t0[fire_idx] + t_loc[fire_idx])
                ff.spiked(fire_idx, t_loc)
            if off_idx.size:
                self._fast_forward(k, ff, cyc, off_idx, vin, t_loc, dt, q, t0, rec, tol,
                                   steps > budget)
            g, e = s.branch(self.r_load)
            l_th, l_hold = s.node_levels(self.r_load)
        return q

    def _fast_forward(self, k: int, ff: _FastForward, cyc: dict[str, np.ndarray],
                      off_idx: np.ndarray, vin: np.ndarray, t_loc: np.ndarray, dt: np.ndarray,
                      q: np.ndarray, t0: np.ndarray, rec: _Recorder, tol: float, forced: bool
                      ) -> None:
        """Skip whole cycles of a steady oscillation, extrapolating the dendrite state.

        Near its periodic orbit the cycle map of w is affine with contraction
        lambda = exp(-integral of b dt over one cycle), so the next m cycles move w by
        dw lambda (1 - lambda^m) / (1 - lambda) (dw: the last cycle's change). m is the largest
        number of cycles whose predicted change of ln G_d stays within tol (all of them once the
        remaining drift is that small).
        """
        s, d = self.soma, self.dendrite
        w_off, b_int = cyc["w_off"], cyc["b_int"]
        b_cycle = b_int[off_idx] - cyc["b_off"][off_idx]
        idx, period = ff.candidates(off_idx, s.v, t_loc, s.noise_free, forced)
        if idx.size:
            dw = d.w[idx] - w_off[idx]
            vd = vin - s.v
            g_now = self.chord_conductance(vd, d.w)[idx]
            w_prev = d.w.copy()
            w_prev[idx] = w_off[idx]
            g_prev = self.chord_conductance(vd, w_prev)[idx]
            drift = np.abs(np.log(np.maximum(g_now, 1e-300) / np.maximum(g_prev, 1e-300)))
            bc = b_cycle[np.searchsorted(off_idx, idx)]
            lam = np.exp(-bc)
            one_minus = -np.expm1(-bc)                       # 1 - lambda, accurate near 0
            total = drift * lam / one_minus                  # ln G_d change over all cycles
            m_avail = np.floor((dt[idx] - t_loc[idx]) / period) - 1
            with np.errstate(divide="ignore", invalid="ignore"):
                frac = 1.0 - tol / np.where(total > 0, total, 1.0)   # lambda^m must stay >= it
                m_tol = np.where(frac > 0, np.floor(np.log(frac) / -bc), np.inf)
            m = np.where(total <= tol, m_avail, np.minimum(m_avail, m_tol))
            go = np.isfinite(dw) & (m >= 1)
            idx, period, dw = idx[go], period[go], dw[go]
            m, lam, one_minus, bc = m[go].astype(np.int64), lam[go], one_minus[go], bc[go]
            if idx.size:
                rec.add_periodic(k, idx, t0[idx] + ff.t_spike[idx] + period, period, m)
                q[idx] += m * (q[idx] - ff.q_off[idx])
                t_loc[idx] += m * period
                s.n_spikes[idx] += m
                if not s.noise_free:
                    s._draw_v_th(idx)
                gain = lam * -np.expm1(-m * bc) / one_minus
                d.w[idx] = np.clip(d.w[idx] + dw * gain, 0.0, 1.0)
                b_int[idx] += m * bc
                ff.t_spike[idx] += m * period
        ff.mark(off_idx, s.v, t_loc, q)
        w_off[off_idx] = d.w[off_idx]
        cyc["b_off"][off_idx] = b_int[off_idx]

    # ------------------------------------------------------------------ measurement
    def soma_current(self, *, noise_event: int | np.ndarray | None = None) -> np.ndarray:
        """Current through the soma branch (and R_L) now, (N,); noisy with ``noise_event``."""
        return self.soma.branch_current(self.r_load, noise_event=noise_event)

    def input_current(self, v_in: np.ndarray | float, *,
                      noise_event: int | np.ndarray | None = None) -> np.ndarray:
        """Current through the dendrite from the source at v_in now, (N,)."""
        vd = np.broadcast_to(np.asarray(v_in, dtype=float), (self.n,)) - self.soma.v
        return self.dendrite.current(vd, noise_event=noise_event)


# ============================================================================ float kernel
class _Draws:
    """Keyed draws of one device and stream, fetched ``_DRAW_BLOCK`` events at a time."""

    def __init__(self, key: np.ndarray, stream: str, sigma: float, lognormal: bool) -> None:
        self.key, self.stream, self.sigma, self.lognormal = key, stream, sigma, lognormal
        self.start = -2 * _DRAW_BLOCK
        self.values: list[float] = []

    def __call__(self, event: int) -> float:
        if not self.start <= event < self.start + _DRAW_BLOCK:
            self.start = event - event % _DRAW_BLOCK
            ev = np.arange(self.start, self.start + _DRAW_BLOCK)
            z = (rng.lognormal(self.key, self.stream, self.sigma, ev) if self.lognormal
                 else rng.normal(self.key, self.stream, ev))
            self.values = z.tolist()
        return self.values[event - self.start]


def _time_down(x0: float, x_inf: float, tau: float, level: float) -> float:
    """Float twin of ``soma._time_down``."""
    if x0 <= level:
        return 0.0
    if x_inf < level:
        return tau * math.log(max((x0 - x_inf) / (level - x_inf), 1.0))
    return math.inf


def _relax1(v0: float, v_inf: float, tau: float, t: float) -> float:
    return v_inf + (v0 - v_inf) * math.exp(-min(t / tau, EXP_MAX))


def _update1(w: float, rp: float, rm: float, inv_tau: float, dt: float) -> float:
    """Float twin of ``dendrite.exact_update``."""
    b = rp + rm + inv_tau
    em = math.expm1(-min(b * dt, BDT_MAX))
    return min(max(w + w * em - (rp / b) * em, 0.0), 1.0)


class _FloatKernel:
    """The exp2 method on plain floats, one unit after another (no switching delay).

    The same equations, decisions and keyed draws as ``_segment_exp2`` and the soma event rules
    (``_next_event``, ``_resolve``, ``_FastForward``) for units whose switch has no delay; the
    state is read from the device arrays at the start and written back at the end.
    """

    def __init__(self, unit: DendriteSomaUnit, tol: float, ftol: float, budget: int,
                 h_cap: float) -> None:
        self.u, self.tol, self.ftol, self.budget, self.h_cap = unit, tol, ftol, budget, h_cap
        draws = unit.__dict__.setdefault("_float_draws", {})
        self.draws: dict[tuple[int, str], _Draws] = draws

    def _draw(self, i: int, stream: str, sigma: float, lognormal: bool, event: int) -> float:
        fn = self.draws.get((i, stream))
        if fn is None:
            keys = self.u.dendrite.keys if stream == C2C_STREAM else self.u.soma.keys
            fn = self.draws[(i, stream)] = _Draws(keys[i:i + 1], stream, sigma, lognormal)
        return fn(event)

    def run(self, v_all: np.ndarray, dt_all: np.ndarray, rec: _Recorder,
            w_end: np.ndarray) -> None:
        vl, dtl = v_all.tolist(), dt_all.tolist()
        for i in range(self.u.n):
            self._unit(i, vl[i], dtl[i], rec, w_end)

    def _unit(self, i: int, vins: list[float], dts: list[float], rec: _Recorder,
              w_end: np.ndarray) -> None:
        u, s, d = self.u, self.u.soma, self.u.dendrite
        dp = {name: float(a[i]) for name, a in d.p.items()}
        sp = {name: float(a[i]) for name, a in s.p.items()}
        c_m, rl, tol = u.c_m, u.r_load, self.tol
        exponential = d.params.mapping == "exponential"
        g_off, rho, v0_v, kappa = dp["g_off_s"], dp["rho"], dp["v0_v"], dp["kappa_rect"]
        inv_vp, inv_vm = 1.0 / dp["v_plus_v"], 1.0 / dp["v_minus_v"]
        kp, km, fac_c = dp["k_plus_per_s"], dp["k_minus_per_s"], dp["facilitation"]
        inv_tau = 1.0 / dp["tau_r_s"]
        r_off, r_on, e0, dwell = sp["r_off_ohm"], sp["r_on_ohm"], sp["v_on0_v"], sp[
            "min_on_dwell_s"]
        p_th, p_hold = sp["v_th_v"], sp["v_hold_v"]
        sig_th, sig_hold = s.params.c2c_v_th_rel, s.params.c2c_v_hold_rel
        sig_k = d.params.c2c_sigma_ln
        noise_free = s.noise_free
        # state
        v, on, pol = float(s.v[i]), bool(s.on[i]), float(s.pol[i])
        t_on, t_armed, n_sp = float(s.t_on_s[i]), float(s.t_armed_s[i]), int(s.n_spikes[i])
        v_th, v_hold = float(s.v_th[i]), float(s.v_hold[i])
        w, events = float(d.w[i]), int(d.events[i])
        polarity, kfac = int(u._polarity[i]), float(u._kfac[i])
        if bool(s.armed[i]):
            raise RuntimeError("float kernel: an armed soma needs the numpy kernel")

        def coeffs(vin: float, v: float, w: float, stiff: bool = False
                   ) -> tuple[float, float, float, float]:
            """(g_x, a, r+, r-): ``DendriteSomaUnit._model`` on floats."""
            vd = vin - v
            vs = vd if abs(vd) >= V_SMALL else (-V_SMALL if vd < 0 else V_SMALL)
            gw = g_off * rho ** w if exponential else g_off * (1.0 + (rho - 1.0) * w)
            x = max(-SINH_MAX, min(SINH_MAX, vs / v0_v))
            cur = gw * v0_v * math.sinh(x)
            if vs < 0:
                cur = kappa * cur
            if vd > 0:
                rp = kp * math.expm1(min(vd * inv_vp, ARG_MAX)) * kfac * (1.0 + fac_c * w)
                rm = 0.0
            else:
                rp = 0.0 * kfac * (1.0 + fac_c * w)
                rm = km * math.expm1(min(-vd * inv_vm, ARG_MAX)) * kfac
            if stiff:
                gtan = gw * math.cosh(x)
                if vs < 0:
                    gtan = kappa * gtan
                return gtan, cur + gtan * v, rp, rm
            gd = cur / vs
            return gd, gd * vin, rp, rm

        def draw_v_th() -> float:
            th = p_th
            if sig_th:
                th *= max(1.0 + sig_th * self._draw(i, C2C_V_TH_STREAM, 0.0, False, n_sp), 0.1)
            return max(th, v_hold / (1 - _MARGIN))

        t0 = 0.0
        for k, (vin, dt) in enumerate(zip(vins, dts, strict=True)):
            # pulse bookkeeping (``_track_pulses``)
            if dt > 0:
                sign = (vin > 0) - (vin < 0)
                if sign != 0 and sign != polarity:
                    kfac = self._draw(i, C2C_STREAM, sig_k, True, events) if sig_k else 1.0
                    events += 1
                polarity = sign
            rec.t_start[i, k] = t0
            times: list[float] = []
            t_loc = q = 0.0
            h = math.nan
            steps = 0
            stall = 0
            # fast-forward bookkeeping (``_FastForward`` and the cycle integrals)
            ff_t_off = ff_v_off = ff_t_spike = math.nan
            ff_q_off = 0.0
            w_off, b_int, b_off = math.nan, 0.0, 0.0
            if on:
                g = 1.0 / (r_on + rl)
                e = pol * e0
            else:
                g, e = 1.0 / (r_off + rl), 0.0
            l_th = v_th * (r_off + rl) / r_off
            l_hold = e0 + (v_hold - e0) * (r_on + rl) / r_on
            while True:
                rem = dt - t_loc
                if not rem > 0:
                    break
                steps += 1
                gx0, a0, rp0, rm0 = coeffs(vin, v, w)
                if h != h:
                    h = min(_FIRST_STEP * c_m / (gx0 + g), self.h_cap)
                lim = min(h, rem)
                stiff = lim * (gx0 + g) > STIFF_RATIO * c_m
                if stiff:
                    gx0, a0, rp0, rm0 = coeffs(vin, v, w, True)
                gt = gx0 + g
                vinf0, tau0 = (a0 + g * e) / gt, c_m / gt
                v1p = _relax1(v, vinf0, tau0, lim)
                w1p = _update1(w, rp0, rm0, inv_tau, lim)
                gx1, a1, rp1, rm1 = coeffs(vin, v1p, w1p, stiff)
                gx, a, rp, rm = 0.5 * (gx0 + gx1), 0.5 * (a0 + a1), 0.5 * (rp0 + rp1), 0.5 * (
                    rm0 + rm1)
                gt = gx + g
                vinf, tau = (a + g * e) / gt, c_m / gt
                v1 = _relax1(v, vinf, tau, lim)
                w1 = _update1(w, rp, rm, inv_tau, lim)
                err = max(abs(v1 - v1p), abs(w1 - w1p)) / tol
                fac = _GROW_MAX if err == 0 else min(max(_SAFETY / math.sqrt(err),
                                                         _SHRINK_MIN), _GROW_MAX)
                # next event on the corrected model (``_next_event`` without delay)
                if on:
                    t_lv = _time_down(pol * v, pol * vinf, tau, l_hold)
                    wait = max(dwell - t_on, 0.0)
                    t_ev = max(t_lv, wait)
                    kind = 1 if t_lv >= wait else 2          # 1 hold, 2 dwell
                else:
                    sg = -1.0 if vinf >= 0 else 1.0
                    if abs(v) > l_th:
                        t_ev = 0.0
                    elif abs(vinf) > l_th:
                        t_ev = _time_down(sg * v, sg * vinf, tau, -l_th)
                    else:
                        t_ev = math.inf
                    kind = 0                                  # 0 cross
                if not (err <= 1.0 or t_ev <= 0 or lim < _H_FLOOR):
                    h = lim * fac                             # rejected: retry shorter
                    continue
                ev = t_ev <= lim
                if ev and t_ev > 0:                           # re-average up to the event
                    v_e = _relax1(v, vinf, tau, t_ev)
                    w_e = _update1(w, rp0, rm0, inv_tau, t_ev)
                    gx2, a2, rp2, rm2 = coeffs(vin, v_e, w_e, stiff)
                    gt_r = 0.5 * (gx0 + gx2) + g
                    vinf2, tau2 = (0.5 * (a0 + a2) + g * e) / gt_r, c_m / gt_r
                    if on:
                        t_lv = _time_down(pol * v, pol * vinf2, tau2, l_hold)
                        t2 = max(t_lv, wait)
                        kind2 = 1 if t_lv >= wait else 2
                    else:
                        sg = -1.0 if vinf2 >= 0 else 1.0
                        if abs(v) > l_th:
                            t2 = 0.0
                        elif abs(vinf2) > l_th:
                            t2 = _time_down(sg * v, sg * vinf2, tau2, -l_th)
                        else:
                            t2 = math.inf
                        kind2 = 0
                    if t2 <= lim and kind2 == kind:
                        vinf, tau, t_ev = vinf2, tau2, t2
                        rp, rm = 0.5 * (rp0 + rp2), 0.5 * (rm0 + rm2)
                step = t_ev if ev else lim
                x = min(step / tau, EXP_MAX)
                q += g * ((vinf - e) * step - (v - vinf) * tau * math.expm1(-x))
                v = vinf + (v - vinf) * math.exp(-x)
                w = _update1(w, rp, rm, inv_tau, step)
                b_int += (rp + rm + inv_tau) * step
                t_on += step
                t_armed += step
                t_loc += step
                if not ev:
                    if rem <= lim:
                        t_loc = dt
                    h = lim * fac
                    continue
                h = math.nan
                stall = stall + 1 if t_ev <= 0 else 0
                if stall > 50:
                    raise RuntimeError(
                        f"soma event loop stalled on device(s) [{i}]: "
                        "events keep firing without time passing")
                # ``_resolve`` without delay
                if kind == 0:                                 # fire
                    if t_ev > 0:
                        v = l_th if vinf >= 0 else -l_th
                    pol = 1.0 if v >= 0 else -1.0
                    on, t_on = True, 0.0
                    n_sp += 1
                    hold = p_hold
                    if sig_hold:
                        hold *= max(1.0 + sig_hold * self._draw(i, C2C_V_HOLD_STREAM, 0.0,
                                                                 False, n_sp), 0.1)
                    v_hold = min(max(hold, 1.0001 * e0), (1 - _MARGIN) * v_th)
                    times.append(t0 + t_loc)
                    ff_t_spike = t_loc
                    g, e = 1.0 / (r_on + rl), pol * e0
                else:
                    if kind == 1 and t_ev > 0:
                        v = pol * l_hold
                    t_on = max(t_on, dwell)
                    if kind == 1 or pol * v <= l_hold:        # release
                        on = False
                        v_th = draw_v_th()
                        g, e = 1.0 / (r_off + rl), 0.0
                        # fast-forward whole cycles (``_FastForward`` + ``_fast_forward``)
                        period = t_loc - ff_t_off
                        cand = (ff_t_off == ff_t_off and period > 0 and ff_t_spike > ff_t_off)
                        if cand and not steps > self.budget:
                            cand = (abs(v - ff_v_off) <= 1e-12 * (1 + abs(v))) and noise_free
                        if cand:
                            b_cycle = b_int - b_off
                            m, gain = self._cycles(coeffs, vin, v, w, w_off, b_cycle,
                                                   dt - t_loc, period)
                            if m >= 1:
                                self._flush(rec, k, i, times)
                                rec.add_periodic(k, np.array([i]), np.array([
                                    t0 + ff_t_spike + period]), np.array([period]),
                                    np.array([m], dtype=np.int64))
                                q += m * (q - ff_q_off)
                                t_loc += m * period
                                n_sp += m
                                if not noise_free:
                                    v_th = draw_v_th()
                                w = min(max(w + (w - w_off) * gain, 0.0), 1.0)
                                b_int += m * b_cycle
                                ff_t_spike += m * period
                        ff_t_off, ff_v_off, ff_q_off = t_loc, v, q
                        w_off, b_off = w, b_int
                    l_th = v_th * (r_off + rl) / r_off
                l_hold = e0 + (v_hold - e0) * (r_on + rl) / r_on
            self._flush(rec, k, i, times)
            rec.charge[i, k] = q
            rec.v_end[i, k] = v
            rec.on_end[i, k] = on
            rec.i_end[i, k] = g * (v - e)
            w_end[i, k] = w
            t0 += dt
        s.v[i], s.on[i], s.pol[i], s.t_on_s[i], s.t_armed_s[i] = v, on, pol, t_on, t_armed
        s.n_spikes[i], s.v_th[i], s.v_hold[i] = n_sp, v_th, v_hold
        d.w[i], d.events[i], u._polarity[i], u._kfac[i] = w, events, polarity, kfac

    def _cycles(self, coeffs: object, vin: float, v: float, w: float, w_off: float,
                b_cycle: float, left: float, period: float) -> tuple[int, float]:
        """Float twin of ``DendriteSomaUnit._fast_forward``: (cycles to skip, w gain)."""
        dw = w - w_off
        if dw != dw:
            return 0, 0.0
        g_now = coeffs(vin, v, w)[0]
        g_prev = coeffs(vin, v, w_off)[0]
        drift = abs(math.log(max(g_now, 1e-300) / max(g_prev, 1e-300)))
        lam = math.exp(-b_cycle)
        one_minus = -math.expm1(-b_cycle)
        total = drift * lam / one_minus
        m_avail = math.floor(left / period) - 1
        if total <= self.ftol:
            m = m_avail
        else:
            frac = 1.0 - self.ftol / total
            m_tol = math.floor(math.log(frac) / -b_cycle) if frac > 0 else math.inf
            m = min(m_avail, m_tol)
        if m < 1:
            return 0, 0.0
        m = int(m)
        return m, lam * -math.expm1(-m * b_cycle) / one_minus

    @staticmethod
    def _flush(rec: _Recorder, k: int, i: int, times: list[float]) -> None:
        """Record a unit's spikes of segment k so far (as ``_Recorder.add`` would, one by one)."""
        if not times:
            return
        m = len(times)
        rec.counts[i, k] += m
        keep = max(min(m, rec.cap - int(rec.recorded[i])), 0)
        rec.dropped += m - keep
        if keep:
            rec.recorded[i] += keep
            rec.dev.append(np.full(keep, i, dtype=np.int64))
            rec.time.append(np.array(times[:keep]))
            rec.seg.append(np.full(keep, k, dtype=np.int64))
        times.clear()

"""Dendrite-soma unit: a dendrite in series between the input and the soma node (C_m parallel).

The circuit is nonlinear, so it is stepped (exponential Euler): per sub-step the dendrite chord
conductance is frozen, the node and the dendrite state then move exactly and threshold crossings
are located analytically. It reuses the soma event rules; it must not change either device model.
"""

from __future__ import annotations

import numpy as np

from dendrolab.errors import ParameterError

from . import rng
from .dendrite import C2C_STREAM, DendriteArray, exact_update
from .soma import (
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
    def run(self, wave: Waveform, h: float | None = None, *, adaptive: bool = True,
            growth_tol: float = 1e-3, coupling: str = "auto", max_times_per_segment: int = 100_000,
            max_steps_per_segment: int = 50_000) -> SpikeRecord:
        """Drive the units with ``wave`` (V_in at the dendrite) and record the soma spikes.

        Long steady oscillations are fast-forwarded cycle by cycle while the dendrite drift per
        cycle keeps the conductance error below ``growth_tol``; noisy somas only past
        ``max_steps_per_segment`` sub-steps (then the last cycle is repeated, an approximation).
        """
        h = self.circuit.unit_step_s if h is None else float(h)
        if not h > 0 or not np.isfinite(h):
            raise ParameterError(f"unit sub-step h = {h!r}: must be > 0 s")
        if not growth_tol > 0:
            raise ParameterError(f"growth_tol = {growth_tol!r}: must be > 0")
        if coupling not in COUPLINGS:
            raise ParameterError(
                f"coupling = {coupling!r}: must be one of {', '.join(COUPLINGS)}")
        n = self.n
        v_all, dt_all = _wave_arrays(wave, n)
        k_total = wave.n_segments
        rec = _Recorder(n, k_total, int(max_times_per_segment))
        w_end = np.zeros((n, k_total))
        t0 = np.zeros(n)
        s = self.soma
        with np.errstate(under="ignore"):
            for k in range(k_total):
                vin = np.ascontiguousarray(v_all[:, k])
                dt = np.ascontiguousarray(dt_all[:, k])
                self._track_pulses(vin, dt)
                rec.new_segment()
                rec.t_start[:, k] = t0
                rec.charge[:, k] = self._segment(k, vin, dt, t0, rec, h, adaptive, growth_tol,
                                                 coupling, max_steps_per_segment)
                rec.v_end[:, k] = s.v
                rec.on_end[:, k] = s.on
                g, e = s.branch(self.r_load)
                rec.i_end[:, k] = g * (s.v - e)
                w_end[:, k] = self.dendrite.w
                t0 = t0 + dt
        return rec.finish(w_end)

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

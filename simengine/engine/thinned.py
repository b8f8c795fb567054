"""Prototype: the revenue outputs by Poisson thinning (issue 17), beside the per-unit engine.

Not the default and not wired into :func:`~simengine.engine.simulate`: it
computes only the outputs that read revenue (``revenue``, ``attainment``,
``won_deals``, the revenue sources, time to target, the cumulative revenue
fan) and leaves ``coverage``, ``entered_<stage>`` before the last stage and
the weekly coverage NaN.

Why it is exact. Given its Gamma factor, week ``w``'s arrivals of cell ``c``
at entry stage ``e`` are Poisson(``m_w``); each unit wins independently with
``q = p_e p_{e+1} ... p_{S-1}`` (the week's rates, with the drift ahead), so
the week's eventual winners are Poisson(``m_w q``) (thinning), independent of
everything the revenue outputs do not read. Each winner then draws its day
(uniform over the week), its delays (one lognormal per step) and its amount
(lognormal of its cell), exactly as the per-unit engine draws them for the
units it plays; a winner whose win falls after the horizon is dropped. Open
units are played as in the per-unit engine (:func:`_kernels._open_units`).
Non-winners are never drawn, which is where the time goes in the per-unit
engine (about 6,000 MQLs for 250 wins a path on the standard workload).

Streams: the per-unit engine's ids (:mod:`~simengine.engine._kernels`), so a
path's randomness still depends only on (seed, path, stream id): bitwise the
same paths for any block layout or thread count, and common random numbers
across cells. The numbers differ from the per-unit engine's (the winner
counts are drawn directly), so the two agree in distribution
(``tests/engine/test_thinned.py``).
"""

from __future__ import annotations

import math

import numpy as np

from simengine.engine import _rng
from simengine.engine._jit import jit
from simengine.engine._kernels import (
    TAIL_CACHE_MAX_ENTRIES,
    _conversion_walk,
    _level_walk,
    _open_units,
    _scratch,
)
from simengine.engine._prepare import Prepared
from simengine.engine.blocks import PathMetrics, _args, n_scalars

__all__ = ["thinned_paths", "thinned_paths_kernel"]

seed_stream = _rng.seed_stream
uniform = _rng.uniform
lognormal = _rng.lognormal
gamma = _rng.gamma
poisson = _rng.poisson


@jit
def _winners(model, scratch, d, c, e, g, base, n_weeks, level_walk_on):  # pragma: no cover
    """Play the eventual winners of cell ``c`` at entry stage ``e``, week by week.

    Week ``w``'s mean as in :func:`_kernels._arrivals` (trend, level walk,
    Gamma factor from stream ``base``); its winners are Poisson(mean x
    ``q_w``) from stream ``base``, ``q_w`` the product of the week's step
    rates from ``e`` on. Days from the step-``e`` stream, delays from the
    delay streams, amounts from the amount stream (ids as in the per-unit
    engine).
    """
    states = scratch.states
    revenue = scratch.revenue
    entered = scratch.entered
    source_revenue = scratch.source_revenue
    conversion = model.conversion
    delay_mu = model.delay_mu
    delay_sigma = model.delay_sigma
    sim_days = model.sim_days
    start_offset = model.start_offset
    end_offset = model.end_offset
    S = conversion.shape[2]
    m = model.arrival_rate[d, c, e]
    trend = model.arrival_trend[d, c, e]
    alpha = model.arrival_dispersion[d, c, e]
    amount_mu = model.deal_size_mu[d, c]
    amount_sigma = model.deal_size_sigma[d, c]
    for w in range(n_weeks):
        mw = m * math.exp(trend * w) if trend != 0.0 else m
        if level_walk_on:
            mw *= scratch.level_walk[e, w]
        if alpha > 0.0:
            mw *= gamma(states, 1.0 / alpha, base) * alpha
        kd = (7 * w) // model.drift_days
        q = 1.0
        for s in range(e, S):
            q *= scratch.conversion_walk[c, s, kd] if model.has_drift else conversion[d, c, s]
        lam = mw * q
        k = poisson(states, lam, base) if lam > 0.0 else 0
        d0 = 7 * w
        for _ in range(k):
            day = d0 + min(int(7.0 * uniform(states, base + 1 + e)), 6)
            if day >= sim_days:
                continue
            t = float(day)
            for s in range(e, S):
                t += lognormal(states, delay_mu[d, c, s], delay_sigma[d, c, s], base + 1 + S + s)
            amt = lognormal(states, amount_mu, amount_sigma, base + 1 + 3 * S)
            if t >= sim_days:
                continue
            dd = int(t)
            revenue[g, dd] += amt
            if start_offset <= dd <= end_offset:
                entered[g, S] += 1
                source_revenue[g, 1 + e] += amt


@jit
def _thinned_path(root, path, model, scratch):  # pragma: no cover
    """One path's revenue by day, won deals and sources into ``scratch`` (row G = total)."""
    states = scratch.states
    revenue = scratch.revenue
    entered = scratch.entered
    source_revenue = scratch.source_revenue
    conversion = model.conversion
    d = path % conversion.shape[0]
    C = conversion.shape[1]
    S = conversion.shape[2]
    G = revenue.shape[0] - 1
    per = 3 * S + 2
    revenue[:] = 0.0
    entered[:] = 0
    source_revenue[:] = 0.0
    scratch.pipeline_value[:] = 0.0
    scratch.pipeline_count[:] = 0.0
    n_weeks = (model.sim_days + 6) // 7
    week_days = model.week_days
    n_w = week_days.shape[0]
    cov_last = week_days[n_w - 1] if n_w > 0 else model.start_offset - 1
    xbase = C * S * per + C
    if model.has_drift:
        _conversion_walk(root, path, d, model, xbase, scratch)
    if model.has_level:
        _level_walk(root, path, d, model, xbase + C * S, scratch)
    for c in range(C):
        g = model.cell_segment[c]
        for e in range(S):
            if model.entry_active[c, e] == 0:
                continue
            base = (c * S + e) * per
            for k in range(per):
                seed_stream(root, path, base + k, states, base + k)
            if model.arrival_rate[d, c, e] <= 0.0:
                continue
            level_walk_on = model.has_level == 1 and model.level_walk_on[c, e] == 1
            _winners(model, scratch, d, c, e, g, base, n_weeks, level_walk_on)
    obase = C * S * per
    if model.open_group.shape[0] - 1 > 0:
        for c in range(C):
            seed_stream(root, path, obase + c, states, obase + c)
        _open_units(model, scratch, d, obase, cov_last)
    for g in range(G):
        for i in range(revenue.shape[1]):
            revenue[G, i] += revenue[g, i]
        entered[G, S] += entered[g, S]
        for i in range(source_revenue.shape[1]):
            source_revenue[G, i] += source_revenue[g, i]


@jit
def thinned_paths_kernel(  # pragma: no cover
    root, first, model, n_streams, out_scalars, out_time_to_target, out_cum_revenue
):
    """Simulate paths ``first .. first + n - 1`` by thinning; revenue metrics into the outputs.

    ``out_scalars`` has the layout of :func:`~simengine.engine.blocks.scalar_names`;
    only revenue, attainment, won deals and the sources are written (the
    caller fills the rest with NaN).
    """
    scratch = _scratch(model, n_streams, TAIL_CACHE_MAX_ENTRIES)
    revenue = scratch.revenue
    entered = scratch.entered
    source_revenue = scratch.source_revenue
    targets = model.targets
    start_offset = model.start_offset
    end_offset = model.end_offset
    S1 = entered.shape[1]
    for q in range(out_scalars.shape[0]):
        _thinned_path(root, first + q, model, scratch)
        for g in range(revenue.shape[0]):
            tgt = targets[g]
            c_sum = 0.0
            reached = -1
            r_period = 0.0
            for i in range(out_cum_revenue.shape[2]):
                c_sum += revenue[g, start_offset + i]
                out_cum_revenue[q, g, i] = c_sum
                if reached < 0 and c_sum >= tgt:
                    reached = i
                if start_offset + i == end_offset:
                    r_period = c_sum
            out_time_to_target[q, g] = reached
            out_scalars[q, g, 0] = r_period
            out_scalars[q, g, 1] = r_period / tgt
            out_scalars[q, g, 3] = entered[g, S1 - 1]
            out_scalars[q, g, 3 + S1] = entered[g, S1 - 1]
            for k in range(source_revenue.shape[1]):
                out_scalars[q, g, 4 + S1 + k] = source_revenue[g, k]


def thinned_paths(prepared: Prepared, first: int, n: int, seed: int) -> PathMetrics:
    """Revenue metrics of paths ``first .. first + n - 1`` by Poisson thinning.

    Parameters
    ----------
    prepared : Prepared
        From :func:`simengine.engine.prepare`.
    first, n : int
        Paths.
    seed : int
        The run's seed.

    Returns
    -------
    PathMetrics
        As :func:`simengine.engine.run_paths`, with NaN for coverage, the
        weekly coverage and ``entered_<stage>`` before the last stage.
    """
    g1 = prepared.n_segments + 1
    scal = np.full((n, g1, n_scalars(prepared.n_stages)), np.nan)
    ttt = np.zeros((n, g1), np.int64)
    cum = np.zeros((n, g1, prepared.n_dates))
    model, n_streams = _args(prepared)
    thinned_paths_kernel(_rng.root_seed(seed), np.int64(first), model, n_streams, scal, ttt, cum)
    wcov = np.full((n, g1, prepared.week_days.shape[0]), np.nan)
    return PathMetrics(scal, np.where(ttt >= 0, ttt.astype(np.float64), np.inf), cum, wcov)

"""The per-deal outlook before its speed-up (commit 13602ef), the baseline of bench_outlook.py.

The same closed-form law as :func:`simengine.engine.outlook.deal_outlook`
(same grid, same survival and chaining helpers), computed the direct way: for
each distinct (cell, stage, age) the first step's time masses are chained
forward through every later step for all draws at once. The speed-up
(commit 810a238) applies the chain once per (cell, stage) through its
adjoint and costs one dot product per unit and draw; its probabilities and
revenues agree with these to rounding (checked by the benchmark). The median
close date is left out: the current code mixes 128 evenly spaced draws
where this mixed all of them, so they are not the same quantity.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from simengine.config.plan import Plan
from simengine.engine.outlook import GRID_STEP, _bin_masses, _chain, _survival
from simengine.params import FunnelParameters

FloatArray = np.ndarray


def baseline_outlook(
    params: FunnelParameters, plan: Plan, grid_step: float = GRID_STEP
) -> pd.DataFrame:
    """P(won), P(lost) by the period end and expected period revenue per open unit."""
    ou = params.open_units
    n_units = len(ou)
    per_day = round(1.0 / grid_step)
    h = 1.0 / per_day
    sim_days = plan.sim_days
    start_off, end_off = plan.start_offset, plan.end_offset
    n = sim_days * per_day
    lo_bin, hi_bin = start_off * per_day, (end_off + 1) * per_day
    S = len(params.stages) - 1
    conv, dmu, dsig = params.conversion, params.delay_mu, params.delay_sigma
    has_loss = params.loss_mu is not None
    lmu = params.loss_mu if params.loss_mu is not None else dmu
    lsig = params.loss_sigma if params.loss_sigma is not None else dsig
    deal_mean = np.exp(params.deal_size_mu + 0.5 * params.deal_size_sigma**2)
    mids = h * (np.arange(n, dtype=np.float64) + 0.5)
    e_time = float(end_off + 1)
    step_masses: dict[tuple[int, int], FloatArray] = {}

    def masses(c: int, j: int) -> FloatArray:
        if (c, j) not in step_masses:
            step_masses[(c, j)] = _bin_masses(dmu[:, c, j], dsig[:, c, j], n, h)
        return step_masses[(c, j)]

    won_p, lost_p, revenue = np.zeros((3, n_units))
    keys = np.stack([ou.cell.astype(np.float64), ou.stage.astype(np.float64), ou.age_days], 1)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1)
    for k, u0 in enumerate(first):
        c, s0, a = int(ou.cell[u0]), int(ou.stage[u0]), float(ou.age_days[u0])
        p = conv[:, c, s0]
        mu, sg = dmu[:, c, s0], dsig[:, c, s0]
        sf = _survival(np.array(a), mu, sg)
        if has_loss:
            sl = _survival(np.array(a), lmu[:, c, s0], lsig[:, c, s0])
            den = p * sf + (1.0 - p) * sl
            pc = np.where(den > 0, p * sf / np.where(den > 0, den, 1.0), p)
        else:
            den = 1.0 - p * (1.0 - sf)
            pc = np.where(den > 0, p * sf / np.where(den > 0, den, 1.0), 1.0)
        sl_a = _survival(np.array(a), lmu[:, c, s0], lsig[:, c, s0])
        sl_e = _survival(np.array(a + e_time), lmu[:, c, s0], lsig[:, c, s0])
        left = np.where(sl_a > 0, (sl_a - sl_e) / np.where(sl_a > 0, sl_a, 1.0), 1.0)
        lost = (1.0 - pc) * left
        edges = a + h * np.arange(n + 1, dtype=np.float64)
        s_edges = _survival(edges[None, :], mu[:, None], sg[:, None])
        safe = np.where(sf > 0, sf, 1.0)[:, None]
        reach = np.clip(s_edges[:, :-1] - s_edges[:, 1:], 0.0, None) / safe
        reach[:, 0] = np.where(sf > 0, reach[:, 0], 1.0)
        reach *= pc[:, None]
        for j in range(s0 + 1, S):
            q = conv[:, c, j]
            ok = mids < e_time
            f_leave = 1.0 - _survival(
                e_time - mids[None, ok], lmu[:, c, j, None], lsig[:, c, j, None]
            )
            lost = lost + (1.0 - q) * (reach[:, ok] * f_leave).sum(axis=1)
            reach = q[:, None] * _chain(reach, masses(c, j))
        by_end = reach[:, :hi_bin].sum(axis=1)
        in_period = reach[:, lo_bin:hi_bin].sum(axis=1)
        for u in np.flatnonzero(inverse == k):
            amt = float(ou.amount[u])
            amt_d = deal_mean[:, c] if np.isnan(amt) else np.full(len(p), amt)
            won_p[u] = float(by_end.mean())
            lost_p[u] = float(lost.mean())
            revenue[u] = float((in_period * amt_d).mean())
    won_p = np.clip(won_p, 0.0, 1.0)
    lost_p = np.clip(lost_p, 0.0, 1.0 - won_p)
    return pd.DataFrame(
        {
            "p_won_in_period": won_p,
            "p_lost_in_period": lost_p,
            "expected_revenue_in_period": revenue,
        }
    )

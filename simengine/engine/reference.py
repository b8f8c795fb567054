"""Plain NumPy reference of the path model (no Numba): tests and benchmarks.

The same model as :mod:`simengine.engine._kernels`, vectorised over paths and
units with one :class:`numpy.random.Generator`; its random numbers differ from
the engine's, so the two agree in distribution, not path by path. Memory
grows with the number of paths times units: use it for up to ~10^4 paths.

The drift ahead is drawn the engine's way: per path, a conversion walk per
(cell, step) over drift periods and an arrival level walk per entry stage
over weeks; a new unit's conversions use its arrival week's drift period
(``7 (day // 7) // drift_days``), open units the fitted (last-period) rates.
Dormant non-converters (``dormant``) stay open instead of leaving.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import special

from simengine.engine._prepare import Prepared
from simengine.engine.blocks import PathMetrics, n_scalars

__all__ = ["reference_paths"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


class _Acc:
    """Per-path accumulators: daily revenue, pipeline diffs, entered counts."""

    def __init__(self, n: int, g: int, days: int, stages: int, pr: Prepared) -> None:
        self.rev = np.zeros((n, g, days))
        self.pdv = np.zeros((n, g, days + 1))
        self.pdc = np.zeros((n, g, days + 1))
        self.ent = np.zeros((n, g, stages), np.int64)
        self.src = np.zeros((n, g, stages))  # revenue in the period: open, new per entry stage
        self.pr = pr

    def pipe(self, path: I64, g: I64, day: I64, amt: F64, sign: float) -> None:
        np.add.at(self.pdv, (path, g, day + 1), sign * amt)
        np.add.at(self.pdc, (path, g, day + 1), sign)

    def enter(self, path: I64, g: I64, stage: int, day: I64) -> None:
        inp = (day >= self.pr.start_off) & (day <= self.pr.end_off)
        np.add.at(self.ent, (path[inp], g[inp], np.full(int(inp.sum()), stage)), 1)


def _lognormal_sf(a: F64, mu: F64, sg: F64) -> F64:
    """``P(X > a)``, lognormal ``X``; a step at ``exp(mu)`` where ``sg`` is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (mu - np.log(a)) / sg
        sf = np.where(a > 0, special.ndtr(z), 1.0)
    step = np.where(a >= np.exp(mu), 0.0, 1.0)
    return np.asarray(np.where(sg == 0, step, sf), dtype=np.float64)


def _truncated_below(rng: np.random.Generator, mu: F64, sg: F64, a: F64) -> F64:
    """LogNormal(mu, sg) given ``X > a``: inversion of the upper tail, ``Z = -ndtri(U Q(z))``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (np.log(a) - mu) / sg
        q = np.where(a > 0, special.ndtr(-z), 1.0)
        zz = np.maximum(-special.ndtri(rng.random(a.size) * q), np.where(a > 0, z, -np.inf))
        x = np.maximum(np.exp(mu + sg * zz), a)
    return np.asarray(np.where(sg == 0, np.maximum(np.exp(mu), a), x), dtype=np.float64)


def _units(
    rng: np.random.Generator,
    acc: _Acc,
    path: I64,
    d: I64,
    c: I64,
    t: F64,
    stage: int,
    amt: F64,
    pipe_now: bool,
    source: int,
    conv: F64 | None = None,
) -> None:
    """Move units that just entered ``stage`` at times ``t`` on through the funnel.

    ``amt`` is NaN where not yet known; units get an amount and join the
    pipeline where ``pipe_now`` (first stage) or on entering the pipeline stage.
    ``conv`` (unit, step), if given, holds the units' own conversion rates
    (the drift ahead); else the draws' fitted ones are used. ``source`` is the
    column of revenue by source the winners count in (0: open units, ``1 +
    e``: new units entering at ``e``).
    """
    pr = acc.pr
    S = pr.n_stages - 1
    first = True
    while path.size:
        alive = t < pr.sim_days
        path, d, c, t, amt = path[alive], d[alive], c[alive], t[alive], amt[alive]
        if conv is not None:
            conv = conv[alive]
        g = pr.cell_segment[c]
        day = t.astype(np.int64)
        acc.enter(path, g, stage, day)
        if (first and pipe_now) or (not first and stage == pr.pipeline_stage):
            need = np.isnan(amt)
            amt = amt.copy()
            amt[need] = np.exp(
                rng.normal(pr.deal_size_mu[d, c][need], pr.deal_size_sigma[d, c][need])
            )
            acc.pipe(path, g, day, amt, 1.0)
        first = False
        if stage == S:
            np.add.at(acc.rev, (path, g, day), amt)
            inp = (day >= pr.start_off) & (day <= pr.end_off)
            np.add.at(acc.src, (path[inp], g[inp], np.full(int(inp.sum()), source)), amt[inp])
            acc.pipe(path, g, day, amt, -1.0)
            return
        p = pr.conversion[d, c, stage] if conv is None else conv[:, stage]
        takes = rng.random(path.size) < p
        delay = np.exp(rng.normal(pr.delay_mu[d, c, stage], pr.delay_sigma[d, c, stage]))
        if stage >= pr.pipeline_stage:
            # non-converters leave the pipeline after a draw from the leaving law
            # (time to loss, or the step's delay law without loss information)
            q = pr.dormant[d, c, stage]
            lost = ~takes & ~(rng.random(path.size) < q)  # dormant units stay open
            dl, cl = d[lost], c[lost]
            t_out = t[lost] + np.exp(
                rng.normal(pr.leave_mu[dl, cl, stage], pr.leave_sigma[dl, cl, stage])
            )
            ok = t_out < pr.sim_days
            acc.pipe(path[lost][ok], g[lost][ok], t_out[ok].astype(np.int64), amt[lost][ok], -1.0)
        path, d, c, t = path[takes], d[takes], c[takes], t[takes] + delay[takes]
        amt = amt[takes]
        if conv is not None:
            conv = conv[takes]
        stage += 1


def reference_paths(prepared: Prepared, n: int, seed: int) -> PathMetrics:
    """Simulate ``n`` paths (path ``i`` uses draw ``i % n_draws``) with NumPy.

    Parameters
    ----------
    prepared : Prepared
        From :func:`simengine.engine.prepare`.
    n : int
        Paths.
    seed : int
        Seed of the generator.

    Returns
    -------
    PathMetrics
        The same per-path metrics as :func:`simengine.engine.run_paths`.
    """
    pr = prepared
    rng = np.random.default_rng(seed)
    n_seg = pr.n_segments
    S = pr.n_stages - 1
    D = pr.conversion.shape[0]
    C = pr.conversion.shape[1]
    days = pr.sim_days
    acc = _Acc(n, n_seg, days, S + 1, pr)
    draw = np.arange(n) % D
    n_weeks = (days + 6) // 7
    week = np.arange(n_weeks)
    # drift ahead: conversion walk (path, cell, step, period), level walk (path, e, week)
    n_k = pr.n_drift
    conv_k = np.broadcast_to(pr.conversion[draw][..., None], (n, C, S, n_k)).copy()
    inner = (conv_k > 0) & (conv_k < 1)
    with np.errstate(divide="ignore"):
        logit = np.log(conv_k) - np.log1p(-conv_k)
    walk = np.cumsum(rng.standard_normal((n, C, S, n_k)), axis=3)
    conv_k = np.where(
        inner, special.expit(logit + walk * pr.conv_drift_sd[draw][:, None, None, None]), conv_k
    )
    level = np.exp(
        np.cumsum(rng.standard_normal((n, S, n_weeks)), axis=2) * pr.level_sd[draw][:, :, None]
    )
    for c in range(C):
        for e in range(S):
            if not pr.entry_active[c, e]:
                continue
            m = pr.arrival_rate[draw, c, e][:, None] * np.exp(
                pr.arrival_trend[draw, c, e][:, None] * week[None, :]
            )
            if pr.level_on[c, e]:
                m = m * level[:, e, :]
            alpha = pr.arrival_dispersion[draw, c, e]
            pos = alpha > 0
            mult = np.ones((n, n_weeks))
            if pos.any():
                a = alpha[pos][:, None]
                mult[pos] = rng.gamma(1.0 / a, a, size=(int(pos.sum()), n_weeks))
            lam = np.repeat(m * mult / 7.0, 7, axis=1)[:, :days]
            counts = rng.poisson(lam)
            path, day = np.nonzero(counts)
            reps = counts[path, day]
            path = np.repeat(path, reps).astype(np.int64)
            t = np.repeat(day, reps).astype(np.float64)
            dd = draw[path]
            cc = np.full(path.size, c, np.int64)
            k = np.repeat((7 * (day // 7)) // pr.drift_days, reps)
            uconv = conv_k[path, c, :, k]  # (unit, step)
            amt0 = np.full(path.size, np.nan)
            _units(rng, acc, path, dd, cc, t, e, amt0, e >= pr.pipeline_stage, 1 + e, uconv)
    n_open = pr.open_cell.size
    if n_open:
        path = np.repeat(np.arange(n), n_open)
        u = np.tile(np.arange(n_open), n)
        oc = pr.open_cell[u]
        s0 = pr.open_stage[u]
        a = pr.open_age[u]
        d = draw[path]
        g = pr.cell_segment[oc]
        amt = pr.open_amount[u].copy()
        mu_a, sg_a = pr.deal_size_mu[d, oc], pr.deal_size_sigma[d, oc]
        in_pipe = s0 >= pr.pipeline_stage
        need = in_pipe & np.isnan(amt)
        amt[need] = np.exp(rng.normal(mu_a[need], sg_a[need]))
        acc.pipe(path[in_pipe], g[in_pipe], np.full(int(in_pipe.sum()), -1), amt[in_pipe], 1.0)
        p = pr.conversion[d, oc, s0]
        mu, sg = pr.delay_mu[d, oc, s0], pr.delay_sigma[d, oc, s0]
        sf = _lognormal_sf(a, mu, sg)
        q = pr.dormant[d, oc, s0]
        dormant = np.zeros(path.size, bool)
        if pr.has_loss:
            lmu, lsg = pr.leave_mu[d, oc, s0], pr.leave_sigma[d, oc, s0]
            sl = _lognormal_sf(a, lmu, lsg)
            den = p * sf + (1.0 - p) * ((1.0 - q) * sl + q)
            with np.errstate(divide="ignore", invalid="ignore"):
                pc = np.where(den > 0, p * sf / den, p)
                p_lost = np.where(q > 0, (1.0 - q) * sl / ((1.0 - q) * sl + q), 1.0)
            dormant = rng.random(path.size) >= p_lost
        else:
            den = 1.0 - p * (1.0 - sf)
            with np.errstate(divide="ignore", invalid="ignore"):
                pc = np.where(den > 0, p * sf / den, 1.0)
        conv = rng.random(path.size) < pc
        x = _truncated_below(rng, mu, sg, a)
        if pr.has_loss:
            x = np.where(conv, x, _truncated_below(rng, lmu, lsg, a))
        t = np.maximum(x - a, 0.0)
        lost = ~conv & ~dormant & in_pipe & (t < days)
        acc.pipe(path[lost], g[lost], t[lost].astype(np.int64), amt[lost], -1.0)
        for stage in range(1, S + 1):
            sel = conv & (s0 + 1 == stage)
            if sel.any():
                pipe_now = stage == pr.pipeline_stage
                _units(rng, acc, path[sel], d[sel], oc[sel], t[sel], stage, amt[sel], pipe_now, 0)
    return _metrics(acc, pr, n)


def _metrics(acc: _Acc, pr: Prepared, n: int) -> PathMetrics:
    rev = np.concatenate([acc.rev, acc.rev.sum(axis=1, keepdims=True)], axis=1)
    pdv = np.concatenate([acc.pdv, acc.pdv.sum(axis=1, keepdims=True)], axis=1)
    pdc = np.concatenate([acc.pdc, acc.pdc.sum(axis=1, keepdims=True)], axis=1)
    ent = np.concatenate([acc.ent, acc.ent.sum(axis=1, keepdims=True)], axis=1)
    src = np.concatenate([acc.src, acc.src.sum(axis=1, keepdims=True)], axis=1)
    tg = pr.targets[None, :]
    cum = np.cumsum(rev[:, :, pr.start_off :], axis=2)
    period = cum[:, :, pr.end_off - pr.start_off]
    reached = cum >= tg[:, :, None]
    ttt = np.where(reached.any(axis=2), reached.argmax(axis=2), np.inf).astype(np.float64)
    open_v = np.cumsum(pdv, axis=2)
    open_n = np.cumsum(pdc, axis=2)
    value = np.where(open_n > 0.5, open_v, 0.0)  # index w + 1 = end of day w
    cov0 = value[:, :, pr.start_off] / tg
    wcov = value[:, :, pr.week_days + 1] / tg[:, :, None]
    s1 = pr.n_stages
    scal = np.zeros((n, pr.n_segments + 1, n_scalars(s1)))
    scal[:, :, 0] = period
    scal[:, :, 1] = period / tg
    scal[:, :, 2] = cov0
    scal[:, :, 3] = ent[:, :, -1]
    scal[:, :, 4 : 4 + s1] = ent
    scal[:, :, 4 + s1 :] = src
    return PathMetrics(scal, ttt, cum, wcov)

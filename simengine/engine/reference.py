"""Plain NumPy reference of the path model (no Numba): tests and benchmarks.

The same model as :mod:`simengine.engine._kernels`, vectorised over paths and
units with one :class:`numpy.random.Generator`; its random numbers differ from
the engine's, so the two agree in distribution, not path by path. Memory
grows with the number of paths times units: use it for up to ~10^4 paths.

It builds its own inputs from :class:`~simengine.params.FunnelParameters`
and :class:`~simengine.config.plan.Plan` (:func:`reference_inputs`), written
apart from the engine's :func:`~simengine.engine.prepare`, so an error in
``prepare()`` (the plan's ``new_units``, the day layout, the leaving law)
shows up as a disagreement instead of being shared. It reads only the
parameters, the open units and the plan's dates, targets and planned units.

The rules it implements (ARCHITECTURE.md, "The path model"):

* day 0 is the as-of date; the simulation covers days ``0 .. sim_days - 1``
  up to the horizon end (the period's end, or ``start + horizon_days - 1``
  if later); week ends are the period's days ``start + 6, start + 13, ...``;
* planned ``new_units`` of a segment and entry stage replace that arrival
  mean by ``units / (period days / 7)`` a week, split over the segment's
  cells in proportion to each draw's own rates (equally if all are 0), with
  no trend and no level walk there;
* a non-converter at or past the pipeline stage leaves after a draw from the
  fitted time to loss when the parameters have one, else from the step's
  delay law;
* the drift ahead is drawn the engine's way: per path, a conversion walk per
  (cell, step) over drift periods plus a cohort effect per (step, drift
  period) shared by the cells, and an arrival level walk per entry stage
  over weeks; a new unit's conversions use its arrival week's drift period
  (``7 (day // 7) // drift_days``), open units the fitted (last-period)
  rates. Dormant non-converters (``dormant``) stay open instead of leaving;
* revenue won in the period is also kept by source: open units, and new
  units by entry stage.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import special

from simengine.config.plan import Plan
from simengine.engine.blocks import PathMetrics
from simengine.params import FunnelParameters

__all__ = ["ReferenceInputs", "reference_inputs", "reference_paths"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class ReferenceInputs:
    """The reference's own view of (parameters, plan); see :func:`reference_inputs`.

    Arrays have the shapes of :class:`~simengine.params.FunnelParameters`;
    ``level_walk_on`` is (cell, entry_stage) bool; days count from the as-of
    date (``start``, ``end`` inclusive; ``week_ends`` the period's week ends;
    ``days`` simulated); ``targets`` per segment, then the total.
    """

    conversion: F64
    delay_mu: F64
    delay_sigma: F64
    arrival_rate: F64
    arrival_dispersion: F64
    arrival_trend: F64
    deal_size_mu: F64
    deal_size_sigma: F64
    has_loss: bool
    leave_mu: F64
    leave_sigma: F64
    dormant: F64
    conversion_drift_sd: F64
    conversion_cohort_sd: F64
    arrival_level_sd: F64
    level_walk_on: npt.NDArray[np.bool_]
    drift_days: int
    cell_segment: I64
    pipeline_stage: int
    open_cell: I64
    open_stage: I64
    open_age: F64
    open_amount: F64
    days: int
    start: int
    end: int
    week_ends: I64
    targets: F64
    n_segments: int
    n_stages: int


def reference_inputs(params: FunnelParameters, plan: Plan) -> ReferenceInputs:
    """Build the reference's inputs from the parameters and the plan directly.

    Parameters
    ----------
    params : FunnelParameters
        Parameter draws and open units (day 0 = the as-of date).
    plan : Plan
        Period, targets, planned new units, horizon.

    Returns
    -------
    ReferenceInputs
    """
    as_of = params.as_of
    last = plan.end
    if plan.horizon_days is not None:
        last = max(last, plan.start + dt.timedelta(days=plan.horizon_days - 1))
    start, end = (plan.start - as_of).days, (plan.end - as_of).days
    n_draws, n_cells, n_steps = np.shape(params.conversion)
    rate = np.array(params.arrival_rate, dtype=float)
    trend = np.array(params.arrival_trend, dtype=float)
    level_walk_on = np.ones((n_cells, n_steps), bool)
    period_weeks = ((plan.end - plan.start).days + 1) / 7.0
    seg_of = np.asarray(params.cell_segment)
    for seg, per_stage in plan.new_units.items():
        cells = [c for c in range(n_cells) if seg_of[c] == params.segments.index(seg)]
        for stage, units in per_stage.items():
            e = list(params.stages).index(stage)
            for d in range(n_draws):
                own = rate[d, cells, e]
                total = float(own.sum())
                share = own / total if total > 0 else np.full(len(cells), 1.0 / len(cells))
                rate[d, cells, e] = units / period_weeks * share
            trend[:, cells, e] = 0.0
            level_walk_on[cells, e] = False
    has_loss = params.loss_mu is not None and params.loss_sigma is not None
    leave_mu = params.loss_mu if params.loss_mu is not None else params.delay_mu
    leave_sigma = params.loss_sigma if params.loss_sigma is not None else params.delay_sigma
    zeros = np.zeros((n_draws, n_cells, n_steps))
    ou = params.open_units
    return ReferenceInputs(
        conversion=np.asarray(params.conversion, float),
        delay_mu=np.asarray(params.delay_mu, float),
        delay_sigma=np.asarray(params.delay_sigma, float),
        arrival_rate=rate,
        arrival_dispersion=np.asarray(params.arrival_dispersion, float),
        arrival_trend=trend,
        deal_size_mu=np.asarray(params.deal_size_mu, float),
        deal_size_sigma=np.asarray(params.deal_size_sigma, float),
        has_loss=has_loss,
        leave_mu=np.asarray(leave_mu, float),
        leave_sigma=np.asarray(leave_sigma, float),
        dormant=zeros if params.dormant is None else np.asarray(params.dormant, float),
        conversion_drift_sd=(
            np.zeros(n_draws)
            if params.conversion_drift_sd is None
            else np.asarray(params.conversion_drift_sd, float)
        ),
        conversion_cohort_sd=(
            np.zeros(n_draws)
            if params.conversion_cohort_sd is None
            else np.asarray(params.conversion_cohort_sd, float)
        ),
        arrival_level_sd=(
            np.zeros((n_draws, n_steps))
            if params.arrival_level_sd is None
            else np.asarray(params.arrival_level_sd, float)
        ),
        level_walk_on=level_walk_on,
        drift_days=int(params.drift_period_days),
        cell_segment=seg_of.astype(np.int64),
        pipeline_stage=int(params.pipeline_stage),
        open_cell=np.asarray(ou.cell, np.int64),
        open_stage=np.asarray(ou.stage, np.int64),
        open_age=np.asarray(ou.age_days, float),
        open_amount=np.asarray(ou.amount, float),
        days=(last - as_of).days + 1,
        start=start,
        end=end,
        week_ends=np.arange(start + 6, end + 1, 7, dtype=np.int64),
        targets=np.array([*(plan.targets[s] for s in params.segments), sum(plan.targets.values())]),
        n_segments=len(params.segments),
        n_stages=len(params.stages),
    )


class _Acc:
    """Per-path accumulators: daily revenue, pipeline diffs, entered counts, sources."""

    def __init__(self, n: int, inp: ReferenceInputs) -> None:
        g, days, stages = inp.n_segments, inp.days, inp.n_stages
        self.rev = np.zeros((n, g, days))
        self.pdv = np.zeros((n, g, days + 1))
        self.pdc = np.zeros((n, g, days + 1))
        self.ent = np.zeros((n, g, stages), np.int64)
        self.src = np.zeros((n, g, stages))  # revenue in the period: open, new per entry stage
        self.inp = inp

    def in_period(self, day: I64) -> npt.NDArray[np.bool_]:
        return (day >= self.inp.start) & (day <= self.inp.end)

    def pipe(self, path: I64, g: I64, day: I64, amt: F64, sign: float) -> None:
        np.add.at(self.pdv, (path, g, day + 1), sign * amt)
        np.add.at(self.pdc, (path, g, day + 1), sign)

    def enter(self, path: I64, g: I64, stage: int, day: I64) -> None:
        inp = self.in_period(day)
        np.add.at(self.ent, (path[inp], g[inp], np.full(int(inp.sum()), stage)), 1)

    def win(self, path: I64, g: I64, day: I64, amt: F64, source: int) -> None:
        np.add.at(self.rev, (path, g, day), amt)
        inp = self.in_period(day)
        np.add.at(self.src, (path[inp], g[inp], np.full(int(inp.sum()), source)), amt[inp])


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
    inp = acc.inp
    S = inp.n_stages - 1
    first = True
    while path.size:
        alive = t < inp.days
        path, d, c, t, amt = path[alive], d[alive], c[alive], t[alive], amt[alive]
        if conv is not None:
            conv = conv[alive]
        g = inp.cell_segment[c]
        day = t.astype(np.int64)
        acc.enter(path, g, stage, day)
        if (first and pipe_now) or (not first and stage == inp.pipeline_stage):
            need = np.isnan(amt)
            amt = amt.copy()
            amt[need] = np.exp(
                rng.normal(inp.deal_size_mu[d, c][need], inp.deal_size_sigma[d, c][need])
            )
            acc.pipe(path, g, day, amt, 1.0)
        first = False
        if stage == S:
            acc.win(path, g, day, amt, source)
            acc.pipe(path, g, day, amt, -1.0)
            return
        p = inp.conversion[d, c, stage] if conv is None else conv[:, stage]
        takes = rng.random(path.size) < p
        delay = np.exp(rng.normal(inp.delay_mu[d, c, stage], inp.delay_sigma[d, c, stage]))
        if stage >= inp.pipeline_stage:
            # non-converters leave the pipeline after a draw from the leaving law
            # (time to loss, or the step's delay law without loss information)
            q = inp.dormant[d, c, stage]
            lost = ~takes & ~(rng.random(path.size) < q)  # dormant units stay open
            dl, cl = d[lost], c[lost]
            t_out = t[lost] + np.exp(
                rng.normal(inp.leave_mu[dl, cl, stage], inp.leave_sigma[dl, cl, stage])
            )
            ok = t_out < inp.days
            acc.pipe(path[lost][ok], g[lost][ok], t_out[ok].astype(np.int64), amt[lost][ok], -1.0)
        path, d, c, t = path[takes], d[takes], c[takes], t[takes] + delay[takes]
        amt = amt[takes]
        if conv is not None:
            conv = conv[takes]
        stage += 1


def reference_paths(params: FunnelParameters, plan: Plan, n: int, seed: int) -> PathMetrics:
    """Simulate ``n`` paths (path ``i`` uses draw ``floor(i n_draws / n)``) with NumPy.

    Parameters
    ----------
    params : FunnelParameters
        Parameter draws and open units.
    plan : Plan
        Period, targets, planned new units, horizon.
    n : int
        Paths.
    seed : int
        Seed of the generator.

    Returns
    -------
    PathMetrics
        The per-path metrics of :func:`simengine.engine.run_paths`, in the
        order of :func:`simengine.engine.blocks.scalar_names`.
    """
    inp = reference_inputs(params, plan)
    rng = np.random.default_rng(seed)
    S = inp.n_stages - 1
    D = inp.conversion.shape[0]
    C = inp.conversion.shape[1]
    days = inp.days
    acc = _Acc(n, inp)
    draw = (np.arange(n, dtype=np.int64) * D) // n  # paths grouped by draw, as the engine
    n_weeks = (days + 6) // 7
    week = np.arange(n_weeks)
    # drift ahead: conversion walk (path, cell, step, period), level walk (path, e, week)
    n_k = (7 * ((days - 1) // 7)) // inp.drift_days + 1  # drift periods new units reach
    conv_k = np.broadcast_to(inp.conversion[draw][..., None], (n, C, S, n_k)).copy()
    inner = (conv_k > 0) & (conv_k < 1)
    with np.errstate(divide="ignore"):
        logit = np.log(conv_k) - np.log1p(-conv_k)
    walk = np.cumsum(rng.standard_normal((n, C, S, n_k)), axis=3)
    # cohort effects: one per path, step and drift period, shared by the cells
    # (drawn only when an sd is positive, so the generator's later draws stay as before)
    cohort = np.zeros((n, 1, S, n_k))
    if np.any(inp.conversion_cohort_sd > 0):
        csd = inp.conversion_cohort_sd[draw][:, None, None, None]
        cohort = rng.standard_normal((n, 1, S, n_k)) * csd
    conv_k = np.where(
        inner,
        special.expit(logit + walk * inp.conversion_drift_sd[draw][:, None, None, None] + cohort),
        conv_k,
    )
    level = np.exp(
        np.cumsum(rng.standard_normal((n, S, n_weeks)), axis=2)
        * inp.arrival_level_sd[draw][:, :, None]
    )
    for c in range(C):
        for e in range(S):
            if not np.any(inp.arrival_rate[:, c, e] > 0):
                continue
            m = inp.arrival_rate[draw, c, e][:, None] * np.exp(
                inp.arrival_trend[draw, c, e][:, None] * week[None, :]
            )
            if inp.level_walk_on[c, e]:
                m = m * level[:, e, :]
            alpha = inp.arrival_dispersion[draw, c, e]
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
            k = np.repeat((7 * (day // 7)) // inp.drift_days, reps)
            uconv = conv_k[path, c, :, k]  # (unit, step)
            amt0 = np.full(path.size, np.nan)
            _units(rng, acc, path, dd, cc, t, e, amt0, e >= inp.pipeline_stage, 1 + e, uconv)
    n_open = inp.open_cell.size
    if n_open:
        path = np.repeat(np.arange(n), n_open)
        u = np.tile(np.arange(n_open), n)
        oc = inp.open_cell[u]
        s0 = inp.open_stage[u]
        a = inp.open_age[u]
        d = draw[path]
        g = inp.cell_segment[oc]
        amt = inp.open_amount[u].copy()
        mu_a, sg_a = inp.deal_size_mu[d, oc], inp.deal_size_sigma[d, oc]
        in_pipe = s0 >= inp.pipeline_stage
        need = in_pipe & np.isnan(amt)
        amt[need] = np.exp(rng.normal(mu_a[need], sg_a[need]))
        acc.pipe(path[in_pipe], g[in_pipe], np.full(int(in_pipe.sum()), -1), amt[in_pipe], 1.0)
        p = inp.conversion[d, oc, s0]
        mu, sg = inp.delay_mu[d, oc, s0], inp.delay_sigma[d, oc, s0]
        sf = _lognormal_sf(a, mu, sg)
        q = inp.dormant[d, oc, s0]
        dormant = np.zeros(path.size, bool)
        if inp.has_loss:
            lmu, lsg = inp.leave_mu[d, oc, s0], inp.leave_sigma[d, oc, s0]
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
        if inp.has_loss:
            x = np.where(conv, x, _truncated_below(rng, lmu, lsg, a))
        t = np.maximum(x - a, 0.0)
        lost = ~conv & ~dormant & in_pipe & (t < days)
        acc.pipe(path[lost], g[lost], t[lost].astype(np.int64), amt[lost], -1.0)
        for stage in range(1, S + 1):
            sel = conv & (s0 + 1 == stage)
            if sel.any():
                pipe_now = stage == inp.pipeline_stage
                _units(rng, acc, path[sel], d[sel], oc[sel], t[sel], stage, amt[sel], pipe_now, 0)
    return _metrics(acc, inp, n)


def _metrics(acc: _Acc, inp: ReferenceInputs, n: int) -> PathMetrics:
    rev = np.concatenate([acc.rev, acc.rev.sum(axis=1, keepdims=True)], axis=1)
    pdv = np.concatenate([acc.pdv, acc.pdv.sum(axis=1, keepdims=True)], axis=1)
    pdc = np.concatenate([acc.pdc, acc.pdc.sum(axis=1, keepdims=True)], axis=1)
    ent = np.concatenate([acc.ent, acc.ent.sum(axis=1, keepdims=True)], axis=1)
    src = np.concatenate([acc.src, acc.src.sum(axis=1, keepdims=True)], axis=1)
    tg = inp.targets[None, :]
    cum = np.cumsum(rev[:, :, inp.start :], axis=2)
    period = cum[:, :, inp.end - inp.start]
    reached = cum >= tg[:, :, None]
    ttt = np.where(reached.any(axis=2), reached.argmax(axis=2), np.inf).astype(np.float64)
    open_v = np.cumsum(pdv, axis=2)
    open_n = np.cumsum(pdc, axis=2)
    value = np.where(open_n > 0.5, open_v, 0.0)  # index w + 1 = end of day w
    cov0 = value[:, :, inp.start] / tg
    wcov = value[:, :, inp.week_ends + 1] / tg[:, :, None]
    s1 = inp.n_stages
    # revenue, attainment, coverage, won deals, entered per stage, revenue by source
    scal = np.zeros((n, inp.n_segments + 1, 4 + 2 * s1))
    scal[:, :, 0] = period
    scal[:, :, 1] = period / tg
    scal[:, :, 2] = cov0
    scal[:, :, 3] = ent[:, :, -1]
    scal[:, :, 4 : 4 + s1] = ent
    scal[:, :, 4 + s1 :] = src
    return PathMetrics(scal, ttt, cum, wcov)

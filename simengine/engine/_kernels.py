"""Numba kernels of the path model (pure: arrays in, ``out`` arrays filled).

One path, from day 0 (the as-of date) to day ``sim_days - 1``:

* **Arrivals** per cell and entry stage: each week ``w`` (days ``7w .. 7w+6``)
  has mean ``rate * exp(trend * w)``; with dispersion ``alpha > 0`` it is
  multiplied by a Gamma(1/alpha, alpha) draw (mean 1, variance alpha), then
  the week gets Poisson(weekly mean) units, each on a uniform day of the week
  (the law of independent daily Poisson(mean / 7) counts); days past the
  horizon are dropped. The weekly total is exactly negative binomial with
  variance ``m + alpha m^2``. New units enter at the start of their day
  (continuous time = the day index).
* **A week's cohort** of ``n`` units at entry stage ``e`` (:func:`_arrivals`) is
  thinned step by step with binomial draws, ``n_{s+1} ~ Binomial(n_s, p_s)``
  (one :func:`~simengine.engine._rng.binomial` call per step, whatever
  ``n``). A unit's day, conversions and delays are independent, so unit
  ``j`` (in draw order) reaches stage ``max{m : j < n_m}`` and then draws its
  day: exact in distribution. Only units whose day matters draw one: those
  that take the first step, and all units entering at or past the pipeline
  stage. The others only count as entering ``e`` in the period: all of them
  when the week lies inside it, else Binomial(n, days inside / 7). Each
  conversion adds its own lognormal delay (continuous days); an event's day
  is the floor of its time. Units that stop at a stage at or after the
  pipeline stage leave the pipeline (are lost) after a draw from the next
  step's *leaving* law ``G``: the fitted time to loss
  (``loss_mu``/``loss_sigma``) when the parameters have it (``has_loss``),
  else the next step's delay law (the assumption used without loss
  information; needed for coverage). Nothing is drawn for events after the
  horizon, nor for pipeline value no output reads: a unit entering the
  pipeline after the last reported week end (``cov_last``) draws no time to
  leave, and a week that starts after the period's end plays only its
  winners (:func:`_arrivals`).
* **Open units** at day 0 with age ``a`` in stage ``s`` (``F`` = the step's
  delay CDF, ``S_F = 1 - F``, ``p`` its conversion):

  - with a time to loss ``G`` (the fitted cure model with a competing risk):
    convert with ``p S_F(a) / (p S_F(a) + (1 - p) S_G(a))`` (``p`` if both
    survivals are 0), then take the step after ``X - a``, ``X ~ F | X > a``;
    otherwise are lost after ``X - a``, ``X ~ G | X > a``;
  - without (non-converters are never lost): convert with
    ``p S_F(a) / (1 - p F(a))`` and their next event (conversion or leaving)
    comes after ``X - a``, ``X ~ F | X > a``;

  later steps as for new units. Open units come sorted by (cell, stage,
  age) (:func:`~simengine.engine._prepare.prepare`); a run of equal keys
  shares one computation of these probabilities and tails
  (:func:`_open_units`), and a non-converter before the pipeline stage draws
  nothing more.
* **Amounts**: a unit gets its amount when it enters the pipeline stage (its
  own if known, else lognormal ``deal_size_mu/sigma`` of its cell); it counts
  towards pipeline value until it wins or leaves, and towards revenue on the
  day it wins; revenue won in the period is also kept by source (the open
  units; new units by entry stage), whose sum is the period's revenue.

Random streams of path ``i`` are ``seed_stream(root, i, id)``; ids are fixed
per purpose, so changing one cell's or step's parameters leaves the draws of
every other (cell, entry stage) untouched (common random numbers):
for cell ``c`` and entry stage ``e`` with ``S`` steps,
``base = (c * S + e) * (3S + 2)``: arrivals ``base``, conversions
``base + 1 + s``, delays ``base + 1 + S + s``, leaving delays
``base + 1 + 2S + s``, amounts ``base + 1 + 3S``; open units of cell ``c``:
``C S (3S + 2) + c``; the drift ahead (:func:`_conversion_walk`,
:func:`_level_walk`): the conversion walk of cell ``c`` and step ``s``
``C S (3S + 2) + C + c S + s``, the arrival level walk of entry stage ``e``
``C S (3S + 2) + C + C S + e``, the cohort effects of step ``s``
``C S (3S + 2) + C + C S + S + s``. These last are seeded and drawn only when the
parameters carry positive innovation sds, and a dormant unit's extra
uniform only when its share is positive, so without them every stream
draws what it drew before. A week's unit days are drawn from the conversion
stream of step ``e`` (their number depends only on ``p_e``), so a change of a
later step's rate leaves arrivals and first conversions untouched. A change
of what the streams draw changes paths' numbers, not their law; such changes
are listed in CHANGELOG.md. The streams live in one table per path
(``states``, one row per id) and the variates take the table and the row
(:mod:`~simengine.engine._rng`).

Two path models share this module: the per-unit model above (the default)
and the thinned model (``model.thinned``; :mod:`simengine.engine.thinned`),
which draws a week's outcome classes as independent Poisson counts. They
differ only in how :func:`_arrivals` splits a week's units by the last
stage they reach: the per-path set-up (:func:`_path`: streams, drift ahead, open
units, totals), the play of one new unit (:func:`_play_units`) and the
metrics are the same code.

The kernels read their inputs by name from one
:class:`~simengine.engine._interface.KernelModel` (``model``) and work in one
:class:`~simengine.engine._interface.PathScratch` per thread (``scratch``).
"""

from __future__ import annotations

import math

import numpy as np

from simengine.engine import _rng
from simengine.engine._interface import PathScratch
from simengine.engine._jit import jit, jit_inline
from simengine.engine._sketch import bin_index

__all__ = ["TAIL_CACHE_MAX_ENTRIES", "block_kernel", "paths_kernel"]

TAIL_CACHE_MAX_ENTRIES = 1 << 23
"""Largest (draw, run of open units) table a thread caches tail masses in (128 MiB)."""

GRID_MIN_PATHS_PER_DRAW = 8
"""Paths a draw must serve on average (``n_paths / n_draws``) before the
open units' day grids are built (:func:`_fill_grid`): a grid costs about as
much to build as it saves on a few paths."""

GRID_MAX_ENTRIES = 1 << 22
"""Largest day grid a thread keeps (32 MiB); larger ones are not built."""

_LOG_TAIL_MIN = _rng._LOG_TAIL_MIN

seed_stream = _rng.seed_stream
uniform = _rng.uniform
lognormal = _rng.lognormal
gamma = _rng.gamma
poisson = _rng.poisson
binomial = _rng.binomial
ndtr = _rng.ndtr
lognormal_truncated_tail = _rng.lognormal_truncated_tail
std_normal = _rng.std_normal


@jit
def _alpha(a, mu, sigma):  # pragma: no cover
    """``alpha = (log a - mu) / sigma`` of :func:`_tail` (``-inf`` at ``a <= 0``; 0 at sigma 0)."""
    if a <= 0.0:
        return -math.inf
    if sigma == 0.0:
        return 0.0
    return (math.log(a) - mu) / sigma


@jit
def _tail(a, mu, sigma):  # pragma: no cover
    """``(alpha, P(X > a))`` of a lognormal ``X``, ``alpha`` from :func:`_alpha`.

    ``P(X > a)`` is 1 at ``a <= 0`` and a step at ``exp(mu)`` when sigma is 0
    (``alpha`` is then unused); else ``ndtr(-alpha)`` (no ``1 - CDF``
    cancellation), the tail mass :func:`_above` reuses.
    """
    alpha = _alpha(a, mu, sigma)
    if a <= 0.0:
        return alpha, 1.0
    if sigma == 0.0:
        return alpha, (0.0 if a >= math.exp(mu) else 1.0)
    return alpha, ndtr(-alpha)


@jit
def _above(states, row, mu, sigma, a, alpha, tail):  # pragma: no cover
    """LogNormal(mu, sigma) given ``X > a``, from :func:`_tail`'s ``(alpha, tail)``.

    Bitwise :func:`~simengine.engine._rng.lognormal_truncated_below` without
    recomputing the log and erfc; a point mass at ``max(e^mu, a)`` if sigma is 0.
    """
    if sigma == 0.0:
        return max(math.exp(mu), a)
    if a <= 0.0:
        return lognormal(states, mu, sigma, row)
    if math.isinf(alpha):
        return a
    return lognormal_truncated_tail(states, mu, sigma, a, alpha, tail, row)


@jit_inline
def _pipe(pipeline_value, pipeline_count, g, day, amount, sign, cov_last):  # pragma: no cover
    """Add a pipeline entry (``sign`` 1) or exit (-1) on ``day`` (index ``day + 1``).

    Changes after day ``cov_last`` are never read (:func:`_metrics` stops at
    the last week end), so they are not written. Takes the two arrays, not
    the scratch tuple: it runs per pipeline event, and passing a tuple of
    arrays costs a reference count per array per call.
    """
    if day <= cov_last:
        pipeline_value[g, day + 1] += sign * amount
        pipeline_count[g, day + 1] += sign


@jit_inline
def _week_mean(m, trend, level, w):  # pragma: no cover
    """Week ``w``'s mean arrivals before the dispersion factor: ``m exp(trend w) level``.

    ``m``, ``trend``: the cell and entry stage's ``arrival_rate`` and
    ``arrival_trend`` of the path's draw; ``level``: the path's arrival level
    walk at week ``w`` (1 without it). The callers then multiply by the
    week's Gamma(1/alpha, alpha) draw when the dispersion ``alpha > 0`` (the
    week's count is then negative binomial). Scalars only: an inlined
    function that takes arrays copies each of them per call, which costs a
    reference count per array (see :func:`_play_units`).
    """
    mw = m * math.exp(trend * w) if trend != 0.0 else m
    return mw * level


@jit
def _arrivals(
    model, scratch, d, c, e, g, base, n_weeks, cov_last, level_walk_on
):  # pragma: no cover
    """Play out the new units of cell ``c`` at entry stage ``e``, week by week.

    Week ``w`` (days ``d0 = 7w .. d0 + 6``) gets ``nw`` units: Poisson with
    mean ``m exp(tr w)`` (``m``, ``tr``: ``model.arrival_rate``,
    ``model.arrival_trend`` of draw ``d``), times a Gamma(1/alpha, alpha)
    factor when the dispersion ``alpha > 0``, from the arrival stream
    ``states[base]``. One call per (cell, entry stage): the loop over weeks
    is inside. A week's cohort is thinned step by step with one binomial
    per step; only the units whose day matters draw it (uniform over the
    week, from the step-``e`` conversion stream): units that take the first
    step, and every unit when ``e`` is at or past the pipeline stage. Units
    that stop at ``e`` before the pipeline only count as entering ``e`` in
    the period: all of them when the week lies inside it, else a
    Binomial(n, days inside / 7).

    Pipeline value is read only through day ``cov_last`` (the last week end
    whose coverage is reported): a unit entering the pipeline later draws
    its amount (every pipeline unit does, in the same order, so a change of
    a later step's rate leaves the amounts of the others untouched) but no
    time to leave.

    A week that starts after the period's end (``7 w > end_offset``) can only
    change revenue after the period (the fan and time to target): its units
    enter no stage in the period and no reported pipeline. So only its
    winners are played (units ``j < cohort[S]``, who come first in every
    stream); the others draw nothing. Which units draw depends only on the
    binomial counts, never on the draws themselves, so the law is unchanged.

    Drift ahead: with ``level_walk_on`` week ``w``'s mean is also multiplied
    by ``scratch.level_walk[e, w]`` (the path's arrival level walk); with
    ``model.has_drift`` the week's cohort converts, at every step, with
    ``scratch.conversion_walk[c, s, 7 w // drift_days]`` (the path's
    conversion walk, drift periods after the as-of date) instead of
    ``model.conversion[d, c, s]``. A pipeline unit that stops at step ``s``
    stays open for good with probability ``model.dormant[d, c, s]`` (a
    uniform from its leaving stream, drawn only when that share is
    positive) and otherwise leaves after a draw from the leaving law.

    The thinned path model (``model.thinned``; :mod:`simengine.engine.thinned`)
    differs only in how a week's units are split by the last stage they
    reach. Week ``w``'s mean ``mw`` is as above; given ``mw`` the week's
    units are a Poisson(``mw``) stream and each unit, independently, enters
    exactly the stages ``e .. r`` with probability ``P_r = p_e ... p_{r-1}
    (1 - p_r)`` (``P_S = p_e ... p_{S-1}``; the week's rates, with the
    drift ahead). So the counts ``N_r`` of the classes are independent
    Poisson(``mw P_r``) (Poisson thinning), drawn from stream ``base`` from
    ``r = S`` down (only ``r = S`` after the period): exactly the law of the
    per-unit model, with one Poisson per class in place of one binomial per
    step.

    Either way the classes are then played (:func:`_play_units`) or, for
    units that stop at ``e`` before the pipeline stage, counted
    (:func:`_count_entries`), in the order their units come in the streams:
    the per-unit model ``e`` first, then ``S`` down to ``e + 1``; the thinned
    one ``S`` down to ``e``. The class counts sit in ``scratch.cohort``
    (indices ``e .. S``; the per-unit model's binomial chain is turned into
    them).
    """
    states = scratch.states
    cohort = scratch.cohort
    conversion = model.conversion
    pipe = model.pipeline_stage
    end_offset = model.end_offset
    has_drift = model.has_drift
    thinned = model.thinned
    S = conversion.shape[2]
    sim_days = model.sim_days
    start_offset = model.start_offset
    entered = scratch.entered
    revenue = scratch.revenue
    source_revenue = scratch.source_revenue
    pipeline_value = scratch.pipeline_value
    pipeline_count = scratch.pipeline_count
    delay_mu = model.delay_mu
    delay_sigma = model.delay_sigma
    deal_size_mu = model.deal_size_mu
    deal_size_sigma = model.deal_size_sigma
    leave_mu = model.leave_mu
    leave_sigma = model.leave_sigma
    dormant = model.dormant
    conversion_walk = scratch.conversion_walk
    level_walk = scratch.level_walk
    drift_days = model.drift_days
    m = model.arrival_rate[d, c, e]
    trend = model.arrival_trend[d, c, e]
    alpha = model.arrival_dispersion[d, c, e]
    for w in range(n_weeks):
        mw = _week_mean(m, trend, level_walk[e, w] if level_walk_on else 1.0, w)
        if alpha > 0.0:
            mw *= gamma(states, 1.0 / alpha, base) * alpha
        d0 = 7 * w
        post = d0 > end_offset  # only this week's winners can matter (see above)
        kd = (7 * w) // drift_days
        if thinned:
            if mw <= 0.0:
                continue
            for r in range(S, e - 1, -1):
                cohort[r] = 0
                if post and r < S:
                    continue
                pr = 1.0
                for s in range(e, min(r + 1, S)):
                    p = conversion_walk[c, s, kd] if has_drift else conversion[d, c, s]
                    pr *= p if s < r else 1.0 - p
                lam = mw * pr
                if lam > 0.0:
                    cohort[r] = poisson(states, lam, base)
        else:
            nw = poisson(states, mw, base) if mw > 0.0 else 0
            if nw == 0:
                continue
            cohort[e] = nw
            for s in range(e, S):
                k = cohort[s]
                p = conversion_walk[c, s, kd] if has_drift else conversion[d, c, s]
                if k == 0 or p <= 0.0:
                    cohort[s + 1] = 0
                elif p >= 1.0:
                    cohort[s + 1] = k
                else:
                    cohort[s + 1] = binomial(states, k, p, base + 1 + s)
            # reached-at-least counts -> class counts (last stage reached):
            # units j < cohort[S] reach S, the next cohort[S-1] - cohort[S]
            # reach S - 1, ...; after the period only the winners can change
            # an output (the others would enter nothing in the period)
            for r in range(e, S):
                cohort[r] = 0 if post else cohort[r] - cohort[r + 1]
        for k in range(S - e + 1):
            r = S - k if thinned else (e if k == 0 else S + 1 - k)
            n_r = cohort[r]
            if n_r == 0:
                continue
            if r == e and e < pipe:
                _count_entries(
                    entered, states, start_offset, end_offset, sim_days, g, e, d0, n_r, base + 1 + e
                )
            else:
                # fmt: off
                _play_units(
                    states, entered, revenue, source_revenue, pipeline_value, pipeline_count,
                    delay_mu, delay_sigma, deal_size_mu, deal_size_sigma, leave_mu, leave_sigma,
                    dormant, pipe, sim_days, start_offset, end_offset,
                    d, c, e, g, base, d0, n_r, r, cov_last,
                )
                # fmt: on


@jit
def _count_entries(
    entered, states, start_offset, end_offset, sim_days, g, e, d0, n, r_day
):  # pragma: no cover
    """Count the ``n`` units that enter stage ``e`` on uniform days of the week from ``d0``.

    Units that stop at their entry stage before the pipeline leave no other
    trace, so they are counted, not played: those entering in the period
    (row ``g``) are all ``n`` when the week's days lie inside it, else
    Binomial(n, days inside / 7) from stream ``r_day`` (days past the
    horizon are never inside).
    """
    lo = max(start_offset, d0)
    hi = min(end_offset, d0 + 6, sim_days - 1)
    n_in = hi - lo + 1
    if n_in >= 7:
        entered[g, e] += n
    elif n_in > 0:
        entered[g, e] += binomial(states, n, n_in / 7.0, r_day)


# fmt: off
@jit
def _play_units(  # pragma: no cover
    states, entered, revenue, source_revenue, pipeline_value, pipeline_count,  # scratch
    delay_mu, delay_sigma, deal_size_mu, deal_size_sigma, leave_mu, leave_sigma,  # model
    dormant, pipe, sim_days, start_offset, end_offset,  # model
    d, c, e, g, base, d0, n, reached, cov_last,  # the units
):
    # fmt: on
    """Play ``n`` new units of cell ``c`` entering at ``e`` in the week from ``d0``, to ``reached``.

    ``reached`` (``e .. S``) is the last stage the units enter, drawn by the
    caller. Each unit in turn draws its day (uniform over the week, stream
    ``base + 1 + e``), then one delay per step it takes (stream ``base + 1 +
    S + s``); it counts in ``entered`` on the days that fall in the period;
    it draws its amount on entering the pipeline stage (stream ``base + 1 +
    3S``) and adds to the pipeline through ``cov_last``; at ``S`` it adds its
    amount to revenue (and to the new units' source ``1 + e`` in the
    period); a pipeline unit that stops at ``reached < S`` stays open for
    good with ``dormant[d, c, reached]`` (a uniform from its leaving stream,
    drawn only when positive), else leaves after a draw from the leaving law
    (stream ``base + 1 + 2S + reached``). Nothing after the horizon is
    drawn. Shared by the per-unit and the thinned path models
    (:func:`_arrivals`): one unit's law, written once.

    The arrays come one by one, not in the kernels' named tuples, and the
    loop over units is inside: a compiled call takes a reference on each
    array it receives, which Numba's reference-count pruning removes only
    where the references are taken once, at a function's entry. Reading
    the tuples' fields per unit, or inlining a per-unit function that takes
    arrays, costs an atomic reference count per array and unit (an inlined
    per-unit function that received the two tuples took 43 a unit, and the
    engine ran seven times slower).
    """
    S = delay_mu.shape[2]
    r_amt = base + 1 + 3 * S
    r_leave = base + 1 + 2 * S + reached
    for _ in range(n):
        day = d0 + min(int(7.0 * uniform(states, base + 1 + e)), 6)
        if day >= sim_days:
            continue
        if start_offset <= day <= end_offset:
            entered[g, e] += 1
        t = float(day)
        amt = 0.0
        in_cov = False  # entered the pipeline by day cov_last
        alive = True
        if e >= pipe:
            amt = lognormal(states, deal_size_mu[d, c], deal_size_sigma[d, c], r_amt)
            if day <= cov_last:
                _pipe(pipeline_value, pipeline_count, g, day, amt, 1.0, cov_last)
                in_cov = True
        for s in range(e, reached):
            t += lognormal(states, delay_mu[d, c, s], delay_sigma[d, c, s], base + 1 + S + s)
            if t >= sim_days:
                alive = False
                break
            dd = int(t)
            st = s + 1
            if start_offset <= dd <= end_offset:
                entered[g, st] += 1
            if st == pipe:
                amt = lognormal(states, deal_size_mu[d, c], deal_size_sigma[d, c], r_amt)
                if dd <= cov_last:
                    _pipe(pipeline_value, pipeline_count, g, dd, amt, 1.0, cov_last)
                    in_cov = True
            if st == S:
                revenue[g, dd] += amt
                if start_offset <= dd <= end_offset:
                    source_revenue[g, 1 + e] += amt
                if in_cov:
                    _pipe(pipeline_value, pipeline_count, g, dd, amt, -1.0, cov_last)
        if not alive or reached == S or not in_cov:
            continue
        q = dormant[d, c, reached]
        if q > 0.0 and uniform(states, r_leave) < q:
            continue  # dormant: stays open
        t_out = t + lognormal(states, leave_mu[d, c, reached], leave_sigma[d, c, reached], r_leave)
        if t_out < sim_days:
            _pipe(pipeline_value, pipeline_count, g, int(t_out), amt, -1.0, cov_last)


@jit
def _fill_grid(model, d, grid):  # pragma: no cover
    """Fill ``grid[c, 0, m]`` = ``S_F(m)``, ``grid[c, 1, m]`` = ``S_G(m)`` of draw ``d``.

    ``S = P(X > m)`` at integer days ``m = 0 .. grid.shape[2] - 1`` of the last
    step's laws of cell ``c``: ``F`` its delay, ``G`` its leaving law
    (``leave_mu``/``leave_sigma`` with a time to loss, else the delay), each
    value computed as :func:`_tail` computes an open run's tail mass, so
    ``grid[c, j, a]`` is bitwise the ``sf``/``sl`` of a run of age ``a``.
    Without a time to loss only ``j = 0`` is filled (the leaving law is the
    delay). A row whose sigma is 0 is left at -1 (not used).
    """
    S = model.conversion.shape[2]
    s = S - 1
    for c in range(grid.shape[0]):
        for j in range(2 if model.has_loss else 1):
            if j == 0:
                mu, sg = model.delay_mu[d, c, s], model.delay_sigma[d, c, s]
            else:
                mu, sg = model.leave_mu[d, c, s], model.leave_sigma[d, c, s]
            if sg <= 0.0:
                for m in range(grid.shape[2]):
                    grid[c, j, m] = -1.0
                continue
            for m in range(grid.shape[2]):
                grid[c, j, m] = _tail(float(m), mu, sg)[1]


@jit_inline
def _grid_day(grid, c, j, ia, horizon, target):  # pragma: no cover
    """Day ``k`` (0-based from day 0) of ``X - a`` for ``X ~ law j | X > a``, by inversion.

    ``target = u P(X > a)`` with ``u`` the uniform the continuous draw
    (:func:`~simengine.engine._rng.lognormal_truncated_tail`) inverts: ``X``
    is the ``x`` with ``S(x) = target``, so ``floor(X - a) = k`` exactly when
    ``S(a + k) >= target > S(a + k + 1)``, found by bisection on the day grid
    (:func:`_fill_grid`, ``ia = a``). Returns -1 when ``k >= horizon`` (no
    event within the simulated days). The same event as the continuous
    draw's day up to floating-point rounding at day boundaries.
    """
    if grid[c, j, ia + horizon] >= target:
        return -1
    lo = ia
    hi = ia + horizon
    while hi - lo > 1:
        mid = (lo + hi) >> 1
        if grid[c, j, mid] < target:
            hi = mid
        else:
            lo = mid
    return lo - ia


@jit
def _open_units(model, scratch, d, obase, cov_last):  # pragma: no cover
    """Play out the open units, run by run of equal (cell, stage, age).

    Run ``k`` is units ``open_group[k] .. open_group[k + 1] - 1`` (sorted by
    :func:`~simengine.engine._prepare.prepare`); unit draws come from the
    stream of its cell, ``states[obase + c]``. One call per path: the loop
    over runs is inside. The conditional conversion probability and the
    delay tails at ``a`` are computed once per run. Each unit draws its own
    conversion; a non-converter before the pipeline stage needs nothing
    more (it leaves no trace), so only converters and pipeline units draw
    their next time. As in :func:`_arrivals`, a unit entering the pipeline
    after ``cov_last`` draws no time to leave.

    The tail masses of the delay and loss laws at each run's age depend only
    on the parameter draw ``d``: with a cache (``scratch.tails`` of shape
    (draws, runs, 2), :func:`_scratch`), they are computed the first time a
    draw is met (``scratch.tails_done[d]``) and read back for every later
    path of that draw (bitwise the same values). Paths grouped by draw
    (:func:`_draw_of`) make this pay: a block of 50,000 paths of a
    1,000,000-path run over 4,000 draws meets 200 draws, 250 paths each
    (each of the 4,000 draws 12 or 13 times under the interleaved mapping).

    Day grids (paths grouped by draw, :func:`_draw_of`): a unit at the
    last step in the pipeline needs only the *day* of its next event (its
    win, or its exit when lost), so with ``scratch.grid`` built (per draw,
    on first use: :func:`_fill_grid`) that day is found by bisection of the
    survival at integer days (:func:`_grid_day`) from the very uniform the
    truncated lognormal draw would invert: the same law and, but for
    rounding at a day boundary, the same day, without the inverse normal CDF
    and the exponential. Used for runs of integral age ``a >= 1`` whose law
    has ``sigma > 0`` and tail mass ``>= 1e-290`` (the continuous draw's
    inversion range); other units draw as before.

    Dormant units (``model.dormant[d, c, s] = q > 0``, with a time to loss):
    an open unit converts with ``p S_F / (p S_F + (1 - p) ((1 - q) S_G +
    q))``; a pipeline non-converter is then lost with ``(1 - q) S_G / ((1 -
    q) S_G + q)`` (one more uniform) and else stays open; a unit that
    converts and later stops at step ``s`` stays open with ``dormant[d, c,
    s]``.
    """
    states = scratch.states
    tails = scratch.tails
    tails_done = scratch.tails_done
    entered = scratch.entered
    revenue = scratch.revenue
    source_revenue = scratch.source_revenue
    pipeline_value = scratch.pipeline_value
    pipeline_count = scratch.pipeline_count
    open_group = model.open_group
    open_cell = model.open_cell
    open_stage = model.open_stage
    open_age = model.open_age
    open_amount = model.open_amount
    cell_segment = model.cell_segment
    deal_size_mu = model.deal_size_mu
    deal_size_sigma = model.deal_size_sigma
    conversion = model.conversion
    delay_mu = model.delay_mu
    delay_sigma = model.delay_sigma
    leave_mu = model.leave_mu
    leave_sigma = model.leave_sigma
    dormant = model.dormant
    has_loss = model.has_loss
    pipe = model.pipeline_stage
    sim_days = model.sim_days
    start_offset = model.start_offset
    end_offset = model.end_offset
    S = conversion.shape[2]
    cached = tails.shape[0] > 0
    grid = scratch.grid
    n_grid = grid.shape[2]
    if n_grid > 0 and scratch.grid_draw[0] != d:
        _fill_grid(model, d, grid)
        scratch.grid_draw[0] = d
    if cached and tails_done[d] == 0:
        for k in range(open_group.shape[0] - 1):
            lo = open_group[k]
            c = open_cell[lo]
            s0 = open_stage[lo]
            tails[d, k, 0] = _tail(open_age[lo], delay_mu[d, c, s0], delay_sigma[d, c, s0])[1]
            if has_loss:
                tails[d, k, 1] = _tail(open_age[lo], leave_mu[d, c, s0], leave_sigma[d, c, s0])[1]
        tails_done[d] = 1
    for k in range(open_group.shape[0] - 1):
        lo = open_group[k]
        hi = open_group[k + 1]
        c = open_cell[lo]
        g = cell_segment[c]
        s0 = open_stage[lo]
        a = open_age[lo]
        ro = obase + c
        p = conversion[d, c, s0]
        mu = delay_mu[d, c, s0]
        sg = delay_sigma[d, c, s0]
        if cached:
            alpha, sf = _alpha(a, mu, sg), tails[d, k, 0]
        else:
            alpha, sf = _tail(a, mu, sg)
        lm = leave_mu[d, c, s0]
        ls = leave_sigma[d, c, s0]
        if has_loss:
            # competing risks: converts after F (prob p) or is lost after G (1 - p)
            if cached:
                alpha_l, sl = _alpha(a, lm, ls), tails[d, k, 1]
            else:
                alpha_l, sl = _tail(a, lm, ls)
            q = dormant[d, c, s0]
            den = p * sf + (1.0 - p) * ((1.0 - q) * sl + q)
            pc = p * sf / den if den > 0.0 else p
            p_lost = (1.0 - q) * sl / ((1.0 - q) * sl + q) if q > 0.0 else 1.0
        else:
            # never lost: a non-converter stays open for ever
            alpha_l, sl = alpha, sf
            den = 1.0 - p * (1.0 - sf)
            pc = p * sf / den if den > 0.0 else 1.0
            p_lost = 1.0
        # day grids (see above): ia >= 1 integral age, -1 when not used
        ia = -1
        last = s0 == S - 1 and s0 >= pipe
        if n_grid > 0 and last and a >= 1.0 and a == math.floor(a) and a + sim_days < n_grid:
            ia = int(a)
        use_f = ia > 0 and grid[c, 0, 0] >= 0.0 and sf >= _LOG_TAIL_MIN
        use_f = use_f and not math.isinf(alpha)
        jl = 1 if has_loss else 0
        use_l = ia > 0 and grid[c, jl, 0] >= 0.0 and sl >= _LOG_TAIL_MIN
        use_l = use_l and not math.isinf(alpha_l)
        for u in range(lo, hi):
            amt = open_amount[u]
            if s0 >= pipe:
                if np.isnan(amt):
                    amt = lognormal(states, deal_size_mu[d, c], deal_size_sigma[d, c], ro)
                _pipe(pipeline_value, pipeline_count, g, -1, amt, 1.0, cov_last)
            converts = uniform(states, ro) < pc
            if not converts:
                if s0 >= pipe:
                    if p_lost < 1.0 and uniform(states, ro) >= p_lost:
                        continue  # dormant: stays open
                    if use_l:
                        k_day = _grid_day(grid, c, jl, ia, sim_days, uniform(states, ro) * sl)
                        t = float(k_day) if k_day >= 0 else math.inf
                    else:
                        if has_loss:
                            x = _above(states, ro, lm, ls, a, alpha_l, sl)
                        else:
                            x = _above(states, ro, mu, sg, a, alpha, sf)
                        t = max(x - a, 0.0)
                    if t < sim_days:
                        _pipe(pipeline_value, pipeline_count, g, int(t), amt, -1.0, cov_last)
                continue
            if use_f:
                k_day = _grid_day(grid, c, 0, ia, sim_days, uniform(states, ro) * sf)
                t = float(k_day) if k_day >= 0 else math.inf
            else:
                t = max(_above(states, ro, mu, sg, a, alpha, sf) - a, 0.0)
            s = s0
            in_cov = s0 >= pipe
            while t < sim_days:
                st = s + 1
                dd = int(t)
                if start_offset <= dd <= end_offset:
                    entered[g, st] += 1
                if st == pipe:
                    if np.isnan(amt):
                        amt = lognormal(states, deal_size_mu[d, c], deal_size_sigma[d, c], ro)
                    if dd <= cov_last:
                        _pipe(pipeline_value, pipeline_count, g, dd, amt, 1.0, cov_last)
                        in_cov = True
                if st == S:
                    revenue[g, dd] += amt
                    if start_offset <= dd <= end_offset:
                        source_revenue[g, 0] += amt
                    if in_cov:
                        _pipe(pipeline_value, pipeline_count, g, dd, amt, -1.0, cov_last)
                    break
                s = st
                if uniform(states, ro) < conversion[d, c, s]:
                    t += lognormal(states, delay_mu[d, c, s], delay_sigma[d, c, s], ro)
                else:
                    q = dormant[d, c, s]
                    if in_cov and not (q > 0.0 and uniform(states, ro) < q):
                        t_out = t + lognormal(states, leave_mu[d, c, s], leave_sigma[d, c, s], ro)
                        if t_out < sim_days:
                            _pipe(
                                pipeline_value, pipeline_count, g, int(t_out), amt, -1.0, cov_last
                            )
                    break


@jit
def _conversion_walk(root, path, d, model, xbase, scratch):  # pragma: no cover
    """Fill ``scratch.conversion_walk[c, s, k]``: the conversion ``k + 1`` drift periods ahead.

    The logit of ``model.conversion[d, c, s]`` plus ``k + 1`` Normal(0,
    ``model.conversion_drift_sd[d]``) steps, from stream ``xbase + c S + s``
    (one per cell and step, so a change of one cell's rate leaves the
    others' walks untouched), plus period ``k``'s cohort effect: Normal(0,
    ``model.conversion_cohort_sd[d]``), one per step and period shared by
    every cell (a shock to the whole cohort), from stream
    ``xbase + C S + S + s``. The effects are drawn first, into row ``C`` of
    the walk array's step ``s`` as scratch, only when that sd is positive.
    Rates of 0 or 1 do not move.
    """
    conversion = model.conversion
    states = scratch.states
    walk = scratch.conversion_walk
    C = conversion.shape[1]
    S = conversion.shape[2]
    K = walk.shape[2]
    sd = model.conversion_drift_sd[d]
    csd = model.conversion_cohort_sd[d]
    # cohort effects u[s, k] (row C of the walk array is their scratch)
    for s in range(S):
        if csd > 0.0:
            row = xbase + C * S + S + s
            seed_stream(root, path, row, states, row)
            for k in range(K):
                walk[C, s, k] = csd * std_normal(states, row)
        else:
            for k in range(K):
                walk[C, s, k] = 0.0
    for c in range(C):
        for s in range(S):
            row = xbase + c * S + s
            p0 = conversion[d, c, s]
            if (sd <= 0.0 and csd <= 0.0) or p0 <= 0.0 or p0 >= 1.0:
                for k in range(K):
                    walk[c, s, k] = p0
                continue
            x = math.log(p0) - math.log1p(-p0)
            if sd > 0.0:
                seed_stream(root, path, row, states, row)
            for k in range(K):
                if sd > 0.0:
                    x += sd * std_normal(states, row)
                walk[c, s, k] = 1.0 / (1.0 + math.exp(-(x + walk[C, s, k])))


@jit
def _level_walk(root, path, d, model, lbase, scratch):  # pragma: no cover
    """Fill ``scratch.level_walk[e, w]`` = exp(sum of ``w + 1`` Normal(0, sd) steps).

    ``sd = model.arrival_level_sd[d, e]``, from stream ``lbase + e``.
    """
    states = scratch.states
    walk = scratch.level_walk
    for e in range(walk.shape[0]):
        sd = model.arrival_level_sd[d, e]
        if sd <= 0.0:
            for w in range(walk.shape[1]):
                walk[e, w] = 1.0
            continue
        row = lbase + e
        seed_stream(root, path, row, states, row)
        y = 0.0
        for w in range(walk.shape[1]):
            y += sd * std_normal(states, row)
            walk[e, w] = math.exp(y)


@jit_inline
def _draw_of(path, n_paths, n_draws, grouped):  # pragma: no cover
    """Return the posterior draw of path ``path`` of ``n_paths`` paths over ``n_draws`` draws.

    Grouped (``grouped`` 1, the default): ``floor(path n_draws / n_paths)``,
    so consecutive paths share a draw; a run of ``n_paths >= n_draws`` paths
    uses every draw ``floor`` or ``ceil(n_paths / n_draws)`` times, in one
    contiguous run of paths each, and a smaller run uses draws spread evenly
    over the posterior. A block of paths then meets few draws, many paths
    each, which is what makes work done once per draw pay. Interleaved (0,
    the mapping before issue 17, kept to measure against): ``path mod
    n_draws``. Either way a pure function of (path, n_paths, n_draws): the
    same for any block layout, thread or worker count.
    """
    if grouped:
        return (path * n_draws) // n_paths
    return path % n_draws


@jit_inline
def _batch_of(path, n_paths, n_draws, grouped, n_batches):  # pragma: no cover
    """Return the Monte Carlo batch (``0 .. n_batches - 1``) of path ``path``.

    Batch-means errors (:mod:`simengine.planning._runs`) are the spread of a
    statistic across batches, and they estimate the run's error given its
    posterior draws only if every batch holds every draw's paths in the
    same proportion. So a batch is a stride through each draw's paths, not
    a range of paths: with the paths ranked by (draw, order within the
    draw), path of rank ``r`` is in batch ``r mod n_batches``. Each batch
    then gets ``floor`` or ``ceil(m_d / n_batches)`` of a draw's ``m_d``
    paths (the remainders rotate from draw to draw) and the batches are
    equal to one path. Grouped (:func:`_draw_of`), the rank is the path
    index; interleaved, the ``k``-th path of draw ``d`` has rank ``k`` plus
    the paths of the draws before ``d``. A pure function of (path, n_paths,
    n_draws), like the draw.
    """
    if grouped:
        return path % n_batches
    d = path % n_draws
    before = d * (n_paths // n_draws) + min(d, n_paths % n_draws)
    return (before + path // n_draws) % n_batches


@jit
def _path(root, path, n_paths, model, scratch):  # pragma: no cover
    """Simulate path ``path`` of a run of ``n_paths`` into ``scratch`` (row G = total).

    Its posterior draw is :func:`_draw_of`'s.
    """
    states = scratch.states
    revenue = scratch.revenue
    pipeline_value = scratch.pipeline_value
    pipeline_count = scratch.pipeline_count
    entered = scratch.entered
    source_revenue = scratch.source_revenue
    conversion = model.conversion
    d = _draw_of(path, n_paths, conversion.shape[0], model.grouped_draws)
    C = conversion.shape[1]
    S = conversion.shape[2]
    G = revenue.shape[0] - 1
    per = 3 * S + 2
    revenue[:] = 0.0
    pipeline_value[:] = 0.0
    pipeline_count[:] = 0.0
    entered[:] = 0
    source_revenue[:] = 0.0
    n_weeks = (model.sim_days + 6) // 7
    # last day whose open pipeline is reported (the last week end, else the
    # day before the start); pipeline changes after it are never read
    week_days = model.week_days
    n_w = week_days.shape[0]
    cov_last = week_days[n_w - 1] if n_w > 0 else model.start_offset - 1
    xbase = C * S * per + C  # streams of the drift ahead (after the open units')
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
            _arrivals(model, scratch, d, c, e, g, base, n_weeks, cov_last, level_walk_on)
    obase = C * S * per
    n_groups = model.open_group.shape[0] - 1
    if n_groups > 0:
        for c in range(C):
            seed_stream(root, path, obase + c, states, obase + c)
        _open_units(model, scratch, d, obase, cov_last)
    for g in range(G):
        for i in range(revenue.shape[1]):
            revenue[G, i] += revenue[g, i]
        for i in range(pipeline_value.shape[1]):
            pipeline_value[G, i] += pipeline_value[g, i]
            pipeline_count[G, i] += pipeline_count[g, i]
        for i in range(entered.shape[1]):
            entered[G, i] += entered[g, i]
        for i in range(source_revenue.shape[1]):
            source_revenue[G, i] += source_revenue[g, i]


@jit
def _metrics(
    model, scratch, scalars, time_to_target, cum_revenue, week_coverage
):  # pragma: no cover
    """Per-path metrics from the scratch arrays.

    ``scalars[g, k]``: revenue, attainment, coverage at period start, won
    deals, entered per stage, then revenue in the period by source (from the
    open units, then from new units per entry stage; see
    :func:`simengine.engine.blocks.scalar_names`); ``time_to_target[g]`` day index from start
    when the target is reached (-1 if never); ``cum_revenue[g, i]``
    cumulative revenue from the start to day ``start_offset + i``;
    ``week_coverage[g, k]`` coverage at week end ``k``.
    """
    revenue = scratch.revenue
    pipeline_value = scratch.pipeline_value
    pipeline_count = scratch.pipeline_count
    entered = scratch.entered
    source_revenue = scratch.source_revenue
    targets = model.targets
    start_offset = model.start_offset
    end_offset = model.end_offset
    week_days = model.week_days
    G1 = revenue.shape[0]
    S1 = entered.shape[1]
    nd = cum_revenue.shape[1]
    for g in range(G1):
        tgt = targets[g]
        c_sum = 0.0
        reached = -1
        r_period = 0.0
        for i in range(nd):
            c_sum += revenue[g, start_offset + i]
            cum_revenue[g, i] = c_sum
            if reached < 0 and c_sum >= tgt:
                reached = i
            if start_offset + i == end_offset:
                r_period = c_sum
        time_to_target[g] = reached
        scalars[g, 0] = r_period
        scalars[g, 1] = r_period / tgt
        scalars[g, 3] = entered[g, S1 - 1]
        for k in range(S1):
            scalars[g, 4 + k] = entered[g, k]
        for k in range(source_revenue.shape[1]):
            scalars[g, 4 + S1 + k] = source_revenue[g, k]
        # open pipeline at the end of day w: prefix sums of the entry/exit diffs
        # through index w + 1 (0 when no unit is open, so no rounding residue)
        v = 0.0
        cnt = 0.0
        k = 0
        n_w = week_days.shape[0]
        for i in range(pipeline_value.shape[1]):
            v += pipeline_value[g, i]
            cnt += pipeline_count[g, i]
            if i == start_offset:
                scalars[g, 2] = (v if cnt > 0.5 else 0.0) / tgt
            while k < n_w and week_days[k] + 1 == i:
                week_coverage[g, k] = (v if cnt > 0.5 else 0.0) / tgt
                k += 1
            if i >= start_offset and k >= n_w:
                break


@jit
def _scratch(model, n_streams, tail_cache_max, day_grids):  # pragma: no cover
    """Per-thread :class:`~simengine.engine._interface.PathScratch` (reused from path to path).

    With ``day_grids`` (the kernels pass it with paths grouped by draw and
    ``n_paths >= GRID_MIN_PATHS_PER_DRAW * n_draws``) and open units at the
    last step in the pipeline, ``grid`` holds one draw's day grids
    (:func:`_fill_grid`; cells x 2 x days through the oldest such unit's
    age plus the horizon, at most ``GRID_MAX_ENTRIES``), else it is empty
    (shape (0, 2, 0)) and those units draw their days from the continuous
    laws.

    ``tails``/``tails_done`` are :func:`_open_units`' cache of tail masses
    per (draw, run of open units), filled on first use; it is left empty
    (shape (0, 0, 2)) when it would hold more than ``tail_cache_max`` (draw,
    run) pairs (the kernels pass ``TAIL_CACHE_MAX_ENTRIES``, 128 MiB), and
    the tails are then computed path by path.
    """
    conversion = model.conversion
    sim_days = model.sim_days
    G1 = model.targets.shape[0]
    S1 = conversion.shape[2] + 1
    n_draws = conversion.shape[0]
    n_runs = model.open_group.shape[0] - 1
    if n_runs > 0 and n_draws * n_runs <= tail_cache_max:
        tails = np.empty((n_draws, n_runs, 2))
    else:
        tails = np.empty((0, 0, 2))
    S = conversion.shape[2]
    max_age = -1
    if day_grids and model.pipeline_stage <= S - 1:
        for u in range(model.open_stage.shape[0]):
            a = model.open_age[u]
            if model.open_stage[u] == S - 1 and a >= 1.0 and a == math.floor(a):
                max_age = max(max_age, int(a))
    n_grid = max_age + sim_days + 1 if max_age >= 1 else 0
    if conversion.shape[1] * 2 * n_grid > GRID_MAX_ENTRIES:
        n_grid = 0
    grid = np.empty((conversion.shape[1] if n_grid > 0 else 0, 2, n_grid))
    return PathScratch(
        np.zeros((n_streams, 4), np.uint64),
        np.zeros((G1, sim_days)),
        np.zeros((G1, sim_days + 1)),
        np.zeros((G1, sim_days + 1)),
        np.zeros((G1, S1), np.int64),
        np.zeros((G1, S1)),
        np.zeros(S1, np.int64),
        tails,
        np.zeros(tails.shape[0], np.uint8),
        np.zeros((conversion.shape[1] + 1, conversion.shape[2], model.n_drift)),
        np.ones((conversion.shape[2], (sim_days + 6) // 7)),
        grid,
        np.full(1, -1, np.int64),
    )


@jit
def _one_path(  # pragma: no cover
    root, path, n_paths, model, scratch, scalars, time_to_target, cum_revenue, week_coverage
):
    """Simulate path ``path`` of a run of ``n_paths``; write its metrics (:func:`_metrics`)."""
    _path(root, path, n_paths, model, scratch)
    _metrics(model, scratch, scalars, time_to_target, cum_revenue, week_coverage)


@jit
def paths_kernel(  # pragma: no cover
    root,
    first,
    n_paths,
    model,
    n_streams,
    out_scalars,
    out_time_to_target,
    out_cum_revenue,
    out_week_coverage,
):
    """Simulate paths ``first .. first + n - 1`` of a run of ``n_paths``; metrics into the outputs.

    ``model`` is the :class:`~simengine.engine._interface.KernelModel` of a
    prepared run (:func:`~simengine.engine._interface.kernel_model`); the
    open units are sorted by (cell, stage, age) and ``open_group`` holds the
    start of each run of equal (cell, stage, age), then their count.
    """
    grids = model.grouped_draws == 1 and (
        n_paths >= GRID_MIN_PATHS_PER_DRAW * model.conversion.shape[0]
    )
    scratch = _scratch(model, n_streams, TAIL_CACHE_MAX_ENTRIES, grids)
    for q in range(out_scalars.shape[0]):
        _one_path(
            root,
            first + q,
            n_paths,
            model,
            scratch,
            out_scalars[q],
            out_time_to_target[q],
            out_cum_revenue[q],
            out_week_coverage[q],
        )


@jit
def block_kernel(  # pragma: no cover
    root,
    first,
    n,
    n_paths,
    model,
    n_streams,
    scal_hist,
    welford,
    hit,
    within,
    ttt_hist,
    cum_hist,
    cum_sum,
    cum_comp,
    wcov_hist,
    batch_hist,
    batch_welford,
    batch_hit,
    batch_ttt_hist,
):
    """Simulate paths ``first .. first + n - 1`` of a run of ``n_paths``; reduce into sketches.

    ``model`` as in :func:`paths_kernel`; the reduction arrays are the
    fields of :class:`~simengine.engine.blocks.BlockSummary`. All are filled
    from zero in path order, so a block's result depends only on (seed,
    first, n, n_paths) and the inputs. The ``batch_*`` arrays (leading axis
    the run's batches, length 0 for none) also reduce each path's revenue,
    hit and time to target into its batch (:func:`_batch_of`).
    """
    G1 = model.targets.shape[0]
    K = 4 + 2 * (model.conversion.shape[2] + 1)
    nd = model.sim_days - model.start_offset
    W = model.week_days.shape[0]
    grids = model.grouped_draws == 1 and (
        n_paths >= GRID_MIN_PATHS_PER_DRAW * model.conversion.shape[0]
    )
    scratch = _scratch(model, n_streams, TAIL_CACHE_MAX_ENTRIES, grids)
    scalars = np.zeros((G1, K))
    time_to_target = np.zeros(G1, np.int64)
    cum_revenue = np.zeros((G1, nd))
    week_coverage = np.zeros((G1, W))
    n_batches = batch_hist.shape[0]
    for q in range(n):
        _one_path(
            root,
            first + q,
            n_paths,
            model,
            scratch,
            scalars,
            time_to_target,
            cum_revenue,
            week_coverage,
        )
        cnt = q + 1.0
        for g in range(G1):
            for k in range(K):
                x = scalars[g, k]
                scal_hist[g, k, bin_index(x)] += 1
                delta = x - welford[g, k, 1]
                welford[g, k, 1] += delta / cnt
                welford[g, k, 2] += delta * (x - welford[g, k, 1])
                welford[g, k, 0] = cnt
            att = scalars[g, 1]
            if att >= 1.0:
                hit[g] += 1
            if att >= 0.95:
                within[g] += 1
            if time_to_target[g] >= 0:
                ttt_hist[g, time_to_target[g]] += 1
            else:
                ttt_hist[g, nd] += 1
            prev = -1.0
            b = 0
            for i in range(nd):
                v = cum_revenue[g, i]
                if v != prev:
                    b = bin_index(v)
                    prev = v
                cum_hist[g, i, b] += 1
                y = v - cum_comp[g, i]
                t = cum_sum[g, i] + y
                cum_comp[g, i] = (t - cum_sum[g, i]) - y
                cum_sum[g, i] = t
            for k in range(W):
                wcov_hist[g, k, bin_index(week_coverage[g, k])] += 1
        if n_batches > 0:
            bb = _batch_of(
                first + q, n_paths, model.conversion.shape[0], model.grouped_draws, n_batches
            )
            for g in range(G1):
                x = scalars[g, 0]
                batch_hist[bb, g, bin_index(x)] += 1
                cnt = batch_welford[bb, g, 0] + 1.0
                delta = x - batch_welford[bb, g, 1]
                batch_welford[bb, g, 1] += delta / cnt
                batch_welford[bb, g, 2] += delta * (x - batch_welford[bb, g, 1])
                batch_welford[bb, g, 0] = cnt
                if scalars[g, 1] >= 1.0:
                    batch_hit[bb, g] += 1
                if time_to_target[g] >= 0:
                    batch_ttt_hist[bb, g, time_to_target[g]] += 1
                else:
                    batch_ttt_hist[bb, g, nd] += 1

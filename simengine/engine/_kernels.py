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
  day it wins.

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
``C S (3S + 2) + C + C S + e``. These last are seeded and drawn only when the
parameters carry positive innovation sds, and a dormant unit's extra
uniform only when its share is positive, so without them every stream
draws what it drew before. A week's unit days are drawn from the conversion
stream of step ``e`` (their number depends only on ``p_e``), so a change of a
later step's rate leaves arrivals and first conversions untouched. A change
of what the streams draw changes paths' numbers, not their law; such changes
are listed in CHANGELOG.md. The streams live in one table per path
(``states``, one row per id) and the variates take the table and the row
(:mod:`~simengine.engine._rng`).
"""

from __future__ import annotations

import math

import numpy as np

from simengine.engine import _rng
from simengine.engine._jit import jit
from simengine.engine._sketch import bin_index

__all__ = ["TAIL_CACHE_MAX_ENTRIES", "block_kernel", "paths_kernel"]

TAIL_CACHE_MAX_ENTRIES = 1 << 23
"""Largest (draw, run of open units) table a thread caches tail masses in (128 MiB)."""

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


@jit
def _pipe(pdv, pdc, g, day, amt, sign, cov_last):  # pragma: no cover
    """Add a pipeline entry (``sign`` 1) or exit (-1) on ``day`` (index ``day + 1``).

    Changes after day ``cov_last`` are never read (:func:`_metrics` stops at
    the last week end), so they are not written.
    """
    if day <= cov_last:
        pdv[g, day + 1] += sign * amt
        pdc[g, day + 1] += sign


@jit
def _arrivals(  # pragma: no cover
    m,
    tr,
    alpha,
    n_weeks,
    c,
    e,
    g,
    d,
    base,
    states,
    conv,
    dmu,
    dsig,
    amu,
    asig,
    lmu,
    lsig,
    pipe,
    sim_days,
    start_off,
    end_off,
    cov_last,
    rev,
    pdv,
    pdc,
    ent,
    counts,
    convk,
    has_drift,
    drift_days,
    lvl,
    has_lvl,
    dorm,
):
    """Play out the new units of cell ``c`` at entry stage ``e``, week by week.

    Week ``w`` (days ``d0 = 7w .. d0 + 6``) gets ``nw`` units: Poisson with
    mean ``m exp(tr w)``, times a Gamma(1/alpha, alpha) factor when ``alpha >
    0``, from the arrival stream ``states[base]``. One call per (cell, entry
    stage): the loop over weeks is inside, so the arrays are passed once.
    A week's cohort is thinned step by step with one binomial per step; only the
    units whose day matters draw it (uniform over the week, from the step-``e``
    conversion stream): units that take the first step, and every unit when
    ``e`` is at or past the pipeline stage. Units that stop at ``e`` before
    the pipeline only count as entering ``e`` in the period: all of them when
    the week lies inside it, else a Binomial(n, days inside / 7).

    Pipeline value is read only through day ``cov_last`` (the last week end
    whose coverage is reported): a unit entering the pipeline later draws
    its amount (every pipeline unit does, in the same order, so a change of
    a later step's rate leaves the amounts of the others untouched) but no
    time to leave.

    A week that starts after the period's end (``7 w > end_off``) can only
    change revenue after the period (the fan and time to target): its units
    enter no stage in the period and no reported pipeline. So only its
    winners are played (units ``j < counts[S]``, who come first in every
    stream); the others draw nothing. Which units draw depends only on the
    binomial counts, never on the draws themselves, so the law is unchanged.

    Drift ahead: with ``has_lvl`` week ``w``'s mean is also multiplied by
    ``lvl[e, w]`` (the path's arrival level walk); with ``has_drift`` the
    week's cohort converts, at every step, with ``convk[c, s, 7 w //
    drift_days]`` (the path's conversion walk, drift periods after the as-of
    date) instead of ``conv[d, c, s]``. A pipeline unit that stops at step
    ``s`` stays open for good with probability ``dorm[d, c, s]`` (a uniform
    from its leaving stream, drawn only when that share is positive) and
    otherwise leaves after a draw from the leaving law.
    """
    S = conv.shape[2]
    for w in range(n_weeks):
        mw = m * math.exp(tr * w) if tr != 0.0 else m
        if has_lvl:
            mw *= lvl[e, w]
        if alpha > 0.0:
            mw *= gamma(states, 1.0 / alpha, base) * alpha
        nw = poisson(states, mw, base) if mw > 0.0 else 0
        if nw == 0:
            continue
        d0 = 7 * w
        post = d0 > end_off  # only this week's winners can matter (see above)
        counts[e] = nw
        kd = (7 * w) // drift_days
        for s in range(e, S):
            k = counts[s]
            p = convk[c, s, kd] if has_drift else conv[d, c, s]
            if k == 0 or p <= 0.0:
                counts[s + 1] = 0
            elif p >= 1.0:
                counts[s + 1] = k
            else:
                counts[s + 1] = binomial(states, k, p, base + 1 + s)
        r_day = base + 1 + e
        lo = max(start_off, d0)
        hi = min(end_off, d0 + 6, sim_days - 1)
        n_in = hi - lo + 1
        n_conv = counts[e + 1]
        mu_a = amu[d, c]
        sg_a = asig[d, c]
        r_amt = base + 1 + 3 * S
        if e < pipe:
            n_stop = nw - n_conv
            if n_stop > 0 and n_in > 0:
                if n_in >= 7:
                    ent[g, e] += n_stop
                else:
                    ent[g, e] += binomial(states, n_stop, n_in / 7.0, r_day)
        elif not post:
            r_leave = base + 1 + 2 * S + e
            for _ in range(n_conv, nw):
                day = d0 + min(int(7.0 * uniform(states, r_day)), 6)
                if day >= sim_days:
                    continue
                if start_off <= day <= end_off:
                    ent[g, e] += 1
                amt = lognormal(states, mu_a, sg_a, r_amt)
                if day > cov_last:
                    continue
                _pipe(pdv, pdc, g, day, amt, 1.0, cov_last)
                q = dorm[d, c, e]
                if q > 0.0 and uniform(states, r_leave) < q:
                    continue  # dormant: stays open
                t_out = day + lognormal(states, lmu[d, c, e], lsig[d, c, e], r_leave)
                if t_out < sim_days:
                    _pipe(pdv, pdc, g, int(t_out), amt, -1.0, cov_last)
        reached = S
        for j in range(counts[S] if post else n_conv):
            while counts[reached] <= j:
                reached -= 1
            day = d0 + min(int(7.0 * uniform(states, r_day)), 6)
            if day >= sim_days:
                continue
            if start_off <= day <= end_off:
                ent[g, e] += 1
            t = float(day)
            amt = 0.0
            in_cov = False  # entered the pipeline by day cov_last
            if e >= pipe:
                amt = lognormal(states, mu_a, sg_a, r_amt)
                if day <= cov_last:
                    _pipe(pdv, pdc, g, day, amt, 1.0, cov_last)
                    in_cov = True
            alive = True
            for s in range(e, reached):
                t += lognormal(states, dmu[d, c, s], dsig[d, c, s], base + 1 + S + s)
                if t >= sim_days:
                    alive = False
                    break
                dd = int(t)
                st = s + 1
                if start_off <= dd <= end_off:
                    ent[g, st] += 1
                if st == pipe:
                    amt = lognormal(states, mu_a, sg_a, r_amt)
                    if dd <= cov_last:
                        _pipe(pdv, pdc, g, dd, amt, 1.0, cov_last)
                        in_cov = True
                if st == S:
                    rev[g, dd] += amt
                    if in_cov:
                        _pipe(pdv, pdc, g, dd, amt, -1.0, cov_last)
            q = dorm[d, c, reached] if reached < S else 0.0
            if q > 0.0 and alive and in_cov and uniform(states, base + 1 + 2 * S + reached) < q:
                continue  # dormant: stays open
            if alive and in_cov and reached < S:
                t_out = t + lognormal(
                    states, lmu[d, c, reached], lsig[d, c, reached], base + 1 + 2 * S + reached
                )
                if t_out < sim_days:
                    _pipe(pdv, pdc, g, int(t_out), amt, -1.0, cov_last)


@jit
def _open_units(  # pragma: no cover
    ogroup,
    ocell,
    ostage,
    oage,
    oamt,
    cseg,
    d,
    states,
    obase,
    conv,
    dmu,
    dsig,
    amu,
    asig,
    lmu,
    lsig,
    has_loss,
    pipe,
    sim_days,
    start_off,
    end_off,
    cov_last,
    rev,
    pdv,
    pdc,
    ent,
    tails,
    tails_done,
    dorm,
):
    """Play out the open units, run by run of equal (cell, stage, age).

    Run ``k`` is units ``ogroup[k] .. ogroup[k + 1] - 1`` (sorted by
    :func:`~simengine.engine._prepare.prepare`); unit draws come from the
    stream of its cell, ``states[obase + c]``. One call per path: the loop
    over runs is inside, so the arrays are passed once. The conditional
    conversion probability and the delay tails at ``a`` are computed once
    per run. Each unit draws its own conversion; a
    non-converter before the pipeline stage needs nothing more (it leaves no
    trace), so only converters and pipeline units draw their next time. As
    in :func:`_arrivals`, a unit entering the pipeline after ``cov_last`` draws no
    time to leave.

    The tail masses of the delay and loss laws at each run's age depend only
    on the parameter draw ``d``: with a cache (``tails`` of shape (draws,
    runs, 2), :func:`_scratch`), they are computed the first time a draw is
    met (``tails_done[d]``) and read back for every later path of that draw
    (bitwise the same values; a block of 50,000 paths meets each of 4,000
    draws 12 or 13 times).

    Dormant units (``dorm[d, c, s] = q > 0``, with a time to loss): an open
    unit converts with ``p S_F / (p S_F + (1 - p) ((1 - q) S_G + q))``; a
    pipeline non-converter is then lost with ``(1 - q) S_G / ((1 - q) S_G +
    q)`` (one more uniform) and else stays open; a unit that converts and
    later stops at step ``s`` stays open with ``dorm[d, c, s]``.
    """
    S = conv.shape[2]
    cached = tails.shape[0] > 0
    if cached and tails_done[d] == 0:
        for k in range(ogroup.shape[0] - 1):
            lo = ogroup[k]
            c = ocell[lo]
            s0 = ostage[lo]
            tails[d, k, 0] = _tail(oage[lo], dmu[d, c, s0], dsig[d, c, s0])[1]
            if has_loss:
                tails[d, k, 1] = _tail(oage[lo], lmu[d, c, s0], lsig[d, c, s0])[1]
        tails_done[d] = 1
    for k in range(ogroup.shape[0] - 1):
        lo = ogroup[k]
        hi = ogroup[k + 1]
        c = ocell[lo]
        g = cseg[c]
        s0 = ostage[lo]
        a = oage[lo]
        ro = obase + c
        p = conv[d, c, s0]
        mu = dmu[d, c, s0]
        sg = dsig[d, c, s0]
        if cached:
            alpha, sf = _alpha(a, mu, sg), tails[d, k, 0]
        else:
            alpha, sf = _tail(a, mu, sg)
        lm = lmu[d, c, s0]
        ls = lsig[d, c, s0]
        if has_loss:
            # competing risks: converts after F (prob p) or is lost after G (1 - p)
            if cached:
                alpha_l, sl = _alpha(a, lm, ls), tails[d, k, 1]
            else:
                alpha_l, sl = _tail(a, lm, ls)
            q = dorm[d, c, s0]
            den = p * sf + (1.0 - p) * ((1.0 - q) * sl + q)
            pc = p * sf / den if den > 0.0 else p
            p_lost = (1.0 - q) * sl / ((1.0 - q) * sl + q) if q > 0.0 else 1.0
        else:
            # never lost: a non-converter stays open for ever
            alpha_l, sl = alpha, sf
            den = 1.0 - p * (1.0 - sf)
            pc = p * sf / den if den > 0.0 else 1.0
            p_lost = 1.0
        for u in range(lo, hi):
            amt = oamt[u]
            if s0 >= pipe:
                if np.isnan(amt):
                    amt = lognormal(states, amu[d, c], asig[d, c], ro)
                _pipe(pdv, pdc, g, -1, amt, 1.0, cov_last)
            converts = uniform(states, ro) < pc
            if not converts:
                if s0 >= pipe:
                    if p_lost < 1.0 and uniform(states, ro) >= p_lost:
                        continue  # dormant: stays open
                    if has_loss:
                        x = _above(states, ro, lm, ls, a, alpha_l, sl)
                    else:
                        x = _above(states, ro, mu, sg, a, alpha, sf)
                    t = max(x - a, 0.0)
                    if t < sim_days:
                        _pipe(pdv, pdc, g, int(t), amt, -1.0, cov_last)
                continue
            t = max(_above(states, ro, mu, sg, a, alpha, sf) - a, 0.0)
            s = s0
            in_cov = s0 >= pipe
            while t < sim_days:
                st = s + 1
                dd = int(t)
                if start_off <= dd <= end_off:
                    ent[g, st] += 1
                if st == pipe:
                    if np.isnan(amt):
                        amt = lognormal(states, amu[d, c], asig[d, c], ro)
                    if dd <= cov_last:
                        _pipe(pdv, pdc, g, dd, amt, 1.0, cov_last)
                        in_cov = True
                if st == S:
                    rev[g, dd] += amt
                    if in_cov:
                        _pipe(pdv, pdc, g, dd, amt, -1.0, cov_last)
                    break
                s = st
                if uniform(states, ro) < conv[d, c, s]:
                    t += lognormal(states, dmu[d, c, s], dsig[d, c, s], ro)
                else:
                    q = dorm[d, c, s]
                    if in_cov and not (q > 0.0 and uniform(states, ro) < q):
                        t_out = t + lognormal(states, lmu[d, c, s], lsig[d, c, s], ro)
                        if t_out < sim_days:
                            _pipe(pdv, pdc, g, int(t_out), amt, -1.0, cov_last)
                    break


@jit
def _conversion_walk(root, path, d, conv, dsd, xbase, states, convk):  # pragma: no cover
    """Fill ``convk[c, s, k]``: the path's conversion ``k + 1`` drift periods ahead.

    The logit of ``conv[d, c, s]`` plus ``k + 1`` Normal(0, ``dsd[d]``)
    steps, from stream ``xbase + c S + s`` (one per cell and step, so a
    change of one cell's rate leaves the others' walks untouched). Rates of
    0 or 1 do not move.
    """
    C = conv.shape[1]
    S = conv.shape[2]
    sd = dsd[d]
    for c in range(C):
        for s in range(S):
            row = xbase + c * S + s
            p0 = conv[d, c, s]
            if sd <= 0.0 or p0 <= 0.0 or p0 >= 1.0:
                for k in range(convk.shape[2]):
                    convk[c, s, k] = p0
                continue
            seed_stream(root, path, row, states, row)
            x = math.log(p0) - math.log1p(-p0)
            for k in range(convk.shape[2]):
                x += sd * std_normal(states, row)
                convk[c, s, k] = 1.0 / (1.0 + math.exp(-x))


@jit
def _level_walk(root, path, d, lsd, lbase, states, lvl):  # pragma: no cover
    """Fill ``lvl[e, w] = exp(sum of w + 1 Normal(0, lsd[d, e]) steps)``, stream ``lbase + e``."""
    for e in range(lvl.shape[0]):
        sd = lsd[d, e]
        if sd <= 0.0:
            for w in range(lvl.shape[1]):
                lvl[e, w] = 1.0
            continue
        row = lbase + e
        seed_stream(root, path, row, states, row)
        y = 0.0
        for w in range(lvl.shape[1]):
            y += sd * std_normal(states, row)
            lvl[e, w] = math.exp(y)


@jit
def _path(root, path, model, scratch):  # pragma: no cover
    """Simulate one path into per-segment scratch arrays (row G = total)."""
    (
        conv,
        dmu,
        dsig,
        rate,
        disp,
        trend,
        amu,
        asig,
        lmu,
        lsig,
        has_loss,
        cseg,
        active,
        ocell,
        ostage,
        oage,
        oamt,
        pipe,
        sim_days,
        start_off,
        end_off,
        _week_days,
        _targets,
        ogroup,
        ahead,
    ) = model
    dorm, _has_dorm, dsd, has_drift, drift_days, _n_drift, lsd, has_level, level_on = ahead
    states, rev, pdv, pdc, ent, counts, tails, tails_done, convk, lvl = scratch
    d = path % conv.shape[0]
    C = conv.shape[1]
    S = conv.shape[2]
    G = rev.shape[0] - 1
    per = 3 * S + 2
    rev[:] = 0.0
    pdv[:] = 0.0
    pdc[:] = 0.0
    ent[:] = 0
    n_weeks = (sim_days + 6) // 7
    # last day whose open pipeline is reported (the last week end, else the
    # day before the start); pipeline changes after it are never read
    n_w = _week_days.shape[0]
    cov_last = _week_days[n_w - 1] if n_w > 0 else start_off - 1
    xbase = C * S * per + C  # streams of the drift ahead (after the open units')
    if has_drift:
        _conversion_walk(root, path, d, conv, dsd, xbase, states, convk)
    if has_level:
        _level_walk(root, path, d, lsd, xbase + C * S, states, lvl)
    for c in range(C):
        g = cseg[c]
        for e in range(S):
            if active[c, e] == 0:
                continue
            base = (c * S + e) * per
            for k in range(per):
                seed_stream(root, path, base + k, states, base + k)
            m = rate[d, c, e]
            if m <= 0.0:
                continue
            lvl_on = has_level == 1 and level_on[c, e] == 1
            _arrivals(
                m,
                trend[d, c, e],
                disp[d, c, e],
                n_weeks,
                c,
                e,
                g,
                d,
                base,
                states,
                conv,
                dmu,
                dsig,
                amu,
                asig,
                lmu,
                lsig,
                pipe,
                sim_days,
                start_off,
                end_off,
                cov_last,
                rev,
                pdv,
                pdc,
                ent,
                counts,
                convk,
                has_drift,
                drift_days,
                lvl,
                lvl_on,
                dorm,
            )
    obase = C * S * per
    n_groups = ogroup.shape[0] - 1
    if n_groups > 0:
        for c in range(C):
            seed_stream(root, path, obase + c, states, obase + c)
        _open_units(
            ogroup,
            ocell,
            ostage,
            oage,
            oamt,
            cseg,
            d,
            states,
            obase,
            conv,
            dmu,
            dsig,
            amu,
            asig,
            lmu,
            lsig,
            has_loss,
            pipe,
            sim_days,
            start_off,
            end_off,
            cov_last,
            rev,
            pdv,
            pdc,
            ent,
            tails,
            tails_done,
            dorm,
        )
    for g in range(G):
        for i in range(rev.shape[1]):
            rev[G, i] += rev[g, i]
        for i in range(pdv.shape[1]):
            pdv[G, i] += pdv[g, i]
            pdc[G, i] += pdc[g, i]
        for i in range(ent.shape[1]):
            ent[G, i] += ent[g, i]


@jit
def _metrics(  # pragma: no cover
    rev,
    pdv,
    pdc,
    ent,
    targets,
    start_off,
    end_off,
    week_days,
    scal,
    ttt,
    cum,
    wcov,
):
    """Per-path metrics from the scratch arrays.

    ``scal[g, k]``: revenue, attainment, coverage at period start, won deals,
    entered per stage; ``ttt[g]`` day index from start when the target is
    reached (-1 if never); ``cum[g, i]`` cumulative revenue from the start to
    day ``start_off + i``; ``wcov[g, k]`` coverage at week end ``k``.
    """
    G1 = rev.shape[0]
    S1 = ent.shape[1]
    nd = cum.shape[1]
    for g in range(G1):
        tgt = targets[g]
        c_sum = 0.0
        reached = -1
        r_period = 0.0
        for i in range(nd):
            c_sum += rev[g, start_off + i]
            cum[g, i] = c_sum
            if reached < 0 and c_sum >= tgt:
                reached = i
            if start_off + i == end_off:
                r_period = c_sum
        ttt[g] = reached
        scal[g, 0] = r_period
        scal[g, 1] = r_period / tgt
        scal[g, 3] = ent[g, S1 - 1]
        for k in range(S1):
            scal[g, 4 + k] = ent[g, k]
        # open pipeline at the end of day w: prefix sums of the entry/exit diffs
        # through index w + 1 (0 when no unit is open, so no rounding residue)
        v = 0.0
        cnt = 0.0
        k = 0
        n_w = week_days.shape[0]
        for i in range(pdv.shape[1]):
            v += pdv[g, i]
            cnt += pdc[g, i]
            if i == start_off:
                scal[g, 2] = (v if cnt > 0.5 else 0.0) / tgt
            while k < n_w and week_days[k] + 1 == i:
                wcov[g, k] = (v if cnt > 0.5 else 0.0) / tgt
                k += 1
            if i >= start_off and k >= n_w:
                break


@jit
def _scratch(model, n_streams, tail_cache_max):  # pragma: no cover
    """Per-thread scratch arrays of :func:`_path` (reused from path to path).

    The last two are :func:`_open_units`' cache of tail masses per (draw,
    run of open units), filled on first use; it is left empty (shape (0, 0,
    2)) when it would hold more than ``tail_cache_max`` (draw, run) pairs
    (the kernels pass ``TAIL_CACHE_MAX_ENTRIES``, 128 MiB), and the tails
    are then computed path by path.
    """
    conv, sim_days, targets, ogroup = model[0], model[18], model[22], model[23]
    n_drift = model[24][5]
    G1 = targets.shape[0]
    S1 = conv.shape[2] + 1
    n_draws = conv.shape[0]
    n_runs = ogroup.shape[0] - 1
    if n_runs > 0 and n_draws * n_runs <= tail_cache_max:
        tails = np.empty((n_draws, n_runs, 2))
    else:
        tails = np.empty((0, 0, 2))
    return (
        np.zeros((n_streams, 4), np.uint64),  # stream states
        np.zeros((G1, sim_days)),  # revenue by day
        np.zeros((G1, sim_days + 1)),  # pipeline value diffs (index day + 1)
        np.zeros((G1, sim_days + 1)),  # pipeline count diffs
        np.zeros((G1, S1), np.int64),  # entered in the period, per stage
        np.zeros(S1, np.int64),  # cohort counts per stage
        tails,  # tail masses of the open units' runs, per draw
        np.zeros(tails.shape[0], np.uint8),  # which draws' tails are filled
        np.zeros((conv.shape[1], conv.shape[2], n_drift)),  # conversion walk ahead
        np.ones((conv.shape[2], (sim_days + 6) // 7)),  # arrival level walk ahead
    )


@jit
def _one_path(root, path, model, scratch, scal, ttt, cum, wcov):  # pragma: no cover
    """Simulate path ``path`` and write its metrics (see :func:`_metrics`)."""
    _path(root, path, model, scratch)
    _metrics(
        scratch[1],
        scratch[2],
        scratch[3],
        scratch[4],
        model[22],
        model[19],
        model[20],
        model[21],
        scal,
        ttt,
        cum,
        wcov,
    )


@jit
def paths_kernel(  # pragma: no cover
    root, first, model, n_streams, out_scal, out_ttt, out_cum, out_wcov
):
    """Simulate paths ``first .. first + n - 1``; per-path metrics into the outputs.

    ``model`` is the tuple built by :func:`simengine.engine.blocks._args`:
    ``(conversion, delay_mu, delay_sigma, arrival_rate, arrival_dispersion,
    arrival_trend, deal_size_mu, deal_size_sigma, leave_mu, leave_sigma,
    has_loss, cell_segment, entry_active, open_cell, open_stage, open_age,
    open_amount, pipeline_stage, sim_days, start_off, end_off, week_days,
    targets, open_group, ahead)`` with ``ahead = (dormant, has_dormant,
    conv_drift_sd, has_drift, drift_days, n_drift, level_sd, has_level,
    level_on)``; the open units are sorted by (cell, stage, age)
    and ``open_group`` holds the start of each run of equal (cell, stage,
    age), then their count.
    """
    scratch = _scratch(model, n_streams, TAIL_CACHE_MAX_ENTRIES)
    for q in range(out_scal.shape[0]):
        _one_path(root, first + q, model, scratch, out_scal[q], out_ttt[q], out_cum[q], out_wcov[q])


@jit
def block_kernel(  # pragma: no cover
    root,
    first,
    n,
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
):
    """Simulate paths ``first .. first + n - 1`` and reduce them into the sketches.

    ``model`` as in :func:`paths_kernel`. All reduction arrays are filled from
    zero in path order, so a block's result depends only on (seed, first, n)
    and the inputs.
    """
    conv, sim_days, start_off, week_days, targets = (
        model[0],
        model[18],
        model[19],
        model[21],
        model[22],
    )
    G1 = targets.shape[0]
    K = 4 + conv.shape[2] + 1
    nd = sim_days - start_off
    W = week_days.shape[0]
    scratch = _scratch(model, n_streams, TAIL_CACHE_MAX_ENTRIES)
    scal = np.zeros((G1, K))
    ttt = np.zeros(G1, np.int64)
    cum = np.zeros((G1, nd))
    wcov = np.zeros((G1, W))
    for q in range(n):
        _one_path(root, first + q, model, scratch, scal, ttt, cum, wcov)
        cnt = q + 1.0
        for g in range(G1):
            for k in range(K):
                x = scal[g, k]
                scal_hist[g, k, bin_index(x)] += 1
                delta = x - welford[g, k, 1]
                welford[g, k, 1] += delta / cnt
                welford[g, k, 2] += delta * (x - welford[g, k, 1])
                welford[g, k, 0] = cnt
            att = scal[g, 1]
            if att >= 1.0:
                hit[g] += 1
            if att >= 0.95:
                within[g] += 1
            if ttt[g] >= 0:
                ttt_hist[g, ttt[g]] += 1
            else:
                ttt_hist[g, nd] += 1
            prev = -1.0
            b = 0
            for i in range(nd):
                v = cum[g, i]
                if v != prev:
                    b = bin_index(v)
                    prev = v
                cum_hist[g, i, b] += 1
                y = v - cum_comp[g, i]
                t = cum_sum[g, i] + y
                cum_comp[g, i] = (t - cum_sum[g, i]) - y
                cum_sum[g, i] = t
            for k in range(W):
                wcov_hist[g, k, bin_index(wcov[g, k])] += 1

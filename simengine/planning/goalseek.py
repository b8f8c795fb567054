"""Probabilistic goal seek: the arrivals needed for P(hit) >= q.

For one entry stage (e.g. ``mql``) and a level ``q``, the volume of new units
of each segment at that stage is multiplied by ``m`` (an ``arrivals scale``
shock, which also scales the plan's ``new_units``) and ``m`` is searched by
bisection until the segment's P(hit target) first reaches ``q``. Every
evaluation uses the same seed and paths: on common random numbers the
estimated P(hit) moves with ``m`` only through the change of inputs, so the
search sees a (nearly) monotone curve instead of noise.

Segments are searched together: the engine draws each (cell, entry stage)'s
randomness from its own streams, so a segment's outcome does not depend on
the other segments' arrivals, and one simulation evaluates every segment's
current multiplier.

The answer ``needed = m* × baseline units`` (the units expected to enter at
that stage in the period: the plan's ``new_units`` where set, else the mean
of the parameter draws, including their trend) comes with a Monte Carlo
standard error by the delta method: ``se(P) / slope``, where ``se(P) =
sqrt(q (1 - q) / paths)`` and the slope of P(hit) in units is measured on the
same random numbers at ``m* (1 ± 10 %)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from simengine.config.plan import Plan
from simengine.engine import simulate
from simengine.params import FunnelParameters
from simengine.planning.scenarios import Shock, apply_shock

if TYPE_CHECKING:
    from simengine.engine.simulate import BlockMap
    from simengine.planning.reverse import Source

__all__ = [
    "SeekResult",
    "annotate_goal_seek",
    "expected_units",
    "goal_seek",
    "goal_seek_table",
    "hit_probabilities",
]

_SLOPE_STEP = 0.1


def expected_units(params: FunnelParameters, plan: Plan, segment: str, stage: str) -> float:
    """Units expected to enter ``segment`` at ``stage`` on the days of the period.

    The plan's ``new_units`` where set; else the mean over draws of the
    engine's arrival mean: on day ``t`` (from the as-of date) a cell's rate
    per day is ``rate * exp(trend * floor(t / 7)) / 7``.
    """
    planned = plan.new_units.get(segment, {}).get(stage)
    if planned is not None:
        return float(planned)
    cells = params.cell_segment == params.segments.index(segment)
    e = params.entry_stages.index(stage)
    days = np.arange(plan.start_offset, plan.end_offset + 1)
    weeks = np.floor(days / 7.0)
    rate = params.arrival_rate[:, cells, e][..., None]  # (draw, cell, 1)
    trend = params.arrival_trend[:, cells, e][..., None]
    daily = rate * np.exp(trend * weeks[None, None, :]) / 7.0
    return float(daily.sum(axis=(1, 2)).mean())


def _shocked(
    params: FunnelParameters, plan: Plan, stage: str, mult: dict[str, float]
) -> tuple[FunnelParameters, Plan]:
    for seg, m in mult.items():
        params, plan = apply_shock(
            params, plan, Shock("arrivals", "scale", m, segment=seg, stage=stage)
        )
    return params, plan


def hit_probabilities(
    params: FunnelParameters,
    plan: Plan,
    stage: str,
    mult: dict[str, float],
    *,
    paths: int,
    seed: int,
    threads: int | None = None,
    block_map: BlockMap | None = None,
) -> dict[str, float]:
    """P(hit) per segment with each segment's ``stage`` arrivals scaled by ``mult``.

    ``block_map``: where the engine's blocks run (see
    :func:`simengine.engine.simulate`); the result does not depend on it.
    """
    p, pl = _shocked(params, plan, stage, mult)
    s = simulate(
        p,
        pl,
        paths=paths,
        seed=seed,
        block_size=max(1, math.ceil(paths / 4)),
        threads=threads,
        block_map=block_map,
    ).summary
    hit = s[(s["metric"] == "attainment") & (s["stat"] == "prob_hit")]
    return {str(g): float(v) for g, v in zip(hit["segment"], hit["value"], strict=True)}


@dataclass(frozen=True)
class SeekResult:
    """The arrivals one segment needs at one stage for P(hit) >= q.

    Attributes
    ----------
    segment, stage : str
    q : float
    baseline_units : float
        Units expected at that stage in the period before scaling.
    multiplier : float
        ``m*``: smallest multiplier found with P(hit) >= q (``inf`` if not
        reached by ``max_multiplier``; 0 if already reached without any).
    needed, needed_se : float
        ``m* × baseline_units`` and its Monte Carlo standard error.
    prob_hit : float
        Estimated P(hit) at ``m*``.
    planned : float
        The plan's ``new_units`` for the segment and stage (NaN if none).
    gap : float
        ``needed`` minus the plan's units; NaN where the plan sets none (then
        compare ``needed`` with ``baseline_units``, the expected volume).
    status : str
        ``"ok"``, ``"already"`` (q reached with no new units at this stage) or
        ``"unreachable"``.
    evaluations : int
        Simulations run by the search (shared by all segments).
    """

    segment: str
    stage: str
    q: float
    baseline_units: float
    multiplier: float
    needed: float
    needed_se: float
    prob_hit: float
    planned: float
    gap: float
    status: str
    evaluations: int


def goal_seek(
    params: FunnelParameters,
    plan: Plan,
    *,
    stage: str,
    q: float,
    paths: int = 20_000,
    seed: int,
    segments: Sequence[str] | None = None,
    rel_tol: float = 0.005,
    max_multiplier: float = 32.0,
    threads: int | None = None,
    block_map: BlockMap | None = None,
) -> list[SeekResult]:
    """Find, per segment, the ``stage`` arrivals needed for P(hit) >= ``q``.

    Parameters
    ----------
    params : FunnelParameters
    plan : Plan
    stage : str
        Entry stage whose volume is searched.
    q : float
        Target probability in (0, 1).
    paths : int
        Paths per evaluation.
    seed : int
        The seed of every evaluation (common random numbers).
    segments : sequence of str, optional
        Segments to search (default: every segment with units at ``stage``).
    rel_tol : float
        Stop when the bracket is narrower than ``rel_tol × m``.
    max_multiplier : float
        Give up (``"unreachable"``) beyond this multiple of the baseline.
    threads : int, optional
    block_map : BlockMap, optional
        Where the engine's blocks run (default: this process's threads).

    Returns
    -------
    list of SeekResult
    """
    if not 0 < q < 1:
        raise ValueError("q must lie in (0, 1)")
    if stage not in params.entry_stages:
        raise ValueError(f"unknown entry stage {stage!r}; entry stages are {params.entry_stages}")
    segs = list(segments) if segments is not None else list(params.segments)
    base = {g: expected_units(params, plan, g, stage) for g in segs}
    segs = [g for g in segs if base[g] > 0]
    if not segs:
        return []
    evals = 0

    def probe(mult: dict[str, float]) -> dict[str, float]:
        nonlocal evals
        evals += 1
        return hit_probabilities(
            params, plan, stage, mult, paths=paths, seed=seed, threads=threads, block_map=block_map
        )

    lo = dict.fromkeys(segs, 0.0)
    p_zero = probe(dict(lo))
    status = {g: "already" if p_zero[g] >= q else "" for g in segs}
    hi = dict.fromkeys(segs, 1.0)
    p_hi = dict.fromkeys(segs, float("nan"))
    open_ = [g for g in segs if not status[g]]
    # Bracket: double until P(hit) >= q.
    while open_:
        p = probe({g: hi[g] for g in segs})
        nxt = []
        for g in open_:
            if p[g] >= q:
                p_hi[g] = p[g]
                status[g] = "bracketed"
            elif hi[g] * 2 > max_multiplier:
                status[g] = "unreachable"
            else:
                lo[g] = hi[g]
                hi[g] *= 2
                nxt.append(g)
        open_ = nxt
    # Bisection (every bracketed segment advances in the same simulation).
    active = [g for g in segs if status[g] == "bracketed"]
    while active:
        mid = {g: (lo[g] + hi[g]) / 2 for g in segs}
        p = probe({g: mid[g] if g in active else hi[g] for g in segs})
        for g in active:
            if p[g] >= q:
                hi[g], p_hi[g] = mid[g], p[g]
            else:
                lo[g] = mid[g]
        active = [g for g in active if hi[g] - lo[g] > rel_tol * hi[g]]
    # Slope of P(hit) in m at the answer, on the same random numbers.
    ok = [g for g in segs if status[g] == "bracketed"]
    slope = dict.fromkeys(segs, float("nan"))
    if ok:
        up = probe({g: hi[g] * (1 + _SLOPE_STEP) if g in ok else 0.0 for g in segs})
        down = probe({g: hi[g] * (1 - _SLOPE_STEP) if g in ok else 0.0 for g in segs})
        for g in ok:
            slope[g] = (up[g] - down[g]) / (2 * _SLOPE_STEP * hi[g])
    out = []
    se_p = math.sqrt(q * (1 - q) / paths)
    for g in segs:
        planned = plan.new_units.get(g, {}).get(stage, float("nan"))
        if status[g] == "already":
            m, se_m, ph, st = 0.0, 0.0, p_zero[g], "already"
        elif status[g] == "unreachable":
            m, se_m, ph, st = float("inf"), float("nan"), float("nan"), "unreachable"
        else:
            m, ph, st = hi[g], p_hi[g], "ok"
            se_m = se_p / slope[g] if slope[g] > 0 else float("inf")
        needed = m * base[g]
        out.append(
            SeekResult(
                segment=g,
                stage=stage,
                q=q,
                baseline_units=base[g],
                multiplier=m,
                needed=needed,
                needed_se=se_m * base[g],
                prob_hit=ph,
                planned=planned,
                gap=needed - planned,  # NaN where the plan gives no volume
                status=st,
                evaluations=evals,
            )
        )
    return out


def goal_seek_table(
    params: FunnelParameters,
    plan: Plan,
    *,
    quantiles: Sequence[float] = (0.5, 0.8),
    paths: int = 20_000,
    seed: int,
    stages: Sequence[str] | None = None,
    threads: int | None = None,
    on_seek: Callable[[str, float], None] | None = None,
    block_map: BlockMap | None = None,
) -> pd.DataFrame:
    """Goal seek for every entry stage with units and every level ``q``.

    ``on_seek(stage, q)``, if given, is called before each search that has
    rows to give (a stage where some segment expects units; progress);
    ``block_map`` says where the engine's blocks run (see :func:`goal_seek`).

    Returns
    -------
    pandas.DataFrame
        One row per segment, stage and ``q`` with the :class:`SeekResult`
        fields.
    """
    names = list(stages) if stages is not None else list(params.entry_stages)
    rows = []
    for st in names:
        if not any(expected_units(params, plan, g, st) > 0 for g in params.segments):
            continue  # no units enter here: nothing to seek, nothing to announce
        for q in quantiles:
            if on_seek:
                on_seek(st, q)
            rows += [
                r.__dict__
                for r in goal_seek(
                    params,
                    plan,
                    stage=st,
                    q=q,
                    paths=paths,
                    seed=seed,
                    threads=threads,
                    block_map=block_map,
                )
            ]
    cols = list(SeekResult.__dataclass_fields__)
    return pd.DataFrame(rows, columns=cols)


def annotate_goal_seek(
    gs: pd.DataFrame,
    params: FunnelParameters,
    plan: Plan,
    sources: Sequence[Source],
    *,
    per_rep_month: float,
) -> pd.DataFrame:
    """Add the deterministic reverse funnel and the reps beside a goal-seek table.

    Parameters
    ----------
    gs : pandas.DataFrame
        A :func:`goal_seek_table`.
    params : FunnelParameters
    plan : Plan
    sources : sequence of Source
        The planner's point inputs (:func:`simengine.planning.reverse.sources_from_params`).
    per_rep_month : float
        Units a rep can work per month.

    Returns
    -------
    pandas.DataFrame
        A copy with ``reverse_funnel`` (the point answer for the same segment
        and entry stage: no timing, no uncertainty) and ``reps_needed`` (reps
        to work the simulated need at the first stage; NaN at other stages).
    """
    from simengine.planning.reverse import DAYS_PER_MONTH, entry_needs

    out = gs.copy()
    needs = entry_needs(plan.targets, list(sources))
    out["reverse_funnel"] = [
        float(needs.get((g, st), float("nan")))
        for g, st in zip(out["segment"], out["stage"], strict=True)
    ]
    per_rep_period = per_rep_month * plan.period_days / float(DAYS_PER_MONTH)
    out["reps_needed"] = [
        n / per_rep_period if st == params.stages[0] else float("nan")
        for n, st in zip(out["needed"], out["stage"], strict=True)
    ]
    return out

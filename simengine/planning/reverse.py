"""The deterministic reverse funnel, as planners do it today, in exact arithmetic.

From a revenue target and a deal size to deals, then up the funnel, one step
at a time, dividing by each step's conversion rate: deals → opportunities →
SQLs → MQLs. Every quantity is a :class:`fractions.Fraction`; rounding happens
only for display, or, if asked, at every step the way many planning
spreadsheets do it (``"nearest"``: half up to a whole unit, ``"up"``: the
conservative ceiling).

Rates and amounts given as floats are read through their shortest decimal
representation (``0.22`` means ``11/50``, not the binary double closest to
it), so that the published worked examples come out exact.

Three layers:

* :func:`reverse_chain`: one source (one entry stage, one set of rates, one
  deal size) from revenue to units at each stage;
* :func:`reverse_table`: several segments and sources, each with its share
  of its segment's target, as one tidy table with segment and total rows;
* :func:`capacity`: reps needed to work the required volume and a warning
  where a planned weekly flow exceeds what the reps can work.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Literal

import numpy as np
import pandas as pd

from simengine.config.plan import Plan
from simengine.params import FunnelParameters

__all__ = [
    "DAYS_PER_MONTH",
    "ROUNDINGS",
    "Capacity",
    "Chain",
    "Rounding",
    "Source",
    "capacity",
    "capacity_table",
    "display_round",
    "entry_needs",
    "reverse_chain",
    "reverse_table",
    "reverse_tables",
    "round_step",
    "sources_from_params",
    "to_fraction",
    "within_display_rounding",
]

Rounding = Literal["exact", "nearest", "up"]
"""How the chain rounds at each step: not at all, half-up to whole units, or up."""

ROUNDINGS: tuple[Rounding, ...] = ("exact", "nearest", "up")
"""Every rounding rule, in the order the plan command shows them."""

DAYS_PER_MONTH = Fraction(1461, 48)
"""An average calendar month in days (365.25 / 12 = 30.4375), exact."""

_RULES: tuple[str, ...] = ("exact", "nearest", "up")


def to_fraction(x: float | int | str | Fraction | Decimal) -> Fraction:
    """Return ``x`` as an exact fraction, reading floats by their decimal repr.

    Parameters
    ----------
    x : float, int, str, Fraction or Decimal
        A number; ``0.22`` becomes ``Fraction(11, 50)``.

    Returns
    -------
    Fraction

    Raises
    ------
    ValueError
        If ``x`` is not finite or not a number.
    """
    if isinstance(x, Fraction):
        return x
    if isinstance(x, bool):
        raise ValueError(f"not a number: {x!r}")
    if isinstance(x, float):
        if not math.isfinite(x):
            raise ValueError(f"not a finite number: {x!r}")
        return Fraction(repr(x))
    if isinstance(x, Decimal):
        if not x.is_finite():
            raise ValueError(f"not a finite number: {x!r}")
        return Fraction(x)
    return Fraction(x)


def round_step(x: Fraction, rule: Rounding) -> Fraction:
    """Apply a per-step rounding rule to a unit count.

    Parameters
    ----------
    x : Fraction
        Units.
    rule : {"exact", "nearest", "up"}
        ``"exact"`` keeps ``x``; ``"nearest"`` rounds half up to a whole unit;
        ``"up"`` takes the ceiling.

    Returns
    -------
    Fraction
    """
    if rule == "exact":
        return x
    if rule == "nearest":
        return Fraction(math.floor(x + Fraction(1, 2)))
    if rule == "up":
        return Fraction(math.ceil(x))
    raise ValueError(f"unknown rounding rule {rule!r}; use one of {_RULES}")


def display_round(x: Fraction, unit: Fraction | int | str = 1) -> Fraction:
    """Round ``x`` half up to a multiple of ``unit`` (display only).

    Parameters
    ----------
    x : Fraction
        Exact value.
    unit : Fraction, int or str
        Display resolution, e.g. ``10`` for "1,140" or ``"0.1"``.

    Returns
    -------
    Fraction
    """
    u = to_fraction(unit)
    if u <= 0:
        raise ValueError("display unit must be positive")
    return math.floor(x / u + Fraction(1, 2)) * u


def within_display_rounding(
    published: Fraction | int | str, exact: Fraction, unit: Fraction | int | str
) -> bool:
    """Whether a published figure is the exact value rounded to its display unit.

    The rule: a figure printed to a resolution ``unit`` (``"1,140"`` to tens,
    ``"$4.1M"`` to 0.1M) is within display rounding of the exact value when
    ``|published - exact| <= unit / 2``. Either direction of a tie counts, so
    the check accepts half-up, half-down and half-even rounding alike.

    Parameters
    ----------
    published : Fraction, int or str
        The figure as printed (without separators).
    exact : Fraction
        The exact value.
    unit : Fraction, int or str
        The figure's display resolution.

    Returns
    -------
    bool
    """
    return abs(to_fraction(published) - exact) <= to_fraction(unit) / 2


@dataclass(frozen=True)
class Chain:
    """One reverse funnel: units needed at each stage for one source.

    Parameters
    ----------
    stages : tuple of str
        Stages from the source's entry stage to closed-won.
    units : tuple of Fraction
        Units needed at each of ``stages``; ``units[-1]`` is won deals.
    rates : tuple of Fraction
        Conversion rate of each step into ``stages[1:]``.
    revenue : Fraction
        Revenue this chain must bring.
    deal_size : Fraction
        Average won deal.
    rounding : str
        The per-step rounding rule used.
    """

    stages: tuple[str, ...]
    units: tuple[Fraction, ...]
    rates: tuple[Fraction, ...]
    revenue: Fraction
    deal_size: Fraction
    rounding: str

    @property
    def deals(self) -> Fraction:
        """Won deals needed."""
        return self.units[-1]

    def at(self, stage: str) -> Fraction:
        """Units needed at ``stage``."""
        return self.units[self.stages.index(stage)]

    def value_at(self, stage: str) -> Fraction:
        """Pipeline value at ``stage``: its units times the deal size."""
        return self.at(stage) * self.deal_size

    def gap(self, stage: str, planned: Fraction | float | int) -> Fraction:
        """Units still missing at ``stage`` given ``planned`` (negative: surplus)."""
        return self.at(stage) - to_fraction(planned)


def reverse_chain(
    revenue: Fraction | float | int | str,
    deal_size: Fraction | float | int | str,
    rates: Sequence[Fraction | float | int | str],
    stages: Sequence[str] | None = None,
    *,
    rounding: Rounding = "exact",
) -> Chain:
    """Walk the funnel backwards from revenue to units at each stage.

    Parameters
    ----------
    revenue : number
        Revenue the chain must bring (> 0).
    deal_size : number
        Average won deal (> 0).
    rates : sequence of numbers
        Conversion rate of each step in funnel order (top step first), each
        in (0, 1]; e.g. ``[0.30, 0.65, 0.22]`` for MQL→SQL, SQL→Opp, Opp→Won.
    stages : sequence of str, optional
        Stage names, one more than ``rates``; default ``stage0, stage1, ...``.
    rounding : {"exact", "nearest", "up"}
        Per-step rounding of units (deals included); ``"exact"`` by default.

    Returns
    -------
    Chain

    Raises
    ------
    ValueError
        On a non-positive revenue or deal size, a rate outside (0, 1], or a
        stage list of the wrong length.

    Examples
    --------
    >>> c = reverse_chain(15_000_000, 60_000, [0.30, 0.65, 0.22], ["mql", "sql", "opp", "won"])
    >>> [float(u) for u in c.units[::-1]][:2]
    [250.0, 1136.3636363636363]
    """
    if rounding not in _RULES:
        raise ValueError(f"unknown rounding rule {rounding!r}; use one of {_RULES}")
    rev = to_fraction(revenue)
    size = to_fraction(deal_size)
    rs = tuple(to_fraction(r) for r in rates)
    if rev <= 0:
        raise ValueError(f"revenue must be positive, got {revenue!r}")
    if size <= 0:
        raise ValueError(f"deal size must be positive, got {deal_size!r}")
    for r in rs:
        if not 0 < r <= 1:
            raise ValueError(f"conversion rates must lie in (0, 1], got {float(r)!r}")
    names = tuple(stages) if stages is not None else tuple(f"stage{i}" for i in range(len(rs) + 1))
    if len(names) != len(rs) + 1:
        raise ValueError(f"{len(rs)} rates need {len(rs) + 1} stages, got {len(names)}")
    units = [round_step(rev / size, rounding)]
    for r in reversed(rs):
        units.append(round_step(units[-1] / r, rounding))
    return Chain(names, tuple(reversed(units)), rs, rev, size, rounding)


@dataclass(frozen=True)
class Source:
    """One source of revenue within a segment, for :func:`reverse_table`.

    Parameters
    ----------
    segment : str
        Reporting segment.
    name : str
        Source label (``"marketing"``, ``"sales"``, a cell and entry stage).
    share : number
        Share of the segment's target this source must bring, in [0, 1].
    deal_size : number
        Its average won deal.
    stages : sequence of str
        Stages from its entry stage to closed-won.
    rates : sequence of numbers
        Its step conversion rates, top first (``len(stages) - 1`` of them).
    """

    segment: str
    name: str
    share: Fraction | float | int | str
    deal_size: Fraction | float | int | str
    stages: Sequence[str]
    rates: Sequence[Fraction | float | int | str]


def reverse_table(
    targets: Mapping[str, Fraction | float | int | str],
    sources: Sequence[Source],
    *,
    rounding: Rounding = "exact",
    pipeline_stage: str | None = None,
    planned: Mapping[str, Mapping[str, float]] | None = None,
) -> pd.DataFrame:
    """Reverse funnels for several segments and sources as one tidy table.

    Parameters
    ----------
    targets : mapping of str to number
        Revenue target per segment.
    sources : sequence of Source
        The sources of each segment; their shares in a segment must sum to 1.
    rounding : {"exact", "nearest", "up"}
        Per-step rounding rule (see :func:`reverse_chain`).
    pipeline_stage : str, optional
        Stage whose units times deal size is the pipeline value (reported in
        ``value`` from this stage on); default: the stage before closed-won.
    planned : mapping, optional
        Planned units per segment and entry stage (a plan's ``new_units``);
        rows of that segment and stage, source ``"all"``, get ``planned`` and
        ``gap`` (needed minus planned).

    Returns
    -------
    pandas.DataFrame
        Columns ``segment, source, stage, rounding, units, units_exact,
        value, value_exact, planned, gap``: one row per source and stage
        (where a segment has more than one source), then per segment the sum
        over its sources (``source == "all"``), then the ``total`` segment.
        ``units``/``value`` are floats for display and charts; ``*_exact``
        hold the exact fractions as text (``"12500/11"``).

    Raises
    ------
    ValueError
        If a segment's shares do not sum to 1 or a source's segment has no
        target.
    """
    by_seg: dict[str, list[Source]] = {}
    for s in sources:
        if s.segment not in targets:
            raise ValueError(f"source {s.name!r} is in segment {s.segment!r}, which has no target")
        by_seg.setdefault(s.segment, []).append(s)
    rows: list[dict[str, object]] = []
    stage_order: list[str] = []
    total: dict[str, list[Fraction]] = {}

    def emit(seg: str, src: str, stage: str, units: Fraction, value: Fraction | None) -> None:
        rows.append(
            {
                "segment": seg,
                "source": src,
                "stage": stage,
                "rounding": rounding,
                "units": float(units),
                "units_exact": str(units),
                "value": float(value) if value is not None else float("nan"),
                "value_exact": str(value) if value is not None else "",
                "planned": float("nan"),
                "gap": float("nan"),
            }
        )

    for seg, srcs in by_seg.items():
        shares = [to_fraction(s.share) for s in srcs]
        if sum(shares) != 1:
            raise ValueError(
                f"shares of segment {seg!r} sum to {float(sum(shares))!r}, not 1: "
                + ", ".join(f"{s.name}={float(v)}" for s, v in zip(srcs, shares, strict=True))
            )
        seg_units: dict[str, Fraction] = {}
        seg_value: dict[str, Fraction] = {}
        target = to_fraction(targets[seg])
        for s, share in zip(srcs, shares, strict=True):
            if share == 0:
                continue
            chain = reverse_chain(target * share, s.deal_size, s.rates, s.stages, rounding=rounding)
            pipe = pipeline_stage if pipeline_stage in chain.stages else chain.stages[-2]
            pipe_i = chain.stages.index(pipe)
            for i, stage in enumerate(chain.stages):
                if stage not in stage_order:
                    stage_order.append(stage)
                value = chain.units[i] * chain.deal_size if i >= pipe_i else None
                if len(srcs) > 1:
                    emit(seg, s.name, stage, chain.units[i], value)
                seg_units[stage] = seg_units.get(stage, Fraction(0)) + chain.units[i]
                if value is not None:
                    seg_value[stage] = seg_value.get(stage, Fraction(0)) + value
        for stage in stage_order:
            if stage not in seg_units:
                continue
            emit(seg, "all", stage, seg_units[stage], seg_value.get(stage))
            if planned and stage in planned.get(seg, {}):
                p = to_fraction(planned[seg][stage])
                rows[-1]["planned"] = float(p)
                rows[-1]["gap"] = float(seg_units[stage] - p)
            t = total.setdefault(stage, [Fraction(0), Fraction(0), Fraction(0)])
            t[0] += seg_units[stage]
            t[1] += seg_value.get(stage, Fraction(0))
            t[2] += 1 if stage in seg_value else 0
    if len(by_seg) > 1:
        for stage in stage_order:
            if stage in total:
                u, v, has_v = total[stage]
                emit("total", "all", stage, u, v if has_v else None)
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Capacity:
    """Reps needed to work a volume, and whether a planned flow overloads them.

    Parameters
    ----------
    needed : Fraction
        Units needed in the period.
    period_days : int
        Days in the period.
    per_rep_month : Fraction
        Units one rep can work per month.
    reps_needed : Fraction
        ``needed`` over what one rep works in the period (exact).
    reps : int
        Reps available (given) or else ``ceil(reps_needed)``.
    weekly_capacity : Fraction
        Units ``reps`` can work per week.
    planned_weekly : Fraction or None
        The planned weekly flow, if known.
    warning : str or None
        Set where ``planned_weekly`` exceeds ``weekly_capacity``.
    """

    needed: Fraction
    period_days: int
    per_rep_month: Fraction
    reps_needed: Fraction
    reps: int
    weekly_capacity: Fraction
    planned_weekly: Fraction | None
    warning: str | None


def capacity(
    needed: Fraction | float | int,
    period_days: int,
    *,
    per_rep_month: Fraction | float | int = 120,
    planned: Fraction | float | int | None = None,
    reps: int | None = None,
    label: str = "",
) -> Capacity:
    """Reps needed to work ``needed`` units in the period, and an overload check.

    A month is 365.25 / 12 days (:data:`DAYS_PER_MONTH`). One rep works
    ``per_rep_month * period_days / DAYS_PER_MONTH`` units in the period, or
    ``per_rep_month * 7 / DAYS_PER_MONTH`` a week.

    Parameters
    ----------
    needed : number
        Units (MQLs) needed in the period.
    period_days : int
        Days in the period.
    per_rep_month : number
        Units one rep can work per month (default 120).
    planned : number, optional
        Units planned in the period (e.g. the plan's ``new_units``); its
        weekly flow is ``planned * 7 / period_days``.
    reps : int, optional
        Reps available; default: enough for the need and the planned flow,
        rounded up (then there is no warning: only given reps can be short).
    label : str
        Where this is (segment and stage), used in the warning.

    Returns
    -------
    Capacity
    """
    need = to_fraction(needed)
    per = to_fraction(per_rep_month)
    if period_days <= 0 or per <= 0:
        raise ValueError("period_days and per_rep_month must be positive")
    per_rep_period = per * period_days / DAYS_PER_MONTH
    reps_needed = need / per_rep_period
    planned_weekly = None if planned is None else to_fraction(planned) * 7 / period_days
    if reps is None:
        # enough reps for the need and for the planned flow: no constraint was given,
        # so there is nothing to warn about
        work = need if planned is None else max(need, to_fraction(planned))
        n_reps = math.ceil(work / per_rep_period)
    else:
        n_reps = int(reps)
    weekly_cap = n_reps * per * 7 / DAYS_PER_MONTH
    warning = None
    if reps is not None and planned_weekly is not None and planned_weekly > weekly_cap:
        where = f"{label}: " if label else ""
        warning = (
            f"{where}planned flow of {float(planned_weekly):,.1f} a week exceeds what "
            f"{n_reps} rep(s) at {float(per):g} a month can work "
            f"({float(weekly_cap):,.1f} a week)"
        )
    return Capacity(
        need, period_days, per, reps_needed, n_reps, weekly_cap, planned_weekly, warning
    )


def sources_from_params(params: FunnelParameters, plan: Plan) -> list[Source]:
    """Turn parameter draws into the planner's point inputs, one source per cell and entry stage.

    Point inputs are draw means: each step's conversion rate; the average won
    deal ``exp(mu + sigma^2 / 2)`` (the lognormal mean); the units expected in
    the period (the plan's ``new_units`` split over the segment's cells by mean
    rate, else the mean weekly rate times ``period_days / 7``). A source's share
    of its segment's target is its share of the segment's expected revenue from
    new units (units × Π conversions × average deal), made exact so shares sum
    to exactly 1.

    Parameters
    ----------
    params : FunnelParameters
        Posterior or assumption draws.
    plan : Plan
        The plan (period length and planned new units).

    Returns
    -------
    list of Source
        Named ``"<cell> from <entry stage>"``; sources expected to bring nothing
        are left out.
    """
    conv = params.conversion.mean(axis=0)
    deal = np.exp(params.deal_size_mu + params.deal_size_sigma**2 / 2).mean(axis=0)
    rate = params.arrival_rate.mean(axis=0)
    weeks = plan.period_days / 7.0
    n_stages = len(params.stages)
    out: list[Source] = []
    for si, seg in enumerate(params.segments):
        cells = np.flatnonzero(params.cell_segment == si)
        cand: list[tuple[int, int, float]] = []
        for e, stage in enumerate(params.entry_stages):
            seg_rate = float(rate[cells, e].sum())
            planned = plan.new_units.get(seg, {}).get(stage)
            for c in cells:
                if planned is not None:
                    share = rate[c, e] / seg_rate if seg_rate > 0 else 1.0 / len(cells)
                    units = planned * share
                else:
                    units = rate[c, e] * weeks
                contrib = units * float(np.prod(conv[c, e:])) * deal[c]
                if contrib > 0:
                    cand.append((int(c), e, float(contrib)))
        if not cand:
            continue
        total = sum(to_fraction(x) for _, _, x in cand)
        for ci, ei, x in cand:
            out.append(
                Source(
                    segment=seg,
                    name=f"{params.cells[ci]} from {params.entry_stages[ei]}",
                    share=to_fraction(x) / total,
                    deal_size=float(deal[ci]),
                    stages=params.stages[ei:n_stages],
                    rates=[float(r) for r in conv[ci, ei:]],
                )
            )
    return out


def capacity_table(
    table: pd.DataFrame,
    plan: Plan,
    params: FunnelParameters | None = None,
    *,
    stage: str,
    per_rep_month: float = 120,
    reps: Mapping[str, int] | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """Reps needed per segment for the units the reverse funnel needs at ``stage``.

    Parameters
    ----------
    table : pandas.DataFrame
        An exact :func:`reverse_table` (``rounding == "exact"``).
    plan : Plan
        Period length and planned ``new_units``.
    params : FunnelParameters, optional
        Fitted/assumed volume, used as the planned flow where the plan has no
        ``new_units`` for a segment and stage.
    stage : str
        The stage reps work (e.g. ``"mql"``).
    per_rep_month : float
        Units a rep can work per month.
    reps : mapping of str to int, optional
        Reps available per segment (default: enough for the need and the
        planned flow, as :func:`capacity`).

    Returns
    -------
    (pandas.DataFrame, list of str)
        Columns ``segment, stage, needed, reps_needed, reps, weekly_capacity,
        planned_weekly, warning``, and the warnings.
    """
    rows = []
    warnings: list[str] = []
    sel = table[(table["source"] == "all") & (table["stage"] == stage)]
    for _, r in sel.iterrows():
        seg = str(r["segment"])
        if seg == "total":
            continue
        planned: float | None = plan.new_units.get(seg, {}).get(stage)
        if planned is None and params is not None and stage in params.entry_stages:
            cells = params.cell_segment == params.segments.index(seg)
            e = params.entry_stages.index(stage)
            planned = float(params.arrival_rate[:, cells, e].sum(axis=1).mean()) * (
                plan.period_days / 7.0
            )
        cap = capacity(
            Fraction(str(r["units_exact"])),
            plan.period_days,
            per_rep_month=per_rep_month,
            planned=planned,
            reps=None if reps is None else reps.get(seg),
            label=f"{seg} {stage}",
        )
        if cap.warning:
            warnings.append(cap.warning)
        rows.append(
            {
                "segment": seg,
                "stage": stage,
                "needed": float(cap.needed),
                "reps_needed": float(cap.reps_needed),
                "reps": cap.reps,
                "weekly_capacity": float(cap.weekly_capacity),
                "planned_weekly": float("nan")
                if cap.planned_weekly is None
                else float(cap.planned_weekly),
                "warning": cap.warning or "",
            }
        )
    return pd.DataFrame(rows), warnings


def entry_needs(
    targets: Mapping[str, Fraction | float | int | str], sources: Sequence[Source]
) -> dict[tuple[str, str], Fraction]:
    """Return the new units needed per segment and entry stage (exact reverse funnel).

    Parameters
    ----------
    targets : mapping of str to number
        Revenue target per segment.
    sources : sequence of Source
        As for :func:`reverse_table`.

    Returns
    -------
    dict of (segment, entry stage) to Fraction
        Sum over the segment's sources entering at that stage of the units
        their chain needs at its first stage.
    """
    out: dict[tuple[str, str], Fraction] = {}
    for s in sources:
        share = to_fraction(s.share)
        if share == 0:
            continue
        c = reverse_chain(to_fraction(targets[s.segment]) * share, s.deal_size, s.rates, s.stages)
        key = (s.segment, c.stages[0])
        out[key] = out.get(key, Fraction(0)) + c.units[0]
    return out


def reverse_tables(
    targets: Mapping[str, Fraction | float | int | str],
    sources: Sequence[Source],
    *,
    pipeline_stage: str | None = None,
    planned: Mapping[str, Mapping[str, float]] | None = None,
) -> dict[Rounding, pd.DataFrame]:
    """Return :func:`reverse_table` under each rule of :data:`ROUNDINGS`, keyed by rule.

    Parameters are those of :func:`reverse_table` (without ``rounding``).
    """
    return {
        rule: reverse_table(
            targets, sources, rounding=rule, pipeline_stage=pipeline_stage, planned=planned
        )
        for rule in ROUNDINGS
    }

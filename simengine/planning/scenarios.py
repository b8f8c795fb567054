"""Scenario files and the shocks they apply to parameters and plans.

A scenario file (TOML) names scenarios; each is a list of shocks::

    [[scenario]]
    name = "win-rate-ent-minus-3pt"
    title = "Win rate -3 points in ent"
    [[scenario.shock]]
    what = "conversion"     # arrivals | conversion | delay | deal_size | target
    segment = "ent"         # optional: a reporting segment or one cell label
    step = "won"            # conversion/delay: the step (stage it leads to)
    how = "add"             # scale | add | set
    value = -0.03

Shocks act on every draw of :class:`~simengine.params.FunnelParameters`
(arrays are copied, never modified in place) and on the
:class:`~simengine.config.plan.Plan`:

=============  =========================  ====================================================
what           where                      scale / add / set
=============  =========================  ====================================================
arrivals       segment, ``stage``         rate × k / + units in the period / = units in the
               (entry stage)              period; a segment total is split across its cells
                                          in proportion to their rates in each draw (evenly
                                          where all are 0); ``set`` makes the rate flat
                                          (trend 0). The plan's ``new_units`` of the same
                                          segment and stage are shocked the same way, since
                                          the engine lets them replace the arrival mean.
conversion     segment, ``step``          p × k / p + points (``-0.03`` = 3 points) / = p;
                                          clipped to [0, 1]
delay          segment, ``step``          median × k / median + days / median = days, i.e.
                                          mu + log k / log(exp(mu) + days) / log(days); the
                                          median is floored at :data:`MIN_MEDIAN`
deal_size      segment                    median × k (mu + log k) / + amount / = amount
target         segment                    target × k / + amount / = amount (without a
                                          segment: every segment; ``add``/``set`` split the
                                          amount in proportion to the targets)
=============  =========================  ====================================================

Arrival amounts (``add``/``set``) are units in the plan's period, the unit of
a plan's ``new_units``; they become a weekly rate as ``units * 7 /
period_days``. Without a ``segment`` a shock applies to every cell.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass as pydantic_dataclass

from simengine.config import tables
from simengine.config.plan import Plan
from simengine.config.tables import Table, non_empty, number, rule
from simengine.errors import InputError, Issue
from simengine.params import FunnelParameters

__all__ = [
    "BASELINE",
    "HOWS",
    "MIN_MEDIAN",
    "WHATS",
    "Scenario",
    "Shock",
    "apply_scenario",
    "apply_shock",
    "load_scenarios",
    "parse_scenarios",
]

BASELINE = "baseline"
"""Reserved scenario name of the unshocked run."""

WHATS: tuple[str, ...] = ("arrivals", "conversion", "delay", "deal_size", "target")
HOWS: tuple[str, ...] = ("scale", "add", "set")
MIN_MEDIAN = 1e-6
"""Floor of a shocked delay median (days) or deal size median (currency)."""

_Name = Annotated[
    str, rule(lambda v: isinstance(v, str) and len(v) > 0, "must be a non-empty string")
]


@pydantic_dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class Shock:
    """One change to the inputs (a ``[[scenario.shock]]`` table).

    Parameters
    ----------
    what : str
        ``arrivals``, ``conversion``, ``delay``, ``deal_size`` or ``target``.
    how : str
        ``scale``, ``add`` or ``set``.
    value : float
        How much (see the module table for units).
    segment : str or None
        A reporting segment or a cell label; ``None`` for all.
    stage : str or None
        Entry stage (arrivals only); ``None`` for all (``scale`` only).
    step : str or None
        Step (conversion and delay only); ``None`` for all steps.
    where : str
        Key path in the scenario file, for error messages.
    """

    what: Annotated[str, rule(lambda v: v in WHATS, f"must be one of {list(WHATS)}")]
    how: Annotated[str, rule(lambda v: v in HOWS, f"must be one of {list(HOWS)}")]
    value: Annotated[float, number(math.isfinite, "must be a finite number")]
    segment: _Name | None = None
    stage: _Name | None = None
    step: _Name | None = None
    where: str = ""

    def describe(self) -> str:
        """Return the shock in words (``"conversion won in ent: add -0.03"``)."""
        loc = " ".join(x for x in (self.stage or self.step or "",) if x)
        seg = f" in {self.segment}" if self.segment else ""
        return f"{self.what}{' ' + loc if loc else ''}{seg}: {self.how} {self.value:g}"


@dataclass(frozen=True)
class Scenario:
    """A named list of shocks.

    Parameters
    ----------
    name : str
        Short unique name (used in ``stress.csv``).
    title : str
        Human title for charts (default: ``name``).
    description : str
        Free text.
    shocks : tuple of Shock
        Applied in order.
    file : str
        The file it came from (for error messages).
    """

    name: str
    title: str
    description: str
    shocks: tuple[Shock, ...]
    file: str = "<scenarios>"


def load_scenarios(path: str | Path) -> list[Scenario]:
    """Read and check a scenario file.

    Parameters
    ----------
    path : str or Path
        The TOML file.

    Returns
    -------
    list of Scenario

    Raises
    ------
    InputError
        If the file is missing, not TOML, or breaks a rule of the format (all
        problems are listed).
    """
    return parse_scenarios(tables.read_text(path, "scenario"), source=str(Path(path)))


def _value_rule(what: str, how: str, v: float) -> str | None:
    """Return the broken rule for a shock value, or None if it is fine."""
    if how == "scale":
        if what == "conversion" or what == "arrivals":
            return None if v >= 0 else "a scale factor must be >= 0"
        return None if v > 0 else "a scale factor must be > 0"
    if how == "set":
        if what == "conversion":
            return None if 0 <= v <= 1 else "a conversion rate must lie in [0, 1]"
        if what == "arrivals":
            return None if v >= 0 else "units in the period must be >= 0"
        return None if v > 0 else "must be > 0"
    if what == "conversion" and not -1 <= v <= 1:
        return "conversion add is in probability points, between -1 and 1 (-0.03 = 3 points)"
    return None


class _ScenarioFile(Table):
    """A scenario file: a list of ``[[scenario]]`` tables."""

    scenario: Annotated[
        list[dict[str, Any]], non_empty("needs at least one [[scenario]] table")
    ] = Field(default_factory=list, validate_default=True)


class _ScenarioTable(Table):
    """One ``[[scenario]]``; its shocks are checked one by one as :class:`Shock`."""

    name: Annotated[
        str,
        rule(
            lambda v: isinstance(v, str) and v.strip() != "",
            "every scenario needs a non-empty name",
        ),
    ] = Field(default="", validate_default=True)
    title: str | None = None
    description: str = ""
    shock: Annotated[list[Any], non_empty("needs at least one [[scenario.shock]] table")] = Field(
        default_factory=list, validate_default=True
    )


def parse_scenarios(text: str, source: str = "<scenarios>") -> list[Scenario]:
    """Parse scenario TOML text; see :func:`load_scenarios`."""
    raw = tables.toml_table(text, source)
    issues: list[Issue] = []
    top = tables.validate(_ScenarioFile, raw, source, issues, salvage=True)
    if top is None:
        raise InputError(issues, summary=f"invalid scenario file {source}")
    out: list[Scenario] = []
    seen: set[str] = set()
    for i, sc in enumerate(top.scenario, start=1):
        at = f"scenario[{i}]"
        table = tables.validate(_ScenarioTable, sc, source, issues, where=at, salvage=True)
        if table is None:
            continue
        if table.name == BASELINE:
            issues.append(
                Issue(
                    source,
                    None,
                    f"{at}.name",
                    table.name,
                    f"{BASELINE!r} is reserved for the unshocked run",
                )
            )
        elif table.name in seen:
            issues.append(
                Issue(source, None, f"{at}.name", table.name, "scenario names must be unique")
            )
        seen.add(table.name)
        shocks = [
            shock
            for j, sh in enumerate(table.shock, start=1)
            if (shock := _parse_shock(sh, f"{at}.shock[{j}]", source, issues)) is not None
        ]
        out.append(
            Scenario(
                name=table.name or f"scenario{i}",
                title=table.title or table.name,
                description=table.description,
                shocks=tuple(shocks),
                file=source,
            )
        )
    if issues:
        raise InputError(issues, summary=f"invalid scenario file {source}")
    return out


def _parse_shock(sh: Any, sat: str, file: str, issues: list[Issue]) -> Shock | None:
    """Validate one shock table, then the rules that relate its keys."""
    if isinstance(sh, dict) and "where" in sh:
        issues.append(
            Issue(file, None, f"{sat}.where", "", "unknown key (where is not set in a file)")
        )
        return None
    shock = tables.validate(
        Shock, {**sh, "where": sat} if isinstance(sh, dict) else sh, file, issues, where=sat
    )
    if shock is None:
        return None
    n = len(issues)

    def bad(key: str, value: object, words: str) -> None:
        issues.append(Issue(file, None, f"{sat}.{key}", "" if value is None else str(value), words))

    if shock.stage is not None and shock.what != "arrivals":
        bad("stage", shock.stage, "only arrivals take a stage (conversion/delay: step)")
    if shock.step is not None and shock.what not in ("conversion", "delay"):
        bad("step", shock.step, "only conversion and delay shocks take a step")
    if shock.what == "arrivals" and shock.how in ("add", "set") and shock.stage is None:
        bad("stage", None, "arrivals add/set need the entry stage the units enter at")
    words = _value_rule(shock.what, shock.how, shock.value)
    if words:
        bad("value", shock.value, words)
    return shock if len(issues) == n else None


# ---------------------------------------------------------------- applying


def _cells(params: FunnelParameters, shock: Shock, file: str) -> tuple[npt.NDArray[np.bool_], bool]:
    """Mask of the cells a shock touches, and whether it is one cell of a segment."""
    if shock.segment is None:
        return np.ones(len(params.cells), bool), False
    if shock.segment in params.segments:
        return params.cell_segment == params.segments.index(shock.segment), False
    if shock.segment in params.cells:
        mask = np.zeros(len(params.cells), bool)
        mask[params.cells.index(shock.segment)] = True
        return mask, len(params.cells) > 1
    raise InputError.single(
        file,
        f"unknown segment or cell; segments are {list(params.segments)}, "
        f"cells {list(params.cells)}",
        column=f"{shock.where}.segment",
        value=shock.segment,
    )


def _axis(
    labels: Sequence[str], name: str | None, key: str, shock: Shock, file: str
) -> slice | int:
    if name is None:
        return slice(None)
    if name not in labels:
        raise InputError.single(
            file,
            f"unknown {key}; {key}s are {list(labels)}",
            column=f"{shock.where}.{key}",
            value=name,
        )
    return list(labels).index(name)


def _log_add(mu: npt.NDArray[np.float64], add: float) -> npt.NDArray[np.float64]:
    return np.log(np.maximum(np.exp(mu) + add, MIN_MEDIAN))


def apply_shock(
    params: FunnelParameters, plan: Plan, shock: Shock, *, file: str = "<scenarios>"
) -> tuple[FunnelParameters, Plan]:
    """Apply one shock; return new parameters and plan (the inputs are untouched).

    Parameters
    ----------
    params : FunnelParameters
        Parameter draws.
    plan : Plan
        The plan.
    shock : Shock
        The change.
    file : str
        Scenario file name for error messages.

    Returns
    -------
    (FunnelParameters, Plan)

    Raises
    ------
    InputError
        If the shock names a segment, cell, stage or step the parameters do
        not have.
    """
    if shock.what == "target":
        return params, _shock_target(params, plan, shock, file)
    mask, single_cell = _cells(params, shock, file)
    k, how = shock.value, shock.how
    if shock.what in ("conversion", "delay"):
        j = _axis(params.steps, shock.step, "step", shock, file)
        steps = np.arange(len(params.steps))[j]
        ix = np.ix_(np.arange(params.n_draws), np.flatnonzero(mask), np.atleast_1d(steps))
        if shock.what == "conversion":
            conv = params.conversion.copy()
            sub = conv[ix]
            if how == "scale":
                sub = sub * k
            elif how == "add":
                sub = sub + k
            else:
                sub = np.full_like(sub, k)
            conv[ix] = np.clip(sub, 0.0, 1.0)
            return params.with_arrays(conversion=conv), plan
        mu = params.delay_mu.copy()
        mu[ix] = _median_shock(mu[ix], how, k)
        return params.with_arrays(delay_mu=mu), plan
    if shock.what == "deal_size":
        mu = params.deal_size_mu.copy()
        mu[:, mask] = _median_shock(mu[:, mask], how, k)
        return params.with_arrays(deal_size_mu=mu), plan
    return _shock_arrivals(params, plan, shock, mask, single_cell, file)


def _median_shock(mu: npt.NDArray[np.float64], how: str, k: float) -> npt.NDArray[np.float64]:
    if how == "scale":
        return mu + math.log(k)
    if how == "add":
        return _log_add(mu, k)
    return np.full_like(mu, math.log(max(k, MIN_MEDIAN)))


def _shock_target(params: FunnelParameters, plan: Plan, shock: Shock, file: str) -> Plan:
    targets = dict(plan.targets)
    if shock.segment is not None and shock.segment not in targets:
        raise InputError.single(
            file,
            f"no target for this segment; the plan's segments are {list(targets)}",
            column=f"{shock.where}.segment",
            value=shock.segment,
        )
    names = [shock.segment] if shock.segment is not None else list(targets)
    total = sum(targets[s] for s in names)
    for s in names:
        t = targets[s]
        if shock.how == "scale":
            targets[s] = t * shock.value
        elif shock.how == "add":
            targets[s] = t + shock.value * t / total
        else:
            targets[s] = shock.value * t / total
        if targets[s] <= 0:
            raise InputError.single(
                file,
                "the shocked target must stay positive",
                column=f"{shock.where}.value",
                value=shock.value,
            )
    return replace(plan, targets=targets)


def _shock_arrivals(
    params: FunnelParameters,
    plan: Plan,
    shock: Shock,
    mask: npt.NDArray[np.bool_],
    single_cell: bool,
    file: str,
) -> tuple[FunnelParameters, Plan]:
    e = _axis(params.entry_stages, shock.stage, "stage", shock, file)
    stages = [params.entry_stages[e]] if isinstance(e, int) else list(params.entry_stages)
    seg_idx = sorted(set(params.cell_segment[mask].tolist()))
    seg_names = [params.segments[i] for i in seg_idx]
    planned = {s: dict(v) for s, v in plan.new_units.items()}
    if single_cell and any(st in planned.get(seg_names[0], {}) for st in stages):
        raise InputError.single(
            file,
            "the plan sets new_units for this cell's segment and stage; shock the segment",
            column=f"{shock.where}.segment",
            value=shock.segment,
        )
    rate = params.arrival_rate.copy()
    trend = params.arrival_trend.copy()
    weeks = plan.period_days / 7.0
    if shock.how == "scale":
        for st in stages:
            j = params.entry_stages.index(st)
            rate[:, mask, j] *= shock.value
            for s in seg_names:
                if st in planned.get(s, {}):
                    planned[s][st] *= shock.value
        return params.with_arrays(arrival_rate=rate), replace(plan, new_units=planned)
    assert isinstance(e, int)
    st = params.entry_stages[e]
    # Split the amount over segments (when no segment is named) by each segment's
    # expected units in the period (the plan's new_units where set, else the mean rate).
    base = {}
    for s, si in zip(seg_names, seg_idx, strict=True):
        cells = mask & (params.cell_segment == si)
        if st in planned.get(s, {}):
            base[s] = planned[s][st]
        else:
            base[s] = float(params.arrival_rate[:, cells, e].sum(axis=1).mean()) * weeks
    total_base = sum(base.values())
    for s, si in zip(seg_names, seg_idx, strict=True):
        share = base[s] / total_base if total_base > 0 else 1.0 / len(seg_names)
        amount = shock.value * share
        cells = np.flatnonzero(mask & (params.cell_segment == si))
        if st in planned.get(s, {}):
            new = amount if shock.how == "set" else planned[s][st] + amount
            planned[s][st] = max(new, 0.0)
        sub = params.arrival_rate[:, cells, e]
        tot = sub.sum(axis=1, keepdims=True)
        w = np.where(tot > 0, sub / np.where(tot > 0, tot, 1.0), 1.0 / len(cells))
        per_week = amount / weeks
        if shock.how == "set":
            rate[:, cells, e] = per_week * w
            trend[:, cells, e] = 0.0
        else:
            rate[:, cells, e] = np.maximum(sub + per_week * w, 0.0)
    return (
        params.with_arrays(arrival_rate=rate, arrival_trend=trend),
        replace(plan, new_units=planned),
    )


def apply_scenario(
    params: FunnelParameters, plan: Plan, scenario: Scenario
) -> tuple[FunnelParameters, Plan]:
    """Apply a scenario's shocks in order; the inputs are not modified.

    Each shock acts on the result of the one before it, through
    :func:`apply_shock`, which also says what it returns and raises. A
    shock that does not fit the parameters (unknown segment, stage or step)
    raises :class:`~simengine.errors.InputError` naming the scenario file.

    Parameters
    ----------
    params : FunnelParameters
        Baseline draws the first shock acts on.
    plan : Plan
        Baseline plan.
    scenario : Scenario
        The shocks, in the order they apply.
    """
    for shock in scenario.shocks:
        params, plan = apply_shock(params, plan, shock, file=scenario.file)
    return params, plan

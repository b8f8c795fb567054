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
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from simengine.config.plan import Plan
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

_SHOCK_KEYS = {"what", "segment", "stage", "step", "how", "value"}
_SCENARIO_KEYS = {"name", "title", "description", "shock"}


@dataclass(frozen=True)
class Shock:
    """One change to the inputs.

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

    what: str
    how: str
    value: float
    segment: str | None = None
    stage: str | None = None
    step: str | None = None
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
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError.single(
            p, f"cannot read the scenario file: {exc.strerror or exc}"
        ) from None
    return parse_scenarios(text, source=str(p))


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


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


def parse_scenarios(text: str, source: str = "<scenarios>") -> list[Scenario]:
    """Parse scenario TOML text; see :func:`load_scenarios`."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError.single(source, f"not valid TOML: {exc}") from None
    issues: list[Issue] = []

    def bad(col: str, value: object, rule: str) -> None:
        issues.append(Issue(source, None, col, "" if value is None else str(value), rule))

    for k in raw:
        if k != "scenario":
            bad(k, "", "unknown key; a scenario file holds [[scenario]] tables")
    items = raw.get("scenario")
    if not isinstance(items, list) or not items:
        bad("scenario", "", "needs at least one [[scenario]] table")
        raise InputError(issues, summary=f"invalid scenario file {source}")
    out: list[Scenario] = []
    seen: set[str] = set()
    for i, sc in enumerate(items, start=1):
        at = f"scenario[{i}]"
        if not isinstance(sc, dict):
            bad(at, sc, "must be a table")
            continue
        for k in sc:
            if k not in _SCENARIO_KEYS:
                bad(f"{at}.{k}", "", f"unknown key; known keys: {sorted(_SCENARIO_KEYS)}")
        name = sc.get("name")
        if not isinstance(name, str) or not name.strip():
            bad(f"{at}.name", name, "every scenario needs a non-empty name")
            name = f"scenario{i}"
        elif name == BASELINE:
            bad(f"{at}.name", name, f"{BASELINE!r} is reserved for the unshocked run")
        elif name in seen:
            bad(f"{at}.name", name, "scenario names must be unique")
        seen.add(name)
        for k in ("title", "description"):
            if k in sc and not isinstance(sc[k], str):
                bad(f"{at}.{k}", sc[k], "must be a string")
        raw_shocks = sc.get("shock")
        if not isinstance(raw_shocks, list) or not raw_shocks:
            bad(f"{at}.shock", "", "needs at least one [[scenario.shock]] table")
            continue
        shocks: list[Shock] = []
        for j, sh in enumerate(raw_shocks, start=1):
            sat = f"{at}.shock[{j}]"
            shock = _parse_shock(sh, sat, bad)
            if shock is not None:
                shocks.append(shock)
        out.append(
            Scenario(
                name=name,
                title=str(sc.get("title", name)),
                description=str(sc.get("description", "")),
                shocks=tuple(shocks),
                file=source,
            )
        )
    if issues:
        raise InputError(issues, summary=f"invalid scenario file {source}")
    return out


def _parse_shock(sh: Any, sat: str, bad: Any) -> Shock | None:
    if not isinstance(sh, dict):
        bad(sat, sh, "must be a table")
        return None
    ok = True
    for k in sh:
        if k not in _SHOCK_KEYS:
            bad(f"{sat}.{k}", "", f"unknown key; known keys: {sorted(_SHOCK_KEYS)}")
            ok = False
    what, how = sh.get("what"), sh.get("how")
    if what not in WHATS:
        bad(f"{sat}.what", what, f"must be one of {list(WHATS)}")
        ok = False
    if how not in HOWS:
        bad(f"{sat}.how", how, f"must be one of {list(HOWS)}")
        ok = False
    value = _num(sh.get("value"))
    if value is None:
        bad(f"{sat}.value", sh.get("value"), "must be a finite number")
        ok = False
    for k in ("segment", "stage", "step"):
        if k in sh and (not isinstance(sh[k], str) or not sh[k]):
            bad(f"{sat}.{k}", sh[k], "must be a non-empty string")
            ok = False
    if not ok:
        return None
    assert value is not None
    if "stage" in sh and what != "arrivals":
        bad(f"{sat}.stage", sh["stage"], "only arrivals take a stage (conversion/delay: step)")
        ok = False
    if "step" in sh and what not in ("conversion", "delay"):
        bad(f"{sat}.step", sh["step"], "only conversion and delay shocks take a step")
        ok = False
    if what == "arrivals" and how in ("add", "set") and "stage" not in sh:
        bad(f"{sat}.stage", "", "arrivals add/set need the entry stage the units enter at")
        ok = False
    rule = _value_rule(str(what), str(how), value)
    if rule:
        bad(f"{sat}.value", value, rule)
        ok = False
    if not ok:
        return None
    return Shock(
        what=str(what),
        how=str(how),
        value=value,
        segment=sh.get("segment"),
        stage=sh.get("stage"),
        step=sh.get("step"),
        where=sat,
    )


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

    Parameters
    ----------
    params : FunnelParameters
        Baseline parameter draws.
    plan : Plan
        Baseline plan.
    scenario : Scenario
        The shocks.

    Returns
    -------
    (FunnelParameters, Plan)

    Raises
    ------
    InputError
        If a shock does not fit the parameters (unknown segment, stage, step).
    """
    for shock in scenario.shocks:
        params, plan = apply_shock(params, plan, shock, file=scenario.file)
    return params, plan

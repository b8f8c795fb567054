"""Planner's assumptions (TOML) -> :class:`~simengine.params.FunnelParameters`.

Format (every segment is one cell, labelled by the segment name)::

    stages = ["mql", "sql", "opportunity", "won"]
    pipeline_stage = "opportunity"   # optional (default "opportunity", else stages[-2])
    as_of = 2027-01-04               # optional (default: the plan's as-of date)

    [segments.mid]
    new_per_week = { mql = 110.0, opportunity = 4.0 }   # mean arrivals per week per entry stage
    dispersion = 0.0          # NB overdispersion (var = m + d m^2); scalar or per entry stage
    trend = 0.0               # optional weekly log growth of arrivals; scalar or per entry stage
    conversion = { sql = [0.30, 0.02], opportunity = [0.65, 0.03], won = [0.22, 0.02] }
    delay_days = { sql = [7.0, 0.5], opportunity = [14.0, 0.5], won = [45.0, 0.6] }
    deal_size = [30000.0, 0.4]
    loss_days = { sql = [21.0, 0.7], opportunity = [30.0, 0.7], won = [60.0, 0.8] }  # optional

``conversion`` gives the mean and sd of each step's rate; draws are
Beta(mean, sd) (sd 0 = fixed; an sd with ``sd^2 >= mean (1 - mean)`` is not a
Beta and is an error). ``delay_days`` gives the median (days) and the
log-scale sd of each step's lognormal delay; ``deal_size`` the median and
log-sd of a won deal's amount. Every step needs a conversion and a delay;
entry stages without ``new_per_week`` get no new units.

``loss_days`` (optional) gives, per step like ``delay_days``, the median
(days) and log-sd of the lognormal time to loss of a unit that does *not*
take the step (the competing risk of the fitted model): an open unit aged
``a`` then converts with ``p S_F(a) / (p S_F(a) + (1 - p) S_G(a))`` and a
non-converter leaves the pipeline after that time. Give it for every step of
every segment, or for none: without it non-converters are never lost (open
units convert with ``p S_F(a) / (1 - p F(a))``) and leave the pipeline after
a draw from the step's delay law. A file without ``loss_days`` therefore
reads exactly as before it existed (same inputs and seed, same forecast)
rather than getting an invented default: a loss law is a planning
assumption of its own, and the bundled ``models/assumptions.toml`` states
one. Without it, lost deals stay in the pipeline for a delay's time, so
where lost deals really leave sooner than won ones close coverage is
overstated.

Open units (``--pipeline records.csv --model SPEC``) come from
:func:`pipeline_from_records`: each record's cell maps to the assumption
segment named by its reporting segment (the first ``segment_by`` value).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
from pydantic import BeforeValidator, Field
from pydantic_core import PydanticCustomError

from simengine.config import tables
from simengine.config.tables import Date, Table, finite, non_empty, number, rule
from simengine.errors import InputError, Issue
from simengine.params import FunnelParameters, OpenUnits

__all__ = ["parse_assumptions", "read_assumptions"]

_PAIR = "must be a pair of numbers [a, b]"


def _as_pair(words: str) -> BeforeValidator:
    """Take a TOML ``[a, b]`` of two finite numbers as a tuple of floats."""

    def run(v: Any) -> tuple[float, float]:
        if isinstance(v, list) and len(v) == 2 and all(finite(x) for x in v):
            return float(v[0]), float(v[1])
        raise PydanticCustomError("simengine_rule", words)

    return BeforeValidator(run)


_Pair = Annotated[tuple[float, float], _as_pair(_PAIR)]
_PerStep = Annotated[
    dict[str, _Pair],
    rule(lambda v: isinstance(v, dict), "needs a table with one [a, b] pair per step"),
]


def _stage_names(v: Any) -> tuple[str, ...]:
    if (
        isinstance(v, list)
        and len(v) >= 2
        and all(isinstance(s, str) and s for s in v)
        and len(set(v)) == len(v)
    ):
        return tuple(v)
    raise PydanticCustomError(
        "simengine_rule", "must be a list of at least two distinct stage names"
    )


class _Segment(Table):
    """One ``[segments.<name>]`` table; keys that depend on the stages are checked after."""

    new_per_week: Annotated[
        dict[str, Annotated[float, number(lambda v: v >= 0, "must be a number >= 0")]],
        rule(lambda v: isinstance(v, dict), "must be a table of entry stage = units per week"),
    ] = Field(default_factory=dict)
    dispersion: Any = 0.0
    trend: Any = 0.0
    conversion: _PerStep | None = None
    delay_days: _PerStep | None = None
    deal_size: (
        Annotated[
            tuple[float, float],
            rule(
                lambda p: p[0] > 0 and p[1] >= 0, "median must be > 0 and log-sd >= 0", after=True
            ),
            _as_pair("needs [median, log-sd]"),
        ]
        | None
    ) = None
    loss_days: _PerStep | None = None


class _AssumptionsFile(Table):
    """The top level of an assumptions file."""

    name: str | None = None
    description: str | None = None
    stages: Annotated[tuple[str, ...], BeforeValidator(_stage_names)] = Field(
        default=None, validate_default=True
    )
    pipeline_stage: str | None = None
    as_of: Date | None = None
    segments: Annotated[dict[str, Any], non_empty("needs at least one [segments.<name>] table")] = (
        Field(default_factory=dict, validate_default=True)
    )


def read_assumptions(
    path: str | Path,
    n_draws: int = 4000,
    seed: int = 0,
    pipeline: OpenUnits | None = None,
    *,
    as_of: dt.date | None = None,
) -> FunnelParameters:
    """Read an assumptions file into parameter draws.

    Parameters
    ----------
    path : str or Path
        The TOML file (only read).
    n_draws : int
        Draws of the uncertain conversion rates.
    seed : int
        Seed of those draws.
    pipeline : OpenUnits, optional
        Open units, cell index = segment index in file order (see
        :func:`pipeline_from_records`).
    as_of : date, optional
        Used when the file has no ``as_of`` (pass the plan's).

    Raises
    ------
    InputError
        Naming the file, key, value and rule of every problem.
    """
    text = tables.read_text(path, "assumptions")
    return parse_assumptions(
        text, source=str(Path(path)), n_draws=n_draws, seed=seed, pipeline=pipeline, as_of=as_of
    )


def parse_assumptions(
    text: str,
    source: str = "<assumptions>",
    n_draws: int = 4000,
    seed: int = 0,
    pipeline: OpenUnits | None = None,
    as_of: dt.date | None = None,
) -> FunnelParameters:
    """Parse assumptions TOML text; see :func:`read_assumptions`."""
    raw = tables.toml_table(text, source)
    issues: list[Issue] = []

    def bad(key: str, value: Any, rule: str) -> None:
        issues.append(Issue(source, None, key, "" if value is None else str(value), rule))

    top = tables.validate(_AssumptionsFile, raw, source, issues, salvage=True)
    if (
        top is None
        or "stages" not in top.model_fields_set
        or "segments" not in top.model_fields_set
    ):
        raise InputError(issues, summary=f"invalid assumptions {source}")
    stages = top.stages
    steps, entry = stages[1:], stages[:-1]
    default_pipe = "opportunity" if "opportunity" in stages[:-1] else stages[-2]
    pipe_name = top.pipeline_stage or default_pipe
    if pipe_name not in entry:
        bad("pipeline_stage", pipe_name, f"must be one of {list(entry)}")
    day0 = top.as_of or as_of
    if day0 is None and "as_of" not in raw:
        bad("as_of", None, "must be a date (YYYY-MM-DD); required when no plan gives one")
    if n_draws < 1:
        raise ValueError("n_draws must be >= 1")

    names = tuple(str(s) for s in top.segments)
    c_n, s_n = len(names), len(steps)
    # per segment and step (or entry stage): conversion mean and sd, delay
    # log-median and log-sd, arrival rate, dispersion and trend, loss law
    conv_mean, conv_sd, dmu, dsig, rate, disp, trend, lmu, lsig = np.zeros((9, c_n, s_n))
    amu, asig = np.zeros((2, c_n))  # deal size log-median and log-sd per segment
    with_loss: list[str] = []

    for c, name in enumerate(names):
        key = f"segments.{name}"
        raw_seg = top.segments[name]
        seg = tables.validate(_Segment, raw_seg, source, issues, where=key, salvage=True)
        if seg is None:
            continue
        given = seg.model_fields_set
        for st, f in seg.new_per_week.items():
            if st not in entry:
                bad(
                    f"{key}.new_per_week.{st}",
                    f,
                    f"not an entry stage; entry stages: {list(entry)}",
                )
            else:
                rate[c, entry.index(st)] = f
        for field, arr in (("dispersion", disp), ("trend", trend)):
            v = getattr(seg, field)
            if isinstance(v, dict):
                for st, x in v.items():
                    if st not in entry:
                        bad(
                            f"{key}.{field}.{st}",
                            x,
                            f"not an entry stage; entry stages: {list(entry)}",
                        )
                    elif not finite(x) or (field == "dispersion" and x < 0):
                        bad(
                            f"{key}.{field}.{st}",
                            x,
                            "must be a number" + (" >= 0" if field == "dispersion" else ""),
                        )
                    else:
                        arr[c, entry.index(st)] = x
            elif not finite(v) or (field == "dispersion" and v < 0):
                bad(
                    f"{key}.{field}",
                    v,
                    "must be a number"
                    + (" >= 0" if field == "dispersion" else "")
                    + " or a table per entry stage",
                )
            else:
                arr[c, :] = v
        if "loss_days" in raw_seg:
            with_loss.append(name)
        for field in ("conversion", "delay_days", "loss_days"):
            table = getattr(seg, field)
            if field in raw_seg and field not in given:
                continue  # reported by the table's model
            if table is None:
                if field != "loss_days":
                    bad(
                        f"{key}.{field}",
                        None,
                        f"needs a table with one [a, b] pair per step {list(steps)}",
                    )
                continue
            for st in table:
                if st not in steps:
                    bad(f"{key}.{field}.{st}", "", f"not a step; steps: {list(steps)}")
            for s, st in enumerate(steps):
                k2 = f"{key}.{field}.{st}"
                if st not in table:
                    bad(k2, "", "missing: every step needs a value")
                    continue
                a, b = table[st]
                value = [a, b]
                if field == "conversion":
                    if not 0.0 <= a <= 1.0:
                        bad(k2, value, "mean rate must lie in [0, 1]")
                    elif b < 0:
                        bad(k2, value, "sd must be >= 0")
                    elif b > 0 and b * b >= a * (1 - a):
                        bad(
                            k2,
                            value,
                            "sd too large for a Beta with this mean: needs "
                            f"sd^2 < mean (1 - mean) = {a * (1 - a):.4g}",
                        )
                    else:
                        conv_mean[c, s], conv_sd[c, s] = a, b
                else:
                    what = "delay" if field == "delay_days" else "time to loss"
                    if a <= 0:
                        bad(k2, value, f"median {what} (days) must be > 0")
                    elif b < 0:
                        bad(k2, value, "log-sd must be >= 0")
                    elif field == "delay_days":
                        dmu[c, s], dsig[c, s] = math.log(a), b
                    else:
                        lmu[c, s], lsig[c, s] = math.log(a), b
        if seg.deal_size is not None:
            amu[c], asig[c] = math.log(seg.deal_size[0]), seg.deal_size[1]
        elif "deal_size" not in raw_seg:
            bad(f"{key}.deal_size", None, "needs [median, log-sd]")

    if with_loss and len(with_loss) != c_n:
        without = [n for n in names if n not in with_loss]
        for n in without:
            bad(
                f"segments.{n}.loss_days",
                "",
                "missing: give loss_days for every segment or for none "
                f"(segments with it: {with_loss})",
            )
    if (
        pipeline is not None
        and len(pipeline)
        and (pipeline.cell.min() < 0 or pipeline.cell.max() >= c_n or pipeline.stage.max() >= s_n)
    ):
        bad("segments", "", "open units refer to segments or stages not in the file")
    if issues:
        raise InputError(issues, summary=f"invalid assumptions {source}")
    if day0 is None:  # reported above
        raise InputError(issues, summary=f"invalid assumptions {source}")

    rng = np.random.default_rng(seed)
    conversion = np.broadcast_to(conv_mean, (n_draws, c_n, s_n)).copy()
    var = conv_sd**2
    uncertain = var > 0
    if uncertain.any():
        mean = conv_mean[uncertain]
        kappa = mean * (1 - mean) / var[uncertain] - 1.0
        conversion[:, uncertain] = rng.beta(
            mean * kappa, (1 - mean) * kappa, size=(n_draws, mean.size)
        )

    def rep(a: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.broadcast_to(a, (n_draws, *a.shape)).copy()

    return FunnelParameters(
        stages=stages,
        cells=names,
        segments=names,
        cell_segment=np.arange(c_n, dtype=np.int64),
        pipeline_stage=stages.index(str(pipe_name)),
        as_of=day0,
        conversion=conversion,
        delay_mu=rep(dmu),
        delay_sigma=rep(dsig),
        arrival_rate=rep(rate),
        arrival_dispersion=rep(disp),
        arrival_trend=rep(trend),
        deal_size_mu=rep(amu),
        deal_size_sigma=rep(asig),
        loss_mu=rep(lmu) if with_loss else None,
        loss_sigma=rep(lsig) if with_loss else None,
        open_units=pipeline if pipeline is not None else OpenUnits.empty(),
        source="assumptions",
        attrs={
            "assumptions_sha256": hashlib.sha256(text.encode()).hexdigest(),
            "assumptions_seed": str(seed),
            "assumptions_file": source,
            "stages": json.dumps(list(stages)),
        },
    )

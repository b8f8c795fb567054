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
a draw from the step's delay law.

Open units (``--pipeline records.csv --model SPEC``) come from
:func:`pipeline_from_records`: each record's cell maps to the assumption
segment named by its reporting segment (the first ``segment_by`` value).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from simengine.errors import InputError, Issue
from simengine.params import FunnelParameters, OpenUnits

__all__ = ["parse_assumptions", "pipeline_from_records", "read_assumptions"]

_TOP = {"stages", "pipeline_stage", "as_of", "segments", "name", "description"}
_SEG = {
    "new_per_week",
    "dispersion",
    "trend",
    "conversion",
    "delay_days",
    "deal_size",
    "loss_days",
}


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def _pair(v: Any) -> tuple[float, float] | None:
    if not isinstance(v, list) or len(v) != 2:
        return None
    a, b = _num(v[0]), _num(v[1])
    return None if a is None or b is None else (a, b)


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
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError.single(
            p, f"cannot read the assumptions file: {exc.strerror or exc}"
        ) from None
    return parse_assumptions(
        text, source=str(p), n_draws=n_draws, seed=seed, pipeline=pipeline, as_of=as_of
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
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError.single(source, f"not valid TOML: {exc}") from None
    issues: list[Issue] = []

    def bad(key: str, value: Any, rule: str) -> None:
        issues.append(Issue(source, None, key, "" if value is None else str(value), rule))

    for k in raw:
        if k not in _TOP:
            bad(k, "", f"unknown key; known keys: {sorted(_TOP)}")
    stages_raw = raw.get("stages")
    if (
        not isinstance(stages_raw, list)
        or len(stages_raw) < 2
        or not all(isinstance(s, str) and s for s in stages_raw)
        or len(set(stages_raw)) != len(stages_raw)
    ):
        bad("stages", stages_raw, "must be a list of at least two distinct stage names")
        raise InputError(issues, summary=f"invalid assumptions {source}")
    stages = tuple(stages_raw)
    steps, entry = stages[1:], stages[:-1]
    default_pipe = "opportunity" if "opportunity" in stages[:-1] else stages[-2]
    pipe_name = raw.get("pipeline_stage", default_pipe)
    if pipe_name not in entry:
        bad("pipeline_stage", pipe_name, f"must be one of {list(entry)}")
    day0 = raw.get("as_of", as_of)
    if isinstance(day0, dt.datetime):
        day0 = day0.date()
    if not isinstance(day0, dt.date):
        bad("as_of", day0, "must be a date (YYYY-MM-DD); required when no plan gives one")
    segs = raw.get("segments")
    if not isinstance(segs, dict) or not segs:
        bad("segments", "", "needs at least one [segments.<name>] table")
        raise InputError(issues, summary=f"invalid assumptions {source}")
    if n_draws < 1:
        raise ValueError("n_draws must be >= 1")

    names = tuple(str(s) for s in segs)
    c_n, s_n = len(names), len(steps)
    conv_mean = np.zeros((c_n, s_n))
    conv_sd = np.zeros((c_n, s_n))
    dmu = np.zeros((c_n, s_n))
    dsig = np.zeros((c_n, s_n))
    rate = np.zeros((c_n, s_n))
    disp = np.zeros((c_n, s_n))
    trend = np.zeros((c_n, s_n))
    amu = np.zeros(c_n)
    asig = np.zeros(c_n)
    lmu = np.zeros((c_n, s_n))
    lsig = np.zeros((c_n, s_n))
    with_loss: list[str] = []

    for c, name in enumerate(names):
        seg = segs[name]
        key = f"segments.{name}"
        if not isinstance(seg, dict):
            bad(key, seg, "must be a table")
            continue
        for k in seg:
            if k not in _SEG:
                bad(f"{key}.{k}", "", f"unknown key; known keys: {sorted(_SEG)}")
        npw = seg.get("new_per_week", {})
        if not isinstance(npw, dict):
            bad(f"{key}.new_per_week", npw, "must be a table of entry stage = units per week")
            npw = {}
        for st, v in npw.items():
            f = _num(v)
            if st not in entry:
                bad(
                    f"{key}.new_per_week.{st}",
                    v,
                    f"not an entry stage; entry stages: {list(entry)}",
                )
            elif f is None or f < 0:
                bad(f"{key}.new_per_week.{st}", v, "must be a number >= 0")
            else:
                rate[c, entry.index(st)] = f
        for field, arr in (("dispersion", disp), ("trend", trend)):
            v = seg.get(field, 0.0)
            if isinstance(v, dict):
                for st, x in v.items():
                    f = _num(x)
                    if st not in entry:
                        bad(
                            f"{key}.{field}.{st}",
                            x,
                            f"not an entry stage; entry stages: {list(entry)}",
                        )
                    elif f is None or (field == "dispersion" and f < 0):
                        bad(
                            f"{key}.{field}.{st}",
                            x,
                            "must be a number" + (" >= 0" if field == "dispersion" else ""),
                        )
                    else:
                        arr[c, entry.index(st)] = f
            else:
                f = _num(v)
                if f is None or (field == "dispersion" and f < 0):
                    bad(
                        f"{key}.{field}",
                        v,
                        "must be a number"
                        + (" >= 0" if field == "dispersion" else "")
                        + " or a table per entry stage",
                    )
                else:
                    arr[c, :] = f
        conv = seg.get("conversion")
        delay = seg.get("delay_days")
        tables: list[tuple[str, Any]] = [("conversion", conv), ("delay_days", delay)]
        if "loss_days" in seg:
            with_loss.append(name)
            tables.append(("loss_days", seg["loss_days"]))
        for field, table in tables:
            if not isinstance(table, dict):
                bad(
                    f"{key}.{field}",
                    table,
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
                pair = _pair(table[st])
                if pair is None:
                    bad(k2, table[st], "must be a pair of numbers [a, b]")
                    continue
                a, b = pair
                if field == "conversion":
                    if not 0.0 <= a <= 1.0:
                        bad(k2, table[st], "mean rate must lie in [0, 1]")
                    elif b < 0:
                        bad(k2, table[st], "sd must be >= 0")
                    elif b > 0 and b * b >= a * (1 - a):
                        bad(
                            k2,
                            table[st],
                            "sd too large for a Beta with this mean: needs "
                            f"sd^2 < mean (1 - mean) = {a * (1 - a):.4g}",
                        )
                    else:
                        conv_mean[c, s], conv_sd[c, s] = a, b
                else:
                    what = "delay" if field == "delay_days" else "time to loss"
                    if a <= 0:
                        bad(k2, table[st], f"median {what} (days) must be > 0")
                    elif b < 0:
                        bad(k2, table[st], "log-sd must be >= 0")
                    elif field == "delay_days":
                        dmu[c, s], dsig[c, s] = math.log(a), b
                    else:
                        lmu[c, s], lsig[c, s] = math.log(a), b
        ds_pair = _pair(seg.get("deal_size"))
        if ds_pair is None:
            bad(f"{key}.deal_size", seg.get("deal_size"), "needs [median, log-sd]")
        elif ds_pair[0] <= 0 or ds_pair[1] < 0:
            bad(f"{key}.deal_size", seg.get("deal_size"), "median must be > 0 and log-sd >= 0")
        else:
            amu[c], asig[c] = math.log(ds_pair[0]), ds_pair[1]

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
    assert isinstance(day0, dt.date)

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


def pipeline_from_records(
    records: str | Path,
    spec_path: str | Path,
    as_of: dt.date,
    segments: Sequence[str],
    stages: Sequence[str],
) -> OpenUnits:
    """Open units of a records file at ``as_of``, mapped to assumption segments.

    Parameters
    ----------
    records : str or Path
        Records file (CSV or Parquet) read with the spec's mapping.
    spec_path : str or Path
        The funnel spec (``--model``).
    as_of : date
        Snapshot date (the plan's as-of date).
    segments : sequence of str
        The assumption segments, in file order (cell index = position).
    stages : sequence of str
        The assumption stages (must equal the spec's).

    Raises
    ------
    InputError
        Different stages, or a record segment missing from the assumptions.
    """
    from simengine.config.spec import load_spec
    from simengine.io.records import load_records
    from simengine.snapshot import cell_labels, open_units

    spec = load_spec(spec_path)
    if tuple(spec.stages) != tuple(stages):
        raise InputError.single(
            spec_path,
            f"the spec's stages {list(spec.stages)} differ from the assumptions' {list(stages)}",
            column="stages",
        )
    df = load_records(records, spec)
    cells = tuple(sorted(set(cell_labels(df, spec))))
    ou = open_units(df, spec, as_of, cells)
    seg_of_cell = [c.split("/")[0] for c in cells]
    used = sorted({seg_of_cell[i] for i in np.unique(ou.cell)})
    missing = [s for s in used if s not in segments]
    if missing:
        raise InputError(
            [
                Issue(
                    str(records),
                    None,
                    spec.segment_by[0],
                    s,
                    f"segment not in the assumptions {list(segments)}",
                )
                for s in missing
            ],
            summary=f"open units of {records} do not fit the assumptions",
        )
    mapping = np.array(
        [list(segments).index(s) if s in segments else -1 for s in seg_of_cell], dtype=np.int64
    )
    return OpenUnits(
        cell=mapping[ou.cell] if len(ou) else np.zeros(0, np.int64),
        stage=ou.stage,
        age_days=ou.age_days,
        amount=ou.amount,
    )

"""Helpers for engine tests: small FunnelParameters and plans built in code."""

from __future__ import annotations

import datetime as dt

import numpy as np

from simengine.config.plan import Plan
from simengine.params import FunnelParameters, OpenUnits

AS_OF = dt.date(2027, 1, 4)


def make_params(
    *,
    stages: tuple[str, ...] = ("mql", "sql", "opportunity", "won"),
    segments: tuple[str, ...] = ("smb", "mid", "ent"),
    channels: tuple[str, ...] = ("web", "out"),
    draws: int = 20,
    conversion: float | tuple[float, ...] = (0.3, 0.65, 0.22),
    conversion_sd: float = 0.0,
    delay_median: float | tuple[float, ...] = (7.0, 14.0, 45.0),
    delay_sigma: float = 0.5,
    rate: float | tuple[float, ...] = (30.0, 0.0, 1.0),
    dispersion: float = 0.0,
    trend: float = 0.0,
    deal_median: float = 30000.0,
    deal_sigma: float = 0.4,
    pipeline_stage: int | None = None,
    open_units: OpenUnits | None = None,
    loss_median: float | tuple[float, ...] | None = None,
    loss_sigma: float = 0.7,
    seed: int = 0,
) -> FunnelParameters:
    """Parameters with the same values in every cell (optionally uncertain conversion).

    ``loss_median`` (days, per step) gives the fitted time to loss of
    non-converters (lognormal with log-sd ``loss_sigma``); None = no loss law.
    """
    rng = np.random.default_rng(seed)
    cells = tuple(f"{s}/{c}" for s in segments for c in channels) if channels else segments
    n_c, n_s = len(cells), len(stages) - 1
    conv = np.broadcast_to(np.asarray(conversion, float), (draws, n_c, n_s)).copy()
    if conversion_sd > 0:
        conv = np.clip(conv + rng.normal(0, conversion_sd, conv.shape), 0.0, 1.0)
    full = lambda v: np.broadcast_to(np.asarray(v, float), (draws, n_c, n_s)).copy()  # noqa: E731
    return FunnelParameters(
        stages=stages,
        cells=cells,
        segments=segments,
        cell_segment=np.repeat(np.arange(len(segments)), max(len(channels), 1)),
        pipeline_stage=pipeline_stage if pipeline_stage is not None else n_s - 1,
        as_of=AS_OF,
        conversion=conv,
        delay_mu=np.log(full(delay_median)),
        delay_sigma=full(delay_sigma),
        arrival_rate=full(rate),
        arrival_dispersion=full(dispersion),
        arrival_trend=full(trend),
        deal_size_mu=np.full((draws, n_c), np.log(deal_median)),
        deal_size_sigma=np.full((draws, n_c), deal_sigma),
        loss_mu=None if loss_median is None else np.log(full(loss_median)),
        loss_sigma=None if loss_median is None else full(loss_sigma),
        open_units=open_units if open_units is not None else OpenUnits.empty(),
    )


def make_plan(
    segments: tuple[str, ...] = ("smb", "mid", "ent"),
    *,
    target: float = 1_000_000.0,
    weeks: int = 13,
    start_delay_days: int = 0,
    horizon_days: int | None = None,
    new_units: dict[str, dict[str, float]] | None = None,
) -> Plan:
    """A plan starting ``start_delay_days`` after the as-of date, ``weeks`` long."""
    start = AS_OF + dt.timedelta(days=start_delay_days)
    return Plan(
        start=start,
        end=start + dt.timedelta(days=7 * weeks - 1),
        as_of=AS_OF,
        targets=dict.fromkeys(segments, target),
        new_units=new_units or {},
        horizon_days=horizon_days,
        text=f"test plan {segments} {target} {weeks} {start_delay_days} {horizon_days} {new_units}",
    )


def random_open_units(n: int, n_cells: int, n_steps: int, seed: int = 0) -> OpenUnits:
    rng = np.random.default_rng(seed)
    return OpenUnits(
        cell=rng.integers(0, n_cells, n).astype(np.int64),
        stage=rng.integers(0, n_steps, n).astype(np.int64),
        age_days=rng.integers(0, 60, n).astype(np.float64),
        amount=np.where(rng.random(n) < 0.5, rng.lognormal(np.log(25000), 0.3, n), np.nan),
    )


def loss_params(**kw: object) -> FunnelParameters:
    """Marketing-sourced MQLs, sales-sourced opportunities, 300 open units, a time to loss.

    The pipeline starts at ``sql``; keyword arguments override
    :func:`make_params`'s.
    """
    base: dict[str, object] = {
        "rate": (20.0, 0.0, 1.5),
        "dispersion": 0.1,
        "conversion_sd": 0.03,
        "pipeline_stage": 1,
        "open_units": random_open_units(300, 6, 3, seed=2),
        "loss_median": (12.0, 20.0, 35.0),
        "loss_sigma": 0.8,
    }
    return make_params(**{**base, **kw})  # type: ignore[arg-type]


def drift_params(
    drift: float = 0.5, level: float = 0.08, dormant: float = 0.4, **kw: object
) -> FunnelParameters:
    """:func:`loss_params` (dispersion 0.05) with the drift ahead and dormant units.

    ``drift``: sd of the logit conversion walk per 30-day period; ``level``:
    sd of the weekly log arrival level walk; ``dormant``: share of a step's
    pipeline non-converters that stay open for good.
    """
    p = loss_params(**{"dispersion": 0.05, **kw})
    d = p.n_draws
    return p.with_arrays(
        conversion_drift_sd=np.full(d, drift),
        arrival_level_sd=np.full((d, 3), level),
        dormant=np.full(p.conversion.shape, dormant),
        drift_period_days=30,  # type: ignore[arg-type]
    )


def ahead_plan(**kw: object) -> Plan:
    """The plan of the drift-ahead comparisons: a 120-day horizon, a 400,000 target.

    Keyword arguments go to :func:`make_plan`.
    """
    return make_plan(target=400_000.0, horizon_days=120, **kw)  # type: ignore[arg-type]


def agreement_configs(drift: bool = False) -> list[tuple[str, FunnelParameters, Plan]]:
    """The configurations two path laws are compared on, as ``(name, params, plan)``.

    Shared by ``test_reference.py`` (engine vs NumPy reference) and
    ``test_thinned.py`` (thinned vs per-unit model): the demo's shape; a
    sales-sourced pipeline with a trend, a later start and a long horizon;
    the fitted time to loss with open units in every stage; a period and
    horizon off the weekly grid; planned new units. ``drift=True`` adds a
    sixth: the drift ahead (conversion and arrival-level walks), dormant
    units, a time to loss and planned new units.
    """
    out = [
        (
            "demo-like",
            make_params(
                rate=(20.0, 0.0, 0.5),
                dispersion=0.1,
                conversion_sd=0.03,
                open_units=random_open_units(200, 6, 3),
            ),
            make_plan(target=400_000.0),
        ),
        (
            "sales-sourced, trend, later start, long horizon",
            make_params(
                rate=(15.0, 0.0, 2.0),
                trend=0.02,
                pipeline_stage=1,
                deal_sigma=0.6,
                open_units=random_open_units(150, 6, 3, seed=1),
                delay_median=(5.0, 10.0, 30.0),
            ),
            make_plan(target=600_000.0, start_delay_days=14, horizon_days=140),
        ),
        (
            "fitted time to loss, open units in every stage, sales-sourced pipeline",
            loss_params(),
            make_plan(target=400_000.0, start_delay_days=7),
        ),
        (
            # the engine thins a week's arrivals at once and counts the units that
            # stop at their entry stage by a binomial over the week's days inside
            # the period: a start, an end and a horizon off the weekly grid
            "period and horizon off the weekly grid",
            make_params(
                rate=(20.0, 0.0, 1.0),
                dispersion=0.1,
                open_units=random_open_units(100, 6, 3, seed=3),
            ),
            make_plan(target=300_000.0, start_delay_days=10, weeks=12, horizon_days=100),
        ),
        (
            "planned new units",
            make_params(rate=(20.0, 0.0, 0.5), conversion_sd=0.05, draws=7),
            make_plan(
                target=300_000.0, new_units={"smb": {"mql": 400.0}, "mid": {"opportunity": 30.0}}
            ),
        ),
    ]
    if drift:
        p = drift_params()
        plan = make_plan(target=400_000.0, horizon_days=120, new_units={"smb": {"mql": 300.0}})
        out.append(("drift ahead, dormant units, planned units", p, plan))
    return out

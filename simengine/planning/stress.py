"""Stress tests: every scenario on the baseline's random numbers.

Each scenario's shocked parameters and plan are simulated with the baseline's
seed, paths and blocks, so path ``i`` of every scenario uses the same
posterior draw and the same random streams (common random numbers, CRN): the
difference to the baseline is the shock's effect plus far less noise than
with independent streams. For each scenario, segment and headline statistic
``stress.csv`` reports the value, the baseline, the change, the change's
Monte Carlo standard error on CRN (batch means over paired batches), the
standard error the same change would have with independent streams, and
their ratio of variances (the variance reduction, measured on the run).

``stress.csv`` (tidy), one row per scenario × segment × statistic:

``scenario, title, segment, metric, stat, value, value_se, baseline, delta,
delta_se, delta_se_independent, variance_reduction``

(``value_se``: batch-means Monte Carlo standard error of ``value``)

with ``scenario == "baseline"`` rows first (``delta`` 0 and errors NaN) and
statistics ``attainment/prob_hit`` (P(hit)), ``revenue/p10, p50, p90, mean``
and ``time_to_target_days/p50`` (``inf`` where the target is not reached by
half the paths; its change is then NaN).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from simengine.config.plan import Plan
from simengine.params import FunnelParameters
from simengine.planning import _runs
from simengine.planning._output import write_table_and_chart
from simengine.planning.scenarios import BASELINE, Scenario, apply_scenario

if TYPE_CHECKING:
    from simengine.engine.simulate import BlockMap

__all__ = ["COLUMNS", "STRESS_STATS", "plot_stress", "run_stress", "write_stress"]

STRESS_STATS: tuple[tuple[str, str], ...] = (
    ("attainment", "prob_hit"),
    ("revenue", "p10"),
    ("revenue", "p50"),
    ("revenue", "p90"),
    ("revenue", "mean"),
    ("time_to_target_days", "p50"),
)
"""The (metric, stat) pairs reported per scenario and segment."""

COLUMNS = (
    "scenario",
    "title",
    "segment",
    "metric",
    "stat",
    "value",
    "value_se",
    "baseline",
    "delta",
    "delta_se",
    "delta_se_independent",
    "variance_reduction",
)


def run_stress(
    params: FunnelParameters,
    plan: Plan,
    scenarios: Sequence[Scenario],
    *,
    paths: int = 200_000,
    seed: int,
    batches: int = 20,
    threads: int | None = None,
    on_scenario: Callable[[str], None] | None = None,
    block_map: BlockMap | None = None,
) -> pd.DataFrame:
    """Run the baseline and every scenario on common random numbers.

    Parameters
    ----------
    params : FunnelParameters
        Baseline parameter draws.
    plan : Plan
        Baseline plan.
    scenarios : sequence of Scenario
        Scenarios to run (shocks are checked against ``params`` first, so a
        bad scenario fails before any simulation).
    paths : int
        Paths per scenario.
    seed : int
        The one seed of every scenario (common random numbers).
    batches : int
        Monte Carlo batches per run for batch-means errors
        (:func:`simengine.planning._runs.run`).
    threads : int, optional
        Worker threads.
    on_scenario : callable, optional
        Called with each scenario's name before it runs (progress).
    block_map : BlockMap, optional
        Where every run's blocks run (default: this process's threads; the
        Dask map of :func:`simengine.engine.distributed.cluster_block_map` for a
        cluster). The table is bitwise the same wherever they run.

    Returns
    -------
    pandas.DataFrame
        The ``stress.csv`` table (see module docstring).

    Raises
    ------
    InputError
        If a scenario names a segment, cell, stage or step the parameters do
        not have.
    """
    shocked = [(sc, *apply_scenario(params, plan, sc)) for sc in scenarios]
    if on_scenario:
        on_scenario(BASELINE)
    run = _runs.runner(
        paths=paths, seed=seed, batches=batches, threads=threads, block_map=block_map
    )
    base = run(params, plan)
    segments = [*params.segments, "total"]
    rows: list[dict[str, Any]] = []
    for g in segments:
        for m, s in STRESS_STATS:
            v = base.value(g, m, s)
            se = _runs.batch_se(base.batch(g, m, s), base.weights)
            rows.append(_row(BASELINE, "Baseline", g, m, s, v, se, v, 0.0, *(float("nan"),) * 3))
    for sc, p, pl in shocked:
        if on_scenario:
            on_scenario(sc.name)
        r = run(p, pl)
        for g in segments:
            for m, s in STRESS_STATS:
                d = _runs.paired(r, base, g, m, s)
                rows.append(
                    _row(
                        sc.name,
                        sc.title,
                        g,
                        m,
                        s,
                        d.value,
                        d.value_se,
                        d.baseline,
                        d.delta,
                        d.se,
                        d.se_independent,
                        d.variance_reduction,
                    )
                )
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _row(*values: Any) -> dict[str, Any]:
    return dict(zip(COLUMNS, values, strict=True))


def write_stress(df: pd.DataFrame, out_dir: str | Path, *, force: bool = False) -> Path:
    """Write ``stress.csv`` and its chart ``stress.png`` atomically into ``out_dir``."""
    return write_table_and_chart(
        df, out_dir, csv_name="stress.csv", png_name="stress.png", plot=plot_stress, force=force
    )


def plot_stress(df: pd.DataFrame, ax: Any = None, *, segment: str | None = None) -> Any:
    """Comparison chart: change in P(hit) per scenario and segment, ±2 MC se.

    Parameters
    ----------
    df : pandas.DataFrame
        A ``stress.csv`` table.
    ax : matplotlib Axes, optional
        Where to draw; a new figure if omitted.
    segment : str, optional
        Only this segment (default: every segment, grouped bars).

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn on.
    """
    import matplotlib.pyplot as plt

    d = df[(df["metric"] == "attainment") & (df["stat"] == "prob_hit")]
    d = d[d["scenario"] != BASELINE]
    if segment is not None:
        d = d[d["segment"] == segment]
    scen = list(dict.fromkeys(d["scenario"]))
    titles = [str(d[d["scenario"] == s]["title"].iloc[0]) for s in scen]
    segs = list(dict.fromkeys(d["segment"]))
    if ax is None:
        fig, ax = plt.subplots(
            figsize=(8, 0.5 + 0.45 * max(1, len(scen)) * max(1, len(segs)) ** 0.5),
            layout="constrained",  # room for the scenario titles
        )
    else:
        fig = ax.figure
    height = 0.8 / max(1, len(segs))
    y = np.arange(len(scen), dtype=float)
    for i, g in enumerate(segs):
        sub = d[d["segment"] == g].set_index("scenario").reindex(scen)
        ax.barh(
            y + (i - (len(segs) - 1) / 2) * height,
            100 * sub["delta"].to_numpy(float),
            height=height,
            xerr=200 * sub["delta_se"].to_numpy(float),
            label=g,
            capsize=2,
        )
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels(titles)
    ax.invert_yaxis()
    ax.set_xlabel("change in P(hit target) vs baseline, points (bars: ±2 MC se, CRN)")
    if len(segs) > 1:
        ax.legend(title="segment", fontsize="small")
    return fig

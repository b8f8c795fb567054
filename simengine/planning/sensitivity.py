"""One-at-a-time sensitivity on common random numbers, ranked; top risks in words.

For every input of every segment (new-unit volume per entry stage, each
step's conversion rate, each step's delay, the deal size) the input is moved
down and up by one posterior standard deviation (or by a stated percentage)
and the forecast is run again on the baseline's seed, paths and blocks. The
change in P(hit target) and in P50 revenue, with its Monte Carlo standard
error on common random numbers (batch means over paired batches), is reported
for the input's own segment and for ``total``, and inputs are ranked by the
swing of P(hit) between the two moves.

What "one posterior sd" means per input (the spread across draws of the
segment's value; cells of the segment move together):

=============  ===================================  ==================================
input          spread                               move
=============  ===================================  ==================================
arrivals       sd / mean of the segment's weekly    volume × (1 ± sd/mean)
               rate at that entry stage
conversion     sd of the cell-average rate          rate ± sd (probability points)
delay          sd of the cell-average log median    median × exp(± sd)
deal_size      sd of the cell-average log median    median × exp(± sd)
=============  ===================================  ==================================

Where the spread is 0 (fixed assumptions, or arrivals replaced by the plan's
``new_units``), or when ``pct`` is given, the move is ``× (1 ± pct)`` (default
10 %) instead. ``sensitivity.csv`` columns: see :data:`COLUMNS`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from simengine.config.plan import Plan
from simengine.params import FunnelParameters
from simengine.planning import _runs
from simengine.planning._output import write_table_and_chart
from simengine.planning.goalseek import expected_units
from simengine.planning.scenarios import Shock, apply_shock
from simengine.planning.stress import plot_stress

if TYPE_CHECKING:
    from simengine.engine.simulate import BlockMap

__all__ = [
    "COLUMNS",
    "Input",
    "plot_stress",
    "plot_tornado",
    "run_sensitivity",
    "sensitivity_inputs",
    "top_risks",
    "write_sensitivity",
]

DEFAULT_PCT = 0.10

COLUMNS = (
    "input",
    "segment",
    "what",
    "where",
    "direction",
    "basis",
    "from_value",
    "to_value",
    "outcome_segment",
    "prob_hit",
    "delta_prob_hit",
    "delta_prob_hit_se",
    "revenue_p50",
    "delta_revenue_p50",
    "delta_revenue_p50_se",
    "swing_prob_hit",
    "rank",
)


@dataclass(frozen=True)
class Input:
    """One input and its two moves.

    Attributes
    ----------
    label : str
        Plain words, e.g. ``"ent opportunity → won conversion"``.
    segment, what : str
    where : str
        Entry stage or step ("" for deal size).
    basis : str
        ``"1 sd"`` or ``"±10%"``.
    from_value, down_value, up_value : float
        The segment's mean value before and after each move (rate, units in
        the period, median days, median amount).
    down, up : Shock
    """

    label: str
    segment: str
    what: str
    where: str
    basis: str
    from_value: float
    down_value: float
    up_value: float
    down: Shock
    up: Shock


def _scale_pair(what: str, seg: str, k: float, **where: str) -> tuple[Shock, Shock, float, float]:
    lo = max(1 - k, 0.0)
    return (
        Shock(what, "scale", lo, segment=seg, **where),
        Shock(what, "scale", 1 + k, segment=seg, **where),
        lo,
        1 + k,
    )


def sensitivity_inputs(
    params: FunnelParameters, plan: Plan, *, pct: float | None = None
) -> list[Input]:
    """Every input with units flowing through it, and its down/up moves.

    Parameters
    ----------
    params : FunnelParameters
    plan : Plan
    pct : float, optional
        Move every input by ``× (1 ± pct)`` instead of one posterior sd.

    Returns
    -------
    list of Input
    """
    out: list[Input] = []
    fallback = DEFAULT_PCT if pct is None else pct
    stages = params.stages
    for si, seg in enumerate(params.segments):
        cells = params.cell_segment == si
        active = [
            e
            for e, st in enumerate(params.entry_stages)
            if expected_units(params, plan, seg, st) > 0
        ]
        if not active:
            continue
        for e in active:
            st = params.entry_stages[e]
            tot = params.arrival_rate[:, cells, e].sum(axis=1)
            mean, sd = float(tot.mean()), float(tot.std())
            planned = st in plan.new_units.get(seg, {})
            use_sd = pct is None and sd > 0 and not planned
            k = sd / mean if use_sd else fallback
            down, up, lo, hi = _scale_pair("arrivals", seg, k, stage=st)
            base = expected_units(params, plan, seg, st)
            out.append(
                Input(
                    f"{seg} new {st} volume",
                    seg,
                    "arrivals",
                    st,
                    "1 sd" if use_sd else f"±{fallback:.0%}",
                    base,
                    base * lo,
                    base * hi,
                    down,
                    up,
                )
            )
        for j in range(min(active), len(stages) - 1):
            step = stages[j + 1]
            name = f"{stages[j]} → {step}"
            conv = params.conversion[:, cells, j].mean(axis=1)
            mean, sd = float(conv.mean()), float(conv.std())
            if pct is None and sd > 0:
                down = Shock("conversion", "add", -sd, segment=seg, step=step)
                up = Shock("conversion", "add", sd, segment=seg, step=step)
                vals, basis = (max(mean - sd, 0.0), min(mean + sd, 1.0)), "1 sd"
            else:
                down, up, lo, hi = _scale_pair("conversion", seg, fallback, step=step)
                vals, basis = (mean * lo, min(mean * hi, 1.0)), f"±{fallback:.0%}"
            out.append(
                Input(
                    f"{seg} {name} conversion",
                    seg,
                    "conversion",
                    step,
                    basis,
                    mean,
                    *vals,
                    down,
                    up,
                )
            )
            mu = params.delay_mu[:, cells, j].mean(axis=1)
            m0, sd = float(np.exp(mu.mean())), float(mu.std())
            if pct is None and sd > 0:
                k_lo, k_hi, basis = math.exp(-sd), math.exp(sd), "1 sd"
            else:
                k_lo, k_hi, basis = max(1 - fallback, 1e-9), 1 + fallback, f"±{fallback:.0%}"
            out.append(
                Input(
                    f"{seg} {name} delay (median days)",
                    seg,
                    "delay",
                    step,
                    basis,
                    m0,
                    m0 * k_lo,
                    m0 * k_hi,
                    Shock("delay", "scale", k_lo, segment=seg, step=step),
                    Shock("delay", "scale", k_hi, segment=seg, step=step),
                )
            )
        mu = params.deal_size_mu[:, cells].mean(axis=1)
        m0, sd = float(np.exp(mu.mean())), float(mu.std())
        if pct is None and sd > 0:
            k_lo, k_hi, basis = math.exp(-sd), math.exp(sd), "1 sd"
        else:
            k_lo, k_hi, basis = max(1 - fallback, 1e-9), 1 + fallback, f"±{fallback:.0%}"
        out.append(
            Input(
                f"{seg} deal size (median)",
                seg,
                "deal_size",
                "",
                basis,
                m0,
                m0 * k_lo,
                m0 * k_hi,
                Shock("deal_size", "scale", k_lo, segment=seg),
                Shock("deal_size", "scale", k_hi, segment=seg),
            )
        )
    return out


def run_sensitivity(
    params: FunnelParameters,
    plan: Plan,
    *,
    paths: int = 20_000,
    seed: int,
    pct: float | None = None,
    batches: int = 10,
    threads: int | None = None,
    on_input: Callable[[str], None] | None = None,
    block_map: BlockMap | None = None,
) -> pd.DataFrame:
    """Move every input down and up on common random numbers; rank by P(hit) swing.

    Parameters
    ----------
    params : FunnelParameters
    plan : Plan
    paths : int
        Paths per run (``1 + 2 × inputs`` runs).
    seed : int
        The seed of every run.
    pct : float, optional
        Percentage moves instead of one posterior sd.
    batches : int
        Monte Carlo batches per run for the batch-means errors
        (:func:`simengine.planning._runs.run`).
    threads : int, optional
    on_input : callable, optional
        Called with each input's label (progress).
    block_map : BlockMap, optional
        Where every run's blocks run (default: this process's threads; the
        Dask map of :func:`simengine.engine.distributed.cluster_block_map` for a
        cluster). The table is bitwise the same wherever they run.

    Returns
    -------
    pandas.DataFrame
        ``sensitivity.csv``: one row per input, direction and outcome segment
        (the input's segment and ``total``), ranked within each outcome
        segment by ``swing_prob_hit`` (1 = largest).
    """
    inputs = sensitivity_inputs(params, plan, pct=pct)
    run = _runs.runner(
        paths=paths, seed=seed, batches=batches, threads=threads, block_map=block_map
    )
    base = run(params, plan)
    rows: list[dict[str, Any]] = []
    for inp in inputs:
        if on_input:
            on_input(inp.label)
        for direction, shock, value in (
            ("down", inp.down, inp.down_value),
            ("up", inp.up, inp.up_value),
        ):
            p, pl = apply_shock(params, plan, shock)
            r = run(p, pl)
            for g in (inp.segment, "total"):
                hit = _runs.paired(r, base, g, "attainment", "prob_hit")
                p50 = _runs.paired(r, base, g, "revenue", "p50")
                rows.append(
                    {
                        "input": inp.label,
                        "segment": inp.segment,
                        "what": inp.what,
                        "where": inp.where,
                        "direction": direction,
                        "basis": inp.basis,
                        "from_value": inp.from_value,
                        "to_value": value,
                        "outcome_segment": g,
                        "prob_hit": hit.value,
                        "delta_prob_hit": hit.delta,
                        "delta_prob_hit_se": hit.se,
                        "revenue_p50": p50.value,
                        "delta_revenue_p50": p50.delta,
                        "delta_revenue_p50_se": p50.se,
                    }
                )
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    spread = df.groupby(["input", "outcome_segment"])["delta_prob_hit"].agg(
        lambda s: float(s.max() - s.min())
    )
    df["swing_prob_hit"] = [
        spread[(i, g)] for i, g in zip(df["input"], df["outcome_segment"], strict=True)
    ]
    order = (
        df.drop_duplicates(["input", "outcome_segment"])
        .sort_values(["outcome_segment", "swing_prob_hit"], ascending=[True, False], kind="stable")
        .assign(rank=lambda d: d.groupby("outcome_segment").cumcount() + 1)
        .set_index(["input", "outcome_segment"])["rank"]
    )
    df["rank"] = [order[(i, g)] for i, g in zip(df["input"], df["outcome_segment"], strict=True)]
    df = df.sort_values(["outcome_segment", "rank", "direction"], kind="stable")
    return df[list(COLUMNS)].reset_index(drop=True)


def _fmt_value(what: str, v: float) -> str:
    if what == "conversion":
        return f"{100 * v:.1f}%"
    if what == "delay":
        return f"{v:.1f} days"
    return f"{v:,.0f}"


def top_risks(df: pd.DataFrame, n: int = 3, *, segment: str = "total") -> list[str]:
    """Return the inputs whose adverse move raises the shortfall probability most, in words.

    Parameters
    ----------
    df : pandas.DataFrame
        A ``sensitivity.csv`` table.
    n : int
        How many.
    segment : str
        Outcome segment whose P(hit) is read (default ``total``).

    Returns
    -------
    list of str
        E.g. ``"ent opportunity → won conversion: one posterior sd lower (22.0% →
        19.6%) lowers P(hit total) by 6.1 points (± 0.3) to 71%."``
    """
    d = df[df["outcome_segment"] == segment]
    if d.empty:
        return []
    worst = d.sort_values("delta_prob_hit", kind="stable").drop_duplicates("input")
    out = []
    for r in worst.head(n).itertuples(index=False):
        if not r.delta_prob_hit < 0:
            break
        lower = r.to_value < r.from_value
        if r.basis == "1 sd":
            move = f"one posterior sd {'lower' if lower else 'higher'}"
        else:
            move = f"{str(r.basis).lstrip('±')} {'lower' if lower else 'higher'}"
        se = "" if not np.isfinite(r.delta_prob_hit_se) else f" (± {100 * r.delta_prob_hit_se:.1f})"
        out.append(
            f"{r.input}: {move} ({_fmt_value(str(r.what), r.from_value)} → "
            f"{_fmt_value(str(r.what), r.to_value)}) lowers P(hit {segment}) by "
            f"{-100 * r.delta_prob_hit:.1f} points{se} to {r.prob_hit:.0%}."
        )
    return out


def plot_tornado(df: pd.DataFrame, ax: Any = None, *, segment: str = "total", top: int = 12) -> Any:
    """Tornado chart of the change in P(hit) for each input's down and up move.

    Parameters
    ----------
    df : pandas.DataFrame
        A ``sensitivity.csv`` table.
    ax : matplotlib Axes, optional
        Where to draw; a new figure if omitted.
    segment : str
        Outcome segment (default ``total``).
    top : int
        Inputs shown, largest swing first.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    d = df[df["outcome_segment"] == segment].sort_values("rank", kind="stable")
    labels = list(dict.fromkeys(d["input"]))[:top]
    if ax is None:
        fig, ax = plt.subplots(
            figsize=(8, 0.6 + 0.35 * max(1, len(labels))), layout="constrained"
        )  # room for the input labels
    else:
        fig = ax.figure
    y = np.arange(len(labels), dtype=float)
    for direction, color in (("down", "tab:red"), ("up", "tab:blue")):
        sub = d[d["direction"] == direction].set_index("input").reindex(labels)
        ax.barh(
            y,
            100 * sub["delta_prob_hit"].to_numpy(float),
            height=0.6,
            color=color,
            alpha=0.8,
            label=f"input {direction}",
            xerr=200 * sub["delta_prob_hit_se"].to_numpy(float),
            capsize=2,
        )
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels(labels)
    ax.invert_yaxis()
    ax.set_xlabel(f"change in P(hit {segment}), points (bars: ±2 MC se, CRN)")
    ax.legend(fontsize="small")
    return fig


def write_sensitivity(df: pd.DataFrame, out_dir: str | Path, *, force: bool = False) -> Path:
    """Write ``sensitivity.csv`` and ``tornado.png`` atomically into ``out_dir``."""
    return write_table_and_chart(
        df,
        out_dir,
        csv_name="sensitivity.csv",
        png_name="tornado.png",
        plot=plot_tornado,
        force=force,
    )

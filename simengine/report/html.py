"""The self-contained HTML report of a forecast directory (``report.html``).

One file with inline CSS and PNG charts as ``data:`` URIs: it opens offline.
The page is the Jinja2 template ``templates/report.html.j2`` (autoescaped);
this module only computes what it shows. Per reporting segment and for the
total (simulated jointly): the headline (P(hit target), P(attainment >= 95%)
with their Monte Carlo errors, revenue P10/P50/P90 against the target, the
median date the target is reached, flagged when after the period end), a fan
chart of cumulative closed-won revenue, pipeline coverage from the period
start by week, and the units entering each stage in the period. Every number
set against P(hit) comes from the same simulation. Then revenue by source
(when the forecast has the ``revenue_from_*`` metrics: existing pipeline vs
new deals, marketing- vs sales-sourced, each with its own P10-P90 band; see
:mod:`simengine.report.sources`), the deals most at
risk of slipping (the per-deal outlook, ``deals.csv``), the conversion rates
beside the trailing raw rates, the top risks (named drivers, from the
sensitivity table), the stress and sensitivity results when given or found
beside the forecast, and provenance. A forecast simulated without an open
pipeline is flagged at the top.

A small inline script records page errors and undecoded images into
``<body data-errors data-broken-images>`` so a headless browser can check the
page (see ``tests/report/test_browser.py``).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import numpy.typing as npt
import pandas as pd
import xarray as xr

from simengine.io.atomic import atomic_file, umask_mode
from simengine.planning.reverse import reverse_chain
from simengine.report import charts
from simengine.report import format as fmt
from simengine.report.data import (
    ParameterSummary,
    attr_date,
    find_parameter_file,
    read_deals,
    read_forecast,
    read_parameter_summary,
    read_planning_tables,
)
from simengine.report.sources import sources_table

__all__ = [
    "Headline",
    "build_report",
    "coverage_band",
    "headlines",
    "reverse_funnel",
    "write_report",
]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Headline:
    """The headline numbers of one segment (or ``total``).

    Parameters
    ----------
    segment : str
    target : float
    prob_hit, prob_hit_se : float
        P(revenue in the period >= target) and its Monte Carlo standard error.
    prob_within_5pct, prob_within_5pct_se : float
        P(attainment >= 95%) (within 5% of the target or above it) and its
        Monte Carlo standard error.
    revenue_p10, revenue_p50, revenue_p90 : float
        Revenue quantiles in the period.
    ttt_p10, ttt_p50, ttt_p90 : float
        Days from period start until the target is reached (``inf`` = not
        within the horizon).
    prob_reached : float
        Share of paths reaching the target within the horizon.
    coverage_p50 : float
        Median pipeline coverage at period start.
    start : datetime.date
        Period start (day 0 of the time-to-target).
    """

    segment: str
    target: float
    prob_hit: float
    prob_hit_se: float
    prob_within_5pct: float
    prob_within_5pct_se: float
    revenue_p10: float
    revenue_p50: float
    revenue_p90: float
    ttt_p10: float
    ttt_p50: float
    ttt_p90: float
    prob_reached: float
    coverage_p50: float
    start: dt.date

    def reached_text(self) -> str:
        """When the target is reached: median date and 80% interval, in words."""
        if not math.isfinite(self.ttt_p50):
            return (
                f"the target is reached within the horizon in only {fmt.percent(self.prob_reached)}"
                " of paths"
            )
        lo = fmt.date(self.start, self.ttt_p10)
        hi = fmt.date(self.start, self.ttt_p90)
        hi = "after the horizon" if hi == "not reached" else hi
        return (f"target reached {fmt.date(self.start, self.ttt_p50)} (median; 80%: {lo} – {hi})")

    def text(self) -> str:
        """One line for a terminal: the numbers a revenue leader asks first."""
        return (
            f"P(hit) {fmt.percent_pm(self.prob_hit, self.prob_hit_se)}, "
            f"P(attainment >= 95%) "
            f"{fmt.percent_pm(self.prob_within_5pct, self.prob_within_5pct_se)}; "
            f"revenue P10/P50/P90 {fmt.money(self.revenue_p10)} / {fmt.money(self.revenue_p50)}"
            f" / {fmt.money(self.revenue_p90)} vs target {fmt.money(self.target)}; "
            f"{self.reached_text()}"
        )


def _stat(ds: xr.Dataset, seg: str, metric: str, stat: str) -> float:
    if metric not in ds["metric"].values or stat not in ds["stat"].values:
        return float("nan")
    return float(ds["summary"].sel(segment=seg, metric=metric, stat=stat))


def headlines(ds: xr.Dataset) -> list[Headline]:
    """Headline numbers per segment, in the forecast's order (``total`` last).

    Parameters
    ----------
    ds : xarray.Dataset
        A forecast (see :func:`simengine.report.data.read_forecast`).
    """
    start = attr_date(ds, "start")
    out = []
    for seg in (str(s) for s in ds["segment"].values):
        def s(metric: str, stat: str, seg: str = seg) -> float:
            return _stat(ds, seg, metric, stat)

        out.append(Headline(
            segment=seg, target=float(ds["target"].sel(segment=seg)),
            prob_hit=s("attainment", "prob_hit"), prob_hit_se=s("attainment", "prob_hit_se"),
            prob_within_5pct=s("attainment", "prob_within_5pct"),
            prob_within_5pct_se=s("attainment", "prob_within_5pct_se"),
            revenue_p10=s("revenue", "p10"), revenue_p50=s("revenue", "p50"),
            revenue_p90=s("revenue", "p90"),
            ttt_p10=s("time_to_target_days", "p10"), ttt_p50=s("time_to_target_days", "p50"),
            ttt_p90=s("time_to_target_days", "p90"),
            prob_reached=s("time_to_target_days", "prob_reached"),
            coverage_p50=s("coverage", "p50"), start=start,
        ))
    return out


def coverage_band(x: float) -> str:
    """Name the band a pipeline coverage multiple (at period start) is in.

    Below 3x is under the usual bar; 3 to 3.5x is the sweet spot; 3.5 to 4x
    is comfortable; above 4x usually signals low-quality pipeline.
    """
    if not math.isfinite(x):
        return "unknown"
    if x < charts.COVERAGE_BAR:
        return "below the 3x bar"
    if x <= charts.COVERAGE_SWEET:
        return "in the 3–3.5x sweet spot"
    if x <= charts.COVERAGE_HIGH:
        return "comfortable (3.5–4x)"
    return "above 4x: check pipeline quality"


def reverse_funnel(
    params: ParameterSummary, segment: str, target: float
) -> FloatArray | None:
    """Units each stage needs for ``target``: target / mean deal / step rates.

    A planning identity, not a forecast: it ignores timing and the open
    pipeline, so the report does not set it against P(hit) (the goal seek of
    :mod:`simengine.planning.goalseek` answers with the simulation).
    Deterministic, from the parameter means, walked backwards by
    :func:`simengine.planning.reverse.reverse_chain` (the planning tables'
    reverse funnel, exact arithmetic). Cells of the segment are pooled
    with weights equal to their mean arrival volume (all entry stages); for
    ``total`` the segment needs add up (each with its own target share is not
    known here, so ``total`` pools every cell). Returns ``None`` if the
    segment has no cells.

    Parameters
    ----------
    params : ParameterSummary
    segment : str
        A reporting segment or ``"total"``.
    target : float

    Returns
    -------
    ndarray of float, shape (stage,) or None
        Units needed to enter each stage; the last entry is won deals.
    """
    seg_of = np.array(params.cell_segment)
    mask = np.ones(len(params.cells), bool) if segment == "total" else seg_of == segment
    if not mask.any():
        return None
    w = params.arrival_rate.mean(axis=0)[mask].sum(axis=1)
    w = np.ones_like(w) if w.sum() <= 0 else w
    w = w / w.sum()
    rate = w @ params.conversion.mean(axis=0)[mask]  # (step,)
    deal = float(w @ params.deal_mean.mean(axis=0)[mask])
    if target <= 0:
        return np.zeros(len(params.stages))
    need = np.full(len(params.stages), np.inf)
    # the same reverse funnel the planning tables use (planning.reverse); a
    # step with rate 0 makes every stage before it infinite
    live = int(np.flatnonzero(rate <= 0).max()) + 1 if np.any(rate <= 0) else 0
    chain = reverse_chain(target, deal, [float(r) for r in rate[live:]], params.stages[live:])
    need[live:] = [float(u) for u in chain.units]
    return need


# ---------------------------------------------------------------- page context

_CHECK_SCRIPT = """
window.__simengineErrors = [];
window.addEventListener('error', function (e) {
  var what = e.message || (e.target && (e.target.src || e.target.tagName)) || 'error';
  window.__simengineErrors.push(String(what).slice(0, 200));
}, true);
(function () {
  var orig = console.error;
  console.error = function () {
    window.__simengineErrors.push(Array.prototype.join.call(arguments, ' ').slice(0, 200));
    return orig.apply(console, arguments);
  };
})();
window.addEventListener('load', function () {
  var imgs = document.images, broken = 0;
  for (var i = 0; i < imgs.length; i++) {
    if (!imgs[i].complete || imgs[i].naturalWidth === 0) { broken++; }
  }
  document.body.setAttribute('data-images', String(imgs.length));
  document.body.setAttribute('data-broken-images', String(broken));
  document.body.setAttribute('data-errors', JSON.stringify(window.__simengineErrors));
  document.body.setAttribute('data-loaded', 'true');
});
"""

#: Deals shown in the "at risk of slipping" table.
DEALS_SHOWN = 15


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("simengine.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def _cov(x: float) -> str:
    """Format a coverage multiple with two decimals (2.97x never reads as the 3x bar)."""
    return f"{x:.2f}x" if math.isfinite(x) else fmt.NA


def _segment(ds: xr.Dataset, h: Headline, end: dt.date) -> dict[str, Any]:
    seg = h.segment
    q = ds["quantile"].values.astype(np.float64)
    start, as_of = attr_date(ds, "start"), attr_date(ds, "as_of")
    actual = None
    if "actual_revenue" in ds:
        actual = ds["actual_revenue"].sel(segment=seg).values.astype(np.float64)
    fan = charts.fan_chart(
        ds["date"].values, q, ds["cum_revenue"].sel(segment=seg).values, target=h.target,
        mean=ds["cum_revenue_mean"].sel(segment=seg).values, today=as_of, actual=actual,
        period_end=end, title=f"{seg}: cumulative closed-won revenue from {fmt.day(start)}",
    )
    cov_lo = _stat(ds, seg, "coverage", "p10")
    cov_hi = _stat(ds, seg, "coverage", "p90")
    cov = charts.coverage_chart(
        ds["week"].values, q, ds["coverage"].sel(segment=seg).values,
        start=(start, cov_lo, h.coverage_p50, cov_hi),
        title=f"{seg}: open pipeline value / period target, period start then week ends",
    )
    ent = ds["entered"].sel(segment=seg)
    med = ent.sel(quantile=0.5, method="nearest").values
    lo = ent.sel(quantile=0.1, method="nearest").values
    hi = ent.sel(quantile=0.9, method="nearest").values
    stages = [str(s) for s in ds["stage"].values]
    funnel = charts.funnel_chart(stages, med, lo, hi, None,
                                 title=f"{seg}: units entering each stage in the period")
    after_end = math.isfinite(h.ttt_p50) and h.start + dt.timedelta(days=h.ttt_p50) > end
    text = h.reached_text()
    return {
        "segment": seg, "target": fmt.money(h.target),
        "prob_hit": fmt.percent_pm(h.prob_hit, h.prob_hit_se),
        "prob_95": fmt.percent_pm(h.prob_within_5pct, h.prob_within_5pct_se),
        "p10": fmt.money(h.revenue_p10), "p50": fmt.money(h.revenue_p50),
        "p90": fmt.money(h.revenue_p90),
        "reached_date": fmt.date(h.start, h.ttt_p50), "after_end": after_end,
        "reached_text": text[0].upper() + text[1:],
        "prob_reached": fmt.percent(h.prob_reached),
        "coverage": _cov(h.coverage_p50), "coverage_lo": _cov(cov_lo),
        "coverage_hi": _cov(cov_hi), "coverage_band": coverage_band(h.coverage_p50),
        "fan": fan, "coverage_chart": cov, "funnel": funnel, "nothing_won": actual is None,
        "funnel_rows": [
            {"stage": st, "median": fmt.count(med[k]),
             "interval": f"{fmt.count(lo[k])} – {fmt.count(hi[k])}"}
            for k, st in enumerate(stages)
        ],
    }


def _sources(ds: xr.Dataset) -> dict[str, Any] | None:
    """Revenue by source (:mod:`simengine.report.sources`), when the forecast has it."""
    table = sources_table(ds)
    if table is None or table.empty:
        return None
    rows = []
    for seg, part in table.groupby("segment", sort=False):
        revenue = _stat(ds, str(seg), "revenue", "mean")
        new = part[part["origin"] == "new"]
        by_channel = new.groupby("channel", sort=False)["mean"].sum()
        rows.append({
            "segment": seg,
            "revenue": fmt.money(revenue),
            "sources": [{
                "label": r.label,
                "mean": fmt.money(r.mean),
                "share": fmt.percent(r.share_of_mean_revenue)
                if math.isfinite(r.share_of_mean_revenue) else fmt.NA,
                "band": f"{fmt.money(r.p10)} – {fmt.money(r.p90)}",
            } for r in part.itertuples()],
            "split": [(name, fmt.money(v), fmt.percent(v / revenue) if revenue > 0 else fmt.NA)
                      for name, v in (
                          ("existing pipeline", float(part.loc[part["origin"] != "new", "mean"]
                                                      .sum())),
                          ("new deals", float(new["mean"].sum())),
                          ("marketing-sourced (new)", float(by_channel.get("marketing", 0.0))),
                          ("sales-sourced (new)", float(by_channel.get("sales", 0.0))),
                      )],
        })
    total = table[table["segment"] == "total"]
    chart = None
    if not total.empty:
        chart = charts.sources_chart(total["label"].tolist(), total["mean"].to_numpy(),
                                     total["p10"].to_numpy(), total["p90"].to_numpy(),
                                     title="Total: revenue in the period by source")
    return {"rows": rows, "chart": chart}


def _deals(deals: pd.DataFrame | None, end: dt.date) -> dict[str, Any] | None:
    if deals is None or deals.empty:
        return None
    d = deals.assign(at_risk=deals["amount"] * deals["p_open_at_period_end"])
    top = d.sort_values(["at_risk", "id"], ascending=[False, True], kind="stable")
    top = top.head(DEALS_SHOWN)
    rows = []
    for r in top.itertuples(index=False):
        close = r.close_date_p50
        has_close = close is not None and not pd.isna(close)
        rows.append({
            "id": str(r.id), "segment": str(r.segment), "stage": str(r.stage),
            "age": fmt.count(r.age_days),
            "amount": fmt.money(r.amount) + ("" if bool(r.amount_known) else " *"),
            "won": fmt.percent(r.p_won_in_period), "lost": fmt.percent(r.p_lost_in_period),
            "open": fmt.percent(r.p_open_at_period_end), "at_risk": fmt.money(r.at_risk),
            "expected": fmt.money(r.expected_revenue_in_period),
            "close": fmt.day(pd.Timestamp(close).date()) if has_close else "not within horizon",
            "after_end": bool(has_close and pd.Timestamp(close).date() > end),
        })
    return {"rows": rows, "n": f"{len(deals):,}",
            "expected_total": fmt.money(float(deals["expected_revenue_in_period"].sum())),
            "estimated": not bool(top["amount_known"].all())}


def _rates(params: ParameterSummary | None, note: str | None) -> dict[str, Any]:
    if params is None:
        return {"note": note or "no parameter file"}
    steps = params.stages[1:]
    mean = params.conversion.mean(axis=0)
    lo = np.quantile(params.conversion, 0.05, axis=0)
    hi = np.quantile(params.conversion, 0.95, axis=0)
    raw_keys = [k for k in ("4q", "13w") if k in params.raw_rates]
    label = {"4q": "raw, trailing 4 quarters", "13w": "raw, trailing 13 weeks"}
    rows = []
    for c, cell in enumerate(params.cells):
        for s, step in enumerate(steps):
            rows.append([cell, f"{params.stages[s]} → {step}", fmt.percent(mean[c, s], 1),
                         f"{fmt.percent(lo[c, s], 1)} – {fmt.percent(hi[c, s], 1)}",
                         *(fmt.percent(params.raw_rates[k][c, s], 1) for k in raw_keys)])
    return {"note": None, "source": params.source, "path": str(params.path), "rows": rows,
            "raw_columns": [label[k] for k in raw_keys]}


def _stress_risks(df: pd.DataFrame, n: int = 2) -> list[str]:
    """Name the scenarios that lower P(hit total) most, in words."""
    need = {"scenario", "segment", "metric", "stat", "value", "delta", "delta_se"}
    if not need <= set(df.columns):
        return []
    d = df[(df["metric"] == "attainment") & (df["stat"] == "prob_hit")
           & (df["segment"] == "total") & (df["scenario"] != "baseline")]
    out = []
    for r in d.sort_values("delta", kind="stable").head(n).itertuples(index=False):
        if not r.delta < 0:
            break
        title = str(getattr(r, "title", "") or r.scenario)
        se = f" (± {100 * r.delta_se:.1f})" if math.isfinite(r.delta_se) else ""
        out.append(f"Stress “{title}”: P(hit total) falls by {-100 * r.delta:.1f} points{se} "
                   f"to {fmt.percent(r.value)}.")
    return out


def _risks(
    heads: list[Headline], tables: dict[str, pd.DataFrame], deals: pd.DataFrame | None,
    no_pipeline: bool,
) -> dict[str, Any]:
    from simengine.planning.sensitivity import top_risks

    items: list[str] = []
    basis = []
    if "sensitivity" in tables:
        try:
            items += top_risks(tables["sensitivity"])
            basis.append("the sensitivity analysis (the inputs whose adverse move lowers "
                         "P(hit total) most)")
        except (TypeError, ValueError, KeyError, AttributeError):
            pass
    if "stress" in tables:
        stress = _stress_risks(tables["stress"])
        if stress:
            items += stress
            basis.append("the stress tests")
    if no_pipeline:
        items.append("No open pipeline was loaded: the forecast counts only new units.")
    if deals is not None and not deals.empty:
        at_risk = float((deals["amount"] * deals["p_open_at_period_end"]).sum())
        if at_risk > 0:
            items.append(f"{fmt.money(at_risk)} of open pipeline value is expected to be "
                         "still open at the period end (slipping), see the deals at risk.")
            basis.append("the per-deal outlook")
    for h in heads:
        if (h.segment != "total" and math.isfinite(h.coverage_p50)
                and h.coverage_p50 < charts.COVERAGE_BAR and not no_pipeline):
            items.append(f"{h.segment} starts the period with {_cov(h.coverage_p50)} "
                         "pipeline coverage, below the 3x bar.")
    if not basis:
        basis_text = ("No sensitivity or stress results were found: run `simengine sensitivity` "
                      "and `simengine stress` (then `report --sensitivity/--stress`, or put "
                      "them beside the forecast) to name the drivers.")
    else:
        basis_text = "From " + ", ".join(basis) + "."
    return {"items": items[:5], "basis": basis_text}


def _figure(plot: Any, df: pd.DataFrame) -> str | None:
    """Draw a planning module's chart as a data URI (``None`` if it cannot be drawn)."""
    try:
        fig = plot(df)
    except (TypeError, ValueError, KeyError, IndexError):
        return None
    uri = charts.png_data_uri(fig)
    import matplotlib.pyplot as plt

    plt.close(fig)  # planning charts are pyplot figures
    return uri


def _pts(delta: float, se: float) -> str:
    if not math.isfinite(delta):
        return fmt.NA
    return f"{100 * delta:+.1f} ± {100 * se:.2g} pts" if math.isfinite(se) else \
        f"{100 * delta:+.1f} pts"


def _stress(df: pd.DataFrame, path: str) -> dict[str, Any]:
    from simengine.planning.stress import plot_stress

    need = {"scenario", "segment", "metric", "stat", "value", "delta", "delta_se"}
    if not need <= set(df.columns):
        return {"path": path, "chart": None, "columns": [str(c) for c in df.columns],
                "rows": [[_cell(v) for v in row] for row in df.itertuples(index=False)]}
    d = df[(df["metric"] == "attainment") & (df["stat"] == "prob_hit")]
    rows = []
    for r in d.itertuples(index=False):
        title = str(getattr(r, "title", "") or "")
        rows.append([str(r.scenario), "" if title == "nan" else title, str(r.segment),
                     fmt.percent(r.value, 1),
                     "–" if r.scenario == "baseline" else _pts(r.delta, r.delta_se)])
    return {"path": path, "chart": _figure(plot_stress, df),
            "columns": ["scenario", "what", "segment", "P(hit target)",
                        "change vs baseline (± MC se)"], "rows": rows}


def _sensitivity(df: pd.DataFrame, path: str) -> dict[str, Any]:
    from simengine.planning.sensitivity import plot_tornado

    need = {"input", "direction", "basis", "from_value", "to_value", "outcome_segment",
            "prob_hit", "delta_prob_hit", "delta_prob_hit_se", "what"}
    if not need <= set(df.columns):
        return {"path": path, "chart": None, "columns": [str(c) for c in df.columns],
                "rows": [[_cell(v) for v in row] for row in df.head(12).itertuples(index=False)]}
    d = df[df["outcome_segment"] == "total"].sort_values("delta_prob_hit", kind="stable")

    def value(what: str, v: float) -> str:
        if what == "conversion":
            return fmt.percent(v, 1)
        if what == "delay":
            return fmt.days(v)
        if what == "deal_size":
            return fmt.money(v)
        return fmt.count(v)

    rows = [[str(r.input), f"{r.direction} ({r.basis})",
             f"{value(str(r.what), r.from_value)} → {value(str(r.what), r.to_value)}",
             fmt.percent(r.prob_hit, 1), _pts(r.delta_prob_hit, r.delta_prob_hit_se)]
            for r in d.head(12).itertuples(index=False)]
    return {"path": path, "chart": _figure(plot_tornado, df),
            "columns": ["input", "move", "value", "P(hit total)", "change (± MC se)"],
            "rows": rows}


def _cell(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _provenance(ds: xr.Dataset) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for k in ("source", "seed", "paths", "block_size", "open_units", "as_of", "start", "end",
              "horizon_end"):
        if k in ds.attrs:
            v = ds.attrs[k]
            rows.append((k, fmt.count(float(v)) if k in ("paths", "block_size", "open_units")
                         else str(v)))
    if "sketch_rel_error" in ds.attrs:
        rows.append(("quantile sketch relative error",
                     f"≤ {100 * float(ds.attrs['sketch_rel_error']):.2f}%"))
    for k, title in (("input_paths", "input files"), ("input_sha256", "input SHA-256"),
                     ("versions", "package versions")):
        if k not in ds.attrs:
            continue
        try:
            val = json.loads(str(ds.attrs[k]))
        except json.JSONDecodeError:
            val = str(ds.attrs[k])
        if isinstance(val, dict):
            text = "\n".join(f"{a}: {b}" for a, b in sorted(val.items()))
        else:
            text = str(val)
        rows.append((title, text))
    return rows


def _no_pipeline(ds: xr.Dataset, deals: pd.DataFrame | None) -> bool:
    """Whether the forecast was simulated without open units at the as-of date."""
    if "open_units" in ds.attrs:
        return int(ds.attrs["open_units"]) == 0
    if deals is not None:
        return deals.empty
    return False


def _table_path(
    given: str | Path | None, name: str, fdir: Path
) -> tuple[pd.DataFrame | None, str]:
    if given is not None:
        p = Path(given)
        f = p / f"{name}.csv" if p.is_dir() else p
        if not f.is_file():
            from simengine.errors import InputError

            raise InputError.single(f, f"no {name}.csv here; run `simengine {name} --out DIR`")
        return pd.read_csv(f), str(f)
    # only inside the forecast directory: a table beside it may be another forecast's
    for f in (fdir / f"{name}.csv", fdir / name / f"{name}.csv"):
        if f.is_file():
            return pd.read_csv(f), str(f)
    return None, ""


def build_report(
    forecast_dir: str | Path,
    *,
    parameters: str | Path | None = None,
    stress: str | Path | None = None,
    sensitivity: str | Path | None = None,
) -> str:
    """Build the report page of a forecast directory.

    Parameters
    ----------
    forecast_dir : str or Path
        Directory written by ``simengine simulate`` (``forecast.nc``, and
        ``deals.csv`` when it has open units).
    parameters : str or Path, optional
        The posterior or assumptions file the forecast came from; by default
        found through the forecast's recorded input paths.
    stress, sensitivity : str or Path, optional
        ``stress.csv`` / ``sensitivity.csv`` (or their directories); by
        default looked for in the forecast directory and its ``stress/`` and
        ``sensitivity/`` subdirectories (``simengine stress --out DIR/stress``).

    Returns
    -------
    str
        The complete HTML document.

    Raises
    ------
    InputError
        If the forecast is missing or does not follow the contract, or an
        explicitly given parameter, stress or sensitivity file is unreadable.
    """
    fdir = Path(forecast_dir)
    ds = read_forecast(fdir)
    fdir = fdir if fdir.is_dir() else fdir.parent
    note: str | None = None
    params: ParameterSummary | None = None
    if parameters is not None:
        kind = "assumptions" if Path(parameters).suffix == ".toml" else "posterior"
        params = read_parameter_summary(Path(parameters), kind, ds)
    else:
        path, kind, note = find_parameter_file(ds, fdir)
        if path is not None:
            params = read_parameter_summary(path, kind, ds)
    tables = read_planning_tables(fdir)
    paths: dict[str, str] = {}
    for name, given in (("stress", stress), ("sensitivity", sensitivity)):
        df, where = _table_path(given, name, fdir)
        if df is not None:
            tables[name], paths[name] = df, where
    deals = read_deals(fdir)
    heads = headlines(ds)
    start, end, as_of = attr_date(ds, "start"), attr_date(ds, "end"), attr_date(ds, "as_of")
    no_pipeline = _no_pipeline(ds, deals)
    context = {
        "check_script": _CHECK_SCRIPT,
        "period": f"{fmt.day(start)} – {fmt.day(end)}",
        "period_iso": f"{start:%Y-%m-%d} – {end:%Y-%m-%d}",
        "as_of": fmt.day(as_of), "start": fmt.day(start), "end": fmt.day(end),
        "paths": fmt.count(ds.attrs.get("paths")), "seed": ds.attrs.get("seed", fmt.NA),
        "source": ds.attrs.get("source", fmt.NA),
        "unconverged": str(params.path) if params is not None and params.converged is False
        else None,
        "no_pipeline": no_pipeline,
        "heads": [_segment(ds, h, end) for h in heads],
        "sources": _sources(ds),
        "deals": _deals(deals, end),
        "rates": _rates(params, note),
        "risks": _risks(heads, tables, deals, no_pipeline),
        "stress": _stress(tables["stress"], paths.get("stress", "stress.csv"))
        if "stress" in tables else None,
        "sensitivity": _sensitivity(tables["sensitivity"],
                                    paths.get("sensitivity", "sensitivity.csv"))
        if "sensitivity" in tables else None,
        "forecast_dir": str(fdir),
        "provenance": _provenance(ds),
    }
    return _environment().get_template("report.html.j2").render(**context)


def write_report(
    forecast_dir: str | Path,
    out: str | Path | None = None,
    *,
    parameters: str | Path | None = None,
    stress: str | Path | None = None,
    sensitivity: str | Path | None = None,
    force: bool = False,
) -> Path:
    """Write ``report.html`` (atomically) and return its path.

    Parameters
    ----------
    forecast_dir : str or Path
        The forecast directory.
    out : str or Path, optional
        Output file; default ``forecast_dir / "report.html"``.
    parameters, stress, sensitivity : str or Path, optional
        See :func:`build_report`.
    force : bool
        Replace an existing file.
    """
    page = build_report(forecast_dir, parameters=parameters, stress=stress,
                        sensitivity=sensitivity)
    target = Path(out) if out is not None else Path(forecast_dir) / "report.html"
    with atomic_file(target, force=force) as tmp:
        tmp.write_text(page, encoding="utf-8")
        tmp.chmod(umask_mode(0o666))  # readable like any file the user writes
    return target

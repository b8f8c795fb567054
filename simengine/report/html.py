"""The self-contained HTML report of a forecast directory (``report.html``).

One file with inline CSS and PNG charts as ``data:`` URIs: it opens offline.
Per reporting segment and for the total (simulated jointly): the headline
(P(hit target), P(within 5%) with their Monte Carlo errors, revenue
P10/P50/P90 against the target, when the target is reached), a fan chart of
cumulative closed-won revenue, pipeline coverage by week against the 3x bar,
and the funnel stage by stage against what the target needs. Then the
conversion rates beside the trailing raw rates, the top risks, the planning
tables when present, and provenance.

A small inline script records page errors and undecoded images into
``<body data-errors data-broken-images>`` so a headless browser can check the
page (see ``tests/report/test_browser.py``).
"""

from __future__ import annotations

import datetime as dt
import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    read_forecast,
    read_parameter_summary,
    read_planning_tables,
)

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
        return f"target reached {fmt.date(self.start, self.ttt_p50)} (80%: {lo} – {hi})"

    def text(self) -> str:
        """One line for a terminal: the numbers a revenue leader asks first."""
        return (
            f"P(hit) {fmt.percent_pm(self.prob_hit, self.prob_hit_se)}, "
            f"P(within 5%) {fmt.percent_pm(self.prob_within_5pct, self.prob_within_5pct_se)}; "
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


# ---------------------------------------------------------------- HTML pieces

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#222;
background:#f6f7f9}
main{max-width:1000px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:1.6em;margin:.6em 0 .2em} h2{margin-top:1.6em;border-bottom:2px solid #1f5fa8;
padding-bottom:4px} h3{margin:1.2em 0 .4em}
.meta{color:#666;font-size:.9em}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:10px 0}
.card{background:#fff;border:1px solid #dde;border-radius:6px;padding:8px 12px;min-width:170px}
.card .v{font-size:1.35em;font-weight:600} .card .l{font-size:.8em;color:#666}
table{border-collapse:collapse;background:#fff;margin:8px 0;font-size:.9em}
th,td{border:1px solid #dde;padding:4px 8px;text-align:right} th{background:#eef2f8}
td:first-child,th:first-child{text-align:left}
img{max-width:100%;background:#fff;border:1px solid #dde;border-radius:4px}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:6px 10px;margin:8px 0}
.risk{background:#fdecea;border-left:4px solid #c0392b;padding:6px 10px;margin:6px 0}
nav a{margin-right:12px}
"""

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


def _e(x: object) -> str:
    return html.escape(str(x), quote=True)


def _card(value: str, label: str) -> str:
    return (f'<div class="card"><div class="v">{_e(value)}</div>'
            f'<div class="l">{_e(label)}</div></div>')


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{_e(alt)}">'


def _overview(heads: list[Headline]) -> str:
    rows = [
        [h.segment, fmt.money(h.target), fmt.percent_pm(h.prob_hit, h.prob_hit_se),
         fmt.percent_pm(h.prob_within_5pct, h.prob_within_5pct_se), fmt.money(h.revenue_p10),
         fmt.money(h.revenue_p50), fmt.money(h.revenue_p90), fmt.date(h.start, h.ttt_p50),
         fmt.ratio(h.coverage_p50)]
        for h in heads
    ]
    return _table(
        ["segment", "target", "P(hit target)", "P(within 5%)", "revenue P10", "P50", "P90",
         "target reached (median)", "coverage at start"], rows)


def _segment_section(
    ds: xr.Dataset, h: Headline, params: ParameterSummary | None
) -> str:
    seg = h.segment
    q = ds["quantile"].values.astype(np.float64)
    start, end = attr_date(ds, "start"), attr_date(ds, "end")
    as_of = attr_date(ds, "as_of")
    parts = [f'<section id="seg-{_e(seg)}"><h2>{_e(seg)}</h2>', '<div class="cards">',
             _card(fmt.percent_pm(h.prob_hit, h.prob_hit_se), "P(hit target)"),
             _card(fmt.percent_pm(h.prob_within_5pct, h.prob_within_5pct_se),
                   "P(within ±5% of target)"),
             _card(f"{fmt.money(h.revenue_p10)} / {fmt.money(h.revenue_p50)} / "
                   f"{fmt.money(h.revenue_p90)}", f"revenue P10 / P50 / P90 vs target "
                   f"{fmt.money(h.target)}"),
             _card(fmt.date(h.start, h.ttt_p50), "expected day the target is reached"),
             "</div>", f"<p>{_e(h.reached_text()[0].upper() + h.reached_text()[1:])}; "
             f"reached within the horizon in {_e(fmt.percent(h.prob_reached))} of paths.</p>"]
    # Fan chart of cumulative revenue.
    actual = None
    if "actual_revenue" in ds:
        actual = ds["actual_revenue"].sel(segment=seg).values.astype(np.float64)
    fan = charts.fan_chart(
        ds["date"].values, q, ds["cum_revenue"].sel(segment=seg).values, target=h.target,
        mean=ds["cum_revenue_mean"].sel(segment=seg).values, today=as_of, actual=actual,
        period_end=end, title=f"{seg}: cumulative closed-won revenue from {start:%b %d, %Y}",
    )
    parts += ["<h3>Cumulative closed-won revenue</h3>",
              _img(fan, f"fan chart of cumulative revenue, {seg}")]
    if actual is None:
        parts.append(f'<p class="meta">Today ({as_of:%b %d, %Y}) nothing has been won in the '
                     "period yet: the period starts on or after the as-of date.</p>")
    # Coverage.
    cov = charts.coverage_chart(ds["week"].values, q, ds["coverage"].sel(segment=seg).values,
                                title=f"{seg}: open pipeline value / period target, week ends")
    parts += ["<h3>Pipeline coverage</h3>", _img(cov, f"pipeline coverage by week, {seg}"),
              f"<p>Coverage at period start: <b>{_e(fmt.ratio(h.coverage_p50))}</b> (median) — "
              f"<b>{_e(coverage_band(h.coverage_p50))}</b>. 3x at period start is the usual "
              "bar, 3–3.5x the sweet spot; above 4x usually signals low-quality pipeline.</p>"]
    # Funnel.
    parts.append(_funnel_section(ds, seg, h.target, params))
    parts.append("</section>")
    return "\n".join(parts)


def _funnel_section(
    ds: xr.Dataset, seg: str, target: float, params: ParameterSummary | None
) -> str:
    stages = [str(s) for s in ds["stage"].values]
    ent = ds["entered"].sel(segment=seg)
    med = ent.sel(quantile=0.5, method="nearest").values
    lo = ent.sel(quantile=0.1, method="nearest").values
    hi = ent.sel(quantile=0.9, method="nearest").values
    need = None
    note = ""
    if params is not None and list(params.stages) == stages:
        need = reverse_funnel(params, seg, target)
    elif params is not None:
        note = "The parameter file's stages differ from the forecast's; no target need shown."
    else:
        note = "No parameter file found, so what the target needs is not shown."
    chart = charts.funnel_chart(stages, med, lo, hi, need,
                                title=f"{seg}: units entering each stage in the period")
    rows = []
    for k, st in enumerate(stages):
        n = need[k] if need is not None else float("nan")
        gap = n - med[k] if need is not None else float("nan")
        rows.append([st, fmt.count(med[k]), f"{fmt.count(lo[k])} – {fmt.count(hi[k])}",
                     fmt.count(n), (("short " if gap > 0 else "ahead ") + fmt.count(abs(gap)))
                     if math.isfinite(gap) else fmt.NA])
    out = ["<h3>The funnel, stage by stage</h3>", _img(chart, f"funnel, {seg}"),
           _table(["stage", "forecast (median)", "80% interval", "target needs", "gap"], rows)]
    if need is not None:
        top = stages[0]
        out.append(
            f"<p><b>Needs {_e(fmt.count(need[0]))} {_e(top)}s, the forecast has "
            f"{_e(fmt.count(med[0]))}</b> (80%: {_e(fmt.count(lo[0]))} – {_e(fmt.count(hi[0]))})."
            " The need is a deterministic reverse funnel from the parameter means (target / mean"
            " deal / step rates), as if every won deal started at that stage inside the period;"
            " the open pipeline at the as-of date already covers part of it.</p>"
        )
    if note:
        out.append(f'<p class="note">{_e(note)}</p>')
    return "\n".join(out)


def _rates_section(params: ParameterSummary | None, note: str | None) -> str:
    out = ['<section id="rates"><h2>Conversion rates</h2>']
    if params is None:
        out.append(f'<p class="note">Conversion rates are not shown: {_e(note or "no file")}.</p>')
        return "\n".join([*out, "</section>"])
    steps = params.stages[1:]
    mean = params.conversion.mean(axis=0)
    lo = np.quantile(params.conversion, 0.05, axis=0)
    hi = np.quantile(params.conversion, 0.95, axis=0)
    rows = []
    for c, cell in enumerate(params.cells):
        for s, step in enumerate(steps):
            raw = [fmt.percent(params.raw_rates[k][c, s], 1) if k in params.raw_rates else fmt.NA
                   for k in ("4q", "13w")]
            rows.append([cell, f"{params.stages[s]} → {step}", fmt.percent(mean[c, s], 1),
                         f"{fmt.percent(lo[c, s], 1)} – {fmt.percent(hi[c, s], 1)}", *raw])
    out.append(f'<p class="meta">From the {_e(params.source)} file {_e(params.path)}; '
               "90% credible interval. Raw rates are trailing converted/entered for units that "
               "entered the step's first stage in the window (the numbers a revenue team usually "
               "looks at).</p>")
    if not params.raw_rates:
        out.append('<p class="note">This file has no trailing raw rates (raw_rate_4q, '
                   "raw_rate_13w in its constant_data).</p>")
    out.append(_table(["cell", "step", "rate (mean)", "90% interval", "raw, trailing 4 quarters",
                       "raw, trailing 13 weeks"], rows))
    return "\n".join([*out, "</section>"])


def _risks_from_forecast(
    ds: xr.Dataset, heads: list[Headline], params: ParameterSummary | None
) -> list[str]:
    """Plain-word risks read off the forecast itself (no extra simulation)."""
    risks: list[tuple[float, str]] = []
    for h in heads:
        if h.segment == "total":
            continue
        miss = 1.0 - h.prob_hit
        gap = h.target - h.revenue_p50
        risks.append((miss * h.target,
                      f"{h.segment} misses its {fmt.money(h.target)} target with probability "
                      f"{fmt.percent(miss)}"
                      + (f"; the median outcome is {fmt.money(gap)} short." if gap > 0
                         else f"; the median outcome is {fmt.money(-gap)} over.")))
        if math.isfinite(h.coverage_p50) and h.coverage_p50 < charts.COVERAGE_BAR:
            risks.append((miss * h.target * 0.9,
                          f"{h.segment} starts the period with {fmt.ratio(h.coverage_p50)} "
                          "pipeline coverage, below the 3x bar."))
        if params is not None:
            need = reverse_funnel(params, h.segment, h.target)
            if need is not None:
                ent = ds["entered"].sel(segment=h.segment)
                med = ent.sel(quantile=0.5, method="nearest").values
                stages = [str(s) for s in ds["stage"].values]
                short = need[0] - med[0]
                if short > 0 and math.isfinite(short):
                    risks.append((miss * h.target * 0.8,
                                  f"{h.segment} needs {fmt.count(need[0])} {stages[0]}s for its "
                                  f"target from scratch; the forecast has {fmt.count(med[0])}."))
    risks.sort(key=lambda r: -r[0])
    return [r[1] for r in risks[:3]]


def _figure_img(plot: Any, df: pd.DataFrame, alt: str) -> str:
    """Embed a planning module's chart; a chart that cannot be drawn is left out."""
    if plot is None:
        return ""
    try:
        fig = plot(df)
    except (TypeError, ValueError, KeyError, IndexError):
        return ""
    uri = charts.png_data_uri(fig)
    import matplotlib.pyplot as plt

    plt.close(fig)  # planning charts may be pyplot figures
    return _img(uri, alt)


def _stress_table(df: pd.DataFrame) -> str:
    need = {"scenario", "segment", "metric", "stat", "value", "delta", "delta_se"}
    if not need <= set(df.columns):
        return _table([str(c) for c in df.columns],
                      [[_cell(v) for v in row] for row in df.itertuples(index=False)])
    d = df[(df["metric"] == "attainment") & (df["stat"] == "prob_hit")]
    rows = []
    for r in d.itertuples(index=False):
        title = str(getattr(r, "title", "") or "")
        change = (f"{100 * r.delta:+.1f} ± {100 * r.delta_se:.2g} pts"
                  if math.isfinite(r.delta_se) else "–")
        rows.append([str(r.scenario), title if title != "nan" else "", str(r.segment),
                     fmt.percent(r.value, 1), change])
    return _table(["scenario", "what", "segment", "P(hit target)",
                   "change vs baseline (± MC se, common random numbers)"], rows)


def _planning_section(
    ds: xr.Dataset, heads: list[Headline], params: ParameterSummary | None,
    tables: dict[str, pd.DataFrame],
) -> str:
    out = ['<section id="risks"><h2>Top risks</h2>']
    risks: list[str] = []
    from simengine.planning import sensitivity as sens_mod
    from simengine.planning import stress as stress_mod

    if "sensitivity" in tables and hasattr(sens_mod, "top_risks"):
        try:
            risks = [str(r) for r in sens_mod.top_risks(tables["sensitivity"])][:3]
        except (TypeError, ValueError, KeyError, IndexError):
            risks = []
    if risks:
        out.append('<p class="meta">From the sensitivity analysis (sensitivity.csv): which '
                   "segment and step contribute most to the shortfall probability.</p>")
    else:
        risks = _risks_from_forecast(ds, heads, params)
        out.append('<p class="meta">Read off this forecast (probability of missing × target, '
                   "coverage, funnel need). Run the sensitivity command for step-level "
                   "attribution.</p>")
    out += [f'<div class="risk">{i}. {_e(r)}</div>' for i, r in enumerate(risks, 1)]
    if "stress" in tables:
        out += ["<h3>Stress tests (stress.csv)</h3>",
                _figure_img(getattr(stress_mod, "plot_stress", None), tables["stress"],
                            "stress tests: change in P(hit target)"),
                _stress_table(tables["stress"])]
    if "sensitivity" in tables:
        df = tables["sensitivity"]
        shown = df
        if "outcome_segment" in shown.columns:
            shown = shown[shown["outcome_segment"] == "total"]
        if "delta_prob_hit" in shown.columns:
            shown = shown.sort_values("delta_prob_hit", kind="stable")
        shown = shown.head(12)
        out += ["<h3>Sensitivity (sensitivity.csv)</h3>",
                _figure_img(getattr(sens_mod, "plot_tornado", None), df, "sensitivity tornado"),
                f'<p class="meta">The {len(shown)} moves that lower P(hit) for the total most '
                f"(of {len(df)} rows in sensitivity.csv).</p>",
                _table([str(c) for c in shown.columns],
                       [[_cell(v) for v in row] for row in shown.itertuples(index=False)])]
    return "\n".join([*out, "</section>"])


def _cell(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _provenance(ds: xr.Dataset, forecast_dir: Path) -> str:
    keys = ["source", "seed", "paths", "block_size", "as_of", "start", "end", "horizon_end",
            "sketch_rel_error", "input_sha256", "versions"]
    rows = [[k, str(ds.attrs[k])] for k in keys if k in ds.attrs]
    return ('<section id="provenance"><h2>Provenance</h2>'
            f'<p class="meta">Forecast directory: {_e(forecast_dir)}</p>'
            + _table(["attribute", "value"], rows) + "</section>")


def build_report(
    forecast_dir: str | Path, *, parameters: str | Path | None = None
) -> str:
    """Build the report page of a forecast directory.

    Parameters
    ----------
    forecast_dir : str or Path
        Directory written by ``simengine simulate`` (``forecast.nc``).
    parameters : str or Path, optional
        The posterior or assumptions file the forecast came from; by default
        found through the forecast's recorded input paths.

    Returns
    -------
    str
        The complete HTML document.

    Raises
    ------
    InputError
        If the forecast is missing or does not follow the contract, or an
        explicitly given parameter file is unreadable.
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
    heads = headlines(ds)
    start, end, as_of = attr_date(ds, "start"), attr_date(ds, "end"), attr_date(ds, "as_of")
    banner = ""
    if params is not None and params.converged is False:
        banner = ('<p class="risk"><b>The fit behind this forecast missed the convergence '
                  f"gate</b> ({_e(params.path)} is flagged simengine_converged=false): treat "
                  "the probabilities with caution and refit with more draws.</p>")
    nav = " ".join(f'<a href="#seg-{_e(h.segment)}">{_e(h.segment)}</a>' for h in heads)
    body = [
        f"<h1>Revenue forecast {start:%b %d, %Y} – {end:%b %d, %Y}</h1>",
        f'<p class="meta">As of {as_of:%b %d, %Y} · {_e(fmt.count(ds.attrs.get("paths")))} '
        f"simulated paths · seed {_e(ds.attrs.get('seed', 'n/a'))} · parameters from "
        f"{_e(ds.attrs.get('source', 'n/a'))}. Probabilities carry their Monte Carlo error "
        "(± one standard error).</p>",
        f"<nav>{nav} <a href=\"#rates\">rates</a> <a href=\"#risks\">risks</a> "
        "<a href=\"#provenance\">provenance</a></nav>",
        banner, "<h2>Overview</h2>", _overview(heads),
        '<p class="meta">The total is simulated jointly with the segments, not summed.</p>',
        *(_segment_section(ds, h, params) for h in heads),
        _rates_section(params, note),
        _planning_section(ds, heads, params, read_planning_tables(fdir)),
        _provenance(ds, fdir),
    ]
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>simengine forecast {start:%Y-%m-%d} – {end:%Y-%m-%d}</title>"
        f"<style>{_CSS}</style><script>{_CHECK_SCRIPT}</script></head>\n"
        "<body><main>\n" + "\n".join(body) + "\n</main></body></html>\n"
    )


def write_report(
    forecast_dir: str | Path,
    out: str | Path | None = None,
    *,
    parameters: str | Path | None = None,
    force: bool = False,
) -> Path:
    """Write ``report.html`` (atomically) and return its path.

    Parameters
    ----------
    forecast_dir : str or Path
        The forecast directory.
    out : str or Path, optional
        Output file; default ``forecast_dir / "report.html"``.
    parameters : str or Path, optional
        See :func:`build_report`.
    force : bool
        Replace an existing file.
    """
    page = build_report(forecast_dir, parameters=parameters)
    target = Path(out) if out is not None else Path(forecast_dir) / "report.html"
    with atomic_file(target, force=force) as tmp:
        tmp.write_text(page, encoding="utf-8")
        tmp.chmod(umask_mode(0o666))  # readable like any file the user writes
    return target

"""Pooling backtest scores and drawing the backtest page.

``backtest.csv`` is tidy: one row per (origin, method, segment) with the
realised value and every metric of :func:`simengine.backtest.scoring.score`.
This module pools it (per method and segment: mean CRPS, CRPS skill against
each baseline, coverage rates with binomial bands, PIT uniformity) and
renders ``backtest.html`` (self-contained; charts embedded as PNG).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import re

import numpy as np
import pandas as pd
from scipy import stats

from simengine.errors import InputError

__all__ = ["coverage_band", "parse_duration", "parse_origins", "pool", "render_html"]

_DURATION = re.compile(r"^\s*(\d+)\s*([dwq])\s*$")


def parse_duration(text: str, *, option: str = "--period") -> int:
    """Parse ``"13w"``, ``"91d"`` or ``"1q"`` (91 days) into days.

    Raises
    ------
    InputError
        On anything else.
    """
    m = _DURATION.match(text)
    if not m or int(m.group(1)) < 1:
        raise InputError.single(
            option,
            "must be a positive number of days, weeks or quarters such as 91d, 13w or 1q",
            value=text,
        )
    n, unit = int(m.group(1)), m.group(2)
    return n * {"d": 1, "w": 7, "q": 91}[unit]


def parse_origins(
    origins: str | None, every: str | None, start: str | None, end: str | None
) -> list[dt.date]:
    """Origins from ``--origins D,D,...`` or ``--every N --from D --to D``.

    Returns
    -------
    list of datetime.date
        Sorted, unique origin dates.
    """

    def _date(text: str, option: str) -> dt.date:
        try:
            return dt.date.fromisoformat(text.strip())
        except ValueError:
            raise InputError.single(option, "must be a date YYYY-MM-DD", value=text) from None

    if origins:
        if every or start or end:
            raise InputError.single("--origins", "give either --origins or --every/--from/--to")
        out = [_date(t, "--origins") for t in origins.split(",") if t.strip()]
    else:
        if not (every and start and end):
            raise InputError.single("--every", "needs --every, --from and --to (or --origins)")
        step = parse_duration(every, option="--every")
        first, last = _date(start, "--from"), _date(end, "--to")
        if last < first:
            raise InputError.single("--to", "must not be before --from", value=end)
        out = []
        day = first
        while day <= last:
            out.append(day)
            day += dt.timedelta(days=step)
    if not out:
        raise InputError.single("--origins", "no origin dates given")
    return sorted(set(out))


def coverage_band(n: int, nominal: float, z: float = 1.96) -> tuple[float, float]:
    """Return the central binomial band of a coverage rate over ``n`` origins.

    Exact binomial quantiles at the two-sided level matching ``z`` (95% for
    1.96), as rates.
    """
    if n <= 0:
        return (0.0, 1.0)
    alpha = 2 * (1 - stats.norm.cdf(z))
    lo = stats.binom.ppf(alpha / 2, n, nominal) / n
    hi = stats.binom.ppf(1 - alpha / 2, n, nominal) / n
    return (float(lo), float(hi))


def pool(scores: pd.DataFrame) -> pd.DataFrame:
    """Pool per-origin scores per method and segment.

    Parameters
    ----------
    scores : DataFrame
        ``backtest.csv`` rows (columns ``origin, method, segment, realised``
        and the metrics).

    Returns
    -------
    DataFrame
        One row per (method, segment): ``origins``, mean ``crps``,
        ``crps_skill_<baseline>`` (1 - CRPS / baseline CRPS, pooled),
        coverage rates and their 95% binomial bands, mean pinball losses,
        mean ``ape_p50``, share ``within_5pct``, and ``pit_ks_p`` (KS test of
        PIT uniformity; NaN for point forecasts).
    """
    rows = []
    methods = list(dict.fromkeys(scores["method"]))
    baselines = [m for m in methods if m != "simengine"]
    for (method, segment), g in scores.groupby(["method", "segment"], sort=False):
        n = len(g)
        row: dict[str, object] = {
            "method": method,
            "segment": segment,
            "origins": n,
            "crps": g["crps"].mean(),
        }
        for b in baselines:
            other = scores[(scores["method"] == b) & (scores["segment"] == segment)]
            merged = g.merge(other[["origin", "crps"]], on="origin", suffixes=("", "_b"))
            denom = merged["crps_b"].mean()
            row[f"crps_skill_{b}"] = (1 - merged["crps"].mean() / denom) if denom > 0 else np.nan
        for w in (50, 80, 90):
            rate = g[f"cover_{w}"].mean()
            lo, hi = coverage_band(n, w / 100)
            row[f"cover_{w}"] = rate
            row[f"cover_{w}_band_lo"] = lo
            row[f"cover_{w}_band_hi"] = hi
        for q in (10, 50, 90):
            row[f"pinball_{q}"] = g[f"pinball_{q}"].mean()
        row["ape_p50"] = g["ape_p50"].mean()
        row["within_5pct"] = g["within_5pct"].mean()
        point = bool(g["point"].all()) if "point" in g else False
        row["pit_ks_p"] = (
            np.nan if point or n < 2 else float(stats.kstest(g["pit"].to_numpy(), "uniform").pvalue)
        )
        rows.append(row)
    return pd.DataFrame(rows)


def _png(fig: object) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    return base64.b64encode(buf.getvalue()).decode()


def render_html(scores: pd.DataFrame, pooled: pd.DataFrame, title: str) -> str:
    """Render ``backtest.html``: PIT histogram, coverage vs nominal, CRPS by origin, tables."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    total = scores[scores["segment"] == "total"]
    methods = list(dict.fromkeys(scores["method"]))
    charts = []

    fig, ax = plt.subplots(figsize=(6, 3.2))
    sim = scores[scores["method"] == "simengine"]["pit"].dropna()
    ax.hist(sim, bins=[i / 10 for i in range(11)], color="#3a6ea5", edgecolor="white")
    if len(sim):
        n = len(sim)
        lo, hi = stats.binom.ppf([0.025, 0.975], n, 0.1)
        ax.axhspan(lo, hi, color="grey", alpha=0.2, label="95% band if uniform")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel("PIT of realised revenue (all segments)")
    ax.set_ylabel("origins × segments")
    ax.set_title("simengine: PIT histogram")
    charts.append(("PIT histogram", _png(fig)))

    fig, ax = plt.subplots(figsize=(6, 3.2))
    nominal = np.array([0.5, 0.8, 0.9])
    sim_pooled = pooled[(pooled["method"] == "simengine")]
    if len(sim_pooled):
        n_all = int(sim_pooled["origins"].sum())
        allsim = scores[scores["method"] == "simengine"]
        rates = [allsim[f"cover_{int(w * 100)}"].mean() for w in nominal]
        bands = np.array([coverage_band(n_all, w) for w in nominal])
        ax.fill_between(
            nominal, bands[:, 0], bands[:, 1], color="grey", alpha=0.25, label="95% binomial band"
        )
        ax.plot(nominal, rates, "o-", color="#3a6ea5", label="simengine")
    ax.plot([0.45, 0.95], [0.45, 0.95], "k--", lw=1, label="nominal")
    ax.set_xlabel("nominal coverage")
    ax.set_ylabel("observed coverage")
    ax.legend(fontsize=8)
    ax.set_title("Interval coverage against nominal")
    charts.append(("Coverage", _png(fig)))

    fig, ax = plt.subplots(figsize=(7, 3.2))
    for m in methods:
        g = total[total["method"] == m].sort_values("origin")
        ax.plot(pd.to_datetime(g["origin"]), g["crps"], "o-", label=m)
    ax.set_ylabel("CRPS (total revenue)")
    ax.set_title("CRPS by origin: simengine and baselines")
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    charts.append(("CRPS by origin", _png(fig)))

    imgs = "\n".join(
        f'<figure><img alt="{html.escape(t)}" src="data:image/png;base64,{b}"/>'
        f"<figcaption>{html.escape(t)}</figcaption></figure>"
        for t, b in charts
    )
    table = pooled.round(4).to_html(index=False, classes="t", border=0, na_rep="")
    per_origin = total.round(4).to_html(index=False, classes="t", border=0, na_rep="")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}
table.t{{border-collapse:collapse;font-size:12px}}
table.t td,table.t th{{padding:2px 6px;border-bottom:1px solid #ddd}}
figure{{display:inline-block;margin:0 1em 1em 0}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Each origin: fit on what was known then, simulate the period that follows,
score against what happened. Coverage bands are 95% binomial bands
for the number of origins × segments scored.</p>
{imgs}
<h2>Pooled scores</h2>{table}
<h2>Per origin (total)</h2>{per_origin}
</body></html>"""

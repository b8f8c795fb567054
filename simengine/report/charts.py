"""Report charts: matplotlib (Agg, no display) figures returned as PNG data URIs.

Each function takes plain NumPy arrays, draws one figure with the
object-oriented API (no ``pyplot`` global state, so it is thread-safe and
never opens a window) and returns ``"data:image/png;base64,..."`` ready for
an ``<img src>``; the report therefore needs no network and no side files.
PNG metadata is stripped so the same numbers give the same bytes.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from simengine.report import format as fmt

__all__ = [
    "COVERAGE_BAR",
    "COVERAGE_HIGH",
    "COVERAGE_SWEET",
    "coverage_chart",
    "coverage_figure",
    "fan_chart",
    "funnel_chart",
    "png_data_uri",
    "sources_chart",
]

#: Pipeline coverage at period start: 3x is the usual bar, 3-3.5x the sweet
#: spot, above 4x signals low-quality pipeline.
COVERAGE_BAR = 3.0
COVERAGE_SWEET = 3.5
COVERAGE_HIGH = 4.0

_BLUE = "#1f5fa8"
_TARGET = "#c0392b"
_GREY = "#555555"
_DPI = 100


def png_data_uri(fig: Figure) -> str:
    """Render ``fig`` to PNG and return it as a base64 ``data:`` URI."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _day(d: dt.date) -> Any:  # matplotlib accepts datetime64 where it types float
    return np.datetime64(d.isoformat(), "D")


def _date_axis(ax: Any) -> None:
    """Day ticks as ``Jan 4`` (the report's one date style), never ``2027-01``."""
    import matplotlib.dates as mdates

    loc = mdates.AutoDateLocator(minticks=4, maxticks=9)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(
        FuncFormatter(lambda v, _pos: f"{mdates.num2date(v):%b} {mdates.num2date(v).day}")
    )


def _money_axis(ax: object) -> None:
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: fmt.money(v)))  # type: ignore[attr-defined]


def _band(q: npt.NDArray[np.float64], values: npt.NDArray[np.float64], p: float) -> tuple[
    npt.NDArray[np.float64], npt.NDArray[np.float64]
]:
    """Lower and upper columns of the central ``p`` band (quantiles must be present)."""
    lo = (1.0 - p) / 2.0
    i = int(np.argmin(np.abs(q - lo)))
    j = int(np.argmin(np.abs(q - (1.0 - lo))))
    if not (np.isclose(q[i], lo) and np.isclose(q[j], 1.0 - lo)):
        raise ValueError(f"quantiles {lo:g} and {1 - lo:g} are needed for a {p:.0%} band")
    return values[:, i], values[:, j]


def fan_chart(
    dates: npt.NDArray[np.datetime64],
    quantiles: Sequence[float] | npt.NDArray[np.float64],
    values: npt.NDArray[np.float64],
    *,
    target: float,
    mean: npt.NDArray[np.float64] | None = None,
    today: dt.date | None = None,
    actual: npt.NDArray[np.float64] | None = None,
    period_end: dt.date | None = None,
    title: str = "",
) -> str:
    """Fan chart of cumulative closed-won revenue by day.

    Parameters
    ----------
    dates : ndarray of datetime64, shape (date,)
        Days of the series.
    quantiles : sequence of float, shape (quantile,)
        Probabilities of the columns of ``values``; must include 0.025,
        0.1, 0.25, 0.5, 0.75, 0.9 and 0.975 (95%, 80% and 50% bands and
        the median).
    values : ndarray, shape (date, quantile)
        Cumulative revenue quantiles.
    target : float
        The period target (horizontal line).
    mean : ndarray, shape (date,), optional
        Mean path (dashed).
    today : datetime.date, optional
        The as-of date, marked with a vertical line.
    actual : ndarray, shape (date,), optional
        Revenue actually won to date (NaN after today); drawn in black.
    period_end : datetime.date, optional
        Last day of the period (vertical dotted line) when the horizon is longer.
    title : str
        Axes title.

    Returns
    -------
    str
        PNG data URI.
    """
    q = np.asarray(quantiles, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    x = np.asarray(dates).astype("datetime64[D]")
    fig = Figure(figsize=(7.5, 3.6), layout="constrained")
    ax = fig.add_subplot()
    for p, alpha in ((0.95, 0.15), (0.8, 0.25), (0.5, 0.4)):
        lo, hi = _band(q, v, p)
        ax.fill_between(x, lo, hi, color=_BLUE, alpha=alpha, lw=0, label=f"{p:.0%} band")
    ax.plot(x, _band(q, v, 0.0)[0], color=_BLUE, lw=1.8, label="median")
    if mean is not None:
        ax.plot(x, mean, color=_BLUE, lw=1, ls="--", label="mean")
    ax.axhline(target, color=_TARGET, lw=1.5, label=f"target {fmt.money(target)}")
    if actual is not None and np.any(np.isfinite(actual)):
        ax.plot(x, actual, color="black", lw=2, label="actual to date")
    if today is not None:
        ax.axvline(_day(today), color=_GREY, lw=1, ls=":")
        ax.annotate("today", (_day(today), 0), xycoords=("data", "axes fraction"),
                    xytext=(3, 3), textcoords="offset points", fontsize=8, color=_GREY)
    if period_end is not None and _day(period_end) < x[-1]:
        ax.axvline(_day(period_end), color=_GREY, lw=1, ls="--")
        ax.annotate("period end", (_day(period_end), 1),
                    xycoords=("data", "axes fraction"), xytext=(3, -12),
                    textcoords="offset points", fontsize=8, color=_GREY)
    _money_axis(ax)
    _date_axis(ax)
    ax.set_ylabel("closed-won revenue since period start")
    ax.set_title(title, fontsize=10, loc="left")
    fig.legend(fontsize=7, loc="outside lower center", ncols=4, frameon=False)
    ax.grid(alpha=0.3)
    return png_data_uri(fig)


def coverage_chart(
    weeks: npt.NDArray[np.datetime64],
    quantiles: Sequence[float] | npt.NDArray[np.float64],
    values: npt.NDArray[np.float64],
    *,
    start: tuple[dt.date, float, float, float] | None = None,
    title: str = "",
) -> str:
    """Draw :func:`coverage_figure` and return it as a PNG data URI."""
    return png_data_uri(coverage_figure(weeks, quantiles, values, start=start, title=title))


def coverage_figure(
    weeks: npt.NDArray[np.datetime64],
    quantiles: Sequence[float] | npt.NDArray[np.float64],
    values: npt.NDArray[np.float64],
    *,
    start: tuple[dt.date, float, float, float] | None = None,
    title: str = "",
) -> Figure:
    """Pipeline coverage (open pipeline value / period target) by week-end date.

    The median with its 80% band, starting from the period start when
    ``start`` is given (the number the report's text quotes). The 3x bar,
    the 3-3.5x sweet spot and the 4x line are rules for coverage *at the
    period start*, so they are drawn at the start only (a short bar), not
    across the weeks, where less pipeline is needed as deals close. The
    legend sits under the axes so it covers no line.

    Parameters
    ----------
    weeks : ndarray of datetime64, shape (week,)
    quantiles : sequence of float
        Must include 0.1, 0.5 and 0.9.
    values : ndarray, shape (week, quantile)
    start : (date, p10, p50, p90), optional
        Coverage at the period start, drawn as the first point.
    title : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    q = np.asarray(quantiles, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    x = np.asarray(weeks).astype("datetime64[D]")
    lo, hi = _band(q, v, 0.8)
    med = _band(q, v, 0.0)[0]
    if start is not None:
        x = np.concatenate([[_day(start[0])], x])
        lo = np.concatenate([[start[1]], lo])
        med = np.concatenate([[start[2]], med])
        hi = np.concatenate([[start[3]], hi])
    fig = Figure(figsize=(7.5, 3.3), layout="constrained")
    ax = fig.add_subplot()
    x0 = x[0]
    x1 = x0 + np.timedelta64(max(3, int((x[-1] - x[0]).astype(int)) // 12), "D")
    ax.fill_between([x0, x1], COVERAGE_BAR, COVERAGE_SWEET, color="#2e8b57", alpha=0.25, lw=0,
                    label=f"at period start: sweet spot {COVERAGE_BAR:g}-{COVERAGE_SWEET:g}x")
    ax.plot([x0, x1], [COVERAGE_BAR, COVERAGE_BAR], color="#2e8b57", lw=2,
            label=f"{COVERAGE_BAR:g}x bar")
    ax.plot([x0, x1], [COVERAGE_HIGH, COVERAGE_HIGH], color="#d68910", lw=1.5, ls="--",
            label=f"{COVERAGE_HIGH:g}x: check pipeline quality")
    ax.fill_between(x, lo, hi, color=_BLUE, alpha=0.25, lw=0, label="80% band")
    ax.plot(x, med, color=_BLUE, lw=1.8, marker="o", ms=3, label="median")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _pos: fmt.ratio(y)))
    ax.set_ylabel("open pipeline / period target")
    top = float(np.nanmax(np.concatenate([hi, [COVERAGE_HIGH]])))
    ax.set_ylim(0, top * 1.1 if np.isfinite(top) and top > 0 else COVERAGE_HIGH * 1.1)
    ax.set_title(title, fontsize=10, loc="left")
    _date_axis(ax)
    fig.legend(fontsize=7, loc="outside lower center", ncols=3, frameon=False)
    ax.grid(alpha=0.3)
    return fig


def funnel_chart(
    stages: Sequence[str],
    expected: npt.NDArray[np.float64],
    low: npt.NDArray[np.float64],
    high: npt.NDArray[np.float64],
    needed: npt.NDArray[np.float64] | None,
    *,
    title: str = "",
) -> str:
    """Units expected to enter each stage in the period against what the target needs.

    Parameters
    ----------
    stages : sequence of str
        Stage names, top of the funnel first.
    expected, low, high : ndarray, shape (stage,)
        Median and interval of units entering each stage in the period.
    needed : ndarray, shape (stage,) or None
        Units the target needs at each stage (reverse funnel); ``None`` if
        unknown.
    title : str

    Returns
    -------
    str
        PNG data URI.
    """
    n = len(stages)
    y = np.arange(n)[::-1].astype(np.float64)
    fig = Figure(figsize=(7.5, 0.6 * n + 1.2), layout="constrained")
    ax = fig.add_subplot()
    h = 0.38
    exp = np.asarray(expected, dtype=np.float64)
    err = np.vstack([exp - np.asarray(low), np.asarray(high) - exp])
    ax.barh(y + h / 2, exp, height=h, color=_BLUE, alpha=0.8, label="forecast (median, 80%)",
            xerr=np.clip(err, 0, None), error_kw={"ecolor": "black", "capsize": 3, "lw": 1})
    if needed is not None:
        ax.barh(y - h / 2, needed, height=h, color=_TARGET, alpha=0.6, label="target needs")
    ax.set_yticks(y, list(stages))
    # a true log axis from 1 (no "0" tick squeezing the bars' differences)
    ax.set_xscale("log")
    vals = np.concatenate([np.asarray(high, dtype=np.float64),
                           np.asarray(needed if needed is not None else [1.0], dtype=np.float64)])
    top = np.nanmax(np.where(np.isfinite(vals), vals, np.nan))
    ax.set_xlim(1, top * 1.5 if np.isfinite(top) and top > 1 else 10)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: fmt.count(v)))
    ax.set_xlabel("units entering the stage in the period (log scale, from 1)")
    ax.set_title(title, fontsize=10, loc="left")
    ax.legend(fontsize=7, loc="lower right", frameon=False)
    ax.grid(alpha=0.3, axis="x")
    return png_data_uri(fig)


def sources_chart(
    labels: Sequence[str],
    mean: npt.NDArray[np.float64],
    low: npt.NDArray[np.float64],
    high: npt.NDArray[np.float64],
    *,
    title: str = "",
) -> str:
    """Period revenue by source: mean bars with each source's own P10-P90 band.

    Parameters
    ----------
    labels : sequence of str
        Source labels, top first (existing pipeline, then new deals).
    mean, low, high : ndarray, shape (source,)
        Mean revenue of each source and its P10 and P90 over paths.
    title : str

    Returns
    -------
    str
        PNG data URI.
    """
    n = len(labels)
    y = np.arange(n)[::-1].astype(np.float64)
    fig = Figure(figsize=(7.5, 0.55 * n + 1.3), layout="constrained")
    ax = fig.add_subplot()
    m = np.asarray(mean, dtype=np.float64)
    colours = [_GREY if str(lab).startswith("existing") else _BLUE for lab in labels]
    ax.barh(y, m, height=0.55, color=colours, alpha=0.8)
    err = np.vstack([m - np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64) - m])
    ax.errorbar(m, y, xerr=np.clip(err, 0, None), fmt="none", ecolor="black", capsize=3, lw=1,
                label="P10 – P90 of the source")
    ax.set_yticks(y, list(labels))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: fmt.money(v)))
    ax.set_xlim(left=0)
    ax.set_xlabel("mean revenue won in the period (whiskers: P10 – P90)")
    ax.set_title(title, fontsize=10, loc="left")
    ax.legend(fontsize=7, loc="lower right", frameon=False)
    ax.grid(alpha=0.3, axis="x")
    return png_data_uri(fig)

from __future__ import annotations

import base64
import datetime as dt
import io

import numpy as np
import pytest
from matplotlib.image import imread

from simengine.report import charts

Q = np.array([0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975])


def _decode(uri: str) -> np.ndarray:
    assert uri.startswith("data:image/png;base64,")
    return imread(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])), format="png")


def _paths(seed: int, n: int = 2000, days: int = 60) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.gamma(0.5, 2000.0, size=(n, days)), axis=1)


def test_fan_chart_renders_and_is_deterministic():
    paths = _paths(1)
    dates = np.datetime64("2027-01-04") + np.arange(60)
    vals = np.quantile(paths, Q, axis=0).T
    kw = {"target": 60_000.0, "mean": paths.mean(axis=0), "today": dt.date(2027, 1, 4),
          "period_end": dt.date(2027, 2, 20)}
    a = charts.fan_chart(dates, Q, vals, **kw)
    b = charts.fan_chart(dates, Q, vals, **kw)
    assert a == b  # no timestamps in the PNG: same numbers, same bytes
    img = _decode(a)
    assert img.shape[0] > 200
    assert img.shape[1] > 500
    # A different input gives a different picture.
    assert charts.fan_chart(dates, Q, vals * 2, **kw) != a


def test_fan_chart_needs_band_quantiles():
    dates = np.datetime64("2027-01-04") + np.arange(5)
    q = np.array([0.1, 0.5, 0.9])
    with pytest.raises(ValueError, match=r"0\.025"):
        charts.fan_chart(dates, q, np.zeros((5, 3)), target=1.0)


def test_coverage_and_funnel_charts_render():
    rng = np.random.default_rng(3)
    weeks = np.datetime64("2027-01-10") + 7 * np.arange(13)
    cov = rng.lognormal(np.log(3.2), 0.2, size=(500, 13))
    img = _decode(charts.coverage_chart(weeks, Q, np.quantile(cov, Q, axis=0).T))
    assert img.shape[1] > 500
    units = rng.poisson([5000, 1500, 600, 120], size=(500, 4))
    lo, med, hi = np.quantile(units, [0.1, 0.5, 0.9], axis=0)
    img = _decode(charts.funnel_chart(["mql", "sql", "opportunity", "won"], med, lo, hi,
                                      np.array([5840.0, 1752.0, 700.0, 140.0])))
    assert img.shape[0] > 100


def test_coverage_starts_at_the_period_start_and_rules_only_there():
    """Issue 19, item 3: the chart's first point is the period-start coverage the text
    quotes; the 3x/3.5x/4x rules (period-start rules) are drawn only at the start; the
    legend is outside the axes and the band is not clipped."""
    import matplotlib.dates as mdates

    weeks = np.datetime64("2027-01-10") + 7 * np.arange(13)
    rng = np.random.default_rng(3)
    cov = np.sort(rng.lognormal(np.log(5.0), 0.3, size=(13, Q.size)), axis=1)
    start = (dt.date(2027, 1, 4), 2.7, 2.97, 3.3)
    fig = charts.coverage_figure(weeks, Q, cov, start=start)
    (ax,) = fig.axes
    median = next(line for line in ax.get_lines() if line.get_label() == "median")
    x0 = mdates.date2num(np.datetime64("2027-01-04"))
    assert median.get_xdata()[0] == np.datetime64("2027-01-04")
    assert median.get_ydata()[0] == 2.97
    for label in ("3x bar", "4x: check pipeline quality"):
        rule = next(line for line in ax.get_lines() if line.get_label() == label)
        xs = mdates.date2num(np.asarray(rule.get_xdata()))
        assert xs.min() == x0
        assert xs.max() - x0 < 14  # a short bar at the start, not across the weeks
    assert ax.get_legend() is None  # the legend is the figure's, outside the axes
    assert len(fig.legends) == 1
    assert ax.get_ylim()[1] >= cov[:, 6].max()  # the whole 80% band (p90) is inside the axes


def test_funnel_axis_is_log_from_one():
    """Issue 19, item 1: no "0" tick on a log axis squeezing differences."""
    uri = charts.funnel_chart(["mql", "won"], np.array([3000.0, 40.0]), np.array([2800.0, 30.0]),
                              np.array([3200.0, 50.0]), None)
    assert _decode(uri).shape[0] > 0


def test_date_ticks_read_like_the_text():
    """Issue 19, item 5: ticks read "Jan 4" (the report's date style), never "2027-01"."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    x = np.datetime64("2027-01-04") + np.arange(90)
    ax.plot(x, np.arange(90.0))
    charts._date_axis(ax)
    FigureCanvasAgg(fig).draw()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert labels
    for text in labels:
        month, day = text.split(" ")
        assert month in ("Dec", "Jan", "Feb", "Mar", "Apr")
        assert day.isdigit()
        assert not day.startswith("0")

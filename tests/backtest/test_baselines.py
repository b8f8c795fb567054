from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from simengine.backtest.baselines import run_rate, spreadsheet, weighted_pipeline
from simengine.backtest.truth import realised
from simengine.config.spec import parse_spec

SPEC = parse_spec('name = "t"\nstages = ["opportunity", "won"]\nsegment_by = ["segment"]')
ORIGIN = dt.date(2027, 1, 1)


def _frame(rows):
    df = pd.DataFrame(
        rows, columns=["id", "segment", "opportunity_at", "won_at", "lost_at", "amount"]
    )
    for c in ("opportunity_at", "won_at", "lost_at"):
        df[c] = pd.to_datetime(df[c])
    df["amount"] = df["amount"].astype(float)
    return df


def _known():
    # Segment a: in the trailing year 4 opportunities entered, 1 won, 1 lost, 2 open
    # (naive stage-to-won rate 1/4); open amounts 100 (known) and unknown.
    # Segment b: 2 entered, 2 won (rate 1), no open.
    return _frame(
        [
            ("1", "a", "2026-06-01", "2026-08-01", None, 400.0),
            ("2", "a", "2026-06-02", None, "2026-07-01", None),
            ("3", "a", "2026-11-01", None, None, 100.0),
            ("4", "a", "2026-12-01", None, None, None),
            ("5", "b", "2026-10-01", "2026-12-01", None, 50.0),
            ("6", "b", "2026-10-05", "2026-12-20", None, 70.0),
        ]
    )


def test_weighted_pipeline_by_hand():
    fc = weighted_pipeline(_known(), SPEC, ORIGIN, 91, ["a", "b"])
    # a: (100 + average won deal 400) x 1/4 = 125; b: no open pipeline.
    assert fc["a"].quantile(0.5) == pytest.approx(125.0)
    assert fc["b"].quantile(0.5) == 0.0
    assert fc["total"].quantile(0.5) == pytest.approx(125.0)
    assert fc["a"].point


def test_spreadsheet_by_hand_with_plan():
    fc = spreadsheet(
        _known(),
        SPEC,
        ORIGIN,
        91,
        ["a", "b"],
        new_units={"a": {"opportunity": 8}, "b": {"opportunity": 3}},
    )
    # a: open 2 units x 1/4 x 400 + 8 planned x 1/4 x 400 = 200 + 800
    assert fc["a"].quantile(0.5) == pytest.approx(1000.0)
    # b: 3 planned x 1 x mean(50, 70) = 180
    assert fc["b"].quantile(0.5) == pytest.approx(180.0)
    assert fc["total"].quantile(0.5) == pytest.approx(1180.0)


def test_spreadsheet_pace_without_plan():
    fc = spreadsheet(_known(), SPEC, ORIGIN, 91, ["a", "b"])
    # a: entered in the last 91 days: units 3 and 4 (2 x 91/91) -> 2 x 1/4 x 400 = 200, + open 200
    assert fc["a"].quantile(0.5) == pytest.approx(400.0)
    # b: the pace window starts 91 days before the origin, 2026-10-02: unit 6
    # (2026-10-05) is in it, unit 5 (2026-10-01) is not -> 1 x 1 x mean(50, 70) = 60
    assert fc["b"].quantile(0.5) == pytest.approx(60.0)


def test_run_rate_repeats_the_last_window_with_spread():
    # One win of 10 every week for two years in segment a: every window holds
    # 13 wins, so the run-rate is 130 with no spread.
    start = pd.Timestamp("2025-01-01")
    rows = [
        (
            str(i),
            "a",
            start + pd.Timedelta(days=7 * i - 3),
            start + pd.Timedelta(days=7 * i),
            None,
            10.0,
        )
        for i in range(1, 104)
    ]
    known = _frame(rows)
    origin = (start + pd.Timedelta(days=7 * 104)).date()
    fc = run_rate(known, SPEC, origin, 91, ["a"])
    assert fc["a"].quantile(0.1) == pytest.approx(130.0)
    assert fc["a"].quantile(0.9) == pytest.approx(130.0)
    # Doubling the most recent 13 weeks doubles the level; older windows spread it.
    known.loc[known["won_at"] >= pd.Timestamp(origin) - pd.Timedelta(days=91), "amount"] = 20.0
    fc2 = run_rate(known, SPEC, origin, 91, ["a"])
    assert fc2["a"].quantile(0.5) > 200.0
    assert fc2["a"].quantile(0.95) > fc2["a"].quantile(0.05)


def test_run_rate_ignores_windows_before_the_first_close():
    # Entries are recorded from 2025-01-01 but closes only from 2025-07-01 (a
    # young export): windows before the first close are not zero-revenue
    # quarters. From then on one win of 10 a week -> every window 130.
    start = pd.Timestamp("2025-01-01")
    rows = [(f"e{i}", "a", start + pd.Timedelta(days=i), None, None, None) for i in range(180)]
    first_close = pd.Timestamp("2025-07-01")
    rows += [
        (
            f"w{i}",
            "a",
            first_close - pd.Timedelta(days=30),
            first_close + pd.Timedelta(days=7 * i),
            None,
            10.0,
        )
        for i in range(60)
    ]
    known = _frame(rows)
    origin = (first_close + pd.Timedelta(days=7 * 60)).date()
    fc = run_rate(known, SPEC, origin, 91, ["a"])
    assert fc["a"].quantile(0.05) == pytest.approx(130.0)
    assert fc["a"].quantile(0.95) == pytest.approx(130.0)


def test_realised_truth():
    full = _frame(
        [
            ("1", "a", "2026-12-01", "2027-01-05", None, 10.0),
            ("2", "a", "2026-12-01", "2027-03-31", None, 5.0),
            ("3", "b", "2026-12-01", "2027-04-01", None, 7.0),  # after the period
            ("4", "b", "2026-12-01", "2026-12-31", None, 9.0),  # before it
        ]
    )
    truth = realised(full, SPEC, dt.date(2027, 1, 1), dt.date(2027, 3, 31), ["a", "b"])
    assert truth.loc["a", "revenue"] == 15.0
    assert truth.loc["b", "revenue"] == 0.0
    assert truth.loc["total", "won_deals"] == 2
    assert truth["won_deals"].dtype == np.int64

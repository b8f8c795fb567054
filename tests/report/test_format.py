from __future__ import annotations

import datetime as dt

import pytest

from simengine.report import format as fmt


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "$0"),
        (640, "$640"),
        (999.6, "$1.0K"),
        (12_345, "$12.3K"),
        (999_950, "$1.0M"),
        (1_234_567, "$1.2M"),
        (2_000_000, "$2.0M"),
        (12_345_678, "$12.3M"),
        (123_456_789, "$123M"),
        (-1_200_000, "-$1.2M"),
        (3.4e9, "$3.4B"),
        (float("nan"), "n/a"),
        (None, "n/a"),
        (float("inf"), "∞"),
    ],
)
def test_money(value, text):
    assert fmt.money(value) == text


def test_percent_never_shows_false_certainty():
    assert fmt.percent(0.783) == "78%"
    assert fmt.percent(0.9971) == ">99%"
    assert fmt.percent(0.001) == "<1%"
    assert fmt.percent(1.0) == "100%"
    assert fmt.percent(0.0) == "0%"
    assert fmt.percent(0.12345, 1) == "12.3%"
    assert fmt.percent(float("nan")) == "n/a"


def test_percent_pm_and_others():
    assert fmt.percent_pm(0.78312, 0.00041) == "78.3% ± 0.041 pts"
    assert fmt.percent_pm(0.5, float("nan")) == "50.0%"
    assert fmt.count(5840.4) == "5,840"
    assert fmt.ratio(3.24) == "3.2x"
    assert fmt.days(1) == "1 day"
    assert fmt.days(45.2) == "45 days"
    assert fmt.days(float("inf")) == "not reached"
    start = dt.date(2027, 1, 4)
    assert fmt.date(start, 41.7) == "Feb 14, 2027"  # floor of a continuous day
    assert fmt.date(start, float("inf")) == "not reached"

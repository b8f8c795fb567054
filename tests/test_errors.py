from __future__ import annotations

import pytest

from simengine.errors import InputError, Issue


def test_issue_format_names_file_row_column_value_rule():
    text = Issue("data.csv", 7, "won_at", "2027-13-01", "not a date").format()
    assert text == "data.csv, row 7, column 'won_at': not a date (value '2027-13-01')"


def test_input_error_report_lists_every_issue_and_limits():
    issues = [Issue("f.csv", r, "id", "", "blank id") for r in range(2, 12)]
    err = InputError(issues)
    assert "10 problem(s) in f.csv" in err.report()
    assert err.report().count("blank id") == 10
    short = err.report(limit=3)
    assert short.count("blank id") == 3
    assert "and 7 more" in short


def test_input_error_needs_an_issue():
    with pytest.raises(ValueError, match="at least one"):
        InputError([])

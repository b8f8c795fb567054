"""Typed TOML tables: pydantic errors become Issue rows naming file, key, value and rule."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, ClassVar

import numpy as np
import pytest
from pydantic import Field

from simengine.config import tables
from simengine.config.tables import Date, Strings, Table, non_empty, number, rule
from simengine.errors import InputError, Issue


class _Inner(Table):
    unknown_key_noun: ClassVar[str] = "option"

    size: Annotated[float, number(lambda v: v > 0, "must be a positive number")] = 1.0


class _Outer(Table):
    name: Annotated[str, rule(lambda v: isinstance(v, str) and v != "", "needs a name")]
    when: Date | None = None
    tags: Strings = ()
    inner: list[_Inner] = Field(default_factory=list)
    table: Annotated[dict[str, int], non_empty("needs at least one entry")] = Field(
        default_factory=dict, validate_default=True
    )


def _issues(raw: dict, **kw) -> list[Issue]:
    issues: list[Issue] = []
    assert tables.validate(_Outer, raw, "f.toml", issues, **kw) is None
    return issues


def test_a_valid_table_converts_dates_strings_and_numbers():
    issues: list[Issue] = []
    got = tables.validate(
        _Outer,
        {
            "name": "a",
            "when": "2027-01-04",
            "tags": "x",
            "inner": [{"size": np.int64(3)}],
            "table": {"k": 1},
        },
        "f.toml",
        issues,
    )
    assert issues == []
    assert got is not None
    assert got.when == dt.date(2027, 1, 4)
    assert got.tags == ("x",)
    assert got.inner[0].size == 3.0
    assert isinstance(got.inner[0].size, float)


def test_every_problem_is_one_issue_with_the_dotted_key_and_the_rule():
    issues = _issues(
        {
            "name": "",
            "when": "soon",
            "tags": [1],
            "bogus": 1,
            "inner": [{"size": 1}, {"size": True, "colour": "red"}],
            "table": {"k": "1"},
        },
        where="top",
    )
    by_key = {i.column: i for i in issues}
    assert set(by_key) == {
        "top.name",
        "top.when",
        "top.tags",
        "top.bogus",
        "top.inner[2].size",
        "top.inner[2].colour",
        "top.table.k",
    }
    assert all(i.file == "f.toml" and i.row is None for i in issues)
    assert by_key["top.name"].rule == "needs a name"
    assert by_key["top.when"].rule == "must be a date (YYYY-MM-DD)"
    assert by_key["top.when"].value == "soon"
    assert by_key["top.tags"].rule == "must be a string or a list of strings"
    assert by_key["top.bogus"].rule.startswith("unknown key; known keys: ['inner', 'name',")
    assert by_key["top.inner[2].size"].rule == "must be a positive number"  # a bool is no number
    assert by_key["top.inner[2].colour"].rule == "unknown option; known: ['size']"
    assert by_key["top.table.k"].rule == "must be of type int"  # strict: text is not a count


def test_missing_keys_read_as_required_or_as_the_field_rule():
    cols = {i.column: i.rule for i in _issues({})}
    assert cols == {"name": "is required", "table": "needs at least one entry"}


def test_not_a_table():
    issues: list[Issue] = []
    assert tables.validate(_Outer, [1, 2], "f.toml", issues, where="x") is None
    assert [(i.column, i.rule) for i in issues] == [("x", "must be a table")]


def test_salvage_keeps_the_valid_keys_and_reports_the_bad_ones():
    issues: list[Issue] = []
    got = tables.validate(
        _Outer, {"name": "a", "when": 3, "table": {"k": 1}}, "f.toml", issues, salvage=True
    )
    assert got is not None
    assert got.name == "a"
    assert got.when is None
    assert "when" not in got.model_fields_set
    assert [i.column for i in issues] == ["when"]


def test_read_text_and_toml_table_name_the_file(tmp_path):
    with pytest.raises(InputError, match="cannot read the plan file"):
        tables.read_text(tmp_path / "nope.toml", "plan")
    with pytest.raises(InputError, match="not valid TOML") as info:
        tables.toml_table("a = [", "x.toml")
    assert info.value.issues[0].file == "x.toml"

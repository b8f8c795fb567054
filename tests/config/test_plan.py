from __future__ import annotations

import datetime as dt

import pytest

from simengine.config.plan import load_plan, parse_plan
from simengine.errors import InputError

PLAN = """
start = 2027-01-04
end = 2027-04-04
as_of = 2027-01-04
horizon_days = 180
[targets]
smb = 150000
mid = 300000
ent = 750000
[new_units]
mid = { mql = 1430 }
"""


def test_plan_parses_and_derives_days():
    plan = parse_plan(PLAN)
    assert plan.period_days == 91
    assert plan.start_offset == 0
    assert plan.end_offset == 90
    assert plan.horizon_end == dt.date(2027, 7, 2)  # start + 179 days
    assert plan.sim_days == 180
    assert plan.total_target == 1_200_000
    assert plan.new_units == {"mid": {"mql": 1430.0}}


def test_as_of_defaults_to_start_and_horizon_to_end():
    plan = parse_plan("start = 2027-01-04\nend = 2027-01-10\n[targets]\na = 1")
    assert plan.as_of == plan.start
    assert plan.horizon_end == plan.end
    assert plan.sim_days == 7


def test_as_of_before_start_shifts_offsets():
    plan = parse_plan("start = 2027-01-11\nend = 2027-01-17\nas_of = 2027-01-04\n[targets]\na = 1")
    assert plan.start_offset == 7
    assert plan.end_offset == 13
    assert plan.sim_days == 14


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ("end = 2027-01-10\n[targets]\na = 1", "start"),
        ("start = 2027-01-10\nend = 2027-01-01\n[targets]\na = 1", "end"),
        ("start = 2027-01-10\nend = 2027-02-01\nas_of = 2027-01-11\n[targets]\na = 1", "as_of"),
        ("start = 2027-01-10\nend = 2027-02-01\n[targets]\na = -5", "targets.a"),
        ("start = 2027-01-10\nend = 2027-02-01\n[targets]\na = 'x'", "targets.a"),
        ("start = 2027-01-10\nend = 2027-02-01", "targets"),
        (
            "start = 2027-01-10\nend = 2027-02-01\nhorizon_days = 0\n[targets]\na = 1",
            "horizon_days",
        ),
        ("start = 'soon'\nend = 2027-02-01\n[targets]\na = 1", "start"),
        (
            "start = 2027-01-10\nend = 2027-02-01\n[targets]\na = 1\n[new_units]\na = 5",
            "new_units.a",
        ),
    ],
)
def test_bad_plan_names_the_key(text, column):
    with pytest.raises(InputError) as info:
        parse_plan(text, source="plan.toml")
    assert any(i.column == column for i in info.value.issues), info.value.report()


def test_segments_checked_against_data():
    plan = parse_plan(PLAN, source="plan.toml")
    plan.check_segments(["smb", "mid", "ent"], ["mql", "sql", "opportunity"])
    with pytest.raises(InputError) as info:
        plan.check_segments(["smb", "mid", "xl"], ["mql"])
    cols = {i.column for i in info.value.issues}
    assert "targets.ent" in cols  # target for a segment the data lacks
    assert "targets" in cols  # segment xl without a target
    with pytest.raises(InputError, match="not an entry stage"):
        plan.check_segments(["smb", "mid", "ent"], ["sql"])


def test_load_plan_from_file(tmp_path):
    p = tmp_path / "plan.toml"
    p.write_text(PLAN)
    before = p.read_bytes()
    plan = load_plan(p)
    assert plan.path == str(p)
    assert len(plan.sha256) == 64
    assert p.read_bytes() == before
    with pytest.raises(InputError, match="cannot read"):
        load_plan(tmp_path / "nope.toml")

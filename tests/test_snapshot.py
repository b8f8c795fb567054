"""The as-of snapshot: open units (cells, stages, ages, amounts), cells, segments, counts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simengine.config.spec import load_spec, parse_spec
from simengine.errors import InputError
from simengine.io.records import load_records
from simengine.params import OpenUnits
from simengine.snapshot import (
    cell_labels,
    cells_of,
    open_units,
    pipeline_from_records,
    segments_of,
    stage_counts,
)

SPEC = parse_spec(
    'stages = ["mql", "sql", "won"]\nsegment_by = ["segment", "channel"]\npipeline_stage = "sql"\n'
)
DATES = (*SPEC.stage_columns, "lost_at")


def _frame(rows: list[tuple]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=list(SPEC.canonical_columns))
    for c in DATES:
        df[c] = pd.to_datetime(df[c]).astype("datetime64[ns]")
    df["amount"] = df["amount"].astype(np.float64)
    return df


EXAMPLE = _frame(
    [
        # id, segment, channel, mql_at, sql_at, won_at, lost_at, amount
        ("a", "smb", "web", "2024-01-01", "2024-01-10", None, None, 500.0),  # open in sql
        ("b", "mid", "event", "2024-01-20", None, None, None, None),  # open in mql
        ("c", "mid", "web", "2024-01-05", "2024-01-06", "2024-01-25", None, 900.0),  # won: gone
        ("d", "smb", "web", "2024-01-02", None, None, "2024-01-30", None),  # lost on as-of
        ("e", "smb", "event", "2024-01-03", "2024-01-04", "2024-02-15", None, 700.0),  # won later
        ("f", "mid", "web", None, "2024-01-31", None, "2024-03-01", 50.0),  # lost later
        ("g", "smb", "web", "2024-02-02", None, None, None, None),  # enters later
    ]
)
AS_OF = dt.date(2024, 1, 31)


def test_cells_and_segments():
    assert cells_of(EXAMPLE, SPEC) == ("mid/event", "mid/web", "smb/event", "smb/web")
    assert segments_of(EXAMPLE, SPEC) == ("mid", "smb")
    assert cell_labels(EXAMPLE, SPEC).tolist()[:2] == ["smb/web", "mid/event"]


def test_open_units_example():
    cells = cells_of(EXAMPLE, SPEC)
    before = EXAMPLE.copy()
    ou = open_units(EXAMPLE, SPEC, AS_OF, cells)
    pd.testing.assert_frame_equal(EXAMPLE, before)
    assert isinstance(ou, OpenUnits)
    # open at 2024-01-31: a (sql since 01-10), b (mql since 01-20), e (won 02-15: open then,
    # sql since 01-04), f (entered sql on the as-of day itself, lost later).
    assert [cells[i] for i in ou.cell] == ["smb/web", "mid/event", "smb/event", "mid/web"]
    assert ou.stage.tolist() == [1, 0, 1, 1]
    assert ou.age_days.tolist() == [21.0, 11.0, 27.0, 0.0]
    # a's and b's amounts are their own; e's and f's are the values of a later close: unknown.
    np.testing.assert_array_equal(ou.amount, [500.0, np.nan, np.nan, np.nan])
    assert ou.cell.dtype == np.int64
    assert ou.stage.dtype == np.int64
    assert ou.age_days.dtype == np.float64


def test_open_units_cell_order_follows_the_given_cells():
    cells = ("smb/web", "smb/event", "mid/web", "mid/event")
    ou = open_units(EXAMPLE, SPEC, AS_OF, cells)
    assert [cells[i] for i in ou.cell] == ["smb/web", "mid/event", "smb/event", "mid/web"]


def test_open_units_unknown_cell_is_an_input_error():
    with pytest.raises(InputError, match="mid/event"):
        open_units(EXAMPLE, SPEC, AS_OF, ("smb/web", "smb/event", "mid/web"))


def test_open_units_none_open():
    ou = open_units(EXAMPLE, SPEC, dt.date(2023, 12, 1), cells_of(EXAMPLE, SPEC))
    assert len(ou) == 0


def _random(seed: int, n: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    entry = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 100, n), "D")
    d1 = entry + pd.to_timedelta(rng.integers(0, 40, n), "D")
    d2 = d1 + pd.to_timedelta(rng.integers(0, 40, n), "D")
    reach = rng.integers(0, 3, n)
    won = reach == 2
    lost = ~won & (rng.random(n) < 0.5)
    last = np.where(reach == 0, entry, d1)
    lost_at = pd.Series(last + pd.to_timedelta(rng.integers(0, 30, n), "D")).where(lost)
    return pd.DataFrame(
        {
            "id": [f"u{i}" for i in range(n)],
            "segment": rng.choice(["smb", "mid"], n),
            "channel": rng.choice(["web", "event"], n),
            "mql_at": entry,
            "sql_at": pd.Series(d1).where(reach >= 1),
            "won_at": pd.Series(d2).where(won),
            "lost_at": lost_at,
            "amount": np.where(won | (rng.random(n) < 0.5), 100.0, np.nan),
        }
    ).astype(dict.fromkeys(DATES, "datetime64[ns]"))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 200))
def test_open_units_against_a_row_by_row_reference(seed, offset):
    """Open units equal a row-by-row reading of the records, on every draw.

    Unit ``u0`` enters on the first day and never closes, so no draw leaves
    the comparison empty.
    """
    df = _random(seed, 50)
    df.loc[0, ["mql_at", "sql_at", "won_at", "lost_at"]] = [
        pd.Timestamp("2024-01-01"),
        pd.NaT,
        pd.NaT,
        pd.NaT,
    ]
    as_of = pd.Timestamp("2024-01-01") + pd.Timedelta(days=offset)
    cells = cells_of(df, SPEC)
    ou = open_units(df, SPEC, as_of.date(), cells)
    expect = []
    for r in df.itertuples(index=False):
        dates = [r.mql_at, r.sql_at, r.won_at]
        known = [not pd.isna(d) and d <= as_of for d in dates]
        if not any(known) or known[2] or (not pd.isna(r.lost_at) and r.lost_at <= as_of):
            continue
        stage = max(j for j in range(3) if known[j])
        closed_later = (not pd.isna(r.won_at)) or (not pd.isna(r.lost_at))
        expect.append(
            (
                cells.index(f"{r.segment}/{r.channel}"),
                stage,
                float((as_of - dates[stage]).days),
                np.nan if closed_later else r.amount,
            )
        )
    got = list(
        zip(
            ou.cell.tolist(),
            ou.stage.tolist(),
            ou.age_days.tolist(),
            ou.amount.tolist(),
            strict=True,
        )
    )
    assert expect  # u0 at least
    assert len(got) == len(expect)
    for g, e in zip(got, expect, strict=True):
        assert g[:3] == e[:3]
        assert (np.isnan(g[3]) and np.isnan(e[3])) or g[3] == e[3]
    assert (ou.age_days >= 0).all()
    assert (ou.stage < len(SPEC.stages) - 1).all()


def test_stage_counts_example():
    c = stage_counts(EXAMPLE, SPEC, AS_OF)
    assert c.index.tolist() == ["mid", "smb", "total"]
    assert c.loc["total", "units"] == 7
    assert c.loc["total", "reached_mql"] == 6
    assert c.loc["total", "reached_sql"] == 4
    assert c.loc["total", "won"] == 2
    assert c.loc["total", "lost"] == 2
    assert c.loc["total", "open"] == 4
    assert c.loc["smb", "open_sql"] == 2  # a and e
    assert c.loc["mid", "open_mql"] == 1  # b
    assert c.loc["mid", "open_sql"] == 1  # f
    assert (c.drop(index="total").sum() == c.loc["total"]).all()


def test_stage_counts_on_the_crm_export(crm_dir, models_dir):
    spec = load_spec(models_dir / "crm-opportunities.toml")
    df = load_records(crm_dir / "sales_pipeline.csv", spec)
    c = stage_counts(df, spec, dt.date(2017, 12, 31))
    total = c.loc["total"]
    assert (total["units"], total["won"], total["lost"], total["open"]) == (8300, 4238, 2473, 1589)
    assert total["open_opportunity"] == 1589
    ou = open_units(df, spec, dt.date(2017, 12, 31), cells_of(df, spec))
    assert len(ou) == 1589
    assert np.isnan(ou.amount).all()  # Engaging deals carry no value in this export
    raw = pd.read_csv(crm_dir / "sales_pipeline.csv")
    eng = pd.to_datetime(raw.loc[raw["deal_stage"] == "Engaging", "engage_date"], format="%m/%d/%Y")
    expect_age = (pd.Timestamp("2017-12-31") - eng).dt.days.to_numpy(np.float64)
    np.testing.assert_array_equal(ou.age_days, expect_age)  # record order kept


RECORDS = """id,segment,channel,mql_at,sql_at,opportunity_at,won_at,lost_at,amount
1,mid,web,2026-11-01,2026-11-05,2026-11-20,,,25000
2,mid,out,2026-12-01,2026-12-10,,,,
3,smb,web,2026-12-20,,,,,
4,smb,web,2026-10-01,2026-10-03,2026-10-10,2026-12-01,,9000
5,mid,web,2026-10-01,2026-10-03,,,2026-11-01,
"""


def test_pipeline_from_records(tmp_path: Path, models_dir: Path) -> None:
    f = tmp_path / "r.csv"
    f.write_text(RECORDS)
    stages = ("mql", "sql", "opportunity", "won")
    ou = pipeline_from_records(
        f, models_dir / "demo.toml", dt.date(2027, 1, 4), ("smb", "mid"), stages
    )
    order = np.argsort(ou.age_days)
    assert len(ou) == 3  # units 1, 2, 3 are open
    np.testing.assert_array_equal(np.sort(ou.cell), [0, 1, 1])
    assert set(zip(ou.cell.tolist(), ou.stage.tolist(), strict=True)) == {(1, 2), (1, 1), (0, 0)}
    assert ou.age_days[order][0] == 15.0  # unit 3: mql on 2026-12-20
    with pytest.raises(InputError, match="not in the assumptions"):
        pipeline_from_records(f, models_dir / "demo.toml", dt.date(2027, 1, 4), ("smb",), stages)
    with pytest.raises(InputError, match="differ"):
        pipeline_from_records(
            f, models_dir / "demo.toml", dt.date(2027, 1, 4), ("smb",), ("a", "b")
        )

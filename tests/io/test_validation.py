"""One test per records rule: a small CSV with one broken row, checked in the report."""

from __future__ import annotations

import pandas as pd
import pytest

from simengine.config.spec import parse_spec
from simengine.errors import InputError, Issue
from simengine.io.records import load_records
from simengine.io.validation import records_schema, validate_records

SPEC = parse_spec(
    'stages = ["mql", "sql", "won"]\nsegment_by = ["segment", "channel"]\npipeline_stage = "sql"\n'
)
HEADER = "id,segment,channel,mql_at,sql_at,won_at,lost_at,amount"
GOOD = [
    "a,smb,web,2024-01-02,2024-01-05,2024-02-01,,1000",
    "b,mid,web,2024-01-03,2024-01-09,,2024-01-20,",
    "c,mid,event,,2024-01-04,,,",
]


def _write(tmp_path, lines, header=HEADER, name="records.csv"):
    p = tmp_path / name
    p.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return p


def _issues(tmp_path, lines, header=HEADER) -> list[Issue]:
    p = _write(tmp_path, lines, header)
    before = p.read_bytes()
    with pytest.raises(InputError) as exc:
        load_records(p, SPEC)
    assert p.read_bytes() == before  # input never modified
    return exc.value.issues


def _one(issues, row, column, text):
    hits = [i for i in issues if i.row == row and i.column == column and text in i.rule]
    assert hits, f"no issue at row {row}, column {column!r} with {text!r}; got {issues}"
    return hits[0]


def test_good_file_loads(tmp_path):
    df = load_records(_write(tmp_path, GOOD), SPEC)
    assert list(df.columns) == list(SPEC.canonical_columns)
    assert df["id"].tolist() == ["a", "b", "c"]
    assert str(df["mql_at"].dtype) == "datetime64[ns]"
    assert df["amount"].dtype == "float64"
    assert pd.isna(df.loc[2, "mql_at"])
    assert df.loc[2, "sql_at"] == pd.Timestamp("2024-01-04")


def test_empty_file(tmp_path):
    p = tmp_path / "e.csv"
    p.write_text("")
    with pytest.raises(InputError, match="empty"):
        load_records(p, SPEC)


def test_header_only_has_no_records(tmp_path):
    issues = _issues(tmp_path, [])
    assert issues[0].row is None
    assert "no records" in issues[0].rule


def test_blank_lines_are_skipped_but_keep_row_numbers(tmp_path):
    issues = _issues(tmp_path, [GOOD[0], "", ",,,,,,,", "x,,web,2024-01-02,,,,"])
    # header 1, a 2, blank 3, blank-fields 4, x on row 5
    _one(issues, 5, "segment", "blank segment")
    assert len(issues) == 1


def test_missing_required_column(tmp_path):
    header = HEADER.replace(",lost_at", "")
    lines = [",".join(r.split(",")[:6] + r.split(",")[7:]) for r in GOOD]
    issues = _issues(tmp_path, lines, header)
    assert [(i.column, i.rule) for i in issues] == [("lost_at", "missing required column")]


def test_duplicate_required_column(tmp_path):
    issues = _issues(tmp_path, [r + ",x" for r in GOOD], HEADER + ",segment")
    _one(issues, None, "segment", "more than once")


def test_duplicate_id(tmp_path):
    issues = _issues(tmp_path, [*GOOD, "a,smb,web,2024-01-02,,,,"])
    i = _one(issues, 5, "id", "duplicate id")
    assert "row 2" in i.rule
    assert i.value == "a"
    assert not [x for x in issues if x.row == 2]  # the first occurrence is fine


def test_blank_id(tmp_path):
    issues = _issues(tmp_path, [*GOOD, " ,smb,web,2024-01-02,,,,"])
    _one(issues, 5, "id", "blank id")
    assert len(issues) == 1


def test_unparseable_date(tmp_path):
    issues = _issues(tmp_path, [*GOOD, "d,smb,web,2024-13-02,,,,", "e,smb,web,02/01/2024,,,,"])
    assert _one(issues, 5, "mql_at", "not a date").value == "2024-13-02"
    assert _one(issues, 6, "mql_at", "YYYY-MM-DD").value == "02/01/2024"
    # an unparseable entry date is not reported a second time as "no stage"
    assert len(issues) == 2


def test_date_out_of_supported_range(tmp_path):
    issues = _issues(tmp_path, [*GOOD, "d,smb,web,2024-01-01,2999-01-01,,,"])
    _one(issues, 5, "sql_at", "outside the supported range")


def test_stage_dates_out_of_order(tmp_path):
    issues = _issues(tmp_path, [*GOOD, "d,smb,web,2024-01-10,2024-01-05,,,"])
    i = _one(issues, 5, "sql_at", "out of order")
    assert i.value == "2024-01-05"
    assert len(issues) == 1


def test_gap_in_stage_run(tmp_path):
    issues = _issues(tmp_path, [*GOOD, "d,smb,web,2024-01-10,,2024-02-05,,50"])
    _one(issues, 5, "sql_at", "gap in the stage run")
    assert len(issues) == 1


def test_lost_together_with_last_stage(tmp_path):
    issues = _issues(tmp_path, [*GOOD, "d,smb,web,2024-01-10,2024-01-11,2024-02-05,2024-02-06,5"])
    _one(issues, 5, "lost_at", "lost together with the last stage")


def test_lost_before_last_reached_stage(tmp_path):
    issues = _issues(tmp_path, [*GOOD, "d,smb,web,2024-01-10,2024-01-20,,2024-01-15,"])
    assert _one(issues, 5, "lost_at", "lost before the last reached stage").value == "2024-01-15"


def test_unit_with_no_stage(tmp_path):
    issues = _issues(tmp_path, [*GOOD, "d,smb,web,,,,2024-01-15,"])
    _one(issues, 5, "mql_at", "no stage date")


def test_negative_amount(tmp_path):
    issues = _issues(tmp_path, [*GOOD, "d,smb,web,2024-01-10,2024-01-20,2024-01-30,,-5"])
    assert _one(issues, 5, "amount", "negative amount").value == "-5"  # the value as written


def test_missing_amount_where_won(tmp_path):
    issues = _issues(tmp_path, [*GOOD, "d,smb,web,2024-01-10,2024-01-20,2024-01-30,,"])
    _one(issues, 5, "amount", "missing amount")


@pytest.mark.parametrize("bad", ["12k", "1,000", "nan", "inf", "--3"])
def test_non_numeric_amount(tmp_path, bad):
    quoted = f'"{bad}"'
    issues = _issues(tmp_path, [*GOOD, f"d,smb,web,2024-01-10,2024-01-20,2024-01-30,,{quoted}"])
    assert _one(issues, 5, "amount", "not a number").value == bad
    assert len(issues) == 1  # not also "missing amount"


def test_blank_segment_values(tmp_path):
    issues = _issues(tmp_path, [*GOOD, "d,smb,,2024-01-10,,,,", "e,,web,2024-01-10,,,,"])
    _one(issues, 5, "channel", "blank segment")
    _one(issues, 6, "segment", "blank segment")


def test_every_failing_row_is_listed_in_one_error(tmp_path):
    lines = [*GOOD, "d,smb,,2024-01-10,,,,", "a,mid,web,xx,,,,", "f,mid,web,2024-01-10,,,,-1"]
    issues = _issues(tmp_path, lines)
    assert {i.row for i in issues} == {5, 6, 7}
    assert [i.row for i in issues] == sorted(i.row for i in issues)  # sorted by row
    assert all(i.file.endswith("records.csv") for i in issues)


def test_wrong_types_in_typed_frame():
    frame = pd.DataFrame(
        {
            "id": ["a", 7, 2.5],
            "segment": ["smb", "smb", True],
            "channel": ["web", "web", "web"],
            "mql_at": [pd.Timestamp("2024-01-02"), "2024-01-03", 5.0],
            "sql_at": [None, None, None],
            "won_at": [None, None, None],
            "lost_at": [None, None, None],
            "amount": ["1", 2, "x"],
        }
    )
    df, issues = validate_records(frame, SPEC, file="t.parquet")
    _one(issues, 4, "id", "must be text")
    _one(issues, 4, "segment", "must be text")
    _one(issues, 4, "mql_at", "must be a date")
    _one(issues, 4, "amount", "not a number")
    assert not [i for i in issues if i.row in (2, 3)]  # an int id is text "7"; both dates ok
    assert df is not None
    assert df["id"].tolist() == ["a", "7", ""]


def test_wrong_column_type_in_typed_frame():
    frame = pd.DataFrame(
        {c: ["x"] for c in SPEC.canonical_columns} | {"mql_at": [1.5], "amount": [True]}
    )
    df, issues = validate_records(frame, SPEC, file="t.parquet")
    assert df is None
    _one(issues, None, "mql_at", "wrong type")
    _one(issues, None, "amount", "wrong type")


def test_parquet_roundtrip_keeps_types(tmp_path):
    df = load_records(_write(tmp_path, GOOD), SPEC)
    p = tmp_path / "r.parquet"
    df.to_parquet(p)
    again = load_records(p, SPEC)
    pd.testing.assert_frame_equal(again, df)


def test_unsupported_suffix_and_missing_file(tmp_path):
    p = tmp_path / "r.xlsx"
    p.write_text("x")
    with pytest.raises(InputError, match="unsupported file type"):
        load_records(p, SPEC)
    with pytest.raises(InputError, match="file not found"):
        load_records(tmp_path / "nope.csv", SPEC)


def test_not_utf8_and_ragged(tmp_path):
    p = tmp_path / "r.csv"
    p.write_bytes((HEADER + "\n").encode() + b"a,\xff\xfe,web,2024-01-01,,,,\n")
    with pytest.raises(InputError, match="UTF-8"):
        load_records(p, SPEC)
    p.write_text(HEADER + "\n" + GOOD[0] + "\n" + GOOD[1] + ",extra,fields\n")
    with pytest.raises(InputError, match="not a readable CSV") as exc:
        load_records(p, SPEC)
    assert exc.value.issues[0].row == 3


def test_bom_and_whitespace_are_tolerated(tmp_path):
    p = tmp_path / "r.csv"
    body = HEADER.replace(",", " , ") + "\n" + " a , smb , web , 2024-01-02 ,,,, \n"
    p.write_bytes(b"\xef\xbb\xbf" + body.encode())
    df = load_records(p, SPEC)
    assert df.loc[0, "id"] == "a"
    assert df.loc[0, "segment"] == "smb"


def test_iso_datetimes_keep_the_written_date(tmp_path):
    lines = ["a,smb,web,2024-01-02T23:30:00+05:00,2024-01-03 10:00,,,"]
    df = load_records(_write(tmp_path, lines), SPEC)
    assert df.loc[0, "mql_at"] == pd.Timestamp("2024-01-02")
    assert df.loc[0, "sql_at"] == pd.Timestamp("2024-01-03")


def test_schema_is_pandera():
    schema = records_schema(SPEC)
    assert set(schema.columns) == set(SPEC.canonical_columns)
    assert schema.columns["id"].unique


def test_parquet_categoricals_and_nullable_ints(tmp_path):
    df = load_records(_write(tmp_path, GOOD), SPEC)
    typed = df.assign(
        id=pd.Series([1, 2, None], dtype="Int64"),
        segment=df["segment"].astype("category"),
        amount=pd.Series([1000, None, None], dtype="Int64"),
    )
    p = tmp_path / "t.parquet"
    typed.to_parquet(p)
    with pytest.raises(InputError) as exc:
        load_records(p, SPEC)
    (issue,) = exc.value.issues  # only the null id; categoricals and Int64 amounts are fine
    assert (issue.row, issue.column) == (4, "id")
    assert "blank id" in issue.rule
    typed.loc[2, "id"] = 3
    typed.to_parquet(p)
    got = load_records(p, SPEC)
    assert got["id"].tolist() == ["1", "2", "3"]
    assert got["segment"].tolist() == ["smb", "mid", "mid"]
    assert got["amount"].tolist()[0] == 1000.0


@pytest.mark.parametrize(
    ("fmt", "values", "expect"),
    [
        ("%m/%d/%Y", ["1/2/2024", "12/31/2023"], ["2024-01-02", "2023-12-31"]),
        # mixed UTC offsets: each value keeps the date written (no shift to UTC)
        (
            "%Y-%m-%d %H:%M %z",
            ["2024-01-02 23:00 +0500", "2024-01-03 01:00 -0100"],
            ["2024-01-02", "2024-01-03"],
        ),
        ("%d.%m.%Y %H:%M", ["02.01.2024 23:59", "03.01.2024 00:00"], ["2024-01-02", "2024-01-03"]),
    ],
)
def test_source_date_formats(fmt, values, expect):
    frame = pd.DataFrame(
        {
            "id": ["x", "y"],
            "segment": ["s", "s"],
            "channel": ["c", "c"],
            "mql_at": values,
            "sql_at": "",
            "won_at": "",
            "lost_at": "",
            "amount": "",
        }
    )
    df, issues = validate_records(frame, SPEC, file="f.csv", date_format=fmt)
    assert issues == []
    assert df is not None
    assert df["mql_at"].tolist() == [pd.Timestamp(e) for e in expect]


def test_a_format_that_parses_nothing_reports_every_value():
    frame = pd.DataFrame(
        {
            "id": ["x"],
            "segment": ["s"],
            "channel": ["c"],
            "mql_at": ["2024-01-02"],
            "sql_at": "",
            "won_at": "",
            "lost_at": "",
            "amount": "",
        }
    )
    _, issues = validate_records(frame, SPEC, file="f.csv", date_format="%Q")
    (issue,) = issues
    assert (issue.row, issue.column, issue.value) == (2, "mql_at", "2024-01-02")
    assert "%Q" in issue.rule


def test_missing_column_hints(tmp_path):
    issues = _issues(tmp_path, [r.replace(",", ";") for r in GOOD], HEADER.replace(",", ";"))
    assert "comma-separated" in issues[0].rule
    issues = _issues(tmp_path, GOOD, HEADER.replace("amount", "Amount"))
    _one(issues, None, "amount", "the file has 'Amount'")

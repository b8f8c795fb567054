"""Reading, mapping (incl. the real CRM export), fuzzing and the as-of view of records."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simengine.config.spec import load_spec, parse_spec
from simengine.errors import InputError
from simengine.io.records import as_of_view, latest_date, load_records, read_table
from simengine.io.validation import validate_records

SPEC = parse_spec(
    'stages = ["mql", "sql", "won"]\nsegment_by = ["segment", "channel"]\npipeline_stage = "sql"\n'
)
HEADER = "id,segment,channel,mql_at,sql_at,won_at,lost_at,amount"


def assert_canonical(df: pd.DataFrame, spec=SPEC) -> None:
    """Independent, row-by-row check of the canonical-records contract."""
    assert list(df.columns) == list(spec.canonical_columns)
    for c in (*spec.stage_columns, "lost_at"):
        assert str(df[c].dtype) == "datetime64[ns]"
    assert df["amount"].dtype == np.float64
    assert df["id"].is_unique
    for row in df.itertuples(index=False):
        rec = row._asdict()
        assert rec["id"] != ""
        assert all(rec[c] != "" for c in spec.segment_by)
        dates = [rec[c] for c in spec.stage_columns]
        reached = [not pd.isna(d) for d in dates]
        assert any(reached)
        first, last = reached.index(True), len(reached) - 1 - reached[::-1].index(True)
        assert all(reached[first : last + 1])  # contiguous
        run = dates[first : last + 1]
        assert all(a <= b for a, b in itertools.pairwise(run))
        assert all(d == d.normalize() for d in run)  # day precision
        if reached[-1]:
            assert pd.isna(rec["lost_at"])
            assert np.isfinite(rec["amount"])
            assert rec["amount"] >= 0
        if not pd.isna(rec["lost_at"]):
            assert rec["lost_at"] >= dates[last]
        assert pd.isna(rec["amount"]) or rec["amount"] >= 0


def random_records(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Valid canonical records of the 3-stage SPEC (entry at mql or sql)."""
    base = np.datetime64("2024-01-01")
    entry_stage = rng.integers(0, 2, n)
    entry = base + rng.integers(0, 200, n).astype("timedelta64[D]")
    reach = rng.integers(0, 3, n)  # how many further stages reached
    cols = {}
    d = entry.copy()
    last = entry.copy()
    for j in range(3):
        reached = (j >= entry_stage) & (j <= entry_stage + reach)
        if j > 0:
            d = d + rng.integers(0, 30, n).astype("timedelta64[D]")
        cols[f"{SPEC.stages[j]}_at"] = np.where(reached, d, np.datetime64("NaT"))
        last = np.where(reached, d, last)
    won = ~np.isnat(cols["won_at"])
    lost = ~won & (rng.random(n) < 0.4)
    lost_at = np.where(
        lost, last + rng.integers(0, 20, n).astype("timedelta64[D]"), np.datetime64("NaT")
    )
    amount = np.where(won | (rng.random(n) < 0.5), np.round(rng.lognormal(8, 1, n)), np.nan)
    return pd.DataFrame(
        {
            "id": [f"u{i}" for i in range(n)],
            "segment": rng.choice(["smb", "mid"], n),
            "channel": rng.choice(["web", "event"], n),
            **{k: pd.to_datetime(v).astype("datetime64[ns]") for k, v in cols.items()},
            "lost_at": pd.to_datetime(lost_at.astype("datetime64[D]")).astype("datetime64[ns]"),
            "amount": amount.astype(np.float64),
        }
    )


def _write_records(df: pd.DataFrame, path: Path) -> Path:
    out = df.copy()
    for c in (*SPEC.stage_columns, "lost_at"):
        out[c] = out[c].dt.strftime("%Y-%m-%d")
    out.to_csv(path, index=False)
    return path


# ------------------------------------------------------------------ round trips


def test_csv_roundtrip_of_valid_records(tmp_path):
    df = random_records(np.random.default_rng(1), 300)
    assert_canonical(df)
    again = load_records(_write_records(df, tmp_path / "r.csv"), SPEC)
    assert_canonical(again)
    pd.testing.assert_frame_equal(again, df, check_dtype=False)
    assert str(again["id"].dtype) in ("str", "string", "object")


def test_load_is_deterministic_and_leaves_input_alone(tmp_path):
    p = _write_records(random_records(np.random.default_rng(2), 200), tmp_path / "r.csv")
    before = p.read_bytes()
    a, b = load_records(p, SPEC), load_records(p, SPEC)
    pd.testing.assert_frame_equal(a, b)
    assert p.read_bytes() == before


def test_read_table_row_numbers_skip_blank_lines(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("a,b\n1,2\n\n3,4\n")
    t = read_table(p)
    assert t.rows.tolist() == [2, 4]
    assert t.frame["a"].tolist() == ["1", "3"]


# ------------------------------------------------------------------ mapping


MAP_SPEC = """
stages = ["opportunity", "won"]
segment_by = ["office", "series"]
[source]
date_format = "%m/%d/%Y"
exclude = { stage = ["Prospecting"] }
replace = { product = { GTXPro = "GTX Pro" } }
[[source.join]]
file = "teams.csv"
on = "agent"
[[source.join]]
file = "products.csv"
on = "product"
[source.columns]
id = "opp"
office = "office"
series = "series"
opportunity_at = "engage"
won_at = { column = "close", when = { stage = ["Won"] } }
lost_at = { column = "close", when = { stage = ["Lost"] } }
amount = { column = "value", when = { stage = ["Won"] } }
"""

MAIN = """opp,agent,product,stage,engage,close,value
o1,ann,GTXPro,Won,1/5/2024,2/1/2024,100
o2,bob,MG,Lost,1/6/2024,1/20/2024,0
o3,ann,MG,Engaging,1/7/2024,,
o4,bob,GTXPro,Prospecting,,,
"""


def _export(tmp_path, main=MAIN, teams="agent,office\nann,East\nbob,West\n"):
    (tmp_path / "teams.csv").write_text(teams)
    (tmp_path / "products.csv").write_text("product,series\nGTX Pro,GTX\nMG,MG\n")
    p = tmp_path / "pipe.csv"
    p.write_text(main)
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text(MAP_SPEC)
    return p, load_spec(spec_path)


def test_mapping_small_export(tmp_path):
    p, spec = _export(tmp_path)
    before = p.read_bytes()
    df = load_records(p, spec)
    assert p.read_bytes() == before
    assert df["id"].tolist() == ["o1", "o2", "o3"]  # Prospecting excluded
    assert df["office"].tolist() == ["East", "West", "East"]
    assert df["series"].tolist() == ["GTX", "MG", "MG"]  # GTXPro replaced before the join
    assert df["won_at"].tolist()[0] == pd.Timestamp("2024-02-01")
    assert pd.isna(df["won_at"][1])
    assert df["lost_at"][1] == pd.Timestamp("2024-01-20")
    assert df["opportunity_at"][2] == pd.Timestamp("2024-01-07")
    assert df["amount"][0] == 100
    assert np.isnan(df["amount"][1])
    assert np.isnan(df["amount"][2])


def test_mapping_key_not_found_names_the_source_row(tmp_path):
    main = MAIN + "o5,zed,MG,Won,1/7/2024,1/9/2024,5\n"
    p, spec = _export(tmp_path, main)
    with pytest.raises(InputError) as exc:
        load_records(p, spec)
    hit = [i for i in exc.value.issues if i.column == "agent"]
    assert hit
    assert hit[0].row == 6
    assert hit[0].value == "zed"
    assert "teams.csv" in hit[0].rule


def test_mapping_row_numbers_are_the_source_files(tmp_path):
    # o4 (row 5) is excluded; the bad date on row 6 keeps its source row number.
    main = MAIN + "o5,ann,MG,Won,13/7/2024,1/9/2024,5\n"
    p, spec = _export(tmp_path, main)
    with pytest.raises(InputError) as exc:
        load_records(p, spec)
    (issue,) = exc.value.issues
    assert (issue.row, issue.column, issue.value) == (6, "engage", "13/7/2024")
    assert "%m/%d/%Y" in issue.rule


def test_mapping_missing_join_file_and_duplicate_lookup_key(tmp_path):
    p, spec = _export(tmp_path, teams="agent,office\nann,East\nbob,West\nann,North\n")
    with pytest.raises(InputError) as exc:
        load_records(p, spec)
    dup = [i for i in exc.value.issues if "duplicate key" in i.rule]
    assert dup
    assert dup[0].row == 4
    assert dup[0].file.endswith("teams.csv")
    (tmp_path / "products.csv").unlink()
    with pytest.raises(InputError) as exc:
        load_records(p, spec)
    assert any(i.file.endswith("products.csv") and "not found" in i.rule for i in exc.value.issues)


def test_mapping_missing_source_column(tmp_path):
    p, spec = _export(tmp_path, MAIN.replace("value", "amount_usd"))
    with pytest.raises(InputError) as exc:
        load_records(p, spec)
    assert any(i.column == "value" and "missing column" in i.rule for i in exc.value.issues)


def test_canonical_file_is_not_mapped(tmp_path):
    _, spec = _export(tmp_path)
    p = tmp_path / "canon.csv"
    p.write_text(
        "id,office,series,opportunity_at,won_at,lost_at,amount\nx,East,GTX,2024-01-02,,,\n"
    )
    df = load_records(p, spec)
    assert df["opportunity_at"][0] == pd.Timestamp("2024-01-02")


# ------------------------------------------------------------------ the real export


@pytest.fixture(scope="module")
def crm(crm_dir, models_dir):
    spec = load_spec(models_dir / "crm-opportunities.toml")
    return spec, load_records(crm_dir / "sales_pipeline.csv", spec)


def test_crm_export_counts(crm):
    spec, df = crm
    assert_canonical(df, spec)
    assert len(df) == 8300  # 8,800 minus 500 Prospecting
    assert df["won_at"].notna().sum() == 4238
    assert df["lost_at"].notna().sum() == 2473
    assert (df["won_at"].isna() & df["lost_at"].isna()).sum() == 1589
    assert df["opportunity_at"].min() == pd.Timestamp("2016-10-20")
    assert df["opportunity_at"].max() == pd.Timestamp("2017-12-27")
    assert df[["won_at", "lost_at"]].min().min() == pd.Timestamp("2017-03-01")
    assert latest_date(df, spec) == dt.date(2017, 12, 31)
    assert set(df["regional_office"]) == {"Central", "East", "West"}
    assert set(df["series"]) == {"GTX", "MG", "GTK"}


def test_crm_mapping_matches_an_independent_merge(crm, crm_dir):
    """Won revenue per office x series equals a plain pandas computation on the files."""
    _, df = crm
    raw = pd.read_csv(crm_dir / "sales_pipeline.csv")
    teams = pd.read_csv(crm_dir / "sales_teams.csv")
    products = pd.read_csv(crm_dir / "products.csv")
    raw["product"] = raw["product"].replace({"GTXPro": "GTX Pro"})
    won = (
        raw[raw["deal_stage"] == "Won"].merge(teams, on="sales_agent").merge(products, on="product")
    )
    expect = won.groupby(["regional_office", "series"])["close_value"].sum().astype(float)
    got = df[df["won_at"].notna()].groupby(["regional_office", "series"])["amount"].sum()
    pd.testing.assert_series_equal(got.sort_index(), expect.sort_index(), check_names=False)
    assert np.isnan(df.loc[df["won_at"].isna(), "amount"]).all()  # lost/open carry no amount


# ------------------------------------------------------------------ fuzzing


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


# Examples are drawn by the loaded profile (tests/conftest.py): the same ones on
# every local run, fresh ones on every CI run.
_FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _load_or_input_error(folder: Path, data: bytes, suffix: str = ".csv") -> None:
    p = folder / f"f{suffix}"
    p.write_bytes(data)
    try:
        df = load_records(p, SPEC)
    except InputError as exc:
        issues = exc.issues
    else:
        assert_canonical(df)
        return
    assert issues


@_FUZZ
@given(st.binary(max_size=400), st.booleans())
def test_fuzz_random_bytes(fuzz_dir, data, with_header):
    _load_or_input_error(fuzz_dir, (HEADER + "\n").encode() + data if with_header else data)
    _load_or_input_error(fuzz_dir, data, ".parquet")


_FIELD = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "a",
            "a",
            "b",
            "smb",
            "web",
            "2024-01-02",
            "2024-01-09",
            "2024-02-30",
            "2024-1-2",
            "1/2/2024",
            "2024-01-05T10:00:00Z",
            "10000-01-01",
            "1e400",
            "-1",
            "0",
            "5",
            "1e3",
            "nan",
            "NaT",
            "None",
            '"',
            '""',
            "x,y",
            "\x00",
            "é",
            "2300-01-01",
        ]
    ),
    st.text(max_size=6),
)


@_FUZZ
@given(st.lists(st.lists(_FIELD, min_size=0, max_size=10), max_size=8), st.booleans())
def test_fuzz_canonical_ish_csv(fuzz_dir, rows, quote):
    def cell(v: str) -> str:
        return '"' + v.replace('"', '""') + '"' if quote else v

    text = HEADER + "\n" + "\n".join(",".join(cell(v) for v in r) for r in rows)
    _load_or_input_error(fuzz_dir, text.encode("utf-8", "surrogatepass"))


# A break that makes any valid row of the generator invalid, whatever its other
# fields (entry dates are in 2024-02, so a loss on 2024-01-01 is before them).
_BREAKS = (
    (0, ""),  # blank id
    (1, ""),  # blank segment
    (1, " "),  # blank after trimming
    (3, "2024-13-01"),  # not a date
    (4, "x"),
    (5, "2024-02-30"),
    (6, "x"),
    (6, "2024-01-01"),  # lost before the stages reached (or together with won)
    (7, "-3"),  # negative amount
    (7, "abc"),
    (7, "nan"),
)
# An edit that keeps the row valid, with a known effect on the loaded record.
_HARMLESS = ((0, " {id} "), (2, " web"), (7, "1e3"))


@st.composite
def _row(draw, i: int) -> tuple[list[str], dict[str, object], bool]:
    """A valid CSV row and its expected record; with some chance one field broken.

    Returns the row's fields, the record it must load to (empty if broken) and
    whether it was broken.
    """
    entry = draw(st.integers(0, 1))
    stop = draw(st.integers(entry, 2))
    days = sorted(draw(st.lists(st.integers(1, 28), min_size=3, max_size=3)))
    dates = [f"2024-02-{d:02d}" if entry <= j <= stop else "" for j, d in enumerate(days)]
    won = stop == 2
    lost = "" if won or not draw(st.booleans()) else "2024-03-01"
    amount = str(draw(st.integers(0, 10**6))) if won or draw(st.booleans()) else ""
    row = [f"u{i}", draw(st.sampled_from(["smb", "mid"])), "web", *dates, lost, amount]
    what = draw(st.sampled_from(["valid", "harmless", "broken"]))
    if what == "harmless":
        k, v = draw(st.sampled_from(_HARMLESS))
        row[k] = v.format(id=row[0])
    elif what == "broken":
        k, v = draw(st.sampled_from(_BREAKS))
        row[k] = v
        return row, {}, True
    record: dict[str, object] = {
        "id": row[0].strip(),
        "segment": row[1].strip(),
        "channel": row[2].strip(),
        **{c: pd.Timestamp(v) if v else pd.NaT for c, v in zip(SPEC.stage_columns, row[3:6], strict=True)},
        "lost_at": pd.Timestamp(row[6]) if row[6] else pd.NaT,
        "amount": float(row[7]) if row[7] else np.nan,
    }
    return row, record, False


@_FUZZ
@given(st.integers(1, 6).flatmap(lambda n: st.tuples(*(_row(i) for i in range(n)))))
def test_fuzz_structured_rows(fuzz_dir, drawn):
    """Valid rows load to exactly the expected frame; broken ones are each named.

    Each row is valid (possibly with padding or an exponent the loader must
    accept) or broken by one field that makes it invalid whatever the rest of
    the row. A file of valid rows must load, to exactly the records the rows
    spell; a file with broken rows must raise InputError naming exactly the
    broken rows' lines (header = line 1), so a loader that rejects everything,
    or drops or alters a value, fails.
    """
    rows = [r for r, _, _ in drawn]
    bad_lines = {i + 2 for i, (_, _, broken) in enumerate(drawn) if broken}
    text = HEADER + "\n" + "\n".join(",".join(r) for r in rows) + "\n"
    p = fuzz_dir / "structured.csv"
    p.write_text(text)
    if bad_lines:
        with pytest.raises(InputError) as info:
            load_records(p, SPEC)
        assert {i.row for i in info.value.issues} == bad_lines, info.value.issues
        assert all(i.file == str(p) for i in info.value.issues)
        return
    df = load_records(p, SPEC)
    assert_canonical(df)
    expect = pd.DataFrame([rec for _, rec, _ in drawn], columns=list(SPEC.canonical_columns))
    expect = expect.astype(
        {**dict.fromkeys((*SPEC.stage_columns, "lost_at"), "datetime64[ns]"), "amount": "float64"}
    )
    pd.testing.assert_frame_equal(df.reset_index(drop=True), expect, check_dtype=False)
    for c in (*SPEC.stage_columns, "lost_at"):
        assert str(df[c].dtype) == "datetime64[ns]"


_OBJ = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**6),
    st.floats(allow_nan=True),
    st.sampled_from(["", "a", "2024-01-02", "x"]),
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 1, 1)),
    st.dates(),
)


@_FUZZ
@given(st.lists(st.fixed_dictionaries(dict.fromkeys(SPEC.canonical_columns, _OBJ)), max_size=6))
def test_fuzz_typed_frames(records):
    frame = pd.DataFrame(records, columns=list(SPEC.canonical_columns), dtype=object)
    try:
        df, issues = validate_records(frame, SPEC, file="typed.parquet")
    except InputError as exc:
        issues = exc.issues
        assert issues
        df = None
    if issues:
        # each issue names this file, a record's row (header = row 1) and a real column
        for issue in issues:
            assert issue.file == "typed.parquet", issue
            assert issue.row is None or 2 <= issue.row <= len(records) + 1, issue
            assert issue.column is None or issue.column in SPEC.canonical_columns, issue
        return
    assert df is not None
    assert_canonical(df)
    assert len(df) == len(records)  # nothing dropped
    assert df["id"].tolist() == [str(r["id"]).strip() for r in records]


@_FUZZ
@given(st.integers(0, 2**32 - 1), st.integers(1, 40))
def test_valid_typed_frames_validate_to_themselves(seed, n):
    """Valid typed records (as a Parquet file holds them) pass with no issue, unchanged."""
    frame = random_records(np.random.default_rng(seed), n)
    copy = frame.copy()
    df, issues = validate_records(frame, SPEC, file="typed.parquet")
    assert issues == []
    pd.testing.assert_frame_equal(frame, copy)  # input not modified
    assert df is not None
    pd.testing.assert_frame_equal(df.reset_index(drop=True), frame.reset_index(drop=True))


# ------------------------------------------------------------------ as-of view


def test_as_of_view_example():
    df = pd.DataFrame(
        {
            "id": ["won_before", "won_after", "lost_after", "open", "later"],
            "segment": ["smb"] * 5,
            "channel": ["web"] * 5,
            "mql_at": pd.to_datetime(
                ["2024-01-01", "2024-01-01", "2024-01-02", None, "2024-03-01"]
            ),
            "sql_at": pd.to_datetime(
                ["2024-01-05", "2024-02-10", "2024-01-03", "2024-01-04", None]
            ),
            "won_at": pd.to_datetime(["2024-01-31", "2024-02-20", None, None, None]),
            "lost_at": pd.to_datetime([None, None, "2024-02-15", None, None]),
            "amount": [10.0, 20.0, 30.0, 40.0, 50.0],
        }
    ).astype(dict.fromkeys((*SPEC.stage_columns, "lost_at"), "datetime64[ns]"))
    copy = df.copy()
    v = as_of_view(df, SPEC, dt.date(2024, 1, 31))  # events dated on as_of are known
    pd.testing.assert_frame_equal(df, copy)  # input not modified
    assert v["id"].tolist() == ["won_before", "won_after", "lost_after", "open"]
    assert v["won_at"][0] == pd.Timestamp("2024-01-31")
    assert v[["sql_at", "won_at"]].iloc[1].isna().all()  # sql 02-10 and won 02-20 are future
    assert pd.isna(v["lost_at"][2])
    assert v["amount"].tolist()[0] == 10.0
    assert v["amount"].tolist()[3] == 40.0
    assert np.isnan(v["amount"][1])
    assert np.isnan(v["amount"][2])


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(-10, 260))
def test_as_of_view_leaks_nothing(seed, offset):
    df = random_records(np.random.default_rng(seed), 60)
    cut = pd.Timestamp("2024-01-01") + pd.Timedelta(days=offset)
    v = as_of_view(df, SPEC, cut.date())
    dates = v[[*SPEC.stage_columns, "lost_at"]]
    assert not (dates > cut).any().any()  # nothing after as_of survives
    entered = (df[list(SPEC.stage_columns)] <= cut).any(axis=1)
    assert v["id"].tolist() == df.loc[entered, "id"].tolist()
    full = df.set_index("id").loc[v["id"]]
    closed_later = ((full["won_at"] > cut) | (full["lost_at"] > cut)).to_numpy()
    assert v["amount"][closed_later].isna().all()
    kept = ~closed_later
    np.testing.assert_array_equal(v["amount"][kept].to_numpy(), full["amount"][kept].to_numpy())
    # every known date is the true date
    for c in (*SPEC.stage_columns, "lost_at"):
        known = v[c].notna().to_numpy()
        np.testing.assert_array_equal(v[c][known].to_numpy(), full[c][known].to_numpy())
        assert (full[c][~known].isna() | (full[c][~known] > cut)).all()
    pd.testing.assert_frame_equal(as_of_view(v, SPEC, cut.date()), v)  # idempotent


_MAIN_ROW = st.tuples(
    st.sampled_from(["o1", "o2", "o3", "o4", ""]),
    st.sampled_from(["ann", "bob", "zed", ""]),
    st.sampled_from(["GTXPro", "MG", "GTX Pro", "XX"]),
    st.sampled_from(["Won", "Lost", "Engaging", "Prospecting", "won"]),
    st.sampled_from(["1/5/2024", "12/31/2023", "13/1/2024", "2024-01-05", ""]),
    st.sampled_from(["2/1/2024", "1/1/2024", "", "x"]),
    st.sampled_from(["100", "0", "", "-1", "abc"]),
)


@settings(_FUZZ, max_examples=40)
@given(st.lists(_MAIN_ROW, min_size=1, max_size=6))
def test_fuzz_mapped_export(tmp_path_factory, rows):
    """A mapped export with plausible and broken values: valid records or an InputError."""
    folder = tmp_path_factory.mktemp("mapped")
    main = "opp,agent,product,stage,engage,close,value\n" + "".join(
        ",".join(r) + "\n" for r in rows
    )
    p, spec = _export(folder, main)
    try:
        df = load_records(p, spec)
    except InputError as exc:
        rows_named = [i.row for i in exc.issues if i.file == str(p)]
    else:
        assert_canonical(df, spec)
        kept = [r for r in rows if r[3] != "Prospecting"]
        assert df["id"].tolist() == [r[0] for r in kept]
        assert df["won_at"].notna().tolist() == [r[3] == "Won" for r in kept]
        return
    assert rows_named  # the error names the export itself
    assert all(r is None or 2 <= r <= len(rows) + 1 for r in rows_named)

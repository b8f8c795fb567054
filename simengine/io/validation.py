"""Checks that turn a raw table into canonical records, or one report of every problem.

The checks run in three layers, all vectorised:

1. **parsing** each canonical column from text (CSV) or a typed column
   (Parquet): dates (ISO 8601, or the spec's ``source.date_format``), amounts
   (finite numbers), text (ids, segment values); a value of the wrong type or
   that does not parse is an issue on its row;
2. a **pandera** schema (``lazy=True``) on the parsed frame: dtypes, blank
   ids and segment values, unique ids, non-negative amounts;
3. **cross-column rules** on a (unit, stage) array of day numbers: a unit
   reaches at least one stage; reached stages are contiguous (no gaps) with
   non-decreasing dates; ``lost_at`` never together with the last stage nor
   before the last reached stage; a unit that reached the last stage has an
   amount.

Every problem found is collected into one :class:`~simengine.errors.InputError`
(file, row as a spreadsheet shows it, column, value, rule). A cell that
already failed to parse is not reported again by a later layer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from simengine.config.spec import FunnelSpec
from simengine.errors import InputError, Issue

__all__ = [
    "DATE_MAX",
    "DATE_MIN",
    "check_records",
    "records_schema",
    "required_columns",
    "validate_records",
]

#: Dates outside this range cannot be held as ``datetime64[ns]``; rejected.
DATE_MIN = pd.Timestamp("1678-01-01")
DATE_MAX = pd.Timestamp("2261-12-31")

# ISO 8601 date, optionally with a time and an offset; only the date part is
# kept (records have day precision: the date the user wrote is the date used).
_ISO = r"^(\d{4}-\d{2}-\d{2})(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$"

BoolArray = npt.NDArray[np.bool_]


def required_columns(spec: FunnelSpec) -> tuple[str, ...]:
    """Canonical columns a records file must have (all of them)."""
    return spec.canonical_columns


def records_schema(spec: FunnelSpec) -> pa.DataFrameSchema:
    """Return the pandera schema of parsed canonical records (per-column rules).

    Parameters
    ----------
    spec : FunnelSpec
        The funnel spec (names the segment and stage columns).

    Returns
    -------
    pandera.DataFrameSchema
    """
    nonblank = pa.Check.str_length(min_value=1)
    cols: dict[str, pa.Column] = {"id": pa.Column(str, nonblank, unique=True)}
    for c in spec.segment_by:
        cols[c] = pa.Column(str, nonblank)
    for c in (*spec.stage_columns, "lost_at"):
        cols[c] = pa.Column("datetime64[ns]", nullable=True)
    cols["amount"] = pa.Column(float, pa.Check.ge(0), nullable=True)
    return pa.DataFrameSchema(cols, strict=False, ordered=False)


@dataclass
class _Ctx:
    """Where issues go and how columns are named in them."""

    file: str
    rows: npt.NDArray[np.int64]
    display: Mapping[str, str]
    frame: pd.DataFrame
    issues: list[Issue] = field(default_factory=list)
    bad: dict[str, BoolArray] = field(default_factory=dict)

    def name(self, col: str) -> str:
        shown = self.display.get(col, col)
        return col if shown == col else f"{shown} ({col})"

    def value(self, col: str, i: int) -> str:
        v = self.frame[col].iloc[i]
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT:
            return ""
        return str(v)

    def add(self, mask: BoolArray, col: str, rule: str, *, value_col: str | None = None) -> None:
        vcol = value_col or col
        shown = self.display.get(col, col)
        for i in np.flatnonzero(mask):
            self.issues.append(
                Issue(self.file, int(self.rows[i]), shown, self.value(vcol, int(i)), rule)
            )

    def mark(self, col: str, mask: BoolArray) -> None:
        prev = self.bad.get(col)
        self.bad[col] = mask.copy() if prev is None else (prev | mask)

    def wrong_type(self, col: str, s: pd.Series, kind: str) -> None:
        """Report a whole column of the wrong dtype (no row: every row is affected)."""
        self.issues.append(
            Issue(
                self.file,
                None,
                self.display.get(col, col),
                str(s.dtype),
                f"wrong type: {self.name(col)} must be a {kind} column",
            )
        )

    def ok(self, col: str) -> BoolArray:
        b = self.bad.get(col)
        return np.ones(len(self.rows), bool) if b is None else ~b


def _is_textual(s: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(s.dtype) or s.dtype == object


def _object_kinds(s: pd.Series) -> tuple[BoolArray, BoolArray]:
    """For an object/str column: (is a str, is null) per element."""
    if isinstance(s.dtype, pd.StringDtype):
        null = s.isna().to_numpy()
        return ~null, null
    is_str = np.fromiter((isinstance(v, str) for v in s), bool, len(s))
    null = s.isna().to_numpy() & ~is_str
    return is_str, null


def _stripped(s: pd.Series, is_str: BoolArray) -> pd.Series:
    """Return the str elements of ``s`` stripped, "" elsewhere, with a fresh index."""
    if isinstance(s.dtype, pd.StringDtype):
        return s.fillna("").str.strip().reset_index(drop=True)
    return pd.Series(np.where(is_str, s.to_numpy(dtype=object), ""), dtype=str).str.strip()


def _parse_text(s: pd.Series, col: str, ctx: _Ctx) -> pd.Series | None:
    """Text column (id, segment): str values stripped; blank -> ""."""
    n = len(s)
    if _is_textual(s):
        is_str, null = _object_kinds(s)
        other = ~is_str & ~null
        if other.any():
            is_int = np.fromiter(
                (isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_) for v in s),
                bool,
                n,
            )
            wrong = other & ~is_int
            ctx.add(wrong, col, f"{ctx.name(col)} must be text; this value is not")
            ctx.mark(col, wrong)
            out = pd.Series(
                [str(v) if ok else "" for v, ok in zip(s, is_str | is_int, strict=True)],
                dtype=str,
            )
        else:
            out = s.where(is_str, "").astype(str)
        return out.str.strip()
    if pd.api.types.is_integer_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        return s.astype(str).fillna("").reset_index(drop=True)
    ctx.wrong_type(col, s, "text")
    return None


def _text_dates(s: pd.Series, date_format: str | None) -> pd.Series:
    """Parse stripped strings (blank -> NaT) to datetimes; unparseable -> NaT."""
    if date_format is None:
        # Fast path: plain YYYY-MM-DD; the regex (dates with a time or offset) only on the rest.
        out = pd.to_datetime(s.where(s != ""), format="%Y-%m-%d", errors="coerce")
        rest = (out.isna() & (s.str.len() > 10)).to_numpy()
        if rest.any():
            part = s[rest].str.extract(_ISO, expand=False)
            out = out.astype("datetime64[us]")
            out[rest] = pd.to_datetime(part, format="%Y-%m-%d", errors="coerce")
        return out
    try:
        out = pd.to_datetime(s.where(s != ""), format=date_format, errors="coerce")
    except (ValueError, TypeError):
        # e.g. mixed UTC offsets under %z: parse value by value, keeping the written date
        out = pd.Series([_strptime(v, date_format) for v in s], dtype="datetime64[us]")
    if isinstance(out.dtype, pd.DatetimeTZDtype):
        out = out.dt.tz_localize(None)  # keep the wall-clock date the user wrote
    return out


def _strptime(text: str, fmt: str) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.strptime(text, fmt).replace(tzinfo=None)
    except (ValueError, TypeError, OverflowError):
        return None


def _parse_dates(s: pd.Series, col: str, ctx: _Ctx, date_format: str | None) -> pd.Series | None:
    """Date column: datetime64[ns] at midnight, NaT where blank."""
    n = len(s)
    expect = "YYYY-MM-DD" if date_format is None else date_format
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        out = s.reset_index(drop=True)
        if getattr(out.dt, "tz", None) is not None:
            out = out.dt.tz_localize(None)
        blank = out.isna().to_numpy()
    elif _is_textual(s) or s.isna().all():
        if _is_textual(s):
            is_str, null = _object_kinds(s)
        else:
            is_str, null = np.zeros(n, bool), np.ones(n, bool)
        is_dt = np.zeros(n, bool)
        if (~is_str & ~null).any():
            is_dt = np.fromiter(
                (isinstance(v, pd.Timestamp | np.datetime64 | dt.date) for v in s),
                bool,
                n,
            )
            wrong = ~is_str & ~null & ~is_dt
            ctx.add(wrong, col, f"{ctx.name(col)} must be a date ({expect}); this value is not")
            ctx.mark(col, wrong)
        text = _stripped(s, is_str)
        blank = (text == "").to_numpy() & ~is_dt
        out = _text_dates(text, date_format).reset_index(drop=True)
        if is_dt.any():
            conv = pd.to_datetime(
                pd.Series(np.where(is_dt, s.to_numpy(dtype=object), None)), errors="coerce"
            )
            if getattr(conv.dt, "tz", None) is not None:
                conv = conv.dt.tz_localize(None)
            out = out.astype("datetime64[us]").where(~is_dt, conv.astype("datetime64[us]"))
        unparsed = out.isna().to_numpy() & ~blank & ctx.ok(col)
        ctx.add(unparsed, col, f"{ctx.name(col)} is not a date in the format {expect}")
        ctx.mark(col, unparsed)
    else:
        ctx.wrong_type(col, s, "date")
        return None
    out = out.dt.floor("D") if out.notna().any() else out
    present = out.notna().to_numpy()
    vals = out.astype("datetime64[us]")
    outside = present & ((vals < DATE_MIN) | (vals > DATE_MAX)).to_numpy()
    ctx.add(outside, col, f"{ctx.name(col)} is outside the supported range 1678-01-01..2261-12-31")
    ctx.mark(col, outside)
    vals = vals.where(~outside)
    return vals.astype("datetime64[ns]")


def _parse_amount(s: pd.Series, col: str, ctx: _Ctx) -> pd.Series | None:
    """Amount column: float64, NaN where blank; non-numbers and non-finite reported."""
    n = len(s)
    if pd.api.types.is_bool_dtype(s.dtype):
        pass
    elif pd.api.types.is_numeric_dtype(s.dtype):
        out = s.astype(np.float64).reset_index(drop=True)
        bad = ~np.isfinite(out.to_numpy()) & out.notna().to_numpy()
        ctx.add(bad, col, f"{ctx.name(col)} must be a finite number")
        ctx.mark(col, bad)
        return out.where(~bad)
    elif _is_textual(s) or s.isna().all():
        if _is_textual(s):
            is_str, null = _object_kinds(s)
        else:
            is_str, null = np.zeros(n, bool), np.ones(n, bool)
        objs = s.to_numpy(dtype=object)
        is_num = np.zeros(n, bool)
        if (~is_str & ~null).any():
            is_num = np.fromiter(
                (
                    isinstance(v, int | float | np.integer | np.floating)
                    and not isinstance(v, bool | np.bool_)
                    for v in objs
                ),
                bool,
                n,
            )
            wrong = ~is_str & ~null & ~is_num
            ctx.add(wrong, col, f"{ctx.name(col)} must be a number; this value is not")
            ctx.mark(col, wrong)
        text = _stripped(s, is_str)
        blank = (text == "").to_numpy() & ~is_num
        num = pd.to_numeric(text.where(~pd.Series(blank)), errors="coerce").astype(np.float64)
        if is_num.any():
            num = num.where(~is_num, pd.Series(np.where(is_num, objs, np.nan), dtype=np.float64))
        arr = num.to_numpy()
        bad = ~blank & ~np.isfinite(arr) & ctx.ok(col)
        ctx.add(bad, col, f"{ctx.name(col)} is not a number")
        ctx.mark(col, bad)
        return pd.Series(np.where(bad, np.nan, arr), dtype=np.float64)
    ctx.wrong_type(col, s, "number")
    return None


def _schema_issues(df: pd.DataFrame, spec: FunnelSpec, ctx: _Ctx) -> None:
    """Run the pandera schema lazily and turn its failure cases into issues."""
    try:
        records_schema(spec).validate(df, lazy=True)
    except SchemaErrors as exc:
        fc = exc.failure_cases
    else:
        return
    ids = df["id"]
    first = pd.Series(np.arange(len(df))).groupby(ids.to_numpy()).transform("min").to_numpy()
    for col, check, idx, case in zip(
        fc["column"], fc["check"].astype(str), fc["index"], fc["failure_case"], strict=True
    ):
        if idx is None or (isinstance(idx, float) and np.isnan(idx)):
            ctx.issues.append(
                Issue(
                    ctx.file,
                    None,
                    ctx.display.get(str(col), str(col)),
                    str(case),
                    f"{ctx.name(str(col))} fails the check {check}",
                )
            )
            continue
        i = int(idx)
        if not ctx.ok(str(col))[i]:
            continue
        shown = ctx.display.get(str(col), str(col))
        value = ctx.value(str(col), i)
        if check == "field_uniqueness":
            if ids.iloc[i] == "" or first[i] == i:
                continue  # blank ids are reported as blank; the first occurrence is fine
            rule = f"duplicate id: the same {ctx.name('id')} is already on row {ctx.rows[first[i]]}"
        elif check.startswith("str_length"):
            what = "id" if col == "id" else "segment value"
            rule = f"blank {what}: {ctx.name(str(col))} must not be blank"
        elif check.startswith("greater_than_or_equal_to"):
            rule = f"negative amount: {ctx.name(str(col))} must be >= 0"
        else:
            rule = f"{ctx.name(str(col))} fails the check {check}"
        ctx.issues.append(Issue(ctx.file, int(ctx.rows[i]), shown, value, rule))


def _cross_issues(df: pd.DataFrame, spec: FunnelSpec, ctx: _Ctx) -> None:
    """Cross-column rules on a (unit, stage) day-number array."""
    stage_cols = list(spec.stage_columns)
    n, k = len(df), len(stage_cols)
    nat = np.iinfo(np.int64).min
    days = np.stack([df[c].to_numpy("datetime64[D]").astype(np.int64) for c in stage_cols], 1)
    reached = days != nat
    unparsed = np.stack([~ctx.ok(c) for c in stage_cols], 1)
    lost = df["lost_at"].to_numpy("datetime64[D]").astype(np.int64)
    has_lost = lost != nat
    any_reached = reached.any(1)
    # A unit whose stage dates all failed to parse is reported for those cells only.
    none = ~any_reached & ~unparsed.any(1)
    ctx.add(
        none,
        stage_cols[0],
        "unit has no stage date: a record must have the date of at least one stage ("
        + ", ".join(ctx.name(c) for c in stage_cols)
        + ")",
    )
    entry = np.argmax(reached, 1)
    last = k - 1 - np.argmax(reached[:, ::-1], 1)
    j_idx = np.arange(k)[None, :]
    gap = (
        ~reached
        & ~unparsed
        & (j_idx > entry[:, None])
        & (j_idx < last[:, None])
        & any_reached[:, None]
    )
    for j in range(k):
        later = ", ".join(ctx.name(c) for c in stage_cols[j + 1 :])
        ctx.add(
            gap[:, j],
            stage_cols[j],
            f"gap in the stage run: {ctx.name(stage_cols[j])} is blank but a later stage "
            f"({later}) is reached; stages reached must be contiguous",
        )
    # Non-decreasing dates: each reached stage is not before the latest earlier date.
    filled = np.where(reached, days, nat)
    running = np.maximum.accumulate(filled, axis=1)
    for j in range(1, k):
        prev = running[:, j - 1]
        bad = reached[:, j] & (prev != nat) & (days[:, j] < prev)
        prev_names = ", ".join(ctx.name(c) for c in stage_cols[:j])
        ctx.add(
            bad,
            stage_cols[j],
            f"stage dates out of order: {ctx.name(stage_cols[j])} is before an earlier "
            f"stage's date ({prev_names}); dates must not decrease along the funnel",
        )
    won = reached[:, -1]
    both = has_lost & won
    ctx.add(
        both,
        "lost_at",
        f"lost together with the last stage: a unit with {ctx.name(stage_cols[-1])} "
        f"(closed-won) cannot also have {ctx.name('lost_at')}",
    )
    last_day = days[np.arange(n), last]
    early = has_lost & ~won & any_reached & (lost < last_day)
    ctx.add(
        early,
        "lost_at",
        f"lost before the last reached stage: {ctx.name('lost_at')} is earlier than the "
        "date of the last stage the unit reached",
    )
    no_amount = won & df["amount"].isna().to_numpy() & ctx.ok("amount")
    ctx.add(
        no_amount,
        "amount",
        f"missing amount: a unit that reached {ctx.name(stage_cols[-1])} (closed-won) needs "
        f"{ctx.name('amount')}",
    )


def _missing_rule(col: str, present: pd.Index) -> str:
    """Say a column is missing, with a hint for a wrong separator or letter case."""
    names = [str(c) for c in present]
    rule = "missing required column"
    if len(names) == 1 and any(sep in names[0] for sep in (";", "\t", "|")):
        return rule + "; the header looks like one column: save the file comma-separated"
    near = [c for c in names if c.strip().lower() == col.lower()]
    if near:
        rule += f"; the file has {near[0]!r} (names are case-sensitive)"
    return rule


def validate_records(
    frame: pd.DataFrame,
    spec: FunnelSpec,
    *,
    file: str,
    rows: npt.ArrayLike | None = None,
    date_format: str | None = None,
    display: Mapping[str, str] | None = None,
) -> tuple[pd.DataFrame | None, list[Issue]]:
    """Parse and check a raw table holding the canonical columns.

    Parameters
    ----------
    frame : DataFrame
        Raw table: canonical columns as text (CSV) or typed (Parquet); other
        columns are ignored. Not modified.
    spec : FunnelSpec
        The funnel spec.
    file : str
        File name used in issues.
    rows : array-like of int, optional
        Row number of each record as a spreadsheet shows it; default
        ``2, 3, ...`` (header is row 1).
    date_format : str, optional
        ``strptime`` format of text dates; ``None`` for ISO 8601.
    display : mapping of str to str, optional
        Canonical column to the name shown in issues (the source column of a
        mapped export).

    Returns
    -------
    (records, issues) : tuple
        Canonical records (``None`` if a column could not be parsed at all)
        and the list of issues (empty when the records are valid).
    """
    n = len(frame)
    row_arr = np.arange(2, n + 2, dtype=np.int64) if rows is None else np.asarray(rows, np.int64)
    disp = dict(display or {})
    missing = [c for c in required_columns(spec) if c not in frame.columns]
    if missing:
        return None, [
            Issue(file, None, disp.get(c, c), "", _missing_rule(disp.get(c, c), frame.columns))
            for c in missing
        ]
    if n == 0:
        return None, [Issue(file, None, None, "", "no records: the file has no data rows")]
    frame = frame.reset_index(drop=True)
    for c in required_columns(spec):  # categoricals (Parquet written from pandas) as plain values
        if isinstance(frame[c].dtype, pd.CategoricalDtype):
            frame = frame.assign(**{c: frame[c].astype(object)})
    ctx = _Ctx(file=file, rows=row_arr, display=disp, frame=frame)
    parsed: dict[str, pd.Series | None] = {}
    for c in ("id", *spec.segment_by):
        parsed[c] = _parse_text(frame[c], c, ctx)
    for c in (*spec.stage_columns, "lost_at"):
        parsed[c] = _parse_dates(frame[c], c, ctx, date_format)
    parsed["amount"] = _parse_amount(frame["amount"], "amount", ctx)
    if any(v is None for v in parsed.values()):
        return None, ctx.issues
    df = pd.DataFrame({c: v for c, v in parsed.items() if v is not None})
    df = df[list(spec.canonical_columns)]
    _schema_issues(df, spec, ctx)
    _cross_issues(df, spec, ctx)
    order = {c: i for i, c in enumerate(spec.canonical_columns)}
    rank = {disp.get(c, c): i for c, i in order.items()}
    issues = sorted(
        ctx.issues,
        key=lambda x: (x.row if x.row is not None else -1, rank.get(x.column or "", len(order))),
    )
    return df, issues


def check_records(
    frame: pd.DataFrame,
    spec: FunnelSpec,
    *,
    file: str,
    rows: npt.ArrayLike | None = None,
    date_format: str | None = None,
    display: Mapping[str, str] | None = None,
    prior: list[Issue] | None = None,
) -> pd.DataFrame:
    """Like :func:`validate_records`, but raise one :class:`InputError` on any issue.

    Parameters
    ----------
    frame, spec, file, rows, date_format, display
        See :func:`validate_records`.
    prior : list of Issue, optional
        Issues found earlier (e.g. while mapping a source export), reported
        together with these.

    Returns
    -------
    DataFrame
        Canonical records.

    Raises
    ------
    InputError
        Listing every problem found.
    """
    df, issues = validate_records(
        frame,
        spec,
        file=file,
        rows=rows,
        date_format=date_format,
        display=display,
    )
    issues = [*(prior or []), *issues]
    if issues or df is None:
        raise InputError(
            issues or [Issue(file, None, None, "", "records could not be read")],
            summary=f"{len(issues)} problem(s) in the records {file}",
        )
    return df

"""Canonical records: read a CRM export (CSV or Parquet), map it, check it.

:func:`load_records` is the one entry point from a user's file to the
canonical record frame every other module reads (columns ``id``, one per
``segment_by`` name, ``<stage>_at`` per stage, ``lost_at``, ``amount``; see
ARCHITECTURE.md). :func:`as_of_view` cuts that frame down to what was known
on a date, so that fits and backtests never see the future.

Reading rules:

* CSV is read as text (``dtype=str``, no NA guessing): every value's type is
  checked by :mod:`simengine.io.validation`, not guessed by pandas. The header is
  row 1 and the first record row 2, as a spreadsheet shows them; blank lines
  keep their row numbers and are skipped. UTF-8 (with or without BOM).
* Parquet keeps its column types: date columns may be timestamps or text,
  amounts numbers or text; row numbers follow the same convention.
* If the spec has a ``[source]`` mapping and the file does not already hold
  the canonical columns, the mapping is applied, in this order: ``replace``
  values, drop ``exclude`` rows, left-join each ``join`` file (path relative
  to the data file's folder; a key not found is an issue on its row; the
  main file's columns win over a lookup's of the same name), fill each
  canonical column from its rule (blank where ``when`` does not match), parse
  dates with ``date_format``. Row numbers in issues are the source file's.
* Nothing is ever written; the input file is only read.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from simengine.config.spec import FunnelSpec, SourceMapping
from simengine.errors import InputError, Issue
from simengine.io.validation import check_records

__all__ = ["RawTable", "as_of_view", "latest_date", "load_records", "read_table"]


@dataclass(frozen=True)
class RawTable:
    """A table as read from disk, before any mapping or checks.

    Parameters
    ----------
    frame : DataFrame
        The data rows; CSV columns are text, Parquet columns keep their types.
        All-blank rows are dropped.
    rows : ndarray of int64
        Spreadsheet row number of each data row (header = row 1).
    file : str
        The path as given.
    duplicated : frozenset of str
        Column names that appeared more than once (the first is kept).
    """

    frame: pd.DataFrame
    rows: npt.NDArray[np.int64]
    file: str
    duplicated: frozenset[str] = frozenset()


def _read_csv(p: Path, file: str) -> pd.DataFrame:
    try:
        raw = pd.read_csv(
            p,
            header=None,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=False,
            encoding="utf-8-sig",
        )
    except pd.errors.EmptyDataError:
        raise InputError.single(file, "the file is empty (no header row)") from None
    except UnicodeDecodeError as exc:
        raise InputError.single(
            file, f"not UTF-8 text (byte {exc.start}); save the export as UTF-8 CSV"
        ) from None
    except (pd.errors.ParserError, csv.Error, ValueError, OverflowError) as exc:
        msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        row = None
        m = re.search(r"line (\d+)", msg)
        if m:
            row = int(m.group(1))
        raise InputError.single(file, f"not a readable CSV file: {msg}", row=row) from None
    except OSError as exc:
        raise InputError.single(file, f"cannot read the file: {exc.strerror or exc}") from None
    return raw


def read_table(path: str | Path) -> RawTable:
    """Read a CSV or Parquet file as a raw table (no mapping, no checks).

    Parameters
    ----------
    path : str or Path
        ``.csv`` or ``.parquet`` (``.pq``) file.

    Returns
    -------
    RawTable

    Raises
    ------
    InputError
        If the file is missing, of another kind, empty, or not readable.
    """
    p = Path(path)
    file = str(path)
    suffix = p.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise InputError.single(
            file, f"unsupported file type {p.suffix!r}: records must be .csv or .parquet"
        )
    if not p.is_file():
        raise InputError.single(file, "file not found")
    if suffix == ".csv":
        raw = _read_csv(p, file)
        if raw.shape[0] == 0:
            raise InputError.single(file, "the file is empty (no header row)")
        header = [str(h).strip() for h in raw.iloc[0].tolist()]
        frame = raw.iloc[1:].reset_index(drop=True)
        rows = np.arange(2, len(frame) + 2, dtype=np.int64)
    else:
        try:
            frame = pd.read_parquet(p)
        except (OSError, ValueError, TypeError, MemoryError) as exc:
            raise InputError.single(file, f"not a readable Parquet file: {exc}") from None
        except Exception as exc:  # pyarrow raises its own ArrowException family
            if type(exc).__module__.startswith("pyarrow"):
                raise InputError.single(file, f"not a readable Parquet file: {exc}") from None
            raise
        header = [str(h).strip() for h in frame.columns]
        frame = frame.reset_index(drop=True)
        rows = np.arange(2, len(frame) + 2, dtype=np.int64)
    seen: set[str] = set()
    keep: list[int] = []
    dups: set[str] = set()
    for i, h in enumerate(header):
        if h in seen:
            dups.add(h)
        else:
            seen.add(h)
            keep.append(i)
    frame = frame.iloc[:, keep]
    frame.columns = pd.Index([header[i] for i in keep], dtype=object)
    if frame.shape[1] and len(frame):
        blank = np.ones(len(frame), bool)
        for c in frame.columns:
            s = frame[c]
            if pd.api.types.is_string_dtype(s.dtype) or s.dtype == object:
                blank &= (s.isna() | (s.astype(str).str.strip() == "")).to_numpy()
            else:
                blank &= s.isna().to_numpy()
        if blank.any():
            frame = frame.loc[~blank].reset_index(drop=True)
            rows = rows[~blank]
    return RawTable(frame=frame, rows=rows, file=file, duplicated=frozenset(dups))


def _text(s: pd.Series) -> pd.Series:
    """Return a column as stripped text for comparisons (blank/NaN -> "")."""
    if pd.api.types.is_string_dtype(s.dtype) and not s.isna().any():
        return s.astype(str).str.strip()
    out = s.astype(object).where(s.notna(), "")
    return out.map(str).astype(str).str.strip()


def _apply_mapping(
    table: RawTable, src: SourceMapping, spec: FunnelSpec
) -> tuple[pd.DataFrame, npt.NDArray[np.int64], dict[str, str], list[Issue]]:
    """Map a source export to canonical (raw, unparsed) columns."""
    file = table.file
    sfile = spec.path or "<spec>"
    frame = table.frame.copy()
    rows = table.rows
    issues: list[Issue] = []
    cols = set(frame.columns)

    def need(col: str, where: str) -> bool:
        if col not in cols:
            issues.append(
                Issue(file, None, col, "", f"missing column (named by the spec's {where})")
            )
            return False
        if col in table.duplicated:
            issues.append(Issue(file, None, col, "", "column name appears more than once"))
            return False
        return True

    unmapped = [c for c in spec.canonical_columns if c not in src.columns]
    for c in unmapped:
        issues.append(
            Issue(sfile, None, "source.columns", c, "the mapping must fill every canonical column")
        )
    for col, mapping in src.replace.items():
        if need(col, f"source.replace.{col}"):
            frame[col] = _text(frame[col]).replace(mapping)
    drop = np.zeros(len(frame), bool)
    for col, values in src.exclude.items():
        if need(col, f"source.exclude.{col}"):
            drop |= _text(frame[col]).isin(values).to_numpy()
    if drop.any():
        frame = frame.loc[~drop].reset_index(drop=True)
        rows = rows[~drop]
    base = Path(file).parent
    for join in src.joins:
        jpath = base / join.file
        try:
            look = read_table(jpath)
        except InputError as exc:
            issues.extend(exc.issues)
            continue
        if not need(join.on, f"source.join (on = {join.on!r})"):
            continue
        if join.on not in look.frame.columns:
            issues.append(Issue(look.file, None, join.on, "", "missing join key column"))
            continue
        keys = _text(look.frame[join.on])
        dup = keys.duplicated(keep="first").to_numpy() & (keys != "").to_numpy()
        for i in np.flatnonzero(dup):
            issues.append(
                Issue(
                    look.file,
                    int(look.rows[i]),
                    join.on,
                    keys.iloc[i],
                    "duplicate key in a lookup file: each key must appear once",
                )
            )
        lookup = look.frame.loc[~dup & (keys != "").to_numpy()]
        lookup_keys = keys.loc[lookup.index]
        mine = _text(frame[join.on])
        found = mine.isin(set(lookup_keys)).to_numpy()
        for i in np.flatnonzero(~found):
            issues.append(
                Issue(
                    file,
                    int(rows[i]),
                    join.on,
                    mine.iloc[i],
                    f"key not found in the lookup file {join.file}",
                )
            )
        pos = pd.Series(np.arange(len(lookup)), index=lookup_keys.to_numpy())
        idx = mine.map(pos)
        take = idx.fillna(-1).astype(np.int64).to_numpy()
        for c in lookup.columns:
            if c == join.on or c in cols:
                continue
            vals = lookup[c].reset_index(drop=True)
            picked = vals.iloc[np.where(take >= 0, take, 0)].reset_index(drop=True)
            frame[c] = picked.where(pd.Series(take >= 0), None) if len(vals) else None
            cols.add(c)
    out: dict[str, pd.Series] = {}
    display: dict[str, str] = {}
    for canon, rule in src.columns.items():
        if not need(rule.column, f"source.columns.{canon}"):
            continue
        s = frame[rule.column].reset_index(drop=True)
        keep = np.ones(len(frame), bool)
        for wcol, allowed in rule.when.items():
            if need(wcol, f"source.columns.{canon}.when"):
                keep &= _text(frame[wcol]).isin(allowed).to_numpy()
        if not keep.all():
            s = s.astype(object).where(keep, None)
        out[canon] = s
        display[canon] = rule.column
    if issues and (unmapped or any(i.row is None for i in issues)):
        raise InputError(issues, summary=f"cannot map {file} with the spec {sfile}")
    return pd.DataFrame(out, index=pd.RangeIndex(len(frame))), rows, display, issues


def load_records(path: str | Path, spec: FunnelSpec) -> pd.DataFrame:
    """Read, map and check a records file; return canonical records.

    Parameters
    ----------
    path : str or Path
        CSV or Parquet export.
    spec : FunnelSpec
        The funnel spec (stages, segments, optional ``[source]`` mapping).

    Returns
    -------
    DataFrame
        Canonical records: ``id`` and ``segment_by`` columns (str),
        ``<stage>_at`` and ``lost_at`` (``datetime64[ns]``, NaT if blank),
        ``amount`` (float64, NaN if blank), one row per unit, in file order.

    Raises
    ------
    InputError
        Listing every problem (file, row, column, value, rule); nothing is
        returned partially.
    """
    table = read_table(path)
    canonical = set(spec.canonical_columns)
    src = spec.source
    if src is not None and not canonical <= set(table.frame.columns):
        frame, rows, display, prior = _apply_mapping(table, src, spec)
        if len(frame) == 0:
            raise InputError(
                [*prior, Issue(table.file, None, None, "", "no records left after exclusions")]
            )
        return check_records(
            frame,
            spec,
            file=table.file,
            rows=rows,
            date_format=src.date_format,
            display=display,
            prior=prior,
        )
    dup_req = [c for c in spec.canonical_columns if c in table.duplicated]
    if dup_req:
        raise InputError(
            [Issue(table.file, None, c, "", "column name appears more than once") for c in dup_req]
        )
    return check_records(table.frame, spec, file=table.file, rows=table.rows)


def _ts(as_of: dt.date | str | pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(as_of)
    if ts.tzinfo is not None:
        ts = ts.tz_localize(None)
    return ts.normalize()


def latest_date(df: pd.DataFrame, spec: FunnelSpec) -> dt.date:
    """Return the latest stage or lost date in the records (the file's own as-of date)."""
    cols = [*spec.stage_columns, "lost_at"]
    latest = df[cols].max().max()
    if pd.isna(latest):
        raise ValueError("records hold no dates")
    return pd.Timestamp(latest).date()


def as_of_view(
    df: pd.DataFrame, spec: FunnelSpec, as_of: dt.date | str | pd.Timestamp
) -> pd.DataFrame:
    """Return what was known on ``as_of`` (events dated on ``as_of`` are known).

    Units that entered after ``as_of`` are dropped; stage and lost dates after
    ``as_of`` are blanked; ``amount`` is blanked for units that closed (won or
    lost) after ``as_of`` (its value would be the realised value of a later
    close), and kept for units won by ``as_of`` and for units with no close at
    all in the file.

    Parameters
    ----------
    df : DataFrame
        Canonical records (not modified).
    spec : FunnelSpec
        The funnel spec.
    as_of : date, str or Timestamp
        The cut-off day.

    Returns
    -------
    DataFrame
        A new frame with the same columns and a fresh ``RangeIndex``.
    """
    cut = _ts(as_of)
    stage_cols = list(spec.stage_columns)
    dates = df[stage_cols]
    entered = (dates <= cut).any(axis=1).to_numpy()
    out = df.loc[entered].reset_index(drop=True).copy()
    won = out[stage_cols[-1]]
    lost = out["lost_at"]
    closed_later = ((won > cut) | (lost > cut)).to_numpy()
    for c in (*stage_cols, "lost_at"):
        out[c] = out[c].where(~(out[c] > cut))
    out["amount"] = out["amount"].where(~closed_later)
    return out

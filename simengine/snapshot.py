"""The as-of snapshot of canonical records: cells, segments, open units, counts.

:func:`open_units` builds the :class:`~simengine.params.OpenUnits` the engine
starts from: every unit open at the as-of date (entered by then, neither won
nor lost by then), with its cell, the last stage it had reached, its age in
that stage and its own amount where known. It works on
:func:`~simengine.io.records.as_of_view`, so nothing dated after the as-of date
is used. :func:`pipeline_from_records` maps a records file's open units onto
the segments of a planner's assumptions file.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from simengine.config.spec import CELL_SEP, FunnelSpec
from simengine.errors import InputError, Issue
from simengine.io.records import as_of_view
from simengine.params import OpenUnits

__all__ = [
    "cell_labels",
    "cells_of",
    "open_units",
    "pipeline_from_records",
    "segments_of",
    "stage_counts",
]


def cell_labels(df: pd.DataFrame, spec: FunnelSpec) -> pd.Series:
    """Return the cell label of every record (``segment_by`` values joined with ``/``)."""
    cols = list(spec.segment_by)
    labels = df[cols[0]].astype(str)
    for c in cols[1:]:
        labels = labels + CELL_SEP + df[c].astype(str)
    return labels.reset_index(drop=True)


def cells_of(df: pd.DataFrame, spec: FunnelSpec) -> tuple[str, ...]:
    """Sorted distinct cell labels present in the records."""
    return tuple(sorted(set(cell_labels(df, spec))))


def segments_of(df: pd.DataFrame, spec: FunnelSpec) -> tuple[str, ...]:
    """Sorted distinct reporting segments (values of the first ``segment_by`` column)."""
    return tuple(sorted(set(df[spec.segment_column].astype(str))))


def _last_reached(view: pd.DataFrame, spec: FunnelSpec) -> tuple[np.ndarray, np.ndarray]:
    """Index of the last reached stage and its day number (int64 days since epoch)."""
    days = np.stack(
        [view[c].to_numpy("datetime64[D]").astype(np.int64) for c in spec.stage_columns], 1
    )
    nat = np.iinfo(np.int64).min
    reached = days != nat
    k = days.shape[1]
    last = k - 1 - np.argmax(reached[:, ::-1], 1)
    return last.astype(np.int64), days[np.arange(len(view)), last]


def _open_mask(view: pd.DataFrame, spec: FunnelSpec) -> np.ndarray:
    won = view[spec.stage_columns[-1]].notna().to_numpy()
    lost = view["lost_at"].notna().to_numpy()
    return ~won & ~lost


def open_units(
    df: pd.DataFrame,
    spec: FunnelSpec,
    as_of: dt.date | str | pd.Timestamp,
    cells: Sequence[str],
) -> OpenUnits:
    """Units open at ``as_of``: cell index, last reached stage, age, amount.

    Parameters
    ----------
    df : DataFrame
        Canonical records (the whole file or an as-of view; not modified).
    spec : FunnelSpec
        The funnel spec.
    as_of : date, str or Timestamp
        The snapshot day (day 0 of a simulation).
    cells : sequence of str
        Cell labels in the order of the parameters' ``cell`` axis.

    Returns
    -------
    OpenUnits
        In record order. ``age_days`` is whole days from the date the unit
        entered its last reached stage to ``as_of`` (0 if it entered that day);
        ``amount`` is the unit's own value, NaN if unknown or if it is the
        realised value of a close after ``as_of``.

    Raises
    ------
    InputError
        If an open unit's cell is not one of ``cells``.
    """
    view = as_of_view(df, spec, as_of)
    is_open = _open_mask(view, spec)
    opened = view.loc[is_open].reset_index(drop=True)
    if len(opened) == 0:
        return OpenUnits.empty()
    stage, day = _last_reached(opened, spec)
    cut = np.datetime64(pd.Timestamp(as_of).date(), "D").astype(np.int64)
    labels = cell_labels(opened, spec)
    index = {c: i for i, c in enumerate(cells)}
    cell = labels.map(index)
    unknown = cell.isna().to_numpy()
    if unknown.any():
        missing = sorted(set(labels[unknown]))
        raise InputError(
            [
                Issue(
                    "<records>",
                    None,
                    "/".join(spec.segment_by),
                    m,
                    f"open units in a cell the parameters do not have; cells are {list(cells)}",
                )
                for m in missing
            ]
        )
    return OpenUnits(
        cell=cell.to_numpy(np.int64),
        stage=stage,
        age_days=(cut - day).astype(np.float64),
        amount=opened["amount"].to_numpy(np.float64),
        ids=tuple(str(i) for i in opened["id"]) if "id" in opened else None,
    )


def stage_counts(
    df: pd.DataFrame, spec: FunnelSpec, as_of: dt.date | str | pd.Timestamp
) -> pd.DataFrame:
    """Units per reporting segment and stage, and the open pipeline at ``as_of``.

    Parameters
    ----------
    df : DataFrame
        Canonical records of the whole file.
    spec : FunnelSpec
        The funnel spec.
    as_of : date, str or Timestamp
        Day of the open-unit counts.

    Returns
    -------
    DataFrame
        Index: segments (sorted) then ``"total"``. Columns: ``units`` (in the
        file), ``reached_<stage>`` per stage (units that entered the stage, in
        the file), ``won``, ``lost`` (in the file), ``open`` (open at
        ``as_of``) and ``open_<stage>`` per stage but the last (open units at
        ``as_of`` whose last reached stage it is). All int64.
    """
    seg = df[spec.segment_column].astype(str).to_numpy()
    segments = list(segments_of(df, spec))
    frame: dict[str, np.ndarray] = {"units": np.ones(len(df), np.int64)}
    for s, c in zip(spec.stages, spec.stage_columns, strict=True):
        frame[f"reached_{s}"] = df[c].notna().to_numpy(np.int64)
    frame["won"] = df[spec.stage_columns[-1]].notna().to_numpy(np.int64)
    frame["lost"] = df["lost_at"].notna().to_numpy(np.int64)
    whole = pd.DataFrame(frame).groupby(seg).sum().reindex(segments, fill_value=0)

    view = as_of_view(df, spec, as_of)
    is_open = _open_mask(view, spec)
    opened = view.loc[is_open].reset_index(drop=True)
    oseg = opened[spec.segment_column].astype(str).to_numpy()
    stage, _ = _last_reached(opened, spec) if len(opened) else (np.zeros(0, np.int64), None)
    ocols: dict[str, np.ndarray] = {"open": np.ones(len(opened), np.int64)}
    for j, s in enumerate(spec.stages[:-1]):
        ocols[f"open_{s}"] = (stage == j).astype(np.int64)
    opens = pd.DataFrame(ocols).groupby(oseg).sum().reindex(segments, fill_value=0)
    out = pd.concat([whole, opens], axis=1).astype(np.int64)
    out.loc["total"] = out.sum(axis=0)
    out.index.name = "segment"
    return out.astype(np.int64)


def pipeline_from_records(
    records: str | Path,
    spec_path: str | Path,
    as_of: dt.date,
    segments: Sequence[str],
    stages: Sequence[str],
) -> OpenUnits:
    """Open units of a records file at ``as_of``, mapped to assumption segments.

    Parameters
    ----------
    records : str or Path
        Records file (CSV or Parquet) read with the spec's mapping.
    spec_path : str or Path
        The funnel spec (``--model``).
    as_of : date
        Snapshot date (the plan's as-of date).
    segments : sequence of str
        The assumption segments, in file order (cell index = position).
    stages : sequence of str
        The assumption stages (must equal the spec's).

    Raises
    ------
    InputError
        Different stages, or a record segment missing from the assumptions.
    """
    from simengine.config.spec import load_spec
    from simengine.io.records import load_records

    spec = load_spec(spec_path)
    if tuple(spec.stages) != tuple(stages):
        raise InputError.single(
            spec_path,
            f"the spec's stages {list(spec.stages)} differ from the assumptions' {list(stages)}",
            column="stages",
        )
    df = load_records(records, spec)
    cells = tuple(sorted(set(cell_labels(df, spec))))
    ou = open_units(df, spec, as_of, cells)
    seg_of_cell = [c.split("/")[0] for c in cells]
    used = sorted({seg_of_cell[i] for i in np.unique(ou.cell)})
    missing = [s for s in used if s not in segments]
    if missing:
        raise InputError(
            [
                Issue(
                    str(records),
                    None,
                    spec.segment_by[0],
                    s,
                    f"segment not in the assumptions {list(segments)}",
                )
                for s in missing
            ],
            summary=f"open units of {records} do not fit the assumptions",
        )
    mapping = np.array(
        [list(segments).index(s) if s in segments else -1 for s in seg_of_cell], dtype=np.int64
    )
    return OpenUnits(
        cell=mapping[ou.cell] if len(ou) else np.zeros(0, np.int64),
        stage=ou.stage,
        age_days=ou.age_days,
        amount=ou.amount,
        ids=ou.ids,
    )

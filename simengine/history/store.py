"""The forecast history store: one DuckDB file of snapshots, their numbers and their deals.

A *snapshot* is one forecast of one plan period at one as-of date. Snapshots
of the same plan (same period, targets and spec) share a *plan key*; a
snapshot of another period, other targets or another spec gets its own plan
key, so no trend or movement ever mixes two plans.

Tables (schema version :data:`SCHEMA_VERSION`; ARCHITECTURE.md lists them):

``meta``
    ``key, value``: ``format = simengine-history`` and ``schema_version``.
``snapshots``
    one row per snapshot: ``snapshot_id, plan_key, created_at, as_of,
    period_start, period_end, targets`` (JSON), ``spec_sha256,
    data_sha256, posterior_sha256, plan_sha256, seed, paths, converged,
    source, realised`` (JSON: revenue won in the period by the as-of date,
    per segment and ``total``), ``label``.
``summary``
    ``snapshot_id, segment, metric, stat, value``: the forecast's
    ``summary.csv`` rows (realised-to-date included).
``fan_end``
    ``snapshot_id, segment, quantile, value``: revenue quantiles at the
    period end.
``open_units``
    ``snapshot_id, unit_id, segment, cell, stage, age_days, amount,
    p_win, p_win_in_period``: the open pipeline the snapshot started from;
    the probabilities are posterior means where the unit's next step is
    the last (closed form), NaN otherwise.
``movements``
    ``plan_key, from_snapshot, to_snapshot, segment, metric, step, value,
    se``: the waterfall between two snapshots of a plan
    (:mod:`simengine.history.movement`).

Writes are transactions. DuckDB lets one process at a time open a file for
writing, so every access takes an exclusive ``flock`` on ``PATH.lock`` first
(waiting up to ``timeout`` seconds): concurrent writers queue, and each
one's snapshot is kept. A writer killed before its commit leaves the store as
it was (DuckDB discards an uncommitted transaction's WAL entries). A new store
is built in a temporary sibling and renamed into place, so a writer killed
while creating it leaves no file. A file that is not a DuckDB database, or a
DuckDB database without the ``meta`` row of this format, is refused with an
:class:`~simengine.errors.InputError` and never written to.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from simengine.errors import InputError

__all__ = [
    "FORMAT",
    "OPEN_UNIT_COLUMNS",
    "SCHEMA_VERSION",
    "TABLES",
    "HistoryStore",
    "SnapshotRecord",
    "Writer",
    "plan_key",
]

OPEN_UNIT_COLUMNS = (
    "unit_id", "segment", "cell", "stage", "age_days", "amount", "p_win", "p_win_in_period",
)
"""Columns of the ``open_units`` table (after ``snapshot_id``)."""

FORMAT = "simengine-history"
SCHEMA_VERSION = "1"

_SCHEMA = {
    "meta": "key VARCHAR PRIMARY KEY, value VARCHAR",
    "snapshots": (
        "snapshot_id VARCHAR PRIMARY KEY, plan_key VARCHAR NOT NULL, created_at TIMESTAMP, "
        "as_of DATE NOT NULL, period_start DATE NOT NULL, period_end DATE NOT NULL, "
        "targets VARCHAR NOT NULL, spec_sha256 VARCHAR, data_sha256 VARCHAR, "
        "posterior_sha256 VARCHAR, plan_sha256 VARCHAR, seed BIGINT, paths BIGINT, "
        "converged BOOLEAN, source VARCHAR, realised VARCHAR, label VARCHAR"
    ),
    "summary": (
        "snapshot_id VARCHAR NOT NULL, segment VARCHAR, metric VARCHAR, stat VARCHAR, value DOUBLE"
    ),
    "fan_end": "snapshot_id VARCHAR NOT NULL, segment VARCHAR, quantile DOUBLE, value DOUBLE",
    "open_units": (
        "snapshot_id VARCHAR NOT NULL, unit_id VARCHAR, segment VARCHAR, cell VARCHAR, "
        "stage VARCHAR, age_days DOUBLE, amount DOUBLE, p_win DOUBLE, p_win_in_period DOUBLE"
    ),
    "movements": (
        "plan_key VARCHAR NOT NULL, from_snapshot VARCHAR NOT NULL, "
        "to_snapshot VARCHAR NOT NULL, segment VARCHAR, metric VARCHAR, step VARCHAR, "
        "value DOUBLE, se DOUBLE"
    ),
}
TABLES = tuple(_SCHEMA)
"""Table names, in creation order."""

_DUCKDB_MAGIC = b"DUCK"  # bytes 8..11 of every DuckDB database file


def plan_key(
    start: dt.date, end: dt.date, targets: dict[str, float], spec_sha256: str | None
) -> str:
    """Key of a plan: its period, targets and spec (16 hex digits of a SHA-256).

    Two snapshots share a key exactly when they forecast the same period
    against the same targets with the same spec, so their numbers compare.
    """
    body = json.dumps(
        {
            "start": start.isoformat(),
            "end": end.isoformat(),
            "targets": {k: float(v) for k, v in sorted(targets.items())},
            "spec": spec_sha256 or "",
        },
        sort_keys=True,
    )
    return hashlib.sha256(body.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SnapshotRecord:
    """One snapshot ready to be written.

    Parameters
    ----------
    snapshot_id : str
        Stable id (the same forecast recorded twice is recorded once).
    as_of, start, end : datetime.date
    targets : dict of str to float
        Per segment (``total`` is their sum).
    summary : DataFrame
        ``segment, metric, stat, value``.
    fan_end : DataFrame
        ``segment, quantile, value``.
    open_units : DataFrame
        ``unit_id, segment, cell, stage, age_days, amount, p_win,
        p_win_in_period`` (may be empty).
    realised : dict of str to float
        Revenue won in the period by the as-of date, per segment and total.
    spec_sha256, data_sha256, posterior_sha256, plan_sha256 : str or None
    seed, paths : int
    converged : bool or None
    source : str
        ``"posterior"`` or ``"assumptions"``.
    label : str
        Free text (e.g. the forecast folder it came from).
    """

    snapshot_id: str
    as_of: dt.date
    start: dt.date
    end: dt.date
    targets: dict[str, float]
    summary: pd.DataFrame
    fan_end: pd.DataFrame
    open_units: pd.DataFrame
    realised: dict[str, float]
    spec_sha256: str | None
    data_sha256: str | None
    posterior_sha256: str | None
    plan_sha256: str | None
    seed: int
    paths: int
    converged: bool | None
    source: str
    label: str = ""

    @property
    def plan_key(self) -> str:
        """Return the plan key of this snapshot (:func:`plan_key`)."""
        return plan_key(self.start, self.end, self.targets, self.spec_sha256)


class Writer:
    """An open write transaction on the store (from :meth:`HistoryStore.writer`)."""

    def __init__(self, con: Any) -> None:
        self._con = con

    def has_snapshot(self, snapshot_id: str) -> bool:
        """Whether a snapshot with this id is already recorded."""
        row = self._con.execute(
            "SELECT count(*) FROM snapshots WHERE snapshot_id = ?", [snapshot_id]
        ).fetchone()
        return bool(row and row[0])

    def add_snapshot(self, rec: SnapshotRecord) -> bool:
        """Insert a snapshot and its rows; False (nothing written) if its id is recorded."""
        if self.has_snapshot(rec.snapshot_id):
            return False
        self._con.execute(
            "INSERT INTO snapshots VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                rec.snapshot_id,
                rec.plan_key,
                dt.datetime.now(dt.UTC).replace(tzinfo=None),
                rec.as_of,
                rec.start,
                rec.end,
                json.dumps({k: float(v) for k, v in rec.targets.items()}, sort_keys=True),
                rec.spec_sha256,
                rec.data_sha256,
                rec.posterior_sha256,
                rec.plan_sha256,
                int(rec.seed),
                int(rec.paths),
                rec.converged,
                rec.source,
                json.dumps({k: float(v) for k, v in rec.realised.items()}, sort_keys=True),
                rec.label,
            ],
        )
        self._insert(
            "summary", rec.snapshot_id, rec.summary, ["segment", "metric", "stat", "value"]
        )
        self._insert("fan_end", rec.snapshot_id, rec.fan_end, ["segment", "quantile", "value"])
        self._insert(
            "open_units",
            rec.snapshot_id,
            rec.open_units,
            list(OPEN_UNIT_COLUMNS),
        )
        return True

    def has_movement(self, from_snapshot: str, to_snapshot: str) -> bool:
        """Whether the movement between these two snapshots is recorded."""
        row = self._con.execute(
            "SELECT count(*) FROM movements WHERE from_snapshot = ? AND to_snapshot = ?",
            [from_snapshot, to_snapshot],
        ).fetchone()
        return bool(row and row[0])

    def add_movement(
        self, key: str, from_snapshot: str, to_snapshot: str, rows: pd.DataFrame
    ) -> None:
        """Replace the movement rows ``segment, metric, step, value, se`` of one pair."""
        self._con.execute(
            "DELETE FROM movements WHERE from_snapshot = ? AND to_snapshot = ?",
            [from_snapshot, to_snapshot],
        )
        frame = rows[["segment", "metric", "step", "value", "se"]].copy()
        frame.insert(0, "to_snapshot", to_snapshot)
        frame.insert(0, "from_snapshot", from_snapshot)
        frame.insert(0, "plan_key", key)
        self._con.register("_rows", frame)
        try:
            self._con.execute("INSERT INTO movements SELECT * FROM _rows")
        finally:
            self._con.unregister("_rows")

    def _insert(self, table: str, sid: str, df: pd.DataFrame, cols: list[str]) -> None:
        if len(df) == 0:
            return
        frame = df[cols].copy()
        frame.insert(0, "snapshot_id", sid)
        self._con.register("_rows", frame)
        try:
            self._con.execute(f"INSERT INTO {table} SELECT * FROM _rows")
        finally:
            self._con.unregister("_rows")


class HistoryStore:
    """A forecast history store at ``path`` (see the module docstring).

    Parameters
    ----------
    path : Path
        The DuckDB file.
    timeout : float
        Seconds to wait for another process's lock before giving up.
    """

    def __init__(self, path: str | Path, *, timeout: float = 300.0) -> None:
        self.path = Path(path)
        self.timeout = timeout

    # ------------------------------------------------------------ checks
    def check(self, *, must_exist: bool = False) -> None:
        """Refuse a file that is not a history store (``InputError``); never writes.

        A missing file is fine (it is created on the first write) unless
        ``must_exist``.
        """
        p = self.path
        if not p.exists():
            if must_exist:
                raise InputError.single(p, "no history store here (record a snapshot first)")
            return
        if p.is_dir():
            raise InputError.single(p, "is a folder, not a history store file")
        try:
            with p.open("rb") as fh:
                head = fh.read(16)
        except OSError as exc:
            raise InputError.single(p, f"cannot read the store: {exc.strerror or exc}") from None
        if len(head) < 12 or head[8:12] != _DUCKDB_MAGIC:
            raise InputError.single(
                p,
                "not a simengine history store: not a DuckDB database file "
                "(refusing to overwrite it)",
            )
        import duckdb

        try:
            con = duckdb.connect(str(p), read_only=True)
        except duckdb.Error as exc:
            if _is_lock_error(exc):
                return  # another process is writing it; the locked access re-checks
            raise InputError.single(
                p, f"not a readable history store (corrupt DuckDB file?): {exc}"
            ) from None
        try:
            ok = _format_ok(con)
        finally:
            con.close()
        if not ok:
            raise InputError.single(
                p,
                f"a DuckDB database but not a simengine history store (no meta row "
                f"format={FORMAT!r}, schema_version={SCHEMA_VERSION!r}); refusing to write to it",
            )

    # ------------------------------------------------------------ locking
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        lock = self.path.with_name(self.path.name + ".lock")
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            deadline = time.monotonic() + self.timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise InputError.single(
                            self.path,
                            f"another process has held the store's lock for {self.timeout:.0f} s",
                        ) from None
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)  # releases the flock

    def _connect(self, *, read_only: bool) -> Any:
        """Connect, retrying while a process outside our lock holds DuckDB's own lock."""
        import duckdb

        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only)
            except duckdb.Error as exc:
                if not _is_lock_error(exc) or time.monotonic() > deadline:
                    raise InputError.single(self.path, f"cannot open the store: {exc}") from None
                time.sleep(0.1)

    def _create(self) -> None:
        """Create an empty store atomically (temporary sibling, then rename)."""
        import duckdb

        fd, name = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        os.close(fd)
        tmp = Path(name)
        tmp.unlink()  # DuckDB wants to create the file itself
        try:
            con = duckdb.connect(str(tmp))
            try:
                for table, cols in _SCHEMA.items():
                    con.execute(f"CREATE TABLE {table} ({cols})")
                con.execute(
                    "INSERT INTO meta VALUES ('format', ?), ('schema_version', ?)",
                    [FORMAT, SCHEMA_VERSION],
                )
                con.execute("CHECKPOINT")
            finally:
                con.close()
            os.chmod(tmp, 0o666 & ~_umask())
            if self.path.exists():  # created meanwhile by someone without our lock
                raise InputError.single(self.path, "appeared while the store was being created")
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
            Path(str(tmp) + ".wal").unlink(missing_ok=True)

    # ------------------------------------------------------------ access
    @contextlib.contextmanager
    def writer(self) -> Iterator[Writer]:
        """Open one write transaction (creating the store if needed); commit on success.

        An exception (or the process dying) before the end of the block
        leaves the store as it was.
        """
        self.check()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked():
            if not self.path.exists():
                self._create()
            self.check()
            con = self._connect(read_only=False)
            try:
                con.execute("BEGIN TRANSACTION")
                try:
                    yield Writer(con)
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                con.execute("COMMIT")
            finally:
                con.close()

    @contextlib.contextmanager
    def reader(self) -> Iterator[Any]:
        """Yield a read-only DuckDB connection to an existing store (under the lock)."""
        self.check(must_exist=True)
        with self._locked():
            con = self._connect(read_only=True)
            try:
                yield con
            finally:
                con.close()

    def record(self, rec: SnapshotRecord) -> bool:
        """Record one snapshot in its own transaction; False if it was already there."""
        with self.writer() as w:
            return w.add_snapshot(rec)

    def table(self, name: str, plan: str | None = None) -> pd.DataFrame:
        """One table as a DataFrame (optionally one plan's rows), in a stable order."""
        if name not in _SCHEMA:
            raise ValueError(f"unknown table {name!r}; tables are {TABLES}")
        with self.reader() as con:
            if name in ("meta",):
                return con.execute("SELECT * FROM meta ORDER BY key").df()
            if name in ("snapshots", "movements"):
                where = "WHERE plan_key = ?" if plan else ""
                order = (
                    "as_of, created_at, snapshot_id"
                    if name == "snapshots"
                    else "from_snapshot, to_snapshot, segment, metric"
                )
                return con.execute(
                    f"SELECT * FROM {name} {where} ORDER BY {order}",
                    [plan] if plan else [],
                ).df()
            where = (
                "WHERE t.snapshot_id IN (SELECT snapshot_id FROM snapshots WHERE plan_key = ?)"
                if plan
                else ""
            )
            return con.execute(
                f"SELECT t.* FROM {name} t {where} ORDER BY t.snapshot_id",
                [plan] if plan else [],
            ).df()

    def snapshots(self) -> pd.DataFrame:
        """Every snapshot, oldest as-of first."""
        return self.table("snapshots")

    def export_parquet(self, out_dir: str | Path) -> list[Path]:
        """Write every table as ``out_dir/<table>.parquet`` (atomically, each)."""
        from simengine.io.atomic import atomic_file

        out = Path(out_dir)
        written = []
        for name in TABLES:
            df = self.table(name)
            with atomic_file(out / f"{name}.parquet", force=True) as tmp:
                df.to_parquet(tmp, index=False)
            written.append(out / f"{name}.parquet")
        return written


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text and ("conflicting" in text or "could not set" in text)


def _format_ok(con: Any) -> bool:
    try:
        rows = dict(con.execute("SELECT key, value FROM meta").fetchall())
    except Exception:
        return False
    return rows.get("format") == FORMAT and rows.get("schema_version") == SCHEMA_VERSION

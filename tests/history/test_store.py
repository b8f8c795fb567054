"""The history store: transactions, a killed writer, concurrent writers, plan keys, foreign files."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from simengine.cli import main
from simengine.errors import InputError
from simengine.history.store import HistoryStore

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import world  # noqa: E402


def _script(tmp: Path, body: str) -> Path:
    p = tmp / "writer.py"
    p.write_text(
        "import sys, time, datetime as dt\nfrom pathlib import Path\n"
        f"sys.path.insert(0, {str(HERE)!r})\nimport world\n"
        "from simengine.history.store import HistoryStore\n" + textwrap.dedent(body),
        encoding="utf-8",
    )
    return p


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_record_roundtrip_and_dedupe(tmp_path):
    store = HistoryStore(tmp_path / "h.duckdb")
    rec = world.record("s1", dt.date(2017, 7, 1))
    assert store.record(rec) is True
    assert store.record(rec) is False  # same id: recorded once
    snaps = store.snapshots()
    assert list(snaps["snapshot_id"]) == ["s1"]
    assert len(store.table("summary")) == len(rec.summary)
    units = store.table("open_units")
    assert list(units["unit_id"]) == ["a", "b"]
    assert units["p_win"].tolist() == [0.3, 0.4]
    out = store.export_parquet(tmp_path / "pq")
    assert {p.name for p in out} >= {"snapshots.parquet", "open_units.parquet"}


def test_failed_transaction_leaves_store_unchanged(tmp_path):
    store = HistoryStore(tmp_path / "h.duckdb")
    store.record(world.record("s1", dt.date(2017, 7, 1)))
    with pytest.raises(RuntimeError), store.writer() as w:
        w.add_snapshot(world.record("s2", dt.date(2017, 7, 15)))
        raise RuntimeError("boom")
    assert list(store.snapshots()["snapshot_id"]) == ["s1"]
    assert set(store.table("summary")["snapshot_id"]) == {"s1"}


def test_killed_writer_leaves_store_as_it_was(tmp_path):
    path = tmp_path / "h.duckdb"
    store = HistoryStore(path)
    store.record(world.record("s1", dt.date(2017, 7, 1)))
    before = {t: store.table(t) for t in ("snapshots", "summary", "fan_end", "open_units")}
    flag = tmp_path / "inside"
    script = _script(
        tmp_path,
        f"""
        with HistoryStore({str(path)!r}).writer() as w:
            w.add_snapshot(world.record("s2", dt.date(2017, 7, 15)))
            Path({str(flag)!r}).touch()
            time.sleep(600)
        """,
    )
    proc = subprocess.Popen([sys.executable, str(script)])
    try:
        deadline = time.monotonic() + 120
        while not flag.exists():
            assert proc.poll() is None, "the writer died before writing"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # mid-transaction, after the inserts
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    for t, df in before.items():
        after = store.table(t)
        assert after.drop(columns=["created_at"], errors="ignore").equals(
            df.drop(columns=["created_at"], errors="ignore")
        ), t
    # and the store still takes writes
    assert store.record(world.record("s3", dt.date(2017, 8, 1)))
    assert list(store.snapshots()["snapshot_id"]) == ["s1", "s3"]


def test_two_concurrent_writer_processes_both_kept(tmp_path):
    path = tmp_path / "h.duckdb"  # created by whichever writer gets the lock first
    go = tmp_path / "go"
    procs = []
    for name in ("a", "b"):
        script = _script(
            tmp_path,
            f"""
            while not Path({str(go)!r}).exists():
                time.sleep(0.01)
            store = HistoryStore({str(path)!r})
            for i in range(4):
                store.record(world.record("{name}%d" % i, dt.date(2017, 7, 1 + i)))
            """,
        ).rename(tmp_path / f"writer_{name}.py")
        procs.append(subprocess.Popen([sys.executable, str(script)], stderr=subprocess.PIPE))
    go.touch()
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()[-2000:]
    ids = sorted(HistoryStore(path).snapshots()["snapshot_id"])
    assert ids == sorted([f"{n}{i}" for n in "ab" for i in range(4)])


def test_mismatched_plan_or_spec_kept_under_its_own_key(tmp_path):
    store = HistoryStore(tmp_path / "h.duckdb")
    store.record(world.record("q3", dt.date(2017, 7, 1)))
    store.record(world.record("q3b", dt.date(2017, 8, 1)))
    store.record(world.record("other-end", dt.date(2017, 8, 1), end=dt.date(2017, 10, 31)))
    store.record(world.record("other-target", dt.date(2017, 8, 1), {"east": 1.0, "west": 2.0}))
    store.record(world.record("other-spec", dt.date(2017, 8, 1), spec_sha="spec-b"))
    keys = store.snapshots().set_index("snapshot_id")["plan_key"]
    assert keys["q3"] == keys["q3b"]
    others = [keys[k] for k in ("other-end", "other-target", "other-spec")]
    assert len({keys["q3"], *others}) == 4
    from simengine.history.report import trend_table

    tt = trend_table(store)
    # differences are taken within a plan only: each other plan's single snapshot has no change
    assert tt[tt["plan_key"].isin(others)]["d_p50"].isna().all()
    assert tt[(tt["plan_key"] == keys["q3"])]["d_p50"].notna().sum() == 3


@pytest.mark.parametrize("content", [b"", b"hello, not a database\n" * 10, os.urandom(8192)])
def test_corrupt_file_is_refused_and_untouched(tmp_path, content, capsys):
    p = tmp_path / "store.duckdb"
    p.write_bytes(content)
    sha = _sha(p)
    with pytest.raises(InputError, match="not a simengine history store"):
        HistoryStore(p).record(world.record("s1", dt.date(2017, 7, 1)))
    assert main(["history", "list", "--store", str(p)]) == 2
    assert "not a simengine history store" in capsys.readouterr().err
    assert _sha(p) == sha
    assert not (tmp_path / "store.duckdb.wal").exists()


def test_foreign_duckdb_file_is_refused_and_untouched(tmp_path, capsys):
    p = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(p))
    con.execute("CREATE TABLE sales (x INTEGER)")
    con.execute("INSERT INTO sales VALUES (1), (2)")
    con.close()
    sha = _sha(p)
    with pytest.raises(InputError, match="DuckDB database but not a simengine history store"):
        HistoryStore(p).record(world.record("s1", dt.date(2017, 7, 1)))
    assert main(["history", "list", "--store", str(p)]) == 2
    assert _sha(p) == sha
    con = duckdb.connect(str(p), read_only=True)
    assert con.execute("SELECT count(*) FROM sales").fetchone() == (2,)
    assert con.execute("SELECT count(*) FROM information_schema.tables").fetchone() == (1,)
    con.close()


def test_missing_store_for_reading_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no history store here"):
        HistoryStore(tmp_path / "nope.duckdb").snapshots()

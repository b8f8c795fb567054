"""Fixtures of the history tests: the small world (records, spec, plan)."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import world


@pytest.fixture(scope="session")
def wspec(tmp_path_factory):
    return world.spec(tmp_path_factory.mktemp("spec"))


@pytest.fixture(scope="session")
def wrecords():
    return world.records()


@pytest.fixture(scope="session")
def store(wrecords, wspec, tmp_path_factory):
    """A store with two snapshots of the world's plan and the movement between them."""
    from simengine.history.movement import waterfall, with_recorded
    from simengine.history.realised import realised_to_date, simulate_to_date
    from simengine.history.record import open_unit_table, snapshot_from_forecast
    from simengine.history.store import HistoryStore

    hs = HistoryStore(tmp_path_factory.mktemp("store") / "h.duckdb")
    plan = world.plan()
    segs = list(world.SEGMENTS)
    runs, ids, params = [], [], []
    for i, d in enumerate((dt.date(2017, 7, 15), dt.date(2017, 8, 15))):
        p = world.params(wrecords, wspec, d, seed=i)
        run = simulate_to_date(
            p, plan, realised_to_date(wrecords, wspec, plan, d, segs), paths=4000, seed=20 + i
        )
        rec = snapshot_from_forecast(
            run.forecast,
            spec_sha256=wspec.sha256,
            open_units=open_unit_table(p, plan.start, plan.end),
        )
        assert hs.record(rec)
        runs.append(run)
        ids.append(rec.snapshot_id)
        params.append(p)

    def recorded(run):
        return {
            (s, m): (run.value(s, *k), run.se(s, m))
            for s in run.segments
            for m, k in (
                ("revenue_p50", ("revenue", "p50")),
                ("prob_hit", ("attainment", "prob_hit")),
            )
        }

    rows = waterfall(wrecords, wspec, plan, params[0], params[1], paths=4000, seed=7)
    rows = with_recorded(rows, recorded(runs[0]), recorded(runs[1]))
    key = hs.snapshots()["plan_key"].iloc[0]
    with hs.writer() as w:
        w.add_movement(key, ids[0], ids[1], rows)
    return hs

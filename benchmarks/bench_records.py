"""Seconds to load and check a 1,000,000-row records file (CSV and Parquet).

The file is valid canonical records of a 3-stage funnel (mql > sql > won),
written once per session to a temporary folder; each round is one full
``load_records`` call (read, parse, pandera schema, cross-column rules).

Run with pytest-benchmark::

    .venv/bin/python -m pytest benchmarks/bench_records.py --benchmark-only \
        --benchmark-columns=min,median,rounds
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simengine.config.spec import parse_spec
from simengine.io.records import load_records

N_ROWS = 1_000_000
SPEC = parse_spec(
    'stages = ["mql", "sql", "won"]\nsegment_by = ["segment", "channel"]\npipeline_stage = "sql"\n'
)


def _records(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    entry = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, n), "D")
    sql = entry + pd.to_timedelta(rng.integers(0, 30, n), "D")
    won = sql + pd.to_timedelta(rng.integers(0, 60, n), "D")
    reach = rng.integers(0, 3, n)
    is_won = reach == 2
    lost = ~is_won & (rng.random(n) < 0.5)
    return pd.DataFrame(
        {
            "id": [f"u{i}" for i in range(n)],
            "segment": rng.choice(["smb", "mid", "ent"], n),
            "channel": rng.choice(["web", "event"], n),
            "mql_at": entry.strftime("%Y-%m-%d"),
            "sql_at": pd.Series(sql.strftime("%Y-%m-%d")).where(reach >= 1, ""),
            "won_at": pd.Series(won.strftime("%Y-%m-%d")).where(is_won, ""),
            "lost_at": pd.Series(won.strftime("%Y-%m-%d")).where(lost, ""),
            "amount": pd.Series(np.round(rng.lognormal(8, 1, n)).astype(str)).where(is_won, ""),
        }
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("records")
    df = _records(N_ROWS)
    csv = folder / "records.csv"
    df.to_csv(csv, index=False)
    pq = folder / "records.parquet"
    load_records(csv, SPEC).to_parquet(pq)
    return csv, pq


def test_load_records_csv_1m(benchmark, files):
    out = benchmark.pedantic(load_records, args=(files[0], SPEC), rounds=3, iterations=1)
    assert len(out) == N_ROWS


def test_load_records_parquet_1m(benchmark, files):
    out = benchmark.pedantic(load_records, args=(files[1], SPEC), rounds=3, iterations=1)
    assert len(out) == N_ROWS

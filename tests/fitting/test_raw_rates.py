"""Trailing raw rates on a hand-made table (counts checked by hand)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from simengine.config.spec import parse_spec
from simengine.fitting.raw_rates import raw_rates

SPEC = parse_spec(
    'stages = ["mql", "sql", "won"]\nsegment_by = ["segment"]\npipeline_stage = "sql"\n'
)
AS_OF = dt.date(2026, 3, 31)


def _df() -> pd.DataFrame:
    t = pd.Timestamp
    rows = [
        # id, segment, mql_at, sql_at, won_at, lost_at, amount
        ("a", "x", t("2026-03-01"), t("2026-03-05"), t("2026-03-20"), pd.NaT, 100.0),
        ("b", "x", t("2026-03-10"), t("2026-04-02"), pd.NaT, pd.NaT, np.nan),  # sql after as-of
        ("c", "x", t("2025-11-01"), pd.NaT, pd.NaT, t("2025-12-01"), np.nan),  # outside 91 days
        ("d", "x", t("2026-03-15"), pd.NaT, pd.NaT, pd.NaT, np.nan),  # open
        ("e", "y", t("2026-04-05"), pd.NaT, pd.NaT, pd.NaT, np.nan),  # enters after as-of
        ("f", "y", t("2026-02-01"), t("2026-02-02"), pd.NaT, t("2026-03-01"), np.nan),
    ]
    df = pd.DataFrame(
        rows, columns=["id", "segment", "mql_at", "sql_at", "won_at", "lost_at", "amount"]
    )
    for c in ("mql_at", "sql_at", "won_at", "lost_at"):
        df[c] = df[c].astype("datetime64[ns]")
    return df


def test_raw_rates_by_hand():
    df = _df()
    before = df.copy()
    r13 = raw_rates(df, SPEC, AS_OF, 91).set_index(["cell", "step"])
    pd.testing.assert_frame_equal(df, before)
    # x, sql: a, b, d entered mql within 91 days; only a reached sql by as-of
    assert tuple(r13.loc[("x", "sql"), ["entered", "converted"]]) == (3, 1)
    assert r13.loc[("x", "sql"), "rate"] == 1 / 3
    # x, won: only a entered sql (b's sql is after as-of)
    assert tuple(r13.loc[("x", "won"), ["entered", "converted"]]) == (1, 1)
    # y: e entered after as-of and is ignored; f converted to sql then was lost
    assert tuple(r13.loc[("y", "sql"), ["entered", "converted"]]) == (1, 1)
    assert tuple(r13.loc[("y", "won"), ["entered", "converted"]]) == (1, 0)
    r4q = raw_rates(df, SPEC, AS_OF, 364).set_index(["cell", "step"])
    assert tuple(r4q.loc[("x", "sql"), ["entered", "converted"]]) == (4, 1)  # c now inside
    empty = raw_rates(df, SPEC, AS_OF, 1).set_index(["cell", "step"])
    assert np.isnan(empty.loc[("x", "won"), "rate"])

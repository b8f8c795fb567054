"""history.html and its tables, from a store with two snapshots and their movement."""

from __future__ import annotations

import html
import json
import re

import pandas as pd
import pytest

from simengine.history.report import trend_table, write_history_report


def test_trend_table_one_row_per_snapshot_and_segment(store):
    tt = trend_table(store)
    assert len(tt) == 2 * 3
    tot = tt[tt["segment"] == "total"].sort_values("as_of")
    assert tot["realised"].is_monotonic_increasing  # more won by the later date
    assert (tot["p10"] <= tot["p50"]).all()
    assert (tot["p50"] <= tot["p90"]).all()
    assert tot["d_p50"].iloc[1] == pytest.approx(tot["p50"].iloc[1] - tot["p50"].iloc[0])
    # the band narrows as the period is realised
    width = (tot["p90"] - tot["p10"]).to_numpy()
    assert width[1] < width[0]
    units = store.table("open_units")
    assert units["p_win"].between(0, 1).all()
    assert (units["p_win_in_period"] <= units["p_win"] + 1e-12).all()


def test_report_page_and_parquet(store, tmp_path):
    page = write_history_report(store, tmp_path / "rep")
    text = page.read_text(encoding="utf-8")
    for needle in (
        "Forecast trend",
        "Variance to plan",
        "What moved the number",
        "revenue won",
        "new pipeline",
        "refit",
        "MC residual",
    ):
        assert needle in text, needle
    imgs = re.findall(r'<img src="data:image/png;base64,', text)
    assert len(imgs) == 3
    assert "http://" not in text
    assert "https://" not in text
    for name in ("variance", "waterfall", "fan_end"):
        df = pd.read_parquet(tmp_path / "rep" / f"{name}.parquet")
        assert len(df) > 0, name
    # the page is escaped text: a segment name is rendered, never raw HTML
    assert html.escape("P50 − target") in text or "P50 − target" in text
    assert json.loads(store.snapshots()["realised"].iloc[1])["total"] > 0

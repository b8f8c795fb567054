"""Revenue by source: the table the report and the export show, checked against the paths.

The forecast is built by ``report_sim`` from paths simulated here, with each
path's revenue split into sources that add up to it (``with_sources``), so
every number of :func:`sources_table` has an exact reference: the mean and
quantiles of that source's own paths. No tolerance beyond float rounding is
needed (the table copies the forecast's statistics; the test recomputes them
from the paths).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from report_sim import SOURCE_SHARES, source_paths, with_sources, write_forecast_dir

from simengine.report.export import SCHEMAS, export_tables, write_exports
from simengine.report.html import build_report
from simengine.report.sources import COLUMNS, sources_table


@pytest.fixture(scope="module")
def sourced(forecast_ds, sim_paths):
    return with_sources(forecast_ds, sim_paths)


def test_table_matches_the_paths(sourced, sim_paths):
    table = sources_table(sourced)
    assert table is not None
    assert tuple(table.columns) == COLUMNS
    assert list(dict.fromkeys(table.segment)) == ["smb", "mid", "ent", "total"]
    for k, seg in enumerate(["smb", "mid", "ent"]):
        part = table[table.segment == seg].set_index("source")
        # existing pipeline first; sql (nobody enters there) left out
        assert part.index.tolist() == ["open", "new_mql", "new_opportunity"]
        rev = sim_paths.cum[seg][:, sim_paths.end_offset]
        paths = source_paths(rev, seed=k)
        for src in part.index:
            x = paths[src]
            assert part.loc[src, "mean"] == pytest.approx(x.mean(), rel=1e-12)
            assert part.loc[src, "p10"] == pytest.approx(np.quantile(x, 0.1), rel=1e-12)
            assert part.loc[src, "p90"] == pytest.approx(np.quantile(x, 0.9), rel=1e-12)
        # the means add up to the mean revenue (each won deal in one source)
        assert part["mean"].sum() == pytest.approx(rev.mean(), rel=1e-12)
        assert part["share_of_mean_revenue"].sum() == pytest.approx(1.0, rel=1e-12)
        # the bands are each source's own: they do not add up to revenue's band
        assert part["p10"].sum() < np.quantile(rev, 0.1)
    labels = table.drop_duplicates("source").set_index("source")
    assert labels.loc["open", "origin"] == "existing pipeline"
    assert labels.loc["new_mql", "channel"] == "marketing"
    assert labels.loc["new_opportunity", "channel"] == "sales"
    assert SOURCE_SHARES["new_sql"] == 0  # the omitted source is the empty one


def test_a_sales_stage_entry_is_sales_sourced_even_before_the_pipeline(sourced):
    """Any entry after the first stage is sales-sourced (sql here, once units enter it)."""
    ds = sourced.copy(deep=True)
    ds["summary"].loc[{"metric": "revenue_from_new_sql", "stat": "mean"}] = 1.0
    table = sources_table(ds)
    assert table is not None
    row = table[(table.segment == "smb") & (table.source == "new_sql")].iloc[0]
    assert (row.origin, row.channel) == ("new", "sales")
    assert row.label == "new, sales-sourced (entering at sql)"


def test_no_sources_in_an_older_forecast(forecast_ds, tmp_path: Path):
    assert sources_table(forecast_ds) is None
    assert "sources" not in export_tables(forecast_ds)
    html = build_report(write_forecast_dir(forecast_ds, tmp_path / "fc"))
    assert 'id="sources"' not in html


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_export_sources_table(sourced, tmp_path: Path, fmt: str):
    fdir = write_forecast_dir(sourced, tmp_path / "fc")
    out = write_exports(fdir, fmt)
    if fmt == "parquet":
        t = pq.read_table(out / "sources.parquet")
        assert t.schema.equals(SCHEMAS["sources"], check_metadata=False)
        df = t.to_pandas()
    else:
        df = pd.read_csv(out / "sources.csv", keep_default_na=False)
    expected = sources_table(sourced)
    assert expected is not None
    assert list(df.columns) == list(COLUMNS)
    assert df["source"].tolist() == expected["source"].tolist()
    np.testing.assert_allclose(df["mean"].astype(float), expected["mean"], rtol=1e-9)
    np.testing.assert_allclose(df["p90"].astype(float), expected["p90"], rtol=1e-9)
    assert set(df.loc[df.source == "open", "channel"]) == {""}


def test_report_section_shows_the_split_with_bands(sourced, tmp_path: Path):
    from simengine.report import format as fmt

    html = build_report(write_forecast_dir(sourced, tmp_path / "fc"))
    sec = html[html.index('<section id="sources">'):]
    sec = sec[: sec.index("</section>")]
    table = sources_table(sourced)
    assert table is not None
    tot = table[table.segment == "total"].set_index("source")
    for src in ("open", "new_mql", "new_opportunity"):
        band = f"{fmt.money(tot.loc[src, 'p10'])} – {fmt.money(tot.loc[src, 'p90'])}"
        assert band in sec, (src, band)
    # the split row: existing pipeline vs new deals, marketing vs sales, with shares
    new = tot.loc[["new_mql", "new_opportunity"]]
    share = new["share_of_mean_revenue"].sum()
    assert f"{fmt.money(new['mean'].sum())} ({fmt.percent(share)})" in sec
    assert f"{fmt.money(tot.loc['new_mql', 'mean'])} (" in sec
    assert sec.count("data:image/png;base64,") == 1  # the total's chart


def test_engine_forecast_sources_add_up_and_render(tmp_path: Path):
    """A real engine forecast (assumptions + open deals): its sources as the report shows them.

    The engine's contract: every won deal counts in exactly one source, so
    the sources' means add up to the mean revenue (up to float rounding).
    Units enter at mql and opportunity only, so sql is no source; open
    units make the existing pipeline's share positive.
    """
    import datetime as dt

    from simengine.config.assumptions import parse_assumptions
    from simengine.config.plan import Plan
    from simengine.engine import simulate
    from simengine.params import OpenUnits

    text = """
stages = ["mql", "sql", "opportunity", "won"]
as_of = 2027-01-04
[segments.smb]
new_per_week = { mql = 120.0, opportunity = 3.0 }
conversion = { sql = [0.3, 0.0], opportunity = [0.5, 0.0], won = [0.3, 0.0] }
delay_days = { sql = [4.0, 0.5], opportunity = [8.0, 0.5], won = [20.0, 0.5] }
deal_size = [10000.0, 0.3]
"""
    ou = OpenUnits(cell=np.zeros(40, np.int64), stage=np.full(40, 2, np.int64),
                   age_days=np.arange(40, dtype=np.float64), amount=np.full(40, np.nan))
    params = parse_assumptions(text, n_draws=20, pipeline=ou)
    start = dt.date(2027, 1, 4)
    plan = Plan(start=start, end=start + dt.timedelta(days=90), as_of=start,
                targets={"smb": 5e5}, text="t")
    fc = simulate(params, plan, paths=2000, seed=5, block_size=500, threads=1)
    fc.write(tmp_path / "fc")
    table = sources_table(fc.dataset)
    assert table is not None
    smb = table[table.segment == "smb"].set_index("source")
    assert smb.index.tolist() == ["open", "new_mql", "new_opportunity"]
    revenue = float(fc.dataset["summary"].sel(segment="smb", metric="revenue", stat="mean"))
    assert smb["mean"].sum() == pytest.approx(revenue, rel=1e-9)
    assert (smb["mean"] > 0).all()
    assert smb.loc["new_mql", "channel"] == "marketing"
    assert smb.loc["new_opportunity", "channel"] == "sales"
    html = build_report(tmp_path / "fc")
    assert "new, marketing-sourced (entering at mql)" in html
    assert "existing pipeline (open at the as-of date)" in html

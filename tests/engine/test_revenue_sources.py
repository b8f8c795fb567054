"""Revenue by source: ``revenue_from_open`` + ``revenue_from_new_<entry_stage>`` = ``revenue``.

Deterministic identities, no statistical tolerance: every deal won in the
period is counted in exactly one source, so path by path the sources add up
to the period's revenue (up to floating-point rounding of two summation
orders: relative 1e-12, while one misattributed or dropped deal moves the sum
by a whole amount, >= 1e-3 of the revenue here), and so do their means in
the merged summary and in ``summary.csv``. Each source is checked to be
non-trivial (a positive mean) where it has units and exactly 0 where it has
none, so the sum cannot hold by every source being 0. Whether each source
has the right *law* is checked against the independent NumPy reference in
``tests/engine/test_reference.py`` (every scalar, the sources included).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from engine_helpers import loss_params, make_params, make_plan, random_open_units

from simengine.engine import prepare, run_paths, simulate
from simengine.engine.blocks import scalar_names

RTOL = 1e-12
STAGES = ("mql", "sql", "opportunity", "won")
SOURCES = [
    "revenue_from_open",
    "revenue_from_new_mql",
    "revenue_from_new_sql",
    "revenue_from_new_opportunity",
]


_params = loss_params  # marketing-sourced MQLs, sales-sourced opportunities, a loss law


def _plan():
    return make_plan(target=400_000.0, start_delay_days=7, horizon_days=120)


def _sources(scalars: np.ndarray) -> np.ndarray:
    names = scalar_names(STAGES)
    return scalars[..., [names.index(s) for s in SOURCES]]


def test_scalar_names_put_the_sources_after_the_counts() -> None:
    assert scalar_names(STAGES)[-4:] == SOURCES
    assert scalar_names(STAGES)[:4] == ["revenue", "attainment", "coverage", "won_deals"]


def test_sources_add_up_to_revenue_path_by_path() -> None:
    pm = run_paths(prepare(_params(), _plan()), 0, 2_000, seed=5)
    rev = pm.scalars[..., 0]
    src = _sources(pm.scalars)
    gap = np.abs(src.sum(axis=-1) - rev)
    assert np.all(gap <= RTOL * rev), gap.max()
    total = src[:, -1, :]
    assert total[:, 0].mean() > 0  # open units win in the period
    assert total[:, 1].mean() > 0  # marketing-sourced (mql)
    assert total[:, 3].mean() > 0  # sales-sourced (opportunity)
    assert np.all(src[..., 2] == 0.0)  # nobody enters at sql
    # the total row is the sum of the segments' rows
    np.testing.assert_allclose(src[:, :-1, :].sum(axis=1), total, rtol=RTOL, atol=0.0)
    # power of the identity: leaving out any one source breaks it on many paths
    for j in (0, 1, 3):
        short = src[:, -1, :].sum(axis=-1) - src[:, -1, j]
        assert np.mean(np.abs(short - rev[:, -1]) > RTOL * rev[:, -1]) > 0.2, j


def test_without_open_units_or_arrivals_one_source_is_everything() -> None:
    only_new = make_params(rate=(20.0, 0.0, 1.5), pipeline_stage=1)
    pm = run_paths(prepare(only_new, _plan()), 0, 500, seed=6)
    src = _sources(pm.scalars)
    assert np.all(src[..., 0] == 0.0)
    assert pm.scalars[:, -1, 0].mean() > 0
    only_open = make_params(
        rate=0.0, pipeline_stage=1, open_units=random_open_units(300, 6, 3, seed=2)
    )
    pm = run_paths(prepare(only_open, _plan()), 0, 500, seed=6)
    src = _sources(pm.scalars)
    assert np.all(src[..., 1:] == 0.0)
    rev = pm.scalars[..., 0]
    assert np.all(np.abs(src[..., 0] - rev) <= RTOL * rev)
    assert pm.scalars[:, -1, 0].mean() > 0


def test_source_means_add_up_to_the_revenue_mean_in_summary_csv(tmp_path: Path) -> None:
    """Merged over blocks and threads, written and read back: means add up (relative 1e-12)."""
    fc = simulate(_params(), _plan(), paths=3_000, seed=8, block_size=700, threads=2)
    fc.write(tmp_path / "out")
    df = pd.read_csv(tmp_path / "out" / "summary.csv")
    value = {(r.segment, r.metric, r.stat): r.value for r in df.itertuples()}
    for seg in ("smb", "mid", "ent", "total"):
        mean = value[seg, "revenue", "mean"]
        parts = [value[seg, m, "mean"] for m in SOURCES]
        assert abs(sum(parts) - mean) <= RTOL * mean, (seg, parts, mean)
        for m in SOURCES:  # every stat of a scalar metric is there
            stats = set(df.stat[(df.segment == seg) & (df.metric == m)])
            assert stats == {"mean", "sd", "p05", "p10", "p25", "p50", "p75", "p90", "p95"}
    ds = fc.dataset
    assert {*SOURCES} <= {str(m) for m in ds["metric"].values}

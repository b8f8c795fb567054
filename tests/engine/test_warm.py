"""``python -m simengine.engine.warm`` fills Numba's cache with the engine's kernels."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from simengine.engine import plan_blocks, prepare, run_block, run_paths
from simengine.engine.warm import tiny_problem


def test_tiny_problem_is_a_real_problem():
    """The warm-up block simulates: the open unit and the arrivals give entries and wins.

    The block's summary is the summary of the same paths from ``run_paths``
    (counts and means, exactly up to rounding); lead entries and won deals are
    positive on average; and revenue obeys Wald's identity, E[revenue] =
    E[won deals] * E[deal size] with deal size lognormal(1, 0.5), mean
    exp(1.125): within 4 standard errors of the per-path difference
    (two-sided, alpha 6e-5).
    """
    params, plan = tiny_problem()
    prepared = prepare(params, plan)
    out = run_block(prepared, plan_blocks(2000, 2000)[0], 3)
    paths = run_paths(prepared, 0, 2000, 3)
    assert out.n == 2000
    total = prepared.n_segments  # the "total" row (segments then total)
    scal = paths.scalars[:, total, :]
    np.testing.assert_array_equal(out.welford[total, :, 0], 2000)
    np.testing.assert_allclose(out.welford[total, :, 1], scal.mean(axis=0), rtol=1e-9, atol=1e-12)
    revenue, won, lead_entries = scal[:, 0], scal[:, 3], scal[:, 4]
    assert lead_entries.mean() > 0.5  # about two arrivals a path (one a week, two weeks)
    assert won.mean() > 0.5  # the open unit and the arrivals win at 0.5 each
    d = revenue - won * np.exp(1.0 + 0.5**2 / 2)
    assert abs(d.mean()) <= 4 * d.std(ddof=1) / np.sqrt(d.size), d.mean()


def test_warm_process_writes_the_kernels_to_an_empty_cache(tmp_path):
    """A cold ``python -m simengine.engine.warm`` compiles and writes index and data files."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "simengine.engine.warm"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    index = list(tmp_path.rglob("*.nbi"))
    data = list(tmp_path.rglob("*.nbc"))
    assert any("_kernels" in p.name for p in index), sorted(p.name for p in index)[:10]
    assert len(data) >= len(index) > 0

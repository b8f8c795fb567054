"""Monte Carlo batches: every batch holds every draw's paths in the same proportion.

Batch-means errors (``simengine.planning._runs``) estimate the error of a
run given its posterior draws only if no batch leans on some draws; these
tests pin the batch index (``_kernels._batch_of``) and the per-batch
accumulators of ``BlockSummary`` against the per-path metrics.
"""

from __future__ import annotations

import numpy as np
import pytest
from engine_helpers import make_params, make_plan, random_open_units

from simengine.engine import merge_summaries, plan_blocks, prepare, run_block, run_paths
from simengine.engine._kernels import _batch_of, _draw_of
from simengine.engine._sketch import NBINS, bin_index
from simengine.engine.simulate import run_blocks


def _table(n: int, n_draws: int, n_batches: int, grouped: int) -> np.ndarray:
    """Paths of each (batch, draw) of a run of ``n``."""
    out = np.zeros((n_batches, n_draws), np.int64)
    for i in range(n):
        d = _draw_of(np.int64(i), np.int64(n), n_draws, grouped)
        b = _batch_of(np.int64(i), np.int64(n), n_draws, grouped, n_batches)
        out[b, d] += 1
    return out


@pytest.mark.parametrize("grouped", [1, 0])
def test_every_batch_holds_every_draw_in_the_same_proportion(grouped: int) -> None:
    """Each batch has floor or ceil of a draw's paths / batches, exhaustively.

    A batch made of a range of paths (a block) fails this whenever a block
    holds fewer paths than the run's draws times the batches' share (e.g.
    n = 2000, D = 6, B = 10: a block of 200 paths meets one or two draws).
    """
    for n, n_draws, n_batches in (
        (2000, 6, 10),
        (2000, 4000, 10),
        (1000, 7, 3),
        (999, 10, 20),
        (120, 4, 5),
        (37, 5, 2),
        (5000, 40, 16),
    ):
        t = _table(n, n_draws, n_batches, grouped)
        per_draw = t.sum(axis=0)  # m_d
        assert per_draw.sum() == n
        lo = per_draw // n_batches
        hi = -(-per_draw // n_batches)
        assert np.all((t >= lo) & (t <= hi)), (n, n_draws, n_batches)
        # batches are equal to one path
        sizes = t.sum(axis=1)
        assert sizes.max() - sizes.min() <= 1
    # the mutation the docstring names: batches as ranges of paths lean on draws
    n, n_draws, n_batches = 2000, 6, 10
    blocks = np.zeros((n_batches, n_draws), np.int64)
    for i in range(n):
        blocks[i * n_batches // n, _draw_of(np.int64(i), np.int64(n), n_draws, 1)] += 1
    assert np.any(blocks < blocks.sum(axis=0) // n_batches)


def _params():
    return make_params(
        draws=7,
        rate=(10.0, 0.0, 0.5),
        dispersion=0.2,
        conversion_sd=0.05,
        open_units=random_open_units(50, 6, 3),
    )


def test_batch_accumulators_are_the_paths_of_each_batch() -> None:
    """Per-batch sketches, hits, time-to-target counts and moments match the paths.

    And they add up to the run's own arrays, whatever the block size, and
    are bitwise the same on 1 or 2 threads.
    """
    pr = prepare(_params(), make_plan(target=200_000.0))
    n, n_batches, seed = 900, 4, 5
    pm = run_paths(pr, 0, n, seed=seed)
    batch = np.array([_batch_of(np.int64(i), np.int64(n), 7, 1, n_batches) for i in range(n)])
    a = merge_summaries([run_block(pr, b, seed) for b in plan_blocks(n, 300, n_batches)])
    b = merge_summaries([run_block(pr, b, seed) for b in plan_blocks(n, 128, n_batches)])
    rev = pm.scalars[:, :, 0]
    g1 = rev.shape[1]
    nd = a.batch_ttt_hist.shape[-1] - 1
    for s in (a, b):
        for k in range(n_batches):
            sel = batch == k
            for g in range(g1):
                hist = np.bincount([bin_index(float(x)) for x in rev[sel, g]], minlength=NBINS)
                np.testing.assert_array_equal(s.batch_hist[k, g], hist)
                assert s.batch_hit[k, g] == int(np.sum(pm.scalars[sel, g, 1] >= 1.0))
                ttt = pm.time_to_target[sel, g]
                days = np.where(np.isfinite(ttt), ttt, nd).astype(np.int64)
                np.testing.assert_array_equal(
                    s.batch_ttt_hist[k, g], np.bincount(days, minlength=nd + 1)
                )
                assert s.batch_welford[k, g, 0] == sel.sum()
                np.testing.assert_allclose(s.batch_welford[k, g, 1], rev[sel, g].mean(), rtol=1e-12)
                np.testing.assert_allclose(
                    s.batch_welford[k, g, 2],
                    ((rev[sel, g] - rev[sel, g].mean()) ** 2).sum(),
                    rtol=1e-9,
                )
        np.testing.assert_array_equal(s.batch_hist.sum(axis=0), s.scal_hist[:, 0])
        np.testing.assert_array_equal(s.batch_hit.sum(axis=0), s.hit)
        np.testing.assert_array_equal(s.batch_ttt_hist.sum(axis=0), s.ttt_hist)
    # keeping batches changes none of the run's own arrays
    plain = merge_summaries([run_block(pr, blk, seed) for blk in plan_blocks(n, 300)])
    assert plain.batch_hist.shape[0] == 0
    for f in ("scal_hist", "welford", "hit", "ttt_hist", "cum_hist", "cum_sum", "wcov_hist"):
        np.testing.assert_array_equal(getattr(plain, f), getattr(a, f))
    one = run_blocks(pr, n, seed, 128, 1, batches=n_batches)
    two = run_blocks(pr, n, seed, 128, 2, batches=n_batches)
    for f in ("batch_hist", "batch_welford", "batch_hit", "batch_ttt_hist"):
        np.testing.assert_array_equal(getattr(one, f), getattr(two, f))
        np.testing.assert_array_equal(getattr(one, f), getattr(b, f))


def test_batches_must_fit_the_run() -> None:
    with pytest.raises(ValueError, match="batches"):
        plan_blocks(10, 5, 11)
    with pytest.raises(ValueError, match="batches"):
        plan_blocks(10, 5, 1)
    pr = prepare(_params(), make_plan(target=200_000.0))
    s = run_block(pr, plan_blocks(10, 5, 2)[0], 1)
    t = run_block(pr, plan_blocks(10, 5, 3)[1], 1)
    with pytest.raises(ValueError, match="batch counts"):
        s.merge_into(t)

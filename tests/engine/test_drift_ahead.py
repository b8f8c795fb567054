"""The drift ahead (conversion and arrival-level random walks) and dormant units.

Statistical checks:

* engine vs the NumPy reference (:mod:`simengine.engine.reference`, which
  builds its inputs itself), n = m = 3000 paths: the shared family of
  ``tests/engine/comparison.py`` (KS, chi-square and two-sided z-tests on
  every output, the revenue sources included), tested at ``ALPHA_FAMILY`` =
  0.002 by Bonferroni; two families here, so a correct engine fails this
  module's agreement checks with probability at most 0.004;
* a closed form: with Poisson arrivals at rate ``r`` and a level walk of sd
  ``s``, week ``w`` has mean ``r exp(s^2 (w + 1) / 2)``; the engine's mean
  count of units entering in the period is within 4 standard errors of the sum
  (two-sided, alpha ~6e-5);
* power: the same family must reject an engine that drops the walks or the
  dormant share (each mutation shifts the law by far more than the critical
  distance), and the closed-form check must tell the walk from no walk.

Plus layout checks: per-path streams give bitwise the same paths whatever the
block split, and zero scales give bitwise the paths of a posterior without
them.
"""

from __future__ import annotations

import numpy as np
from comparison import family_pvalues, rejected
from engine_helpers import ahead_plan, drift_params, make_params, make_plan, random_open_units

from simengine.engine import prepare, run_paths
from simengine.engine.reference import reference_paths

N = 3_000


_params = drift_params


_plan = ahead_plan


def test_engine_matches_reference_with_drift_ahead_and_dormant_units() -> None:
    params, plan = _params(), _plan()
    pr = prepare(params, plan)
    assert pr.has_drift
    assert pr.has_level
    assert pr.has_dormant
    assert pr.n_drift == 4
    a = run_paths(pr, 0, N, seed=41)
    b = reference_paths(params, plan, N, seed=42)
    pvalues = family_pvalues(a, b, pr.n_segments)
    assert not rejected(pvalues), (rejected(pvalues), len(pvalues))


def test_planned_new_units_switch_the_level_walk_off() -> None:
    """Cells whose arrivals the plan fixes do not follow the walk (engine = reference)."""
    params = _params(drift=0.0, dormant=0.0, level=0.15)
    plan = _plan(new_units={"smb": {"mql": 400.0}})
    pr = prepare(params, plan)
    assert pr.level_on[0:2, 0].sum() == 0
    assert pr.level_on[2:, 0].all()
    a = run_paths(pr, 0, N, seed=43)
    b = reference_paths(params, plan, N, seed=44)
    x = a.scalars[:, 0, 4]  # smb: units entering mql
    assert abs(x.mean() - 400.0) <= 4 * np.sqrt(x.var() / N)
    pvalues = family_pvalues(a, b, pr.n_segments)
    assert "mean g0 entered_mql" in pvalues
    assert not rejected(pvalues), (rejected(pvalues), len(pvalues))


def test_level_walk_matches_its_closed_form_mean() -> None:
    """E[units in week w] = r exp(s^2 (w + 1) / 2) (lognormal mean of the walk)."""
    s, r = 0.1, 20.0
    params = make_params(rate=(r, 0.0, 0.0), draws=5)
    d = params.n_draws
    params = params.with_arrays(arrival_level_sd=np.full((d, 3), s))
    pr = prepare(params, make_plan(target=1e6))
    x = run_paths(pr, 0, 20_000, seed=45).scalars[:, -1, 4]  # all cells, entering mql
    want = len(params.cells) * r * np.exp(s * s * (np.arange(13) + 1) / 2).sum()
    assert abs(x.mean() - want) <= 4 * x.std() / np.sqrt(x.size), (x.mean(), want)
    flat = len(params.cells) * r * 13
    assert want - flat > 8 * x.std() / np.sqrt(x.size)  # the check can tell it from no walk


def test_comparison_catches_a_missing_walk_or_dormant_share() -> None:
    """Power: the reference with the walks (or dormancy) against an engine without them."""
    params, plan = _params(), _plan()
    b = reference_paths(params, plan, N, seed=42)
    d = params.n_draws
    for mutation in (
        {"conversion_drift_sd": np.zeros(d), "arrival_level_sd": np.zeros((d, 3))},
        {"dormant": np.zeros(params.conversion.shape)},
    ):
        pr = prepare(params.with_arrays(**mutation), plan)
        a = run_paths(pr, 0, N, seed=41)
        bad = rejected(family_pvalues(a, b, pr.n_segments))
        assert {"ks revenue", "ks coverage"} & set(bad), (list(mutation), bad)


def test_paths_do_not_depend_on_the_block_split() -> None:
    pr = prepare(_params(), _plan())
    whole = run_paths(pr, 0, 600, seed=7)
    parts = [run_paths(pr, 0, 250, seed=7, total=600), run_paths(pr, 250, 350, seed=7, total=600)]
    np.testing.assert_array_equal(whole.scalars, np.concatenate([p.scalars for p in parts], axis=0))
    np.testing.assert_array_equal(
        whole.cum_revenue, np.concatenate([p.cum_revenue for p in parts], axis=0)
    )


def test_zero_scales_draw_the_paths_of_a_posterior_without_them() -> None:
    base = make_params(
        rate=(20.0, 0.0, 1.5),
        pipeline_stage=1,
        open_units=random_open_units(100, 6, 3, seed=3),
        loss_median=(12.0, 20.0, 35.0),
    )
    d = base.n_draws
    zero = base.with_arrays(
        conversion_drift_sd=np.zeros(d),
        arrival_level_sd=np.zeros((d, 3)),
        dormant=np.zeros(base.conversion.shape),
    )
    a = run_paths(prepare(base, _plan()), 0, 400, seed=9)
    b = run_paths(prepare(zero, _plan()), 0, 400, seed=9)
    np.testing.assert_array_equal(a.scalars, b.scalars)
    np.testing.assert_array_equal(a.week_coverage, b.week_coverage)


def test_common_random_numbers_across_a_conversion_scenario() -> None:
    """A lower rate in one cell leaves the other cells' walks and paths untouched."""
    params, plan = _params(dormant=0.0), _plan()
    conv = params.conversion.copy()
    conv[:, 0, :] *= 0.8
    a = run_paths(prepare(params, plan), 0, 300, seed=11)
    b = run_paths(prepare(params.with_arrays(conversion=conv), plan), 0, 300, seed=11)
    # segments 1 and 2 (cells 2..5) are bitwise the same
    np.testing.assert_array_equal(a.scalars[:, 1:3], b.scalars[:, 1:3])
    assert not np.array_equal(a.scalars[:, 0], b.scalars[:, 0])

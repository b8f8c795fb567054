"""The cohort effect of future drift periods (``conversion_cohort_sd``) in the engine.

Each drift period ahead gets, per path and step, one Normal(0,
``conversion_cohort_sd``) offset on the logit conversion, shared by every
cell (:func:`simengine.engine._kernels._conversion_walk`).

Statistical checks (the shared family of ``tests/engine/comparison.py``: KS,
chi-square and two-sided z-tests on every output, tested at ``ALPHA_FAMILY``
= 0.002 by Bonferroni):

* engine vs the NumPy reference (:mod:`simengine.engine.reference`), n = m =
  3000 paths, with the cohort effect alone (no walk: it must switch the walk
  array on by itself) and with both; two families, so a correct engine fails
  this module's agreement checks with probability at most 0.004;
* power: the same family must reject an engine without the cohort effect, and
  one whose effect is drawn per cell instead of shared (the per-cell walk's
  first step has the same marginal law, so only the correlation between
  cells differs: the total's spread).

Plus a layout check: a zero sd draws bitwise the paths of a posterior without
it.
"""

from __future__ import annotations

import numpy as np
from comparison import family_pvalues, rejected
from engine_helpers import ahead_plan, loss_params

from simengine.engine import prepare, run_paths
from simengine.engine.reference import reference_paths

N = 3_000


def _params(cohort: float, drift: float = 0.0, period_days: int = 30):
    p = loss_params(dispersion=0.05)
    d = p.n_draws
    return p.with_arrays(
        conversion_drift_sd=np.full(d, drift),
        conversion_cohort_sd=np.full(d, cohort),
        drift_period_days=period_days,  # type: ignore[arg-type]
    )


_plan = ahead_plan


def test_engine_matches_reference_with_the_cohort_effect_alone() -> None:
    params, plan = _params(cohort=0.6), _plan()
    pr = prepare(params, plan)
    assert pr.has_drift  # the cohort effect alone switches the walk array on
    a = run_paths(pr, 0, N, seed=51)
    b = reference_paths(params, plan, N, seed=52)
    pvalues = family_pvalues(a, b, pr.n_segments)
    assert not rejected(pvalues), (rejected(pvalues), len(pvalues))


def test_engine_matches_reference_with_walk_and_cohort_effect() -> None:
    params, plan = _params(cohort=0.5, drift=0.3), _plan()
    pr = prepare(params, plan)
    assert pr.n_drift == 4
    a = run_paths(pr, 0, N, seed=53)
    b = reference_paths(params, plan, N, seed=54)
    pvalues = family_pvalues(a, b, pr.n_segments)
    assert not rejected(pvalues), (rejected(pvalues), len(pvalues))


def test_comparison_catches_a_missing_or_unshared_cohort_effect() -> None:
    """Power: the reference with a shared effect against engines without it / per cell.

    One drift period covers the whole horizon (200-day periods, 120-day
    horizon), so an engine given the walk sd instead of the cohort sd draws
    one independent Normal(0, sd) logit offset per cell and step: the same
    marginal law per cell, but no correlation between the cells.
    """
    sd = 0.8
    plan = _plan()
    ref = _params(cohort=sd, period_days=200)
    b = reference_paths(ref, plan, N, seed=56)
    for name, mutant in (
        ("no cohort effect", _params(cohort=0.0, period_days=200)),
        ("per-cell effect", _params(cohort=0.0, drift=sd, period_days=200)),
    ):
        pr = prepare(mutant, plan)
        assert pr.n_drift == 1
        a = run_paths(pr, 0, N, seed=55)
        bad = rejected(family_pvalues(a, b, pr.n_segments))
        assert {"ks revenue", "ks coverage"} & set(bad), (name, bad)


def test_zero_cohort_sd_draws_the_paths_of_a_posterior_without_it() -> None:
    with_walk = _params(cohort=0.0, drift=0.3)
    without = with_walk.with_arrays(conversion_cohort_sd=None)  # type: ignore[arg-type]
    a = run_paths(prepare(with_walk, _plan()), 0, 400, seed=9)
    b = run_paths(prepare(without, _plan()), 0, 400, seed=9)
    np.testing.assert_array_equal(a.scalars, b.scalars)
    np.testing.assert_array_equal(a.week_coverage, b.week_coverage)

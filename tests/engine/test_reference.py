"""The Numba engine and the plain NumPy reference agree in distribution.

Both simulate the same path model with different random numbers, and from
inputs built apart: the engine from :func:`~simengine.engine.prepare`, the
reference from the parameters and the plan itself
(:func:`~simengine.engine.reference.reference_inputs`), so an error in
``prepare()`` shows up here. One configuration has the fitted time to loss
(the competing-risk law of open units and of leavers), others sales-sourced
arrivals, a trend, a period off the weekly grid, planned new units.

Per configuration, n = m = 3000 paths each, one family of checks on every
output, the revenue sources included (``tests/engine/comparison.py``: KS,
chi-square and two-sided z-tests; 100-200 p-values). Family-wise error: each
family is tested at ``ALPHA_FAMILY`` = 0.002 by Bonferroni (every p-value must
exceed 0.002 / m). The module runs 5 configuration families, 2
after-the-period families and (slow) 1 large family: a correct engine fails
the module with probability at most 8 x 0.002 = 1.6% (Bonferroni across
families; the checks are positively correlated, so the true rate is lower),
and each seed pair is fixed, so CI sees the same outcome every run. Power:
the same families with a mutated engine (a 10% lower last-step rate,
post-period arrivals 15% lower, the loss law dropped, every open unit's
revenue counted as new) must be rejected; they are, in the ``*_power`` /
``*_detects_*`` tests below, by the same thresholds. ``scripts/power.py``
measures the rejection rates over seeds (docs/validation-tests.md).

``test_reference_inputs_agree_with_prepare`` checks the two input builders
against each other exactly (the reference's arrays are written from the
rules in ARCHITECTURE.md, not from ``prepare()``).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from comparison import ALPHA_FAMILY, after_period_pvalues, family_pvalues, rejected
from engine_helpers import agreement_configs, make_params, make_plan, random_open_units
from scipy import stats

from simengine.engine import prepare, run_paths
from simengine.engine.reference import reference_inputs, reference_paths

__all__ = [  # scripts/power.py reuses the configurations and the family
    "ALPHA_FAMILY",
    "N",
    "after_period_pvalues",
    "family_pvalues",
    "rejected",
]

N = 3_000


def _configs():
    """The shared configurations (``engine_helpers.agreement_configs``) as (name, (params, plan))."""
    for name, params, plan in agreement_configs():
        yield name, (params, plan)


@pytest.mark.parametrize(
    ("name", "config"), list(_configs()), ids=lambda v: v if isinstance(v, str) else ""
)
def test_engine_matches_reference(name: str, config) -> None:
    params, plan = config
    pr = prepare(params, plan)
    a = run_paths(pr, 0, N, seed=31)
    b = reference_paths(params, plan, N, seed=32)
    pvalues = family_pvalues(a, b, pr.n_segments)
    assert len(pvalues) > 100, len(pvalues)
    assert any(k.startswith("ks revenue_from_") for k in pvalues)  # the sources are compared
    assert not rejected(pvalues), (name, rejected(pvalues), len(pvalues))


@pytest.mark.parametrize(
    ("name", "config"), list(_configs()), ids=lambda v: v if isinstance(v, str) else ""
)
def test_reference_inputs_agree_with_prepare(name: str, config) -> None:
    """Two input builders written apart give the same arrays and day layout (exactly)."""
    params, plan = config
    pr = prepare(params, plan)
    ri = reference_inputs(params, plan)
    np.testing.assert_allclose(ri.arrival_rate, pr.arrival_rate, rtol=1e-15, atol=0.0)
    np.testing.assert_array_equal(ri.arrival_trend, pr.arrival_trend)
    np.testing.assert_array_equal(ri.level_walk_on, pr.level_on.astype(bool))
    np.testing.assert_array_equal(ri.leave_mu, pr.leave_mu)
    np.testing.assert_array_equal(ri.leave_sigma, pr.leave_sigma)
    assert ri.has_loss == bool(pr.has_loss)
    assert (ri.days, ri.start, ri.end) == (pr.sim_days, pr.start_off, pr.end_off)
    np.testing.assert_array_equal(ri.week_ends, pr.week_days)
    np.testing.assert_array_equal(ri.targets, pr.targets)
    assert ri.pipeline_stage == pr.pipeline_stage


def _after(pr) -> int:
    """First day index (from the period start) after the period's end."""
    return pr.end_off - pr.start_off + 1


@pytest.mark.parametrize("which", [1, 3])
def test_engine_matches_reference_after_the_period(which: int) -> None:
    """Revenue after the period's end (the fan and time to target) has the reference's law.

    The engine plays only the winners of weeks that start after the period's
    end; the reference plays every unit. A family of 5 KS checks
    (:func:`comparison.after_period_pvalues`) at ``ALPHA_FAMILY``: the
    cumulative revenue of the total at three days after the period's end (the
    last is the horizon's), the gain after the period, and the day the target
    is reached among the paths that reach it.
    """
    params, plan = list(_configs())[which][1]
    pr = prepare(params, plan)
    a = run_paths(pr, 0, N, seed=33)
    b = reference_paths(params, plan, N, seed=34)
    after = _after(pr)
    assert pr.n_dates - after >= 9, "the horizon must reach past the period"
    gain_a = a.cum_revenue[:, -1, -1] - a.cum_revenue[:, -1, after - 1]
    assert gain_a.mean() > 0
    pvalues = after_period_pvalues(a, b, after)
    assert not rejected(pvalues), (which, rejected(pvalues))


def test_after_period_comparison_has_power() -> None:
    """Post-period arrivals 15% lower in the engine: the same KS checks on the gain fail."""
    params, plan = list(_configs())[1][1]
    pr = prepare(params, plan)
    scaled = params.with_arrays(arrival_rate=params.arrival_rate * 0.85)
    a = run_paths(prepare(scaled, plan), 0, N, seed=33)
    b = reference_paths(params, plan, N, seed=34)
    assert "ks gain after the period" in rejected(after_period_pvalues(a, b, _after(pr)))


def test_planned_new_units_set_the_period_total() -> None:
    """new_units: the segment's expected arrivals in the period equal the plan's number."""
    params = make_params(rate=(20.0, 0.0, 0.5), conversion_sd=0.05, draws=7)
    plan = make_plan(target=300_000.0, new_units={"smb": {"mql": 400.0}})
    pr = prepare(params, plan)
    np.testing.assert_allclose(pr.arrival_rate[:, 0:2, 0].sum(axis=1) * 13, 400.0)
    np.testing.assert_allclose(pr.arrival_rate[:, 2:, 0], 20.0)  # other segments untouched
    pm = run_paths(pr, 0, N, seed=2)
    x = pm.scalars[:, 0, 4]
    assert abs(x.mean() - 400.0) <= 4 * np.sqrt(400.0 / N)  # Poisson arrivals


def test_comparison_has_power() -> None:
    """A 10% lower last-step rate in the engine is caught by the same checks."""
    params = make_params(rate=(20.0, 0.0, 0.5), draws=7)
    plan = make_plan(target=300_000.0)
    shifted = params.with_arrays(conversion=params.conversion * np.array([1.0, 1.0, 0.9]))
    a = run_paths(prepare(shifted, plan), 0, N, seed=31)
    b = reference_paths(params, plan, N, seed=32)
    bad = rejected(family_pvalues(a, b, len(params.segments)))
    assert {"ks revenue", "chi2 won deals"} <= set(bad), bad


def test_comparison_detects_misattributed_sources() -> None:
    """Power on the sources: open units' revenue counted as marketing-sourced is caught.

    The mutation keeps ``revenue`` (and every other metric) as it is and moves
    ``revenue_from_open`` into ``revenue_from_new_mql`` in the engine's paths.
    """
    params, plan = list(_configs())[2][1]
    pr = prepare(params, plan)
    a = run_paths(pr, 0, N, seed=31)
    b = reference_paths(params, plan, N, seed=32)
    moved = a.scalars.copy()
    k_open, k_mql = 8, 9  # blocks.scalar_names: after the 4 entered_<stage>
    moved[..., k_mql] += moved[..., k_open]
    moved[..., k_open] = 0.0
    bad = rejected(family_pvalues(replace(a, scalars=moved), b, pr.n_segments))
    assert {"ks revenue_from_open", "ks revenue_from_new_mql"} <= set(bad), bad
    assert "ks revenue" not in bad


@pytest.mark.slow
def test_engine_matches_reference_large() -> None:
    """20,000 paths each, 31 KS tests as one family at ``ALPHA_FAMILY`` (Bonferroni).

    Per test alpha 0.002 / 31 = 6.5e-5: KS critical distance about
    2.27 sqrt(2 / 20000) = 0.023.
    """
    params, plan = next(iter(_configs()))[1]
    pr = prepare(params, plan)
    n = 20_000
    a = run_paths(pr, 0, n, seed=41)
    b = reference_paths(params, plan, n, seed=42)
    pvalues = {}
    for g in range(pr.n_segments + 1):
        # revenue, coverage, won, entered sql/opportunity, from open, from new mql
        for k in (0, 2, 3, 5, 6, 8, 9):
            pvalues[f"g{g} k{k}"] = stats.ks_2samp(a.scalars[:, g, k], b.scalars[:, g, k]).pvalue
    for day in (30, 60, 90):
        pvalues[f"day {day}"] = stats.ks_2samp(
            a.cum_revenue[:, -1, day], b.cum_revenue[:, -1, day]
        ).pvalue
    assert not rejected(pvalues), rejected(pvalues)


def test_comparison_detects_the_loss_law() -> None:
    """The engine with a time to loss against the reference without one differs."""
    with_loss = make_params(
        rate=(20.0, 0.0, 1.5),
        draws=7,
        pipeline_stage=1,
        open_units=random_open_units(300, 6, 3, seed=2),
        loss_median=(12.0, 20.0, 35.0),
        loss_sigma=0.8,
    )
    without = with_loss.with_arrays(loss_mu=None, loss_sigma=None)  # type: ignore[arg-type]
    plan = make_plan(target=400_000.0, start_delay_days=7)
    a = run_paths(prepare(with_loss, plan), 0, N, seed=31)
    b = reference_paths(without, plan, N, seed=32)
    bad = rejected(family_pvalues(a, b, len(without.segments)))
    assert {"ks coverage", "ks revenue"} <= set(bad), bad

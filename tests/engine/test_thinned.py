"""The Poisson-thinning prototype (:mod:`simengine.engine.thinned`) has the per-unit law.

Agreement: thinned paths vs per-unit engine paths (independent seeds), n = m =
3000, on every output the prototype computes: KS of revenue, of each revenue
source and of the day the target is reached, chi-square of won deals, and
two-sided z-tests of the means of revenue, attainment, won deals and every
source per segment and total, of P(hit) per segment and of the cumulative
revenue on the total every 7th day. One family per configuration, Bonferroni
at ``ALPHA_FAMILY`` = 0.002; 3 configurations, so a correct prototype fails
the module with probability at most 0.006. Power: the same family must reject
the prototype with a 10% lower last-step rate.
"""

from __future__ import annotations

import numpy as np
import pytest
from comparison import chi2_two_sample, rejected, z_pvalue
from engine_helpers import make_params, make_plan, random_open_units
from scipy import stats

from simengine.engine import PathMetrics, prepare, run_paths
from simengine.engine.blocks import scalar_names
from simengine.engine.thinned import thinned_paths

N = 3_000
STAGES = ("mql", "sql", "opportunity", "won")


def _configs():
    yield (
        "demo-like",
        make_params(
            rate=(20.0, 0.0, 0.5),
            dispersion=0.1,
            conversion_sd=0.03,
            open_units=random_open_units(200, 6, 3),
        ),
        make_plan(target=400_000.0, horizon_days=120),
    )
    yield (
        "time to loss, sales-sourced, later start, trend",
        make_params(
            rate=(20.0, 0.0, 1.5),
            dispersion=0.1,
            trend=0.02,
            conversion_sd=0.03,
            pipeline_stage=1,
            open_units=random_open_units(300, 6, 3, seed=2),
            loss_median=(12.0, 20.0, 35.0),
            loss_sigma=0.8,
        ),
        make_plan(target=400_000.0, start_delay_days=7),
    )
    p = make_params(rate=(20.0, 0.0, 1.5), dispersion=0.05, pipeline_stage=1)
    d = p.n_draws
    yield (
        "drift ahead and level walk, planned units",
        p.with_arrays(
            conversion_drift_sd=np.full(d, 0.5),
            arrival_level_sd=np.full((d, 3), 0.08),
            drift_period_days=30,  # type: ignore[arg-type]
        ),
        make_plan(target=300_000.0, horizon_days=120, new_units={"smb": {"mql": 300.0}}),
    )


def revenue_family(a: PathMetrics, b: PathMetrics, n_segments: int) -> dict[str, float]:
    """The checks of the module docstring, by name (constant pairs compared exactly)."""
    names = scalar_names(STAGES)
    used = [k for k, n in enumerate(names) if n in ("revenue", "attainment", "won_deals")]
    used += [k for k, n in enumerate(names) if n.startswith("revenue_from_")]
    tot = n_segments
    out: dict[str, float | None] = {
        "chi2 won deals": chi2_two_sample(a.scalars[:, tot, 3], b.scalars[:, tot, 3])
    }
    for k in used:
        x, y = a.scalars[:, tot, k], b.scalars[:, tot, k]
        if names[k] != "attainment" and not (np.all(x == 0) and np.all(y == 0)):
            out[f"ks {names[k]}"] = float(stats.ks_2samp(x, y).pvalue)
    ta, tb = a.time_to_target[:, tot], b.time_to_target[:, tot]
    out["ks time to target"] = float(
        stats.ks_2samp(ta[np.isfinite(ta)], tb[np.isfinite(tb)]).pvalue
    )
    for g in range(n_segments + 1):
        for k in used:
            x, y = a.scalars[:, g, k], b.scalars[:, g, k]
            p = z_pvalue(x, y)
            if p is None:
                assert x.mean() == y.mean(), (g, names[k])
            out[f"mean g{g} {names[k]}"] = p
        out[f"P(hit) g{g}"] = z_pvalue(
            np.isfinite(a.time_to_target[:, g]), np.isfinite(b.time_to_target[:, g])
        )
    for i in range(6, a.cum_revenue.shape[2], 7):
        out[f"mean cum revenue day {i}"] = z_pvalue(
            a.cum_revenue[:, tot, i], b.cum_revenue[:, tot, i]
        )
    return {k: float(v) for k, v in out.items() if v is not None}


@pytest.mark.parametrize(
    ("name", "params", "plan"), list(_configs()), ids=[c[0] for c in _configs()]
)
def test_thinned_matches_the_per_unit_engine(name, params, plan) -> None:
    pr = prepare(params, plan)
    a = thinned_paths(pr, 0, N, seed=51)
    b = run_paths(pr, 0, N, seed=52)
    pvalues = revenue_family(a, b, pr.n_segments)
    assert len(pvalues) > 40, len(pvalues)
    assert not rejected(pvalues), (name, rejected(pvalues), len(pvalues))


def test_thinned_comparison_has_power() -> None:
    """A 10% lower last-step rate in the prototype is rejected by the same family."""
    _, params, plan = next(iter(_configs()))
    shifted = params.with_arrays(conversion=params.conversion * np.array([1.0, 1.0, 0.9]))
    a = thinned_paths(prepare(shifted, plan), 0, N, seed=51)
    b = run_paths(prepare(params, plan), 0, N, seed=52)
    bad = rejected(revenue_family(a, b, len(params.segments)))
    assert {"ks revenue", "chi2 won deals"} <= set(bad), bad


def test_thinned_paths_do_not_depend_on_the_block_split() -> None:
    _, params, plan = list(_configs())[1]
    pr = prepare(params, plan)
    whole = thinned_paths(pr, 0, 500, seed=7)
    parts = [thinned_paths(pr, 0, 200, seed=7), thinned_paths(pr, 200, 300, seed=7)]
    np.testing.assert_array_equal(whole.scalars, np.concatenate([p.scalars for p in parts]))
    np.testing.assert_array_equal(whole.cum_revenue, np.concatenate([p.cum_revenue for p in parts]))
    src = whole.scalars[:, :, 8:]
    assert np.all(
        np.abs(src.sum(axis=2) - whole.scalars[:, :, 0]) <= 1e-12 * whole.scalars[:, :, 0]
    )

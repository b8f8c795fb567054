"""The thinned path model (:mod:`simengine.engine.thinned`) has the per-unit model's law.

Agreement: thinned paths vs per-unit paths (independent seeds), n = m = 3000,
on the six shared configurations (``engine_helpers.agreement_configs(drift=
True)``), with every output: the shared family of ``comparison.py`` (KS of
revenue, coverage at the start, every source and the time to target;
chi-square of won deals; two-sided z-tests of the mean of every scalar per
segment, of the coverage at every week end, of P(hit) and of the fan) plus
:func:`comparison.distribution_pvalues` (chi-square of every
``entered_<stage>`` count, KS of the coverage at every week end), one family
per configuration at ``ALPHA_FAMILY`` = 0.002 by Bonferroni, and the
after-the-period family (KS of the fan after the period, the gain and the
time to target) on the two configurations whose horizon reaches past the
period. 8 families, so a correct model fails the module with probability at
most 8 x 0.002 = 1.6% (fixed seeds: CI sees the same outcome every run).

Power (the same families, the same thresholds, must reject): a 10% lower
last-step rate in the thinned model (revenue, won deals); the thinned model
without its time to loss (coverage); a 10% lower first-step rate
(``entered_sql`` and later counts); pipeline non-winners never leaving
(coverage at the week ends).
"""

from __future__ import annotations

import numpy as np
import pytest
from comparison import after_period_pvalues, distribution_pvalues, family_pvalues, rejected
from engine_helpers import agreement_configs

from simengine.engine import prepare, run_paths, simulate
from simengine.engine.blocks import scalar_names
from simengine.engine.thinned import thinned_paths

N = 3_000
CONFIGS = agreement_configs(drift=True)
STAGES = ("mql", "sql", "opportunity", "won")


def all_pvalues(a, b, n_segments: int) -> dict[str, float]:
    """The module's family for one configuration: every output's checks, by name."""
    return {**family_pvalues(a, b, n_segments), **distribution_pvalues(a, b, n_segments)}


@pytest.mark.parametrize(("name", "params", "plan"), CONFIGS, ids=[c[0] for c in CONFIGS])
def test_thinned_matches_the_per_unit_model(name, params, plan) -> None:
    pr = prepare(params, plan)
    a = thinned_paths(pr, 0, N, seed=51)
    b = run_paths(pr, 0, N, seed=52)
    pvalues = all_pvalues(a, b, pr.n_segments)
    assert len(pvalues) > 100, len(pvalues)
    assert {"chi2 entered_sql", "ks coverage week 0"} <= set(pvalues)
    assert not rejected(pvalues), (name, rejected(pvalues), len(pvalues))


@pytest.mark.parametrize("which", [1, 3])
def test_thinned_matches_the_per_unit_model_after_the_period(which: int) -> None:
    """The fan and time to target after the period (winners of post-period weeks)."""
    _, params, plan = CONFIGS[which]
    pr = prepare(params, plan)
    a = thinned_paths(pr, 0, N, seed=53)
    b = run_paths(pr, 0, N, seed=54)
    after = pr.end_off - pr.start_off + 1
    assert pr.n_dates - after >= 9, "the horizon must reach past the period"
    pvalues = after_period_pvalues(a, b, after)
    assert not rejected(pvalues), (which, rejected(pvalues))


def _power(params, mutated, plan) -> dict[str, float]:
    a = thinned_paths(prepare(mutated, plan), 0, N, seed=51)
    b = run_paths(prepare(params, plan), 0, N, seed=52)
    return rejected(all_pvalues(a, b, len(params.segments)))


def test_power_last_step_rate() -> None:
    _, params, plan = CONFIGS[0]
    shifted = params.with_arrays(conversion=params.conversion * np.array([1.0, 1.0, 0.9]))
    bad = _power(params, shifted, plan)
    assert {"ks revenue", "chi2 won deals"} <= set(bad), bad


def test_power_first_step_rate() -> None:
    _, params, plan = CONFIGS[0]
    shifted = params.with_arrays(conversion=params.conversion * np.array([0.9, 1.0, 1.0]))
    bad = _power(params, shifted, plan)
    assert {"chi2 entered_sql", "chi2 entered_opportunity"} <= set(bad), bad
    assert "chi2 entered_mql" not in bad


def test_power_time_to_loss() -> None:
    _, params, plan = CONFIGS[2]
    without = params.with_arrays(loss_mu=None, loss_sigma=None)  # type: ignore[arg-type]
    bad = _power(params, without, plan)
    assert "ks coverage" in bad, bad
    assert any(k.startswith("ks coverage week") for k in bad), bad


def test_power_pipeline_never_leaves() -> None:
    """Every pipeline non-winner stays open for good in the thinned model: coverage grows."""
    _, params, plan = CONFIGS[2]
    dormant = params.with_arrays(dormant=np.ones(params.conversion.shape))
    bad = _power(params, dormant, plan)
    assert any(k.startswith("ks coverage week") for k in bad), bad


def test_thinned_paths_do_not_depend_on_the_block_split() -> None:
    _, params, plan = CONFIGS[5]
    pr = prepare(params, plan, path_model="thinned")
    whole = run_paths(pr, 0, 500, seed=7)
    parts = [run_paths(pr, 0, 200, seed=7, total=500), run_paths(pr, 200, 300, seed=7, total=500)]
    for f in ("scalars", "cum_revenue", "week_coverage", "time_to_target"):
        np.testing.assert_array_equal(
            getattr(whole, f), np.concatenate([getattr(p, f) for p in parts])
        )
    k0 = scalar_names(STAGES).index("revenue_from_open")
    src = whole.scalars[:, :, k0:]
    assert np.all(
        np.abs(src.sum(axis=2) - whole.scalars[:, :, 0]) <= 1e-12 * whole.scalars[:, :, 0]
    )


def test_thinned_common_random_numbers_across_cells() -> None:
    """Changing one segment's parameters leaves the other segments' thinned paths unchanged."""
    _, params, plan = CONFIGS[0]
    conv = params.conversion.copy()
    conv[:, 0:2, :] *= 0.5  # smb cells, every step
    shocked = params.with_arrays(conversion=conv)
    a = run_paths(prepare(params, plan, path_model="thinned"), 0, 200, seed=8)
    b = run_paths(prepare(shocked, plan, path_model="thinned"), 0, 200, seed=8)
    np.testing.assert_array_equal(a.scalars[:, 1:3], b.scalars[:, 1:3])  # mid, ent
    np.testing.assert_array_equal(a.week_coverage[:, 1:3], b.week_coverage[:, 1:3])
    assert not np.array_equal(a.scalars[:, 0], b.scalars[:, 0])


def test_simulate_thinned_is_bitwise_the_same_on_1_and_2_threads(tmp_path) -> None:
    _, params, plan = CONFIGS[2]
    out = []
    for threads in (1, 2):
        fc = simulate(
            params, plan, paths=1_200, seed=3, block_size=300, threads=threads, path_model="thinned"
        )
        fc.write(tmp_path / f"t{threads}")
        out.append((tmp_path / f"t{threads}" / "summary.csv").read_bytes())
    assert out[0] == out[1]
    per_unit = simulate(params, plan, paths=1_200, seed=3, block_size=300, threads=1)
    per_unit.write(tmp_path / "pu")
    assert (tmp_path / "pu" / "summary.csv").read_bytes() != out[0]  # other random numbers


def test_unknown_path_model_is_an_error() -> None:
    _, params, plan = CONFIGS[0]
    with pytest.raises(ValueError, match="path_model"):
        prepare(params, plan, path_model="fast")

"""Parameter recovery on synthetic funnels with known truth (slow).

Over ``SEEDS`` independent synthetic funnels (4 cells x 3 steps), the fitted
90% intervals of the 12 step conversions, the 12 delay medians and the 4
deal-size medians (28 checks a fit, ``n`` = 112 in all) must cover the truth
at a rate consistent with 90%, the posteriors must have learnt from the data
(shrunk well inside the prior), and every fit must pass the convergence gate.

Coverage, two-sided. If the intervals are calibrated the covered count is
about Binomial(n, 0.9) (checks within a fit are correlated through pooling, so
this is approximate). The test accepts counts inside the binomial's 0.5% and
99.5% quantiles: alpha = 1% (exactly 0.65% for n = 112, discreteness). Power
against the mutations, for intervals from a normal posterior: biased by one
posterior sd (per-check coverage 73.6%) 0.98; twice too narrow (58.8%) 1.00;
twice too wide (99.9%) 1.00 -- ``scripts/power.py`` computes these and applies
the same mutations to real fits (docs/validation-tests.md).

Shrinkage. A fit that returns its prior covers the truth (too often: the
upper band catches it) and is as wide as the prior. The posterior sd of each
check on its unconstrained scale (logit conversion, log median) is compared
with a lower bound on the prior's marginal sd (the hyper-location sd alone,
``DEFAULT_PRIORS``): the median ratio must be below 0.3. With ~500 units a
cell the ratio is about 0.05; a returned prior gives >= 1, so it fails surely.

Convergence: every checked quantity must have converged in every fit
(rank-normalised r_hat <= 1.01 and bulk ESS >= 400, the library's gate
thresholds, on the checked conversions, delay and deal log medians), and no
part may have more than 5% divergent transitions (a gross sampler failure). The library's full gate
(every hyper-parameter too) is recorded and printed, not required: on this
design it misses by hyper-sd ESS (e.g. ``delay_cell_sd`` 320 < 400) and ~2.5%
divergences in the deal-size part at seed 101 (2026-12-06), which is the
fitting code's issue, not this test's; once the gate passes here,
``allow_unconverged=False`` is the stricter check.
"""

from __future__ import annotations

import datetime as dt
import json

import arviz as az
import numpy as np
import pytest
from scipy import stats

from simengine.fitting.fit import fit, settings_from_spec
from simengine.fitting.priors import DEFAULT_PRIORS

AS_OF = dt.date(2026, 1, 5)
SEEDS = (101, 202, 303, 404)
LEVEL = 0.9
ALPHA = 0.01
MAX_SHRINK_RATIO = 0.3
PRIOR_SD_LOWER = {
    "conversion": DEFAULT_PRIORS.conversion_logit_sd,
    "delay_median": DEFAULT_PRIORS.delay_mu_sd,
    "deal_median": DEFAULT_PRIORS.deal_size_mu_sd,
}
"""A lower bound on each check's prior marginal sd on its unconstrained scale."""


def fitted_checks(
    records_factory, spec_factory, seed: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Fit one synthetic funnel: per check, posterior draws (draw, k) and the truth (k,).

    On the unconstrained scale (logit conversion, log delay and deal medians),
    where a 90% interval covers exactly when it does on the natural scale.
    """
    df, truth = records_factory(seed, history_days=364, weekly_rate=10.0)
    spec = spec_factory(drift=False, trend=True, draws=500, tune=700, chains=4)
    st = settings_from_spec(spec, target_accept=0.95)
    idata = fit(df, spec, AS_OF, seed, settings=st, allow_unconverged=True)
    post = idata["posterior"]
    assert list(post["cell"].values) == list(truth.cells)
    diag = json.loads(post.attrs["simengine_diagnostics"])
    print(f"seed {seed}: gate {post.attrs['simengine_converged']}", diag)
    n_draws = post.sizes["chain"] * post.sizes["draw"]
    for part, d in diag.items():
        assert d["divergences"] <= 0.05 * n_draws, (seed, part, d)
    checked = post[["conversion", "delay_mu", "deal_size_mu"]]
    rhat = az.rhat(checked, method="rank")
    ess = az.ess(checked, method="bulk")
    for v in checked.data_vars:
        assert float(rhat[v].max()) <= 1.01, (seed, v, float(rhat[v].max()))
        assert float(ess[v].min()) >= 400, (seed, v, float(ess[v].min()))

    def flat(name: str) -> np.ndarray:
        v = post[name].values
        return v.reshape(v.shape[0] * v.shape[1], -1)

    return {
        "conversion": (flat("conversion"), truth.conversion.ravel()),
        "delay_median": (flat("delay_mu"), truth.delay_mu.ravel()),
        "deal_median": (flat("deal_size_mu"), truth.deal_size_mu.ravel()),
    }


def to_unconstrained(name: str, draws: np.ndarray) -> np.ndarray:
    return np.log(draws / (1 - draws)) if name == "conversion" else draws


def covered(draws: np.ndarray, truth: np.ndarray) -> np.ndarray:
    lo, hi = np.quantile(draws, [(1 - LEVEL) / 2, (1 + LEVEL) / 2], axis=0)
    return (lo <= truth) & (truth <= hi)


def coverage_band(n: int, alpha: float = ALPHA) -> tuple[int, int]:
    """Accepted covered counts [lo, hi]: Binomial(n, LEVEL) 0.5% and 99.5% quantiles."""
    lo = int(stats.binom.ppf(alpha / 2, n, LEVEL))
    hi = int(stats.binom.isf(alpha / 2, n, LEVEL))
    return lo, hi


def verdict(fits: list[dict[str, tuple[np.ndarray, np.ndarray]]]) -> dict[str, object]:
    """The test's statistics over fits (draws on the unconstrained scale) and whether it passes."""
    hits, ratios = [], []
    for checks in fits:
        for name, (draws, truth) in checks.items():
            hits.append(covered(draws, truth))
            ratios.append(draws.std(axis=0) / PRIOR_SD_LOWER[name])
    k = int(np.concatenate(hits).sum())
    n = int(sum(h.size for h in hits))
    lo, hi = coverage_band(n)
    shrink = float(np.median(np.concatenate(ratios)))
    return {
        "covered": k,
        "n": n,
        "band": (lo, hi),
        "sd_ratio_median": shrink,
        "passes": lo <= k <= hi and shrink < MAX_SHRINK_RATIO,
    }


def unconstrained(checks: dict[str, tuple[np.ndarray, np.ndarray]]):
    return {
        name: (to_unconstrained(name, d), to_unconstrained(name, t))
        for name, (d, t) in checks.items()
    }


PRIOR_LOC = {
    "conversion": DEFAULT_PRIORS.conversion_logit_loc,
    "delay_median": DEFAULT_PRIORS.delay_mu_loc,
    "deal_median": DEFAULT_PRIORS.deal_size_mu_loc,
}


def mutate(checks, kind: str, rng: np.random.Generator):
    """The same fits with a mutation applied to every check's draws (unconstrained scale).

    ``wide``/``narrow``: draws spread 2x / 0.5x about their mean; ``bias``:
    shifted by one posterior sd (sign at random per check); ``prior``: draws
    from Normal(prior location, prior sd lower bound), a fit that returned
    (at least) its prior.
    """
    out = {}
    for name, (d, t) in checks.items():
        m, s = d.mean(axis=0), d.std(axis=0)
        if kind == "wide":
            d2 = m + 2.0 * (d - m)
        elif kind == "narrow":
            d2 = m + 0.5 * (d - m)
        elif kind == "bias":
            d2 = d + rng.choice([-1.0, 1.0], size=m.shape) * s
        elif kind == "prior":
            d2 = rng.normal(PRIOR_LOC[name], PRIOR_SD_LOWER[name], size=d.shape)
        else:
            raise ValueError(kind)
        out[name] = (d2, t)
    return out


@pytest.mark.slow
@pytest.mark.heavy
@pytest.mark.timeout(3600)
def test_recovery_coverage_shrinkage_and_convergence(records_factory, spec_factory):
    fits = [unconstrained(fitted_checks(records_factory, spec_factory, s)) for s in SEEDS]
    v = verdict(fits)
    print("fits:", v)
    lo, hi = v["band"]
    assert lo <= v["covered"] <= hi, v
    assert v["sd_ratio_median"] < MAX_SHRINK_RATIO, v
    assert v["passes"]
    # Power on these very fits: the mutations must fail the same test (2x too
    # wide or too narrow, and the returned prior, have power ~1; a 1-sd bias has
    # power ~0.98 (binomial approximation), so it is printed, not asserted).
    rng = np.random.default_rng(0)
    for kind in ("wide", "narrow", "prior", "bias"):
        mv = verdict([mutate(f, kind, rng) for f in fits])
        print(f"mutation {kind}:", mv)
        if kind != "bias":
            assert not mv["passes"], (kind, mv)

"""Parameter recovery on synthetic funnels with known truth (slow).

Over several seeds, the fitted 90% intervals must cover the true step
conversions, delay medians and deal-size medians at a rate consistent with
90%. Band: if intervals are calibrated, the number of covered checks out of
``n`` is about Binomial(n, 0.9) (checks within a fit are correlated through
pooling, so this is approximate); we require the count to be at least the
0.5% quantile of that binomial — a calibrated model fails this with
probability < 1%, while a model biased by one posterior sd covers only ~74%
of the time per check and fails it almost surely for n = 60.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from scipy import stats

from simengine.fitting.fit import fit, settings_from_spec

AS_OF = dt.date(2026, 1, 5)
SEEDS = (101, 202, 303)


def _covers(draws: np.ndarray, truth: np.ndarray) -> np.ndarray:
    lo, hi = np.quantile(draws, [0.05, 0.95], axis=0)
    return (lo <= truth) & (truth <= hi)


@pytest.mark.slow
def test_recovery_coverage_over_seeds(records_factory, spec_factory):
    covered = {"conversion": [], "delay_median": [], "deal_median": []}
    for seed in SEEDS:
        df, truth = records_factory(seed, history_days=364, weekly_rate=10.0)
        spec = spec_factory(drift=False, trend=True, draws=500, tune=700, chains=4)
        st = settings_from_spec(spec, target_accept=0.95)
        idata = fit(df, spec, AS_OF, seed, settings=st, allow_unconverged=True)
        post = idata["posterior"]
        assert list(post["cell"].values) == list(truth.cells)
        flat = {k: post[k].values.reshape(-1, *post[k].shape[2:]) for k in post.data_vars}
        covered["conversion"].append(_covers(flat["conversion"], truth.conversion).ravel())
        covered["delay_median"].append(
            _covers(np.exp(flat["delay_mu"]), np.exp(truth.delay_mu)).ravel()
        )
        covered["deal_median"].append(
            _covers(np.exp(flat["deal_size_mu"]), np.exp(truth.deal_size_mu)).ravel()
        )
    report = {}
    for name, parts in covered.items():
        hits = np.concatenate(parts)
        n, k = hits.size, int(hits.sum())
        floor = int(stats.binom.ppf(0.005, n, 0.9))
        report[name] = (k, n, floor)
        assert k >= floor, f"{name}: {k}/{n} intervals cover the truth; need >= {floor}"
    print(report)

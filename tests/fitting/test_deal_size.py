"""The deal-size model's centring rule and its log-sd estimates."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from simengine.fitting import deal_size
from simengine.fitting._pooling import log_sd_estimate


def test_log_sd_estimate_is_unbiased_with_its_stated_variance():
    """Debiased log sample sd of normal samples: mean log sigma, variance trigamma(df/2)/4.

    20,000 replications per sample size; both checks are two-sided 4-SE
    bands (alpha ~ 6e-5 each). Mutation: the plain ``log s`` with variance
    ``1 / (2 df)`` (the usual approximation) must fail at ``n = 2``.
    """
    rng = np.random.default_rng(11)
    sigma, reps = 0.6, 20_000
    for n in (2, 3, 5, 30):
        x = rng.normal(3.0, sigma, size=(reps, n))
        est, var = log_sd_estimate(np.full(reps, n), x.sum(axis=1), (x**2).sum(axis=1))
        dev = est - np.log(sigma)
        se_mean = dev.std(ddof=1) / np.sqrt(reps)
        assert abs(dev.mean()) < 4.0 * se_mean, (n, dev.mean(), se_mean)
        sq = (dev - dev.mean()) ** 2
        se_var = sq.std(ddof=1) / np.sqrt(reps)
        assert abs(sq.mean() - var[0]) < 4.0 * se_var, (n, sq.mean(), var[0], se_var)
        if n == 2:
            naive = 0.5 * np.log(x.var(axis=1, ddof=1)) - np.log(sigma)
            assert abs(naive.mean()) > 4.0 * naive.std(ddof=1) / np.sqrt(reps)
            assert abs(sq.mean() - 0.5) > 4.0 * se_var
    est, var = log_sd_estimate([0, 1], [0.0, 1.0], [0.0, 1.0])
    assert np.isnan(est).all()
    assert np.isnan(var).all()


def _stats(n: list[int], sigmas: list[float], seed: int = 0) -> SimpleNamespace:
    rng = np.random.default_rng(seed)
    s1, s2 = [], []
    for k, s in zip(n, sigmas, strict=True):
        x = rng.normal(9.0, s, size=k)
        s1.append(x.sum())
        s2.append((x**2).sum())
    return SimpleNamespace(
        deal_n=np.array(n, float), deal_sum_log=np.array(s1), deal_sum_log2=np.array(s2)
    )


def test_cells_with_a_handful_of_deals_are_never_centred():
    """Two or three deals do not pin a log-sd: non-centred whatever the spread estimate."""
    data = _stats([2, 3, 200, 150], [0.05, 2.0, 0.4, 1.2])
    mask = deal_size.centring(data)
    assert not mask[:2].any()
    assert mask[2:].all()  # log-sds 0.4 vs 1.2: a real spread, pinned by hundreds of deals
    # the expert count override still decides alone
    np.testing.assert_array_equal(
        deal_size.centring(data, centred_min_deals=3), [False, True, True, True]
    )


def test_one_informative_cell_leaves_no_global_log_sd_to_sample():
    """The global log-sd is integrated out: the sampler sees the cells and the spread only."""
    data = _stats([1, 95, 0], [0.5, 0.5, 0.5])
    model = deal_size.build_model(_model_data(data))
    names = {v.name for v in model.free_RVs}
    assert "deal_size_log_sigma_global" not in names
    assert {"deal_size_log_sigma_centred", "deal_size_log_sigma_z"} <= names


def _model_data(stats: SimpleNamespace) -> SimpleNamespace:
    n = stats.deal_n.size
    return SimpleNamespace(
        cells=tuple(f"s{k}/c0" for k in range(n)),
        segments=tuple(f"s{k}" for k in range(n)),
        cell_segment=np.arange(n),
        **vars(stats),
    )

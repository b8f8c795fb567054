"""The convergence gate on hand-made sampler output (no sampling needed)."""

from __future__ import annotations

import arviz as az
import numpy as np
import pytest
import xarray as xr

from simengine.errors import ConvergenceError
from simengine.fitting.diagnostics import check_convergence, raise_if_failed


def _idata(x: np.ndarray, diverging: np.ndarray, energy: np.ndarray) -> az.InferenceData:
    chains, draws = x.shape[:2]
    coords = {"chain": np.arange(chains), "draw": np.arange(draws)}
    post = xr.Dataset(
        {
            "good": (("chain", "draw"), np.random.default_rng(1).normal(size=(chains, draws))),
            "bad": (("chain", "draw", "cell"), x),
            "zero": (("chain", "draw", "cell"), np.zeros_like(x)),
        },
        coords={**coords, "cell": ["a", "b"]},
    )
    ss = xr.Dataset(
        {"diverging": (("chain", "draw"), diverging), "energy": (("chain", "draw"), energy)},
        coords=coords,
    )
    return az.InferenceData(posterior=post, sample_stats=ss)


def test_gate_passes_iid_draws():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 1000, 2))
    res = check_convergence(
        _idata(x, np.zeros((4, 1000), bool), rng.normal(size=(4, 1000))), ["good", "bad", "zero"]
    )
    assert res.ok, res.failures  # iid draws: r_hat ~ 1, ESS ~ 4000, BFMI ~ 2
    raise_if_failed([res])


def test_gate_names_each_failure():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 1000, 2))
    x[0, :, 1] += 5.0  # one chain elsewhere: r_hat >> 1.01, ESS collapses
    energy = np.cumsum(rng.normal(size=(4, 1000)), axis=1)  # random walk: BFMI << 0.3
    div = np.zeros((4, 1000), bool)
    div[2, 10] = True
    res = check_convergence(_idata(x, div, energy), ["good", "bad", "zero"], part="deal_size")
    text = "\n".join(res.failures)
    assert "deal_size: bad r_hat" in text
    assert "bad bulk ESS" in text
    assert "1 divergent transition" in text
    assert "BFMI" in text
    assert "good" not in text  # healthy parameters are not blamed
    assert "zero" not in text  # structural zeros are skipped
    with pytest.raises(ConvergenceError) as exc:
        raise_if_failed([res])
    assert "target_accept" in str(exc.value)
    assert "drift = false" in str(exc.value)
    assert exc.value.failures == list(res.failures)


def test_single_chain_is_named_not_a_numpy_warning():
    # one chain: split r_hat is all-NaN in arviz; the gate must say why it cannot
    # pass instead of emitting numpy's all-NaN RuntimeWarning (an error here)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1, 1000, 2))
    res = check_convergence(
        _idata(x, np.zeros((1, 1000), bool), rng.normal(size=(1, 1000))),
        ["good", "bad", "zero"],
        part="conversion",
    )
    assert res.failures == ("conversion: r_hat needs >= 2 chains (got 1); not checked",)
    assert np.isnan(res.worst_rhat)
    assert res.min_ess_bulk > 400  # ESS is still checked on the one chain (iid: ~1000)
    with pytest.raises(ConvergenceError, match="needs >= 2 chains"):
        raise_if_failed([res])


def test_nan_rhat_element_fails_by_name():
    # a live element whose draws are constant within each chain but differ across
    # chains has an undefined (NaN/inf) r_hat: it must fail, named, without warnings
    rng = np.random.default_rng(4)
    x = rng.normal(size=(4, 1000, 2))
    x[:, :, 1] = np.arange(4.0)[:, None]
    res = check_convergence(
        _idata(x, np.zeros((4, 1000), bool), rng.normal(size=(4, 1000))), ["bad"], part="p"
    )
    assert any(f.startswith("p: bad r_hat") for f in res.failures), res.failures

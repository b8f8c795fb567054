"""The tree marginalisation of Gaussian levels against brute-force linear algebra."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.graph.traversal import graph_inputs
from scipy import stats

from simengine.fitting._pooling import (
    centred_mask,
    exchangeable_columns,
    exchangeable_levels,
    group_cov,
    marginal_levels,
    spread_estimate,
    tree_levels,
)

SEG = np.array([0, 0, 1, 1, 1, 2])
LOC, G_SD, S_SD = 8.0, 3.0, 0.5
YBAR = np.array([9.1, 9.4, 10.3, 0.0, 10.1, 11.7])
W = np.array([40.0, 12.0, 300.0, 0.0, 55.0, 5.0])  # cell 3 has no data


def _prior_cov(sd_cell: float, s_sd: float) -> np.ndarray:
    same = (SEG[:, None] == SEG[None, :]).astype(float)
    return G_SD**2 + s_sd**2 * same + sd_cell**2 * np.eye(SEG.size)


def _compiled(s_sd: float, with_cells: bool):
    sd = pt.dscalar("sd")
    with pm.Model() as model:
        x, log_m = tree_levels(
            "lvl",
            LOC,
            G_SD,
            SEG,
            3,
            s_sd,
            sd if with_cells else None,
            pt.as_tensor_variable(YBAR),
            pt.as_tensor_variable(W),
        )
    zs = list(model.free_RVs)
    ins = [pt.dvector(f"in_{i}") if z.ndim else pt.dscalar(f"in_{i}") for i, z in enumerate(zs)]
    fn = pytensor.function(
        [sd, *ins], [x, log_m], givens=dict(zip(zs, ins, strict=True)), on_unused_input="ignore"
    )
    return fn, zs


@pytest.mark.parametrize(("s_sd", "with_cells"), [(S_SD, True), (0.0, True), (S_SD, False)])
def test_marginal_and_conditional_match_linear_algebra(s_sd, with_cells):
    sd_cell = 0.3 if with_cells else 0.0
    fn, zs = _compiled(s_sd, with_cells)
    k = _prior_cov(sd_cell, s_sd)
    obs = W > 0
    # marginal: ybar_obs ~ N(loc, K_oo + diag(1/w))
    cov_y = k[np.ix_(obs, obs)] + np.diag(1.0 / W[obs])
    want = stats.multivariate_normal(np.full(obs.sum(), LOC), cov_y).logpdf(YBAR[obs])
    # conditional of x given the data: Gaussian with this mean and covariance
    gain = k[:, obs] @ np.linalg.inv(cov_y)
    mean = LOC + gain @ (YBAR[obs] - LOC)
    cov = k - gain @ k[obs, :]
    # the draw is affine in the standard normals: read off its mean and covariance exactly
    sizes = [int(np.prod(z.shape.eval())) if z.ndim else 1 for z in zs]
    zero = [np.zeros(n) if z.ndim else 0.0 for z, n in zip(zs, sizes, strict=True)]
    x0, got = fn(sd_cell, *zero)
    np.testing.assert_allclose(got, want, rtol=1e-10)
    np.testing.assert_allclose(x0, mean, rtol=1e-10)
    cols = []
    for i, (z, n) in enumerate(zip(zs, sizes, strict=True)):
        for j in range(n):
            arg = list(zero)
            if z.ndim:
                e = np.zeros(n)
                e[j] = 1.0
                arg[i] = e
            else:
                arg[i] = 1.0
            cols.append(fn(sd_cell, *arg)[0] - x0)
    a = np.array(cols).T
    np.testing.assert_allclose(a @ a.T, cov, atol=1e-10)


def _mixed_fn(mask: np.ndarray):
    """Compile ``marginal_levels`` with a mixed centring mask: (sd, inputs...) -> x."""
    sd = pt.dscalar("sd")
    cov = group_cov(SEG, G_SD, S_SD)
    with pm.Model() as model:
        x = marginal_levels(
            "lvl",
            pt.as_tensor_variable(np.array([LOC, LOC - 1.0])),
            cov,
            sd,
            np.ones((2, SEG.size)),
            ("k", "cell"),
            np.inf,
            centred=mask,
        )
    zs = list(model.free_RVs)
    ins = [pt.dvector(f"in_{i}") for i in range(len(zs))]
    fn = pytensor.function([sd, *ins], x, givens=dict(zip(zs, ins, strict=True)))
    return fn, zs, model, cov


def test_mixed_centring_has_the_joint_law_of_the_levels():
    """Centred cells drawn from their marginal and the rest from their conditional: the same law.

    Exact (no sampling): the non-centred part is affine in its standard normals
    and in the centred levels, so its conditional mean, gain and covariance are
    read off and compared with the Gaussian conditioning formulas; the centred
    part's prior is checked against the marginal normal density.
    """
    mask = np.array(
        [[True, False, True, False, True, False], [False, False, True, True, True, True]]
    )
    fn, zs, model, fixed = _mixed_fn(mask)
    sd_cell = 0.4
    cov = fixed + sd_cell**2 * np.eye(SEG.size)
    locs = [LOC, LOC - 1.0]
    names = [z.name for z in zs]
    assert names == ["lvl_0", "lvl_0_z", "lvl_1", "lvl_1_z"]
    for k in range(2):
        c = np.flatnonzero(mask[k])
        o = np.flatnonzero(~mask[k])
        sizes = [int(n) for r in mask for n in (r.sum(), (~r).sum())]
        base = [np.zeros(n) for n in sizes]
        xc0 = np.full(c.size, locs[k])
        base[2 * k] = xc0
        x0 = fn(sd_cell, *base)[:, k]
        np.testing.assert_allclose(x0[c], xc0)
        np.testing.assert_allclose(x0[o], locs[k], rtol=1e-12)  # conditional mean at x_C = loc
        # gain: d x_O / d x_C = cov_OC cov_CC^-1
        gain = np.empty((o.size, c.size))
        for j in range(c.size):
            arg = list(base)
            e = xc0.copy()
            e[j] += 1.0
            arg[2 * k] = e
            gain[:, j] = fn(sd_cell, *arg)[o, k] - x0[o]
        want_gain = cov[np.ix_(o, c)] @ np.linalg.inv(cov[np.ix_(c, c)])
        np.testing.assert_allclose(gain, want_gain, atol=1e-10)
        # conditional covariance from the standard normals
        cols = []
        for j in range(o.size):
            arg = list(base)
            e = np.zeros(o.size)
            e[j] = 1.0
            arg[2 * k + 1] = e
            cols.append(fn(sd_cell, *arg)[o, k] - x0[o])
        a = np.array(cols).T
        want_cond = cov[np.ix_(o, o)] - want_gain @ cov[np.ix_(c, o)]
        np.testing.assert_allclose(a @ a.T, want_cond, atol=1e-10)
    # the centred part's prior density is the marginal normal of those cells
    value = np.array([8.3, 7.9, 8.8])
    sd_var = next(v for v in graph_inputs([model["lvl_0"]]) if v.name == "sd")
    lp = pytensor.function([sd_var], pm.logp(model["lvl_0"], value), on_unused_input="ignore")
    c0 = np.flatnonzero(mask[0])
    want = stats.multivariate_normal(np.full(c0.size, LOC), cov[np.ix_(c0, c0)]).logpdf(value)
    np.testing.assert_allclose(lp(sd_cell), want, rtol=1e-10)


def test_spread_estimate_is_unbiased_within_groups():
    """The moment estimator recovers tau² around group means (alpha ~ 6e-5: a 4-SE band).

    200 replications of 60 cells in 3 groups whose means differ by 2 (so
    ignoring the groups inflates the estimate: the mutation below must fail).
    """
    rng = np.random.default_rng(7)
    tau = 0.3
    groups = np.repeat(np.arange(3), 20)
    ests, pooled_ests = [], []
    for _ in range(200):
        v = rng.uniform(0.01, 0.2, groups.size)
        y = 2.0 * groups + rng.normal(0.0, tau, groups.size) + rng.normal(0.0, np.sqrt(v))
        ests.append(spread_estimate(y, v, groups) ** 2)
        pooled_ests.append(spread_estimate(y, v) ** 2)
    ests_a = np.array(ests)
    se = ests_a.std(ddof=1) / np.sqrt(ests_a.size)
    assert abs(ests_a.mean() - tau**2) < 4.0 * se, (ests_a.mean(), se)
    # mutation: the estimator without the groups is far off
    assert np.mean(pooled_ests) - tau**2 > 4.0 * np.std(pooled_ests, ddof=1) / np.sqrt(200)


def test_centred_mask_follows_the_precision_rule():
    prec = np.array([0.0, 5.0, 11.2, 100.0, np.nan])
    # spread 0.3: centred where prec * 0.09 >= 1, i.e. prec >= 11.1
    np.testing.assert_array_equal(centred_mask(prec, 0.3, 9.9), [False, False, True, True, False])
    # no spread estimate: the fallback is used
    np.testing.assert_array_equal(centred_mask(prec, None, 0.09), [False] * 5)
    # cells that look alike (spread 0): nothing centred
    assert not centred_mask(prec, 0.0, 1.0).any()
    # fewer than two usable cells in every group: no estimate
    assert spread_estimate([1.0, 2.0], [0.1, 0.1], [0, 1]) is None
    assert spread_estimate([1.0, 1.0, 1.0], [0.1, 0.1, 0.1]) == 0.0


def _exchangeable_fn(mask: np.ndarray):
    sd = pt.dscalar("sd")
    with pm.Model() as model:
        x = exchangeable_levels("lv", -0.5, 0.7, sd, mask)
    zs = list(model.free_RVs)
    ins = [pt.dvector(f"in_{i}") if z.ndim else pt.dscalar(f"in_{i}") for i, z in enumerate(zs)]
    fn = pytensor.function([sd, *ins], x, givens=dict(zip(zs, ins, strict=True)))
    return fn, model


def test_exchangeable_levels_have_the_joint_law_of_the_hierarchy():
    """Global level integrated out: centred cells marginal, global and the rest conditional.

    Exact (no sampling), for ``x[c] ~ N(g, sd)``, ``g ~ N(-0.5, 0.7)``: the
    centred cells' density equals the multivariate normal with covariance
    ``0.7² J + sd² I``; the other cells are affine in the centred ones and in
    standard normals, and their mean, gain and covariance are the Gaussian
    conditioning formulas of the joint (global level integrated out).
    """
    mask = np.array([True, False, True, True, False])
    fn, model = _exchangeable_fn(mask)
    sd_cell = 0.35
    names = [v.name for v in model.free_RVs]
    assert names == ["lv_z_global", "lv_centred", "lv_z"]
    n = mask.size
    cov = 0.7**2 * np.ones((n, n)) + sd_cell**2 * np.eye(n)
    c, o = np.flatnonzero(mask), np.flatnonzero(~mask)
    xc = np.array([-0.2, -0.9, 0.4])
    sd_var = next(v for v in graph_inputs([model["lv_centred"]]) if v.name == "sd")
    logp = pytensor.function([sd_var], pm.logp(model["lv_centred"], xc), on_unused_input="ignore")
    want = stats.multivariate_normal(np.full(c.size, -0.5), cov[np.ix_(c, c)]).logpdf(xc)
    np.testing.assert_allclose(logp(sd_cell), want, rtol=1e-10)
    # the other cells given the centred ones
    x0 = fn(sd_cell, 0.0, xc, np.zeros(o.size))
    np.testing.assert_allclose(x0[c], xc)
    gain = cov[np.ix_(o, c)] @ np.linalg.inv(cov[np.ix_(c, c)])
    np.testing.assert_allclose(x0[o], -0.5 + gain @ (xc + 0.5), rtol=1e-10)
    cols = []
    for arg in (
        [1.0, xc, np.zeros(o.size)],
        [0.0, xc, np.eye(o.size)[0]],
        [0.0, xc, np.eye(o.size)[1]],
    ):
        cols.append(fn(sd_cell, *arg)[o] - x0[o])
    a = np.array(cols).T
    want_cond = cov[np.ix_(o, o)] - gain @ cov[np.ix_(c, o)]
    np.testing.assert_allclose(a @ a.T, want_cond, atol=1e-12)


def test_exchangeable_levels_without_centred_cells_are_the_non_centred_hierarchy():
    fn, model = _exchangeable_fn(np.zeros(3, bool))
    assert [v.name for v in model.free_RVs] == ["lv_z_global", "lv_z"]
    x = fn(0.2, 1.0, np.array([0.0, 1.0, -1.0]))
    np.testing.assert_allclose(x, -0.5 + 0.7 + 0.2 * np.array([0.0, 1.0, -1.0]))


def test_exchangeable_columns_stack_one_hierarchy_per_column():
    mask = np.array([[True, False], [False, False], [True, True]])
    with pm.Model() as model:
        x = exchangeable_columns("lv", 0.0, 1.0, 0.5, mask)
    assert x.ndim == 2
    names = [v.name for v in model.free_RVs]
    assert names == [
        "lv_0_z_global",
        "lv_0_centred",
        "lv_0_z",
        "lv_1_z_global",
        "lv_1_centred",
        "lv_1_z",
    ]
    assert model["lv_0_centred"].type.shape == (2,)
    assert model["lv_1_z"].type.shape == (2,)

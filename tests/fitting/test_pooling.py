"""The tree marginalisation of Gaussian levels against brute-force linear algebra."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from scipy import stats

from simengine.fitting._pooling import tree_levels

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

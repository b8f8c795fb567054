"""Partial pooling with per-group centring (private helper of the models).

A pooled level ``x[g] ~ Normal(parent[g], sd)`` is sampled *centred* where
group ``g`` has plenty of data (its likelihood pins ``x[g]``; the non-centred
form would then tie ``sd`` and the offset into a narrow banana) and
*non-centred* (``x = parent + sd * z``, ``z ~ Normal(0, 1)``) where data are
thin (the prior dominates; the centred form would make a funnel). Both give
the same model; only the sampler's geometry changes.

Which groups are centred is chosen from the data (:func:`centred_mask`), by
the classic rule (Papaspiliopoulos, Roberts & Sköld 2007; Betancourt &
Girolami 2015): centred where the group's likelihood is more informative
about its level than the population is, i.e. where the likelihood precision
of the level times the population variance is at least 1. The population
spread is estimated from the groups' own estimates and standard errors
(:func:`spread_estimate`, a moment estimator); where it comes out as 0 (the
groups look alike) every group is non-centred, since the posterior of the
spread then reaches towards 0, where the centred form makes a funnel. A
count threshold (``threshold``) remains as an expert override.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pymc as pm
import pytensor.tensor as pt
from pytensor.tensor import TensorVariable
from scipy.special import digamma, polygamma

__all__ = [
    "CENTRED_MIN_OBS",
    "MIN_DF_CENTRED",
    "centred_mask",
    "exchangeable_columns",
    "exchangeable_levels",
    "group_cov",
    "log_sd_estimate",
    "marginal_levels",
    "pooled",
    "spread_estimate",
    "tree_levels",
    "zero_sum_offsets",
]

CENTRED_MIN_OBS = float("inf")
"""Count threshold of :func:`pooled` when neither a threshold nor a mask is given.

Infinite: non-centred everywhere. The models pass a data-driven mask
(:func:`centred_mask`) instead.
"""

MIN_DF_CENTRED = 4.0
"""Fewest degrees of freedom (observations - 1) of a cell whose log-sd level can be centred.

The precision rule reads a Gaussian likelihood of the level; the log of a
chi-square with fewer degrees of freedom is far from one (see
:func:`log_sd_estimate`).
"""


def spread_estimate(
    est: npt.ArrayLike, var: npt.ArrayLike, groups: npt.ArrayLike | None = None
) -> float | None:
    """Moment estimate of the sd of true levels around their group means.

    The DerSimonian–Laird estimator, within groups: with estimates ``y_i``
    of sampling variances ``v_i`` (weights ``w_i = 1/v_i``) and ``G`` groups,
    ``Q = sum_i w_i (y_i - ybar_g(i))²`` (``ybar_g`` the weighted group
    mean) has expectation ``(n - G) + tau² (sum_i w_i - sum_g S2_g / S1_g)`` (``S1_g``,
    ``S2_g``: the sums of ``w_i`` and ``w_i²`` over group ``g``),
    so ``tau² = max(0, (Q - (n - G)) / that factor)``. Elements with a
    non-finite estimate or variance are left out.

    Parameters
    ----------
    est, var : array_like, shape (n,)
        Per-cell estimates and their sampling variances.
    groups : array_like of int, shape (n,), optional
        Group of each cell (default: one group).

    Returns
    -------
    float or None
        The estimated sd (0.0 when the cells vary no more than their
        sampling noise), or ``None`` when no group has two usable cells.
    """
    y = np.asarray(est, dtype=np.float64).ravel()
    v = np.asarray(var, dtype=np.float64).ravel()
    g = np.zeros(y.size, np.int64) if groups is None else np.asarray(groups, np.int64).ravel()
    ok = np.isfinite(y) & np.isfinite(v) & (v > 0)
    y, v, g = y[ok], v[ok], g[ok]
    q = 0.0
    df = 0
    denom = 0.0
    for label in np.unique(g):
        sel = g == label
        if sel.sum() < 2:
            continue
        w = 1.0 / v[sel]
        mean = float(np.sum(w * y[sel]) / np.sum(w))
        q += float(np.sum(w * (y[sel] - mean) ** 2))
        df += int(sel.sum()) - 1
        denom += float(np.sum(w) - np.sum(w**2) / np.sum(w))
    if df == 0 or denom <= 0:
        return None
    return float(np.sqrt(max(0.0, (q - df) / denom)))


def log_sd_estimate(
    n: npt.ArrayLike, sum_x: npt.ArrayLike, sum_x2: npt.ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Unbiased estimates of ``log sigma`` per cell of normal data, with their variances.

    With ``df = n - 1`` and sample variance ``s²``, ``log s² = log sigma² +
    log(chi²_df / df)``, whose mean is ``digamma(df / 2) + log(2 / df)`` and
    variance ``trigamma(df / 2)``; so ``log s`` minus half that mean is
    unbiased with variance ``trigamma(df / 2) / 4``. The usual ``1 / (2
    df)`` is half the truth at ``df = 1`` (and ``log s`` there is biased by
    -0.64): cells with two or three observations would otherwise look far
    more spread than they are.

    Parameters
    ----------
    n, sum_x, sum_x2 : array_like
        Count, sum and sum of squares per cell.

    Returns
    -------
    est, var : ndarray
        NaN where ``n < 2``.
    """
    n_a = np.asarray(n, dtype=np.float64)
    df = np.maximum(n_a - 1.0, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.asarray(sum_x, np.float64) / np.maximum(n_a, 1.0)
        s2 = (np.asarray(sum_x2, np.float64) - n_a * mean**2) / df
        bias = 0.5 * (digamma(df / 2.0) + np.log(2.0 / df))
        est = np.where(n_a >= 2, 0.5 * np.log(np.maximum(s2, 1e-300)) - bias, np.nan)
    var = np.where(n_a >= 2, 0.25 * polygamma(1, df / 2.0), np.nan)
    return est, var


def centred_mask(precision: npt.ArrayLike, spread: float | None, fallback: float) -> np.ndarray:
    """Return where a level is sampled centred: ``precision * spread² >= 1``.

    ``precision`` is the likelihood precision of each level (e.g. ``n /
    sigma²`` for a mean of ``n`` observations with sd ``sigma``), ``spread``
    the population sd of the levels around their parent (from
    :func:`spread_estimate`), or ``fallback`` (e.g. the prior mean of the
    spread) when it could not be estimated. Where the likelihood is the
    sharper of the two the posterior of the level is the likelihood's, which
    the centred form samples without a funnel; where the population is the
    sharper the non-centred form does.

    Parameters
    ----------
    precision : array_like
        Likelihood precision of each level (0 where no data).
    spread : float or None
        Estimated population sd.
    fallback : float
        Used when ``spread`` is None.

    Returns
    -------
    ndarray of bool, the shape of ``precision``
    """
    tau = fallback if spread is None else spread
    p = np.asarray(precision, dtype=np.float64)
    return np.where(np.isfinite(p), p, 0.0) * tau**2 >= 1.0


def pooled(
    name: str,
    parent: TensorVariable,
    sd: TensorVariable,
    n_obs: npt.ArrayLike,
    dims: str | tuple[str, ...],
    threshold: float | None = None,
    centred: npt.ArrayLike | None = None,
) -> TensorVariable:
    """Return ``x ~ Normal(parent, sd)`` with per-element centring.

    Parameters
    ----------
    name : str
        Name of the raw random variable (``f"{name}_raw"``).
    parent : TensorVariable
        Location, broadcastable to ``n_obs``'s shape.
    sd : TensorVariable
        Pooling scale (scalar or broadcastable).
    n_obs : array_like
        Observations informing each element (used with ``threshold``).
    dims : str or tuple of str
        Model dims of the variable.
    threshold : float, optional
        Centred where ``n_obs >= threshold`` (default :data:`CENTRED_MIN_OBS`);
        ignored when ``centred`` is given.
    centred : array_like of bool, optional
        Which elements are centred (e.g. from :func:`centred_mask`).

    Returns
    -------
    TensorVariable
        The level ``x``.
    """
    if centred is None:
        limit = CENTRED_MIN_OBS if threshold is None else threshold
        centred = np.asarray(n_obs, dtype=float) >= limit
    else:
        centred = np.broadcast_to(np.asarray(centred, dtype=bool), np.shape(n_obs))
    mu = pt.where(centred, parent, 0.0)
    sigma = pt.where(centred, sd, 1.0)
    raw = pm.Normal(f"{name}_raw", mu=mu, sigma=sigma, dims=dims)
    return pt.where(centred, raw, parent + sd * raw)


def zero_sum_offsets(
    name: str,
    sd: TensorVariable | float,
    group_dim: str,
    other_dim: str | None = None,
    *,
    centred: bool = False,
) -> TensorVariable:
    """Return ``sd * z`` with ``z`` standard normal summing to zero over the groups.

    Used for the segment level: with few segments whose levels the data pin
    down, free offsets ``global + sd z`` leave a ridge (the global level and
    the mean of ``z`` trade off) that a diagonal mass matrix samples poorly;
    making ``z`` sum to zero identifies the global level as the mean of the
    segment levels. Returns shape ``(group, other)`` (or ``(group,)``).

    With a fixed (float) ``sd`` there is no funnel and the two forms differ
    only by a constant scale. With a learned ``sd`` and groups whose levels
    the data pin down, ``centred=True`` (``offsets ~ ZeroSumNormal(sd)``,
    named ``f"{name}_offset"``) avoids the non-centred banana between ``sd``
    and ``z``.

    Parameters
    ----------
    name : str
        Name of the random variable (``f"{name}_z"``, or ``f"{name}_offset"``
        when centred).
    sd : TensorVariable or float
        Scale of the offsets.
    group_dim : str
        The dim summed to zero (e.g. ``"segment"``); at least two labels.
    other_dim : str, optional
        A second dim (e.g. ``"step"``).
    centred : bool
        Sample the offsets themselves instead of standardised ``z``.

    Returns
    -------
    TensorVariable
    """
    if centred:
        if other_dim is None:
            return pm.ZeroSumNormal(f"{name}_offset", sigma=sd, dims=group_dim)
        off = pm.ZeroSumNormal(
            f"{name}_offset", sigma=sd, dims=(other_dim, group_dim), n_zerosum_axes=1
        )
        return off.T
    if other_dim is None:
        return sd * pm.ZeroSumNormal(f"{name}_z", sigma=1.0, dims=group_dim)
    z = pm.ZeroSumNormal(f"{name}_z", sigma=1.0, dims=(other_dim, group_dim), n_zerosum_axes=1)
    return sd * z.T


def group_cov(groups: npt.ArrayLike, global_sd: float, group_sd: float) -> np.ndarray:
    """Prior covariance of cell levels from a global level and fixed-scale group offsets.

    ``x[c] = g + o[group[c]] + (cell term)`` with ``g ~ Normal(loc, global_sd)``
    and ``o ~ Normal(0, group_sd)`` integrated out: ``global_sd² J +
    group_sd² [group[c] == group[d]]``. Add ``sd_cell² I`` for the cell term.

    Parameters
    ----------
    groups : array_like of int, shape (cell,)
        Group (segment) index of each cell.
    global_sd, group_sd : float
        Prior sds of the global level and of the group offsets.

    Returns
    -------
    ndarray, shape (cell, cell)
    """
    g = np.asarray(groups)
    same = (g[:, None] == g[None, :]).astype(np.float64)
    return global_sd**2 * np.ones_like(same) + group_sd**2 * same


def marginal_levels(
    name: str,
    loc: float | TensorVariable,
    fixed_cov: np.ndarray,
    sd_cell: TensorVariable | float | None,
    n_obs: npt.ArrayLike,
    dims: tuple[str, str],
    threshold: float,
    centred: npt.ArrayLike | None = None,
) -> TensorVariable:
    """Cell levels with the global and group levels integrated out.

    ``x[k, :] ~ MvNormal(loc, fixed_cov + sd_cell² I)`` for each ``k`` of the
    first dim (e.g. step) over the cells (second dim). The global level and
    the fixed-scale segment offsets are Gaussian, so they are marginalised
    exactly: no global/segment/cell ridge is left for the sampler and the only
    hierarchical scale is ``sd_cell``. The levels are sampled centred
    (``f"{name}"``) when every cell is centred (the data pin each level; no
    funnel), non-centred (``x = loc + chol(cov) z``, ``f"{name}_z"``) when
    none is, and otherwise, per row ``k``, the centred cells ``C`` as
    ``f"{name}_{k}"`` ~ ``MvNormal(loc, cov_CC)`` and the others ``N`` from
    their exact conditional, ``x_N = loc + cov_NC cov_CC^-1 (x_C - loc) +
    chol(cov_N|C) z`` (``f"{name}_z_{k}"``): the same joint law.

    Parameters
    ----------
    name : str
        Random variable name.
    loc : float or TensorVariable
        Prior mean, broadcastable to the first dim (shape ``(k,)``) or scalar.
    fixed_cov : ndarray, shape (cell, cell)
        From :func:`group_cov`.
    sd_cell : TensorVariable, float or None
        Cell spread, learned or fixed (``None``: no cell term, e.g. one cell
        per segment). With a fixed spread the covariance is a constant.
    n_obs : array_like, shape (k, cell)
        Observations informing each level.
    dims : tuple of str
        ``(outer, "cell")`` model dims.
    threshold : float
        Minimum observations for the centred form (when ``centred`` is None).
    centred : array_like of bool, shape (k, cell), optional
        Which levels are centred (e.g. from :func:`centred_mask`).

    Returns
    -------
    TensorVariable, shape (cell, k)
        Transposed to ``(cell, outer)``, the models' layout.
    """
    n_cells = fixed_cov.shape[0]
    cov: TensorVariable = pt.as_tensor_variable(fixed_cov)
    if sd_cell is not None:
        cov = cov + sd_cell**2 * pt.eye(n_cells)
    mean = pt.as_tensor_variable(loc)
    mean = mean[:, None] + pt.zeros((1, n_cells)) if mean.ndim == 1 else mean + pt.zeros(n_cells)
    n = np.asarray(n_obs, dtype=float)
    if centred is None:
        # the count rule centres all levels or none
        mask = np.full(n.shape, float(np.min(n)) >= threshold)
    else:
        mask = np.asarray(centred, dtype=bool)
    if mask.all():
        x = pm.MvNormal(name, mu=mean, cov=cov, dims=dims)
    elif not mask.any():
        chol = pt.linalg.cholesky(cov)
        z = pm.Normal(f"{name}_z", 0.0, 1.0, dims=dims)
        x = mean + z @ chol.T
    else:
        rows = [_mixed_row(f"{name}_{k}", mean[k], cov, mask[k]) for k in range(len(mask))]
        x = pt.stack(rows, axis=0)
    return x.T


def _mixed_row(
    name: str, mean: TensorVariable, cov: TensorVariable, centred: np.ndarray
) -> TensorVariable:
    """One row of :func:`marginal_levels`: centred cells drawn, the rest conditional."""
    c = np.flatnonzero(centred)
    o = np.flatnonzero(~centred)
    n = centred.size
    if o.size == 0:
        return pm.MvNormal(name, mu=mean, cov=cov, shape=n)
    if c.size == 0:
        z = pm.Normal(f"{name}_z", 0.0, 1.0, shape=n)
        return mean + pt.linalg.cholesky(cov) @ z
    s_cc = cov[c][:, c]
    s_oc = cov[o][:, c]
    s_oo = cov[o][:, o]
    x_c = pm.MvNormal(name, mu=mean[c], cov=s_cc, shape=c.size)
    gain = pt.linalg.solve(s_cc, s_oc.T, assume_a="pos").T
    cond = s_oo - gain @ s_oc.T
    z = pm.Normal(f"{name}_z", 0.0, 1.0, shape=o.size)
    x_o = mean[o] + gain @ (x_c - mean[c]) + pt.linalg.cholesky(cond) @ z
    out = pt.zeros(n)
    out = pt.set_subtensor(out[c], x_c)
    return pt.set_subtensor(out[o], x_o)


def tree_levels(
    name: str,
    loc: float,
    global_sd: float,
    segment_of: npt.ArrayLike,
    n_segments: int,
    segment_sd: float,
    sd_cell: TensorVariable | None,
    ybar: TensorVariable,
    weight: TensorVariable,
) -> tuple[TensorVariable, TensorVariable]:
    """Gaussian cell levels under global → segment → cell, integrated out and drawn back.

    The levels are ``g ~ Normal(loc, global_sd)``, ``m[s] ~ Normal(g,
    segment_sd)`` and ``x[c] ~ Normal(m[segment_of[c]], sd_cell)`` (``x = m``
    when ``sd_cell`` is None), and each cell's data enter only through a
    Gaussian cell mean ``ybar[c] ~ Normal(x[c], 1 / weight[c])`` (``weight =
    n / sigma²``; 0 for a cell without data). All three levels then integrate
    out exactly, one level of the tree at a time with scalar algebra (no
    matrix factorisation: PyTensor's Cholesky costs ≈ 20 ms a gradient in the
    Numba backend here), and the sampler sees only the scales: no funnel
    between ``sd_cell`` and the levels, which the centred form hit where the
    posterior of ``sd_cell`` reaches towards 0 (two cells per segment). The
    levels are drawn back from their exact conditionals, top down
    (``g | data``, ``m | g, data``, ``x | m, data``), from standard normals
    ``f"{name}_z_global"``, ``f"{name}_z_segment"`` (if ``segment_sd`` > 0)
    and ``f"{name}_z_cell"`` (if ``sd_cell`` is given), which are a
    posteriori independent of everything else.

    Parameters
    ----------
    name : str
        Prefix of the standard-normal variables.
    loc, global_sd : float
        Prior mean and sd of the global level.
    segment_of : array_like of int, shape (cell,)
        Segment index of each cell.
    n_segments : int
        Number of segments.
    segment_sd : float
        Prior sd of a segment around the global level (0: one level).
    sd_cell : TensorVariable or None
        Learned sd of a cell around its segment.
    ybar : TensorVariable, shape (cell,)
        Cell means (any finite value where ``weight`` is 0).
    weight : TensorVariable, shape (cell,)
        Precision of each cell mean; 0 for a cell without data.

    Returns
    -------
    levels : TensorVariable, shape (cell,)
        A draw of ``x`` from its conditional posterior.
    log_marginal : TensorVariable
        ``log p(ybar of the cells with data | scales)``, the Gaussian
        likelihood of the levels integrated over them.
    """
    seg = np.asarray(segment_of, dtype=np.int64)
    onehot = np.zeros((seg.size, n_segments))
    onehot[np.arange(seg.size), seg] = 1.0
    h = pt.as_tensor_variable(onehot)
    log_2pi = float(np.log(2.0 * np.pi))

    def _gauss(prec: TensorVariable, resid: TensorVariable) -> TensorVariable:
        # log N(resid | 0, 1/prec) where prec > 0, else 0
        safe = pt.where(prec > 0.0, prec, 1.0)
        val = 0.5 * (pt.log(safe) - log_2pi) - 0.5 * safe * resid**2
        return pt.sum(pt.where(prec > 0.0, val, 0.0))

    def _pooled_mean(
        prec: TensorVariable, value: TensorVariable
    ) -> tuple[TensorVariable, TensorVariable, TensorVariable]:
        # total precision, precision-weighted sum and mean (0 where no data)
        tot, wsum = prec, value
        safe = pt.where(tot > 0.0, tot, 1.0)
        return tot, wsum, pt.where(tot > 0.0, wsum / safe, 0.0)

    # cells -> segments: ybar[c] | m[s] ~ N(m[s], sd_cell² + 1/w[c])
    prec_c = weight if sd_cell is None else weight / (1.0 + sd_cell**2 * weight)
    p_s, sum_s, ybar_s = _pooled_mean(prec_c @ h, (prec_c * ybar) @ h)
    # prod_c N(ybar_c | m, v_c)
    #   = N(ybar_s | m, 1/P_s) x prod_c N(ybar_c | ybar_s, v_c) / N(0 | 0, 1/P_s)
    log_m = _gauss(prec_c, ybar - ybar_s[seg]) - _gauss(p_s, pt.zeros_like(p_s))
    # segments -> global: ybar_s | g ~ N(g, segment_sd² + 1/P_s)
    prec_s = p_s / (1.0 + segment_sd**2 * p_s)
    q, sum_g, ybar_g = _pooled_mean(pt.sum(prec_s), pt.sum(prec_s * ybar_s))
    log_m = log_m + _gauss(prec_s, ybar_s - ybar_g) - _gauss(q, pt.zeros_like(q))
    # global: ybar_g ~ N(loc, global_sd² + 1/Q)
    log_m = log_m + _gauss(q / (1.0 + global_sd**2 * q), ybar_g - loc)

    # draw back, top down
    gv = global_sd**2
    z_g = pm.Normal(f"{name}_z_global", 0.0, 1.0)
    g = (loc + gv * sum_g) / (1.0 + gv * q) + pt.sqrt(gv / (1.0 + gv * q)) * z_g
    sv = segment_sd**2
    m = (g + sv * sum_s) / (1.0 + sv * p_s)
    if segment_sd > 0.0:
        z_s = pm.Normal(f"{name}_z_segment", 0.0, 1.0, shape=n_segments)
        m = m + pt.sqrt(sv / (1.0 + sv * p_s)) * z_s
    if sd_cell is None:
        return m[seg], log_m
    cv = sd_cell**2
    z_c = pm.Normal(f"{name}_z_cell", 0.0, 1.0, shape=seg.size)
    x = (m[seg] + cv * weight * ybar) / (1.0 + cv * weight)
    x = x + pt.sqrt(cv / (1.0 + cv * weight)) * z_c
    return x, log_m


def _exchangeable_logp(
    value: TensorVariable, loc: TensorVariable, global_sd: TensorVariable, sd: TensorVariable
) -> TensorVariable:
    """``log N(value | loc 1, global_sd² J + sd² I)`` in closed form (Sherman-Morrison)."""
    k = pt.cast(value.shape[-1], "float64")
    r = value - loc
    a = sd**2
    b = global_sd**2
    denom = a + k * b
    quad = (pt.sum(r**2) - b * pt.sum(r) ** 2 / denom) / a
    logdet = (k - 1.0) * pt.log(a) + pt.log(denom)
    return -0.5 * (k * float(np.log(2.0 * np.pi)) + logdet + quad)


def _exchangeable_random(
    loc: np.ndarray,
    global_sd: np.ndarray,
    sd: np.ndarray,
    rng: np.random.Generator | None = None,
    size: tuple[int, ...] | None = None,
) -> np.ndarray:
    """Draw exchangeable levels: a shared global level plus independent offsets."""
    gen = np.random.default_rng() if rng is None else rng
    shape = (1,) if size is None else tuple(size)
    shared = gen.normal(size=(*shape[:-1], 1))
    return np.asarray(loc + global_sd * shared + sd * gen.normal(size=shape))


def exchangeable_levels(
    name: str,
    loc: float,
    global_sd: float,
    sd: TensorVariable | float,
    centred: npt.ArrayLike,
) -> TensorVariable:
    """Levels ``x[c] ~ Normal(g, sd)``, ``g ~ Normal(loc, global_sd)``, with ``g`` integrated out.

    The centred levels ``C`` are sampled from their marginal law,
    ``MvNormal(loc, global_sd² J + sd² I)`` (``f"{name}_centred"``; the
    density in closed form, no factorisation), so the sampler never sees the
    global level next to them: with few informative levels the centred form
    ``x ~ Normal(g, sd)`` ties ``g`` to them with a width of ``sd`` (a funnel
    where the posterior of ``sd`` reaches towards 0) and the non-centred one
    makes a banana. The global level is drawn back from its exact
    conditional ``g | x_C, sd`` (standard normal ``f"{name}_z_global"``) and
    the other levels non-centred, ``x = g + sd z`` (``f"{name}_z"``): the same
    joint law as the hierarchy.

    Parameters
    ----------
    name : str
        Prefix of the random variables.
    loc, global_sd : float
        Prior mean and sd of the global level.
    sd : TensorVariable or float
        Spread of the levels around the global level (learned, or fixed).
    centred : array_like of bool, shape (n,)
        Which levels are sampled centred (e.g. from :func:`centred_mask`).

    Returns
    -------
    levels : TensorVariable, shape (n,)
    """
    mask = np.asarray(centred, dtype=bool)
    c = np.flatnonzero(mask)
    o = np.flatnonzero(~mask)
    a = sd**2
    b = global_sd**2
    z_g = pm.Normal(f"{name}_z_global", 0.0, 1.0)
    out = pt.zeros(mask.size)
    if c.size:
        x_c = pm.CustomDist(
            f"{name}_centred",
            pt.as_tensor_variable(float(loc)),
            pt.as_tensor_variable(float(global_sd)),
            pt.as_tensor_variable(sd),
            logp=_exchangeable_logp,
            random=_exchangeable_random,
            support_point=lambda rv, size, loc_, gsd_, sd_: pt.full_like(rv, loc_),
            shape=c.size,
        )
        prec = 1.0 / b + c.size / a
        g = (loc / b + pt.sum(x_c) / a) / prec + z_g / pt.sqrt(prec)
        out = pt.set_subtensor(out[c], x_c)
    else:
        g = loc + global_sd * z_g
    if o.size:
        z = pm.Normal(f"{name}_z", 0.0, 1.0, shape=o.size)
        out = pt.set_subtensor(out[o], g + sd * z)
    return out


def exchangeable_columns(
    name: str,
    loc: float,
    global_sd: float,
    sd: TensorVariable | float,
    centred: npt.ArrayLike,
) -> TensorVariable:
    """:func:`exchangeable_levels` for each column of a (cell, k) grid, one global level per column.

    Column ``k``'s variables are named ``f"{name}_{k}_..."``; the spread ``sd``
    is shared by the columns.

    Parameters
    ----------
    name : str
        Prefix of the random variables.
    loc, global_sd : float
        Prior mean and sd of each column's global level.
    sd : TensorVariable or float
        Spread of the cells around their column's global level.
    centred : array_like of bool, shape (cell, k)
        Which levels are sampled centred.

    Returns
    -------
    TensorVariable, shape (cell, k)
    """
    mask = np.asarray(centred, dtype=bool)
    cols = [
        exchangeable_levels(f"{name}_{k}", loc, global_sd, sd, mask[:, k])
        for k in range(mask.shape[1])
    ]
    return pt.stack(cols, axis=1)

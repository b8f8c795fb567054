"""The arrivals model: local level (random walk per entry stage), t-pooled cells, NB weeks."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from simengine.fitting import arrivals
from simengine.fitting._compiled import graph_signature

CELLS = ("a/x", "a/y", "b/x")
ENTRY = ("lead", "qual", "opp")


def _data(counts: np.ndarray) -> Any:
    """The fields of FunnelData the arrivals model reads (entry at ``lead`` only)."""
    n_c, n_w = counts.shape
    full = np.zeros((n_c, len(ENTRY), n_w), np.int64)
    full[:, 0, :] = counts
    active = np.zeros((n_c, len(ENTRY)), bool)
    active[:, 0] = True
    return SimpleNamespace(
        cells=CELLS,
        entry_stages=ENTRY,
        arrival_counts=full,
        arrival_active=active,
        n_weeks=n_w,
    )


def _shifted(seed: int, weeks: int = 26, jump_weeks: int = 8, base: float = 20.0) -> np.ndarray:
    """Poisson weekly counts at ``base`` that double for the last ``jump_weeks`` weeks."""
    rng = np.random.default_rng(seed)
    level = np.where(np.arange(weeks) >= weeks - jump_weeks, 2.0 * base, base)
    return rng.poisson(np.broadcast_to(level, (len(CELLS), weeks)))


def test_model_has_a_level_walk_and_writes_its_scale() -> None:
    model = arrivals.build_model(_data(_shifted(0)))
    names = {v.name for v in model.free_RVs}
    assert {"arrival_level_z", "arrival_level_sd_raw", "arrival_log_rate_lead_centred"} <= names
    assert "arrival_level_sd" in arrivals.OUTPUT_VARS
    assert model.named_vars_to_dims["arrival_level_sd"] == ("entry_stage",)
    # stages where no unit enters get scale 0 (no walk ahead there)
    point = model.initial_point()
    fn = model.compile_fn(
        model["arrival_level_sd"], inputs=model.value_vars, on_unused_input="ignore"
    )
    val = fn(point)
    assert val[0] > 0
    assert np.all(val[1:] == 0)


def test_walk_basis_has_the_law_of_the_centred_walk():
    """Exact: U diag(lam) U' is the covariance of a unit random walk minus its window mean."""
    for n in (2, 5, 52):
        basis, lam = arrivals.walk_basis(n)
        t = np.arange(n, dtype=float)
        centre = np.eye(n) - 1.0 / n
        want = centre @ np.minimum.outer(t, t) @ centre
        np.testing.assert_allclose(basis @ np.diag(lam) @ basis.T, want, atol=1e-9)
        np.testing.assert_allclose(basis.T @ basis, np.eye(n - 1), atol=1e-9)
        assert np.all(np.diff(lam) <= 1e-12)  # slow components first


def test_walk_centring_follows_how_much_the_counts_see() -> None:
    """Thick counts sample the slow components centred, thin counts none; slow before fast.

    Deterministic given the counts. Thick: 2,000 a week per cell with a
    level that moves (a doubling), where the counts pin the slow
    components; thin: 0.2 a week, where the prior does. Mutation: the rule
    reversed (``<``) or the precision left out fails.
    """
    thick = arrivals.walk_centring(_data(_shifted(5, weeks=52, base=2000.0)), trend=False)
    thin = arrivals.walk_centring(_data(_shifted(5, weeks=52, base=0.2)), trend=False)
    assert thick.shape == thin.shape == (len(ENTRY), 51)
    assert thick[0].sum() >= 3
    assert not thin.any()
    assert not thick[1:].any()  # no unit enters there
    # without a trend the centred components are the slowest ones (largest
    # prior variance)
    k = int(thick[0].sum())
    assert thick[0, :k].all()
    assert not thick[0, k:].any()


def test_path_basis_has_the_law_of_the_centred_walk() -> None:
    """Exact: ``b xhat + basis r`` with ``r ~ N(0, mu)``, ``b | r ~ N(k'r/mu, nu)`` is the walk.

    Mutation: dropping ``b``'s conditional mean or ``nu`` fails.
    """
    for n in (2, 5, 52):
        xhat, basis, mu, k, nu = arrivals.path_basis(n)
        t = np.arange(n, dtype=float)
        centre = np.eye(n) - 1.0 / n
        want = centre @ np.minimum.outer(t, t) @ centre
        # (r, b) = A (xi_r, xi_b) with standard normals
        a = np.zeros((n - 1, n - 1))
        a[: n - 2, : n - 2] = np.diag(np.sqrt(mu))
        a[n - 2, : n - 2] = k / np.sqrt(mu)
        a[n - 2, n - 2] = np.sqrt(nu)
        to_walk = np.column_stack([basis, xhat]) @ a
        np.testing.assert_allclose(to_walk @ to_walk.T, want, atol=1e-9)
        np.testing.assert_allclose(basis.T @ xhat, 0.0, atol=1e-9)


@pytest.mark.parametrize("trend", [True, False])
def test_model_walk_and_trend_have_the_prior_law(trend: bool) -> None:
    """Exact: the model's walk and trends have the law of the hierarchy, read off the graph.

    With every coordinate non-centred the walk relative to the last week and
    the pairs' trends are affine in standard normals; their covariance must
    be ``s² min(back, back)`` for the walk (weekly sd ``s``), ``sd_g² +
    sd_c²`` per pair's trend and ``sd_g²`` between pairs (one entry stage),
    and 0 between walk and trend (all 0 without a trend). ``arrival_level``
    is then anchored at the last week. Mutation: a walk in the uncentred
    basis, a wrong share of ``b`` given to the trend, a missing ``sqrt`` in
    its conditional sd, or ``dev`` not zero sum fails.
    """
    from simengine.fitting.priors import DEFAULT_PRIORS as P

    n_w = 10
    data = _data(_shifted(6, weeks=n_w, jump_weeks=0, base=30.0))
    model = arrivals.build_model(data, trend=trend)
    mask = model["arrival_level_centred"]
    mask.set_value(np.zeros(mask.get_value().shape))
    outs = model.replace_rvs_by_values([model["arrival_level"], model["arrival_trend"]])
    fn = model.compile_fn(outs, inputs=model.value_vars, on_unused_input="ignore")
    sd_fn = model.compile_fn(
        model.replace_rvs_by_values([model["arrival_level_sd"]])[0],
        inputs=model.value_vars,
        on_unused_input="ignore",
    )
    point = model.initial_point()
    s = sd_fn(point)[0]
    names = [
        "arrival_level_z",
        "arrival_path_b",
        "arrival_trend_common_z",
        "arrival_trend_lead_dev",
    ]
    names = [n for n in names if n in point or f"{n}_zerosum__" in point]
    assert len(names) == (4 if trend else 2)
    base = {**point}
    for name in names:
        key = f"{name}_zerosum__" if name.endswith("dev") else name
        base[key] = np.zeros_like(point[key])

    def f(pt_: dict[str, np.ndarray]) -> np.ndarray:
        level, tr = fn(pt_)
        return np.r_[level[0], tr[:, 0]]

    f0 = f(base)
    cols = []
    for name in names:
        key = f"{name}_zerosum__" if name.endswith("dev") else name
        for idx in np.ndindex(base[key].shape):
            if name != "arrival_trend_lead_dev" and idx[0] != 0:
                continue  # other entry stages: no pair there
            e = dict(base)
            e[key] = base[key].copy()
            e[key][idx] = 1.0
            col = f(e) - f0
            if name == "arrival_trend_lead_dev":
                col = col * P.arrival_trend_cell_sd  # the zero-sum normal's sd
            cols.append(col)
    jac = np.array(cols).T
    got = jac @ jac.T
    back = (n_w - 1.0) - np.arange(n_w)
    want = np.zeros_like(got)
    want[:n_w, :n_w] = s**2 * np.minimum.outer(back, back)
    n_c = len(CELLS)
    if trend:
        want[n_w:, n_w:] = P.arrival_trend_sd**2 + P.arrival_trend_cell_sd**2 * np.eye(n_c)
    np.testing.assert_allclose(f0, 0.0, atol=1e-12)
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_new_counts_of_the_same_layout_reuse_the_compiled_model() -> None:
    a = graph_signature(arrivals.build_model(_data(_shifted(1))))
    b = graph_signature(arrivals.build_model(_data(_shifted(2))))
    c = graph_signature(arrivals.build_model(_data(_shifted(2, weeks=20))))
    # thick counts centre other components than thin ones: the choice is data,
    # not graph
    d = graph_signature(arrivals.build_model(_data(_shifted(2, base=2000.0))))
    assert a == b == d
    assert a != c  # more weeks: a longer walk, another graph


@pytest.mark.slow
def test_level_follows_a_shift_in_the_window() -> None:
    """A doubling 8 weeks before the as-of date moves the as-of level, not the average.

    Truth: 40 a week per cell at the as-of date. The 99% central posterior
    interval of the total weekly rate must cover 120 (alpha = 0.01 for a
    calibrated posterior), and must exclude the window's mean rate (26.2 a
    week per cell, 78.5 in total), the answer of a flat level; that
    exclusion is the power of the check.
    """
    from simengine.fitting.fit import sample_model

    model = arrivals.build_model(_data(_shifted(3)), trend=False)
    idata = sample_model(
        model, draws=500, tune=500, chains=2, target_accept=0.95, seed=3, mass_matrix="diag"
    )
    total = idata.posterior["arrival_rate"].sum("cell").isel(entry_stage=0).values.ravel()
    lo, hi = np.quantile(total, [0.005, 0.995])
    assert lo <= 120.0 <= hi, (lo, hi)
    flat = 3 * (18 * 20.0 + 8 * 40.0) / 26
    assert not lo <= flat <= hi, (lo, hi, flat)

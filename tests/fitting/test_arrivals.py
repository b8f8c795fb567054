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


def test_model_level_is_a_random_walk_anchored_at_the_last_week():
    """Exact: ``arrival_level`` is affine in the standard normals, with the walk's covariance.

    Relative to the last week, a walk with weekly sd ``s`` has covariance
    ``s² min(n-1-i, n-1-j)``; read off from the model's graph at a fixed
    ``s``. Mutation: a walk in the uncentred basis (``S`` itself) or without
    the anchoring at the last week fails.
    """
    counts = _shifted(4, weeks=12, jump_weeks=0, base=60.0)
    data = _data(counts)
    model = arrivals.build_model(data, trend=False)
    point = model.initial_point()
    level, level_sd = model.replace_rvs_by_values(
        [model["arrival_level"], model["arrival_level_sd"]]
    )
    fn = model.compile_fn(level, inputs=model.value_vars, on_unused_input="ignore")
    sd_fn = model.compile_fn(level_sd, inputs=model.value_vars, on_unused_input="ignore")
    s = sd_fn(point)[0]
    base = {**point, "arrival_level_z": np.zeros((len(ENTRY), 11))}
    level0 = fn(base)[0]
    np.testing.assert_allclose(level0, 0.0, atol=1e-12)
    cols = []
    for k in range(11):
        z = np.zeros((len(ENTRY), 11))
        z[0, k] = 1.0
        cols.append(fn({**base, "arrival_level_z": z})[0])
    a = np.array(cols).T
    back = 11.0 - np.arange(12)
    np.testing.assert_allclose(a @ a.T, s**2 * np.minimum.outer(back, back), atol=1e-10)


def test_new_counts_of_the_same_layout_reuse_the_compiled_model() -> None:
    a = graph_signature(arrivals.build_model(_data(_shifted(1))))
    b = graph_signature(arrivals.build_model(_data(_shifted(2))))
    c = graph_signature(arrivals.build_model(_data(_shifted(2, weeks=20))))
    assert a == b
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

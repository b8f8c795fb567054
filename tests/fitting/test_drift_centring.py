"""The conversion model's drift-step centring is data: one graph, the same density."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pymc as pm
import pytest

from simengine.fitting import conversion
from simengine.fitting._compiled import graph_signature
from simengine.fitting.data import build_data

AS_OF = dt.date(2026, 1, 5)


@pytest.fixture(scope="module")
def drift_data(records_factory, spec_factory):
    spec = spec_factory(drift=True)
    df, _ = records_factory(3, history_days=400, segments=("ent",), channels=("ads", "web"))
    data = build_data(df, spec, AS_OF)
    assert data.n_converted.shape[2] >= 3  # several drift periods: steps to centre or not
    return data


def _with_drift(cm: dict[str, np.ndarray], drift: np.ndarray) -> dict[str, np.ndarray]:
    return {**cm, "drift": np.asarray(drift, bool)}


def test_the_drift_centring_is_a_data_container_not_part_of_the_graph(drift_data):
    cm = conversion.centring(drift_data)
    shape = cm["drift"].shape
    none = conversion.build_model(drift_data, centred=_with_drift(cm, np.zeros(shape)))
    every = conversion.build_model(drift_data, centred=_with_drift(cm, np.ones(shape)))
    # one compiled model serves both (the cache key ignores data values) ...
    assert graph_signature(none) == graph_signature(every)
    # ... and the choice travels with the data to the compiled model (with_data)
    np.testing.assert_array_equal(every["conversion_drift_centred"].get_value(), np.ones(shape))
    assert "conversion_drift_centred" in {v.name for v in none.data_vars}
    # a structural choice still changes the key (the levels' centring is not data)
    levels = {**cm, "delay_mu": ~np.asarray(cm["delay_mu"], bool)}
    assert graph_signature(conversion.build_model(drift_data, centred=levels)) != graph_signature(
        none
    )


def test_the_log_density_changes_by_the_jacobian_of_the_centring_only(drift_data):
    """Same walk, two parametrisations: log p differs by exactly -log(tau) per centred step.

    A drift step ``eps`` is sampled as ``eps`` itself (centred, ``N(0, tau)``)
    or as ``z = eps / tau`` (``N(0, 1)``). At points that give the same
    steps, the log densities of any two choices differ by the Jacobian
    ``log |d z / d eps|`` = ``-log tau`` per step that switched from
    non-centred to centred, and by nothing else (the same model). The
    mutation (the container saying centred while the point is the
    non-centred one) must break the identity.
    """
    cm = conversion.centring(drift_data)
    model = conversion.build_model(drift_data, centred=cm)
    logp = model.compile_logp()
    rng = np.random.default_rng(11)
    base = {k: v + rng.normal(0.0, 0.3, np.shape(v)) for k, v in model.initial_point().items()}
    log_tau = float(base["drift_sd_log__"])
    tau = np.exp(log_tau)
    shape = cm["drift"].shape
    eps = rng.normal(0.0, tau, shape)

    def at(mask: np.ndarray) -> float:
        with model:
            pm.set_data({"conversion_drift_centred": mask.astype(np.float64)})
        return float(logp({**base, "drift_z": np.where(mask, eps, eps / tau)}))

    none = np.zeros(shape, bool)
    lp_none = at(none)
    masks = {
        "centred everywhere": np.ones(shape, bool),
        "alternate steps": np.arange(np.prod(shape)).reshape(shape) % 2 == 0,
        "random": rng.uniform(size=shape) < 0.5,
    }
    for label, mask in masks.items():
        assert 0 < mask.sum() <= mask.size, label
        diff = at(mask) - lp_none
        assert diff == pytest.approx(-mask.sum() * log_tau, rel=1e-9, abs=1e-8), label
    # mutation: swap the choice (the container says centred, the point is non-centred)
    every = np.ones(shape, bool)
    with model:
        pm.set_data({"conversion_drift_centred": every.astype(np.float64)})
    swapped = float(logp({**base, "drift_z": eps / tau}))
    assert abs(swapped - lp_none - (-every.sum() * log_tau)) > 1.0


# --- the rule: which drift steps are centred -------------------------------------


def _funnel(base, units, rate, *, open_last: float = 0.0):
    """``base`` with constructed counts: ``units`` resolved per (cell, step, period) at ``rate``.

    ``open_last`` more units per (cell, step) are still open in the last
    period (one open-unit group each).
    """
    shape = base.n_converted.shape
    units = np.broadcast_to(np.asarray(units, np.float64), shape)
    conv = np.rint(units * np.broadcast_to(rate, shape)).astype(np.int64)
    lost = np.rint(units).astype(np.int64) - conv
    cells, steps = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    n_open = cells.size if open_last > 0 else 0
    return dataclasses.replace(
        base,
        n_converted=conv,
        n_lost=lost,
        open_cell=cells.ravel()[:n_open].astype(np.int64),
        open_step=steps.ravel()[:n_open].astype(np.int64),
        open_period=np.full(n_open, shape[2] - 1, np.int64),
        open_age=np.full(n_open, 10.0),
        open_count=np.full(n_open, float(open_last)),
    )


def test_thick_drifting_cells_centre_their_steps_thin_ones_do_not(drift_data):
    """Cells with 20,000 resolved units a period and a drift of 0.1 a step: centred; 10: not.

    A thick step's binomial precision (~2,000) times the square of any drift
    sd the data allow (the steps are +-0.1) is far above 1; a thin step's
    (~1) times it is far below. A rule that never (or always) centres, or
    that reads the inequality the wrong way round, fails.
    """
    n_cells, n_steps, n_periods = drift_data.n_converted.shape
    t = np.arange(n_periods)
    logit = np.log(0.3 / 0.7) + 0.1 * np.where(t % 2 == 0, 0.0, 1.0)
    rate = np.broadcast_to(1.0 / (1.0 + np.exp(-logit)), (n_cells, n_steps, n_periods))
    thick = np.arange(n_cells) % 2 == 0
    units = np.where(thick[:, None, None], 20_000.0, 10.0)
    mask = conversion.centring(_funnel(drift_data, units, rate))["drift"]
    assert mask[thick].all()
    assert not mask[~thick].any()


def test_an_unsettled_last_period_is_not_read_as_drift(drift_data):
    """No drift, and a last period half open whose resolved share is biased: no step centred.

    Every period resolves 400 units at 30% (precision of a step ~42), so the
    drift sd's posterior reaches down to its prior's low end and no step is
    pinned there. The last period has as many units still open as resolved,
    and its resolved units convert at 60% (the wins came first): the rule
    leaves that period out of the drift sd (more than
    ``DRIFT_MAX_OPEN_SHARE`` open). Mutations that must fail: the same data
    with the open units dropped (the bias then reads as drift) and the former
    rule (the moment estimate of the sd, which reads it too) centre steps.
    """
    n_periods = drift_data.n_converted.shape[2]
    rate = np.where(np.arange(n_periods) == n_periods - 1, 0.6, 0.3)
    data = _funnel(drift_data, 400.0, rate, open_last=400.0)
    assert not conversion.centring(data)["drift"].any()
    # mutation 1: the last period counted as settled
    assert conversion.centring(_funnel(drift_data, 400.0, rate))["drift"].any()
    # mutation 2: the former rule (a central estimate of the sd)
    assert conversion.centring(data, drift_sd_quantile=None)["drift"].any()


def test_the_drift_sd_quantile_is_calibrated_on_gaussian_walks():
    """``P(true sd < q-quantile) = q`` when the sd is drawn from its prior (alpha 0.001, two-sided).

    For walks observed with known Gaussian noise the approximate posterior is
    the exact one (up to its grid), so over data sets simulated from the
    prior the true sd falls below the 10% quantile with probability 0.10 and
    below the median with probability 0.50. 1,000 data sets (6 series of 5
    periods, noise sds 0.07-0.45, the binomial precisions of the synthetic
    cases): binomial bands at two-sided alpha 0.001 each, 0.10 +- 0.031 and
    0.50 +- 0.052. Mutation that must fail (power ~1, measured rate printed
    by the assertion): the sampling noise ignored (``var`` = 0), which
    reads noise as drift and puts the 10% quantile above the true sd about
    half the time and more.
    """
    rng = np.random.default_rng(20261207)
    reps, n_series, n_periods, prior_mean = 1000, 6, 5, 0.2
    z = 3.2905  # two-sided alpha 0.001
    below = np.zeros((reps, 2), bool)
    below_mut = np.zeros(reps, bool)
    for r in range(reps):
        sd = rng.gamma(2.0, prior_mean / 2.0)
        var = np.broadcast_to(
            rng.uniform(1 / 200, 1 / 5, (n_series, 1, 1)), (n_series, 1, n_periods)
        )
        walk = np.cumsum(rng.normal(0.0, sd, (n_series, 1, n_periods)), axis=2)
        y = walk + rng.normal(0.0, np.sqrt(var)) + rng.normal(0.0, 1.0, (n_series, 1, 1))
        for k, q in enumerate((0.1, 0.5)):
            below[r, k] = sd < conversion.drift_sd_posterior_quantile(y, var, prior_mean, q)
        below_mut[r] = sd < conversion.drift_sd_posterior_quantile(y, 0.0 * var, prior_mean, 0.1)
    for k, q in enumerate((0.1, 0.5)):
        half = z * np.sqrt(q * (1 - q) / reps)
        assert abs(below[:, k].mean() - q) <= half, (q, below[:, k].mean())
    assert abs(below_mut.mean() - 0.1) > z * np.sqrt(0.09 / reps), below_mut.mean()

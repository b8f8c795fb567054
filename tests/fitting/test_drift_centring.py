"""The conversion model's drift-step centring is data: one graph, the same density."""

from __future__ import annotations

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
        "the data's choice": np.asarray(cm["drift"], bool),
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

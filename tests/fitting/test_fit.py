"""Fit orchestration: short (unconverged) runs through the real samplers.

A deliberately short run (30 tuning steps, 30 draws) cannot pass the gate:
``fit`` must raise ConvergenceError naming parameters, or, with
``allow_unconverged``, return a flagged posterior in the file layout that
round-trips through ``write_posterior``/``read_parameters``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import numpy as np
import pytest

from simengine.errors import ConvergenceError
from simengine.fitting import deal_size
from simengine.fitting.data import build_data
from simengine.fitting.fit import (
    attempt_lines,
    fit,
    part_seeds,
    retry_settings,
    sample_model,
    settings_from_spec,
    single_threaded_blas,
)
from simengine.io.posterior import read_parameters, write_posterior
from simengine.snapshot import open_units

AS_OF = dt.date(2026, 1, 5)


@pytest.fixture(scope="module")
def short(records_factory, spec_factory):
    df, _ = records_factory(21, history_days=200, weekly_rate=4.0)
    spec = spec_factory(drift=True, trend=True, draws=30, tune=30, chains=2)
    st = settings_from_spec(spec, sampler="nutpie")
    idata = fit(df, spec, AS_OF, 123, settings=st, allow_unconverged=True)
    return df, spec, st, idata


def test_short_run_is_flagged_and_in_file_layout(short):
    df, spec, _, idata = short
    post = idata["posterior"]
    assert post.attrs["simengine_converged"] == "false"
    diag = json.loads(post.attrs["simengine_diagnostics"])
    assert any(diag[p]["failures"] for p in diag)
    assert json.loads(post.attrs["simengine_stages"]) == list(spec.stages)
    assert post.attrs["simengine_as_of"] == "2026-01-05"
    assert post.attrs["simengine_seed"] == "123"
    settings = json.loads(post.attrs["simengine_fit_settings"])
    # centring chosen from the data (no expert override in the spec)
    assert settings["deal_size_centred_min_deals"] is None
    assert settings["delay_centred_min_delays"] is None
    # every part missed the gate at 30 draws: each was retried once, with the
    # retry's settings, and the attempts are recorded
    attempts = json.loads(post.attrs["simengine_fit_attempts"])
    assert set(attempts) == {"conversion", "arrivals", "deal_size"}
    for part, tries in attempts.items():
        first = tries[0]
        assert first["tune"] == 30, part
        assert not first["passed"], part
        assert len(tries) == 2, part
        assert (tries[1]["tune"], tries[1]["target_accept"], tries[1]["mass_matrix"]) == (
            retry_settings(30, first["target_accept"], first["mass_matrix"], "nutpie")
        )
    assert retry_settings(1000, 0.9, "diag", "nutpie") == (2000, 0.99, "low_rank")
    assert retry_settings(1000, 0.995, "diag", "pymc") == (2000, 0.9975, "diag")
    lines = attempt_lines(attempts)
    assert len(lines) == 3
    assert all("retried with tune 60" in line for line in lines)
    # the predictive check of each part is recorded
    checks = json.loads(post.attrs["simengine_ppc"])
    assert set(checks) == {"conversion", "arrivals", "deal_size"}
    assert checks["arrivals"]["checked"] == 4  # one entry stage, four cells
    for name, dims in {
        "conversion": ("cell", "step"),
        "delay_mu": ("cell", "step"),
        "delay_sigma": ("cell", "step"),
        "arrival_rate": ("cell", "entry_stage"),
        "arrival_dispersion": ("cell", "entry_stage"),
        "arrival_trend": ("cell", "entry_stage"),
        "deal_size_mu": ("cell",),
        "deal_size_sigma": ("cell",),
    }.items():
        assert post[name].dims == ("chain", "draw", *dims)
        assert post[name].shape[:2] == (2, 30)
    assert list(post["step"].values) == list(spec.steps)
    assert list(post["entry_stage"].values) == ["lead"]
    const = idata["constant_data"]
    data = build_data(df, spec, AS_OF)
    assert const.sizes["unit"] == len(data.snapshot) == data.open_count.sum()
    # the unit coordinate holds the open records' ids, in open-unit order
    ou = open_units(df, spec, AS_OF, list(post["cell"].values))
    assert ou.ids is not None
    assert [str(u) for u in const["unit"].values] == list(ou.ids)
    assert set(ou.ids) <= set(df["id"].astype(str))
    assert np.all((const["raw_rate_4q"].values >= 0) & (const["raw_rate_4q"].values <= 1))


def test_gate_raises_and_names_parameters(short):
    df, spec, st, _ = short
    with pytest.raises(ConvergenceError) as exc:
        fit(df, spec, AS_OF, 123, settings=dataclasses.replace(st, drift=False))
    assert exc.value.failures
    assert any(":" in f for f in exc.value.failures)  # "part: parameter check"
    assert "--allow-unconverged" in str(exc.value)
    assert "Already tried" in str(exc.value)
    assert "retried with" in str(exc.value)


def test_round_trip_through_the_file(short, tmp_path):
    _, spec, _, idata = short
    path = write_posterior(idata, tmp_path / "posterior.nc")
    with pytest.warns(UserWarning, match="convergence gate"):
        p = read_parameters(path)
    post = idata["posterior"]
    assert p.n_draws == 60
    assert p.cells == tuple(post["cell"].values)
    assert p.stages == spec.stages
    assert p.pipeline_stage == spec.pipeline_index
    np.testing.assert_array_equal(
        p.conversion, post["conversion"].values.reshape(60, *p.conversion.shape[1:])
    )
    np.testing.assert_array_equal(
        p.arrival_rate[:, :, 0], post["arrival_rate"].values[..., 0].reshape(60, -1)
    )
    assert np.all(p.arrival_rate[:, :, 1:] == 0)  # nobody enters at qual/opp
    np.testing.assert_array_equal(p.deal_size_sigma, post["deal_size_sigma"].values.reshape(60, -1))
    assert len(p.open_units) == idata["constant_data"].sizes["unit"]
    assert p.open_units.ids == tuple(str(u) for u in idata["constant_data"]["unit"].values)


def test_same_seed_same_draws_bitwise(records_factory, spec_factory):
    df, _ = records_factory(4, history_days=120, weekly_rate=3.0)
    data = build_data(df, spec_factory(), AS_OF)
    seeds = part_seeds(99)
    assert seeds == part_seeds(99)
    assert len(set(seeds.values())) == 3
    runs = [
        sample_model(
            deal_size.build_model(data),
            draws=50,
            tune=50,
            chains=2,
            target_accept=0.9,
            seed=seeds["deal_size"],
            sampler="nutpie",
        )["posterior"]["deal_size_mu"].values
        for _ in range(2)
    ]
    np.testing.assert_array_equal(runs[0], runs[1])
    other = sample_model(
        deal_size.build_model(data),
        draws=50,
        tune=50,
        chains=2,
        target_accept=0.9,
        seed=seeds["deal_size"] + 1,
        sampler="nutpie",
    )["posterior"]["deal_size_mu"].values
    assert not np.array_equal(runs[0], other)


def test_low_rank_mass_matrix_reaches_the_sampler(records_factory, spec_factory):
    """``[model] mass_matrix = "low_rank"`` is nutpie's low-rank adaptation.

    The same seed gives bitwise the same draws with it, and other draws than
    the diagonal mass matrix (so the option is not silently dropped).
    """
    spec = spec_factory()
    opts = dataclasses.replace(
        spec.options, mass_matrix="low_rank", parts={"deal_size": {"target_accept": 0.95}}
    )
    st = settings_from_spec(dataclasses.replace(spec, options=opts))
    assert st.for_part("conversion") == (spec.options.target_accept, "low_rank")
    assert st.for_part("deal_size") == (0.95, "low_rank")
    df, _ = records_factory(4, history_days=120, weekly_rate=3.0)
    data = build_data(df, spec, AS_OF)

    def draws(mass_matrix: str, sampler: str = "nutpie", n: int = 50) -> np.ndarray:
        return sample_model(
            deal_size.build_model(data),
            draws=n,
            tune=n,
            chains=2,
            target_accept=0.9,
            seed=7,
            sampler=sampler,
            mass_matrix=mass_matrix,
        )["posterior"]["deal_size_mu"].values

    low = draws("low_rank")
    np.testing.assert_array_equal(low, draws("low_rank"))
    assert not np.array_equal(low, draws("diag"))
    with pytest.raises(ValueError, match="nutpie"):
        draws("low_rank", sampler="pymc", n=5)


def test_blas_runs_on_one_thread_while_sampling_and_is_restored():
    """Inside ``single_threaded_blas`` every BLAS pool has one thread; after it, the old limit.

    The sampler's chains run on threads; OpenBLAS's own pool would busy-wait
    beside them (module docstring of :mod:`simengine.fitting.fit`). Both
    numpy's and SciPy's OpenBLAS (the one Numba calls) are loaded here.
    """
    import scipy.linalg  # noqa: F401  (loads SciPy's OpenBLAS, which Numba's BLAS calls use)
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads() -> list[int]:
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    with threadpool_limits(limits=2, user_api="blas"):
        assert len(blas_threads()) >= 2  # numpy's and SciPy's
        assert set(blas_threads()) == {2}
        with single_threaded_blas():
            assert set(blas_threads()) == {1}
        assert set(blas_threads()) == {2}


def test_parallel_parts_give_bitwise_the_serial_fit(short):
    """``parallel_parts`` (arrivals and deal size in a spawned process) changes nothing.

    Every part has its own seed, so where a part is sampled cannot change
    its draws: the posterior, the sample statistics and the gate's verdicts
    equal those of the serial fit of the ``short`` fixture, bitwise. The
    callback still hears every part, the conversion part first.
    """
    df, spec, st, serial = short
    heard: list[str] = []
    par = fit(
        df,
        spec,
        AS_OF,
        123,
        settings=st,
        allow_unconverged=True,
        parallel_parts=True,
        on_part=heard.append,
    )
    assert heard == ["conversion", "arrivals", "deal_size"]
    for group in ("posterior", "sample_stats", "constant_data"):
        a, b = serial[group], par[group]
        assert sorted(a.data_vars) == sorted(b.data_vars)
        for name in a.data_vars:
            np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    assert par["posterior"].attrs == serial["posterior"].attrs

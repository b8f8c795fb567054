"""The posterior contract's drift-ahead scales and dormant share (all optional)."""

from __future__ import annotations

import json
from pathlib import Path

import arviz as az
import numpy as np
import pytest
from test_posterior import user_idata

from simengine.errors import InputError
from simengine.io.posterior import read_parameters, write_posterior

CS = ("chain", "draw", "cell", "step")


def _with(**extra: object) -> az.InferenceData:
    idata = user_idata()
    post = idata.posterior
    shape = tuple(post.sizes[d] for d in CS)
    rng = np.random.default_rng(4)
    post = post.assign(
        loss_mu=(CS, rng.normal(3.0, 0.2, shape)),
        loss_sigma=(CS, rng.uniform(0.3, 0.9, shape)),
        **extra,
    )
    return az.InferenceData(posterior=post, constant_data=idata.constant_data)


def test_absent_scales_mean_no_drift_ahead(tmp_path: Path) -> None:
    p = read_parameters(write_posterior(user_idata(), tmp_path / "plain.nc"))
    assert p.conversion_drift_sd is None
    assert p.arrival_level_sd is None
    assert p.dormant is None
    assert p.conversion_cohort_sd is None


def test_cohort_sd_is_read(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    idata = _with(conversion_cohort_sd=(("chain", "draw"), rng.uniform(0.05, 0.5, (2, 5))))
    idata.posterior.attrs["simengine_drift_period_days"] = "30"
    p = read_parameters(write_posterior(idata, tmp_path / "cohort.nc"))
    assert p.conversion_cohort_sd is not None
    assert p.conversion_drift_sd is None
    assert p.drift_period_days == 30
    np.testing.assert_array_equal(
        p.conversion_cohort_sd[8], idata.posterior.conversion_cohort_sd.values[1, 3]
    )


def test_scales_and_dormant_are_read(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    idata = _with(
        conversion_drift_sd=(("chain", "draw"), rng.uniform(0.05, 0.3, (2, 5))),
        arrival_level_sd=(("chain", "draw", "entry_stage"), rng.uniform(0.01, 0.1, (2, 5, 2))),
        dormant=(CS, rng.uniform(0.0, 0.5, (2, 5, 3, 3))),
    )
    idata.posterior.attrs["simengine_drift_period_days"] = "91"
    p = read_parameters(write_posterior(idata, tmp_path / "ahead.nc"))
    post = idata.posterior
    assert p.drift_period_days == 91
    assert p.conversion_drift_sd is not None
    assert p.arrival_level_sd is not None
    assert p.dormant is not None
    np.testing.assert_array_equal(p.conversion_drift_sd[7], post.conversion_drift_sd.values[1, 2])
    # entry stages mql, opportunity -> positions 0 and 2 of stages[:-1]; sql gets 0
    np.testing.assert_array_equal(p.arrival_level_sd[6][[0, 2]], post.arrival_level_sd.values[1, 1])
    assert p.arrival_level_sd[:, 1].max() == 0.0
    np.testing.assert_array_equal(p.dormant[3], post.dormant.values[0, 3])


def test_drift_period_falls_back_to_the_fit_settings(tmp_path: Path) -> None:
    idata = _with(conversion_drift_sd=(("chain", "draw"), np.full((2, 5), 0.2)))
    idata.posterior.attrs["simengine_fit_settings"] = json.dumps({"drift_period_days": 30})
    assert read_parameters(write_posterior(idata, tmp_path / "fs.nc")).drift_period_days == 30


@pytest.mark.parametrize(
    ("extra", "column", "rule"),
    [
        (
            {"conversion_drift_sd": (("chain", "draw"), np.full((2, 5), 0.2))},
            "posterior.attrs.simengine_drift_period_days",
            "whole number of days",
        ),
        (
            {"conversion_drift_sd": (("chain", "draw"), np.full((2, 5), -0.1))},
            "posterior.conversion_drift_sd",
            ">= 0",
        ),
        (
            {"conversion_cohort_sd": (("chain", "draw"), np.full((2, 5), 0.2))},
            "posterior.attrs.simengine_drift_period_days",
            "whole number of days",
        ),
        (
            {"conversion_cohort_sd": (("chain", "draw"), np.full((2, 5), -0.1))},
            "posterior.conversion_cohort_sd",
            ">= 0",
        ),
        ({"dormant": (CS, np.full((2, 5, 3, 3), 1.5))}, "posterior.dormant", "<= 1"),
        (
            {"arrival_level_sd": (("chain", "draw", "cell"), np.full((2, 5, 3), 0.1))},
            "posterior.arrival_level_sd",
            "must have dims",
        ),
    ],
)
def test_bad_scales_are_named(tmp_path: Path, extra: dict, column: str, rule: str) -> None:
    path = write_posterior(_with(**extra), tmp_path / "bad.nc")
    with pytest.raises(InputError) as err:
        read_parameters(path)
    issues = [i for i in err.value.issues if i.column == column]
    assert issues, err.value.issues
    assert issues[0].file == str(path)
    assert rule in issues[0].rule


def test_dormant_needs_the_time_to_loss(tmp_path: Path) -> None:
    idata = user_idata()
    post = idata.posterior.assign(dormant=(CS, np.full((2, 5, 3, 3), 0.1)))
    path = write_posterior(az.InferenceData(posterior=post), tmp_path / "d.nc")
    with pytest.raises(InputError, match="invalid posterior"):
        read_parameters(path)

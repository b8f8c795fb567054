"""The posterior file contract: write → read, a user's own file, bad files."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import arviz as az
import numpy as np
import pytest
import xarray as xr

from simengine.errors import InputError
from simengine.io.posterior import read_parameters, read_posterior, write_posterior

STAGES = ["mql", "sql", "opportunity", "won"]
CELLS = ["ent/ads", "ent/web", "smb/ads"]


def user_idata(chains: int = 2, draws: int = 5, seed: int = 0) -> az.InferenceData:
    """A posterior written by hand: only the contract's names, no fit."""
    rng = np.random.default_rng(seed)
    c, s = len(CELLS), len(STAGES) - 1
    coords = {
        "chain": np.arange(chains),
        "draw": np.arange(draws),
        "cell": CELLS,
        "step": STAGES[1:],
        "entry_stage": ["mql", "opportunity"],
    }
    cs = ("chain", "draw", "cell", "step")
    ce = ("chain", "draw", "cell", "entry_stage")
    post = xr.Dataset(
        {
            "conversion": (cs, rng.uniform(0.1, 0.9, (chains, draws, c, s))),
            "delay_mu": (cs, rng.normal(2.5, 0.3, (chains, draws, c, s))),
            "delay_sigma": (cs, rng.uniform(0.3, 1.0, (chains, draws, c, s))),
            "arrival_rate": (ce, rng.uniform(1, 20, (chains, draws, c, 2))),
            "arrival_dispersion": (ce, rng.uniform(0, 0.5, (chains, draws, c, 2))),
            "deal_size_mu": (("chain", "draw", "cell"), rng.normal(9, 0.5, (chains, draws, c))),
            "deal_size_sigma": (
                ("chain", "draw", "cell"),
                rng.uniform(0.2, 0.9, (chains, draws, c)),
            ),
        },
        coords=coords,
        attrs={"simengine_stages": json.dumps(STAGES), "simengine_as_of": "2027-01-04"},
    )
    const = xr.Dataset(
        {
            "open_cell": ("unit", np.array(["smb/ads", "ent/ads"], dtype=object)),
            "open_stage": ("unit", np.array(["sql", "opportunity"], dtype=object)),
            "open_age_days": ("unit", np.array([3.0, 40.0])),
            "open_amount": ("unit", np.array([np.nan, 12000.0])),
        },
        coords={"unit": [0, 1]},
    )
    return az.InferenceData(posterior=post, constant_data=const)


def test_user_written_file_drives_read_parameters(tmp_path: Path):
    idata = user_idata()
    path = write_posterior(idata, tmp_path / "mine.nc")
    p = read_parameters(path)
    post = idata.posterior
    assert p.stages == tuple(STAGES)
    assert p.cells == tuple(CELLS)
    assert p.segments == ("ent", "smb")
    assert p.cell_segment.tolist() == [0, 0, 1]
    assert p.pipeline_stage == STAGES.index("opportunity")  # default when attr absent
    assert p.as_of == dt.date(2027, 1, 4)
    assert p.source == "posterior"
    assert p.n_draws == 10
    # chain-major flattening: draw index k = chain * n_draw + draw
    np.testing.assert_array_equal(p.conversion[7], post["conversion"].values[1, 2])
    np.testing.assert_array_equal(p.deal_size_mu[3], post["deal_size_mu"].values[0, 3])
    # entry stages widened to stages[:-1]; zeros where units do not enter; trend absent = 0
    assert p.arrival_rate.shape == (10, 3, 3)
    np.testing.assert_array_equal(
        p.arrival_rate[:, :, 0], post["arrival_rate"].values[:, :, :, 0].reshape(10, 3)
    )
    np.testing.assert_array_equal(
        p.arrival_rate[:, :, 2], post["arrival_rate"].values[:, :, :, 1].reshape(10, 3)
    )
    assert np.all(p.arrival_rate[:, :, 1] == 0)
    assert np.all(p.arrival_trend == 0)
    # open units mapped to indices
    assert p.open_units.cell.tolist() == [2, 0]
    assert p.open_units.stage.tolist() == [1, 2]
    np.testing.assert_array_equal(p.open_units.age_days, [3.0, 40.0])
    assert np.isnan(p.open_units.amount[0])
    assert p.open_units.amount[1] == 12000.0


def test_write_is_atomic_and_refuses_to_overwrite(tmp_path: Path):
    out = tmp_path / "p.nc"
    write_posterior(user_idata(seed=1), out)
    first = out.read_bytes()
    with pytest.raises(InputError, match="exists"):
        write_posterior(user_idata(seed=2), out)
    assert out.read_bytes() == first
    write_posterior(user_idata(seed=2), out, force=True)
    assert (
        read_parameters(out).conversion[0, 0, 0]
        == user_idata(seed=2).posterior["conversion"].values[0, 0, 0, 0]
    )
    assert sorted(x.name for x in tmp_path.iterdir()) == ["p.nc"]  # no temp files left


def test_unconverged_flag_warns(tmp_path: Path):
    idata = user_idata()
    idata.posterior.attrs["simengine_converged"] = "false"
    path = write_posterior(idata, tmp_path / "u.nc")
    with pytest.warns(UserWarning, match="convergence gate"):
        read_parameters(path)


def _issue_columns(exc: pytest.ExceptionInfo[InputError]) -> set[str]:
    return {i.column or "" for i in exc.value.issues}


@pytest.mark.parametrize(
    ("mutate", "column"),
    [
        (lambda i: i.posterior.__delitem__("delay_mu"), "posterior.delay_mu"),
        (lambda i: i.posterior.attrs.pop("simengine_as_of"), "posterior.attrs.simengine_as_of"),
        (
            lambda i: i.posterior.attrs.update(simengine_stages="mql,won"),
            "posterior.attrs.simengine_stages",
        ),
        (
            lambda i: i.posterior.attrs.update(simengine_as_of="04/01/2027"),
            "posterior.attrs.simengine_as_of",
        ),
        (
            lambda i: i.posterior.__setitem__(
                "deal_size_mu", i.posterior["deal_size_mu"].rename(cell="segment")
            ),
            "posterior.deal_size_mu",
        ),
        (
            lambda i: i.posterior.__setitem__("conversion", i.posterior["conversion"] * np.nan),
            "posterior.conversion",
        ),
        (
            lambda i: i.posterior.attrs.update(
                simengine_stages=json.dumps(["mql", "sql", "deal", "won"])
            ),
            "posterior.step",
        ),
        (
            lambda i: i.constant_data.__setitem__(
                "open_cell", ("unit", np.array(["zzz", "ent/ads"], dtype=object))
            ),
            "constant_data.open_cell",
        ),
    ],
)
def test_bad_file_names_the_problem(tmp_path: Path, mutate, column):
    idata = user_idata()
    mutate(idata)
    path = write_posterior(idata, tmp_path / "bad.nc")
    with pytest.raises(InputError) as exc:
        read_parameters(path)
    assert column in _issue_columns(exc)
    assert all(i.file == str(path) for i in exc.value.issues)


def test_out_of_range_values_are_input_errors(tmp_path: Path):
    idata = user_idata()
    idata.posterior["conversion"] = idata.posterior["conversion"] + 1.0
    path = write_posterior(idata, tmp_path / "bad.nc")
    with pytest.raises(InputError, match="conversion rates must lie in"):
        read_parameters(path)


def test_missing_and_garbage_files(tmp_path: Path):
    with pytest.raises(InputError, match="not found"):
        read_posterior(tmp_path / "nope.nc")
    junk = tmp_path / "junk.nc"
    junk.write_text("not netcdf")
    with pytest.raises(InputError, match="not a readable"):
        read_posterior(junk)


def test_loss_variables_are_read_and_go_together(tmp_path: Path):
    idata = user_idata()
    post = idata.posterior
    cs = ("chain", "draw", "cell", "step")
    shape = tuple(post.sizes[d] for d in cs)
    assert read_parameters(write_posterior(idata, tmp_path / "none.nc")).loss_mu is None
    rng = np.random.default_rng(3)
    both = post.assign(
        loss_mu=(cs, rng.normal(3.0, 0.2, shape)), loss_sigma=(cs, rng.uniform(0.3, 0.9, shape))
    )
    p = read_parameters(
        write_posterior(az.InferenceData(posterior=both), tmp_path / "both.nc")
    )
    assert p.loss_mu is not None
    assert p.loss_sigma is not None
    np.testing.assert_array_equal(p.loss_mu[7], both["loss_mu"].values[1, 2])
    np.testing.assert_array_equal(p.loss_sigma[3], both["loss_sigma"].values[0, 3])
    one = post.assign(loss_mu=(cs, rng.normal(3.0, 0.2, shape)))
    path = write_posterior(az.InferenceData(posterior=one), tmp_path / "one.nc")
    with pytest.raises(InputError) as err:
        read_parameters(path)
    (issue,) = err.value.issues
    assert issue.file == str(path)
    assert issue.column == "posterior.loss_sigma"
    assert "both or neither" in issue.rule


def test_unit_ids_label_the_deals(tmp_path: Path):
    """The ``unit`` coordinate's record ids reach the per-deal outlook; numeric ones fall back."""
    import dataclasses
    import datetime as dt

    from simengine.config.plan import Plan
    from simengine.engine.outlook import deal_outlook

    plan = Plan(
        start=dt.date(2027, 1, 4),
        end=dt.date(2027, 3, 31),
        as_of=dt.date(2027, 1, 4),
        targets={"smb": 1e5, "ent": 1e5},
        text="t",
    )
    with_ids = user_idata()
    with_ids.constant_data = with_ids.constant_data.assign_coords(
        unit=np.array(["OPP-0042", "OPP-7"], dtype=object)
    )
    p = read_parameters(write_posterior(with_ids, tmp_path / "ids.nc"))
    assert p.open_units.ids == ("OPP-0042", "OPP-7")
    assert deal_outlook(p, plan)["id"].tolist() == ["OPP-0042", "OPP-7"]
    # a file from before the ids were stored (unit = 0, 1): unit-<k>
    old = read_parameters(write_posterior(user_idata(), tmp_path / "old.nc"))
    assert old.open_units.ids is None
    assert deal_outlook(old, plan)["id"].tolist() == ["unit-0", "unit-1"]
    # explicit ids still win; a wrong count is an error
    assert deal_outlook(p, plan, ids=["a", "b"])["id"].tolist() == ["a", "b"]
    with pytest.raises(ValueError, match="1 ids for 2 open units"):
        dataclasses.replace(p.open_units, ids=("x",))

"""``simengine simulate`` end to end on the assumptions path."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from simengine.cli import main
from simengine.engine import Forecast
from simengine.io.provenance import file_sha256

PLAN = """start = 2027-01-04
end = 2027-04-04
as_of = 2027-01-04
[targets]
smb = 600000
mid = 1500000
ent = 2000000
"""

RECORDS = """id,segment,channel,mql_at,sql_at,opportunity_at,won_at,lost_at,amount
1,mid,web,2026-11-01,2026-11-05,2026-11-20,,,25000
2,mid,out,2026-12-01,2026-12-10,,,,
3,smb,web,2026-12-20,,,,,
4,ent,web,2026-12-01,2026-12-03,2026-12-10,,,150000
"""


@pytest.fixture
def plan(tmp_path: Path) -> Path:
    p = tmp_path / "plan.toml"
    p.write_text(PLAN)
    return p


def _args(models_dir: Path, plan: Path, out: Path, *extra: str) -> list[str]:
    return [
        "simulate",
        "--assumptions",
        str(models_dir / "assumptions.toml"),
        "--plan",
        str(plan),
        "--paths",
        "400",
        "--seed",
        "7",
        "--block-size",
        "150",
        "--out",
        str(out),
        *extra,
    ]


def test_simulate_assumptions(models_dir: Path, plan: Path, tmp_path: Path) -> None:
    out = tmp_path / "fc"
    h_plan = file_sha256(plan)
    assert main(_args(models_dir, plan, out)) == 0
    fc = Forecast.read(out)
    assert fc.dataset.attrs["source"] == "assumptions"
    assert fc.dataset.attrs["paths"] == 400
    assert "assumptions" in fc.dataset.attrs["input_sha256"]
    assert json.loads(fc.dataset.attrs["input_paths"])["assumptions"].endswith("assumptions.toml")
    s = pd.read_csv(out / "summary.csv")
    assert set(s.segment) == {"smb", "mid", "ent", "total"}
    assert file_sha256(plan) == h_plan  # inputs untouched
    before = (out / "summary.csv").read_bytes()
    assert main(_args(models_dir, plan, out)) == 2  # exists, no --force
    assert (out / "summary.csv").read_bytes() == before
    assert main(_args(models_dir, plan, out, "--force")) == 0
    assert (out / "summary.csv").read_bytes() == before  # same seed, same bytes


def test_simulate_with_pipeline(models_dir: Path, plan: Path, tmp_path: Path) -> None:
    rec = tmp_path / "r.csv"
    rec.write_text(RECORDS)
    out = tmp_path / "fc"
    args = _args(
        models_dir, plan, out, "--pipeline", str(rec), "--model", str(models_dir / "demo.toml")
    )
    assert main(args) == 0
    no_pipe = tmp_path / "fc0"
    assert main(_args(models_dir, plan, no_pipe)) == 0
    cov = Forecast.read(out).summary.set_index(["segment", "metric", "stat"])["value"]
    cov0 = Forecast.read(no_pipe).summary.set_index(["segment", "metric", "stat"])["value"]
    # ent has one open opportunity worth 150k at the start: coverage 150k / 2M
    assert cov["ent", "coverage", "mean"] == pytest.approx(0.075)
    assert cov0["ent", "coverage", "mean"] == 0


def test_bad_options_exit_2(models_dir: Path, plan: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "fc"
    both = _args(models_dir, plan, out, "--posterior", str(tmp_path / "p.nc"))
    assert main(both) == 2
    assert "exactly one" in capsys.readouterr().err
    assert main(_args(models_dir, plan, out, "--pipeline", str(tmp_path / "r.csv"))) == 2
    bad_plan = tmp_path / "bad.toml"
    bad_plan.write_text(PLAN.replace("ent = 2000000", "other = 5"))
    assert main(_args(models_dir, bad_plan, out)) == 2
    assert not out.exists()


def test_simulate_posterior_file_matches_in_process(tmp_path: Path, plan: Path) -> None:
    """A posterior file (the public contract) through the CLI gives the in-process numbers."""
    import json

    import arviz as az
    import numpy as np
    from engine.engine_helpers import make_params, random_open_units

    from simengine.config.plan import load_plan
    from simengine.engine import simulate

    params = make_params(
        rate=(10.0, 0.0, 0.5),
        conversion_sd=0.03,
        draws=20,
        open_units=random_open_units(30, 6, 3),
        deal_median=40_000.0,
    )
    entry = ["mql", "opportunity"]

    def cs(a):  # (draw, ...) -> (chain=2, draw=10, ...)
        return a.reshape(2, 10, *a.shape[1:])

    post = {
        "conversion": cs(params.conversion),
        "delay_mu": cs(params.delay_mu),
        "delay_sigma": cs(params.delay_sigma),
        "arrival_rate": cs(params.arrival_rate[:, :, [0, 2]]),
        "arrival_dispersion": cs(params.arrival_dispersion[:, :, [0, 2]]),
        "deal_size_mu": cs(params.deal_size_mu),
        "deal_size_sigma": cs(params.deal_size_sigma),
    }
    ou = params.open_units
    idata = az.from_dict(
        posterior=post,
        constant_data={
            "open_cell": np.array([params.cells[c] for c in ou.cell]),
            "open_stage": np.array([params.stages[s] for s in ou.stage]),
            "open_age_days": ou.age_days,
            "open_amount": ou.amount,
        },
        coords={
            "cell": list(params.cells),
            "step": list(params.steps),
            "entry_stage": entry,
            "unit": np.array([f"CRM-{k:03d}" for k in range(len(ou))]),
        },
        dims={
            "conversion": ["cell", "step"],
            "delay_mu": ["cell", "step"],
            "delay_sigma": ["cell", "step"],
            "arrival_rate": ["cell", "entry_stage"],
            "arrival_dispersion": ["cell", "entry_stage"],
            "deal_size_mu": ["cell"],
            "deal_size_sigma": ["cell"],
            "open_cell": ["unit"],
            "open_stage": ["unit"],
            "open_age_days": ["unit"],
            "open_amount": ["unit"],
        },
    )
    idata.posterior.attrs.update(
        simengine_stages=json.dumps(list(params.stages)), simengine_as_of="2027-01-04"
    )
    nc = tmp_path / "posterior.nc"
    idata.to_netcdf(str(nc), engine="h5netcdf")
    plan.write_text(PLAN.replace("smb = 600000", "smb = 200000"))
    out = tmp_path / "fc"
    args = [
        "simulate",
        "--posterior",
        str(nc),
        "--plan",
        str(plan),
        "--paths",
        "300",
        "--seed",
        "3",
        "--block-size",
        "100",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    fc = Forecast.read(out)
    assert fc.dataset.attrs["source"] == "posterior"
    direct = simulate(params, load_plan(plan), paths=300, seed=3, block_size=100, threads=1)
    pd.testing.assert_frame_equal(fc.summary, direct.summary)
    # the deals carry the CRM's ids stored in the posterior file
    deals = pd.read_csv(out / "deals.csv")
    assert deals["id"].tolist() == [f"CRM-{k:03d}" for k in range(len(ou))]

from __future__ import annotations

import json
import re
from pathlib import Path

import arviz as az
import numpy as np
import pytest
import xarray as xr
from report_sim import SEGMENTS, STAGES, TARGETS, SimPaths, write_forecast_dir

from simengine.cli import main
from simengine.errors import InputError
from simengine.io.provenance import file_sha256
from simengine.report.data import ParameterSummary, parameters_from_posterior
from simengine.report.html import (
    build_report,
    coverage_band,
    headlines,
    reverse_funnel,
    write_report,
)

CELLS = [f"{s}/{c}" for s in SEGMENTS for c in ("webinar", "paid")]


def _posterior_file(path: Path, seed: int = 0, converged: str = "true") -> Path:
    """A real netCDF InferenceData with the posterior-file contract's variables."""
    rng = np.random.default_rng(seed)
    chains, draws, nc, ns = 2, 200, len(CELLS), len(STAGES) - 1
    base = np.array([0.3, 0.4, 0.25])
    conv = np.clip(base + rng.normal(0, 0.02, (chains, draws, nc, ns)), 0.01, 0.99)
    entry = STAGES[:-1]
    post = {
        "conversion": conv,
        "delay_mu": rng.normal(2.5, 0.1, (chains, draws, nc, ns)),
        "delay_sigma": np.full((chains, draws, nc, ns), 0.6),
        "arrival_rate": np.abs(rng.normal(40, 2, (chains, draws, nc, len(entry)))),
        "arrival_dispersion": np.full((chains, draws, nc, len(entry)), 0.1),
        "deal_size_mu": rng.normal(np.log(9000), 0.02, (chains, draws, nc)),
        "deal_size_sigma": np.full((chains, draws, nc), 0.5),
    }
    dims = {"conversion": ["cell", "step"], "delay_mu": ["cell", "step"],
            "delay_sigma": ["cell", "step"], "arrival_rate": ["cell", "entry_stage"],
            "arrival_dispersion": ["cell", "entry_stage"], "deal_size_mu": ["cell"],
            "deal_size_sigma": ["cell"], "raw_rate_4q": ["cell", "step"],
            "raw_rate_13w": ["cell", "step"]}
    idata = az.from_dict(
        posterior=post,
        constant_data={"raw_rate_4q": np.tile(base - 0.03, (nc, 1)),
                       "raw_rate_13w": np.tile(base + 0.05, (nc, 1))},
        coords={"cell": CELLS, "step": STAGES[1:], "entry_stage": entry},
        dims=dims,
    )
    idata.posterior.attrs.update({"simengine_stages": json.dumps(STAGES),
                                  "simengine_as_of": "2027-01-04",
                                  "simengine_converged": converged})
    idata.to_netcdf(str(path), engine="h5netcdf")
    return path


def _with_posterior(forecast_ds: xr.Dataset, tmp_path: Path) -> tuple[Path, Path]:
    post = _posterior_file(tmp_path / "posterior.nc")
    ds = forecast_ds.copy()
    ds.attrs = dict(ds.attrs, source="posterior",
                    input_paths=json.dumps({"posterior": str(post)}),
                    input_sha256=json.dumps({"posterior": file_sha256(post)}))
    return write_forecast_dir(ds, tmp_path / "fc"), post


def test_headlines_match_the_paths(forecast_ds, sim_paths: SimPaths):
    heads = {h.segment: h for h in headlines(forecast_ds)}
    assert list(heads) == [*SEGMENTS, "total"]
    rev = sim_paths.cum["mid"][:, sim_paths.end_offset]
    p = np.mean(rev >= TARGETS["mid"])
    assert heads["mid"].prob_hit == pytest.approx(p)
    assert heads["mid"].prob_hit_se == pytest.approx(np.sqrt(p * (1 - p) / sim_paths.n_paths))
    assert heads["mid"].revenue_p90 == pytest.approx(np.quantile(rev, 0.9))
    assert "P(hit) " in heads["total"].text()


def test_coverage_bands():
    assert coverage_band(2.4) == "below the 3x bar"
    assert coverage_band(3.0) == "in the 3–3.5x sweet spot"
    assert coverage_band(3.8) == "comfortable (3.5–4x)"
    assert coverage_band(4.6) == "above 4x: check pipeline quality"
    assert coverage_band(float("nan")) == "unknown"


def test_reverse_funnel_closed_form_and_by_simulation():
    rng = np.random.default_rng(11)
    n_draws = 400
    rates = np.array([0.3, 0.4, 0.25])
    params = ParameterSummary(
        path=Path("x"), source="assumptions", stages=tuple(STAGES), cells=("mid/a",),
        conversion=np.tile(rates, (n_draws, 1, 1)),
        deal_mean=np.full((n_draws, 1), 10_000.0),
        arrival_rate=np.tile([50.0, 0, 0], (n_draws, 1, 1)),
    )
    need = reverse_funnel(params, "mid", 400_000.0)
    assert need is not None
    # closed form: 40 won deals; / 0.25 / 0.4 / 0.3
    np.testing.assert_allclose(need, [40 / 0.25 / 0.4 / 0.3, 40 / 0.25 / 0.4, 40 / 0.25, 40])
    # Push need[0] MQLs through binomial steps with lognormal deals of mean 10,000 (sigma 0.6):
    # mean revenue = target. 4000 replications; the MC standard error of the mean is
    # sd / sqrt(4000); accept within 4 standard errors (fails by chance < 1e-4).
    n0 = round(need[0])
    reps = 4000
    won = rng.binomial(rng.binomial(rng.binomial(np.full(reps, n0), 0.3), 0.4), 0.25)
    sig = 0.6
    rev = np.array([rng.lognormal(np.log(10_000) - sig**2 / 2, sig, k).sum() for k in won])
    se = rev.std(ddof=1) / np.sqrt(reps)
    assert abs(rev.mean() - 400_000.0 * n0 / need[0]) < 4 * se
    assert reverse_funnel(params, "ent", 1.0) is None


def test_reverse_funnel_published_example_and_zero_rate():
    # $15M target / $60K deals / 30% MQL->SQL / 65% SQL->Opp / 22% Opp->Won: the published
    # planning example (about 5,840 MQLs); the report uses the planning tables' reverse funnel
    params = ParameterSummary(
        path=Path("x"), source="assumptions", stages=tuple(STAGES), cells=("mid/a",),
        conversion=np.tile([0.30, 0.65, 0.22], (3, 1, 1)),
        deal_mean=np.full((3, 1), 60_000.0),
        arrival_rate=np.tile([50.0, 0, 0], (3, 1, 1)),
    )
    need = reverse_funnel(params, "mid", 15_000_000.0)
    assert need is not None
    assert need[-1] == 250
    assert round(need[0]) == 5828  # 250 / 0.22 / 0.65 / 0.30 = 5,827.5 ("about 5,840")
    zero = ParameterSummary(
        path=Path("x"), source="assumptions", stages=tuple(STAGES), cells=("mid/a",),
        conversion=np.tile([0.30, 0.0, 0.22], (3, 1, 1)),
        deal_mean=np.full((3, 1), 60_000.0),
        arrival_rate=np.tile([50.0, 0, 0], (3, 1, 1)),
    )
    need = reverse_funnel(zero, "mid", 15_000_000.0)
    assert need is not None
    assert np.isinf(need[:2]).all()
    np.testing.assert_allclose(need[2:], [250 / 0.22, 250])


def test_report_without_parameters(forecast_dir):
    page = build_report(forecast_dir)
    assert page.startswith("<!DOCTYPE html>")
    # self-contained: no external resource at all
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "http://" not in page
    assert "https://" not in page
    imgs = re.findall(r'<img src="data:image/png;base64,', page)
    assert len(imgs) == 3 * 4  # fan, coverage, funnel per segment and total
    for seg in [*SEGMENTS, "total"]:
        assert f'id="seg-{seg}"' in page
    assert "does not record where its" in page  # rates section says why it is missing
    assert "P(hit target)" in page
    assert "± " in page


def test_report_with_posterior(forecast_ds, tmp_path):
    fdir, post = _with_posterior(forecast_ds, tmp_path)
    params = parameters_from_posterior(post)
    assert params.conversion.shape == (400, len(CELLS), 3)
    page = build_report(fdir)
    assert "raw, trailing 4 quarters" in page
    # issue 19, item 1: no deterministic "need" is set against P(hit) any more
    need = reverse_funnel(params, "smb", TARGETS["smb"])
    assert need is not None
    assert "Needs " not in page
    assert "target needs" not in page
    assert "27.0%" in page  # raw 4q rate of the first step (0.30 - 0.03)
    # A posterior file changed since the forecast is not used, and the page says so.
    _posterior_file(post, seed=1)
    page = build_report(fdir)
    assert "changed since the forecast" in page
    # ... unless given explicitly
    assert "raw, trailing 4 quarters" in build_report(fdir, parameters=post)


def test_report_is_reproducible_and_atomic(forecast_dir):
    nc_hash = file_sha256(forecast_dir / "forecast.nc")
    out = write_report(forecast_dir)
    first = out.read_bytes()
    with pytest.raises(InputError, match="--force"):
        write_report(forecast_dir)
    write_report(forecast_dir, force=True)
    assert out.read_bytes() == first
    assert file_sha256(forecast_dir / "forecast.nc") == nc_hash


def test_bad_forecast_is_named(forecast_ds, tmp_path):
    with pytest.raises(InputError, match="no forecast here"):
        build_report(tmp_path / "nothing")
    broken = forecast_ds.drop_vars("coverage")
    broken.attrs = dict(broken.attrs, start="not-a-date")
    fdir = write_forecast_dir(broken, tmp_path / "bad")
    with pytest.raises(InputError) as exc:
        write_report(fdir)
    cols = {i.column for i in exc.value.issues}
    assert cols == {"coverage", "attrs.start"}
    assert all(i.file.endswith("forecast.nc") for i in exc.value.issues)
    assert not (fdir / "report.html").exists()


def test_cli_report(forecast_dir, capsys):
    assert main(["report", str(forecast_dir)]) == 0
    out = capsys.readouterr().out
    assert "report written to" in out
    assert "total" in out
    assert (forecast_dir / "report.html").is_file()
    assert main(["report", str(forecast_dir)]) == 2  # exists, no --force
    assert main(["report", str(forecast_dir), "--force"]) == 0


def test_posterior_found_by_hash_as_simulate_records_it(forecast_ds, tmp_path):
    """``simengine simulate`` records {"posterior": sha256}: the file next to DIR is found."""
    post = _posterior_file(tmp_path / "posterior.nc")
    ds = forecast_ds.copy()
    ds.attrs = dict(ds.attrs, source="posterior",
                    input_sha256=json.dumps({"posterior": file_sha256(post), "plan": "0" * 64}))
    fdir = write_forecast_dir(ds, tmp_path / "fc")
    assert "raw, trailing 4 quarters" in build_report(fdir)
    post.rename(tmp_path / "elsewhere.bin")
    assert "hash but not its path" in build_report(fdir)


def test_unconverged_posterior_is_flagged(forecast_dir, tmp_path):
    good = _posterior_file(tmp_path / "good.nc")
    assert "missed the convergence gate" not in build_report(forecast_dir, parameters=good)
    bad = _posterior_file(tmp_path / "bad.nc", converged="false")
    assert "missed the convergence gate" in build_report(forecast_dir, parameters=bad)

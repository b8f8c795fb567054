from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from simengine.backtest.baselines import run_rate
from simengine.backtest.run import BacktestConfig, run_backtest
from simengine.config.spec import load_spec
from simengine.io.records import as_of_view, load_records


@pytest.fixture(scope="module")
def crm(crm_dir, models_dir):
    spec = load_spec(models_dir / "crm-opportunities.toml")
    return spec, load_records(crm_dir / "sales_pipeline.csv", spec)


def _run_rate_forecaster(calls):
    # A real (if simple) forecaster: the run-rate method, seeing only what
    # the backtest hands it; records the latest date it was shown.
    def forecast(known, spec, plan, workdir):
        cols = [*spec.stage_columns, "lost_at"]
        calls.append((plan.as_of, known[cols].max().max()))
        return run_rate(known, spec, plan.start, plan.period_days, sorted(plan.targets))

    return forecast


def test_backtest_orchestration_writes_scores_and_resumes(crm, tmp_path):
    spec, full = crm
    origins = [dt.date(2017, 6, 30), dt.date(2017, 7, 31)]
    cfg = BacktestConfig(period_days=91, paths=1000, seed=1)
    calls: list = []
    scores, pooled = run_backtest(
        full, spec, origins, tmp_path, cfg, _run_rate_forecaster(calls), as_of_view=as_of_view
    )
    # Nothing after the origin reached the forecaster.
    assert [c[0] for c in calls] == origins
    assert all(latest <= pd.Timestamp(o) for o, latest in calls)
    segments = sorted(full[spec.segment_column].unique())
    assert set(scores["segment"]) == {*segments, "total"}
    assert set(scores["method"]) == {"simengine", "run_rate", "spreadsheet", "weighted_pipeline"}
    assert len(scores) == len(origins) * 4 * (len(segments) + 1)
    for name in ("backtest.csv", "pooled.csv", "backtest.html"):
        assert (tmp_path / name).exists()
    # The truth: closed-won revenue in the 91 days after the origin, from the full file.
    won = full[
        (full["won_at"] > pd.Timestamp("2017-06-30"))
        & (full["won_at"] <= pd.Timestamp("2017-09-29"))
    ]
    got = scores[(scores["origin"] == "2017-06-30") & (scores["segment"] == "total")][
        "realised"
    ].iloc[0]
    assert got == pytest.approx(won["amount"].sum())
    # Resume: a second run scores nothing again.
    calls.clear()
    again, _ = run_backtest(
        full, spec, origins, tmp_path, cfg, _run_rate_forecaster(calls), as_of_view=as_of_view
    )
    assert calls == []
    pd.testing.assert_frame_equal(again, scores, check_dtype=False)
    assert len(pooled) == 4 * (len(segments) + 1)


def _run_rate_forecast(known, spec, plan, workdir):
    """Module-level (picklable) run-rate forecaster for the worker-process test."""
    (workdir / "seen.txt").write_text(str(known[[*spec.stage_columns, "lost_at"]].max().max()))
    return run_rate(known, spec, plan.start, plan.period_days, sorted(plan.targets))


def test_parallel_origins_score_like_serial_and_resume(crm, tmp_path):
    """workers=2 (spawned processes) gives the serial scores; resume rescoring only the gap."""
    spec, full = crm
    origins = [dt.date(2017, 6, 30), dt.date(2017, 8, 31)]
    cfg = BacktestConfig(period_days=91, paths=1000, seed=1)
    serial, pooled_s = run_backtest(
        full, spec, origins, tmp_path / "s", cfg, _run_rate_forecast, as_of_view=as_of_view
    )
    events: list[tuple[dt.date, str]] = []
    par, pooled_p = run_backtest(
        full,
        spec,
        origins,
        tmp_path / "p",
        cfg,
        _run_rate_forecast,
        as_of_view=as_of_view,
        on_origin=lambda o, s: events.append((o, s)),
        workers=2,
    )
    pd.testing.assert_frame_equal(par, serial)
    pd.testing.assert_frame_equal(pooled_p, pooled_s)
    assert [e for e in events if e[1] == "scored"] == [(o, "scored") for o in origins]
    assert [e for e in events if e[1] == "queued"] == [(o, "queued") for o in origins]
    for o in origins:  # the worker saw nothing after its origin
        seen = (tmp_path / "p" / "origins" / o.isoformat() / "seen.txt").read_text()
        assert pd.Timestamp(seen) <= pd.Timestamp(o)
    # interrupted after the first origin: only the second is scored again
    (tmp_path / "p" / "origins" / "2017-08-31" / "scores.csv").unlink()
    events.clear()
    again, _ = run_backtest(
        full,
        spec,
        origins,
        tmp_path / "p",
        cfg,
        _run_rate_forecast,
        as_of_view=as_of_view,
        on_origin=lambda o, s: events.append((o, s)),
        workers=2,
    )
    assert events == [(origins[0], "resumed"), (origins[1], "scored")]
    pd.testing.assert_frame_equal(again, serial, check_dtype=False)


def test_forecaster_is_picklable_and_rejects_a_block_map_in_workers(crm, tmp_path):
    import pickle

    from simengine.backtest.run import simengine_forecaster
    from simengine.engine.simulate import thread_block_map

    spec, full = crm
    cfg = BacktestConfig(period_days=91, paths=1000, seed=1)
    fc = simengine_forecaster(cfg, fit_overrides={"draws": 10, "left_truncated": True})
    assert pickle.loads(pickle.dumps(fc)) == fc
    # a block map (--cluster's Dask map in the CLI) holds a connection of this
    # process: the origins must then run here, not in worker processes
    with_map = simengine_forecaster(cfg, block_map=thread_block_map(1))
    with pytest.raises(ValueError, match="worker processes"):
        run_backtest(
            full,
            spec,
            [dt.date(2017, 6, 30)],
            tmp_path,
            cfg,
            with_map,
            as_of_view=as_of_view,
            workers=2,
        )
    with pytest.raises(ValueError, match="workers must be"):
        run_backtest(
            full, spec, [], tmp_path, cfg, _run_rate_forecast, as_of_view=as_of_view, workers=0
        )


@pytest.mark.slow
def test_forecaster_reuses_its_own_posterior_only(models_dir, tmp_path, no_blas_probe):
    """A resumed origin whose posterior.nc matches (spec, as-of, seed, data, settings)
    skips the fit and gives bitwise the same forecast; other settings or data refit."""
    from simengine.backtest.run import (
        _plan_for,
        _reusable,
        records_sha256,
        simengine_forecaster,
    )
    from simengine.fitting.fit import settings_from_spec
    from simengine.synth import SynthConfig, generate

    spec = load_spec(models_dir / "demo.toml")
    csv = tmp_path / "records.csv"
    generate(11, weeks=30).records.to_csv(csv, index=False)
    full = load_records(csv, spec)
    origin = SynthConfig().as_of - dt.timedelta(days=35)
    known = as_of_view(full, spec, origin)
    cfg = BacktestConfig(period_days=28, paths=5_000, seed=5)
    plan = _plan_for(origin, cfg.period_days, dict.fromkeys(("ent", "mid", "smb"), 1.0))
    steps: list[str] = []
    over = {"draws": 40, "tune": 40, "chains": 2}
    fc = simengine_forecaster(cfg, fit_overrides=over, on_step=lambda o, s: steps.append(s))
    first = fc(known, spec, plan, tmp_path)
    assert "fit:conversion" in steps
    assert "fit:reused" not in steps
    post = tmp_path / "posterior.nc"
    mtime = post.stat().st_mtime_ns
    steps.clear()
    again = fc(known, spec, plan, tmp_path)
    assert steps[0] == "fit:reused"
    assert post.stat().st_mtime_ns == mtime
    for seg, q in first.items():
        np.testing.assert_array_equal(q.values, again[seg].values)
    # different data (one unit fewer), seed or settings: not reused
    seed = cfg.origin_seed(origin)
    st = settings_from_spec(spec, **over)
    assert _reusable(post, spec, origin, seed, records_sha256(known), st)
    fewer = known.iloc[1:].reset_index(drop=True)
    assert not _reusable(post, spec, origin, seed, records_sha256(fewer), st)
    assert not _reusable(post, spec, origin, seed + 1, records_sha256(known), st)
    st41 = settings_from_spec(spec, **{**over, "draws": 41})
    assert not _reusable(post, spec, origin, seed, records_sha256(known), st41)
    lt = settings_from_spec(spec, **over, left_truncated=True)
    assert not _reusable(post, spec, origin, seed, records_sha256(known), lt)

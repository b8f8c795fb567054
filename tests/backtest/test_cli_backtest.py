from __future__ import annotations

import pandas as pd
import pytest

from simengine.cli import main
from simengine.synth import generate


@pytest.fixture(scope="module")
def synth_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "records.csv"
    generate(3, weeks=40).records.to_csv(path, index=False)
    return path


def _args(data, models_dir, out, *extra):
    return [
        "backtest",
        str(data),
        "--model",
        str(models_dir / "demo.toml"),
        "--origins",
        "2026-11-30",
        "--period",
        "28d",
        "--out",
        str(out),
        "--paths",
        "20000",
        "--draws",
        "60",
        "--tune",
        "60",
        "--chains",
        "2",
        *extra,
    ]


@pytest.mark.parametrize(
    ("extra", "where"),
    [
        (["--cluster", "local:0"], "--cluster"),
        (["--period", "3m"], "--period"),
        (["--workers", "2", "--cluster", "local:1"], "--workers"),
    ],
)
def test_bad_options_exit_2_and_write_nothing(
    synth_csv, models_dir, tmp_path, capsys, extra, where
):
    out = tmp_path / "bt"
    assert main(_args(synth_csv, models_dir, out, *extra)) == 2
    assert not out.exists()
    assert where in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.distributed
def test_cluster_gives_the_same_scores_and_an_unreachable_one_a_clear_error(
    synth_csv, models_dir, tmp_path, capsys, no_blas_probe
):
    # One test, so the later runs reuse this process's compiled models (only
    # the first fit compiles).
    import time

    import dask

    a, b = tmp_path / "a", tmp_path / "b"
    assert main(_args(synth_csv, models_dir, a)) == 0
    capsys.readouterr()
    # --cluster's Dask map connects when the first origin simulates, after its
    # fit (as for simulate/stress/plan: the inputs are checked before a
    # scheduler is contacted), and gives up after Dask's connect timeout. The
    # origin's fit stays for the re-run; nothing is scored.
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        code = main(_args(synth_csv, models_dir, b, "--cluster", "tcp://127.0.0.1:1"))
    ended = time.time()
    assert code == 2
    err = capsys.readouterr().err
    assert "unreachable" in err
    assert "tcp://127.0.0.1:1" in err
    post = b / "origins" / "2026-11-30" / "posterior.nc"
    assert post.exists()
    assert not (post.parent / "scores.csv").exists()
    assert not (b / "backtest.csv").exists()
    # posterior.nc is written just before the origin simulates, i.e. connects:
    # from then on, the 2 s timeout plus slack for reading it back on a busy box
    assert ended - post.stat().st_mtime < 2.0 + 20.0
    mtime = post.stat().st_mtime_ns
    # Same seed: the fit is the same in both runs (here reused from the failed
    # run) and the engine blocks merge bitwise the same on Dask, so every
    # score is identical.
    assert main(_args(synth_csv, models_dir, b, "--cluster", "local:1")) == 0
    assert post.stat().st_mtime_ns == mtime  # resumed: the fit was reused, not redone
    sa, sb = pd.read_csv(a / "backtest.csv"), pd.read_csv(b / "backtest.csv")
    pd.testing.assert_frame_equal(sa, sb, check_exact=True)
    assert set(sa["method"]) == {"simengine", "run_rate", "spreadsheet", "weighted_pipeline"}

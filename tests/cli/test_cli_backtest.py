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
    # --cluster connects once the inputs are checked, before the first fit, and
    # gives up after Dask's connect timeout: nothing fitted, nothing scored.
    t0 = time.time()
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        code = main(_args(synth_csv, models_dir, b, "--cluster", "tcp://127.0.0.1:1"))
    took = time.time() - t0
    assert code == 2
    err = capsys.readouterr().err
    assert "unreachable" in err
    assert "tcp://127.0.0.1:1" in err
    assert not (b / "origins").exists() or not any((b / "origins").rglob("posterior.nc"))
    assert not (b / "backtest.csv").exists()
    # loading the records and the 2 s timeout, with slack for a busy box (a fit
    # takes far longer)
    assert took < 2.0 + 20.0
    # Same seed: the fit is the same in both runs and the engine blocks merge
    # bitwise the same on Dask, so every score is identical.
    assert main(_args(synth_csv, models_dir, b, "--cluster", "local:1")) == 0
    sa, sb = pd.read_csv(a / "backtest.csv"), pd.read_csv(b / "backtest.csv")
    pd.testing.assert_frame_equal(sa, sb, check_exact=True)
    assert set(sa["method"]) == {"simengine", "run_rate", "spreadsheet", "weighted_pipeline"}

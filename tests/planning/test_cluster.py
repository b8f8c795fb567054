"""Stress, sensitivity and goal seek on Dask: the same blocks, the same bytes as in-process."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from planning_factories import make_small, write_inputs

from simengine.cli import main
from simengine.engine.distributed import connect, dask_block_map
from simengine.planning.goalseek import goal_seek_table
from simengine.planning.scenarios import Scenario, Shock
from simengine.planning.sensitivity import run_sensitivity
from simengine.planning.stress import run_stress

# (simengine.engine.distributed is imported above, i.e. before any dask.config.set
# context below: importing distributed inside one would register its config
# defaults only until the context exits.)

# Small on purpose: few paths, small blocks (several blocks per run, so the
# block order of the merge matters), on a shared 2-core machine.
PATHS = 900
BATCHES = 3
SEED = 20270104
SCENARIOS = (
    Scenario("fewer-mqls", "MQLs -20%", "", (Shock("arrivals", "scale", 0.8, stage="mql"),)),
    Scenario(
        "ent-win",
        "ent win -3pt",
        "",
        (Shock("conversion", "add", -0.03, segment="ent", step="won"),),
    ),
)
SCENARIO_TOML = """
[[scenario]]
name = "fewer-mqls"
[[scenario.shock]]
what = "arrivals"
stage = "mql"
how = "scale"
value = 0.8
"""


def _stress(**kw: object):  # type: ignore[no-untyped-def]
    params, plan = make_small()
    return run_stress(params, plan, SCENARIOS, paths=PATHS, seed=SEED, batches=BATCHES, **kw)


def _sensitivity(**kw: object):  # type: ignore[no-untyped-def]
    params, plan = make_small()
    return run_sensitivity(params, plan, paths=PATHS, seed=SEED, batches=BATCHES, **kw)


@pytest.fixture(scope="module")
def in_process() -> dict[str, str]:
    params, plan = make_small()
    goal = goal_seek_table(params, plan, quantiles=(0.5,), paths=400, seed=SEED, threads=2)
    return {
        "stress": _stress(threads=2).to_csv(index=False),
        "sensitivity": _sensitivity(threads=2).to_csv(index=False),
        "goalseek": goal.to_csv(index=False),
    }


def test_tables_depend_on_the_seed(in_process: dict[str, str]) -> None:
    # Guards the equality tests below against comparing constants.
    params, plan = make_small()
    other = run_stress(params, plan, SCENARIOS, paths=PATHS, seed=SEED + 1, batches=BATCHES)
    assert other.to_csv(index=False) != in_process["stress"]


@pytest.fixture(scope="module", params=[1, 2], ids=["local1", "local2"])
def client(request: pytest.FixtureRequest) -> Iterator[object]:
    c = connect(f"local:{request.param}", timeout=120.0)
    try:
        yield c
    finally:
        c.close()


@pytest.mark.distributed
def test_stress_sensitivity_goalseek_same_bytes_on_workers(
    client: object, in_process: dict[str, str]
) -> None:
    block_map = dask_block_map(client)  # type: ignore[arg-type]
    assert _stress(block_map=block_map).to_csv(index=False) == in_process["stress"]
    assert _sensitivity(block_map=block_map).to_csv(index=False) == in_process["sensitivity"]
    params, plan = make_small()
    goal = goal_seek_table(
        params, plan, quantiles=(0.5,), paths=400, seed=SEED, block_map=block_map
    )
    assert goal.to_csv(index=False) == in_process["goalseek"]


# ------------------------------------------------------------------ the CLI option


def _argv(cmd: str, tmp_path: Path, out: Path, *extra: str) -> list[str]:
    a, p = write_inputs(tmp_path)
    argv = [cmd, "--plan", str(p), "--assumptions", str(a), "--out", str(out)]
    argv += ["--paths", "600", "--batches", "3", "--draws", "20", "--seed", "3"]
    if cmd == "stress":
        s = tmp_path / "scenarios.toml"
        s.write_text(SCENARIO_TOML)
        argv += ["--scenarios", str(s)]
    return argv + list(extra)


@pytest.mark.parametrize("cmd", ["stress", "sensitivity"])
def test_cli_unreachable_scheduler_exits_2_without_output(
    cmd: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import dask

    out = tmp_path / "out"
    t0 = time.perf_counter()
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        code = main(_argv(cmd, tmp_path, out, "--cluster", "tcp://127.0.0.1:1"))
    assert code == 2
    assert time.perf_counter() - t0 < 2.0 + 20.0  # the timeout + reading inputs, loaded box
    assert not out.exists()
    err = capsys.readouterr().err
    assert "unreachable" in err
    assert "tcp://127.0.0.1:1" in err


def test_cli_plan_unreachable_scheduler_exits_2_without_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import dask

    a, p = write_inputs(tmp_path)
    out = tmp_path / "out"
    argv = ["plan", "--plan", str(p), "--assumptions", str(a), "--draws", "20"]
    argv += ["--paths", "200", "--out", str(out), "--cluster", "tcp://127.0.0.1:1"]
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        assert main(argv) == 2
    assert not out.exists()
    assert "unreachable" in capsys.readouterr().err


@pytest.mark.parametrize("cmd", ["stress", "sensitivity"])
def test_cli_bad_cluster_option_exits_2_before_reading_inputs(
    cmd: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(_argv(cmd, tmp_path, out, "--cluster", "local:0")) == 2
    assert not out.exists()
    assert "at least one worker" in capsys.readouterr().err


def test_cli_bad_scenario_is_reported_before_the_cluster_is_contacted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = _argv("stress", tmp_path, out, "--cluster", "tcp://127.0.0.1:1")
    (tmp_path / "scenarios.toml").write_text(SCENARIO_TOML.replace('"mql"', '"lead"'))
    t0 = time.perf_counter()
    assert main(argv) == 2
    assert time.perf_counter() - t0 < 15.0  # well under Dask's default 30 s connect timeout
    assert not out.exists()
    err = capsys.readouterr().err
    assert "lead" in err
    assert "unreachable" not in err


@pytest.mark.parametrize("cmd", ["stress", "sensitivity"])
def test_cli_fewer_paths_than_batches_exits_2(
    cmd: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(_argv(cmd, tmp_path, out, "--paths", "2", "--batches", "3")) == 2
    assert not out.exists()
    assert "--batches" in capsys.readouterr().err


@pytest.mark.distributed
def test_cli_stress_local_cluster_same_bytes_as_in_process(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(_argv("stress", tmp_path, a)) == 0
    assert main(_argv("stress", tmp_path, b, "--cluster", "local:2")) == 0
    assert (a / "stress.csv").read_bytes() == (b / "stress.csv").read_bytes()


def test_cli_plan_quick_form_refuses_cluster(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["plan", "--target", "1000000", "--deal-size", "50000", "--rates", "0.3,0.2"]
    assert main([*argv, "--cluster", "local:2"]) == 2
    assert "quick form runs no simulation" in capsys.readouterr().err
    assert main(argv) == 0

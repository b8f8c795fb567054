"""Dask scale-out: option parsing, unreachable schedulers, bitwise equality, faults."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from workloads import light_workload

from simengine.config.plan import Plan
from simengine.engine import plan_blocks, prepare, run_block, simulate
from simengine.engine.blocks import BlockSummary
from simengine.engine.distributed import (
    ClusterSpec,
    _pack,
    _unpack,
    available_cores,
    connect,
    parse_cluster,
    run_blocks_distributed,
    simulate_distributed,
    threads_per_worker,
    worker_info,
)
from simengine.errors import InputError
from simengine.params import FunnelParameters

PATHS = 24_000
BLOCK = 2_000  # 12 blocks: enough for a worker to die with work outstanding
SEED = 20270104


# ------------------------------------------------------------------ option parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("local:1", ClusterSpec("local", n_workers=1)),
        (" local:4 ", ClusterSpec("local", n_workers=4)),
        ("tcp://10.0.0.5:8786", ClusterSpec("address", address="tcp://10.0.0.5:8786")),
        ("tls://sched.example.com:8786", ClusterSpec("address", address="tls://sched.example.com:8786")),
        ("sched.example.com:8786", ClusterSpec("address", address="tcp://sched.example.com:8786")),
    ],
)
def test_parse_cluster_accepts(text: str, expected: ClusterSpec) -> None:
    assert parse_cluster(text) == expected


@pytest.mark.parametrize(
    ("text", "rule_part"),
    [
        ("local:0", "at least one worker"),
        ("local", "local:N"),
        ("local:two", "local:N"),
        ("http://host:8786", "unknown scheduler protocol"),
        ("tcp://host", "protocol://host:port"),
        ("my-cluster", "scheduler address"),
        ("", "scheduler address"),
    ],
)
def test_parse_cluster_rejects_with_a_located_issue(text: str, rule_part: str) -> None:
    with pytest.raises(InputError) as info:
        parse_cluster(text)
    (issue,) = info.value.issues
    assert issue.column == "--cluster"
    assert issue.value == text
    assert rule_part in issue.rule


def test_threads_never_oversubscribe() -> None:
    assert threads_per_worker(1, cores=8) == 8
    assert threads_per_worker(2, cores=8) == 4
    assert threads_per_worker(3, cores=8) == 2
    assert threads_per_worker(16, cores=8) == 1  # more workers than cores: 1 each
    for n in range(1, 10):
        for cores in range(1, 17):
            t = threads_per_worker(n, cores=cores)
            assert t >= 1
            assert n * t <= max(cores, n)
    with pytest.raises(ValueError, match="n_workers"):
        threads_per_worker(0)


def test_unreachable_scheduler_is_a_clear_error_within_the_timeout() -> None:
    # Port 1 on localhost: nothing listens; connect must give up after ~timeout.
    t0 = time.perf_counter()
    with pytest.raises(InputError) as info:
        connect("tcp://127.0.0.1:1", timeout=2.0)
    elapsed = time.perf_counter() - t0
    assert elapsed < 2.0 + 8.0  # the timeout plus generous slack on a loaded 2-core box
    (issue,) = info.value.issues
    assert issue.column == "--cluster"
    assert issue.value == "tcp://127.0.0.1:1"
    assert "cannot reach the Dask scheduler within 2s" in issue.rule
    assert "unreachable" in info.value.summary


def test_bad_plan_is_reported_before_any_cluster_is_contacted() -> None:
    params, plan = light_workload()
    bad = Plan(start=plan.start, end=plan.end, as_of=plan.as_of, targets={"smb": 1.0})
    # An unreachable address would take the timeout; the plan error comes first.
    t0 = time.perf_counter()
    with pytest.raises(InputError, match="no target"):
        simulate_distributed(
            params, bad, paths=10, seed=1, cluster="tcp://127.0.0.1:1", timeout=30.0
        )
    assert time.perf_counter() - t0 < 5.0


def test_simulate_distributed_accepts_every_option_of_simulate() -> None:
    # simulate_distributed mirrors simulate's metadata; a new engine option
    # (e.g. another provenance attribute) must be mirrored too.
    import inspect

    engine = set(inspect.signature(simulate).parameters) - {"threads", "block_map"}
    ours = set(inspect.signature(simulate_distributed).parameters)
    assert engine <= ours, engine - ours


# ------------------------------------------------------------------ wire format


def _assert_same_summary(a: BlockSummary, b: BlockSummary) -> None:
    assert a.n == b.n
    assert a.blocks == b.blocks
    for name in (
        "scal_hist", "welford", "hit", "within", "ttt_hist",
        "cum_hist", "cum_sum", "cum_comp", "wcov_hist",
    ):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype
        assert x.shape == y.shape
        assert x.tobytes() == y.tobytes(), name


def test_pack_round_trip_is_bitwise_and_smaller() -> None:
    params, plan = light_workload()
    prepared = prepare(params, plan)
    block = plan_blocks(3_000, 3_000)[0]
    summary = run_block(prepared, block, SEED)
    packed = _pack(summary)
    _assert_same_summary(_unpack(packed), summary)
    wire = sum(
        sum(x.nbytes for x in v[2:]) if isinstance(v, tuple) else getattr(v, "nbytes", 8)
        for v in packed.values()
    )
    assert wire < summary.nbytes / 5  # histograms of one block are mostly empty bins


# ------------------------------------------------------------------ on a LocalCluster


@pytest.fixture(scope="module")
def problem() -> tuple[FunnelParameters, Plan]:
    """The benchmarks' light workload: 2 segments x 2 channels, 4 stages, open units."""
    return light_workload()


@pytest.fixture(scope="module")
def in_process(problem: tuple[FunnelParameters, Plan], tmp_path_factory: pytest.TempPathFactory) -> Path:
    params, plan = problem
    out = tmp_path_factory.mktemp("inproc") / "fc"
    simulate(params, plan, paths=PATHS, seed=SEED, block_size=BLOCK, threads=2).write(out)
    return out


@pytest.fixture(scope="module", params=[1, 2], ids=["local1", "local2"])
def client(request: pytest.FixtureRequest) -> Iterator[object]:
    c = connect(f"local:{request.param}", timeout=60.0)
    try:
        yield c
    finally:
        c.close()


@pytest.mark.distributed
def test_workers_are_warm_and_do_not_oversubscribe(client: object) -> None:
    info = worker_info(client)  # type: ignore[arg-type]
    sched = client.scheduler_info(n_workers=-1)["workers"]  # type: ignore[attr-defined]
    cores = available_cores()
    assert info
    total = 0
    for addr, w in info.items():
        assert w["warmed"], addr
        total += int(sched[addr]["nthreads"]) * int(w["numba_threads"])
    assert total <= max(cores, len(info))


@pytest.mark.distributed
def test_local_cluster_runs_with_the_quiet_configuration(client: object) -> None:
    """Every worker runs with LOCAL_CLUSTER_CONFIG (its nanny hands it over at spawn)."""
    from simengine.engine.distributed import LOCAL_CLUSTER_CONFIG

    def read() -> list[object]:
        import dask

        return [dask.config.get(k) for k in LOCAL_CLUSTER_CONFIG]

    want = list(LOCAL_CLUSTER_CONFIG.values())
    assert want[0] is False  # the statistical profiler is off, not left at its default
    workers = client.run(read)  # type: ignore[attr-defined]
    assert workers
    assert all(v == want for v in workers.values()), workers
    # ... and the configuration of this process (scheduler, nannies: set at
    # their start) is left as it was
    import dask

    assert dask.config.get("distributed.worker.profile.enabled") is True


@pytest.mark.distributed
def test_same_seed_same_bytes_in_process_and_on_workers(
    client: object, problem: tuple[FunnelParameters, Plan], in_process: Path, tmp_path: Path
) -> None:
    params, plan = problem
    seen: list[tuple[int, int]] = []
    fc = simulate_distributed(
        params, plan, paths=PATHS, seed=SEED, block_size=BLOCK, cluster=client,  # type: ignore[arg-type]
        on_block=lambda done, total: seen.append((done, total)),
    )
    fc.write(tmp_path / "fc")
    assert (tmp_path / "fc" / "summary.csv").read_bytes() == (in_process / "summary.csv").read_bytes()
    import xarray as xr

    with (
        xr.open_dataset(in_process / "forecast.nc", engine="h5netcdf") as a,
        xr.open_dataset(tmp_path / "fc" / "forecast.nc", engine="h5netcdf") as b,
    ):
        xr.testing.assert_identical(a.load(), b.load())
    # progress: one call per block, in order, ending at the total
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert seen[-1] == (PATHS, PATHS)
    assert len(seen) == PATHS // BLOCK


@pytest.mark.distributed
def test_a_different_seed_gives_different_numbers(
    client: object, problem: tuple[FunnelParameters, Plan], in_process: Path
) -> None:
    # Guards the equality test against comparing constants.
    import pandas as pd

    params, plan = problem
    fc = simulate_distributed(
        params, plan, paths=PATHS, seed=SEED + 1, block_size=BLOCK, cluster=client  # type: ignore[arg-type]
    )
    ref = pd.read_csv(in_process / "summary.csv")
    got = fc.summary
    rev = (got["metric"] == "revenue") & (got["stat"] == "mean")
    ref_rev = (ref["metric"] == "revenue") & (ref["stat"] == "mean")
    assert not np.array_equal(got.loc[rev, "value"].to_numpy(), ref.loc[ref_rev, "value"].to_numpy())


@pytest.mark.distributed
def test_map_blocks_yields_each_block_in_order(
    client: object, problem: tuple[FunnelParameters, Plan]
) -> None:
    from simengine.engine.distributed import map_blocks

    params, plan = problem
    prepared = prepare(params, plan)
    blocks = plan_blocks(2_500, 1_000)  # 1000, 1000, 500
    got = list(map_blocks(client, prepared, blocks, SEED, in_flight=2))  # type: ignore[arg-type]
    assert [g.blocks for g in got] == [(0,), (1,), (2,)]
    for g, b in zip(got, blocks, strict=True):
        _assert_same_summary(g, run_block(prepared, b, SEED))


def _kill_one_worker(client: object) -> int:
    pids = client.run(os.getpid)  # type: ignore[attr-defined]
    victim = sorted(pids.values())[0]
    os.kill(victim, signal.SIGKILL)
    return int(victim)


@pytest.mark.distributed
def test_killing_a_worker_mid_run_gives_the_same_bytes(
    client: object, problem: tuple[FunnelParameters, Plan], in_process: Path, tmp_path: Path
) -> None:
    """Kill a worker after the first merged block; lost blocks are recomputed from their seeds.

    With one worker this also loses every copy of the scattered inputs, which
    are then scattered again to the restarted worker.
    """
    params, plan = problem
    prepared = prepare(params, plan)
    killed: list[int] = []

    def kill_once(done: int, total: int) -> None:
        if not killed and done < total:
            killed.append(_kill_one_worker(client))

    summary = run_blocks_distributed(
        client, prepared, PATHS, SEED, BLOCK, kill_once  # type: ignore[arg-type]
    )
    assert killed
    assert killed[0] not in client.run(os.getpid).values()  # type: ignore[attr-defined]
    ref = simulate(params, plan, paths=PATHS, seed=SEED, block_size=BLOCK, threads=1)
    from simengine.engine import Forecast

    fc = Forecast.from_summary(
        summary, params, plan,
        {"seed": SEED, "block_size": BLOCK, "versions": {}, "input_sha256": {}},
    )
    assert fc.summary.to_csv(index=False) == ref.summary.to_csv(index=False)


# ------------------------------------------------------------------ the CLI option

CLI_PLAN = """start = 2027-01-04
end = 2027-03-07
as_of = 2027-01-04
[targets]
smb = 400000
mid = 900000
ent = 1500000
"""


def _cli_args(models_dir: Path, plan: Path, out: Path, *extra: str) -> list[str]:
    return [
        "simulate", "--assumptions", str(models_dir / "assumptions.toml"),
        "--plan", str(plan), "--paths", "1200", "--seed", "5", "--block-size", "300",
        "--out", str(out), *extra,
    ]


@pytest.fixture
def cli_plan(tmp_path: Path) -> Path:
    p = tmp_path / "plan.toml"
    p.write_text(CLI_PLAN)
    return p


def test_cli_unreachable_scheduler_exits_2_without_output(
    models_dir: Path, cli_plan: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import dask

    from simengine.cli import main

    out = tmp_path / "fc"
    t0 = time.perf_counter()
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        code = main(_cli_args(models_dir, cli_plan, out, "--cluster", "tcp://127.0.0.1:1"))
    assert code == 2
    assert time.perf_counter() - t0 < 2.0 + 20.0  # timeout + loading the assumptions
    assert not out.exists()
    err = capsys.readouterr().err
    assert "unreachable" in err
    assert "tcp://127.0.0.1:1" in err


def test_cli_bad_cluster_option_exits_2(models_dir: Path, cli_plan: Path, tmp_path: Path) -> None:
    from simengine.cli import main

    out = tmp_path / "fc"
    assert main(_cli_args(models_dir, cli_plan, out, "--cluster", "local:0")) == 2
    assert not out.exists()


@pytest.mark.distributed
def test_cli_local_cluster_same_bytes_as_in_process(
    models_dir: Path, cli_plan: Path, tmp_path: Path
) -> None:
    from simengine.cli import main

    assert main(_cli_args(models_dir, cli_plan, tmp_path / "a")) == 0
    assert main(_cli_args(models_dir, cli_plan, tmp_path / "b", "--cluster", "local:2")) == 0
    assert (tmp_path / "a" / "summary.csv").read_bytes() == (tmp_path / "b" / "summary.csv").read_bytes()


@pytest.mark.distributed
def test_a_running_scheduler_by_address(
    problem: tuple[FunnelParameters, Plan], in_process: Path, tmp_path: Path
) -> None:
    """The ``tcp://host:port`` path: a cluster started elsewhere, workers warmed on connect."""
    import dask
    from distributed import Client, LocalCluster

    params, plan = problem
    with (
        dask.config.set({"distributed.worker.multiprocessing-method": "spawn"}),
        LocalCluster(
            n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None
        ) as cluster,
    ):
        address = cluster.scheduler_address
        assert address.startswith("tcp://")
        fc = simulate_distributed(
            params, plan, paths=PATHS, seed=SEED, block_size=BLOCK, cluster=address
        )
        with Client(address, set_as_default=False) as c:
            (info,) = worker_info(c).values()
    fc.write(tmp_path / "fc")
    assert (tmp_path / "fc" / "summary.csv").read_bytes() == (in_process / "summary.csv").read_bytes()
    assert info["warmed"]
    # 2 Dask threads on this worker: each task's Numba pool is cores // 2
    assert info["numba_threads"] == max(1, available_cores() // 2)


# ------------------------------------------------------------------ one orchestration


def test_simulate_with_a_block_map_uses_it_and_gives_the_same_bytes() -> None:
    """A custom block map (here: blocks run backwards, re-ordered) is used and changes nothing."""
    from simengine.engine.simulate import thread_block_map

    params, plan = light_workload()
    calls: list[int] = []

    def reversed_map(prepared, blocks, seed):  # type: ignore[no-untyped-def]
        calls.append(len(blocks))
        done = {b.index: run_block(prepared, b, seed) for b in reversed(blocks)}
        return [done[b.index] for b in blocks]

    kw = {"paths": 5_000, "seed": SEED, "block_size": 1_000}
    ref = simulate(params, plan, threads=2, **kw)  # type: ignore[arg-type]
    got = simulate(params, plan, block_map=reversed_map, **kw)  # type: ignore[arg-type]
    assert calls == [5]
    assert got.summary.to_csv(index=False) == ref.summary.to_csv(index=False)
    one = simulate(params, plan, block_map=thread_block_map(1), **kw)  # type: ignore[arg-type]
    assert one.summary.to_csv(index=False) == ref.summary.to_csv(index=False)


def test_run_blocks_rejects_a_block_map_out_of_order_or_short() -> None:
    from simengine.engine.simulate import run_blocks

    params, plan = light_workload()
    prepared = prepare(params, plan)

    def swapped(prepared, blocks, seed):  # type: ignore[no-untyped-def]
        return [run_block(prepared, b, seed) for b in (blocks[1], blocks[0])]

    def short(prepared, blocks, seed):  # type: ignore[no-untyped-def]
        return [run_block(prepared, blocks[0], seed)]

    with pytest.raises(RuntimeError, match="expected 0"):
        run_blocks(prepared, 200, SEED, 100, 1, block_map=swapped)
    with pytest.raises(RuntimeError, match="100 of 200 paths"):
        run_blocks(prepared, 200, SEED, 100, 1, block_map=short)


def test_cluster_block_map_connects_only_when_blocks_run() -> None:
    """Entering and leaving it contacts nothing; None means in-process."""
    from simengine.engine.distributed import cluster_block_map

    t0 = time.perf_counter()
    with cluster_block_map("tcp://127.0.0.1:1", timeout=30.0) as block_map:
        pass
    assert time.perf_counter() - t0 < 1.0  # no 30 s connection attempt
    # the first blocks contact the scheduler: unreachable, a clear error naming it
    params, plan = light_workload()
    prepared = prepare(params, plan)
    with cluster_block_map("tcp://127.0.0.1:1", timeout=2.0) as block_map:
        assert block_map is not None
        with pytest.raises(InputError, match="unreachable") as info:
            list(block_map(prepared, plan_blocks(200, 100), SEED))
    assert info.value.issues[0].value == "tcp://127.0.0.1:1"
    with cluster_block_map(None) as none:
        assert none is None
    with pytest.raises(InputError), cluster_block_map("local:0"):
        pass  # malformed: rejected on entry

"""Throughput in-process vs on a Dask ``local:N`` cluster, efficiency, worker memory.

Efficiency (wall) = (paths/s on ``local:N`` workers) / (paths/s in-process
with as many threads as the machine's cores), both on the same cores and the
same blocks; cluster start-up and kernel warm-up are timed separately (they
are paid once per cluster, not per run). The in-process runs come first,
before the cluster starts, so its idle background does not slow them. On a
shared, loaded machine wall
times are noisy, so the CPU efficiency is printed too: in-process CPU
seconds / distributed CPU seconds (workers + the client process, which hosts
the scheduler and nannies of a ``LocalCluster``), i.e. the share of the
distributed run's CPU that did simulation work the in-process run also does.
Peak memory per worker is the worker process's peak resident set
(``ru_maxrss``) at the end of the run.

Workloads (built in code, seeded):

* ``light`` (default): :func:`tests/engine/workloads.py`'s ``light_workload`` (also the
  problem of ``tests/engine/test_distributed.py``): 2 segments x 2 channels, 4
  stages, an 8-week period, ~15 new MQLs per cell per period, 30 open units,
  16 draws (a small team's funnel; ~14k paths/s per core);
* ``standard``: the demo-sized workload of ``benchmarks/engine_report.py``
  (~6,000 MQLs per quarter, 600 open units; ~900 paths/s per core).

As a script (the numbers quoted in docs/performance.md)::

    .venv/bin/python benchmarks/bench_distributed.py --paths 1000000 \
        --block-size 100000 --workers 2

``--paths`` takes one or more sizes (``--paths 10000000`` runs only 10M;
``--paths 1e6 1e7 1e8`` all three; 100M is hours of both cores for the light
workload, run on demand). Each size prints one line as it finishes, and a
A Markdown table for docs/performance.md ends the output.

Under pytest-benchmark (``make bench``): one round each of 400k light paths
in-process and on ``local:2``.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import pytest

# The seeded workloads live with the tests that share them (tests/engine/workloads.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "engine"))
from workloads import light_workload

from simengine.config.plan import Plan
from simengine.engine import simulate
from simengine.engine.distributed import available_cores, connect, simulate_distributed, worker_info
from simengine.params import FunnelParameters


def workload(name: str) -> tuple[FunnelParameters, Plan]:
    if name == "light":
        return light_workload()
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from engine_report import standard_workload  # type: ignore[import-not-found]

    return standard_workload()  # type: ignore[no-any-return]


def _worker_cpu(client: Any) -> float:
    return float(sum(w["cpu_seconds"] for w in worker_info(client).values()))


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(
    name: str, paths_list: list[int], block_size: int, workers: int, seed: int = 1
) -> list[dict[str, Any]]:
    """Time in-process and local:N runs for each path count; return one row each."""
    params, plan = workload(name)
    cores = available_cores()
    # warm the in-process kernels (compile or load from Numba's cache)
    simulate(params, plan, paths=min(1000, block_size), seed=0, block_size=block_size)
    # the in-process runs first, with no cluster up: an idle LocalCluster's
    # scheduler and nannies run in this process and its workers beside it, and
    # would take CPU from (and add process time to) the in-process baseline
    inproc = []
    for paths in paths_list:
        c0, t0 = time.process_time(), time.perf_counter()
        a = simulate(params, plan, paths=paths, seed=seed, block_size=block_size, threads=cores)
        inproc.append((a, time.perf_counter() - t0, time.process_time() - c0))
    t0 = time.perf_counter()
    client = connect(f"local:{workers}", timeout=120.0)
    startup = time.perf_counter() - t0
    # Dask's idle background (heartbeats, monitors) on workers, scheduler and nannies
    w0, c0, t0 = _worker_cpu(client), time.process_time(), time.perf_counter()
    time.sleep(10.0)
    idle = (_worker_cpu(client) - w0 + time.process_time() - c0) / (time.perf_counter() - t0)
    print(f"idle cluster background: {idle:.3f} CPU s per wall s", flush=True)
    rows = []
    try:
        for paths, (a, t_in, cpu_in) in zip(paths_list, inproc, strict=True):
            w0 = _worker_cpu(client)
            c0, t0 = time.process_time(), time.perf_counter()
            b = simulate_distributed(
                params, plan, paths=paths, seed=seed, block_size=block_size, cluster=client
            )
            t_d = time.perf_counter() - t0
            # client (scheduler and nannies run here for a LocalCluster) + workers
            cpu_d = time.process_time() - c0 + (_worker_cpu(client) - w0)
            info = worker_info(client)
            rows.append(
                {
                    "workload": name,
                    "paths": paths,
                    "block_size": block_size,
                    "cores": cores,
                    "workers": workers,
                    "inproc_s": t_in,
                    "inproc_paths_per_s": paths / t_in,
                    "dist_s": t_d,
                    "dist_paths_per_s": paths / t_d,
                    "efficiency": t_in / t_d,
                    "inproc_cpu_s": cpu_in,
                    "dist_cpu_s": cpu_d,
                    "cpu_efficiency": cpu_in / cpu_d,
                    "identical_summary": a.summary.to_csv(index=False)
                    == b.summary.to_csv(index=False),
                    "worker_peak_rss_mib": [
                        round(w["peak_rss_bytes"] / 2**20) for w in info.values()
                    ],
                    "client_peak_rss_mib": round(_peak_rss_mib()),
                    "cluster_startup_s": startup,
                    "idle_cpu_per_s": idle,
                }
            )
            _print_row(rows[-1])
    finally:
        client.close()
    return rows


def wire_cost(name: str, block_size: int, repeats: int = 5) -> dict[str, float]:
    """CPU ms per block spent on the wire format (no cluster): pack, pickle, unpickle, unpack.

    This is the per-block work a distributed run adds to the in-process one
    (besides Dask's own per-task bookkeeping and its idle background).
    """
    import pickle

    from simengine.engine import plan_blocks, prepare, run_block
    from simengine.engine.distributed import _pack, _unpack

    params, plan = workload(name)
    prepared = prepare(params, plan)
    c0 = time.process_time()
    summary = run_block(prepared, plan_blocks(block_size, block_size)[0], 1)
    compute = time.process_time() - c0
    c0 = time.process_time()
    for _ in range(repeats):
        blob = pickle.dumps(_pack(summary), protocol=5)
        _unpack(pickle.loads(blob))
    wire = (time.process_time() - c0) / repeats
    prepared_mib = len(pickle.dumps(prepared, protocol=5)) / 2**20
    row = {
        "prepared_mib": prepared_mib,
        "block_compute_ms": 1e3 * compute,
        "wire_ms": 1e3 * wire,
        "summary_mib": summary.nbytes / 2**20,
        "wire_mib": len(blob) / 2**20,
        "overhead_pct": 100.0 * wire / compute,
    }
    print(
        f"{name:>8} block={block_size:,}: compute {row['block_compute_ms']:,.0f} CPU ms, "
        f"wire {row['wire_ms']:.1f} CPU ms ({row['overhead_pct']:.2f}%), summary "
        f"{row['summary_mib']:.1f} MiB dense -> {row['wire_mib']:.2f} MiB sent; "
        f"prepared inputs {prepared_mib:.2f} MiB (sent once per run)",
        flush=True,
    )
    return row


def _print_row(r: dict[str, Any]) -> None:
    print(
        f"{r['workload']:>8} paths={r['paths']:>11,} block={r['block_size']:>7,} "
        f"in-process({r['cores']} threads) {r['inproc_s']:8.1f}s "
        f"{r['inproc_paths_per_s']:9,.0f}/s | "
        f"local:{r['workers']} {r['dist_s']:8.1f}s {r['dist_paths_per_s']:9,.0f}/s | "
        f"efficiency wall {100 * r['efficiency']:5.1f}% "
        f"CPU {100 * r['cpu_efficiency']:5.1f}% (CPU s {r['inproc_cpu_s']:.1f} vs "
        f"{r['dist_cpu_s']:.1f}) | identical={r['identical_summary']} | "
        f"worker peak RSS MiB {r['worker_peak_rss_mib']} | client peak RSS MiB "
        f"{r['client_peak_rss_mib']} | cluster start {r['cluster_startup_s']:.1f}s",
        flush=True,
    )


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table for docs/performance.md (one line per path count)."""
    if not rows:
        return ""
    r0 = rows[0]
    head = (
        f"| workload | paths | block | in-process ({r0['cores']} threads) | "
        f"local:{r0['workers']} | efficiency (wall) | efficiency (CPU) | "
        "same bytes | worker peak RSS | client peak RSS |"
    )
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        rss = ", ".join(f"{m:,}" for m in r["worker_peak_rss_mib"])
        lines.append(
            f"| {r['workload']} | {r['paths']:,} | {r['block_size']:,} | "
            f"{r['inproc_paths_per_s']:,.0f} paths/s ({r['inproc_s']:,.1f} s) | "
            f"{r['dist_paths_per_s']:,.0f} paths/s ({r['dist_s']:,.1f} s) | "
            f"{100 * r['efficiency']:.1f}% | {100 * r['cpu_efficiency']:.1f}% | "
            f"{'yes' if r['identical_summary'] else 'NO'} | {rss} MiB | "
            f"{r['client_peak_rss_mib']:,} MiB |"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------ pytest-benchmark

BENCH_PATHS = 400_000
BENCH_BLOCK = 100_000


@pytest.fixture(scope="module")
def light() -> tuple[FunnelParameters, Plan]:
    params, plan = light_workload()
    simulate(params, plan, paths=1000, seed=0, block_size=1000)  # compile once
    return params, plan


def test_inprocess_light(benchmark: Any, light: tuple[FunnelParameters, Plan]) -> None:
    params, plan = light
    fc = benchmark.pedantic(
        simulate,
        args=(params, plan),
        kwargs={
            "paths": BENCH_PATHS,
            "seed": 1,
            "block_size": BENCH_BLOCK,
            "threads": available_cores(),
        },
        rounds=1,
        iterations=1,
    )
    benchmark.extra_info["paths_per_s"] = BENCH_PATHS / benchmark.stats.stats.min
    assert int(fc.dataset.attrs["paths"]) == BENCH_PATHS


@pytest.mark.distributed
def test_local2_light(benchmark: Any, light: tuple[FunnelParameters, Plan]) -> None:
    params, plan = light
    client = connect("local:2", timeout=120.0)
    try:
        fc = benchmark.pedantic(
            simulate_distributed,
            args=(params, plan),
            kwargs={"paths": BENCH_PATHS, "seed": 1, "block_size": BENCH_BLOCK, "cluster": client},
            rounds=1,
            iterations=1,
        )
        info = worker_info(client)
    finally:
        client.close()
    benchmark.extra_info["paths_per_s"] = BENCH_PATHS / benchmark.stats.stats.min
    benchmark.extra_info["worker_peak_rss_mib"] = [
        round(w["peak_rss_bytes"] / 2**20) for w in info.values()
    ]
    assert int(fc.dataset.attrs["paths"]) == BENCH_PATHS


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=float, nargs="+", default=[1e6])
    ap.add_argument("--block-size", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--workload", choices=["light", "standard"], default="light")
    ap.add_argument("--wire-only", action="store_true", help="only the per-block wire cost")
    args = ap.parse_args(argv)
    args.load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    wire_cost(args.workload, args.block_size)
    if args.wire_only:
        return 0
    rows = measure(args.workload, [int(p) for p in args.paths], args.block_size, args.workers)
    print()
    print(markdown_table(rows))
    r0 = rows[0]
    print(
        f"\ncluster start-up (local:{r0['workers']}, spawn + kernel warm-up): "
        f"{r0['cluster_startup_s']:.1f} s; idle cluster background "
        f"{r0['idle_cpu_per_s']:.3f} CPU s per wall s; load average before: {args.load}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

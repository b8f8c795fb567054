"""``simulate``: parameters + plan -> :class:`Forecast`, blocks run on threads.

Parallel layout: threads over blocks. Each block runs single-threaded in a
compiled kernel that releases the GIL, reducing its paths straight into its
own fixed-size :class:`BlockSummary` (no per-path storage, no shared
accumulators, no races); finished blocks are merged in block order. So a
block's numbers never depend on the thread that ran it, the merged result is
bitwise the same for 1 or N threads, and peak memory is
``(threads + a few) x`` one summary, whatever the number of paths. At most
``2 x threads`` blocks are in flight.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from simengine.engine._prepare import Prepared, prepare
from simengine.engine.blocks import BlockSummary, plan_blocks, run_block
from simengine.params import FunnelParameters
from simengine.plan import Plan
from simengine.provenance import package_versions

if TYPE_CHECKING:
    from simengine.engine.forecast import Forecast

__all__ = ["default_threads", "forecast_meta", "run_blocks", "simulate"]


def default_threads() -> int:
    """Threads used when none are given: ``NUMBA_NUM_THREADS`` or the CPU count."""
    env = os.environ.get("NUMBA_NUM_THREADS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    return os.cpu_count() or 1


def run_blocks(
    prepared: Prepared,
    paths: int,
    seed: int,
    block_size: int,
    threads: int,
    on_block: Callable[[int, int], None] | None = None,
) -> BlockSummary:
    """Run every block of a run and merge the summaries in block order.

    Parameters
    ----------
    prepared : Prepared
    paths, seed, block_size, threads : int
    on_block : callable, optional
        Called as ``on_block(done_paths, total_paths)`` after each merge.
    """
    blocks = plan_blocks(paths, block_size)
    merged: BlockSummary | None = None
    done = 0
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        pending: list[Future[BlockSummary]] = []
        nxt = 0
        while nxt < len(blocks) or pending:
            while nxt < len(blocks) and len(pending) < 2 * max(1, threads):
                pending.append(pool.submit(run_block, prepared, blocks[nxt], seed))
                nxt += 1
            result = pending.pop(0).result()
            if merged is None:
                merged = result
            else:
                merged.merge_into(result)
            done += result.n
            if on_block is not None:
                on_block(done, paths)
    assert merged is not None
    return merged


def simulate(
    params: FunnelParameters,
    plan: Plan,
    *,
    paths: int = 1_000_000,
    seed: int,
    block_size: int = 50_000,
    threads: int | None = None,
    progress: bool = False,
    input_sha256: dict[str, str] | None = None,
    input_paths: dict[str, str] | None = None,
) -> Forecast:
    """Simulate ``paths`` funnel paths and summarise them.

    Path ``i`` uses posterior draw ``i % params.n_draws`` and random streams
    derived only from ``(seed, i, stream id)``: the same path sees the same
    randomness in every scenario and under any block, thread or worker layout.

    Parameters
    ----------
    params : FunnelParameters
        Parameter draws and open units.
    plan : Plan
        Period, targets, planned new units.
    paths : int
        Number of paths (default 1,000,000).
    seed : int
        Root seed (>= 0).
    block_size : int
        Paths per block (the unit of parallel work and of merging).
    threads : int, optional
        Worker threads (default :func:`default_threads`).
    progress : bool
        Show a progress bar (per finished block) once a run takes over 2 s.
    input_sha256 : dict, optional
        File hashes recorded in the output's attributes.
    input_paths : dict, optional
        Input file paths recorded in the output's attributes (``input_paths``).

    Returns
    -------
    Forecast
    """
    if seed < 0:
        raise ValueError("seed must be >= 0")
    prepared = prepare(params, plan)
    n_threads = threads if threads is not None else default_threads()
    callback, finish = _progress_callback() if progress else (None, lambda: None)
    try:
        summary = run_blocks(prepared, paths, seed, block_size, n_threads, callback)
    finally:
        finish()
    from simengine.engine.forecast import Forecast

    meta = forecast_meta(seed, block_size, plan, input_sha256, input_paths)
    return Forecast.from_summary(summary, params, plan, meta)


def forecast_meta(
    seed: int,
    block_size: int,
    plan: Plan,
    input_sha256: dict[str, str] | None = None,
    input_paths: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Return the provenance attributes of a forecast, wherever its blocks ran.

    Shared by in-process and distributed runs so that their outputs match.
    """
    meta: dict[str, Any] = {
        "seed": seed,
        "block_size": block_size,
        "versions": package_versions(),
        "input_sha256": dict(input_sha256 or {}),
    }
    meta["input_sha256"].setdefault("plan", plan.sha256)
    if input_paths:
        meta["input_paths"] = dict(input_paths)
    return meta


def _progress_callback() -> tuple[Callable[[int, int], None], Callable[[], None]]:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from simengine.cli._common import console

    t0 = time.perf_counter()
    state: dict[str, Any] = {}

    def on_block(done: int, total: int) -> None:
        if "bar" not in state:
            if time.perf_counter() - t0 < 2.0 or done >= total:
                return
            bar = Progress(
                TextColumn("simulating"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("paths"),
                TimeRemainingColumn(),
                console=console,
                transient=False,
            )
            bar.start()
            state["bar"] = bar
            state["task"] = bar.add_task("paths", total=total)
        state["bar"].update(state["task"], completed=done)

    def finish() -> None:
        if "bar" in state:
            state["bar"].stop()

    return on_block, finish

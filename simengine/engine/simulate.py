"""``simulate``: parameters + plan -> :class:`Forecast`, blocks run on threads or elsewhere.

One orchestration for every layout: :func:`run_blocks` plans the fixed-size
blocks, hands them to a *block map* and merges the summaries it yields in
block order; :func:`simulate` builds the :class:`Forecast`. The block map is
where the blocks run: :func:`thread_block_map` (the default) runs them on a
thread pool here; :func:`simengine.engine.distributed.dask_block_map` runs them as
Dask tasks. Both yield exactly ``run_block(prepared, block, seed)`` for each
block, in block order, so the result is bitwise the same wherever the blocks
ran.

In-process layout: threads over blocks. Each block runs single-threaded in a
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
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from simengine.config.plan import Plan
from simengine.engine._prepare import Prepared, prepare
from simengine.engine.blocks import Block, BlockSummary, plan_blocks, run_block
from simengine.io.provenance import package_versions
from simengine.params import FunnelParameters

if TYPE_CHECKING:
    from simengine.engine.forecast import Forecast

__all__ = [
    "BlockMap",
    "default_threads",
    "forecast_meta",
    "run_blocks",
    "simulate",
    "thread_block_map",
]

BlockMap = Callable[[Prepared, Sequence[Block], int], Iterable[BlockSummary]]
"""Where blocks run: ``block_map(prepared, blocks, seed)`` yields
``run_block(prepared, block, seed)`` for every block, in the order of
``blocks`` (e.g. :func:`thread_block_map` or
:func:`simengine.engine.distributed.dask_block_map`)."""


def default_threads() -> int:
    """Threads used when none are given: ``NUMBA_NUM_THREADS`` or the CPU count."""
    env = os.environ.get("NUMBA_NUM_THREADS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    return os.cpu_count() or 1


def thread_block_map(threads: int) -> BlockMap:
    """Return the in-process block map: blocks on ``threads`` threads, yielded in order.

    At most ``2 x threads`` blocks are in flight, so memory stays bounded
    whatever the number of blocks.
    """
    n = max(1, threads)

    def block_map(prepared: Prepared, blocks: Sequence[Block], seed: int) -> Iterator[BlockSummary]:
        with ThreadPoolExecutor(max_workers=n) as pool:
            pending: list[Future[BlockSummary]] = []
            nxt = 0
            while nxt < len(blocks) or pending:
                while nxt < len(blocks) and len(pending) < 2 * n:
                    pending.append(pool.submit(run_block, prepared, blocks[nxt], seed))
                    nxt += 1
                yield pending.pop(0).result()

    return block_map


def run_blocks(
    prepared: Prepared,
    paths: int,
    seed: int,
    block_size: int,
    threads: int,
    on_block: Callable[[int, int], None] | None = None,
    *,
    block_map: BlockMap | None = None,
    batches: int = 0,
) -> BlockSummary:
    """Run every block of a run and merge the summaries in block order.

    The one place that plans blocks and merges them, wherever they run.

    Parameters
    ----------
    prepared : Prepared
    paths, seed, block_size, threads : int
        ``threads`` is used by the default block map only.
    on_block : callable, optional
        Called as ``on_block(done_paths, total_paths)`` after each merge.
    block_map : BlockMap, optional
        Where the blocks run (default: :func:`thread_block_map` of ``threads``).
    batches : int
        Monte Carlo batches whose statistics the summary also keeps
        (``BlockSummary.batch_*``: path ``i`` in batch ``i mod batches``,
        every batch holding every draw's paths in the same proportion); 0
        (default) for none. The other arrays do not depend on it.

    Returns
    -------
    BlockSummary
        The merge of every block; ``n == paths``.
    """
    blocks = plan_blocks(paths, block_size, batches)
    run = block_map if block_map is not None else thread_block_map(threads)
    merged: BlockSummary | None = None
    done = 0
    for i, part in enumerate(run(prepared, blocks, seed)):
        if part.blocks != (blocks[i].index,):
            raise RuntimeError(f"block map yielded block(s) {part.blocks}, expected {i}")
        if merged is None:
            merged = part
        else:
            merged.merge_into(part)
        done += part.n
        if on_block is not None:
            on_block(done, paths)
    if merged is None or merged.n != paths:
        raise RuntimeError(f"block map returned {done} of {paths} paths")
    return merged


def simulate(
    params: FunnelParameters,
    plan: Plan,
    *,
    paths: int = 1_000_000,
    seed: int,
    block_size: int = 50_000,
    threads: int | None = None,
    input_sha256: dict[str, str] | None = None,
    input_paths: dict[str, str] | None = None,
    block_map: BlockMap | None = None,
    on_block: Callable[[int, int], None] | None = None,
    path_model: str = "per_unit",
) -> Forecast:
    """Simulate ``paths`` funnel paths and summarise them.

    Path ``i`` uses posterior draw ``floor(i params.n_draws / paths)``
    (consecutive paths share a draw) and random streams derived only from
    ``(seed, i, stream id)``: the same path sees the same draw and randomness
    in every scenario and under any block, thread or worker layout.

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
    input_sha256 : dict, optional
        File hashes recorded in the output's attributes.
    input_paths : dict, optional
        Input file paths recorded in the output's attributes (``input_paths``).
    block_map : BlockMap, optional
        Where the blocks run (default: this process's threads); e.g.
        :func:`simengine.engine.distributed.dask_block_map`. It is first called
        after the parameters and plan have been checked, so it may connect
        to a cluster lazily. The result does not depend on it.
    on_block : callable, optional
        Called as ``on_block(done_paths, total_paths)`` after each merged block:
        how a caller reports progress (the CLI draws a bar with it).
    path_model : str
        ``per_unit`` (default) or ``thinned`` (:mod:`simengine.engine.thinned`):
        the same law, other random numbers.

    Returns
    -------
    Forecast
    """
    if seed < 0:
        raise ValueError("seed must be >= 0")
    prepared = prepare(params, plan, path_model)
    n_threads = threads if threads is not None else default_threads()
    summary = run_blocks(
        prepared, paths, seed, block_size, n_threads, on_block, block_map=block_map
    )
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

"""Scale-out on Dask: the engine's fixed-size path blocks run as Dask tasks.

The in-process engine (:func:`simengine.engine.simulate`) splits the paths into
fixed-size blocks whose random streams depend only on ``(seed, path index,
stream id)``. This module runs the same blocks on a Dask cluster and merges the
same small block summaries in block order, so the result is bitwise the one
the in-process engine gives, whatever the number of workers and whichever
worker ran which block (or ran it twice after a failure).

Public entry points
-------------------
:func:`parse_cluster`
    Parse the ``--cluster`` option: ``local:N`` (a ``LocalCluster`` of ``N``
    worker processes) or a scheduler address (``tcp://host:8786``).
:func:`connect`
    Return a :class:`distributed.Client` for that option; an unreachable
    scheduler raises :class:`~simengine.errors.InputError` within ``timeout``
    seconds instead of hanging.
:class:`WarmupPlugin`
    A worker plugin that fixes the worker's Numba thread count and compiles
    the kernels once when the worker starts.
:func:`dask_block_map`, :func:`cluster_block_map`
    Where the engine's blocks run: pass the map as ``block_map=`` to
    :func:`simengine.engine.simulate`, ``run_blocks`` or the planning
    functions (stress, sensitivity, goal seek). The engine plans the blocks
    and merges them in block order (one orchestration for every layout);
    ``cluster_block_map`` connects only when the first blocks run, i.e. after
    the inputs have been checked.
:func:`simulate_distributed`
    :func:`simengine.engine.simulate` with that block map.

Design notes
------------
* Worker processes are started with the ``spawn`` method. Numba's parallel
  threading layers (OpenMP, TBB, and the default workqueue) are not fork-safe:
  a child forked from a process whose Numba thread pool has started inherits
  the pool's locks but not its threads, and its first parallel kernel can hang
  or abort. ``spawn`` starts every worker from a fresh interpreter.
* No oversubscription: ``workers × Dask threads × Numba threads <= cores``.
  A block runs single-threaded (the engine parallelises over blocks), so a
  ``local:N`` worker gets ``cores // N`` Dask threads, and every task sets
  its own Numba pool to ``cores // (Dask threads of its worker)`` (1 here)
  with ``numba.set_num_threads`` (thread-local; never via the
  ``NUMBA_NUM_THREADS`` environment variable, which Numba refuses to change
  once its pool has started).
* The prepared parameters of a run are sent to the workers once per run
  (``scatter`` with ``broadcast``; a planning study's scenarios are runs
  with different parameters, each sent once; the size is printed by
  ``benchmarks/bench_distributed.py --wire-only``), never per block; tasks
  return only the block summaries, sent sparse (the non-zero histogram
  bins; exact), never per-path arrays. At most twice the
  cluster's threads blocks are in flight, so memory stays bounded whatever
  the number of paths.
* A block lost with its worker is recomputed from its seed (by Dask, or
  resubmitted here if its finished result is lost before it is fetched); if
  the scattered parameters themselves are lost (every holder died), they are
  scattered again. A block's summary depends only on (inputs, seed, block),
  so a recomputed block is bitwise the lost one.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import CancelledError
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import dask
import numpy as np
import numpy.typing as npt
from distributed import Client, WorkerPlugin, as_completed
from distributed.scheduler import KilledWorker

from simengine.errors import InputError, Issue

if TYPE_CHECKING:  # pragma: no cover
    from distributed import Future, Worker

    from simengine.config.plan import Plan
    from simengine.engine import Forecast
    from simengine.engine._prepare import Prepared
    from simengine.engine.blocks import Block, BlockSummary
    from simengine.engine.simulate import BlockMap
    from simengine.params import FunnelParameters

__all__ = [
    "ClusterSpec",
    "WarmupPlugin",
    "available_cores",
    "cluster_block_map",
    "cluster_client",
    "connect",
    "dask_block_map",
    "default_timeout",
    "map_blocks",
    "parse_cluster",
    "run_blocks_distributed",
    "simulate_distributed",
    "threads_per_worker",
    "worker_info",
]


def default_timeout() -> float:
    """Seconds to wait for a scheduler: Dask's ``distributed.comm.timeouts.connect``.

    Set it with ``DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=10s`` (or Dask's
    config files); Dask's default is 30 s.
    """
    from dask.utils import parse_timedelta

    return float(parse_timedelta(dask.config.get("distributed.comm.timeouts.connect")))


_OPTION = "--cluster"
_WHERE = "command line"
_LOCAL = re.compile(r"^local:(\d+)$")
_PROTOCOLS = ("tcp", "tls", "ucx", "ws", "wss", "inproc")
_HOSTPORT = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")


@dataclass(frozen=True)
class ClusterSpec:
    """A parsed ``--cluster`` option.

    Parameters
    ----------
    kind : {"local", "address"}
        Start a ``LocalCluster`` here, or connect to a running scheduler.
    n_workers : int
        Worker processes of a local cluster (0 for an address).
    address : str
        Scheduler address (``""`` for a local cluster).
    """

    kind: Literal["local", "address"]
    n_workers: int = 0
    address: str = ""

    def __str__(self) -> str:
        return f"local:{self.n_workers}" if self.kind == "local" else self.address


def _bad_option(value: str, rule: str, summary: str = "bad --cluster option") -> InputError:
    return InputError([Issue(_WHERE, None, _OPTION, value, rule)], summary=summary)


def parse_cluster(text: str) -> ClusterSpec:
    """Parse the ``--cluster`` option.

    Parameters
    ----------
    text : str
        ``local:N`` with ``N >= 1`` worker processes, or a scheduler address
        ``tcp://host:port`` (other Dask protocols: ``tls``, ``ucx``, ``ws``,
        ``wss``, ``inproc``); a bare ``host:port`` means ``tcp://host:port``.

    Returns
    -------
    ClusterSpec

    Raises
    ------
    InputError
        If the text is neither form, or ``N < 1``.
    """
    raw = text.strip()
    m = _LOCAL.match(raw)
    if m:
        n = int(m.group(1))
        if n < 1:
            raise _bad_option(text, "local:N needs at least one worker (N >= 1)")
        return ClusterSpec("local", n_workers=n)
    if raw.startswith("local"):
        raise _bad_option(text, "a local cluster is written local:N, N a whole number >= 1")
    if "://" in raw:
        proto, _, rest = raw.partition("://")
        if proto not in _PROTOCOLS:
            raise _bad_option(
                text, f"unknown scheduler protocol {proto!r}; use one of {list(_PROTOCOLS)}"
            )
        if proto != "inproc" and not _HOSTPORT.match(rest):
            raise _bad_option(text, "a scheduler address is protocol://host:port")
        return ClusterSpec("address", address=raw)
    if _HOSTPORT.match(raw):
        return ClusterSpec("address", address=f"tcp://{raw}")
    raise _bad_option(
        text, "use local:N (N worker processes here) or a scheduler address tcp://host:8786"
    )


def available_cores() -> int:
    """Return the number of cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def threads_per_worker(n_workers: int, cores: int | None = None) -> int:
    """Return the threads each of ``n_workers`` workers may use so workers × threads <= cores.

    Parameters
    ----------
    n_workers : int
        Worker processes sharing the machine.
    cores : int, optional
        Cores available; defaults to :func:`available_cores`.

    Returns
    -------
    int
        ``max(1, cores // n_workers)``.
    """
    if n_workers < 1:
        raise ValueError("n_workers must be >= 1")
    c = available_cores() if cores is None else cores
    return max(1, c // n_workers)


# ------------------------------------------------------------------ worker side

# Per-process state of a worker: the Numba thread count its tasks use.
_WORKER_STATE: dict[str, int] = {}


def _worker_numba_threads(dask_threads: int) -> int:
    """Numba threads for each task of a worker running ``dask_threads`` tasks at once."""
    import numba

    cap = int(numba.config.NUMBA_NUM_THREADS)
    return max(1, min(cap, available_cores() // max(1, dask_threads)))


def _apply_numba_threads() -> int:
    """Set this thread's Numba thread count from the worker state; return it.

    ``numba.set_num_threads`` is thread-local, so each task sets it in the
    thread that runs the kernels.
    """
    import numba

    n = _WORKER_STATE.get("numba_threads")
    if n is None:
        n = _worker_numba_threads(1)
    n = max(1, min(n, int(numba.config.NUMBA_NUM_THREADS)))
    numba.set_num_threads(n)
    return n


def _worker_info() -> dict[str, Any]:
    """Return what a worker reports about itself (pid, threads, CPU s, peak RSS bytes)."""
    import resource

    import numba

    usage = resource.getrusage(resource.RUSAGE_SELF)
    rss_kib = usage.ru_maxrss
    return {
        "cpu_seconds": float(usage.ru_utime + usage.ru_stime),
        "pid": os.getpid(),
        "numba_threads": _WORKER_STATE.get("numba_threads"),
        "numba_max_threads": int(numba.config.NUMBA_NUM_THREADS),
        "threading_layer": _threading_layer(),
        "warmed": bool(_WORKER_STATE.get("warmed", 0)),
        "peak_rss_bytes": int(rss_kib) * 1024,
    }


def _threading_layer() -> str:
    import numba

    try:
        return str(numba.threading_layer())
    except ValueError:  # no parallel kernel has run yet
        return "not started"


def _warm_kernels() -> None:
    """Compile (or load from Numba's cache) the engine's kernels with one tiny block."""
    from simengine.engine.warm import warm_kernels

    _apply_numba_threads()
    warm_kernels()
    _WORKER_STATE["warmed"] = 1


class WarmupPlugin(WorkerPlugin):
    """Fix a worker's Numba thread count and compile the kernels at start-up.

    Registered once per client (:meth:`distributed.Client.register_plugin`);
    Dask runs it on every current worker and on every worker that joins later
    (including a worker restarted after a crash), so the first block a worker
    runs is not slowed by compilation.

    Parameters
    ----------
    numba_threads : int, optional
        Numba threads per task. Default: the worker's cores divided by its
        Dask threads, capped by ``NUMBA_NUM_THREADS``.
    warm : bool
        Compile the kernels during set-up (default ``True``).
    """

    name = "simengine-warmup"
    idempotent = True

    def __init__(self, numba_threads: int | None = None, *, warm: bool = True) -> None:
        self.numba_threads = numba_threads
        self.warm = warm

    async def setup(self, worker: Worker) -> None:
        """Record the thread count and compile off the event loop."""
        n = self.numba_threads or _worker_numba_threads(int(worker.state.nthreads))
        _WORKER_STATE["numba_threads"] = int(n)
        if self.warm:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, _warm_kernels)


# ------------------------------------------------------------------ client side


def connect(
    cluster: str | ClusterSpec,
    *,
    timeout: float | None = None,
    numba_threads: int | None = None,
    warm: bool = True,
) -> Client:
    """Connect to (or start) the cluster named by ``--cluster`` and prepare its workers.

    Parameters
    ----------
    cluster : str or ClusterSpec
        ``local:N`` or a scheduler address; see :func:`parse_cluster`.
    timeout : float, optional
        Seconds to wait for the scheduler; default :func:`default_timeout`
        (for ``local:N``, the workers' start, at least 120 s).
    numba_threads : int, optional
        Numba threads per task on every worker. Default: for ``local:N``,
        ``cores // N``; for a remote cluster, each worker's cores divided by
        its Dask threads.
    warm : bool
        Register :class:`WarmupPlugin` with ``warm`` (compile kernels at start).

    Returns
    -------
    distributed.Client
        Closing it also shuts down a local cluster it started.

    Raises
    ------
    InputError
        The option is malformed, or the scheduler cannot be reached (or the
        local cluster not started) within ``timeout`` seconds.
    """
    spec = parse_cluster(cluster) if isinstance(cluster, str) else cluster
    if timeout is None:
        # Starting local workers (spawn, imports, kernel warm-up) takes longer
        # than a connection; a busy machine needs tens of seconds.
        timeout = max(120.0, default_timeout()) if spec.kind == "local" else default_timeout()
    with dask.config.set({"distributed.worker.multiprocessing-method": "spawn"}):
        if spec.kind == "local":
            return _start_local(spec, timeout=timeout, numba_threads=numba_threads, warm=warm)
        return _connect_remote(spec, timeout=timeout, numba_threads=numba_threads, warm=warm)


LOCAL_CLUSTER_CONFIG: dict[str, object] = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "500ms",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.admin.system-monitor.disk": False,
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.scheduler.work-stealing": False,
}
"""Dask settings of a ``local:N`` cluster, which shares its cores with the work.

An idle ``LocalCluster`` with Dask's defaults keeps busy (scheduler and
nannies in this process, workers beside them): the workers' statistical
profiler samples every 10 ms, every event loop ticks every 20 ms, each nanny
polls its worker's memory every 100 ms, and the system monitor reads the
disk counters every 500 ms; on a small machine that CPU is taken from the
blocks. The blocks are equal in size
and long (a second or more), so work stealing has nothing to balance. A
remote cluster keeps its own configuration.
"""


def _start_local(
    spec: ClusterSpec, *, timeout: float, numba_threads: int | None, warm: bool
) -> Client:
    n = spec.n_workers
    # One block runs single-threaded per Dask thread, so Dask threads fill
    # the cores (cores // workers each) and each task's Numba pool gets what
    # is left (1 unless a worker has more cores than Dask threads). The Numba
    # count is set per task with numba.set_num_threads (thread-local), never
    # through NUMBA_NUM_THREADS in the environment: a spawned worker may have
    # imported Numba before the nanny's environment is applied, and Numba
    # refuses a changed NUMBA_NUM_THREADS once its pool has started.
    dask_threads = threads_per_worker(n)
    threads = numba_threads or max(1, available_cores() // (n * dask_threads))
    try:
        # the nannies pass this configuration on to the workers they spawn
        with dask.config.set(LOCAL_CLUSTER_CONFIG):
            client = Client(
                n_workers=n,
                threads_per_worker=dask_threads,
                processes=True,
                dashboard_address=None,
                timeout=timeout,
                set_as_default=False,
            )
        client.wait_for_workers(n, timeout=timeout)
    except (OSError, TimeoutError, RuntimeError) as exc:
        raise _bad_option(
            str(spec),
            f"could not start a local cluster of {n} workers within {timeout:g}s: {exc}",
            summary="local Dask cluster failed to start",
        ) from None
    _prepare_workers(client, threads, warm)
    return client


def _connect_remote(
    spec: ClusterSpec, *, timeout: float, numba_threads: int | None, warm: bool
) -> Client:
    try:
        client = Client(spec.address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise _bad_option(
            spec.address,
            f"cannot reach the Dask scheduler within {timeout:g}s ({exc.__class__.__name__}); "
            "is it running, and is the address host:port right?",
            summary="Dask scheduler unreachable",
        ) from None
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (OSError, TimeoutError):
        client.close()
        raise _bad_option(
            spec.address,
            f"the scheduler has no workers (waited {timeout:g}s)",
            summary="Dask cluster has no workers",
        ) from None
    _prepare_workers(client, numba_threads, warm)
    return client


def _prepare_workers(client: Client, numba_threads: int | None, warm: bool) -> None:
    client.register_plugin(WarmupPlugin(numba_threads, warm=warm))


@contextmanager
def cluster_client(
    cluster: str | ClusterSpec | Client,
    *,
    timeout: float | None = None,
    numba_threads: int | None = None,
) -> Iterator[Client]:
    """Yield a client for ``cluster``; close it afterwards unless it was given open.

    Parameters
    ----------
    cluster : str, ClusterSpec or distributed.Client
        A ``--cluster`` value, or an open client (used as is, left open).
    timeout : float, optional
        See :func:`connect`.
    numba_threads : int, optional
        See :func:`connect`.
    """
    if isinstance(cluster, Client):
        yield cluster
        return
    client = connect(cluster, timeout=timeout, numba_threads=numba_threads)
    try:
        yield client
    finally:
        client.close()


def worker_info(client: Client) -> dict[str, dict[str, Any]]:
    """Return each worker's pid, Numba threads, threading layer, CPU seconds and peak RSS."""
    return dict(client.run(_worker_info))


# ------------------------------------------------------------------ running blocks

_SPARSE = "__simengine_sparse__"


def _pack(summary: BlockSummary) -> dict[str, Any]:
    """Encode a block summary for the wire: sparse integer histograms, exact.

    The histogram sketches of one block are mostly zero bins; sending the
    non-zero ones (flat index, count) makes a block's result ~10-50x smaller
    without changing a bit of it.
    """
    out: dict[str, Any] = {}
    for f in dataclasses.fields(summary):
        v = getattr(summary, f.name)
        if isinstance(v, np.ndarray) and v.dtype == np.int64 and v.size >= 1024:
            flat = v.reshape(-1)
            idx = np.flatnonzero(flat)
            if 3 * idx.size < flat.size:
                out[f.name] = (_SPARSE, v.shape, idx.astype(np.int64), flat[idx])
                continue
        out[f.name] = v
    return out


def _unpack(packed: dict[str, Any]) -> BlockSummary:
    """Decode :func:`_pack`'s output into the engine's ``BlockSummary``."""
    from simengine.engine.blocks import BlockSummary

    kw: dict[str, Any] = {}
    for name, v in packed.items():
        if isinstance(v, tuple) and len(v) == 4 and v[0] == _SPARSE:
            _, shape, idx, vals = v
            dense: npt.NDArray[np.int64] = np.zeros(int(np.prod(shape)), np.int64)
            dense[idx] = vals
            kw[name] = dense.reshape(shape)
        else:
            kw[name] = v
    return BlockSummary(**kw)


# Failures of the cluster, not of the computation: the block is submitted again.
_LOST: tuple[type[BaseException], ...] = (CancelledError, KilledWorker, OSError, TimeoutError)


def _block_task(prepared: Prepared, block: Block, seed: int) -> dict[str, Any]:
    """Worker side: run one block with this worker's thread setting; return it packed."""
    from simengine.engine import run_block

    _apply_numba_threads()
    return _pack(run_block(prepared, block, seed))


def _total_threads(client: Client) -> int:
    info = client.scheduler_info(n_workers=-1)
    return max(1, sum(int(w.get("nthreads", 1)) for w in info.get("workers", {}).values()))


def map_blocks(
    client: Client,
    prepared: Prepared,
    blocks: Sequence[Block],
    seed: int,
    *,
    max_attempts: int = 4,
    in_flight: int | None = None,
) -> Iterator[BlockSummary]:
    """Run blocks on the cluster and yield their summaries in block order.

    The distributed counterpart of ``(run_block(prepared, b, seed) for b in
    blocks)``: for callers that need each block's summary (batch-means
    errors in :mod:`simengine.planning`) as well as their merge.

    Parameters
    ----------
    client : distributed.Client
        A connected client (see :func:`connect`).
    prepared : Prepared
        From :func:`simengine.engine.prepare`; scattered to every worker once.
    blocks : sequence of Block
        From :func:`simengine.engine.plan_blocks`.
    seed : int
        The run's seed.
    max_attempts : int
        Times a block is submitted before its loss is raised. Dask itself
        recomputes a block whose worker died; resubmission also covers a
        result lost between completion and fetch, and the loss of every copy
        of the scattered inputs (which are then scattered again). An error
        raised by the computation itself is raised at once.
    in_flight : int, optional
        Blocks submitted but not yet yielded (bounds memory on the workers
        and here); default twice the cluster's Dask threads, at least 4.

    Yields
    ------
    BlockSummary
        One per block, in the order of ``blocks``.
    """
    window = in_flight or max(4, 2 * _total_threads(client))
    token = uuid.uuid4().hex[:12]
    state: dict[str, Any] = {"prepared": _scatter(client, prepared)}
    attempts = [0] * len(blocks)
    owner: dict[Future, int] = {}

    def submit(b: int) -> Future:
        attempts[b] += 1
        if state["prepared"].status != "finished":  # every copy lost: send again
            state["prepared"] = _scatter(client, prepared)
        fut = client.submit(
            _block_task,
            state["prepared"],
            blocks[b],
            seed,
            key=f"simengine-block-{token}-{b}-{attempts[b]}",
        )
        owner[fut] = b
        return fut

    ready: dict[int, BlockSummary] = {}
    next_yield = 0
    next_submit = 0
    pending = as_completed(loop=client.loop)
    try:
        while next_submit < len(blocks) and next_submit < window:
            pending.add(submit(next_submit))
            next_submit += 1
        for fut in pending:
            b = owner.pop(fut)
            try:
                # A finished block can still be lost before it is fetched (its
                # worker dies): result() then raises and the block is rerun.
                packed = fut.result()
            except _LOST as exc:
                fut.release()
                if attempts[b] >= max_attempts:
                    raise RuntimeError(
                        f"block {b} was lost {attempts[b]} times on the cluster: {exc!r}"
                    ) from exc
                pending.add(submit(b))
                continue
            fut.release()
            ready[b] = _unpack(packed)
            while next_yield in ready:
                yield ready.pop(next_yield)
                next_yield += 1
            while next_submit < len(blocks) and next_submit - next_yield < window:
                pending.add(submit(next_submit))
                next_submit += 1
    finally:
        for fut in list(owner):
            fut.cancel()
        state["prepared"].release()


def dask_block_map(
    client: Client, *, max_attempts: int = 4, in_flight: int | None = None
) -> BlockMap:
    """Return a block map that runs the engine's blocks as Dask tasks on ``client``.

    Pass it to :func:`simengine.engine.simulate`,
    :func:`simengine.engine.simulate.run_blocks` or the planning functions
    (``block_map=``): they plan the blocks and merge in block order exactly as
    in-process, so the result is bitwise the in-process one.

    Parameters
    ----------
    client : distributed.Client
        A connected client (see :func:`connect`).
    max_attempts, in_flight : int
        See :func:`map_blocks`.

    Returns
    -------
    BlockMap
        ``block_map(prepared, blocks, seed)`` yielding each block's summary in
        block order; each call scatters ``prepared`` to the workers once.
    """

    def block_map(prepared: Prepared, blocks: Sequence[Block], seed: int) -> Iterator[BlockSummary]:
        return map_blocks(
            client, prepared, blocks, seed, max_attempts=max_attempts, in_flight=in_flight
        )

    return block_map


@contextmanager
def cluster_block_map(
    cluster: str | ClusterSpec | Client | None,
    *,
    timeout: float | None = None,
    numba_threads: int | None = None,
    connect_now: bool = False,
) -> Iterator[BlockMap | None]:
    """Yield a block map on ``cluster`` that connects on first use; ``None`` runs in-process.

    The connection (or the local cluster's start) is deferred until the first
    blocks are run, i.e. until the engine has checked the parameters and the
    plan, so bad inputs are reported before a scheduler is contacted; an
    unreachable scheduler then raises :class:`~simengine.errors.InputError`
    within ``timeout`` (see :func:`connect`). One connection serves every run
    made with the map; it is closed on exit (an open client given in is left
    open).

    Parameters
    ----------
    cluster : str, ClusterSpec, distributed.Client or None
        ``local:N``, a scheduler address, an open client, or ``None`` (yield
        ``None``: the engine's in-process threads).
    timeout, numba_threads
        See :func:`connect`.
    connect_now : bool
        Connect on entry instead of on first use: for a command whose first
        blocks come after minutes of other work (a backtest fits before it
        simulates), an unreachable scheduler is then reported before that
        work.
    """
    if cluster is None:
        yield None
        return
    spec = parse_cluster(cluster) if isinstance(cluster, str) else cluster
    with contextlib.ExitStack() as stack:
        state: dict[str, BlockMap] = {}
        if connect_now:
            client = stack.enter_context(
                cluster_client(spec, timeout=timeout, numba_threads=numba_threads)
            )
            state["map"] = dask_block_map(client)

        def block_map(
            prepared: Prepared, blocks: Sequence[Block], seed: int
        ) -> Iterable[BlockSummary]:
            if "map" not in state:
                client = stack.enter_context(
                    cluster_client(spec, timeout=timeout, numba_threads=numba_threads)
                )
                state["map"] = dask_block_map(client)
            return state["map"](prepared, blocks, seed)

        yield block_map


def run_blocks_distributed(
    client: Client,
    prepared: Prepared,
    paths: int,
    seed: int,
    block_size: int,
    on_block: Callable[[int, int], None] | None = None,
    *,
    max_attempts: int = 4,
    in_flight: int | None = None,
) -> BlockSummary:
    """Run every block of a run on the cluster and merge in block order.

    :func:`simengine.engine.simulate.run_blocks` with :func:`dask_block_map`:
    the same blocks, the same seed, the same merge in block order, so the
    result is bitwise the in-process one.

    Parameters
    ----------
    client : distributed.Client
        A connected client (see :func:`connect`).
    prepared : Prepared
        From :func:`simengine.engine.prepare`.
    paths, seed, block_size : int
        As for :func:`simengine.engine.simulate`.
    on_block : callable, optional
        Called as ``on_block(done_paths, total_paths)`` after each merge.
    max_attempts, in_flight : int
        See :func:`map_blocks`.

    Returns
    -------
    BlockSummary
    """
    from simengine.engine.simulate import run_blocks

    block_map = dask_block_map(client, max_attempts=max_attempts, in_flight=in_flight)
    return run_blocks(prepared, paths, seed, block_size, 1, on_block, block_map=block_map)


def _scatter(client: Client, prepared: Prepared) -> Future:
    return client.scatter(prepared, broadcast=True, hash=False)


def simulate_distributed(
    params: FunnelParameters,
    plan: Plan,
    *,
    paths: int = 1_000_000,
    seed: int,
    block_size: int = 50_000,
    cluster: str | ClusterSpec | Client,
    input_sha256: dict[str, str] | None = None,
    input_paths: dict[str, str] | None = None,
    timeout: float | None = None,
    on_block: Callable[[int, int], None] | None = None,
    path_model: str = "per_unit",
) -> Forecast:
    """Simulate on a Dask cluster; bitwise the forecast of :func:`simengine.engine.simulate`.

    :func:`simengine.engine.simulate` with the block map of
    :func:`cluster_block_map`: one orchestration, only where the blocks run
    differs. The parameters are ``simulate``'s (``threads`` aside: the
    workers set their own), plus:

    Parameters
    ----------
    cluster : str, ClusterSpec or distributed.Client
        ``local:N``, a scheduler address, or an open client (left open).
    timeout : float, optional
        Seconds to wait for the scheduler or a local cluster (see :func:`connect`).

    Returns
    -------
    Forecast

    Raises
    ------
    InputError
        A bad plan for these parameters (checked before connecting), a bad
        ``--cluster`` value, or an unreachable scheduler.

    Notes
    -----
    ``block_size`` is the unit of a Dask task: >= 100,000 paths keeps the
    scheduling overhead small (see ``benchmarks/bench_distributed.py``).
    """
    from simengine.engine import simulate

    if isinstance(cluster, str):
        cluster = parse_cluster(cluster)  # a bad option fails before any work
    with cluster_block_map(cluster, timeout=timeout) as block_map:
        return simulate(
            params,
            plan,
            paths=paths,
            seed=seed,
            block_size=block_size,
            input_sha256=input_sha256,
            input_paths=input_paths,
            block_map=block_map,
            on_block=on_block,
            path_model=path_model,
        )

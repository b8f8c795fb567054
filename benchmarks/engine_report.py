"""Engine speed report: paths/s (1 and 2 threads), NumPy reference, draws per path
and the random-draw bound, warm start time.

Standard workload (the demo's size): 3 segments x 2 channels, 4 stages, a
13-week period with as-of = start, ~6,000 new MQLs and ~250 wins per period,
600 open units, 4,000 parameter draws.

Usage: .venv/bin/python benchmarks/engine_report.py [--paths 200000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import subprocess
import sys
import time
from typing import Any

import numpy as np

from simengine.config.plan import Plan
from simengine.params import FunnelParameters, OpenUnits

AS_OF = dt.date(2027, 1, 4)
SEGMENTS = ("smb", "mid", "ent")
CHANNELS = ("webinar", "outbound")
STAGES = ("mql", "sql", "opportunity", "won")


def standard_workload(draws: int = 4000, seed: int = 0) -> tuple[FunnelParameters, Plan]:
    """The demo-sized workload as FunnelParameters + Plan (built in code, seeded)."""
    rng = np.random.default_rng(seed)
    cells = tuple(f"{s}/{c}" for s in SEGMENTS for c in CHANNELS)
    n_c, n_s = len(cells), 3
    # weekly MQLs per cell: 6,000 per 13 weeks in all
    mql = np.array([150.0, 80.0, 110.0, 60.0, 50.0, 12.0]) * 6000 / (13 * 462.0)
    opp_direct = np.array([2.0, 4.0, 2.0, 5.0, 2.0, 6.0])
    rate = np.zeros((draws, n_c, n_s))
    rate[:, :, 0] = mql * rng.lognormal(0, 0.05, (draws, n_c))
    rate[:, :, 2] = opp_direct * rng.lognormal(0, 0.1, (draws, n_c))
    base = np.array([0.30, 0.55, 0.33])
    conv = np.clip(base * rng.lognormal(0, 0.08, (draws, n_c, n_s)), 0, 1)
    delay_mu = np.log(np.array([6.0, 12.0, 28.0])) + rng.normal(0, 0.05, (draws, n_c, n_s))
    delay_sigma = np.full((draws, n_c, n_s), 0.6)
    deal = np.log(np.repeat([12_000.0, 30_000.0, 90_000.0], 2))
    n_open = 600
    open_units = OpenUnits(
        cell=rng.integers(0, n_c, n_open).astype(np.int64),
        stage=rng.choice(3, n_open, p=[0.25, 0.25, 0.5]).astype(np.int64),
        age_days=rng.integers(0, 60, n_open).astype(np.float64),
        amount=np.where(rng.random(n_open) < 0.6, rng.lognormal(10.2, 0.8, n_open), np.nan),
    )
    params = FunnelParameters(
        stages=STAGES,
        cells=cells,
        segments=SEGMENTS,
        cell_segment=np.repeat(np.arange(3), 2),
        pipeline_stage=2,
        as_of=AS_OF,
        conversion=conv,
        delay_mu=delay_mu,
        delay_sigma=delay_sigma,
        arrival_rate=rate,
        arrival_dispersion=np.full((draws, n_c, n_s), 0.05),
        arrival_trend=np.zeros((draws, n_c, n_s)),
        deal_size_mu=deal + rng.normal(0, 0.05, (draws, n_c)),
        deal_size_sigma=np.full((draws, n_c), 0.5),
        open_units=open_units,
        source="assumptions",
    )
    plan = Plan(
        start=AS_OF,
        end=AS_OF + dt.timedelta(days=90),
        as_of=AS_OF,
        targets={"smb": 1_500_000.0, "mid": 3_500_000.0, "ent": 6_000_000.0},
        text="standard workload",
    )
    return params, plan


# ----------------------------------------------------------------------------- draw bound
# Variates the kernels may call; a copy of the kernel module counts its calls of each.
VARIATES = (
    "uniform",
    "std_normal",
    "normal",
    "lognormal",
    "std_exponential",
    "gamma",
    "poisson",
    "binomial",
    "neg_binomial_mean",
    "lognormal_truncated_below",
    "lognormal_truncated_tail",
)
_EXTRA = 16  # count columns start here (after the 4 state words + one per variate)
# extra statistics: binomial calls by class of n, sums of n and p; Poisson lam sums
_BIN_CLASSES = ((1, 1), (2, 8), (9, 24), (25, 64), (65, 1 << 62))
_X_BIN_N, _X_BIN_P, _X_BIN_CLS, _X_POI_LAM, _X_POI_BIG, _X_GAM_SHAPE = 0, 1, 2, 7, 8, 9
_FIXED = 2**32  # fixed-point scale of the float sums


def kernel_copy(tmp: str, name: str, replacements: tuple[tuple[str, str], ...] = ()) -> Any:
    """Import a copy of ``simengine.engine._kernels`` compiled without caching.

    ``replacements`` are ``(old, new)`` source substitutions, each of which must
    match (so a kernel change that breaks them fails loudly, not silently).
    """
    import importlib.util
    from pathlib import Path

    import simengine.engine._kernels as kern

    src = Path(kern.__file__).read_text()
    nocache = (
        "import functools, numba\n"
        "jit = functools.partial(numba.njit, nogil=True, error_model='numpy')\n"
        "jit_inline = functools.partial(jit, inline='always')\n"
    )
    imp = "from simengine.engine._jit import jit, jit_inline\n"
    for old, new in ((imp, nocache), *replacements):
        if old not in src:
            raise RuntimeError(f"kernel source changed: {old!r} not found")
        src = src.replace(old, new)
    f = Path(tmp) / f"{name}.py"
    f.write_text(src)
    spec = importlib.util.spec_from_file_location(name, f)
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _counting_source(kernel_src: str) -> tuple[tuple[str, str], ...]:
    """Source substitutions that route every variate call of the kernel through a counter.

    Each counter lives in extra columns of the path's stream-state rows (the
    generator only uses the first 4 words of a row), so counts survive from
    path to path in the per-thread scratch and cost nothing to collect.
    """
    import inspect
    import re

    from simengine.engine import _rng

    reps: list[tuple[str, str]] = []
    wrappers = []
    for i, v in enumerate(VARIATES):
        args = list(inspect.signature(getattr(_rng, v).py_func).parameters)[1:]
        a = ", ".join(args)
        body = [f"    st[row, {4 + i}] += np.uint64(1)"]
        if v == "binomial":
            body += [
                f"    st[row, {4 + _EXTRA + _X_BIN_N}] += np.uint64(max({args[0]}, 0))",
                f"    st[row, {4 + _EXTRA + _X_BIN_P}] += np.uint64(min(max({args[1]}, 0.0), 1.0)"
                f" * {_FIXED}.0)",
            ]
            for j, (lo, hi) in enumerate(_BIN_CLASSES):
                body.append(
                    f"    if {lo} <= {args[0]} <= {hi}:\n"
                    f"        st[row, {4 + _EXTRA + _X_BIN_CLS + j}] += np.uint64(1)"
                )
        if v == "poisson":
            body += [
                f"    st[row, {4 + _EXTRA + _X_POI_LAM}] += np.uint64(min(max({args[0]}, 0.0), 1e6)"
                f" * {_FIXED}.0)",
                f"    if {args[0]} >= 10.0:\n"
                f"        st[row, {4 + _EXTRA + _X_POI_BIG}] += np.uint64(1)",
            ]
        if v == "gamma":
            body.append(
                f"    st[row, {4 + _EXTRA + _X_GAM_SHAPE}] += "
                f"np.uint64(min(max({args[0]}, 0.0), 1e6) * {_FIXED}.0)"
            )
        wrappers.append(
            f"@jit\ndef _count_{v}(st, {a}):\n"
            + "\n".join(body)
            + f"\n    return _rng.{v}(st, {a})\n"
        )
    # aliases "name = _rng.name" and direct "_rng.name(" calls
    for v in VARIATES:
        alias = f"{v} = _rng.{v}\n"
        if alias in kernel_src:
            reps.append((alias, f"{v} = _count_{v}\n"))
    direct = sorted({m for m in re.findall(r"_rng\.(\w+)\(", kernel_src) if m in VARIATES})
    for v in direct:
        reps.append((f"_rng.{v}(", f"_count_{v}("))
    reps.insert(
        0,
        (
            "seed_stream = _rng.seed_stream\n",
            "seed_stream = _rng.seed_stream\n" + "\n\n".join(wrappers) + "\n\n",
        ),
    )
    reps.append(
        (
            "np.zeros((n_streams, 4), np.uint64)",
            f"np.zeros((n_streams, {4 + 2 * _EXTRA}), np.uint64)",
        )
    )
    return tuple(reps)


def draws_per_path(n_paths: int = 2000, prepared: Any = None) -> dict[str, Any]:
    """Calls per path of each variate by the kernels as they are.

    Counted, not modelled: a copy of the kernel module whose variate calls go
    through counters (:func:`_counting_source`) simulates ``n_paths`` paths of
    ``prepared`` (default: the standard workload). Also returns the mean
    parameters of the calls whose cost depends on them (binomial ``n`` by
    class and ``p``, Poisson ``lam``, gamma shape).
    """
    import tempfile
    from pathlib import Path

    import simengine.engine._kernels as kern
    from simengine.engine import _rng, prepare
    from simengine.engine.blocks import _args

    pr = prepare(*standard_workload()) if prepared is None else prepared
    model, n_streams = _args(pr)
    src = Path(kern.__file__).read_text()
    with tempfile.TemporaryDirectory() as tmp:
        mod = kernel_copy(tmp, "k_counting", _counting_source(src))
        scratch = mod._scratch(model, n_streams, mod.TAIL_CACHE_MAX_ENTRIES, False)
        root = _rng.root_seed(1)
        for path in range(n_paths):
            mod._path(root, np.int64(path), np.int64(n_paths), model, scratch)
    tot = scratch[0][:, 4:].sum(axis=0).astype(np.float64)
    calls = {v: tot[i] / n_paths for i, v in enumerate(VARIATES) if tot[i] > 0}
    x = tot[_EXTRA:]
    out: dict[str, Any] = {"calls": calls}
    nb = tot[VARIATES.index("binomial")]
    if nb > 0:
        out["binomial_mean_n"] = x[_X_BIN_N] / nb
        out["binomial_mean_p"] = x[_X_BIN_P] / _FIXED / nb
        out["binomial_calls_by_n"] = {
            f"{lo}-{hi}" if hi < 1 << 40 else f">={lo}": x[_X_BIN_CLS + j] / n_paths
            for j, (lo, hi) in enumerate(_BIN_CLASSES)
        }
    npo = tot[VARIATES.index("poisson")]
    if npo > 0:
        out["poisson_mean_lam"] = x[_X_POI_LAM] / _FIXED / npo
        out["poisson_share_lam_ge_10"] = x[_X_POI_BIG] / npo
    nga = tot[VARIATES.index("gamma")]
    if nga > 0:
        out["gamma_mean_shape"] = x[_X_GAM_SHAPE] / _FIXED / nga
    return out


def draw_costs_ns(draws: dict[str, Any] | None = None, n: int = 1_000_000) -> dict[str, float]:
    """CPU nanoseconds per call of each variate (one thread, tight loop).

    Timed by ``bench_rng.ns_per_draw`` (the benchmarks' one per-variate
    timing loop: parameters read from arrays inside the loop so set-up work
    cannot be hoisted), min of 3 calls of ``n`` draws. With ``draws`` (from
    :func:`draws_per_path`) the binomial classes use ``n`` at the class's
    middle and the workload's mean ``p``, Poisson and gamma the workload's
    mean ``lam`` and shape; without, fixed typical values. The truncated
    lognormals are cut at 20 (``lognormal_truncated_tail`` with its
    survival supplied, as the kernels have it).
    """
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
    from bench_rng import ns_per_draw  # type: ignore[import-not-found]

    d = draws or {}
    p = float(d.get("binomial_mean_p", 0.4))
    # name: (bench_rng kind code, a, b, n); the codes are bench_rng.CASES'
    cases: dict[str, tuple[int, float, float, int]] = {
        "uniform": (1, 0.0, 0.0, 0),
        "lognormal": (5, 2.5, 0.6, 0),
        "poisson": (7, float(d.get("poisson_mean_lam", 10.0)), 0.0, 0),
        "gamma": (6, float(d.get("gamma_mean_shape", 20.0)), 0.0, 0),
        "lognormal_truncated_below": (10, 2.5, 0.6, 0),
        "lognormal_truncated_tail": (15, 2.5, 0.6, 0),
        "std_normal": (2, 0.0, 0.0, 0),
        "normal": (4, 0.0, 1.0, 0),
        "std_exponential": (3, 0.0, 0.0, 0),
    }
    for lo, hi in _BIN_CLASSES:
        mid = lo if lo == hi else (200 if hi > 1 << 40 else (lo + hi) // 2)
        cases[f"binomial_n{lo}-{hi}" if hi < 1 << 40 else f"binomial_n>={lo}"] = (8, p, 0.0, mid)
    return {
        name: float(ns_per_draw(kind, a, b, k, n_draws=n, repeats=3, log_trunc=math.log(20.0)))
        for name, (kind, a, b, k) in cases.items()
    }


def draw_bound_us(draws: dict[str, Any], costs: dict[str, float]) -> float:
    """Microseconds per path if the path did nothing but its random draws (one thread)."""
    total = 0.0
    for v, c in draws["calls"].items():
        if v == "binomial":
            for cls, n_calls in draws["binomial_calls_by_n"].items():
                total += n_calls * costs[f"binomial_n{cls}"]
        else:
            total += c * costs[v]
    return total / 1000.0


def in_situ_lognormal_share(n_paths: int = 2000) -> dict[str, float]:
    """CPU us/path of the block kernel as shipped and with ``lognormal`` replaced.

    The variant swaps the RNG layer's lognormal (ziggurat normal + exp) for
    ``exp(mu) * (0.5 + U)`` (one uniform, one exp) in a copy of the kernel
    module compiled without caching; the difference is what the lognormal
    draws cost inside the real kernel (latency-bound, unlike the tight-loop
    ``ns_per_draw``).
    """
    import tempfile

    from simengine.engine import BlockSummary, prepare
    from simengine.engine import _rng as rng
    from simengine.engine.blocks import _args

    cheap = (
        (
            "lognormal = _rng.lognormal\n",
            "@jit\ndef lognormal(st, mu, sg, row):\n"
            "    return math.exp(mu) * (0.5 + uniform(st, row))\n",
        ),
    )
    params, plan = standard_workload()
    pr = prepare(params, plan)
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, reps in (("shipped", ()), ("cheap_lognormal", cheap)):
            mod = kernel_copy(tmp, f"k_{name}", reps)
            s = BlockSummary.zeros(pr)

            def run(n: int, mod: Any = mod, s: Any = s) -> None:
                mod.block_kernel(
                    rng.root_seed(1),
                    np.int64(0),
                    np.int64(n),
                    np.int64(n),
                    *_args(pr),
                    s.scal_hist,
                    s.welford,
                    s.hit,
                    s.within,
                    s.ttt_hist,
                    s.cum_hist,
                    s.cum_sum,
                    s.cum_comp,
                    s.wcov_hist,
                    s.batch_hist,
                    s.batch_welford,
                    s.batch_hit,
                    s.batch_ttt_hist,
                )

            run(3)
            t = time.thread_time()
            run(n_paths)
            out[f"{name}_cpu_us_per_path"] = (time.thread_time() - t) / n_paths * 1e6
    out["lognormal_share_of_path_time"] = 1 - (
        out["cheap_lognormal_cpu_us_per_path"] / out["shipped_cpu_us_per_path"]
    )
    return out


# ----------------------------------------------------------------------------- timings
def engine_rate(paths: int, threads: int, block_size: int = 10_000) -> tuple[float, float]:
    """(paths per second wall, CPU seconds per path) of run_blocks on the workload."""
    from simengine.engine import prepare
    from simengine.engine.blocks import Block, run_block
    from simengine.engine.simulate import run_blocks

    params, plan = standard_workload()
    pr = prepare(params, plan)
    run_block(pr, Block(0, 0, 2), 1)  # load compiled code
    c0, t0 = time.process_time(), time.perf_counter()
    run_blocks(pr, paths, 1, block_size, threads)
    wall = time.perf_counter() - t0
    return paths / wall, (time.process_time() - c0) / paths


def reference_rate(paths: int = 1000) -> float:
    """Paths per CPU second of the NumPy reference (one thread)."""
    from simengine.engine.reference import reference_paths

    params, plan = standard_workload()
    reference_paths(params, plan, 20, 0)
    t0 = time.thread_time()
    reference_paths(params, plan, paths, 1)
    return paths / (time.thread_time() - t0)


WARM = """
import time
t0 = time.perf_counter()
import sys
sys.path.insert(0, {here!r})
from engine_report import standard_workload
from simengine.engine import prepare
from simengine.engine.blocks import Block, run_block
params, plan = standard_workload(draws=4000)
pr = prepare(params, plan)
run_block(pr, Block(0, 0, 1), 1)
print(time.perf_counter() - t0)
"""


def warm_start_s() -> float:
    """Seconds from interpreter start of a fresh process to its first finished block.

    Run twice; the second process finds Numba's on-disk cache (cache=True).
    """
    here = os.path.dirname(os.path.abspath(__file__))
    code = WARM.format(here=here)
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--paths", type=int, default=100_000)
    ap.add_argument("--reference-paths", type=int, default=1_000)
    a = ap.parse_args()
    res: dict[str, object] = {"cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0]}
    res["warm_start_s"] = warm_start_s()
    draws = draws_per_path()
    costs = draw_costs_ns(draws)
    res["ns_per_draw"] = costs
    res["draws_per_path"] = draws
    res["draws_per_path_total"] = sum(draws["calls"].values())
    bound = draw_bound_us(draws, costs)
    res["draw_bound_us_per_path_1_thread"] = bound
    for threads in (1, 2):
        rate, cpu = engine_rate(a.paths, threads)
        res[f"engine_paths_per_s_{threads}_threads"] = rate
        res[f"engine_cpu_us_per_path_{threads}_threads"] = cpu * 1e6
    res["in_situ"] = in_situ_lognormal_share()
    res["share_of_draw_bound_(cpu)"] = bound / res["engine_cpu_us_per_path_1_threads"]  # type: ignore[operator]
    res["reference_paths_per_cpu_s"] = reference_rate(a.reference_paths)
    # per CPU second, one thread each: immune to other processes on a shared machine
    res["engine_over_reference_per_cpu_s"] = (
        1e6 / res["engine_cpu_us_per_path_1_threads"] / res["reference_paths_per_cpu_s"]  # type: ignore[operator]
    )
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()

"""Wall time and peak memory of fitting the demo data (and the shared CRM export).

"Cold" is a fresh interpreter's first fit (PyTensor/Numba compilation of
the three models included; PyTensor's on-disk cache of compiled operations
is used as it is, so for a machine's very first fit point
``PYTENSOR_FLAGS=base_compiledir=`` at an empty directory); "warm" is a
second fit of the same data in the same process. Peak memory is the
process's peak resident set (``ru_maxrss``) after the fit; a third run
("traced", same process) reports the Python-heap peak of a fit
(``tracemalloc``). Its wall time is not a speed figure: tracing every
allocation slowed the warm demo fit from 34.6 s to 109.0 s (``--crm`` run
quoted in docs/performance.md).

"Warm" reuses the cold fit's compiled models (the process cache of
:mod:`simengine.fitting._compiled`): it is the sampling time plus the model
build and the cache lookup. ``--origins`` fits the CRM export at successive
as-of dates in one process, as a serial backtest does, and prints each
origin's wall time and the cache's hits and misses (a hit: that part's
compilation was reused with the origin's data).

As a script (numbers quoted in the report)::

    .venv/bin/python benchmarks/bench_fit.py                # demo data, 4 x 1000
    .venv/bin/python benchmarks/bench_fit.py --crm          # + the shared CRM export
    .venv/bin/python benchmarks/bench_fit.py --runs cold,warm   # without the traced run
    .venv/bin/python benchmarks/bench_fit.py --origins 2017-06-30,2017-07-31,2017-08-31 \
        --draws 500 --tune 500 --chains 2                   # CRM fits at 3 origins
    .venv/bin/python benchmarks/bench_fit.py --blas-threads # sampling with OpenBLAS's
                                                            # default pool vs one thread

``--blas-threads`` compiles each demo part once and samples it twice with the
same seed: with the BLAS libraries' default thread pools (the baseline) and
inside :func:`~simengine.fitting.fit.single_threaded_blas` (what ``fit``
does). It prints wall and CPU time of each and whether the draws agree.

Under pytest-benchmark (``make bench``): one pedantic round of a demo fit.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import resource
import sys
import time
import tracemalloc
from pathlib import Path

from simengine.config.spec import load_spec
from simengine.fitting.fit import (
    attempt_lines,
    compiled_cache_info,
    fit,
    fit_data,
    settings_from_spec,
    single_threaded_blas,
)
from simengine.io.records import load_records
from simengine.synth import generate

REPO = Path(__file__).resolve().parents[1]
CRM = REPO.parent / "shared" / "data" / "crm-opportunities" / "sales_pipeline.csv"


def _demo() -> tuple[object, object, dt.date]:
    spec = load_spec(REPO / "models" / "demo.toml")
    res = generate(20270104)
    as_of = dt.date.fromisoformat(str(res.truth["as_of"]))
    return res.records, spec, as_of


def timed_fit(records, spec, as_of, *, draws=None, tune=None, chains=None, trace_heap=False):
    st = settings_from_spec(spec, draws=draws, tune=tune, chains=chains)
    if trace_heap:
        tracemalloc.start()
    t0 = time.perf_counter()
    idata = fit(records, spec, as_of, 1, settings=st, allow_unconverged=True)
    wall = time.perf_counter() - t0
    post = idata["posterior"]
    # what the gate said and which parts needed the retry (the wall time includes it)
    for line in attempt_lines(json.loads(post.attrs["simengine_fit_attempts"])):
        print(f"  retry: {line}", flush=True)
    for part, d in json.loads(post.attrs["simengine_diagnostics"]).items():
        if d["failures"]:
            print(f"  gate: {part}: {'; '.join(d['failures'][:4])}", flush=True)
    heap = tracemalloc.get_traced_memory()[1] / 2**20 if trace_heap else float("nan")
    if trace_heap:
        tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return idata, wall, heap, rss


def test_bench_fit_demo(benchmark):
    records, spec, as_of = _demo()
    out = benchmark.pedantic(
        lambda: timed_fit(records, spec, as_of), rounds=1, iterations=1, warmup_rounds=0
    )
    assert out[0]["posterior"]["conversion"].shape[:2] == (4, 1000)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crm", action="store_true", help="also fit the shared CRM export")
    ap.add_argument("--draws", type=int)
    ap.add_argument("--tune", type=int)
    ap.add_argument("--chains", type=int)
    ap.add_argument(
        "--runs",
        default="cold,warm,traced",
        help="which runs (comma-separated; e.g. cold,warm to skip the slow traced run)",
    )
    ap.add_argument("--origins", help="comma-separated as-of dates: CRM fits in one process")
    ap.add_argument(
        "--blas-threads",
        action="store_true",
        help="demo parts sampled with the default BLAS pools and with one BLAS thread",
    )
    a = ap.parse_args(argv)
    if a.origins:
        return _origins(a)
    if a.blas_threads:
        return _blas_threads(a)
    jobs = [("demo", *_demo())]
    if a.crm:
        if not CRM.exists():
            print(f"shared CRM export not found at {CRM}", file=sys.stderr)
            return 2
        spec = load_spec(REPO / "models" / "crm-opportunities.toml")
        jobs.append(("crm", load_records(CRM, spec), spec, dt.date(2017, 7, 1)))
    for name, records, spec, as_of in jobs:
        for run in a.runs.split(","):
            idata, wall, heap, rss = timed_fit(
                records,
                spec,
                as_of,
                draws=a.draws,
                tune=a.tune,
                chains=a.chains,
                trace_heap=run == "traced",
            )
            post = idata["posterior"]
            print(
                f"{name:5s} {run}: {len(records):,} units, {post.sizes['chain']}x"
                f"{post.sizes['draw']} draws, wall {wall:.1f} s, peak RSS {rss:.0f} MiB, "
                f"python heap peak {heap:.0f} MiB, converged={post.attrs['simengine_converged']}",
                flush=True,
            )
    return 0


def _blas_threads(a: argparse.Namespace) -> int:
    """Sample each demo part with the default BLAS pools, then with one BLAS thread."""
    import numpy as np
    import nutpie
    from threadpoolctl import threadpool_info

    from simengine.fitting.fit import PARTS, _build_part, part_seeds

    records, spec, as_of = _demo()
    st = settings_from_spec(spec, draws=a.draws, tune=a.tune, chains=a.chains)
    data = fit_data(records, spec, as_of, st)
    pools = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
    print(f"BLAS pools loaded: {pools} threads", flush=True)
    seeds = part_seeds(1)
    for part in PARTS:
        model, _ = _build_part(part, data, st)  # the model fit() samples for this part
        compiled = nutpie.compile_pymc_model(model)
        target_accept, mass_matrix = st.for_part(part)
        draws = {}
        for run in ("default pools", "one thread"):
            limit = single_threaded_blas() if run == "one thread" else contextlib.nullcontext()
            t0, c0 = time.perf_counter(), time.process_time()
            with limit:
                idata = nutpie.sample(
                    compiled,
                    draws=st.draws,
                    tune=st.tune,
                    chains=st.chains,
                    seed=seeds[part],
                    target_accept=target_accept,
                    progress_bar=False,
                    low_rank_modified_mass_matrix=mass_matrix == "low_rank",
                )
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            draws[run] = idata["sample_stats"]["logp"].values
            print(
                f"{part:10s} {run:13s}: {st.chains}x{st.draws} draws, sampling wall {wall:.1f} s,"
                f" CPU {cpu:.1f} s",
                flush=True,
            )
        same = np.array_equal(draws["default pools"], draws["one thread"])
        print(f"{part:10s} same draws (logp of every draw bitwise equal): {same}", flush=True)
    return 0


def _origins(a: argparse.Namespace) -> int:
    """Fit the CRM export at each origin in turn; print wall time and cache counters."""
    if not CRM.exists():
        print(f"shared CRM export not found at {CRM}", file=sys.stderr)
        return 2
    from simengine.io.records import as_of_view

    spec = load_spec(REPO / "models" / "crm-opportunities.toml")
    full = load_records(CRM, spec)
    st = settings_from_spec(spec, draws=a.draws, tune=a.tune, chains=a.chains)
    for text in a.origins.split(","):
        origin = dt.date.fromisoformat(text.strip())
        known = as_of_view(full, spec, origin)
        before = compiled_cache_info()
        parts: list[str] = []
        t0 = time.perf_counter()
        last = [t0]

        def on_part(part: str, parts: list[str] = parts, last: list[float] = last) -> None:
            now = time.perf_counter()
            if parts:
                parts[-1] += f" {now - last[0]:.1f}s"
            parts.append(part)
            last[0] = now

        idata = fit(known, spec, origin, 1, settings=st, allow_unconverged=True, on_part=on_part)
        wall = time.perf_counter() - t0
        parts[-1] += f" {time.perf_counter() - last[0]:.1f}s"
        after = compiled_cache_info()
        post = idata["posterior"]
        print(
            f"origin {origin}: {len(known):,} units, {post.sizes['chain']}x{post.sizes['draw']}"
            f" draws, fit wall {wall:.1f} s ({', '.join(parts)}), compiled-model cache"
            f" hits +{after.hits - before.hits} misses +{after.misses - before.misses},"
            f" converged={post.attrs['simengine_converged']}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

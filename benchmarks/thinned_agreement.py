"""Agreement of an engine variant with the per-unit model, every output, large samples.

The variant (``--compare``): ``thinned`` (the thinned path model, paths
grouped by draw as the default) or ``interleaved`` (the per-unit model with
the interleaved path -> draw mapping ``i mod n_draws`` of before issue 17),
each against the default: the per-unit model, paths grouped by draw.

Usage::

    nice -n 10 .venv/bin/python benchmarks/thinned_agreement.py [--paths 1000000] [--threads 2]
    nice -n 10 .venv/bin/python benchmarks/thinned_agreement.py --compare interleaved
    nice -n 10 .venv/bin/python benchmarks/thinned_agreement.py \
        --posterior DEMO/posterior.nc --plan DEMO/data/plan.toml

Without ``--posterior``: the standard workload
(:func:`engine_report.standard_workload`). Both models run ``--paths`` paths
with independent seeds (per-unit seed 1, the variant seed 2), in chunks of
``--chunk`` paths through :func:`~simengine.engine.run_paths` on
``--threads`` threads; only the compared columns are kept. The family, on
the total unless said:

* two-sample KS: revenue, coverage at the period start, each revenue source,
  the day the target is reached (paths that reach it), the coverage at every
  week end, the cumulative revenue every 7th day to the horizon, and each
  segment's revenue;
* chi-square (bins pooled to >= 10 paths): won deals, each
  ``entered_<stage>``, each segment's won deals;
* two-sided z-test of P(reach the target).

Family-wise error ``--alpha`` (default 0.002) by Bonferroni over every
p-value; metrics constant in both samples are compared exactly. Prints one
JSON object: each p-value, the threshold, the rejected checks, and each
model's paths per second in this run (wall, ``--threads`` threads; the
machine's load average is printed with it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "engine"))

from comparison import chi2_two_sample, rejected, z_pvalue

from simengine.engine import prepare, run_paths
from simengine.engine.blocks import scalar_names


def collect(pr, n: int, seed: int, chunk: int, threads: int) -> tuple[dict[str, np.ndarray], float]:
    """Run ``n`` paths in chunks; return the compared columns and the wall seconds."""
    names = scalar_names(pr.params.stages)
    tot = pr.n_segments
    days = list(range(6, pr.n_dates, 7))
    n_w = pr.week_days.shape[0]
    cols: dict[str, np.ndarray] = {f"total {k}": np.empty(n) for k in names}
    for seg in pr.params.segments:
        cols[f"{seg} revenue"] = np.empty(n)
        cols[f"{seg} won_deals"] = np.empty(n)
    for w in range(n_w):
        cols[f"coverage week {w}"] = np.empty(n)
    for i in days:
        cols[f"cum revenue day {i}"] = np.empty(n)
    cols["time to target"] = np.empty(n)

    def one(first: int) -> None:
        m = min(chunk, n - first)
        pm = run_paths(pr, first, m, seed, total=n)
        sl = slice(first, first + m)
        for k, name in enumerate(names):
            cols[f"total {name}"][sl] = pm.scalars[:, tot, k]
        for g, seg in enumerate(pr.params.segments):
            cols[f"{seg} revenue"][sl] = pm.scalars[:, g, 0]
            cols[f"{seg} won_deals"][sl] = pm.scalars[:, g, 3]
        for w in range(n_w):
            cols[f"coverage week {w}"][sl] = pm.week_coverage[:, tot, w]
        for i in days:
            cols[f"cum revenue day {i}"][sl] = pm.cum_revenue[:, tot, i]
        cols["time to target"][sl] = pm.time_to_target[:, tot]

    run_paths(pr, 0, 2, seed)  # load the compiled kernels
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(one, range(0, n, chunk)))
    return cols, time.perf_counter() - t0


def family(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, float]:
    """Every check of the module docstring, by name."""
    out: dict[str, float] = {}
    for key in a:
        x, y = a[key], b[key]
        if key == "time to target":
            out["z P(hit)"] = float(z_pvalue(np.isfinite(x), np.isfinite(y)) or 1.0)
            x, y = x[np.isfinite(x)], y[np.isfinite(y)]
        if key.endswith("attainment"):
            continue  # revenue / target: the revenue check
        if x.size and np.all(x == x[0]) and np.all(y == x[0]):
            continue  # constant in both: equal
        if key.endswith(("won_deals",)) or "entered_" in key:
            out[f"chi2 {key}"] = chi2_two_sample(x, y)
        else:
            out[f"ks {key}"] = float(stats.ks_2samp(x, y).pvalue)
    return out


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=1_000_000)
    ap.add_argument("--chunk", type=int, default=25_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--alpha", type=float, default=0.002)
    ap.add_argument("--posterior")
    ap.add_argument("--plan")
    ap.add_argument("--compare", choices=("thinned", "interleaved"), default="thinned")
    a = ap.parse_args(argv)
    if a.posterior:
        from simengine.config.plan import load_plan
        from simengine.io.posterior import read_parameters

        params, plan, workload = read_parameters(a.posterior), load_plan(a.plan), a.posterior
    else:
        from engine_report import standard_workload

        (params, plan), workload = standard_workload(), "standard"
    pr = prepare(params, plan)
    per_unit, t_unit = collect(pr, a.paths, 1, a.chunk, a.threads)
    variant = replace(pr, thinned=1) if a.compare == "thinned" else replace(pr, grouped_draws=0)
    thinned, t_thin = collect(variant, a.paths, 2, a.chunk, a.threads)
    pvalues = family(thinned, per_unit)
    bad = rejected(pvalues, a.alpha)
    res: dict[str, object] = {
        "workload": workload,
        "compare": a.compare,
        "paths_each": a.paths,
        "threads": a.threads,
        "checks": len(pvalues),
        "alpha_family": a.alpha,
        "per_check_threshold": a.alpha / len(pvalues),
        "min_p": min(pvalues.values()),
        "rejected": bad,
        "agree": not bad,
        "per_unit_paths_per_s": round(a.paths / t_unit, 1),
        f"{a.compare}_paths_per_s": round(a.paths / t_thin, 1),
        "load_average_1min": os.getloadavg()[0],
        "pvalues": {k: float(f"{v:.4g}") for k, v in pvalues.items()},
    }
    print(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()

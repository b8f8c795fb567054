"""The engine of this tree against another revision's (main's), timed in the same run (issue 17).

Each revision's ``simengine`` runs in its own child process: this tree's
from the working tree, the other's from ``git archive REV simengine``
extracted into a temporary folder (its Numba cache beside it, compiled
once by an untimed warm-up child). A child builds the same inputs (the
standard workload of :func:`engine_report.standard_workload`, or a
posterior and plan given as files), loads its compiled kernels, then times
one whole run through ``simulate.run_blocks`` (as ``simulate`` runs it:
blocks of ``--block-size`` paths on ``--threads`` threads) and reports
wall-clock paths/s and the process CPU seconds of that run. Rounds
alternate the order of the revisions; the best round of each is reported.
The NumPy reference (:func:`~simengine.engine.reference.reference_paths`,
this tree's, one thread) is timed in the same run.

The machine may be shared: only the ratios within one run compare, and the
1-minute load average is printed with them.

Usage::

    nice -n 10 .venv/bin/python benchmarks/bench_vs_main.py --paths 200000 [--rev main] \
        [--rounds 2] [--workdir /tmp/main-engine] \
        [--posterior DEMO/posterior.nc --plan DEMO/data/plan.toml]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _inputs(a: argparse.Namespace) -> tuple[Any, Any]:
    if a.posterior:
        from simengine.config.plan import load_plan
        from simengine.io.posterior import read_parameters

        return read_parameters(a.posterior), load_plan(a.plan)
    from engine_report import standard_workload

    return standard_workload()


def _child(a: argparse.Namespace) -> dict[str, Any]:
    """Child side: time one run of this process's ``simengine`` (first on sys.path)."""
    import simengine
    from simengine.engine import prepare
    from simengine.engine.simulate import run_blocks

    params, plan = _inputs(a)
    pr = prepare(params, plan)
    run_blocks(pr, 4, 1, 2, 1)  # load the compiled kernels
    if a.paths == 0:
        return {"simengine": str(Path(simengine.__file__).parent)}
    c0, t0 = os.times(), time.perf_counter()
    run_blocks(pr, a.paths, 1, a.block_size, a.threads)
    wall = time.perf_counter() - t0
    c1 = os.times()
    cpu = (c1.user - c0.user) + (c1.system - c0.system)
    return {
        "simengine": str(Path(simengine.__file__).parent),
        "paths_per_s": a.paths / wall,
        "cpu_us_per_path": cpu / a.paths * 1e6,
    }


def _run_child(src: Path, a: argparse.Namespace, paths: int) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        "--paths",
        str(paths),
        "--block-size",
        str(a.block_size),
        "--threads",
        str(a.threads),
    ]
    if a.posterior:
        cmd += ["--posterior", a.posterior, "--plan", a.plan]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(src), str(HERE)])
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, cwd=src)
    res: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    if Path(res["simengine"]).parent.resolve() != src.resolve():
        raise RuntimeError(f"child imported {res['simengine']}, expected {src}")
    return res


def _extract(rev: str, dest: Path) -> str:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    stamp = dest / "COMMIT"
    if stamp.exists() and stamp.read_text() == commit:
        return commit  # extracted (and compiled) by an earlier run
    archive = dest / "src.tar"
    with archive.open("wb") as f:
        subprocess.run(["git", "archive", rev, "simengine"], cwd=ROOT, stdout=f, check=True)
    with tarfile.open(archive) as t:
        t.extractall(dest, filter="data")
    archive.unlink()
    stamp.write_text(commit)
    return commit


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the comparison (or, with ``--child``, one timed run) and print JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=200_000)
    ap.add_argument("--block-size", type=int, default=50_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--rev", default="main", help="the revision to compare with")
    ap.add_argument("--reference-paths", type=int, default=500)
    ap.add_argument("--posterior")
    ap.add_argument("--plan")
    ap.add_argument(
        "--workdir",
        help="folder to extract --rev into and keep (its compiled kernels are reused "
        "by the next run); default a temporary folder",
    )
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if bool(a.posterior) != bool(a.plan):
        ap.error("--posterior and --plan go together")
    if a.child:
        res = _child(a)
        print(json.dumps(res))
        return res
    head = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="bench_vs_main-") as tmp:
        other = Path(a.workdir) if a.workdir else Path(tmp) / "other"
        other.mkdir(parents=True, exist_ok=True)
        commit = _extract(a.rev, other)
        trees = {"this": ROOT, a.rev: other}
        for src in trees.values():  # compile or load the kernels (untimed)
            _run_child(src, a, 0)
        best: dict[str, dict[str, Any]] = {}
        loads = []
        for r in range(a.rounds):
            order = list(trees) if r % 2 == 0 else list(trees)[::-1]
            for k in order:
                res = _run_child(trees[k], a, a.paths)
                loads.append(os.getloadavg()[0])
                line = {"round": r, "tree": k, **res, "load_average_1min": round(loads[-1], 2)}
                print(json.dumps(line), file=sys.stderr, flush=True)  # each run as it ends
                if k not in best or res["paths_per_s"] > best[k]["paths_per_s"]:
                    best[k] = res
        from simengine.engine.reference import reference_paths

        params, plan = _inputs(a)
        reference_paths(params, plan, 20, 1)
        t0 = time.perf_counter()
        reference_paths(params, plan, a.reference_paths, 1)
        ref = a.reference_paths / (time.perf_counter() - t0)
    out: dict[str, Any] = {
        "workload": "posterior" if a.posterior else "standard",
        "paths": a.paths,
        "threads": a.threads,
        "block_size": a.block_size,
        "this": head,
        a.rev: commit,
    }
    for k, res in best.items():
        out[f"{k}_paths_per_s"] = round(res["paths_per_s"], 1)
        out[f"{k}_cpu_us_per_path"] = round(res["cpu_us_per_path"], 1)
    out["reference_paths_per_s"] = round(ref, 1)
    out["this_over_" + a.rev] = round(best["this"]["paths_per_s"] / best[a.rev]["paths_per_s"], 3)
    out["this_over_reference"] = round(best["this"]["paths_per_s"] / ref, 2)
    out[a.rev + "_over_reference"] = round(best[a.rev]["paths_per_s"] / ref, 2)
    out["load_average_1min"] = [round(x, 2) for x in loads]
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()

"""Backtest simengine on the shared CRM export and print the comparison table.

Six monthly origins from 2017-04-30 to 2017-09-30, each followed by a
13-week (91-day) period: the export's close dates end on 2017-12-31, so the
last origin whose whole period is observed is 2017-09-30 (period 2017-10-01
.. 2017-12-30); the first is two months after the first recorded close
(2017-03-01), the least history a left-truncated fit can start from.

At each origin the funnel is fitted on what was known then
(:func:`simengine.io.records.as_of_view`), the period is simulated, and
simengine, run-rate, spreadsheet and weighted pipeline are scored against
the closed-won revenue the file shows for the period (CRPS, 50/80/90%
coverage, P50 absolute % error). Outputs (``backtest.csv``, ``pooled.csv``,
``backtest.html``, ``origins/<date>/``) go to ``--out``; a re-run with the
same folder resumes.

The export is left-truncated (its first recorded close is 2017-03-01; see
``models/crm-opportunities.toml``): the fit detects it from the data
(:func:`simengine.fitting.data.detect_left_truncation`);
``--left-truncated true|false`` overrides the detection. ``--workers N``
scores N origins at a time in separate processes (same scores as serial;
the engine's threads are split between them).

Usage::

    .venv/bin/python benchmarks/backtest_crm.py --out /tmp/bt-crm \\
        --draws 500 --tune 500 --chains 2 --paths 100000 --workers 2
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

__all__ = ["main", "skill_table"]

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "crm-opportunities" / "sales_pipeline.csv"
SPEC = REPO / "models" / "crm-opportunities.toml"
ORIGINS = [
    dt.date(2017, 4, 30),
    dt.date(2017, 5, 31),
    dt.date(2017, 6, 30),
    dt.date(2017, 7, 31),
    dt.date(2017, 8, 31),
    dt.date(2017, 9, 30),
]
COLS = ["crps", "cover_50", "cover_80", "cover_90", "ape_p50", "pit"]
BASELINES = ["run_rate", "spreadsheet", "weighted_pipeline"]

# At import, so that spawned origin workers (which import this file as
# __mp_main__ without running main) skip the pip-install BLAS notice too.
warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS", category=UserWarning)


@dataclass(frozen=True)
class _Progress:
    """Per-origin progress lines (picklable: worker processes print them too)."""

    t0: float

    def __call__(self, origin: dt.date, what: str) -> None:
        print(f"  {origin} {what} (t={time.time() - self.t0:,.0f}s)", flush=True)


def skill_table(scores: pd.DataFrame, segment: str = "total") -> pd.DataFrame:
    """Per origin: realised, simengine's P10/P50/P90, PIT, CRPS and CRPS skill per baseline.

    Skill vs a baseline = 1 - CRPS(simengine) / CRPS(baseline): > 0 means
    simengine is better at that origin.
    """
    s = scores[scores["segment"] == segment]
    se = s[s["method"] == "simengine"].set_index("origin")
    out = se[["realised", "p10", "p50", "p90", "pit", "crps"]].copy()
    for b in BASELINES:
        crps_b = s[s["method"] == b].set_index("origin")["crps"]
        out[f"skill_{b}"] = 1.0 - out["crps"] / crps_b
    return out


def _table(df: pd.DataFrame, index: list[str], cols: list[str]) -> str:
    return df.set_index(index)[cols].to_string(float_format=lambda v: f"{v:,.3f}")


def main(argv: list[str] | None = None) -> None:
    """Run the CRM backtest and print per-origin and pooled tables."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/simengine-backtest-crm"))
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--paths", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--draws", type=int, default=None)
    ap.add_argument("--tune", type=int, default=None)
    ap.add_argument("--chains", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--period-days", type=int, default=91)
    ap.add_argument(
        "--left-truncated",
        choices=["auto", "true", "false"],
        default="auto",
        help="auto: detected from the data; false: treat the export as complete",
    )
    ap.add_argument("--workers", type=int, default=1, help="origins scored at a time")
    ap.add_argument(
        "--origins",
        default=None,
        help="comma-separated subset of the origins (ISO dates; default: all six)",
    )
    ap.add_argument(
        "--explain",
        action="store_true",
        help="per origin and cell: expected vs realised new units, wins, deal size, revenue",
    )
    args = ap.parse_args(argv)
    origins = (
        ORIGINS
        if args.origins is None
        else [dt.date.fromisoformat(o) for o in args.origins.split(",")]
    )

    from simengine.backtest.run import (
        BacktestConfig,
        run_backtest,
        simengine_forecaster,
        threads_per_worker,
    )
    from simengine.config.spec import load_spec
    from simengine.io.records import as_of_view, load_records

    spec = load_spec(SPEC)
    full = load_records(args.data, spec)
    cfg = BacktestConfig(period_days=args.period_days, paths=args.paths, seed=args.seed)
    overrides: dict[str, object] = {
        "draws": args.draws,
        "tune": args.tune,
        "chains": args.chains,
        "left_truncated": {"auto": None, "true": True, "false": False}[args.left_truncated],
    }
    t0 = time.perf_counter()
    progress = _Progress(time.time())

    def done(origin: dt.date, status: str) -> None:
        print(f"origin {origin}: {status} (t={time.perf_counter() - t0:,.0f}s)", flush=True)

    forecaster = simengine_forecaster(
        cfg,
        fit_overrides={k: v for k, v in overrides.items() if v is not None},
        threads=threads_per_worker(args.workers, args.threads),
        on_step=progress,
    )
    print(
        f"CRM backtest: {len(origins)} origins, period {cfg.period_days} days, "
        f"{cfg.paths:,} paths, sampler overrides {overrides}",
        flush=True,
    )
    scores, pooled = run_backtest(
        full,
        spec,
        origins,
        args.out,
        cfg,
        forecaster,
        as_of_view=as_of_view,
        on_origin=done,
        workers=args.workers,
    )
    total = scores[scores["segment"] == "total"].copy()
    print("\nPer origin, total revenue (realised vs P50, scores):")
    print(
        _table(
            total.sort_values(["origin", "method"]),
            ["origin", "method"],
            ["realised", "p10", "p50", "p90", *COLS],
        )
    )
    print("\nsimengine per origin, total revenue (skill = 1 - CRPS / CRPS of the baseline):")
    print(skill_table(scores).to_string(float_format=lambda v: f"{v:,.3f}"))
    print("\nPooled over origins, total revenue:")
    ptot = pooled[pooled["segment"] == "total"]
    print(
        _table(ptot, ["method"], ["origins", "crps", "cover_50", "cover_80", "cover_90", "ape_p50"])
    )
    print("\nPooled over origins x segments (regional offices and total):")
    allseg = (
        scores.groupby("method", sort=False)[
            ["crps", "cover_50", "cover_80", "cover_90", "ape_p50"]
        ]
        .mean()
        .reset_index()
    )
    allseg.insert(1, "n", scores.groupby("method", sort=False).size().to_numpy())
    print(_table(allseg, ["method"], ["n", "crps", "cover_50", "cover_80", "cover_90", "ape_p50"]))
    conv = []
    for o in origins:
        post = args.out / "origins" / o.isoformat() / "posterior.nc"
        if post.exists():
            import xarray as xr

            with xr.open_dataset(post, group="posterior", engine="h5netcdf") as ds:
                conv.append(f"{o}: converged={ds.attrs.get('simengine_converged')}")
    if conv:
        print("\nConvergence gate per origin: " + "; ".join(conv))
    if args.explain:
        from simengine.backtest.explain import explain_origin

        for o in origins:
            post = args.out / "origins" / o.isoformat() / "posterior.nc"
            if post.exists():
                table = explain_origin(full, spec, post, cfg.period_days)
                print(f"\nWhere the revenue comes from, origin {o} (posterior means vs realised):")
                print(table.to_string(index=False, float_format=lambda v: f"{v:,.0f}"))
    print(f"\nwall time {time.perf_counter() - t0:,.0f}s; outputs in {args.out}")


if __name__ == "__main__":
    main()

"""Backtest simengine on the shared CRM export and print the comparison table.

Monthly origins from 2017-06-30 to 2017-09-30, each followed by a 13-week
(91-day) period: the export's close dates end on 2017-12-31, so the last
origin whose whole period is observed is 2017-09-30 (period 2017-10-01 ..
2017-12-30); the first is the earliest month-end with three quarters of
history behind it (engage dates start in late 2016), enough for the
arrival model's trailing weeks and the drift periods.

At each origin the funnel is fitted on what was known then
(:func:`simengine.records.as_of_view`), the period is simulated, and
simengine, run-rate, spreadsheet and weighted pipeline are scored against
the closed-won revenue the file shows for the period (CRPS, 50/80/90%
coverage, P50 absolute % error). Outputs (``backtest.csv``, ``pooled.csv``,
``backtest.html``, ``origins/<date>/``) go to ``--out``; a re-run with the
same folder resumes.

Usage::

    .venv/bin/python benchmarks/backtest_crm.py --out /tmp/bt-crm \\
        --draws 500 --tune 500 --chains 2 --paths 100000
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
import warnings
from pathlib import Path

import pandas as pd

__all__ = ["main"]

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "crm-opportunities" / "sales_pipeline.csv"
SPEC = REPO / "models" / "crm-opportunities.toml"
ORIGINS = [dt.date(2017, 6, 30), dt.date(2017, 7, 31), dt.date(2017, 8, 31), dt.date(2017, 9, 30)]
COLS = ["crps", "cover_50", "cover_80", "cover_90", "ape_p50", "pit"]


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
        "--no-arrival-trend",
        action="store_true",
        help="fit without the arrival trend (the spec's [model] arrival_trend = false)",
    )
    args = ap.parse_args(argv)
    warnings.filterwarnings(
        "ignore", message="PyTensor could not link to a BLAS", category=UserWarning
    )

    from simengine.backtest.run import BacktestConfig, run_backtest, simengine_forecaster
    from simengine.records import as_of_view, load_records
    from simengine.spec import load_spec

    spec = load_spec(SPEC)
    full = load_records(args.data, spec)
    cfg = BacktestConfig(period_days=args.period_days, paths=args.paths, seed=args.seed)
    overrides: dict[str, object] = {
        "draws": args.draws,
        "tune": args.tune,
        "chains": args.chains,
        "arrival_trend": False if args.no_arrival_trend else None,
    }
    t0 = time.perf_counter()
    last = [t0]

    def step(origin: dt.date, what: str) -> None:
        now = time.perf_counter()
        print(f"  {origin} {what} (t={now - t0:,.0f}s)", flush=True)

    def done(origin: dt.date, status: str) -> None:
        now = time.perf_counter()
        print(f"origin {origin}: {status} in {now - last[0]:,.0f}s", flush=True)
        last[0] = now

    forecaster = simengine_forecaster(
        cfg,
        fit_overrides={k: v for k, v in overrides.items() if v is not None},
        threads=args.threads,
        on_step=step,
    )
    print(
        f"CRM backtest: {len(ORIGINS)} origins, period {cfg.period_days} days, "
        f"{cfg.paths:,} paths, sampler overrides {overrides}",
        flush=True,
    )
    scores, pooled = run_backtest(
        full, spec, ORIGINS, args.out, cfg, forecaster, as_of_view=as_of_view, on_origin=done
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
    for o in ORIGINS:
        post = args.out / "origins" / o.isoformat() / "posterior.nc"
        if post.exists():
            import xarray as xr

            with xr.open_dataset(post, group="posterior", engine="h5netcdf") as ds:
                conv.append(f"{o}: converged={ds.attrs.get('simengine_converged')}")
    if conv:
        print("\nConvergence gate per origin: " + "; ".join(conv))
    print(f"\nwall time {time.perf_counter() - t0:,.0f}s; outputs in {args.out}")


if __name__ == "__main__":
    main()

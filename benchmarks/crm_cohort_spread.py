"""The CRM export's within-period cohort spread at each backtest origin, and what it becomes.

For each origin: :func:`simengine.fitting.data.build_data` (left truncation
detected, the spec's drift periods) and its ``cohort_sd`` (the test at its
level 1e-3; also without the test, ``alpha = 1``); with ``--posteriors DIR``
(a backtest's ``origins`` folder) the mean conversion there and the
engine's ``conversion_cohort_sd`` it maps to
(:func:`simengine.fitting.conversion.cohort_effect_sd` at that mean); and
the realised share of the next 91 days' new deals won within them, beside
the share of the deals engaged in the last 91 days won by the origin.

Usage::

    .venv/bin/python benchmarks/crm_cohort_spread.py [--posteriors DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["main"]

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "crm-opportunities" / "sales_pipeline.csv"
SPEC = REPO / "models" / "crm-opportunities.toml"
ORIGINS = ["2017-04-30", "2017-05-31", "2017-06-30", "2017-07-31", "2017-08-31", "2017-09-30"]


def main(argv: list[str] | None = None) -> None:
    """Print one row per origin."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--posteriors", type=Path, default=None)
    args = ap.parse_args(argv)
    import xarray as xr

    from simengine.config.spec import load_spec
    from simengine.fitting.data import (
        build_data,
        cohort_days,
        cohort_log_sd,
        detect_left_truncation,
        known_at,
        relative_days,
    )
    from simengine.io.records import load_records

    spec = load_spec(SPEC)
    recs = load_records(args.data, spec)
    rows = []
    for o in ORIGINS:
        as_of = dt.date.fromisoformat(o)
        t0 = detect_left_truncation(recs, spec, as_of)
        data = build_data(recs, spec, as_of, observed_from=t0)
        days = cohort_days(data.period_days)
        df = known_at(recs, spec, as_of)
        entry = -relative_days(df["opportunity_at"], as_of)
        won = -relative_days(df["won_at"], as_of)
        seen = entry <= -relative_days(pd.Series([pd.Timestamp(t0)]), as_of)[0]
        untested = cohort_log_sd(
            entry[seen], (entry - won)[seen], days, data.period_days, alpha=1.0
        )
        origin = pd.Timestamp(as_of)
        e, w = recs.opportunity_at, recs.won_at
        end = origin + pd.Timedelta(days=91)
        new = (e > origin) & (e <= end)
        last = (e > origin - pd.Timedelta(days=91)) & (e <= origin)
        row = {
            "origin": o,
            "cohort_days": days,
            "cohort_sd": float(data.cohort_sd[0]),
            "untested": untested,
            "won_share_next": float(
                (new & (w <= origin + pd.Timedelta(days=91))).sum() / new.sum()
            ),
            "won_share_last": float((last & (w <= origin)).sum() / last.sum()),
        }
        if args.posteriors is not None:
            post = xr.open_dataset(args.posteriors / o / "posterior.nc", group="posterior")
            p = float(post["conversion"].mean())
            ratio = days / data.period_days
            row["mean_conversion"] = p
            row["engine_cohort_sd"] = row["cohort_sd"] * np.sqrt(ratio) / (1.0 - p)
            if "conversion_cohort_sd" in post:
                row["posterior_cohort_sd"] = float(post["conversion_cohort_sd"].mean())
        rows.append(row)
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()

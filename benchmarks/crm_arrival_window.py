"""Design study: the arrival window's length against the CRM export's next quarter.

The arrivals part alone (:mod:`simengine.fitting.arrivals`, the spec's
other model choices, short sampler settings) is fitted at each backtest
origin with each window length in ``--weeks``; the window starts on or
after the detected left truncation whatever its length
(:func:`simengine.fitting.data.build_data`). Each fit is scored against the
number of deals engaged in the next 91 days: the posterior mean and the 80%
band of the expected count (per draw: the as-of weekly rates times the
walk carried 13 weeks ahead, one Normal(0, ``arrival_level_sd``) step a
week, as the engine plays it; negative-binomial noise left out, it is
small beside the level's).

Usage::

    .venv/bin/python benchmarks/crm_arrival_window.py [--weeks 13,52] [--origins ...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["main"]

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "crm-opportunities" / "sales_pipeline.csv"
SPEC = REPO / "models" / "crm-opportunities.toml"
ORIGINS = ["2017-04-30", "2017-05-31", "2017-06-30", "2017-07-31", "2017-08-31", "2017-09-30"]
PERIOD_WEEKS = 13


def main(argv: list[str] | None = None) -> None:
    """Print one row per origin and window length."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--weeks", default="13,52")
    ap.add_argument("--origins", default=",".join(ORIGINS))
    ap.add_argument("--draws", type=int, default=300)
    ap.add_argument("--chains", type=int, default=2)
    args = ap.parse_args(argv)
    from simengine.config.spec import load_spec
    from simengine.fitting import arrivals
    from simengine.fitting.data import build_data, detect_left_truncation
    from simengine.fitting.fit import sample_model, settings_from_spec
    from simengine.io.records import load_records

    spec = load_spec(SPEC)
    recs = load_records(args.data, spec)
    st = settings_from_spec(spec)
    rng = np.random.default_rng(0)
    rows = []
    for o in args.origins.split(","):
        as_of = dt.date.fromisoformat(o)
        t0 = detect_left_truncation(recs, spec, as_of)
        origin = pd.Timestamp(as_of)
        e = recs.opportunity_at
        real = int(((e >= origin) & (e < origin + pd.Timedelta(days=91))).sum())
        for w in (int(x) for x in args.weeks.split(",")):
            data = build_data(recs, spec, as_of, history_weeks=w, observed_from=t0)
            model = arrivals.build_model(data, st.prior_scales, trend=False)
            t = time.perf_counter()
            idata = sample_model(
                model,
                draws=args.draws,
                tune=args.draws,
                chains=args.chains,
                target_accept=0.9,
                seed=1,
            )
            post = idata["posterior"]
            rate = post["arrival_rate"].to_numpy().reshape(-1, *post["arrival_rate"].shape[2:])
            sd = post["arrival_level_sd"].to_numpy().reshape(-1, rate.shape[2])
            n = rate.shape[0]
            # one walk per entry stage (the export has one), 13 weeks ahead
            steps = rng.normal(size=(n, PERIOD_WEEKS)) * sd[:, :1]
            walk = np.exp(np.cumsum(steps, axis=1)).sum(axis=1)
            expected = rate.sum(axis=(1, 2)) * walk
            rows.append(
                {
                    "origin": o,
                    "weeks": data.n_weeks,
                    "as_of_rate": float(rate.sum(axis=(1, 2)).mean()),
                    "level_sd": float(sd.mean()),
                    "E_next": float(expected.mean()),
                    "P10": float(np.quantile(expected, 0.1)),
                    "P90": float(np.quantile(expected, 0.9)),
                    "real": real,
                    "err_%": 100.0 * (expected.mean() - real) / real,
                    "fit_s": time.perf_counter() - t,
                }
            )
            print(rows[-1], flush=True)
    out = pd.DataFrame(rows)
    fmt = lambda v: f"{v:,.3f}" if abs(v) < 2 else f"{v:,.0f}"  # noqa: E731
    print(out.to_string(index=False, float_format=fmt))
    windows = [int(x) for x in args.weeks.split(",")]
    out["window"] = np.tile(windows, len(out) // len(windows))
    print("\nmean |err| % per requested window:")
    print(out.groupby("window")["err_%"].apply(lambda s: s.abs().mean()).to_string())


if __name__ == "__main__":
    main()

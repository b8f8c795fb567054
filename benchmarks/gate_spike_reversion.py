"""What a mean-reverting arrival level would remove of the CRM over-forecast at 2017-07-31.

A what-if, not a fit: the 13-week arrival window of the CRM spec ends in the
July 2017 spike, and the local level (a random walk) carries the as-of level
forward, 3,267 new deals in the next quarter (posterior mean, quoted from
docs/validation-crm.md, "Diagnosis at 2017-07-31") against the realised
count read here from the export. A mean-reverting (AR(1)) log level around
the window's mean would forecast ``sum_h exp(mu + phi^h (l0 - mu))`` for
``h = 1..13`` weeks (``l0`` the as-of level, ``mu`` the log mean of the
window's weekly counts); printed for a range of weekly ``phi``, with an
indicative lag-1 autocorrelation of the weekly log counts (corrected for
their Poisson noise) of the 22 weeks to the as-of date.

Usage (output quoted in docs/validation-convergence.md)::

    .venv/bin/python benchmarks/gate_spike_reversion.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gate_plain import CRM

AS_OF = pd.Timestamp("2017-07-31")
MODEL_QUARTER = 3267.0
"""Posterior mean of the new deals in the quarter after 2017-07-31 (docs/validation-crm.md)."""


def main() -> int:
    d = pd.read_csv(CRM)
    e = pd.to_datetime(d["engage_date"], format="%m/%d/%Y").dropna()
    w = e[e <= AS_OF]
    counts = np.bincount(((AS_OF - w).dt.days // 7).to_numpy())[::-1]  # oldest first
    last13 = counts[-13:]
    print("last 13 weeks:", last13.tolist(), "mean", round(float(last13.mean()), 1))
    realised = int(((e > AS_OF) & (e <= AS_OF + pd.Timedelta(days=91))).sum())
    excess = MODEL_QUARTER - realised
    print(
        f"realised next 13 weeks {realised}; random-walk level {MODEL_QUARTER:.0f}; "
        f"excess {excess:.0f}"
    )
    l0, mu = np.log(MODEL_QUARTER / 13), np.log(last13.mean())
    h = np.arange(1, 14)
    for phi in (1.0, 0.95, 0.9, 0.85, 0.8, 0.7, 0.5):
        q = float(np.exp(mu + phi**h * (l0 - mu)).sum())
        half = np.log(0.5) / np.log(phi) if phi < 1 else np.inf
        print(
            f"weekly phi {phi:4.2f} (half-life {half:5.1f} wk): forecast {q:6.0f}, "
            f"removes {MODEL_QUARTER - q:5.0f} of {excess:.0f} ({(MODEL_QUARTER - q) / excess:.0%})"
        )
    z = np.log(counts[-22:].astype(float))
    zc = z - z.mean()
    r1 = float(zc[1:] @ zc[:-1] / (zc @ zc))
    noise = float(np.mean(1.0 / counts[-22:]) / zc.var())
    print(
        f"22 weeks to the as-of date: lag-1 autocorrelation of log counts {r1:.2f}; "
        f"Poisson noise share {noise:.2f}; noise-corrected {r1 / (1 - noise):.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

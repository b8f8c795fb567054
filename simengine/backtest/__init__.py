"""Backtests: rolling origins, scores against what happened, and baselines.

For each origin the funnel is fitted on what was known then, the period that
follows is simulated, and the forecast is scored (PIT, interval coverage,
CRPS, pinball loss) against the realised closed-won revenue, beside the
methods revenue teams use today (run-rate, spreadsheet, weighted pipeline).
"""

from __future__ import annotations

from simengine.backtest.baselines import BASELINES, run_rate, spreadsheet, weighted_pipeline
from simengine.backtest.scoring import DENSE_LEVELS, QuantileForecast, score
from simengine.backtest.truth import realised

__all__ = [
    "BASELINES",
    "DENSE_LEVELS",
    "QuantileForecast",
    "realised",
    "run_rate",
    "score",
    "spreadsheet",
    "weighted_pipeline",
]

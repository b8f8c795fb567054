"""Per-deal outlook speed (pytest-benchmark) against its direct form, both in the same run.

Run: .venv/bin/python -m pytest benchmarks/bench_outlook.py --benchmark-only \
         --benchmark-columns=min,mean,rounds
Workload: the engine's standard workload (600 open units over 6 cells and 3
stages, ages 0-59 days, a 13-week period, 180-day horizon) with 1,000
parameter draws (the direct form at 4,000 takes minutes a round). The
baseline is the direct form of the same law (``outlook_baseline.py``,
the code before commit 810a238); both are timed here so a slower or busier
machine cancels out of their ratio, stored in ``extra_info`` as
``speedup_vs_baseline``. The two agree on every probability and revenue to
1e-9 relative (checked), so the ratio compares like with like.
"""

from __future__ import annotations

import numpy as np
import pytest
from engine_report import standard_workload
from outlook_baseline import baseline_outlook

from simengine.engine.outlook import deal_outlook

DRAWS = 1_000
_MIN: dict[str, float] = {}


@pytest.fixture(scope="module")
def workload():
    return standard_workload(draws=DRAWS)


def test_outlook_baseline(benchmark, workload) -> None:
    params, plan = workload
    base = benchmark.pedantic(baseline_outlook, args=(params, plan), rounds=1, iterations=1)
    _MIN["baseline"] = benchmark.stats.stats.min
    new = deal_outlook(params, plan)
    for col in ("p_won_in_period", "p_lost_in_period", "expected_revenue_in_period"):
        np.testing.assert_allclose(new[col], base[col], rtol=1e-9, atol=1e-12, err_msg=col)
    benchmark.extra_info["open_units"] = len(params.open_units)
    benchmark.extra_info["draws"] = DRAWS


def test_outlook(benchmark, workload) -> None:
    params, plan = workload
    deals = benchmark.pedantic(deal_outlook, args=(params, plan), rounds=3, iterations=1)
    assert len(deals) == len(params.open_units)
    benchmark.extra_info["open_units"] = len(params.open_units)
    benchmark.extra_info["draws"] = DRAWS
    benchmark.extra_info["units_per_s"] = len(deals) / benchmark.stats.stats.min
    if "baseline" in _MIN:
        benchmark.extra_info["speedup_vs_baseline"] = _MIN["baseline"] / benchmark.stats.stats.min

"""A golden ``summary.csv``: the engine's output for a small fixed problem, pinned by hash.

Changed only deliberately
-------------------------
The hash below is the SHA-256 of the ``summary.csv`` that ``simulate`` writes
for :func:`_problem` (every value a plain constant, no random parameters),
4,000 paths, seed 20270104. A saved forecast is reproducible bit for bit only
while this hash holds, so it may change only on purpose: when a change to the
engine's streams, a variate algorithm, the path model or the summary's
statistics or format alters it, update ``GOLDEN_SHA256`` in the same commit,
and add a CHANGELOG line naming the change and saying that forecasts made
before it are not reproduced bit for bit after it (e.g. "Engine output
changed: <what> (tests/engine/test_golden.py hash updated); a forecast from an
earlier version is not reproduced bitwise."). A failure here without such a
change is a regression.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from engine_helpers import make_params, make_plan

from simengine.engine import simulate
from simengine.params import FunnelParameters, OpenUnits

GOLDEN_SHA256 = "bccc40df8623289058a8d6fb2b8768ffc9749dba5dcde7b57da8825f84a7ef2f"
PATHS = 4_000
SEED = 20270104


def _problem():
    """3 segments x 2 channels, 4 stages, a loss law, planned new units and 6 open units."""
    open_units = OpenUnits(
        cell=np.array([0, 1, 2, 3, 4, 5], np.int64),
        stage=np.array([0, 1, 2, 2, 1, 0], np.int64),
        age_days=np.array([3.0, 10.0, 20.0, 40.0, 0.0, 90.0]),
        amount=np.array([np.nan, np.nan, 50_000.0, np.nan, 12_000.0, np.nan]),
    )
    params: FunnelParameters = make_params(
        draws=4,
        rate=(20.0, 0.0, 0.5),
        dispersion=0.1,
        trend=0.01,
        pipeline_stage=2,
        open_units=open_units,
        loss_median=(12.0, 20.0, 35.0),
        loss_sigma=0.8,
    )
    plan = make_plan(target=40_000.0, weeks=8, horizon_days=70, new_units={"mid": {"mql": 150.0}})
    return params, plan


def _summary_sha256(out: Path, threads: int) -> str:
    params, plan = _problem()
    fc = simulate(params, plan, paths=PATHS, seed=SEED, block_size=1_000, threads=threads)
    fc.write(out)
    return hashlib.sha256((out / "summary.csv").read_bytes()).hexdigest()


def test_golden_summary_csv(tmp_path: Path) -> None:
    """summary.csv of the fixed problem has the pinned hash, with 1 thread and with 2."""
    one = _summary_sha256(tmp_path / "t1", threads=1)
    assert _summary_sha256(tmp_path / "t2", threads=2) == one  # any thread count
    assert one == GOLDEN_SHA256, (
        f"summary.csv changed: {one}. If deliberate, update GOLDEN_SHA256 and add a "
        "CHANGELOG line (see this module's docstring)."
    )

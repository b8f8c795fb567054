"""A small two-segment world for history tests: records with known laws, and parameters.

Units enter the one-step funnel (opportunity -> won) at a Poisson rate per
segment from 2017-01-02; each wins with probability ``p`` after a lognormal
delay, else is lost after a lognormal time; won amounts are lognormal. The
parameters handed to the engine are the true ones (no fit), so tests of the
history store, the realised-to-date forecast and the waterfall run in seconds.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from simengine.config.plan import Plan
from simengine.config.spec import FunnelSpec, load_spec
from simengine.params import FunnelParameters, OpenUnits
from simengine.snapshot import open_units

SPEC = """name = "history-world"
stages = ["opportunity", "won"]
segment_by = ["segment"]
pipeline_stage = "opportunity"
"""

SEGMENTS = ("east", "west")
RATE = {"east": 30.0, "west": 20.0}  # units per week
P_WIN = {"east": 0.35, "west": 0.45}
DELAY = (np.log(25.0), 0.6)
LOSS = (np.log(30.0), 0.7)
SIZE = {"east": (np.log(10_000.0), 0.4), "west": (np.log(15_000.0), 0.4)}
START, END = dt.date(2017, 7, 1), dt.date(2017, 9, 30)
TARGETS = {"east": 1_650_000.0, "west": 2_050_000.0}


def spec(tmp: Path) -> FunnelSpec:
    p = tmp / "world.toml"
    p.write_text(SPEC, encoding="utf-8")
    return load_spec(p)


def records(seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    first = pd.Timestamp("2017-01-02")
    rows = []
    k = 0
    for seg in SEGMENTS:
        n = rng.poisson(RATE[seg] * 40)
        days = np.sort(rng.integers(0, 40 * 7, n))
        for d in days:
            entered = first + pd.Timedelta(days=int(d))
            win = rng.random() < P_WIN[seg]
            if win:
                t = np.exp(rng.normal(*DELAY))
                won = entered + pd.Timedelta(days=int(t))
                amt = float(np.round(np.exp(rng.normal(*SIZE[seg])), 2))
                rows.append((f"u{k}", seg, entered, won, pd.NaT, amt))
            else:
                t = np.exp(rng.normal(*LOSS))
                rows.append(
                    (f"u{k}", seg, entered, pd.NaT, entered + pd.Timedelta(days=int(t)), np.nan)
                )
            k += 1
    df = pd.DataFrame(
        rows, columns=["id", "segment", "opportunity_at", "won_at", "lost_at", "amount"]
    )
    df["segment"] = df["segment"].astype(str)
    return df


def plan(targets: dict[str, float] | None = None) -> Plan:
    return Plan(start=START, end=END, as_of=START, targets=dict(targets or TARGETS))


def params(
    df: pd.DataFrame,
    sp: FunnelSpec,
    as_of: dt.date,
    *,
    draws: int = 64,
    seed: int = 0,
    conv_scale: float = 1.0,
) -> FunnelParameters:
    """The true laws as parameter draws (a little spread in the rates), open units at ``as_of``."""
    rng = np.random.default_rng(seed)
    cells = SEGMENTS
    conv = np.array([[[P_WIN[s]] for s in cells]]) * conv_scale
    conv = np.clip(conv * np.exp(rng.normal(0, 0.05, (draws, len(cells), 1))), 0, 1)
    ou = open_units(df, sp, as_of, list(cells))
    return FunnelParameters(
        stages=("opportunity", "won"),
        cells=cells,
        segments=cells,
        cell_segment=np.arange(len(cells), dtype=np.int64),
        pipeline_stage=0,
        as_of=as_of,
        conversion=conv,
        delay_mu=np.full((draws, 2, 1), DELAY[0]),
        delay_sigma=np.full((draws, 2, 1), DELAY[1]),
        arrival_rate=np.array([[[RATE[s]] for s in cells]] * draws),
        arrival_dispersion=np.zeros((draws, 2, 1)),
        arrival_trend=np.zeros((draws, 2, 1)),
        deal_size_mu=np.array([[SIZE[s][0] for s in cells]] * draws),
        deal_size_sigma=np.array([[SIZE[s][1] for s in cells]] * draws),
        loss_mu=np.full((draws, 2, 1), LOSS[0]),
        loss_sigma=np.full((draws, 2, 1), LOSS[1]),
        open_units=ou if len(ou) else OpenUnits.empty(),
        source="posterior",
    )


def record(
    sid: str,
    as_of: dt.date,
    targets: dict[str, float] | None = None,
    *,
    spec_sha: str = "spec-a",
    end: dt.date = END,
):
    """A small snapshot record with made-up numbers (store tests)."""
    from simengine.history.store import SnapshotRecord

    tg = dict(targets or TARGETS)
    segs = [*tg, "total"]
    rows = []
    for i, s in enumerate(segs):
        base = 1000.0 * (i + 1)
        rows += [
            (s, "revenue", st, base * f) for st, f in (("p10", 0.8), ("p50", 1.0), ("p90", 1.2))
        ]
        rows += [(s, "attainment", "prob_hit", 0.5), (s, "attainment", "prob_hit_se", 0.01)]
    return SnapshotRecord(
        snapshot_id=sid,
        as_of=as_of,
        start=START,
        end=end,
        targets=tg,
        summary=pd.DataFrame(rows, columns=["segment", "metric", "stat", "value"]),
        fan_end=pd.DataFrame(
            [(s, 0.5, 1000.0) for s in segs], columns=["segment", "quantile", "value"]
        ),
        open_units=pd.DataFrame(
            {
                "unit_id": ["a", "b"],
                "segment": ["east", "west"],
                "cell": ["east", "west"],
                "stage": ["opportunity"] * 2,
                "age_days": [1.0, 2.0],
                "amount": [np.nan, 5.0],
                "p_win": [0.3, 0.4],
                "p_win_in_period": [0.2, 0.3],
            }
        ),
        realised=dict.fromkeys(segs, 0.0),
        spec_sha256=spec_sha,
        data_sha256="d",
        posterior_sha256="p",
        plan_sha256="x",
        seed=1,
        paths=100,
        converged=True,
        source="posterior",
    )

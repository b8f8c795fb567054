"""A small cure-model data generator with known truth, for the fitting and CLI tests.

Units arrive at the first stage (Poisson per week per cell, uniform days),
then at each step convert with probability ``p[c, s]`` after a lognormal
delay, or are lost after a lognormal time; dates are floored to days.
Everything after the as-of date is kept in the records (the fit must ignore
it), so the generator also gives the realised future for checks.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from simengine.config.spec import FunnelSpec, parse_spec

STAGES = ("lead", "qual", "opp", "won")
SPEC_TOML = """
name = "test"
stages = ["lead", "qual", "opp", "won"]
segment_by = ["segment", "channel"]
pipeline_stage = "opp"
[model]
drift = {drift}
arrival_trend = {trend}
draws = {draws}
tune = {tune}
chains = {chains}
"""


@dataclass(frozen=True)
class Truth:
    cells: tuple[str, ...]
    conversion: np.ndarray  # (cell, step)
    delay_mu: np.ndarray  # (cell, step)
    delay_sigma: np.ndarray  # (cell, step)
    arrival_rate: np.ndarray  # (cell,) units per week at lead
    deal_size_mu: np.ndarray  # (cell,)
    deal_size_sigma: np.ndarray  # (cell,)


def make_spec(
    *, drift: bool = False, trend: bool = False, draws: int = 500, tune: int = 500, chains: int = 2
) -> FunnelSpec:
    text = SPEC_TOML.format(
        drift=str(drift).lower(), trend=str(trend).lower(), draws=draws, tune=tune, chains=chains
    )
    return parse_spec(text, source="test.toml")


def make_records(
    seed: int,
    *,
    as_of: dt.date = dt.date(2026, 1, 5),
    history_days: int = 546,
    segments: tuple[str, ...] = ("ent", "smb"),
    channels: tuple[str, ...] = ("ads", "web"),
    weekly_rate: float = 12.0,
    delay_median_days: tuple[float, ...] = (7.0, 14.0, 30.0),
    lost_median_days: float = 40.0,
) -> tuple[pd.DataFrame, Truth]:
    rng = np.random.default_rng(seed)
    cells = tuple(f"{s}/{c}" for s in segments for c in channels)
    n_cells, n_steps = len(cells), len(STAGES) - 1
    base_logit = np.array([0.3, 0.0, -0.6])
    seg_off = rng.normal(0.0, 0.4, size=(len(segments), n_steps))
    cell_seg = np.repeat(np.arange(len(segments)), len(channels))
    logit = base_logit + seg_off[cell_seg] + rng.normal(0.0, 0.2, size=(n_cells, n_steps))
    conv = 1.0 / (1.0 + np.exp(-logit))
    dmu = np.log(np.array(delay_median_days))[None, :] + rng.normal(0, 0.2, (n_cells, n_steps))
    dsig = np.exp(np.log(0.6) + rng.normal(0, 0.1, (n_cells, n_steps)))
    rate = weekly_rate * np.exp(rng.normal(0, 0.3, n_cells))
    amu = (
        np.log(20000.0) + rng.normal(0, 0.4, len(segments))[cell_seg] + rng.normal(0, 0.1, n_cells)
    )
    asig = np.exp(np.log(0.5) + rng.normal(0, 0.1, n_cells))
    start = pd.Timestamp(as_of) - pd.Timedelta(days=history_days)
    rows = []
    uid = 0
    n_weeks = history_days // 7
    for c, cell in enumerate(cells):
        seg, ch = cell.split("/")
        for w in range(n_weeks):
            for _ in range(rng.poisson(rate[c])):
                t = w * 7 + rng.uniform(0, 7)
                times: list[float] = [t]
                lost = np.nan
                for s in range(n_steps):
                    if rng.uniform() < conv[c, s]:
                        times.append(times[-1] + rng.lognormal(dmu[c, s], dsig[c, s]))
                    else:
                        lost = times[-1] + rng.lognormal(np.log(lost_median_days), 0.8)
                        break
                days = [start + pd.Timedelta(days=int(np.floor(x))) for x in times]
                rec: dict[str, object] = {"id": f"u{uid}", "segment": seg, "channel": ch}
                for k, st in enumerate(STAGES):
                    rec[f"{st}_at"] = days[k] if k < len(days) else pd.NaT
                rec["lost_at"] = (
                    pd.NaT if np.isnan(lost) else start + pd.Timedelta(days=int(np.floor(lost)))
                )
                rec["amount"] = (
                    float(np.round(rng.lognormal(amu[c], asig[c]), 2)) if len(days) >= 3 else np.nan
                )
                rows.append(rec)
                uid += 1
    df = pd.DataFrame(rows)
    for st in STAGES:
        df[f"{st}_at"] = pd.to_datetime(df[f"{st}_at"]).astype("datetime64[ns]")
    df["lost_at"] = pd.to_datetime(df["lost_at"]).astype("datetime64[ns]")
    df["amount"] = df["amount"].astype("float64")
    truth = Truth(cells, conv, dmu, dsig, rate, amu, asig)
    return df, truth

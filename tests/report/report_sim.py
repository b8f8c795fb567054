"""A forecast directory that follows the forecast.nc / summary.csv contract,
built from paths simulated here with NumPy (a small reference simulation, not
the engine), so report and export tests can check their numbers against the
raw paths they summarise."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

QUANTILES = np.array([0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975])
STAT_Q = {"p05": 0.05, "p10": 0.1, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p90": 0.9, "p95": 0.95}
STATS = ["mean", "sd", *STAT_Q, "prob_hit", "prob_hit_se", "prob_within_5pct",
         "prob_within_5pct_se", "prob_reached"]
STAGES = ["mql", "sql", "opportunity", "won"]
SEGMENTS = ["smb", "mid", "ent"]
TARGETS = {"smb": 150_000.0, "mid": 400_000.0, "ent": 600_000.0}
START = dt.date(2027, 1, 4)
END = dt.date(2027, 4, 4)
HORIZON_DAYS = 120


@dataclass
class SimPaths:
    """The raw simulated paths behind the test forecast."""

    cum: dict[str, np.ndarray]  # segment -> (path, day) cumulative revenue since start
    coverage: dict[str, np.ndarray]  # segment -> (path, week)
    entered: dict[str, np.ndarray]  # segment -> (path, stage)
    targets: dict[str, float]
    end_offset: int
    n_paths: int


def _stats(x: np.ndarray) -> dict[str, float]:
    out = {"mean": float(np.mean(x)), "sd": float(np.std(x, ddof=1))}
    out.update({k: float(np.quantile(x, q)) for k, q in STAT_Q.items()})
    return out


def simulate_paths(seed: int, n_paths: int = 4000) -> SimPaths:
    """Won deals per day ~ Poisson(rate x path-level gamma multiplier), lognormal amounts."""
    rng = np.random.default_rng(seed)
    n_days = HORIZON_DAYS
    end_offset = (END - START).days
    cum: dict[str, np.ndarray] = {}
    coverage: dict[str, np.ndarray] = {}
    entered: dict[str, np.ndarray] = {}
    n_weeks = (end_offset + 1) // 7
    for k, seg in enumerate(SEGMENTS):
        deal_mu = np.log(TARGETS[seg] / 40.0)  # ~40 deals (median amount) make the target
        rate = (0.8 + 0.2 * k) * 40.0 / (end_offset + 1) / np.exp(0.5**2 / 2)
        mult = rng.gamma(20.0, 1 / 20.0, size=(n_paths, 1))
        n = rng.poisson(rate * mult, size=(n_paths, n_days))
        amounts = rng.lognormal(deal_mu, 0.5, size=int(n.sum()))
        daily = np.bincount(np.repeat(np.arange(n.size), n.ravel()), weights=amounts,
                            minlength=n.size).reshape(n_paths, n_days)
        cum[seg] = np.cumsum(daily, axis=1)
        level = rng.lognormal(np.log(2.6 + 0.5 * k), 0.15, size=(n_paths, 1))
        decay = np.exp(-np.arange(n_weeks) / 8.0 + rng.normal(0, 0.05, (n_paths, n_weeks)))
        coverage[seg] = level * decay
        mql = rng.poisson(2000.0 * (k + 1) * mult[:, 0])
        sql = rng.binomial(mql, 0.3)
        opp = rng.binomial(sql, 0.4)
        won = n[:, : end_offset + 1].sum(axis=1)
        entered[seg] = np.stack([mql, sql, opp, won], axis=1).astype(float)
    return SimPaths(cum, coverage, entered, dict(TARGETS), end_offset, n_paths)


def build_dataset(sim: SimPaths, seed: int) -> xr.Dataset:
    """Summarise simulated paths exactly as forecast.nc is specified."""
    segments = [*SEGMENTS, "total"]
    targets = {**sim.targets, "total": sum(sim.targets.values())}
    cum = {**sim.cum, "total": sum(sim.cum[s] for s in SEGMENTS)}
    pipeline_value = {s: sim.coverage[s] * sim.targets[s] for s in SEGMENTS}
    coverage = {**sim.coverage, "total": sum(pipeline_value.values()) / targets["total"]}
    entered = {**sim.entered, "total": sum(sim.entered[s] for s in SEGMENTS)}
    metrics = ["revenue", "attainment", "time_to_target_days", "coverage", "won_deals",
               *[f"entered_{st}" for st in STAGES]]
    summary = np.full((len(segments), len(metrics), len(STATS)), np.nan)
    for i, seg in enumerate(segments):
        rev = cum[seg][:, sim.end_offset]
        att = rev / targets[seg]
        reached = cum[seg] >= targets[seg]
        ttt = np.where(reached.any(axis=1), reached.argmax(axis=1), np.inf).astype(float)
        values = {
            "revenue": _stats(rev),
            "attainment": _stats(att),
            "time_to_target_days": {
                k: float(np.quantile(ttt, q, method="inverted_cdf")) for k, q in STAT_Q.items()
            } | {"prob_reached": float(np.isfinite(ttt).mean())},
            "coverage": _stats(coverage[seg][:, 0]),
            "won_deals": _stats(entered[seg][:, -1]),
        }
        for j, st in enumerate(STAGES):
            values[f"entered_{st}"] = _stats(entered[seg][:, j])
        p_hit = float(np.mean(att >= 1.0))
        p_w5 = float(np.mean(att >= 0.95))
        n = sim.n_paths
        values["attainment"] |= {
            "prob_hit": p_hit, "prob_hit_se": np.sqrt(p_hit * (1 - p_hit) / n),
            "prob_within_5pct": p_w5, "prob_within_5pct_se": np.sqrt(p_w5 * (1 - p_w5) / n),
        }
        for m, per_stat in values.items():
            for st, v in per_stat.items():
                summary[i, metrics.index(m), STATS.index(st)] = v
    dates = pd.date_range(START, periods=HORIZON_DAYS, freq="D")
    weeks = pd.date_range(START + dt.timedelta(days=6), periods=sim.coverage["smb"].shape[1],
                          freq="7D")
    ds = xr.Dataset(
        {
            "summary": (("segment", "metric", "stat"), summary),
            "cum_revenue": (("segment", "date", "quantile"),
                            np.stack([np.quantile(cum[s], QUANTILES, axis=0).T for s in segments])),
            "cum_revenue_mean": (("segment", "date"), np.stack([cum[s].mean(axis=0) for s in segments])),
            "coverage": (("segment", "week", "quantile"),
                         np.stack([np.quantile(coverage[s], QUANTILES, axis=0).T for s in segments])),
            "target": (("segment",), np.array([targets[s] for s in segments])),
            "entered": (("segment", "stage", "quantile"),
                        np.stack([np.quantile(entered[s], QUANTILES, axis=0).T for s in segments])),
        },
        coords={"segment": segments, "metric": metrics, "stat": STATS, "quantile": QUANTILES,
                "date": dates.values, "week": weeks.values, "stage": STAGES},
        attrs={
            "seed": seed, "paths": sim.n_paths, "block_size": 1000, "source": "assumptions",
            "start": START.isoformat(), "end": END.isoformat(), "as_of": START.isoformat(),
            "horizon_end": (START + dt.timedelta(days=HORIZON_DAYS - 1)).isoformat(),
            "versions": json.dumps({"simengine": "test"}), "input_sha256": json.dumps({}),
            "sketch_rel_error": 0.01,
        },
    )
    return ds


#: Shares of a path's period revenue by source in with_sources (sql: nobody enters there).
SOURCE_SHARES = {"open": 0.35, "new_mql": 0.45, "new_sql": 0.0, "new_opportunity": 0.20}


def source_paths(rev: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Split each path's revenue into sources that add up to it path by path.

    Each path's shares are Dirichlet around :data:`SOURCE_SHARES` (zero
    shares stay zero), so the sources vary from path to path and have bands
    of their own.
    """
    rng = np.random.default_rng(seed)
    names = [k for k, v in SOURCE_SHARES.items() if v > 0]
    w = rng.dirichlet([40.0 * SOURCE_SHARES[k] for k in names], size=rev.shape[0])
    out = {k: np.zeros_like(rev) for k in SOURCE_SHARES}
    for j, k in enumerate(names):
        out[k] = rev * w[:, j]
    out[names[-1]] = rev - sum(out[k] for k in names[:-1])  # exact sum, path by path
    return out


def source_stats(sim: SimPaths) -> dict[str, dict[str, dict[str, float]]]:
    """``segment -> revenue_from_<source> -> stat -> value`` from the paths (total jointly)."""
    per_seg = {s: source_paths(sim.cum[s][:, sim.end_offset], seed=k)
               for k, s in enumerate(SEGMENTS)}
    per_seg["total"] = {k: sum(per_seg[s][k] for s in SEGMENTS) for k in SOURCE_SHARES}
    return {seg: {f"revenue_from_{k}": _stats(v) for k, v in src.items()}
            for seg, src in per_seg.items()}


def with_sources(ds: xr.Dataset, sim: SimPaths | None = None) -> xr.Dataset:
    """The forecast with the engine's revenue_from_* metrics, computed from ``sim``'s paths."""
    sim = sim if sim is not None else simulate_paths(seed=int(ds.attrs["seed"]))
    table = source_stats(sim)
    extra = list(next(iter(table.values())))
    summ = ds["summary"]
    add = xr.DataArray(
        np.full((summ.sizes["segment"], len(extra), summ.sizes["stat"]), np.nan),
        dims=("segment", "metric", "stat"),
        coords={"segment": summ["segment"], "metric": extra, "stat": summ["stat"]},
    )
    for seg, metrics in table.items():
        for m, st in metrics.items():
            for k, v in st.items():
                add.loc[{"segment": seg, "metric": m, "stat": k}] = v
    return ds.drop_vars("summary").drop_dims("metric").assign(
        summary=xr.concat([summ, add], dim="metric"))


def write_forecast_dir(ds: xr.Dataset, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(out / "forecast.nc", engine="h5netcdf")
    s = ds["summary"].to_dataframe().reset_index().rename(columns={"summary": "value"})
    s.dropna(subset=["value"]).to_csv(out / "summary.csv", index=False)
    return out



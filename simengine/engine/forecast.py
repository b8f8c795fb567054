"""The forecast: ``forecast.nc`` (xarray) and ``summary.csv`` (tidy), one object.

Contract (docs/contracts.md, "summary.csv" and "forecast.nc"):

* ``summary.csv``: columns ``segment, metric, stat, value``; segments are the
  reporting segments then ``total`` (simulated jointly); metrics
  ``revenue``, ``attainment``, ``time_to_target_days``, ``coverage`` (open
  pipeline value at the start of the period / the period's target),
  ``won_deals``, ``entered_<stage>`` for every stage (units entering it on a
  day of the period), then revenue won in the period by source:
  ``revenue_from_open`` (units open at the as-of date) and
  ``revenue_from_new_<entry_stage>`` for every entry stage (units entering
  there during the simulation; e.g. ``revenue_from_new_mql``,
  ``revenue_from_new_opportunity``), whose means add up to the mean of
  ``revenue``; stats ``mean, sd, p05 .. p95``, plus ``prob_hit``,
  ``prob_hit_se`` (P(attainment >= 1)), ``prob_within_5pct``,
  ``prob_within_5pct_se`` (P(attainment >= 0.95)) on attainment and
  ``prob_reached`` on time to target.
* Quantiles are inverted-CDF quantiles from log-histogram sketches, within
  ``sketch_rel_error`` (0.4975 %) of the exact ones (counts: exact below
  100). Time to target is an exact integer-day histogram: day ``k`` means the
  cumulative revenue counted from the start day reached the target by the
  end of day ``start + k``; its quantiles are ``inf`` where the target is not
  reached within the horizon, and its mean is ``inf`` (sd NaN) unless every
  path reaches it. ``sd`` uses ``n - 1``. ``*_se`` are binomial standard
  errors ``sqrt(p (1 - p) / n)``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import xarray as xr

from simengine.config.plan import Plan
from simengine.engine._sketch import REL_ERROR, bin_values, hist_quantiles
from simengine.engine.blocks import BlockSummary
from simengine.params import FunnelParameters

__all__ = ["QUANTILES", "STATS", "Forecast", "metric_names"]

QUANTILES = np.array([0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975])
_STAT_Q = {"p05": 0.05, "p10": 0.1, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p90": 0.9, "p95": 0.95}
STATS = (
    "mean",
    "sd",
    *_STAT_Q,
    "prob_hit",
    "prob_hit_se",
    "prob_within_5pct",
    "prob_within_5pct_se",
    "prob_reached",
)
_BASIC = ("mean", "sd", *_STAT_Q)


def metric_names(stages: tuple[str, ...] | list[str]) -> list[str]:
    """Metric labels in output order (the sources of revenue last)."""
    return [
        "revenue",
        "attainment",
        "time_to_target_days",
        "coverage",
        "won_deals",
        *(f"entered_{s}" for s in stages),
        "revenue_from_open",
        *(f"revenue_from_new_{s}" for s in stages[:-1]),
    ]


def _applies(metric: str, stat: str) -> bool:
    if stat in _BASIC:
        return True
    if metric == "attainment":
        return stat.startswith("prob_hit") or stat.startswith("prob_within")
    return metric == "time_to_target_days" and stat == "prob_reached"


def _summary_frame(ds: xr.Dataset) -> pd.DataFrame:
    rows = []
    values = ds["summary"].values
    for i, seg in enumerate(ds["segment"].values):
        for j, metric in enumerate(ds["metric"].values):
            for k, stat in enumerate(ds["stat"].values):
                if _applies(str(metric), str(stat)):
                    rows.append((str(seg), str(metric), str(stat), float(values[i, j, k])))
    return pd.DataFrame(rows, columns=["segment", "metric", "stat", "value"])


def _summary_array(
    s: BlockSummary, nd: int, metrics: list[str], n_stages: int
) -> npt.NDArray[np.float64]:
    g1, k = s.welford.shape[:2]
    out = np.full((g1, len(metrics), len(STATS)), np.nan)
    vals = bin_values()
    ivals = bin_values(integer=True)
    qs = list(_STAT_Q.values())
    n = s.n
    # scalar metric k -> metric row (blocks.scalar_names order; time to target is row 2)
    rows = [0, 1, 3, 4, *range(5, 5 + k - 4)]
    for kk in range(k):
        j = rows[kk]
        v = ivals if 3 <= kk < 4 + n_stages else vals  # counts: won deals, entered
        out[:, j, 2:9] = hist_quantiles(s.scal_hist[:, kk], v, qs)
        out[:, j, 0] = s.welford[:, kk, 1]
        cnt = s.welford[:, kk, 0]
        out[:, j, 1] = np.sqrt(s.welford[:, kk, 2] / np.maximum(cnt - 1.0, 1.0))
    att = 1
    p_hit = s.hit / n
    p_w = s.within / n
    out[:, att, STATS.index("prob_hit")] = p_hit
    out[:, att, STATS.index("prob_hit_se")] = np.sqrt(p_hit * (1 - p_hit) / n)
    out[:, att, STATS.index("prob_within_5pct")] = p_w
    out[:, att, STATS.index("prob_within_5pct_se")] = np.sqrt(p_w * (1 - p_w) / n)
    t = 2
    tv = np.append(np.arange(nd, dtype=np.float64), np.inf)
    out[:, t, 2:9] = hist_quantiles(s.ttt_hist, tv, qs)
    reached = s.ttt_hist[:, :nd]
    n_reached = reached.sum(axis=1)
    days = np.arange(nd, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (reached * days).sum(axis=1) / n_reached
        var = (reached * (days - mean[:, None]) ** 2).sum(axis=1) / np.maximum(n_reached - 1, 1)
    all_reached = n_reached == n
    out[:, t, 0] = np.where(all_reached, mean, np.inf)
    out[:, t, 1] = np.where(all_reached, np.sqrt(var), np.nan)
    out[:, t, STATS.index("prob_reached")] = n_reached / n
    return out


@dataclass
class Forecast:
    """A simulated forecast: the dataset (forecast.nc) and its tidy summary.

    Attributes
    ----------
    dataset : xarray.Dataset
        Variables ``summary``, ``cum_revenue``, ``cum_revenue_mean``,
        ``coverage``, ``target``, ``entered`` (see module docstring).
    summary : pandas.DataFrame
        ``segment, metric, stat, value`` rows (summary.csv).
    deals : pandas.DataFrame or None
        The per-deal outlook of the open units
        (:func:`simengine.engine.outlook.deal_outlook`): written as
        ``deals.csv`` and as the ``deals`` group of ``forecast.nc`` (dim ``deal``).
    """

    dataset: xr.Dataset
    summary: pd.DataFrame
    deals: pd.DataFrame | None = None

    @classmethod
    def from_summary(
        cls,
        summary: BlockSummary,
        params: FunnelParameters,
        plan: Plan,
        meta: dict[str, Any],
    ) -> Forecast:
        """Build the forecast from a merged :class:`BlockSummary`.

        Parameters
        ----------
        summary : BlockSummary
            All blocks merged.
        params : FunnelParameters
            The parameters simulated (labels).
        plan : Plan
            The plan simulated (dates, targets).
        meta : dict
            Attributes: ``seed``, ``paths``, ``block_size``, ``versions``
            (dict), ``input_sha256`` (dict), optional ``input_paths`` (dict of
            input name to path, stored as JSON); others are copied as given.
        """
        segments = [*params.segments, "total"]
        stages = list(params.stages)
        metrics = metric_names(stages)
        nd = (plan.horizon_end - plan.start).days + 1
        dates = pd.date_range(plan.start, plan.horizon_end, freq="D")
        weeks = pd.date_range(
            pd.Timestamp(plan.start) + pd.Timedelta(days=6), pd.Timestamp(plan.end), freq="7D"
        )
        vals = bin_values()
        cum_q = hist_quantiles(summary.cum_hist, vals, QUANTILES)
        cum_mean = (summary.cum_sum - summary.cum_comp) / summary.n
        cov_q = hist_quantiles(summary.wcov_hist, vals, QUANTILES)
        n_st = len(stages)
        ent_q = hist_quantiles(
            summary.scal_hist[:, 4 : 4 + n_st], bin_values(integer=True), QUANTILES
        )
        targets = np.array([plan.targets[s] for s in params.segments] + [plan.total_target])
        attrs: dict[str, Any] = {
            "seed": int(meta["seed"]),
            "paths": int(summary.n),
            "block_size": int(meta["block_size"]),
            "source": params.source,
            "start": plan.start.isoformat(),
            "end": plan.end.isoformat(),
            "as_of": plan.as_of.isoformat(),
            "horizon_end": plan.horizon_end.isoformat(),
            "versions": json.dumps(meta.get("versions", {}), sort_keys=True),
            "input_sha256": json.dumps(meta.get("input_sha256", {}), sort_keys=True),
            "sketch_rel_error": float(REL_ERROR),
            "open_units": len(params.open_units),
        }
        if "input_paths" in meta:
            attrs["input_paths"] = json.dumps(meta["input_paths"], sort_keys=True)
        for key, v in meta.items():
            if key not in attrs and key not in ("versions", "input_sha256", "input_paths"):
                attrs[key] = v if isinstance(v, int | float) else str(v)
        ds = xr.Dataset(
            {
                "summary": (
                    ("segment", "metric", "stat"),
                    _summary_array(summary, nd, metrics, n_st),
                ),
                "cum_revenue": (("segment", "date", "quantile"), cum_q),
                "cum_revenue_mean": (("segment", "date"), cum_mean),
                "coverage": (("segment", "week", "quantile"), cov_q),
                "target": (("segment",), targets),
                "entered": (("segment", "stage", "quantile"), ent_q),
            },
            coords={
                "segment": segments,
                "metric": metrics,
                "stat": list(STATS),
                "quantile": QUANTILES,
                "date": dates.values,
                "week": weeks.values,
                "stage": stages,
            },
            attrs=attrs,
        )
        return cls(ds, _summary_frame(ds))

    def to_netcdf(self, path: str | Path) -> None:
        """Write ``forecast.nc`` (netCDF4 via h5netcdf)."""
        self.dataset.to_netcdf(path, engine="h5netcdf")

    def write(self, out_dir: str | Path, force: bool = False) -> Path:
        """Write ``out_dir/forecast.nc`` and ``out_dir/summary.csv`` atomically.

        An existing ``out_dir`` is kept (``InputError``) unless ``force``.
        """
        from simengine.io.atomic import atomic_dir

        out = Path(out_dir)
        with atomic_dir(out, force=force) as tmp:
            self.to_netcdf(tmp / "forecast.nc")
            self.summary.to_csv(tmp / "summary.csv", index=False, na_rep="nan")
            if self.deals is not None:
                self.deals.to_csv(tmp / "deals.csv", index=False, date_format="%Y-%m-%d")
                deals = xr.Dataset.from_dataframe(self.deals.rename_axis("deal"))
                deals.to_netcdf(tmp / "forecast.nc", group="deals", mode="a", engine="h5netcdf")
        return out

    @classmethod
    def read(cls, path: str | Path) -> Forecast:
        """Read a forecast directory (or a ``forecast.nc`` file)."""
        p = Path(path)
        nc = p / "forecast.nc" if p.is_dir() else p
        with xr.open_dataset(nc, engine="h5netcdf") as ds:
            loaded = ds.load()
        return cls(loaded, _summary_frame(loaded))

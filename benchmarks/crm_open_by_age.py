"""The deals open at a CRM backtest origin, by age: expected wins in the period vs realised.

For each posterior file (``<backtest out>/origins/<date>/posterior.nc``) the
deals open at its as-of date are grouped by age (days since engagement);
per group, the posterior mean over draws of the engine's closed form (a
deal open at age ``a`` converts with
``p S_F(a) / (p S_F(a) + (1 - p) ((1 - q) S_G(a) + q))``, ``q`` the
posterior's ``dormant`` share of non-converters (0 when absent), and is then won within the
period with ``(S_F(a) - S_F(a + H)) / S_F(a)``; lognormal ``F`` and ``G``
per cell) beside the number of those deals the export shows won in the
period ``as_of + 1 .. as_of + H``. It tells whether the open pipeline's
error comes from young deals or from old ones that never close. It also
prints, for the deals engaged in the period, the share ever won (by the
end of the file), the share won of those that closed, and the share of
their wins that fell inside the period (to compare with the model's ``p``).

Run from the repository root::

    .venv/bin/python benchmarks/crm_open_by_age.py OUT/origins/2017-07-31/posterior.nc ...

(reads ``../shared/data/crm-opportunities/sales_pipeline.csv``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import ndtr

from simengine.config.spec import load_spec
from simengine.io.records import load_records

__all__ = ["main"]

H = 91.0
EDGES = [0, 30, 60, 90, 120, 150, 10_000]


def _sf(x: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    return np.asarray(ndtr(-(x - mu) / sigma))


def main(paths: list[str]) -> None:
    """Print the by-age table of each posterior file."""
    spec = load_spec(Path("models/crm-opportunities.toml"))
    full = load_records(Path("../shared/data/crm-opportunities/sales_pipeline.csv"), spec)
    e = pd.to_datetime(full["opportunity_at"])
    won = pd.to_datetime(full["won_at"])
    close = won.fillna(pd.to_datetime(full["lost_at"]))
    for p in paths:
        post = xr.open_dataset(p, group="posterior", engine="h5netcdf").load()
        const = xr.open_dataset(p, group="constant_data", engine="h5netcdf").load()
        as_of = pd.Timestamp(post.attrs["simengine_as_of"])
        cells = [str(c) for c in post["cell"].values]

        def draws(v: str, post: xr.Dataset = post) -> np.ndarray:
            x = post[v].isel(step=0).stack(s=("chain", "draw"))
            return np.asarray(x.transpose("cell", "s").values)

        pc, mu, sg, lmu, lsg = (
            draws(v) for v in ("conversion", "delay_mu", "delay_sigma", "loss_mu", "loss_sigma")
        )
        ci = np.array([cells.index(str(c)) for c in const["open_cell"].values])
        age = np.maximum(const["open_age_days"].values.astype(np.float64), 0.5)
        la, lah = np.log(age)[:, None], np.log(age + H)[:, None]
        sfa, sfah = _sf(la, mu[ci], sg[ci]), _sf(lah, mu[ci], sg[ci])
        sga = _sf(la, lmu[ci], lsg[ci])
        q = draws("dormant")[ci] if "dormant" in post else 0.0
        conv = pc[ci] * sfa / (pc[ci] * sfa + (1.0 - pc[ci]) * ((1.0 - q) * sga + q))
        w_model = (conv * (sfa - sfah) / sfa).mean(axis=1)
        opn = (e <= as_of) & (close.isna() | (close > as_of))
        a_real = (as_of - e[opn]).dt.days.clip(lower=0.5).to_numpy()
        won_in = ((won[opn] > as_of) & (won[opn] <= as_of + pd.Timedelta(days=H))).to_numpy()
        m = pd.Series(w_model).groupby(pd.cut(age, EDGES)).agg(["size", "sum"])
        r = pd.Series(won_in.astype(int)).groupby(pd.cut(a_real, EDGES)).agg(["size", "sum"])
        table = pd.DataFrame(
            {
                "open_deals": m["size"],
                "wins_model": m["sum"].round(1),
                "open_deals_real": r["size"],
                "wins_real": r["sum"],
            }
        )
        table.index.name = "age_days"
        q_mean = float(post["dormant"].mean()) if "dormant" in post else 0.0
        print(
            f"== {p} (as of {as_of.date()}, mean conversion {pc.mean():.3f}, "
            f"mean dormant {q_mean:.3f})"
        )
        print(table.to_string())
        print(f"total: model {w_model.sum():,.1f}, realised {int(won_in.sum())}")
        # the deals engaged in the period: how many were ever won, of the closed, in it
        end = as_of + pd.Timedelta(days=H)
        new = (e > as_of) & (e <= end)
        n_won, n_lost = int(won[new].notna().sum()), int(close[new].notna().sum())
        n_lost -= n_won
        in_period = int(((won[new] > as_of) & (won[new] <= end)).sum())
        print(
            f"deals engaged in the period: {int(new.sum())}; ever won "
            f"{n_won / max(int(new.sum()), 1):.3f}, won of the closed "
            f"{n_won / max(n_won + n_lost, 1):.3f}, share of the wins inside the period "
            f"{in_period / max(n_won, 1):.3f}\n"
        )


if __name__ == "__main__":
    main(sys.argv[1:])

"""Turn a forecast (and its inputs) into a :class:`~simengine.history.store.SnapshotRecord`.

Used by ``simengine simulate --store``, ``simengine history add`` and
``simengine reforecast``. The open units are the ones the forecast started
from; their win probabilities are closed forms averaged over the posterior
draws, for units whose next step is the last one (the step into revenue):

* with a time to loss ``G`` (the fitted competing risk), a unit aged ``a``
  in its stage wins with ``p S_F(a) / (p S_F(a) + (1 - p) S_G(a))``;
  without it with ``p S_F(a) / (1 - p F(a))`` (the engine's law);
* it wins inside the period with that times ``(F(a + e + 1) - F(a + s)) /
  S_F(a)``, ``s..e`` the period's day offsets from the as-of date.

``F`` is the step's lognormal delay, ``p`` its conversion. Units further up
the funnel get NaN (several steps: no closed form is kept here).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from simengine.engine.forecast import Forecast
from simengine.history.store import OPEN_UNIT_COLUMNS, SnapshotRecord, plan_key
from simengine.params import FunnelParameters

__all__ = [
    "fan_at_end",
    "open_unit_table",
    "snapshot_from_forecast",
    "snapshot_id",
    "spec_identity",
    "win_probabilities",
]


def win_probabilities(
    params: FunnelParameters, start_off: int, end_off: int
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior-mean P(win) and P(win in the period) of each open unit (NaN if not closed form).

    Parameters
    ----------
    params : FunnelParameters
        Draws and open units (ages at ``params.as_of``).
    start_off, end_off : int
        First and last day of the period, counted from the as-of date.
    """
    from scipy.special import ndtr

    ou = params.open_units
    n = len(ou)
    p_win = np.full(n, np.nan)
    p_in = np.full(n, np.nan)
    last_step = len(params.stages) - 2
    idx = np.flatnonzero(ou.stage == last_step)
    if idx.size == 0:
        return p_win, p_in
    c = ou.cell[idx]
    a = ou.age_days[idx]
    p = params.conversion[:, c, last_step]  # (draw, unit)
    mu = params.delay_mu[:, c, last_step]
    sd = np.maximum(params.delay_sigma[:, c, last_step], 1e-12)

    def cdf(x: np.ndarray, m: np.ndarray, s: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            lx = np.log(np.maximum(x, 0.0))
        return np.where(x > 0, ndtr((lx - m) / s), 0.0)

    f_a = cdf(a[None, :], mu, sd)
    s_f = 1.0 - f_a
    if params.loss_mu is not None and params.loss_sigma is not None:
        lm = params.loss_mu[:, c, last_step]
        ls = np.maximum(params.loss_sigma[:, c, last_step], 1e-12)
        s_g = 1.0 - cdf(a[None, :], lm, ls)
        den = p * s_f + (1.0 - p) * s_g
    else:
        den = 1.0 - p * f_a
    with np.errstate(invalid="ignore", divide="ignore"):
        win = np.where(den > 0, p * s_f / den, 0.0)
        window = cdf(a[None, :] + end_off + 1, mu, sd) - cdf(a[None, :] + max(start_off, 0), mu, sd)
        inside = np.where(s_f > 0, win * window / s_f, 0.0)
    p_win[idx] = win.mean(axis=0)
    p_in[idx] = inside.mean(axis=0)
    return p_win, p_in


def open_unit_table(
    params: FunnelParameters,
    start: dt.date,
    end: dt.date,
    ids: list[str] | None = None,
) -> pd.DataFrame:
    """Tabulate the open units of a snapshot (columns as the store's ``open_units``).

    ``ids`` are the units' record ids in the order of ``params.open_units``
    (positional ids ``#0, #1, ...`` when unknown, as for a posterior file).
    """
    ou = params.open_units
    n = len(ou)
    so = (start - params.as_of).days
    eo = (end - params.as_of).days
    p_win, p_in = win_probabilities(params, so, eo)
    cells = np.asarray(params.cells, dtype=object)
    segs = np.asarray(params.segments, dtype=object)
    stages = np.asarray(params.stages, dtype=object)
    return pd.DataFrame(
        {
            "unit_id": list(ids) if ids is not None else [f"#{i}" for i in range(n)],
            "segment": segs[params.cell_segment[ou.cell]] if n else [],
            "cell": cells[ou.cell] if n else [],
            "stage": stages[ou.stage] if n else [],
            "age_days": ou.age_days.astype(float),
            "amount": ou.amount.astype(float),
            "p_win": p_win,
            "p_win_in_period": p_in,
        }
    )


def fan_at_end(fc: Forecast) -> pd.DataFrame:
    """Revenue quantiles at the period end: ``segment, quantile, value``."""
    ds = fc.dataset
    end = pd.Timestamp(ds.attrs["end"])
    at = ds["cum_revenue"].sel(date=end)
    rows = [
        (str(seg), float(q), float(at.sel(segment=seg, quantile=q)))
        for seg in ds["segment"].values
        for q in ds["quantile"].values
    ]
    return pd.DataFrame(rows, columns=["segment", "quantile", "value"])


def snapshot_id(
    key: str,
    as_of: dt.date,
    seed: int,
    paths: int,
    inputs: dict[str, str],
    data_sha256: str | None,
    posterior_sha256: str | None,
) -> str:
    """Return the id of a snapshot: a hash of its plan key, as-of date, seed, paths and inputs.

    The same forecast recorded twice gets the same id (and is kept once);
    the plan file's own hash is left out (it changes with its ``as_of``).
    """
    ident = json.dumps(
        {
            "plan": key,
            "as_of": as_of.isoformat(),
            "seed": int(seed),
            "paths": int(paths),
            "inputs": {k: v for k, v in inputs.items() if k != "plan"},
            "data": data_sha256,
            "posterior": posterior_sha256,
        },
        sort_keys=True,
    )
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


def snapshot_from_forecast(
    fc: Forecast,
    *,
    spec_sha256: str | None,
    data_sha256: str | None = None,
    posterior_sha256: str | None = None,
    converged: bool | None = None,
    open_units: pd.DataFrame | None = None,
    label: str = "",
) -> SnapshotRecord:
    """Build the snapshot record of a forecast (its id is a hash of what it forecast, and how).

    Parameters
    ----------
    fc : Forecast
        A forecast (``simulate``) or a whole-period forecast
        (:func:`~simengine.history.realised.simulate_to_date`, whose
        ``realised_to_date`` attribute is recorded).
    spec_sha256 : str or None
        Identifies the model: the posterior's spec hash, or for an
        assumptions file that file's hash. It is part of the plan key.
    """
    ds = fc.dataset
    attrs = ds.attrs
    segs = [str(s) for s in ds["segment"].values]
    targets = {s: float(ds["target"].sel(segment=s)) for s in segs if s != "total"}
    realised = json.loads(attrs.get("realised_to_date", "{}")) or dict.fromkeys(segs, 0.0)
    inputs = json.loads(attrs.get("input_sha256", "{}"))
    as_of = dt.date.fromisoformat(attrs["as_of"])
    start = dt.date.fromisoformat(attrs["start"])
    end = dt.date.fromisoformat(attrs["end"])
    key = plan_key(start, end, targets, spec_sha256)
    sid = snapshot_id(
        key, as_of, int(attrs["seed"]), int(attrs["paths"]), inputs, data_sha256, posterior_sha256
    )
    return SnapshotRecord(
        snapshot_id=sid,
        as_of=as_of,
        start=start,
        end=end,
        targets=targets,
        summary=fc.summary,
        fan_end=fan_at_end(fc),
        open_units=open_units if open_units is not None else _empty_units(),
        realised={k: float(v) for k, v in realised.items()},
        spec_sha256=spec_sha256,
        data_sha256=data_sha256,
        posterior_sha256=posterior_sha256 or inputs.get("posterior"),
        plan_sha256=inputs.get("plan"),
        seed=int(attrs["seed"]),
        paths=int(attrs["paths"]),
        converged=converged,
        source=str(attrs.get("source", "")),
        label=label,
    )


def _empty_units() -> pd.DataFrame:
    return pd.DataFrame(columns=list(OPEN_UNIT_COLUMNS))


def spec_identity(posterior: Path | None, inputs: dict[str, str]) -> tuple[str | None, bool | None]:
    """Return the model identity and convergence flag of a forecast's inputs.

    A posterior file gives its recorded spec hash and gate outcome; an
    assumptions-based forecast is identified by the assumptions (and
    pipeline spec) hashes.
    """
    if posterior is not None and posterior.exists():
        import xarray as xr

        try:
            with xr.open_dataset(posterior, group="posterior", engine="h5netcdf") as ds:
                a = dict(ds.attrs)
            conv = a.get("simengine_converged")
            return (
                str(a.get("simengine_spec_sha256") or inputs.get("posterior")),
                None if conv is None else str(conv).lower() in ("true", "1"),
            )
        except (OSError, ValueError):
            pass
    if "posterior" in inputs:
        return inputs["posterior"], None
    parts = [inputs.get(k, "") for k in ("assumptions", "model")]
    return "assumptions:" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:16], None

"""Reading what a report needs: the forecast, its parameters and planning files.

The forecast directory (``forecast.nc`` + ``summary.csv`` written by
``simengine simulate``) is the report's one required input. The parameters
behind it (a posterior file or an assumptions file, found through the paths
the engine records in ``forecast.nc`` attributes, or given explicitly) add
the funnel-need and conversion-rate sections; ``stress.csv`` and
``sensitivity.csv`` from the planning commands add theirs. Whatever is
missing is reported in the page, never guessed.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import xarray as xr

from simengine.errors import InputError, Issue
from simengine.io.provenance import file_sha256

__all__ = [
    "REQUIRED_VARIABLES",
    "ParameterSummary",
    "attr_date",
    "find_parameter_file",
    "forecast_nc_path",
    "parameters_from_funnel",
    "parameters_from_posterior",
    "read_deals",
    "read_forecast",
    "read_parameter_summary",
    "read_planning_tables",
]

FloatArray = npt.NDArray[np.float64]

#: forecast.nc variables the report and exports read, with their dims.
REQUIRED_VARIABLES: dict[str, tuple[str, ...]] = {
    "summary": ("segment", "metric", "stat"),
    "cum_revenue": ("segment", "date", "quantile"),
    "cum_revenue_mean": ("segment", "date"),
    "coverage": ("segment", "week", "quantile"),
    "target": ("segment",),
    "entered": ("segment", "stage", "quantile"),
}
_REQUIRED_ATTRS = ("start", "end", "as_of")


def forecast_nc_path(path: str | Path) -> Path:
    """Return the ``forecast.nc`` inside a forecast directory (or the file itself).

    Raises
    ------
    InputError
        If there is no such file.
    """
    p = Path(path)
    nc = p / "forecast.nc" if p.is_dir() else p
    if not nc.is_file():
        raise InputError.single(
            nc, "no forecast here; run `simengine simulate ... --out DIR` first"
        )
    return nc


def read_forecast(path: str | Path) -> xr.Dataset:
    """Read and check a forecast (directory or ``forecast.nc``) into memory.

    Parameters
    ----------
    path : str or Path
        A forecast directory or its ``forecast.nc``.

    Returns
    -------
    xarray.Dataset
        The loaded dataset (the file is closed).

    Raises
    ------
    InputError
        If the file is missing, unreadable, or lacks a variable, dimension or
        attribute of the forecast.nc contract (one issue per problem).
    """
    nc = forecast_nc_path(path)
    try:
        with xr.open_dataset(nc, engine="h5netcdf") as ds:
            loaded = ds.load()
    except (OSError, ValueError) as exc:
        raise InputError.single(nc, f"not a readable netCDF forecast: {exc}") from None
    issues: list[Issue] = []
    for name, dims in REQUIRED_VARIABLES.items():
        if name not in loaded:
            issues.append(Issue(str(nc), None, name, "", "required forecast variable is missing"))
        elif tuple(loaded[name].dims) != dims:
            issues.append(
                Issue(str(nc), None, name, str(tuple(loaded[name].dims)), f"must have dims {dims}")
            )
    for key in _REQUIRED_ATTRS:
        raw = loaded.attrs.get(key)
        try:
            dt.date.fromisoformat(str(raw))
        except ValueError:
            issues.append(
                Issue(str(nc), None, f"attrs.{key}", "" if raw is None else str(raw),
                      "must be an ISO date (YYYY-MM-DD)")
            )
    if not issues and "total" not in loaded["segment"].values:
        issues.append(Issue(str(nc), None, "segment", "", "must include the 'total' segment"))
    if issues:
        raise InputError(issues, summary=f"{nc} does not follow the forecast.nc contract")
    return loaded


def attr_date(ds: xr.Dataset, key: str) -> dt.date:
    """Return an ISO-date attribute of the forecast as a date."""
    return dt.date.fromisoformat(str(ds.attrs[key]))


@dataclass(frozen=True)
class ParameterSummary:
    """Parameter draws the report summarises, from a posterior or assumptions file.

    Parameters
    ----------
    path : Path
        The file they came from.
    source : str
        ``"posterior"`` or ``"assumptions"``.
    stages, cells : tuple of str
    conversion : ndarray, shape (draw, cell, step)
    deal_mean : ndarray, shape (draw, cell)
        Mean won-deal amount, ``exp(mu + sigma^2 / 2)``.
    arrival_rate : ndarray, shape (draw, cell, entry_stage)
        Mean new units per week, ``entry_stage = stages[:-1]``.
    raw_rates : dict of str to ndarray, shape (cell, step)
        Trailing raw step rates (``"4q"``, ``"13w"``) where the file has them.
    converged : bool or None
        The posterior's ``simengine_converged`` flag (``None`` if absent).
    """

    path: Path
    source: str
    stages: tuple[str, ...]
    cells: tuple[str, ...]
    conversion: FloatArray
    deal_mean: FloatArray
    arrival_rate: FloatArray
    raw_rates: dict[str, FloatArray] = field(default_factory=dict)
    converged: bool | None = None

    @property
    def cell_segment(self) -> tuple[str, ...]:
        """Reporting segment (first part of the label) of each cell."""
        return tuple(c.split("/")[0] for c in self.cells)


def _stack(da: xr.DataArray, dims: tuple[str, ...]) -> FloatArray:
    flat = da.stack(sample=("chain", "draw")).transpose("sample", *dims)
    return np.asarray(flat.values, dtype=np.float64)


def parameters_from_posterior(path: str | Path) -> ParameterSummary:
    """Read the draws the report needs from a posterior file (netCDF InferenceData).

    Raises
    ------
    InputError
        If a required variable or the ``simengine_stages`` attribute is missing.
    """
    p = Path(path)
    try:
        with xr.open_dataset(p, group="posterior", engine="h5netcdf") as post:
            post = post.load()
    except (OSError, ValueError) as exc:
        raise InputError.single(p, f"not a readable posterior file: {exc}") from None
    need = ("conversion", "deal_size_mu", "deal_size_sigma", "arrival_rate")
    missing = [v for v in need if v not in post]
    if missing or "simengine_stages" not in post.attrs:
        raise InputError(
            [Issue(str(p), None, v, "", "required posterior variable is missing") for v in missing]
            + ([] if "simengine_stages" in post.attrs
               else [Issue(str(p), None, "attrs.simengine_stages", "", "is required")]),
            summary=f"{p} is not a simengine posterior file",
        )
    stages = tuple(json.loads(post.attrs["simengine_stages"]))
    cells = tuple(str(c) for c in post["cell"].values)
    conv = _stack(post["conversion"].sel(step=list(stages[1:])), ("cell", "step"))
    mu = _stack(post["deal_size_mu"], ("cell",))
    sigma = _stack(post["deal_size_sigma"], ("cell",))
    rate_da = post["arrival_rate"]
    rate = np.zeros((conv.shape[0], len(cells), len(stages) - 1))
    present = [str(e) for e in rate_da["entry_stage"].values]
    sub = _stack(rate_da, ("cell", "entry_stage"))
    for j, e in enumerate(present):
        rate[:, :, stages.index(e)] = sub[:, :, j]
    raw: dict[str, FloatArray] = {}
    try:
        with xr.open_dataset(p, group="constant_data", engine="h5netcdf") as const:
            for key, var in (("4q", "raw_rate_4q"), ("13w", "raw_rate_13w")):
                if var in const:
                    da = const[var].sel(cell=list(cells), step=list(stages[1:]))
                    raw[key] = np.asarray(da.transpose("cell", "step").values, dtype=np.float64)
    except (OSError, ValueError, KeyError):
        raw = {}
    return ParameterSummary(
        path=p, source="posterior", stages=stages, cells=cells, conversion=conv,
        deal_mean=np.exp(mu + 0.5 * sigma**2), arrival_rate=rate, raw_rates=raw,
        converged={"true": True, "false": False}.get(str(post.attrs.get("simengine_converged"))),
    )


def parameters_from_funnel(params: Any, path: str | Path) -> ParameterSummary:
    """Summarise a :class:`~simengine.params.FunnelParameters` (e.g. from assumptions)."""
    return ParameterSummary(
        path=Path(path), source=str(params.source), stages=tuple(params.stages),
        cells=tuple(params.cells), conversion=np.asarray(params.conversion, dtype=np.float64),
        deal_mean=np.exp(params.deal_size_mu + 0.5 * params.deal_size_sigma**2),
        arrival_rate=np.asarray(params.arrival_rate, dtype=np.float64),
    )


def _json_attr(ds: xr.Dataset, key: str) -> dict[str, Any]:
    raw = ds.attrs.get(key)
    if raw is None:
        return {}
    try:
        val = json.loads(str(raw))
    except json.JSONDecodeError:
        return {}
    return val if isinstance(val, dict) else {}


def find_parameter_file(
    ds: xr.Dataset, forecast_dir: Path
) -> tuple[Path | None, str, str | None]:
    """Locate the posterior or assumptions file a forecast was simulated from.

    Looks at the paths the engine records (``input_paths`` JSON or
    ``posterior``/``assumptions`` attributes, and the keys of
    ``input_sha256``), resolved as given, then relative to the forecast
    directory. A file whose bytes no longer match the recorded hash is not
    used.

    Returns
    -------
    path : Path or None
        The file, or ``None`` if not found.
    kind : str
        ``"posterior"`` or ``"assumptions"`` (the forecast's ``source``).
    note : str or None
        Why nothing was found (shown in the report), else ``None``.
    """
    kind = str(ds.attrs.get("source", "posterior"))
    hashes = {str(k): str(v) for k, v in _json_attr(ds, "input_sha256").items()}
    paths = {str(k): str(v) for k, v in _json_attr(ds, "input_paths").items()}
    candidates: list[tuple[str, str | None]] = []
    for key in (kind, f"{kind}_path"):
        if key in paths:
            candidates.append((paths[key], hashes.get(key) or hashes.get(paths[key])))
        if key in ds.attrs:
            val = str(ds.attrs[key])
            candidates.append((val, hashes.get(key) or hashes.get(val)))
    for key, h in hashes.items():
        suffix = ".nc" if kind == "posterior" else ".toml"
        if key.endswith(suffix) and "plan" not in Path(key).name:
            candidates.append((key, h))
    if not candidates and len(hashes.get(kind, "")) == 64:
        # Only the hash is recorded (``simengine simulate``): look for the file
        # with exactly those bytes next to the forecast directory.
        found = _find_by_hash(hashes[kind], ".nc" if kind == "posterior" else ".toml",
                              [forecast_dir, forecast_dir.parent])
        if found is not None:
            return found, kind, None
        return None, kind, (
            f"the forecast records the {kind} file's hash but not its path, and no file with "
            f"those bytes is next to {forecast_dir}; pass it with "
            f"`simengine report DIR --{kind} PATH`"
        )
    if not candidates:
        return None, kind, (
            f"the forecast does not record where its {kind} file is; "
            f"pass it with `simengine report DIR --{kind} PATH`"
        )
    tried = []
    for raw, expected in candidates:
        for p in (Path(raw), forecast_dir / raw):
            if p.is_file():
                if expected and len(expected) == 64 and file_sha256(p) != expected:
                    tried.append(f"{p} (changed since the forecast)")
                    continue
                return p, kind, None
        tried.append(raw)
    return None, kind, f"{kind} file not found or changed: {', '.join(tried)}"


def _find_by_hash(sha: str, suffix: str, folders: list[Path]) -> Path | None:
    for folder in folders:
        for p in sorted(folder.glob(f"*{suffix}")):
            if p.name != "forecast.nc" and p.is_file() and file_sha256(p) == sha:
                return p
    return None


def read_parameter_summary(path: Path, kind: str, ds: xr.Dataset) -> ParameterSummary:
    """Read a posterior file, or an assumptions file through ``read_assumptions``."""
    if kind == "assumptions" or path.suffix == ".toml":
        from simengine.config.assumptions import read_assumptions

        params = read_assumptions(path, n_draws=1000, seed=int(ds.attrs.get("seed", 0)),
                                  as_of=attr_date(ds, "as_of"))
        return parameters_from_funnel(params, path)
    return parameters_from_posterior(path)


def read_deals(forecast_dir: Path) -> pd.DataFrame | None:
    """Read the per-deal outlook (``deals.csv`` beside ``forecast.nc``), if any.

    Raises
    ------
    InputError
        If the file lacks a column of :data:`simengine.engine.outlook.COLUMNS`.
    """
    from simengine.engine.outlook import COLUMNS

    f = forecast_dir / "deals.csv"
    if not f.is_file():
        return None
    df = pd.read_csv(f, dtype={"id": str, "segment": str, "cell": str, "stage": str},
                     parse_dates=["close_date_p50"], keep_default_na=False,
                     na_values={c: ["", "nan", "NaN"] for c in COLUMNS if c not in
                                ("id", "segment", "cell", "stage")})
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise InputError([Issue(str(f), None, c, "", "required deals.csv column is missing")
                          for c in missing], summary=f"{f} is not a deals table")
    df["amount_known"] = df["amount_known"].astype(str).str.lower().isin(("true", "1"))
    return df


def read_planning_tables(forecast_dir: Path) -> dict[str, pd.DataFrame]:
    """Read ``stress.csv`` / ``sensitivity.csv`` if present.

    Looked for in the forecast directory itself and in its ``stress/`` and
    ``sensitivity/`` subdirectories (where ``simengine stress --out DIR/stress``
    puts them).
    """
    out = {}
    for name in ("stress", "sensitivity"):
        for f in (forecast_dir / f"{name}.csv", forecast_dir / name / f"{name}.csv"):
            if f.is_file():
                out[name] = pd.read_csv(f)
                break
    return out

"""The posterior file: write, read and validate (a public contract).

A posterior file is an ArviZ ``InferenceData`` saved as netCDF with
``h5netcdf``. ``simengine fit`` writes one; users may also write their own.
Required (see docs/contracts.md, "The posterior file"):

* group ``posterior``, dims ``(chain, draw, ...)``: ``conversion(cell, step)``,
  ``delay_mu(cell, step)``, ``delay_sigma(cell, step)``,
  ``arrival_rate(cell, entry_stage)``, ``arrival_dispersion(cell, entry_stage)``,
  ``deal_size_mu(cell)``, ``deal_size_sigma(cell)``; optional
  ``arrival_trend(cell, entry_stage)`` (absent = 0), ``loss_mu``/``loss_sigma``
  ``(cell, step)``, ``dormant(cell, step)`` (with ``loss_*``; absent = 0),
  and the innovation scales of the drift ahead (absent = no drift ahead):
  ``conversion_drift_sd`` (no dims: per drift period, logit scale),
  ``conversion_cohort_sd`` (no dims: sd of a drift period's cohort effect,
  logit scale; absent = 0) and ``arrival_level_sd(entry_stage)`` (per
  week, log scale);
* ``posterior.attrs``: ``simengine_stages`` (JSON list) and
  ``simengine_as_of`` (ISO date); optional ``simengine_pipeline_stage``
  (default ``"opportunity"`` if a stage, else ``stages[-2]``),
  ``simengine_converged``, ``simengine_drift_period_days`` (days of a drift
  period; needed with ``conversion_drift_sd`` or ``conversion_cohort_sd``, else read from
  ``simengine_fit_settings``);
* optional group ``constant_data`` (dim ``unit``): ``open_cell``,
  ``open_stage``, ``open_age_days``, ``open_amount`` (the as-of open units);
  the ``unit`` coordinate holds the records' ids (strings; files with a
  numeric ``unit`` read, their units labelled ``unit-<k>``).

``simengine fit`` also writes ``constant_data.raw_rate_4q`` /
``raw_rate_13w`` (cell, step) and the attrs ``simengine_diagnostics`` (JSON:
per model part, max r_hat, min bulk/tail ESS, min BFMI, divergences,
failures) and ``simengine_fit_settings`` (JSON: sampler settings, drift
periods, arrival weeks, every prior scale).

:func:`read_parameters` turns a file into
:class:`~simengine.params.FunnelParameters` (draws = chain x draw flattened,
chain-major; ``entry_stage`` widened to every stage but the last, with zeros
where units do not enter). Every problem is an
:class:`~simengine.errors.InputError` naming the file, the variable (column)
and the rule.
"""

from __future__ import annotations

import datetime as dt
import json
import warnings
from pathlib import Path

import arviz as az
import numpy as np
import xarray as xr

from simengine.config.spec import CELL_SEP
from simengine.errors import InputError, Issue
from simengine.io.atomic import atomic_file
from simengine.params import FunnelParameters, OpenUnits

__all__ = [
    "OPTIONAL_VARS",
    "REQUIRED_ATTRS",
    "REQUIRED_VARS",
    "read_parameters",
    "read_posterior",
    "write_posterior",
]

REQUIRED_VARS: dict[str, tuple[str, ...]] = {
    "conversion": ("cell", "step"),
    "delay_mu": ("cell", "step"),
    "delay_sigma": ("cell", "step"),
    "arrival_rate": ("cell", "entry_stage"),
    "arrival_dispersion": ("cell", "entry_stage"),
    "deal_size_mu": ("cell",),
    "deal_size_sigma": ("cell",),
}
"""Posterior variables every file must hold, with their dims after (chain, draw)."""

OPTIONAL_VARS: dict[str, tuple[str, ...]] = {
    "arrival_trend": ("cell", "entry_stage"),
    "loss_mu": ("cell", "step"),
    "loss_sigma": ("cell", "step"),
    "dormant": ("cell", "step"),
    "conversion_drift_sd": (),
    "conversion_cohort_sd": (),
    "arrival_level_sd": ("entry_stage",),
}
"""Optional posterior variables: ``arrival_trend`` (absent = 0, flat); the
log-scale time to loss of a unit that does not convert, ``loss_mu`` and
``loss_sigma`` (both or neither; absent = non-converters are never lost, the
plain cure law ``p (1 - F(a)) / (1 - p F(a))`` for open units); ``dormant``,
the share of non-converters that stay open for good (needs ``loss_*``;
absent = 0); the drift ahead's innovation sds ``conversion_drift_sd`` (logit
rate, per drift period) and ``arrival_level_sd`` (log arrival level, per
week; absent = no drift ahead); ``conversion_cohort_sd``, the sd of the logit
offset shared by one step's units that enter in one drift period, drawn
afresh for each period ahead (absent = 0)."""

REQUIRED_ATTRS = ("simengine_stages", "simengine_as_of")
"""``posterior.attrs`` every file must carry."""

_NONNEG = ("dormant", "conversion_drift_sd", "conversion_cohort_sd", "arrival_level_sd")

_OPEN_VARS = ("open_cell", "open_stage", "open_age_days", "open_amount")


def write_posterior(idata: az.InferenceData, path: str | Path, *, force: bool = False) -> Path:
    """Write a posterior file atomically (nothing is left at ``path`` on failure).

    Parameters
    ----------
    idata : arviz.InferenceData
        In the posterior-file layout (as :func:`simengine.fitting.fit` returns).
    path : str or Path
        Output ``.nc`` file.
    force : bool
        Replace an existing file.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    InputError
        If ``path`` exists and not ``force``.
    """
    out = Path(path)
    with atomic_file(out, force=force) as tmp:
        idata.to_netcdf(str(tmp), engine="h5netcdf")
    return out


def read_posterior(path: str | Path) -> az.InferenceData:
    """Read and validate a posterior file.

    Parameters
    ----------
    path : str or Path
        The ``.nc`` file.

    Returns
    -------
    arviz.InferenceData

    Raises
    ------
    InputError
        If the file is missing or unreadable, or a required variable, dim or
        attribute is missing or malformed.
    """
    p = Path(path)
    f = str(p)
    if not p.is_file():
        raise InputError.single(f, "posterior file not found")
    try:
        idata = az.from_netcdf(f, engine="h5netcdf")
    except Exception as exc:  # any reader failure is a bad input file
        raise InputError.single(f, f"not a readable netCDF InferenceData file: {exc}") from None
    _validate(idata, f)
    return idata


def _validate(idata: az.InferenceData, f: str) -> None:
    issues: list[Issue] = []
    if "posterior" not in idata.groups():
        raise InputError.single(f, "missing group 'posterior'", column="posterior")
    post = idata["posterior"]
    for name in REQUIRED_ATTRS:
        if name not in post.attrs:
            issues.append(
                Issue(f, None, f"posterior.attrs.{name}", "", "required attribute missing")
            )
    stages: list[str] = []
    if "simengine_stages" in post.attrs:
        raw = post.attrs["simengine_stages"]
        try:
            stages = json.loads(raw) if isinstance(raw, str) else list(raw)
            ok = len(stages) >= 2 and all(isinstance(s, str) for s in stages)
        except (ValueError, TypeError):
            ok = False
        if not ok:
            issues.append(
                Issue(
                    f,
                    None,
                    "posterior.attrs.simengine_stages",
                    str(raw),
                    "must be a JSON list of at least two stage names",
                )
            )
            stages = []
    if "simengine_as_of" in post.attrs:
        try:
            dt.date.fromisoformat(str(post.attrs["simengine_as_of"]))
        except ValueError:
            issues.append(
                Issue(
                    f,
                    None,
                    "posterior.attrs.simengine_as_of",
                    str(post.attrs["simengine_as_of"]),
                    "must be an ISO date (YYYY-MM-DD)",
                )
            )
    for name, dims in {**REQUIRED_VARS, **OPTIONAL_VARS}.items():
        if name not in post:
            if name in REQUIRED_VARS:
                issues.append(Issue(f, None, f"posterior.{name}", "", "required variable missing"))
            continue
        want = ("chain", "draw", *dims)
        if tuple(post[name].dims) != want:
            issues.append(
                Issue(
                    f,
                    None,
                    f"posterior.{name}",
                    str(tuple(post[name].dims)),
                    f"must have dims {want}",
                )
            )
            continue
        vals = np.asarray(post[name].values, dtype=float)
        if not np.all(np.isfinite(vals)):
            issues.append(Issue(f, None, f"posterior.{name}", "nan/inf", "values must be finite"))
        elif name in _NONNEG and np.any(vals < 0):
            issues.append(Issue(f, None, f"posterior.{name}", str(vals.min()), "must be >= 0"))
        elif name == "dormant" and np.any(vals > 1):
            issues.append(Issue(f, None, f"posterior.{name}", str(vals.max()), "must be <= 1"))
    if "dormant" in post and "loss_mu" not in post:
        issues.append(
            Issue(f, None, "posterior.dormant", "", "needs loss_mu and loss_sigma (time to loss)")
        )
    for sd_name in ("conversion_drift_sd", "conversion_cohort_sd"):
        if sd_name in post and _drift_days(post.attrs) is None:
            issues.append(
                Issue(
                    f,
                    None,
                    "posterior.attrs.simengine_drift_period_days",
                    str(post.attrs.get("simengine_drift_period_days", "")),
                    f"a positive whole number of days is needed with {sd_name}",
                )
            )
            break
    for dim in ("cell", "step", "entry_stage"):
        if dim not in post.coords and dim in post.dims:
            issues.append(
                Issue(f, None, f"posterior.{dim}", "", "dimension needs coordinate labels")
            )
    if stages and "step" in post.coords:
        steps = [str(s) for s in post.coords["step"].values]
        if steps != stages[1:]:
            issues.append(
                Issue(
                    f,
                    None,
                    "posterior.step",
                    str(steps),
                    f"step labels must be the stages after the first: {stages[1:]}",
                )
            )
    if stages and "entry_stage" in post.coords:
        for e in (str(s) for s in post.coords["entry_stage"].values):
            if e not in stages[:-1]:
                issues.append(
                    Issue(
                        f,
                        None,
                        "posterior.entry_stage",
                        e,
                        f"entry stages must be among {stages[:-1]}",
                    )
                )
    if issues:
        raise InputError(issues, summary=f"invalid posterior file {f}")
    if "constant_data" in idata.groups():
        _validate_open(
            idata["constant_data"], f, stages, [str(c) for c in post.coords["cell"].values]
        )


def _validate_open(cd: xr.Dataset, f: str, stages: list[str], cells: list[str]) -> None:
    present = [v for v in _OPEN_VARS if v in cd]
    if not present:
        return
    issues: list[Issue] = []
    for v in _OPEN_VARS:
        if v not in cd:
            issues.append(
                Issue(f, None, f"constant_data.{v}", "", "required with the other open_* variables")
            )
        elif tuple(cd[v].dims) != ("unit",):
            issues.append(
                Issue(f, None, f"constant_data.{v}", str(cd[v].dims), "must have dims ('unit',)")
            )
    if issues:
        raise InputError(issues, summary=f"invalid posterior file {f}")
    # netCDF has no spreadsheet rows: the unit index is given with the value
    for i, c in enumerate(cd["open_cell"].values):
        if str(c) not in cells:
            issues.append(
                Issue(f, None, "constant_data.open_cell", f"unit {i}: {c}", "not a posterior cell")
            )
    for i, s in enumerate(cd["open_stage"].values):
        if str(s) not in stages[:-1]:
            issues.append(
                Issue(
                    f,
                    None,
                    "constant_data.open_stage",
                    f"unit {i}: {s}",
                    f"must be one of {stages[:-1]}",
                )
            )
    ages = np.asarray(cd["open_age_days"].values, float)
    for k in np.flatnonzero(~(ages >= 0)):
        issues.append(
            Issue(f, None, "constant_data.open_age_days", f"unit {k}: {ages[k]}", "must be >= 0")
        )
    if issues:
        raise InputError(issues[:200], summary=f"invalid posterior file {f}")


def _unit_ids(cd: xr.Dataset) -> tuple[str, ...] | None:
    """Return the open units' record ids: the ``unit`` coordinate when it holds strings.

    Files written before the ids were stored number their units 0, 1, ...;
    they give None (the outlook then labels them ``unit-<k>``).
    """
    if "unit" not in cd.coords:
        return None
    values = cd.coords["unit"].values
    if values.dtype.kind not in "OUS":
        return None
    return tuple(str(v) for v in values)


def _drift_days(attrs: dict[str, object]) -> int | None:
    """Days of a drift period: the attribute, else the fit settings' ``drift_period_days``."""
    raw: object = attrs.get("simengine_drift_period_days")
    if raw is None and "simengine_fit_settings" in attrs:
        try:
            raw = json.loads(str(attrs["simengine_fit_settings"])).get("drift_period_days")
        except (ValueError, AttributeError):
            raw = None
    try:
        days = int(str(raw))
    except ValueError:
        return None
    return days if days >= 1 else None


def _flat(da: xr.DataArray) -> np.ndarray:
    """Stack (chain, draw) into one chain-major draw axis."""
    arr = np.asarray(da.values, dtype=np.float64)
    return arr.reshape((arr.shape[0] * arr.shape[1], *arr.shape[2:]))


def read_parameters(path: str | Path) -> FunnelParameters:
    """Read a posterior file into :class:`~simengine.params.FunnelParameters`.

    Parameters
    ----------
    path : str or Path
        A posterior file (written by ``simengine fit`` or by hand).

    Returns
    -------
    FunnelParameters
        ``source="posterior"``; ``attrs`` holds the file's ``simengine_*``
        attributes.

    Raises
    ------
    InputError
        If the file breaks the contract.

    Warns
    -----
    UserWarning
        If the file is flagged ``simengine_converged = "false"``.
    """
    f = str(path)
    idata = read_posterior(path)
    post = idata["posterior"]
    attrs = {k: str(v) for k, v in post.attrs.items()}
    stages = tuple(json.loads(attrs["simengine_stages"]))
    as_of = dt.date.fromisoformat(attrs["simengine_as_of"])
    pipe = attrs.get("simengine_pipeline_stage") or (
        "opportunity" if "opportunity" in stages else stages[-2]
    )
    if pipe not in stages[:-1]:
        raise InputError.single(
            f,
            f"pipeline stage must be one of {list(stages[:-1])}",
            column="posterior.attrs.simengine_pipeline_stage",
            value=pipe,
        )
    cells = tuple(str(c) for c in post.coords["cell"].values)
    segments: list[str] = []
    for c in cells:
        s = c.split(CELL_SEP)[0]
        if s not in segments:
            segments.append(s)
    cell_segment = np.array([segments.index(c.split(CELL_SEP)[0]) for c in cells], np.int64)
    entry_file = [str(e) for e in post.coords["entry_stage"].values]
    n_draws = post.sizes["chain"] * post.sizes["draw"]
    n_entry = len(stages) - 1

    def widen(name: str) -> np.ndarray:
        out = np.zeros((n_draws, len(cells), n_entry))
        if name in post:
            vals = _flat(post[name])
            for k, e in enumerate(entry_file):
                out[:, :, stages.index(e)] = vals[:, :, k]
        return out

    level_sd = None
    if "arrival_level_sd" in post:
        level_sd = np.zeros((n_draws, n_entry))
        vals = _flat(post["arrival_level_sd"])
        for k, e in enumerate(entry_file):
            level_sd[:, stages.index(e)] = vals[:, k]

    open_units = OpenUnits.empty()
    if "constant_data" in idata.groups() and "open_cell" in idata["constant_data"]:
        cd = idata["constant_data"]
        open_units = OpenUnits(
            cell=np.array([cells.index(str(c)) for c in cd["open_cell"].values], np.int64),
            stage=np.array([stages.index(str(s)) for s in cd["open_stage"].values], np.int64),
            age_days=np.asarray(cd["open_age_days"].values, np.float64),
            amount=np.asarray(cd["open_amount"].values, np.float64),
            ids=_unit_ids(cd),
        )
    if attrs.get("simengine_converged", "true").lower() == "false":
        warnings.warn(
            f"{f}: this posterior missed the convergence gate (simengine_converged=false); "
            "its probabilities are not trustworthy",
            UserWarning,
            stacklevel=2,
        )
    has_loss = "loss_mu" in post and "loss_sigma" in post
    if ("loss_mu" in post) != ("loss_sigma" in post):
        raise InputError.single(
            f,
            "loss_mu and loss_sigma go together: give both or neither",
            column="posterior.loss_mu" if "loss_mu" not in post else "posterior.loss_sigma",
        )
    try:
        return FunnelParameters(
            stages=stages,
            cells=cells,
            segments=tuple(segments),
            cell_segment=cell_segment,
            pipeline_stage=stages.index(pipe),
            as_of=as_of,
            conversion=_flat(post["conversion"]),
            delay_mu=_flat(post["delay_mu"]),
            delay_sigma=_flat(post["delay_sigma"]),
            arrival_rate=widen("arrival_rate"),
            arrival_dispersion=widen("arrival_dispersion"),
            arrival_trend=widen("arrival_trend"),
            deal_size_mu=_flat(post["deal_size_mu"]),
            deal_size_sigma=_flat(post["deal_size_sigma"]),
            loss_mu=_flat(post["loss_mu"]) if has_loss else None,
            loss_sigma=_flat(post["loss_sigma"]) if has_loss else None,
            dormant=_flat(post["dormant"]) if "dormant" in post else None,
            conversion_drift_sd=(
                _flat(post["conversion_drift_sd"]) if "conversion_drift_sd" in post else None
            ),
            conversion_cohort_sd=(
                _flat(post["conversion_cohort_sd"]) if "conversion_cohort_sd" in post else None
            ),
            drift_period_days=_drift_days(post.attrs) or 91,
            arrival_level_sd=level_sd,
            open_units=open_units,
            source="posterior",
            attrs=attrs,
        )
    except ValueError as exc:
        raise InputError.single(f, f"posterior values break a rule: {exc}") from None

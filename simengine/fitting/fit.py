"""Fit orchestration: records → three PyMC models → one InferenceData.

:func:`fit` reduces the records to sufficient statistics
(:func:`~simengine.fitting.data.build_data`), samples the conversion/delay
cure model, the arrival model and the deal-size model (they share no
parameters, so they are fitted separately with the same chain and draw
counts), runs the convergence gate on each, and merges their posteriors
into the posterior-file layout (see :mod:`simengine.io.posterior`).

Defaults that converge without hand tuning: each model chooses which levels
are sampled centred from the data (see :mod:`simengine.fitting._pooling`),
and a part that misses the gate is sampled once more with the settings of
:func:`retry_settings` (longer tuning, a higher target acceptance, nutpie's
low-rank mass matrix). What was tried is recorded in the posterior's
``simengine_fit_attempts`` attr. Each part's posterior then gets a posterior
predictive check of the last quarter (:mod:`simengine.fitting.ppc`), recorded
in ``simengine_ppc``.

Seeds: the user's seed feeds a :class:`numpy.random.SeedSequence`; each model
part gets its own child seed (``conversion``, ``arrivals``, ``deal_size`` in
that order), so the same data and seed give bitwise the same draws.

Compiled models are reused: every model takes its data through ``pm.Data``,
and :func:`sample_model` gets nutpie's compilation from a process-level LRU
cache keyed by the model's graph (:mod:`simengine.fitting._compiled`), so a
refit of the same funnel structure (the next backtest origin, a warm refit)
only swaps the data in (``with_data``). A reused compilation samples bitwise
like a fresh one; :func:`compiled_cache_info` counts hits and misses.

BLAS runs on one thread while the sampler runs (:func:`single_threaded_blas`).
The compiled log densities call OpenBLAS (SciPy's, through Numba) for their
small matrix products. An OpenBLAS call wakes the library's own thread pool,
whose threads then busy-wait for the next call, so on a machine with as many
cores as chains the sampler's threads would compete with spinning BLAS
threads; one BLAS thread gives the same draws (the cost of each is in
docs/performance.md, from ``benchmarks/bench_fit.py --blas-threads``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import multiprocessing
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, fields

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr
from pydantic.dataclasses import dataclass as pydantic_dataclass
from threadpoolctl import threadpool_limits

from simengine._quiet import ignore_pytensor_blas_notice
from simengine.config.spec import MODEL_PARTS, FunnelSpec, ModelOptions
from simengine.config.tables import STRICT
from simengine.fitting import arrivals, conversion, deal_size, ppc
from simengine.fitting._compiled import CACHE, CacheInfo
from simengine.fitting.data import FunnelData, build_data, detect_left_truncation, first_exit
from simengine.fitting.diagnostics import GateResult, check_convergence, raise_if_failed
from simengine.fitting.priors import Priors, resolve_priors
from simengine.fitting.raw_rates import raw_rates
from simengine.io.provenance import package_versions

__all__ = [
    "PARTS",
    "CacheInfo",
    "FitSettings",
    "clear_compiled_cache",
    "compiled_cache_info",
    "fit",
    "fit_data",
    "part_seeds",
    "retry_settings",
    "sample_model",
    "settings_from_spec",
    "single_threaded_blas",
]

PARTS = MODEL_PARTS
"""Model parts, in seeding order."""

RAW_WINDOWS = {"raw_rate_4q": 364, "raw_rate_13w": 91}
"""Trailing raw-rate windows (days) stored in ``constant_data``."""


@pydantic_dataclass(frozen=True, config=STRICT)
class FitSettings(ModelOptions):
    """The settings of one fit: the spec's ``[model]`` options, with overrides.

    The fields and their defaults are those of
    :class:`~simengine.config.spec.ModelOptions` (one settings model, one
    set of defaults); this adds what the fit needs from them: the prior
    scales the ``priors`` overrides resolve to, and the JSON form a
    posterior file records. A setting of the fit that is no spec option
    would be a field here.
    """

    @property
    def prior_scales(self) -> Priors:
        """The default priors with the ``priors`` overrides applied."""
        return resolve_priors(self.priors)

    retry: bool = True
    """Sample a part that missed the gate once more with :func:`retry_settings`."""

    def as_json(self) -> dict[str, object]:
        """Return the settings as JSON values: what a posterior file records.

        Every field by name, the priors as the full dict of resolved scales,
        and an infinite number (``inf`` centring thresholds: never centred)
        as the string ``"inf"``, since JSON has no infinity. The posterior
        file's ``simengine_fit_settings`` holds this (plus the data's drift
        periods and arrival weeks), and a backtest compares it to decide
        whether an origin's posterior is reusable.
        """
        out: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "priors":
                value = self.prior_scales.as_dict()
            elif isinstance(value, float) and np.isinf(value):
                value = "inf"
            out[f.name] = value
        return out


def settings_from_spec(spec: FunnelSpec, **overrides: object) -> FitSettings:
    """Return the spec's ``[model]`` settings with non-``None`` overrides applied.

    Raises
    ------
    InputError
        If a ``[model.priors]`` name is unknown or its scale is not positive
        (naming the spec file).
    """
    resolve_priors(spec.options.priors, spec.path or "<spec>")
    given = {k: v for k, v in overrides.items() if v is not None}
    return FitSettings(**{**asdict(spec.options), **given})


RETRY_TUNE_FACTOR = 2
"""The retry tunes this many times longer than the first attempt."""

RETRY_TARGET_ACCEPT = 0.99
"""The retry's target acceptance, or halfway from the first attempt's to 1 if that is higher."""


def retry_settings(
    tune: int, target_accept: float, mass_matrix: str, sampler: str
) -> tuple[int, float, str]:
    """Return ``(tune, target_accept, mass_matrix)`` of the automatic retry.

    Longer tuning (:data:`RETRY_TUNE_FACTOR` times) lets the step size and
    mass matrix settle; a higher target acceptance (:data:`RETRY_TARGET_ACCEPT`,
    or halfway to 1 from a higher first setting) takes smaller steps through
    curved regions; nutpie's low-rank mass matrix adapts to correlated
    parameters (the PyMC sampler keeps its own).
    """
    ta = RETRY_TARGET_ACCEPT if target_accept < RETRY_TARGET_ACCEPT else (1 + target_accept) / 2
    mm = "low_rank" if sampler == "nutpie" else mass_matrix
    return RETRY_TUNE_FACTOR * tune, round(ta, 4), mm


def part_seeds(seed: int) -> dict[str, int]:
    """Derive one sampler seed per model part from the user's seed."""
    children = np.random.SeedSequence(seed).spawn(len(PARTS))
    return {p: int(c.generate_state(1, np.uint32)[0]) for p, c in zip(PARTS, children, strict=True)}


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Limit every loaded BLAS library to one thread inside the block.

    The samplers run one chain per thread; BLAS threads on top of them only
    busy-wait (see the module docstring). The previous limits are restored
    on exit.
    """
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def sample_model(
    model: pm.Model,
    *,
    draws: int,
    tune: int,
    chains: int,
    target_accept: float,
    seed: int,
    sampler: str = "nutpie",
    mass_matrix: str = "diag",
    progress: bool = False,
    reuse: bool = True,
    label: str = "",
) -> az.InferenceData:
    """Sample a PyMC model with nutpie or PyMC's NUTS; return posterior + sample_stats.

    Parameters
    ----------
    model : pymc.Model
        The model.
    draws, tune, chains : int
        Sampler settings.
    target_accept : float
        NUTS target acceptance.
    seed : int
        Sampler seed.
    sampler : str
        ``"nutpie"`` (chains on threads) or ``"pymc"``.
    mass_matrix : str
        ``"diag"`` or ``"low_rank"`` (nutpie only: its low-rank modified
        mass matrix).
    progress : bool
        Show the sampler's progress bar.
    reuse : bool
        nutpie only: take the compilation from the process's cache of compiled
        models (:func:`compiled_cache_info`) when one of the same graph is
        there; the draws are bitwise those of a fresh compilation.
    label : str
        Name of the model in the cache's log lines.

    Returns
    -------
    arviz.InferenceData
    """
    if mass_matrix not in ("diag", "low_rank"):
        raise ValueError(f"unknown mass_matrix {mass_matrix!r}; use 'diag' or 'low_rank'")
    if mass_matrix == "low_rank" and sampler != "nutpie":
        raise ValueError("mass_matrix 'low_rank' needs the nutpie sampler")
    if sampler not in ("nutpie", "pymc"):
        raise ValueError(f"unknown sampler {sampler!r}; use 'nutpie' or 'pymc'")
    compiled: object | None = None
    if sampler == "nutpie":
        import nutpie

        compiled = CACHE.get(model, label=label) if reuse else nutpie.compile_pymc_model(model)
    with single_threaded_blas():
        return _run_sampler(
            model,
            compiled,
            draws=draws,
            tune=tune,
            chains=chains,
            target_accept=target_accept,
            seed=seed,
            mass_matrix=mass_matrix,
            progress=progress,
        )


def _run_sampler(
    model: pm.Model,
    compiled: object | None,
    *,
    draws: int,
    tune: int,
    chains: int,
    target_accept: float,
    seed: int,
    mass_matrix: str,
    progress: bool,
) -> az.InferenceData:
    """Sample with nutpie (``compiled`` given) or PyMC's NUTS (``compiled`` None)."""
    if compiled is not None:
        import nutpie

        idata = nutpie.sample(
            compiled,
            draws=draws,
            tune=tune,
            chains=chains,
            seed=seed,
            target_accept=target_accept,
            progress_bar=progress,
            save_warmup=False,
            low_rank_modified_mass_matrix=mass_matrix == "low_rank",
        )
    else:
        with model:
            idata = pm.sample(
                draws=draws,
                tune=tune,
                chains=chains,
                cores=1,
                random_seed=seed,
                target_accept=target_accept,
                progressbar=progress,
                compute_convergence_checks=False,
                return_inferencedata=True,
            )
    return idata


def compiled_cache_info() -> CacheInfo:
    """Return the process's compiled-model cache counters (hits, misses, size, maxsize)."""
    return CACHE.info()


def clear_compiled_cache() -> None:
    """Drop the process's compiled models and reset the counters."""
    CACHE.clear()


def _free_names(model: pm.Model) -> list[str]:
    return [v.name for v in model.free_RVs]


_STATS = ("diverging", "energy", "step_size", "tree_depth", "depth", "n_steps", "lp", "logp")


def _stats(idata: az.InferenceData, prefix: str) -> xr.Dataset:
    ss = idata["sample_stats"]
    keep = [k for k in ss.data_vars if k in _STATS and set(ss[k].dims) == {"chain", "draw"}]
    out = ss[keep].reset_coords(drop=True)
    return out.rename({k: f"{prefix}{k}" for k in keep}) if prefix else out


@dataclass(frozen=True)
class _PartResult:
    """One part's posterior (file variables), sample stats, gate, attempts and check."""

    post: xr.Dataset
    stats: xr.Dataset
    gate: GateResult
    attempts: tuple[dict[str, object], ...]
    check: ppc.PpcResult


def _build_part(part: str, data: FunnelData, st: FitSettings) -> tuple[pm.Model, tuple[str, ...]]:
    """Return one part's PyMC model and the variables it puts in the posterior file."""
    if part == "conversion":
        return (
            conversion.build_model(
                data, st.prior_scales, centred_min_delays=st.delay_centred_min_delays
            ),
            conversion.OUTPUT_VARS,
        )
    if part == "arrivals":
        return (
            arrivals.build_model(data, st.prior_scales, trend=st.arrival_trend),
            arrivals.OUTPUT_VARS,
        )
    if part == "deal_size":
        return (
            deal_size.build_model(
                data, st.prior_scales, centred_min_deals=st.deal_size_centred_min_deals
            ),
            deal_size.OUTPUT_VARS,
        )
    raise ValueError(f"unknown model part {part!r}")


def _fit_part(
    part: str, data: FunnelData, st: FitSettings, seeds: dict[str, int], progress: bool
) -> _PartResult:
    """Build, sample, gate (retrying once) and check one part."""
    model, out_vars = _build_part(part, data, st)
    target_accept, mass_matrix = st.for_part(part)
    tune = st.tune
    attempts: list[dict[str, object]] = []
    while True:
        idata = sample_model(
            model,
            draws=st.draws,
            tune=tune,
            chains=st.chains,
            target_accept=target_accept,
            seed=seeds[part],
            sampler=st.sampler,
            mass_matrix=mass_matrix,
            progress=progress,
            label=part,
        )
        gate = check_convergence(idata, [*_free_names(model), *out_vars], part=part)
        attempts.append(
            {
                "tune": tune,
                "target_accept": target_accept,
                "mass_matrix": mass_matrix,
                "passed": gate.ok,
                "failures": list(gate.failures),
            }
        )
        if gate.ok or not st.retry or len(attempts) > 1:
            break
        tune, target_accept, mass_matrix = retry_settings(
            tune, target_accept, mass_matrix, st.sampler
        )
    post = idata["posterior"][list(out_vars)].reset_coords(drop=True)
    check = _check_part(part, model, idata, data, seeds[part])
    stats = _stats(idata, "" if part == "conversion" else f"{part}_")
    return _PartResult(post, stats, gate, tuple(attempts), check)


def _draws(idata: az.InferenceData, name: str) -> np.ndarray:
    """Return a posterior variable's draws with chain and draw stacked first."""
    x = np.asarray(idata["posterior"][name].values)
    return x.reshape(-1, *x.shape[2:])


def _check_part(
    part: str, model: pm.Model, idata: az.InferenceData, data: FunnelData, seed: int
) -> ppc.PpcResult:
    """Run the part's posterior predictive check of the last quarter (:mod:`~.ppc`)."""
    check_seed = int(np.random.SeedSequence([seed, 1]).generate_state(1, np.uint32)[0])
    if part == "conversion":
        return ppc.conversion_check(
            data,
            _draws(idata, "conversion_by_period"),
            _draws(idata, "delay_mu"),
            _draws(idata, "delay_sigma"),
            check_seed,
        )
    if part == "deal_size":
        return ppc.deal_size_check(
            data, _draws(idata, "deal_size_mu"), _draws(idata, "deal_size_sigma"), check_seed
        )
    return ppc.arrivals_check(data, _arrival_replicates(model, idata, data, check_seed))


def _arrival_replicates(
    model: pm.Model, idata: az.InferenceData, data: FunnelData, seed: int
) -> np.ndarray | None:
    """Posterior predictive replicates of the arrival model's weekly counts, or None.

    The model's one observed variable, of shape (pair, week) for the active
    pairs; ``None`` if the model has no such variable.
    """
    observed = list(model.observed_RVs)
    n_pairs = int(np.count_nonzero(data.arrival_active))
    if len(observed) != 1:
        return None
    # the predictive draws compile with PyTensor's C backend: its BLAS notice is
    # not actionable (see simengine._quiet)
    log = logging.getLogger("pymc")
    level = log.level
    with model, warnings.catch_warnings():
        ignore_pytensor_blas_notice()
        log.setLevel(logging.WARNING)  # not "Sampling: [...]" on the console
        try:
            pp = pm.sample_posterior_predictive(
                idata,
                var_names=[observed[0].name],
                random_seed=seed,
                progressbar=False,
                return_inferencedata=False,
            )
        finally:
            log.setLevel(level)
    rep = np.asarray(pp[observed[0].name])
    rep = rep.reshape(-1, *rep.shape[2:])
    if rep.ndim != 3 or rep.shape[1:] != (n_pairs, data.n_weeks):
        return None
    return rep


def _fit_parts(
    parts: tuple[str, ...],
    data: FunnelData,
    st: FitSettings,
    seeds: dict[str, int],
    progress: bool,
) -> dict[str, _PartResult]:
    """Fit ``parts`` one after the other (the second process of ``parallel_parts``)."""
    return {part: _fit_part(part, data, st, seeds, progress) for part in parts}


def fit_data(
    records: pd.DataFrame, spec: FunnelSpec, as_of: dt.date, settings: FitSettings
) -> FunnelData:
    """Return the sufficient statistics a fit with ``settings`` uses at ``as_of``.

    Parameters
    ----------
    records : pandas.DataFrame
        Canonical records (not modified).
    spec : FunnelSpec
        The funnel.
    as_of : datetime.date
        Data cut-off.
    settings : FitSettings
        Drift, arrival window and left truncation (``observed_from`` =
        :func:`~simengine.fitting.data.first_exit` at ``as_of`` when
        ``left_truncated`` is true, none when false, else
        :func:`~simengine.fitting.data.detect_left_truncation`).

    Returns
    -------
    FunnelData
    """
    st = settings
    if st.left_truncated is None:
        observed_from = detect_left_truncation(records, spec, as_of)
    else:
        observed_from = first_exit(records, spec, as_of) if st.left_truncated else None
    return build_data(
        records,
        spec,
        as_of,
        drift=st.drift,
        period_days=st.drift_period_days,
        history_weeks=st.arrival_history_weeks,
        observed_from=observed_from,
    )


def fit(
    records: pd.DataFrame,
    spec: FunnelSpec,
    as_of: dt.date,
    seed: int,
    *,
    settings: FitSettings | None = None,
    allow_unconverged: bool = False,
    progress: bool = False,
    data_sha256: str = "",
    on_part: Callable[[str], None] | None = None,
    parallel_parts: bool = False,
) -> az.InferenceData:
    """Fit the funnel models to records known at ``as_of``.

    Parameters
    ----------
    records : pandas.DataFrame
        Canonical records (not modified).
    spec : FunnelSpec
        The funnel.
    as_of : datetime.date
        Data cut-off.
    seed : int
        The user's seed; every sampler seed derives from it.
    settings : FitSettings, optional
        Default: :func:`settings_from_spec`.
    allow_unconverged : bool
        Return (flagged) instead of raising when the gate fails.
    progress : bool
        Show sampler progress.
    data_sha256 : str
        Hash of the data file (provenance).
    on_part : callable, optional
        Called with each part's name before it is sampled (CLI status).
    parallel_parts : bool
        Fit the arrival and deal-size parts in a second (spawned) process
        while this one fits the conversion part. The result is bitwise the
        same as the serial fit (each part has its own seed); it saves most of
        the smaller parts' compile time on a machine with a core to spare,
        but their compiled models are not kept in this process's cache (see
        :func:`compiled_cache_info`), so a loop of refits (a backtest)
        should fit serially.

    Returns
    -------
    arviz.InferenceData
        In the posterior-file layout (groups ``posterior``, ``sample_stats``,
        ``constant_data``; attrs on ``posterior``).

    Raises
    ------
    ConvergenceError
        If the gate fails and not ``allow_unconverged``.
    """
    st = settings or settings_from_spec(spec)
    data = fit_data(records, spec, as_of, st)
    seeds = part_seeds(seed)
    done: dict[str, _PartResult] = {}
    if parallel_parts:
        others = tuple(p for p in PARTS if p != "conversion")
        ctx = multiprocessing.get_context("spawn")
        quiet = ignore_pytensor_blas_notice
        with ProcessPoolExecutor(1, mp_context=ctx, initializer=quiet) as pool:
            future = pool.submit(_fit_parts, others, data, st, seeds, progress)
            if on_part is not None:
                on_part("conversion")
            done["conversion"] = _fit_part("conversion", data, st, seeds, progress)
            for part in others:
                if on_part is not None:
                    on_part(part)
            done.update(future.result())
    else:
        for part in PARTS:
            if on_part is not None:
                on_part(part)
            done[part] = _fit_part(part, data, st, seeds, progress)
    posts = [done[p].post for p in PARTS]
    stats = [done[p].stats for p in PARTS]
    gates = [done[p].gate for p in PARTS]
    converged = all(g.ok for g in gates)
    if not converged and not allow_unconverged:
        raise_if_failed(gates, tried=_tried(done))
    posterior = xr.merge(posts, compat="equals", join="exact")
    sample_stats = xr.merge(stats, join="exact")
    if not st.arrival_trend:
        posterior["arrival_trend"] = xr.zeros_like(posterior["arrival_trend"])
    posterior.attrs = _attrs(spec, data, seed, st, converged, gates, data_sha256)
    posterior.attrs["simengine_fit_attempts"] = json.dumps(
        {p: list(done[p].attempts) for p in PARTS}
    )
    posterior.attrs["simengine_ppc"] = json.dumps({p: done[p].check.as_json() for p in PARTS})
    idata_out = az.InferenceData(
        posterior=posterior,
        sample_stats=sample_stats,
        constant_data=_constant_data(records, spec, as_of, data),
    )
    return idata_out


def attempt_lines(attempts: dict[str, list[dict[str, object]]]) -> list[str]:
    """One line per part that needed the retry: what was tried and how it ended.

    Parameters
    ----------
    attempts : dict of str to list of dict
        The posterior's ``simengine_fit_attempts`` (parsed).

    Returns
    -------
    list of str
        Empty when every part passed at its first attempt.
    """
    lines = []
    for part, tries in attempts.items():
        if len(tries) < 2:
            continue
        first, last = tries[0], tries[-1]

        def how(a: dict[str, object]) -> str:
            mm = "low-rank" if a["mass_matrix"] == "low_rank" else "diagonal"
            return f"tune {a['tune']}, target_accept {a['target_accept']}, {mm} mass matrix"

        failures = list(first["failures"])  # type: ignore[call-overload]
        why = failures[0].split(": ", 1)[-1] + (
            f" (+{len(failures) - 1} more)" if len(failures) > 1 else ""
        )
        outcome = "passed" if last["passed"] else "missed the gate again"
        lines.append(
            f"{part}: missed the gate with {how(first)} ({why}); retried with {how(last)}: "
            f"{outcome}"
        )
    return lines


def _tried(done: dict[str, _PartResult]) -> list[str]:
    return attempt_lines({p: list(r.attempts) for p, r in done.items()})


def _constant_data(
    records: pd.DataFrame, spec: FunnelSpec, as_of: dt.date, data: FunnelData
) -> xr.Dataset:
    from simengine.snapshot import open_units

    ou = open_units(records, spec, as_of, data.cells)
    ds = xr.Dataset(
        {
            "open_cell": ("unit", np.array(data.cells, dtype=object)[ou.cell]),
            "open_stage": ("unit", np.array(spec.stages, dtype=object)[ou.stage]),
            "open_age_days": ("unit", ou.age_days),
            "open_amount": ("unit", ou.amount),
        },
        coords={
            # the records' ids, so the per-deal outlook shows the CRM's labels
            "unit": np.array(ou.ids if ou.ids is not None else [], dtype=str),
            "cell": list(data.cells),
            "step": list(data.steps),
        },
    )
    for name, days in RAW_WINDOWS.items():
        rr = raw_rates(records, spec, as_of, days, cells=data.cells)
        grid = rr.pivot(index="cell", columns="step", values="rate")
        grid = grid.reindex(index=list(data.cells), columns=list(data.steps))
        ds[name] = (("cell", "step"), grid.to_numpy(np.float64))
    return ds


def _attrs(
    spec: FunnelSpec,
    data: FunnelData,
    seed: int,
    st: FitSettings,
    converged: bool,
    gates: list[GateResult],
    data_sha256: str,
) -> dict[str, str]:
    diag = {
        g.part: {
            "max_rhat": g.worst_rhat,
            "min_ess_bulk": g.min_ess_bulk,
            "min_ess_tail": g.min_ess_tail,
            "min_bfmi": g.min_bfmi,
            "divergences": g.divergences,
            "failures": list(g.failures),
        }
        for g in gates
    }
    settings = {
        **st.as_json(),
        "n_drift_periods": data.n_periods,
        "arrival_weeks": data.n_weeks,
    }
    return {
        "simengine_stages": json.dumps(list(spec.stages)),
        "simengine_segment_by": json.dumps(list(spec.segment_by)),
        "simengine_pipeline_stage": spec.pipeline_stage,
        "simengine_as_of": data.as_of.isoformat(),
        "simengine_spec": spec.text,
        "simengine_spec_sha256": spec.sha256,
        "simengine_data_sha256": data_sha256,
        "simengine_seed": str(seed),
        "simengine_versions": json.dumps(package_versions()),
        "simengine_converged": "true" if converged else "false",
        "simengine_diagnostics": json.dumps(diag),
        "simengine_fit_settings": json.dumps(settings),
    }

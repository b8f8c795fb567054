"""Convergence gate: r_hat, bulk/tail ESS, divergences and BFMI.

A fit passes when, for every element of every checked parameter,
``r_hat <= 1.01``, bulk and tail ESS ``>= 400``, no transition diverged and
every chain's BFMI is ``>= 0.3``. Elements with zero posterior variance
(e.g. structural zeros such as the arrival rate of a cell that never sees
arrivals at a stage) are skipped: their diagnostics are undefined.
r_hat compares chains, so a single-chain fit cannot pass: the gate says
that r_hat needs at least two chains (and checks the rest).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import arviz as az
import numpy as np

from simengine.errors import ConvergenceError

__all__ = [
    "BFMI_MIN",
    "ESS_MIN",
    "RHAT_MAX",
    "GateResult",
    "check_convergence",
    "raise_if_failed",
]

RHAT_MAX = 1.01
ESS_MIN = 400.0
BFMI_MIN = 0.3

_ADVICE = (
    "Try more draws/tune (--draws, --tune or [model] draws/tune), "
    '[model] mass_matrix = "low_rank" (correlated parameters, e.g. with drift), '
    "a higher [model] target_accept (e.g. 0.95), or [model] drift = false; or pass "
    "--allow-unconverged to write the file flagged simengine_converged=false."
)


@dataclass(frozen=True)
class GateResult:
    """Outcome of the convergence gate for one model part.

    Parameters
    ----------
    part : str
        Model part (``conversion``, ``arrivals``, ``deal_size``).
    failures : tuple of str
        One line per failed check; empty when the gate passes.
    worst_rhat, min_ess_bulk, min_ess_tail, min_bfmi : float
        Summary numbers over the checked parameters.
    divergences : int
        Divergent transitions after tuning.
    """

    part: str
    failures: tuple[str, ...]
    worst_rhat: float
    min_ess_bulk: float
    min_ess_tail: float
    min_bfmi: float
    divergences: int

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        return not self.failures


def check_convergence(
    idata: az.InferenceData, var_names: Iterable[str], *, part: str = "model"
) -> GateResult:
    """Run the gate on ``var_names`` of ``idata`` (posterior + sample_stats).

    Parameters
    ----------
    idata : arviz.InferenceData
        Sampler output with ``posterior`` and ``sample_stats`` (``diverging``,
        ``energy``).
    var_names : iterable of str
        Parameters to check.
    part : str
        Name used in messages.

    Returns
    -------
    GateResult
    """
    names = list(var_names)
    post = idata["posterior"][names]
    sd = post.std(dim=("chain", "draw"))
    live = {k: sd[k] > 1e-12 * (1.0 + np.abs(post[k]).max()) for k in names}
    failures: list[str] = []
    # structural zeros (masked below) make 0/0 inside arviz: silence only that
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rhat = az.rhat(post)
        bulk = az.ess(post, method="bulk")
        tail = az.ess(post, method="tail")
    worst_rhat, min_bulk, min_tail = 1.0, np.inf, np.inf
    n_chains = int(post.sizes.get("chain", 1))
    if n_chains < 2:
        # split r_hat of one chain is all-NaN in arviz: not computable, so not passed
        worst_rhat = float("nan")
        failures.append(f"{part}: r_hat needs >= 2 chains (got {n_chains}); not checked")
    for k in names:
        mask = np.asarray(live[k].values, bool)
        if not mask.any():
            continue
        r = np.asarray(rhat[k].values, float)[mask]
        b = np.asarray(bulk[k].values, float)[mask]
        t = np.asarray(tail[k].values, float)[mask]
        if n_chains >= 2:
            bad_r = r[~np.isfinite(r)].size
            r_max = float(r[np.isfinite(r)].max()) if bad_r < r.size else float("inf")
            worst_rhat = max(worst_rhat, r_max)
            if bad_r or r_max > RHAT_MAX:
                failures.append(f"{part}: {k} r_hat {r_max:.3f} > {RHAT_MAX}")
        b_min = _finite_min(b)
        t_min = _finite_min(t)
        min_bulk = min(min_bulk, b_min)
        min_tail = min(min_tail, t_min)
        if b_min < ESS_MIN:
            failures.append(f"{part}: {k} bulk ESS {b_min:.0f} < {ESS_MIN:.0f}")
        if t_min < ESS_MIN:
            failures.append(f"{part}: {k} tail ESS {t_min:.0f} < {ESS_MIN:.0f}")
    stats = idata["sample_stats"]
    div = int(np.asarray(stats["diverging"].values).sum()) if "diverging" in stats else 0
    if div:
        failures.append(f"{part}: {div} divergent transition(s)")
    min_bfmi = float("nan")
    if "energy" in stats:
        energy = np.asarray(stats["energy"].values, float)
        bfmi = np.asarray(az.bfmi(energy), float)
        min_bfmi = float(bfmi.min())
        if min_bfmi < BFMI_MIN:
            failures.append(f"{part}: BFMI {min_bfmi:.2f} < {BFMI_MIN} (chain-wise minimum)")
    return GateResult(
        part=part,
        failures=tuple(failures),
        worst_rhat=worst_rhat,
        min_ess_bulk=float(min_bulk),
        min_ess_tail=float(min_tail),
        min_bfmi=min_bfmi,
        divergences=div,
    )


def _finite_min(x: np.ndarray) -> float:
    """Minimum of ``x``; 0 (a failure) if any element is not finite."""
    return float(x.min()) if np.all(np.isfinite(x)) else 0.0


def raise_if_failed(results: Iterable[GateResult], tried: Iterable[str] = ()) -> None:
    """Raise :class:`~simengine.errors.ConvergenceError` listing every failure.

    Parameters
    ----------
    results : iterable of GateResult
        Gate results of the model parts.
    tried : iterable of str
        Lines saying which sampler settings were already tried (the fit's
        automatic retry); included in the message.

    Raises
    ------
    ConvergenceError
        If any part failed; the message names the parameters and what to try.
    """
    failures = [f for r in results for f in r.failures]
    if failures:
        msg = "the fit missed the convergence gate:\n  " + "\n  ".join(failures) + "\n"
        done = list(tried)
        if done:
            msg += "Already tried:\n  " + "\n  ".join(done) + "\n"
        msg += _ADVICE
        raise ConvergenceError(msg, failures)

"""Engine vs NumPy reference: the one family of two-sample checks the engine tests share.

:func:`family_pvalues` compares two sets of paths (:class:`~simengine.engine.PathMetrics`,
engine ``a`` and reference ``b``, independent random numbers) on every output
the forecast reports:

* two-sample KS, on the total, of revenue, coverage at the period start, each
  revenue source (``revenue_from_open``, ``revenue_from_new_<entry_stage>``)
  and the day the target is reached (among paths that reach it);
* a chi-square two-sample test of the won-deal counts (bins pooled to >= 10
  paths, so every expected count is >= 5);
* two-sided z-tests of equal means (se ``sqrt(s1^2/n + s2^2/m)``), per
  segment and total, of every scalar metric (revenue, attainment, coverage,
  won deals, entered per stage, every source), of the coverage at every week
  end, of P(reach the target), and, on the total, of the cumulative revenue
  (the fan) at every 7th day to the horizon.

:func:`distribution_pvalues` adds two-sample tests of the whole law of the
outputs the family compares only by their means: a chi-square of every
``entered_<stage>`` count and a KS of the coverage at every week end, on the
total (for the thinned path model, whose counts and pipeline are drawn
differently from the per-unit model's).

A configuration gives 100-200 p-values. :func:`rejected` tests the family at
``ALPHA_FAMILY`` = 0.002 by Bonferroni (a check fails at ``p <= 0.002 / m``),
so the chance that a correct engine fails a configuration is at most 0.002
whatever the dependence between the checks (Holm would reject the family
exactly when Bonferroni does, so it gains nothing for this all-or-nothing
check). Metrics constant in both samples (e.g. a source with no units) are
compared exactly instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

from simengine.engine import PathMetrics
from simengine.engine.blocks import scalar_names

__all__ = [
    "ALPHA_FAMILY",
    "after_period_pvalues",
    "chi2_two_sample",
    "distribution_pvalues",
    "family_pvalues",
    "rejected",
    "z_pvalue",
]

ALPHA_FAMILY = 0.002
"""Family-wise error of one configuration's checks (Bonferroni over its p-values)."""


def chi2_two_sample(a: np.ndarray, b: np.ndarray) -> float:
    """P-value of a chi-square test that two integer samples have one law."""
    k = np.arange(int(max(a.max(), b.max())) + 1)
    ca = np.bincount(a.astype(int), minlength=k.size)
    cb = np.bincount(b.astype(int), minlength=k.size)
    # pool sparse bins from both tails so every expected count is >= 5
    table, acc = [], np.zeros(2)
    for x, y in zip(ca, cb, strict=True):
        acc += (x, y)
        if acc.sum() >= 10:
            table.append(acc.copy())
            acc[:] = 0
    if acc.sum():
        table[-1] += acc
    return float(stats.chi2_contingency(np.array(table).T).pvalue)


def z_pvalue(x: np.ndarray, y: np.ndarray) -> float | None:
    """Two-sided p-value of equal means (None when both samples are constant)."""
    se = np.sqrt(x.var() / x.size + y.var() / y.size)
    if se == 0:
        return None
    return float(2 * stats.norm.sf(abs(x.mean() - y.mean()) / se))


def _ks(x: np.ndarray, y: np.ndarray) -> float | None:
    if x.size == 0 or y.size == 0 or (np.all(x == x[0]) and np.all(y == x[0])):
        return None
    return float(stats.ks_2samp(x, y).pvalue)


def family_pvalues(
    a: PathMetrics,
    b: PathMetrics,
    n_segments: int,
    stages: Sequence[str] = ("mql", "sql", "opportunity", "won"),
) -> dict[str, float]:
    """Every check of one configuration, by name: engine paths ``a`` vs reference ``b``.

    Constant metrics (both samples constant) are compared exactly instead and
    raise AssertionError when they differ.
    """
    names = scalar_names(stages)
    assert a.scalars.shape[2] == b.scalars.shape[2] == len(names)
    tot = n_segments
    out: dict[str, float | None] = {
        "chi2 won deals": chi2_two_sample(a.scalars[:, tot, 3], b.scalars[:, tot, 3]),
    }
    for k, name in enumerate(names):
        if k in (0, 2) or name.startswith("revenue_from_"):
            out[f"ks {name}"] = _ks(a.scalars[:, tot, k], b.scalars[:, tot, k])
    ta, tb = a.time_to_target[:, tot], b.time_to_target[:, tot]
    out["ks time to target"] = _ks(ta[np.isfinite(ta)], tb[np.isfinite(tb)])
    for g in range(n_segments + 1):
        for k, name in enumerate(names):
            x, y = a.scalars[:, g, k], b.scalars[:, g, k]
            p = z_pvalue(x, y)
            if p is None:
                assert x.mean() == y.mean(), (g, name)
            out[f"mean g{g} {name}"] = p
        for w in range(a.week_coverage.shape[2]):
            out[f"mean g{g} coverage week {w}"] = z_pvalue(
                a.week_coverage[:, g, w], b.week_coverage[:, g, w]
            )
        out[f"P(hit) g{g}"] = z_pvalue(
            np.isfinite(a.time_to_target[:, g]), np.isfinite(b.time_to_target[:, g])
        )
    for i in range(6, a.cum_revenue.shape[2], 7):
        out[f"mean total cum revenue day {i}"] = z_pvalue(
            a.cum_revenue[:, tot, i], b.cum_revenue[:, tot, i]
        )
    return {k: float(v) for k, v in out.items() if v is not None}


def distribution_pvalues(
    a: PathMetrics,
    b: PathMetrics,
    n_segments: int,
    stages: Sequence[str] = ("mql", "sql", "opportunity", "won"),
) -> dict[str, float]:
    """Chi-square of each ``entered_<stage>`` count and KS of each week end's coverage (total).

    Counts constant in both samples are compared exactly instead (AssertionError).
    """
    names = scalar_names(stages)
    tot = n_segments
    out: dict[str, float | None] = {}
    for k, name in enumerate(names):
        if name.startswith("entered_"):
            x, y = a.scalars[:, tot, k], b.scalars[:, tot, k]
            if np.all(x == x[0]) and np.all(y == x[0]):
                continue
            out[f"chi2 {name}"] = chi2_two_sample(x, y)
    for w in range(a.week_coverage.shape[2]):
        out[f"ks coverage week {w}"] = _ks(a.week_coverage[:, tot, w], b.week_coverage[:, tot, w])
    return {k: float(v) for k, v in out.items() if v is not None}


def rejected(pvalues: dict[str, float], alpha: float = ALPHA_FAMILY) -> dict[str, float]:
    """The checks a Bonferroni test of the family at ``alpha`` rejects (empty: all agree)."""
    m = len(pvalues)
    return {k: p for k, p in pvalues.items() if p <= alpha / m}


def after_period_pvalues(a: PathMetrics, b: PathMetrics, after: int) -> dict[str, float]:
    """KS p-values of the after-the-period family (5 checks) on the total.

    ``after`` is the first day index (from the period start) after the
    period's end: the cumulative revenue at that day, midway to the horizon
    and at the horizon, the gain after the period, and the day the target is
    reached among the paths that reach it.
    """
    n_dates = a.cum_revenue.shape[2]
    out = {}
    for i in (after, (after + n_dates - 1) // 2, n_dates - 1):
        out[f"ks cum revenue day {i}"] = stats.ks_2samp(
            a.cum_revenue[:, -1, i], b.cum_revenue[:, -1, i]
        ).pvalue
    gain_a = a.cum_revenue[:, -1, -1] - a.cum_revenue[:, -1, after - 1]
    gain_b = b.cum_revenue[:, -1, -1] - b.cum_revenue[:, -1, after - 1]
    out["ks gain after the period"] = stats.ks_2samp(gain_a, gain_b).pvalue
    ta, tb = a.time_to_target[:, -1], b.time_to_target[:, -1]
    out["ks time to target"] = stats.ks_2samp(ta[np.isfinite(ta)], tb[np.isfinite(tb)]).pvalue
    return {k: float(v) for k, v in out.items()}

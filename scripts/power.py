"""Measure the size (alpha) and the power of the suite's statistical tests.

Each statistical test in ``tests/`` is run here on K seeds under its null
(the code as it is) and under the mutation it exists to catch, and the
rejection rates are printed: the empirical alpha and the power. Where a
test's null distribution is known exactly (binomial counts, uniform PITs,
uniform SBC ranks), the rate is computed from that distribution, by exact
sums or by Monte Carlo with many repetitions, instead of refitting; the
output says which.

Run (from the repository root)::

    nice -n 5 .venv/bin/python scripts/power.py --seeds 20

The table is quoted in docs/validation-tests.md. The heavy tests (recovery,
SBC, the synthetic backtest) fit PyMC models; this script does not refit them
K times (hours on a 2-core machine): their power comes from the test's
binomial/PIT/rank null and the mutation's effect on it, and each slow test
also applies its mutations to its own real fits or replications.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "engine")]


def _row(test: str, alpha: str, mutation: str, power: str, how: str) -> dict[str, str]:
    return {"test": test, "alpha": alpha, "mutation": mutation, "power": power, "how": how}


def engine_reference(k: int) -> list[dict[str, str]]:
    """tests/engine/test_reference.py: the family of ~90 checks, K seed pairs each."""
    from test_reference import (
        ALPHA_FAMILY,
        N,
        _configs,
        after_period_pvalues,
        family_pvalues,
        rejected,
    )

    from simengine.engine import prepare, run_paths
    from simengine.engine.reference import reference_paths

    def after(pr: object) -> int:
        return pr.end_off - pr.start_off + 1  # type: ignore[attr-defined]

    configs = list(_configs())
    params, plan = configs[0][1]
    pr = prepare(params, plan)
    shifted = params.with_arrays(conversion=params.conversion * np.array([1.0, 1.0, 0.9]))
    pr_shift = prepare(shifted, plan)
    with_loss, plan_loss = configs[2][1]
    pr_loss = prepare(with_loss, plan_loss)
    without = with_loss.with_arrays(loss_mu=None, loss_sigma=None)  # type: ignore[arg-type]
    pr_noloss = prepare(without, plan_loss)
    p1, plan1 = configs[1][1]
    pr1 = prepare(p1, plan1)
    pr1_low = prepare(p1.with_arrays(arrival_rate=p1.arrival_rate * 0.85), plan1)

    null = mut = null_loss = mut_loss = null_after = mut_after = 0
    m_checks = 0
    for s in range(k):
        sa, sb = 1000 + 2 * s, 1001 + 2 * s
        b = reference_paths(params, plan, N, seed=sb)
        pv = family_pvalues(run_paths(pr, 0, N, seed=sa), b, pr.n_segments)
        m_checks = len(pv)
        null += bool(rejected(pv))
        mut += bool(rejected(family_pvalues(run_paths(pr_shift, 0, N, seed=sa), b, pr.n_segments)))
        bl = reference_paths(without, plan_loss, N, seed=sb)
        null_loss += bool(
            rejected(family_pvalues(run_paths(pr_noloss, 0, N, seed=sa), bl, pr.n_segments))
        )
        mut_loss += bool(
            rejected(family_pvalues(run_paths(pr_loss, 0, N, seed=sa), bl, pr.n_segments))
        )
        b1 = reference_paths(p1, plan1, N, seed=sb)
        null_after += bool(
            rejected(after_period_pvalues(run_paths(pr1, 0, N, seed=sa), b1, after(pr1)))
        )
        mut_after += bool(
            rejected(after_period_pvalues(run_paths(pr1_low, 0, N, seed=sa), b1, after(pr1)))
        )
        print(f"  engine vs reference: seed pair {s + 1}/{k}", flush=True)
    a = f"{ALPHA_FAMILY} (Bonferroni, {m_checks} checks)"
    return [
        _row(
            "engine vs reference, demo-like family",
            a,
            "last-step conversion 10% lower",
            f"{mut}/{k}",
            f"size {null}/{k} seeds",
        ),
        _row(
            "engine vs reference, loss-law family",
            a,
            "loss law dropped in the engine",
            f"{mut_loss}/{k}",
            f"size {null_loss}/{k} seeds",
        ),
        _row(
            "engine vs reference, after the period (5 KS)",
            f"{ALPHA_FAMILY} (Bonferroni, 5 checks)",
            "post-period arrivals 15% lower",
            f"{mut_after}/{k}",
            f"size {null_after}/{k} seeds",
        ),
    ]


def recovery() -> list[dict[str, str]]:
    """tests/fitting/test_recovery.py: binomial size and power of the two-sided coverage band."""
    from fitting.test_recovery import LEVEL, SEEDS, coverage_band

    n = 28 * len(SEEDS)
    lo, hi = coverage_band(n)

    def reject(p: float) -> float:
        return float(stats.binom.cdf(lo - 1, n, p) + stats.binom.sf(hi, n, p))

    z = stats.norm.ppf((1 + LEVEL) / 2)
    cov = {
        "biased by 1 posterior sd": stats.norm.cdf(z - 1) - stats.norm.cdf(-z - 1),
        "intervals 2x too narrow": 2 * stats.norm.cdf(z / 2) - 1,
        "intervals 2x too wide": 2 * stats.norm.cdf(2 * z) - 1,
    }
    rows = [
        _row(
            f"recovery coverage ({n} checks, band [{lo}, {hi}])",
            f"{reject(LEVEL):.4f} (exact binomial)",
            f"{name} (coverage {c:.3f})",
            f"{reject(c):.3f}",
            "exact binomial, independent checks assumed",
        )
        for name, c in cov.items()
    ]
    rows.append(
        _row(
            "recovery shrinkage (median sd ratio < 0.3)",
            "~0 (posterior sd ratio ~0.1)",
            "fit returns its prior (ratio >= 1)",
            "1 (deterministic)",
            "the slow test applies all four mutations to its own fits",
        )
    )
    return rows


def synthetic(reps: int) -> list[dict[str, str]]:
    """tests/backtest/test_synthetic.py: segment PIT dispersion and the totals' normal score."""
    from backtest.test_synthetic import (
        SYNTH_ALPHA,
        SYNTH_SEEDS,
        dispersion_band,
        normal_score,
        normal_score_band,
    )

    rng = np.random.default_rng(2026)
    n_seg = 3 * SYNTH_SEEDS
    lo, hi = dispersion_band(n_seg, alpha=SYNTH_ALPHA / 2)
    z = rng.normal(size=(reps, n_seg))

    def rej_disp(p: np.ndarray) -> float:
        d = ((p - 0.5) ** 2).mean(axis=1)
        return float(np.mean((d < lo) | (d > hi)))

    t_lo, t_hi = normal_score_band(SYNTH_SEEDS, alpha=SYNTH_ALPHA / 2)
    zt = rng.normal(size=(reps, SYNTH_SEEDS))

    def rej_ns(p: np.ndarray) -> float:
        s = np.array([normal_score(row) for row in p])
        return float(np.mean((s < t_lo) | (s > t_hi)))

    def rej_ks(p: np.ndarray) -> float:
        ps = np.array([stats.kstest(row, "uniform").pvalue for row in p])
        return float(np.mean(ps <= SYNTH_ALPHA / 2))

    zk = rng.normal(size=(2000, 8))
    rows = []
    for name, f in (("forecast 2x too narrow", 2.0), ("forecast 2x too wide", 0.5)):
        rows.append(
            _row(
                f"synthetic backtest, segment PIT dispersion ({n_seg} PITs)",
                f"{rej_disp(stats.norm.cdf(z)):.4f} (MC, nominal {SYNTH_ALPHA / 2})",
                name,
                f"{rej_disp(stats.norm.cdf(f * z)):.3f}",
                f"MC {reps} sets, PIT = Phi(c Z), independent PITs assumed",
            )
        )
        rows.append(
            _row(
                f"synthetic backtest, normal score of {SYNTH_SEEDS} total PITs",
                f"{rej_ns(stats.norm.cdf(zt)):.4f} (MC, nominal {SYNTH_ALPHA / 2})",
                name,
                f"{rej_ns(stats.norm.cdf(f * zt)):.3f}",
                f"MC {reps} sets",
            )
        )
        rows.append(
            _row(
                "(replaced) KS of 8 total PITs",
                f"{rej_ks(stats.norm.cdf(zk)):.4f} (MC, nominal {SYNTH_ALPHA / 2})",
                name,
                f"{rej_ks(stats.norm.cdf(f * zk)):.3f}",
                "MC 2000 sets; the check before this change",
            )
        )
    return rows


def sbc(reps: int) -> list[dict[str, str]]:
    """tests/fitting/test_sbc.py: size of the Bonferroni chi-square threshold on uniform ranks."""
    from fitting.test_sbc import CHI2_CRIT, DEAL_CRIT, N_REPS, chi2_uniform

    rng = np.random.default_rng(7)
    rows = []
    for label, m, crit in (
        ("cure model, 20 quantities", 20, CHI2_CRIT),
        ("deal size, 4", 4, DEAL_CRIT),
    ):
        hits = 0
        for _ in range(reps):
            ranks = rng.integers(0, 100, size=(N_REPS, m))
            hits += bool((chi2_uniform(ranks) > crit).any())
        rows.append(
            _row(
                f"SBC {label} (crit {crit:.1f})",
                f"{hits / reps:.4f} (MC {reps} x {N_REPS} uniform ranks, nominal 0.01)",
                "see the test's printed chi-square under each mutation",
                "asserted in the test (30 replications)",
                "independent quantities assumed for the MC size",
            )
        )
    return rows


def small_checks() -> list[dict[str, str]]:
    """Fixed-tolerance checks: 4 SE two-sided, and the batch-means SE band."""
    rows = [
        _row(
            "4-SE z-checks (warm Wald identity, summary skill, open units, ...)",
            f"{2 * stats.norm.sf(4):.1e} each (two-sided normal)",
            "per test (e.g. the never-lost law for open units)",
            "asserted in the test",
            "closed form",
        )
    ]
    # stress: se_batch / se_binomial ~ sqrt(chi2_d / d), d = batches - 1, two-sided band
    from planning.test_stress import SE_ALPHA, SE_BATCHES, se_ratio_band

    d = SE_BATCHES - 1
    lo, hi = se_ratio_band()
    a = stats.chi2.cdf(d * lo**2, d) + stats.chi2.sf(d * hi**2, d)
    for name, c in (("batch SE 2x too large", 2.0), ("batch SE 2x too small", 0.5)):
        # the observed ratio is c * sqrt(chi2_d / d): outside [lo, hi] when ...
        power = stats.chi2.cdf(d * (lo / c) ** 2, d) + stats.chi2.sf(d * (hi / c) ** 2, d)
        rows.append(
            _row(
                f"stress: batch-means SE / binomial SE in [{lo:.2f}, {hi:.2f}] "
                f"({SE_BATCHES} batches)",
                f"{a:.4f} per segment ({SE_ALPHA} over 3, chi2_{d})",
                name,
                f"{power:.3f} per segment",
                "closed form",
            )
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run every measurement and print the table (markdown)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20, help="seed pairs per engine family")
    ap.add_argument("--mc", type=int, default=20_000, help="Monte Carlo sets for PIT tests")
    ap.add_argument("--sbc-mc", type=int, default=2_000, help="Monte Carlo SBC rank sets")
    ap.add_argument("--skip-engine", action="store_true", help="skip the engine runs")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    rows = []
    if not args.skip_engine:
        rows += engine_reference(args.seeds)
    rows += recovery()
    rows += synthetic(args.mc)
    rows += sbc(args.sbc_mc)
    rows += small_checks()
    print()
    print("| test | alpha | mutation | power | how |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['test']} | {r['alpha']} | {r['mutation']} | {r['power']} | {r['how']} |")
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

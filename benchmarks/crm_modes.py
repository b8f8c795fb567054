"""Competing-risk likelihood of the conversion part at 2017-04-30, pooled over cells, at two starts.

Same likelihood as simengine.fitting.conversion (wins: p f(t); losses: (1-p) g(t);
open at age a: p S_F(a) + (1-p) S_G(a)), one p per drift period, one lognormal
delay and one lognormal time to loss shared by the cells. Maximised from a
start in each of the two fits' modes: if both are local optima with close
log-likelihoods, the data at this origin do not tell them apart.

Run from the repository root: ``.venv/bin/python benchmarks/crm_modes.py``
(reads ``../shared/data/crm-opportunities/sales_pipeline.csv``).
"""

import datetime as dt
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from scipy.stats import norm

from simengine.config.spec import load_spec
from simengine.fitting.fit import fit_data, settings_from_spec
from simengine.io.records import load_records

spec = load_spec(Path("models/crm-opportunities.toml"))
rec = load_records(Path("../shared/data/crm-opportunities/sales_pipeline.csv"), spec)
d = fit_data(rec, spec, dt.date(2017, 4, 30), settings_from_spec(spec))
nc = d.n_converted[:, 0].sum(0).astype(float)
nl = d.n_lost[:, 0].sum(0).astype(float)
print("periods", d.n_periods, "won per period", nc, "lost per period", nl)
print(
    "delay_n",
    d.delay_n.sum(),
    "loss_n",
    d.loss_n.sum(),
    "open groups",
    d.open_count.size,
    "open units",
    d.open_count.sum(),
    "open age max",
    d.open_age.max(),
    "median win delay (geo mean) days",
    np.exp(d.delay_sum_log.sum() / d.delay_n.sum()),
    "loss geo mean days",
    np.exp(d.loss_sum_log.sum() / d.loss_n.sum()),
)
S1, S2, N = d.delay_sum_log.sum(), d.delay_sum_log2.sum(), d.delay_n.sum()
L1, L2, LN = d.loss_sum_log.sum(), d.loss_sum_log2.sum(), d.loss_n.sum()
la = np.log(d.open_age)
oc = d.open_count
op = d.open_period


def suff(n, s1, s2, mu, ls):
    return (
        -n * ls
        - 0.5 * n * np.log(2 * np.pi)
        - s1
        - (s2 - 2 * mu * s1 + n * mu**2) / (2 * np.exp(2 * ls))
    )


def nll(th):
    lp = th[: d.n_periods]
    mu, ls, lmu, lls = th[d.n_periods :]
    logp = -np.logaddexp(0, -lp)
    log1mp = -np.logaddexp(0, lp)
    ll = (nc * logp + nl * log1mp).sum() + suff(N, S1, S2, mu, ls) + suff(LN, L1, L2, lmu, lls)
    cw = logp[op] + norm.logsf(la, mu, np.exp(ls))
    cl = log1mp[op] + norm.logsf(la, lmu, np.exp(lls))
    return -(ll + (oc * np.logaddexp(cw, cl)).sum())


P = d.n_periods
for name, p, mu, s, lmu, ls in [
    ("A (fe7cedb-era: p .79, win 85 d sd 2.45, loss 5 d sd .88)", 0.79, 4.6, 2.45, 1.66, 0.88),
    ("B (main: p .26, win 6 d sd .88, loss 160 d sd 2.7)", 0.26, 1.8, 0.88, 5.08, 2.71),
]:
    th0 = np.r_[np.full(P, np.log(p / (1 - p))), mu, np.log(s), lmu, np.log(ls)]
    r = minimize(nll, th0, method="L-BFGS-B")
    lp = r.x[:P]
    mu_, ls_, lmu_, lls_ = r.x[P:]
    print(
        f"\nstart {name}\n  loglik at start {-nll(th0):,.1f}; "
        f"local max {-r.fun:,.2f} (converged {r.success})"
        f"\n  p per period {np.round(1 / (1 + np.exp(-lp)), 3)}, "
        f"win median {np.exp(mu_):.1f} d sd {np.exp(ls_):.2f},"
        f" loss median {np.exp(lmu_):.1f} d sd {np.exp(lls_):.2f}"
    )
    # ages of the units open at the as-of date (all, incl. those entered before the truncation)
    snap = d.snapshot
    age = np.maximum(snap["age_days"].to_numpy(float) if "age_days" in snap else np.array([]), 0.5)
    if age.size:
        pp = 1 / (1 + np.exp(-lp[-1]))
        sf = norm.sf(np.log(age), mu_, np.exp(ls_))
        sfh = norm.sf(np.log(age + 91), mu_, np.exp(ls_))
        sg = norm.sf(np.log(age), lmu_, np.exp(lls_))
        pc = pp * sf / (pp * sf + (1 - pp) * sg)
        print(
            f"  open units at as-of: {age.size}, "
            f"expected wins in the quarter {np.sum(pc * (sf - sfh) / sf):.0f}"
        )

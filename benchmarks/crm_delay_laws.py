"""Design study: which delay law and dormant share would the CRM export support?

A pooled (one cell, one step) maximum-likelihood fit of the cure model of
:mod:`simengine.fitting.conversion` and of candidate extensions, at each of
the six backtest origins, scored by closed forms against what the export
shows in the next 91 days:

* ``E[open won]``: expected wins in the period of the deals open at the
  origin (every open deal, also those engaged before the first recorded
  close), against the realised number;
* ``E[new won]``: expected wins in the period of the deals engaged in it,
  *given the realised engagement dates* (so the arrival model is out of the
  comparison), against the realised number.

Laws (``F`` time to win, ``G`` time to loss, ``p`` ever-won share, ``q``
dormant share of non-converters, which never leave):

* ``LN``: lognormal ``F`` and ``G``, no dormant share (the shipped fit);
* ``LN+q``: with a fitted dormant share;
* ``mixF+q``: ``F`` a two-component lognormal mixture (ordered medians);
* ``mixFG+q``: ``F`` and ``G`` both mixtures;
* ``cohort+q``: ``F`` and ``G`` mixtures whose slow-component share is per
  entry month (the export's delays are bimodal *by cohort month*).
* ``LNs+q``: lognormal ``F`` and ``G`` with one shared log-sd, and ``q``;
* ``LNc`` / ``LNc+q``: ``G`` = ``F`` (the outcome independent of the time
  to resolve), without and with ``q``;
* ``WB`` / ``WB+q``: Weibull ``F`` and ``G`` (a lighter tail), without and
  with ``q``;
* ``LN|KM``: lognormal, a share ``r`` of all units never leaves, ``r``
  fixed at :func:`km_plateau` (``p <= 1 - r``, ``q = r / (1 - p)``); the
  law the conversion fit now uses
  (:func:`simengine.fitting.data.never_leaving_share`);
* ``LN|qKM``: lognormal, ``q`` fixed at :func:`km_dormant`, ``p`` free.
* ``LN|KMt``: as ``LN|KM`` with ``r`` per drift period (91 days counted
  back from the origin, by entry date): :func:`km_plateau_by_period`; the
  deals engaged in the forecast period take the last period's ``r``.

``--laws`` and ``--origins`` (comma-separated) select a subset.

``--delayed-entry`` adds the deals engaged before the first recorded close
(left truncation, detected by
:func:`~simengine.fitting.data.detect_left_truncation`) with the delayed-entry
likelihood (each divided by its probability to be open at the first close);
without it they are left out, as the shipped fit does. This is a study of
the law's shape on this export, not a forecast: no pooling over cells, no
drift, point estimates.

Usage::

    .venv/bin/python benchmarks/crm_delay_laws.py [--delayed-entry] [--laws LN,LN|KM]
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize
from scipy.special import expit
from scipy.stats import norm

__all__ = ["main"]

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "crm-opportunities" / "sales_pipeline.csv"
SPEC = REPO / "models" / "crm-opportunities.toml"
ORIGINS = ["2017-04-30", "2017-05-31", "2017-06-30", "2017-07-31", "2017-08-31", "2017-09-30"]
PERIOD = 91.0
LAWS = (
    "LN",
    "LN+q",
    "mixF+q",
    "mixFG+q",
    "cohort+q",
    "LNs+q",
    "LNc",
    "LNc+q",
    "WB",
    "WB+q",
    "LN|KM",
    "LN|qKM",
    "LN|KMt",
)


def _lpdf(x: np.ndarray, mu: float, s: float) -> np.ndarray:
    return norm.logpdf((np.log(x) - mu) / s) - np.log(s) - np.log(x)


def _lsf(x: np.ndarray, mu: float, s: float) -> np.ndarray:
    return norm.logsf((np.log(x) - mu) / s)


def _weibull(theta: np.ndarray) -> Callable[[np.ndarray, bool], np.ndarray]:
    """Log density / log survival of a Weibull (log scale, log shape)."""
    lam, k = theta[0], np.exp(theta[1])

    def f(x: np.ndarray, dens: bool) -> np.ndarray:
        z = np.log(x) - lam
        h = np.exp(k * z)
        return np.log(k) - lam + (k - 1.0) * z - h if dens else -h

    return f


def _law(
    theta: np.ndarray, w_logit: np.ndarray | None, weibull: bool = False
) -> Callable[[np.ndarray, bool], np.ndarray]:
    """Log density / log survival of a lognormal (2 params) or mixture (4 + weight)."""
    if weibull:
        return _weibull(theta)
    if w_logit is None:
        mu, s = theta[0], np.exp(theta[1])
        return lambda x, dens: _lpdf(x, mu, s) if dens else _lsf(x, mu, s)
    mu1, s1 = theta[0], np.exp(theta[1])
    mu2, s2 = mu1 + np.exp(theta[2]), np.exp(theta[3])
    lw, l1w = -np.logaddexp(0, -w_logit), -np.logaddexp(0, w_logit)

    def f(x: np.ndarray, dens: bool) -> np.ndarray:
        g = _lpdf if dens else _lsf
        return np.logaddexp(l1w + g(x, mu1, s1), lw + g(x, mu2, s2))

    return f


def km_plateau(units: pd.DataFrame) -> float:
    """Product-limit share never closed, at the largest recorded closing age.

    All-cause Kaplan-Meier of the time to close with delayed entry (a unit
    seen from age ``a0`` on is at risk only from then): the nonparametric
    estimate of the never-resolving share (Maller and Zhou's cure-fraction
    estimate), read where the last closure was recorded.
    """
    closed = (units.state != "open").to_numpy()
    dur = units.dur.to_numpy(float)
    a0 = np.nan_to_num(units.a0.to_numpy(float), nan=0.0)
    times = np.unique(dur[closed])
    ev = np.searchsorted(times, dur[closed])
    d = np.bincount(ev, minlength=times.size).astype(float)
    # at risk at t: entered before t (a0 < t) and not yet out (dur >= t)
    n_in = np.searchsorted(np.sort(a0), times, side="left")
    n_out = np.searchsorted(np.sort(dur), times, side="left")
    at_risk = n_in - n_out
    return float(np.prod(1.0 - d / np.maximum(at_risk, 1)))


def km_plateau_by_period(units: pd.DataFrame, origin: pd.Timestamp) -> np.ndarray:
    """Per unit, the never-leaving share of its drift period (91 days back from ``origin``).

    Each period's plateau is the fit's estimate
    (:func:`simengine.fitting.data.never_leaving_share`) from that period's
    units alone, read at the largest leaving age of *all* units (so a recent
    period whose units are all younger shows none); a period without a
    plateau takes the nearest period's that has one (the later on a tie).
    """
    from simengine.fitting.data import never_leaving_share

    back = np.floor(((origin - units.e).dt.days.to_numpy(float)) / PERIOD).astype(np.int64)
    age = np.maximum(units.dur.to_numpy(float), 0.5)
    closed = (units.state != "open").to_numpy()
    a0 = np.nan_to_num(units.a0.to_numpy(float), nan=0.0)
    t_max = float(age[closed].max())
    found = np.full(int(back.max()) + 1, np.nan)
    for b in range(found.size):
        s = back == b
        r = never_leaving_share(age[s], closed[s], a0[s], t_max=t_max) if s.any() else 0.0
        found[b] = r if r > 0.0 else np.nan  # 0: no plateau shown (or a plateau at 0)
    known = np.flatnonzero(np.isfinite(found))
    if known.size == 0:
        return np.zeros(len(units))
    # nearest known period, ties to the later one (smaller back)
    near = known[np.argmin(np.abs(np.arange(found.size)[:, None] - known[None, :]), axis=1)]
    return found[near][back]


def km_dormant(units: pd.DataFrame) -> float:
    """Nonparametric dormant share of non-converters: ``S / (S + CIF_loss)`` at the last closure.

    ``S`` is the all-cause product-limit survival (delayed entry) and
    ``CIF_loss`` the Aalen-Johansen cumulative incidence of loss, both at the
    largest recorded closing age.
    """
    closed = (units.state != "open").to_numpy()
    lost = (units.state == "lost").to_numpy()
    dur = units.dur.to_numpy(float)
    a0 = np.nan_to_num(units.a0.to_numpy(float), nan=0.0)
    times = np.unique(dur[closed])
    ev = np.searchsorted(times, dur[closed])
    d = np.bincount(ev, minlength=times.size).astype(float)
    dl = np.bincount(np.searchsorted(times, dur[lost]), minlength=times.size).astype(float)
    at_risk = np.searchsorted(np.sort(a0), times, side="left") - np.searchsorted(
        np.sort(dur), times, side="left"
    )
    n = np.maximum(at_risk, 1)
    s = np.cumprod(1.0 - d / n)
    s_before = np.r_[1.0, s[:-1]]
    cif_loss = float(np.sum(s_before * dl / n))
    return float(s[-1] / (s[-1] + cif_loss))


def _fit(units: pd.DataFrame, law: str, months: np.ndarray) -> dict[str, object]:
    """MLE of one law on the units (columns dur, state, a0 (NaN: no delayed entry), month)."""
    won = (units.state == "won").to_numpy()
    lost = (units.state == "lost").to_numpy()
    opn = ~won & ~lost
    dur = units.dur.to_numpy(float)
    a0 = units.a0.to_numpy(float)
    de = ~np.isnan(a0)
    mi = np.searchsorted(months, units.month.to_numpy())
    mixf = law in ("mixF+q", "mixFG+q", "cohort+q")
    mixg = law in ("mixFG+q", "cohort+q")
    dorm = law not in ("LN", "WB", "LNc")
    per_unit = law == "LN|KMt"
    r_km: float | np.ndarray | None = km_plateau(units) if law == "LN|KM" else None
    if law == "LN|KMt":
        r_km = units.r_period.to_numpy(float)
    q_km = km_dormant(units) if law == "LN|qKM" else None
    wb = law.startswith("WB")
    shared = law == "LNs+q"
    common = law.startswith("LNc")
    n_m = len(months) if law == "cohort+q" else 1
    nf, ng = (4 if mixf else 2), (4 if mixg else 2)

    def unpack(x: np.ndarray) -> tuple:
        i = 0
        lp = x[i]
        i += 1
        if r_km is not None:
            # p = (1 - r) expit(x0); q = r / (1 - p): a share r of all units never leaves
            pp = (1.0 - r_km) * expit(lp)
            lp = np.log(pp / (1.0 - pp))
            qq = r_km / (1.0 - pp)
            lqk = np.log(qq / (1.0 - qq))
        th_f = x[i : i + nf]
        i += nf
        th_g = x[i : i + ng]
        i += ng
        lq = x[i] if dorm else -np.inf
        if r_km is not None:
            lq = lqk
        if q_km is not None:
            lq = np.log(q_km / (1.0 - q_km))
        i += 1
        w = x[i : i + n_m] if mixf else None
        return lp, th_f, th_g, lq, w

    def laws(x: np.ndarray, idx: np.ndarray) -> tuple:
        lp, th_f, th_g, lq, w = unpack(x)
        wu = None if w is None else (w[mi[idx]] if n_m > 1 else w[0])
        if shared:  # G takes F's log-sd (a common shape)
            th_g = np.r_[th_g[0], th_f[1]]
        if common:  # G is F (the outcome independent of the time to resolve)
            th_g = th_f
        return lp, _law(th_f, wu, wb), _law(th_g, wu if mixg else None, wb), lq

    def survival(lp: float, lq: float, sf: np.ndarray, sg: np.ndarray) -> np.ndarray:
        logp, log1p = -np.logaddexp(0, -lp), -np.logaddexp(0, lp)
        logq, log1q = (-np.logaddexp(0, -lq), -np.logaddexp(0, lq)) if dorm else (-np.inf, 0.0)
        return np.logaddexp(logp + sf, log1p + np.logaddexp(log1q + sg, logq))

    every = np.arange(len(dur))

    def nll(x: np.ndarray) -> float:
        lp, f, g, lq = laws(x, every)
        logp, log1p = -np.logaddexp(0, -lp), -np.logaddexp(0, lp)
        log1q = -np.logaddexp(0, lq) if dorm else 0.0
        if per_unit:  # per-unit r: per-unit p and q
            logp, log1p, log1q = logp[won], log1p[lost], log1q[lost]
        fd, gd = f(dur, True), g(dur, True)
        ll = np.sum(logp + fd[won]) + np.sum(log1p + log1q + gd[lost])
        ll += np.sum(survival(lp, lq, f(dur, False), g(dur, False))[opn])
        if de.any():
            ll -= np.sum(survival(lp, lq, f(a0, False), g(a0, False))[de])
        if n_m > 1:
            ll -= 0.5 * np.sum(unpack(x)[4] ** 2) / 4.0  # weak N(0, 2) on the cohort logits
        return -float(ll)

    mix0 = [np.log(10.0), np.log(0.5), np.log(2.0), np.log(0.3)]
    x0 = np.r_[0.0, mix0 if mixf else [3.0, 0.0], mix0 if mixg else [3.0, 0.0], -1.0, np.zeros(n_m)]
    if not mixf:
        x0 = x0[: 1 + nf + ng + 1]
    best = None
    for trial in range(3):
        jitter = np.random.default_rng(trial).normal(0, 0.3, x0.size) if trial else 0.0
        r = optimize.minimize(nll, x0 + jitter, method="L-BFGS-B")
        if best is None or r.fun < best.fun:
            best = r
    assert best is not None
    lp, _, _, lq, _ = unpack(best.x)
    xb = best.x.copy()
    if per_unit:
        # p and q of the units of the last period (the forecast's cohort)
        last = int(np.argmin((units.origin - units.e).to_numpy()))
        lp, lq = lp[last], lq[last]
    xb[0] = lp
    return {
        "x_raw": best.x,
        "x": xb,
        "nll": best.fun,
        "p": expit(lp),
        "q": expit(lq) if dorm else 0.0,
        "survival": survival,
    }


def _units(
    recs: pd.DataFrame, origin: pd.Timestamp, t0: pd.Timestamp | None, de: bool
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The fit's units at ``origin`` and every deal open there (for the closed forms)."""
    e = recs.opportunity_at
    close = recs.won_at.fillna(recs.lost_at)
    known = e <= origin
    closed = close.notna() & (close <= origin)
    state = np.where(closed & recs.won_at.notna(), "won", np.where(closed, "lost", "open"))
    dur = np.where(closed, (close - e).dt.days, (origin - e).dt.days).astype(float)
    df = pd.DataFrame(
        {"dur": np.maximum(dur, 0.5), "state": state, "month": e.dt.year * 12 + e.dt.month, "e": e}
    )[known.to_numpy()]
    df["a0"] = np.nan
    if t0 is not None:
        pre = df.e < t0
        if de:
            df.loc[pre, "a0"] = np.maximum((t0 - df.e[pre]).dt.days.astype(float), 0.5)
        else:
            df = df[~pre]
    open_all = pd.DataFrame({"age": np.maximum(dur, 0.5), "month": df_month(e)})[
        (known & ~closed).to_numpy()
    ]
    return df, open_all


def df_month(e: pd.Series) -> pd.Series:
    return e.dt.year * 12 + e.dt.month


def main(argv: list[str] | None = None) -> None:
    """Print the study's table (one row per origin and law)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--delayed-entry", action="store_true")
    ap.add_argument("--laws", default=",".join(LAWS), help="comma-separated subset of the laws")
    ap.add_argument("--origins", default=",".join(ORIGINS))
    args = ap.parse_args(argv)
    from simengine.config.spec import load_spec
    from simengine.fitting.data import detect_left_truncation
    from simengine.io.records import load_records

    spec = load_spec(SPEC)
    recs = load_records(args.data, spec)
    rows = []
    for o in args.origins.split(","):
        origin = pd.Timestamp(o)
        end = origin + pd.Timedelta(days=PERIOD)
        t0d = detect_left_truncation(recs, spec, dt.date.fromisoformat(o))
        t0 = None if t0d is None else pd.Timestamp(t0d)
        units, open_all = _units(recs, origin, t0, args.delayed_entry)
        units["origin"] = origin
        units["back"] = np.floor(((origin - units.e).dt.days.to_numpy(float)) / PERIOD).astype(int)
        units["r_period"] = km_plateau_by_period(units, origin)
        e, won_at = recs.opportunity_at, recs.won_at
        close = won_at.fillna(recs.lost_at)
        was_open = (e <= origin) & ~(close.notna() & (close <= origin))
        real_open = int((was_open & (won_at > origin) & (won_at <= end)).sum())
        new = (e > origin) & (e <= end)
        real_new = int((new & (won_at <= end)).sum())
        rem = np.maximum(((end - e[new]).dt.days + 0.5).to_numpy(float), 0.5)
        new_month = df_month(e[new]).to_numpy()
        months = np.unique(units.month.to_numpy())
        for law in args.laws.split(","):
            fit = _fit(units, law, months)
            x, surv = fit["x"], fit["survival"]
            lp, q = x[0], fit["q"]
            lp_new = lp
            lq = np.log(q / (1 - q)) if q > 0 else -np.inf
            if law == "LN|KMt":
                # open deals: the r of their own period (p, q per deal)
                back = np.floor(open_all.age.to_numpy(float) / PERIOD).astype(np.int64)
                r_per = units.assign(b=units.back).groupby("b").r_period.first()
                r_open = r_per.reindex(np.clip(back, 0, r_per.index.max())).ffill().to_numpy()
                po = (1.0 - r_open) * expit(fit["x_raw"][0])
                lp = np.log(po / (1.0 - po))
                qo = r_open / (1.0 - po)
                lq = np.log(qo / (1.0 - qo))
            # open deals of months the fit left out (engaged before the first
            # close, without --delayed-entry) take the nearest month's weight
            age = open_all.age.to_numpy(float)
            f_law, g_law = _fit_view(law, x, months, open_all.month.to_numpy())
            sf, sg, sfe = f_law(age, False), g_law(age, False), f_law(age + PERIOD, False)
            tot = surv(lp, lq, sf, sg)
            pc = np.exp(np.log(expit(lp)) + sf - tot)
            e_open = float(np.sum(pc * (1.0 - np.exp(sfe - sf))))
            last = np.full(new_month.size, months[-1])
            f_new, _ = _fit_view(law, x, months, last)
            e_new = float(np.sum(expit(lp_new) * (1.0 - np.exp(f_new(rem, False)))))
            rows.append(
                {
                    "origin": o,
                    "law": law,
                    "p": fit["p"],
                    "q": q,
                    "E_open_won": e_open,
                    "open_won": real_open,
                    "E_new_won": e_new,
                    "new_won": real_new,
                    "err_total_%": 100.0
                    * (e_open + e_new - real_open - real_new)
                    / (real_open + real_new),
                }
            )
    out = pd.DataFrame(rows)
    print(f"delayed entry of the pre-truncation deals: {args.delayed_entry}")
    print(
        out.to_string(
            index=False, float_format=lambda v: f"{v:,.3f}" if abs(v) < 2 else f"{v:,.0f}"
        )
    )
    print("\nmean |total error| % per law:")
    print(
        out.groupby("law", sort=False)["err_total_%"]
        .apply(lambda s: s.abs().mean())
        .to_string(float_format=lambda v: f"{v:.1f}")
    )


def _fit_view(law: str, x: np.ndarray, months: np.ndarray, unit_months: np.ndarray) -> tuple:
    """The fitted F and G laws evaluated for units of the given entry months."""
    mixf = law in ("mixF+q", "mixFG+q", "cohort+q")
    mixg = law in ("mixFG+q", "cohort+q")
    nf, ng = (4 if mixf else 2), (4 if mixg else 2)
    th_f, th_g = x[1 : 1 + nf], x[1 + nf : 1 + nf + ng]
    wb = law.startswith("WB")
    if law == "LNs+q":
        th_g = np.r_[th_g[0], th_f[1]]
    if law.startswith("LNc"):
        th_g = th_f
    if wb:
        return _law(th_f, None, True), _law(th_g, None, True)
    w_all = x[2 + nf + ng :] if mixf else None
    if w_all is None:
        w = None
    elif law == "cohort+q":
        w = w_all[np.clip(np.searchsorted(months, unit_months), 0, len(months) - 1)]
    else:
        w = w_all[0]
    return _law(th_f, w), _law(th_g, w if mixg else None)


if __name__ == "__main__":
    main()

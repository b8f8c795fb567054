"""Nanoseconds per draw of each simengine.engine._rng variate vs NumPy's Generator.

Each measurement is one call of a jitted loop drawing 10**6 variates and
summing them (so nothing is optimised away); the NumPy baseline is the same
loop calling ``numpy.random.Generator`` methods from Numba (PCG64 bit
generator), measured in the same run. With 10**6 draws per call, the time of a
call in milliseconds equals the cost per draw in nanoseconds. The script form
measures CPU time of the calling thread (``time.thread_time``), so other
processes on a shared machine inflate it much less than wall time.

Besides the public variates it times the alternatives the engine chooses
between: a lognormal from a table of stream states passed with its row (as
the kernels draw) against one through an array view of the row built per
call; the normal by inversion (``std_normal_inversion``, the previous
``std_normal``) against the ziggurat, a lognormal by inversion, and a
binomial as a sum of ``n`` Bernoulli uniforms (what the kernels did for
``n <= 64``) against :func:`binomial`.

Run with pytest-benchmark::

    .venv/bin/python -m pytest benchmarks/bench_rng.py --benchmark-only \
        --benchmark-columns=min,median,rounds --benchmark-sort=name

or as a script (prints a side-by-side table, min of 7 calls)::

    .venv/bin/python benchmarks/bench_rng.py [--quick]

:func:`ns_per_draw` is the one per-variate timing loop of the benchmarks:
``benchmarks/engine_report.py`` (``ns_per_draw`` of its report, the
random-draw bound) times its variates with it too.
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import numba
import numpy as np
import pytest

from simengine.engine import _rng as R
from simengine.engine._jit import JIT_OPTIONS

N_DRAWS = 1_000_000
KEY = R.root_seed(20270104)
LOG_TRUNC = 1.5  # default truncation point of the truncated lognormals: e**1.5
_OPTS = {**JIT_OPTIONS, "cache": False}  # closures over kind: compiled per run

# (name, kind code, float parameter a, float parameter b, int parameter n)
CASES = [
    ("next_u64", 0, 0.0, 0.0, 0),
    ("uniform", 1, 0.0, 0.0, 0),
    ("std_normal (ziggurat)", 2, 0.0, 0.0, 0),
    ("std_normal_inversion", 12, 0.0, 0.0, 0),
    ("std_exponential", 3, 0.0, 0.0, 0),
    ("normal(1,2)", 4, 1.0, 2.0, 0),
    ("lognormal(0,1) (ziggurat)", 5, 0.0, 1.0, 0),
    ("lognormal(0,1) by inversion", 13, 0.0, 1.0, 0),
    ("gamma(0.5)", 6, 0.5, 0.0, 0),
    ("gamma(3)", 6, 3.0, 0.0, 0),
    ("poisson(1)", 7, 1.0, 0.0, 0),
    ("poisson(5)", 7, 5.0, 0.0, 0),
    ("poisson(9.9)", 7, 9.9, 0.0, 0),
    ("poisson(10)", 7, 10.0, 0.0, 0),
    ("poisson(15)", 7, 15.0, 0.0, 0),
    ("poisson(25)", 7, 25.0, 0.0, 0),
    ("poisson(50)", 7, 50.0, 0.0, 0),
    ("binomial(1,0.3)", 8, 0.3, 0.0, 1),
    ("bernoulli_sum(1,0.3)", 14, 0.3, 0.0, 1),
    ("binomial(3,0.3)", 8, 0.3, 0.0, 3),
    ("bernoulli_sum(3,0.3)", 14, 0.3, 0.0, 3),
    ("binomial(10,0.3)", 8, 0.3, 0.0, 10),
    ("bernoulli_sum(10,0.3)", 14, 0.3, 0.0, 10),
    ("binomial(30,0.3)", 8, 0.3, 0.0, 30),
    ("bernoulli_sum(30,0.3)", 14, 0.3, 0.0, 30),
    ("binomial(30,0.5)", 8, 0.5, 0.0, 30),
    ("bernoulli_sum(30,0.5)", 14, 0.5, 0.0, 30),
    ("binomial(64,0.3)", 8, 0.3, 0.0, 64),
    ("bernoulli_sum(64,0.3)", 14, 0.3, 0.0, 64),
    ("binomial(1000,0.3)", 8, 0.3, 0.0, 1000),
    ("binomial(mixed n 1-30, p 0.05-0.6)", 8, 0.05, 0.6, -30),
    ("bernoulli_sum(mixed n 1-30, p 0.05-0.6)", 14, 0.05, 0.6, -30),
    ("poisson(mixed lam 1-40)", 7, 1.0, 40.0, -1),
    ("neg_binomial_mean(5,0.5)", 9, 5.0, 0.5, 0),
    ("lognormal_truncated_below(0,1,a=e^1.5)", 10, 0.0, 1.0, 0),
    ("lognormal_truncated_tail(0,1,a=e^1.5)", 15, 0.0, 1.0, 0),
    ("seed_stream+uniform", 11, 0.0, 0.0, 0),
    ("lognormal(0,1), table row view per draw", 16, 0.0, 1.0, 0),
    ("lognormal(0,1), table by row (kernels)", 17, 0.0, 1.0, 0),
]
NUMPY_KINDS = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 13}  # kinds with a Generator equivalent
NUMPY_EQUIV = {12: 2, 14: 8}  # alternatives timed against the same NumPy variate


def _make_ours(kind: int) -> Any:
    """Compile the timing loop of one variate.

    ``kind`` is a compile-time constant, so the loop holds only that variate's
    code (one loop over all kinds let the compiler optimise each case
    differently whenever a case was added).
    """

    @numba.njit(**_OPTS)
    def run(key, n_draws, a0, b0, n0, lt):  # pragma: no cover - compiled
        s = np.empty(4, np.uint64)
        R.seed_stream(key, 0, 0, s)
        tab = np.empty((3, 4), np.uint64)  # kinds 16 and 17: a table of three streams
        for r in range(3):
            R.seed_stream(key, 0, r, tab, r)
        acc = 0.0
        # Parameters are read from arrays (all equal) so that the compiler cannot hoist
        # per-call set-up work (exp(-lam), q**n, ...) out of the loop: in the engine the
        # parameters change from call to call.
        av = np.full(1024, a0)
        bv = np.full(1024, b0)
        nv = np.full(1024, n0)
        eav = np.full(1024, math.exp(lt))  # truncation point of kinds 10 and 15
        if n0 < 0:
            # "mixed" cases: n in 1..-n0 and a in [a0, b0), scrambled over the 1024 slots
            # (as in the kernels, where n and p change from call to call)
            j = np.arange(1024)
            nv = 1 + (j * 7919) % (-n0)
            av = a0 + (b0 - a0) * ((j * 104729) % 1024) / 1024.0
            bv = np.full(1024, 0.0)
        alpha0 = (lt - a0) / b0 if b0 > 0.0 else 0.0
        tail0 = R.ndtr(-alpha0)
        for i in range(n_draws):
            a = av[i & 1023]
            b = bv[i & 1023]
            n = nv[i & 1023]
            ea = eav[i & 1023]
            if kind == 0:
                acc += float(R.next_u64(s) >> np.uint64(11))
            elif kind == 1:
                acc += R.uniform(s)
            elif kind == 2:
                acc += R.std_normal(s)
            elif kind == 3:
                acc += R.std_exponential(s)
            elif kind == 4:
                acc += R.normal(s, a, b)
            elif kind == 5:
                acc += R.lognormal(s, a, b)
            elif kind == 6:
                acc += R.gamma(s, a)
            elif kind == 7:
                acc += R.poisson(s, a)
            elif kind == 8:
                acc += R.binomial(s, n, a)
            elif kind == 9:
                acc += R.neg_binomial_mean(s, a, b)
            elif kind == 10:
                acc += R.lognormal_truncated_below(s, a, b, ea)
            elif kind == 11:
                R.seed_stream(key, i, 3, s)
                acc += R.uniform(s)
            elif kind == 12:
                acc += R.std_normal_inversion(s)
            elif kind == 13:
                acc += math.exp(a + b * R.std_normal_inversion(s))
            elif kind == 15:
                # alpha and tail given (a kernel has them from its survival function)
                acc += R.lognormal_truncated_tail(s, a, b, ea, alpha0, tail0)
            elif kind == 16:
                # the kernels' old form: an array view of the stream's row per call
                acc += R.lognormal(tab[i % 3], a, b)
            elif kind == 17:
                # the kernels' form: the table and the row
                acc += R.lognormal(tab, a, b, i % 3)
            else:
                k = 0
                for _ in range(n):
                    k += R.uniform(s) < a
                acc += k
        return acc

    return run


def _make_numpy(kind: int) -> Any:
    """Compile the timing loop of one variate.

    ``kind`` is a compile-time constant, so the loop holds only that variate's
    code (one loop over all kinds let the compiler optimise each case
    differently whenever a case was added).
    """

    @numba.njit(**_OPTS)
    def run(gen, n_draws, a0, b0, n0):  # pragma: no cover - compiled
        acc = 0.0
        r = 0.0
        if kind == 9:
            r = 1.0 / b0
        av = np.full(1024, a0)
        bv = np.full(1024, b0)
        nv = np.full(1024, n0)
        if n0 < 0:
            j = np.arange(1024)
            nv = 1 + (j * 7919) % (-n0)
            av = a0 + (b0 - a0) * ((j * 104729) % 1024) / 1024.0
            bv = np.full(1024, 0.0)
        for i in range(n_draws):
            a = av[i & 1023]
            b = bv[i & 1023]
            n = nv[i & 1023]
            if kind == 0:
                acc += float(gen.integers(0, 9007199254740992))
            elif kind == 1:
                acc += gen.random()
            elif kind == 2:
                acc += gen.standard_normal()
            elif kind == 3:
                acc += gen.standard_exponential()
            elif kind == 4:
                acc += gen.normal(a, b)
            elif kind == 5 or kind == 13:
                acc += gen.lognormal(a, b)
            elif kind == 6:
                acc += gen.standard_gamma(a)
            elif kind == 7:
                acc += gen.poisson(a)
            elif kind == 8:
                acc += gen.binomial(n, a)
            else:
                acc += gen.negative_binomial(r, r / (r + a))
        return acc

    return run


_COMPILED: dict[tuple[str, int], Any] = {}


def ours(
    kind: int,
    key: np.uint64,
    n_draws: int,
    a: float,
    b: float,
    n: int,
    log_trunc: float = LOG_TRUNC,
) -> float:
    """Sum of ``n_draws`` simengine draws of variate ``kind``.

    ``log_trunc`` is the log of the truncation point of the truncated
    lognormals (kinds 10 and 15); other kinds ignore it.
    """
    if ("ours", kind) not in _COMPILED:
        _COMPILED["ours", kind] = _make_ours(kind)
    return float(_COMPILED["ours", kind](key, n_draws, a, b, n, log_trunc))


def numpy_gen(kind: int, gen: Any, n_draws: int, a: float, b: float, n: int) -> float:
    """Sum of ``n_draws`` NumPy Generator draws of variate ``kind``."""
    if ("numpy", kind) not in _COMPILED:
        _COMPILED["numpy", kind] = _make_numpy(kind)
    return float(_COMPILED["numpy", kind](gen, n_draws, a, b, n))


def _ids(cases: list[tuple[str, int, float, float, int]]) -> list[str]:
    return [c[0] for c in cases]


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_rng_simengine(benchmark, case):
    name, kind, a, b, n = case
    ours(kind, KEY, 10, a, b, n)  # compile / load from cache outside the timing
    benchmark.group = name
    benchmark.extra_info["draws_per_call"] = N_DRAWS
    result = benchmark.pedantic(
        ours, args=(kind, KEY, N_DRAWS, a, b, n), rounds=7, iterations=1, warmup_rounds=1
    )
    assert math.isfinite(result)


NP_CASES = [c for c in CASES if c[1] in NUMPY_KINDS and c[1] != 13]


@pytest.mark.parametrize("case", NP_CASES, ids=_ids(NP_CASES))
def test_rng_numpy_generator(benchmark, case):
    name, kind, a, b, n = case
    gen = np.random.default_rng(20270104)
    numpy_gen(kind, gen, 10, a, b, n)
    benchmark.group = name
    benchmark.extra_info["draws_per_call"] = N_DRAWS
    result = benchmark.pedantic(
        numpy_gen, args=(kind, gen, N_DRAWS, a, b, n), rounds=7, iterations=1, warmup_rounds=1
    )
    assert math.isfinite(result)


def ns_per_draw(
    kind: int,
    a: float = 0.0,
    b: float = 0.0,
    n: int = 0,
    *,
    generator: np.random.Generator | None = None,
    n_draws: int = N_DRAWS,
    repeats: int = 7,
    log_trunc: float = LOG_TRUNC,
) -> float:
    """CPU nanoseconds per draw of variate ``kind`` (a kind code of :data:`CASES`).

    The loop is compiled (or loaded) by a 10-draw call first; then the
    minimum over ``repeats`` calls of ``n_draws`` draws of the calling
    thread's CPU time (``time.thread_time``: other processes on a shared
    machine inflate it much less than wall time), divided by ``n_draws``.

    Parameters
    ----------
    kind : int
        Variate code, as in :data:`CASES` (e.g. 1 uniform, 5 lognormal, 8
        binomial).
    a, b, n : float, float, int
        The variate's parameters, as in :data:`CASES`.
    generator : numpy.random.Generator, optional
        Time NumPy's equivalent of ``kind`` on this generator instead of
        simengine's (``kind`` in :data:`NUMPY_KINDS`).
    n_draws : int
        Draws per timed call.
    repeats : int
        Timed calls; the fastest counts.
    log_trunc : float
        Log of the truncation point of the truncated lognormals (kinds 10
        and 15).

    Returns
    -------
    float
    """

    def call(m: int) -> float:
        if generator is None:
            return ours(kind, KEY, m, a, b, n, log_trunc)
        return numpy_gen(kind, generator, m, a, b, n)

    call(10)
    best = math.inf
    for _ in range(repeats):
        t0 = time.thread_time()
        call(n_draws)
        best = min(best, time.thread_time() - t0)
    return best / n_draws * 1e9


def main(argv: list[str] | None = None) -> None:
    """Print CPU ns/draw for simengine and NumPy's Generator side by side."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick",
        action="store_true",
        help="10**5 draws per call, 2 calls, a handful of variates (checks the script runs)",
    )
    args = ap.parse_args(argv)
    cases, n_draws, repeats = CASES, N_DRAWS, 7
    if args.quick:
        quick = {"uniform", "std_normal (ziggurat)", "binomial(10,0.3)", "poisson(15)"}
        cases, n_draws, repeats = [c for c in CASES if c[0] in quick], 100_000, 2
    gen = np.random.default_rng(20270104)
    print(f"{'variate':40s} {'simengine ns':>13s} {'numpy ns':>10s} {'ratio':>7s}")
    np_cache: dict[tuple[int, float, float, int], float] = {}
    for name, kind, a, b, n in cases:
        t_ours = ns_per_draw(kind, a, b, n, n_draws=n_draws, repeats=repeats)
        np_kind = NUMPY_EQUIV.get(kind, 5 if kind == 13 else kind)
        if np_kind in NUMPY_KINDS:
            key = (np_kind, a, b, n)
            if key not in np_cache:
                np_cache[key] = ns_per_draw(
                    np_kind, a, b, n, generator=gen, n_draws=n_draws, repeats=repeats
                )
            t_np = np_cache[key]
            print(f"{name:40s} {t_ours:13.1f} {t_np:10.1f} {t_ours / t_np:7.2f}")
        else:
            print(f"{name:40s} {t_ours:13.1f} {'-':>10s} {'-':>7s}")


if __name__ == "__main__":
    main()

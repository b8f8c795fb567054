"""Counter-based per-path random streams and exact variate generators (Numba).

Every random number of a simulation is drawn from a *stream* identified by
the triple ``(seed, path, stream)``: the 64-bit root key of the user's seed,
the global path index and a small stream id chosen by the kernel (one per
purpose, e.g. arrivals, conversions, delays). :func:`seed_stream` hashes the
triple into the 256-bit state of a fresh generator, so what path ``i`` sees
depends only on the triple -- never on the block, thread or worker that runs
it, nor on how many numbers other paths drew. This gives common random
numbers across scenarios (path ``i`` of two scenarios shares its uniforms) and
bitwise reproducibility whatever the layout.

Generator
---------
xoshiro256** (Blackman & Vigna 2018, "Scrambled linear pseudorandom number
generators"): 256-bit state, period 2**256 - 1, passes BigCrush and PractRand,
four 64-bit words so a state is a ``uint64[4]`` array mutated in place. The
only forbidden state is all zeros. States are seeded with SplitMix64 (Steele,
Lea & Flood 2014), the seeding procedure recommended by the xoshiro authors:

1. ``h = mix(mix(mix(seed + G) ^ path) + G * (stream + 1))`` where ``mix`` is
   SplitMix64's output function (a bijection of 64-bit words with full
   avalanche) and ``G = 0x9E3779B97F4A7C15``. For a fixed seed, ``mix(.. ^
   path)`` is a bijection of ``path``; two distinct (path, stream) pairs
   collide only with probability ~2**-64.
2. ``state[j] = mix(h + (j + 1) * G)`` for ``j = 0..3`` -- the first four
   outputs of a SplitMix64 generator seeded with ``h``. The four inputs are
   distinct and ``mix`` is a bijection, so at most one word can be zero: the
   state is never all zeros.

Different streams start at effectively random points of the 2**256 cycle; a
path uses at most millions of numbers per stream, so overlap probability is
below 2**-150.

State tables
------------
Every function that draws takes ``state`` and an optional last argument
``row``: ``state`` is either one generator state (``uint64[4]``, ``row``
ignored) or a table of states (``uint64[streams, 4]``) of which row ``row``
is used and advanced. The kernels keep all of a path's streams in one table
and pass the row: a row *view* (``states[k]``) built at every call costs
Numba an array struct and its reference count around a call that is not
inlined, more than a uniform (``benchmarks/bench_rng.py`` compares the two
forms; docs/performance.md). The two forms draw bitwise the same numbers
(tested).

Variates
--------
* :func:`uniform`: 53 random bits, ``k * 2**-53`` with ``k`` uniform on
  ``1 .. 2**53 - 1`` (``k == 0`` is redrawn, probability 2**-53), so the value
  lies in the open interval (0, 1) and the grid is symmetric about 1/2.
* :func:`std_normal`: 256-layer ziggurat (Marsaglia & Tsang 2000, in the
  one-word form of NumPy's ``random_standard_normal``): one 64-bit output gives
  the layer (8 bits), the sign (1 bit) and a 52-bit abscissa; 98.5 % of draws
  end there (a multiply, a table load and a compare). The rest take the wedge
  test (one uniform, one ``exp``) or, for the base layer, Marsaglia's (1964)
  exact exponential-rejection sampler for the tail beyond ``r = 3.654``. The
  law is exact up to the 2**-52 grid of the abscissa: the layers are built at
  import (:func:`ziggurat_tables`) from ``r`` and the common layer area ``v``,
  and close at the top to 3e-15 (tested). The number of words a draw uses is
  random but independent of any parameter, so ``normal(mu, sigma)`` and
  ``lognormal(mu, sigma)`` still give common random numbers across scenarios:
  draw ``j`` of a stream is ``mu + sigma * z_j`` with the same ``z_j``.
* :func:`std_normal_inversion`: ``ndtri(uniform)`` (one uniform per normal,
  monotone in the uniform). Exactly symmetric; support +-8.21 (N(0,1) mass
  beyond: 2.2e-16). Used where monotonicity in the uniform is needed: the
  truncated draws below are inversions of the conditional law.
* :func:`std_exponential`: ``-log(uniform)``.
* :func:`gamma`: Marsaglia & Tsang (2000) squeeze method for shape >= 1; for
  shape < 1 the boost ``gamma(shape + 1) * U**(1/shape)``.
* :func:`poisson`: inversion (sequential search from 0) for lam < 10, PTRS
  transformed rejection (Hörmann 1993) for lam >= 10; ``log k!`` from a table
  for k < 1024 (:data:`_LOG_FACT`), ``lgamma`` above.
* :func:`binomial`: by symmetry p <= 1/2; inversion (one uniform, sequential
  search from 0) for n p < 10, BTRS (Hörmann 1993) otherwise, with the same
  ``log k!`` table for its setup and acceptance test.
* :func:`neg_binomial_mean`: gamma-Poisson mixture.
* :func:`ndtri`: Wichura's AS241 (PPND16), ~1e-16 relative accuracy for
  min(p, 1-p) > 1e-300; :func:`ndtr` via ``math.erfc``.
* :func:`lognormal_truncated_below`: inversion of the upper tail
  ``Z = -ndtri(U * Q(alpha))`` with ``Q`` computed by ``erfc`` (no ``1 -
  CDF`` cancellation); beyond ``Q(alpha) < 1e-290`` (alpha > ~36) Robert's
  (1995) exact exponential-rejection sampler for the normal tail.
  :func:`lognormal_truncated_tail` is the same draw for a caller that already
  has ``alpha`` and the tail mass (saves a ``log`` and an ``erfc``).

Invalid parameters (NaN, negative rates/shapes) give ``NaN`` for float
variates and ``-1`` for integer ones; callers validate inputs before entering
kernels, these values only make a bug visible instead of looping forever.
"""

from __future__ import annotations

import math

import numpy as np
from numba.extending import overload

from simengine.engine._jit import jit

__all__ = [
    "binomial",
    "gamma",
    "lognormal",
    "lognormal_truncated_below",
    "lognormal_truncated_tail",
    "ndtr",
    "ndtri",
    "neg_binomial_mean",
    "next_u64",
    "normal",
    "poisson",
    "root_seed",
    "seed_stream",
    "std_exponential",
    "std_normal",
    "std_normal_inversion",
    "uniform",
    "ziggurat_tables",
]

# --------------------------------------------------------------------------- constants
# uint64 constants as module globals: numba freezes them as typed constants, so
# the bit arithmetic below stays in uint64 (an int literal would promote to float).
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_U1 = np.uint64(1)
_U2 = np.uint64(2)
_U3 = np.uint64(3)
_U4 = np.uint64(4)
_U5 = np.uint64(5)
_U7 = np.uint64(7)
_U9 = np.uint64(9)
_U11 = np.uint64(11)
_U17 = np.uint64(17)
_U19 = np.uint64(19)
_U27 = np.uint64(27)
_U30 = np.uint64(30)
_U31 = np.uint64(31)
_U45 = np.uint64(45)
_U57 = np.uint64(57)
_ZERO = np.uint64(0)
_TWO_M53 = 2.0**-53
_SQRT1_2 = 1.0 / math.sqrt(2.0)
_LOG_TAIL_MIN = 1e-290  # below this upper-tail mass, truncated sampling uses Robert (1995)
_U8 = np.uint64(8)
_U9_ = np.uint64(9)
_MASK8 = np.uint64(0xFF)
_MASK52 = np.uint64((1 << 52) - 1)
_ZIG_LAYERS = 256
_ZIG_R = 3.6541528853610088
"""Start of the ziggurat's tail (256 layers): the root of the closure equation, as in
Marsaglia & Tsang (2000) and NumPy; :func:`ziggurat_tables` checks the closure."""

# AS241 (Wichura 1988) coefficients, lowest degree first.
_A = (
    3.3871328727963666080e0,
    1.3314166789178437745e2,
    1.9715909503065514427e3,
    1.3731693765509461125e4,
    4.5921953931549871457e4,
    6.7265770927008700853e4,
    3.3430575583588128105e4,
    2.5090809287301226727e3,
)
_B = (
    1.0,
    4.2313330701600911252e1,
    6.8718700749205790830e2,
    5.3941960214247511077e3,
    2.1213794301586595867e4,
    3.9307895800092710610e4,
    2.8729085735721942674e4,
    5.2264952788528545610e3,
)
_C = (
    1.42343711074968357734e0,
    4.63033784615654529590e0,
    5.76949722146069140550e0,
    3.64784832476320460504e0,
    1.27045825245236838258e0,
    2.41780725177450611770e-1,
    2.27238449892691845833e-2,
    7.74545014278341407640e-4,
)
_D = (
    1.0,
    2.05319162663775882187e0,
    1.67638483018380384940e0,
    6.89767334985100004550e-1,
    1.48103976427480074590e-1,
    1.51986665636164571966e-2,
    5.47593808499534494600e-4,
    1.05075007164441684324e-9,
)
_E = (
    6.65790464350110377720e0,
    5.46378491116411436990e0,
    1.78482653991729133580e0,
    2.96560571828504891230e-1,
    2.65321895265761230930e-2,
    1.24266094738807843860e-3,
    2.71155556874348757815e-5,
    2.01033439929228813265e-7,
)
_F = (
    1.0,
    5.99832206555887937690e-1,
    1.36929880922735805310e-1,
    1.48753612908506148525e-2,
    7.86869131145613259100e-4,
    1.84631831751005468180e-5,
    1.42151175831644588870e-7,
    2.04426310338993978564e-15,
)


# --------------------------------------------------------------------------- ziggurat tables
def ziggurat_tables(
    r: float = _ZIG_R, layers: int = _ZIG_LAYERS
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Layers of the normal ziggurat for ``f(x) = exp(-x**2 / 2)`` (Marsaglia & Tsang 2000).

    With ``v = r f(r) + int_r^inf f`` (the common area of every layer) and
    ``x_0 = r``, ``f(x_k) = f(x_{k-1}) + v / x_{k-1}`` for ``k = 1 .. layers - 2``
    and ``x_{layers-1} = 0``: layer ``k >= 1`` is the rectangle ``[0, x_{k-1}] x
    [f(x_{k-1}), f(x_k)]``; layer 0 is ``[0, v / f(r)] x [0, f(r)]``, whose part
    beyond ``r`` stands for the tail. A draw picks a layer and ``x = u w_k``
    with ``u`` on the 2**-52 grid of [0, 1).

    Parameters
    ----------
    r : float
        Tail start; must make the layers close at the top (``f(x_{layers-2}) +
        v / x_{layers-2} == 1``).
    layers : int
        Number of layers (a power of two; the sampler uses 256).

    Returns
    -------
    k : numpy.ndarray
        uint64, ``floor(2**52 * x_k / w_k)``: abscissas (as 52-bit integers)
        below which a point of layer ``k`` is under the curve with no test.
    w : numpy.ndarray
        float64, ``w_k / 2**52`` (``w_0 = v / f(r)``, ``w_k = x_{k-1}``).
    f : numpy.ndarray
        float64, ``f(x_k)`` (``f[layers - 1] = 1``).
    closure : float
        ``f(x_{layers-2}) + v / x_{layers-2} - 1``: 0 up to rounding for the right ``r``.
    """
    x = np.empty(layers)
    fx = np.empty(layers)
    v = r * math.exp(-0.5 * r * r) + math.sqrt(math.pi / 2.0) * math.erfc(r / math.sqrt(2.0))
    x[0] = r
    fx[0] = math.exp(-0.5 * r * r)
    for k in range(1, layers - 1):
        fx[k] = fx[k - 1] + v / x[k - 1]
        x[k] = math.sqrt(-2.0 * math.log(fx[k]))
    closure = fx[layers - 2] + v / x[layers - 2] - 1.0
    x[layers - 1] = 0.0
    fx[layers - 1] = 1.0
    w = np.empty(layers)
    w[0] = v / fx[0]
    w[1:] = x[:-1]
    kk = np.floor(x / w * 2.0**52).astype(np.uint64)
    return kk, w * 2.0**-52, fx, float(closure)


_ZIG_K, _ZIG_W, _ZIG_F, _ZIG_CLOSURE = ziggurat_tables()
_ZIG_INV_R = 1.0 / _ZIG_R

_LOG_FACT_N = 1024
_LOG_FACT = np.array([math.lgamma(k + 1.0) for k in range(_LOG_FACT_N)])
"""``log k!`` for ``k < 1024`` (CPython's ``lgamma``, ~1e-15 relative): the rejection
tests of PTRS and BTRS look these up instead of calling ``lgamma`` (~10x the cost)."""

_RECIP = np.array([0.0] + [1.0 / k for k in range(1, 65)])
"""``1 / k`` for k = 1..64: the sequential searches multiply instead of dividing."""


# --------------------------------------------------------------------------- state words
def _word(state: np.ndarray, row: int, j: int) -> np.uint64:
    """Word ``j`` of a generator state: ``state[j]`` (one stream) or ``state[row, j]`` (a table)."""
    raise NotImplementedError("compiled only")  # pragma: no cover


def _set_word(state: np.ndarray, row: int, j: int, value: np.uint64) -> None:
    """Set word ``j`` of a generator state (see :func:`_word`)."""
    raise NotImplementedError("compiled only")  # pragma: no cover


@overload(_word, inline="always")
def _word_impl(state, row, j):  # pragma: no cover - typing
    if state.ndim == 1:
        return lambda state, row, j: state[j]
    return lambda state, row, j: state[row, j]


@overload(_set_word, inline="always")
def _set_word_impl(state, row, j, value):  # pragma: no cover
    if state.ndim == 1:

        def set1(state, row, j, value):
            state[j] = value

        return set1

    def set2(state, row, j, value):
        state[row, j] = value

    return set2


# --------------------------------------------------------------------------- seeding
def root_seed(seed: int) -> np.uint64:
    """Map a user's integer seed (any size >= 0) to the 64-bit root key of all streams.

    Uses ``np.random.SeedSequence(seed).generate_state(1, np.uint64)[0]``:
    SeedSequence hashes arbitrarily large non-negative integers with good
    avalanche, so nearby seeds (1, 2, 3, ...) give unrelated keys and seeds
    beyond 2**64 are not truncated.

    Parameters
    ----------
    seed : int
        Non-negative integer.

    Returns
    -------
    numpy.uint64
        The key passed to :func:`seed_stream`.

    Raises
    ------
    ValueError
        If ``seed`` is negative or not an integer.
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if int(seed) < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return np.uint64(np.random.SeedSequence(int(seed)).generate_state(1, np.uint64)[0])


@jit
def _mix64(z: np.uint64) -> np.uint64:  # pragma: no cover - compiled
    """SplitMix64 output function (a bijection of uint64 with full avalanche)."""
    z = (z ^ (z >> _U30)) * _MIX1
    z = (z ^ (z >> _U27)) * _MIX2
    return z ^ (z >> _U31)


@jit
def seed_stream(
    seed: np.uint64, path: int, stream: int, state: np.ndarray, row: int = 0
) -> None:  # pragma: no cover - compiled
    """Fill ``state`` (uint64[4]) with the generator state of stream (seed, path, stream).

    Parameters
    ----------
    seed : numpy.uint64
        Root key from :func:`root_seed`.
    path : int
        Global path index (>= 0).
    stream : int
        Stream id (>= 0), one per purpose within a path.
    state : numpy.ndarray
        ``uint64`` array of shape (4,), overwritten; or a table of states,
        shape (streams, 4), whose row ``row`` is overwritten.
    row : int
        Row of a state table (ignored for one state).
    """
    h = _mix64(np.uint64(seed) + _GOLDEN)
    h = _mix64(h ^ np.uint64(path))
    h = _mix64(h + _GOLDEN * (np.uint64(stream) + _U1))
    w0 = _mix64(h + _GOLDEN)
    w1 = _mix64(h + _GOLDEN * _U2)
    w2 = _mix64(h + _GOLDEN * _U3)
    w3 = _mix64(h + _GOLDEN * _U4)
    # Unreachable (the four words are images of distinct inputs under a
    # bijection, so at most one is zero); kept as a cheap guarantee.
    if w0 == _ZERO and w1 == _ZERO and w2 == _ZERO and w3 == _ZERO:
        w0 = _GOLDEN
    _set_word(state, row, 0, w0)
    _set_word(state, row, 1, w1)
    _set_word(state, row, 2, w2)
    _set_word(state, row, 3, w3)


# --------------------------------------------------------------------------- generator
@jit
def next_u64(state: np.ndarray, row: int = 0) -> np.uint64:  # pragma: no cover - compiled
    """Next 64-bit output of xoshiro256** (advances ``state`` in place)."""
    s0 = _word(state, row, 0)
    s1 = _word(state, row, 1)
    s2 = _word(state, row, 2)
    s3 = _word(state, row, 3)
    x = s1 * _U5
    result = ((x << _U7) | (x >> _U57)) * _U9
    t = s1 << _U17
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = (s3 << _U45) | (s3 >> _U19)
    _set_word(state, row, 0, s0)
    _set_word(state, row, 1, s1)
    _set_word(state, row, 2, s2)
    _set_word(state, row, 3, s3)
    return result


@jit
def uniform(state: np.ndarray, row: int = 0) -> float:  # pragma: no cover - compiled
    """Uniform on the open interval (0, 1) with 53 random bits."""
    while True:
        k = next_u64(state, row) >> _U11
        if k != _ZERO:
            return float(k) * _TWO_M53


# --------------------------------------------------------------------------- normal cdf / quantile
@jit
def ndtr(x: float) -> float:  # pragma: no cover - compiled
    """Return the standard normal CDF, ``erfc(-x / sqrt(2)) / 2`` (accurate in both tails)."""
    return 0.5 * math.erfc(-x * _SQRT1_2)


@jit
def _norm_sf(x: float) -> float:  # pragma: no cover - compiled
    """Return the standard normal upper tail ``P(Z > x)`` without cancellation."""
    return 0.5 * math.erfc(x * _SQRT1_2)


@jit
def _horner8(c: tuple[float, ...], r: float) -> float:  # pragma: no cover - compiled
    """Degree-7 polynomial with coefficients ``c`` (lowest first) at ``r``."""
    return (
        (((((c[7] * r + c[6]) * r + c[5]) * r + c[4]) * r + c[3]) * r + c[2]) * r + c[1]
    ) * r + c[0]


@jit
def ndtri(p: float) -> float:  # pragma: no cover - compiled
    """Inverse standard normal CDF (Wichura 1988, AS241 PPND16).

    Relative accuracy ~1e-16 for ``min(p, 1 - p) > 1e-300``. Returns ``-inf``
    at 0, ``inf`` at 1 and NaN outside [0, 1].
    """
    if not (p >= 0.0 and p <= 1.0):
        return math.nan
    if p == 0.0:
        return -math.inf
    if p == 1.0:
        return math.inf
    q = p - 0.5
    if abs(q) <= 0.425:
        r = 0.180625 - q * q
        return q * _horner8(_A, r) / _horner8(_B, r)
    # Tail: r = min(p, 1 - p); 1 - p is exact for p >= 0.5 (Sterbenz).
    r = p if q < 0.0 else 1.0 - p
    r = math.sqrt(-math.log(r))
    if r <= 5.0:
        r -= 1.6
        num = _horner8(_C, r)
        den = _horner8(_D, r)
    else:
        r -= 5.0
        num = _horner8(_E, r)
        den = _horner8(_F, r)
    val = num / den
    return -val if q < 0.0 else val


# --------------------------------------------------------------------------- continuous variates
@jit
def std_normal_inversion(state: np.ndarray, row: int = 0) -> float:  # pragma: no cover - compiled
    """Draw a standard normal by inversion of one uniform, ``ndtri(U)`` (monotone in ``U``)."""
    return ndtri(uniform(state, row))


@jit
def std_normal(state: np.ndarray, row: int = 0) -> float:  # pragma: no cover - compiled
    """Draw a standard normal with the 256-layer ziggurat (see the module docstring)."""
    while True:
        r = next_u64(state, row)
        idx = np.intp(r & _MASK8)
        sign = (r >> _U8) & _U1
        rabs = (r >> _U9_) & _MASK52
        x = float(rabs) * _ZIG_W[idx]
        if sign != _ZERO:
            x = -x
        if rabs < _ZIG_K[idx]:
            return x
        if idx == 0:
            # Tail beyond r (Marsaglia 1964): r + E1 / r, accepted when 2 E2 > (E1 / r)^2.
            while True:
                xx = -math.log(uniform(state, row)) * _ZIG_INV_R
                yy = -math.log(uniform(state, row))
                if yy + yy > xx * xx:
                    return -(_ZIG_R + xx) if sign != _ZERO else _ZIG_R + xx
        # Wedge of layer idx: a uniform height in [f(x_{idx-1}), f(x_idx)] under the curve?
        f0 = _ZIG_F[idx - 1]
        if f0 + uniform(state, row) * (_ZIG_F[idx] - f0) < math.exp(-0.5 * x * x):
            return x


@jit
def normal(
    state: np.ndarray, mu: float, sigma: float, row: int = 0
) -> float:  # pragma: no cover - compiled
    """Normal(mu, sigma) = ``mu + sigma * std_normal``."""
    return mu + sigma * std_normal(state, row)


@jit
def lognormal(
    state: np.ndarray, mu: float, sigma: float, row: int = 0
) -> float:  # pragma: no cover - compiled
    """LogNormal with log-scale mean ``mu`` and log-scale sd ``sigma``: ``exp(mu + sigma Z)``."""
    return math.exp(mu + sigma * std_normal(state, row))


@jit
def std_exponential(state: np.ndarray, row: int = 0) -> float:  # pragma: no cover - compiled
    """Draw a standard exponential ``-log(U)``, ``U`` in (0, 1) (always finite, > 0)."""
    return -math.log(uniform(state, row))


@jit
def _gamma_ge1(
    state: np.ndarray, shape: float, row: int = 0
) -> float:  # pragma: no cover - compiled
    """Marsaglia & Tsang (2000) for shape >= 1, scale 1."""
    d = shape - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        x = std_normal(state, row)
        v = 1.0 + c * x
        if v <= 0.0:
            continue
        v = v * v * v
        u = uniform(state, row)
        x2 = x * x
        if u < 1.0 - 0.0331 * x2 * x2:
            return d * v
        if math.log(u) < 0.5 * x2 + d * (1.0 - v + math.log(v)):
            return d * v


@jit
def gamma(state: np.ndarray, shape: float, row: int = 0) -> float:  # pragma: no cover - compiled
    """Gamma(shape, scale=1); shape 0 gives 0, invalid shape gives NaN.

    Shape >= 1: Marsaglia–Tsang. Shape < 1: ``gamma(shape + 1) * U**(1/shape)``
    (Marsaglia & Tsang's boost), computed as ``exp(log U / shape)``; for very
    small shapes the result underflows to 0 exactly where the true value is
    below the smallest double.
    """
    if not shape >= 0.0 or math.isinf(shape):
        return math.nan
    if shape == 0.0:
        return 0.0
    if shape >= 1.0:
        return _gamma_ge1(state, shape, row)
    g = _gamma_ge1(state, shape + 1.0, row)
    return g * math.exp(math.log(uniform(state, row)) / shape)


@jit
def lognormal_truncated_below(
    state: np.ndarray, mu: float, sigma: float, a: float, row: int = 0
) -> float:  # pragma: no cover - compiled
    """LogNormal(mu, sigma) conditioned on ``X > a`` (``a >= 0``), exact.

    With ``alpha = (log a - mu) / sigma`` and ``Q(alpha) = P(Z > alpha)``
    computed by ``erfc``, ``Z = Q^{-1}(U Q(alpha)) = -ndtri(U Q(alpha))`` (one
    uniform, monotone). When ``Q(alpha) < 1e-290`` (alpha > ~36) it uses
    Robert's (1995) exponential rejection sampler for the normal tail. The
    result is clamped to ``>= a`` against last-bit rounding. ``a <= 0`` is the
    untruncated law, drawn by :func:`lognormal` (the same draw); ``a == inf``
    gives ``inf`` (the event never happens); ``sigma == 0`` is the degenerate
    limit ``max(exp(mu), a)``. NaN or infinite ``mu``/``sigma`` or negative
    ``sigma`` give NaN.
    """
    if not (sigma >= 0.0 and math.isfinite(sigma) and math.isfinite(mu)) or math.isnan(a):
        return math.nan
    if a <= 0.0:
        return lognormal(state, mu, sigma, row)
    if math.isinf(a):
        return math.inf
    if sigma == 0.0:
        return max(math.exp(mu), a)
    alpha = (math.log(a) - mu) / sigma
    if math.isinf(alpha):
        # sigma so small that alpha overflows: the conditional law is a point mass at a.
        return a
    return lognormal_truncated_tail(state, mu, sigma, a, alpha, _norm_sf(alpha), row)


@jit
def lognormal_truncated_tail(
    state: np.ndarray, mu: float, sigma: float, a: float, alpha: float, tail: float, row: int = 0
) -> float:  # pragma: no cover - compiled
    """:func:`lognormal_truncated_below` with its ``alpha`` and tail mass supplied.

    For callers that already computed ``alpha = (log a - mu) / sigma`` and
    ``tail = P(Z > alpha)`` (e.g. for a conversion probability; ``ndtr(-alpha)``
    is bitwise ``0.5 erfc(alpha / sqrt 2)``): saves the ``log`` and ``erfc``
    and gives bitwise the same draw as ``lognormal_truncated_below(state, mu,
    sigma, a)``. Requires ``a > 0`` finite, ``sigma > 0`` and ``mu`` finite
    and ``alpha`` finite (the cases :func:`lognormal_truncated_below` handles
    before computing them).
    """
    if tail >= _LOG_TAIL_MIN:
        z = -ndtri(uniform(state, row) * tail)
        z = max(z, alpha)
    else:
        # Robert (1995): proposal alpha + Exp(rate lam), accept w.p.
        # exp(-(z - lam)^2 / 2); exact for any lam >= alpha. The optimal rate
        # (alpha + sqrt(alpha^2 + 4)) / 2 is replaced by alpha + 1/alpha (also >=
        # alpha) where alpha^2 would overflow.
        if alpha < 1e150:
            lam = 0.5 * (alpha + math.sqrt(alpha * alpha + 4.0))
        else:
            lam = alpha + 1.0 / alpha
        while True:
            z = alpha + std_exponential(state, row) / lam
            dz = z - lam
            if uniform(state, row) <= math.exp(-0.5 * dz * dz):
                break
    return max(math.exp(mu + sigma * z), a)


# --------------------------------------------------------------------------- discrete variates
@jit
def _log_factorial(kf: float) -> float:  # pragma: no cover - compiled
    """``log(k!)`` for an integral float ``k >= 0``: table below 1024, ``lgamma`` above."""
    if kf < _LOG_FACT_N:
        return _LOG_FACT[np.intp(kf)]
    return math.lgamma(kf + 1.0)


_PINV_BOUND = 52  # search bound of Poisson inversion; P(Poisson(10) > 52) < 1e-20


@jit
def _poisson_inversion(
    state: np.ndarray, lam: float, row: int = 0
) -> int:  # pragma: no cover - compiled
    """Poisson by sequential-search inversion (lam < 10).

    ``P(k) = P(k - 1) lam / k`` with ``1 / k`` from a table. A search that runs
    past k = 52 restarts with a fresh uniform. That happens only when ``u`` is
    within rounding of 1 (the summed pmf can stop a few ulps short of 1;
    probability ~1e-16) since the true mass beyond 52 is below 1e-20 for lam <
    10: the law is exact to double precision.
    """
    p0 = math.exp(-lam)
    while True:
        u = uniform(state, row)
        pk = p0
        cdf = pk
        k = 0
        while u > cdf and k < _PINV_BOUND:
            k += 1
            pk *= lam * _RECIP[k]
            cdf += pk
        if u <= cdf:
            return k


@jit
def _poisson_ptrs(
    state: np.ndarray, lam: float, row: int = 0
) -> int:  # pragma: no cover - compiled
    """Poisson by transformed rejection with squeeze, PTRS (Hörmann 1993), lam >= 10."""
    slam = math.sqrt(lam)
    loglam = math.log(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    inv_alpha = 1.1239 + 1.1328 / (b - 3.4)
    v_r = 0.9277 - 3.6224 / (b - 2.0)
    log_inv_alpha = math.log(inv_alpha)
    while True:
        u = uniform(state, row) - 0.5
        v = uniform(state, row)
        us = 0.5 - abs(u)
        kf = math.floor((2.0 * a / us + b) * u + lam + 0.43)
        if us >= 0.07 and v <= v_r:
            return int(kf)
        if kf < 0.0 or (us < 0.013 and v > us):
            continue
        if math.log(v) + log_inv_alpha - math.log(a / (us * us) + b) <= (
            -lam + kf * loglam - _log_factorial(kf)
        ):
            return int(kf)


@jit
def poisson(state: np.ndarray, lam: float, row: int = 0) -> int:  # pragma: no cover - compiled
    """Poisson(lam), exact: inversion for lam < 10, PTRS for lam >= 10.

    ``lam == 0`` gives 0; negative, NaN, infinite or lam >= 2**62 give -1.
    """
    if not (lam >= 0.0 and lam < 4.611686018427388e18):
        return -1
    if lam == 0.0:
        return 0
    if lam < 10.0:
        return _poisson_inversion(state, lam, row)
    return _poisson_ptrs(state, lam, row)


_BINV_SMALL_N = 64  # up to here P(X = 0) = q**n by multiplications, and the search bound is n


@jit
def _binomial_inversion(
    state: np.ndarray, n: int, p: float, row: int = 0
) -> int:  # pragma: no cover - compiled
    """Binomial by sequential-search inversion (p <= 1/2, n p < 10).

    Successive probabilities by the recursion ``P(x) = P(x - 1) ((n + 1) s / x
    - s)`` with ``s = p / q``. For ``n <= 64``, ``P(X = 0) = q**n`` by repeated
    squaring (relative error below ~100 ulps, since ``q = 1 - p`` itself is
    rounded) and ``1 / x`` from a table; above, ``exp(n log1p(-p))`` (error
    ~ n p ulps). A search that runs past ``min(n, n p + 10 sqrt(n p q + 1) +
    10)`` (or ``n`` for ``n <= 64``) restarts with a fresh uniform. That
    happens only when ``u`` is within rounding of 1 (probability ~1e-16) since
    the true mass beyond the bound is below 1e-20 for n p < 10: the law is
    exact to double precision.
    """
    q = 1.0 - p
    s = p / q
    a = (n + 1) * s
    if n <= _BINV_SMALL_N:
        r0 = q**n
        while True:
            u = uniform(state, row)
            r = r0
            x = 0
            while u > r:
                u -= r
                x += 1
                if x > n:
                    break
                r *= a * _RECIP[x] - s
            if x <= n:
                return x
    r0 = math.exp(n * math.log1p(-p))
    bound = min(float(n), n * p + 10.0 * math.sqrt(n * p * q + 1.0) + 10.0)
    while True:
        u = uniform(state, row)
        r = r0
        x = 0
        ok = True
        while u > r:
            u -= r
            x += 1
            if x > bound:
                ok = False
                break
            r *= a / x - s
        if ok:
            return x


@jit
def _binomial_btrs(
    state: np.ndarray, n: int, p: float, row: int = 0
) -> int:  # pragma: no cover - compiled
    """Binomial by transformed rejection with squeeze, BTRS (Hörmann 1993); p <= 1/2, n p >= 10."""
    q = 1.0 - p
    spq = math.sqrt(n * p * q)
    b = 1.15 + 2.53 * spq
    a = -0.0873 + 0.0248 * b + 0.01 * p
    c = n * p + 0.5
    v_r = 0.92 - 4.2 / b
    alpha = (2.83 + 5.1 / b) * spq
    lpq = math.log(p / q)
    m = math.floor((n + 1) * p)
    h = _log_factorial(m) + _log_factorial(n - m)
    nf = float(n)
    while True:
        u = uniform(state, row) - 0.5
        v = uniform(state, row)
        us = 0.5 - abs(u)
        kf = math.floor((2.0 * a / us + b) * u + c)
        if kf < 0.0 or kf > nf:
            continue
        if us >= 0.07 and v <= v_r:
            return int(kf)
        lv = math.log(v * alpha / (a / (us * us) + b))
        if lv <= h - _log_factorial(kf) - _log_factorial(nf - kf) + (kf - m) * lpq:
            return int(kf)


@jit
def binomial(
    state: np.ndarray, n: int, p: float, row: int = 0
) -> int:  # pragma: no cover - compiled
    """Binomial(n, p), exact for every n >= 0 and p in [0, 1].

    ``n == 1``: ``U < p`` (one uniform). Otherwise p > 1/2 uses ``n -
    Binomial(n, 1 - p)``; inversion (one uniform, except for a restart with
    probability ~1e-16) when ``n min(p, 1-p) < 10``, BTRS otherwise. Invalid
    ``n < 0`` or p outside [0, 1] / NaN give -1.
    """
    if n < 0 or not (p >= 0.0 and p <= 1.0):
        return -1
    if n == 0 or p == 0.0:
        return 0
    if p == 1.0:
        return n
    if n == 1:
        return 1 if uniform(state, row) < p else 0
    flip = p > 0.5
    pp = 1.0 - p if flip else p
    k = (
        _binomial_inversion(state, n, pp, row)
        if n * pp < 10.0
        else _binomial_btrs(state, n, pp, row)
    )
    return n - k if flip else k


@jit
def neg_binomial_mean(
    state: np.ndarray, mean: float, dispersion: float, row: int = 0
) -> int:  # pragma: no cover - compiled
    """Negative binomial with ``E = mean`` and ``Var = mean + dispersion * mean**2``.

    Gamma–Poisson mixture: ``Poisson(mean * dispersion * Gamma(1 / dispersion))``.
    ``dispersion == 0`` is Poisson(mean); ``mean == 0`` gives 0; invalid
    (negative or NaN) parameters give -1.
    """
    if not (mean >= 0.0 and dispersion >= 0.0):
        return -1
    if mean == 0.0:
        return 0
    if dispersion == 0.0:
        return poisson(state, mean, row)
    g = gamma(state, 1.0 / dispersion, row)
    return poisson(state, g * mean * dispersion, row)

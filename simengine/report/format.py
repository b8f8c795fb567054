"""Numbers formatted for people: ``$1.2M``, ``78%``, ``5,840``, ``3.2x``.

Every formatter takes a float (NaN and infinities allowed) and returns a
short string; missing values print as ``"n/a"``. These are the only places
the report and the CLI turn numbers into text.
"""

from __future__ import annotations

import datetime as dt
import math

__all__ = [
    "NA",
    "count",
    "date",
    "day",
    "days",
    "money",
    "percent",
    "percent_pm",
    "ratio",
]

NA = "n/a"

_SUFFIXES = ("K", "M", "B", "T")


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(float(x))


def money(x: float | None, currency: str = "$") -> str:
    """Format an amount compactly: ``$1.2M``, ``$850K``, ``$12.3K``, ``$640``.

    One decimal below 100 of a unit (``$1.2M``, ``$12.3M``, and ``$2.0M``, so
    amounts side by side read alike), none above (``$123M``); negatives as
    ``-$1.2M``.

    Parameters
    ----------
    x : float or None
        The amount.
    currency : str
        Prefix symbol.

    Returns
    -------
    str
        The formatted amount, ``"n/a"`` if missing and ``"∞"`` if infinite.
    """
    if x is None or math.isnan(float(x)):
        return NA
    v = float(x)
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    sign = "-" if v < 0 else ""
    a = abs(v)
    if round(a) < 1000:
        return f"{sign}{currency}{a:,.0f}"
    k = min(int(math.log10(a) // 3), len(_SUFFIXES))
    while True:
        scaled = a / 10.0 ** (3 * k)
        digits = 1 if scaled < 100 else 0
        rounded = round(scaled, digits)
        if rounded < 1000 or k == len(_SUFFIXES):
            break
        k += 1  # 999,950 prints as $1M, not $1000K
    text = f"{rounded:.{digits}f}"
    return f"{sign}{currency}{text}{_SUFFIXES[k - 1]}"


def percent(p: float | None, digits: int = 0) -> str:
    """Format a probability or share as a percentage: ``0.783 -> "78%"``.

    Values that would round to 0% or 100% but are not exactly 0 or 1 print
    as ``"<1%"`` / ``">99%"`` (with ``digits=0``), so a 99.7% chance is
    never shown as a certainty.
    """
    if not _finite(p):
        return NA
    v = 100.0 * float(p)  # type: ignore[arg-type]
    text = f"{v:.{digits}f}"
    if digits == 0 and v != 0.0 and text in ("0", "-0"):
        return "<1%"
    if digits == 0 and v != 100.0 and text == "100":
        return ">99%"
    return f"{text}%"


def percent_pm(p: float | None, se: float | None) -> str:
    """Format a Monte Carlo probability with its standard error.

    ``(0.783, 0.0004) -> "78.3% ± 0.04 pts"``: one decimal on the estimate,
    and the error in percentage points with two significant digits.
    """
    if not _finite(p):
        return NA
    est = f"{100.0 * float(p):.1f}%"  # type: ignore[arg-type]
    if not _finite(se):
        return est
    pts = 100.0 * float(se)  # type: ignore[arg-type]
    return f"{est} ± {pts:.2g} pts"


def count(x: float | None) -> str:
    """Format a count with thousands separators, rounded: ``5840.2 -> "5,840"``."""
    if not _finite(x):
        return NA
    return f"{round(float(x)):,}"  # type: ignore[arg-type]


def ratio(x: float | None) -> str:
    """Format a multiple with one decimal: ``3.24 -> "3.2x"``."""
    if not _finite(x):
        return NA
    return f"{float(x):.1f}x"  # type: ignore[arg-type]


def days(x: float | None) -> str:
    """Format a day count: ``45.0 -> "45 days"``; infinite prints as "not reached"."""
    if x is None or math.isnan(float(x)):
        return NA
    if math.isinf(float(x)):
        return "not reached"
    n = round(float(x))
    return f"{n:,} day" + ("" if n == 1 else "s")


def day(d: dt.date | None) -> str:
    """Format a calendar date as ``"Feb 14, 2027"`` (the report's one date style)."""
    if d is None:
        return NA
    return f"{d:%b} {d.day}, {d.year}"


def date(start: dt.date, offset_days: float | None) -> str:
    """Format ``start + offset_days`` as ``"Feb 14, 2027"``.

    Infinite offsets (target never reached in the horizon) print as
    ``"not reached"``.
    """
    if offset_days is None or math.isnan(float(offset_days)):
        return NA
    if math.isinf(float(offset_days)):
        return "not reached"
    return day(start + dt.timedelta(days=math.floor(float(offset_days))))

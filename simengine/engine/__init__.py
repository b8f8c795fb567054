"""The Numba Monte Carlo core: simulate funnel paths from funnel parameters and a plan."""

from __future__ import annotations

__all__: list[str] = []

"""The Numba Monte Carlo core: simulate funnel paths from funnel parameters and a plan.

Public API (see ARCHITECTURE.md, "The path model (engine)"):

* :func:`simulate` -- parameters + plan -> :class:`Forecast`;
* :func:`prepare`, :func:`plan_blocks`, :func:`run_block`,
  :func:`merge_summaries`, :meth:`Forecast.from_summary` -- the block-level
  pieces that scale-out (Dask) calls;
* :func:`run_paths` -- every path's metrics (tests, diagnostics).

The path model is described in :mod:`simengine.engine._kernels`; the
quantile sketches in :mod:`simengine.engine._sketch`; a plain NumPy version
of the same model is :mod:`simengine.engine.reference`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simengine.engine._prepare import Prepared, prepare
from simengine.engine.blocks import (
    Block,
    BlockSummary,
    PathMetrics,
    merge_summaries,
    plan_blocks,
    run_block,
    run_paths,
)
from simengine.engine.simulate import simulate

if TYPE_CHECKING:
    from simengine.engine.forecast import Forecast

__all__ = [
    "Block",
    "BlockSummary",
    "Forecast",
    "PathMetrics",
    "Prepared",
    "merge_summaries",
    "plan_blocks",
    "prepare",
    "run_block",
    "run_paths",
    "simulate",
]


def __getattr__(name: str) -> Any:
    # Forecast pulls in xarray and pandas; importing it lazily keeps the kernels'
    # start-up (import to first block) short.
    if name == "Forecast":
        from simengine.engine.forecast import Forecast

        return Forecast
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

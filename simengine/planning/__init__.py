"""Plans and stress tests for finance: reverse funnel, scenarios, goal seek, sensitivity.

* :mod:`~simengine.planning.reverse`: the deterministic reverse funnel in exact
  arithmetic, and rep capacity;
* :mod:`~simengine.planning.scenarios`: scenario files and the shocks they
  apply to :class:`~simengine.params.FunnelParameters` and
  :class:`~simengine.plan.Plan`;
* :mod:`~simengine.planning.stress`: scenarios run on common random numbers;
* :mod:`~simengine.planning.goalseek`: arrivals needed for P(hit) >= q;
* :mod:`~simengine.planning.sensitivity`: one-at-a-time sensitivities, ranked.
"""

from __future__ import annotations

from simengine.planning.reverse import Chain, Source, capacity, reverse_chain, reverse_table

__all__ = ["Chain", "Source", "capacity", "reverse_chain", "reverse_table"]

"""Plans and stress tests for finance: reverse funnel, scenarios, goal seek, sensitivity.

* :mod:`~simengine.planning.reverse`: the deterministic reverse funnel in exact
  arithmetic, and rep capacity;
* :mod:`~simengine.planning.scenarios`: scenario files and the shocks they
  apply to :class:`~simengine.params.FunnelParameters` and
  :class:`~simengine.config.plan.Plan`;
* :mod:`~simengine.planning.stress`: scenarios run on common random numbers;
* :mod:`~simengine.planning.goalseek`: arrivals needed for P(hit) >= q;
* :mod:`~simengine.planning.sensitivity`: one-at-a-time sensitivities, ranked,
  and the top risks in words.

Every simulation goes through :func:`simengine.engine.simulate` or the
engine's block functions with one shared seed, so path ``i`` sees the same
posterior draw and random streams in every variant (common random numbers).
"""

from __future__ import annotations

from simengine.planning.goalseek import goal_seek, goal_seek_table
from simengine.planning.reverse import (
    Chain,
    Source,
    capacity,
    capacity_table,
    reverse_chain,
    reverse_table,
    sources_from_params,
)
from simengine.planning.scenarios import (
    Scenario,
    Shock,
    apply_scenario,
    apply_shock,
    load_scenarios,
)
from simengine.planning.sensitivity import (
    plot_tornado,
    run_sensitivity,
    top_risks,
    write_sensitivity,
)
from simengine.planning.stress import plot_stress, run_stress, write_stress

__all__ = [
    "Chain",
    "Scenario",
    "Shock",
    "Source",
    "apply_scenario",
    "apply_shock",
    "capacity",
    "capacity_table",
    "goal_seek",
    "goal_seek_table",
    "load_scenarios",
    "plot_stress",
    "plot_tornado",
    "reverse_chain",
    "reverse_table",
    "run_sensitivity",
    "run_stress",
    "sources_from_params",
    "top_risks",
    "write_sensitivity",
    "write_stress",
]

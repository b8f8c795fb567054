"""simengine: will the revenue team hit its number, with honest probabilities.

Bayesian funnel models fitted in PyMC to CRM history, a Numba Monte Carlo
core that plays the period out path by path, and the reports, scenarios and
backtests built on them. See README.md for the user guide and
ARCHITECTURE.md for the module map and canonical names.
"""

from __future__ import annotations

from simengine.config.plan import Plan, load_plan
from simengine.config.spec import FunnelSpec, load_spec
from simengine.errors import ConvergenceError, InputError, Issue
from simengine.params import FunnelParameters, OpenUnits

__version__ = "0.1.0"

__all__ = [
    "ConvergenceError",
    "FunnelParameters",
    "FunnelSpec",
    "InputError",
    "Issue",
    "OpenUnits",
    "Plan",
    "__version__",
    "load_plan",
    "load_spec",
]

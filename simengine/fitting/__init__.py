"""Bayesian funnel models (PyMC) and their orchestration.

One PyMC model per module, each with ``build_model``:

* :mod:`~simengine.fitting.conversion`: step conversion + delay cure model
  with censoring of open units and drift;
* :mod:`~simengine.fitting.arrivals`: weekly arrivals, negative binomial with
  a log-linear trend;
* :mod:`~simengine.fitting.deal_size`: lognormal won amounts.

:mod:`~simengine.fitting.priors` holds every prior scale,
:mod:`~simengine.fitting.data` turns records into sufficient statistics,
:mod:`~simengine.fitting.diagnostics` is the convergence gate and
:func:`~simengine.fitting.fit.fit` runs it all.
"""

from __future__ import annotations

from simengine.fitting.fit import FitSettings, fit, settings_from_spec
from simengine.fitting.raw_rates import raw_rates

__all__ = ["FitSettings", "fit", "raw_rates", "settings_from_spec"]

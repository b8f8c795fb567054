"""The configuration files a user writes.

* :mod:`~simengine.config.spec`: the funnel spec (``models/*.toml``): stages,
  segments, the source mapping and the ``[model]`` options;
* :mod:`~simengine.config.plan`: the plan file (period, as-of, targets,
  planned new units) and the day conventions;
* :mod:`~simengine.config.assumptions`: a planner's stated assumptions in
  place of a fit.

Each file is parsed through typed tables (:mod:`~simengine.config.tables`:
pydantic models whose errors become :class:`~simengine.errors.Issue` rows);
the scenario files of :mod:`simengine.planning.scenarios` use the same.
"""

__all__: list[str] = []

"""The forecast report (HTML with charts) and the tidy exports for BI tools.

* :mod:`~simengine.report.data`: what a report reads (forecast, parameters,
  planning outputs);
* :mod:`~simengine.report.html`: the self-contained HTML report, with the
  charts of :mod:`~simengine.report.charts`;
* :mod:`~simengine.report.export`: Parquet or CSV tables of a forecast;
* :mod:`~simengine.report.format`: numbers formatted for people.
"""

__all__: list[str] = []

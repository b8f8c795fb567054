"""Forecast history: snapshots of a plan's forecasts in a DuckDB store, and what moved them.

* :mod:`~simengine.history.store`: the store (schema, transactions, locking).
* :mod:`~simengine.history.realised`: a fixed period forecast from an as-of
  date inside it (realised-to-date + the simulated rest).
* :mod:`~simengine.history.record`: a forecast -> a snapshot record.
* :mod:`~simengine.history.movement`: the waterfall between two snapshots.
* :mod:`~simengine.history.reforecast`: fit, forecast and record at each as-of date.
* :mod:`~simengine.history.report`: ``history.html`` and the Parquet tables.
"""

from simengine.history.store import HistoryStore, SnapshotRecord, plan_key

__all__ = ["HistoryStore", "SnapshotRecord", "plan_key"]

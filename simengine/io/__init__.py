"""Reading and writing simengine's files.

* :mod:`~simengine.io.records`: CRM exports (CSV/Parquet) mapped onto the
  canonical records, and what was known at an as-of date;
* :mod:`~simengine.io.validation`: the records schema and cross-column rules,
  every problem gathered into one :class:`~simengine.errors.InputError`;
* :mod:`~simengine.io.posterior`: the posterior file (netCDF InferenceData);
* :mod:`~simengine.io.provenance`: package versions and file hashes;
* :mod:`~simengine.io.atomic`: atomic output files and folders.
"""

__all__: list[str] = []

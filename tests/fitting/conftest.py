"""Fixtures of the fitting tests (the record generator is ``fitting_factories``)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from fitting.fitting_factories import Truth, make_records


@pytest.fixture(scope="session")
def small_funnel() -> tuple[pd.DataFrame, Truth, dt.date]:
    df, truth = make_records(11)
    return df, truth, dt.date(2026, 1, 5)


@pytest.fixture(autouse=True, scope="session")
def _no_blas(no_blas_probe: None) -> None:
    """Every fitting test runs PyTensor without its BLAS probe (see ``no_blas_probe``)."""

"""Fixtures for the report tests: a forecast directory built by ``report_sim``."""

from __future__ import annotations

from pathlib import Path

import pytest
import xarray as xr
from report_sim import SimPaths, build_dataset, simulate_paths, write_forecast_dir


@pytest.fixture(scope="session")
def sim_paths() -> SimPaths:
    return simulate_paths(seed=7)


@pytest.fixture(scope="session")
def forecast_ds(sim_paths: SimPaths) -> xr.Dataset:
    return build_dataset(sim_paths, seed=7)


@pytest.fixture
def forecast_dir(forecast_ds: xr.Dataset, tmp_path: Path) -> Path:
    return write_forecast_dir(forecast_ds, tmp_path / "fc")

"""Shared fixtures: paths to the repository's models and the shared CRM export."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"
SHARED_CRM = REPO.parent / "shared" / "data" / "crm-opportunities"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def models_dir() -> Path:
    return MODELS


@pytest.fixture(scope="session")
def crm_dir() -> Path:
    """The real CRM export in ../shared; tests using it skip only where it is absent."""
    if not (SHARED_CRM / "sales_pipeline.csv").exists():
        pytest.skip(f"shared CRM export not found at {SHARED_CRM} (../shared is absent)")
    return SHARED_CRM

"""Shared fixtures: paths to the repository's models and the shared CRM export, the
fitting tests' record and spec generators (used by the CLI tests too), PyTensor without
its BLAS probe.

``tests`` is on ``sys.path`` (pyproject ``pythonpath``), so helpers of one test folder
are imported by folder: ``from fitting.fitting_factories import make_records``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from fitting.fitting_factories import Truth, make_records, make_spec

from simengine.config.spec import FunnelSpec

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


@pytest.fixture(scope="session")
def spec_factory() -> Callable[..., FunnelSpec]:
    return make_spec


@pytest.fixture(scope="session")
def records_factory() -> Callable[..., tuple[pd.DataFrame, Truth]]:
    return make_records


@pytest.fixture(scope="session")
def no_blas_probe() -> None:
    """Skip PyTensor's BLAS probe before a real fit.

    Its 'could not link to a BLAS' UserWarning is about this machine's pip
    install, not our code, and pytest turns warnings into errors. An explicit
    empty ldflags means: use the non-BLAS C code paths.
    """
    import pytensor

    pytensor.config.blas__ldflags = ""

"""Fixtures of the backtest tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def no_blas_probe() -> None:
    """Skip PyTensor's BLAS probe before a real fit.

    Its 'could not link to a BLAS' UserWarning is about this machine's pip
    install, not our code, and pytest turns warnings into errors. An explicit
    empty ldflags means: use the non-BLAS C code paths (as tests/fitting does).
    """
    import pytensor

    pytensor.config.blas__ldflags = ""

"""Fixtures for engine tests (helpers live in ``engine_helpers``)."""

from __future__ import annotations

import pytest
from engine_helpers import make_params, make_plan, random_open_units

from simengine.config.plan import Plan
from simengine.params import FunnelParameters


@pytest.fixture
def demo_like() -> tuple[FunnelParameters, Plan]:
    """3 segments x 2 channels, 4 stages, open units; small rates (fast)."""
    params = make_params(
        rate=[20.0, 0.0, 0.5],
        dispersion=0.1,
        conversion_sd=0.03,
        open_units=random_open_units(200, 6, 3),
    )
    return params, make_plan(target=400_000.0)

"""Fixtures for the planning tests."""

from __future__ import annotations

import pytest
from planning_factories import make_params, make_plan

from simengine.config.plan import Plan
from simengine.params import FunnelParameters


@pytest.fixture
def params() -> FunnelParameters:
    return make_params()


@pytest.fixture
def plan() -> Plan:
    return make_plan()

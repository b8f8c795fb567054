"""Fixtures for the planning tests."""

from __future__ import annotations

import pytest
from planning_factories import make_params, make_plan

from simengine.params import FunnelParameters
from simengine.plan import Plan


@pytest.fixture
def params() -> FunnelParameters:
    return make_params()


@pytest.fixture
def plan() -> Plan:
    return make_plan()

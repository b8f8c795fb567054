"""Fixtures of the history tests: the small world (records, spec, plan)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import world


@pytest.fixture(scope="module")
def wspec(tmp_path_factory):
    return world.spec(tmp_path_factory.mktemp("spec"))


@pytest.fixture(scope="module")
def wrecords():
    return world.records()

"""Shared set-ups of the planning commands' CLI tests (``plan``, ``stress``, ``sensitivity``).

Each fixture writes its file into the test's own ``tmp_path``: the small
two-segment assumptions and plan of :mod:`planning.planning_factories`, two
scenarios, and a records file with open enterprise deals. The ``*_argv``
fixtures build a command line on those inputs, so a test states only what
it varies.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest
from planning.planning_factories import write_inputs

SCENARIOS = """
[[scenario]]
name = "mqls-minus-20pct"
title = "MQLs -20%"
[[scenario.shock]]
what = "arrivals"
stage = "mql"
how = "scale"
value = 0.8

[[scenario]]
name = "win-ent"
[[scenario.shock]]
what = "conversion"
segment = "ent"
step = "won"
how = "add"
value = -0.03
"""

#: Open enterprise deals (and an smb MQL) at the plan's as-of date, per models/demo.toml.
RECORDS = """id,segment,channel,mql_at,sql_at,opportunity_at,won_at,lost_at,amount
E-1,ent,web,2026-12-01,2026-12-03,2026-12-10,,,400000
E-2,ent,web,2026-12-01,2026-12-03,2026-12-28,,,300000
S-1,smb,web,2026-12-20,,,,,
"""

Argv = Callable[..., list[str]]


class Inputs(NamedTuple):
    """The assumptions and plan files of a planning CLI test."""

    assumptions: Path
    plan: Path


@pytest.fixture
def inputs(tmp_path: Path) -> Inputs:
    """The two-segment assumptions (smb, ent) and their plan."""
    return Inputs(*write_inputs(tmp_path))


@pytest.fixture
def scenarios(tmp_path: Path) -> Path:
    """Two scenarios: MQLs -20% and the enterprise win rate -3 points."""
    s = tmp_path / "s.toml"
    s.write_text(SCENARIOS)
    return s


@pytest.fixture
def pipeline(tmp_path: Path, models_dir: Path) -> list[str]:
    """``--pipeline RECORDS --model models/demo.toml`` (open deals join the assumptions)."""
    rec = tmp_path / "r.csv"
    rec.write_text(RECORDS)
    return ["--pipeline", str(rec), "--model", str(models_dir / "demo.toml")]


@pytest.fixture
def plan_argv(inputs: Inputs) -> Argv:
    """``plan --plan P --assumptions A --out OUT --draws D *extra``."""

    def argv(out: Path, *extra: str, draws: int = 50) -> list[str]:
        return ["plan", "--plan", str(inputs.plan), "--assumptions", str(inputs.assumptions),
                "--draws", str(draws), "--out", str(out), *extra]

    return argv


@pytest.fixture
def stress_argv(inputs: Inputs, scenarios: Path) -> Argv:
    """``stress`` on the inputs and scenarios; small runs unless told."""

    def argv(out: Path, *extra: str, paths: int = 600, batches: int = 3,
             draws: int = 50) -> list[str]:
        return ["stress", "--plan", str(inputs.plan), "--assumptions", str(inputs.assumptions),
                "--scenarios", str(scenarios), "--out", str(out), "--paths", str(paths),
                "--batches", str(batches), "--draws", str(draws), *extra]

    return argv


@pytest.fixture
def sensitivity_argv(inputs: Inputs) -> Argv:
    """``sensitivity --plan P --assumptions A --out OUT *extra``."""

    def argv(out: Path, *extra: str) -> list[str]:
        return ["sensitivity", "--plan", str(inputs.plan), "--assumptions",
                str(inputs.assumptions), "--out", str(out), *extra]

    return argv

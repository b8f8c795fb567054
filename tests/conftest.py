"""Shared fixtures: paths to the repository's models and the shared CRM export, the
fitting tests' record and spec generators (used by the CLI tests too), PyTensor without
its BLAS probe.

``tests`` is on ``sys.path`` (pyproject ``pythonpath``), so helpers of one test folder
are imported by folder: ``from fitting.fitting_factories import make_records``.

Also the Hypothesis profiles, chosen by the environment variable
``HYPOTHESIS_PROFILE``:

``dev`` (default, ``make test``)
    Derandomized: every run replays the same examples, so a local run is
    repeatable.
``ci`` (``.ci/run``)
    Fresh examples on every run (not derandomized), from one seed per pytest
    process: ``HYPOTHESIS_SEED`` if set, otherwise drawn at random. The seed is
    printed in the session header (not under ``-q``), at the end of the run and under
    every failing property test, with the command that replays it
    (``HYPOTHESIS_PROFILE=ci HYPOTHESIS_SEED=<seed>``); the failing example's
    ``@reproduce_failure`` blob is printed too. Under pytest-xdist (``make test``
    runs two worker processes) the controller draws the seed and hands it to its
    workers through ``HYPOTHESIS_SEED``, so one seed replays the whole run with
    or without ``-n``: Hypothesis derives each test's examples from the seed and
    the test, not from the process or the order.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from fitting.fitting_factories import Truth, make_records, make_spec
from hypothesis import is_hypothesis_test, settings

from simengine.config.spec import FunnelSpec

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"
SHARED_CRM = REPO.parent / "shared" / "data" / "crm-opportunities"

settings.register_profile("dev", derandomize=True, database=None, deadline=None)
settings.register_profile("ci", derandomize=False, database=None, deadline=None, print_blob=True)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "dev")
settings.load_profile(PROFILE)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Fix the ``ci`` profile's seed before Hypothesis' plugin reads ``--hypothesis-seed``.

    The controller of an xdist run exports it as ``HYPOTHESIS_SEED`` before it
    spawns its workers, which read it here: every process uses the same seed.
    """
    if PROFILE == "ci" and config.getoption("hypothesis_seed", None) is None:
        seed = os.environ.get("HYPOTHESIS_SEED") or str(secrets.randbelow(2**32))
        config.option.hypothesis_seed = seed
        os.environ["HYPOTHESIS_SEED"] = seed


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that start a Dask cluster may see asyncio's "unclosed event loop".

    tornado/distributed close their event loops in worker threads at cluster
    shutdown, and a loop collected before that is reported by asyncio's
    ``__del__`` in whichever frame runs the collection, so no module filter can
    select it. It is ignored only in the tests marked ``distributed``; a leak
    anywhere else still fails.
    """
    scoped = pytest.mark.filterwarnings("ignore:unclosed event loop:ResourceWarning")
    for item in items:
        if item.get_closest_marker("distributed") is not None:
            item.add_marker(scoped)


def _replay(config: pytest.Config) -> str:
    seed = config.getoption("hypothesis_seed", None)
    if seed is None:
        return f"hypothesis profile {PROFILE!r} (derandomized: every run draws the same examples)"
    return (
        f"hypothesis profile {PROFILE!r}, seed {seed}; replay with "
        f"HYPOTHESIS_PROFILE={PROFILE} HYPOTHESIS_SEED={seed}"
    )


def pytest_report_header(config: pytest.Config) -> str:
    return _replay(config)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """The seed of profile ``ci`` and how to replay it, also under ``-q`` (no header there)."""
    if PROFILE == "ci":
        terminalreporter.write_line(_replay(config))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """Print the seed (and how to replay it) under every failing property test."""
    outcome = yield
    rep = outcome.get_result()
    obj = getattr(item, "obj", None)
    if rep.failed and obj is not None and is_hypothesis_test(obj):
        rep.sections.append(("hypothesis seed", _replay(item.config)))


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

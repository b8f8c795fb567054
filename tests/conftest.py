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

Heavy groups (``--heavy-group``): the tests marked ``heavy`` fall into the groups
of :data:`HEAVY_GROUPS`. ``--heavy-group NAME`` keeps the heavy tests of group
``NAME`` only (``none``: no heavy test), so CI can run one group per run within
its budget (``.ci/run`` picks it); without the option ``-m`` alone decides
(``make test-slow`` runs them all).
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


#: The heavy tests (marker ``heavy``) in groups small enough for CI to run one of
#: them after ``make test`` and the other slow tests (``.ci/run``, which holds
#: the rotation and each group's time; docs/validation-tests.md): group name ->
#: node-id prefixes. Every heavy test must be in exactly one group (checked at
#: collection when ``--heavy-group`` is given).
HEAVY_GROUPS: dict[str, tuple[str, ...]] = {
    "recovery": ("tests/fitting/test_recovery.py::",),
    "sbc-censoring": (
        "tests/fitting/test_sbc.py::test_sbc_ranks_are_uniform_and_the_censoring_error_is_caught",
    ),
    "sbc-centred": ("tests/fitting/test_sbc.py::test_sbc_centred_form_on_large_cells",),
    "sbc-thin": ("tests/fitting/test_sbc.py::test_sbc_catches_a_misspecified_prior_on_thin_data",),
    "sbc-deal-size-notebooks": (
        "tests/fitting/test_sbc.py::test_sbc_deal_size",
        "tests/test_notebooks.py::test_notebook_runs",
    ),
    "synthetic": ("tests/backtest/test_synthetic.py::",),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--heavy-group",
        default=None,
        help="keep the heavy tests of this group only: a name of tests/conftest.py "
        "HEAVY_GROUPS, or 'none'",
    )


def heavy_group(option: str) -> str:
    """The group ``--heavy-group OPTION`` names, checked."""
    if option != "none" and option not in HEAVY_GROUPS:
        raise pytest.UsageError(
            f"--heavy-group {option!r}: not one of none, {', '.join(HEAVY_GROUPS)}"
        )
    return option


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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that start a Dask cluster may see asyncio's "unclosed event loop".

    tornado/distributed close their event loops in worker threads at cluster
    shutdown, and a loop collected before that is reported by asyncio's
    ``__del__`` in whichever frame runs the collection, so no module filter can
    select it. It is ignored only in the tests marked ``distributed``; a leak
    anywhere else still fails.

    With ``--heavy-group``, the heavy tests outside the group are deselected.
    Heavy tests run first (a stable sort, the same in every xdist worker): the
    longest test starts at once and the other worker takes the rest meanwhile.
    """
    scoped = pytest.mark.filterwarnings("ignore:unclosed event loop:ResourceWarning")
    for item in items:
        if item.get_closest_marker("distributed") is not None:
            item.add_marker(scoped)
    option = config.getoption("heavy_group")
    if option is not None:
        group = heavy_group(option)
        keep, drop = [], []
        for item in items:
            if item.get_closest_marker("heavy") is None:
                keep.append(item)
                continue
            groups = [g for g, ps in HEAVY_GROUPS.items() if item.nodeid.startswith(ps)]
            if len(groups) != 1:
                raise pytest.UsageError(
                    f"heavy test {item.nodeid} is in {len(groups)} groups of HEAVY_GROUPS (need 1)"
                )
            (keep if groups[0] == group else drop).append(item)
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)


def _replay(config: pytest.Config) -> str:
    seed = config.getoption("hypothesis_seed", None)
    if seed is None:
        return f"hypothesis profile {PROFILE!r} (derandomized: every run draws the same examples)"
    return (
        f"hypothesis profile {PROFILE!r}, seed {seed}; replay with "
        f"HYPOTHESIS_PROFILE={PROFILE} HYPOTHESIS_SEED={seed}"
    )


def _heavy_line(config: pytest.Config) -> str | None:
    option = config.getoption("heavy_group")
    if option is None:
        return None
    group = heavy_group(option)
    others = ", ".join(g for g in HEAVY_GROUPS if g != group)
    return (
        f"heavy group: {group}; the others ({others}) run with "
        "`make test-heavy HEAVY=<group>`, all of them with `make test-slow`"
    )


def pytest_report_header(config: pytest.Config) -> list[str]:
    heavy = _heavy_line(config)
    return [_replay(config)] + ([heavy] if heavy else [])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """The seed (profile ``ci``) and the heavy group, also under ``-q`` (no header there)."""
    lines = [_replay(config)] if PROFILE == "ci" else []
    heavy = _heavy_line(config)
    if heavy:
        lines.append(heavy)
    for line in lines:
        terminalreporter.write_line(line)


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

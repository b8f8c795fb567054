# simengine: two commands for a new user, `make demo` and `make test`.
# Both create (once) and reuse a local virtual environment in .venv and install
# the pinned dependencies from requirements/lock.txt themselves.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   ?= demo-output
PATHS  ?= 1000000
SEED   ?= 20270104

.PHONY: install demo synth test lint typecheck unit test-slow test-slow-ci test-heavy bench bench-compare clean

$(STAMP): requirements/lock.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/lock.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

## The main job on the bundled default: synthetic CRM -> fit -> simulate -> report -> export.
## The demo fit passes the convergence gate at the demo's seed on this machine;
## --allow-unconverged is a safety net (another machine or seed can miss it by a
## divergence or two, see docs/validation.md, "Convergence"): the posterior is then flagged
## simengine_converged=false, simulate warns and the report shows a banner.
demo: $(STAMP)
	$(BIN)/python -m simengine.demo --out $(DEMO) --paths $(PATHS) --seed $(SEED) --allow-unconverged

## Only the synthetic CRM (records.csv, plan.toml, truth.json) into $(DEMO)/data.
synth: $(STAMP)
	$(BIN)/simengine synth --out $(DEMO)/data --seed $(SEED) --force

## Hypothesis profile (tests/conftest.py): dev = the same examples every run;
## .ci/run sets HYPOTHESIS_PROFILE=ci (fresh examples, seed printed for replay).
export HYPOTHESIS_PROFILE ?= dev

## The test runs use TEST_WORKERS pytest-xdist processes (2: the cores of this project's
## machines and of CI; TEST_WORKERS=0 runs everything in one process, e.g. for pdb).
## --dist worksteal hands each worker a contiguous half of the collection (a file's
## tests, and so its module fixtures: fits, simulations, Dask clusters, stay
## together) and lets an idle worker take the tail of the other's queue, so a
## long test does not hold back the tests queued behind it.
TEST_WORKERS ?= 2
XDIST = -n $(TEST_WORKERS) --dist worksteal

## Lint, type-check and the default (non-slow) test run.
test: lint typecheck unit

## ruff, then the import layers of pyproject.toml [tool.importlinter]
## (nothing outside simengine.cli imports it; each layer imports only those below).
lint: $(STAMP)
	$(BIN)/ruff check simengine tests benchmarks
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q $(XDIST)

## Statistical checks marked slow (recovery, simulation-based calibration, backtest
## calibration, demo and notebooks), the heavy ones included; one process, as the
## heavy tests' timeouts assume (their fits use both cores already).
test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow -q

## The slow checks CI runs within its 90 minutes: every slow test but the heavy ones.
test-slow-ci: $(STAMP)
	$(BIN)/python -m pytest -m "slow and not heavy" -q $(XDIST)

## One group of the heavy tests (tests/conftest.py HEAVY_GROUPS: recovery, sbc-censoring,
## sbc-centred, sbc-thin, sbc-deal-size-notebooks, synthetic). .ci/run runs one group per CI
## run, chosen by the commit, where its budget allows.
HEAVY ?= none
test-heavy: $(STAMP)
	$(BIN)/python -m pytest -m heavy --heavy-group=$(HEAVY) -q $(XDIST)

## Speed benchmarks (pytest-benchmark; figures in docs/performance.md). Every run is saved under
## benchmarks/results/<machine>/NNNN_<commit>_<date>.json (autosave).
bench: $(STAMP)
	$(BIN)/python -m pytest benchmarks -q --benchmark-only --benchmark-columns=min,mean,median,rounds \
	    --benchmark-autosave --benchmark-storage=file://benchmarks/results

## The latest saved run against the previous one; fails when the engine's speed over
## the NumPy reference (both measured in the same run) fell by more than 10%.
bench-compare: $(STAMP)
	$(BIN)/python benchmarks/compare.py --storage benchmarks/results

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .mypy_cache .ruff_cache

"""No atomic reference counting inside the per-unit loops of the compiled kernels.

Numba takes a reference (an atomic increment on the array's meminfo) on an
array whenever compiled code copies it: a field read from the kernels'
named tuples, an argument of an inlined function, a call's argument at the
callee's entry. Its reference-count pruning removes those taken once at a
function's entry, not those taken inside loops with branches and calls.
From 2026-12-06 (commit 7ae0c38) to 2026-12-07 an inlined per-unit
function that received the kernels' two named tuples took 43 references a
new unit, and the engine ran at a seventh of its speed
(``benchmarks/bench_vs_main.py``; docs/performance.md), and no test saw it.

This test compiles the kernels afresh (an empty Numba cache in a child
process, since code loaded from the cache carries no LLVM IR) and counts
``NRT_incref`` calls per LLVM basic block of the functions that play new
units: :func:`~simengine.engine._kernels._play_units` (the per-unit loop)
must have none, :func:`~simengine.engine._kernels._arrivals` (the loops
over weeks and outcome classes, of both path models) none outside its
entry block. Mutation that must
fail (checked): one array read from the named tuple inside the week loop
(``model.delay_mu`` in place of the hoisted ``delay_mu`` at a call of
``_play_units``) leaves one reference in a loop block. Deterministic, no
alpha. Marked slow: it compiles the kernels afresh.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

CHILD = r"""
import json, re, sys
sys.path.insert(0, sys.argv[1])
from engine_helpers import make_params, make_plan, random_open_units
from simengine.engine import prepare
from simengine.engine.blocks import Block, run_block
import simengine.engine._kernels as K

params = make_params(draws=4, rate=(20.0, 0.0, 0.5), pipeline_stage=2,
                     open_units=random_open_units(30, 6, 3))
plan = make_plan(target=40_000.0, weeks=8, horizon_days=70)
for model in ("per_unit", "thinned"):
    run_block(prepare(params, plan, model), Block(0, 0, 4), 1)
out = {}
for name in ("_play_units", "_arrivals"):
    irs = list(getattr(K, name).inspect_llvm().values())
    assert len(irs) == 1, (name, len(irs))
    blocks, b = {}, "entry"
    for line in irs[0].splitlines():
        m = re.match(r"^([A-Za-z_.$0-9]+):", line)
        if m:
            b = m.group(1)
        if "call void @NRT_incref" in line:
            blocks[b] = blocks.get(b, 0) + 1
    out[name] = blocks
print(json.dumps(out))
"""


@pytest.mark.slow
def test_no_reference_counts_in_the_per_unit_loops(tmp_path: Path) -> None:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))
    res = subprocess.run(
        [sys.executable, "-c", CHILD, str(HERE)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    blocks = json.loads(res.stdout.strip().splitlines()[-1])
    assert blocks["_play_units"] == {}, blocks["_play_units"]
    inside = {b: n for b, n in blocks["_arrivals"].items() if b != "entry"}
    assert inside == {}, inside

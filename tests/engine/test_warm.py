"""``python -m simengine.engine.warm`` fills Numba's cache with the engine's kernels."""

from __future__ import annotations

import os
import subprocess
import sys

from simengine.engine import plan_blocks, prepare, run_block
from simengine.engine.warm import tiny_problem


def test_tiny_problem_is_a_real_problem():
    """The warm-up block simulates: the open unit and the arrivals give entries and wins."""
    params, plan = tiny_problem()
    out = run_block(prepare(params, plan), plan_blocks(2000, 2000)[0], 3)
    assert out.n == 2000
    assert out.welford.sum() != 0  # some path had revenue or entries


def test_warm_process_writes_the_kernels_to_an_empty_cache(tmp_path):
    """A cold ``python -m simengine.engine.warm`` compiles and writes index and data files."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "simengine.engine.warm"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    index = list(tmp_path.rglob("*.nbi"))
    data = list(tmp_path.rglob("*.nbc"))
    assert any("_kernels" in p.name for p in index), sorted(p.name for p in index)[:10]
    assert len(data) >= len(index) > 0

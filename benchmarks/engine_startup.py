"""Cold and warm start of the engine: fresh process to its first simulated block.

Usage: .venv/bin/python benchmarks/engine_startup.py [--runs 2] [--cache-dir DIR]

Runs ``--runs`` fresh Python processes one after the other, all with the same
Numba cache directory (``NUMBA_CACHE_DIR``; by default a new empty temporary
directory, so the first process is a true cold start that compiles and writes
the cache, and the next ones are warm starts that load it). Each process
reports seconds since its interpreter started (``time.perf_counter`` at the
top of the script, so the Python launch itself, ~20 ms, is not included) for:
``import`` (``simengine.engine`` and the workload), ``prepare``, and
``first_block`` (``run_block`` on one path: loading or compiling the kernels
plus the path), and the count of engine functions compiled in that process
(``compiled_in_process``: signatures that Numba compiled rather than loaded
from the cache; 0 means every function came from the cache).

The issue's goal: a warm process starts simulating in under 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = """
import time
t0 = time.perf_counter()
import sys
sys.path.insert(0, {here!r})
from numba.core import event

compiled = []

class _Listener(event.Listener):
    def on_start(self, ev):
        pass

    def on_end(self, ev):
        d = ev.data.get("dispatcher")
        name = getattr(getattr(d, "py_func", None), "__module__", "")
        compiled.append(name)

event.register("numba:compile", _Listener())
from engine_report import standard_workload
from simengine.engine import prepare
from simengine.engine.blocks import Block, run_block
t_import = time.perf_counter() - t0
params, plan = standard_workload(draws=4000)
t1 = time.perf_counter()
pr = prepare(params, plan)
t_prepare = time.perf_counter() - t1
t2 = time.perf_counter()
run_block(pr, Block(0, 0, 1), 1)
t_block = time.perf_counter() - t2
import json
print(json.dumps({{
    "import_s": round(t_import, 3),
    "prepare_s": round(t_prepare, 3),
    "first_block_s": round(t_block, 3),
    "total_s": round(time.perf_counter() - t0, 3),
    "compiled_in_process": sum(m.startswith("simengine") for m in compiled),
}}))
"""


def run_once(cache_dir: str) -> dict[str, float]:
    """One fresh process; returns its timings."""
    here = os.path.dirname(os.path.abspath(__file__))
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    out = subprocess.run(
        [sys.executable, "-c", CHILD.format(here=here)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    """Print the timings of each run as JSON."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--cache-dir", default=None, help="default: a new empty temporary directory")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cache = a.cache_dir or tmp
        runs = [run_once(cache) for _ in range(a.runs)]
    print(json.dumps({"cache_dir": a.cache_dir or "(fresh temporary)", "runs": runs}, indent=2))


if __name__ == "__main__":
    main()

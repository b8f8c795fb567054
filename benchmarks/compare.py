"""Compare the latest saved benchmark run with the previous one (``make bench-compare``).

``make bench`` saves every run with pytest-benchmark's autosave under
``benchmarks/results/<machine>/NNNN_<commit>_<date>.json``. A raw speed moves
with the machine's load, so the quantity tracked across runs is a ratio
measured *within* one run: the engine's paths per second over the NumPy
reference's on the same workload (``bench_engine.py``: ``test_engine[2]`` and
``test_numpy_reference``). This script prints both runs' timings and that
ratio, and exits 1 when the latest ratio fell by more than ``--tolerance``
(default 10%) from the previous run's.

Run: ``.venv/bin/python benchmarks/compare.py [--storage benchmarks/results]``
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RunSummary", "compare", "latest_runs", "main", "read_run"]

ENGINE = "test_engine[2]"
REFERENCE = "test_numpy_reference"


@dataclass(frozen=True)
class RunSummary:
    """One saved benchmark run: its file, commit, and per-benchmark speeds."""

    path: Path
    commit: str
    datetime: str
    min_seconds: dict[str, float]
    paths_per_s: dict[str, float]

    @property
    def ratio(self) -> float | None:
        """Engine paths/s over the NumPy reference's, both from this run (None if absent)."""
        eng = self.paths_per_s.get(ENGINE)
        ref = self.paths_per_s.get(REFERENCE)
        if eng is None or ref is None or ref <= 0:
            return None
        return eng / ref


def read_run(path: Path) -> RunSummary:
    """Read one pytest-benchmark JSON file."""
    data = json.loads(Path(path).read_text())
    mins: dict[str, float] = {}
    pps: dict[str, float] = {}
    for b in data.get("benchmarks", []):
        name = str(b["name"])
        mins[name] = float(b["stats"]["min"])
        extra = b.get("extra_info") or {}
        if "paths_per_s" in extra:
            pps[name] = float(extra["paths_per_s"])
    info = data.get("commit_info") or {}
    return RunSummary(
        path=Path(path),
        commit=str(info.get("id", "?"))[:10],
        datetime=str(data.get("datetime", "?")),
        min_seconds=mins,
        paths_per_s=pps,
    )


def latest_runs(storage: Path, n: int = 2) -> list[RunSummary]:
    """Return the ``n`` newest runs under ``storage`` (oldest first), by autosave counter."""
    files = sorted(Path(storage).glob("*/[0-9][0-9][0-9][0-9]_*.json"), key=lambda p: p.name)
    return [read_run(p) for p in files[-n:]]


def compare(previous: RunSummary | None, latest: RunSummary, tolerance: float) -> tuple[str, bool]:
    """Return a printable table and whether the latest run passes.

    It fails when both runs have the engine/reference ratio and the latest
    is below ``(1 - tolerance)`` times the previous one.
    """
    lines = [f"latest:   {latest.path.name} (commit {latest.commit}, {latest.datetime})"]
    if previous is not None:
        lines.append(
            f"previous: {previous.path.name} (commit {previous.commit}, {previous.datetime})"
        )
    lines.append("")
    lines.append(f"{'benchmark':<40} {'previous min s':>15} {'latest min s':>13} {'change':>8}")
    for name in sorted(latest.min_seconds):
        new = latest.min_seconds[name]
        old = previous.min_seconds.get(name) if previous is not None else None
        change = f"{new / old - 1:+.1%}" if old else ""
        old_s = f"{old:.4f}" if old else "-"
        lines.append(f"{name:<40} {old_s:>15} {new:>13.4f} {change:>8}")
    ok = True
    new_ratio = latest.ratio
    old_ratio = previous.ratio if previous is not None else None
    lines.append("")
    if new_ratio is None:
        lines.append(f"no {ENGINE} / {REFERENCE} pair in the latest run: nothing to gate on")
    elif old_ratio is None:
        lines.append(f"engine / NumPy reference (same run): {new_ratio:.2f}x (no previous ratio)")
    else:
        change = new_ratio / old_ratio - 1
        ok = change >= -tolerance
        verdict = "ok" if ok else f"REGRESSION: more than {tolerance:.0%} below the previous run"
        lines.append(
            f"engine / NumPy reference (same run): {new_ratio:.2f}x, previous {old_ratio:.2f}x "
            f"({change:+.1%}) -> {verdict}"
        )
    return "\n".join(lines), ok


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--storage", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--tolerance", type=float, default=0.10)
    args = ap.parse_args(argv)
    runs = latest_runs(args.storage)
    if not runs:
        print(f"no saved runs under {args.storage}: run `make bench` first", file=sys.stderr)
        return 2
    previous = runs[0] if len(runs) == 2 else None
    text, ok = compare(previous, runs[-1], args.tolerance)
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

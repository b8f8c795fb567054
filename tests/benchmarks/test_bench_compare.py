"""``benchmarks/compare.py``: the gate of ``make bench-compare`` on real autosave files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import compare


def _save(storage: Path, counter: int, engine_pps: float, ref_pps: float) -> Path:
    """Write a run in pytest-benchmark's autosave layout and JSON shape."""
    machine = storage / "Linux-CPython-3.11-64bit"
    machine.mkdir(parents=True, exist_ok=True)
    path = machine / f"{counter:04d}_abc123_20261206_0000{counter:02d}.json"
    bench = [
        {"name": compare.ENGINE, "stats": {"min": 20_000 / engine_pps},
         "extra_info": {"paths_per_s": engine_pps}},
        {"name": compare.REFERENCE, "stats": {"min": 500 / ref_pps},
         "extra_info": {"paths_per_s": ref_pps}},
    ]
    path.write_text(json.dumps({"benchmarks": bench, "commit_info": {"id": "abc123"},
                                "datetime": "2026-12-06T00:00:00"}))
    return path


def test_the_ratio_is_read_from_one_run(tmp_path: Path) -> None:
    run = compare.read_run(_save(tmp_path, 1, 12_000.0, 1_000.0))
    assert run.ratio == pytest.approx(12.0)


@pytest.mark.parametrize(
    ("new_engine", "exit_code"),
    [(12_000.0, 0), (10_900.0, 0), (10_700.0, 1), (30_000.0, 0)],
)
def test_a_ratio_more_than_ten_percent_below_the_previous_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], new_engine: float, exit_code: int
) -> None:
    _save(tmp_path, 1, 12_000.0, 1_000.0)  # ratio 12
    _save(tmp_path, 2, new_engine, 1_000.0)  # 10,900 = -9.2% passes; 10,700 = -10.8% fails
    assert compare.main(["--storage", str(tmp_path)]) == exit_code
    out = capsys.readouterr().out
    assert ("REGRESSION" in out) == (exit_code == 1)


def test_a_slower_machine_that_slows_both_equally_is_no_regression(tmp_path: Path) -> None:
    _save(tmp_path, 1, 12_000.0, 1_000.0)
    _save(tmp_path, 2, 6_000.0, 500.0)  # both halved: same ratio
    assert compare.main(["--storage", str(tmp_path)]) == 0


def test_only_the_two_newest_runs_are_compared(tmp_path: Path) -> None:
    _save(tmp_path, 1, 50_000.0, 1_000.0)  # an old, much better ratio is not the baseline
    _save(tmp_path, 2, 12_000.0, 1_000.0)
    _save(tmp_path, 3, 11_500.0, 1_000.0)
    runs = compare.latest_runs(tmp_path)
    assert [r.path.name[:4] for r in runs] == ["0002", "0003"]
    assert compare.main(["--storage", str(tmp_path)]) == 0


def test_no_saved_run_is_an_error(tmp_path: Path) -> None:
    assert compare.main(["--storage", str(tmp_path / "none")]) == 2

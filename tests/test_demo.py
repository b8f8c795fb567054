"""The demo end to end (slow), and its refusal to overwrite what it did not write."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from simengine.demo import main, run_demo
from simengine.engine import Forecast


def test_demo_refuses_a_directory_it_did_not_write(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    assert main(["--out", str(out), "--paths", "1000"]) == 2
    assert "not an earlier demo output" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["precious.txt"]


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    # Short fit and few paths: this checks the wiring and the numbers' sanity, not speed.
    res = run_demo(out, paths=40_000, seed=5, draws=300, tune=300, chains=2,
                   allow_unconverged=True)
    assert set(res.timings) == {
        "synth", "fit", "simulate", "stress", "sensitivity", "report", "export"
    }
    page = res.report.read_text()
    assert "raw, trailing 4 quarters" in page  # the report found the posterior
    # The demo's report tells the whole story (issue 19): sources, the deals at
    # risk, and the stress and sensitivity results it ran, its top risks named
    # from them.
    for section in ("sources", "deals", "stress", "sensitivity", "risks"):
        assert f'<section id="{section}">' in page
    assert "No sensitivity or stress results were found" not in page
    stress = pd.read_csv(res.forecast / "stress" / "stress.csv")
    assert set(stress.scenario) > {"baseline"}
    sens = pd.read_csv(res.forecast / "sensitivity" / "sensitivity.csv")
    assert len(sens) > 0
    # Four charts per segment block, plus the sources, stress and tornado charts.
    assert len(re.findall(r'<img src="data:image/png;base64,', page)) >= 3 * 4 + 3
    for e in res.exports:
        assert {"fan", "coverage", "funnel", "summary", "sources", "deals"} <= {
            p.stem for p in e.iterdir()
        }
    fan = pd.read_parquet(res.forecast / "export-parquet" / "fan.parquet")
    assert set(fan.segment) == {"smb", "mid", "ent", "total"}
    # The synthetic truth's expected period revenue (plan targets are 1.05 x it) should lie
    # inside the forecast's central 90% band for the total: a 90% band misses a fixed value
    # 10% of the time for a calibrated model, so this can fail by chance for some seeds
    # (seed 5 fixed); a systematic miss means a broken fit/engine chain.
    truth = json.loads((res.data / "truth.json").read_text())
    expected = truth["period"]["expected"]["total"]["revenue"]
    s = Forecast.read(res.forecast).summary.set_index(["segment", "metric", "stat"])["value"]
    assert s[("total", "revenue", "p05")] <= expected <= s[("total", "revenue", "p95")]
    # Re-running replaces an earlier demo output.
    assert (out / ".simengine-demo").is_file()

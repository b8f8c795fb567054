"""``simengine fit`` end to end: exit codes, nothing written on failure, the table."""

from __future__ import annotations

from pathlib import Path

import pytest

from simengine.cli import main
from simengine.io.posterior import read_parameters

pytestmark = pytest.mark.usefixtures("no_blas_probe")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, records_factory, spec_factory):
    d = tmp_path_factory.mktemp("fitcli")
    df, _ = records_factory(8, history_days=150, weekly_rate=3.0)
    data = d / "records.csv"
    df.to_csv(data, index=False, date_format="%Y-%m-%d")
    spec = d / "spec.toml"
    spec.write_text(spec_factory(drift=False, trend=True, draws=30, tune=30, chains=2).text)
    return data, spec, d


def test_bad_as_of_is_exit_2(inputs, capsys):
    data, spec, d = inputs
    out = d / "x.nc"
    code = main(["fit", str(data), "--model", str(spec), "--as-of", "5/1/2026", "--out", str(out)])
    assert code == 2
    assert "--as-of" in capsys.readouterr().err
    assert not out.exists()


def test_failed_gate_is_exit_3_and_writes_nothing_then_allow(inputs, capsys):
    data, spec, d = inputs
    out = d / "posterior.nc"
    args = ["fit", str(data), "--model", str(spec), "--as-of", "2026-01-05", "--out", str(out)]
    assert main([*args, "--seed", "3"]) == 3
    err = capsys.readouterr().err
    assert "not converged" in err
    assert "target_accept" in err
    assert not out.exists()
    assert [p.name for p in Path(d).iterdir() if p.name.startswith(".")] == []
    assert main([*args, "--seed", "3", "--allow-unconverged"]) == 0
    text = capsys.readouterr().out
    assert "raw 4Q" in text
    assert "ent/ads" in text
    assert "simengine_converged=false" in text
    assert "retry:" in text
    assert "retried with" in text
    assert text.count("check:") == 3  # one predictive-check line per part
    with pytest.warns(UserWarning, match="convergence gate"):
        p = read_parameters(out)
    assert p.as_of.isoformat() == "2026-01-05"
    assert main([*args, "--allow-unconverged"]) == 2  # exists without --force

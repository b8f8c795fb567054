"""The CLI: simulate --store, history add/list/report on a store, bad stores exit 2."""

from __future__ import annotations

import hashlib

from simengine.cli import main

PLAN = """start = 2027-01-04
end = 2027-04-04
[targets]
smb = 150000
mid = 400000
ent = 600000
"""


def test_simulate_store_then_add_list_report(models_dir, tmp_path, capsys):
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN, encoding="utf-8")
    store = tmp_path / "h.duckdb"
    common = [
        "simulate",
        "--assumptions",
        str(models_dir / "assumptions.toml"),
        "--plan",
        str(plan),
        "--paths",
        "4000",
        "--block-size",
        "1000",
    ]
    assert main([*common, "--seed", "1", "--out", str(tmp_path / "f1"), "--store", str(store)]) == 0
    assert "recorded in" in capsys.readouterr().out
    assert main([*common, "--seed", "2", "--out", str(tmp_path / "f2")]) == 0
    assert main(["history", "add", str(tmp_path / "f2"), "--store", str(store)]) == 0
    assert main(["history", "add", str(tmp_path / "f2"), "--store", str(store)]) == 0
    assert "already recorded" in capsys.readouterr().out
    assert main(["history", "list", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert out.count("2027-01-04") >= 2  # one row per snapshot (same as-of, two seeds)
    assert "P(hit)" in out
    assert main(["history", "report", "--store", str(store), "--out", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / "history.html").exists()
    assert (tmp_path / "rep" / "variance.parquet").exists()
    # another period: kept apart, with a note
    other = tmp_path / "other.toml"
    other.write_text(PLAN.replace("2027-04-04", "2027-03-31"), encoding="utf-8")
    common[common.index(str(plan))] = str(other)
    assert main([*common, "--seed", "1", "--out", str(tmp_path / "f3"), "--store", str(store)]) == 0
    assert "kept apart under its own plan key" in capsys.readouterr().out


def test_simulate_refuses_a_foreign_store_before_simulating(models_dir, tmp_path, capsys):
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN, encoding="utf-8")
    bad = tmp_path / "notes.duckdb"
    bad.write_text("my notes\n" * 50, encoding="utf-8")
    sha = hashlib.sha256(bad.read_bytes()).hexdigest()
    code = main(
        [
            "simulate",
            "--assumptions",
            str(models_dir / "assumptions.toml"),
            "--plan",
            str(plan),
            "--paths",
            "2000",
            "--seed",
            "1",
            "--out",
            str(tmp_path / "f"),
            "--store",
            str(bad),
        ]
    )
    assert code == 2
    assert "not a simengine history store" in capsys.readouterr().err
    assert not (tmp_path / "f").exists()  # nothing written
    assert hashlib.sha256(bad.read_bytes()).hexdigest() == sha


def test_reforecast_rejects_bad_dates_and_foreign_store(models_dir, tmp_path, capsys):
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN, encoding="utf-8")
    args = [
        "reforecast",
        "records.csv",
        "--model",
        str(models_dir / "demo.toml"),
        "--plan",
        str(plan),
        "--out",
        str(tmp_path / "o"),
    ]
    assert main([*args, "--store", str(tmp_path / "h.duckdb"), "--as-of", "2027-13-01"]) == 2
    assert "--as-of" in capsys.readouterr().err
    bad = tmp_path / "bad.duckdb"
    bad.write_bytes(b"\0" * 4096)
    assert main([*args, "--store", str(bad), "--as-of", "2027-01-04"]) == 2
    assert "not a simengine history store" in capsys.readouterr().err

from __future__ import annotations

import pandas as pd
from planning.planning_factories import write_inputs

from simengine.cli import main

SCENARIOS = """
[[scenario]]
name = "mqls-minus-20pct"
title = "MQLs -20%"
[[scenario.shock]]
what = "arrivals"
stage = "mql"
how = "scale"
value = 0.8

[[scenario]]
name = "win-ent"
[[scenario.shock]]
what = "conversion"
segment = "ent"
step = "won"
how = "add"
value = -0.03
"""


def test_stress_cli_writes_stress_csv_and_chart(tmp_path, capsys):
    a, p = write_inputs(tmp_path)
    s = tmp_path / "s.toml"
    s.write_text(SCENARIOS)
    out = tmp_path / "stress"
    argv = [
        "stress",
        "--plan",
        str(p),
        "--assumptions",
        str(a),
        "--scenarios",
        str(s),
        "--out",
        str(out),
        "--paths",
        "600",
        "--batches",
        "3",
        "--draws",
        "50",
    ]
    assert main(argv) == 0
    df = pd.read_csv(out / "stress.csv")
    assert list(dict.fromkeys(df.scenario)) == ["baseline", "mqls-minus-20pct", "win-ent"]
    assert (out / "stress.png").stat().st_size > 0
    text = capsys.readouterr().out
    assert "MQLs -20%" in text
    assert "variance reduction" in text


def test_stress_cli_bad_scenario_exits_2_and_writes_nothing(tmp_path, capsys):
    a, p = write_inputs(tmp_path)
    s = tmp_path / "s.toml"
    s.write_text(SCENARIOS.replace('segment = "ent"', 'segment = "emea"'))
    out = tmp_path / "stress"
    argv = [
        "stress",
        "--plan",
        str(p),
        "--assumptions",
        str(a),
        "--scenarios",
        str(s),
        "--out",
        str(out),
        "--paths",
        "100",
        "--batches",
        "2",
        "--draws",
        "20",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "s.toml" in err
    assert "scenario[2].shock[1].segment" in err
    assert "emea" in err
    assert not out.exists()
    assert not list(tmp_path.glob(".stress*"))


def test_sensitivity_cli_rejects_bad_pct(tmp_path, capsys):
    a, p = write_inputs(tmp_path)
    out = tmp_path / "sens"
    assert (
        main(
            [
                "sensitivity",
                "--plan",
                str(p),
                "--assumptions",
                str(a),
                "--out",
                str(out),
                "--pct",
                "1.5",
            ]
        )
        == 2
    )
    assert "--pct" in capsys.readouterr().err
    assert not out.exists()


def test_stress_cli_runs_the_shipped_demo_scenarios_on_a_posterior(tmp_path, models_dir):
    from planning.planning_factories import make_params, write_posterior_nc

    post = tmp_path / "posterior.nc"
    write_posterior_nc(make_params(), post)
    plan = tmp_path / "plan.toml"
    plan.write_text(
        "start = 2027-01-04\nend = 2027-04-04\n[targets]\nsmb = 260000\nmid = 370000\nent = 2500000\n"
    )
    out = tmp_path / "stress"
    argv = [
        "stress",
        "--plan",
        str(plan),
        "--posterior",
        str(post),
        "--scenarios",
        str(models_dir / "scenarios" / "demo.toml"),
        "--out",
        str(out),
        "--paths",
        "600",
        "--batches",
        "3",
    ]
    assert main(argv) == 0
    df = pd.read_csv(out / "stress.csv")
    assert len(set(df.scenario)) == 6
    mqls = df[
        (df.scenario == "mqls-minus-20pct")
        & (df.segment == "total")
        & (df.metric == "revenue")
        & (df.stat == "mean")
    ].iloc[0]
    assert mqls.delta < 0


_RECORDS = """id,segment,channel,mql_at,sql_at,opportunity_at,won_at,lost_at,amount
E-1,ent,web,2026-12-01,2026-12-03,2026-12-10,,,400000
E-2,ent,web,2026-12-01,2026-12-03,2026-12-28,,,300000
S-1,smb,web,2026-12-20,,,,,
"""


def _stress_argv(a, p, s, out, *extra):
    return ["stress", "--plan", str(p), "--assumptions", str(a), "--scenarios", str(s),
            "--out", str(out), "--paths", "600", "--batches", "3", "--draws", "50", *extra]


def test_stress_takes_the_pipeline_as_simulate_does(tmp_path, models_dir, capsys):
    """Issue 19: `--pipeline/--model` on stress; the open deals raise the baseline revenue
    path by path (common random numbers: open units have their own streams)."""
    a, p = write_inputs(tmp_path)
    s = tmp_path / "s.toml"
    s.write_text(SCENARIOS)
    rec = tmp_path / "r.csv"
    rec.write_text(_RECORDS)
    spec = str(models_dir / "demo.toml")
    assert main(_stress_argv(a, p, s, tmp_path / "without")) == 0
    assert main(_stress_argv(a, p, s, tmp_path / "with", "--pipeline", str(rec), "--model",
                             spec)) == 0

    def mean_rev(d):
        df = pd.read_csv(d / "stress.csv")
        row = df[(df.scenario == "baseline") & (df.segment == "ent") & (df.metric == "revenue")
                 & (df.stat == "mean")]
        return float(row.value.iloc[0])

    assert mean_rev(tmp_path / "with") > mean_rev(tmp_path / "without")
    # --pipeline needs --model, and goes with --assumptions
    capsys.readouterr()
    assert main(_stress_argv(a, p, s, tmp_path / "x", "--pipeline", str(rec))) == 2
    assert "--pipeline" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_sensitivity_and_plan_take_the_pipeline(tmp_path, models_dir):
    a, p = write_inputs(tmp_path)
    rec = tmp_path / "r.csv"
    rec.write_text(_RECORDS)
    spec = str(models_dir / "demo.toml")
    out = tmp_path / "sens"
    argv = ["sensitivity", "--plan", str(p), "--assumptions", str(a), "--pipeline", str(rec),
            "--model", spec, "--out", str(out), "--paths", "200", "--batches", "2",
            "--draws", "20", "--pct", "0.1"]
    assert main(argv) == 0
    assert (out / "sensitivity.csv").is_file()
    plan_out = tmp_path / "plan"
    argv = ["plan", "--plan", str(p), "--assumptions", str(a), "--pipeline", str(rec),
            "--model", spec, "--draws", "20", "--no-goal-seek", "--out", str(plan_out)]
    assert main(argv) == 0


def test_stress_nan_variance_reduction_in_words(tmp_path, capsys):
    """Issue 19: a scenario whose paired variance is 0 (P(hit) 0 throughout) printed
    "CRN variance reduction xnan"."""
    a, p = write_inputs(tmp_path)
    p.write_text(p.read_text().replace("ent = 1500000", "ent = 1500000000"))
    s = tmp_path / "s.toml"
    s.write_text(SCENARIOS)
    assert main(_stress_argv(a, p, s, tmp_path / "out")) == 0
    text = " ".join(capsys.readouterr().out.split())  # the console wraps long lines
    assert "reduction xnan" not in text
    assert "no CRN variance reduction to show" in text

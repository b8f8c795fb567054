"""The ``stress`` and ``sensitivity`` commands (set-ups in ``tests/cli/conftest.py``)."""

from __future__ import annotations

import pandas as pd

from simengine.cli import main


def test_stress_cli_writes_stress_csv_and_chart(tmp_path, stress_argv, capsys):
    out = tmp_path / "stress"
    assert main(stress_argv(out)) == 0
    df = pd.read_csv(out / "stress.csv")
    assert list(dict.fromkeys(df.scenario)) == ["baseline", "mqls-minus-20pct", "win-ent"]
    assert (out / "stress.png").stat().st_size > 0
    text = capsys.readouterr().out
    assert "MQLs -20%" in text
    assert "variance reduction" in text


def test_stress_cli_bad_scenario_exits_2_and_writes_nothing(tmp_path, scenarios, stress_argv,
                                                           capsys):
    scenarios.write_text(scenarios.read_text().replace('segment = "ent"', 'segment = "emea"'))
    out = tmp_path / "stress"
    assert main(stress_argv(out, paths=100, batches=2, draws=20)) == 2
    err = capsys.readouterr().err
    assert "s.toml" in err
    assert "scenario[2].shock[1].segment" in err
    assert "emea" in err
    assert not out.exists()
    assert not list(tmp_path.glob(".stress*"))


def test_sensitivity_cli_rejects_bad_pct(tmp_path, sensitivity_argv, capsys):
    out = tmp_path / "sens"
    assert main(sensitivity_argv(out, "--pct", "1.5")) == 2
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
    argv = ["stress", "--plan", str(plan), "--posterior", str(post), "--scenarios",
            str(models_dir / "scenarios" / "demo.toml"), "--out", str(out), "--paths", "600",
            "--batches", "3"]
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


def test_stress_takes_the_pipeline_as_simulate_does(tmp_path, stress_argv, pipeline, capsys):
    """Issue 19: `--pipeline/--model` on stress; the open deals raise the baseline revenue
    path by path (common random numbers: open units have their own streams)."""
    assert main(stress_argv(tmp_path / "without")) == 0
    assert main(stress_argv(tmp_path / "with", *pipeline)) == 0

    def mean_rev(d):
        df = pd.read_csv(d / "stress.csv")
        row = df[(df.scenario == "baseline") & (df.segment == "ent") & (df.metric == "revenue")
                 & (df.stat == "mean")]
        return float(row.value.iloc[0])

    assert mean_rev(tmp_path / "with") > mean_rev(tmp_path / "without")
    # --pipeline needs --model, and goes with --assumptions
    capsys.readouterr()
    assert main(stress_argv(tmp_path / "x", *pipeline[:2])) == 2
    assert "--pipeline" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_sensitivity_and_plan_take_the_pipeline(tmp_path, sensitivity_argv, plan_argv, pipeline):
    out = tmp_path / "sens"
    argv = sensitivity_argv(out, *pipeline, "--paths", "200", "--batches", "2", "--draws", "20",
                            "--pct", "0.1")
    assert main(argv) == 0
    assert (out / "sensitivity.csv").is_file()
    assert main(plan_argv(tmp_path / "plan", *pipeline, "--no-goal-seek", draws=20)) == 0


def test_stress_nan_variance_reduction_in_words(tmp_path, inputs, stress_argv, capsys):
    """Issue 19: a scenario whose paired variance is 0 (P(hit) 0 throughout) printed
    "CRN variance reduction xnan"."""
    p = inputs.plan
    p.write_text(p.read_text().replace("ent = 1500000", "ent = 1500000000"))
    assert main(stress_argv(tmp_path / "out")) == 0
    text = " ".join(capsys.readouterr().out.split())  # the console wraps long lines
    assert "reduction xnan" not in text
    assert "no CRN variance reduction to show" in text

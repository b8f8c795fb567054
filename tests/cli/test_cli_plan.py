"""The ``plan`` command: the quick form and the assumptions form (set-ups in ``conftest.py``)."""

from __future__ import annotations

from fractions import Fraction

import pandas as pd
import pytest

from simengine.cli import main


def test_plan_quick_form_writes_the_three_rounding_rules(tmp_path, capsys):
    out = tmp_path / "plan"
    argv = [
        "plan",
        "--target",
        "15000000",
        "--deal-size",
        "60000",
        "--rates",
        "0.30,0.65,0.22",
        "--stages",
        "mql,sql,opportunity,won",
        "--planned",
        "5000",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "5,827.5" in text
    assert "827.5" in text
    df = pd.read_csv(out / "reverse.csv")
    assert set(df["rounding"]) == {"exact", "nearest", "up"}
    exact = df[df.rounding == "exact"].set_index("stage")
    assert Fraction(exact.loc["mql", "units_exact"]) == Fraction(2500000, 429)
    assert exact.loc["mql", "gap"] == float(Fraction(2500000, 429) - 5000)
    # an existing output is not replaced without --force, and nothing changes
    before = (out / "reverse.csv").read_bytes()
    assert main(argv) == 2
    assert (out / "reverse.csv").read_bytes() == before


def test_plan_quick_form_bad_input_exits_2_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "plan"
    quick = ["plan", "--target", "1e6", "--deal-size", "1e4", "--out", str(out)]
    assert main([*quick, "--rates", "0.3,x"]) == 2
    assert main([*quick, "--rates", "0.3,1.5"]) == 2
    assert main([*quick, "--rates", "0.3", "--stages", "a,b,c"]) == 2
    err = capsys.readouterr().err
    assert "--rates" in err
    assert not out.exists()


def test_plan_from_assumptions_writes_reverse_and_capacity(tmp_path, plan_argv):
    assert main(plan_argv(tmp_path / "out", "--no-goal-seek", draws=200)) == 0
    rev = pd.read_csv(tmp_path / "out" / "reverse.csv")
    exact = rev[(rev.rounding == "exact") & (rev.source == "all") & (rev.stage == "won")].set_index(
        "segment"
    )
    assert exact.loc["smb", "value"] == pytest.approx(400_000)
    assert exact.loc["total", "value"] == pytest.approx(1_900_000)
    smb_mql = rev[(rev.rounding == "exact") & (rev.segment == "smb") & (rev.stage == "mql")].iloc[0]
    assert smb_mql.planned == 1000
    cap = pd.read_csv(tmp_path / "out" / "capacity.csv")
    assert set(cap.segment) == {"smb", "ent"}


def test_plan_needs_exactly_one_parameter_source(inputs, capsys):
    a, p = inputs
    assert main(["plan", "--plan", str(p)]) == 2
    assert main(["plan", "--plan", str(p), "--assumptions", str(a), "--posterior", str(a)]) == 2
    assert "exactly one" in capsys.readouterr().err


def test_plan_capacity_warning_with_given_reps(tmp_path, plan_argv, capsys):
    out = tmp_path / "out"
    assert main(plan_argv(out, "--no-goal-seek", "--reps", "smb=1,ent=1")) == 0
    text = capsys.readouterr().out
    # smb plans 1,000 MQLs in 91 days = 76.9 a week; one rep works 120 x 7 / 30.4375 = 27.6
    assert "smb mql: planned flow of 76.9 a week exceeds" in text.replace("\n", " ")
    cap = pd.read_csv(out / "capacity.csv").set_index("segment")
    assert cap.loc["smb", "warning"].startswith("smb mql")
    assert cap.loc["ent", "reps"] == 1
    assert main(plan_argv(tmp_path / "bad", "--no-goal-seek", "--reps", "emea=2")) == 2


def test_plan_goal_seek_beside_the_reverse_funnel(tmp_path, plan_argv, capsys):
    out = tmp_path / "out"
    assert main(plan_argv(out, "--quantiles", "0.5", "--paths", "400")) == 0
    gs = pd.read_csv(out / "goalseek.csv")
    assert set(zip(gs.segment, gs.stage, strict=True)) == {
        ("smb", "mql"),
        ("ent", "mql"),
        ("ent", "opportunity"),
    }
    rev = pd.read_csv(out / "reverse.csv")
    smb = rev[(rev.rounding == "exact") & (rev.segment == "smb") & (rev.stage == "mql")].iloc[0]
    assert gs[gs.segment == "smb"].iloc[0].reverse_funnel == pytest.approx(smb.units)
    assert (gs.status == "ok").all()
    assert (gs.prob_hit >= 0.5).all()
    # issue 19: a goal seek is announced only where it has rows (no sql/won entries)
    text = capsys.readouterr().out
    assert "goal seek: mql volume" in text
    assert "goal seek: opportunity volume" in text
    assert "goal seek: sql volume" not in text
    # a gap only where the plan sets a volume (smb mql = 1,000), blank elsewhere
    smb_gap = gs[(gs.segment == "smb") & (gs.stage == "mql")].iloc[0]
    assert smb_gap.gap == pytest.approx(smb_gap.needed - 1000.0)
    assert gs[gs.segment == "ent"].gap.isna().all()
    assert gs[gs.segment == "ent"].planned.isna().all()
    # no rep-capacity warning when no --reps constrains the team
    assert "warning" not in text


def test_goal_seek_reps_at_the_first_stage(tmp_path, plan_argv):
    out = tmp_path / "out"
    assert main(plan_argv(out, "--quantiles", "0.5", "--paths", "300", draws=30)) == 0
    gs = pd.read_csv(out / "goalseek.csv")
    mql = gs[gs.stage == "mql"]
    # 91-day period: one rep works 120 x 91 / 30.4375 MQLs
    assert mql.reps_needed.to_numpy() == pytest.approx(mql.needed.to_numpy() / (120 * 91 / 30.4375))
    assert gs[gs.stage == "opportunity"].reps_needed.isna().all()

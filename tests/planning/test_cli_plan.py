from __future__ import annotations

from fractions import Fraction

import pandas as pd

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
    assert (
        main(
            ["plan", "--target", "1e6", "--deal-size", "1e4", "--rates", "0.3,x", "--out", str(out)]
        )
        == 2
    )
    assert (
        main(
            [
                "plan",
                "--target",
                "1e6",
                "--deal-size",
                "1e4",
                "--rates",
                "0.3,1.5",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert (
        main(
            [
                "plan",
                "--target",
                "1e6",
                "--deal-size",
                "1e4",
                "--rates",
                "0.3",
                "--stages",
                "a,b,c",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "--rates" in err
    assert not out.exists()

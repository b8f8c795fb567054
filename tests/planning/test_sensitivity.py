"""Sensitivity on common random numbers: signs, exact CRN consequences, ranking, words."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from planning_factories import make_small

from simengine.planning.sensitivity import (
    COLUMNS,
    plot_stress,
    plot_tornado,
    run_sensitivity,
    sensitivity_inputs,
    top_risks,
    write_sensitivity,
)


@pytest.fixture(scope="module")
def sens():
    params, plan = make_small()
    return run_sensitivity(params, plan, paths=2000, seed=4, batches=5)


def test_inputs_cover_every_segment_step_and_stage():
    params, plan = make_small()
    labels = [i.label for i in sensitivity_inputs(params, plan)]
    assert labels == [
        "smb new mql volume",
        "smb mql → opportunity conversion",
        "smb mql → opportunity delay (median days)",
        "smb opportunity → won conversion",
        "smb opportunity → won delay (median days)",
        "smb deal size (median)",
        "ent new mql volume",
        "ent mql → opportunity conversion",
        "ent mql → opportunity delay (median days)",
        "ent opportunity → won conversion",
        "ent opportunity → won delay (median days)",
        "ent deal size (median)",
    ]
    conv = next(
        i for i in sensitivity_inputs(params, plan) if i.label == "ent opportunity → won conversion"
    )
    sd = params.conversion[:, 1, 1].std()
    assert conv.basis == "1 sd"
    assert conv.up_value - conv.from_value == pytest.approx(sd)
    pct = sensitivity_inputs(params, plan, pct=0.2)
    assert {i.basis for i in pct} == {"±20%"}


def test_table_shape_and_ranks(sens):
    assert tuple(sens.columns) == COLUMNS
    assert len(sens) == 12 * 2 * 2  # inputs x directions x (own segment, total)
    for g, d in sens.groupby("outcome_segment"):
        ranks = sorted(set(d["rank"]))
        assert ranks == list(range(1, len(ranks) + 1))
        swings = d.drop_duplicates("input").sort_values("rank")["swing_prob_hit"].to_numpy()
        assert np.all(np.diff(swings) <= 0), g


def _row(df, label, direction, outcome):
    r = df[(df.input == label) & (df.direction == direction) & (df.outcome_segment == outcome)]
    assert len(r) == 1
    return r.iloc[0]


def test_moves_push_p_hit_the_expected_way(sens):
    # One posterior sd of these inputs moves P(hit) of their segment clearly; allow 3 paired
    # standard errors against the expected sign (never a free pass: deltas must exist).
    for label in (
        "smb new mql volume",
        "ent opportunity → won conversion",
        "smb deal size (median)",
    ):
        seg = label.split()[0]
        up, down = _row(sens, label, "up", seg), _row(sens, label, "down", seg)
        assert up.delta_prob_hit >= -3 * up.delta_prob_hit_se
        assert down.delta_prob_hit <= 3 * down.delta_prob_hit_se
        assert up.delta_prob_hit > down.delta_prob_hit
    # a longer deal cycle can only push wins past the period end
    slow = _row(sens, "ent opportunity → won delay (median days)", "up", "ent")
    assert slow.delta_prob_hit <= 3 * slow.delta_prob_hit_se


def test_deal_size_move_scales_p50_revenue_exactly(sens):
    # CRN: every amount of the segment is multiplied by the same factor, so its
    # P50 revenue moves by that factor (within twice the sketch's 0.4975 % error).
    params, _ = make_small()
    sd = params.deal_size_mu[:, 0].std()
    down = _row(sens, "smb deal size (median)", "down", "smb")
    base = down.revenue_p50 - down.delta_revenue_p50
    assert down.revenue_p50 == pytest.approx(base * math.exp(-sd), rel=2 * 0.005)


def test_top_risks_in_words(sens):
    risks = top_risks(sens)
    assert 1 <= len(risks) <= 3
    worst = sens[sens.outcome_segment == "total"].sort_values("delta_prob_hit").iloc[0]
    assert risks[0].startswith(worst.input + ":")
    assert "lowers P(hit total) by" in risks[0]


def test_top_risks_on_a_hand_made_table():
    df = pd.DataFrame(
        {
            "input": ["ent opportunity → won conversion"] * 2 + ["smb new mql volume"] * 2,
            "what": ["conversion"] * 2 + ["arrivals"] * 2,
            "direction": ["down", "up"] * 2,
            "basis": ["1 sd", "1 sd", "±10%", "±10%"],
            "from_value": [0.22, 0.22, 1000.0, 1000.0],
            "to_value": [0.196, 0.244, 900.0, 1100.0],
            "outcome_segment": ["total"] * 4,
            "prob_hit": [0.71, 0.82, 0.75, 0.79],
            "delta_prob_hit": [-0.061, 0.05, -0.02, 0.02],
            "delta_prob_hit_se": [0.003, 0.003, 0.002, 0.002],
        }
    )
    assert top_risks(df, n=2) == [
        "ent opportunity → won conversion: one posterior sd lower (22.0% → 19.6%) lowers "
        "P(hit total) by 6.1 points (± 0.3) to 71%.",
        "smb new mql volume: 10% lower (1,000 → 900) lowers P(hit total) by 2.0 points (± 0.2) to 75%.",
    ]
    assert top_risks(df, segment="emea") == []


def test_csv_round_trip_and_charts(sens, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = write_sensitivity(sens, tmp_path / "s")
    back = pd.read_csv(out / "sensitivity.csv")
    assert (out / "tornado.png").stat().st_size > 0
    assert top_risks(back) == top_risks(sens)
    fig = plot_tornado(back)
    assert len(fig.axes[0].get_yticklabels()) == 12
    from simengine.planning import stress

    assert plot_stress is stress.plot_stress  # the re-export is the stress chart itself
    plt.close("all")

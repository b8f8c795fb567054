from __future__ import annotations

import math

import numpy as np
import pytest
from planning_factories import make_plan

from simengine.errors import InputError
from simengine.planning.scenarios import (
    MIN_MEDIAN,
    Scenario,
    Shock,
    apply_scenario,
    apply_shock,
    load_scenarios,
    parse_scenarios,
)


def _copy_arrays(p):
    return {
        k: getattr(p, k).copy()
        for k in ("conversion", "delay_mu", "arrival_rate", "arrival_trend", "deal_size_mu")
    }


def test_shipped_scenario_files_parse(models_dir):
    files = sorted((models_dir / "scenarios").glob("*.toml"))
    assert files
    for f in files:
        scs = load_scenarios(f)
        assert scs
    titles = {s.title for s in load_scenarios(models_dir / "scenarios" / "demo.toml")}
    assert {
        "MQLs -20%",
        "Win rate -3 points in ent",
        "Deal cycle +15 days",
        "ASP -10% in smb",
        "Marketing plan: 5,000 MQLs",
    } <= titles


def test_shipped_demo_scenarios_apply_and_leave_inputs_untouched(models_dir, params, plan):
    before = _copy_arrays(params)
    targets = dict(plan.targets)
    for sc in load_scenarios(models_dir / "scenarios" / "demo.toml"):
        apply_scenario(params, plan, sc)
    for k, v in before.items():
        np.testing.assert_array_equal(getattr(params, k), v)
    assert plan.targets == targets


def test_conversion_add_points_in_one_segment_clipped(params, plan):
    p, _ = apply_shock(params, plan, Shock("conversion", "add", -0.03, segment="ent", step="won"))
    np.testing.assert_allclose(
        p.conversion[:, 3, 2], np.clip(params.conversion[:, 3, 2] - 0.03, 0, 1)
    )
    np.testing.assert_array_equal(p.conversion[:, :3], params.conversion[:, :3])
    np.testing.assert_array_equal(p.conversion[:, 3, :2], params.conversion[:, 3, :2])
    p2, _ = apply_shock(params, plan, Shock("conversion", "add", 0.9))
    assert p2.conversion.max() == 1.0
    p3, _ = apply_shock(params, plan, Shock("conversion", "scale", 0.5, step="sql"))
    np.testing.assert_allclose(p3.conversion[:, :, 0], params.conversion[:, :, 0] * 0.5)


def test_delay_add_shifts_the_median_by_days(params, plan):
    p, _ = apply_shock(params, plan, Shock("delay", "add", 15, step="won"))
    np.testing.assert_allclose(np.exp(p.delay_mu[:, :, 2]), np.exp(params.delay_mu[:, :, 2]) + 15)
    np.testing.assert_array_equal(p.delay_mu[:, :, :2], params.delay_mu[:, :, :2])
    p2, _ = apply_shock(params, plan, Shock("delay", "add", -1000))
    np.testing.assert_allclose(p2.delay_mu, math.log(MIN_MEDIAN))
    p3, _ = apply_shock(params, plan, Shock("delay", "set", 30, segment="mid/web", step="sql"))
    np.testing.assert_allclose(p3.delay_mu[:, 2, 0], math.log(30))


def test_deal_size_scale_multiplies_the_median(params, plan):
    p, _ = apply_shock(params, plan, Shock("deal_size", "scale", 0.9, segment="smb"))
    np.testing.assert_allclose(p.deal_size_mu[:, :2], params.deal_size_mu[:, :2] + math.log(0.9))
    np.testing.assert_array_equal(p.deal_size_mu[:, 2:], params.deal_size_mu[:, 2:])
    np.testing.assert_array_equal(p.deal_size_sigma, params.deal_size_sigma)


def test_arrivals_set_splits_a_segment_total_across_cells_per_draw(params, plan):
    p, pl = apply_shock(params, plan, Shock("arrivals", "set", 1300, segment="smb", stage="mql"))
    weeks = plan.period_days / 7
    per_draw = p.arrival_rate[:, :2, 0].sum(axis=1) * weeks
    np.testing.assert_allclose(per_draw, 1300)
    share = params.arrival_rate[:, 0, 0] / params.arrival_rate[:, :2, 0].sum(axis=1)
    np.testing.assert_allclose(p.arrival_rate[:, 0, 0] * weeks / 1300, share)
    assert np.all(p.arrival_trend[:, :2, 0] == 0)
    np.testing.assert_array_equal(p.arrival_rate[:, 2:], params.arrival_rate[:, 2:])
    assert pl.new_units == {}


def test_arrivals_set_without_segment_splits_over_segments_by_volume(params, plan):
    p, _ = apply_shock(params, plan, Shock("arrivals", "set", 5000, stage="mql"))
    weeks = plan.period_days / 7
    np.testing.assert_allclose(p.arrival_rate[:, :, 0].sum(axis=1) * weeks, 5000, rtol=0, atol=1e-9)
    # sales-sourced opportunities are untouched
    np.testing.assert_array_equal(p.arrival_rate[:, :, 2], params.arrival_rate[:, :, 2])


def test_arrivals_shocks_follow_the_plans_new_units(params):
    plan = make_plan({"mid": {"mql": 1430.0}})
    _, pl = apply_shock(params, plan, Shock("arrivals", "scale", 0.8, stage="mql"))
    assert pl.new_units["mid"]["mql"] == pytest.approx(1144.0)
    assert plan.new_units["mid"]["mql"] == 1430.0  # input untouched
    _, pl2 = apply_shock(params, plan, Shock("arrivals", "set", 1000, segment="mid", stage="mql"))
    assert pl2.new_units["mid"]["mql"] == 1000
    with pytest.raises(InputError, match="shock the segment"):
        apply_shock(params, plan, Shock("arrivals", "scale", 2, segment="mid/web", stage="mql"))


def test_target_shocks(params, plan):
    _, pl = apply_shock(params, plan, Shock("target", "scale", 1.1, segment="mid"))
    assert pl.targets["mid"] == pytest.approx(330_000)
    assert pl.targets["smb"] == 150_000
    _, pl2 = apply_shock(params, plan, Shock("target", "set", 2_400_000))
    assert pl2.total_target == pytest.approx(2_400_000)
    assert pl2.targets["ent"] / pl2.targets["smb"] == pytest.approx(5)
    with pytest.raises(InputError, match="positive"):
        apply_shock(params, plan, Shock("target", "add", -1e9, segment="smb"))


@pytest.mark.parametrize(
    ("shock", "column"),
    [
        (
            Shock("conversion", "add", 0.1, segment="emea", where="scenario[1].shock[1]"),
            "scenario[1].shock[1].segment",
        ),
        (Shock("conversion", "add", 0.1, step="lost", where="s"), "s.step"),
        (Shock("arrivals", "scale", 2, stage="won", where="s"), "s.stage"),
        (Shock("target", "scale", 2, segment="nope", where="s"), "s.segment"),
    ],
)
def test_shocks_not_fitting_the_parameters_raise_input_error(params, plan, shock, column):
    with pytest.raises(InputError) as info:
        apply_scenario(params, plan, Scenario("x", "x", "", (shock,), file="sc.toml"))
    issue = info.value.issues[0]
    assert issue.file == "sc.toml"
    assert issue.column == column


BAD = [
    ("[[scenario]]\nname='a'\n", "scenario[1].shock", "needs at least one"),
    (
        "[[scenario]]\nname='baseline'\n[[scenario.shock]]\nwhat='target'\nhow='scale'\nvalue=1\n",
        "scenario[1].name",
        "reserved",
    ),
    (
        "[[scenario]]\nname='a'\n[[scenario.shock]]\nwhat='mqls'\nhow='scale'\nvalue=1\n",
        "scenario[1].shock[1].what",
        "must be one of",
    ),
    (
        "[[scenario]]\nname='a'\n[[scenario.shock]]\nwhat='conversion'\nhow='add'\nvalue=-3\n",
        "scenario[1].shock[1].value",
        "probability points",
    ),
    (
        "[[scenario]]\nname='a'\n[[scenario.shock]]\nwhat='conversion'\nstage='mql'\nhow='add'\nvalue=0.1\n",
        "scenario[1].shock[1].stage",
        "only arrivals",
    ),
    (
        "[[scenario]]\nname='a'\n[[scenario.shock]]\nwhat='arrivals'\nhow='set'\nvalue=10\n",
        "scenario[1].shock[1].stage",
        "entry stage",
    ),
    (
        "[[scenario]]\nname='a'\n[[scenario.shock]]\nwhat='delay'\nhow='scale'\nvalue=0\n",
        "scenario[1].shock[1].value",
        "> 0",
    ),
    (
        "[[scenario]]\nname='a'\n[[scenario.shock]]\nwhat='delay'\nhow='scale'\nvalue='x'\n",
        "scenario[1].shock[1].value",
        "finite number",
    ),
    (
        "[[scenario]]\nname='a'\n[[scenario.shock]]\nwhat='delay'\nhow='scale'\nvalue=1\nwhen=2\n",
        "scenario[1].shock[1].when",
        "unknown key",
    ),
    ("scenario = 3\n", "scenario", "at least one"),
    (
        "[[scenario]]\nname='a'\n[[scenario.shock]]\nwhat='target'\nhow='scale'\nvalue=1\n[[scenario]]\nname='a'\n[[scenario.shock]]\nwhat='target'\nhow='scale'\nvalue=1\n",
        "scenario[2].name",
        "unique",
    ),
]


@pytest.mark.parametrize(("text", "column", "rule"), BAD)
def test_bad_scenario_files_name_the_key_value_and_rule(text, column, rule):
    with pytest.raises(InputError) as info:
        parse_scenarios(text, source="bad.toml")
    hits = [i for i in info.value.issues if i.column == column]
    assert hits, info.value.report()
    assert rule in hits[0].rule
    assert hits[0].file == "bad.toml"


def test_all_problems_reported_at_once():
    text = "[[scenario]]\nname='a'\n[[scenario.shock]]\nwhat='x'\nhow='y'\nvalue=1\n[[scenario.shock]]\nwhat='target'\nhow='set'\nvalue=-1\n"
    with pytest.raises(InputError) as info:
        parse_scenarios(text)
    assert {i.column for i in info.value.issues} == {
        "scenario[1].shock[1].what",
        "scenario[1].shock[1].how",
        "scenario[1].shock[2].value",
    }


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        load_scenarios(tmp_path / "nope.toml")
    f = tmp_path / "x.toml"
    f.write_text("[[scenario\n")
    with pytest.raises(InputError, match="not valid TOML"):
        load_scenarios(f)

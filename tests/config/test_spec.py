from __future__ import annotations

import math

import pytest

from simengine.config.spec import cell_label, load_spec, parse_spec
from simengine.errors import InputError

GOOD = """
name = "t"
stages = ["mql", "sql", "opportunity", "won"]
segment_by = ["segment", "channel"]
[model]
drift = false
draws = 500
"""


def test_demo_spec_loads(models_dir):
    spec = load_spec(models_dir / "demo.toml")
    assert spec.stages == ("mql", "sql", "opportunity", "won")
    assert spec.steps == ("sql", "opportunity", "won")
    assert spec.segment_column == "segment"
    assert spec.pipeline_index == 2
    assert spec.stage_columns[-1] == "won_at"
    assert spec.canonical_columns[0] == "id"
    assert len(spec.sha256) == 64


def test_every_shipped_spec_loads(models_dir):
    specs = sorted(models_dir.glob("*.toml"))
    assert specs, "models/ ships at least one spec"
    for path in specs:
        if path.name.startswith("assumptions"):
            continue
        assert load_spec(path).stages


def test_options_parsed_and_defaults_kept():
    spec = parse_spec(GOOD)
    assert spec.options.drift is False
    assert spec.options.draws == 500
    assert spec.options.tune == 1000  # default kept
    assert spec.stage_index("won") == 3
    with pytest.raises(KeyError, match="unknown stage"):
        spec.stage_index("nope")


@pytest.mark.parametrize(
    ("text", "column", "rule"),
    [
        ('stages = ["mql"]', "stages", "at least two"),
        ('stages = ["a", "a"]', "stages", "unique"),
        ('stages = ["A", "b"]', "stages", "lower-case"),
        ('stages = ["a", "b"]\npipeline_stage = "c"', "pipeline_stage", "one of the stages"),
        ('stages = ["a", "b"]\npipeline_stage = "b"', "pipeline_stage", "last"),
        ('stages = ["a", "b"]\nsegment_by = ["amount"]', "segment_by", "clashes"),
        ('stages = ["a", "b"]\nbogus = 1', "bogus", "unknown key"),
        ('stages = ["a", "b"]\n[model]\ndraws = "many"', "model.draws", "type int"),
        ('stages = ["a", "b"]\n[model]\nsampler = "stan"', "model.sampler", "nutpie"),
        ('stages = ["a", "b"]\n[model]\ntarget_accept = 1.5', "model.target_accept", "[0.5, 1)"),
        ('stages = ["a", "b"]\n[model]\nmass_matrix = "dense"', "model.mass_matrix", "'low_rank'"),
        (
            'stages = ["a", "b"]\n[model]\nsampler = "pymc"\nmass_matrix = "low_rank"',
            "model.mass_matrix",
            "needs sampler = 'nutpie'",
        ),
        (
            'stages = ["a", "b"]\n[model.parts.delays]\ntarget_accept = 0.95',
            "model.parts.delays",
            "unknown part",
        ),
        (
            'stages = ["a", "b"]\n[model.parts.deal_size]\ntarget_accept = 1.2',
            "model.parts.deal_size.target_accept",
            "[0.5, 1)",
        ),
        (
            'stages = ["a", "b"]\n[model.parts.deal_size]\ndraws = 10',
            "model.parts.deal_size.draws",
            "unknown option",
        ),
        (
            'stages = ["a", "b"]\n[model]\nsampler = "pymc"\n[model.parts.conversion]\nmass_matrix = "low_rank"',
            "model.parts.conversion.mass_matrix",
            "needs sampler = 'nutpie'",
        ),
        (
            'stages = ["a", "b"]\n[model]\ndeal_size_centred_min_deals = -1',
            "model.deal_size_centred_min_deals",
            ">= 0",
        ),
        (
            'stages = ["a", "b"]\n[model]\ndeal_size_centred_min_deals = nan',
            "model.deal_size_centred_min_deals",
            ">= 0",
        ),
        (
            'stages = ["a", "b"]\n[model]\ndeal_size_centred_min_deals = "never"',
            "model.deal_size_centred_min_deals",
            "type float",
        ),
        (
            'stages = ["a", "b"]\n[model]\ndelay_centred_min_delays = -0.5',
            "model.delay_centred_min_delays",
            ">= 0",
        ),
        (
            'stages = ["a", "b"]\n[model]\ndelay_centred_min_delays = nan',
            "model.delay_centred_min_delays",
            ">= 0",
        ),
        (
            'stages = ["a", "b"]\n[model]\ndelay_centred_min_delays = true',
            "model.delay_centred_min_delays",
            "type float",
        ),
        ('stages = ["a", "b"]\n[source.columns]\nfoo = "x"', "source.columns.foo", "canonical"),
        ('stages = ["a", "b"]\n[source.columns]\na_at = "x"', "source.columns", "'id'"),
    ],
)
def test_bad_spec_names_the_key_and_rule(text, column, rule):
    with pytest.raises(InputError) as info:
        parse_spec(text, source="bad.toml")
    issues = info.value.issues
    assert any(i.column == column and rule in i.rule and i.file == "bad.toml" for i in issues), (
        info.value.report()
    )


@pytest.mark.parametrize(
    ("value", "expected"), [("inf", math.inf), ("50", 50.0), ('"auto"', None), ("", None)]
)
def test_deal_size_centring_option(value, expected):
    text = 'stages = ["a", "b"]\npipeline_stage = "a"\n[model]\n' + (
        f"deal_size_centred_min_deals = {value}" if value else "draws = 10"
    )
    assert parse_spec(text).options.deal_size_centred_min_deals == expected


@pytest.mark.parametrize(
    ("value", "expected"), [("inf", math.inf), ("12", 12.0), ('"auto"', None), ("", None)]
)
def test_delay_centring_option(value, expected):
    text = 'stages = ["a", "b"]\npipeline_stage = "a"\n[model]\n' + (
        f"delay_centred_min_delays = {value}" if value else "draws = 10"
    )
    assert parse_spec(text).options.delay_centred_min_delays == expected


def test_not_toml_and_missing_file(tmp_path):
    with pytest.raises(InputError, match="not valid TOML"):
        parse_spec("stages = [", source="x.toml")
    with pytest.raises(InputError, match="cannot read"):
        load_spec(tmp_path / "missing.toml")


def test_source_mapping_parsed():
    spec = parse_spec(
        """
stages = ["opportunity", "won"]
segment_by = ["office"]
[source]
date_format = "%m/%d/%Y"
exclude = { deal_stage = "Prospecting" }
replace = { product = { GTXPro = "GTX Pro" } }
[[source.join]]
file = "teams.csv"
on = "agent"
[source.columns]
id = "opportunity_id"
office = "regional_office"
won_at = { column = "close_date", when = { deal_stage = ["Won"] } }
"""
    )
    src = spec.source
    assert src is not None
    assert src.columns["won_at"].when == {"deal_stage": ("Won",)}
    assert src.columns["id"].column == "opportunity_id"
    assert src.exclude == {"deal_stage": ("Prospecting",)}
    assert src.joins[0].on == "agent"
    assert src.replace["product"]["GTXPro"] == "GTX Pro"


def test_cell_label():
    assert cell_label(("mid", "webinar")) == "mid/webinar"

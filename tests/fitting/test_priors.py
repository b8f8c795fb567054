"""Prior scales: one place, overridable by name, bad overrides are input errors."""

from __future__ import annotations

import math

import pytest

from simengine.config.spec import parse_spec
from simengine.errors import InputError
from simengine.fitting.fit import settings_from_spec
from simengine.fitting.priors import DEFAULT_PRIORS, resolve_priors


def test_overrides_by_name():
    p = resolve_priors({"drift_sd": 0.1, "delay_mu_loc": 2})
    assert p.drift_sd == 0.1
    assert p.delay_mu_loc == 2.0
    assert p.conversion_cell_sd == DEFAULT_PRIORS.conversion_cell_sd
    assert resolve_priors(None) is DEFAULT_PRIORS


def test_spec_priors_reach_the_fit_settings():
    spec = parse_spec(
        'stages = ["a", "b"]\npipeline_stage = "a"\n[model]\ndraws = 10\n[model.priors]\nconversion_cell_sd = 0.25\n',
        source="s.toml",
    )
    st = settings_from_spec(spec, chains=3)
    assert st.prior_scales.conversion_cell_sd == 0.25
    assert st.draws == 10
    assert st.chains == 3


def test_deal_size_centring_reaches_the_fit_settings():
    spec = parse_spec(
        'stages = ["a", "b"]\npipeline_stage = "a"\n[model]\ndeal_size_centred_min_deals = inf\n',
        source="s.toml",
    )
    assert settings_from_spec(spec).deal_size_centred_min_deals == math.inf


def test_delay_centring_reaches_the_fit_settings():
    spec = parse_spec(
        'stages = ["a", "b"]\npipeline_stage = "a"\n[model]\ndelay_centred_min_delays = inf\n',
        source="s.toml",
    )
    assert settings_from_spec(spec).delay_centred_min_delays == math.inf


def test_unknown_prior_is_named():
    with pytest.raises(InputError) as exc:
        resolve_priors({"conversion_sd_typo": 0.3}, source="s.toml")
    issue = exc.value.issues[0]
    assert issue.file == "s.toml"
    assert issue.column == "model.priors.conversion_sd_typo"
    assert "unknown prior" in issue.rule


def test_settings_as_json_write_inf_as_a_string_and_round_trip():
    """What a posterior file records is plain JSON; a backtest compares it as read back."""
    import json

    spec = parse_spec(
        'stages = ["a", "b"]\npipeline_stage = "a"\n[model]\n'
        "delay_centred_min_delays = inf\ndeal_size_centred_min_deals = 12\n",
        source="s.toml",
    )
    st = settings_from_spec(spec)
    js = st.as_json()
    assert js["delay_centred_min_delays"] == "inf"
    assert js["deal_size_centred_min_deals"] == 12.0
    assert js["priors"] == st.prior_scales.as_dict()
    text = json.dumps(js, allow_nan=False)  # no Infinity token
    assert json.loads(text) == js

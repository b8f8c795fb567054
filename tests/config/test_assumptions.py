"""Assumptions TOML -> FunnelParameters: format, Beta draws, errors, open pipeline."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from simengine.config.assumptions import parse_assumptions, read_assumptions
from simengine.errors import InputError
from simengine.io.provenance import file_sha256

GOOD = """
stages = ["mql", "sql", "opportunity", "won"]
pipeline_stage = "opportunity"
as_of = 2027-01-04
[segments.mid]
new_per_week = { mql = 110.0, opportunity = 4.0 }
dispersion = 0.0
conversion = { sql = [0.30, 0.02], opportunity = [0.65, 0.03], won = [0.22, 0.0] }
delay_days = { sql = [7.0, 0.5], opportunity = [14.0, 0.5], won = [45.0, 0.6] }
deal_size = [30000.0, 0.4]
[segments.smb]
new_per_week = { mql = 200.0 }
dispersion = { mql = 0.2 }
trend = 0.01
conversion = { sql = [0.4, 0.05], opportunity = [0.5, 0.05], won = [0.3, 0.05] }
delay_days = { sql = [3.0, 0.3], opportunity = [7.0, 0.3], won = [20.0, 0.5] }
deal_size = [8000.0, 0.3]
"""


def test_models_file_reads(models_dir: Path) -> None:
    p = read_assumptions(models_dir / "assumptions.toml", n_draws=100, seed=1)
    assert p.stages == ("mql", "sql", "opportunity", "won")
    assert p.cells == p.segments == ("smb", "mid", "ent")
    assert p.n_draws == 100
    assert p.source == "assumptions"


def test_values_and_beta_draws() -> None:
    n = 4000
    p = parse_assumptions(GOOD, n_draws=n, seed=3)
    assert p.cells == ("mid", "smb")
    assert p.pipeline_stage == 2
    assert p.as_of == dt.date(2027, 1, 4)
    np.testing.assert_allclose(p.arrival_rate[0], [[110.0, 0.0, 4.0], [200.0, 0.0, 0.0]])
    np.testing.assert_allclose(p.arrival_dispersion[0], [[0, 0, 0], [0.2, 0, 0]])
    np.testing.assert_allclose(p.arrival_trend[0, 1], 0.01)
    np.testing.assert_allclose(p.delay_mu[0, 0], np.log([7.0, 14.0, 45.0]))
    np.testing.assert_allclose(p.delay_sigma[0, 0], [0.5, 0.5, 0.6])
    np.testing.assert_allclose(p.deal_size_mu[:, 1], np.log(8000.0))
    assert np.all(p.conversion[:, 0, 2] == 0.22)  # sd 0 = fixed
    # Beta(mean, sd) draws: sample mean within 4 SE (sd / sqrt(n)), sample sd within
    # 4 SE of a sd (~ sd / sqrt(2n) for a near-normal law; x1.5 margin for Beta skew).
    for c, s, m, sd in ((0, 0, 0.30, 0.02), (0, 1, 0.65, 0.03), (1, 2, 0.3, 0.05)):
        x = p.conversion[:, c, s]
        assert abs(x.mean() - m) <= 4 * sd / np.sqrt(n)
        assert abs(x.std() - sd) <= 1.5 * 4 * sd / np.sqrt(2 * n)
    again = parse_assumptions(GOOD, n_draws=n, seed=3)
    np.testing.assert_array_equal(again.conversion, p.conversion)


def test_as_of_from_plan_when_absent() -> None:
    text = GOOD.replace("as_of = 2027-01-04\n", "")
    p = parse_assumptions(text, n_draws=5, as_of=dt.date(2027, 2, 1))
    assert p.as_of == dt.date(2027, 2, 1)
    with pytest.raises(InputError, match="as_of"):
        parse_assumptions(text, n_draws=5)


@pytest.mark.parametrize(
    ("old", "new", "key", "rule"),
    [
        (
            "sql = [0.30, 0.02]",
            "sql = [0.30, 0.6]",
            "segments.mid.conversion.sql",
            "too large for a Beta",
        ),
        ("sql = [0.30, 0.02]", "sql = [1.3, 0.02]", "segments.mid.conversion.sql", "[0, 1]"),
        ("sql = [7.0, 0.5]", "sql = [0.0, 0.5]", "segments.mid.delay_days.sql", "must be > 0"),
        ("sql = [7.0, 0.5], ", "", "segments.mid.delay_days.sql", "missing"),
        ("mql = 110.0", "lead = 110.0", "segments.mid.new_per_week.lead", "not an entry stage"),
        ("mql = 110.0", "mql = -1.0", "segments.mid.new_per_week.mql", ">= 0"),
        ("dispersion = 0.0", "dispersion = -0.5", "segments.mid.dispersion", ">= 0"),
        ("deal_size = [30000.0, 0.4]", "deal_size = 3", "segments.mid.deal_size", "median"),
        (
            'pipeline_stage = "opportunity"',
            'pipeline_stage = "won"',
            "pipeline_stage",
            "must be one of",
        ),
        ("dispersion = 0.0", "dispersoin = 0.0", "segments.mid.dispersoin", "unknown key"),
    ],
)
def test_bad_values_name_file_key_value_rule(old: str, new: str, key: str, rule: str) -> None:
    assert old in GOOD
    with pytest.raises(InputError) as err:
        parse_assumptions(GOOD.replace(old, new, 1), source="a.toml", n_draws=5)
    issues = [i for i in err.value.issues if i.column == key]
    assert issues, err.value.report()
    assert issues[0].file == "a.toml"
    assert rule in issues[0].rule


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not valid TOML"):
        parse_assumptions("stages = [", n_draws=5)
    with pytest.raises(InputError, match="cannot read"):
        read_assumptions(tmp_path / "nope.toml")
    with pytest.raises(InputError, match="stages"):
        parse_assumptions("stages = ['only']", n_draws=5)


def test_file_not_modified(tmp_path: Path) -> None:
    f = tmp_path / "a.toml"
    f.write_text(GOOD)
    before = file_sha256(f)
    read_assumptions(f, n_draws=10)
    assert file_sha256(f) == before


LOSS = {
    "mid": "loss_days = { sql = [21.0, 0.7], opportunity = [30.0, 0.7], won = [60.0, 0.8] }\n",
    "smb": "loss_days = { sql = [10.0, 0.5], opportunity = [15.0, 0.6], won = [40.0, 0.9] }\n",
}


def _with_loss(mid: str = LOSS["mid"], smb: str = LOSS["smb"]) -> str:
    text = GOOD.replace("deal_size = [30000.0, 0.4]\n", "deal_size = [30000.0, 0.4]\n" + mid)
    return text.replace("deal_size = [8000.0, 0.3]\n", "deal_size = [8000.0, 0.3]\n" + smb)


def test_loss_days_read_into_loss_params() -> None:
    p = parse_assumptions(_with_loss(), n_draws=7, seed=1)
    assert p.loss_mu is not None
    assert p.loss_sigma is not None
    assert p.loss_mu.shape == p.loss_sigma.shape == (7, 2, 3)
    np.testing.assert_allclose(p.loss_mu[:, 0], np.log([[21.0, 30.0, 60.0]] * 7))
    np.testing.assert_allclose(p.loss_sigma[3, 1], [0.5, 0.6, 0.9])
    # absent everywhere: never lost (no loss arrays), the documented law
    q = parse_assumptions(GOOD, n_draws=7, seed=1)
    assert q.loss_mu is None
    assert q.loss_sigma is None
    np.testing.assert_array_equal(q.conversion, p.conversion)  # same Beta draws


@pytest.mark.parametrize(
    ("mid", "key", "rule"),
    [
        (
            LOSS["mid"].replace("[21.0, 0.7]", "[0.0, 0.7]"),
            "segments.mid.loss_days.sql",
            "median time to loss (days) must be > 0",
        ),
        (
            LOSS["mid"].replace("[21.0, 0.7]", "[21.0, -1.0]"),
            "segments.mid.loss_days.sql",
            "log-sd must be >= 0",
        ),
        (LOSS["mid"].replace(", won = [60.0, 0.8]", ""), "segments.mid.loss_days.won", "missing"),
        (
            LOSS["mid"].replace("won = [60.0, 0.8]", "won = [60.0, 0.8], lost = [1.0, 1.0]"),
            "segments.mid.loss_days.lost",
            "not a step",
        ),
        (
            LOSS["mid"].replace("[21.0, 0.7]", '"21 days"'),
            "segments.mid.loss_days.sql",
            "pair of numbers",
        ),
        ("loss_days = 30.0\n", "segments.mid.loss_days", "one [a, b] pair per step"),
        ("", "segments.mid.loss_days", "every segment or for none"),
    ],
)
def test_bad_loss_days_name_file_key_value_rule(mid: str, key: str, rule: str) -> None:
    with pytest.raises(InputError) as err:
        parse_assumptions(_with_loss(mid=mid), source="a.toml", n_draws=5)
    issues = [i for i in err.value.issues if i.column == key]
    assert issues, err.value.report()
    assert issues[0].file == "a.toml"
    assert rule in issues[0].rule


def test_loss_days_drive_the_engine() -> None:
    """An assumptions file with loss_days gives the engine its competing-risk law."""
    from simengine.config.plan import Plan
    from simengine.engine import prepare

    p = parse_assumptions(_with_loss(), n_draws=5)
    plan_like = parse_assumptions(GOOD, n_draws=5)
    assert plan_like.loss_mu is None
    plan = Plan(
        start=p.as_of,
        end=p.as_of + dt.timedelta(days=90),
        as_of=p.as_of,
        targets={"mid": 1e6, "smb": 1e6},
        text="t",
    )
    pr = prepare(p, plan)
    assert pr.has_loss == 1
    np.testing.assert_allclose(pr.leave_mu, p.loss_mu)
    assert prepare(plan_like, plan).has_loss == 0

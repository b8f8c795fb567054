"""The report in a real headless Chromium: loads offline, no console errors, every chart decoded.

Chromium is Debian's ``chromium`` package; if it is missing the first test
tries ``apt-get install -y chromium`` (as root), once per session, and skips
with the reason only if that is impossible here.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import xarray as xr

from simengine.report.html import _CHECK_SCRIPT, write_report

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def chromium() -> str:
    exe = _chromium()
    if exe is None:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            pytest.skip("chromium not installed and cannot apt-get install it (needs root + apt)")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
            r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
            if r.returncode != 0:
                pytest.skip(f"could not install chromium ({' '.join(cmd)}): {r.stderr[-300:]}")
        exe = _chromium()
        if exe is None:
            pytest.skip("apt-get installed chromium but no chromium executable was found")
    return exe


def _run(exe: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run",
           f"--user-data-dir={profile}", "--virtual-time-budget=10000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def test_report_in_headless_chromium(chromium, forecast_dir, tmp_path):
    report = write_report(forecast_dir)
    url = report.resolve().as_uri()
    dom = _run(chromium, tmp_path / "profile", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", dom.stdout)
    assert body is not None, dom.stdout[:500]
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(1)))
    assert attrs.get("data-loaded") == "true", "the page's load handler did not run"
    assert json.loads(html.unescape(attrs["data-errors"])) == []
    assert int(attrs["data-images"]) == 12
    assert attrs["data-broken-images"] == "0"  # every chart <img> decoded, naturalWidth > 0
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    r = _run(chromium, tmp_path / "profile2", "--window-size=1100,3000",
             f"--screenshot={shot}", url)
    assert r.returncode == 0, r.stderr[-2000:]
    assert shot.stat().st_size > 10_000


def test_check_script_catches_errors(chromium, tmp_path):
    """The page's error hook is not a test that cannot fail: a broken page is caught."""
    page = tmp_path / "broken.html"
    page.write_text(
        f"<!DOCTYPE html><html><head><script>{_CHECK_SCRIPT}</script></head><body>"
        '<img src="data:image/png;base64,AAAA"><script>undefinedFunction();</script>'
        "</body></html>"
    )
    dom = _run(chromium, tmp_path / "profile", "--dump-dom", page.as_uri())
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"',
                            re.search(r"<body([^>]*)>", dom.stdout).group(1)))
    assert attrs["data-broken-images"] == "1"
    errors = json.loads(html.unescape(attrs["data-errors"]))
    assert any("undefinedFunction" in e for e in errors)


# ------------------------------------------------- issue 19: what the analyst and the CFO see
# Each check reads the DOM Chromium built from the report; each fails on the report as it
# was before issue 19 (the old page had no such section, or said the contradicting thing).

def _deals_table() -> pd.DataFrame:
    rows = [  # id, segment, stage, age, amount, known, won, lost, open, close
        ("D-small", "smb", "opportunity", 10.0, 5_000.0, True, 0.5, 0.1, 0.4, "2027-02-01"),
        ("D-big", "ent", "opportunity", 40.0, 900_000.0, True, 0.2, 0.3, 0.5, "2027-05-20"),
        ("D-mid", "mid", "sql", 5.0, 60_000.0, False, 0.1, 0.2, 0.7, "2027-03-01"),
    ]
    df = pd.DataFrame(rows, columns=["id", "segment", "stage", "age_days", "amount",
                                     "amount_known", "p_won_in_period", "p_lost_in_period",
                                     "p_open_at_period_end", "close_date_p50"])
    df["cell"] = df["segment"]
    df["expected_revenue_in_period"] = df["amount"] * df["p_won_in_period"]
    from simengine.engine.outlook import COLUMNS

    return df[list(COLUMNS)]


def _stress_table() -> pd.DataFrame:
    rows = []
    for scen, title, delta in (("baseline", "", 0.0), ("mqls-minus-20pct", "MQLs -20%", -0.12),
                               ("asp", "ASP -10% in smb", -0.03)):
        for seg in ("smb", "mid", "ent", "total"):
            rows.append({"scenario": scen, "title": title, "segment": seg,
                         "metric": "attainment", "stat": "prob_hit", "value": 0.5 + delta,
                         "value_se": 0.004, "baseline": 0.5, "delta": delta,
                         "delta_se": 0.002 if delta else 0.0, "delta_se_independent": 0.006,
                         "variance_reduction": 9.0})
    return pd.DataFrame(rows)


def _sensitivity_table() -> pd.DataFrame:
    rows = []
    for rank, (label, what, frm, lo, hi, d_lo, d_hi) in enumerate((
        ("ent opportunity → won conversion", "conversion", 0.22, 0.196, 0.244, -0.061, 0.055),
        ("smb new mql volume", "arrivals", 2800.0, 2500.0, 3100.0, -0.02, 0.02),
    ), 1):
        for direction, to, d in (("down", lo, d_lo), ("up", hi, d_hi)):
            rows.append({"input": label, "segment": label.split()[0], "what": what,
                         "where": "won", "direction": direction, "basis": "1 sd",
                         "from_value": frm, "to_value": to, "outcome_segment": "total",
                         "prob_hit": 0.5 + d, "delta_prob_hit": d, "delta_prob_hit_se": 0.003,
                         "revenue_p50": 1e6, "delta_revenue_p50": 1e4 * d,
                         "delta_revenue_p50_se": 100.0, "swing_prob_hit": abs(d_hi - d_lo),
                         "rank": rank})
    return pd.DataFrame(rows)


def _with_sources_and_late_target(ds: xr.Dataset) -> xr.Dataset:
    """Add revenue_from_* metrics (report_sim.with_sources) and a late median time to target."""
    from report_sim import with_sources

    out = with_sources(ds)
    out["summary"].loc[{"segment": "ent", "metric": "time_to_target_days", "stat": "p50"}] = 100
    out.attrs = {**ds.attrs, "open_units": 3,
                 "input_sha256": json.dumps({"plan": "ab" * 32}),
                 "sketch_rel_error": 0.004975124378109458}
    return out


def _dom(chromium: str, page: Path, profile: Path) -> tuple[str, dict[str, str]]:
    dom = _run(chromium, profile, "--dump-dom", page.resolve().as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", dom.stdout)
    assert body is not None
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(1)))
    assert attrs.get("data-loaded") == "true"
    assert json.loads(html.unescape(attrs["data-errors"])) == []
    assert attrs["data-broken-images"] == "0"
    return html.unescape(dom.stdout), attrs


@pytest.fixture(scope="module")
def full_dom(chromium, forecast_ds, tmp_path_factory) -> str:
    from report_sim import write_forecast_dir

    root = tmp_path_factory.mktemp("full")
    fdir = write_forecast_dir(_with_sources_and_late_target(forecast_ds), root / "fc")
    _deals_table().to_csv(fdir / "deals.csv", index=False)
    (fdir / "stress").mkdir()
    _stress_table().to_csv(fdir / "stress" / "stress.csv", index=False)
    (root / "stress").mkdir()  # another forecast's table beside this one: never read
    _stress_table().assign(title="NOT THIS ONE").to_csv(root / "stress" / "stress.csv")
    sens = root / "sens.csv"
    _sensitivity_table().to_csv(sens, index=False)
    # stress found in the forecast directory (DIR/stress/stress.csv); sensitivity given
    report = write_report(fdir, sensitivity=sens)
    text, attrs = _dom(chromium, report, root / "profile")
    assert int(attrs["data-images"]) == 12 + 3  # + sources chart, stress chart and tornado
    ARTIFACTS.mkdir(exist_ok=True)
    r = _run(chromium, root / "profile2", "--window-size=1100,2400",
             f"--screenshot={ARTIFACTS / 'report-issue19.png'}", report.resolve().as_uri())
    assert r.returncode == 0
    return text


@pytest.fixture(scope="module")
def bare_dom(chromium, forecast_ds, tmp_path_factory) -> str:
    from report_sim import write_forecast_dir

    root = tmp_path_factory.mktemp("bare")
    ds = forecast_ds.copy()
    ds.attrs = {**forecast_ds.attrs, "open_units": 0}
    fdir = write_forecast_dir(ds, root / "fc")
    return _dom(chromium, write_report(fdir), root / "profile")[0]


def _section(text: str, sid: str) -> str:
    m = re.search(rf'<section id="{sid}">(.*?)</section>', text, re.S)
    assert m is not None, f"no section {sid}"
    return m.group(1)


def test_item1_no_reverse_funnel_need_against_p_hit(full_dom):
    seg = _section(full_dom, "seg-smb")
    assert "target needs" not in seg
    assert "Needs " not in seg
    assert "<th>gap</th>" not in seg
    assert "same simulation as P(hit)" in seg


def test_item2_no_pipeline_is_flagged(bare_dom, full_dom):
    assert 'id="no-pipeline"' in bare_dom
    assert "No open pipeline was loaded" in bare_dom
    assert "already covers part of it" not in bare_dom
    assert 'id="no-pipeline"' not in full_dom


def test_item3_coverage_text_is_the_charts_first_point(full_dom, forecast_ds):
    p50 = float(forecast_ds["summary"].sel(segment="smb", metric="coverage", stat="p50"))
    seg = _section(full_dom, "seg-smb")
    assert f"the chart's first point: <b>{p50:.2f}x</b>" in seg
    assert "rules for coverage at the period start" in seg


def test_item4_sources_stress_sensitivity_and_named_risks(full_dom, bare_dom):
    sources = _section(full_dom, "sources")
    assert "existing pipeline (open at the as-of date)" in sources
    assert "new, marketing-sourced (entering at mql)" in sources
    assert "new, sales-sourced (entering at opportunity)" in sources
    assert "entering at sql" not in sources  # nobody enters at sql: not a source
    assert 'id="sources"' not in bare_dom  # only when the engine wrote revenue_from_*
    assert "MQLs -20%" in _section(full_dom, "stress")
    assert "NOT THIS ONE" not in full_dom
    assert "ent opportunity → won conversion" in _section(full_dom, "sensitivity")
    risks = _section(full_dom, "risks")
    assert "ent opportunity → won conversion: one posterior sd lower" in risks
    assert "MQLs -20%" in risks
    assert "misses its" not in risks  # no restating of the overview


def test_sources_section_in_chromium(chromium, forecast_ds, sim_paths, tmp_path):
    """Issue 19 item 4: the sources section renders (chart decoded) and is screenshotted.

    The screenshot is of a copy of the page with every other section hidden
    by one injected style rule (a headless screenshot shows only the top of
    a page): the total's chart of revenue by source with P10-P90 whiskers,
    the split table (existing pipeline / new, marketing / sales) and the
    per-source bands.
    """
    from report_sim import with_sources, write_forecast_dir

    fdir = write_forecast_dir(with_sources(forecast_ds, sim_paths), tmp_path / "fc")
    report = write_report(fdir)
    text, attrs = _dom(chromium, report, tmp_path / "profile")
    assert int(attrs["data-images"]) == 12 + 1  # + the sources chart, decoded
    sources = _section(text, "sources")
    assert "marketing-sourced" in sources
    assert "sales-sourced" in sources
    assert "existing pipeline" in sources
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report-sources.png"
    only = tmp_path / "sources-only.html"
    page = report.read_text()
    only.write_text(page.replace("</head>", "<style>section:not(#sources){display:none}</style>"
                                 "</head>", 1))
    r = _run(chromium, tmp_path / "profile2", "--window-size=1100,1300", f"--screenshot={shot}",
             only.resolve().as_uri())
    assert r.returncode == 0, r.stderr[-2000:]
    assert shot.stat().st_size > 10_000


def test_item4_deals_at_risk_of_slipping(full_dom):
    deals = _section(full_dom, "deals")
    ids = re.findall(r"<tr><td>(D-[a-z]+)</td>", deals)
    assert ids == ["D-big", "D-mid", "D-small"]  # by amount x P(open at period end)
    assert "$450K" in deals  # 900K x 0.5 at risk
    assert "after the period end" in deals  # D-big's median close is May 20
    assert "$60.0K *" in deals  # an estimated amount is marked


def test_item5_labels(full_dom, bare_dom):
    for page in (full_dom, bare_dom):
        assert "P(attainment ≥ 95%)" in page
        assert "within ±5%" not in page
        assert "expected day" not in page
        assert not re.search(r"\$\d{1,2}[KMB]\b", page)  # $2M next to $2.4M
        assert not re.search(r"\b(Jan|Feb|Mar|Apr|May|Jun) 0\d\b", page)  # "Jan 04"
        assert "constant_data" not in page
        assert ">n/a<" not in _section(page, "rates")
    overview = re.search(r'<table id="overview">(.*?)</table>', full_dom, re.S).group(1)
    assert "after the period end" in overview  # ent's median date is day 100 > 90
    prov = _section(full_dom, "provenance")
    assert "0.004975124378109458" not in prov
    assert "≤ 0.50%" in prov
    assert "{" not in prov

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

import pytest

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

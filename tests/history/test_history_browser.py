"""history.html in a real headless Chromium: loads offline, no console errors, charts decoded."""

from __future__ import annotations

import html
import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "report"))
from test_browser import _run, chromium  # noqa: F401  (the shared fixture)

from simengine.history.report import write_history_report

pytestmark = pytest.mark.browser


def test_history_report_in_headless_chromium(chromium, store, tmp_path):  # noqa: F811
    page = write_history_report(store, tmp_path / "rep")
    dom = _run(chromium, tmp_path / "profile", "--dump-dom", page.resolve().as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", dom.stdout)
    assert body is not None, dom.stdout[:500]
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(1)))
    assert attrs.get("data-loaded") == "true"
    assert json.loads(html.unescape(attrs["data-errors"])) == []
    assert int(attrs["data-images"]) == 3
    assert attrs["data-broken-images"] == "0"

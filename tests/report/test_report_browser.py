"""report.html in a real browser: headless Chromium renders it offline.

No Playwright: the ``chromium`` binary alone can dump the DOM after scripts ran
(``--dump-dom``), take a screenshot (``--screenshot``) and write every network
request it made to a JSON log (``--log-net-log``). Chromium itself phones home
(component updates, time, accounts) even with background networking off; those
requests have no page origin (``initiator: "not an origin"``), while the page's
own requests carry the ``file://`` page in their isolation key. A control page
that does load remote resources proves the check would catch them.

Skipped when ``chromium`` is missing, except under ``CI=true`` (CI installs it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image
from reportkit import REAL, fourteen_model_run

from contract.models import MODELS
from lab.report import charts
from lab.report.html import write_report
from lab.results.reader import load_run

CHROMIUM = shutil.which("chromium")
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
LOCAL_SCHEMES = ("file:", "data:", "about:", "blob:")

pytestmark = pytest.mark.slow  # several browser starts plus 14-model rendering: > 10 s


@pytest.fixture(scope="module")
def chromium() -> str:
    if CHROMIUM is None:
        if IN_CI:
            pytest.fail("chromium not found but CI is set: CI must install Debian's chromium")
        pytest.skip("chromium not installed (apt-get install chromium); browser test skipped")
    return CHROMIUM


def _run(chromium: str, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    """One headless Chromium with a fresh profile and the background services off."""
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    cmd = [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--user-data-dir={profile}", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--disable-default-apps",
           "--disable-extensions", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)


def dump_dom(chromium: str, tmp: Path, page: Path) -> tuple[str, list[str]]:
    """The DOM after load, and the URLs of the network requests the page made."""
    log = tmp / f"net-{page.stem}.json"
    out = _run(chromium, tmp, f"--log-net-log={log}", "--dump-dom", page.as_uri()).stdout
    return out, page_requests(json.loads(log.read_text()))


def page_requests(netlog: dict) -> list[str]:
    """URLs of requests made for a page (not Chromium's own background traffic)."""
    types = {v: k for k, v in netlog["constants"]["logEventTypes"].items()}
    urls = []
    for ev in netlog["events"]:
        p = ev.get("params") or {}
        if types.get(ev["type"]) != "URL_REQUEST_START_JOB" or "url" not in p:
            continue
        if p.get("initiator") == "not an origin" and "file://" not in str(
                p.get("network_isolation_key")):
            continue  # the browser's own update/time/account checks
        urls.append(p["url"])
    return urls


class _Dom(HTMLParser):
    """Counts what the test needs in the dumped DOM (no lab code parses it)."""

    def __init__(self) -> None:
        super().__init__()
        self.headlines: list[str] = []
        self.figures: dict[str, dict[str, int]] = {}
        self.off: list[str] = []
        self._fig: str | None = None
        self._in_headline = False
        self._svg_depth = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "figure":
            self._fig = a.get("id")
            self.figures[self._fig] = {"svg": 0, "circle": 0, "title": 0}
        if tag == "p" and a.get("class") == "headline":
            self._in_headline = True
            self.headlines.append("")
        if tag == "g" and "off" in (a.get("class") or "").split():
            self.off.append(a.get("data-series"))
        if self._fig and tag in ("svg", "circle", "title"):
            if tag == "svg":
                self._svg_depth += 1
            if tag == "svg" or self._svg_depth:
                self.figures[self._fig][tag] += 1

    def handle_endtag(self, tag):
        if tag == "figure":
            self._fig = None
        if tag == "svg":
            self._svg_depth -= 1
        if tag == "p":
            self._in_headline = False

    def handle_data(self, data):
        if self._in_headline:
            self.headlines[-1] += data


def _parse(dom: str) -> _Dom:
    d = _Dom()
    d.feed(dom)
    return d


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("browser")
    real = tmp / REAL.name
    shutil.copytree(REAL, real)
    return {"real": write_report(real),
            "fourteen": write_report(fourteen_model_run(tmp / "all-models"))}


@pytest.mark.parametrize("which", ["real", "fourteen"])
def test_page_renders_offline_with_svg_charts(chromium, pages, tmp_path, which):
    page = pages[which]
    run = load_run(page.parent)
    dom, requests = dump_dom(chromium, tmp_path, page)
    assert [u for u in requests if not u.startswith(LOCAL_SCHEMES)] == []
    d = _parse(dom)
    assert len(d.headlines) == len(run.models)
    assert d.headlines[0].startswith(f"{run.models[0]} stopped at 1,019 connections")
    charts_on_page = [f for f in d.figures if f.startswith("chart-")]
    assert charts_on_page == ["chart-held", "chart-latency", "chart-rate", "chart-cost"]
    for fig in charts_on_page:
        counts = d.figures[fig]
        assert counts["svg"] >= 1 and counts["circle"] >= 2 * len(run.models), fig
        assert counts["title"] >= counts["circle"], fig  # every point has its hover text
    for model in run.models:
        assert d.figures[f"timeline-{model}"]["circle"] > 20
    if which == "fourteen":
        assert run.models == list(MODELS)


def test_the_offline_check_catches_a_remote_resource(chromium, tmp_path):
    """Control: a page that loads http(s) resources is caught by the same check."""
    page = tmp_path / "control.html"
    page.write_text('<!DOCTYPE html><p class="headline">x</p>'
                    '<img src="http://127.0.0.1:9/pixel.png">'
                    '<script src="https://example.invalid/x.js"></script>')
    _, requests = dump_dom(chromium, tmp_path, page)
    assert "http://127.0.0.1:9/pixel.png" in requests
    assert "https://example.invalid/x.js" in requests


def test_unticking_a_model_hides_it_in_every_chart(chromium, pages, tmp_path):
    """The inline script runs in the browser: untick epoll once, every chart hides it."""
    html = pages["real"].read_text()
    click = ("<script>var i=document.querySelector('input[data-model=\"epoll\"]');"
             "i.checked=false;i.dispatchEvent(new Event('change',{bubbles:true}));</script>")
    page = tmp_path / "toggled.html"
    page.write_text(html.replace("</body>", click + "</body>"))
    dom, _ = dump_dom(chromium, tmp_path, page)
    off = _parse(dom).off
    per_chart = len(re.findall(r'<g class="series" data-series="epoll">', html))
    timelines = 3  # the epoll timeline's panels are not hidden by the chart legend
    assert off and set(off) == {"epoll"} and len(off) == per_chart - timelines


def test_screenshot_shows_the_charts_in_model_colours(chromium, pages, tmp_path):
    page = pages["fourteen"]
    shot = tmp_path / "report.png"
    _run(chromium, tmp_path, f"--screenshot={shot}", "--window-size=1400,3000", page.as_uri())
    keep = os.environ.get("IOLAB_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, Path(keep) / "report-14-models.png")
    img = Image.open(shot).convert("RGB")
    assert img.size == (1400, 3000)
    assert len(set(img.get_flattened_data())) > 200, "the page is not blank"
    # Below the headline and limits table (the first 1300 px) sit the charts and
    # their legends: every model's colour must be drawn there.
    colours = set(img.crop((0, 1300, 1400, 3000)).get_flattened_data())
    found = []
    for model in MODELS:
        hexc = charts.color_for(model)
        rgb = tuple(int(hexc[i:i + 2], 16) for i in (1, 3, 5))
        if any(sum(abs(a - b) for a, b in zip(c, rgb, strict=True)) < 12 for c in colours):
            found.append(model)
    assert found == list(MODELS)

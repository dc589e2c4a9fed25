"""report.html in a real browser: headless Chromium (Playwright, the session's
``browser`` from ``tests/conftest.py``) renders it offline.

Every request the page makes is recorded (Playwright reports the page's own
requests, not Chromium's background traffic) and every one that is not local
(``file:``, ``data:``, …) is aborted before it leaves, so the check sends
nothing out. A control page that does load remote resources proves the check
would catch them.

Skipped when ``chromium`` is missing, except under ``CI=true`` (CI installs it).
"""

from __future__ import annotations

import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image
from reportkit import REAL, fourteen_model_run

from contract.models import MODELS
from lab.report import charts
from lab.report.html import write_report
from lab.results.reader import load_run

LOCAL_SCHEMES = ("file:", "data:", "about:", "blob:")

pytestmark = pytest.mark.browser  # one session browser: about 6 s for the five


def open_page(page, path: Path) -> list[str]:
    """Load ``path`` in ``page``; the URLs of every request it made (remote ones aborted)."""
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    page.route(re.compile(r"^(https?|wss?|ftp)://"), lambda route: route.abort())
    page.goto(path.as_uri(), wait_until="load")
    return urls


def dump_dom(page, path: Path) -> tuple[str, list[str]]:
    """The DOM after load (scripts ran), and the URLs of the requests the page made."""
    requests = open_page(page, path)
    return page.content(), requests


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
def test_page_renders_offline_with_svg_charts(page, pages, which):
    path = pages[which]
    run = load_run(path.parent)
    dom, requests = dump_dom(page, path)
    assert requests and requests[0] == path.as_uri()  # the recorder saw the page itself
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


def test_the_offline_check_catches_a_remote_resource(page, tmp_path):
    """Control: a page that loads http(s) resources is caught by the same check."""
    control = tmp_path / "control.html"
    control.write_text('<!DOCTYPE html><p class="headline">x</p>'
                       '<img src="http://127.0.0.1:9/pixel.png">'
                       '<script src="https://example.invalid/x.js"></script>')
    _, requests = dump_dom(page, control)
    assert "http://127.0.0.1:9/pixel.png" in requests
    assert "https://example.invalid/x.js" in requests


def test_unticking_a_model_hides_it_in_every_chart(page, pages):
    """The inline script runs in the browser: untick epoll once, every chart hides it."""
    html = pages["real"].read_text()
    dump_dom(page, pages["real"])
    assert _parse(page.content()).off == []
    page.locator('input[data-model="epoll"]').first.uncheck()  # a click, as a reader's
    off = _parse(page.content()).off
    per_chart = len(re.findall(r'<g class="series" data-series="epoll">', html))
    timelines = 3  # the epoll timeline's panels are not hidden by the chart legend
    assert off and set(off) == {"epoll"} and len(off) == per_chart - timelines


def test_screenshot_shows_the_charts_in_model_colours(browser, pages, tmp_path):
    context = browser.new_context(viewport={"width": 1400, "height": 3000})
    try:
        page = context.new_page()
        open_page(page, pages["fourteen"])
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot))
    finally:
        context.close()
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

"""The SVG renderer (lab/report/svg.py): scales, ticks, hover titles, escaping."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest

from lab.report.svg import Line, Panel, Point, Rule, Scale, auto_log, fmt, render_figure


def _svg(*panels: Panel, cols: int = 1) -> ET.Element:
    return ET.fromstring(render_figure(list(panels), "t", cols=cols))


def _panel(points: list[tuple[float, float]], key: str = "epoll", **kw) -> Panel:
    pts = [Point(x, y, f"{key} · step {i}\nx: {fmt(x)}\ny: {fmt(y)}")
           for i, (x, y) in enumerate(points)]
    return Panel("T", "x", "y", lines=[Line(key, "#1f77b4", pts)], **kw)


def test_linear_scale_maps_ends_and_has_nice_ticks():
    s = Scale(0, 1019, 100, 600, log=False)
    assert s(s.lo) == 100 and s(s.hi) == 600
    ticks = s.ticks()
    assert ticks[0] == 0 and ticks[-1] == 1000 and s.lo < 0 and s.hi > 1019
    steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:], strict=False)}
    assert len(steps) == 1 and steps.pop() in (200, 250)


def test_log_scale_ticks_are_powers_of_ten_within_range():
    s = Scale(0.14, 83.97, 0, 100, log=True)
    ticks = s.ticks()
    assert {1.0, 10.0} <= set(ticks) and all(s.lo <= math.log10(t) <= s.hi for t in ticks)
    assert s(1.0) < s(10.0)


@pytest.mark.parametrize("values, want", [([1, 2, 3], False), ([0.1, 100], True),
                                          ([0, 1, 1000], False), ([], False)])
def test_auto_log_needs_positive_values_and_a_wide_span(values, want):
    assert auto_log(values) is want


def test_every_point_is_a_circle_with_its_title():
    pts = [(200, 200), (800, 800), (1500, 1019)]
    svg = _svg(_panel(pts))
    (g,) = svg.findall(".//g[@class='series']")
    assert g.get("data-series") == "epoll"
    circles = g.findall("circle")
    assert len(circles) == 3
    assert [c.find("title").text.splitlines()[0] for c in circles] == [
        "epoll · step 0", "epoll · step 1", "epoll · step 2"]
    cx = [float(c.get("cx")) for c in circles]
    cy = [float(c.get("cy")) for c in circles]
    assert cx == sorted(cx) and cy == sorted(cy, reverse=True)  # y grows upwards
    coords = [tuple(map(float, p.split(","))) for p in g.find("polyline").get("points").split()]
    assert coords == list(zip(cx, cy, strict=True))


def test_titles_and_labels_are_escaped():
    svg = render_figure([_panel([(1, 1), (2, 2)], key='<a&"b>')], "t")
    assert "<a&" not in svg and "&lt;a&amp;&quot;b&gt;" in svg
    ET.fromstring(svg)


def test_limit_point_is_marked_and_labelled_once_per_spot():
    line = lambda key: Line(key, "#d62728", [  # noqa: E731
        Point(800, 800, f"{key} step 1"), Point(1500, 1019, f"{key} step 2", "FD_SETSIZE")])
    svg = _svg(Panel("T", "x", "y", lines=[line("select"), line("sigio")]))
    limit = svg.findall(".//circle[@class='limit']")
    assert len(limit) == 2
    labels = [t for t in svg.iter("text") if t.text == "FD_SETSIZE"]
    assert len(labels) == 1
    # the two identical points tell the hover reader about each other
    assert "same point: sigio" in limit[0].find("title").text


def test_rules_and_empty_panel():
    p = _panel([(1, 5), (2, 6)], rules=[Rule(1024, "FD_SETSIZE = 1024", vertical=True)])
    texts = [t.text for t in _svg(p).iter("text")]
    assert "FD_SETSIZE = 1024" in texts
    empty = _svg(Panel("Nothing", "x", "y", empty_text="no data"))
    assert "no data" in [t.text for t in empty.iter("text")] and not empty.findall(".//circle")


def test_log_axis_never_places_points_outside_the_plot():
    svg = _svg(_panel([(200, 0.14), (1500, 83.97)], ylog=True, xlog=True))
    rect = svg.find("rect")
    x0, y0 = float(rect.get("x")), float(rect.get("y"))
    x1, y1 = x0 + float(rect.get("width")), y0 + float(rect.get("height"))
    for c in svg.iter("circle"):
        assert x0 <= float(c.get("cx")) <= x1 and y0 <= float(c.get("cy")) <= y1


def test_figure_is_vector_with_viewbox_and_unique_clip_ids():
    svg = render_figure([_panel([(1, 1)]), _panel([(2, 2)])], "fig one", cols=2)
    root = ET.fromstring(svg)
    assert root.get("viewBox") == "0 0 1240 340"
    ids = [c.get("id") for c in root.iter("clipPath")]
    assert len(ids) == len(set(ids)) == 2 and all(" " not in i for i in ids)
    assert "xmlns" not in svg and "http" not in svg


def test_linear_scale_leaves_headroom_above_a_value_on_the_frame():
    """An SLO at exactly the top tick would sit on the frame with its label clipped."""
    s = Scale(0, 20, 0, 100, log=False, zero=True)
    assert 20 < s.hi < 21 and -1 < s.lo < 0 and s.ticks()[-1] == 20
    assert Scale(150, 4000, 0, 100, log=False).lo == 0  # no negative idle connections

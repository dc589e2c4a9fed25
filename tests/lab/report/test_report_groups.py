"""The report's "Echo latency per user group" chart, without a browser: the
SVG's points are group_findings.latency_series', a line per model and group
(the model's colour, a dash per group), the starved step marked; the PNG copy
is written; a run without groups has neither."""

from __future__ import annotations

import copy

from groupkit import STEPS, slow_clients_run
from reportkit import svg_of

from lab.analysis import group_findings as gf
from lab.report import charts, figures
from lab.report.html import write_report


def test_the_group_panel_draws_exactly_the_series(tmp_path):
    run = slow_clients_run(tmp_path)
    (panel,) = figures.fig_groups(run)
    drawn = [(ln.key, ln.dash, [p.x for p in ln.points], [p.y for p in ln.points])
             for ln in panel.lines]
    dashes = figures.group_dashes(run)
    assert dashes == {"fast": "", "slowloris": "5 3"}
    assert drawn == [(model, dashes[group], xs, ys)
                     for (model, group), (xs, ys) in gf.latency_series(run).items()]
    assert {ln.color for ln in panel.lines if ln.key == "epoll"} == {charts.color_for("epoll")}
    assert panel.ylog  # 0.3 ms to 32 s
    assert [r.label for r in panel.rules] == ["SLO p99 50 ms"]


def test_a_group_step_over_the_error_slo_is_marked_with_its_failure_kind(tmp_path):
    steps = copy.deepcopy(STEPS)  # some fast echoes came back, late; most timed out
    steps["threadpool"][1][0]["fast"].update(p99_ms=4800.0, p50_ms=1.0, echo_count=40)
    run = slow_clients_run(tmp_path, steps)
    (panel,) = figures.fig_groups(run)
    marked = [(ln.key, p.x, p.limit) for ln in panel.lines for p in ln.points if p.limit]
    assert marked == [("threadpool", 48.0, "timeout")]


def test_the_report_has_the_group_chart_its_legend_and_png(tmp_path):
    run = slow_clients_run(tmp_path)
    html = write_report(run.path).read_text()
    svg = svg_of(html, "chart-groups")
    series = [g.get("data-series") for g in svg.iter("g") if g.get("data-series")]
    assert series == ["threadpool", "threadpool", "epoll", "epoll"]
    dashed = [pl.get("stroke-dasharray") for pl in svg.iter("polyline")]
    assert dashed == [None, "5 3", None, "5 3"]
    assert "fast group</span>" in html and "slowloris group</span>" in html
    assert (run.path / "chart-groups.png").stat().st_size > 1000
    assert "the fast group&#x27;s connects timed out" in html  # the finding in the headline


def test_no_group_chart_without_groups(tmp_path):
    run = slow_clients_run(tmp_path, groups=False)
    html = write_report(run.path).read_text()
    assert 'id="chart-groups"' not in html and not (run.path / "chart-groups.png").exists()
    assert not charts.has_groups(run)

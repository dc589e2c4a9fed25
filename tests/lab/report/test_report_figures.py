"""The SVG charts of report.html: same numbers as lab.analysis.series, limit rows
marked, one colour per model, legend outside the plot, readable with 14 models."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from reportkit import GOLDEN, fourteen_model_run, svg_of

from contract.models import MODELS
from lab.analysis import series as rs
from lab.report import charts, figures
from lab.report.html import write_report
from lab.results.reader import load_run

RUNS = sorted(p.name for p in GOLDEN.iterdir() if (p / "steps.csv").is_file())


def _xy(line) -> tuple[list[float], list[float]]:
    return [p.x for p in line.points], [p.y for p in line.points]


def _lines(panel, dash: str = "") -> dict[str, tuple[list[float], list[float]]]:
    return {ln.key: _xy(ln) for ln in panel.lines if ln.dash == dash}


@pytest.fixture(scope="module", params=RUNS)
def run(request):
    return load_run(GOLDEN / request.param)


def test_svg_points_are_the_series_functions_output(run):
    (held,) = figures.fig_held(run)
    assert _lines(held) == rs.held_vs_target(run)
    (lat,) = figures.fig_latency(run)
    assert _lines(lat) == rs.latency_vs_held(run, "p99_ms")
    assert _lines(lat, "5 3") == rs.latency_vs_held(run, "p50_ms")
    (rate,) = figures.fig_rate(run)
    assert _lines(rate) == rs.rate_vs_held(run)
    mem, cpu = figures.fig_cost(run)
    assert _lines(mem) == rs.memory_per_conn(run, "server_rss_bytes")
    assert _lines(mem, "5 3") == rs.memory_per_conn(run, "kernel_sock_bytes")
    assert _lines(cpu) == rs.cpu_per_message_us(run)
    if run.is_idle_vs_active:
        (idle,) = figures.fig_idle(run)
        assert _lines(idle) == rs.latency_vs_idle(run, "p99_ms")


def test_limit_rows_stay_on_every_chart_and_are_marked(run):
    limited = {(r["model"], r["step"]): r["limit"] for r in run.rows if r.get("limit")}
    for stem, fig in figures.FIGURES.items():
        if stem == "idle" and not run.is_idle_vs_active:
            continue
        for panel in fig(run):
            for ln in panel.lines:
                for p in ln.points:
                    step = int(re.search(r"step (\d+)", p.title).group(1))
                    assert p.limit == limited.get((ln.key, step)), (stem, ln.key, step)
    held = {ln.key: ln for ln in figures.fig_held(run)[0].lines}
    for (model, _step), kind in limited.items():
        assert any(p.limit == kind and f"limit: {kind}" in p.title for p in held[model].points)


def test_reference_lines_are_kept(run):
    (held,) = figures.fig_held(run)
    assert held.diagonal and [r.label for r in held.rules] == ["FD_SETSIZE = 1024"]
    (lat,) = figures.fig_latency(run)
    labels = [r.label for r in lat.rules]
    assert "FD_SETSIZE = 1024" in labels
    assert any(lb.startswith("SLO p99") for lb in labels) == bool(run.slo.p99_ms)


def test_colours_follow_color_for(run):
    for fig in figures.FIGURES.values():
        for panel in fig(run):
            assert all(ln.color == charts.color_for(ln.key) for ln in panel.lines)


@pytest.fixture(scope="module")
def fourteen(tmp_path_factory) -> tuple[Path, str]:
    run_dir = fourteen_model_run(tmp_path_factory.mktemp("m14") / "all-models")
    return run_dir, write_report(run_dir).read_text(encoding="utf-8")


def test_fourteen_models_one_distinct_colour_each(fourteen):
    run_dir, html = fourteen
    run = load_run(run_dir)
    assert run.models == list(MODELS)
    for stem in ("held", "latency", "rate", "cost"):
        svg = svg_of(html, f"chart-{stem}")
        strokes: dict[str, set[str]] = {}
        for g in svg.iter("g"):
            if g.get("class") == "series":
                strokes.setdefault(g.get("data-series"), set()).add(
                    g.find("polyline").get("stroke"))
        assert set(strokes) == set(MODELS), stem
        assert all(len(c) == 1 for c in strokes.values()), "one colour per model"
        assert len({c for cs in strokes.values() for c in cs}) == 14, "14 distinct colours"


def test_fourteen_models_lines_are_thin_and_legend_is_outside(fourteen):
    _, html = fourteen
    svg = svg_of(html, "chart-latency")
    widths = {float(p.get("stroke-width")) for p in svg.iter("polyline")}
    assert max(widths) <= 1.5
    # the legend is HTML beside the <svg>, one checkbox per model, none inside the plot
    fig = html[html.index('<figure id="chart-latency"'):]
    fig = fig[:fig.index("</figure>")]
    legend = fig[fig.index("</svg>"):]
    assert re.findall(r'data-model="([^"]+)"', legend) == list(MODELS)
    assert "<input" not in fig[:fig.index("</svg>")]


def test_fourteen_model_limit_labels_do_not_pile_up(fourteen):
    _, html = fourteen
    svg = svg_of(html, "chart-latency")
    marks = [c for c in svg.iter("circle") if c.get("class") == "limit"]
    labels = [t for t in svg.iter("text") if t.text == "FD_SETSIZE"]
    assert len(marks) == 2 * 4  # p99 and p50 of 4 select-like models
    assert 1 <= len(labels) < 4


def test_timelines_for_every_model(fourteen):
    _, html = fourteen
    for model in MODELS:
        svg = svg_of(html, f"timeline-{model}")
        assert [g.get("data-series") for g in svg.iter("g") if g.get("class") == "series"] == [
            model] * 3


def test_hide_show_hooks(tmp_path):
    run_dir = tmp_path / "r"
    shutil.copytree(GOLDEN / "synthetic-select-poll-epoll", run_dir)
    html = write_report(run_dir).read_text()
    assert ".series.off{display:none}" in html
    assert "iolabShow" in html and 'data-all="0"' in html

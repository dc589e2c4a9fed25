"""report.html and its charts, generated from the golden run directories.

The chart series are compared with steps.csv read independently here (csv
module, no lab code), so a chart that plots the wrong column fails.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from paths import TESTS

from contract.limits import CRASH, explain
from lab import cli
from lab.analysis import series as rs
from lab.report import charts
from lab.report.html import write_report
from lab.results.reader import load_run

GOLDEN = TESTS / "data" / "runs"
RUNS = sorted(p.name for p in GOLDEN.iterdir() if (p / "steps.csv").is_file())
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module", params=RUNS)
def reported(request, tmp_path_factory) -> tuple[Path, str]:
    """A copy of one golden run with its report written (once per module)."""
    run_dir = tmp_path_factory.mktemp("runs") / request.param
    shutil.copytree(GOLDEN / request.param, run_dir)
    html_path = write_report(run_dir)
    return run_dir, html_path.read_text(encoding="utf-8")


def csv_rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "steps.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def csv_series(run_dir: Path, x: str, y: str) -> dict[str, tuple[list[float], list[float]]]:
    """Per model, (x, y) for rows where both cells are non-empty, in step order."""
    out: dict[str, tuple[list[float], list[float]]] = {}
    rows = sorted(csv_rows(run_dir), key=lambda r: int(r["step"]))
    for r in rows:
        if r[x] and r[y]:
            xs, ys = out.setdefault(r["model"], ([], []))
            xs.append(float(r[x]))
            ys.append(float(r[y]))
    return out


def test_golden_runs_exist():
    assert "synthetic-select-poll-epoll" in RUNS and "synthetic-idle-vs-active" in RUNS


def test_html_is_self_contained(reported):
    run_dir, html = reported
    assert html.startswith("<!DOCTYPE html>")
    assert not re.search(r"https?://", html), "no external URL may appear"
    assert "<link" not in html and "<img" not in html and "@import" not in html
    assert not re.search(r"\b(src|href)=", html), "nothing is loaded from elsewhere"
    scripts = re.findall(r"<script([^>]*)>", html)
    assert scripts == [""], "exactly one inline script, no src"
    assert set(re.findall(r"url\(([^)]*)\)", html)) <= {
        f"#{c}" for c in re.findall(r'<clipPath id="([^"]+)"', html)}


def _figure(html: str, fig_id: str) -> ET.Element:
    m = re.search(rf'<figure id="{fig_id}"[^>]*>.*?(<svg .*?</svg>)', html, re.S)
    assert m, f"{fig_id} missing from the page"
    return ET.fromstring(m.group(1))


def test_html_draws_every_chart_as_svg_and_keeps_the_pngs(reported):
    run_dir, html = reported
    run = load_run(run_dir)
    expected = [stem for stem, _, _, applies in charts.CHARTS if applies(run)]
    assert ("idle" in expected) == run.is_idle_vs_active
    assert re.findall(r'<figure id="chart-(\w+)"', html) == expected
    for stem in expected:
        assert (run_dir / f"chart-{stem}.png").read_bytes().startswith(PNG_MAGIC)
        svg = _figure(html, f"chart-{stem}")
        groups = svg.findall(".//g[@class='series']")
        assert {g.get("data-series") for g in groups} == set(run.models)
        for g in groups:
            model = g.get("data-series")
            circles = g.findall("circle")
            assert circles and all(c.find("title").text.startswith(model) for c in circles)
            assert all(" · step " in c.find("title").text for c in circles)
            assert g.find("polyline").get("stroke") == charts.color_for(model)


def test_held_chart_points_are_the_csv_numbers(reported):
    """The hover text of the held chart gives the CSV's own target and held values."""
    run_dir, html = reported
    svg = _figure(html, "chart-held")
    for model, (xs, ys) in csv_series(run_dir, "target_connections", "connected").items():
        g = next(g for g in svg.iter("g") if g.get("data-series") == model)
        titles = [c.find("title").text for c in g.findall("circle")]
        assert len(titles) == len(xs)
        for t, x, y in zip(titles, xs, ys, strict=True):
            assert f"target connections: {x:,.0f}" in t and f"connections held: {y:,.0f}" in t


def test_limits_table_explains_each_limit(reported):
    run_dir, html = reported
    limits = {r["model"]: r["limit"] for r in csv_rows(run_dir) if r["limit"]}
    for model in {r["model"] for r in csv_rows(run_dir)}:
        assert model in html
    for kind in set(limits.values()):
        assert explain(kind).split(",")[0].replace("'", "&#x27;") in html


def test_held_series_matches_csv(reported):
    run_dir, _ = reported
    assert rs.held_vs_target(load_run(run_dir)) == csv_series(run_dir, "target_connections",
                                                              "connected")


@pytest.mark.parametrize("field", ["p99_ms", "p50_ms"])
def test_latency_series_matches_csv(reported, field):
    run_dir, _ = reported
    assert rs.latency_vs_held(load_run(run_dir), field) == csv_series(run_dir, "connected", field)


def test_rate_series_matches_csv(reported):
    run_dir, _ = reported
    assert rs.rate_vs_held(load_run(run_dir)) == csv_series(run_dir, "connected", "rps")


def test_memory_and_cpu_series_match_csv(reported):
    run_dir, _ = reported
    run = load_run(run_dir)
    mem = rs.memory_per_conn(run, "server_rss_bytes")
    cpu = rs.cpu_per_message_us(run)
    for model, (xs, ys) in csv_series(run_dir, "connected", "server_rss_bytes").items():
        assert mem[model][0] == xs[1:]
        want = [(y - ys[0]) / (x - xs[0]) / 1024 for x, y in zip(xs[1:], ys[1:], strict=True)]
        assert mem[model][1] == pytest.approx(want)
    for model in run.models:
        rows = [r for r in csv_rows(run_dir) if r["model"] == model]
        rows.sort(key=lambda r: int(r["step"]))
        cum = [0.0] + [float(r["server_cpu_s"]) for r in rows]
        want = [(cum[i + 1] - cum[i]) / int(r["echo_count"]) * 1e6 for i, r in enumerate(rows)]
        assert cpu[model][1] == pytest.approx(want)


def test_idle_series_subtracts_active_users(reported):
    run_dir, _ = reported
    run = load_run(run_dir)
    if not run.is_idle_vs_active:
        pytest.skip("not an idle-vs-active run")
    active = json.loads((run_dir / "run.json").read_text())["scenario"]["load"]["active_users"]
    want = csv_series(run_dir, "connected", "p99_ms")
    got = rs.latency_vs_idle(run)
    assert {m: ([x + active for x in xs], ys) for m, (xs, ys) in got.items()} == want


def test_limit_points_are_first_limit_rows(reported):
    run_dir, _ = reported
    want = {}
    for r in sorted(csv_rows(run_dir), key=lambda r: int(r["step"])):
        if r["limit"] and r["model"] not in want:
            want[r["model"]] = (int(r["target_connections"]), int(r["connected"]), r["limit"])
    assert rs.limit_points(load_run(run_dir)) == want


def test_one_colour_per_model_across_charts(reported):
    run_dir, _ = reported
    run = load_run(run_dir)
    colours = {m: charts.color_for(m) for m in run.models}
    assert len(set(colours.values())) == len(colours)
    for stem, _, draw, applies in charts.CHARTS:
        if not applies(run):
            continue
        for ax in draw(run).axes:
            for line in ax.get_lines():
                model = line.get_label().split(" ")[0]
                if model in colours:
                    assert line.get_color() == colours[model], (stem, line.get_label())


def test_custom_label_colour_is_stable():
    assert charts.color_for("my-server") == charts.color_for("my-server")
    assert charts.color_for("epoll") != charts.color_for("select")


def test_interrupted_run_without_run_json(tmp_path):
    run_dir = tmp_path / "partial"
    shutil.copytree(GOLDEN / "synthetic-select-poll-epoll", run_dir)
    (run_dir / "run.json").unlink()
    assert cli.main(["report", str(run_dir)]) == 0
    assert "incomplete" in (run_dir / "report.html").read_text()


@pytest.mark.parametrize("make", ["missing", "no_csv", "file"])
def test_bad_input_exits_2_naming_path(tmp_path, capsys, make):
    target = tmp_path / "notarun"
    if make == "no_csv":
        target.mkdir()
    elif make == "file":
        target.write_text("x")
    assert cli.main(["report", str(target)]) == 2
    err = capsys.readouterr().err
    assert str(target) in err
    assert "run directory" in err


def test_run_without_finished_steps_still_reports(tmp_path):
    header = (GOLDEN / RUNS[0] / "steps.csv").read_text().splitlines()[0]
    (tmp_path / "steps.csv").write_text(header + "\n")
    html = write_report(tmp_path).read_text()
    assert "No step finished" in html
    assert "no data" in list(_figure(html, "chart-held").itertext())


def test_crash_log_tail_is_shown_escaped(tmp_path):
    run_dir = tmp_path / "crashed"
    shutil.copytree(GOLDEN / "synthetic-select-poll-epoll", run_dir)
    meta = json.loads((run_dir / "run.json").read_text())
    meta["models"]["poll"].update(limit="crash", log_tail="Traceback: <boom> & exit 139")
    (run_dir / "run.json").write_text(json.dumps(meta))
    html = write_report(run_dir).read_text()
    assert "Traceback: &lt;boom&gt; &amp; exit 139" in html and "<boom>" not in html
    assert explain(CRASH).split(";")[0] in html

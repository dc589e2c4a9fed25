"""The per-model timeline (lab/report/timeline.py) from logs/<model>.events.jsonl."""

from __future__ import annotations

import json
import shutil

import pytest
from reportkit import GOLDEN, REAL, svg_of

from lab.report import timeline as tlm
from lab.report.html import write_report
from lab.results.reader import load_run


def _events(model: str) -> list[dict]:
    path = REAL / "logs" / f"{model}.events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_series_come_from_stats_events():
    run = load_run(REAL)
    evs = _events("select")
    tl = tlm.timeline(run, "select", evs)
    stats = [e for e in evs if e["event"] == "stats"]
    t0 = min(e["time"] for e in evs)
    assert tl.t == pytest.approx([e["time"] - t0 for e in stats])
    assert tl.connections == [e["connections"] for e in stats]
    assert tl.rss_mib == pytest.approx([e["rss_bytes"] / 2**20 for e in stats])
    assert max(tl.connections) == 1019


def test_cores_are_cpu_deltas_over_time_deltas():
    run = load_run(REAL)
    stats = [e for e in _events("poll") if e["event"] == "stats"]
    tl = tlm.timeline(run, "poll", _events("poll"))
    want = [((b["cpu_user_s"] + b["cpu_sys_s"]) - (a["cpu_user_s"] + a["cpu_sys_s"]))
            / (b["time"] - a["time"]) for a, b in zip(stats, stats[1:], strict=False)]
    assert tl.cores == pytest.approx(want)
    assert len(tl.cpu_t) == len(stats) - 1


def test_the_servers_stats_reporting_is_not_in_its_cores():
    """Format 11: ``stats_cpu_s`` is the lab's instrument inside the server."""
    run = load_run(REAL)
    evs = [{"event": "stats", "time": 100.0 + i, "connections": 10, "rss_bytes": 1 << 20,
            "cpu_user_s": 0.3 * i, "cpu_sys_s": 0.2 * i, "stats_cpu_s": 0.1 * i}
           for i in range(4)]
    assert tlm.timeline(run, "poll", evs).cores == pytest.approx([0.4, 0.4, 0.4])


def test_step_boundaries_and_limit_events():
    run = load_run(REAL)
    evs = _events("select")
    tl = tlm.timeline(run, "select", evs)
    t0 = min(e["time"] for e in evs)
    rows = run.rows_for("select")
    assert [s for s, _, _ in tl.steps] == [r["step"] for r in rows]
    assert [v for _, a, b in tl.steps for v in (a, b)] == pytest.approx(
        [v for r in rows for v in (r["t_end"] - r["hold_s"] - t0, r["t_end"] - t0)])
    assert all(0 < start < end < tl.t[-1] + 5 for _, start, end in tl.steps)
    limit = next(e for e in evs if e["event"] == "limit")
    assert tl.limits == [(pytest.approx(limit["time"] - t0), "FD_SETSIZE")]
    panels = tlm.panels(tl)
    assert [p.title for p in panels] == ["select: connections (server)", "select: RSS (MiB)",
                                         "select: CPU (cores used)"]
    for p in panels:
        labels = [r.label for r in p.rules]
        assert "FD_SETSIZE" in labels and labels.count("step 0") == 1
        assert len([r for r in p.rules if r.vertical]) == 2 * len(rows) + 1


def test_report_has_a_timeline_per_model(tmp_path):
    run_dir = tmp_path / REAL.name
    shutil.copytree(REAL, run_dir)
    html = write_report(run_dir).read_text()
    for model in ("select", "poll", "epoll"):
        svg = svg_of(html, f"timeline-{model}")
        titles = [c.find("title").text for c in svg.iter("circle")]
        assert titles and all(t.startswith(f"{model} · t = ") for t in titles)
        assert "FD_SETSIZE" in [t.text for t in svg.iter("text")] or model != "select"


def test_missing_events_file_says_so(tmp_path):
    run_dir = tmp_path / "synthetic"
    shutil.copytree(GOLDEN / "synthetic-select-poll-epoll", run_dir)
    html = write_report(run_dir).read_text()
    for model in ("select", "poll", "epoll"):
        assert f"No events file for {model} (logs/{model}.events.jsonl)" in html


def test_broken_and_empty_events_files(tmp_path):
    run_dir = tmp_path / REAL.name
    shutil.copytree(REAL, run_dir)
    logs = run_dir / "logs"
    text = (logs / "poll.events.jsonl").read_text()
    (logs / "poll.events.jsonl").write_text(text + '{"event": "stats", "ti')  # cut mid-line
    (logs / "epoll.events.jsonl").write_text("not json\n[1, 2]\n")
    html = write_report(run_dir).read_text()
    assert svg_of(html, "timeline-poll").findall(".//circle")
    assert "logs/epoll.events.jsonl holds no stats events" in html

"""A timeline per model from the server's own events (``logs/<model>.events.jsonl``).

The step table says what each step ended with; the timeline shows what happened
in between: connections, RSS and CPU (cores used) every 0.5 s, against seconds
since the model's first event (its start). Vertical lines mark each step's hold
start (``t_end - hold_s``, dashed) and end (``t_end``, solid); ``limit`` events
are red lines labelled with their kind. CPU comes from the cumulative
``cpu_user_s + cpu_sys_s`` of consecutive ``stats`` events, less the server's
own stats reporting (``stats_cpu_s``; lab/results/writer.py ``model_cpu_s``):
delta CPU seconds over delta wall seconds is the average number of cores the
model kept busy in between.

A missing or unreadable events file (synthetic runs, a server that never
started) gives a panel that says so instead of an error: the report is still
written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from lab.report import charts
from lab.report.svg import Line, Panel, Point, Rule, fmt, render_figure
from lab.results.reader import Run
from lab.results.writer import model_cpu_s

LIMIT_COLOR = "#c00000"


@dataclass
class Timeline:
    """One model's sampled series (seconds since start) and marks."""

    model: str
    t: list[float] = field(default_factory=list)
    connections: list[float] = field(default_factory=list)
    rss_mib: list[float] = field(default_factory=list)
    cpu_t: list[float] = field(default_factory=list)  # time of each CPU interval's end
    cores: list[float] = field(default_factory=list)
    limits: list[tuple[float, str]] = field(default_factory=list)
    steps: list[tuple[int, float, float]] = field(default_factory=list)  # (step, hold start, end)


def events_path(run: Run, model: str) -> Path:
    return run.path / "logs" / f"{model}.events.jsonl"


def read_events(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of an events file; lines that are not JSON objects are skipped
    (a server killed mid-write leaves half a line)."""
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(ev, dict) and isinstance(ev.get("time"), int | float):
            out.append(ev)
    return out


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def timeline(run: Run, model: str, events: list[dict[str, Any]]) -> Timeline:
    """Build the series from ``events`` (time zero: the earliest event)."""
    tl = Timeline(model)
    if not events:
        return tl
    t0 = min(ev["time"] for ev in events)
    prev: tuple[float, float] | None = None
    for ev in sorted(events, key=lambda e: e["time"]):
        t = ev["time"] - t0
        if ev.get("event") == "limit":
            tl.limits.append((t, str(ev.get("kind") or "limit")))
        if ev.get("event") != "stats":
            continue
        conns, rss = _num(ev.get("connections")), _num(ev.get("rss_bytes"))
        cpu = model_cpu_s(ev)
        if conns is not None and rss is not None:
            tl.t.append(t)
            tl.connections.append(conns)
            tl.rss_mib.append(rss / 2**20)
        if cpu is not None:
            if prev is not None and t > prev[0]:
                tl.cpu_t.append(t)
                tl.cores.append(max(cpu - prev[1], 0.0) / (t - prev[0]))
            prev = (t, cpu)
    for r in run.rows_for(model):
        end, hold = r.get("t_end"), r.get("hold_s")
        if end is not None:
            start = end - hold if hold is not None else end
            tl.steps.append((int(r.get("step") or 0), start - t0, end - t0))
    return tl


def _points(model: str, ts: list[float], vs: list[float], what: str) -> list[Point]:
    return [Point(t, v, f"{model} · t = {t:.1f} s\n{what}: {fmt(v)}") for t, v in zip(ts, vs,
                                                                                      strict=True)]


def panels(tl: Timeline) -> list[Panel]:
    """Connections, RSS and cores used, stacked, with the same step and limit marks."""
    color = charts.color_for(tl.model)
    rules: list[Rule] = []
    for step, start, end in tl.steps:
        rules.append(Rule(start, f"step {step}", True, "#888", "3 3"))
        rules.append(Rule(end, "", True, "#666", ""))
    for t, kind in tl.limits:
        rules.append(Rule(t, kind, True, LIMIT_COLOR, "", 1.6, label_at=14))
    xlabel = "seconds since the model started"
    span = (0.0, max(tl.t + tl.cpu_t, default=0.0))  # one time axis for the three panels
    out = []
    for title, ts, vs, what in (
        ("connections (server)", tl.t, tl.connections, "connections"),
        ("RSS (MiB)", tl.t, tl.rss_mib, "RSS MiB"),
        ("CPU (cores used)", tl.cpu_t, tl.cores, "cores"),
    ):
        p = Panel(f"{tl.model}: {title}", xlabel, what, x_zero=True,
                  y_zero=what != "RSS MiB", rules=rules, x_span=span)
        if ts:
            p.lines.append(Line(tl.model, color, _points(tl.model, ts, vs, what),
                                width=1.2, radius=1.6))
        out.append(p)
    return out


def figure(run: Run, model: str) -> str:
    """The model's timeline ``<svg>``, or a note when its events file is missing/empty."""
    path = events_path(run, model)
    if not path.is_file():
        return (f'<p class="warn nodata">No events file for {escape(model)} '
                f"(logs/{escape(path.name)}): no timeline for this model.</p>")
    tl = timeline(run, model, read_events(path))
    if not tl.t:
        return (f'<p class="warn nodata">logs/{escape(path.name)} holds no stats events: '
                "no timeline for this model.</p>")
    return render_figure(panels(tl), f"timeline-{model}", cols=3, width=440, height=280,
                         label=f"timeline {model}")

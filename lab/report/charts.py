"""Matplotlib charts for a run: PNG files, one colour per model everywhere.

Each ``chart_*`` function draws exactly the series from ``lab.analysis.series``
and returns a Figure; ``render_charts`` saves them into the run directory.
Colours come from ``color_for(model)``: each built-in model's own colour
(``contract/models.py``), and a stable hash into a second palette for custom
servers, so "epoll" is the same blue in every chart of every run.

Figures are built with ``matplotlib.figure.Figure`` directly, never pyplot: no
global figure registry, no GUI backend, nothing to close (Agg renders savefig).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from contract.limits import FD_SETSIZE
from contract.models import BY_NAME, MODELS
from lab.analysis import group_findings as gf
from lab.analysis import series as rs
from lab.results.reader import Run

# Custom servers: a stable hash of the label into these.
CUSTOM_PALETTE = ("#000000", "#e7298a", "#66a61e", "#a6761d", "#1b9e77", "#7570b3")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p", "d", "8")
# User groups share their model's colour and differ by dash (SVG dasharray;
# the PNG's matplotlib linestyle is the same pattern).
GROUP_DASHES = ("", "5 3", "1 3", "8 3 2 3")


def color_for(model: str) -> str:
    """The model's colour: fixed for built-ins, a stable hash for custom labels."""
    if model in BY_NAME:
        return BY_NAME[model].colour
    return CUSTOM_PALETTE[zlib.crc32(model.encode()) % len(CUSTOM_PALETTE)]


def _figure() -> tuple[Figure, Axes]:
    fig = Figure(figsize=(8, 5), layout="tight")
    return fig, fig.subplots()


def marker_for(model: str) -> str:
    """A marker per model (so overlapping lines stay distinguishable), as stable as colours."""
    idx = MODELS.index(model) if model in BY_NAME else zlib.crc32(model.encode())
    return MARKERS[idx % len(MARKERS)]


def _autolog(ax: Axes, series: rs.Series, axis: str, ratio: float = 30.0) -> None:
    """Use a log scale on ``axis`` ("x"/"y") when positive values span more than ``ratio``."""
    vals = [v for xs, ys in series.values() for v in (xs if axis == "x" else ys) if v > 0]
    if vals and max(vals) / min(vals) > ratio:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")


def _plot(ax: Axes, series: rs.Series, style: str = "-", label_suffix: str = "") -> None:
    """One line per model; earlier lines are drawn wider so identical ones stay visible."""
    n = len(series)
    for i, (model, (xs, ys)) in enumerate(series.items()):
        width = 1.5 + 1.8 * min(n - 1 - i, 3)
        ax.plot(xs, ys, style, marker=marker_for(model), ms=5, lw=width,
                color=color_for(model), label=f"{model}{label_suffix}")


def _finish(ax: Axes, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")


def _wall(ax: Axes, vertical: bool) -> None:
    """Mark select's FD_SETSIZE wall (1024 descriptors)."""
    line = ax.axvline if vertical else ax.axhline
    line(FD_SETSIZE, color="grey", ls=":", lw=1, label=f"FD_SETSIZE = {FD_SETSIZE}")


def _slo_line(ax: Axes, run: Run) -> None:
    """Mark the scenario's p99 SLO, when it has one."""
    slo = run.slo.p99_ms if run.scenario else None
    if slo:
        ax.axhline(float(slo), color="black", ls="-.", lw=1, alpha=0.6, label=f"SLO p99 {slo:g} ms")


def chart_held(run: Run) -> Figure:
    """Connections held vs target, the ideal diagonal, the 1024 line, and each limit."""
    fig, ax = _figure()
    series = rs.held_vs_target(run)
    _plot(ax, series)
    top = max((x for xs, _ in series.values() for x in xs), default=1)
    ax.plot([0, top], [0, top], color="lightgrey", lw=1, zorder=0, label="held = target")
    _wall(ax, vertical=False)
    for model, (x, y, kind) in rs.limit_points(run).items():
        ax.plot([x], [y], "X", ms=12, color=color_for(model), mec="black")
        ax.annotate(kind, (x, y), textcoords="offset points", xytext=(6, 8), fontsize=9,
                    color=color_for(model), fontweight="bold")
    _autolog(ax, series, "x")
    _autolog(ax, series, "y")
    _finish(ax, "Connections held vs target (X = where the model hit its limit)",
            "target connections (users)", "connections held (client side)")
    return fig


def _latency(run: Run, series: Callable[[Run, str], rs.Series], title: str,
             xlabel: str, wall: bool) -> Figure:
    """p99 (solid) and p50 (dashed) from ``series(run, field)``, with the SLO line."""
    fig, ax = _figure()
    p99 = series(run, "p99_ms")
    _plot(ax, p99, "-", " p99")
    _plot(ax, series(run, "p50_ms"), "--", " p50")
    if wall:
        _wall(ax, vertical=True)
    _slo_line(ax, run)
    _autolog(ax, p99, "x")
    _autolog(ax, p99, "y", ratio=10)
    _finish(ax, title, xlabel, "echo latency (ms)")
    return fig


def chart_latency(run: Run) -> Figure:
    """p99 (solid) and p50 (dashed) echo latency vs connections held."""
    return _latency(run, rs.latency_vs_held, "Echo latency vs connections", "connections held",
                    wall=True)


def chart_rate(run: Run) -> Figure:
    """Echo messages per second vs connections held."""
    fig, ax = _figure()
    series = rs.rate_vs_held(run)
    _plot(ax, series)
    _wall(ax, vertical=True)
    _autolog(ax, series, "x")
    _autolog(ax, series, "y")
    _finish(ax, "Echo rate vs connections", "connections held", "echo rate (messages/s)")
    return fig


def chart_accept(run: Run) -> Figure:
    """Connects per second (the accept rate) vs the step's users: churn's capacity."""
    fig, ax = _figure()
    series = rs.accept_rate_vs_target(run)
    _plot(ax, series)
    _autolog(ax, series, "x")
    ax.set_ylim(bottom=0)  # from zero: models that all kept up with the arrivals look alike
    _finish(ax, "Accept rate vs users", "target users", "connects per second")
    return fig


def chart_cost(run: Run) -> Figure:
    """Left: KiB per connection (server RSS solid, kernel socket memory dashed).
    Right: server CPU µs per echoed message."""
    fig = Figure(figsize=(12, 5))
    left, right = fig.subplots(1, 2)
    rss = rs.memory_per_conn(run, "server_rss_bytes")
    _plot(left, rss, "-", " server RSS")
    _plot(left, rs.memory_per_conn(run, "kernel_sock_bytes"), "--", " kernel sockets")
    _autolog(left, rss, "x")
    _finish(left, "Memory per connection (growth since the first step)", "connections held",
            "KiB per added connection")
    cpu = rs.cpu_per_message_us(run)
    _plot(right, cpu)
    _autolog(right, cpu, "x")
    _autolog(right, cpu, "y")
    _finish(right, "Server CPU per message (step CPU / echoes)", "connections held",
            "CPU per message (µs)")
    fig.set_layout_engine("tight")
    return fig


def chart_idle(run: Run) -> Figure:
    """Active users' p99/p50 latency vs idle connections (the libevent benchmark shape)."""
    active = run.load.active_users
    return _latency(run, rs.latency_vs_idle,
                    f"Latency of {active} active connections vs idle connections",
                    "idle connections", wall=False)


def chart_groups(run: Run) -> Figure:
    """p99 per user group vs the step's users: colour per model, dash per group."""
    fig, ax = _figure()
    series = gf.latency_series(run)
    dashes = {name: GROUP_DASHES[i % len(GROUP_DASHES)] for i, name in
              enumerate(dict.fromkeys(group for _model, group in series))}
    for (model, group), (xs, ys) in series.items():
        dash = dashes[group]
        style = (0, tuple(float(v) for v in dash.split())) if dash else "-"
        ax.plot(xs, ys, linestyle=style, marker=marker_for(model), ms=5, lw=1.8,
                color=color_for(model), label=f"{model} · {group}")
    _slo_line(ax, run)
    ys = [y for _xs, ys in series.values() for y in ys if y > 0]
    if ys and max(ys) / min(ys) > 10:
        ax.set_yscale("log")
    _finish(ax, "Echo p99 per user group", "users (every group)", "echo p99 (ms)")
    return fig


def has_groups(run: Run) -> bool:
    return bool(gf.latency_series(run))


# (file stem, title for the report, drawing function, applies to this run?)
CHARTS: tuple[tuple[str, str, Callable[[Run], Figure], Callable[[Run], bool]], ...] = (
    ("held", "Connections held vs target", chart_held, lambda run: True),
    ("latency", "Echo latency vs connections", chart_latency, lambda run: True),
    ("rate", "Echo rate vs connections", chart_rate, lambda run: True),
    ("cost", "Memory per connection and CPU per message", chart_cost, lambda run: True),
    ("idle", "Latency vs idle connections", chart_idle, lambda run: run.is_idle_vs_active),
    ("accept", "Accept rate vs users", chart_accept, rs.has_accept_rate),
    ("groups", "Echo latency per user group", chart_groups, has_groups),
)


# What a reader needs to know to read each chart (shown under it in the report).
NOTES: dict[str, str] = {
    "held": "Each model's line leaves the grey diagonal where it stops accepting; the X marks "
            "the first step that reported a limit, labelled with its kind.",
    "latency": "Client-side echo round trip of the EchoUsers (solid p99, dashed p50), "
               "against the connections held at that step.",
    "rate": "Echo messages per second over the step; with a closed loop it follows the "
            "connections until the server cannot keep up.",
    "cost": "Left: memory added per connection since the first step (server RSS solid; host "
            "kernel memory for TCP sockets dashed: the per-socket slab objects from "
            "/proc/slabinfo plus buffered data from /proc/net/sockstat, host-wide, so both ends "
            "of a connection on one machine count and other traffic adds noise). Right: server "
            "CPU time in the step divided by the echoes in it (upper bound: it includes "
            "accepting and holding connections).",
    "accept": "Connections established per second in each step's hold (connects_per_s): with "
              "user: churn every user connects, echoes and closes, so this is how fast the "
              "model accepts; a thread or process per connection pays its creation here.",
    "groups": "Each user group's echo p99 (groups.csv), one colour per model and one line "
              "style per group, against the users of the step (every group). A ringed X "
              "marks a step whose group broke the error SLO, labelled with its commonest "
              "failure; a group with no echo at a step has no point there (the finding above "
              "names it).",
    "idle": "Latency of the active users while idle connections grow: with poll/select the "
            "cost of every call grows with the idle set; with epoll it does not.",
}


def render_charts(run: Run, out_dir: Path) -> list[tuple[str, Path]]:
    """Save every applicable chart as ``chart-<stem>.png``; return (title, path) pairs."""
    out: list[tuple[str, Path]] = []
    for stem, title, draw, applies in CHARTS:
        if not applies(run):
            continue
        fig = draw(run)
        path = out_dir / f"chart-{stem}.png"
        fig.savefig(path, dpi=90)
        out.append((title, path))
    return out

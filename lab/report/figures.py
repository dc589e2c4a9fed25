"""The run's charts as inline SVG (the same charts as the PNGs in :mod:`charts`).

Each figure plots, per model, exactly the points of the matching
``lab.analysis.series`` function; points here also carry their step and row,
so the hover text names model, step, x and y, and a row whose ``limit`` is set
is drawn as a ringed X labelled with the limit kind (it stays on the chart, it
is not dropped). ``tests/lab/report/test_report.py`` checks that the points equal the
series functions' output, so the two cannot drift apart.

Colours are ``charts.color_for(model)`` (one per model everywhere). Lines are
1.4 px with 2.6 px points so 14 models stay separable; hovering a line dims the
others (CSS in :mod:`lab.report.html`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from html import escape

from contract.generator import client_bound_reasons
from contract.limits import FD_SETSIZE
from lab.analysis import group_findings as gf
from lab.analysis import metrics as m
from lab.report import charts
from lab.report.svg import Line, Panel, Point, Rule, auto_log, fmt, render_figure
from lab.results.reader import Row, Run

# Per-row extractors: one value (or None) for every row of a model, in step order.
Extract = Callable[[Run, list[Row]], list]


def _col(key: str) -> Extract:
    return lambda run, rows: [r.get(key) for r in rows]


def _held(run: Run, rows: list[Row]) -> list:
    return [m.held(r) for r in rows]


def _kib(key: str) -> Extract:
    return lambda run, rows: [None if v is None else v / 1024
                              for v in m.marginal_per_connection(rows, key)]


def _cpu_us(run: Run, rows: list[Row]) -> list:
    return [None if v is None else v * 1e6 for v in m.cpu_per_message(rows)]


def _idle(run: Run, rows: list[Row]) -> list:
    active = run.load.active_users
    return [None if h is None else max(h - (r.get("active_users") or active), 0)
            for r, h in zip(rows, _held(run, rows), strict=True)]


@dataclass
class Spec:
    """One series kind in a panel: how to get x and y per row, its style and name."""

    x: Extract
    y: Extract
    label: str = ""  # appended to the model in tooltips ("p99")
    dash: str = ""
    band: str = ""  # the row field whose min–max over repeats is drawn as a band


def points(run: Run, spec: Spec, xlabel: str, ylabel: str) -> dict[str, list[Point]]:
    """Per model, the points where x and y are both known, in step order."""
    out: dict[str, list[Point]] = {}
    for model in run.models:
        rows = run.rows_for(model)
        pts = []
        for r, x, y in zip(rows, spec.x(run, rows), spec.y(run, rows), strict=True):
            if x is None or y is None:
                continue
            name = f"{model} {spec.label}".strip()
            title = f"{name} · step {r.get('step')}\n{xlabel}: {fmt(x)}\n{ylabel}: {fmt(y)}"
            if r.get("limit"):
                title += f"\nlimit: {r['limit']}"
            hollow = bool(r.get("client_bound"))
            if hollow:
                why = client_bound_reasons(r) or ["a load worker was lost"]
                title += "\nclient-bound (the load's number, not the server's): " + "; ".join(why)
            lo, hi = (r.get(f"{spec.band}_min"), r.get(f"{spec.band}_max")) if spec.band \
                and (r.get("repeats") or 1) > 1 else (None, None)
            if lo is not None and hi is not None:
                title += f"\nover {r['repeats']} repeats: {fmt(lo)} – {fmt(hi)}"
            pts.append(Point(float(x), float(y), title, r.get("limit"), hollow=hollow,
                             lo=lo, hi=hi))
        if pts:
            out[model] = pts
    return out


def panel(run: Run, title: str, xlabel: str, ylabel: str, specs: list[Spec],
          xlog_ratio: float = 30.0, ylog_ratio: float = 30.0, **kw) -> Panel:
    """A panel with one line per model per spec; log axes chosen like the PNGs."""
    p = Panel(title, xlabel, ylabel, **kw)
    first: dict[str, list[Point]] = {}
    n = len(run.models)
    for i, spec in enumerate(specs):
        per_model = points(run, spec, xlabel, ylabel)
        if i == 0:
            first = per_model
        for j, (model, pts) in enumerate(per_model.items()):
            p.lines.append(Line(model, charts.color_for(model), pts, dash=spec.dash,
                                width=_width(j, n), label_limits=i == 0))
    xs = [pt.x for pts in first.values() for pt in pts]
    ys = [pt.y for pts in first.values() for pt in pts]
    all_x = [pt.x for ln in p.lines for pt in ln.points]
    all_y = [pt.y for ln in p.lines for pt in ln.points]
    p.xlog = auto_log(xs, xlog_ratio) and min(all_x, default=1) > 0
    p.ylog = auto_log(ys, ylog_ratio) and min(all_y, default=1) > 0
    return p


def _width(i: int, n: int) -> float:
    """Line width of the i-th of n models. With up to 4 models earlier lines are
    wider, so two identical lines show as one inside the other (poll and epoll
    hold the same connections); with more, all are thin so 14 stay apart, and
    hovering one (or unticking the others) separates overlaps."""
    return 1.4 + 0.9 * (n - 1 - i) if n <= 4 else 1.4


def _wall(vertical: bool) -> Rule:
    return Rule(FD_SETSIZE, f"FD_SETSIZE = {FD_SETSIZE}", vertical, "#777", "2 3",
                label_at=-6)


def _slo(run: Run) -> list[Rule]:
    slo = run.slo.p99_ms if run.scenario else None
    return [Rule(float(slo), f"SLO p99 {slo:g} ms", False, "#000", "6 3 1 3")] if slo else []


def fig_held(run: Run) -> list[Panel]:
    p = panel(run, "Connections held vs target", "target connections",
              "connections held", [Spec(_col("target_connections"), _held)],
              diagonal=True, rules=[_wall(False)])
    return [p]


def _latency(run: Run, x: Extract, title: str, xlabel: str, wall: bool) -> list[Panel]:
    specs = [Spec(x, _col("p99_ms"), "p99", band="p99_ms"),
             Spec(x, _col("p50_ms"), "p50", "5 3", band="p50_ms")]
    rules = ([_wall(True)] if wall else []) + _slo(run)
    return [panel(run, title, xlabel, "echo latency (ms)", specs, ylog_ratio=10, rules=rules)]


def fig_latency(run: Run) -> list[Panel]:
    return _latency(run, _held, "Echo latency vs connections (solid p99, dashed p50)",
                    "connections held", wall=True)


def fig_rate(run: Run) -> list[Panel]:
    return [panel(run, "Echo rate vs connections", "connections held",
                  "echo rate (messages/s)", [Spec(_held, _col("rps"), band="rps")],
                  rules=[_wall(True)])]


def fig_cost(run: Run) -> list[Panel]:
    mem = panel(run, "Memory per connection (solid RSS, dashed kernel)", "connections held",
                "KiB per added connection",
                [Spec(_held, _kib("server_rss_bytes"), "server RSS"),
                 Spec(_held, _kib("kernel_sock_bytes"), "kernel sockets", "5 3")],
                ylog_ratio=float("inf"))
    cpu = panel(run, "Server CPU per message", "connections held", "CPU per message (µs)",
                [Spec(_held, _cpu_us)])
    return [mem, cpu]


def fig_idle(run: Run) -> list[Panel]:
    return _latency(run, _idle, f"Latency of {run.load.active_users} active connections vs "
                    "idle (solid p99, dashed p50)", "idle connections", wall=False)


def fig_accept(run: Run) -> list[Panel]:
    return [panel(run, "Accept rate vs users", "target users", "connects per second",
                  [Spec(_col("target_connections"), _col("connects_per_s"))],
                  ylog_ratio=float("inf"))]


def group_dashes(run: Run) -> dict[str, str]:
    """A dash pattern per user group (the colour stays the model's), in the
    order the groups first appear in groups.csv."""
    names = list(dict.fromkeys(group for _model, group in gf.latency_series(run)))
    return {name: charts.GROUP_DASHES[i % len(charts.GROUP_DASHES)]
            for i, name in enumerate(names)}


def fig_groups(run: Run) -> list[Panel]:
    """p99 per user group against the step's users: one line per model and
    group, exactly ``group_findings.latency_series``; a point whose group's
    errors broke the SLO is marked with its dominant failure kind."""
    p = Panel("Echo p99 per user group (line style: group)", "users (every group)",
              "echo p99 (ms)", rules=_slo(run))
    rows = gf.group_rows(run)
    steps = gf.by_step(rows)
    dashes = group_dashes(run)
    for (model, group), (xs, ys) in gf.latency_series(run, rows).items():
        pts = []
        for (step, g), x, y in zip(sorted((s, gs[group]) for (mdl, s), gs in steps.items()
                                          if mdl == model and gs.get(group, {}).get("p99_ms")
                                          is not None), xs, ys, strict=True):
            err = g.get("error_rate") or 0.0
            mark = None
            if err > run.slo.error_rate:
                kinds = gf.parse_failure_kinds(g.get("failure_kinds"))
                mark = max(kinds, key=kinds.__getitem__, default="errors")
            title = (f"{model} · {group} group · step {step}\nusers: {fmt(x)}\n"
                     f"p99: {fmt(y)} ms\nerror rate: {err:.2%}")
            pts.append(Point(x, y, title, mark))
        p.lines.append(Line(model, charts.color_for(model), pts, dash=dashes[group],
                            label_limits=True))
    ys = [pt.y for ln in p.lines for pt in ln.points]
    p.ylog = auto_log(ys, 10) and min(ys, default=1) > 0
    p.empty_text = "no group had an echo"
    return [p]


FIGURES: dict[str, Callable[[Run], list[Panel]]] = {
    "held": fig_held, "latency": fig_latency, "rate": fig_rate, "cost": fig_cost,
    "idle": fig_idle, "accept": fig_accept, "groups": fig_groups,
}


def legend(models: list[str], keys: list[tuple[str, str]] | None = None,
           hollow: bool = False) -> str:
    """The HTML legend beside a chart: a checkbox per model (hides it in every
    chart), the line styles and, when the run has any, what a hollow point
    means. It sits outside the SVG, so it never covers data."""
    items = "".join(
        f'<label><input type="checkbox" checked data-model="{escape(mdl)}">'
        f'<span class="swatch" style="background:{charts.color_for(mdl)}"></span>'
        f"{escape(mdl)}</label>" for mdl in models)
    styles = "".join(f'<span class="key"><svg width="28" height="8"><line x1="0" y1="4" '
                     f'x2="28" y2="4" stroke="#333" stroke-width="1.6" stroke-dasharray='
                     f'"{dash}"/></svg>{escape(name)}</span>' for name, dash in keys or [])
    if hollow:
        styles += ('<span class="key"><svg width="28" height="10"><circle cx="14" cy="5" r="3.5" '
                   'fill="#fff" stroke="#333" stroke-width="1.6"/></svg>client-bound step '
                   "(the load generator's number)</span>")
    buttons = ('<span class="all"><button type="button" data-all="1">all</button>'
               '<button type="button" data-all="0">none</button></span>')
    return f'<div class="legend">{items}{buttons}{styles}</div>'


STYLE_KEYS: dict[str, list[tuple[str, str]]] = {
    "latency": [("p99", ""), ("p50", "5 3")],
    "idle": [("p99", ""), ("p50", "5 3")],
    "cost": [("server RSS", ""), ("kernel sockets", "5 3")],
}


def style_keys(run: Run, stem: str) -> list[tuple[str, str]] | None:
    """The line styles a chart's legend explains (the groups' are the run's own)."""
    if stem == "groups":
        return [(f"{name} group", dash) for name, dash in group_dashes(run).items()]
    return STYLE_KEYS.get(stem)


def figure_svg(run: Run, stem: str) -> str:
    """The figure for chart ``stem`` as one ``<svg>`` (two panels side by side for cost)."""
    panels = FIGURES[stem](run)
    return render_figure(panels, f"chart-{stem}", cols=len(panels),
                         width=620 if len(panels) == 1 else 560, label=stem)

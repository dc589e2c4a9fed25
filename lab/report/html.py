"""``report.html``: one self-contained page per run (charts inlined as SVG).

``write_report(run_dir)`` still renders the matplotlib PNG charts into the run
directory (``chart-*.png``, for mail and docs), but the page draws the same
charts as inline SVG (:mod:`lab.report.figures`, :mod:`lab.report.svg`):
vector, so sharp at any zoom, and every point is a ``<circle>`` with a
``<title>``, so hovering shows model, step, x and y with no library. A legend
beside each chart has a checkbox per model; a ten-line inline script hides or
shows that model in every chart. A timeline per model
(:mod:`lab.report.timeline`) shows the server's own events over time. The
page uses no other file, URL, font or external script: it opens offline,
mailed or archived. It holds the limits each model hit (with the mechanism in
one sentence), the charts, a capacity summary at the scenario's SLO, every
step's numbers and the scenario and host metadata. ``run-lab report RUN_DIR``
(lab/cli/report_cmd.py) calls it.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

from contract.limits import explain
from lab.analysis import capacity, plan_table
from lab.analysis import metrics as m
from lab.analysis.causes import slo_causes
from lab.analysis.connect import finding as connect_finding
from lab.analysis.expect import check
from lab.analysis.headline import headline
from lab.host.tc import shaping_summary
from lab.report import charts, figures, generator, holdout, memory, timeline
from lab.report.tables import EVERY_STEP, cell, heading, html_table
from lab.results.reader import Run, load_run
from lab.scenario.loader import scenario_to_dict

CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1400px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:90%}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left}
td.text{text-align:left}
figure{margin:1.5em 0} img{max-width:100%} .swatch{display:inline-block;width:1em;height:1em;
vertical-align:middle;margin-right:4px;border-radius:2px}
.warn{color:#a00} pre{background:#f7f7f7;padding:1em;overflow:auto}
.chartrow{display:flex;gap:1em;align-items:flex-start}
svg.plot{width:100%;height:auto;flex:1 1 auto;min-width:0}
.legend{flex:0 0 11em;font-size:85%;display:flex;flex-direction:column;gap:2px}
.legend label{cursor:pointer;white-space:nowrap} .legend input{margin:0 4px 0 0}
.legend .all button{font-size:85%;margin:4px 4px 0 0} .legend .key{color:#444}
.legend .key svg{vertical-align:middle;margin-right:4px}
.series.off{display:none}
svg.plot:has(.series:hover) .series:not(:hover){opacity:.25}
svg.plot .series:hover polyline{stroke-width:2.6}
circle{cursor:crosshair}
"""

# Hide/show a model in every chart: every checkbox for that model follows, and
# every ``<g data-series=MODEL>`` gets the ``off`` class. No data, no network.
SCRIPT = """
function iolabShow(m,on){document.querySelectorAll('input[data-model]').forEach(function(i){
if(i.dataset.model===m)i.checked=on});document.querySelectorAll('figure.chart g.series').forEach(
function(g){if(g.dataset.series===m)g.classList.toggle('off',!on)})}
document.addEventListener('change',function(e){var m=e.target.dataset&&e.target.dataset.model;
if(m!==undefined)iolabShow(m,e.target.checked)});
document.addEventListener('click',function(e){var a=e.target.dataset&&e.target.dataset.all;
if(a===undefined)return;e.target.closest('.legend').querySelectorAll('input[data-model]')
.forEach(function(i){iolabShow(i.dataset.model,a==='1')})});
"""


def _model_label(model: str) -> str:
    color = charts.color_for(model)
    return f'<span class="swatch" style="background:{color}"></span>{escape(model)}'


def connect_section(run: Run) -> str:
    """The connect phase's findings per step (lab/analysis/connect.py): what
    opening the connections cost, apart from the hold the SLO judges. Empty
    when every connect of the run was clean."""
    slo = capacity.slo_of(run)
    rows = [[_model_label(r["model"]), cell(r.get("step")), escape(text)]
            for r in run.rows if (text := connect_finding(r, slo))]
    if not rows:
        return ""
    return ("<h2>Connect phase</h2><p>Connects that were slow, retried or dropped by the "
            "listener while the step's connections were opened. The hold verdict does not "
            "count them; a step gets <code>backlog</code> only when connections were still "
            "not made at its end.</p>" + html_table(["model", "step", "finding"], rows,
                                                    text_cols={2}))


def limits_section(run: Run) -> str:
    """Each model's first limit (step, connections held) and its mechanism."""
    rows = []
    for model in run.models:
        mrows = run.rows_for(model)
        if found := run.first_limit(model):
            r, kind = found
            rows.append([_model_label(model), escape(kind), cell(r.get("step")),
                         cell(r.get("target_connections")), cell(m.held_at_limit(r)),
                         escape(explain(kind))])
        else:
            top = max((r.get("target_connections") or 0 for r in mrows), default=0)
            rows.append([_model_label(model), "none", "–", cell(top), "–",
                         f"No limit hit up to {top:,} target connections."])
    head = ["model", "limit", "step", "target", "held", "mechanism"]
    return "<h2>Limits hit</h2>" + html_table(head, rows, text_cols={5}) + _log_tails(run)


def _log_tails(run: Run) -> str:
    """The error and log tail run.json kept for a model that failed or crashed."""
    parts = []
    for model in run.models:
        meta = run.model_meta(model)
        text = "\n".join(str(meta[k]) for k in ("error", "log_tail") if meta.get(k))
        example = meta.get("mismatch_example")
        if example:
            parts.append(f"<p>{escape(model)}: its replies were not the bytes sent; from byte "
                         f"{escape(str(example.get('offset')))} it was sent "
                         f"<code>{escape(str(example.get('sent')))}</code> and answered "
                         f"<code>{escape(str(example.get('received')))}</code>.</p>")
        if text:
            parts.append(f"<details><summary>{escape(model)}: error and log tail</summary>"
                         f"<pre>{escape(text)}</pre></details>")
    return "\n".join(parts)


def charts_section(run: Run) -> str:
    """Render the PNGs into the run directory (kept for docs and mail) and draw the
    same charts inline as SVG, each with its legend outside the plot area."""
    figs = []
    models = run.models
    for title, path in charts.render_charts(run, run.path):
        stem = path.stem.removeprefix("chart-")
        note = charts.NOTES.get(stem, "")
        svg = figures.figure_svg(run, stem)
        leg = figures.legend(models, figures.style_keys(run, stem),
                             hollow=any(r.get("client_bound") for r in run.rows))
        figs.append(f'<figure id="{escape(path.stem)}" class="chart"><div class="chartrow">'
                    f"{svg}{leg}</div><figcaption><b>{escape(title)}</b> (PNG copy: "
                    f"{escape(path.name)}). {escape(note)} Hover a point for its values; "
                    "a checkbox hides its model in every chart.</figcaption></figure>")
    return "<h2>Charts</h2>" + "\n".join(figs)


def timeline_section(run: Run) -> str:
    """One timeline per model from its events file (or a note that it has none)."""
    if not run.models:
        return ""
    parts = ["<h2>Timeline per model</h2><p>The server's own samples every 0.5 s: "
             "connections, RSS and CPU cores used (CPU seconds per wall second between "
             "samples), against seconds since the model started. Solid grey lines end a "
             "step, dashed ones start its hold; red lines are limit events.</p>"]
    for model in run.models:
        parts.append(f'<figure id="timeline-{escape(model)}" class="timeline">'
                     f"{timeline.figure(run, model)}</figure>")
    return "\n".join(parts)


def capacity_section(run: Run) -> str:
    """The capacity plan at the scenario's SLO (no target: per-host numbers only)."""
    slo = capacity.slo_of(run)
    head, cells = plan_table.table_rows(capacity.plan_run(run, slo))
    cells = [[escape(c) for c in row] for row in cells]
    return (f"<h2>Capacity at the SLO (p99 ≤ {slo.p99_ms:g} ms, errors ≤ "
            f"{slo.error_rate:.2%})</h2><p>Per 1000 connections; <code>run-lab capacity "
            f"RUN_DIR --target-connections N</code> plans hosts for a target.</p>"
            + html_table(head, cells))


def expect_section(run: Run) -> str:
    """The scenario's expectations and whether this run met them."""
    verdicts = check(run)
    if not verdicts:
        return ""
    rows = [[_model_label(v.server), escape(v.expected), escape(v.got),
             v.mark if not v.failed else '<span class="warn">NOT MET</span>'] for v in verdicts]
    return "<h2>Expectations</h2>" + html_table(["server", "expected", "got", ""], rows, {3})


def _key(row: dict) -> tuple:
    return row.get("model"), row.get("repeat") or 0, row.get("step")


def steps_section(run: Run) -> str:
    """Every row, with the cause of each step that missed the SLO (lab/analysis/causes.py)."""
    slo, churn = capacity.slo_of(run), capacity.is_churn(run)
    causes: dict[tuple, str | None] = {}
    for model in run.models:
        server = run.server(model)
        kind = (server.model if server else None) or run.model_meta(model).get("kind")
        every = run.pass_rows(model)
        for repeat in sorted({r.get("repeat") or 0 for r in every}):
            rows = [r for r in every if (r.get("repeat") or 0) == repeat]
            found = slo_causes(rows, [capacity.passes(r, slo, churn) for r in rows], kind,
                               run.host.get("cpus"), capacity.processes_of(run, server, kind),
                               server)
            causes.update({_key(r): c for r, c in zip(rows, found, strict=True)})
    rows = [[escape(cell(r.get(c.name), c.name)) for c in EVERY_STEP]
            + [escape(causes.get(_key(r)) or "")] for r in run.rows]
    head = [heading(c) for c in EVERY_STEP] + ["cause (SLO missed)"]
    return "<h2>Every step</h2>" + html_table(head, rows, text_cols={len(EVERY_STEP)})


def metadata_section(run: Run) -> str:
    """Run status, load settings, servers and host facts, and the resolved scenario."""
    meta = run.meta
    resolved = scenario_to_dict(run.scenario) if run.scenario else {}
    load = resolved.get("load", {})
    status = ("complete" if meta.get("complete") else
              '<span class="warn">interrupted</span>' if meta.get("interrupted") else
              '<span class="warn">incomplete</span>')
    facts = [
        ("status", status), ("backend", escape(str(meta.get("backend", "–")))),
        ("started", escape(str(meta.get("started", "–")))),
        ("finished", escape(str(meta.get("finished") or "–"))),
        ("git commit", escape(str(meta.get("git_commit", "–")))),
        ("load", escape(", ".join(f"{k}={v}" for k, v in load.items() if k != "steps"))),
        ("steps", escape(", ".join(f"{s.get('connections')} for {s.get('hold', s.get('hold_s'))}"
                                   for s in load.get("steps") or []))),
        ("network", escape(shaping_summary(run.scenario.load)) if run.scenario
         and shaping_summary(run.scenario.load) else "– (not shaped)"),
        ("not applied", escape("; ".join(map(str, meta.get("unapplied") or []))) or "–"),
    ]
    parts = ["<h2>Run</h2>", html_table(["", ""], [[k, v] for k, v in facts], {1})]
    servers = [[_model_label(s["name"]), escape(s.get("model") or "custom"),
                escape(json.dumps(s["limits"])),
                f"{s.get('work_us', 0)} µs CPU, {s.get('block_us', 0)} µs wait" if s.get("model")
                else "–"]
               for s in resolved.get("servers", [])]
    if servers:
        parts.append(html_table(["server", "model", "limits", "per message"], servers, {2, 3}))
    for name, host in (meta.get("hosts") or {}).items():
        parts.append(f"<h3>Host {escape(name)}</h3>" + html_table(
            ["fact", "value"], [[escape(k), escape(str(v))] for k, v in host.items()], {1}))
    scenario_text = run.path / "scenario.yaml"
    if scenario_text.is_file():
        parts.append("<details><summary>scenario.yaml (as resolved)</summary><pre>"
                     f"{escape(scenario_text.read_text())}</pre></details>")
    return "\n".join(parts)


def status_banner(run: Run) -> str:
    """A warning at the top when the run did not end normally: which model was
    interrupted after how many steps, or that the run failed."""
    meta = run.meta
    if meta.get("complete") or not meta:
        return ""
    cut = [f"{escape(name)} after {len(run.rows_for(name))} finished step(s)"
           for name, m in (meta.get("models") or {}).items() if m.get("interrupted")]
    if meta.get("interrupted") or meta.get("status") == "interrupted":
        what = "This run was interrupted" + (f": {'; '.join(cut)}" if cut else "")
    else:
        what = f"This run did not finish (status: {escape(str(meta.get('status', '?')))})"
    return (f'<p class="warn banner">{what}. Every finished step is below; models after '
            "it did not run.</p>")


def render_html(run: Run) -> str:
    """The whole page (renders the chart PNGs into the run directory as a side effect)."""
    name = run.title
    desc = run.scenario.description if run.scenario else ""
    body = "\n".join([
        f"<h1>iolab run: {escape(name)}</h1><p>{escape(desc)}</p>"
        f"<p>Run directory <code>{escape(run.name)}</code></p>",
        status_banner(run),
        "".join(f'<p class="headline">{escape(s)}</p>' for s in headline(run)),
        "" if run.rows else '<p class="warn">No step finished in this run: nothing to plot.</p>',
        limits_section(run), connect_section(run), generator.section(run), expect_section(run),
        charts_section(run),
        timeline_section(run), capacity_section(run), holdout.section(run), memory.section(run),
        steps_section(run),
        metadata_section(run),
    ])
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>iolab: {escape(name)}</title><style>{CSS}</style></head>"
            f"<body>\n{body}\n<script>{SCRIPT}</script>\n</body></html>\n")


def write_report(run_dir: Path) -> Path:
    """Write ``report.html`` and the chart PNGs into ``run_dir``; return the HTML path."""
    run = load_run(run_dir)
    path = run.path / "report.html"
    path.write_text(render_html(run), encoding="utf-8")
    return path

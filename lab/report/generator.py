"""The report's "Load generator" section: was every number the server's?

For each model: the steps the load generator bounded (client-bound, with
the reason from contract/generator.py), the workers it lost (name, host,
exit code and log tail, from run.json ``models.<name>.workers_lost``), and
otherwise the largest CPU share and event-loop lag a worker showed, so a
reader sees how much headroom the generator had. Client-bound steps are
drawn hollow in every chart and left out of the capacity plan.
"""

from __future__ import annotations

from html import escape

from contract.generator import CPU_BOUND, LAG_P99_BOUND_MS, client_bound_reasons
from lab.results.reader import Run


def _max(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if isinstance(r.get(key), int | float)]
    return max(values) if values else None


def _headroom(rows: list[dict]) -> str:
    cpu, lag = _max(rows, "loadgen_cpu_max"), _max(rows, "loadgen_lag_p99_ms")
    if cpu is None and lag is None:
        return "no generator accounting in this run (older load generator)"
    parts = []
    if cpu is not None:
        parts.append(f"busiest worker {cpu:.2f} of a core")
    if lag is not None:
        parts.append(f"worst event-loop lag p99 {lag:.1f} ms")
    return "within its bounds at every step: " + ", ".join(parts)


def section(run: Run) -> str:
    """HTML for the section ("" for a run without rows)."""
    if not run.rows:
        return ""
    items = []
    for model in run.models:
        rows = run.rows_for(model)
        bound = run.client_bound_rows(model)
        lost = run.model_meta(model).get("workers_lost") or []
        if not bound and not lost:
            items.append(f"<li><b>{escape(model)}</b>: {escape(_headroom(rows))}.</li>")
            continue
        steps = "".join(
            f"<li>step {escape(str(r.get('step')))} ({escape(str(r.get('target_connections')))}"
            f" connections): {escape('; '.join(client_bound_reasons(r) or [str(r.get('limit'))]))}"
            "</li>" for r in bound)
        workers = "".join(
            f"<li>lost in step {escape(str(w.get('step')))}: {escape(str(w.get('worker')))} on "
            f"host {escape(str(w.get('host')))}, exit code {escape(str(w.get('exit_code')))}"
            + (f"<pre>{escape(str(w.get('log_tail')).strip())}</pre>" if w.get("log_tail")
               else "") + "</li>" for w in lost)
        items.append(f'<li><b>{escape(model)}</b>: <span class="warn">{len(bound)} client-bound '
                     f"step(s)</span>, drawn hollow and left out of the capacity plan"
                     f"<ul>{steps}{workers}</ul></li>")
    return ("<h2>Load generator</h2><p>A step is client-bound when a load worker used "
            f"≥ {CPU_BOUND:g} of a core, its event loop ran more than {LAG_P99_BOUND_MS:g} ms "
            "late at p99, or a worker was lost: its latency and rate are then the generator's, "
            f"not the server's.</p><ul>{''.join(items)}</ul>")

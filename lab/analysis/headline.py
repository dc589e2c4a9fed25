"""The finding of a run in plain sentences, generated from its numbers.

One sentence per model: where it stopped and why (the first limit it hit, or
the SLO criterion it missed first, at the step that missed it), how many
connections it held within the SLO and at what p99, and its CPU per message
against the cheapest model's
(a superlative is said only among the models whose CPU was measured, and
names those whose CPU was not) —
the numbers of the capacity plan (``lab/analysis/capacity.py``), so the
headline, the plan and the charts never disagree. A latency mode near the
40 ms delayed-ACK interval is said even where the SLO was met (a 42 ms p99
within a 100 ms SLO still reads as a difference between models, and is
TCP's: ``causes.delayed_ack_mode``). A load with user groups
adds, per model, the group that suffered and the best model's figure for it
(``lab/analysis/group_findings.py``). Nothing here is written by
hand: a run without a number says "not measured" rather than guess.
"""

from __future__ import annotations

from lab.analysis import group_findings
from lab.analysis import metrics as m
from lab.analysis.capacity import ModelPlan, plan_run, slo_of
from lab.analysis.causes import delayed_ack_mode
from lab.analysis.connect import limit_words
from lab.results.reader import Run


def _n(value: int | None) -> str:
    return "no" if value is None else f"{value:,}"


def _us(seconds: float | None) -> str:
    return f"{seconds * 1e6:.0f} µs" if seconds is not None else "an unmeasured amount"


def _stopped_at(row: dict) -> str:
    """The connections held at a limit. The server's own count is what it
    held; the clients' count also has the sockets whose refusal is still on
    its way (a connection the server accepts only to close is open on the
    client until the close arrives, and is opened again after a pace)."""
    server, clients = row.get("server_connections"), row.get("connected")
    if server is None or clients is None or clients <= server:
        return f"{_n(m.held(row))} connections"
    return f"{_n(server)} connections (the server's count; the load had {_n(clients)} open)"


def _step(rows: list[dict], step: int | None) -> str:
    """The step a sentence is about, by number and target: the step that
    missed the SLO, not the sweep's top (a transient at step 3 is not a miss
    at the top step)."""
    row = next((r for r in rows if r.get("step") == step), None)
    if row is None:
        return "an unknown step"
    return f"step {step} ({row.get('target_connections') or 0:,} connections)"


def _names(models: list[str]) -> str:
    return models[0] if len(models) == 1 else ", ".join(models[:-1]) + " and " + models[-1]


def _least(costed: list[ModelPlan], unmeasured: list[str]) -> str:
    """The cheapest model's superlative, said only among the figures measured:
    a server whose CPU was not read (no stats events) may well be cheaper."""
    if not unmeasured:
        return " (the least)"
    if len(costed) > 1:
        return f" (the least among those measured; CPU not measured for {_names(unmeasured)})"
    return f" (CPU not measured for {_names(unmeasured)}: nothing to compare it with)"


def _sentence(run: Run, plan: ModelPlan, cheapest: ModelPlan | None,
              costed: list[ModelPlan], unmeasured: list[str]) -> str:
    rows = run.rows_for(plan.model)
    if not rows:
        return f"{plan.model} was not measured (no step finished)."
    hit = run.first_limit(plan.model)
    if hit:
        row, kind = hit
        start = f"{plan.model} stopped at {_stopped_at(row)}: {limit_words(kind)}"
    elif plan.binds != "none":
        start = f"{plan.model} missed the SLO at {_step(rows, plan.failing_step)} ({plan.why})"
    else:
        start = f"{plan.model} met the SLO at every step up to {plan.swept_to:,} connections"
    best = next((r for r in rows if r.get("step") == plan.capacity_step), None)
    p99 = best.get("p99_ms") if best else None
    # A churn run holds nothing by design: its figure is the accept rate.
    held = (f"accepted {plan.connects_per_s:,.0f} connects/s" if plan.connects_per_s is not None
            else f"held {_n(plan.capacity)}")
    within = (f"; it {held} within the SLO"
              + (f" at p99 {p99:.1f} ms" if p99 is not None else ""))
    cost = f", {_us(plan.cpu_per_message_s)} of CPU per message"
    if cheapest is not None and plan.cpu_per_message_s and cheapest is not plan:
        cost += (f", {plan.cpu_per_message_s / cheapest.cpu_per_message_s:.1f}× "
                 f"{cheapest.model}'s")
    elif cheapest is plan and len(run.models) > 1:
        cost += _least(costed, unmeasured)
    left = sum(plan.left_out.values())
    note = (f" ({left} step{'s' * (left > 1)} left out: the load generator, not the server, "
            "set their numbers)") if left else ""
    return start + (within + cost if plan.capacity or plan.connects_per_s else "") + note + "."


def tcp_modes(run: Run, plans: list[ModelPlan]) -> list[str]:
    """Per model, the first step whose latency has the delayed-ACK mode,
    unless its plan already gave it as the cause of a missed SLO."""
    out = []
    for plan in plans:
        for row in run.rows_for(plan.model):
            mode = delayed_ack_mode(row, run.server(plan.model))
            if mode:
                if mode not in plan.why:
                    out.append(f"{plan.model} at {_step([row], row.get('step'))}: {mode}; "
                               "a TCP effect, not the I/O model's.")
                break
    return out


def headline(run: Run) -> list[str]:
    """The run's finding, one sentence per model in run order, then one per
    model with the delayed-ACK latency mode, then one per model whose user
    group suffered (none without ``load.groups``)."""
    plans = plan_run(run, slo_of(run))
    # A model that passed some step: held connections within the SLO, or (churn,
    # whose users close by design) accepted connects within it.
    passed = [p for p in plans if p.capacity or p.connects_per_s]
    costed = [p for p in passed if p.cpu_per_message_s]
    # Passed but no CPU figure: its server reported no CPU (lab/run/monitors.py
    # MEASURED_BY says who measures what).
    unmeasured = [p.model for p in passed if not p.cpu_per_message_s]
    cheapest = min(costed, key=lambda p: p.cpu_per_message_s, default=None)
    return ([_sentence(run, p, cheapest, costed, unmeasured) for p in plans]
            + tcp_modes(run, plans) + [f.text for f in group_findings.findings(run)])

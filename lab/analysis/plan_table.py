"""The capacity plan as a table and as capacity.md: the cells the console,
capacity.md and the report print, each cost fit's note, and the rules
(lab/analysis/capacity.py's docstring) written under them."""

from __future__ import annotations

from lab.analysis import capacity
from lab.analysis.capacity import ModelPlan
from lab.analysis.connect import binds_phase
from lab.analysis.fits import Fit
from lab.results.reader import Run
from lab.scenario.types import SLO

# A churn plan's cells per connection held: its users close by design, so the
# connections open at a step's end are a sample of those in flight, not a load
# the memory or the CPU grew with (its figure is connects/s @SLO).
CHURN_NA = "n/a: churn"


def _mib(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v / 2**20:.1f} MiB" if v >= 2**20 else f"{v / 1024:.0f} KiB"


def _num(v: float | None, fmt: str) -> str:
    return "–" if v is None else format(v, fmt)


def table_rows(plans: list[ModelPlan]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the plan table (used by capacity.md, stdout and the report)."""
    head = ["model", "max conns @SLO", "binds first", "server RSS /1000", "kernel /1000",
            "cores /1000", "CPU/msg µs", "per host", "hosts", "host limit"]
    churn = any(p.connects_per_s is not None for p in plans)  # a churn run's accept rate
    cells = []
    for p in plans:
        per_host = p.host_capacity.get(p.host_binding) if p.host_binding else None
        cells.append([
            p.model, CHURN_NA if p.churn else _num(p.capacity, "d"), binds_phase(p.binds),
            *([CHURN_NA] * 3 if p.churn else [_mib(p.rss_per_1000), _mib(p.kernel_per_1000),
                                              _num(p.cores_per_1000, ".3f")]),
            _num(None if p.cpu_per_message_s is None else p.cpu_per_message_s * 1e6, ".0f"),
            _num(per_host, "d") + (f" ({p.host_band[0]}–{p.host_band[1]})"
                                   if p.host_band else ""),
            _num(p.hosts, "d"), p.host_binding or "–",
            *([_num(p.connects_per_s, ".0f")] if churn else []),
        ])
    return head + (["connects/s @SLO"] if churn else []), cells


def fits_note(p: ModelPlan) -> str:
    """One line: which fit each cost got, its error, the CPU ceiling and the band."""
    def fit(f: Fit | None, unit: float, suffix: str) -> str:
        return "–" if f is None else f.describe(unit, suffix)

    parts = [f"server RSS {CHURN_NA if p.churn else fit(p.rss_fit, 1.0, ' B')}",
             f"kernel memory {CHURN_NA if p.churn else fit(p.kernel_fit, 1.0, ' B')}",
             f"CPU per message {fit(p.cpu_fit, 1e6, ' µs')}"]
    if p.saturated_at is not None:
        parts.append(f"CPU at its ceiling from {p.saturated_at} connections "
                     f"({p.ceiling_messages_per_s or 0:.0f} messages/s): a cap, not a cost")
    if p.host_band:
        parts.append(f"per host {p.host_band[0]}–{p.host_band[1]} over the repeats")
    return "; ".join(parts) + "."


def left_out_note(left_out: dict[str, dict[str, int]]) -> str:
    """One line: how many rows were left out of the fit ({model: {why: rows}}), "" if none."""
    parts = [f"{model} {n} {why}" for model, whys in left_out.items() for why, n in whys.items()]
    if not parts:
        return ""
    total = sum(sum(whys.values()) for whys in left_out.values())
    return f"Left out of the fit: {total} row(s): " + "; ".join(parts) + "."


def to_markdown(run: Run, plans: list[ModelPlan], slo: SLO, target: int | None,
                rate: float | None, extra: str = "") -> str:
    """capacity.md; ``extra`` (markdown, e.g. the holdout check) goes before the rules."""
    head, cells = table_rows(plans)
    lines = [f"# Capacity plan: {run.name}", "",
             f"SLO: p99 ≤ {slo.p99_ms:g} ms, error rate ≤ {slo.error_rate:.2%}, "
             "≥ 99 % of target connections held, no limit hit.",
             f"Target: {target or '–'} connections" + (f" at {rate:g} messages/s" if rate else ""),
             "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(c) + " |" for c in cells]
    if note := left_out_note({p.model: p.left_out for p in plans}):
        lines += ["", note]
    lines += ["", "## Cost fits", "", "Chosen by the rule in lab/analysis/fits.py; the error is "
              "the mean |relative error| predicting each fitted step from a fit of the others "
              "(leave-one-out).", ""]
    lines += [f"- **{p.model}**: {fits_note(p)}" for p in plans]
    lines += ["", "## Why each model stops", ""]
    lines += [f"- **{p.model}** ({binds_phase(p.binds)}): {p.why}" for p in plans]
    if extra:
        lines += ["", extra.rstrip()]
    rules = (capacity.__doc__ or "").partition("The rules (also written into capacity.md):")[2]
    lines += ["", "## How this is computed", "", rules.strip()]
    return "\n".join(lines) + "\n"

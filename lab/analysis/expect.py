"""A scenario's expectations, checked against what the run measured.

``expect: {select: {limit: FD_SETSIZE}, epoll: {holds: 19000}}`` makes a
scenario a regression test (k6's thresholds, Locust's ``--exit-code-on-error``):
``limit`` is the first limit the server hit (``none``: it hit none), read the
way the report reads it (``Run.first_limit``); ``holds`` is met when the
connections the server held within the SLO — the capacity plan's figure — are
at least that many. ``run-lab`` exits 3 when one is not met and says which.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from lab.analysis.capacity import plan_run, slo_of
from lab.results.columns import COLUMNS
from lab.results.reader import Run

EXIT_UNMET = 3


@dataclass(frozen=True)
class Verdict:
    server: str
    expected: str  # "limit FD_SETSIZE", "holds >= 19000"
    got: str
    met: bool

    def line(self) -> str:
        return (f"{self.server}: expected {self.expected}, got {self.got}: "
                f"{'met' if self.met else 'NOT MET'}")


def check(run: Run) -> list[Verdict]:
    """A verdict per expectation of the run's scenario (none without a scenario)."""
    if run.scenario is None or not run.scenario.expect:
        return []
    plans = {p.model: p for p in plan_run(run, slo_of(run))}
    out = []
    for e in run.scenario.expect:
        if e.limit is not None:
            hit = run.first_limit(e.server)
            got = hit[1] if hit else "none"
            out.append(Verdict(e.server, f"limit {e.limit}", got, got == e.limit))
        if e.holds is not None:
            plan = plans.get(e.server)
            held = plan.capacity if plan and plan.capacity is not None else 0
            why = f" ({plan.binds})" if plan and plan.binds != "none" else ""
            out.append(Verdict(e.server, f"holds >= {e.holds}", f"{held}{why}",
                               held >= e.holds))
    return out


def summary(run: Run, verdicts: list[Verdict], exit_code: int) -> dict[str, Any]:
    """The machine-readable summary ``--json`` prints: per model its limit, its
    capacity at the SLO, the p99 of its top step and its expectations."""
    plans = {p.model: p for p in plan_run(run, slo_of(run))}
    models = {}
    for name in run.models:
        rows = run.rows_for(name)
        hit = run.first_limit(name)
        plan = plans.get(name)
        models[name] = {
            "limit": hit[1] if hit else None,
            "capacity_at_slo": plan.capacity if plan else None,
            "binds": plan.binds if plan else None,
            # the columns declared with a --json key, at the model's top step
            **{c.json: rows[-1].get(c.name) if rows else None for c in COLUMNS if c.json},
            "expectations": [asdict(v) for v in verdicts if v.server == name],
            "expectations_met": all(v.met for v in verdicts if v.server == name),
        }
    return {"run": str(run.path), "exit_code": exit_code, "slo": asdict(slo_of(run)),
            "models": models, "expectations_met": all(v.met for v in verdicts)}

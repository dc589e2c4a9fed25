"""A scenario's expectations, checked against what the run measured.

``expect: {select: {limit: FD_SETSIZE}, epoll: {holds: 19000}}`` makes a
scenario a regression test (k6's thresholds, Locust's ``--exit-code-on-error``):
``limit`` is the first limit the server hit (``none``: it hit none), read the
way the report reads it (``Run.first_limit``); ``holds`` is met when the
connections the server held within the SLO — the capacity plan's figure — are
at least that many. ``run-lab`` exits 3 when one is not met and says which.

An expectation of a server the run left out (``--models``, ``--set
servers=...``) is not checked: run.json keeps it under ``expect_not_checked``
and it is listed as "not checked" — never met, never a failure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from lab.analysis import connect, group_findings
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
    checked: bool = True  # False: the server was not run (the verdict is neither)

    @property
    def failed(self) -> bool:
        """Checked and not met: what makes a run exit 3."""
        return self.checked and not self.met

    @property
    def mark(self) -> str:
        return "not checked" if not self.checked else "met" if self.met else "NOT MET"

    def line(self) -> str:
        if not self.checked:
            return f"{self.server}: expected {self.expected}: not checked ({self.got})"
        return f"{self.server}: expected {self.expected}, got {self.got}: {self.mark}"


def _spelled(limit: str | None, holds: int | None) -> list[str]:
    return ([f"limit {limit}"] if limit is not None else []) + (
        [f"holds >= {holds}"] if holds is not None else [])


def not_checked(run: Run) -> list[Verdict]:
    """The expectations the run set aside (run.json ``expect_not_checked``; a
    hand-edited entry that is not ``{server, limit?, holds?}`` is skipped)."""
    out = []
    for entry in run.meta.get("expect_not_checked") or ():
        if not isinstance(entry, dict) or not isinstance(entry.get("server"), str):
            continue
        limit, holds = entry.get("limit"), entry.get("holds")
        expected = _spelled(str(limit) if limit is not None else None,
                            holds if isinstance(holds, int) else None)
        out += [Verdict(entry["server"], e, f"{entry['server']} was not run", False, False)
                for e in expected]
    return out


def check(run: Run) -> list[Verdict]:
    """A verdict per expectation of the run's scenario (none without a scenario),
    then those it did not check."""
    if run.scenario is None or not run.scenario.expect:
        return not_checked(run)
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
    return out + not_checked(run)


def summary(run: Run, verdicts: list[Verdict], exit_code: int) -> dict[str, Any]:
    """The machine-readable summary ``--json`` prints: per model its limit, its
    capacity at the SLO, the p99 of its top step and its expectations."""
    slo = slo_of(run)
    plans = {p.model: p for p in plan_run(run, slo)}
    models = {}
    for name in run.models:
        rows = run.rows_for(name)
        hit = run.first_limit(name)
        plan = plans.get(name)
        models[name] = {
            "limit": hit[1] if hit else None,
            "capacity_at_slo": plan.capacity if plan else None,
            "binds": plan.binds if plan else None,
            "connect": connect.model_summary(rows, slo),
            # the columns declared with a --json key, at the model's top step
            **{c.json: rows[-1].get(c.name) if rows else None for c in COLUMNS if c.json},
            "expectations": [asdict(v) for v in verdicts if v.server == name],
            "expectations_met": not any(v.failed for v in verdicts if v.server == name),
        }
    return {"run": str(run.path), "exit_code": exit_code, "slo": asdict(slo),
            "models": models, "groups": group_findings.summary(run),
            "expectations_met": not any(v.failed for v in verdicts),
            "expect_not_checked": [asdict(v) for v in verdicts if not v.checked]}

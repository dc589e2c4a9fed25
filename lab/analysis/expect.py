"""A scenario's expectations, checked against what the run measured.

``expect: {select: {limit: FD_SETSIZE}, epoll: {holds: 19000}}`` makes a
scenario a regression test (k6's thresholds, Locust's ``--exit-code-on-error``):
``limit`` is the first limit the server hit (``none``: it hit none), read the
way the report reads it (``Run.first_limit``); ``holds`` is met when the
connections the server held within the SLO — the capacity plan's figure — are
at least that many. ``run-lab`` exits 3 when one is not met and says which.

The figures of one step (``at: 48``, its connections; the top step when not
given; one that is not a step of the run is not met, so that ``--set
load.steps=...`` can narrow a run), from steps.csv or, with ``group: fast``,
from that user group's row in
groups.csv: ``p99_ms_below``, ``error_rate_at_most`` and ``slower_than:
epoll, times: 10`` (its p99 is at least ten times epoll's at the same step and
group). A step whose echoes all failed (starved: every one timed out) has no
p99, and counts as slower than any; one that sent nothing meets none of them.
With ``load.repeat`` a figure is the median over the passes.

An expectation of a server the run left out (``--models``, ``--set
servers=...``) is not checked: run.json keeps it under ``expect_not_checked``
and it is listed as "not checked" — never met, never a failure.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any

from lab.analysis import connect, group_findings
from lab.analysis.capacity import plan_run, slo_of
from lab.results.columns import COLUMNS
from lab.results.groups import FILE as GROUPS_FILE
from lab.results.groups import read_groups_csv
from lab.results.reader import Run
from lab.scenario.types import Expectation

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


def _where(e: dict[str, Any]) -> str:
    return ((f" at {e['at']}" if e.get("at") is not None else "")
            + (f" in group {e['group']}" if e.get("group") is not None else ""))


def _their(server: Any) -> str:
    return f"{server}'" if str(server).endswith("s") else f"{server}'s"


def _texts(e: dict[str, Any]) -> dict[str, str]:
    """Each expectation of ``e`` (its YAML keys) as the verdict lines spell it, by key."""
    where = _where(e)
    return {key: text for key, text in (
        ("limit", f"limit {e.get('limit')}"),
        ("holds", f"holds >= {e.get('holds')}"),
        ("p99_ms_below", f"p99 < {e.get('p99_ms_below') or 0:g} ms{where}"),
        ("error_rate_at_most", f"error rate <= {e.get('error_rate_at_most') or 0:g}{where}"),
        ("slower_than", f"p99 >= {e.get('times') or 1:g}x {_their(e.get('slower_than'))}{where}"),
    ) if e.get(key) is not None}


def not_checked(run: Run) -> list[Verdict]:
    """The expectations the run set aside (run.json ``expect_not_checked``; a
    hand-edited entry that is not ``{server, ...}`` is skipped)."""
    out = []
    for entry in run.meta.get("expect_not_checked") or ():
        if not isinstance(entry, dict) or not isinstance(entry.get("server"), str):
            continue
        out += [Verdict(entry["server"], e, f"{entry['server']} was not run", False, False)
                for e in _texts(entry).values()]
    return out


def _figures(run: Run, server: str, at: int | None, group: str | None) -> dict[str, Any] | None:
    """``p99_ms``, ``error_rate``, ``echo_count`` and ``failures`` of ``server`` at the
    step of ``at`` connections (the top step), of ``group`` when given; None if it has
    no such row (it stopped before that step)."""
    steps = run.load.steps
    at = at if at is not None else (steps[-1].connections if steps else None)
    rows = [r for r in run.pass_rows(server) if r.get("target_connections") == at]
    if group is not None:
        path = run.path / GROUPS_FILE
        index = {(r.get("repeat") or 0, r.get("step")) for r in rows}
        rows = [r for r in (read_groups_csv(path) if path.exists() else [])
                if r["model"] == server and r["group"] == group
                and (int(r["repeat"] or 0), int(r["step"])) in index]
    if not rows:
        return None

    def median_of(key: str) -> float | None:
        values = [float(r[key]) for r in rows if r.get(key) not in (None, "")]
        return statistics.median(values) if values else None

    return {k: median_of(k) for k in ("p99_ms", "error_rate", "echo_count", "failures")}


def _p99(figures: dict[str, Any] | None) -> float | None:
    """The p99, infinite when every echo failed, None when nothing was measured."""
    if figures is None or (figures["p99_ms"] is None and not figures["failures"]):
        return None
    return figures["p99_ms"] if figures["p99_ms"] is not None else math.inf


def _shown(p99: float | None) -> str:
    return ("no echo measured" if p99 is None else "every echo failed" if p99 == math.inf
            else f"p99 {p99:.3g} ms")


def _figure_verdicts(run: Run, e: Expectation) -> list[Verdict]:
    mine = _figures(run, e.server, e.at, e.group)
    expected = _texts(asdict(e))
    if mine is None:
        steps = [s.connections for s in run.load.steps]
        why = ("the server stopped before that step" if e.at is None or e.at in steps else
               f"not a step of this run ({', '.join(map(str, steps))})")
        return [Verdict(e.server, text, f"no row: {why}", False)
                for key, text in expected.items() if key not in ("limit", "holds")]
    out = []
    p99 = _p99(mine)
    shown = _shown(p99)
    if e.p99_ms_below is not None:
        out.append(Verdict(e.server, expected["p99_ms_below"], shown,
                           p99 is not None and p99 < e.p99_ms_below))
    if e.error_rate_at_most is not None:
        rate = mine["error_rate"]
        out.append(Verdict(e.server, expected["error_rate_at_most"],
                           "no echo measured" if rate is None else f"error rate {rate:.4g}",
                           rate is not None and rate <= e.error_rate_at_most))
    if e.slower_than is not None:
        theirs = _p99(_figures(run, e.slower_than, e.at, e.group))
        times = e.times or 1.0
        got = f"{shown}; {e.slower_than}: {_shown(theirs)}"
        met = p99 is not None and theirs is not None and theirs != math.inf and (
            p99 == math.inf or p99 >= times * theirs)
        out.append(Verdict(e.server, expected["slower_than"], got, met))
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
        out += _figure_verdicts(run, e)
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

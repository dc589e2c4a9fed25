"""Run directories written by the lab's own writers for analysis and report
tests (``written_run``), and one with user groups, written by the lab's own writers
(``RunRecord`` for steps.csv/run.json, ``append_groups`` for groups.csv):
a slowloris group next to a churning fast group, on a thread pool of 8
workers that starves the fast group at step 1, and on epoll, which serves it.
The figures are made up; the files are the lab's."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from lab_fakes import stats, step_record

from lab.results.groups import append_groups
from lab.results.reader import Run, load_run
from lab.results.writer import RunRecord, create_run_dir, make_row
from lab.scenario.loader import parse_scenario

SCENARIO = """
name: slow-clients
servers:
  - {model: threadpool, workers: 8}
  - epoll
load:
  steps: [24, 48]
  groups:
    - {name: fast, weight: 2, user: churn}
    - {name: slowloris, weight: 1, send_chunk: 1, send_gap: 500ms}
slo: {p99_ms: 50, error_rate: 0.01}
"""
SLOW = {"users": 16, "connected": 16, "echo_count": 20, "rps": 1.0, "p50_ms": 31000.0,
        "p90_ms": 31500.0, "p99_ms": 32000.0, "max_ms": 32100.0, "failures": {}}


def _group(users: int, p99: float | None, echoes: int = 400, timeouts: int = 0,
           connect_timeouts: int = 0) -> dict[str, Any]:
    return {"users": users, "connected": users, "echo_count": echoes, "rps": echoes / 5,
            "p50_ms": None if p99 is None else p99 / 4, "p90_ms": p99, "p99_ms": p99,
            "max_ms": p99, "failures": {"timeout": timeouts + connect_timeouts}
            if timeouts + connect_timeouts else {},
            "connect_failures": {"timeout": connect_timeouts} if connect_timeouts else {}}


# Per model and step: the groups, and the server's own pool stats.
STEPS = {
    "threadpool": [
        ({"fast": _group(16, 3.0), "slowloris": dict(SLOW, users=8, connected=8)},
         {"workers": 8, "busy": 8, "waiting": 0, "wait_oldest_s": 0.0,
          "session_oldest_s": 20.0}),
        ({"fast": _group(32, None, echoes=0, connect_timeouts=312), "slowloris": SLOW},
         {"workers": 8, "busy": 8, "waiting": 31, "wait_oldest_s": 4.2,
          "session_oldest_s": 30.0}),
    ],
    "epoll": [
        ({"fast": _group(16, 0.3), "slowloris": dict(SLOW, users=8, connected=8)},
         {"buffered_bytes": 0, "buffered_conns": 0, "blocked_per_s": 0.0}),
        ({"fast": _group(32, 0.4), "slowloris": SLOW},
         {"buffered_bytes": 0, "buffered_conns": 0, "blocked_per_s": 0.0}),
    ],
}


def written_run(dest: Path, text: str, steps: dict, groups: bool = True) -> Run:
    """A run of the scenario ``text`` written under ``dest`` and read back:
    ``steps[server]`` lists, per step, the groups' figures (``{}``: a load
    without groups) and the server's stats fields; the totals are the groups'
    failures and their worst p99, or ``step_record``'s without groups."""
    scenario = parse_scenario(text, "run.yaml")
    record = RunRecord(create_run_dir(dest, scenario.name), scenario, "local")
    for spec in scenario.servers:
        for i, (by_group, server) in enumerate(steps[spec.name]):
            target = scenario.load.steps[i].connections
            server = dict(server)  # "line": fields of the step line itself
            line = {**step_record(i, target, target), **server.pop("line", {})}
            if by_group:
                line["groups"] = by_group
                failed = sum(sum(g.get("failures", {}).values()) for g in by_group.values())
                line["failures"] = {"timeout": failed} if failed else {}
                line["p99_ms"] = max(g["p99_ms"] or 0 for g in by_group.values())
            record.add_row(make_row(spec, line, {**stats(0, target), **server}, None, None))
            if groups:
                append_groups(record.run_dir, spec.name, line)
    return load_run(record.run_dir)


def slow_clients_run(dest: Path, steps: dict = STEPS, groups: bool = True) -> Run:
    """The slow-clients run (``STEPS``) under ``dest``."""
    return written_run(dest, SCENARIO, copy.deepcopy(steps), groups)

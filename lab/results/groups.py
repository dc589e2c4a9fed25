"""``groups.csv``: one row per model, step and user group (``load.groups``).

steps.csv stays one row per model and step, every group's users together;
this file splits each step by group, from the step line's ``groups`` key
(loadgen/meter.py ``merge_groups``: each group's HDR histograms and counters
merged across the workers exactly as the totals are). A row is appended as
each step ends, next to its steps.csv row, so an interrupted run keeps the
groups of every finished step; a load without groups writes no file.

Columns: ``model, repeat, step, group, users, connected, rps, p50_ms, p99_ms,
max_ms, echo_count, failures, error_rate, failure_kinds, connect_failures,
connect_p99_ms, hold_failures``. ``failures`` counts every failed connect,
echo and hold of the group in the step, ``error_rate`` is ``failures /
(echo_count + failures)`` as in steps.csv, and ``failure_kinds`` /
``hold_failures`` list the kinds as ``kind=count`` joined by ``;``.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from lab.errors import ResultsError

FILE = "groups.csv"
COLUMNS = ("model", "repeat", "step", "group", "users", "connected", "rps", "p50_ms", "p99_ms",
           "max_ms", "echo_count", "failures", "error_rate", "failure_kinds",
           "connect_failures", "connect_p99_ms", "hold_failures")


def _kinds(counts: dict[str, Any] | None) -> str:
    return ";".join(f"{k}={int(n)}" for k, n in sorted((counts or {}).items()) if int(n))


def group_rows(model: str, record: dict[str, Any], repeat: int = 0) -> list[dict[str, Any]]:
    """The rows of one step line (none when its load has no groups)."""
    rows = []
    for name, g in sorted((record.get("groups") or {}).items()):
        failures = sum(int(n) for n in (g.get("failures") or {}).values())
        echoes = int(g.get("echo_count") or 0)
        rows.append({
            "model": model, "repeat": repeat, "step": int(record["step"]), "group": name,
            "users": g.get("users"), "connected": g.get("connected"), "rps": g.get("rps"),
            **{k: g.get(k) for k in ("p50_ms", "p99_ms", "max_ms")},
            "echo_count": echoes, "failures": failures,
            "error_rate": failures / (echoes + failures) if echoes + failures else 0.0,
            "failure_kinds": _kinds(g.get("failures")),
            "connect_failures": sum(int(n) for n in (g.get("connect_failures") or {}).values()),
            "connect_p99_ms": g.get("connect_p99_ms"),
            "hold_failures": _kinds(g.get("hold_failures")),
        })
    return rows


def append_groups(run_dir: Path, model: str, record: dict[str, Any], repeat: int = 0) -> None:
    """Append a step's group rows to ``run_dir/groups.csv`` (the header first)."""
    rows = group_rows(model, record, repeat)
    if not rows:
        return
    path = run_dir / FILE
    try:
        new = not path.exists()
        with path.open("a", newline="") as f:
            out = csv.writer(f)
            if new:
                out.writerow(COLUMNS)
            out.writerows([["" if r[c] is None else r[c] for c in COLUMNS] for r in rows])
    except OSError as exc:
        raise ResultsError(f"cannot write {path}: {exc.strerror or exc}; the rows of "
                           "the steps before are kept there and in steps.csv") from None


def read_groups_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))

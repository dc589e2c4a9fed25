"""User groups (``load.groups``): each group's latency per model and step, and
the finding that names the group that suffered.

A mixed load hides its story in the totals: 16 slowloris clients and 32 fast
churning ones give one p99 in steps.csv, and a thread pool that made the fast
clients wait looks like any slow model. ``groups.csv`` (lab/results/groups.py)
splits every step by group; this module reads it and says, per model, which
group suffered where others did not, at the first step it did, with the
server's own evidence from steps.csv and the best model's figure for the same
group beside it:

    threadpool at step 1 (48 users): the fast group's connects timed out (312
    connect failures) while 16 slowloris clients held its 8 workers; epoll:
    p99 0.4 ms, no errors.

A group *suffered* on a model when it missed the SLO there (p99 or error
rate, the group's own figures) and the same group did better elsewhere: it
met the SLO on another model, or its p99 there was at most a tenth
(``WORSE``); or when its echo rate was at most a tenth of the best model's
for the same group (a closed loop waiting for a worker sends nothing more:
measured locally, threadpool with 8 workers and 16 slowloris clients gave
32 churning users 2 echoes/s at p99 17 ms, epoll 2,137/s). A group that
misses everywhere alike (a slowloris client's echo takes as long as it
dribbles, on every model) is its own shape, not a model's fault, and is not
named — unless the run has one model, which has
nothing to be compared with.

Only the first pass of a repeated run is read (``repeat`` 0); the same
finding goes to the console and the report (``lab/analysis/headline.py``)
and to ``--json``'s ``groups`` list.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from contract.limits import TIMEOUT
from lab.analysis.causes import LOOP_BLOCKED, starved_pool
from lab.errors import InputError
from lab.results.groups import FILE, read_groups_csv
from lab.results.reader import Row, Run, parse_failure_kinds
from lab.scenario.types import SLO

# groups.csv's numeric columns and their types (the rest is text).
TYPES: dict[str, type] = {
    "repeat": int, "step": int, "users": int, "connected": int, "rps": float, "p50_ms": float,
    "p99_ms": float, "max_ms": float, "echo_count": int, "failures": int, "error_rate": float,
    "connect_failures": int, "connect_p99_ms": float}
# A group's p99 this many times the best model's is a group that suffered.
WORSE = 10.0

GroupRow = dict[str, Any]


@dataclass(frozen=True)
class GroupFinding:
    """One model's suffering group at the first step it suffered."""

    model: str
    step: int
    group: str
    what: str  # "connects timed out (312 connect failures)", "p99 812 ms (SLO 50 ms)"
    best: str | None  # the model that served the same group best at that step
    best_p99_ms: float | None
    best_error_rate: float | None
    text: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _cell(path: str, line: int, column: str, text: str | None) -> Any:
    if text is None or text == "":
        return None
    kind = TYPES.get(column)
    if kind is None:
        return text
    try:
        number = float(text)
    except ValueError:
        number = float("nan")
    if number != number or number in (float("inf"), float("-inf")):
        raise InputError(f"{path}: line {line}: column {column}: {text!r} is not a number; "
                         "the run directory is damaged (steps.csv still holds every step)")
    return int(number) if kind is int else number


def group_rows(run: Run) -> list[GroupRow]:
    """groups.csv typed (empty cells are None); no file, no rows."""
    path = run.path / FILE
    if not path.is_file():
        return []
    out = []
    for line, raw in enumerate(read_groups_csv(path), start=2):
        out.append({k: _cell(str(path), line, k, v) for k, v in raw.items() if k})
    return out


def by_step(rows: list[GroupRow]) -> dict[tuple[str, int], dict[str, GroupRow]]:
    """{(model, step): {group: row}} of the first pass, in file order."""
    out: dict[tuple[str, int], dict[str, GroupRow]] = {}
    for r in rows:
        if (r.get("repeat") or 0) == 0 and r.get("model") and r.get("step") is not None:
            out.setdefault((r["model"], r["step"]), {})[str(r.get("group"))] = r
    return out


def latency_series(run: Run, rows: list[GroupRow] | None = None,
                   field: str = "p99_ms") -> dict[tuple[str, str], tuple[list[float], list[float]]]:
    """Per (model, group), x = the step's users (every group's) and y = the
    group's ``field``, in step order; steps without the value are left out.
    The report's SVG and PNG group charts both draw exactly these points."""
    out: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
    for (model, _step), groups in sorted(by_step(group_rows(run) if rows is None else rows)
                                         .items(), key=lambda kv: (_order(run, kv[0][0]),
                                                                   kv[0][1])):
        users = sum(g.get("users") or 0 for g in groups.values())
        for name, g in groups.items():
            if g.get(field) is not None:
                xs, ys = out.setdefault((model, name), ([], []))
                xs.append(float(users))
                ys.append(float(g[field]))
    return out


def _order(run: Run, model: str) -> int:
    return run.models.index(model) if model in run.models else len(run.models)


def missed(g: GroupRow, slo: SLO) -> bool:
    p99, err = g.get("p99_ms"), g.get("error_rate") or 0.0
    return (p99 is not None and p99 > slo.p99_ms) or err > slo.error_rate or (
        p99 is None and bool(g.get("failures")))


def _badness(g: GroupRow) -> tuple[float, float]:
    p99 = g.get("p99_ms")
    return (g.get("error_rate") or 0.0, float("inf") if p99 is None else p99)


def starved_rate(g: GroupRow, best: GroupRow | None) -> bool:
    """The group's users got at most a tenth of the echoes per second that
    ``best`` gave the same group: clients that wait for a worker send nothing
    more, so a closed loop's starvation shows as a collapsed rate, often
    with a fine p99 over the few echoes that got through."""
    rps, best_rps = g.get("rps"), best.get("rps") if best else None
    return bool(best_rps) and rps is not None and rps * WORSE <= best_rps


def suffered(g: GroupRow, best: GroupRow | None, slo: SLO) -> bool:
    """``g`` missed the SLO and the same group did better on ``best``, or its
    echo rate collapsed against ``best``'s (``starved_rate``)."""
    if starved_rate(g, best):
        return True
    if not missed(g, slo):
        return False
    if best is None:
        return True
    if not missed(best, slo):
        return True
    p99, best_p99 = g.get("p99_ms"), best.get("p99_ms")
    return best_p99 is not None and (p99 is None or p99 >= WORSE * best_p99)


def what(g: GroupRow, slo: SLO, best_model: str | None = None,
         best: GroupRow | None = None) -> str:
    """How a group suffered, in words, from its own counts (and the best
    model's rate when that is the evidence)."""
    kinds = parse_failure_kinds(g.get("failure_kinds"))
    connects, failures = g.get("connect_failures") or 0, g.get("failures") or 0
    if connects and kinds.get(TIMEOUT):
        return f"connects timed out ({connects:,} connect failure{'s' * (connects > 1)})"
    if kinds.get(TIMEOUT):
        tried = (g.get("echo_count") or 0) + failures
        return f"echoes timed out ({kinds[TIMEOUT]:,} of {tried:,})"
    if (g.get("error_rate") or 0.0) > slo.error_rate:
        listed = ", ".join(f"{k} {n:,}" for k, n in sorted(kinds.items()))
        return f"error rate {g['error_rate']:.1%}" + (f" ({listed})" if listed else "")
    if not missed(g, slo) and best is not None and starved_rate(g, best):
        return (f"echoes fell to {g['rps']:,.1f}/s ({best_model} gave the same group "
                f"{best['rps']:,.0f}/s)")
    return f"p99 {g.get('p99_ms') or 0:,.1f} ms (SLO {slo.p99_ms:g} ms)"


def _while(group: str, groups: dict[str, GroupRow], row: Row | None) -> str:
    """The other groups at the step, and what the server said they held."""
    others = [(n, g) for n, g in groups.items() if n != group]
    if not others:
        return ""
    names = " and ".join(f"{g.get('users') or 0:,} {n} clients" for n, g in others)
    row = row or {}
    workers = row.get("server_workers")
    if starved_pool(row) and workers:
        held = f"its {workers} worker{'s' * (workers > 1)}" if workers > 1 else "its one thread"
        return f" while {names} held {held}"
    blocked = row.get("server_blocked_per_s")
    if blocked is not None and blocked >= LOOP_BLOCKED:
        return f" next to {names}, its loop blocked {blocked:.2f} s/s in handler waits"
    return f" next to {names}"


def _best_text(best_model: str, best: GroupRow) -> str:
    p99, err = best.get("p99_ms"), best.get("error_rate") or 0.0
    text = f"{best_model}: " + (f"p99 {p99:,.1f} ms" if p99 is not None else "no echo either")
    return text + (", no errors" if not err else f", error rate {err:.1%}")


def findings(run: Run, rows: list[GroupRow] | None = None) -> list[GroupFinding]:
    """Per model (run order), the group that suffered at the first step it did."""
    steps = by_step(group_rows(run) if rows is None else rows)
    if not steps:
        return []
    slo, out = run.slo, []
    for model in run.models:
        for step in sorted(s for m, s in steps if m == model):
            found = _at(run, model, step, steps, slo)
            if found is not None:
                out.append(found)
                break
    return out


def _at(run: Run, model: str, step: int, steps: dict[tuple[str, int], dict[str, GroupRow]],
        slo: SLO) -> GroupFinding | None:
    groups = steps[(model, step)]
    ranked = []
    for name, g in groups.items():
        rivals = [(m, steps[(m, step)][name]) for m in run.models
                  if m != model and name in steps.get((m, step), {})]
        best_model, best = min(rivals, key=lambda mg: (_badness(mg[1]), -(mg[1].get("rps") or 0)),
                               default=(None, None))
        if suffered(g, best, slo):
            ranked.append((_badness(g), name, g, best_model, best))
    if not ranked:
        return None
    _, name, g, best_model, best = max(ranked, key=lambda item: item[0])
    row = next((r for r in run.rows_for(model) if r.get("step") == step), None)
    users = sum(x.get("users") or 0 for x in groups.values())
    how = what(g, slo, best_model, best)
    text = (f"{model} at step {step} ({users:,} users): the {name} group's {how}"
            f"{_while(name, groups, row)}"
            + (f"; {_best_text(best_model, best)}" if best_model and best else "") + ".")
    return GroupFinding(model, step, name, how, best_model,
                        best.get("p99_ms") if best else None,
                        best.get("error_rate") if best else None, text)


def summary(run: Run) -> list[dict[str, Any]]:
    """``--json``'s ``groups``: every finding as plain data."""
    return [f.to_json() for f in findings(run)]

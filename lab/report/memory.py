"""The report's "Memory of the whole lab" section: what the connections cost.

A connection costs memory at both ends and in between: the server's process
(its per-connection state: a Python object, a registration in the selector,
a buffer while echoing), each load worker's process (a greenlet and a socket
object per user), and the kernel's socket structures (``struct tcp_sock``,
an inode, the buffers of unread or unacknowledged data), which belong to no
process and show up in no RSS. ``lab_mem_bytes`` (lab/results/columns.py) is
the sum of the three at a step's end. The peak over the run is the number a
capacity planner checks against the machine's memory; the growth per
connection from a model's first step to its last step without a limit
(user space and kernel apart) is what scales, since the first step's memory
is mostly interpreters. A step at a limit is left out of it: its clients
count sockets the server is refusing, and the load's memory follows the
users it spawned, not the connections held.

``kernel_sock_bytes`` is the server host's. On one host it counts both ends
of every connection; with the load on other hosts only the server's end (the
section says which).
"""

from __future__ import annotations

from html import escape

from lab.report.tables import MIB, html_table
from lab.results.reader import Run


def _mib(value: float | None) -> str:
    return "–" if value is None else f"{value / MIB:,.1f}"


def _per_conn(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f} B"


def _known(rows: list[dict]) -> list[dict]:
    return [r for r in rows if isinstance(r.get("lab_mem_bytes"), int | float)
            and isinstance(r.get("connected"), int | float)]


def growth(first: dict, last: dict, *keys: str) -> float | None:
    """Bytes per connection of ``keys`` summed, from ``first`` to ``last``."""
    held = (last["connected"] or 0) - (first["connected"] or 0)
    if held <= 0 or any(not isinstance(r.get(k), int | float) for r in (first, last)
                        for k in keys):
        return None
    return sum(last[k] - first[k] for k in keys) / held


def peak(run: Run) -> tuple[str, dict] | None:
    """(model, row) of the step where the whole lab used the most memory."""
    best = None
    for model in run.models:
        for row in _known(run.rows_for(model)):
            if best is None or row["lab_mem_bytes"] > best[1]["lab_mem_bytes"]:
                best = (model, row)
    return best


def _one_host(run: Run) -> bool:
    scenario = run.scenario
    return scenario is None or len(scenario.hosts) <= 1


def section(run: Run) -> str:
    """HTML for the section ("" when no row carries the lab's memory)."""
    top = peak(run)
    if top is None:
        return ""
    model, row = top
    rows = []
    for name in run.models:
        known = _known(run.rows_for(name))
        if not known:
            continue
        top = max(known, key=lambda r: r["lab_mem_bytes"])
        held = [r for r in known if not r.get("limit")]
        first, last = (held[0], held[-1]) if held else (top, top)
        rows.append([escape(name), top.get("step"), top.get("connected"),
                     _mib(top.get("server_rss_bytes")), _mib(top.get("loadgen_rss_bytes")),
                     _mib(top.get("kernel_sock_bytes")), _mib(top["lab_mem_bytes"]),
                     _per_conn(growth(first, last, "server_rss_bytes", "loadgen_rss_bytes")),
                     _per_conn(growth(first, last, "kernel_sock_bytes"))])
    where = ("on this one host the kernel figure covers both ends of every connection"
             if _one_host(run) else "the kernel figure is the server host's only; the load "
             "hosts' kernel sockets are not counted")
    head = ["server", "peak step", "held", "server RSS MiB", "load RSS MiB",
            "kernel sockets MiB", "whole lab MiB", "user B/conn", "kernel B/conn"]
    return (f"<h2>Memory of the whole lab</h2><p>Peak: <b>{_mib(row['lab_mem_bytes'])} MiB"
            f"</b> at {escape(model)} step {escape(str(row.get('step')))} with "
            f"{row.get('connected'):,} connections held: server processes, load processes "
            f"and the kernel's socket memory at the step's end ({escape(where)}). Per "
            "connection: the growth from the model's first step to its last step without a "
            "limit, user space (server + load) and kernel apart.</p>"
            + html_table(head, rows, text_cols={0}))

"""How many connections one server can hold on a host, and what stops it first.

One function, :func:`server_ceilings`, used by ``run-lab doctor`` before a run
(to say where each model will stop) and by the capacity plan after it (the
"descriptors" and "processes" columns per host), so the two never disagree.
They are ceilings from arithmetic; a run finds the real wall.

- **Descriptors.** Every held connection of a single-process model is a
  descriptor of the server process; the process also holds a few of its own
  (``contract.fds.SERVER_FD_OVERHEAD``: the standard three, the listener, the
  EMFILE spare, the poller). So the process holds ``nofile - overhead``
  connections before ``accept()`` fails with EMFILE. select() also cannot
  watch descriptor FD_SETSIZE (1024) or above: ``min(nofile, 1024) - overhead``.
- **Process per connection** (forking): the parent closes its copy of each
  accepted socket and each child holds one, so no process's nofile binds;
  ``kernel.pid_max`` and RLIMIT_NPROC do.
- **Thread per connection** (threads): ``kernel.threads-max``, ``pid_max``
  (a thread takes a pid) and RLIMIT_NPROC, and nofile (the threads share it).
- **The system file table** (``fs.file-max``) counts every socket on the host;
  with the load on the same host each connection counts twice.
- **blocking** serves one connection at a time; the others wait in the backlog.
"""

from __future__ import annotations

from dataclasses import dataclass

from contract.fds import DEFAULT_SERVER_FD_OVERHEAD, SERVER_FD_OVERHEAD
from contract.limits import FD_SETSIZE
from contract.models import PROCESS_PER_CONNECTION, THREAD_PER_CONNECTION
from lab.host.facts import HostFacts

UNLIMITED = 1 << 62


@dataclass(frozen=True)
class Ceiling:
    connections: int
    limit: str  # a kind from the limit vocabulary
    why: str


def effective_nofile(nofile: int | str | None, facts: HostFacts) -> int:
    """The open-file limit a server gets: ``max`` (or unknown) is the host's hard limit."""
    hard = facts.nofile_hard or 1024
    if isinstance(nofile, int):
        return min(nofile, hard)
    return hard


def server_ceilings(model: str | None, nofile: int | str | None, facts: HostFacts, *,
                    backlog: int = 1024, load_on_host: bool = False) -> list[Ceiling]:
    """Every limit that caps how many connections one server holds on ``facts``'s host.

    ``model`` None is a custom server (treated like a single-process server).
    ``load_on_host``: the load generator's sockets share the host's file table.
    """
    found: list[Ceiling] = []
    overhead = SERVER_FD_OVERHEAD.get(model or "", DEFAULT_SERVER_FD_OVERHEAD)
    limit = effective_nofile(nofile, facts)
    if model not in PROCESS_PER_CONNECTION:
        found.append(Ceiling(max(limit - overhead, 0), "EMFILE",
                             f"nofile {nofile} = {limit} descriptors per process, {overhead} "
                             "of them the server's own"))
    if model == "select":
        found.append(Ceiling(max(min(limit, FD_SETSIZE) - overhead, 0), "FD_SETSIZE",
                             f"select() cannot watch descriptor {FD_SETSIZE} or above; "
                             f"{overhead} below it are the server's own"))
    if model in PROCESS_PER_CONNECTION or model in THREAD_PER_CONNECTION:
        tasks = min(facts.pid_max or UNLIMITED, facts.nproc or UNLIMITED,
                    (facts.threads_max or UNLIMITED) if model in THREAD_PER_CONNECTION
                    else UNLIMITED)
        kind = "threads" if model in THREAD_PER_CONNECTION else "pid_max"
        unit = "thread" if kind == "threads" else "process"
        found.append(Ceiling(tasks, kind, f"one {unit} per connection (pid_max, threads-max, "
                                          "RLIMIT_NPROC)"))
    if model == "blocking":
        found.append(Ceiling(1, "backlog", f"serves one connection at a time; up to "
                                           f"{backlog} more wait in the backlog"))
    if facts.file_max:
        shared = 2 if load_on_host else 1
        found.append(Ceiling(facts.file_max // shared, "ENFILE",
                             f"fs.file-max {facts.file_max}"
                             + (": client and server ends share it on one host" if shared > 1
                                else " for the whole host")))
    return found


def binding(ceilings: list[Ceiling]) -> Ceiling | None:
    """The ceiling that binds first (the smallest)."""
    return min(ceilings, key=lambda c: c.connections, default=None)

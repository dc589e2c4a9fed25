"""How many connections one server can hold on a host, and what stops it first.

One function, :func:`server_ceilings`, used by ``run-lab doctor`` before a run
(to say where each model will stop) and by the capacity plan after it (the
"descriptors" and "processes" columns per host, and "memory" where the run
measured no RSS slope to replace it), so the two never disagree.
They are ceilings from arithmetic; a run finds the real wall.

- **Descriptors.** Every held connection of a single-process model is a
  descriptor of the server process; the process also holds a few of its own
  (each model's ``fd_overhead`` in ``contract/models.py``: the standard three,
  the listener, the EMFILE spare, the poller). So the process holds ``nofile - overhead``
  connections before ``accept()`` fails with EMFILE. select() also cannot
  watch descriptor FD_SETSIZE (1024) or above: ``min(nofile, 1024) - overhead``.
- **Several listening processes** (``processes: N``, the event-driven models,
  ``servers/prefork.py``): each process has its own RLIMIT_NOFILE, so N
  processes hold N x (nofile - overhead), N x the select wall. The kernel
  spreads connections over them by a hash, not by room left, so ``processes:
  auto`` (:func:`processes_for`) asks for ``AUTO_PROCESSES_MARGIN`` more than
  the top step, and for room for the hash's spread.
- **Process per connection** (forking): the parent closes its copy of each
  accepted socket and each child holds one, so no process's nofile binds;
  ``kernel.pid_max`` and RLIMIT_NPROC do.
- **Thread per connection** (threads): ``kernel.threads-max``, ``pid_max``
  (a thread takes a pid) and RLIMIT_NPROC, and nofile (the threads share it).
- **The system file table** (``fs.file-max``) counts every socket on the host;
  with the load on the same host each connection counts twice.
- **blocking** serves one connection at a time; the others wait in the backlog.
- **Memory** (every model): each held connection costs the server's userspace
  memory for it, the kernel's memory for the task that serves it (forking,
  threads) and the kernel's TCP socket (a second one when the load runs on the
  same host: the client's end). Each model's ``memory`` in
  ``contract/models.py`` has the measured figures; the ceiling is the host's
  available memory (its total where that is unknown) over their sum, limit
  kind ENOMEM. It ignores buffered data (an idle connection holds none; a busy
  one adds its queued bytes) and the interpreter's fixed footprint, so it is
  an upper bound like the others.
- **The whole lab's memory** (:func:`lab_memory`, for the doctor's refusal and
  its host maximum): with load and servers on one host, a held connection also
  costs the load generator's user (``lab/host/workers.py``: ~11 KB of RSS, the
  largest share) and every process a fixed footprint (a Locust process ~50 MiB,
  a server process ``SERVER_PROCESS_RSS_BYTES``). Split three ways, as the
  run's report measures it: load, servers, kernel sockets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from contract import defaults
from contract.limits import (
    BACKLOG,
    EMFILE,
    ENFILE,
    ENOMEM,
    FD_SETSIZE,
    FD_SETSIZE_LIMIT,
    PID_MAX,
    THREADS,
)
from contract.models import model_facts
from lab.host.facts import HostFacts
from lab.host.workers import USER_RSS_BYTES, load_rss_bytes

UNLIMITED = 1 << 62
KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30

# One TCP socket in the kernel, idle (no queued data): struct tcp_sock (2368 B
# on 6.18) + its socket inode (832 B) + struct file and dentry (192 B each) =
# 3.5 KiB of slab objects; the slab grew by 3.2-4.8 KiB per socket end when each
# model's memory was measured (contract/models.py; partly filled slabs, the
# epoll item). Data queued in a socket's buffers comes on top (up to
# net.ipv4.tcp_rmem/tcp_wmem each way).
KERNEL_SOCKET_BYTES = 4 * KiB
# One server process with no connections: the interpreter, the model's module,
# its poller (C100K, benchmarks/README.md: 131 MiB for 7 epoll processes holding
# 100,000 connections at 238 B each).
SERVER_PROCESS_RSS_BYTES = 15 * MiB


def connection_bytes(model: str | None, load_on_host: bool = False,
                     user_bytes: int = USER_RSS_BYTES) -> int:
    """What one held connection of ``model`` costs the host's memory (with the
    load on the host: its user, of ``user_bytes``, and the client's socket too)."""
    cost = model_facts(model).memory
    if load_on_host:
        return cost.userspace + cost.kernel + 2 * KERNEL_SOCKET_BYTES + user_bytes
    return cost.userspace + cost.kernel + KERNEL_SOCKET_BYTES


def _size(n: float) -> str:
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= size:
            return f"{n / size:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n:.0f} B"


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


# processes: auto asks for this much more room than the top step: the kernel hashes
# connections over the listeners, so one process fills up before the others.
AUTO_PROCESSES_MARGIN = 1.1
# The kernel picks a connection's listener by a hash of its addresses and ports
# (reuseport_select_sock: jhash with a boot-time secret), not by room left: the
# count each of N processes gets is binomial, mean top/N, standard deviation
# ~sqrt(top/N). A 10 % margin is 16 of them at 500,000 connections over 28
# processes, but 1.2 at 300 over 3 (one run in ten put 115 on a process of
# 114). auto also wants the mean plus this many deviations to fit one process.
HASH_SPREAD_SD = 4.0


def per_process(model: str | None, nofile_limit: int) -> int:
    """Connections one process of ``model`` holds before a descriptor wall."""
    facts = model_facts(model)
    walls = [nofile_limit] + ([FD_SETSIZE] if facts.fd_set else [])
    return max(min(walls) - facts.fd_overhead, 0)


def processes_for(processes: int | str, model: str | None, nofile_limit: int, top: int) -> int:
    """``processes: N`` is N; ``auto`` is enough processes of ``nofile_limit``
    descriptors for ``top`` connections, with the margin and room for the
    hash's spread, and at least 1."""
    if processes != "auto":
        return int(processes)
    each = per_process(model, nofile_limit)
    if not each:
        return 1
    n = max(1, math.ceil(top * AUTO_PROCESSES_MARGIN / each))
    while n < top and top / n + HASH_SPREAD_SD * math.sqrt(top / n) > each:
        n += 1
    return n


def server_ceilings(model: str | None, nofile: int | str | None, facts: HostFacts, *,
                    backlog: int = defaults.BACKLOG, load_on_host: bool = False,
                    processes: int = 1, user_bytes: int = USER_RSS_BYTES) -> list[Ceiling]:
    """Every limit that caps how many connections one server holds on ``facts``'s host.

    ``model`` None is a custom server (treated like a single-process server).
    ``load_on_host``: the load generator's sockets share the host's file table
    and its kernel memory, each user ``user_bytes`` (lab/host/workers.py
    ``user_rss_bytes``). ``processes``: listening processes (``processes: N``).
    """
    found: list[Ceiling] = []
    known = model_facts(model)
    overhead = known.fd_overhead
    limit = effective_nofile(nofile, facts)
    each = f", in each of {processes} processes" if processes > 1 else ""
    if known.task_per_connection != "process":
        found.append(Ceiling(processes * max(limit - overhead, 0), EMFILE,
                             f"nofile {nofile} = {limit} descriptors per process, "
                             f"{overhead} of them the server's own{each}"))
    if known.fd_set:
        found.append(Ceiling(processes * per_process(model, limit), FD_SETSIZE_LIMIT,
                             f"select() cannot watch descriptor {FD_SETSIZE} or above; "
                             f"{overhead} below it are the server's own{each}"))
    unit = known.task_per_connection
    if unit:
        tasks = min(facts.pid_max or UNLIMITED, facts.nproc or UNLIMITED,
                    (facts.threads_max or UNLIMITED) if unit == "thread" else UNLIMITED)
        kind = THREADS if unit == "thread" else PID_MAX
        found.append(Ceiling(tasks, kind, f"one {unit} per connection (pid_max, threads-max, "
                                          "RLIMIT_NPROC)"))
    if known.serial:
        found.append(Ceiling(1, BACKLOG, f"serves one connection at a time; up to "
                                         f"{backlog} more wait in the backlog"))
    memory = facts.mem_available_bytes or facts.mem_bytes
    if memory:
        found.append(memory_ceiling(model, memory, bool(facts.mem_available_bytes),
                                    load_on_host, user_bytes))
    if facts.file_max:
        shared = 2 if load_on_host else 1
        found.append(Ceiling(facts.file_max // shared, ENFILE,
                             f"fs.file-max {facts.file_max}"
                             + (": client and server ends share it on one host" if shared > 1
                                else " for the whole host")))
    return found


def memory_ceiling(model: str | None, memory: int, available: bool,
                   load_on_host: bool, user_bytes: int = USER_RSS_BYTES) -> Ceiling:
    """Connections whose memory fits in ``memory`` (``available``: MemAvailable)."""
    per_connection = connection_bytes(model, load_on_host, user_bytes)
    return Ceiling(memory // per_connection, ENOMEM,
                   f"~{cost_words(model, load_on_host, user_bytes)} in "
                   f"{_size(memory)} {'available' if available else 'of memory'}")


def cost_words(model: str | None, load_on_host: bool, user_bytes: int = USER_RSS_BYTES) -> str:
    """One connection's memory and its parts, in words."""
    cost = model_facts(model).memory
    parts = [f"{_size(cost.userspace)} userspace"] if cost.userspace else []
    if cost.kernel:
        parts.append(f"{_size(cost.kernel)} kernel task")
    parts.append(f"2 x {_size(KERNEL_SOCKET_BYTES)} TCP socket: client and server on one host"
                 if load_on_host else f"{_size(KERNEL_SOCKET_BYTES)} TCP socket")
    if load_on_host:
        parts.append(f"{_size(user_bytes)} load generator user")
    return (f"{_size(connection_bytes(model, load_on_host, user_bytes))} per connection "
            f"({' + '.join(parts)})")


@dataclass(frozen=True)
class LabMemory:
    """The whole lab's memory holding ``connections`` on one host, by owner."""

    connections: int
    load: int  # Locust workers and master: users and process footprints
    servers: int  # server processes: connections and process footprints
    kernel: int  # TCP sockets, both ends

    @property
    def total(self) -> int:
        return self.load + self.servers + self.kernel

    def words(self) -> str:
        return (f"~{_size(self.total)} (load {_size(self.load)}, servers "
                f"{_size(self.servers)}, kernel sockets {_size(self.kernel)})")


def lab_memory(model: str | None, connections: int, *, processes: int = 1,
               workers: int = 1, load_on_host: bool = True,
               user_bytes: int = USER_RSS_BYTES) -> LabMemory:
    """What ``connections`` held by ``processes`` server processes and
    ``workers`` Locust workers cost this host (the load only when it is here)."""
    cost = model_facts(model).memory
    sockets = 2 if load_on_host else 1
    return LabMemory(
        connections,
        load=load_rss_bytes(connections, workers, user_bytes) if load_on_host else 0,
        servers=processes * SERVER_PROCESS_RSS_BYTES + connections * (cost.userspace
                                                                      + cost.kernel),
        kernel=connections * sockets * KERNEL_SOCKET_BYTES)


def memory_shortfall(model: str | None, name: str, top: int, available: int | None,
                     load_on_host: bool = True, *, processes: int = 1,
                     workers: int = 1, fits: int | None = None,
                     user_bytes: int = USER_RSS_BYTES) -> str | None:
    """Why ``top`` connections of ``model`` cannot fit in ``available`` bytes
    (the host's MemAvailable), with the arithmetic; None when they fit or the
    figure is unknown. ``fits``: how many do (the doctor's host maximum; by
    default the available memory over the per-connection cost). Conservative:
    it speaks only when the prediction exceeds *all* of MemAvailable, which
    the kernel can reclaim (page cache) without swapping — past it the host's
    OOM killer chooses among all its processes, the lab's own and others."""
    if not available or top <= 0:
        return None
    need = lab_memory(model, top, processes=processes, workers=workers,
                      load_on_host=load_on_host, user_bytes=user_bytes)
    if need.total <= available:
        return None
    if fits is None:
        fits = available // (need.total // top)
    return (f"{name}: the top step ({top} connections) needs {need.words()}: {top} x "
            f"{cost_words(model, load_on_host, user_bytes)}, with {processes} server and {workers} "
            f"load process(es), more than the {_size(available)} this host has available "
            f"(MemAvailable); about {fits} fit. Lower the top step to {fits} or fewer "
            f"(--set load.steps=[...]), give the server a memory limit (limits.memory) "
            f"to measure where it runs out, or run it on a host with more memory")


def binding(ceilings: list[Ceiling]) -> Ceiling | None:
    """The ceiling that binds first (the smallest)."""
    return min(ceilings, key=lambda c: c.connections, default=None)

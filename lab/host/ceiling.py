"""How many connections one server can hold on a host, and what stops it first.

One function, :func:`server_ceilings`, used by ``run-lab doctor`` before a run
(to say where each model will stop) and by the capacity plan after it (the
"descriptors" and "processes" columns per host, and "memory" where the run
measured no RSS slope to replace it), so the two never disagree.
They are ceilings from arithmetic; a run finds the real wall.

- **Descriptors.** Every held connection of a single-process model is a
  descriptor of the server process; the process also holds a few of its own
  (``contract.fds.SERVER_FD_OVERHEAD``: the standard three, the listener, the
  EMFILE spare, the poller). So the process holds ``nofile - overhead``
  connections before ``accept()`` fails with EMFILE. select() also cannot
  watch descriptor FD_SETSIZE (1024) or above: ``min(nofile, 1024) - overhead``.
- **Several listening processes** (``processes: N``, the event-driven models,
  ``servers/prefork.py``): each process has its own RLIMIT_NOFILE, so N
  processes hold N x (nofile - overhead), N x the select wall. The kernel
  spreads connections over them by a hash, not by room left, so ``processes:
  auto`` (:func:`processes_for`) asks for ``AUTO_PROCESSES_MARGIN`` more than
  the top step.
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
  same host: the client's end). ``CONNECTION_MEMORY`` has the measured
  figures; the ceiling is the host's available memory (its total where that
  is unknown) over their sum, limit kind ENOMEM. It ignores buffered data (an
  idle connection holds none; a busy one adds its queued bytes) and the
  interpreter's fixed footprint, so it is an upper bound like the others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from contract.fds import DEFAULT_SERVER_FD_OVERHEAD, SERVER_FD_OVERHEAD
from contract.limits import FD_SETSIZE
from contract.models import PROCESS_PER_CONNECTION, THREAD_PER_CONNECTION
from lab.host.facts import HostFacts

UNLIMITED = 1 << 62
KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


class ConnectionMemory(NamedTuple):
    """Bytes one held connection costs a model, besides its TCP socket."""

    userspace: int  # the server's own memory for the connection
    kernel: int = 0  # the kernel's for the task serving it (process or thread)


# Measured on Linux 6.18 / CPython 3.11 (x86_64, 2 CPUs, idle connections, each
# echoed once) with
#     .venv/bin/python tests/servers/test_forking_memory.py
# which holds N, then 2N connections against each model and divides the growth
# of the stats events' rss_bytes by N (the marginal cost, as the capacity plan
# takes it): N = 200 for threads and forking, 400 for select, 1000 for the
# others, whose few hundred bytes hide in the allocator's free lists at a
# smaller N. Repeated runs agreed within 10 %. forking reports PSS
# (servers/forking_loop.py): a child's RSS is ~14 MiB, almost all of it the
# parent's image, shared copy-on-write. The kernel column is the growth of
# /proc/meminfo's KernelStack + PageTables + Slab per connection, less the
# socket ends in the slab; system-wide, hence rounded: a thread is a 16 KiB
# kernel stack and ~6 KiB of slab (task_struct 5.75 KiB, its pid); a process
# adds ~95 KiB of page tables and 55-130 KiB of slab (mm, VMAs, signal and
# file tables) to its kernel stack.
CONNECTION_MEMORY: dict[str, ConnectionMemory] = {
    "blocking": ConnectionMemory(0),  # one at a time; the rest wait in the accept queue
    "threads": ConnectionMemory(33 * KiB, 22 * KiB),  # touched stack pages + 16 KiB buffer
    "forking": ConnectionMemory(1300 * KiB, 200 * KiB),  # a child's PSS: the pages it copied
    "threadpool": ConnectionMemory(100),  # a queued socket object
    "nonblocking": ConnectionMemory(340),
    "select": ConnectionMemory(230),
    "poll": ConnectionMemory(300),
    "epoll": ConnectionMemory(210),
    "epoll-et": ConnectionMemory(210),
    "selectors": ConnectionMemory(350),
    "asyncio": ConnectionMemory(1670),  # transport and protocol objects
    "uvloop": ConnectionMemory(1370),
    "sigio": ConnectionMemory(340),
    "io_uring": ConnectionMemory(16 * KiB),  # a 16 KiB receive buffer per connection
}
# A custom server: unknown; its socket at least, so the ceiling stays an upper bound.
DEFAULT_CONNECTION_MEMORY = ConnectionMemory(0)
# One TCP socket in the kernel, idle (no queued data): struct tcp_sock (2368 B
# on 6.18) + its socket inode (832 B) + struct file and dentry (192 B each) =
# 3.5 KiB of slab objects; the slab grew by 3.2-4.8 KiB per socket end in the
# measurement above (partly filled slabs, the epoll item). Data queued in a
# socket's buffers comes on top (up to net.ipv4.tcp_rmem/tcp_wmem each way).
KERNEL_SOCKET_BYTES = 4 * KiB


def connection_bytes(model: str | None, load_on_host: bool = False) -> int:
    """What one held connection of ``model`` costs the host's memory."""
    cost = CONNECTION_MEMORY.get(model or "", DEFAULT_CONNECTION_MEMORY)
    sockets = 2 if load_on_host else 1
    return cost.userspace + cost.kernel + sockets * KERNEL_SOCKET_BYTES


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


def per_process(model: str | None, nofile_limit: int) -> int:
    """Connections one process of ``model`` holds before a descriptor wall."""
    overhead = SERVER_FD_OVERHEAD.get(model or "", DEFAULT_SERVER_FD_OVERHEAD)
    walls = [nofile_limit] + ([FD_SETSIZE] if model == "select" else [])
    return max(min(walls) - overhead, 0)


def processes_for(processes: int | str, model: str | None, nofile_limit: int, top: int) -> int:
    """``processes: N`` is N; ``auto`` is enough processes of ``nofile_limit``
    descriptors for ``top`` connections, with the margin, and at least 1."""
    if processes != "auto":
        return int(processes)
    each = per_process(model, nofile_limit)
    return max(1, math.ceil(top * AUTO_PROCESSES_MARGIN / each)) if each else 1


def server_ceilings(model: str | None, nofile: int | str | None, facts: HostFacts, *,
                    backlog: int = 1024, load_on_host: bool = False,
                    processes: int = 1) -> list[Ceiling]:
    """Every limit that caps how many connections one server holds on ``facts``'s host.

    ``model`` None is a custom server (treated like a single-process server).
    ``load_on_host``: the load generator's sockets share the host's file table
    and its kernel memory. ``processes``: listening processes (``processes: N``).
    """
    found: list[Ceiling] = []
    overhead = SERVER_FD_OVERHEAD.get(model or "", DEFAULT_SERVER_FD_OVERHEAD)
    limit = effective_nofile(nofile, facts)
    each = f", in each of {processes} processes" if processes > 1 else ""
    if model not in PROCESS_PER_CONNECTION:
        found.append(Ceiling(processes * max(limit - overhead, 0), "EMFILE",
                             f"nofile {nofile} = {limit} descriptors per process, "
                             f"{overhead} of them the server's own{each}"))
    if model == "select":
        found.append(Ceiling(processes * per_process(model, limit), "FD_SETSIZE",
                             f"select() cannot watch descriptor {FD_SETSIZE} or above; "
                             f"{overhead} below it are the server's own{each}"))
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
    memory = facts.mem_available_bytes or facts.mem_bytes
    if memory:
        found.append(memory_ceiling(model, memory, bool(facts.mem_available_bytes),
                                    load_on_host))
    if facts.file_max:
        shared = 2 if load_on_host else 1
        found.append(Ceiling(facts.file_max // shared, "ENFILE",
                             f"fs.file-max {facts.file_max}"
                             + (": client and server ends share it on one host" if shared > 1
                                else " for the whole host")))
    return found


def memory_ceiling(model: str | None, memory: int, available: bool,
                   load_on_host: bool) -> Ceiling:
    """Connections whose memory fits in ``memory`` (``available``: MemAvailable)."""
    cost = CONNECTION_MEMORY.get(model or "", DEFAULT_CONNECTION_MEMORY)
    parts = [f"{_size(cost.userspace)} userspace"] if cost.userspace else []
    if cost.kernel:
        parts.append(f"{_size(cost.kernel)} kernel task")
    parts.append(f"2 x {_size(KERNEL_SOCKET_BYTES)} TCP socket: client and server on one host"
                 if load_on_host else f"{_size(KERNEL_SOCKET_BYTES)} TCP socket")
    per_connection = connection_bytes(model, load_on_host)
    return Ceiling(memory // per_connection, "ENOMEM",
                   f"~{_size(per_connection)} per connection ({' + '.join(parts)}) in "
                   f"{_size(memory)} {'available' if available else 'of memory'}")


def binding(ceilings: list[Ceiling]) -> Ceiling | None:
    """The ceiling that binds first (the smallest)."""
    return min(ceilings, key=lambda c: c.connections, default=None)

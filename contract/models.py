"""The I/O models, in contract order (``docs/design.md``, "Servers — contract"),
and every per-model fact the parts share, each written once in :data:`TABLE`.

One :class:`Model` record per model says what kind of concurrency it is (which
scenario keys and server options apply to it, which kernel resource one
connection costs), the descriptors the server holds besides its connections,
the memory one held connection costs, the module that implements it and its
colour in every chart. The group sets below (``EVENT_DRIVEN``, ...) are views
of the table, so the scenario schema, the servers' command line, the ceiling
arithmetic and the report cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from contract.fds import SERVER_FD_BASE

KiB = 1 << 10


class ConnectionMemory(NamedTuple):
    """Bytes one held connection costs a model, besides its TCP socket."""

    userspace: int  # the server's own memory for the connection
    kernel: int = 0  # the kernel's for the task serving it (process or thread)


@dataclass(frozen=True)
class Model:
    """One I/O model's facts."""

    name: str
    colour: str  # its line and marker colour in every chart (lab/report/charts.py)
    # Descriptors the server holds besides its connections (contract/fds.py).
    fd_overhead: int = SERVER_FD_BASE
    # What one held connection costs (measured: see ``TABLE`` below).
    memory: ConnectionMemory = ConnectionMemory(0)
    # One thread waits on many descriptors through a readiness (or completion)
    # interface: its ceiling is descriptors, not threads.
    event_driven: bool = False
    # Uses more than one core by itself (a thread or process each).
    multicore: bool = False
    # One kernel task per connection: "process" (the parent closes its copy of
    # each accepted socket, so no one process's open-file limit binds) or
    # "thread" (bounded by threads-max / RLIMIT_NPROC and stack memory).
    task_per_connection: str | None = None
    # Serves one connection at a time; the others wait in the accept queue.
    serial: bool = False
    # Watches descriptors with select()'s fd_set: cannot hold descriptor
    # FD_SETSIZE or above, and takes ``--on-fd-limit refuse|crash``.
    fd_set: bool = False
    # Takes ``--workers N`` (scenario key ``workers``): a pool of N threads.
    pool: bool = False
    # The dotted module that implements it (``servers/__init__.py`` imports it
    # lazily). Default: ``servers.<name>_loop`` with ``-`` as ``_``: ``epoll-et``
    # lives in ``servers/epoll_et_loop.py``, ``select`` in ``select_loop.py`` (a
    # module named ``select`` would shadow the standard library's).
    module: str = ""

    def __post_init__(self) -> None:
        if not self.module:
            object.__setattr__(self, "module", f"servers.{self.name.replace('-', '_')}_loop")


# Memory per connection, measured on Linux 6.18 / CPython 3.11 (x86_64, 2 CPUs,
# idle connections, each echoed once) with
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
#
# Descriptors besides the connections (fd_overhead) were measured by holding
# connections against each model with ``--nofile 64``
# (``tests/servers/test_fd_ceiling.py`` re-measures them).
TABLE: tuple[Model, ...] = (
    Model("blocking", "#7f7f7f", serial=True,
          memory=ConnectionMemory(0)),  # one at a time; the rest wait in the accept queue
    Model("threads", "#393b79", multicore=True, task_per_connection="thread",
          memory=ConnectionMemory(33 * KiB, 22 * KiB)),  # touched stack pages + 16 KiB buffer
    Model("forking", "#637939", multicore=True, task_per_connection="process",
          memory=ConnectionMemory(1300 * KiB, 200 * KiB)),  # a child's PSS: the pages it copied
    Model("threadpool", "#843c39", multicore=True, pool=True,
          memory=ConnectionMemory(100)),  # a queued socket object
    Model("nonblocking", "#7b4173", memory=ConnectionMemory(340)),
    Model("select", "#d62728", event_driven=True, fd_set=True, memory=ConnectionMemory(230)),
    Model("poll", "#ff7f0e", event_driven=True,
          memory=ConnectionMemory(240)),  # its own pollfd array (servers/poll_loop.py)
    Model("epoll", "#1f77b4", event_driven=True, memory=ConnectionMemory(210),
          fd_overhead=SERVER_FD_BASE + 1),  # the epoll instance
    Model("epoll-et", "#17becf", event_driven=True, memory=ConnectionMemory(210),
          fd_overhead=SERVER_FD_BASE + 1),
    Model("selectors", "#9467bd", event_driven=True, memory=ConnectionMemory(350),
          fd_overhead=SERVER_FD_BASE + 1),  # DefaultSelector is epoll here
    Model("asyncio", "#2ca02c", event_driven=True,
          memory=ConnectionMemory(1670),  # transport and protocol objects
          fd_overhead=SERVER_FD_BASE + 3),  # epoll + the self-pipe (a socket pair)
    Model("uvloop", "#bcbd22", event_driven=True, memory=ConnectionMemory(1370),
          fd_overhead=SERVER_FD_BASE + 10),  # epoll, eventfd, signal pipes, libuv's handles
    Model("sigio", "#e377c2", event_driven=True, memory=ConnectionMemory(340)),
    Model("io_uring", "#8c564b", event_driven=True,
          memory=ConnectionMemory(16 * KiB),  # a 16 KiB receive buffer per connection
          fd_overhead=SERVER_FD_BASE + 1),  # the ring
)

BY_NAME: dict[str, Model] = {model.name: model for model in TABLE}
MODELS: tuple[str, ...] = tuple(BY_NAME)

# A custom server: its facts are unknown; assume what the simplest model
# needs (the base descriptors, its socket's memory only), so every ceiling
# computed for it stays an upper bound.
CUSTOM = Model("custom", "#000000")


def model_facts(name: str | None) -> Model:
    """The record of built-in model ``name``; :data:`CUSTOM` for None or a custom label."""
    return BY_NAME.get(name or "", CUSTOM)


def _having(flag: str) -> frozenset[str]:
    return frozenset(m.name for m in TABLE if getattr(m, flag))


# Views of the table, for the schema and the servers' command line.
EVENT_DRIVEN: frozenset[str] = _having("event_driven")
MULTICORE: frozenset[str] = _having("multicore")
PROCESS_PER_CONNECTION = frozenset(m.name for m in TABLE if m.task_per_connection == "process")
THREAD_PER_CONNECTION = frozenset(m.name for m in TABLE if m.task_per_connection == "thread")

# Scenario keys (and the matching server options) that apply to some models only.
WORKERS_MODELS: frozenset[str] = _having("pool")  # --workers: the pool size
ON_FD_LIMIT_MODELS: frozenset[str] = _having("fd_set")  # --on-fd-limit refuse|crash
# --processes N (scenario key ``processes``): N copies of the server, each with its own
# SO_REUSEPORT listener and its own RLIMIT_NOFILE (servers/prefork.py). It applies to the
# models whose one process waits on every connection: their ceiling is one process's open
# files, and N processes have N of those. The thread and process models spread over cores
# by themselves, and the blocking ones are bounded by how they serve, not by descriptors.
REUSEPORT_MODELS: frozenset[str] = EVENT_DRIVEN

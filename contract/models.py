"""The I/O models, in contract order (``docs/design.md``, "Servers — contract").

``servers/__init__.py`` maps each name to the module that implements it;
``tests/unit/test_contract.py`` checks that the two agree. The groups below
say which scenario keys apply to which model, so the scenario schema and the
servers' command line cannot disagree.
"""

from __future__ import annotations

MODELS: tuple[str, ...] = (
    "blocking", "threads", "forking", "threadpool", "nonblocking", "select", "poll",
    "epoll", "epoll-et", "selectors", "asyncio", "uvloop", "sigio", "io_uring",
)

# One thread waits on many descriptors through a readiness (or completion)
# interface: the models whose ceiling is descriptors, not threads.
EVENT_DRIVEN: frozenset[str] = frozenset({
    "select", "poll", "epoll", "epoll-et", "selectors", "asyncio", "uvloop", "sigio", "io_uring",
})
# Models that use more than one core by themselves (a thread or process each).
MULTICORE: frozenset[str] = frozenset({"threads", "forking", "threadpool"})
# A process per connection: the parent closes its copy of each accepted socket,
# so no single process's open-file limit bounds the connections held.
PROCESS_PER_CONNECTION: frozenset[str] = frozenset({"forking"})
# A thread per connection: bounded by threads-max / RLIMIT_NPROC and stack memory.
THREAD_PER_CONNECTION: frozenset[str] = frozenset({"threads"})

# Scenario keys (and the matching server options) that apply to some models only.
WORKERS_MODELS: frozenset[str] = frozenset({"threadpool"})  # --workers: the pool size
ON_FD_LIMIT_MODELS: frozenset[str] = frozenset({"select"})  # --on-fd-limit refuse|crash
# --processes N (scenario key ``processes``): N copies of the server, each with its own
# SO_REUSEPORT listener and its own RLIMIT_NOFILE (servers/prefork.py). It applies to the
# models whose one process waits on every connection: their ceiling is one process's open
# files, and N processes have N of those. The thread and process models spread over cores
# by themselves, and the blocking ones are bounded by how they serve, not by descriptors.
REUSEPORT_MODELS: frozenset[str] = EVENT_DRIVEN

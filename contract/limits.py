"""The limit vocabulary: every wall a model, the client or the kernel can hit.

Servers emit these kinds in their ``limit`` events and ``refused`` counters,
the load generator names its failures with them, and the results' ``limit``
column holds one of them. Each kind carries the one sentence that explains the
mechanism (quoted by the report and the capacity plan) and what a plan must add
more of to get past it.

Code names a kind by its constant (``EMFILE``, ``CRASH``, ``FD_SETSIZE_LIMIT``
...), never by the bare string: ``tests/contract/test_contract.py`` fails on a
limit-kind string literal outside ``contract/``. The sentence for a kind is
:func:`explain`; everything else about it (its resource) is ``LIMITS[kind]``.
"""

from __future__ import annotations

from dataclasses import dataclass

# select()'s fd_set is a bitmap of this many bits (glibc's FD_SETSIZE); a
# descriptor numbered FD_SETSIZE or above cannot be watched at all.
FD_SETSIZE = 1024


# The kind names: results files, events and Locust messages carry these exact
# strings, so they never change; code names them through these constants.
FD_SETSIZE_LIMIT = "FD_SETSIZE"  # the kind; FD_SETSIZE above is the number
EMFILE = "EMFILE"
ENFILE = "ENFILE"
ENOBUFS = "ENOBUFS"
ENOMEM = "ENOMEM"
EADDRNOTAVAIL = "EADDRNOTAVAIL"
ECONNREFUSED = "ECONNREFUSED"
BACKLOG = "backlog"
PID_MAX = "pid_max"
THREADS = "threads"
CRASH = "crash"
OOM = "oom"
MISMATCH = "mismatch"
SERIALIZED = "serialized"
WORKER_LOST = "worker_lost"


@dataclass(frozen=True)
class Limit:
    kind: str
    mechanism: str  # one sentence: why the wall is there
    resource: str  # what to add more of to get past it


_LIMITS = (
    Limit(FD_SETSIZE_LIMIT,
          "select()'s fd_set is a fixed bitmap of FD_SETSIZE = 1024 bits, so it can only "
          "watch descriptors 0–1023; the next accepted socket gets a number it cannot hold.",
          "descriptors"),
    Limit(EMFILE,
          "accept() failed with EMFILE: the process reached its open-file limit "
          "(RLIMIT_NOFILE, `ulimit -n` / the scenario's nofile), and every connection "
          "costs one descriptor.",
          "descriptors"),
    Limit(ENFILE,
          "accept() failed with ENFILE: the system-wide file table (fs.file-max) is full, "
          "whatever each process's own limit says.",
          "descriptors"),
    Limit(ENOBUFS,
          "accept() failed with ENOBUFS: the kernel could not allocate socket buffers "
          "(socket memory pressure, net.ipv4.tcp_mem, or a memory cgroup at its limit).",
          "memory"),
    Limit(ENOMEM,
          "accept() failed with ENOMEM: the kernel could not allocate memory for the new "
          "socket (the host or the container's memory cgroup is out of memory).",
          "memory"),
    Limit(EADDRNOTAVAIL,
          "connect() failed with EADDRNOTAVAIL: the client ran out of ephemeral source ports "
          "(net.ipv4.ip_local_port_range) for this destination ip:port.",
          "source ports"),
    Limit(ECONNREFUSED,
          "connections were refused: the listen socket's accept queue "
          "(min(backlog, net.core.somaxconn)) overflowed because the server did not accept fast "
          "enough.",
          "accept queue"),
    Limit(BACKLOG,
          "the accept queue (min(listen backlog, net.core.somaxconn)) overflowed, so the kernel "
          "dropped or refused new connections until the server caught up.",
          "accept queue"),
    Limit(PID_MAX,
          "fork() failed: the kernel refused another process (kernel.pid_max / RLIMIT_NPROC), "
          "and this model needs one process per connection.",
          "processes"),
    Limit(THREADS,
          "the kernel refused another thread (threads-max, RLIMIT_NPROC or memory for its "
          "stack), and this model needs one thread per connection.",
          "threads"),
    Limit(CRASH, "the server process died (see its log tail); everything it held was dropped.",
          "stability"),
    Limit(OOM,
          "the kernel's OOM killer ended the server (Docker's OOMKilled, or SIGKILL under a "
          "memory limit), or it could not allocate memory: every connection costs memory.",
          "memory"),
    Limit(MISMATCH,
          "the server's replies differ from the bytes sent: it is not an echo server, or it "
          "corrupts data, so its numbers would count errors rather than capacity.",
          "correctness"),
    Limit(SERIALIZED,
          "the server completed the handshakes (the kernel queued them) but served only a few "
          "connections at a time: most connections never got a reply before the client's "
          "timeout, because the server handles one (or a fixed few) until it closes; slow "
          "clients (slowloris) hold those workers for their whole sessions.",
          "concurrency"),
    Limit(WORKER_LOST,
          "a load-generator worker (or the master) died or stopped answering during the step: "
          "the step measured a smaller load than planned and says nothing about the server.",
          "load generators"),
)

LIMITS: dict[str, Limit] = {limit.kind: limit for limit in _LIMITS}
LIMIT_KINDS: tuple[str, ...] = tuple(LIMITS)

# Connect failures that mean the load side could not open a connection: the
# client's own descriptors or ports, the system file table, or a full queue.
LOAD_SIDE_LIMITS: tuple[str, ...] = (EADDRNOTAVAIL, EMFILE, ENFILE, ECONNREFUSED)

# Kinds that are findings about the measurement, not walls of the server: a
# step that carries one is left out of the capacity plan.
GENERATOR_LIMITS: tuple[str, ...] = (WORKER_LOST,)


def explain(kind: str | None) -> str:
    """The one-sentence mechanism for ``kind``; a neutral sentence for unknown kinds."""
    if not kind:
        return ""
    limit = LIMITS.get(kind)
    if limit is None:
        return f"{kind}: not a known limit kind; see the server and Locust logs."
    return limit.mechanism


# What went wrong on one client connection. The errno kinds are limit kinds;
# the others (reset, timeout, mismatch, other) are the client's view of a
# server that closed, stalled or answered wrongly.
ECONNRESET = "ECONNRESET"
TIMEOUT = "timeout"
OTHER = "other"
FAILURE_KINDS: tuple[str, ...] = (ECONNREFUSED, ECONNRESET, TIMEOUT, MISMATCH, EMFILE, ENFILE,
                                  EADDRNOTAVAIL, OTHER)


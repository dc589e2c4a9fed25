"""One sentence per limit kind: the mechanism behind the wall.

The kinds are the shared vocabulary of the servers, the load generator and the
results (see DESIGN.md, "Limit kinds"). The report's limits table and the
capacity plan quote these sentences; ``RESOURCE`` names what a capacity plan
must add more of to get past each one.
"""

from __future__ import annotations

MECHANISM: dict[str, str] = {
    "FD_SETSIZE": (
        "select()'s fd_set is a fixed bitmap of FD_SETSIZE = 1024 bits, so it can only "
        "watch descriptors 0–1023; the next accepted socket gets a number it cannot hold."
    ),
    "EMFILE": (
        "accept() failed with EMFILE: the process reached its open-file limit "
        "(RLIMIT_NOFILE, `ulimit -n` / the scenario's nofile), and every connection "
        "costs one descriptor."
    ),
    "ENFILE": (
        "accept() failed with ENFILE: the system-wide file table (fs.file-max) is full, "
        "whatever each process's own limit says."
    ),
    "EADDRNOTAVAIL": (
        "connect() failed with EADDRNOTAVAIL: the client ran out of ephemeral source ports "
        "(net.ipv4.ip_local_port_range) for this destination ip:port."
    ),
    "ECONNREFUSED": (
        "connections were refused: the listen socket's accept queue "
        "(min(backlog, net.core.somaxconn)) overflowed because the server did not accept fast "
        "enough."
    ),
    "backlog": (
        "the accept queue (min(listen backlog, net.core.somaxconn)) overflowed, so the kernel "
        "dropped or refused new connections until the server caught up."
    ),
    "pid_max": (
        "fork() failed: the kernel refused another process (kernel.pid_max / RLIMIT_NPROC), "
        "and this model needs one process per connection."
    ),
    "threads": (
        "the kernel refused another thread (threads-max, RLIMIT_NPROC or memory for its "
        "stack), and this model needs one thread per connection."
    ),
    "crash": "the server process died (see its log tail); everything it held was dropped.",
}

# What to add more of (hosts, processes, IPs) to get past each limit.
RESOURCE: dict[str, str] = {
    "FD_SETSIZE": "descriptors",
    "EMFILE": "descriptors",
    "ENFILE": "descriptors",
    "EADDRNOTAVAIL": "source ports",
    "ECONNREFUSED": "accept queue",
    "backlog": "accept queue",
    "pid_max": "processes",
    "threads": "threads",
    "crash": "stability",
}


def explain(kind: str | None) -> str:
    """The one-sentence mechanism for ``kind``; a neutral sentence for unknown kinds."""
    if not kind:
        return ""
    return MECHANISM.get(kind, f"{kind}: not a known limit kind; see the server and Locust logs.")

"""Which run-lab process owns a container, a network or a temp directory.

``run-lab clean`` must spare a run that is still going in another terminal.
Everything the lab creates records its owner: this machine's host name, the
run-lab pid and that process's start time in clock ticks since boot (field 22
of ``/proc/<pid>/stat``). The start time makes the id safe against pid reuse:
a new process that got the same pid started later. An owner is *live* when a
process with that pid and start time exists on this host; on another host
this machine cannot tell (``None``), and clean spares it unless ``--all``.
"""

from __future__ import annotations

import os
import socket

OWNER_LABEL = "iolab.owner"
TEMP_PREFIX = "iolab-local-"


def start_ticks(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def owner_id(pid: int | None = None) -> str:
    """``host:pid:start`` for this process (or ``pid``)."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{start_ticks(pid)}"


def is_live(owner: str | None) -> bool | None:
    """True/False for an owner on this host; None for another host's or a malformed id."""
    if not owner:
        return False  # made before owners were recorded: no run of this lab holds it
    parts = owner.split(":")
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    host, pid, ticks = parts
    if host != socket.gethostname():
        return None
    return str(start_ticks(int(pid))) == ticks


def temp_prefix() -> str:
    """A local run's temp directory name prefix: ``iolab-local-<pid>-<start>-``."""
    return f"{TEMP_PREFIX}{os.getpid()}-{start_ticks(os.getpid())}-"


def temp_dir_owner(name: str) -> str | None:
    """The owner id encoded in a temp directory's name (None for older names)."""
    parts = name[len(TEMP_PREFIX):].split("-")
    if len(parts) >= 3 and parts[0].isdigit() and parts[1].isdigit():
        return f"{socket.gethostname()}:{parts[0]}:{parts[1]}"
    return None

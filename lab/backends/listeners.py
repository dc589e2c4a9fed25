"""Who is listening on a TCP port of this machine, read from the kernel.

The lab must only load the process it started. A custom server's port might
already be taken by another program (a ``python3 -m http.server`` left
running); the lab used to take that listener for its own server and send it
the whole load. The kernel says who owns a listener: ``/proc/net/tcp`` and
``/proc/net/tcp6`` list every socket with its state (``0A`` = LISTEN), local
address and inode; ``/proc/<pid>/fd/*`` links name ``socket:[<inode>]`` for
each socket a process holds. A listener belongs to the started server when
its inode is held by the server's pid or one of its descendants (a wrapper
such as ``prlimit`` or a shell may stand between, and a server run with
``--processes N`` has N listeners on the port, one per child of the process
started, each its own SO_REUSEPORT socket).

Root sees every process's descriptors; an unprivileged user sees only its own,
so an owner it cannot see is reported as unknown, never as ours.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

LISTEN = "0A"
PROC = Path("/proc")


@dataclass(frozen=True)
class Listener:
    inode: int
    pid: int | None  # None: no process we can see holds it
    command: str

    def describe(self) -> str:
        if self.pid is None:
            return "a process this user cannot see"
        return f"pid {self.pid} ({self.command})"


def listening_inodes(port: int, proc: Path = PROC) -> set[int]:
    """Inodes of the sockets listening on ``port`` (any address, IPv4 and IPv6)."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == LISTEN and \
                    int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(int(fields[9]))
    return inodes


def _command(pid: int, proc: Path) -> str:
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip() or "?"


def holders(inodes: set[int], proc: Path = PROC) -> dict[int, int]:
    """inode -> the pid holding it (the first found), for the inodes given."""
    wanted = {f"socket:[{i}]": i for i in inodes}
    found: dict[int, int] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit() or len(found) == len(wanted):
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target in wanted:
                found.setdefault(wanted[target], int(entry.name))
    return found


def listeners(port: int, proc: Path = PROC) -> list[Listener]:
    """Every listener on ``port`` with the process that holds it."""
    inodes = listening_inodes(port, proc)
    held = holders(inodes, proc)
    return [Listener(i, held.get(i), _command(held[i], proc) if i in held else "")
            for i in sorted(inodes)]


def descendants(pid: int, proc: Path = PROC) -> set[int]:
    """``pid`` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = set(), [pid]
    while todo:
        p = todo.pop()
        if p not in tree:
            tree.add(p)
            todo.extend(children.get(p, []))
    return tree


def foreign(port: int, pid: int, proc: Path = PROC) -> list[Listener]:
    """The listeners on ``port`` that do not belong to ``pid`` or its descendants."""
    ours = descendants(pid, proc)
    return [lst for lst in listeners(port, proc) if lst.pid not in ours]

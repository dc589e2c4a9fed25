"""Read a socket option on the server's side of a test's connection.

The server's accepted socket lives in another process (a child of the
forking model's parent, for that model). ``pidfd_getfd(2)`` (Linux 5.6)
copies a descriptor out of a process the caller may ptrace, which includes
its own children: the copy refers to the same open socket, so
``getsockopt`` on it reads the server's own setting. The descriptor is found
from the connection's inode: ``/proc/net/tcp`` maps the 4-tuple to it, and
``/proc/PID/fd`` names each socket ``socket:[INODE]``.
"""

from __future__ import annotations

import ctypes
import os
import socket

from serverproc import children_of

SYS_PIDFD_GETFD = 438  # the same number on every architecture (asm-generic)
_libc = ctypes.CDLL(None, use_errno=True)


def _inode_of_peer(client: socket.socket) -> int:
    """The inode of the server's end of ``client``'s connection (IPv4)."""
    local = client.getpeername()[1]  # the server's port
    remote = client.getsockname()[1]  # the client's port
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            lport = int(fields[1].rsplit(":", 1)[1], 16)
            rport = int(fields[2].rsplit(":", 1)[1], 16)
            if (lport, rport) == (local, remote):
                return int(fields[9])
    raise LookupError(f"no server socket for client port {remote}")


def _fd_in(pid: int, inode: int) -> int | None:
    target = f"socket:[{inode}]"
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    for name in names:
        try:
            if os.readlink(f"/proc/{pid}/fd/{name}") == target:
                return int(name)
        except OSError:
            continue
    return None


def peer_sockopt(srv, client: socket.socket, level: int, option: int) -> int:
    """``getsockopt(level, option)`` on the server's end of ``client``."""
    inode = _inode_of_peer(client)
    for pid in (srv.pid, *children_of(srv.pid)):
        fd = _fd_in(pid, inode)
        if fd is None:
            continue
        pidfd = os.pidfd_open(pid)
        try:
            copy = _libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
            if copy < 0:
                err = ctypes.get_errno()
                raise OSError(err, f"pidfd_getfd: {os.strerror(err)}")
        finally:
            os.close(pidfd)
        with socket.socket(fileno=copy) as sock:
            return sock.getsockopt(level, option)
    raise LookupError(f"socket inode {inode} is in no process of the server {srv.pid}")

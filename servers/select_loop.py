"""select: the tutorial's multiplexing server, with its 1024-descriptor wall.

Phase 1 (waiting for data): ``select`` blocks on three bitmaps of
``FD_SETSIZE`` (1024) bits that are copied into the kernel, checked descriptor
by descriptor and copied back on every call. Phase 2 (copying): ``recv`` and
``send`` on the sockets it reported, which are non-blocking so a stale report
costs an EAGAIN, not a hang.

Cost per connection: a bit in each set, plus O(highest descriptor) work per
call in the kernel and O(watched descriptors) in Python to build and read the
sets, whether the connection is busy or idle.

Where it breaks: a descriptor >= 1024 cannot be put in an ``fd_set``; CPython
raises ``ValueError: filedescriptor out of range in select()``. With
``--on-fd-limit refuse`` (default) such a connection is closed as it is
accepted and counted under ``FD_SETSIZE`` (one limit event), and the others
are served on. ``--on-fd-limit crash`` watches it anyway, like the tutorial's
server, and the ``ValueError`` ends the process (limit event, final event,
exit 1).

With ``--processes N``: each process has its own ``fd_set`` and its own 1024 wall,
so N processes hold N x (1024 - 5) before FD_SETSIZE, hashed over them unevenly.
"""

from __future__ import annotations

import select

from contract.defaults import ON_FD_LIMIT_CRASH
from contract.limits import FD_SETSIZE, FD_SETSIZE_LIMIT
from servers.core import Crash
from servers.eventloop import IN, OUT, EventLoopServer


class Server(EventLoopServer):
    model = "select"

    def prepare(self) -> None:
        self.readers: set[int] = set()
        self.writers: set[int] = set()

    def watch(self, fd, mask):
        if mask & IN:
            self.readers.add(fd)
        if mask & OUT:
            self.writers.add(fd)

    def rewatch(self, fd, mask):
        self.unwatch(fd)
        self.watch(fd, mask)

    def unwatch(self, fd):
        self.readers.discard(fd)
        self.writers.discard(fd)

    def admit(self, sock) -> bool:
        fd = sock.fileno()
        if fd < FD_SETSIZE or self.opts.on_fd_limit == ON_FD_LIMIT_CRASH:
            return True
        sock.close()
        self.stats.refuse(FD_SETSIZE_LIMIT, fd)
        return False

    def wait(self, timeout):
        try:
            readable, writable, _ = select.select(self.readers, self.writers, (), timeout)
        except ValueError as exc:
            fd = max(self.readers | self.writers)
            self.stats.refuse(FD_SETSIZE_LIMIT, fd)
            raise Crash(f"select() with fd {fd}: ValueError: {exc}") from exc
        return [(fd, IN) for fd in readable] + [(fd, OUT) for fd in writable]

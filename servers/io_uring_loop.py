"""io_uring: the asynchronous model. Ask for the I/O, get told when it is *done*.

Phase 1 (waiting for data) and phase 2 (copying) both happen in the kernel:
``accept``, ``recv`` and ``send`` are queued as submission entries on a ring
shared with the kernel, which completes them (waiting, then copying into our
buffer) and posts a completion entry; one ``io_uring_enter`` both submits and
waits. This is Stevens' asynchronous I/O: the process is told when the data
is already in its buffer, not when it could start reading.

Here, per connection, a ``recv`` is always in flight into the connection's
own 16 KiB buffer; when it completes, a ``send`` of that data is queued, and
the next ``recv`` only when the ``send`` completed (in-order echo, bounded
memory). The ``liburing`` binding keeps the GIL while it waits, so the stats
are printed from this loop (wait timeout) rather than from a thread.

Cost per connection: a pending request and its buffer (pinned while the recv
is in flight), no readiness syscalls at all.

Where it breaks: the open-file limit (EMFILE completions refused with the
reserved descriptor, like the others); where the kernel, a seccomp profile
(Docker >= 25 blocks ``io_uring_setup`` by default) or the binding refuses, the
model is unavailable.

With ``--processes N``: a ring per process, each with accepts queued on its own
listener.
"""

from __future__ import annotations

import errno
import os
import signal
import socket

from servers.core import CLOSE_ERRNOS, log
from servers.core import Server as BaseServer
from servers.fdtable import FdTable
from servers.gate import blocking
from servers.listener import ACCEPT_CAPACITY_ERRNOS, Acceptor, set_nodelay

try:
    import liburing as L
except ImportError as exc:
    L = None
    _import_error = str(exc)

ENTRIES = 4096
BUF_SIZE = 16384
ACCEPT, RECV, SEND = 0, 1, 2  # user_data = fd << 2 | op


_PROBE = """
import liburing as L
ring = L.Ring()
try:
    L.io_uring_queue_init(2, ring)
except OSError as exc:
    print(f"io_uring_setup refused: {exc} (kernel, seccomp profile or sysctl)")
else:
    L.io_uring_queue_exit(ring)
"""
_probed: list[str | None] = []


def unavailable() -> str | None:
    """Set up and tear down a tiny ring, in a child process: the binding is
    compiled code, and a wheel built for another CPU (liburing 2026.3.30 uses
    AVX-512 instructions) dies with SIGILL, which must not take the caller
    with it. The answer is kept for the life of the process."""
    if L is None:
        return f"the liburing binding is not installed ({_import_error})"
    if not _probed:
        import subprocess
        import sys

        probe = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                               timeout=30)
        if probe.returncode < 0:
            name = signal.Signals(-probe.returncode).name
            why = " (the wheel uses CPU instructions this machine lacks)" if \
                name == "SIGILL" else ""
            _probed.append(f"the liburing binding crashed with {name}{why}")
        elif probe.returncode or probe.stdout.strip():
            _probed.append(probe.stdout.strip() or probe.stderr.strip().splitlines()[-1])
        else:
            _probed.append(None)
    return _probed[0]


class Conn:
    __slots__ = ("sock", "buf", "out")

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray(BUF_SIZE)
        self.out = b""  # the bytes a send in flight refers to (kept alive)


class Server(BaseServer):
    model = "io_uring"
    blocking_listener = False  # the Acceptor's synchronous accept (EMFILE) must not block
    stats_thread = False

    def prepare(self) -> None:
        self.ring = L.Ring()
        self.cqe = L.Cqe()
        L.io_uring_queue_init(ENTRIES, self.ring)
        self.conns: FdTable[Conn] = FdTable()
        self.accepting = False

    def sqe(self, fd: int, op: int):
        sqe = L.io_uring_get_sqe(self.ring)
        if sqe is None:  # submission queue full: hand it to the kernel first
            L.io_uring_submit(self.ring)
            sqe = L.io_uring_get_sqe(self.ring)
        L.io_uring_sqe_set_data64(sqe, fd << 2 | op)
        return sqe

    def submit_accept(self) -> None:
        L.io_uring_prep_accept(self.sqe(self.listener.fileno(), ACCEPT), self.listener.fileno())
        self.accepting = True

    def submit_io(self, fd: int, c: Conn) -> None:
        """The next request of a connection: a send while echo is pending, else a recv."""
        if c.out:
            L.io_uring_prep_send(self.sqe(fd, SEND), fd, c.out)
        else:
            L.io_uring_prep_recv(self.sqe(fd, RECV), fd, c.buf)

    def serve(self) -> None:
        ring, cqe, ticker = self.ring, self.cqe, self.ticker
        self.submit_accept()
        while True:
            timeout = ticker.tick()
            if not self.accepting:
                left = self.acceptor.backing_off()
                if left:
                    timeout = min(timeout, left)
                else:
                    self.submit_accept()
            try:
                blocking(L.io_uring_submit_and_wait_timeout, ring, cqe, 1, L.timespec(timeout))
            except OSError as exc:
                if exc.errno not in (errno.ETIME, errno.EINTR, errno.EAGAIN):
                    raise
            # One entry at a time through the CQ head: ``cqe[i]`` would index
            # past the end of the ring when it wraps.
            for _ in range(L.io_uring_cq_ready(ring)):
                L.io_uring_peek_cqe(ring, cqe)
                entry = cqe[0]
                user_data = entry.user_data
                try:
                    res = entry.res
                except OSError as exc:  # the binding raises a negative result
                    res = -(exc.errno or errno.EIO)
                L.io_uring_cqe_seen(ring, entry)
                self.complete(user_data >> 2, user_data & 3, res)

    def complete(self, fd: int, op: int, res: int) -> None:
        if op == ACCEPT:
            return self.accepted(res)
        c = self.conns.get(fd)
        if c is None:
            return
        if res < 0:
            err = -res
            if err not in CLOSE_ERRNOS:
                log(f"io_uring: fd {fd}: {os.strerror(err)}")
            return self.close_conn(fd, c)
        if op == RECV:
            if res == 0:  # EOF: everything received was already echoed
                return self.close_conn(fd, c)
            self.stats.bytes_in += res
            if self.busy:
                self.work()
            c.out = bytes(c.buf[:res])
        else:  # SEND; a partial one queues the rest
            self.stats.bytes_out += res
            c.out = c.out[res:]
        self.submit_io(fd, c)

    def accepted(self, res: int) -> None:
        self.accepting = False
        if res >= 0:
            sock = socket.socket(fileno=res)
            set_nodelay(sock, self.nodelay)  # the Acceptor's accept sets it itself
            self.admit(sock)
        elif -res in ACCEPT_CAPACITY_ERRNOS:
            # Out of descriptors: take the pending connections off the backlog
            # synchronously, refusing them with the reserved descriptor (or
            # back off), as the other models do.
            while (sock := self.acceptor.accept()) is not None:
                if sock is not Acceptor.REFUSED:
                    self.admit(sock)
        if not self.acceptor.backing_off():
            self.submit_accept()

    def admit(self, sock: socket.socket) -> None:
        fd = sock.fileno()
        c = self.conns.put(fd, Conn(sock))
        self.stats.opened(fd)
        self.submit_io(fd, c)

    def close_conn(self, fd: int, c: Conn) -> None:
        self.conns.drop(fd)
        c.sock.close()
        self.stats.closed += 1

    def buffered(self) -> tuple[int, int] | None:
        """Echo queued in a send the kernel has not completed (``c.out``). The
        ticker runs in this loop's thread, so the table is not changing."""
        held = [len(c.out) for c in self.conns.values() if c.out]
        return sum(held), len(held)

    def close(self) -> None:
        L.io_uring_queue_exit(self.ring)

"""The listening socket: bind, listen, and ``accept()`` that treats running
out of descriptors as data, not as a crash or a spin.

``Acceptor`` follows trio's ``ACCEPT_CAPACITY_ERRNOS``: on EMFILE or ENFILE it
closes a reserved descriptor, accepts the pending connection, closes it (the
client sees a reset/EOF instead of waiting in the backlog), counts it and
reopens the reserve. If even that fails it asks the caller to back off for a
while instead of retrying at once.

Every socket a model accepts goes through ``set_nodelay`` (``--nodelay``, the
default, or ``--no-nodelay``): ``Acceptor.accept`` for the models that accept
with it, the completion of io_uring's accept, asyncio's and uvloop's
``connection_made``.
"""

from __future__ import annotations

import errno
import os
import socket
import time

from contract.limits import EMFILE, ENFILE, ENOBUFS, ENOMEM
from servers.events import Stats

# errno -> limit kind: accept() errors that mean "out of a resource", named by
# their errno (each is a kind of the shared vocabulary, contract/limits.py).
ACCEPT_CAPACITY_ERRNOS = {
    errno.EMFILE: EMFILE, errno.ENFILE: ENFILE, errno.ENOBUFS: ENOBUFS, errno.ENOMEM: ENOMEM,
}
# A connection that died in the backlog: not our problem, accept the next one.
ACCEPT_SKIP_ERRNOS = {errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.ENETDOWN}


def set_nodelay(sock: socket.socket, on: bool) -> None:
    """TCP_NODELAY on (``--nodelay``, the default) or off (``--no-nodelay``).

    With TCP_NODELAY off, Nagle's algorithm (RFC 896) holds back a segment
    smaller than the MSS while earlier data is still unacknowledged, and sends
    it when the ACK arrives. The peer's delayed ACK (RFC 1122) waits for a
    second full segment, or a timer, before acknowledging: Linux's timer is
    40 ms at least (``TCP_DELACK_MIN``), longer once the connection looks
    interactive. An echo server of a large message hits the pair at the end of
    every echo: a 256 KiB reply is ~4 full segments on loopback (MSS ~65 KiB),
    and whatever ``send`` hands the kernel after them that does not fill a
    segment waits for an ACK the client delays, because the client is still
    waiting for the rest of the reply and has nothing to send. The last bytes
    then arrive ~40 ms late: a latency mode that belongs to TCP, not to the
    I/O model, and one the load generator does not show on its side because
    it sets TCP_NODELAY itself.

    The option is set explicitly both ways, so "off" is said, not assumed:
    uvloop turns it on for every TCP transport by itself. (asyncio means to as
    well, but only for a socket whose ``proto`` is ``IPPROTO_TCP``, and one
    accepted from a listener made with ``proto`` 0, as ours, is not: without
    this call it would keep Nagle.)
    """
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1 if on else 0)


def bound_socket(host: str, port: int, reuseport: bool = False) -> socket.socket:
    """A TCP socket bound to (host, port), not listening yet.

    ``reuseport``: SO_REUSEPORT before ``bind``, so that other sockets of the
    same user that set it too may bind the same address (``servers/prefork.py``).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuseport:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def make_listener(host: str, port: int, backlog: int, reuseport: bool = False) -> socket.socket:
    sock = bound_socket(host, port, reuseport)
    sock.listen(backlog)
    return sock


class Acceptor:
    """``accept()`` with the reserved-descriptor trick; see the module docstring."""

    BACKOFF_S = 0.1
    REFUSED = object()  # a pending connection was taken off the backlog and closed

    def __init__(self, listener: socket.socket, stats: Stats, nodelay: bool = True):
        self.listener = listener
        self.stats = stats
        self.nodelay = nodelay
        self.spare: int | None = None
        self.backoff_until = 0.0
        self._reserve()

    def _reserve(self) -> None:
        try:
            self.spare = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self.spare = None

    def accept(self):
        """A connected socket (TCP_NODELAY as asked), ``None`` (nothing pending /
        back off) or ``REFUSED``."""
        try:
            conn = self.listener.accept()[0]
        except (BlockingIOError, InterruptedError, TimeoutError):
            return None
        except OSError as exc:
            if exc.errno in ACCEPT_SKIP_ERRNOS:
                return self.REFUSED
            kind = ACCEPT_CAPACITY_ERRNOS.get(exc.errno)
            if kind is None:
                raise
        else:
            set_nodelay(conn, self.nodelay)
            return conn
        if self.spare is not None and kind in (EMFILE, ENFILE):
            os.close(self.spare)
            self.spare = None
            try:
                conn = self.listener.accept()[0]
            except OSError:
                conn = None
            if conn is not None:
                fd = conn.fileno()
                conn.close()
                self.stats.refuse(kind, fd)
            self._reserve()
            if conn is not None:
                return self.REFUSED
        else:
            self.stats.refuse(kind)
        self.backoff_until = time.monotonic() + self.BACKOFF_S
        return None

    def backing_off(self) -> float:
        """Seconds left to wait before accepting again (0 when free to accept)."""
        left = self.backoff_until - time.monotonic()
        return left if left > 0 else 0.0

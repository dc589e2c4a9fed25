"""Failure kinds: what went wrong on one connection, named in the lab's vocabulary.

A load generator that raises on the first refused connection measures
nothing; one that lumps everything into "error" cannot say *why* a server
stopped. So every failure is turned into one kind from the shared limit
vocabulary (contract/limits.py) and recorded, never raised to Locust:

===============  ==========================================================
``ECONNREFUSED`` connect() got RST: nobody listening, or the accept queue
                 is full and the kernel answered with a reset
``ECONNRESET``   the server reset *or closed* the connection: recv() got
                 RST or EOF, send() got EPIPE. The select server closes a
                 connection whose descriptor is >= FD_SETSIZE; this is how
                 that looks from the client side
``timeout``      no connect/echo within ``--connect-timeout``/``--io-timeout``
                 (a stalled server, a SYN dropped by a full backlog)
``mismatch``     the echo came back with other bytes than were sent
``EMFILE``       *this* process ran out of descriptors (socket() failed)
``ENFILE``       the system file table is full
``EADDRNOTAVAIL`` no free source port for this source address
``other``        anything else (logged once per errno with its detail)
===============  ==========================================================
"""

from __future__ import annotations

import errno
import socket

from contract.limits import (
    EADDRNOTAVAIL,
    ECONNREFUSED,
    ECONNRESET,
    EMFILE,
    ENFILE,
    MISMATCH,
    OTHER,
    TIMEOUT,
)

_BY_ERRNO = {
    errno.ECONNREFUSED: ECONNREFUSED,
    errno.ECONNRESET: ECONNRESET,
    errno.EPIPE: ECONNRESET,
    errno.ECONNABORTED: ECONNRESET,
    errno.ETIMEDOUT: TIMEOUT,
    errno.EMFILE: EMFILE,
    errno.ENFILE: ENFILE,
    errno.EADDRNOTAVAIL: EADDRNOTAVAIL,
    # bind(ip, 0) without IP_BIND_ADDRESS_NO_PORT reports port exhaustion so
    errno.EADDRINUSE: EADDRNOTAVAIL,
}


class TcpFailure(Exception):
    """The exception passed to Locust's ``request`` event for a failed request.

    Its text starts with the kind, and carries no per-connection detail (ports,
    addresses of this socket), so Locust's error table groups by kind.
    """

    def __init__(self, kind: str, detail: str = "") -> None:
        self.kind = kind
        self.detail = detail
        super().__init__(f"{kind}: {detail}" if detail else kind)


class ClosedByServer(ConnectionResetError):
    """recv() returned EOF: the server closed the connection (FIN, no RST)."""

    def __init__(self) -> None:
        super().__init__(errno.ECONNRESET, "connection closed by server (EOF)")


class EchoMismatch(Exception):
    """The echoed bytes differ from the bytes sent."""


def classify(exc: BaseException) -> str:
    """The vocabulary kind of an exception raised by socket calls."""
    if isinstance(exc, EchoMismatch):
        return MISMATCH
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return TIMEOUT
    if isinstance(exc, OSError) and exc.errno in _BY_ERRNO:
        return _BY_ERRNO[exc.errno]
    return OTHER


def failure(exc: BaseException) -> TcpFailure:
    """Wrap ``exc`` as a :class:`TcpFailure` named by its kind."""
    kind = classify(exc)
    if isinstance(exc, OSError) and exc.strerror:
        detail = exc.strerror
    else:
        detail = str(exc) or type(exc).__name__
    return TcpFailure(kind, detail)

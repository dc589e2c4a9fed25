"""One TCP connection to an echo server, timed and reported to Locust.

Sockets are gevent's cooperative sockets: a ``recv`` that would block parks
this greenlet on the hub's event loop (libev's epoll here) and lets the other
users run, so one process holds thousands of connections with one thread.
Every call is timed with ``perf_counter`` and reported as a Locust
``request`` event (``request_type="tcp"``, names ``connect``, ``echo`` and,
for a connection lost while an :class:`~loadgen.users.IdleUser` holds it,
``hold``). Failures are classified (:mod:`loadgen.failures`), counted in the
:class:`~loadgen.meter.Meter`, reported with a :class:`TcpFailure` and never
raised: a load generator has to survive exactly the conditions it provokes.

Source addresses: connecting from 127.0.0.x instead of 127.0.0.1 gives each
address its own ~28k ephemeral ports towards one server ip:port. ``bind()``
would pick the port at bind time, before the kernel knows the destination,
and so could only use each port once for *all* destinations;
``IP_BIND_ADDRESS_NO_PORT`` (Linux 4.2) defers the choice to ``connect()``,
where the full 4-tuple is known.
"""

from __future__ import annotations

import socket as std_socket
import struct
from collections.abc import Callable
from time import perf_counter
from typing import Any

from gevent import socket
from gevent.hub import get_hub

from loadgen.failures import ClosedByServer, EchoMismatch, TcpFailure, failure
from loadgen.meter import Meter
from loadgen.options import LoadOptions

IP_BIND_ADDRESS_NO_PORT = getattr(std_socket, "IP_BIND_ADDRESS_NO_PORT", 24)
REQUEST_TYPE = "tcp"
_SEQ = struct.Struct("<Q")
_EV_READ = 1


class _Quiet(Exception):
    """Internal: the pace interval passed and the socket stayed silent."""


_QUIET = _Quiet()


class TcpClient:
    """A connection's life: connect, echo, wait, close; every outcome reported.

    ``fire`` is Locust's ``environment.events.request.fire``; ``context`` is
    passed on with every event (Locust's ``User.context()``).
    """

    __slots__ = ("address", "source_ip", "opts", "meter", "_fire", "_context",
                 "sock", "_watch", "_payload", "_buf", "_view", "_seq")

    def __init__(self, address: tuple[str, int], opts: LoadOptions, meter: Meter,
                 fire: Callable[..., Any], *, source_ip: str | None = None,
                 context: dict[str, Any] | None = None) -> None:
        self.address = address
        self.source_ip = source_ip
        self.opts = opts
        self.meter = meter
        self._fire = fire
        self._context = context if context is not None else {}
        self.sock: socket.socket | None = None
        self._watch = None
        size = opts.message_size
        # A recognisable filler; the first 8 bytes carry a sequence number so a
        # stale or replayed echo is a mismatch, not a lucky match.
        self._payload = bytearray((b"iolab-echo:" * (size // 11 + 1))[:size])
        self._buf = bytearray(size)
        self._view = memoryview(self._buf)
        self._seq = 0

    @property
    def connected(self) -> bool:
        return self.sock is not None

    # -- connect ----------------------------------------------------------------
    def connect(self) -> bool:
        """Open the connection; True on success. Timed from socket() to the
        completed handshake (with a listening server, the kernel completes the
        handshake from its accept queue before the server calls accept())."""
        self.meter.connect_started()
        start = perf_counter()
        sock = None
        try:
            family = std_socket.AF_INET6 if ":" in self.address[0] else std_socket.AF_INET
            sock = socket.socket(family, std_socket.SOCK_STREAM)
            if self.source_ip:
                sock.setsockopt(std_socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                sock.bind((self.source_ip, 0))
            sock.settimeout(self.opts.connect_timeout_s)
            sock.connect(self.address)
            sock.setsockopt(std_socket.IPPROTO_TCP, std_socket.TCP_NODELAY, 1)
            sock.settimeout(self.opts.io_timeout_s)
        except Exception as exc:  # noqa: BLE001 - every failure is data
            if sock is not None:
                sock.close()
            err = failure(exc)
            self.meter.connect_failed(err.kind)
            self._report("connect", start, 0, err)
            return False
        self.sock = sock
        self._watch = get_hub().loop.io(sock.fileno(), _EV_READ)
        self.meter.opened()
        self._report("connect", start, 0, None)
        return True

    # -- echo ---------------------------------------------------------------------
    def echo(self, origin: float | None = None) -> bool:
        """Send one message and read it back; True if the same bytes returned.

        Latency runs from ``origin`` (the intended send time, for the fixed
        schedule) or from now. On failure the connection is closed.
        """
        sock = self.sock
        if sock is None:
            raise RuntimeError("echo() without a connection")
        payload, view, size = self._payload, self._view, len(self._payload)
        if size >= _SEQ.size:
            self._seq += 1
            _SEQ.pack_into(payload, 0, self._seq)
        start = perf_counter() if origin is None else origin
        try:
            # One send() and one recv_into() carry a small message on loopback;
            # the loops only run when the kernel splits it.
            sent = sock.send(payload)
            if sent < size:
                sock.sendall(memoryview(payload)[sent:])
            got = sock.recv_into(view)
            while 0 < got < size:
                n = sock.recv_into(view[got:], size - got)
                if not n:
                    break
                got += n
            if got < size:
                raise ClosedByServer()
            if self._buf != payload:
                raise EchoMismatch(f"{size} bytes sent, other bytes came back")
        except Exception as exc:  # noqa: BLE001 - every failure is data
            self._lost("echo", start, failure(exc))
            return False
        elapsed = perf_counter() - start
        self.meter.echo_ok(elapsed)
        self._fire(request_type=REQUEST_TYPE, name="echo", response_time=elapsed * 1000.0,
                   response_length=size, exception=None, context=self._context)
        return True

    # -- waiting --------------------------------------------------------------------
    def wait_quiet(self, until: float) -> bool:
        """Hold the connection until ``until`` (a ``perf_counter`` time).

        Returns early, with False, if the socket becomes readable: with an
        echo server that only happens when the server closed or reset the
        connection (or sent bytes nobody asked for), so the caller's next
        echo finds out which at once instead of a pace interval later.
        """
        timeout = until - perf_counter()
        if timeout <= 0:
            return True
        try:
            socket.wait(self._watch, timeout, _QUIET)
        except _Quiet:
            return True
        return False

    def hold(self) -> None:
        """Hold the connection silently until the server ends it (IdleUser).

        Reports the end as a failed ``hold`` (kind ECONNRESET on EOF or RST,
        ``mismatch`` if the server sent bytes unasked) and closes.
        """
        start = perf_counter()
        try:
            socket.wait(self._watch)
            data = self.sock.recv(1)
            if not data:
                raise ClosedByServer()
            raise EchoMismatch("the server sent bytes to an idle connection")
        except Exception as exc:  # noqa: BLE001 - every failure is data
            self._lost("hold", start, failure(exc))

    # -- closing --------------------------------------------------------------------
    def close(self) -> None:
        """Close (idempotent). The watcher goes first: libev must not watch a
        closed descriptor, which the kernel may hand out again at once."""
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None
            self.meter.closed()

    def _lost(self, name: str, start: float, err: TcpFailure) -> None:
        self.close()
        self.meter.failed(err.kind)
        self._report(name, start, 0, err)

    def _report(self, name: str, start: float, length: int, err: TcpFailure | None) -> None:
        self._fire(request_type=REQUEST_TYPE, name=name,
                   response_time=(perf_counter() - start) * 1000.0,
                   response_length=length, exception=err, context=self._context)

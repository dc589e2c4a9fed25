"""One TCP connection to an echo server, timed and reported to Locust.

The socket is a plain non-blocking kernel socket (``_socket.socket``, never
patched by gevent) and this module waits itself on gevent's loop (libev on
epoll): a call that would block (EAGAIN, EINPROGRESS) starts an I/O watcher
and a timer and parks the greenlet in a :class:`gevent.hub.Waiter` until one
fires: gevent's cooperative sockets minus the per-call ``Timeout`` and the
exception its expiry throws, which cost more than the echo at 15,000 users.
Paced echoes run in the hub's callbacks, the user's greenlet parked across
them (:mod:`loadgen.holding`), or, for a Locust user, no greenlet at all
(:mod:`loadgen.parking`): one runs only for what is not a plain success.

Every call is timed and reported to Locust (``request_type="tcp"``, names
``connect``, ``echo``, and ``hold`` for a connection lost while an
:class:`~loadgen.users.IdleUser` holds it): successes through the process's
:class:`~loadgen.tally.Tally` (in bulk), failures as ``request`` events with
a :class:`TcpFailure`, classified (:mod:`loadgen.failures`) and counted in
the :class:`~loadgen.meter.Meter`, never raised: a load generator has to
survive exactly the conditions it provokes.

Source addresses: from 127.0.0.x instead of 127.0.0.1, each address has its
own ~28k ephemeral ports towards one server ip:port. ``bind()`` would pick
the port before the kernel knows the destination (each port once for *all*
destinations); ``IP_BIND_ADDRESS_NO_PORT`` (Linux 4.2) defers it to ``connect()``.

Where an echo's latency is read (the lab reports the server's latency, not
this process's): the send time just before ``send()`` (``time.time_ns()``),
the receive time the *kernel's*: with ``SO_TIMESTAMPNS`` set, the kernel
stamps each incoming packet with CLOCK_REALTIME as it enters the stack
(``net_timestamp_check()`` in ``netif_receive_skb``/``netif_rx``; on loopback
inside the server's own ``send()``), and ``recvmsg_into()`` returns the stamp
of the last packet read as ``SCM_TIMESTAMPNS`` (TCP: ``tcp_recv_timestamp()``).
So latency counts the server's work, wake-ups and queueing and the kernel's
TCP path both ways, *not* how long this process took to notice the reply (its
loop serving other users, a GC pause, not being scheduled), once most of a
busy generator's p99 (benchmarks/README.md, loadgen_fidelity). That delay is
measured apart (:mod:`loadgen.lag`; :mod:`contract.generator` calls a step
client-bound on it). The stamp is used only when plausible (not before the
send, not after this process's own clock reading once the reply is in);
otherwise, without one, or with ``IOLAB_RX_TIMESTAMPS=user`` (the benchmark's
comparison), latency is send to ``perf_counter()`` after the receive. With
``--schedule fixed`` the lateness of the send is added, as open-loop
measuring requires. The stamp costs ~1 us per echo (``recvmsg_into``, an unpack).

Clients that are not fast loopback ones (:class:`~loadgen.options.LoadOptions`):

* a *slow sender* (``--send-chunk``, ``--send-gap``) sends each message in
  chunks, a pause apart, latency from the first byte. Slowloris (``--send-chunk
  1 --send-gap 0.5``) keeps a thread or pool worker blocked in ``recv()``;
* a *slow reader* (``--recv-buffer``, ``--read-chunk``, ``--read-gap``) sets
  ``SO_RCVBUF`` before ``connect()`` (the window scale is agreed in the SYN)
  and reads ``read_chunk`` bytes per ``recv()``, a pause apart: its window
  closes, the server's send queue fills, its ``send()`` comes back short, then
  EAGAIN: a thread blocks; an event loop buffers (memory) or stops reading;
* *varied sizes* (``--message-size-median``/``--message-size-max``): log-normal
  draws from the user's seeded RNG, buffers sized for the largest, every byte
  compared.
"""

from __future__ import annotations

import _socket
import errno
import math
import os
import random
import struct
from collections.abc import Callable
from time import perf_counter, time_ns
from typing import Any

from gevent import sleep
from gevent.hub import Waiter, get_hub

from contract.defaults import USER_ECHO
from contract.parking import parks_when_held, slow_client
from loadgen.failures import ClosedByServer, EchoMismatch, TcpFailure, failure
from loadgen.holding import Holding
from loadgen.limits import SocketBudget
from loadgen.meter import Meter
from loadgen.options import LoadOptions
from loadgen.rx_stamps import ANC_SPACE, KERNEL_RX_STAMPS, SO_TIMESTAMPNS, rx_stamp
from loadgen.tally import Tally

IP_BIND_ADDRESS_NO_PORT = getattr(_socket, "IP_BIND_ADDRESS_NO_PORT", 24)
REQUEST_TYPE = "tcp"
_SEQ = struct.Struct("<Q")
_EV_READ, _EV_WRITE = 1, 2
_NO_CONTEXT: dict[str, Any] = {}  # one shared empty context, not a dict per user


class TcpClient(Holding):
    """A connection's life: connect, echo, wait, close; every outcome reported.
    ``fire``: Locust's ``environment.events.request.fire``; ``tally``: where
    successes go instead (None: ``fire`` them too); ``context``: passed on with
    every event (Locust's ``User.context()``); ``budget``: the process's
    :class:`~loadgen.limits.SocketBudget` (None: no budget)."""

    __slots__ = ("address", "source_ip", "opts", "meter", "budget", "_fire", "_tally",
                 "_context", "_hub", "sock", "_readable", "_writable", "_payload", "_buf",
                 "_bufs", "_seq", "_served", "_connect_failed", "_rng", "_slow", "_on_hub")

    def __init__(self, address: tuple[str, int], opts: LoadOptions, meter: Meter,
                 fire: Callable[..., Any], *, source_ip: str | None = None,
                 context: dict[str, Any] | None = None,
                 budget: SocketBudget | None = None,
                 rng: random.Random | Callable[[], random.Random] | None = None,
                 tally: Tally | None = None) -> None:
        self.address = address
        self.source_ip = source_ip
        self.opts = opts
        self.meter = meter
        self._served = False  # this connection has had an echo back
        self._connect_failed = False  # the last connect attempt failed: the next is a retry
        self.budget = budget if budget is not None else SocketBudget(1 << 62)
        self._fire = fire
        self._tally = tally  # successes in bulk (loadgen/tally.py); None: one event each
        self._context = context if context else _NO_CONTEXT
        self._hub = get_hub()
        self.sock: _socket.socket | None = None
        self._readable = self._writable = None
        self._timer = None  # a held connection's pace/io timer (loadgen/holding.py)
        self._sent_at = 0.0
        size = opts.largest_message
        # An RNG (2.5 KB) only for varied sizes; a callable makes it on first use.
        self._rng = rng
        # anything but whole-message sends and reads of whatever has arrived
        self._slow = slow_client(opts.send_chunk, opts.send_gap_s, opts.read_chunk,
                                 opts.read_gap_s, opts.sizes_vary)
        # paced echoes run on the hub (loadgen/holding.py), the user parked
        self._on_hub = parks_when_held(USER_ECHO, pace_s=opts.pace_s,
                                       io_timeout_s=opts.io_timeout_s, slow=self._slow)
        # A recognisable filler; the first 8 bytes carry a sequence number so a
        # stale or replayed echo is a mismatch, not a lucky match.
        self._payload = bytearray((b"iolab-echo:" * (size // 11 + 1))[:size])
        self._buf = bytearray(size)  # a memoryview of it only when a reply comes in parts
        self._bufs = [self._buf]  # recvmsg_into's buffer list, built once
        self._seq = 0

    @property
    def connected(self) -> bool:
        return self.sock is not None

    # -- waiting on the event loop ------------------------------------------------------
    def _wait(self, watcher: Any, timeout: float | None) -> bool:
        """Park this greenlet until ``watcher`` fires (True) or ``timeout`` passes (False)."""
        waiter = Waiter(self._hub)
        timer = None
        if timeout is not None:
            # update=True: libev's cached "now" is the start of this loop
            # iteration; a timer armed from it would end early by however
            # long the iteration has run (a paced user would send early).
            timer = self._hub.loop.timer(max(timeout, 0.0))
            timer.start(waiter.switch, False, update=True)
        watcher.start(waiter.switch, True)
        try:
            return waiter.get()
        finally:  # also when Locust kills the user while it waits
            watcher.stop()
            if timer is not None:
                timer.close()

    # -- connect ----------------------------------------------------------------
    def connect(self) -> bool:
        """Open the connection; True on success. Timed from socket() to the
        completed handshake (with a listening server, the kernel completes the
        handshake from its accept queue before the server calls accept()).

        The time of a successful connect goes to the meter's connect histogram;
        an attempt after a failed one counts as a retry. A SYN the server's
        listener dropped (its SYN or accept queue full) is sent again by the
        kernel after 1 s, 3 s, ... (``tcp_syn_retries``): such a connect shows
        as a slow one here, or as ``timeout`` past ``--connect-timeout``.
        Out of source ports towards this ip:port, ``connect()`` fails at once
        with EADDRNOTAVAIL: a connect failure of that kind, the client's limit.
        """
        self.meter.connect_started()
        if self._connect_failed:
            self.meter.phases.connect_retried()
        start = perf_counter()
        sock = None
        try:
            family = _socket.AF_INET6 if ":" in self.address[0] else _socket.AF_INET
            self.budget.take()
            try:
                sock = _socket.socket(family, _socket.SOCK_STREAM)  # EMFILE/ENFILE here
            except OSError:
                self.budget.give()
                raise
            sock.setblocking(False)
            for level, option, value in self.opts.before_connect:  # SO_RCVBUF, SO_PRIORITY
                sock.setsockopt(level, option, value)
            if self.source_ip:
                sock.setsockopt(_socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                sock.bind((self.source_ip, 0))
            loop = self._hub.loop
            self._readable = loop.io(sock.fileno(), _EV_READ)
            self._writable = loop.io(sock.fileno(), _EV_WRITE)
            err = sock.connect_ex(self.address)
            if err == errno.EINPROGRESS:
                if not self._wait(self._writable, self.opts.connect_timeout_s):
                    raise TimeoutError("no connection within --connect-timeout")
                err = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_ERROR)
            if err:
                raise OSError(err, os.strerror(err))
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            if KERNEL_RX_STAMPS:
                sock.setsockopt(_socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except Exception as exc:  # noqa: BLE001 - every failure is data
            self._drop(sock)
            err = failure(exc)
            self.meter.connect_failed(err.kind)
            self._connect_failed = True
            self._report("connect", start, 0, err)
            return False
        except BaseException:  # the user is being killed (GreenletExit): give back
            self._drop(sock)   # the descriptor and its budget slot, then go
            raise
        self.sock = sock
        self._connect_failed = False
        self.meter.phases.connect_ok(perf_counter() - start)
        self.meter.opened()
        self._served = False  # no echo on this connection yet
        self._report("connect", start, 0, None)
        return True

    # -- echo ---------------------------------------------------------------------
    def next_size(self) -> int:
        opts = self.opts  # fixed, or a log-normal draw cut to [1, max]
        if not opts.sizes_vary:
            return opts.message_size
        rng = self._rng
        if not isinstance(rng, random.Random):
            rng = self._rng = random.Random(0) if rng is None else rng()
        size = round(rng.lognormvariate(math.log(opts.message_size_median), opts.size_sigma))
        return min(max(size, 1), opts.largest_message)

    def echo(self, origin: float | None = None) -> bool:
        """Send one message and read it back; True if the same bytes returned.

        Latency runs from ``origin`` (the intended send time, for the fixed
        schedule) or from now (the first byte sent). On failure the
        connection is closed.
        """
        if self.sock is None:
            raise RuntimeError("echo() without a connection")
        size = self._numbered()
        start = perf_counter()
        late = 0.0 if origin is None else max(start - origin, 0.0)  # fixed schedule
        return self._complete(size, start, late, time_ns())

    def _numbered(self) -> int:
        """The next message's size, its sequence number written into the payload."""
        size = self.next_size() if self._slow else len(self._payload)
        if size >= _SEQ.size:
            self._seq += 1
            _SEQ.pack_into(self._payload, 0, self._seq)
        return size

    def _complete(self, size: int, start: float, late: float, sent_ns: int, sent: int = 0,
                  got: int = -1, stamp: int = 0, error: Exception | None = None) -> bool:
        """An echo from byte ``sent`` of the message on (``got``: bytes of the reply
        read, its ``stamp``; -1: the socket not yet seen readable; ``error``: what
        already failed): the rest of the send, the wait, the read, the check, the report."""
        payload, buf = self._payload, self._buf
        try:
            if error is not None:
                raise error
            if self._slow:
                stamp = self._echo_slowly(size)
            else:
                if sent < size:
                    self._send_all(memoryview(payload)[sent:] if sent else payload)
                # The reply cannot be in yet (the server must be woken first):
                # wait before the first recvmsg, which would fail with EAGAIN.
                if got < 0 and not self._wait(self._readable, self.opts.io_timeout_s):
                    raise TimeoutError("no echo within --io-timeout")
                stamp = self._receive(buf, size, got=max(got, 0), stamp=stamp)
                if buf != payload:
                    self.meter.mismatched(payload, buf)
                    raise EchoMismatch(f"{size} bytes sent, other bytes came back")
        except Exception as exc:  # noqa: BLE001 - every failure is data
            self._lost("echo", start - late, failure(exc))
            return False
        self._record(size, start, late, sent_ns, stamp)
        return True

    def _record(self, size: int, start: float, late: float, sent_ns: int, stamp: int) -> None:
        """A successful echo's latency (the kernel's receive stamp if plausible), counted."""
        seen = perf_counter() - start  # the reply as this process saw it
        kernel = (stamp - sent_ns) * 1e-9
        elapsed = late + (kernel if 0.0 <= kernel <= seen else seen)
        self.meter.echo_ok(elapsed, start - late)  # sent then
        if not self._served:
            self._served = True
            self.meter.served()
        if self._tally is not None:
            self._tally.ok(REQUEST_TYPE, "echo", elapsed * 1000.0, size)
        else:
            self._fire(request_type=REQUEST_TYPE, name="echo", response_time=elapsed * 1000.0,
                       response_length=size, exception=None, context=self._context)

    def _receive(self, buf: bytearray, size: int, chunk: int = 0, gap: float = 0.0, *,
                 got: int = 0, stamp: int = 0) -> int:
        """Read ``size`` bytes (``chunk`` per recv, ``gap`` s apart; ``got`` of them
        already in ``buf``, with ``stamp``); the last stamp or 0."""
        sock = self.sock
        whole = not chunk and size == len(buf)
        while got < size:
            end = min(size, got + chunk) if chunk else size
            try:
                n, anc, _, _ = sock.recvmsg_into(
                    self._bufs if whole and not got else [memoryview(buf)[got:end]],
                    ANC_SPACE)
            except BlockingIOError:
                if not self._wait(self._readable, self.opts.io_timeout_s):
                    raise TimeoutError("no echo within --io-timeout") from None
                continue
            if not n:
                raise ClosedByServer()
            got += n
            if anc:
                stamp = rx_stamp(anc)
            if gap and got < size:
                sleep(gap)
        return stamp

    def _echo_slowly(self, size: int) -> int:
        """One echo of ``size`` bytes as a slow sender and/or reader; the receive stamp."""
        opts = self.opts
        sent = memoryview(self._payload)[:size]
        self._send_all(sent, opts.send_chunk, opts.send_gap_s)
        stamp = self._receive(self._buf, size, opts.read_chunk, opts.read_gap_s)
        came = memoryview(self._buf)[:size]
        if came != sent:
            self.meter.mismatched(sent, came)
            raise EchoMismatch(f"{size} bytes sent, other bytes came back")
        return stamp

    def _send_all(self, data: bytearray | memoryview, chunk: int = 0, gap: float = 0.0) -> None:
        """One send() for a small message; a big one waits for the peer to drain
        its receive buffer. ``chunk``: at most that many per send(), ``gap`` s apart."""
        sent, size = 0, len(data)
        while sent < size:
            end = min(size, sent + chunk) if chunk else size
            try:
                sent += self.sock.send(memoryview(data)[sent:end] if sent or end < size
                                       else data)
            except BlockingIOError:
                if not self._wait(self._writable, self.opts.io_timeout_s):
                    raise TimeoutError("send blocked beyond --io-timeout") from None
                continue
            if gap and sent < size:
                sleep(gap)

    # -- closing --------------------------------------------------------------------
    def close(self) -> None:
        """Close (idempotent). A plain close (no ``SO_LINGER`` 0, which would send
        RST) sends FIN; the side that closes first keeps its end in TIME_WAIT for
        60 s (``TCP_TIMEWAIT_LEN``) with its source port. A
        :class:`~loadgen.users.ChurnUser` closes first, so churn fills *this*
        host's port range (~28k per source address and server ip:port): ~470
        connects/s per address, unless ``tcp_tw_reuse`` (default 2: loopback)
        lets ``connect()`` reuse a TIME_WAIT port older than a second. Past
        that, ``connect()`` fails with EADDRNOTAVAIL.
        """
        if self.sock is not None:
            self._drop(self.sock)
            self.sock = None
            self.meter.closed(served=self._served)
            self._served = False

    def _drop(self, sock: _socket.socket | None) -> None:
        """Watchers first: libev must not watch a closed descriptor, which the
        kernel may hand out again at once; and a parked user's timer (its
        greenlet, which would close it, is gone: loadgen/parking.py)."""
        if self._timer is not None:
            self._timer.close()
            self._timer = None
        for watcher in (self._readable, self._writable):
            if watcher is not None:
                watcher.close()
        self._readable = self._writable = None
        if sock is not None:
            sock.close()
            self.budget.give()

    def _lost(self, name: str, start: float, err: TcpFailure) -> None:
        self.close()
        self.meter.failed(err.kind, start if name == "echo" else None)  # sent at start
        self._report(name, start, 0, err)

    def _report(self, name: str, start: float, length: int, err: TcpFailure | None) -> None:
        if err is None and self._tally is not None:
            self._tally.ok(REQUEST_TYPE, name, (perf_counter() - start) * 1000.0, length)
            return
        self._fire(request_type=REQUEST_TYPE, name=name,
                   response_time=(perf_counter() - start) * 1000.0,
                   response_length=length, exception=err, context=self._context)

"""The one loop skeleton of the event-driven models (readiness notification).

As in CPython's ``Lib/selectors.py``, the models differ only in how they ask
the kernel "which descriptors are ready?": a subclass supplies ``watch``,
``rewatch``, ``unwatch`` and ``wait``; the accept/read/write/close logic is
here once. Event masks use the poll/epoll bit values, which are the same:
``IN`` (1), ``OUT`` (4) and ``ERR`` (POLLERR|POLLHUP, 8|16).

What every event-driven model inherits:

* partial writes: what ``send`` did not take is kept in ``conn.out`` and the
  descriptor is watched for ``OUT`` until it drained; while more than
  ``HIGH_WATER`` bytes wait (the client is not reading) the connection is not
  read, so memory stays bounded; the stats report those bytes
  (``buffered_bytes``, ``buffered_conns``: the memory slow readers cost);
* half-close: ``recv`` returning b"" marks the connection ``eof``; it is
  closed once everything received has been echoed, so the client reads the
  rest and then EOF;
* resets and broken pipes are ordinary closes (counted in ``closed``);
* accept errors never spin: ``Acceptor`` refuses with the reserved
  descriptor, and if that is not possible the listener is unwatched for
  ``Acceptor.BACKOFF_S``.

Every event-driven model (these, and asyncio, uvloop and io_uring, which
bring their own loops) also runs as N processes with ``--processes N``
(``servers/prefork.py``): each process its own SO_REUSEPORT listener, accept
queue and RLIMIT_NOFILE, so N processes hold about N x (nofile - overhead)
connections, spread over them by the kernel's hash of each 4-tuple rather
than by room left. The line "With ``--processes N``" in each model's
docstring says what that changes for it.

Level-triggered models read once per readiness event (the kernel will report
the descriptor again if data is left). ``drain = True`` (edge-triggered epoll,
SIGIO) reads, accepts and writes until EAGAIN, because no second notification
comes for data that was already there.
"""

from __future__ import annotations

import select

from servers.core import CLOSE_ERRNOS, HIGH_WATER, RECV_SIZE, Server, log
from servers.fdtable import FdTable
from servers.gate import GATE, Shutdown
from servers.listener import Acceptor

IN, OUT, ERR = select.POLLIN, select.POLLOUT, select.POLLERR | select.POLLHUP
IN_ERR = IN | ERR
REFUSED = Acceptor.REFUSED


class Conn:
    __slots__ = ("sock", "fd", "out", "eof", "paused", "mask")

    def __init__(self, sock, fd):
        self.sock = sock
        self.fd = fd
        self.out = None  # bytearray of echo not yet sent, or None
        self.eof = False  # the peer shut down its write side
        self.paused = False  # not reading: too much unsent echo
        self.mask = IN


class EventLoopServer(Server):
    blocking_listener = False
    drain = False
    accept_batch = 64  # accepts per readiness event of the listener

    # -- the poller interface (subclasses) --------------------------------
    def watch(self, fd: int, mask: int) -> None:
        raise NotImplementedError

    def rewatch(self, fd: int, mask: int) -> None:
        raise NotImplementedError

    def unwatch(self, fd: int) -> None:
        raise NotImplementedError

    def wait(self, timeout: float | None):
        """Block until something is ready; an iterable of (fd, mask)."""
        raise NotImplementedError

    def buffered(self) -> tuple[int, int] | None:
        """The bytes in every ``conn.out`` (``FdTable.values``: a snapshot the
        ticker's thread can walk while the loop adds or closes connections)."""
        total = held = 0
        conns = getattr(self, "conns", None)
        for c in conns.values() if conns is not None else ():
            out = c.out
            if out:
                total += len(out)
                held += 1
        return total, held

    def admit(self, sock) -> bool:
        """Last check before a new connection is watched (select: FD_SETSIZE)."""
        return True

    # -- the loop ---------------------------------------------------------
    def serve(self) -> None:
        self.conns: FdTable[Conn] = FdTable(self.listener.fileno() + 1)
        self.buf = bytearray(RECV_SIZE)
        self.view = memoryview(self.buf)
        self.lfd = lfd = self.listener.fileno()
        self.listening = True
        self.watch(lfd, IN)
        wait, dispatch, acceptor, gate = self.wait, self.dispatch, self.acceptor, GATE
        while True:
            timeout = None
            if not self.listening:
                timeout = acceptor.backing_off()
                if not timeout:
                    self.listening = True
                    self.watch(lfd, IN)
                    timeout = None
            # ``blocking(wait, timeout)``, inlined: this is the hot path.
            gate.safe = True
            if gate.pending is not None:
                raise Shutdown(gate.pending)
            events = wait(timeout)
            gate.safe = False
            dispatch(events)

    def dispatch(self, events) -> None:
        conns, on_read, on_write = self.conns, self.on_read, self.on_write
        for fd, ev in events:
            c = conns[fd]  # a reported descriptor is the listener's or was put
            if c is None:
                if fd == self.lfd:
                    self.on_accept()
                continue
            if ev & IN_ERR:
                on_read(c)
            if ev & OUT and c.sock is not None:
                on_write(c)

    def on_accept(self) -> None:
        stats, conns = self.stats, self.conns
        for _ in range(self.accept_batch):
            sock = self.acceptor.accept()
            if sock is None:
                if self.acceptor.backing_off():
                    self.unwatch(self.lfd)
                    self.listening = False
                return
            if sock is REFUSED or not self.admit(sock):
                continue
            sock.setblocking(False)
            fd = sock.fileno()
            conns.put(fd, Conn(sock, fd))
            stats.opened(fd)
            self.watch(fd, IN)

    def update(self, c: Conn) -> None:
        """Watch for what the connection needs next (level-triggered pollers)."""
        mask = (0 if c.paused or c.eof else IN) | (OUT if c.out else 0)
        if mask != c.mask:
            c.mask = mask
            self.rewatch(c.fd, mask)

    def on_read(self, c: Conn) -> None:
        sock, buf, stats = c.sock, self.buf, self.stats
        while True:
            try:
                n = sock.recv_into(buf)
            except BlockingIOError:
                return
            except OSError as exc:
                return self.close_conn(c, exc)
            if not n:
                c.eof = True
                if c.out:
                    return self.update(c)
                return self.close_conn(c)
            stats.bytes_in += n
            if self.busy:
                self.work()
            if c.out:
                c.out += self.view[:n]
            else:
                try:
                    sent = sock.send(self.view[:n] if n < RECV_SIZE else buf)
                except BlockingIOError:
                    sent = 0
                except OSError as exc:
                    return self.close_conn(c, exc)
                stats.bytes_out += sent
                if sent == n:
                    if self.drain:
                        continue
                    return
                c.out = bytearray(self.view[sent:n])
            # Unsent echo: watch for OUT; stop reading above HIGH_WATER.
            c.paused = len(c.out) >= HIGH_WATER
            self.update(c)
            if c.paused or not self.drain:
                return

    def on_write(self, c: Conn) -> None:
        if not c.out:
            return
        try:
            sent = c.sock.send(c.out)
        except BlockingIOError:
            return
        except OSError as exc:
            return self.close_conn(c, exc)
        self.stats.bytes_out += sent
        del c.out[:sent]
        if c.out:
            return
        c.out = None
        if c.eof:
            return self.close_conn(c)
        resume, c.paused = c.paused, False
        self.update(c)
        if resume:
            self.on_read(c)  # edge-triggered pollers will not report old data again

    def close_conn(self, c: Conn, exc: OSError | None = None) -> None:
        if exc is not None and exc.errno not in CLOSE_ERRNOS:
            log(f"{self.model}: fd {c.fd}: {exc}")
        try:
            self.unwatch(c.fd)
        except (OSError, KeyError, ValueError):
            pass
        c.sock.close()
        c.sock = None
        self.conns.drop(c.fd)
        self.stats.closed += 1


class PollerServer(EventLoopServer):
    """A model whose poller object has register/modify/unregister/poll
    (``select.poll``, ``select.epoll``): two class attributes make a model."""

    poller_factory = None  # callable returning the poller
    timeout_ms = False  # poll() takes milliseconds, epoll.poll() seconds
    extra_mask = 0  # bits added to every connection's registration (EPOLLET...)

    def prepare(self) -> None:
        self.poller = type(self).poller_factory()
        if not self.timeout_ms:
            self.wait = self.poller.poll  # no conversion: skip a Python call per wait

    def watch(self, fd, mask):
        self.poller.register(fd, mask | self.extra_mask)

    def rewatch(self, fd, mask):
        self.poller.modify(fd, mask | self.extra_mask)

    def unwatch(self, fd):
        self.poller.unregister(fd)

    def wait(self, timeout):
        if timeout is not None and self.timeout_ms:
            timeout = int(timeout * 1000) + 1
        return self.poller.poll(timeout)

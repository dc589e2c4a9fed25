"""A held connection between its echoes: the pace, and an idle user's hold.

A mixin of :class:`~loadgen.client.TcpClient` (its socket, watchers and echo
steps), apart so that the client module stays about one echo.

Between two paced echoes a connection is quiet: its only events are the pace
timer and, if the server closes or resets the connection (or sends bytes
nobody asked for), its socket turning readable. Waiting for the pace in the
user's greenlet and then for the reply switched out of the greenlet and back
into it twice per echo (a switch saves and restores the greenlet's slice of
the C stack and the interpreter's frame state, and it wakes the user's
Python frames: together more than the echo's own code). In
:meth:`Holding.paced_echoes` the greenlet parks once (or, for a parked
Locust user, :mod:`loadgen.parking`, ends) and the echoes run on
the hub, in libev's callbacks (called in the loop iteration whose
``epoll_wait`` found them due): the pace timer's callback sends and re-arms
the same timer as the io timeout (``ev_timer_again``: the timer's repeat,
counted from now); the readable watcher's callback reads the reply, checks
it, counts it and arms the next pace. The greenlet wakes only for what is not
that: the socket readable before the send (the next echo then reports why,
at once), a send the kernel did not take whole in one ``send()`` (EAGAIN or
a partial send: its send buffer full), a reply in parts or not as sent, an
error, the io timeout, and every reply when successes are not tallied (they
fire Locust's ``request`` event, whose listeners must run in a greenlet).
The greenlet (a parked user's: one the hub starts then) finishes such an
echo the ordinary way (``TcpClient._complete``), through :meth:`Holding.woken`.
"""

from __future__ import annotations

from time import perf_counter, time_ns
from typing import TYPE_CHECKING

from gevent.hub import Waiter

from loadgen.failures import ClosedByServer, EchoMismatch, failure
from loadgen.rx_stamps import ANC_SPACE, rx_stamp

if TYPE_CHECKING:
    from collections.abc import Callable

    from loadgen.schedule import Schedule

    Wake = Callable[[object], None]  # what the hub hands a waiting greenlet: Waiter.switch

_TIMED_OUT = object()  # what the re-armed pace timer wakes the greenlet with


class Holding:
    """The waits of :class:`~loadgen.client.TcpClient` between echoes."""

    # the paced send's perf_counter (0.0: not sent yet) and time_ns; its timer
    __slots__ = ("_sent_at", "_sent_ns", "_timer")

    def paced_echoes(self, schedule: Schedule, wake: Wake | None = None) -> bool | None:
        """Echo when ``schedule`` says, advancing it, until an echo needs a
        greenlet; False once one failed (the connection is closed then).

        As :meth:`wait_quiet` then :meth:`echo` per echo, but with the
        successful echoes run on the hub: see the module. Slow clients, and an
        echo already due, take the ordinary way. With ``wake`` (a parked user,
        :mod:`loadgen.parking`) nothing waits here: the echoes are armed on the
        hub and None comes back at once; what would have woken this greenlet
        is handed to ``wake`` in the hub instead (after :meth:`unarm`), and
        whichever greenlet it starts finishes that echo with :meth:`woken`.
        """
        wait = schedule.due - perf_counter()
        if wait <= 0 or not self._on_hub or self.sock is None:
            if wait > 0 and self.sock is not None:  # a slow client waits for its pace here
                self.wait_quiet(schedule.due)
            return self._echo_now(schedule)
        if wake is not None:
            self._hold_echoes(wake, schedule, wait)
            return None
        waiter = Waiter(self._hub)
        self._hold_echoes(waiter.switch, schedule, wait)
        try:
            woke = waiter.get()
        finally:  # also when Locust kills the user while it waits
            self.unarm()
        return self.woken(schedule, woke)

    def _hold_echoes(self, wake: Wake, schedule: Schedule, wait: float) -> None:
        self._arm(wake, wait)
        self._readable.start(self._reply, wake, schedule)

    def unarm(self) -> None:
        """Stop the held connection's watchers (idempotent): the readable one
        stays (the client's, for its next wait), the timer goes."""
        if self._readable is not None:
            self._readable.stop()
        if self._timer is not None:
            self._timer.close()
            self._timer = None

    def woken(self, schedule: Schedule, woke: object) -> bool:
        """Finish, in a greenlet, the echo that needed one (``woke``: what the
        hub's callback handed over); True if it succeeded."""
        start = self._sent_at
        if not start:  # readable before the send
            return self._echo_now(schedule)
        late = _lateness(schedule, start)
        size, sent_ns = len(self._payload), self._sent_ns
        if isinstance(woke, int):  # the kernel took part of the message: send the rest here
            return self._complete(size, start, late, sent_ns, woke)
        if isinstance(woke, tuple):  # (bytes of the reply read, its stamp)
            return self._complete(size, start, late, sent_ns, size, *woke)
        error = TimeoutError("no echo within --io-timeout") if woke is _TIMED_OUT else woke
        return self._complete(size, start, late, sent_ns, size, 0, error=error)

    def _arm(self, wake: Wake, wait: float) -> None:
        """The next send's timer: the pace, then (re-armed by :meth:`_due`) the io timeout."""
        self._sent_at = 0.0
        timer = self._timer = self._hub.loop.timer(wait, self.opts.io_timeout_s)
        # update=True: libev's "now" is this loop iteration's start (see TcpClient._wait)
        timer.start(self._due, wake, update=True)

    def _due(self, wake: Wake) -> None:
        """The pace timer's callback, in the hub: send the message; the timer
        counts the io timeout from now on. Wakes the greenlet with the bytes sent
        (fewer than the message) or the send's error."""
        size = self._numbered()
        self._sent_at = perf_counter()
        self._sent_ns = time_ns()
        try:
            sent = self.sock.send(self._payload)
        except BlockingIOError:
            sent = 0
        except OSError as exc:  # reset, broken pipe: the echo's failure, reported there
            wake(exc)
            return
        if sent == size:
            self._timer.again(wake, _TIMED_OUT, update=True)
        else:
            wake(sent)

    def _reply(self, wake: Wake, schedule: Schedule) -> None:
        """The readable watcher's callback, in the hub: a whole reply as sent is
        counted and the next pace armed; anything else wakes the greenlet."""
        start = self._sent_at
        if not start:  # before the send: closed, reset, or bytes nobody asked for
            wake(None)
            return
        try:
            n, anc, _, _ = self.sock.recvmsg_into(self._bufs, ANC_SPACE)
        except BlockingIOError:  # readiness libev reported but the kernel took back
            return
        except OSError as exc:  # reset
            wake(exc)
            return
        stamp = rx_stamp(anc) if anc else 0
        size = len(self._payload)
        if n != size or self._buf != self._payload or self._tally is None:
            wake((n, stamp))  # EOF, part of it, other bytes, or Locust's event
            return
        self._timer.close()
        self._record(size, start, _lateness(schedule, start), self._sent_ns, stamp)
        self._arm(wake, max(schedule.due - perf_counter(), 0.0))

    def _echo_now(self, schedule: Schedule) -> bool:
        now = perf_counter()
        ok = self.echo(schedule.origin(now))
        schedule.advance(now)
        return ok

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
        return not self._wait(self._readable, timeout)

    def hold(self, wake: Wake | None = None) -> bool | None:
        """Hold the connection silently until the server ends it (IdleUser):
        only the socket's readable watcher, no timer: nothing runs for it
        until the server closes, resets or writes. Then False (see
        :meth:`hold_ended`). With ``wake`` (a parked user) the watcher is
        armed with it and None comes back at once; the greenlet ``wake``
        starts calls :meth:`hold_ended`.
        """
        self._sent_at = perf_counter()  # the hold's start, for its report
        if wake is not None:
            self._readable.start(wake, True)
            return None
        self._wait(self._readable, None)
        return self.hold_ended()

    def hold_ended(self) -> bool:
        """The server ended a held connection: reports it as a failed ``hold``
        (kind ECONNRESET on EOF or RST, ``mismatch`` if the server sent bytes
        unasked) and closes; False."""
        try:
            if not self.sock.recv(1):
                raise ClosedByServer()
            raise EchoMismatch("the server sent bytes to an idle connection")
        except Exception as exc:  # noqa: BLE001 - every failure is data
            self._lost("hold", self._sent_at, failure(exc))
        return False


def _lateness(schedule: Schedule, sent_at: float) -> float:
    """Advance ``schedule`` past a send at ``sent_at``; what the echo's latency adds
    for being sent late (the fixed schedule; 0 otherwise)."""
    origin = schedule.origin(sent_at)
    schedule.advance(sent_at)
    return 0.0 if origin is None else max(sent_at - origin, 0.0)

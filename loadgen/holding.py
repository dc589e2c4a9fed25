"""A held connection between its echoes: the pace, and an idle user's hold.

A mixin of :class:`~loadgen.client.TcpClient` (its socket, watchers and echo
steps), apart so that the client module stays about one echo.

Between two paced echoes a connection is quiet: its only events are the pace
timer and, if the server closes or resets the connection (or sends bytes
nobody asked for), its socket turning readable. Waiting for the pace in the
user's greenlet and then for the reply switched out of the greenlet and back
into it twice per echo (a switch saves and restores the greenlet's slice of
the C stack and the interpreter's frame state: more than the echo's own
Python code). :meth:`Holding.paced_echo` parks once: the pace timer's
callback sends from the hub (libev calls it in the loop iteration that found
the timer due, between ``epoll_wait`` returns), then re-arms the same timer as
the io timeout (``ev_timer_again``: the timer's repeat, counted from now), and
the greenlet wakes when the reply makes the socket readable or the timeout
passes. A send the kernel does not take whole in one ``send()`` (EAGAIN, a
partial send: its send buffer full) or that fails wakes the greenlet, which
finishes the echo the ordinary way.
"""

from __future__ import annotations

from time import perf_counter, time_ns
from typing import TYPE_CHECKING, Any

from gevent.hub import Waiter

from loadgen.failures import ClosedByServer, EchoMismatch, failure

if TYPE_CHECKING:
    from loadgen.schedule import Schedule

_TIMED_OUT = object()  # what the re-armed pace timer wakes the greenlet with


class Holding:
    """The waits of :class:`~loadgen.client.TcpClient` between echoes."""

    __slots__ = ("_sent_at", "_sent_ns")  # the paced send's perf_counter and time_ns

    def paced_echo(self, schedule: Schedule) -> bool:
        """Echo when ``schedule`` says, then advance it; True if the echo came back.

        As :meth:`wait_quiet` then :meth:`echo`, with one wake-up: see the
        module. The socket turning readable before the send (closed, reset,
        unasked bytes) wakes the greenlet at once, and the echo that follows
        reports it. Slow clients, and an echo already due, take the ordinary way.
        """
        wait = schedule.due - perf_counter()
        if wait <= 0 or self._slow or self.sock is None or self.opts.io_timeout_s <= 0:
            return self._echo_now(schedule)
        hub = self._hub
        waiter = Waiter(hub)
        timer = hub.loop.timer(wait, self.opts.io_timeout_s)  # the pace, then the io timeout
        self._sent_at = 0.0
        # update=True: libev's "now" is this loop iteration's start (see TcpClient._wait)
        timer.start(self._send_due, waiter, timer, update=True)
        readable = self._readable
        readable.start(waiter.switch, None)
        try:
            woke = waiter.get()
        finally:  # also when Locust kills the user while it waits
            readable.stop()
            timer.close()
        start = self._sent_at
        if not start:  # readable before the send
            return self._echo_now(schedule)
        origin = schedule.origin(start)
        schedule.advance(start)
        late = 0.0 if origin is None else max(start - origin, 0.0)  # fixed schedule
        size = len(self._payload)
        if isinstance(woke, int):  # the kernel took part of the message: send the rest here
            return self._complete(size, start, late, self._sent_ns, woke)
        error = TimeoutError("no echo within --io-timeout") if woke is _TIMED_OUT else woke
        return self._complete(size, start, late, self._sent_ns, size, ready=True, error=error)

    def _send_due(self, waiter: Waiter, timer: Any) -> None:
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
            waiter.switch(exc)
            return
        if sent == size:
            timer.again(waiter.switch, _TIMED_OUT, update=True)
        else:
            waiter.switch(sent)

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

    def hold(self) -> None:
        """Hold the connection silently until the server ends it (IdleUser).

        Reports the end as a failed ``hold`` (kind ECONNRESET on EOF or RST,
        ``mismatch`` if the server sent bytes unasked) and closes.
        """
        start = perf_counter()
        try:
            self._wait(self._readable, None)
            if not self.sock.recv(1):
                raise ClosedByServer()
            raise EchoMismatch("the server sent bytes to an idle connection")
        except Exception as exc:  # noqa: BLE001 - every failure is data
            self._lost("hold", start, failure(exc))

"""Churn arrivals: the open model's clock, one greenlet per process.

With ``--arrival-rate R`` a :class:`~loadgen.users.ChurnUser` does not
reconnect when it likes: it waits, free, until an *arrival* hands it the next
connection. Arrivals come at the rate whether or not earlier connections have
finished (k6's constant-arrival-rate with pre-allocated VUs); an arrival that
finds no free user is *dropped* and counted (k6's ``dropped_iterations``),
because a server too slow to accept shows exactly there: every user is still
stuck in a connect or an echo.

One :class:`Arrivals` greenlet per process keeps the time, on one timer (a
``gevent.sleep``), instead of a timer per user: free users wait on their own
:class:`gevent.event.Event` in a FIFO and cost nothing until woken. Each tick
adds ``rate * elapsed`` to a credit and hands out its whole part, so a tick
that fires late (a busy event loop) releases every arrival that was due, as an
open model must; the next tick is due when the credit reaches one.

The rate is the whole load's: a process takes ``R * own / target`` of it,
``own`` its churn users now, ``target`` the step's target users: a Locust
worker knows its own user count (its spawn messages) and ``--steps``, but
not which step runs nor how many workers share it, so the master puts the
target in ``parsed_options.step_target``, which every spawn message carries
(:func:`loadgen.steps.announce_target`). Summed over workers that is
``R * users / target``: R at the step's target, proportionally less while a
ramp is still spawning users.
With no target announced (no ``--steps``) the process takes all of R.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from contextlib import suppress
from time import perf_counter

import gevent
from gevent.event import Event

from loadgen.meter import Meter

IDLE_TICK_S = 0.1  # the longest the clock sleeps: a new rate or a new user applies by then


class ArrivalClock:
    """How many arrivals are due, from a rate that may change between ticks."""

    __slots__ = ("last", "credit")

    def __init__(self, now: float) -> None:
        self.last = now
        self.credit = 0.0  # arrivals due but not yet handed out (the fraction)

    def due(self, rate: float, now: float) -> int:
        """Arrivals due from the previous tick to ``now`` at ``rate`` per second."""
        elapsed, self.last = max(now - self.last, 0.0), now
        if rate <= 0:
            self.credit = 0.0
            return 0
        self.credit += rate * elapsed
        n = int(self.credit)
        self.credit -= n
        return n

    def wait_s(self, rate: float) -> float:
        """Seconds until the next arrival is due (at most ``IDLE_TICK_S``)."""
        if rate <= 0:
            return IDLE_TICK_S
        return min(max((1.0 - self.credit) / rate, 0.0), IDLE_TICK_S)


class Arrivals:
    """The process's arrival schedule and its free users."""

    def __init__(self, meter: Meter, rate: Callable[[int], float],
                 clock: Callable[[], float] = perf_counter) -> None:
        """``rate(members)``: this process's arrivals per second for its
        ``members`` churn users."""
        self.meter = meter
        self.rate = rate
        self.clock = clock
        self.members = 0  # churn users of this process that wait here
        self.free: deque[Event] = deque()
        self._clock = ArrivalClock(clock())
        self.greenlet: gevent.Greenlet | None = None

    def start(self) -> None:
        if self.greenlet is None:
            self._clock = ArrivalClock(self.clock())
            self.greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        while True:
            gevent.sleep(self.tick(self.clock()))

    def tick(self, now: float) -> float:
        """Hand out the arrivals due by ``now``; the seconds to the next one."""
        rate = self.rate(self.members)
        free = self.free
        for _ in range(self._clock.due(rate, now)):
            taken = bool(free)
            if taken:
                free.popleft().set()
            self.meter.phases.arrival(taken)
        return self._clock.wait_s(rate)

    def join(self) -> None:
        self.members += 1

    def leave(self) -> None:
        self.members -= 1

    def wait(self, ticket: Event) -> None:
        """Wait, free, for the next arrival (``ticket``: the user's own event)."""
        ticket.clear()
        self.free.append(ticket)
        try:
            ticket.wait()
        except BaseException:  # killed while free: no longer there to take one
            with suppress(ValueError):
                self.free.remove(ticket)
            raise


def share_of_rate(rate: float, own: int, target: int) -> float:
    """This process's part of the whole load's ``rate``: ``own`` of ``target``
    users (all of it when the target is unknown, 0)."""
    if rate <= 0 or own <= 0:
        return 0.0
    return rate * min(own / target, 1.0) if target > 0 else rate

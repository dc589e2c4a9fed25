"""The Locust users: one held TCP connection each, or one after another.

A Locust user is a greenlet running tasks. These users have one task that
never returns: it owns a :class:`~loadgen.client.TcpClient` for the user's
whole life, because the point of the lab is *held* connections (what costs a
server a descriptor, a bit in an fd_set, an epoll registration), not
connection churn. When Locust stops a user it kills the greenlet
(``GreenletExit`` is raised wherever it is blocked) and ``on_stop`` closes
the socket.

Echo and idle users *park* (:mod:`loadgen.parking`): while their connection
is held on the hub they have no greenlet (a greenlet's stack is most of what
a held user would cost); Locust counts and stops them through a token
greenlet that is never started, and the hub starts a greenlet for them only
when an echo or the hold needs one. Churn users keep theirs.

* :class:`EchoUser` sends ``--message-size`` bytes every ``--pace`` seconds
  and checks the echo (:mod:`loadgen.schedule` decides when and from where
  latency counts).
* :class:`IdleUser` connects and holds, sending nothing: the idle majority
  of a C10K server's connections.
* :class:`ChurnUser` is the exception, connection churn on purpose: it
  connects, echoes ``--messages-per-connection`` messages (``--pace``
  apart), closes, and connects again: at once (closed model,
  ``--arrival-rate 0``), or when the process's arrival schedule hands it the
  next arrival (open model, :mod:`loadgen.arrivals`). What it measures is
  how fast a server accepts: a thread- or process-per-connection server
  runs out of accept rate long before it runs out of descriptors.

User groups (``--groups``, :func:`group_classes`): one subclass of the
group's user class per group, with the group's Locust ``weight`` and its spec;
its users take the options with the group's overrides and record into the
group's own meter as well as the process's (:mod:`loadgen.meter`).

After a failure the user records it and, with ``--reconnect yes`` (the
default), reconnects after one pace interval (at least
``RECONNECT_FLOOR_S``, so a refused flat-out user does not spin); with
``--reconnect no`` it stays disconnected until stopped.
"""

from __future__ import annotations

import random
from time import perf_counter
from typing import Any

import gevent
from gevent.event import Event
from locust import User, constant, task

from contract.defaults import SCHEDULE_FIXED
from loadgen.client import TcpClient
from loadgen.groups import Tee
from loadgen.parking import FRESH, Parking
from loadgen.runtime import runtime
from loadgen.schedule import Schedule, pace_gaps

RECONNECT_FLOOR_S = 0.1


class TcpUser(Parking, User):
    """Shared life cycle: build the client, connect, reconnect, close."""

    abstract = True
    wait_time = constant(0)  # never used: the one task runs for the user's life
    group: dict[str, Any] | None = None  # a user group's spec (group_classes)
    _rng: random.Random | None = None
    awaits_first_connect = True  # the step's hold waits for its first connection
    _awaiting = False  # counted in the meter's ``awaiting``

    def on_start(self) -> None:
        rt = runtime(self.environment)
        self.opts = rt.options(self.group)
        name = self.group["name"] if self.group else None
        meter = rt.meter if name is None else Tee(rt.meter, rt.meter.group(name))
        self._seed = rt.started
        self.client = TcpClient(rt.target(), self.opts, meter, rt.fire,
                                source_ip=rt.next_source_ip(), context=self.context(),
                                budget=rt.budget, rng=self.user_rng, tally=rt.tally())
        if self.awaits_first_connect:  # counted from its start: it may not have tried yet
            self._awaiting = True
            meter.await_connect(1)
        rt.user_started(name)

    def user_rng(self) -> random.Random:
        """Each user its own RNG (message sizes, exponential pace), seeded by its
        group and start order: a rerun draws the same sequences. Made on first
        use: a Mersenne Twister's state is 2.5 KB, more than the rest of an idle
        user's objects, and a fixed-pace, fixed-size user never draws."""
        if self._rng is None:
            name = self.group["name"] if self.group else ""
            self._rng = random.Random(f"{name}/{self._seed}")
        return self._rng

    def on_stop(self) -> None:
        self._stop_awaiting()
        self.client.close()
        runtime(self.environment).user_stopped(self.group["name"] if self.group else None)

    @task
    def hold_connection(self) -> None:
        """The user's life in the calling greenlet, never parked (Locust runs
        :meth:`live` through :meth:`~loadgen.parking.Parking.start` instead)."""
        self.live(FRESH, None)

    def live(self, woke: object, wake: Any) -> None:
        """Connect, use the connection, after a failure again; from ``woke``
        (FRESH: connect; else what woke a parked user: finish that first).
        Returns only once parked (with ``wake``, :mod:`loadgen.parking`)."""
        if woke is not FRESH:
            if self.resume(woke, wake) is None:
                return
            self.after_failure()
        while True:
            self.next_turn()
            if self.connect():
                used = self.use_connection(wake)
                if used is None:
                    return  # parked
                if used:
                    continue  # closed on purpose (ChurnUser): go again
            self.after_failure()

    def after_error(self) -> None:
        """After an exception in the user's code (logged by Parking, as Locust's
        TaskSet would), before it connects again."""
        self.client.close()

    def next_turn(self) -> None:
        """Before each connect: at once, unless the user waits for an arrival."""

    def connect(self) -> bool:
        """Connect. From its start until its first connection (the pauses
        between retries too), the user counts as ``awaiting``: the step's hold
        starts once no user does (the settle, loadgen/collect.py). Only a
        timed-out attempt keeps it counted: a SYN a full queue dropped is the
        burst's tail, which ends; a connect refused, reset or out of ports
        fails at once and is a wall, which the hold does not wait out. Later
        connects (a reconnect after the server dropped the connection) are
        not the ramp's: the hold never waits for them."""
        if not self._awaiting:
            return self.client.connect()
        start = perf_counter()
        ok = self.client.connect()
        if ok or perf_counter() - start < self.opts.connect_timeout_s:
            self._stop_awaiting()  # connected, or failed before its timeout
        return ok

    def _stop_awaiting(self) -> None:
        if self._awaiting:
            self._awaiting = False
            self.client.meter.await_connect(-1)

    def use_connection(self, wake: Any = None) -> bool | None:
        """Run until the connection fails (False; the client has closed it
        then), or return True after closing it on purpose; with ``wake``, None
        once the connection is held on the hub (parked)."""
        raise NotImplementedError

    def resume(self, woke: object, wake: Any) -> bool | None:
        """Go on from what woke a parked user, as :meth:`use_connection`."""
        raise NotImplementedError

    def after_failure(self) -> None:
        if self.opts.reconnect:
            gevent.sleep(max(self.opts.pace_s, RECONNECT_FLOOR_S))
        else:
            Event().wait()  # disconnected for good; Locust kills us at stop


class EchoUser(TcpUser):
    """Holds one connection and echoes ``--message-size`` bytes every ``--pace`` s."""

    parks = True
    schedule: Schedule

    def use_connection(self, wake: Any = None) -> bool | None:
        opts = self.opts
        self.schedule = Schedule(opts.pace_s, opts.schedule == SCHEDULE_FIXED, perf_counter(),
                                 pace_gaps(opts.pace_s, opts.pace_dist, self.user_rng))
        return self._echoes(wake)

    def resume(self, woke: object, wake: Any) -> bool | None:
        return self.client.woken(self.schedule, woke) and self._echoes(wake)

    def _echoes(self, wake: Any) -> bool | None:
        client, schedule = self.client, self.schedule
        while ok := client.paced_echoes(schedule, wake):  # on the hub (loadgen/holding.py)
            pass
        return ok  # False: failed; None: parked


class IdleUser(TcpUser):
    """Connects and holds the connection without sending anything."""

    parks = True

    def use_connection(self, wake: Any = None) -> bool | None:
        return self.client.hold(wake)

    def resume(self, woke: object, wake: Any) -> bool:
        return self.client.hold_ended()


class ChurnUser(TcpUser):
    """Connects, echoes ``--messages-per-connection`` messages, closes, again.

    Connecting is its workload: a step's hold does not wait for its connects.

    Its close is a plain one: the client's end of each connection spends 60 s
    in TIME_WAIT holding its source port (:meth:`TcpClient.close`), so a long
    fast churn can end in EADDRNOTAVAIL, a connect failure of the client's.
    """

    awaits_first_connect = False

    def on_start(self) -> None:
        super().on_start()
        rt = runtime(self.environment)
        self.meter = self.client.meter  # the group's too
        self.gap = pace_gaps(self.opts.pace_s, self.opts.pace_dist, self.user_rng)
        self.arrivals = rt.arrivals() if self.opts.arrival_rate > 0 else None
        self.ticket = Event()
        if self.arrivals is not None:
            self.arrivals.join()

    def on_stop(self) -> None:
        if self.arrivals is not None:
            self.arrivals.leave()
        super().on_stop()

    def next_turn(self) -> None:
        if self.arrivals is not None:
            self.arrivals.wait(self.ticket)

    def use_connection(self, wake: Any = None) -> bool:
        client, opts = self.client, self.opts
        for i in range(opts.messages_per_connection):
            if i and opts.pace_s:
                client.wait_quiet(perf_counter() + self.gap())
            if not client.echo():
                return False
        client.close()
        self.meter.phases.closed_on_purpose()
        return True

    def after_failure(self) -> None:
        if self.arrivals is None or not self.opts.reconnect:
            super().after_failure()
        # open model: the next arrival is the retry's pace


USER_CLASSES: dict[str, type[TcpUser]] = {"echo": EchoUser, "idle": IdleUser, "churn": ChurnUser}


def group_class_name(name: str) -> str:
    """The Locust user class of group ``name`` (what the command line selects)."""
    return f"Group_{name}"


def group_classes(groups: tuple[dict[str, Any], ...]) -> dict[str, type[TcpUser]]:
    """One user class per group: a subclass of the group's ``user`` (echo by
    default) with the group's ``weight`` and spec. Locust's dispatcher shares
    the users out by weight (1:2 gets a third and two thirds, rounded)."""
    out: dict[str, type[TcpUser]] = {}
    for g in groups:
        base = USER_CLASSES[g.get("user", "echo")]
        name = group_class_name(g["name"])
        out[name] = type(name, (base,), {"weight": int(g.get("weight", 1)), "group": dict(g),
                                         "__module__": __name__,
                                         "__doc__": f"User group {g['name']!r}: {base.__doc__}"})
    return out

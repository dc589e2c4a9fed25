"""Getting every worker's share of a step to the master, at the step's edges.

Locust's periodic worker reports (``report_to_master``, every 3 s) are too
coarse to cut a 5 s hold cleanly, so the master *asks*, with Locust custom
messages (``runner.register_message`` / ``runner.send_message``):

``iolab_settle``  master -> workers, when the ramp is done, every
                  ``SETTLE_POLL_S`` until the step's users have all started
                  and none waits, or ``--connect-timeout`` has passed: how
                  many of your users still wait for their first connection?
``iolab_awaiting`` worker -> master: that number (:attr:`Meter.awaiting`: users
                  started and not yet connected once), and its started users.
``iolab_hold``    master -> workers, once settled: start the latency window
                  as soon as your event loop has caught up (echoes during the
                  ramp and its connect tail do not count; below).
``iolab_collect`` master -> workers, at the step end: reply with your share
                  and start counting the next step.
``iolab_share``   worker -> master: a :class:`~loadgen.meter.Snapshot`
                  (counters, connections, encoded HDR histogram).

The settle is the boundary between a step's two phases (:mod:`loadgen.phases`).
Locust calls a ramp done when it has *started* its users; their connects are
still in flight, and a SYN that a full SYN or accept queue dropped comes back
1 s, 3 s, ... later. While the server accepts that tail (28 processes taking
250,000 connections in C500K), the echoes of the connections it already
holds wait too: mixed into the hold, the connect phase's tail set the step's
p99. So the hold starts when every user of the step has started and made its
first connection (or failed at once: refused, out of ports, a wall the hold
does not wait out), and at the latest ``--connect-timeout`` after the ramp
(by then every attempt made during the ramp has succeeded or timed out; a
user still retrying is retried into the hold, its failures counted as
connect failures, never the hold's). Churn users' connects are the hold's
workload and are never waited for (:class:`~loadgen.users.TcpUser`).

A worker starts its window at the hold mark once its event loop is on time
(:meth:`loadgen.lag.LagProbe.when_caught_up`): the last users' connects ran
in the loop ahead of the pace timers of the users already connected, and the
sends that fell due meanwhile go out together once they are done (~1,000 of
them, 70 ms of echoes, at 15,000 users on one worker), a burst the server
queues and the hold's p99 would count. That takes tens of milliseconds; a
worker that is not on time within a tenth of the hold (at most
``CATCH_UP_MAX_S``) starts anyway, its lag then on record. A message costs a
millisecond on loopback, so the workers' windows start within that and end
within milliseconds of the master's ``t_hold`` and ``t_end``.
In a standalone run the ``LocalRunner`` delivers ``send_message`` to its own
listeners, so the same code path runs with one "worker", itself.

The collector also keeps the step's roster. Workers are the Locust node ids
in ``runner.clients`` (``<hostname>_<uuid>``); one is *live* while its state
is not ``missing``, which Locust sets after ``--worker-timeout`` s without a
heartbeat (:func:`loadgen.listeners.set_worker_timeout`). Every worker
live at the step's start, at its hold mark or at the collect request was
there during the step; each of them that sent no share is *lost*, as is a
worker already missing (expected, silent). ``expected`` is the larger of
``--expect-workers`` and the live workers at the step's start (1 standalone).
The collect waits for the workers that were live when it asked, and stops
waiting for one as soon as Locust calls it missing or drops it, so a killed
worker delays its step's record by ``--worker-timeout`` (11 s by default), not
by ``timeout``; a ramp that a lost worker keeps short of its target is held
as it is once Locust calls the worker missing (:meth:`StepCollector.lost_one`).
"""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import gevent
from gevent.event import Event
from locust.runners import STATE_MISSING, LocalRunner, MasterRunner, WorkerRunner

from loadgen.meter import Snapshot
from loadgen.runtime import runtime

log = logging.getLogger("loadgen")

SETTLE = "iolab_settle"
AWAITING = "iolab_awaiting"
HOLD = "iolab_hold"
COLLECT = "iolab_collect"
SHARE = "iolab_share"
RECHECK_S = 0.25  # how often a waiting collect looks at the workers' liveness
SETTLE_POLL_S = 0.02  # between two settle questions (a step waits for the next answer)
CATCH_UP_MAX_S = 1.0  # the longest a worker's window waits for its loop to catch up
CATCH_UP_SHARE = 0.1  # ... and at most this share of the hold


@dataclass
class Collected:
    """One step's shares and roster."""

    shares: list[Snapshot]
    expected: int = 1
    lost: list[dict[str, str]] = field(default_factory=list)  # {"id", "host"} each


def host_of(node_id: str) -> str:
    """Locust names a node ``<hostname>_<uuid4 hex>``."""
    return node_id.rsplit("_", 1)[0] if "_" in node_id else node_id


def register(environment: Any) -> StepCollector | None:
    """Wire the messages for this process's role; the collector on the master."""
    runner = environment.runner
    if isinstance(runner, (WorkerRunner, LocalRunner)):
        runner.register_message(SETTLE, _on_settle)
        runner.register_message(HOLD, _on_hold)
        runner.register_message(COLLECT, _on_collect)
    if isinstance(runner, (MasterRunner, LocalRunner)):
        collector = StepCollector(environment)
        runner.register_message(SHARE, collector.on_share)
        runner.register_message(AWAITING, collector.on_awaiting)
        return collector
    return None


def _on_settle(environment: Any, msg: Any, **_: Any) -> None:
    runner = environment.runner
    rt = runtime(environment)
    runner.send_message(AWAITING, {"ask": msg.data["ask"], "id": runner.client_id,
                                   "n": rt.meter.awaiting, "users": rt.users})


def _on_hold(environment: Any, msg: Any, **_: Any) -> None:
    # The ramp is over: the users and their sockets, greenlets and clients
    # (about 25 GC-tracked objects each) live until the step ends. Frozen,
    # the collector no longer walks them: at 8000 users a full collection
    # took 90-260 ms of the event loop (every user's wake-up late by that),
    # and 70-100 ms with them frozen (benchmarks/README.md, loadgen_fidelity).
    gc.freeze()
    rt = runtime(environment)
    hold_s = float(msg.data.get("hold_s") or CATCH_UP_MAX_S / CATCH_UP_SHARE)
    if rt.lag_probe is None:  # not a load process's hub (no probe): at once
        rt.meter.start_window(hold=True)
    else:
        rt.lag_probe.when_caught_up(lambda: rt.meter.start_window(hold=True),
                                    min(CATCH_UP_MAX_S, CATCH_UP_SHARE * hold_s))


def _on_collect(environment: Any, msg: Any, **_: Any) -> None:
    runner = environment.runner
    rt = runtime(environment)
    if rt.lag_probe is not None:  # a hold shorter than the catch-up: its window is empty
        rt.lag_probe.caught_up_now()
    snap = rt.meter.snapshot(users=runner.user_count)
    gc.unfreeze()  # users stopped in the next ramp can be collected again
    runner.send_message(SHARE, {"step": msg.data["step"], "id": runner.client_id,
                                **snap.to_message()})


class StepCollector:
    """Master side: broadcast the marks, gather the shares of one step."""

    def __init__(self, environment: Any) -> None:
        self.environment = environment
        self._step: int | None = None
        self._shares: dict[str, Snapshot] = {}
        self._arrived = Event()
        self._seen: set[str] = set()  # live at some point of this step
        self._expected = 1
        self._hosts: dict[str, str] = {}  # every worker ever seen -> its host
        self._ask = 0  # the settle question being answered
        self._awaiting: dict[str, tuple[int, int]] = {}  # its answers: worker -> (waiting, users)

    @property
    def runner(self) -> Any:
        return self.environment.runner

    @property
    def standalone(self) -> bool:
        return isinstance(self.runner, LocalRunner)

    def live(self) -> set[str]:
        """The workers connected now (standalone: this process)."""
        if self.standalone:
            return {self.runner.client_id}
        return {c.id for c in self.runner.clients.values() if c.state != STATE_MISSING}

    def _look(self) -> set[str]:
        live = self.live()
        self._seen |= live
        for node in live:
            self._hosts.setdefault(node, host_of(node))
        return live

    def begin_step(self) -> None:
        """At the step's start: who is there, and how many should be."""
        self._seen = set()
        live = self._look()
        wanted = 1 if self.standalone else int(
            getattr(self.environment.parsed_options, "expect_workers", 1) or 1)
        self._expected = max(wanted, len(live))

    def lost_one(self) -> bool:
        """A worker live at some point of this step is missing or gone now.
        Locust does not hand its users to the others (no rebalancing), so
        the step's ramp cannot reach its target: the controller stops waiting."""
        return bool(self._seen - self.live())

    def settle(self, timeout: float, users: int = 0) -> float:
        """Wait until the workers have started ``users`` users in all and none
        waits for its first connection, at most ``timeout`` s (see the module
        docstring); the seconds waited. Locust calls a ramp done once the
        users are spawned: their greenlets may not have run yet."""
        start = time.monotonic()
        while True:
            self._ask += 1
            self._awaiting = {}
            self._arrived.clear()
            asked = self._look()
            self.runner.send_message(SETTLE, {"ask": self._ask})
            until = min(time.monotonic() + RECHECK_S, start + timeout)
            while (asked & self.live()) - set(self._awaiting) and time.monotonic() < until:
                self._arrived.wait(max(until - time.monotonic(), 0.0))
                self._arrived.clear()
            answers = self._awaiting.values()
            settled = not (asked & self.live()) - set(self._awaiting) \
                and not any(n for n, _ in answers) and sum(u for _, u in answers) >= users
            if settled or time.monotonic() - start + SETTLE_POLL_S > timeout:
                if not settled:
                    log.info("users still waiting for a first connection %.1f s after the "
                             "ramp: holding anyway (%s)", time.monotonic() - start,
                             self._awaiting)
                return time.monotonic() - start
            gevent.sleep(SETTLE_POLL_S)

    def on_awaiting(self, environment: Any, msg: Any, **_: Any) -> None:
        data = msg.data
        if data.get("ask") == self._ask:
            node = str(data.get("id") or msg.node_id) if self.standalone else msg.node_id
            self._awaiting[node] = (int(data.get("n") or 0), int(data.get("users") or 0))
            self._arrived.set()

    def start_window(self, hold_s: float | None = None) -> None:
        """The hold mark (``hold_s``: how long the hold lasts)."""
        self._look()
        self.runner.send_message(HOLD, {"hold_s": hold_s} if hold_s else {})

    def collect(self, step: int, timeout: float) -> Collected:
        """Ask every worker for its share of ``step``; wait up to ``timeout`` s
        for the ones still live (see the module docstring)."""
        self._step, self._shares = step, {}
        self._arrived.clear()
        asked = self._look()
        self.runner.send_message(COLLECT, {"step": step})
        deadline = time.monotonic() + timeout
        while True:
            waiting = (asked & self.live()) - set(self._shares)
            left = deadline - time.monotonic()
            if not waiting or left <= 0:
                break
            self._arrived.wait(min(RECHECK_S, left))
            self._arrived.clear()
        if waiting:
            log.warning("step %d: no share within %.0f s from %s", step, timeout,
                        ", ".join(sorted(waiting)))
        self._step = None
        lost = self._lost()
        if lost:
            log.warning("step %d: worker(s) lost: %s", step,
                        ", ".join(f"{w['id']} ({w['host']})" for w in lost))
        return Collected(list(self._shares.values()), self._expected, lost)

    def _lost(self) -> list[dict[str, str]]:
        """Seen during the step or known missing, and silent; then, while fewer
        answered than expected, workers of earlier steps that are gone."""
        answered = set(self._shares)
        missing = set() if self.standalone else {
            c.id for c in self.runner.clients.values() if c.state == STATE_MISSING}
        silent = sorted((self._seen | missing) - answered)
        gone = sorted(set(self._hosts) - answered - set(silent))
        short = self._expected - len(answered) - len(silent)
        ids = silent + gone[:max(short, 0)]
        return [{"id": node, "host": self._hosts.get(node, host_of(node))} for node in ids]

    def on_share(self, environment: Any, msg: Any, **_: Any) -> None:
        data = msg.data
        node = str(data.get("id") or msg.node_id) if self.standalone else msg.node_id
        if data.get("step") != self._step:
            log.warning("ignoring a late share of step %s from %s", data.get("step"), node)
            return
        snap = Snapshot.from_message(data)
        snap.id = node
        self._hosts[node] = snap.host or host_of(node)
        self._shares[node] = snap
        self._arrived.set()

"""Getting every worker's share of a step to the master, at the step's edges.

Locust's periodic worker reports (``report_to_master``, every 3 s) are too
coarse to cut a 5 s hold cleanly, so the master *asks*, with Locust custom
messages (``runner.register_message`` / ``runner.send_message``):

``iolab_hold``    master -> workers, when the ramp is done: start the
                  latency window now (echoes during the ramp do not count).
``iolab_collect`` master -> workers, at the step end: reply with your share
                  and start counting the next step.
``iolab_share``   worker -> master: a :class:`~loadgen.meter.Snapshot`
                  (counters, connections, encoded HDR histogram).

A message costs a millisecond on loopback, so the workers' windows start
and end within milliseconds of the master's ``t_ramp_end`` and ``t_end``.
In a standalone run the ``LocalRunner`` delivers ``send_message`` to its own
listeners, so the same code path runs with one "worker", itself.
"""

from __future__ import annotations

import logging
from typing import Any

from gevent.event import Event
from locust.runners import LocalRunner, MasterRunner, WorkerRunner

from loadgen.meter import Snapshot
from loadgen.runtime import runtime

log = logging.getLogger("loadgen")

HOLD = "iolab_hold"
COLLECT = "iolab_collect"
SHARE = "iolab_share"


def register(environment: Any) -> StepCollector | None:
    """Wire the messages for this process's role; the collector on the master."""
    runner = environment.runner
    if isinstance(runner, (WorkerRunner, LocalRunner)):
        runner.register_message(HOLD, _on_hold)
        runner.register_message(COLLECT, _on_collect)
    if isinstance(runner, (MasterRunner, LocalRunner)):
        collector = StepCollector(environment)
        runner.register_message(SHARE, collector.on_share)
        return collector
    return None


def _on_hold(environment: Any, msg: Any, **_: Any) -> None:
    runtime(environment).meter.start_window()


def _on_collect(environment: Any, msg: Any, **_: Any) -> None:
    runner = environment.runner
    snap = runtime(environment).meter.snapshot(users=runner.user_count)
    runner.send_message(SHARE, {"step": msg.data["step"], **snap.to_message()})


class StepCollector:
    """Master side: broadcast the marks, gather the shares of one step."""

    def __init__(self, environment: Any) -> None:
        self.environment = environment
        self._step: int | None = None
        self._shares: dict[str, Snapshot] = {}
        self._expected = 0
        self._complete = Event()

    @property
    def runner(self) -> Any:
        return self.environment.runner

    def workers(self) -> int:
        return 1 if isinstance(self.runner, LocalRunner) else self.runner.worker_count

    def start_window(self) -> None:
        self.runner.send_message(HOLD, {})

    def collect(self, step: int, timeout: float) -> list[Snapshot]:
        """Ask every worker for its share of ``step``; wait up to ``timeout`` s.

        A worker that does not answer in time is left out (the record's
        ``workers`` field then says fewer than expected).
        """
        self._step, self._shares = step, {}
        self._expected = self.workers()
        self._complete.clear()
        self.runner.send_message(COLLECT, {"step": step})
        if not self._complete.wait(timeout):
            log.warning("step %d: %d of %d workers sent their share within %.0f s",
                        step, len(self._shares), self._expected, timeout)
        self._step = None
        return list(self._shares.values())

    def on_share(self, environment: Any, msg: Any, **_: Any) -> None:
        data = msg.data
        if data.get("step") != self._step:
            log.warning("ignoring a late share of step %s from %s", data.get("step"), msg.node_id)
            return
        self._shares[msg.node_id] = Snapshot.from_message(data)
        if len(self._shares) >= self._expected:
            self._complete.set()

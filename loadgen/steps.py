"""``--steps``: a staircase of user counts, and one exact result line per step.

Locust drives load shapes by calling ``LoadTestShape.tick()`` about once a
second from the runner's shape greenlet; a new ``(users, spawn_rate)``
starts a ramp (on the master: spawn messages to the workers, which report
back when their users run). One-second ticks cannot cut a 5 s hold
precisely, so the shape only *reports* the level a :class:`StepController`
greenlet asks for; the controller keeps the time:

1. set the step's target (``t_start``); the controller starts the ramp at
   once (:meth:`StepController.start_ramp`; the first step's, and a ramp
   the runner is not ready for, start at the shape's next tick);
2. wait until the runner reports the target running (``t_ramp_end``), then
   until every user has started and made its first connection, at most
   ``--connect-timeout`` more (the settle, :mod:`loadgen.collect`;
   ``t_hold``), then tell the workers to start their latency window
   (``iolab_hold``);
3. sleep the hold time, then collect every worker's share (``t_end``),
   merge, append one JSON line to ``--step-results`` and flush;
4. after the last step the shape returns ``None``: headless runs quit
   (master and workers exit), web UI runs stop.

Without ``--steps`` the shape behaves like plain Locust: ``-u``/``-r`` (or
the web UI's fields; ``use_common_options``), until ``--run-time``.

One line per step (appended, so give each run its own file)::

    {"step": 0, "target_users": 500, "t_start": ..., "t_ramp_end": ..., "t_hold": ...,
     "t_end": ...,
     "hold_s": 20.0, "users": 500, "connected": 498, "connect_attempts": 503,
     "connect_failures": {"ECONNREFUSED": 5}, "echo_count": 9940, "rps": 497.0,
     "p50_ms": 0.21, "p90_ms": 0.4, "p99_ms": 2.3, "max_ms": 9.1,
     "failures": {"ECONNREFUSED": 5}, "workers": 2,
     "loadgen_cpu_max": 0.31, "loadgen_lag_p99_ms": 1.9, "workers_expected": 2,
     "workers_alive": 2, "workers_lost": [],
     "worker_shares": [{"id": "a1b2_4f..", "host": "a1b2", "cpu": 0.31,
                        "lag_p99_ms": 1.9, "lag_max_ms": 6.2, "users": 250,
                        "connected": 249}, ...],
     "mismatch_example": null, "peak_connected": 500, "peak_served": 498}

Times are epoch seconds on the master. ``users`` and ``connected`` are what
the workers held at ``t_end`` (connected: sockets open as far as each user
knows; a server's close is noticed at once, see ``TcpClient.wait_quiet``).
``connect_attempts``, ``connect_failures`` and ``failures`` (every failed
connect, echo and hold, by kind) count the whole step, ramp included.
``echo_count``, ``rps`` and the latency fields (HDR-exact, null without
echoes) cover the hold only: each worker counts from its "hold" mark to the
collect request, and ``rps`` sums each worker's echoes over its own window
(:mod:`loadgen.meter`). ``workers`` is how many workers answered.

The connect phase and the hold's own failures (:mod:`loadgen.phases`): ``connect_p50_ms``
.. ``connect_max_ms``, ``connect_count``, ``connect_retries``, ``t_connect_start``,
``t_connect_end`` cover the whole step; ``hold_failures``, ``hold_attempts``,
``connects_per_s``, ``arrivals``, ``dropped``, ``closes`` the hold window
(docs/design.md, "Loadgen — contract", has their definitions).

The generator accounting (:mod:`contract.generator` says when it makes a step
client-bound) covers each worker's same hold window:

* ``loadgen_cpu_max``: the busiest worker's user+sys CPU over its window, as a
  fraction of one core (null when no worker answered);
* ``loadgen_lag_p99_ms``: the worst worker's p99 of its event loop's lateness
  (:mod:`loadgen.lag`; null when no worker answered);
* ``workers_expected``: the larger of ``--expect-workers`` and the workers
  connected when the step started (1 standalone); ``workers_alive``: those
  that sent their share (= ``workers``);
* ``workers_lost``: ``{"id", "host"}`` (Locust node id, the worker's
  hostname: a container's id prefix) of each worker connected during the step,
  or expected, that sent no share; ``[]`` when none;
* ``worker_shares``: per answering worker, ``id``, ``host``, ``cpu``,
  ``lag_p99_ms``, ``lag_max_ms``, ``users``, ``connected``.

A worker killed mid-step is named lost once Locust calls it missing
(``--worker-timeout``, 11 s by default), and the step's line is written then.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import gevent
from locust import LoadTestShape
from locust.runners import STATE_RUNNING, MasterRunner, locust_exception_handler

from contract.defaults import CONNECT_TIMEOUT_S
from loadgen.collect import StepCollector
from loadgen.meter import merge, rss_bytes
from loadgen.options import Step, parse_steps

log = logging.getLogger("loadgen")

POLL_S = 0.02
COLLECT_TIMEOUT_S = 30.0  # a saturated worker answers late; wait for it
RAMP_SLACK_S = 30.0  # beyond the ramp's own duration, before giving up waiting


def write_record(path: str, record: dict[str, Any]) -> None:
    """Append one line and flush it: a reader may tail the file during the run."""
    if not path:
        return
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()


def announce_target(runner: Any, users: int) -> None:
    """Put the step's target users in ``parsed_options.step_target``: the master
    ships ``vars(parsed_options)`` in every spawn message, so each worker has
    the target of the ramp that gives it its users (a churn process's share of
    ``--arrival-rate``, :mod:`loadgen.arrivals`). A custom message would not
    do: a worker handles messages before its ``init`` listeners have
    registered theirs, and one sent as the last worker reports ready is lost."""
    opts = runner.environment.parsed_options
    if opts is not None:
        opts.step_target = users


class StepController:
    """Runs the steps on the master (or the standalone process)."""

    def __init__(self, runner: Any, collector: StepCollector, steps: tuple[Step, ...],
                 spawn_rate: float, results_path: str) -> None:
        self.runner = runner
        self.collector = collector
        self.steps = steps
        self.spawn_rate = spawn_rate
        self.results_path = results_path
        self.level: tuple[int, float] | None = (steps[0].users, spawn_rate) if steps else None
        self.records: list[dict[str, Any]] = []
        self._t_first = time.time()  # the first level is in effect from now on
        if steps:  # before the first tick's spawn messages are built
            announce_target(runner, steps[0].users)
        self.greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        previous = 0
        for index, step in enumerate(self.steps):
            t_start = self._t_first if index == 0 else time.time()
            self.level = (step.users, self.spawn_rate)
            self.collector.begin_step()
            announce_target(self.runner, step.users)
            if index > 0:
                self.start_ramp()
            ramp_s = abs(step.users - previous) / max(self.spawn_rate, 1e-9)
            self._wait_for_ramp(step.users, ramp_s + RAMP_SLACK_S)
            t_ramp_end = time.time()
            self.collector.settle(self.settle_timeout(), step.users)
            t_hold = time.time()
            self.collector.start_window(step.hold_s)
            gevent.sleep(step.hold_s)
            t_end = time.time()
            got = self.collector.collect(index, COLLECT_TIMEOUT_S)
            record = {"step": index, "target_users": step.users, "t_start": t_start,
                      "t_ramp_end": t_ramp_end, "t_hold": t_hold, "t_end": t_end,
                      "hold_s": step.hold_s,
                      **merge(got.shares, expected=got.expected, lost=got.lost,
                              master_rss=self.master_rss())}
            write_record(self.results_path, record)
            self.records.append(record)
            log.info("step %d done: %d users, %d connected, %.1f echo/s, p99 %s ms, failures %s; "
                     "workers %d/%d, loadgen cpu %s, lag p99 %s ms",
                     index, record["users"], record["connected"], record["rps"],
                     record["p99_ms"], record["failures"] or "none", record["workers_alive"],
                     record["workers_expected"], record["loadgen_cpu_max"],
                     record["loadgen_lag_p99_ms"])
            previous = step.users
        self.level = None

    def start_ramp(self) -> None:
        """Start the ramp to ``self.level`` now, not at the shape's next tick.

        Locust's shape greenlet calls ``tick()`` once a second and starts a
        ramp when the level it returns changed, so every step after the first
        began up to a second after the previous step's collect (a 1 s hold
        took 2 s). With the runner ``RUNNING`` (the last ramp is over, no
        ``start`` in flight) the controller calls the runner's ``start`` as
        that greenlet would, in a greenlet of the runner's group (a quit
        kills it), and records the level as started (``shape_last_tick``)
        first, so the next tick does not start it again. A runner still
        ramping (a ramp that timed out) is left to the tick, as before.
        """
        r = self.runner
        if self.level is None or r.state != STATE_RUNNING or r.shape_last_tick == self.level:
            return
        r.shape_last_tick = self.level
        users, rate = self.level
        log.info("step ramp to %d users at %.2f spawn rate", users, rate)
        r.greenlet.spawn(r.start, user_count=users, spawn_rate=rate).link_exception(
            locust_exception_handler(r.environment))

    def settle_timeout(self) -> float:
        """The connect deadline after a ramp: ``--connect-timeout`` (every
        attempt made during the ramp has succeeded or failed by then)."""
        opts = self.runner.environment.parsed_options
        return float(getattr(opts, "connect_timeout", None) or CONNECT_TIMEOUT_S)

    def master_rss(self) -> int | None:
        """A distributed master's own memory, part of the load's (standalone,
        the process's share already counts it)."""
        return rss_bytes() if isinstance(self.runner, MasterRunner) else None

    def _wait_for_ramp(self, users: int, timeout: float) -> None:
        """Until the runner runs ``users`` users with the ramp finished.

        ``shape_last_tick`` guards against seeing the *previous* level as
        done before the shape greenlet has even started this ramp. A worker
        lost during the ramp ends the wait: its share of the users is not
        spawned elsewhere, so the target would not be reached before the
        timeout, and the step is ``worker_lost`` whatever it holds.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.runner
            if (r.state == STATE_RUNNING and r.user_count == users
                    and r.shape_last_tick == self.level):
                return
            if self.collector.lost_one():
                log.warning("a worker was lost during the ramp to %d users (%d running); "
                            "holding as it is", users, r.user_count)
                return
            gevent.sleep(POLL_S)
        log.warning("ramp to %d users not finished after %.0f s (%d running); holding anyway",
                    users, timeout, self.runner.user_count)

    def stop(self) -> None:
        self.greenlet.kill(block=False)


class StepShape(LoadTestShape):
    """Locust's shape for this locustfile; see the module docstring."""

    use_common_options = True
    collector: StepCollector | None = None  # set at init on the master/standalone

    def __init__(self) -> None:
        super().__init__()
        self.controller: StepController | None = None

    def stop_controller(self) -> None:
        """At ``test_stop`` (listeners): the next run builds a new controller.
        Not in ``reset_time``: the master calls that again inside its first
        ramp, which would restart step 0 behind the shape's back."""
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def tick(self) -> tuple[int, float] | None:
        opts = self.runner.environment.parsed_options
        run_time = getattr(opts, "run_time", None)
        if run_time and self.get_run_time() > run_time:
            return None
        steps_text = getattr(opts, "steps", "") or ""
        if not steps_text:
            return int(opts.num_users or 1), float(opts.spawn_rate or 1)
        if self.controller is None:
            self.controller = StepController(
                self.runner, self.collector, parse_steps(steps_text),
                float(opts.step_spawn_rate), getattr(opts, "step_results", "") or "")
        return self.controller.level

"""Hooks into Locust's event system: what happens in every process, and when.

``init_command_line_parser``
    add the loadgen options (:mod:`loadgen.options`, and ``--groups``:
    :mod:`loadgen.groups`).
``init`` (every process, after its runner exists)
    raise the open-file soft limit to the hard limit; create the process's
    :class:`~loadgen.runtime.Runtime` (if a spawn message has not already:
    worker-local options are kept aside at parse time, :mod:`loadgen.options`);
    start the event-loop lag probe in load processes
    (:mod:`loadgen.lag`); refuse a target outside loopback/198.18.0.0/15;
    register the step messages (:mod:`loadgen.collect`); apply
    ``--active-users`` as EchoUser's ``fixed_count``.
    On the master and workers, pace the heartbeats for ``--worker-timeout``
    (:func:`set_worker_timeout`); on workers, answer spawn messages in
    constant time (:func:`cache_default_args`); on the master, start the
    steps as soon as the expected workers are ready
    (:mod:`loadgen.workers_ready`).
``test_start`` (workers and standalone: when users are first spawned)
    zero the step counters, so a second run in the web UI starts clean.
``test_stop`` (master and standalone)
    stop the step controller, so a run stopped in the web UI writes no
    further step lines.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import locust.argument_parser
import locust.runners
from locust.runners import MasterRunner, WorkerRunner

from contract import defaults
from contract.env import ALLOW_EXTERNAL_TARGETS
from loadgen import collect
from loadgen.groups import add_groups_argument
from loadgen.limits import raise_nofile
from loadgen.options import add_arguments, target_address, worker_local
from loadgen.runtime import runtime
from loadgen.workers_ready import wake_on_worker_ready

log = logging.getLogger("loadgen")
# Locust drops a missing worker from its roster (and re-dispatches the users) 60
# heartbeats after it went missing; kept at 60 s whatever the heartbeat interval.
DROP_MISSING_AFTER_S = 60.0
_installed: set[int] = set()


def install(events: Any, *, echo_user: type, idle_user: type) -> None:
    """Add the listeners once per event registry (the locustfile may be re-imported)."""
    if id(events) in _installed:
        return
    _installed.add(id(events))

    @events.init_command_line_parser.add_listener
    def on_parser(parser: Any, **_: Any) -> None:
        add_arguments(parser)
        add_groups_argument(parser)

    @events.init.add_listener
    def on_init(environment: Any, runner: Any = None, **_: Any) -> None:
        soft, hard = raise_nofile()
        rt = runtime(environment)
        if not isinstance(runner, MasterRunner):
            rt.start_lag_probe()
        if isinstance(runner, WorkerRunner):
            cache_default_args()
        if isinstance(runner, MasterRunner):
            wake_on_worker_ready(environment.events)
        if isinstance(runner, (MasterRunner, WorkerRunner)):
            set_worker_timeout(float(worker_local(environment.parsed_options, "worker_timeout")
                                     or defaults.WORKER_TIMEOUT_S))
        log.debug("loadgen: nofile soft=%d hard=%d, source ips %s", soft, hard, rt.source_ips)
        check_target(environment)
        collector = collect.register(environment)
        shape = environment.shape_class
        if shape is not None and hasattr(shape, "collector"):
            shape.collector = collector
        apply_active_users(environment, echo_user, idle_user)

    @events.test_start.add_listener
    def on_test_start(environment: Any, **_: Any) -> None:
        if not isinstance(environment.runner, MasterRunner):
            runtime(environment).meter.reset_step()

    @events.test_stop.add_listener
    def on_test_stop(environment: Any, **_: Any) -> None:
        shape = environment.shape_class
        if shape is not None and hasattr(shape, "stop_controller"):
            shape.stop_controller()


def check_target(environment: Any) -> None:
    """Exit (code 2) before any load is sent if ``--host`` is not allowed."""
    host = environment.host
    if not host or environment.parsed_options is None or environment.parsed_options.worker:
        return  # workers get the host from the master; users check it again
    try:
        allow = os.environ.get(ALLOW_EXTERNAL_TARGETS, "") not in ("", "0")
        target_address(host, allow)
    except (ValueError, OSError) as exc:
        log.error("%s", exc)
        sys.exit(2)


def cache_default_args() -> None:
    """Compute Locust's default-options dict once per worker process.

    A worker handling a ``spawn`` message filters the master's options with
    ``k not in argument_parser.default_args_dict()`` inside a comprehension:
    Locust builds and parses a whole argument parser (3 ms here) for every
    one of the ~70 options, about 0.2 s of CPU per message. The master sends
    each worker a spawn message every second of a ramp, so ten workers
    ramping together needed 2 cores for argument parsing alone; on this
    2-core machine their heartbeats stopped, the master marked all of them
    missing and ended the test at 10,000 -> 50,000 users. The dict depends
    only on Locust's own parser definition, so one copy serves every call.
    """
    if getattr(locust.argument_parser.default_args_dict, "iolab_cached", False):
        return
    defaults = locust.argument_parser.default_args_dict()

    def cached() -> dict[str, Any]:
        return dict(defaults)

    cached.iolab_cached = True  # type: ignore[attr-defined]
    locust.argument_parser.default_args_dict = cached


def heartbeat_for(timeout_s: float) -> tuple[float, int, int]:
    """Locust's ``(HEARTBEAT_INTERVAL, HEARTBEAT_LIVENESS, HEARTBEAT_DEAD_INTERNAL)``
    for a worker to be called missing after ``timeout_s`` s without a heartbeat.

    A worker sends a heartbeat every interval; the master, every interval,
    counts each worker's liveness down by one and sets it back to
    ``HEARTBEAT_LIVENESS`` when a heartbeat arrives. Below zero the worker is
    missing: ``(liveness + 1) * interval`` s of silence. The interval is at
    most Locust's 1 s and leaves at least four heartbeats within the timeout,
    so one late heartbeat is not a loss. At ``DEAD_INTERNAL`` (counted on down)
    Locust drops the worker; that stays ``DROP_MISSING_AFTER_S`` s away.
    """
    interval = min(1.0, timeout_s / 4)
    liveness = max(1, round(timeout_s / interval) - 1)
    return interval, liveness, -round(DROP_MISSING_AFTER_S / interval)


def set_worker_timeout(timeout_s: float) -> None:
    """Pace this process's heartbeats for ``--worker-timeout`` (default 11 s:
    Locust's own 3 missed heartbeats were raised to 10).

    A worker holding thousands of paced connections on a busy host can be
    seconds behind on its event loop, heartbeat greenlet included. Locust
    then marks it missing, zeroes its users in the master's count and, when
    the heartbeat comes back, dispatches the step again: a slow worker turns
    into a broken step, hence the long default. A short one names a killed
    worker sooner (the tests that kill workers use 2-3 s). Both sides read
    the three module globals at run time (the worker's heartbeat loop sleeps
    ``HEARTBEAT_INTERVAL``, the master's checks every ``HEARTBEAT_INTERVAL``),
    so setting them at ``init`` is enough; the first sleep, already begun,
    is Locust's 1 s.
    """
    (locust.runners.HEARTBEAT_INTERVAL, locust.runners.HEARTBEAT_LIVENESS,
     locust.runners.HEARTBEAT_DEAD_INTERNAL) = heartbeat_for(timeout_s)


def apply_active_users(environment: Any, echo_user: type, idle_user: type) -> None:
    """``--active-users N`` with both classes selected: exactly N EchoUsers.

    Locust's dispatcher gives a class with ``fixed_count`` exactly that many
    users, before weights share out the rest (the IdleUsers). With EchoUser
    alone, a fixed count would cap the run at N users, so it is not applied.
    """
    n = int(getattr(environment.parsed_options, "active_users", 0) or 0)
    classes = set(environment.user_classes or ())
    if n > 0 and echo_user in classes and idle_user in classes:
        echo_user.fixed_count = n
    elif n > 0:
        log.warning("--active-users %d ignored: it needs both IdleUser and EchoUser selected", n)

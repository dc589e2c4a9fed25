"""The settle between a step's two phases (loadgen/collect.py): the hold starts
when no connect of the ramp is in flight, at the latest ``--connect-timeout``
after it; a user's connects count as in flight until its first connection."""

from __future__ import annotations

import socket
import time
from time import perf_counter
from types import SimpleNamespace

import gevent
import pytest
from gevent.monkey import get_original
from locust.env import Environment
from locust.event import Events
from rogue_servers import RogueServer, close_at_once

from loadgen import collect
from loadgen.lag import LagProbe
from loadgen.runtime import runtime
from loadgen.users import EchoUser

pytestmark = pytest.mark.locust  # imports Locust (gevent patches the stdlib); loads nothing
_block = get_original("time", "sleep")  # holds the event loop


def standalone() -> tuple[collect.StepCollector, object]:
    """A Locust LocalRunner with the lab's messages wired, as in a standalone run."""
    env = Environment(events=Events(), parsed_options=SimpleNamespace(source_ips=""))
    env.create_local_runner()
    collector = collect.register(env)
    assert collector is not None
    # The tests arm spawn_later timers from libev's cached "now", the start of
    # the loop's last iteration; after a test that blocked the loop it can be
    # stale, and a timer then fires early by that much (0.55 s for 0.6 s seen).
    gevent.get_hub().loop.update_now()
    return collector, runtime(env).meter


def timed_settle_for(collector: collect.StepCollector, timeout: float,
                     users: int = 0) -> tuple[float, float]:
    start = time.monotonic()
    waited = collector.settle(timeout, users)
    return waited, time.monotonic() - start


def timed_settle(collector: collect.StepCollector, timeout: float) -> tuple[float, float]:
    return timed_settle_for(collector, timeout)


def test_nothing_in_flight_settles_at_once():
    collector, _ = standalone()
    waited, took = timed_settle(collector, 3.0)
    assert took < 0.1 and waited <= took


def test_the_hold_waits_for_the_users_still_to_connect():
    collector, meter = standalone()
    meter.await_connect(2)
    gevent.spawn_later(0.3, meter.await_connect, -1)
    gevent.spawn_later(0.6, meter.await_connect, -1)
    waited, took = timed_settle(collector, 3.0)
    assert 0.6 <= waited <= took < 0.6 + 2 * collect.SETTLE_POLL_S + 0.2, (waited, took)


def test_users_not_started_yet_hold_the_step_back():
    """Locust calls a ramp done once its users are spawned; their greenlets
    (on_start) may not have run: the settle waits until they all have."""
    collector, meter = standalone()
    rt = runtime(collector.environment)
    gevent.spawn_later(0.3, setattr, rt, "users", 5)
    waited, took = timed_settle_for(collector, 3.0, users=5)
    assert 0.3 <= waited <= took < 0.3 + 2 * collect.SETTLE_POLL_S + 0.2, (waited, took)


def test_users_still_waiting_at_the_deadline_do_not_hold_the_step():
    collector, meter = standalone()
    meter.await_connect(1)  # a SYN dropped again and again
    waited, took = timed_settle(collector, 0.5)
    assert 0.5 - collect.SETTLE_POLL_S <= waited <= took < 0.9, (waited, took)


def user_of(host: str, **options) -> tuple[EchoUser, object]:
    parsed = SimpleNamespace(message_size=64, pace=0.05, connect_timeout=0.4, io_timeout=5.0,
                             schedule="closed", reconnect="yes", source_ips="")
    vars(parsed).update(options)
    env = Environment(events=Events(), host=host, parsed_options=parsed)
    user = EchoUser(env)
    user.on_start()
    return user, runtime(env).meter


def awaiting_while_it_runs(user: EchoUser, meter, samples: int, every: float) -> list[int]:
    """Run ``user``, reading the meter's ``awaiting`` every ``every`` s; then stop it."""
    greenlet = gevent.spawn(user.hold_connection)
    try:
        seen = []
        for _ in range(samples):
            gevent.sleep(every)
            seen.append(meter.awaiting)
        return seen
    finally:
        greenlet.kill()
        user.on_stop()


def test_a_user_is_awaited_from_its_start_to_its_first_connection():
    """A listener whose accept queue is full and never drained: the kernel
    drops the SYN, the connect times out (0.4 s), the user pauses (0.1 s) and
    retries; all the while, pauses included, it is counted as awaited. Once
    the queue has room, the user connects and is no longer counted."""
    with RogueServer(close_at_once, backlog=0, accept=False) as srv:
        filler = socket.create_connection(srv.address)  # the one place in the queue
        user, meter = user_of(srv.host)
        try:
            samples = awaiting_while_it_runs(user, meter, 12, 0.1)
        finally:
            filler.close()
    assert samples == [1] * 12, samples  # 1.2 s: two attempts and a pause
    assert meter.connect_failures.get("timeout", 0) >= 2
    assert meter.awaiting == 0  # a stopped user takes its count with it


def test_a_refused_user_is_not_awaited():
    """Nothing listens (a dead server): the connect is refused at once, a wall
    and not a burst's tail; the hold does not wait for it, nor for the retries."""
    with RogueServer(close_at_once, accept=False) as srv:
        host = srv.host
    user, meter = user_of(host)
    assert meter.awaiting == 1  # started, not tried yet
    samples = awaiting_while_it_runs(user, meter, 10, 0.03)
    assert meter.connect_failures.get("ECONNREFUSED", 0) >= 2
    assert set(samples) == {0}, samples


def test_reconnects_after_the_first_connection_are_not_awaited():
    """The server closes every connection at once: the user reconnects after
    every pause (0.1 s), and none of those connects holds a step's hold back."""
    with RogueServer(close_at_once) as srv:
        user, meter = user_of(srv.host)
        samples = awaiting_while_it_runs(user, meter, 20, 0.03)
    assert meter.connect_attempts >= 4 and meter.connected == 0
    assert set(samples) == {0}, samples


def test_churn_users_are_never_awaited():
    """Connecting is churn's workload, in the hold: the settle never waits for it."""
    from loadgen.users import ChurnUser

    parsed = SimpleNamespace(message_size=64, pace=0.05, connect_timeout=0.4, io_timeout=5.0,
                             schedule="closed", reconnect="yes", source_ips="",
                             messages_per_connection=1, arrival_rate=0.0)
    env = Environment(events=Events(), host="tcp://127.0.0.1:9", parsed_options=parsed)
    user = ChurnUser(env)
    user.on_start()
    assert runtime(env).meter.awaiting == 0 and runtime(env).users == 1
    user.on_stop()
    assert runtime(env).meter.awaiting == 0


def test_the_hold_window_starts_once_the_loop_has_caught_up():
    """The ramp's tail leaves the loop behind: the sends due meanwhile go out
    together when it catches up. They are the ramp's, not the hold's."""
    collector, meter = standalone()
    rt = runtime(collector.environment)
    rt.lag_probe = LagProbe(meter)
    rt.lag_probe.start()
    try:
        gevent.sleep(0.03)
        collector.start_window(hold_s=10.0)  # the hold mark, handled here (standalone)
        _block(0.06)  # the loop behind: the last users' connects
        meter.echo_ok(0.005, perf_counter())  # a send that was due in the backlog
        waited = 0.0
        while not meter._window_start_pc and waited < 10.0:
            gevent.sleep(0.01)
            waited += 0.01
        meter.echo_ok(0.001, perf_counter())  # on time again: the hold's
        assert meter.histogram.get_total_count() == 1
    finally:
        rt.lag_probe.stop()


def test_a_collect_before_the_catch_up_starts_the_window_then():
    collector, meter = standalone()
    rt = runtime(collector.environment)
    rt.lag_probe = LagProbe(meter)  # not started: never on time
    collector.start_window(hold_s=10.0)
    meter.echo_ok(0.005, perf_counter())
    assert not meter._window_start_pc
    collect._on_collect(collector.environment, SimpleNamespace(data={"step": 0}))
    assert rt.lag_probe._waiting is None

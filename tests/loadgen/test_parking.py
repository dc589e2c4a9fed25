"""Parked users (loadgen/parking.py) under Locust's own runner, in this process:
held users have no greenlet, yet Locust counts them, every stop path closes
their sockets and runs on_stop once, and what the hub cannot finish (a reset)
still reaches a greenlet, is reported and reconnects."""

from __future__ import annotations

import gc
import itertools
import os
import socket
import struct
import time
from types import SimpleNamespace

import gevent
import greenlet
import pytest
from gevent.hub import get_hub
from locust.env import Environment
from locust.event import Events
from rogue_servers import RogueServer, stall

from loadgen.runtime import runtime
from loadgen.users import EchoUser, IdleUser

pytestmark = pytest.mark.locust  # Locust's runner in this process; a few hundred sockets

USERS = 200


class Echo(EchoUser):
    """EchoUser counting its on_stop calls."""

    def on_stop(self) -> None:
        self.stops = getattr(self, "stops", 0) + 1
        super().on_stop()


class Idle(IdleUser):
    def on_stop(self) -> None:
        self.stops = getattr(self, "stops", 0) + 1
        super().on_stop()


def running_greenlets() -> int:
    """Greenlets started and not finished (a never-started token is not one)."""
    return sum(1 for o in gc.get_objects() if isinstance(o, greenlet.greenlet) and o)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def hub_errors(monkeypatch):
    """What the hub would print: an exception escaping a callback or a link."""
    seen = []
    monkeypatch.setattr(get_hub(), "handle_error", lambda *args: seen.append(args))
    return seen


def lab_env(host: str, pace: float = 0.05, **options) -> Environment:
    parsed = SimpleNamespace(message_size=64, pace=pace, connect_timeout=5.0, io_timeout=5.0,
                             schedule="closed", reconnect="yes", source_ips="")
    vars(parsed).update(options)
    env = Environment(user_classes=[Echo, Idle], events=Events(), host=host,
                      parsed_options=parsed)
    env.create_local_runner()
    return env


def users_of(env: Environment) -> list:
    return [g.args[0] for g in env.runner.user_greenlets if g.args]


def wait_until(check, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "timed out waiting"
        gevent.sleep(0.02)


def held(env: Environment, n: int) -> None:
    """Until ``n`` users are connected and none has a greenlet running."""
    rt = runtime(env)
    wait_until(lambda: rt.meter.connected == n
               and all(getattr(u, "_live", None) is None for u in users_of(env)))


@pytest.fixture
def epoll_host(epoll_server) -> str:
    return f"tcp://{epoll_server.host}:{epoll_server.port}"


def test_held_users_are_counted_by_locust_but_have_no_greenlet(epoll_host, hub_errors):
    env = lab_env(epoll_host)
    runner, rt = env.runner, runtime(env)
    before = running_greenlets()
    runner.spawn_users({"Echo": USERS, "Idle": USERS // 2})
    held(env, USERS * 3 // 2)
    gevent.sleep(0.3)  # several paces: every echo user has echoed on the hub meanwhile
    assert runner.user_count == USERS * 3 // 2 == rt.users
    assert runner.user_classes_count == {"Echo": USERS, "Idle": USERS // 2}
    assert running_greenlets() - before < 10  # one greenlet per held user before parking
    assert rt.meter.histogram.get_total_count() >= USERS and not rt.meter.failures
    idle = next(u for u in users_of(env) if isinstance(u, Idle))
    # an idle user's hold: its readable watcher only, no timer that would wake anything
    assert idle.client._timer is None and idle.client._readable.active
    runner.quit()
    assert hub_errors == []


@pytest.mark.parametrize("stop_timeout", [0, 0.3])
def test_a_step_down_stops_parked_users_once_and_closes_their_sockets(
        epoll_host, hub_errors, stop_timeout):
    env = lab_env(epoll_host)
    env.stop_timeout = stop_timeout  # > 0: Locust's graceful stop, then the kill
    runner, rt = env.runner, runtime(env)
    fds = open_fds()
    runner.spawn_users({"Echo": USERS, "Idle": USERS})
    held(env, 2 * USERS)
    everyone = users_of(env)
    assert open_fds() == fds + 2 * USERS
    runner.stop_users({"Echo": USERS // 2, "Idle": USERS // 4})  # returns once they are stopped
    left = 2 * USERS - USERS // 2 - USERS // 4
    assert runner.user_count == left == rt.users == rt.meter.connected
    assert runner.user_classes_count == {"Echo": USERS // 2, "Idle": USERS * 3 // 4}
    stopped = [u for u in everyone if getattr(u, "stops", 0)]
    assert len(stopped) == USERS // 2 + USERS // 4
    assert all(u.stops == 1 and u.client.sock is None and u.client._timer is None
               for u in stopped)
    assert open_fds() == fds + left
    gevent.sleep(0.2)  # past a pace: nothing of a stopped user may fire
    runner.quit()
    assert runner.user_count == 0 == rt.users == rt.meter.connected == rt.meter.awaiting
    assert all(u.stops == 1 for u in everyone) and open_fds() == fds
    assert rt.meter.failures == {} and hub_errors == []


def test_stopping_a_user_that_has_a_greenlet_runs_on_stop_in_it_once(hub_errors):
    """With --reconnect no a user whose server closed waits for good in its
    greenlet: the stop reaches it there."""
    with RogueServer(lambda conn: conn.close()) as srv:
        env = lab_env(srv.host, reconnect="no")
        runner, rt = env.runner, runtime(env)
        runner.spawn_users({"Echo": 5, "Idle": 5})
        wait_until(lambda: rt.meter.connect_attempts == 10 and rt.meter.connected == 0
                   and all(u._live is not None for u in users_of(env)))
        everyone = users_of(env)
        lives = [u._live for u in everyone]
        runner.quit()
    assert runner.user_count == 0 == rt.users
    assert all(u.stops == 1 for u in everyone)
    assert all(g.dead for g in lives)  # their greenlets ended
    assert hub_errors == []


def reset_first_connections(n: int, after_s: float):
    """Echoes; each of the first ``n`` connections is reset (RST) ``after_s`` in."""
    seen = itertools.count()

    def behaviour(conn: socket.socket) -> None:
        reset = next(seen) < n
        end = time.monotonic() + after_s if reset else float("inf")
        try:
            while (left := end - time.monotonic()) > 0:
                conn.settimeout(min(left, 3600))
                if not (data := conn.recv(65536)):
                    return
                conn.sendall(data)
        except TimeoutError:
            pass
        # also when an echo came in just before the deadline and the loop ran
        # out without a timeout (seen on a busy machine: that connection was
        # never reset and its user never reconnected)
        if reset:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    return behaviour


@pytest.mark.parametrize("user", ["Echo", "Idle"])
def test_a_reset_while_parked_is_reported_and_the_user_reconnects(hub_errors, user):
    n = 20
    with RogueServer(reset_first_connections(n, 0.3)) as srv:
        env = lab_env(srv.host, pace=0.1)
        runner, rt = env.runner, runtime(env)
        failures = []
        env.events.request.add_listener(
            lambda name, exception, **_: exception and failures.append((name, exception.kind)))
        runner.spawn_users({user: n})
        held(env, n)
        wait_until(lambda: rt.meter.connect_attempts == 2 * n)  # each reconnected once
        held(env, n)  # and is parked again
        assert runner.user_count == n == rt.users
        if user == "Echo":
            gevent.sleep(0.3)  # the new connections echo
            assert rt.meter.serving == n
        runner.quit()
    name = "echo" if user == "Echo" else "hold"
    assert sorted(set(failures)) == [(name, "ECONNRESET")] and len(failures) == n
    assert rt.meter.failures == {"ECONNRESET": n} and hub_errors == []


def test_a_stopped_parked_user_leaves_no_timer_and_nothing_calls_back(hub_errors):
    """Stopped while its reply is due (the io timer armed): nothing of its
    wait may fire after on_stop closed it (as a killed greenlet's finally did)."""
    with RogueServer(stall) as srv:
        env = lab_env(srv.host, pace=0.05, io_timeout=0.3)
        runner, rt = env.runner, runtime(env)
        runner.spawn_users({"Echo": 5})
        wait_until(lambda: rt.meter.connected == 5 and all(
            u._live is None and u.client._sent_at for u in users_of(env)))
        everyone = users_of(env)
        timers = [u.client._timer for u in everyone]
        assert all(t.active for t in timers)
        runner.quit()
        assert not any(t.active for t in timers)
        gevent.sleep(0.5)  # past the io timeout
    assert rt.meter.failures == {} and hub_errors == []
    assert all(u.stops == 1 for u in everyone)

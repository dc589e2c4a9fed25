"""Paced echoes on the hub (loadgen/holding.py) against real sockets: the
successes that never wake the user's greenlet, and everything that must still
reach it (a close while it waits for its pace, a send or a reply in parts,
wrong bytes, the io timeout, Locust killing the user)."""

from __future__ import annotations

import socket
from time import perf_counter

import gevent
import pytest
from gevent.hub import get_hub
from rogue_servers import RogueServer, close_after, echo_in_two_parts, stall, wrong_bytes

from loadgen.client import TcpClient
from loadgen.meter import Meter
from loadgen.options import LoadOptions
from loadgen.schedule import Schedule
from loadgen.tally import Tally

pytestmark = pytest.mark.locust  # imports Locust (gevent patches the stdlib); loads nothing


@pytest.fixture
def hub_errors(monkeypatch):
    """What the hub would print: an exception escaping a libev callback."""
    seen = []
    monkeypatch.setattr(get_hub(), "handle_error", lambda *args: seen.append(args))
    return seen


def paced_client(env, address, *, tally: bool = True, **opts) -> TcpClient:
    """Connected; successes tallied (on the hub) unless ``tally`` is False."""
    opts.setdefault("connect_timeout_s", 5.0)
    opts.setdefault("io_timeout_s", 5.0)
    c = TcpClient(tuple(address), LoadOptions(**opts), Meter(), env.events.request.fire,
                  tally=Tally(env) if tally else None)
    assert c.connect()
    return c


def schedule_from_now(pace: float, first_in: float, fixed: bool = False) -> Schedule:
    schedule = Schedule(pace, fixed, perf_counter())
    schedule.due = perf_counter() + first_in
    return schedule


def echo_paced(c: TcpClient, schedule: Schedule, wakes: list[bool]) -> None:
    """EchoUser's loop, counting how often the greenlet got the connection back."""
    while True:
        ok = c.paced_echoes(schedule)
        wakes.append(ok)
        if not ok:
            return


def echoes_counted(env, c: TcpClient) -> int:
    """Successful echoes in Locust's statistics (the tally flushed into them)."""
    c._tally.flush()
    entry = env.stats.get("echo", "tcp")
    return entry.num_requests - entry.num_failures


def test_successes_stay_on_the_hub(env, epoll_server, hub_errors):
    c = paced_client(env, (epoll_server.host, epoll_server.port))
    wakes: list[bool] = []
    user = gevent.spawn(echo_paced, c, schedule_from_now(0.02, 0.02), wakes)
    gevent.sleep(0.5)
    user.kill()
    n = echoes_counted(env, c)
    assert n >= 3 and wakes == []  # every echo ran in the hub's callbacks
    assert c.meter.histogram.get_total_count() == n and c.meter.failures == {}
    assert env.stats.get("echo", "tcp").total_content_length == 64 * n
    c.close()
    assert hub_errors == []


def test_untallied_successes_wake_the_greenlet_once_each(env, epoll_server):
    """Without a tally each success fires Locust's event, from the greenlet."""
    c = paced_client(env, (epoll_server.host, epoll_server.port), tally=False)
    wakes: list[bool] = []
    user = gevent.spawn(echo_paced, c, schedule_from_now(0.02, 0.02), wakes)
    gevent.sleep(0.5)
    user.kill()
    c.close()
    n = env.stats.get("echo", "tcp").num_requests
    assert n >= 3 and len(wakes) in (n, n - 1) and all(wakes)  # the last may be in flight


@pytest.mark.parametrize("echoes_first", [False, True])
def test_a_close_while_waiting_for_the_pace_is_reported_at_once(env, echoes_first):
    """The server closes 0.3 s in, the next send is 5 s away: the failure
    comes with the close, not with the next pace."""

    def echo_then_close(conn: socket.socket) -> None:
        conn.settimeout(0.3)
        try:
            while data := conn.recv(65536):
                conn.sendall(data)
        except TimeoutError:
            conn.close()

    with RogueServer(echo_then_close if echoes_first else close_after(0.3)) as srv:
        c = paced_client(env, srv.address)
        schedule = schedule_from_now(5.0, 0.05 if echoes_first else 5.0)
        start = perf_counter()
        with gevent.Timeout(3):
            while c.paced_echoes(schedule):
                pass
        took = perf_counter() - start
    assert 0.25 <= took < 2.0
    assert c.meter.failures == {"ECONNRESET": 1} and not c.connected
    assert echoes_counted(env, c) == (1 if echoes_first else 0)
    assert env.stats.get("echo", "tcp").num_failures == 1


@pytest.mark.parametrize("fixed", [False, True])
def test_a_late_pace_timer_counts_on_the_fixed_schedule_only(env, epoll_server, fixed):
    """The hub busy for 0.3 s when the pace timer was due: on the fixed schedule
    the echo reports the wait (open loop), on the closed one it does not."""
    c = paced_client(env, (epoll_server.host, epoll_server.port))
    user = gevent.spawn(c.paced_echoes, schedule_from_now(10.0, 0.05, fixed))
    gevent.sleep(0.01)  # parked, its pace timer armed
    end = perf_counter() + 0.3
    while perf_counter() < end:  # no yield: the loop cannot run the timer
        pass
    gevent.sleep(0.2)
    user.kill()
    c.close()
    assert c.meter.histogram.get_total_count() == 1
    if fixed:
        assert c.meter.histogram.get_min_value() >= 240_000  # us: sent ~0.25 s after due
    else:
        assert c.meter.histogram.get_max_value() < 200_000


def test_a_reply_in_parts_is_finished_by_the_greenlet(env):
    with RogueServer(echo_in_two_parts) as srv:
        c = paced_client(env, srv.address, message_size=1000)
        wakes: list[bool] = []
        user = gevent.spawn(echo_paced, c, schedule_from_now(0.05, 0.01), wakes)
        gevent.sleep(0.5)
        user.kill()
        c.close()
    assert c.meter.failures == {} and echoes_counted(env, c) >= 2
    assert wakes and all(wakes)
    assert c.meter.histogram.get_min_value() >= 49_000  # waited for the second part


def test_a_slow_client_still_waits_for_its_pace(env, epoll_server):
    """A slow sender's echoes run in its greenlet, each a pace apart (not back
    to back, as they did when only the hub's path waited for the pace)."""
    c = paced_client(env, (epoll_server.host, epoll_server.port), send_chunk=8)
    user = gevent.spawn(echo_paced, c, schedule_from_now(0.1, 0.01), [])
    gevent.sleep(0.5)
    user.kill()
    c.close()
    assert 3 <= c.meter.histogram.get_total_count() <= 7 and c.meter.failures == {}


def test_wrong_bytes_are_a_mismatch_from_the_hub_too(env):
    with RogueServer(wrong_bytes) as srv:
        c = paced_client(env, srv.address)
        with gevent.Timeout(3):
            assert not c.paced_echoes(schedule_from_now(1.0, 0.05))
    assert c.meter.failures == {"mismatch": 1} and c.meter.mismatch["offset"] == 0


def test_no_reply_is_a_timeout_from_the_send(env):
    with RogueServer(stall) as srv:
        c = paced_client(env, srv.address, io_timeout_s=0.3)
        start = perf_counter()
        with gevent.Timeout(3):
            assert not c.paced_echoes(schedule_from_now(1.0, 0.1))
        assert 0.38 <= perf_counter() - start < 2.0  # the pace, then the io timeout
    assert c.meter.failures == {"timeout": 1}
    assert env.stats.get("echo", "tcp").max_response_time >= 290


class ShortSends:
    """The client's socket, but the first ``send()`` takes ``first`` bytes
    (None: fails with EAGAIN), as a kernel with a full send buffer does."""

    def __init__(self, sock, first: int | None) -> None:
        self._sock, self._first, self.calls = sock, first, 0

    def send(self, data) -> int:
        self.calls += 1
        if self.calls > 1:
            return self._sock.send(data)
        if self._first is None:
            raise BlockingIOError(11, "Resource temporarily unavailable")
        return self._sock.send(memoryview(data)[:self._first])

    def __getattr__(self, name):
        return getattr(self._sock, name)


@pytest.mark.parametrize("first", [None, 7])
def test_a_send_not_taken_whole_is_finished_by_the_greenlet(env, epoll_server, first):
    c = paced_client(env, (epoll_server.host, epoll_server.port))
    c.sock = short = ShortSends(c.sock, first)
    wakes: list[bool] = []
    user = gevent.spawn(echo_paced, c, schedule_from_now(0.05, 0.01), wakes)
    gevent.sleep(0.4)
    user.kill()
    c.close()
    n = echoes_counted(env, c)
    assert c.meter.failures == {} and n >= 2 and wakes[:1] == [True] and all(wakes)
    # the hub's send and the greenlet's rest for the first echo, then one each
    # (and one more for an echo in flight when the user was killed)
    assert short.calls in (n + 1, n + 2)


@pytest.mark.parametrize("phase", ["waiting for the pace", "waiting for the reply"])
def test_a_killed_user_leaves_no_watcher_and_no_callback(env, hub_errors, phase):
    """Locust stops a user by killing its greenlet (GreenletExit) wherever it
    is parked; nothing of its wait may stay armed, and nothing may call back
    into the client once on_stop has closed it."""
    with RogueServer(stall) as srv:
        c = paced_client(env, srv.address, io_timeout_s=0.3)
        first_in = 0.2 if phase == "waiting for the pace" else 0.01
        user = gevent.spawn(c.paced_echoes, schedule_from_now(1.0, first_in))
        gevent.sleep(0.1)
        timer, readable = c._timer, c._readable
        assert timer.active and readable.active
        assert (c._sent_at > 0) == (phase == "waiting for the reply")
        user.kill(block=True, timeout=2)
        assert not timer.active and not readable.active and c._timer is None
        c.close()
        gevent.sleep(0.5)  # past the pace and the io timeout
    assert hub_errors == [] and c.meter.failures == {}

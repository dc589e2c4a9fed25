"""The TCP client against real sockets: Locust's stats after real round trips,
and every failure kind produced for real (refused, closed, wrong bytes,
stalled, out of descriptors, address not available)."""

from __future__ import annotations

import os
import resource
import socket
from contextlib import contextmanager
from time import perf_counter

import gevent
import pytest
from rogue_servers import (
    RogueServer,
    close_after,
    close_at_once,
    echo_in_two_parts,
    stall,
    stall_once_then_echo,
    unused_port,
    wrong_bytes,
)

from loadgen.client import TcpClient
from loadgen.limits import SocketBudget
from loadgen.meter import Meter
from loadgen.options import LoadOptions

pytestmark = pytest.mark.locust  # imports Locust (gevent patches the stdlib); loads nothing


def client_for(env, address, *, source_ip=None, budget=None, **opts) -> TcpClient:
    opts.setdefault("connect_timeout_s", 5.0)
    opts.setdefault("io_timeout_s", 5.0)
    return TcpClient(tuple(address), LoadOptions(**opts), Meter(), env.events.request.fire,
                     source_ip=source_ip, budget=budget)


@contextmanager
def connected_to(env, behaviour, **opts):
    """A client connected to a :class:`RogueServer` running ``behaviour``."""
    with RogueServer(behaviour) as srv:
        c = client_for(env, srv.address, **opts)
        assert c.connect()  # with a listener, the kernel completes the handshake
        yield c


@contextmanager
def full_accept_queue():
    """A server that never accepts, its backlog already full: the kernel
    drops further SYNs, so a connect() waits until its timeout."""
    with RogueServer(stall, backlog=0, accept=False) as srv:
        fillers = []
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(srv.address)
            fillers.append(s)
        gevent.sleep(0.2)
        try:
            yield srv
        finally:
            for s in fillers:
                s.close()


def error_texts(env) -> list[str]:
    return [f"{e.name}: {e.error}" for e in env.stats.errors.values()]


def test_round_trips_are_locust_requests(env, epoll_server):
    c = client_for(env, (epoll_server.host, epoll_server.port), message_size=100)
    assert c.connect()
    assert all(c.echo() for _ in range(25))
    connect, echo = env.stats.get("connect", "tcp"), env.stats.get("echo", "tcp")
    assert (connect.num_requests, connect.num_failures) == (1, 0)
    assert (echo.num_requests, echo.num_failures) == (25, 0)
    assert echo.total_content_length == 25 * 100
    assert 0 < echo.max_response_time < 5000
    assert c.meter.histogram.get_total_count() == 25
    assert c.meter.connected == 1 and c.meter.connect_attempts == 1
    c.close()
    c.close()  # idempotent
    assert c.meter.connected == 0
    assert epoll_server.wait_stats(lambda s: s["accepted"] >= 1 and s["bytes_in"] >= 2500)


def test_a_reply_in_parts_is_reassembled(env):
    with connected_to(env, echo_in_two_parts, message_size=1000) as c:
        assert c.echo() and c.echo()
        c.close()
    assert c.meter.histogram.get_min_value() >= 49_000  # waited for the second part
    assert not c.meter.failures


def test_refused_port_is_ECONNREFUSED(env):
    c = client_for(env, ("127.0.0.1", unused_port()))
    assert not c.connect()
    assert env.stats.get("connect", "tcp").num_failures == 1
    assert c.meter.connect_failures == {"ECONNREFUSED": 1}
    assert c.meter.failures == {"ECONNREFUSED": 1} and c.meter.connected == 0
    assert error_texts(env) == ["connect: ECONNREFUSED: Connection refused"]


def test_server_that_closes_is_ECONNRESET(env):
    with connected_to(env, close_at_once) as c:
        assert not c.echo()
    assert c.meter.failures == {"ECONNRESET": 1}
    assert not c.connected and c.meter.connected == 0
    assert env.stats.get("echo", "tcp").num_failures == 1
    assert error_texts(env)[0].startswith("echo: ECONNRESET")


def test_wrong_bytes_are_a_mismatch(env):
    with connected_to(env, wrong_bytes) as c:
        assert not c.echo()
    assert c.meter.failures == {"mismatch": 1}
    assert error_texts(env)[0].startswith("echo: mismatch")


def test_stalled_echo_is_a_timeout(env):
    with connected_to(env, stall, io_timeout_s=0.3) as c:
        start = perf_counter()
        assert not c.echo()
        assert perf_counter() - start >= 0.29
    assert c.meter.failures == {"timeout": 1}
    assert env.stats.get("echo", "tcp").max_response_time >= 290


def test_full_accept_queue_is_a_connect_timeout(env):
    """A server that never accepts: once its backlog is full the kernel drops
    SYNs, and connect() waits until --connect-timeout."""
    with full_accept_queue() as srv:
        c = client_for(env, srv.address, connect_timeout_s=0.5)
        assert not c.connect()
    assert c.meter.connect_failures == {"timeout": 1}



def test_user_killed_while_connecting_gives_its_descriptor_back(env):
    """Locust stops a user by killing its greenlet (GreenletExit, not an
    Exception) — here while connect() waits on a full accept queue. The
    socket slot must come back, or every later run has fewer to use."""
    budget = SocketBudget(10)
    with full_accept_queue() as srv:
        c = client_for(env, srv.address, connect_timeout_s=30, budget=budget)
        user = gevent.spawn(c.connect)
        gevent.sleep(0.3)
        assert budget.held == 1  # the socket exists and connect() is waiting
        user.kill(block=True, timeout=5)
    assert budget.held == 0 and c.sock is None
    assert c.meter.connect_failures == {}  # being stopped is not a failure

def test_out_of_descriptors_is_EMFILE(env, epoll_server):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    highest = max(int(fd) for fd in os.listdir("/proc/self/fd"))
    fillers = []
    resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 1, hard))
    try:
        while True:  # take every free descriptor below the limit
            try:
                fillers.append(os.open(os.devnull, os.O_RDONLY))
            except OSError:
                break
        c = client_for(env, (epoll_server.host, epoll_server.port))
        assert not c.connect()
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert c.meter.connect_failures == {"EMFILE": 1}
    assert error_texts(env)[0].startswith("connect: EMFILE")


def test_socket_budget_keeps_descriptors_for_locust(env, epoll_server):
    budget = SocketBudget(1)
    first, second = (client_for(env, (epoll_server.host, epoll_server.port), budget=budget)
                     for _ in range(2))
    assert first.connect()
    assert not second.connect()
    assert second.meter.connect_failures == {"EMFILE": 1}
    assert "kept for Locust" in error_texts(env)[0]
    first.close()
    assert budget.held == 0 and second.connect()
    second.close()
    assert budget.held == 0


def test_source_address_not_on_this_host_is_EADDRNOTAVAIL(env, epoll_server):
    # 192.0.2.1 (TEST-NET-1) is no local address: bind() fails, nothing is sent.
    c = client_for(env, (epoll_server.host, epoll_server.port), source_ip="192.0.2.1")
    assert not c.connect()
    assert c.meter.connect_failures == {"EADDRNOTAVAIL": 1}


def test_source_ip_is_the_connections_local_address(env, epoll_server):
    c = client_for(env, (epoll_server.host, epoll_server.port), source_ip="127.0.0.7")
    assert c.connect()
    assert c.sock.getsockname()[0] == "127.0.0.7"
    assert c.echo()
    c.close()


def test_idle_hold_ends_when_the_server_closes(env):
    with connected_to(env, close_after(0.3)) as c:
        start = perf_counter()
        with gevent.Timeout(5):
            c.hold()
        assert 0.25 <= perf_counter() - start < 5
    assert c.meter.failures == {"ECONNRESET": 1} and not c.connected
    assert env.stats.get("hold", "tcp").num_failures == 1


def test_wait_quiet_wakes_up_when_the_server_closes(env):
    with connected_to(env, close_at_once) as c:
        start = perf_counter()
        assert c.wait_quiet(start + 5.0) is False
        assert perf_counter() - start < 2.0
        assert not c.echo()  # and the echo names it
    assert c.meter.failures == {"ECONNRESET": 1}


def test_wait_quiet_holds_a_silent_connection(env, epoll_server):
    c = client_for(env, (epoll_server.host, epoll_server.port))
    assert c.connect()
    start = perf_counter()
    assert c.wait_quiet(start + 0.2) is True
    assert perf_counter() - start >= 0.19
    assert c.echo()
    c.close()


def test_late_echo_latency_counts_from_the_intended_time(env):
    with connected_to(env, stall_once_then_echo(0.0)) as c:
        intended = perf_counter() - 0.5  # we are half a second late
        assert c.echo(origin=intended)
        c.close()
    assert c.meter.histogram.get_min_value() >= 499_000  # us, to 3 significant digits

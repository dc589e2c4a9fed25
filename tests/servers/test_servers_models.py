"""What is particular to one model: the blocking queue, the pool size,
reaped children, the busy-poll's loop rate."""

from __future__ import annotations

import socket
import time

import pytest
from serverproc import children_of
from srvclients import AVAILABLE, connect, recv_exactly, roundtrip

pytestmark = pytest.mark.timeout(60)


def no_echo_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        return sock.recv(100) == b"" and False
    except TimeoutError:
        return True
    finally:
        sock.settimeout(10)


def test_blocking_second_client_waits_for_the_first(start):
    srv = start("blocking")
    first, second = connect(srv), connect(srv)  # both handshakes complete (backlog)
    assert roundtrip(first, b"one") == b"one"
    second.sendall(b"two")
    assert no_echo_within(second, 0.5), "the second client was served while the first held on"
    first.close()
    assert recv_exactly(second, 3) == b"two"
    second.close()
    stats = srv.wait_stats(lambda e: e["closed"] == 2)
    assert stats["peak_connections"] == 1


def test_threadpool_connection_beyond_the_pool_waits(start):
    srv = start("threadpool", "--workers", "2")
    a, b, c = connect(srv), connect(srv), connect(srv)
    assert roundtrip(a, b"a") == b"a" and roundtrip(b, b"b") == b"b"
    c.sendall(b"c")
    assert no_echo_within(c, 0.5), "a third connection was served by a pool of two"
    stats = srv.wait_stats(lambda e: e["connections"] == 3)  # accepted, queued
    assert stats["accepted"] == 3
    a.close()
    assert recv_exactly(c, 1) == b"c"
    b.close()
    c.close()


def test_forking_reaps_its_children(start):
    srv = start("forking")
    socks = [connect(srv) for _ in range(10)]
    for i, sock in enumerate(socks):
        assert roundtrip(sock, bytes([i]) * 100) == bytes([i]) * 100
    stats = srv.wait_stats(lambda e: e["connections"] == 10)
    assert stats["bytes_in"] == 1000 and stats["bytes_out"] == 1000
    for sock in socks:
        sock.close()
    srv.wait_stats(lambda e: e["closed"] == 10 and e["connections"] == 0)
    assert children_of(srv.pid, zombies=True) == []


def test_nonblocking_burns_a_core_even_when_idle(start):
    srv = start("nonblocking", stats_interval=0.5)
    first = srv.latest_stats()
    time.sleep(1.0)
    later = srv.latest_stats()
    assert later["loop_passes_per_s"] > 1000
    cpu = lambda e: e["cpu_user_s"] + e["cpu_sys_s"]  # noqa: E731
    # No client at all, and still CPU time by the second (an idle epoll server
    # uses ~0.001 s/s). Loose: on a shared, loaded machine it gets a share of a core.
    assert cpu(later) - cpu(first) > 0.1 * (later["time"] - first["time"])


@pytest.mark.skipif("io_uring" not in AVAILABLE, reason="io_uring unavailable here")
def test_io_uring_serves_many_connections_with_requests_in_flight(start):
    srv = start("io_uring", "--nofile", "max")
    socks = [connect(srv) for _ in range(300)]
    for i, sock in enumerate(socks):
        sock.sendall(b"%05d" % i)
    for i, sock in enumerate(socks):
        assert recv_exactly(sock, 5) == b"%05d" % i
    # More completions than the completion ring holds (2 x 4096): it wraps.
    for i in range(5000):
        assert roundtrip(socks[i % 7], b"%05d" % i) == b"%05d" % i
    for sock in socks:
        sock.close()
    srv.wait_stats(lambda e: e["closed"] == 300)

"""The servers' own evidence about slow clients, in their stats events.

A slow reader's closed TCP window makes an event loop keep the echo in user
space (``buffered_bytes``, ``buffered_conns``); a thread pool whose workers
are all held shows every worker ``busy`` and connections ``waiting``; the
blocking server shows how long its one session has held it
(``session_oldest_s``); a loop stopped by ``--block-us`` reports the share
of each interval it slept (``blocked_per_s``).
"""

from __future__ import annotations

import os
import socket
import threading

import pytest
from srvclients import AVAILABLE, connect, recv_exactly

pytestmark = pytest.mark.timeout(60)

LOOPS = [m for m in ("select", "epoll", "selectors", "asyncio") if m in AVAILABLE]
# More than the kernel takes on loopback (the server's send buffer autotunes
# up to tcp_wmem's 4 MiB): the rest must wait in the server's own buffer.
SENT = 8 << 20
HELD = 48 << 10  # at least asyncio's transport high-water mark (64 KiB) less a margin


def _slow_reader(srv, payload: bytes) -> tuple[socket.socket, threading.Thread]:
    """A client with a 4 KiB receive buffer (set before connect: the window
    is small from the handshake on) that sends ``payload`` and reads nothing yet."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(20)
    sock.connect((srv.host, srv.port))
    sender = threading.Thread(target=sock.sendall, args=(payload,), daemon=True)
    sender.start()
    return sock, sender


@pytest.mark.parametrize("loop", LOOPS)
def test_an_event_loop_buffers_for_slow_readers_and_says_so(start, loop):
    srv = start(loop, stats_interval=0.1)
    before = srv.latest_stats()
    assert before["buffered_bytes"] == 0 and before["buffered_conns"] == 0
    payload = os.urandom(SENT)
    readers = []
    try:
        readers.append(_slow_reader(srv, payload))
        one = srv.wait_stats(lambda e: e.get("buffered_conns") == 1
                             and e.get("buffered_bytes", 0) >= HELD, timeout=20)
        readers.append(_slow_reader(srv, payload))
        two = srv.wait_stats(lambda e: e.get("buffered_conns") == 2
                             and e.get("buffered_bytes", 0) >= one["buffered_bytes"] + HELD,
                             timeout=20)
        # Bounded: above the high-water mark the loop stops reading them.
        assert two["buffered_bytes"] <= 2 * ((1 << 20) + (256 << 10)), two
        for sock, _ in readers:  # now they read: the buffers drain
            assert recv_exactly(sock, SENT) == payload
        srv.wait_stats(lambda e: e.get("buffered_bytes") == 0 and e.get("buffered_conns") == 0)
    finally:
        for sock, _ in readers:
            sock.close()


def test_a_blocking_family_model_reports_no_buffer(start):
    """A thread per client waits inside ``sendall`` instead: nothing to report."""
    srv = start("threads")
    assert "buffered_bytes" not in srv.latest_stats()


def test_a_pool_held_by_idle_clients_shows_busy_workers_and_a_waiting_queue(start):
    srv = start("threadpool", "--workers", "2", stats_interval=0.1)
    held = [connect(srv) for _ in range(2)]
    try:
        for s in held:  # each one has its worker
            s.sendall(b"x")
            assert recv_exactly(s, 1) == b"x"
        late = connect(srv)
        late.sendall(b"y")  # accepted by the kernel and the pool's queue, no worker
        starved = srv.wait_stats(lambda e: e.get("waiting") == 1
                                 and e.get("wait_oldest_s", 0) >= 0.5)
        assert starved["workers"] == 2 and starved["busy"] == 2
        assert starved["session_oldest_s"] >= starved["wait_oldest_s"]
        held[0].close()  # a worker frees up: the late client is served
        assert recv_exactly(late, 1) == b"y"
        served = srv.wait_stats(lambda e: e.get("waiting") == 0)
        assert served["wait_oldest_s"] == 0.0 and served["busy"] == 2
        late.close()
    finally:
        for s in held:
            s.close()


def test_the_blocking_server_says_how_long_its_one_session_has_held_it(start):
    srv = start("blocking", stats_interval=0.1)
    with connect(srv) as sock:
        sock.sendall(b"x")
        assert recv_exactly(sock, 1) == b"x"
        stats = srv.wait_stats(lambda e: e.get("session_oldest_s", 0) >= 0.5)
        assert stats["workers"] == 1 and stats["busy"] == 1
        assert "waiting" not in stats  # those wait in the kernel's accept queue
    idle = srv.wait_stats(lambda e: e.get("busy") == 0)
    assert idle["session_oldest_s"] == 0.0


@pytest.mark.parametrize("loop", [m for m in ("epoll", "asyncio") if m in AVAILABLE])
def test_a_loop_stopped_by_waiting_handlers_reports_its_blocked_share(start, loop):
    """Back-to-back echoes, each with a 20 ms wait in the handler: the one
    thread sleeps most of every interval."""
    srv = start(loop, "--block-us", "20000", stats_interval=0.2)
    assert srv.latest_stats()["blocked_per_s"] == 0
    done = threading.Event()

    def client() -> None:
        with connect(srv) as sock:
            while not done.is_set():
                sock.sendall(b"m")
                assert recv_exactly(sock, 1) == b"m"

    echoing = threading.Thread(target=client, daemon=True)
    echoing.start()
    try:
        stats = srv.wait_stats(lambda e: e.get("blocked_per_s", 0) >= 0.6)
    finally:
        done.set()
        echoing.join(5)
    assert stats["blocked_per_s"] <= 1.05
    assert srv.wait_stats(lambda e: e.get("blocked_per_s") == 0)  # idle again


def _stats_cpu(srv, events: int = 8) -> tuple[float, float]:
    """(stats_cpu_s, cpu_user_s + cpu_sys_s) of the ``events``-th stats event from now."""
    seen: set[int] = set()  # wait_stats looks at the same events again as new ones come
    last = srv.wait_stats(lambda e: seen.add(id(e)) or len(seen) >= events, timeout=30)
    return last["stats_cpu_s"], last["cpu_user_s"] + last["cpu_sys_s"]


def test_the_stats_reporting_says_what_it_cost_and_forking_pays_per_child(start, nofile_hard):
    """``stats_cpu_s`` (servers/core.py ``Ticker``): the CPU the server spent
    building and printing its stats, which the lab leaves out of the model's
    CPU. It is part of the process's CPU, and the forking model's grows with
    its children, each of whose PSS a tick reads."""
    idle = start("epoll", "--stats-interval", "0.05")
    spent, total = _stats_cpu(idle)
    assert 0 < spent <= total, (spent, total)
    forking = start("forking", "--stats-interval", "0.05")
    socks = [connect(forking) for _ in range(60)]
    try:
        forking.wait_stats(lambda e: e["connections"] == 60, timeout=30)
        before, _ = _stats_cpu(forking, 1)
        after, total = _stats_cpu(forking, 10)
    finally:
        for sock in socks:
            sock.close()
    # ten ticks each reading 60 children's smaps_rollup: far more than epoll's
    # whole reporting so far (a tick that reads no child costs ~0.1-1 ms)
    assert after - before > 3 * spent and after <= total, (before, after, spent, total)


def test_a_prefork_server_sums_its_childrens_stats_reporting_and_its_own(start):
    srv = start("epoll", "--processes", "2", "--stats-interval", "0.05")
    spent, total = _stats_cpu(srv)
    assert 0 < spent <= total, (spent, total)

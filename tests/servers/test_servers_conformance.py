"""The servers contract, for every model that is available here.

Each test starts the model on port 0 (``start`` fixture), waits for READY and
talks the echo protocol to it. The blocking model serves one client at a time,
so instead of "100 concurrent clients" it gets the "second client waits for
the first" test (test_models.py); the thread pool is started with enough
workers for 100 concurrent clients (its queueing is tested on its own).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
import time

import pytest
from srvclients import (
    EVENT_DRIVEN,
    connect,
    echo_stream,
    recv_exactly,
    recv_until_eof,
    reset,
    roundtrip,
)

pytestmark = pytest.mark.timeout(60)

STATS_FIELDS = {
    "event", "time", "model", "pid", "connections", "peak_connections", "accepted", "closed",
    "refused", "bytes_in", "bytes_out", "cpu_user_s", "cpu_sys_s", "rss_bytes", "max_fd",
}  # fmt: skip


def test_ready_line_and_stats_events(start, model):
    srv = start(model)
    assert re.fullmatch(
        rf"READY 127\.0\.0\.1:{srv.port} model={re.escape(model)} pid={srv.pid} nofile=\d+",
        srv.ready_line,
    )
    assert srv.port > 0 and srv.pid == srv.proc.pid
    stats = srv.latest_stats()
    assert STATS_FIELDS <= stats.keys()
    assert stats["model"] == model and stats["pid"] == srv.pid
    assert abs(stats["time"] - time.time()) < 30
    assert stats["rss_bytes"] > 0 and stats["cpu_user_s"] >= 0
    if model == "nonblocking":
        assert stats["loop_passes_per_s"] > 0
    # One thread for every connection: the seconds it slept in --block-us (none here).
    assert stats.get("blocked_s") == (0.0 if model in (*EVENT_DRIVEN, "nonblocking") else None)


def test_small_messages(start, model):
    srv = start(model)
    with connect(srv) as sock:
        for i in range(50):
            msg = f"message {i}\n".encode()
            assert roundtrip(sock, msg) == msg
        assert roundtrip(sock, b"x") == b"x"


def test_one_mebibyte_in_pieces(start, model):
    srv = start(model)
    data = os.urandom(1 << 20)
    with connect(srv) as sock:
        assert echo_stream(sock, data, piece=7919) == data


def test_slow_reader_gets_everything_back(start, model):
    """The client sends 4 MiB before it reads anything: the server's writes
    become partial, it must buffer, wait for writable (and stop reading while
    its buffer is full) and deliver every byte, in order."""
    srv = start(model)
    data = os.urandom(4 << 20)
    with connect(srv) as sock:
        sender = threading.Thread(target=sock.sendall, args=(data,), daemon=True)
        sender.start()
        time.sleep(0.5)
        assert recv_exactly(sock, len(data)) == data
        sender.join(10)
    stats = srv.wait_stats(lambda e: e["closed"] == 1)
    assert stats["bytes_in"] == stats["bytes_out"] == len(data)


def test_half_close_echoes_the_rest_then_eof(start, model):
    srv = start(model)
    with connect(srv) as sock:
        sock.sendall(b"last words")
        sock.shutdown(socket.SHUT_WR)
        assert recv_until_eof(sock) == b"last words"
    srv.wait_stats(lambda e: e["closed"] == 1)


def test_100_concurrent_clients(start, model):
    if model == "blocking":
        pytest.skip("one client at a time: see test_blocking_second_client_waits_for_the_first")
    srv = start(model, "--workers", "100", "--nofile", "max")
    socks = [connect(srv) for _ in range(100)]
    try:
        for i, sock in enumerate(socks):  # all 100 open; each sends before any reads
            sock.sendall(f"client {i:03d}".encode())
        for i, sock in enumerate(socks):
            assert recv_exactly(sock, 10) == f"client {i:03d}".encode()
        stats = srv.wait_stats(lambda e: e["connections"] == 100)
        assert stats["peak_connections"] == 100
    finally:
        for sock in socks:
            sock.close()
    srv.wait_stats(lambda e: e["connections"] == 0 and e["closed"] == 100)


def test_client_reset_does_not_hurt_others(start, model):
    srv = start(model)
    with connect(srv) as survivor:
        assert roundtrip(survivor, b"before") == b"before"
        if model == "blocking":  # the victim would wait behind the survivor: reset it alone
            victim = None
        else:
            victim = connect(srv)
            assert roundtrip(victim, b"hello") == b"hello"
            victim.sendall(os.urandom(256 * 1024))  # the echo is in flight: RST hits it
            reset(victim)
        assert roundtrip(survivor, b"after") == b"after"
    if victim is None:
        victim = connect(srv)
        victim.sendall(os.urandom(256 * 1024))
        reset(victim)
    with connect(srv) as newcomer:
        assert roundtrip(newcomer, b"new") == b"new"
    stats = srv.wait_stats(lambda e: e["closed"] == 3 and e["connections"] == 0)
    assert stats["accepted"] == 3
    assert srv.returncode is None


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_gives_final_event_matching_the_traffic(start, model, sig):
    srv = start(model)
    sent = 0
    for i in range(5):
        with connect(srv) as sock:
            msg = os.urandom(1000 * (i + 1))
            assert roundtrip(sock, msg) == msg
            sent += len(msg)
    held = connect(srv)  # still open at the signal
    assert roundtrip(held, b"held") == b"held"
    sent += 4
    srv.wait_stats(lambda e: e["closed"] == 5)
    final = srv.terminate(sig)
    held.close()
    assert srv.returncode == 0, srv.stderr
    assert final["event"] == "final" and STATS_FIELDS <= final.keys()
    assert final["accepted"] == 6
    assert final["closed"] == 5 and final["connections"] == 1
    assert final["bytes_in"] == sent and final["bytes_out"] == sent
    assert final["refused"] == {}
    assert srv.events()[-1] is not None and srv.events()[-1]["event"] == "final"

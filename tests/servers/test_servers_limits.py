"""Limits as data: select's 1024 wall, epoll's thousands of idle connections,
running out of descriptors (EMFILE) without dying or spinning."""

from __future__ import annotations

import socket
import time

import pytest
from srvclients import EVENT_DRIVEN, connect, roundtrip

pytestmark = pytest.mark.timeout(120)


def open_many(srv, n: int, *, until_refused: bool = False) -> list[socket.socket]:
    """``n`` connections; with ``until_refused``, fewer when the server is gone
    first (a server that crashes at its wall closes its listener: the rest of
    the connects are refused)."""
    socks = []
    for _ in range(n):
        try:
            socks.append(socket.create_connection((srv.host, srv.port), timeout=10))
        except ConnectionRefusedError:
            if not until_refused:
                raise
            break
    return socks


def close_all(socks) -> None:
    for sock in socks:
        sock.close()


def test_select_refuses_at_descriptor_1024_and_serves_the_rest(start, nofile_hard):
    srv = start("select", "--nofile", "max")
    socks = open_many(srv, 1100)
    try:
        limit = srv.wait_event(lambda e: e["event"] == "limit")
        assert limit["kind"] == "FD_SETSIZE" and limit["fd"] >= 1024
        assert 1000 <= limit["connections"] <= 1024
        stats = srv.wait_stats(lambda e: e["accepted"] + e["refused"].get("FD_SETSIZE", 0) == 1100)
        assert stats["connections"] == stats["accepted"] >= 1000
        served = stats["accepted"]
        # The first ~1020 are served, first and last of them alike...
        for sock in (socks[0], socks[served // 2], socks[served - 1]):
            assert roundtrip(sock, b"still here") == b"still here"
        # ...the ones beyond the wall were closed by the server.
        socks[-1].settimeout(5)
        try:
            assert socks[-1].recv(10) == b""
        except ConnectionResetError:
            pass
        assert len(srv.events("limit")) == 1  # once per kind
    finally:
        close_all(socks)
    final = srv.terminate()
    assert srv.returncode == 0 and final["refused"]["FD_SETSIZE"] == 1100 - served


def test_select_crash_mode_ends_the_process(start, nofile_hard):
    srv = start("select", "--nofile", "max", "--on-fd-limit", "crash")
    socks = open_many(srv, 1100, until_refused=True)
    assert len(socks) > 1024 - 5  # it crashed at its wall, not before
    try:
        srv.proc.wait(15)
        assert srv.returncode == 1
        limit = srv.wait_event(lambda e: e["event"] == "limit")
        assert limit["kind"] == "FD_SETSIZE" and limit["fd"] >= 1024
        final = srv.final()
        assert final["refused"] == {"FD_SETSIZE": 1}
        assert srv.events()[-1]["event"] == "final"
        assert "filedescriptor out of range" in srv.stderr
    finally:
        close_all(socks)


def test_epoll_holds_5000_idle_connections_and_answers_a_new_client(start, nofile_hard):
    srv = start("epoll", "--nofile", "max")
    before = srv.latest_stats()
    socks = open_many(srv, 5000)
    try:
        stats = srv.wait_stats(lambda e: e["connections"] == 5000, timeout=30)
        with connect(srv) as newcomer:
            assert roundtrip(newcomer, b"hello?") == b"hello?"
        assert roundtrip(socks[0], b"first") == b"first"
        assert roundtrip(socks[-1], b"last") == b"last"
        assert stats["refused"] == {}
        # Loose (the bound in benchmarks/README.md is 1 KB): epoll keeps idle
        # connections cheap.
        assert (stats["rss_bytes"] - before["rss_bytes"]) / 5000 < 4096
    finally:
        close_all(socks)
    srv.wait_stats(lambda e: e["closed"] == 5001, timeout=30)


def cpu(event) -> float:
    return event["cpu_user_s"] + event["cpu_sys_s"]


@pytest.mark.parametrize("model", EVENT_DRIVEN)
def test_out_of_descriptors_keeps_serving_counts_emfile_and_does_not_spin(start, model):
    srv = start(model, "--nofile", "64", stats_interval=0.25)
    keeper = connect(srv)
    assert roundtrip(keeper, b"before") == b"before"
    attempts = []
    for _ in range(100):
        try:
            attempts.append(socket.create_connection((srv.host, srv.port), timeout=5))
        except OSError:
            pass  # refused or reset: also an answer
    try:
        if model != "uvloop":  # libuv refuses silently with its own reserved descriptor
            srv.wait_stats(lambda e: e["refused"].get("EMFILE", 0) >= 1, timeout=10)
            limit = srv.wait_event(lambda e: e["event"] == "limit" and e["kind"] == "EMFILE")
            assert limit["connections"] < 64
        time.sleep(0.3)  # let the refusals settle, then measure a quiet second
        start_stats = srv.latest_stats()
        time.sleep(1.0)
        end_stats = srv.latest_stats()
        elapsed = end_stats["time"] - start_stats["time"]
        assert elapsed >= 0.9
        # A server spinning on accept errors burns a whole core: ~1 s here.
        assert cpu(end_stats) - cpu(start_stats) < 0.25 * elapsed, \
            "the server spins on accept errors"
        assert roundtrip(keeper, b"after") == b"after"
        assert srv.returncode is None
    finally:
        close_all(attempts)
        keeper.close()
    final = srv.terminate()
    assert srv.returncode == 0
    assert final["accepted"] <= 64


@pytest.mark.parametrize("model", ["nonblocking", *EVENT_DRIVEN])
def test_a_client_that_never_reads_is_not_buffered_without_bound(start, model):
    """Back-pressure: once HIGH_WATER (1 MiB) of echo waits for a client that
    does not read, the server stops reading that connection, so the client's
    sends fill the kernel buffers and then block. A server that kept reading
    (as the busy-poll model once did) would swallow everything we send."""
    srv = start(model)
    sock = socket.create_connection((srv.host, srv.port), timeout=10)
    sock.setblocking(False)
    chunk, sent = b"x" * 65536, 0
    deadline = time.monotonic() + 3.0
    progress = time.monotonic()  # the last send that moved bytes
    try:
        # Until the sends have been blocked for half a second (the server stopped
        # reading and both kernel buffers are full), or 3 s, or 64 MiB.
        while time.monotonic() < deadline and sent < (64 << 20) \
                and time.monotonic() - progress < 0.5:
            try:
                sent += sock.send(chunk)
                progress = time.monotonic()
            except BlockingIOError:
                time.sleep(0.01)
        stats = srv.wait_stats(lambda e: e["connections"] == 1)
        # Kernel buffers on both sides (a few MiB each way) + the 1 MiB mark.
        assert sent < (32 << 20), f"{model} kept reading: {sent >> 20} MiB accepted"
        assert stats["bytes_in"] < (32 << 20)
    finally:
        sock.close()

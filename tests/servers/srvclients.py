"""Small blocking test clients for the echo protocol, and the model lists.

(The module name is unique across test directories: pytest imports test
helpers by basename.)
"""

from __future__ import annotations

import selectors
import socket
import threading
import time

from serverproc import ServerFailed

import servers

AVAILABLE = servers.available_models()
# The single-threaded models that wait for readiness or completion.
EVENT_DRIVEN = [
    m
    for m in ("select", "poll", "epoll", "epoll-et", "selectors", "asyncio", "uvloop", "sigio")
    + ("io_uring",)
    if m in AVAILABLE
]

TIMEOUT = 10.0


def connect(srv, timeout: float = TIMEOUT) -> socket.socket:
    sock = socket.create_connection((srv.host, srv.port), timeout=timeout)
    return sock


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    got = bytearray()
    while len(got) < n:
        chunk = sock.recv(min(65536, n - len(got)))
        if not chunk:
            raise AssertionError(f"EOF after {len(got)} of {n} bytes")
        got += chunk
    return bytes(got)


def recv_until_eof(sock: socket.socket) -> bytes:
    got = bytearray()
    while chunk := sock.recv(65536):
        got += chunk
    return bytes(got)


def roundtrip(sock: socket.socket, data: bytes) -> bytes:
    sock.sendall(data)
    return recv_exactly(sock, len(data))


def echo_stream(sock: socket.socket, data: bytes, piece: int) -> bytes:
    """Write ``data`` in pieces while a thread reads the echo (no deadlock on
    full buffers), half-close, and return everything read until EOF."""
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(recv_until_eof(sock)), daemon=True)
    reader.start()
    for i in range(0, len(data), piece):
        sock.sendall(data[i : i + piece])
    sock.shutdown(socket.SHUT_WR)
    reader.join(TIMEOUT * 3)
    assert not reader.is_alive(), "echo did not end with EOF"
    return got[0]


def reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0: the peer gets a RST instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


def _dealt_with(stats: dict) -> int:
    """Connections the server has accepted or refused so far."""
    return stats["accepted"] + sum(stats.get("refused", {}).values())


def held_connections(srv, offered: int, answer_s: float = 3.0) -> int:
    """Offer ``offered`` connections at once; how many the server holds (they echo)."""
    socks = []
    before = _dealt_with(srv.latest_stats())
    try:
        for _ in range(offered):
            socks.append(socket.create_connection((srv.host, srv.port), timeout=5))
        # Give the server time to accept (or refuse) every pending connection:
        # a refused one is closed at once, a held one answers the echo below,
        # one left in the accept queue (asyncio pauses accepting) never does.
        # Its stats say when it has dealt with all of them; a server that
        # refuses unseen (libuv) or stops accepting (asyncio) gets the full second.
        try:
            srv.wait_stats(lambda e: _dealt_with(e) - before >= offered, timeout=1.0)
        except ServerFailed:
            pass
        with selectors.DefaultSelector() as sel:
            for s in socks:
                try:
                    s.sendall(b"x")
                    sel.register(s, selectors.EVENT_READ)
                except OSError:
                    pass
            held, deadline = 0, time.monotonic() + answer_s  # slack for a loaded machine
            while sel.get_map() and (left := deadline - time.monotonic()) > 0:
                for key, _ in sel.select(left):
                    sel.unregister(key.fileobj)
                    try:
                        held += key.fileobj.recv(1) == b"x"
                    except OSError:
                        pass
        return held
    finally:
        for s in socks:
            s.close()

"""Small purpose-built servers that misbehave, to produce each failure kind for real.

Each is a listener on 127.0.0.1 (port 0) with one thread per connection
running a *behaviour*: close at once, answer other bytes, stall, or stall
once and then echo. They are not echo servers for the happy path: those are
the project's own (``tests/serverproc.py``).
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Callable


class RogueServer:
    def __init__(self, behaviour: Callable[[socket.socket], None], backlog: int = 128,
                 accept: bool = True, accept_late_s: float = 0.0) -> None:
        """``accept_late_s``: start accepting only that long after the first
        connection reached the accept queue (a server busy at a burst: the
        queue, ``backlog`` + 1 deep, fills and the kernel drops further SYNs)."""
        self.behaviour = behaviour
        self.accept_late_s = accept_late_s
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(backlog)
        self.address = self.listener.getsockname()
        self.host = f"tcp://127.0.0.1:{self.address[1]}"
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()  # an accept racing close() must not leak its socket
        if accept:
            threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self) -> None:
        if self.accept_late_s:
            try:
                select.select([self.listener], [], [])
            except (OSError, ValueError):  # closed before anyone came
                return
            time.sleep(self.accept_late_s)
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                if self._stop.is_set():
                    conn.close()
                    return
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self.behaviour(conn)
        except OSError:
            pass

    def close(self) -> None:
        with self._lock:
            self._stop.set()
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        for c in self._conns:
            c.close()

    def __enter__(self) -> RogueServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def close_at_once(conn: socket.socket) -> None:
    """Like the select server past FD_SETSIZE: accept, then close."""
    conn.close()


def close_after(seconds: float) -> Callable[[socket.socket], None]:
    """Accepts, holds ``seconds`` without a word, then closes."""

    def behaviour(conn: socket.socket) -> None:
        time.sleep(seconds)
        conn.close()

    return behaviour


def wrong_bytes(conn: socket.socket) -> None:
    """Answers every message with the same number of other bytes."""
    while data := conn.recv(65536):
        conn.sendall(bytes(b ^ 0xFF for b in data))


def stall(conn: socket.socket) -> None:
    """Reads and never answers (until the test ends)."""
    while conn.recv(65536):
        pass


def stall_once_then_echo(seconds: float) -> Callable[[socket.socket], None]:
    """Holds the first message ``seconds`` before echoing it (and everything
    that queued up behind it), then echoes normally."""

    def behaviour(conn: socket.socket) -> None:
        first = True
        while data := conn.recv(65536):
            if first:
                time.sleep(seconds)
                first = False
            conn.sendall(data)

    return behaviour


def echo_in_two_parts(conn: socket.socket) -> None:
    """A correct echo that arrives in two segments, 50 ms apart."""
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while data := conn.recv(65536):
        half = len(data) // 2
        conn.sendall(data[:half])
        time.sleep(0.05)
        conn.sendall(data[half:])


def unused_port() -> int:
    """A loopback port with nobody listening (connect gets RST: ECONNREFUSED)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

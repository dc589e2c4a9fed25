"""The blocking family's echo loop (blocking, threads, threadpool, forking):
one connection, ``recv`` then ``sendall`` until the peer closes. The
readiness family's loop is ``servers/eventloop.py``.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from servers.core import CLOSE_ERRNOS, Server, log
from servers.gate import Shutdown, blocking

THREAD_RECV_SIZE = 16384  # one per connection in the thread/process models


def serve_blocking(
    conn: socket.socket,
    server: Server,
    on_close: Callable[[], None] | None = None,
    main_thread: bool = False,
    account: Callable[[int, int], None] | None = None,
):
    """Echo on a blocking socket until the peer closes (threads, pool, blocking).

    Half-close: ``recv`` returning b"" means the peer will send nothing more;
    everything already received has been echoed by ``sendall``, so closing now
    lets the client read the rest and then EOF. Resets are ordinary closes.
    Counters are updated under ``stats.lock`` (several threads share them).
    ``main_thread``: the calls block through ``blocking()`` (SIGTERM ends them).
    ``account(bytes_in, bytes_out)`` replaces the shared counters (forking).
    """
    stats, busy = server.stats, server.busy
    lock = stats.lock
    if account is None:

        def account(n_in, n_out):
            with lock:
                stats.bytes_in += n_in
                stats.bytes_out += n_out

    buf = bytearray(THREAD_RECV_SIZE)
    view = memoryview(buf)
    try:
        while True:
            n = blocking(conn.recv_into, buf) if main_thread else conn.recv_into(buf)
            if not n:
                break
            account(n, 0)
            if busy:
                server.work()
            if main_thread:
                blocking(conn.sendall, view[:n])
            else:
                conn.sendall(view[:n])
            account(0, n)
    except OSError as exc:
        if exc.errno not in CLOSE_ERRNOS:
            log(f"connection error: {exc}")
    except Shutdown:  # the final event reports it as open at the end, as in every model
        conn.close()
        raise
    conn.close()
    if on_close is not None:
        on_close()
    else:
        with lock:
            stats.closed += 1

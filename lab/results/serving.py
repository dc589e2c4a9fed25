"""A row's columns from the server's own stats about slow clients (format 8).

The built-in models report them (servers/core.py ``serving_fields``,
servers/events.py ``Serving``): an event loop's share of time slept in
handler waits (``blocked_per_s``), the echo it holds because ``send()`` hit
EAGAIN (``buffered_bytes``, ``buffered_conns``: a slow reader's closed
window), and a thread pool's or the blocking server's workers, queue and
longest session. A model or custom server that reports none leaves them
empty.
"""

from __future__ import annotations

from typing import Any


def serving_columns(stats: dict[str, Any]) -> dict[str, Any]:
    """The format-8 columns of a row from the server's last stats event."""
    held, conns = stats.get("buffered_bytes"), stats.get("buffered_conns")
    return {"server_blocked_per_s": stats.get("blocked_per_s"),
            "server_buffered_bytes": held, "server_buffered_conns": conns,
            "buffered_per_conn_bytes": held // conns if held is not None and conns else None,
            **{f"server_{k}": stats.get(k) for k in ("workers", "busy", "waiting")},
            "server_wait_s": stats.get("wait_oldest_s"),
            "server_session_s": stats.get("session_oldest_s")}

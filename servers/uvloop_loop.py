"""uvloop: the asyncio server of ``asyncio_loop`` on uvloop's loop (libuv, Cython).

Phase 1 (waiting for data): libuv's ``epoll_wait``. Phase 2 (copying): libuv
reads into its buffer, uvloop makes the ``bytes`` for ``data_received`` and
``transport.write`` tries to send at once. Only the protocol's callbacks are
Python: the reference for what the per-message overhead of an event loop can
be from Python.

Cost per connection: epoll's plus a libuv handle and the Python protocol.

Where it breaks: the open-file limit. libuv handles EMFILE itself with a
reserved descriptor (it accepts and closes pending connections), silently:
those refusals are not visible to us and are not counted.

With ``--processes N``: as asyncio, a libuv loop per process.
"""

from __future__ import annotations

from servers import asyncio_loop

try:
    import uvloop
except ImportError as exc:  # the registry reports it; other models are unaffected
    uvloop = None
    _import_error = str(exc)


def unavailable() -> str | None:
    return None if uvloop is not None else f"uvloop is not installed ({_import_error})"


class Server(asyncio_loop.Server):
    model = "uvloop"

    @staticmethod
    def new_loop():
        return uvloop.new_event_loop()

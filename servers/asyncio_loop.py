"""asyncio, protocol-based: the standard library's event loop with callbacks.

Phase 1 (waiting for data): the loop sleeps in ``epoll_wait`` (asyncio's
``SelectorEventLoop`` over ``DefaultSelector``). Phase 2 (copying): the
transport's ``recv`` hands a fresh ``bytes`` object to ``data_received``,
which hands it to ``transport.write``; what the socket does not take is
buffered by the transport, which calls ``pause_writing`` above its high-water
mark (we then pause reading: bounded memory). The stats sum those transport
buffers (``buffered_bytes``, ``buffered_conns``): what slow readers cost.

Cost per connection: epoll's, plus a transport and a protocol object and the
per-event overhead of the pure-Python loop (handles, callbacks, the ready
queue).

Where it breaks: the open-file limit. On EMFILE asyncio itself removes the
listener for one second (``ACCEPT_RETRY_DELAY``) instead of spinning; the
loop's exception handler counts each such back-off under ``EMFILE``.
Half-close: ``eof_received`` returns False, so the transport closes after its
buffer is flushed.

A handler that waits (``--block-us``) sleeps inside ``data_received``, in the
loop's thread: every other connection waits for it (``blocked_s`` in stats).

With ``--processes N``: N loops in N interpreters, the way an asyncio server uses
more than one core; each one's EMFILE pause stops only its own listener.
"""

from __future__ import annotations

import asyncio
import signal

from servers.core import Server as BaseServer
from servers.gate import Shutdown
from servers.listener import ACCEPT_CAPACITY_ERRNOS, set_nodelay


class Echo(asyncio.Protocol):
    __slots__ = ("server", "transport")

    def __init__(self, server):
        self.server = server

    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:  # uvloop sets TCP_NODELAY itself, asyncio here does not: say it
            set_nodelay(sock, self.server.nodelay)
        self.server.stats.opened(sock.fileno() if sock is not None else -1)
        self.server.live.add(self)

    def data_received(self, data):
        stats = self.server.stats
        stats.bytes_in += len(data)
        if self.server.busy:
            # ``--block-us`` is a blocking ``time.sleep`` here, not ``await
            # asyncio.sleep``: the callback holds the loop like a synchronous
            # database driver called from a coroutine would, which is the case
            # the model is shown for (an awaited sleep would yield the loop).
            self.server.work()
        self.transport.write(data)
        stats.bytes_out += len(data)  # handed to the transport, sent in order

    def eof_received(self):
        return False  # close once the echo is flushed

    def pause_writing(self):
        self.transport.pause_reading()

    def resume_writing(self):
        self.transport.resume_reading()

    def connection_lost(self, exc):
        self.server.stats.closed += 1
        self.server.live.discard(self)


class Server(BaseServer):
    model = "asyncio"
    blocking_listener = False

    def prepare(self) -> None:
        self.live: set[Echo] = set()  # the open connections' protocols

    def buffered(self) -> tuple[int, int] | None:
        """The transports' write buffers; ``list()`` copies the set in one C call."""
        total = held = 0
        for proto in list(self.live):
            n = proto.transport.get_write_buffer_size()
            if n:
                total += n
                held += 1
        return total, held

    @staticmethod
    def new_loop() -> asyncio.AbstractEventLoop:
        return asyncio.SelectorEventLoop()

    def on_loop_error(self, loop, context) -> None:
        exc = context.get("exception")
        kind = ACCEPT_CAPACITY_ERRNOS.get(getattr(exc, "errno", None))
        if kind is not None:
            self.stats.refuse(kind)
        elif not isinstance(exc, ConnectionError):
            loop.default_exception_handler(context)

    def serve(self) -> None:
        loop = self.new_loop()
        asyncio.set_event_loop(loop)
        loop.set_exception_handler(self.on_loop_error)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, loop.stop)
        loop.run_until_complete(
            loop.create_server(lambda: Echo(self), sock=self.listener, backlog=self.opts.backlog)
        )
        loop.run_forever()  # until SIGTERM/SIGINT
        raise Shutdown()

"""Blocking, iterative: one connection at a time, the next client waits.

Phase 1 (waiting for data): the process sleeps in ``recv`` on the one
connection it serves (or in ``accept`` between connections). Phase 2
(copying): the same ``recv`` copies the data when it arrives; ``sendall``
sleeps until the kernel took all of the echo. Both phases block the whole
server.

Cost per connection: nothing extra, because there is only ever one. A second
client completes the TCP handshake (the kernel queues it in the listen
backlog) but gets no echo until the first one closes.

Where it breaks: at the second concurrent client. Latency for client k is the
sum of the sessions of clients 1..k-1; one idle client stalls everyone. The
stats say how long the current session has held the one thread
(``session_oldest_s``, ``servers/events.py`` ``Serving``).
"""

from __future__ import annotations

from servers.blocking_echo import serve_blocking
from servers.core import Server as BaseServer
from servers.events import Serving


class Server(BaseServer):
    model = "blocking"

    def serve(self) -> None:
        self.serving = Serving(1, queue=False)
        self.accept_forever(self.handle)

    def handle(self, conn) -> None:
        self.stats.opened(conn.fileno())
        self.serving.started()
        try:
            serve_blocking(conn, self, main_thread=True)
        finally:
            self.serving.ended()

"""A thread per connection.

Phase 1 (waiting for data): each thread sleeps in its own blocking ``recv``;
the kernel wakes the one whose socket got data. Phase 2 (copying): that
thread's ``recv`` copies it, ``sendall`` echoes it. The main thread only
accepts. Under CPython only one thread runs Python code at a time (the GIL),
but the waits and copies happen in system calls, outside the GIL.

Cost per connection: a thread: a kernel task, a stack (its pages are touched
lazily; ``threading.stack_size`` is set to 256 KiB here so the virtual size
stays modest), a 16 KiB receive buffer and a scheduler wake-up per message.

Where it breaks: when a thread cannot be started (``RuntimeError: can't start
new thread``: RLIMIT_NPROC, ``kernel.threads-max``, pid_max, memory). The
connection is then closed and counted under ``threads`` instead of the server
dying. Long before that, context switches and memory dominate.
"""

from __future__ import annotations

import threading

from contract.limits import THREADS
from servers.blocking_echo import serve_blocking
from servers.core import Server as BaseServer
from servers.gate import start_thread

STACK_SIZE = 256 * 1024


class Server(BaseServer):
    model = "threads"

    def prepare(self) -> None:
        threading.stack_size(STACK_SIZE)

    def serve(self) -> None:
        self.accept_forever(self.handle)

    def handle(self, conn) -> None:
        stats = self.stats
        with stats.lock:
            stats.opened(conn.fileno())
        try:
            start_thread(serve_blocking, conn, self)
        except RuntimeError:
            fd = conn.fileno()  # -1 once closed: keep it for the limit event
            conn.close()
            with stats.lock:
                stats.accepted -= 1
            stats.refuse(THREADS, fd)

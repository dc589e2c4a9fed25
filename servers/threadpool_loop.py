"""A fixed pool of threads (``--workers``, default 32): connection 33 waits.

Phase 1 (waiting for data) and phase 2 (copying) are those of the
thread-per-connection model: a worker sleeps in its blocking ``recv``. The
main thread accepts and puts each connection in a queue; a free worker takes
it and serves it until it closes.

Cost per connection: a queue slot while it waits, a worker while it is
served; the number of threads (and their stacks) is fixed up front.

Where it breaks: at ``workers + 1`` concurrent connections: the extra ones are
accepted (counted in ``connections``) but get no echo until some earlier
client leaves; idle clients occupy workers just as busy ones do, and so do
slow ones (slowloris: a byte every 500 ms holds a worker for the whole
session), while short-lived clients wait in the queue. The stats show it
(``servers/events.py`` ``Serving``): ``workers``, ``busy``, ``waiting`` and
how long the oldest waited. A worker that cannot be started is counted under
``threads`` and the pool runs smaller.
"""

from __future__ import annotations

import queue
import threading

from contract.limits import THREADS
from servers.blocking_echo import serve_blocking
from servers.core import Server as BaseServer
from servers.events import Serving
from servers.gate import start_thread
from servers.threads_loop import STACK_SIZE


class Server(BaseServer):
    model = "threadpool"

    def prepare(self) -> None:
        threading.stack_size(STACK_SIZE)
        self.queue: queue.SimpleQueue = queue.SimpleQueue()

    def serve(self) -> None:
        self.serving = serving = Serving(0, queue=True)
        for i in range(self.opts.workers):
            try:
                start_thread(self.worker, name=f"worker-{i}")
                serving.workers += 1
            except RuntimeError:
                self.stats.refuse(THREADS)
        self.accept_forever(self.handle)

    def handle(self, conn) -> None:
        with self.stats.lock:
            self.stats.opened(conn.fileno())
        self.serving.queued()
        self.queue.put(conn)

    def worker(self) -> None:
        serving = self.serving
        while True:
            conn = self.queue.get()
            serving.started()
            try:
                serve_blocking(conn, self)
            finally:
                serving.ended()

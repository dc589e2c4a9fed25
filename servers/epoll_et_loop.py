"""epoll, edge-triggered (EPOLLET): one notification per change, drain until EAGAIN.

Phase 1 (waiting for data): ``epoll_wait``, as in ``epoll_loop``, but the
kernel reports a descriptor only when its state changes (new data arrived,
send-buffer space appeared), not while it stays ready. Phase 2 (copying):
``recv`` must be repeated until EAGAIN, ``accept`` likewise, because data or
connections left behind produce no further event.

Cost per connection: the same as level-triggered, minus the ``epoll_ctl``
calls: every connection is registered once for IN|OUT|RDHUP|ET and never
modified. The price is an extra ``recv`` that returns EAGAIN per event.

Where it breaks: where epoll does (open files, memory), and on programming
errors: stop reading before EAGAIN (here: when the unsent echo passes
``HIGH_WATER``) and you must resume by yourself (``on_write`` calls
``on_read`` once the echo drained), or the connection hangs forever.

With ``--processes N``: as epoll; each process drains its own listener's queue.
"""

from __future__ import annotations

import select
import sys

from servers import epoll_loop
from servers.eventloop import IN, OUT


class Server(epoll_loop.Server):
    model = "epoll-et"
    drain = True
    accept_batch = sys.maxsize  # until EAGAIN
    extra_mask = select.EPOLLET | select.EPOLLRDHUP

    def watch(self, fd, mask):
        # Listener: IN|ET. Connections: everything, once.
        super().watch(fd, IN if fd == self.lfd else IN | OUT)

    def update(self, c) -> None:
        """Nothing to modify: an edge-triggered registration never changes."""

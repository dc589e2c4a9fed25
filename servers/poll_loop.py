"""poll: select without the 1024 wall, but with the same linear cost.

Phase 1 (waiting for data): ``poll`` blocks on an array of ``pollfd``
structures that the process hands to the kernel on every call; the kernel
walks all of them, asks each socket for its state, and sleeps on all their
wait queues. Phase 2 (copying): ``recv``/``send`` on the ready, non-blocking
sockets.

Cost per connection: 8 bytes of ``pollfd`` copied in and out of the kernel on
every call, plus a per-socket poll check; CPython's ``select.poll`` rebuilds
its array from a dict when the registration changed. With N idle connections
and one busy one, every message pays O(N).

Where it breaks: no descriptor limit of its own (only the open-file limit,
EMFILE), but throughput falls linearly as idle connections pile up.

With ``--processes N``: each process walks only its own ``pollfd`` array, so the
linear cost per call is that of its share of the connections.
"""

from __future__ import annotations

import select

from servers.eventloop import PollerServer


class Server(PollerServer):
    model = "poll"
    poller_factory = select.poll
    timeout_ms = True

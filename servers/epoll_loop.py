"""epoll, level-triggered: readiness notification that scales with activity.

Phase 1 (waiting for data): the process sleeps in ``epoll_wait``. Interest is
registered once per descriptor (``epoll_ctl``); the kernel keeps a ready list
that socket wake-ups append to, so a wait costs O(ready descriptors), not
O(registered ones). Phase 2 (copying): ``recv``/``send`` on a non-blocking
socket, in the process, exactly as with select.

Cost per connection: one socket, one small ``Conn`` object and an epitem in
the kernel (about 130 bytes); idle connections cost no CPU at all.

Where it breaks: the open-file limit (EMFILE, refused and counted here with
the reserved-descriptor trick) and memory, long after select and poll.
Level-triggered means a descriptor with unread data is reported again on the
next wait, so reading once per event is correct (compare ``epoll_et_loop``).

With ``--processes N``: an epoll instance and a listener per process, so a new
connection wakes only the process it was hashed to (no thundering herd).
"""

from __future__ import annotations

import select

from servers.eventloop import PollerServer


class Server(PollerServer):
    model = "epoll"
    poller_factory = select.epoll

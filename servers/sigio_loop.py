"""Signal-driven I/O: ``O_ASYNC`` + ``F_SETOWN`` + SIGIO.

Phase 1 (waiting for data): the kernel sends SIGIO to the owner process when
a socket becomes readable or writable, or a connection arrives; the process
is free in between. Phase 2 (copying): ``recv``/``send`` as usual, on
non-blocking sockets.

What Python's deferred signal handling does to this model: a Python signal
handler does not run when the signal arrives. CPython's C handler only sets a
flag, and the Python function runs later, in the main thread, between two
bytecodes; so the "interrupt" is really a flag the interpreter polls, and I/O
done in it would race with the main loop anyway. Plain SIGIO is also not
queued (many arrivals, one pending signal) and Python's ``siginfo`` has no
``si_fd``, so the signal cannot say *which* socket is ready. What remains is:
block SIGIO, wait for it synchronously with ``sigtimedwait`` (no lost
wake-up), then try every socket until EAGAIN, edge-triggered style, because
data left behind raises no new signal.

Cost per connection: an O(n) scan per signal (like the busy-poll, but only
when something happened) and two ``fcntl`` calls at accept.

Where it breaks: the scan makes it poll-like with many idle connections; a
burst of activity coalesces into few signals, which is fine, but each costs a
full scan.

With ``--processes N``: ``F_SETOWN`` names one process per socket, so each process
is signalled for its own listener and connections only and scans only those.
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys

from servers import nonblocking_loop


class Server(nonblocking_loop.Server):
    model = "sigio"
    drain = True  # SIGIO reports changes, not states: read until EAGAIN
    accept_batch = sys.maxsize

    def prepare(self) -> None:
        super().prepare()
        # Before any thread starts, so every thread inherits the blocked mask
        # (SIGIO's default action would kill the process).
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGIO})
        self._own(self.listener.fileno())

    def _own(self, fd: int) -> None:
        fcntl.fcntl(fd, fcntl.F_SETOWN, os.getpid())
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_ASYNC | os.O_NONBLOCK)

    def watch(self, fd, mask):
        if fd != self.lfd:
            self._own(fd)
            # Data that arrived before O_ASYNC was set raised no signal.
            self.on_read(self.conns[fd])

    def wait(self, timeout):
        # A one-second timeout only bounds the damage of a bug; signals are
        # not lost while SIGIO is blocked (it stays pending).
        signal.sigtimedwait({signal.SIGIO}, 1.0 if timeout is None else timeout)
        return super().wait(timeout)

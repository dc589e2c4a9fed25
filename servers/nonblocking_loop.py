"""Non-blocking busy-poll: the tutorial's server that never waits.

Every socket is non-blocking and the loop tries them all, forever, without
sleeping: ``accept`` on the listener, ``recv`` on every connection, ``send``
of whatever is pending. Phase 1 (waiting for data) is done by the process
itself, as a stream of system calls that fail with EAGAIN; phase 2 (copying)
is the ``recv`` that finally succeeds.

Cost per connection: one failed ``recv`` per loop pass, busy or idle, and the
process burns a whole core even with nothing to do: that is the lesson
(stats carry ``loop_passes_per_s``: how often each socket is asked).

Where it breaks: at once in CPU (100% of a core), then in latency, which
grows linearly with the number of connections each pass must ask.
"""

from __future__ import annotations

from servers.eventloop import IN, EventLoopServer


class Server(EventLoopServer):
    model = "nonblocking"

    def prepare(self) -> None:
        self.stats.loop_passes = 0

    def watch(self, fd, mask):  # no kernel registration: we ask every socket ourselves
        pass

    def rewatch(self, fd, mask):
        pass

    def unwatch(self, fd):
        pass

    def wait(self, timeout):
        """No waiting: claim that every interest is ready and let EAGAIN sort it
        out. Only the interests the shared loop set (``Conn.mask``): a
        connection paused at the output high-water mark, or past EOF, is not
        read again, so its buffer stays bounded as with a real poller."""
        self.stats.loop_passes += 1
        events = [(fd, c.mask) for fd, c in enumerate(self.conns) if c is not None and c.mask]
        if self.listening:
            events.append((self.lfd, IN))
        return events

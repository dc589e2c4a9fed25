"""A process per connection (fork), children reaped on SIGCHLD.

Phase 1 (waiting for data): each child sleeps in its own blocking ``recv``.
Phase 2 (copying): the child's ``recv``/``sendall``. The parent only accepts,
forks, closes its copy of the connection and reaps exited children from a
SIGCHLD handler (``waitpid(WNOHANG)`` in a loop: no zombies).

Counting across processes: the parent counts ``accepted`` at fork and
``closed`` when it reaps the child; each child writes its byte counters to
its own 16-byte slot of an anonymous shared mapping (a single writer per
slot, so no lock), which the parent sums. CPU and RSS include live children
(from /proc) and reaped ones (``RUSAGE_CHILDREN``). A child dies with the
parent (``PR_SET_PDEATHSIG``).

Cost per connection: a process: page tables, a copy-on-write image of the
interpreter (several MiB of RSS each as pages get touched), a kernel task.

Where it breaks: ``fork`` failing with EAGAIN/ENOMEM (RLIMIT_NPROC, pid_max,
memory); the connection is closed and counted under ``pid_max``.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import resource
import signal
import struct

from servers import core
from servers.core import Server as BaseServer
from servers.core import serve_blocking

SLOTS = 65536
SLOT = struct.Struct("QQ")  # bytes_in, bytes_out
PR_SET_PDEATHSIG = 1


class Server(BaseServer):
    model = "forking"

    def prepare(self) -> None:
        self.shm = mmap.mmap(-1, SLOTS * SLOT.size)
        self.free = list(range(SLOTS - 1, -1, -1))
        self.children: dict[int, int] = {}  # pid -> slot
        self.done_in = self.done_out = 0
        signal.signal(signal.SIGCHLD, lambda signum, frame: self.reap())

    def serve(self) -> None:
        self.accept_forever(self.spawn)

    def spawn(self, conn) -> None:
        fd = conn.fileno()
        if not self.free:
            conn.close()
            return self.stats.refuse("pid_max", fd)
        slot = self.free.pop()
        SLOT.pack_into(self.shm, slot * SLOT.size, 0, 0)
        # SIGCHLD stays blocked until the child is recorded: a child that exits
        # at once must not be reaped before the parent knows its slot.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        try:
            pid = os.fork()
        except OSError:
            pid = -1
        if pid == 0:
            self.child(conn, slot)  # never returns
        conn.close()
        if pid < 0:
            self.free.append(slot)
            self.stats.refuse("pid_max", fd)
        else:
            self.children[pid] = slot
            self.stats.opened(fd)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})

    def child(self, conn, slot: int) -> None:
        code = 0
        try:
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                signal.signal(signum, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
            ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)  # stdout belongs to the parent's events
            self.listener.close()
            totals = [0, 0]
            offset = slot * SLOT.size

            def account(n_in, n_out):
                totals[0] += n_in
                totals[1] += n_out
                SLOT.pack_into(self.shm, offset, *totals)

            serve_blocking(conn, self, on_close=lambda: None, account=account)
        except BaseException:
            code = 1
        finally:
            os._exit(code)

    def _retire(self, slot: int) -> None:
        """A child is gone: keep its byte counts, free its slot."""
        n_in, n_out = SLOT.unpack_from(self.shm, slot * SLOT.size)
        self.done_in += n_in
        self.done_out += n_out
        self.free.append(slot)

    def reap(self) -> None:
        while self.children:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = self.children.pop(pid, None)
            if slot is not None:
                self._retire(slot)
                self.stats.closed += 1

    def close(self) -> None:
        """Shutdown: end the children (their clients see EOF) and reap them.
        Not counted as ``closed``: the final event reports the connections
        open at the signal, as every model does."""
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for pid, slot in list(self.children.items()):
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            self._retire(slot)
        self.children.clear()

    def snapshot(self):
        n_in, n_out = self.done_in, self.done_out
        for slot in list(self.children.values()):
            a, b = SLOT.unpack_from(self.shm, slot * SLOT.size)
            n_in, n_out = n_in + a, n_out + b
        self.stats.bytes_in, self.stats.bytes_out = n_in, n_out
        return super().snapshot()

    def usage(self):
        me = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        user, sys_ = me.ru_utime + kids.ru_utime, me.ru_stime + kids.ru_stime
        rss = core.rss_of()
        for pid in list(self.children):
            u, s = core.cpu_of(pid)
            user, sys_, rss = user + u, sys_ + s, rss + core.rss_of(pid)
        return user, sys_, rss

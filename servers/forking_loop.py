"""A process per connection (fork), children reaped on SIGCHLD.

Phase 1 (waiting for data): each child sleeps in its own blocking ``recv``.
Phase 2 (copying): the child's ``recv``/``sendall``. The parent only accepts,
forks, closes its copy of the connection and reaps exited children from a
SIGCHLD handler (``waitpid(WNOHANG)`` in a loop: no zombies).

Counting across processes: the parent counts ``accepted`` at fork and
``closed`` when it reaps the child; each child writes its byte counters to
its own 16-byte slot of an anonymous shared mapping (a single writer per
slot, so no lock), which the parent sums. CPU includes live children (from
/proc) and reaped ones (``RUSAGE_CHILDREN``); memory is that of the live
processes (a reaped child's pages are free again). A child dies with the
parent (``PR_SET_PDEATHSIG``).

Memory (``rss_bytes``, "what this server costs"): the sum of the **PSS** of
the parent and its live children, not of their RSS. After ``fork`` a child
shares every page of the parent's image (the interpreter, its heap, the
libraries) copy-on-write; RSS counts each shared page in full in every
process that maps it, so summing RSS over 1000 children counts the same
interpreter 1000 times and reports gigabytes the machine never spent. PSS
(proportional set size) divides each resident page among the processes that
map it: a page shared by the parent and 999 children adds 1/1000 of a page
to each, a page a child copied on write (its stack, its receive buffer, heap
pages whose reference counts it touched) adds a whole page to that child
alone. Summed over the group, PSS counts every shared page once (less the
shares of processes outside the server that map the same files, e.g. libc),
so the figure grows by what one more connection really costs. Where
``/proc/PID/smaps_rollup`` cannot be read (``servers.process.pss_of``), that
process counts with its RSS instead: an overcount, never an undercount.

PSS is dear to read: the kernel walks the process's page tables (about
0.3 ms per child on a small VM, against 0.02 ms for RSS from ``statm``), so
reading every child at every stats tick would cost the parent half a core at
800 connections and show up as the model's own CPU. ``GroupMemory`` reads
within ``PSS_BUDGET`` of each stats interval: new children first, then the
least recently read; the others count with their last reading, and children
not read yet with the mean of those that were. An idle child's private pages
do not change, and the shared pages' division among the processes changes
by one process per fork or exit, so a reading a few ticks old is off by a
fraction of a page per shared page; once the number of children holds still
for long enough to read them all, the figure is the exact sum.

Cost per connection: a process: page tables, a kernel task, and the pages
the child copies on write as it runs (its stack, buffers, touched heap);
the rest of the interpreter stays shared with the parent.

Where it breaks: ``fork`` failing with EAGAIN/ENOMEM (RLIMIT_NPROC, pid_max,
memory); the connection is closed and counted under ``pid_max``.
"""

from __future__ import annotations

import itertools
import mmap
import os
import resource
import signal
import struct
import threading
import time
from collections import OrderedDict

from contract.limits import PID_MAX
from servers import process
from servers.blocking_echo import serve_blocking
from servers.core import Server as BaseServer

SLOTS = 65536
SLOT = struct.Struct("QQ")  # bytes_in, bytes_out
PSS_BUDGET = 0.05  # of each stats interval: the most the parent spends reading children's PSS


class Server(BaseServer):
    model = "forking"

    def prepare(self) -> None:
        self.shm = mmap.mmap(-1, SLOTS * SLOT.size)
        self.free = list(range(SLOTS - 1, -1, -1))
        self.children: dict[int, int] = {}  # pid -> slot
        self.done_in = self.done_out = 0
        self.memory = GroupMemory(PSS_BUDGET * self.opts.stats_interval)
        signal.signal(signal.SIGCHLD, lambda signum, frame: self.reap())

    def serve(self) -> None:
        self.accept_forever(self.spawn)

    def spawn(self, conn) -> None:
        fd = conn.fileno()
        if not self.free:
            conn.close()
            return self.stats.refuse(PID_MAX, fd)
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
            self.stats.refuse(PID_MAX, fd)
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
            process.die_with_parent(signal.SIGKILL)
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
        children = list(self.children)
        for pid in children:
            u, s = process.cpu_of(pid)
            user, sys_ = user + u, sys_ + s
        return user, sys_, self.memory.total(children)


def process_memory(pid: int | str) -> int | None:
    """One process's share: its PSS, or its RSS where ``smaps_rollup`` cannot be
    read (an overcount of its shared pages); ``None`` once it is gone."""
    pss = process.pss_of(pid)
    if pss is not None:
        return pss
    return process.rss_of(pid) or None  # a live process has resident pages


class GroupMemory:
    """The summed PSS of this process and its live children, read within a
    time budget per call (see the module docstring)."""

    def __init__(self, budget_s: float):
        self.budget_s = budget_s
        self.known: OrderedDict[int, int] = OrderedDict()  # pid -> bytes, least recent first
        self.lock = threading.Lock()  # the ticker thread and the final event

    def total(self, children: list[int]) -> int:
        with self.lock:
            live = set(children)
            for pid in [p for p in self.known if p not in live]:
                del self.known[pid]
            new = [p for p in children if p not in self.known]
            deadline = time.monotonic() + self.budget_s
            done = 0
            for pid in itertools.chain(new, list(self.known)):
                if done and time.monotonic() >= deadline:  # at least one read per call
                    break
                done += 1
                value = process_memory(pid)
                if value is None:  # exited, not reaped yet
                    self.known.pop(pid, None)
                else:
                    self.known[pid] = value
                    self.known.move_to_end(pid)
            total = sum(self.known.values())
            unread = len(new) - min(done, len(new))
            if unread and self.known:
                total += unread * total // len(self.known)
            return (process_memory("self") or 0) + total

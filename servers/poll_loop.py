"""poll: select without the 1024 wall, but with the same linear cost.

Phase 1 (waiting for data): ``poll(2)`` blocks on an array of ``struct
pollfd`` (descriptor, events asked, events returned: 8 bytes) that the
process hands to the kernel on every call; the kernel copies it in, walks all
of it, asks each socket for its state (``sock_poll`` -> ``tcp_poll``), sleeps
on every socket's wait queue, and on return writes every entry's
``revents``, which the process then scans for the ready ones. Phase 2
(copying): ``recv``/``send`` on the ready, non-blocking sockets.

The array is the server's, kept as a C server keeps it (``PollFds``):
registered once, changed in place, an entry moved into a closed one's slot,
so a new or closed connection costs O(1) and memory grows by its 8 bytes.
CPython's ``select.poll`` instead keeps the registrations in a dict and
rebuilds the whole array from it on the next call after any change (O(N)
per accept batch), and its dict reallocates a zero-filled table of twice the
slots at 2/3 full, a jump of 0.2-0.3 MiB in the server's RSS at 5,461 and
10,922 connections that belongs to the binding, not to poll.

Cost per connection: 8 bytes of ``pollfd`` copied in and out of the kernel on
every call, plus a per-socket poll check, plus the scan of its ``revents``
(done in C: the low byte of every entry's ``revents`` is one strided slice,
searched for non-zero bytes). With N idle connections and one busy one,
every message pays O(N).

Where it breaks: no descriptor limit of its own (only the open-file limit,
EMFILE), but throughput falls linearly as idle connections pile up.

With ``--processes N``: each process walks only its own ``pollfd`` array, so the
linear cost per call is that of its share of the connections.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import re
import resource
import struct

from servers.eventloop import PollerServer

_libc = ctypes.CDLL(None, use_errno=True)
_poll = _libc.poll
_poll.argtypes = (ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int)
_poll.restype = ctypes.c_int

POLLFD = struct.Struct("=ihh")  # struct pollfd: int fd; short events; short revents
REVENTS = 6  # offset of revents; POLLIN..POLLNVAL (1..32) are its low byte (little-endian)
READY = re.compile(rb"[^\x00]")
MAX_ENTRIES = 1 << 24  # 128 MiB of address space at most, reserved, not resident
assert POLLFD.size == 8 and struct.pack("=h", 1)[0] == 1  # x86-64 / aarch64 layout


class PollFds:
    """The ``pollfd`` array and the slot of each descriptor, with
    ``select.poll``'s methods (register/modify/unregister/poll in ms).

    Both are anonymous mappings with room for every descriptor the process
    may open (``RLIMIT_NOFILE``'s soft limit: every entry is an open
    descriptor, below that limit): reserved, not resident, until written, so
    they never move and never leave a freed copy behind as a growing heap
    block does when ``realloc`` cannot extend it in place; the RSS grows by
    the pages the entries fill. ``slot_of[fd]`` is the entry's index + 1
    (0, an untouched page's zero, is "not registered")."""

    def __init__(self) -> None:
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        room = max(1, min(soft if soft != resource.RLIM_INFINITY else MAX_ENTRIES, MAX_ENTRIES))
        self.room = room
        self.array = mmap.mmap(-1, room * POLLFD.size)
        self.entry_fd = memoryview(self.array).cast("i")  # entry i's fd is entry_fd[2 * i]
        self.slot_map = mmap.mmap(-1, room * 4)
        self.slot_of = memoryview(self.slot_map).cast("i")
        self.count = 0
        # One ctypes view for the process's life: the mapping never moves.
        self._view = (ctypes.c_char * len(self.array)).from_buffer(self.array)

    def _slot(self, fd: int) -> int:
        """``fd``'s entry index + 1, or 0 when it is not registered."""
        return self.slot_of[fd] if 0 <= fd < self.room else 0

    def register(self, fd: int, mask: int) -> None:
        if not 0 <= fd < self.room:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        if self.slot_of[fd]:
            return self.modify(fd, mask)
        POLLFD.pack_into(self.array, self.count * POLLFD.size, fd, mask, 0)
        self.count += 1
        self.slot_of[fd] = self.count

    def modify(self, fd: int, mask: int) -> None:
        slot = self._slot(fd)
        if not slot:
            raise OSError(errno.ENOENT, os.strerror(errno.ENOENT))
        POLLFD.pack_into(self.array, (slot - 1) * POLLFD.size, fd, mask, 0)

    def unregister(self, fd: int) -> None:
        slot, last, size = self._slot(fd) - 1, self.count - 1, POLLFD.size
        if slot < 0:
            raise KeyError(fd)
        if slot != last:  # the last entry moves into the freed slot
            moved = self.entry_fd[2 * last]
            self.array[slot * size:(slot + 1) * size] = self.array[last * size:(last + 1) * size]
            self.slot_of[moved] = slot + 1
        self.slot_of[fd] = 0
        self.count = last

    def poll(self, timeout_ms: int | None = None) -> list[tuple[int, int]]:
        """(fd, revents) of the ready entries; [] on a timeout or a signal (the
        loop checks for a shutdown before it waits again)."""
        count = self.count
        n = _poll(self._view, count, -1 if timeout_ms is None else timeout_ms)
        if n <= 0:
            err = ctypes.get_errno() if n < 0 else 0
            if err and err != errno.EINTR:
                raise OSError(err, os.strerror(err))
            return []
        revents = self.array[REVENTS:count * POLLFD.size:POLLFD.size]
        entry_fd = self.entry_fd
        return [(entry_fd[2 * m.start()], revents[m.start()]) for m in READY.finditer(revents)]


class Server(PollerServer):
    model = "poll"
    poller_factory = PollFds
    timeout_ms = True

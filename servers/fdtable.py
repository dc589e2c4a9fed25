"""Connections indexed by descriptor: a list, as nginx and libevent keep them.

The kernel hands out the lowest free descriptor (``accept`` and ``socket``
follow POSIX's lowest-number rule), so a server's descriptors stay dense
from 0 to about the number of connections it holds, and a list indexed by
descriptor is a table with no hashing and no empty half: nginx's
``connections`` array (sized ``worker_connections``) and libevent's
``evmap_io`` array are the same idea.

Why not a dict, in a lab that reads each server's memory per connection:
CPython resizes a dict when it is 2/3 full into a table twice the size,
allocated and zero-filled at once (``new_keys_object`` memsets the index
array and the entries). The server's RSS then climbs a staircase: ~205
bytes per connection plus a jump of 0.12, 0.20 and 0.27 MiB at 2,730,
5,461 and 10,922 connections (measured, ``--stats`` every 500 connections).
That staircase is the interpreter's hash table, not the I/O model, and a
capacity plan fitted below a jump cannot know the jump
(``lab/analysis/fits.py`` ``line``). A list grows by ``append``, which
over-allocates by an eighth and ``realloc``s: glibc moves a large block
with ``mremap`` and the new tail is not touched until a slot is written,
so RSS grows by the 8-byte slots actually used. Measured the same way:
~208 bytes per connection, no jump.

``poll``'s own registrations are still a dict inside CPython's
``select.poll`` (its jumps are that model's cost in Python, and stay).
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class FdTable(list, Generic[T]):
    """``table[fd]`` is the connection on ``fd`` or None. Indexing stays
    list's own C slot (the event loops' hot path: ``table[fd]`` for a
    descriptor the poller reported, which is always inside the table because
    it was put there); ``get`` is the bounds-checked lookup for the rest."""

    def __init__(self, first_fd: int = 0) -> None:
        super().__init__([None] * first_fd)

    def put(self, fd: int, conn: T) -> T:
        while len(self) <= fd:
            self.append(None)
        self[fd] = conn
        return conn

    def get(self, fd: int) -> T | None:
        return self[fd] if 0 <= fd < len(self) else None

    def drop(self, fd: int) -> None:
        self[fd] = None

    def values(self) -> list[T]:
        """The connections now. ``list(self)`` is one C call under the GIL, so a
        stats thread never sees the table change while the loop fills it."""
        return [c for c in list(self) if c is not None]

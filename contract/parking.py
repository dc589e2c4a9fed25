"""Which held users park: the rule the load generator follows and the lab's
memory estimate reads (one definition for both).

A parked user (loadgen/parking.py) holds its connection on the gevent hub
with no greenlet of its own: the socket's readable watcher, and for an echo
user the pace timer, call back into the hub, which sends and reads whole
messages itself. A suspended greenlet costs 6-8 KB in CPython 3.11 (its own
16 KiB frame-stack chunk with a page touched, plus its saved C stack), so a
parked user holds ~3.4 KB and a live one ~11 KB (lab/host/workers.py sizes
the load's memory from this rule).

An echo can run on the hub only when it is one ``send`` of the whole message
and reads of whatever has arrived, with a timer to bound it: a slow client
(chunked or gapped sends and reads, sizes drawn per echo) interleaves sleeps
and partial I/O that need a greenlet to wait in, an io timeout of 0 means
waiting without a timer, and pace 0 has nothing to wait for between echoes.
An idle user only waits for the server to end the connection.
"""

from __future__ import annotations

from contract.defaults import USER_ECHO, USER_IDLE


def slow_client(send_chunk: int, send_gap_s: float, read_chunk: int, read_gap_s: float,
                sizes_vary: bool) -> bool:
    """Anything but whole-message sends and reads of whatever has arrived."""
    return bool(send_chunk or send_gap_s or read_chunk or read_gap_s or sizes_vary)


def parks_when_held(user: str, *, pace_s: float, io_timeout_s: float, slow: bool) -> bool:
    """Whether a held ``user`` waits with no greenlet (the module docstring)."""
    if user == USER_IDLE:
        return True
    return user == USER_ECHO and pace_s > 0 and io_timeout_s > 0 and not slow

"""poll's own ``pollfd`` array (servers/poll_loop.py ``PollFds``): what the
kernel reports through it, on real sockets, and that it keeps every entry
where the slot table says it is as connections come and go."""

from __future__ import annotations

import select
import signal
import socket
import time

import pytest

from servers.poll_loop import PollFds


@pytest.fixture
def pairs():
    made: list[tuple[socket.socket, socket.socket]] = []

    def _make(n: int) -> list[tuple[socket.socket, socket.socket]]:
        new = [socket.socketpair() for _ in range(n)]
        made.extend(new)
        return new

    yield _make
    for a, b in made:
        a.close()
        b.close()


def ready(p: PollFds, timeout_ms: int = 0) -> dict[int, int]:
    return dict(p.poll(timeout_ms))


def test_the_ready_entries_and_only_they_come_back(pairs):
    p = PollFds()
    ends = pairs(5)
    for mine, _ in ends:
        p.register(mine.fileno(), select.POLLIN)
    assert ready(p) == {}
    ends[1][1].send(b"x")
    ends[3][1].send(b"y")
    assert ready(p) == {ends[1][0].fileno(): select.POLLIN, ends[3][0].fileno(): select.POLLIN}
    p.modify(ends[2][0].fileno(), select.POLLIN | select.POLLOUT)  # a socket with room: writable
    assert ready(p)[ends[2][0].fileno()] == select.POLLOUT


def test_an_entry_moves_into_a_closed_ones_slot_and_is_still_reported(pairs):
    p = PollFds()
    ends = pairs(4)
    fds = [mine.fileno() for mine, _ in ends]
    for fd in fds:
        p.register(fd, select.POLLIN)
    p.unregister(fds[1])  # the last entry (fds[3]) moves into slot 1
    assert p.count == 3 and p.slot_of[fds[3]] == 2 and p.slot_of[fds[1]] == 0
    for _, peer in ends:
        peer.send(b"z")
    assert ready(p) == {fds[0]: select.POLLIN, fds[2]: select.POLLIN, fds[3]: select.POLLIN}
    p.unregister(fds[3])  # now the last entry itself
    p.unregister(fds[0])
    assert ready(p) == {fds[2]: select.POLLIN} and p.count == 1
    p.register(fds[1], select.POLLIN)  # registered again after its removal
    assert set(ready(p)) == {fds[1], fds[2]}


def test_a_peer_that_closed_is_reported_readable_and_hung_up(pairs):
    p = PollFds()
    (mine, peer), = pairs(1)
    p.register(mine.fileno(), select.POLLIN)
    peer.close()
    got = ready(p)[mine.fileno()]
    assert got & select.POLLIN and got & select.POLLHUP, got


def test_unknown_descriptors_are_refused_as_select_poll_refuses_them(pairs):
    p = PollFds()
    (mine, _), = pairs(1)
    with pytest.raises(KeyError):
        p.unregister(mine.fileno())
    with pytest.raises(OSError):
        p.modify(mine.fileno(), select.POLLIN)
    p.register(mine.fileno(), select.POLLIN)
    p.register(mine.fileno(), select.POLLOUT)  # twice: a modify, not a second entry
    assert p.count == 1 and ready(p) == {mine.fileno(): select.POLLOUT}


def test_a_signal_ends_the_wait_with_nothing_ready(pairs):
    """poll(2) is never restarted after a handler ran (signal(7)): EINTR, which
    comes back as no events, so the loop can check for a shutdown."""
    p = PollFds()
    (mine, _), = pairs(1)
    p.register(mine.fileno(), select.POLLIN)
    old = signal.signal(signal.SIGALRM, lambda *_: None)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        t0 = time.monotonic()
        assert p.poll(5000) == []
        assert time.monotonic() - t0 < 2.5
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_a_timeout_with_nothing_ready_returns_nothing(pairs):
    p = PollFds()
    (mine, _), = pairs(1)
    p.register(mine.fileno(), select.POLLIN)
    t0 = time.monotonic()
    assert p.poll(50) == []
    assert time.monotonic() - t0 >= 0.045

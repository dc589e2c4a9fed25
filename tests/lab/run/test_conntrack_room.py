"""A model starts only once the conntrack table has room for its top step
(lab/run/conntrack_room.py), waiting at most the TIME_WAIT timeout."""

from __future__ import annotations

from lab.backends.docker.backend import DockerBackend
from lab.backends.local import LocalBackend
from lab.run.conntrack_room import wait_for_room


class Clock:
    """A clock that moves only when slept."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s


def run(counts: list[int | None], need: int, most: int | None = 262_144,
        timeout_s: float = 130.0) -> tuple[float, list[str]]:
    clock, said, seen = Clock(), [], iter(counts)
    last = [None]

    def count():
        last[0] = next(seen, last[0])
        return last[0]

    waited = wait_for_room(need, said.append, count=count, most=lambda: most,
                           timeout_s=timeout_s, clock=clock, sleep=clock.sleep)
    return waited, said


def test_room_already_means_no_wait_and_no_line():
    assert run([100_000], need=100_000) == (0.0, [])


def test_no_conntrack_loaded_means_no_wait():
    assert run([None], need=100_000, most=None) == (0.0, [])


def test_waits_until_the_closed_connections_expire():
    # a run's leftovers in TIME_WAIT: 256,020 entries, then the kernel expires them
    waited, said = run([256_020, 256_000, 200_000, 170_000, 160_000], need=100_000)
    assert waited == 4.0
    assert "256,020 of 262,144 entries in use, 100,000 needed" in said[0]
    assert said[-1] == "  conntrack: room for 100,000 after 4 s"


def test_gives_up_after_the_timeout_and_says_what_will_happen():
    waited, said = run([262_144], need=1_000, timeout_s=30.0)
    assert waited == 30.0
    assert "starting anyway" in said[-1] and "nf_conntrack_max" in said[-1]
    assert any("(15 s)" in line for line in said)  # progress while it waits


def test_only_the_local_backend_shares_the_labs_table():
    assert LocalBackend.conntrack_here and not DockerBackend.conntrack_here

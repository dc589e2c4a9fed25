"""How many Locust workers a load gets."""

from __future__ import annotations

import dataclasses

import pytest

from lab.host.workers import (
    PARKED_USER_RSS_BYTES,
    PER_WORKER_COMFORT,
    USER_RSS_BYTES,
    per_worker_ceiling,
    user_rss_bytes,
    workers_needed,
)
from lab.scenario.loader import parse_scenario
from lab.scenario.types import LoadSpec, Step


def load(*connections: int, workers: int | None = None) -> LoadSpec:
    return LoadSpec(steps=tuple(Step(c, 1.0) for c in connections), workers=workers)


def test_auto_sizes_by_the_largest_step_and_the_per_worker_ceiling():
    assert workers_needed(load(100, 4000), 20000) == 1
    assert workers_needed(load(PER_WORKER_COMFORT + 1), 20000) == 2
    assert workers_needed(load(5000), 1100) == 5  # 1000 users per worker at nofile 1100
    assert per_worker_ceiling(20000) == min(20000 - 100, 28232)


def test_auto_gives_every_placed_host_a_worker_but_a_fixed_number_wins():
    assert workers_needed(load(4000), 20000, hosts=2) == 2  # load2 was left idle before
    assert workers_needed(load(4000, workers=1), 20000, hosts=2) == 1


def test_a_worker_that_exited_0_was_told_to_quit_not_lost():
    """Locust workers exit 0 only on their master's quit, sent as the run ends:
    seen in CI, a record read in that moment named the last step worker_lost."""
    from lab.backends.base import worker_lost

    assert not worker_lost(None)  # still running
    assert not worker_lost(0)
    assert worker_lost(-9) and worker_lost(137) and worker_lost(1)


def test_idle_users_are_sized_by_descriptors_paced_ones_by_cpu():
    idle = LoadSpec(steps=(Step(500_000, 1.0),), user="idle", active_users=500)
    assert workers_needed(idle, 20000) == 26  # 500,000 / 19,900: descriptors bind
    echo = LoadSpec(steps=(Step(6 * PER_WORKER_COMFORT, 1.0),))
    assert 6 * PER_WORKER_COMFORT / per_worker_ceiling(20000) < 5  # descriptors: 5 would do
    assert workers_needed(echo, 20000) == 6  # CPU binds
    busy = LoadSpec(steps=(Step(PER_WORKER_COMFORT + 1, 1.0),), user="idle",
                    active_users=PER_WORKER_COMFORT + 1)
    assert workers_needed(busy, 20000) == 2  # descriptors alone would allow one


@pytest.mark.parametrize(("load", "parks"), [
    ("", True),  # echo users at a pace: held on the hub with no greenlet
    ("  user: idle\n", True),
    ("  user: churn\n", False),  # connects again and again: a live greenlet
    ("  message_size: {median: 64, max: 1024}\n", False),  # varied sizes: a slow client
    ("  read_chunk: 16\n", False),
])
def test_a_load_is_sized_at_a_parked_or_a_live_users_memory(load, parks):
    sc = parse_scenario(f"servers: [epoll]\nload:\n  steps: [10]\n{load}", "x.yaml")
    assert user_rss_bytes(sc.load) == (PARKED_USER_RSS_BYTES if parks else USER_RSS_BYTES)
    assert user_rss_bytes(None) == USER_RSS_BYTES


@pytest.mark.parametrize(("user", "change", "parks"), [
    ("echo", {"io_timeout_s": 0.0}, False),  # no timer to bound an echo on the hub
    ("echo", {"pace_s": 0.0}, False),  # back to back: nothing to wait for between echoes
    ("idle", {"pace_s": 0.0}, True),  # an idle user waits for nothing but the server
])
def test_loads_no_scenario_writes_follow_the_generators_rule(user, change, parks):
    """Pace 0 and io timeout 0 are Locust options (a run by hand), refused in a
    scenario; the rule is contract/parking.py's either way."""
    sc = parse_scenario(f"servers: [epoll]\nload: {{steps: [10], user: {user}}}\n", "x.yaml")
    load = dataclasses.replace(sc.load, **change)
    assert user_rss_bytes(load) == (PARKED_USER_RSS_BYTES if parks else USER_RSS_BYTES)

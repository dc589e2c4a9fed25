"""How many Locust workers a load gets."""

from __future__ import annotations

from lab.backends.workers import PER_WORKER_COMFORT, per_worker_ceiling, workers_needed
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

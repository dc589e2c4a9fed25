"""Each step's ramp starts when the controller sets the step, not at the
shape greenlet's next once-a-second tick (loadgen/steps.py, start_ramp)."""

from __future__ import annotations

import gevent
import gevent.pool
import pytest
from locust.runners import STATE_RUNNING, STATE_SPAWNING

from loadgen.steps import StepController

pytestmark = pytest.mark.locust  # imports Locust (gevent patches the stdlib); loads nothing


class Runner:
    """What start_ramp touches of a Locust runner."""

    def __init__(self, state: str, last_tick: tuple[int, float]) -> None:
        self.state, self.shape_last_tick = state, last_tick
        self.greenlet = gevent.pool.Group()
        self.environment = None
        self.started: list[tuple[int, float, tuple[int, float] | None]] = []

    def start(self, user_count: int, spawn_rate: float) -> None:
        self.started.append((user_count, spawn_rate, self.shape_last_tick))


def controller(runner: Runner, level: tuple[int, float]) -> StepController:
    c = StepController.__new__(StepController)  # no steps greenlet: start_ramp alone
    c.runner, c.level = runner, level
    return c


def test_a_running_runner_ramps_at_once_and_the_next_tick_sees_no_change():
    runner = Runner(STATE_RUNNING, (50, 500.0))
    controller(runner, (100, 500.0)).start_ramp()
    runner.greenlet.join(timeout=5)
    # started once, with the level already recorded: the shape's tick compares
    # it with what tick() returns and starts nothing more
    assert runner.started == [(100, 500.0, (100, 500.0))]


@pytest.mark.parametrize("state, last", [(STATE_SPAWNING, (50, 500.0)),  # a ramp still running
                                         (STATE_RUNNING, (100, 500.0))])  # already started
def test_otherwise_the_ramp_is_left_to_the_shapes_tick(state, last):
    runner = Runner(state, last)
    controller(runner, (100, 500.0)).start_ramp()
    gevent.sleep(0)
    assert runner.started == [] and runner.shape_last_tick == last

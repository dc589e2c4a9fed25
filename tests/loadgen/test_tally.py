"""Successes fed to Locust's statistics in bulk (loadgen/tally.py) leave them
exactly as one ``request`` event per success would: counts, sums, min/max,
the rounded response-time buckets, requests per second and the cache the
web UI's current percentiles come from."""

from __future__ import annotations

import random
from unittest import mock

import pytest
from locust.env import Environment
from locust.stats import StatsEntry

from loadgen.tally import Tally

pytestmark = pytest.mark.parallel

FIELDS = ("num_requests", "num_none_requests", "total_response_time", "min_response_time",
          "max_response_time", "total_content_length", "last_request_timestamp")


def requests(seed: int = 5) -> list[tuple[float, str, float, int]]:
    """(wall time, name, response time ms, length) over four seconds, some
    seconds left empty, response times spread over Locust's rounding ranges."""
    rng = random.Random(seed)
    out, t = [], 1_000.2
    for _ in range(400):
        t += rng.choice((0.001, 0.01, 0.05, 1.3))
        out.append((t, rng.choice(("echo", "connect")), rng.lognormvariate(0, 2.5),
                    rng.choice((0, 64, 1500))))
    return out


def entry_state(e: StatsEntry) -> dict:
    state = {f: getattr(e, f) for f in FIELDS}
    state["response_times"] = dict(e.response_times)
    state["num_reqs_per_sec"] = dict(e.num_reqs_per_sec)
    state["cache"] = {t: (dict(c.response_times), c.num_requests)
                      for t, c in (e.response_times_cache or {}).items()}
    return state


def stats_state(env: Environment) -> dict:
    return {"total": entry_state(env.stats.total),
            **{k: entry_state(v) for k, v in env.stats.entries.items()}}


def replay(env: Environment, reqs, bulk: bool, flush_every: int = 37) -> dict:
    tally = Tally(env)
    clock = [0.0]
    with mock.patch("time.time", lambda: clock[0]):
        for i, (t, name, rt, length) in enumerate(reqs):
            clock[0] = t
            if bulk:
                tally.ok("tcp", name, rt, length)
                if i % flush_every == 0:
                    tally.flush()
            else:
                env.events.request.fire(request_type="tcp", name=name, response_time=rt,
                                        response_length=length, exception=None, context={})
        tally.flush()
    return stats_state(env)


def runner_env() -> Environment:
    env = Environment()
    env.create_local_runner()  # its request listener feeds env.stats
    return env


def test_bulk_feed_equals_one_event_per_request():
    one_by_one = replay(runner_env(), requests(), bulk=False)
    bulk = replay(runner_env(), requests(), bulk=True)
    assert bulk["total"]["num_requests"] == 400
    assert bulk["total"]["cache"]  # the current-percentiles cache was filled
    assert bulk.keys() == one_by_one.keys()
    for key in one_by_one:
        got, want = bulk[key], one_by_one[key]
        assert got["total_response_time"] == pytest.approx(want["total_response_time"])
        got = {k: v for k, v in got.items() if k != "total_response_time"}
        want = {k: v for k, v in want.items() if k != "total_response_time"}
        assert got == want, key


def test_another_request_listener_gets_every_request():
    env = runner_env()
    tally = Tally(env)
    assert not tally.direct  # only Locust's own statistics listen
    seen = []
    env.events.request.add_listener(lambda **kw: seen.append(kw["name"]))
    assert tally.direct  # users then fire one event per request (loadgen/runtime.py)


def test_a_worker_report_carries_what_was_pending():
    env = Environment()
    env.create_local_runner()
    tally = Tally(env)
    env.events.report_to_master._handlers.insert(0, tally.flush)  # what install() does
    tally.ok("tcp", "echo", 1.5, 64)
    data: dict = {}
    env.events.report_to_master.fire(client_id="w", data=data)
    assert env.stats.get("echo", "tcp").num_requests == 1
    assert env.stats.total.response_times == {2: 1}

"""EchoUser and IdleUser in this process: the schedules against a server that
stalls, and the reconnect policy against a server that closes."""

from __future__ import annotations

from types import SimpleNamespace

import gevent
import pytest
from locust.env import Environment
from locust.event import Events
from rogue_servers import RogueServer, close_at_once, stall_once_then_echo

from loadgen.runtime import runtime
from loadgen.users import EchoUser, IdleUser

pytestmark = pytest.mark.load  # runs Locust or a lab: one at a time

STALL_S = 1.0
PACE_S = 0.1


def run_user(user_class, host: str, seconds: float, **options):
    """Run one user for ``seconds``; return (echo latencies in ms, failures, meter)."""
    parsed = SimpleNamespace(message_size=64, pace=PACE_S, connect_timeout=5.0,
                             io_timeout=5.0, schedule="closed", reconnect="yes",
                             source_ips="")
    vars(parsed).update(options)
    env = Environment(events=Events(), host=host, parsed_options=parsed)
    seen: list[tuple[str, float, object]] = []
    env.events.request.add_listener(
        lambda name, response_time, exception, **_: seen.append((name, response_time, exception)))
    user = user_class(env)
    user.on_start()
    greenlet = gevent.spawn(user.hold_connection)
    gevent.sleep(seconds)
    greenlet.kill()
    user.on_stop()
    echoes = [ms for name, ms, exc in seen if name == "echo" and exc is None]
    failures = [(name, exc.kind) for name, _, exc in seen if exc is not None]
    return echoes, failures, runtime(env).meter


@pytest.mark.parametrize("schedule", ["closed", "fixed"])
def test_a_stall_shows_once_closed_and_fully_fixed(schedule):
    with RogueServer(stall_once_then_echo(STALL_S)) as srv:
        echoes, failures, meter = run_user(EchoUser, srv.host, 2.0, schedule=schedule)
    assert failures == []
    slow = [ms for ms in echoes if ms >= 500]
    if schedule == "closed":
        # The client waited with the server: one slow sample, then on with life.
        assert len(slow) == 1 and slow[0] >= STALL_S * 1000 * 0.9
        assert len(echoes) <= 2.0 / PACE_S * 0.75
    else:
        # Every echo that was due during the stall reports the wait it suffered.
        assert len(slow) >= 4, sorted(echoes)[-8:]
        assert len(echoes) >= 2.0 / PACE_S * 0.75
    assert meter.histogram.get_total_count() == len(echoes)
    assert meter.connected == 0  # on_stop closed it


@pytest.mark.parametrize(("reconnect", "attempts"), [("yes", (4, 12)), ("no", (1, 1))])
def test_reconnect_policy(reconnect, attempts):
    with RogueServer(close_at_once) as srv:
        _, failures, meter = run_user(EchoUser, srv.host, 0.8, reconnect=reconnect)
    lo, hi = attempts
    assert lo <= meter.connect_attempts <= hi
    assert failures and all(kind == "ECONNRESET" for _, kind in failures)


def test_idle_user_holds_without_sending():
    with RogueServer(stall_once_then_echo(0)) as srv:
        echoes, failures, meter = run_user(IdleUser, srv.host, 0.5)
        assert meter.connected == 0  # closed at stop
    assert echoes == [] and failures == [] and meter.connect_attempts == 1

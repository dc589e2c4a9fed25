"""Fixtures for the load generator's tests.

Locust monkey-patches the whole standard library for gevent when it is first
imported. Inside the shared pytest process that would turn every other
test's threads and subprocess pipes into greenlets, so Locust is imported
here with ``LOCUST_SKIP_MONKEY_PATCH`` set (and the variable removed again,
so Locust subprocesses that tests start do patch as they must). The client
uses gevent's own sockets explicitly and works either way.

Headless Locust runs are subprocesses (:func:`run_locust`), as the lab runs
them; the project's servers come from ``tests/serverproc.py``.
"""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

_had = os.environ.get("LOCUST_SKIP_MONKEY_PATCH")
os.environ["LOCUST_SKIP_MONKEY_PATCH"] = "1"
try:
    import locust  # noqa: F401
finally:
    if _had is None:
        del os.environ["LOCUST_SKIP_MONKEY_PATCH"]

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))

from serverproc import ServerProcess  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def nofile_at_hard_limit():
    """Thousands of connections need the soft open-file limit at the hard one;
    Locust subprocesses inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    yield hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture(scope="module")
def epoll_server():
    with ServerProcess("epoll", "--nofile", "max") as srv:
        yield srv


@pytest.fixture
def env():
    """A Locust environment with a local runner (its statistics take the events)."""
    from locust.env import Environment
    from locust.event import Events

    env = Environment(events=Events())
    runner = env.create_local_runner()
    yield env
    runner.quit()

"""Fixtures for the servers' tests: every available model, started on port 0.

``model`` is parametrized over every model ``python -m servers --list`` says
is available here (contract order); ``start`` starts one and always kills it
at teardown. The process helper itself is ``tests/serverproc.py`` (shared with
the other test directories).
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from serverproc import ServerProcess  # noqa: E402
from srvclients import AVAILABLE  # noqa: E402


@pytest.fixture(params=AVAILABLE)
def model(request) -> str:
    return request.param


@pytest.fixture
def start():
    """``start(model, *args) -> ServerProcess``; every server is killed at teardown."""
    started: list[ServerProcess] = []

    def _start(model: str, *args: str, **kw) -> ServerProcess:
        srv = ServerProcess(model, *args, **kw)
        started.append(srv)
        return srv

    yield _start
    for srv in started:
        srv.close()


@pytest.fixture
def nofile_hard():
    """Raise this process's soft open-file limit to the hard one (thousands of
    client sockets); restored afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    yield hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

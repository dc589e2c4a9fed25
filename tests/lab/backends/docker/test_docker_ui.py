"""``run-lab SCENARIO --ui`` on Docker: the Locust web UI is published on
127.0.0.1:8089 from the master container, and its Lab tab sees the server
containers' live stats (the run loop's event files, bind-mounted read-only
into a master on this machine's daemon)."""

from __future__ import annotations

import io
import json
import shutil
import tempfile
import urllib.request
from pathlib import Path

import pytest

from lab.run.live import LiveView
from lab.run.ui import run_ui
from lab.scenario.types import ServerSpec

pytestmark = pytest.mark.docker

WEB = "http://127.0.0.1:8089"


def fetch(path: str) -> tuple[int, str]:
    with urllib.request.urlopen(WEB + path, timeout=3) as resp:
        return resp.status, resp.read().decode()


@pytest.mark.timeout(240)
def test_ui_on_docker_serves_locust_and_the_lab_tab(backend_factory, scenario_of):
    sc = scenario_of(ServerSpec(name="select", model="select"),
                     ServerSpec(name="epoll", model="epoll"), name="ui")
    backend, _ctx = backend_factory(sc)
    # Not pytest's tmp_path: that is mode 0700 and the master runs as uid 10001.
    out = Path(tempfile.mkdtemp(prefix="iolab-ui-"))
    out.chmod(0o755)
    seen: dict[str, object] = {}

    def ready() -> bool:
        try:
            seen["root"] = fetch("/")[0]
            lab = json.loads(fetch("/lab/stats")[1])
        except OSError:
            return False
        seen["servers"] = {s["server"]: s for s in lab["servers"]}
        return all(s["status"] == "running" for s in seen["servers"].values())

    try:
        stream = io.StringIO()
        run_ui(sc, backend, out, live=LiveView(stream, tty=False), poll_s=0.5, until=ready)
        assert seen["root"] == 200
        servers = seen["servers"]
        assert sorted(servers) == ["epoll", "select"]
        assert {name: s["model"] for name, s in servers.items()} == {
            "epoll": "epoll", "select": "select"}
        assert all(isinstance(s["rss_bytes"], int) for s in servers.values())
        assert f"{WEB}" in stream.getvalue()
        # After teardown nothing answers on the UI port any more.
        with pytest.raises(OSError):
            fetch("/")
    finally:
        shutil.rmtree(out, ignore_errors=True)

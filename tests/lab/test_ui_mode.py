"""``run-lab SCENARIO --ui`` on the local backend: servers up, web UI answering,
server events flowing to the files the UI's lab tab reads, then torn down."""

from __future__ import annotations

import io
import json
import os
import urllib.request
from pathlib import Path

import pytest

from lab.backends.local import LocalBackend, free_port
from lab.run.live import LiveView
from lab.run.ui import run_ui
from lab.scenario.loader import parse_scenario


@pytest.mark.timeout(120)
def test_ui_mode_serves_the_web_ui_and_keeps_events(tmp_path):
    scenario = parse_scenario("servers: [select, epoll]\nload: {steps: [10]}\n", "ui.yaml")
    port = free_port()
    backend = LocalBackend(scenario, web_port=port)
    seen: dict[str, object] = {}

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
                seen["status"] = resp.status
        except OSError:
            return False
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab/stats", timeout=2) as resp:
            seen["lab"] = resp.read().decode()
        servers = json.loads(seen["lab"])["servers"]
        seen["paths"] = paths = [s["path"] for s in servers]
        return bool(paths) and all(Path(p).exists() and Path(p).stat().st_size > 0
                                   for p in paths)

    stream = io.StringIO()
    run_dir = run_ui(scenario, backend, tmp_path, live=LiveView(stream, tty=False), poll_s=0.2,
                     until=ready)
    assert seen["status"] == 200
    assert "select" in seen["lab"] and "epoll" in seen["lab"]  # the web UI's lab tab reads them
    assert [Path(p).name for p in seen["paths"]] == ["select.events.jsonl", "epoll.events.jsonl"]
    assert all(Path(p).parent == run_dir / "logs" for p in seen["paths"])
    out = stream.getvalue()
    assert "select: tcp://127.0.0.1:" in out and "epoll: tcp://127.0.0.1:" in out
    assert f"http://127.0.0.1:{port}" in out
    assert "IOLAB_SERVER_EVENTS" not in os.environ  # passed to the master, never set here
    assert backend.servers == [] and backend.loads == []  # cleaned up
    for name in ("select", "epoll"):
        ready_line = (run_dir / f"logs/{name}.server.stdout.log").read_text().splitlines()[0]
        with pytest.raises(ProcessLookupError):
            os.kill(int(ready_line.split("pid=")[1].split()[0]), 0)

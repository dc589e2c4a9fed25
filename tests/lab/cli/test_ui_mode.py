"""``run-lab SCENARIO --ui`` on the local backend: servers up, web UI answering,
server events flowing to the files the UI's lab tab reads, then torn down."""

from __future__ import annotations

import io
import json
import os
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from lab.backends.local import LocalBackend, free_port
from lab.backends.locust_cmd import master_command
from lab.cli.run_cmd import _parser
from lab.run.live import LiveView
from lab.run.ui import run_ui
from lab.scenario.loader import parse_scenario

pytestmark = pytest.mark.load  # runs Locust or a lab: one at a time


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
        if not (paths and all(Path(p).exists() and Path(p).stat().st_size > 0 for p in paths)):
            return False
        seen["targets"] = [s["target"] for s in servers]
        # Switch the load to the second server; the start form shows it on reload.
        body = urllib.parse.urlencode({"server": "epoll"}).encode()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab/target", data=body,
                                    timeout=2) as resp:
            seen["switch"] = json.loads(resp.read().decode())
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
            seen["index"] = resp.read().decode()
        return True

    stream = io.StringIO()
    run_dir = run_ui(scenario, backend, tmp_path, live=LiveView(stream, tty=False), poll_s=0.2,
                     until=ready)
    assert seen["status"] == 200
    assert "select" in seen["lab"] and "epoll" in seen["lab"]  # the web UI's lab tab reads them
    assert [Path(p).name for p in seen["paths"]] == ["select.events.jsonl", "epoll.events.jsonl"]
    assert all(Path(p).parent == run_dir / "logs" for p in seen["paths"])
    out = stream.getvalue()
    assert seen["targets"] == [
        json.loads((run_dir / f"logs/{name}.target.json").read_text())["target"]
        for name in ("select", "epoll")]
    assert all(t and t.startswith("tcp://127.0.0.1:") and t in out for t in seen["targets"])
    assert seen["switch"]["success"] and seen["switch"]["applied"]
    args = json.loads(seen["index"].split("window.templateArgs = ")[1].split("\n")[0])
    assert args["host"] == seen["targets"][1]  # the next test loads epoll
    assert args["extra_options"]["steps"]["default_value"] == "10:10s"  # the step plan
    assert args["num_users"] == 10  # the plan's peak, not 1
    assert '<script src="lab/tab.js"></script>' in seen["index"]
    assert "select: tcp://127.0.0.1:" in out and "epoll: tcp://127.0.0.1:" in out
    assert f"http://127.0.0.1:{port}" in out
    assert "IOLAB_SERVER_EVENTS" not in os.environ  # passed to the master, never set here
    assert backend.servers == [] and backend.loads == []  # cleaned up
    for name in ("select", "epoll"):
        ready_line = (run_dir / f"logs/{name}.server.stdout.log").read_text().splitlines()[0]
        with pytest.raises(ProcessLookupError):
            os.kill(int(ready_line.split("pid=")[1].split()[0]), 0)


def test_master_command_for_the_ui():
    load = parse_scenario("servers: [epoll]\nload: {steps: [10, 20], hold: 2s, "
                          "connect_rate: 50}\n", "s.yaml").load
    cmd = master_command(load, target_host="127.0.0.1", target_port=9, workers=1,
                         step_results="x", ui=True, web_host="0.0.0.0", web_port=18089)
    joined = " ".join(cmd)
    assert "--steps 10:2s,20:2s" in joined
    assert "--web-host 0.0.0.0 --web-port 18089 --users 20 --spawn-rate 50" in joined
    headless = master_command(load, target_host="127.0.0.1", target_port=9, workers=1,
                              step_results="x")
    assert "--users" not in headless and "--headless" in headless


def test_run_lab_web_options():
    args = _parser().parse_args(["lab.yaml", "--ui"])
    assert (args.web_host, args.web_port) == ("127.0.0.1", 8089)
    args = _parser().parse_args(["lab.yaml", "--ui", "--web-host", "0.0.0.0",
                                 "--web-port", "9000"])
    assert (args.web_host, args.web_port) == ("0.0.0.0", 9000)
    backend = LocalBackend(parse_scenario("servers: [epoll]\nload: {steps: [10]}\n", "s.yaml"),
                           web_host="127.0.0.2", web_port=9001)
    try:
        assert (backend.web_host, backend.web_port) == ("127.0.0.2", 9001)
    finally:
        backend.cleanup()

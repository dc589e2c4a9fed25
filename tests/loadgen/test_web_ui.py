"""The web UI path: options typed into the start form reach the users, and
``--steps`` from the form runs and writes its step results."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request

import pytest
from locust_runs import free_port, read_steps, start, tail, wait_for
from serverproc import ServerProcess

pytestmark = pytest.mark.load  # runs Locust or a lab: one at a time


def http(url: str, form: dict[str, str] | None = None) -> dict:
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    with urllib.request.urlopen(url, data=data, timeout=10) as r:
        return json.loads(r.read().decode())


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def test_steps_and_options_from_the_start_form(tmp_path):
    results, log = tmp_path / "steps.jsonl", tmp_path / "log"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with ServerProcess("epoll", "--nofile", "max") as srv:
        host = f"tcp://{srv.host}:{srv.port}"
        proc = start(["--host", host, "--web-host", "127.0.0.1", "--web-port", str(port),
                      "EchoUser"], log)
        try:
            assert wait_for(lambda: answers(base + "/"), 60), tail(log)
            reply = http(base + "/swarm", {
                "user_count": "1", "spawn_rate": "1", "host": host,
                "steps": "40:2s", "step_spawn_rate": "400", "step_results": str(results),
                "message_size": "32", "pace": "0.5",
            })
            assert reply["success"], reply
            assert wait_for(lambda: read_steps(results), 60), tail(log)
            stats = http(base + "/stats/requests")
        finally:
            proc.terminate()
            proc.wait(30)
    (rec,) = read_steps(results)
    assert rec["users"] == rec["connected"] == 40 and rec["failures"] == {}
    assert rec["rps"] == pytest.approx(80, rel=0.25)  # pace 0.5 s from the form, not 1 s
    echo = next(s for s in stats["stats"] if s["name"] == "echo")
    assert echo["method"] == "tcp" and echo["num_failures"] == 0
    assert echo["avg_content_length"] == 32  # message size from the form

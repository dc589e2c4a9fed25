"""The Lab tab: Locust with the web UI on 127.0.0.1, a locustfile that imports
``loadgen.lab_tab``, and server event files we write; checked over HTTP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from loadgen import lab_tab
from loadgen.lab_tab import EventTail

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = """
from locust import User, constant, task
from loadgen import lab_tab  # noqa: F401


class Nobody(User):
    wait_time = constant(1)

    @task
    def nothing(self):
        pass
"""


def stats_line(connections: int, **extra) -> str:
    event = {"event": "stats", "model": "epoll", "pid": 1, "connections": connections,
             "peak_connections": connections, "rss_bytes": 3 * 2**20, "cpu_user_s": 1.5,
             "cpu_sys_s": 0.5, **extra}
    return json.dumps(event) + "\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, r.read().decode()


@pytest.fixture(scope="module")
def locust_ui(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("labtab")
    events = tmp / "epoll.events.jsonl"
    events.write_text(stats_line(10) + json.dumps(
        {"event": "limit", "kind": "EMFILE", "fd": 1020, "connections": 1016}) + "\n"
        + stats_line(1016))
    missing = tmp / "select.events.jsonl"
    (tmp / "locustfile.py").write_text(LOCUSTFILE)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "IOLAB_SERVER_EVENTS": os.pathsep.join([str(events), str(missing)])}
    with (tmp / "locust.err").open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", str(tmp / "locustfile.py"), "--web-host",
             "127.0.0.1", "--web-port", str(port), "--host", "tcp://127.0.0.1:1"],
            cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=err)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                get(base + "/")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("locust web UI did not start:\n" + (tmp / "locust.err").read_text())
                time.sleep(0.3)
        yield base, events
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_locust_own_pages_still_answer(locust_ui):
    base, _ = locust_ui
    status, html = get(base + "/")
    assert status == 200
    assert '"extended_tabs"' in html.replace("'", '"') or "extended_tabs" in html
    assert "iolab" in html  # the tab key in the template args
    status, body = get(base + "/stats/requests")
    data = json.loads(body)
    assert status == 200 and "stats" in data
    lab = next(e for e in data["extended_stats"] if e["key"] == "iolab")
    assert [r["server"] for r in lab["data"]] == ["epoll", "select"]


def test_lab_page(locust_ui):
    base, _ = locust_ui
    status, html = get(base + "/lab")
    assert status == 200
    assert "/lab/stats" in html and "<table" in html


def test_lab_stats_reads_and_tails_event_files(locust_ui):
    base, events = locust_ui
    data = json.loads(get(base + "/lab/stats")[1])
    epoll, select = data["servers"]
    assert (epoll["server"], epoll["status"], epoll["connections"]) == ("epoll", "running", 1016)
    assert epoll["limits"] == ["EMFILE"] and epoll["cpu_s"] == 2.0
    assert epoll["rss_bytes"] == 3 * 2**20
    assert select["status"] == "waiting" and select["connections"] is None
    with events.open("a") as f:
        f.write(stats_line(1200))
        f.write('{"event": "final", "connections": 0, "peak_connections": 1200')  # no newline yet
    assert json.loads(get(base + "/lab/stats")[1])["servers"][0]["connections"] == 1200
    with events.open("a") as f:
        f.write("}\n")
    epoll = json.loads(get(base + "/lab/stats")[1])["servers"][0]
    got = (epoll["status"], epoll["connections"], epoll["peak_connections"])
    assert got == ("stopped", 0, 1200)


def test_tail_restarts_after_truncation(tmp_path):
    path = tmp_path / "poll.events.jsonl"
    path.write_text(stats_line(500) + "not json\n")
    tail = EventTail(path)
    tail.poll()
    assert tail.snapshot()["connections"] == 500
    path.write_text(stats_line(7))
    tail.poll()
    assert tail.snapshot()["connections"] == 7 and tail.name == "poll"


def test_installs_only_where_the_web_ui_runs(monkeypatch):
    """Headless runs and workers have no web UI: the init hook must leave them alone."""
    calls = []
    monkeypatch.setattr(lab_tab, "install", calls.append)
    lab_tab._on_init(environment=type("Env", (), {"web_ui": None})())
    assert calls == []
    ui = object()
    lab_tab._on_init(environment=type("Env", (), {"web_ui": ui})())
    assert calls == [ui]

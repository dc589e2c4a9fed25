"""The Lab tab: Locust with the web UI on 127.0.0.1, a locustfile that imports
``loadgen.lab_tab``, and server event files we write; checked over HTTP."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from loadgen import lab_tab
from loadgen.lab_tab import EventTail

pytestmark = pytest.mark.locust  # imports Locust (gevent patches the stdlib); loads nothing

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


def start_locust(tmp: Path, paths: list[Path], *extra: str):
    """Locust with the web UI on a free port, reading ``paths``; yields (base URL, proc)."""
    (tmp / "locustfile.py").write_text(LOCUSTFILE)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "IOLAB_SERVER_EVENTS": os.pathsep.join(str(p) for p in paths)}
    with (tmp / "locust.err").open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", str(tmp / "locustfile.py"), "--web-host",
             "127.0.0.1", "--web-port", str(port), "--host", "tcp://127.0.0.1:1", *extra],
            cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=err)
    return f"http://127.0.0.1:{port}", proc


def wait_up(url: str, proc: subprocess.Popen, err: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            get(url)
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("locust web UI did not start:\n" + err.read_text())
            time.sleep(0.3)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def locust_ui(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("labtab")
    events = tmp / "epoll.events.jsonl"
    events.write_text(stats_line(10) + json.dumps(
        {"event": "limit", "kind": "EMFILE", "fd": 1020, "connections": 1016}) + "\n"
        + stats_line(1016))
    missing = tmp / "select.events.jsonl"
    base, proc = start_locust(tmp, [events, missing])
    try:
        wait_up(base + "/", proc, tmp / "locust.err")
        yield base, events
    finally:
        stop(proc)


def write_target(events: Path, port: int) -> str:
    """The ``<server>.target.json`` that ``lab/run/ui.py`` writes."""
    name = events.name.removesuffix(".events.jsonl")
    target = f"tcp://127.0.0.1:{port}"
    events.with_name(name + ".target.json").write_text(json.dumps(
        {"server": name, "model": name, "host": "127.0.0.1", "port": port, "target": target}))
    return target


@pytest.fixture(scope="module")
def locust_ui_base_path(tmp_path_factory):
    """``--web-base-path /locust`` and two servers with their addresses."""
    tmp = tmp_path_factory.mktemp("labtab-base")
    paths = [tmp / "epoll.events.jsonl", tmp / "poll.events.jsonl"]
    for i, path in enumerate(paths):
        path.write_text(stats_line(5 + i))
        write_target(path, 1 + i)  # epoll = the --host, tcp://127.0.0.1:1
    base, proc = start_locust(tmp, paths, "--web-base-path", "/locust")
    try:
        wait_up(base + "/locust/", proc, tmp / "locust.err")
        yield base
    finally:
        stop(proc)


def test_locust_own_pages_still_answer(locust_ui):
    base, _ = locust_ui
    status, html = get(base + "/")
    assert status == 200
    assert '"extended_tabs"' in html.replace("'", '"') or "extended_tabs" in html
    assert "iolab" in html  # the tab key in the template args
    status, body = get(base + "/stats/requests")
    data = json.loads(body)
    assert status == 200 and "stats" in data
    # no second table of the servers in Locust's own UI: the panel draws the one
    assert "extended_tables" not in html and not data.get("extended_stats")
    rows = json.loads(get(base + "/lab/stats")[1])["rows"]
    assert [r["server"] for r in rows] == ["epoll", "select"]


def test_lab_page(locust_ui):
    base, _ = locust_ui
    status, html = get(base + "/lab")
    assert status == 200
    assert '<script src="lab/tab.js">' in html and 'id="iolab-root"' in html
    status, script = get(base + "/lab/tab.js")
    assert status == 200 and 'url("stats")' in script and 'url("target")' in script


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


ABSOLUTE_LAB = re.compile(r"""["'`(=]\s*/lab""")  # "/lab..., '/lab..., `/lab..., href=/lab


def post(url: str, form: dict[str, str]) -> tuple[int, dict]:
    data = urllib.parse.urlencode(form).encode()
    try:
        with urllib.request.urlopen(url, data=data, timeout=5) as r:
            return r.status, json.loads(r.read().decode())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read().decode())


def test_every_lab_url_is_relative():
    for text in (lab_tab.SCRIPT.read_text(), lab_tab.render_page()):
        assert not ABSOLUTE_LAB.search(text), ABSOLUTE_LAB.search(text)


def test_under_web_base_path(locust_ui_base_path):
    base = locust_ui_base_path + "/locust"
    status, index = get(base + "/")
    assert status == 200 and '<script src="lab/tab.js"></script>' in index
    assert not ABSOLUTE_LAB.search(index.split("window.templateArgs")[0])
    assert get(base + "/lab")[0] == 200 and get(base + "/lab/tab.js")[0] == 200
    with pytest.raises(urllib.error.HTTPError):  # nothing of ours outside the base path
        get(locust_ui_base_path + "/lab/stats")
    data = json.loads(get(base + "/lab/stats")[1])
    assert [(s["server"], s["address"], s["connections"]) for s in data["servers"]] == [
        ("epoll", "127.0.0.1:1", 5), ("poll", "127.0.0.1:2", 6)]
    assert data["target"] == "tcp://127.0.0.1:1" and data["pending"] is None
    assert [len(s["history"]) for s in data["servers"]] == [1, 1]
    rows = json.loads(get(base + "/lab/stats")[1])["rows"]
    assert [r["load_target"] for r in rows] == ["◀ target", ""]


def test_switching_the_target(locust_ui_base_path):
    base = locust_ui_base_path + "/locust"
    get(base + "/")  # the start form now shows tcp://127.0.0.1:1
    status, reply = post(base + "/lab/target", {"server": "nobody"})
    assert status == 400 and "epoll (tcp://127.0.0.1:1)" in reply["message"]
    status, reply = post(base + "/lab/target", {"server": "poll"})
    assert status == 200 and reply["applied"] and reply["target"] == "tcp://127.0.0.1:2"
    assert json.loads(get(base + "/lab/stats")[1])["target"] == "tcp://127.0.0.1:2"
    # A start form still showing the old host gets the Lab's pick ...
    status, reply = post(base + "/swarm", {"user_count": "1", "spawn_rate": "1",
                                           "host": "tcp://127.0.0.1:1"})
    assert reply["success"] and reply["host"] == "tcp://127.0.0.1:2"
    # ... a pick during a test waits for its end ...
    status, reply = post(base + "/lab/target", {"target": "tcp://127.0.0.1:1"})
    assert status == 200 and not reply["applied"] and reply["pending"] == "tcp://127.0.0.1:1"
    data = json.loads(get(base + "/lab/stats")[1])
    assert (data["target"], data["pending"]) == ("tcp://127.0.0.1:2", "tcp://127.0.0.1:1")
    post(base + "/stop", {})
    deadline = time.monotonic() + 10
    while json.loads(get(base + "/lab/stats")[1])["pending"] and time.monotonic() < deadline:
        time.sleep(0.2)
    data = json.loads(get(base + "/lab/stats")[1])
    assert (data["target"], data["pending"]) == ("tcp://127.0.0.1:1", None)
    assert 'tcp://127.0.0.1:1' in get(base + "/")[1]  # the form's host after a reload
    # ... and a host typed into the form wins.
    status, reply = post(base + "/swarm", {"user_count": "1", "spawn_rate": "1",
                                           "host": "tcp://127.0.0.1:7"})
    assert reply["success"] and reply["host"] == "tcp://127.0.0.1:7"
    post(base + "/stop", {})


def test_history_and_address(tmp_path):
    path = tmp_path / "epoll.events.jsonl"
    path.write_text(stats_line(1, time=100.0) + stats_line(3, time=100.5))
    tail = EventTail(path)
    tail.poll()
    assert tail.snapshot()["history"] == [[100.0, 1], [100.5, 3]]
    assert tail.snapshot()["address"] is None  # no target file (yet)
    write_target(path, 4242)
    tail.poll()
    snap = tail.snapshot()
    assert (snap["address"], snap["target"]) == ("127.0.0.1:4242", "tcp://127.0.0.1:4242")

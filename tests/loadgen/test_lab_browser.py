"""``run-lab SCENARIO --ui`` in a real browser: headless Chromium, driven by
Playwright (the session's ``browser``, ``tests/conftest.py``), starts a test
from Locust's form, switches the load to the second server in the Lab tab and
starts again; the second server's connections rise, in the tab's DOM and in
``lab/stats``. The Lab tab shows its servers in one table, not two."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from lab import ROOT
from lab.backends.local import free_port

pytestmark = [pytest.mark.load, pytest.mark.browser, pytest.mark.timeout(240)]

# A long hold: the test is certainly still running when the target is switched
# (the switch must then wait for the stop); the Stop button ends it early.
SCENARIO = "name: browser\nservers: [epoll, poll]\nload: {steps: [10, 20], hold: 60s}\n"


def stats(base: str) -> dict:
    with urllib.request.urlopen(base + "/lab/stats", timeout=5) as r:
        return json.loads(r.read().decode())


def wait_for(check, timeout: float, what: str, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}\n--- run-lab:\n{log.read_text()[-3000:]}")


def server(data: dict, name: str) -> dict:
    return next(s for s in data["servers"] if s["server"] == name)


def click_button(text: str) -> str:
    return (f"(() => {{ const b = [...document.querySelectorAll('button')]"
            f".find(x => x.textContent.trim() === {json.dumps(text)} && !x.disabled);"
            f" if (b) b.click(); return !!b; }})()")


def wait_js(page, expression: str, timeout: float, what: str):
    """Poll ``expression`` in the page until truthy; its value."""
    try:
        handle = page.wait_for_function(expression, timeout=timeout * 1000, polling=250)
    except PlaywrightTimeout:
        pytest.fail(f"timed out waiting for {what}")
    return handle.json_value()


# Every table in the page that lists a server of the run (by its name in a cell).
SERVER_TABLES = ("(name) => [...document.querySelectorAll('table')].filter(t =>"
                 " [...t.querySelectorAll('td')].some(td => td.textContent.trim() === name))"
                 ".length")


@pytest.mark.slow  # a whole run-lab --ui: two servers, two tests of 10-20 users
def test_switch_the_target_in_the_lab_tab(tmp_path, page):
    scenario = tmp_path / "browser.yaml"
    scenario.write_text(SCENARIO)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "run-lab.log"
    with log.open("w") as out:
        lab = subprocess.Popen(
            [sys.executable, "-m", "lab", str(scenario), "--ui", "--backend", "local",
             "--web-host", "127.0.0.1", "--web-port", str(port), "--out", str(tmp_path / "out")],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        first = wait_for(lambda: all(s["target"] and s["status"] == "running"
                                     for s in stats(base)["servers"]) and stats(base),
                         90, "both servers listed with their addresses", log)
        epoll_target, poll_target = (server(first, n)["target"] for n in ("epoll", "poll"))
        assert first["target"] == epoll_target  # the master starts against the first server

        page.goto(base + "/")
        wait_js(page, "!!document.querySelector('input[name=host]') && "
                "!!document.getElementById('iolab-plan')", 30, "the start form")
        form = page.evaluate("Object.fromEntries([...document.querySelectorAll('input[name]')]"
                             ".map(i => [i.name, i.value]))")
        assert form["steps"] == "10:60s,20:60s" and form["userCount"] == "20"
        assert form["host"] == epoll_target
        assert "10 users for 60 s → 20 users for 60 s" in page.locator("#iolab-plan").inner_text()

        # 1. A test against the first server.
        assert page.evaluate(click_button("Start"))
        wait_for(lambda: (server(stats(base), "epoll")["connections"] or 0) >= 10, 60,
                 "epoll's connections", log)

        # 2. The Lab tab: every server with its address; switch to poll mid-test.
        page.get_by_role("tab", name="Lab", exact=True).click(timeout=20_000)
        pick_poll = page.locator("#iolab-panel button.iolab-pick[data-server=poll]")
        pick_poll.wait_for(timeout=20_000)
        addresses = page.evaluate("[...document.querySelectorAll('#iolab-rows tr')].map(r => "
                                  "[r.dataset.server, r.querySelector('[data-key=address]')"
                                  ".textContent])")
        assert addresses == [["epoll", epoll_target.removeprefix("tcp://")],
                             ["poll", poll_target.removeprefix("tcp://")]]
        pick_poll.click()
        wait_js(page, "document.getElementById('iolab-target').textContent"
                ".includes('poll')", 10, "the new target in the panel")
        assert stats(base)["pending"] == poll_target  # the running test keeps epoll

        # 3. Stop, then a new test from the form: it loads poll.
        wait_js(page, click_button("Stop"), 20, "the Stop button")
        wait_for(lambda: stats(base)["target"] == poll_target, 20, "the switch", log)
        wait_js(page, click_button("New"), 30, "the New button")
        wait_js(page, f"(document.querySelector('input[name=host]') || {{}}).value === "
                f"{json.dumps(poll_target)}", 15, "the form's host set to poll")
        epoll_peak = server(stats(base), "epoll")["peak_connections"]
        assert page.evaluate(click_button("Start"))
        rose = wait_js(page, "(() => { const td = document.querySelector("
                       "'#iolab-rows tr[data-server=poll] td[data-key=connections]');"
                       " const n = td ? parseInt(td.textContent, 10) : 0;"
                       " return n >= 10 ? n : 0; })()", 60,
                       "poll's connections in the Lab tab")
        assert rose >= 10
        data = stats(base)
        assert (server(data, "poll")["peak_connections"] or 0) >= 10
        assert server(data, "epoll")["connections"] == 0  # the load left epoll
        assert server(data, "epoll")["peak_connections"] == epoll_peak
        wait_js(page, "!!document.querySelector("
                "'#iolab-chart-svg polyline[data-server=poll]')", 10, "poll's chart line")

        # 4. Seconds into the Lab tab of a running test (Locust's own tables
        # refresh every 2 s): the servers are listed in one table, not two.
        page.wait_for_timeout(4_000)
        assert page.get_by_role("tab", name="Lab", exact=True).get_attribute(
            "aria-selected") == "true"
        for name in ("epoll", "poll"):
            assert page.evaluate(SERVER_TABLES, name) == 1, name
        assert page.locator("#iolab-servers").count() == 1
    finally:
        lab.send_signal(signal.SIGINT)
        try:
            code = lab.wait(60)
        except subprocess.TimeoutExpired:
            lab.kill()
            code = lab.wait(10)
    assert code == 130, log.read_text()[-3000:]
    assert "everything torn down" in log.read_text()


def test_lab_tab_under_a_web_base_path(tmp_path, page):
    """The panel's script resolves every URL against its own: under
    ``--web-base-path /locust`` it still finds ``/locust/lab/stats``."""
    events = tmp_path / "epoll.events.jsonl"
    events.write_text(json.dumps({"event": "stats", "model": "epoll", "connections": 7,
                                  "peak_connections": 7, "time": time.time()}) + "\n")
    (tmp_path / "epoll.target.json").write_text(json.dumps(
        {"server": "epoll", "model": "epoll", "host": "127.0.0.1", "port": 1,
         "target": "tcp://127.0.0.1:1"}))
    port = free_port()
    base = f"http://127.0.0.1:{port}/locust"
    log = tmp_path / "locust.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", "loadgen/locustfile.py", "--host",
             "tcp://127.0.0.1:1", "--web-host", "127.0.0.1", "--web-port", str(port),
             "--web-base-path", "/locust", "--steps", "5:1s", "EchoUser"],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "IOLAB_SERVER_EVENTS": str(events)})
    try:
        wait_for(lambda: stats(base)["servers"], 60, "the web UI", log)
        for url, root in ((base + "/?tab=iolab", "#iolab-embedded"),
                          (base + "/lab", "#iolab-root")):
            page.goto(url)
            cell = wait_js(page,
                           f"(document.querySelector('{root} #iolab-rows tr[data-server=epoll] "
                           "td[data-key=connections]') || {}).textContent", 30,
                           f"the panel on {url}")
            assert cell == "7"
            assert page.locator(f"{root} #iolab-rows [data-key=address]").inner_text() \
                == "127.0.0.1:1"
            assert page.evaluate(SERVER_TABLES, "epoll") == 1
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

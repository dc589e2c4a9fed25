"""Headless Chromium driven through the DevTools protocol, with nothing but
``websocket-client``: start the browser, attach to its page, navigate and
evaluate JavaScript. Small on purpose: just what the UI tests need."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import websocket

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
LISTENING = re.compile(r"DevTools listening on (ws://\S+)")


def find_chromium() -> str | None:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """One headless Chromium and a session on its first page."""

    def __init__(self, binary: str, timeout: float = 30.0):
        self.profile = Path(tempfile.mkdtemp(prefix="iolab-chromium-"))
        self.stderr = (self.profile / "stderr.log").open("w+")
        self.proc = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu",
             "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
             "--remote-debugging-port=0", f"--user-data-dir={self.profile}",
             "--window-size=1280,1000", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.stderr)
        self.ids = itertools.count(1)
        self.ws: websocket.WebSocket | None = None
        try:
            browser_ws = self._wait_listening(timeout)
            port = int(browser_ws.split(":")[2].split("/")[0])
            self.ws = websocket.create_connection(self._page_ws(port, timeout), timeout=timeout)
            self.send("Page.enable")
            self.send("Runtime.enable")
        except BaseException:
            self.close()
            raise

    def _wait_listening(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.stderr.seek(0)
            m = LISTENING.search(self.stderr.read())
            if m:
                return m.group(1)
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stderr.seek(0)
        raise RuntimeError(f"chromium did not start:\n{self.stderr.read()[-2000:]}")

    @staticmethod
    def _page_ws(port: int, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                pages = [t for t in json.load(r) if t.get("type") == "page"]
            if pages:
                return pages[0]["webSocketDebuggerUrl"]
            if time.monotonic() > deadline:
                raise RuntimeError("chromium has no page to attach to")
            time.sleep(0.1)

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """One command; waits for its reply (events in between are dropped)."""
        assert self.ws is not None
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def navigate(self, url: str) -> None:
        self.send("Page.navigate", url=url)

    def js(self, expression: str) -> Any:
        """The value of ``expression`` (promises awaited); JS exceptions raise."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JS error in {expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_js(self, expression: str, timeout: float = 30.0, what: str = "") -> Any:
        """Poll until ``expression`` is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = self.js(expression)
            except RuntimeError as exc:  # e.g. the page is still loading
                last = exc
            else:
                if last:
                    return last
            time.sleep(0.25)
        raise AssertionError(f"timed out waiting for {what or expression} (last: {last!r})")

    def close(self) -> None:
        if self.ws is not None:
            try:
                self.ws.close()
            except OSError:
                pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.stderr.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")

"""The lab only loads the process it started: a custom server whose port is
held by another program gets no load (the stranger sees zero connections),
the message names the holder's pid, and the run exits 1 with nothing left."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

import pytest
from faultkit import custom_scenario, lab_processes, wait_for
from paths import ROOT

from lab.backends.listeners import foreign, listeners
from lab.backends.local import free_port

pytestmark = pytest.mark.load  # runs Locust or a lab: one at a time



class Stranger:
    """A listener the test owns, counting every connection it is sent."""

    def __init__(self, port: int):
        self.sock = socket.create_server(("127.0.0.1", port))
        self.sock.settimeout(0.2)
        self.accepted = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self):
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


def test_the_kernel_names_a_listeners_owner():
    port = free_port()
    stranger = Stranger(port)
    other = subprocess.Popen(["sleep", "30"])
    try:
        (found,) = listeners(port)
        assert found.pid == os.getpid() and "python" in found.command
        assert foreign(port, os.getpid()) == []  # ours
        assert foreign(port, other.pid) == [found]  # not that process's, nor its children's
    finally:
        other.kill()
        other.wait()
        stranger.close()


@pytest.mark.parametrize("started_first", [True, False], ids=["port-taken", "port-raced"])
def test_a_custom_server_on_a_taken_port_gets_no_load(tmp_path, started_first):
    port = free_port()
    # port-raced: the custom server is a wrapper that never listens itself, so
    # the stranger that appears on the port must be told apart from it.
    command = (["{python}", f"{ROOT}/scenarios/custom/echo_server.py", "--port", "{port}"]
               if started_first else ["sleep", "30"])
    scenario = custom_scenario(tmp_path / "taken.yaml", "mine", command,
                               {"connect_rate": 1000, "hold": "1s", "steps": [50]}, port=port)
    before = lab_processes()
    stranger = Stranger(port) if started_first else None
    proc = subprocess.Popen([sys.executable, "-m", "lab", str(scenario), "--out",
                             str(tmp_path / "out")], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        if stranger is None:  # once the lab has checked the port and started its server
            wait_for(lambda: list((tmp_path / "out").glob("*/logs/mine.server.*")), 60,
                     "the custom server to start")
            stranger = Stranger(port)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()  # reaped: no zombie, no ResourceWarning later
        accepted = stranger.accepted if stranger else 0
        if stranger:
            stranger.close()
    assert proc.returncode == 1, out + err
    assert accepted == 0
    assert f"pid {os.getpid()}" in err and f"port {port}" in err, err
    assert not (lab_processes() - before)

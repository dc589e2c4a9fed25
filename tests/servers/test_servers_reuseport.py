"""``--processes N`` (servers/prefork.py): N processes, each with its own
SO_REUSEPORT listener and open-file limit, behind one READY line and one
merged event stream; the server as a whole starts, stops and crashes like a
single process."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
from serverproc import ROOT
from srvclients import AVAILABLE, held_connections, roundtrip

from contract.models import REUSEPORT_MODELS
from lab.host.ceiling import binding, server_ceilings
from lab.host.facts import HostFacts

# load: N processes at their walls at once; run alone (a count fell short under -n 2)
pytestmark = [pytest.mark.load, pytest.mark.timeout(120)]

MODELS = [m for m in AVAILABLE if m in REUSEPORT_MODELS]
FACTS = HostFacts(nofile_hard=20000, file_max=1 << 40, pid_max=1 << 20, threads_max=1 << 20)


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper that is not us counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def wait_gone(pids, timeout: float = 10.0) -> list[int]:
    """The pids still running after ``timeout``; they are killed (no test leaves any)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    left = [p for p in pids if alive(p)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left


def child_pids(srv) -> list[int]:
    return [p["pid"] for p in srv.latest_stats()["processes"]]


def assert_stopped_cleanly(srv, children) -> dict:
    """The merged final is the last line; exit 0; no child left."""
    final = srv.terminate()
    assert srv.returncode == 0, srv.stderr
    assert srv.events()[-1] is final and {p["pid"] for p in final["processes"]} == set(children)
    assert wait_gone(children) == []
    return final


@pytest.mark.parametrize("model", MODELS)
def test_three_processes_hold_more_than_one_processes_ceiling(start, model, nofile_hard):
    one = binding(server_ceilings(model, 128, FACTS)).connections
    assert one < 150 <= binding(server_ceilings(model, 128, FACTS, processes=3)).connections
    srv = start(model, "--processes", "3", "--nofile", "128")
    assert srv.ready["processes"] == "3" and srv.nofile == 128
    socks = [socket.create_connection((srv.host, srv.port), timeout=10) for _ in range(150)]
    try:
        for i, sock in enumerate(socks):
            assert roundtrip(sock, f"hello {i}".encode()) == f"hello {i}".encode()
        stats = srv.wait_stats(lambda e: e["connections"] == 150)
        per = stats["processes"]
        assert len(per) == 3 and srv.pid not in {p["pid"] for p in per}
        assert sum(p["connections"] for p in per) == 150
        assert sum(1 for p in per if p["connections"]) >= 2  # the kernel spread them
        assert stats["accepted"] == 150 and stats["refused"] == {}
        assert stats["peak_connections"] == 150 and stats["bytes_out"] == stats["bytes_in"] > 0
        assert stats["rss_bytes"] > sum(p["rss_bytes"] for p in per)  # the parent's too
    finally:
        for sock in socks:
            sock.close()
    srv.wait_stats(lambda e: e["connections"] == 0)
    final = assert_stopped_cleanly(srv, [p["pid"] for p in per])
    assert final["closed"] == final["accepted"] == 150 and final["peak_connections"] == 150


@pytest.mark.parametrize("model", MODELS)
def test_each_process_refuses_at_its_own_wall(start, model, nofile_hard):
    """200 offered to 2 processes of nofile 64: each holds its own nofile less
    its overhead, and refuses the rest of its share (EMFILE) while the other
    still serves: held is 2 x the single process's ceiling, as ceiling.py says."""
    srv = start(model, "--processes", "2", "--nofile", "64")
    children = child_pids(srv)
    predicted = binding(server_ceilings(model, 64, FACTS, processes=2))
    assert predicted.limit == "EMFILE"
    assert held_connections(srv, 200) == predicted.connections
    if model != "uvloop":  # libuv refuses at EMFILE by itself, unseen (servers/uvloop_loop.py)
        limit = srv.wait_event(lambda e: e["event"] == "limit")
        assert limit["kind"] == "EMFILE" and limit["pid"] in children
        assert [e["kind"] for e in srv.events("limit")] == ["EMFILE"]  # once for the server
    final = assert_stopped_cleanly(srv, children)
    assert final["peak_connections"] == predicted.connections


def test_select_refuses_at_fd_setsize_in_every_process(start, nofile_hard):
    srv = start("select", "--processes", "2", "--nofile", "4096")
    wall = binding(server_ceilings("select", 4096, FACTS)).connections  # 1024 - 5
    socks = [socket.create_connection((srv.host, srv.port), timeout=10) for _ in range(2600)]
    try:
        stats = srv.wait_stats(
            lambda e: e["accepted"] + e["refused"].get("FD_SETSIZE", 0) == 2600, timeout=30)
        assert [p["connections"] for p in stats["processes"]] == [wall, wall]
        assert stats["connections"] == 2 * wall and stats["max_fd"] >= 1024
        assert stats["refused"]["FD_SETSIZE"] == 2600 - 2 * wall
        assert roundtrip(socks[0], b"still here") == b"still here"
    finally:
        for sock in socks:
            sock.close()
    assert_stopped_cleanly(srv, [p["pid"] for p in stats["processes"]])


def test_a_child_killed_is_a_crash_of_the_server(start):
    srv = start("epoll", "--processes", "3")
    children = child_pids(srv)
    sock = socket.create_connection((srv.host, srv.port), timeout=10)
    assert roundtrip(sock, b"x") == b"x"
    os.kill(children[1], signal.SIGKILL)
    srv.proc.wait(20)
    assert srv.returncode == 1
    crash = srv.wait_event(lambda e: e["event"] == "limit")
    assert crash["kind"] == "crash" and crash["pid"] == children[1]
    assert srv.events()[-1]["event"] == "final" and "died" in srv.stderr
    assert wait_gone(children) == []
    sock.close()


def test_children_die_with_the_parent(start):
    srv = start("poll", "--processes", "2")
    children = child_pids(srv)
    srv.proc.kill()  # SIGKILL: no chance to stop them; PR_SET_PDEATHSIG does
    srv.proc.wait()
    assert wait_gone(children) == []


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "servers", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=60, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("model", ["threads", "forking", "blocking"])
def test_processes_is_refused_for_models_outside_the_group(model):
    proc = run(model, "--processes", "2")
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "--processes applies to" in proc.stderr


# Imported at every interpreter's start (PYTHONPATH): each process takes the
# next number (a file holding its pid); number 3, a child (the parent is 1),
# fails before it could print READY.
FAIL_SECOND_CHILD = """
import os, sys
here = os.path.dirname(os.path.abspath(__file__))
for n in range(1, 100):
    try:
        fd = os.open(os.path.join(here, f"n{n}"), os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        continue
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    break
if n == 3:
    print("boom", file=sys.stderr, flush=True)
    os._exit(3)
"""


def test_a_child_that_fails_to_start_fails_the_server(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(FAIL_SECOND_CHILD)
    proc = subprocess.run([sys.executable, "-m", "servers", "epoll", "--host", "127.0.0.1",
                           "--processes", "3"], cwd=ROOT, text=True, capture_output=True,
                          timeout=60, stdin=subprocess.DEVNULL,
                          env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 2 and proc.stdout == ""
    (line,) = proc.stderr.strip().splitlines()
    # A child killed before its start-up got this far wrote no number.
    pids = [int(p.read_text()) for p in sorted(tmp_path.glob("n[0-9]"))]
    assert re.search(rf"process [1-3] of 3 \(pid {pids[2]}\) exited \(3\) before READY: boom$",
                     line), line
    assert wait_gone(pids) == []


def test_a_port_in_use_exits_2_with_one_line(start):
    srv = start("epoll")  # no SO_REUSEPORT: nobody may join its port
    proc = run("epoll", "--host", "127.0.0.1", "--port", str(srv.port), "--processes", "2")
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "in use" in proc.stderr


@pytest.mark.skipif("epoll" not in MODELS, reason="epoll is unavailable here")
def test_merged_stats_sum_the_loops_blocked_seconds(start):
    """``blocked_s`` (``--block-us``) is each loop's own; the supervisor sums them."""
    srv = start("epoll", "--processes", "2", "--block-us", "20000")
    socks = [socket.create_connection((srv.host, srv.port), timeout=10) for _ in range(6)]
    try:
        for s in socks:
            for _ in range(2):
                assert roundtrip(s, b"x") == b"x"
        stats = srv.wait_stats(lambda e: e.get("blocked_s", 0) >= 12 * 0.02 * 0.99)
        assert stats["blocked_s"] < 12 * 0.02 + 0.5
    finally:
        for s in socks:
            s.close()

"""The process-tree reading of lab/host/proctree.py: over a fake /proc, and a real forking tree."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab.host import proctree as pt
from tests import forking_echo

PAGE = pt.PAGE_SIZE
HZ = pt.CLOCK_TICKS


def _stat(pid: int, ppid: int, session: int, *, utime: int = 0, stime: int = 0, cutime: int = 0,
          cstime: int = 0, threads: int = 1, rss: int = 0, comm: str = "srv") -> str:
    # Fields from the state (index 0 after the comm): state ppid pgrp session tty tpgid flags
    # minflt cminflt majflt cmajflt utime stime cutime cstime prio nice threads itreal start
    # vsize rss
    fields = ["S", ppid, pid, session, 0, -1, 0, 0, 0, 0, 0, utime, stime, cutime, cstime,
              20, 0, threads, 0, 0, 0, rss]
    return f"{pid} ({comm}) " + " ".join(str(f) for f in fields) + "\n"


def _proc(tmp: Path, pid: int, stat: str, *, fds: int = 0, pss_kb: int | None = None) -> None:
    d = tmp / str(pid)
    (d / "fd").mkdir(parents=True)
    (d / "stat").write_text(stat)
    for i in range(fds):
        (d / "fd" / str(i)).write_text("")
    if pss_kb is not None:
        (d / "smaps_rollup").write_text(f"Rss: 1 kB\nPss:  {pss_kb} kB\n")


def _tcp_line(local: str, remote: str, state: str) -> str:
    return f"   0: {local} {remote} {state} 00000000:00000000 00:00000000 00000000 0 0 1 1\n"


HEADER = "  sl  local_address rem_address   st tx_queue rx_queue\n"


@pytest.fixture
def fake(tmp_path: Path) -> Path:
    """A server (pid 100, its own session) with two children and a grandchild,
    one orphan of its session adopted by init, and strangers."""
    _proc(tmp_path, 1, _stat(1, 0, 1, utime=999))
    _proc(tmp_path, 100, _stat(100, 1, 100, utime=50, stime=20, cutime=300, cstime=100,
                               threads=3, rss=1000), fds=5, pss_kb=1000)
    _proc(tmp_path, 101, _stat(101, 100, 100, utime=10, stime=5, rss=900), fds=3, pss_kb=200)
    _proc(tmp_path, 102, _stat(102, 100, 100, utime=10, stime=5, rss=900), fds=3, pss_kb=200)
    _proc(tmp_path, 103, _stat(103, 102, 100, utime=1, stime=1, cutime=4, rss=800), fds=2,
          pss_kb=100)
    _proc(tmp_path, 104, _stat(104, 1, 100, utime=2, stime=2, rss=800), fds=1, pss_kb=100)
    _proc(tmp_path, 200, _stat(200, 1, 200, utime=777, rss=5000), fds=9, pss_kb=9999)
    net = tmp_path / "100" / "net"
    net.mkdir()
    port = 9100  # 0x238C
    (net / "tcp").write_text(HEADER + "".join([
        _tcp_line("0100007F:238C", "00000000:0000", "0A"),  # the listener
        _tcp_line("0100007F:238C", "0A00007F:C350", "01"),  # served connections
        _tcp_line("0100007F:238C", "0A00007F:C351", "01"),
        _tcp_line("0A00007F:C350", "0100007F:238C", "01"),  # the clients' ends: not counted
        _tcp_line("0100007F:238C", "0A00007F:C352", "06"),  # TIME_WAIT: not counted
        _tcp_line("0100007F:1238C", "0A00007F:C353", "01"),  # another port ending alike
    ]))
    (net / "tcp6").write_text(HEADER + _tcp_line(
        "00000000000000000000000001000000:238C", "00000000000000000000000001000000:D000", "01"))
    assert port == 0x238C
    return tmp_path


def test_tree_follows_children_and_the_session(fake):
    assert sorted(pt.tree(100, fake)) == [100, 101, 102, 103, 104]
    assert sorted(pt.tree(102, fake)) == [102, 103]
    assert pt.tree(999, fake) == {}


def test_a_comm_with_spaces_and_parentheses_parses():
    st = pt.parse_stat(7, _stat(7, 3, 7, utime=11, threads=4, rss=5, comm="a) b (c"))
    assert (st.ppid, st.session, st.utime, st.threads, st.rss_pages) == (3, 7, 11, 4, 5)


def test_reading_sums_the_tree(fake):
    r = pt.reading(100, 9100, fake)
    # Own times of every live process plus the reaped children's in cutime/cstime.
    assert r["cpu_user_s"] == pytest.approx((50 + 300 + 10 + 10 + 1 + 4 + 2) / HZ)
    assert r["cpu_sys_s"] == pytest.approx((20 + 100 + 5 + 5 + 1 + 2) / HZ)
    assert (r["processes"], r["threads"], r["fds"]) == (5, 7, 14)
    assert r["pss_bytes"] == (1000 + 200 + 200 + 100 + 100) * 1024
    assert r["rss_bytes"] == r["pss_bytes"]  # several processes: the PSS sum
    assert r["rss_sum_bytes"] == (1000 + 900 + 900 + 800 + 800) * PAGE
    # Local port 9100, ESTABLISHED, in tcp and tcp6; not the clients' ends,
    # not TIME_WAIT, not a port whose hex merely ends the same way.
    assert r["connections"] == 3
    assert pt.reading(999, 9100, fake) is None


def test_unreadable_pss_counts_with_rss_and_leaves_pss_unknown(fake):
    (fake / "103" / "smaps_rollup").unlink()
    r = pt.reading(100, 9100, fake)
    assert r["pss_bytes"] is None
    assert r["rss_bytes"] == (1000 + 200 + 200 + 100) * 1024 + 800 * PAGE


def test_a_single_process_reports_its_rss_like_a_built_in_model(tmp_path):
    _proc(tmp_path, 5, _stat(5, 1, 5, rss=300), fds=4, pss_kb=100)
    r = pt.reading(5, None, tmp_path, net=tmp_path / "nonet")
    assert r["rss_bytes"] == 300 * PAGE and r["pss_bytes"] == 100 * 1024
    assert r["connections"] is None and r["processes"] == 1


def test_pss_cache_reads_new_processes_first_within_its_budget(fake):
    cache = pt.PssCache(fake, budget_s=0.0)  # one read per call
    assert cache.read([100, 101]) == {100: 1000 * 1024}
    assert cache.read([100, 101]) == {100: 1000 * 1024, 101: 200 * 1024}
    assert cache.read([101]) == {101: 200 * 1024} and list(cache.known) == [101]


def test_children_not_read_yet_count_with_the_mean_of_those_read():
    rss = {1: 100, 2: 90, 3: 90, 4: 90}
    # The parent and one child read: the other two children are estimated
    # from the child, not from the (larger) parent, and never from their RSS.
    assert pt.tree_memory(1, rss, {1: 50, 2: 10}) == (50 + 10 * 3, 50 + 10 * 3)
    # No child read yet: RSS stands in, and the PSS sum is unknown.
    assert pt.tree_memory(1, rss, {1: 50}) == (50 + 90 * 3, None)
    # An unreadable child counts with its RSS, and the PSS sum is unknown.
    assert pt.tree_memory(1, rss, {1: 50, 2: 10, 3: None, 4: 10}) == (50 + 10 + 90 + 10, None)
    assert pt.tree_memory(1, {1: 100}, {1: 50}) == (100, 50)  # one process: its RSS


def test_sampler_keeps_cpu_cumulative_when_a_child_is_lost(fake):
    events = []
    sampler = pt.TreeSampler(100, 9100, events.append, proc=fake)
    first = sampler.sample()
    # Child 101 exits and is reaped by init (not by the tree): its CPU leaves the sum.
    for name in ("stat", "smaps_rollup"):
        (fake / "101" / name).unlink()
    second = sampler.sample()
    assert events == [first, second]
    assert first["source"] == "proc" and first["event"] == "stats"
    assert second["processes"] == 4
    assert (second["cpu_user_s"], second["cpu_sys_s"]) == (first["cpu_user_s"],
                                                           first["cpu_sys_s"])


def test_a_real_forking_tree():
    from lab.backends.local import free_port

    port = free_port()
    server = subprocess.Popen([sys.executable, forking_echo.PATH, str(port)],
                              start_new_session=True)
    clients = []
    try:
        deadline = time.monotonic() + 10
        while not clients:
            try:
                clients.append(socket.create_connection(("127.0.0.1", port)))
            except ConnectionRefusedError:
                assert time.monotonic() < deadline and server.poll() is None
                time.sleep(0.05)
        clients += [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        for c in clients:
            c.sendall(b"x" * 100)
            assert c.recv(100)
        r = None
        for _ in range(50):  # the children are forked: wait until all three show
            r = pt.reading(server.pid, port)
            if r["processes"] == 4 and r["connections"] == 3:
                break
            time.sleep(0.05)
        assert r["processes"] == 4 and r["threads"] >= 4
        assert r["connections"] == 3
        assert r["fds"] >= 4 * 3  # stdin/out/err at least, and each child's connection
        assert r["rss_bytes"] > 0 and r["rss_sum_bytes"] >= r["rss_bytes"]
        assert r["pss_bytes"] is not None and r["pss_bytes"] <= r["rss_sum_bytes"]
        # A child that exits is reaped by the server: its CPU moves to the
        # server's cutime and stays in the tree's sum.
        before = r["cpu_user_s"] + r["cpu_sys_s"]
        clients.pop().close()
        for _ in range(50):
            r = pt.reading(server.pid, port)
            if r["processes"] == 3:
                break
            time.sleep(0.05)
        assert r["processes"] == 3 and r["cpu_user_s"] + r["cpu_sys_s"] >= before
    finally:
        for c in clients:
            c.close()
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()

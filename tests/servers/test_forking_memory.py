"""What a connection costs in memory: the forking model's PSS, and the table
``lab/host/ceiling.py`` builds its memory ceiling from.

Run as a script it measures that table's userspace column for every model
(the command quoted in ``lab/host/ceiling.py``)::

    .venv/bin/python tests/servers/test_forking_memory.py [MODEL ...]
"""

from __future__ import annotations

import resource
import socket
import sys
import time
from pathlib import Path

if __name__ == "__main__":  # the script needs what conftest.py gives the tests
    ROOT = Path(__file__).resolve().parents[2]
    sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "servers"), str(ROOT)]

import pytest
from serverproc import ServerProcess, children_of
from srvclients import AVAILABLE, connect, roundtrip

from contract.models import BY_NAME, MODELS
from lab.host import doctor
from lab.host.ceiling import binding
from lab.host.facts import local_host_facts
from lab.scenario.loader import parse_scenario
from servers.process import PAGE_SIZE, pss_of, rss_of

pytestmark = pytest.mark.timeout(120)

SMAPS_ROLLUP = Path("/proc/self/smaps_rollup").exists()
needs_pss = pytest.mark.skipif(not SMAPS_ROLLUP, reason="no /proc/PID/smaps_rollup (Linux < 4.14)")


def private_bytes(pid: int) -> int:
    """Pages only this process maps (Private_Clean + Private_Dirty of smaps_rollup)."""
    total = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total += int(line.split()[1]) * 1024
    return total


def settled_memory(srv, ticks: int = 3, rel: float = 0.01, timeout: float = 30.0) -> int:
    """``rss_bytes`` once ``ticks`` stats events in a row agree within ``rel``: the
    forking parent reads its children's PSS within a time budget per tick
    (``servers/forking_loop.py``, ``GroupMemory``), so after new children the
    figure converges over a few ticks instead of at once."""
    deadline = time.monotonic() + timeout
    seen: list[int] = []
    while time.monotonic() < deadline:
        seen = [*seen, srv.latest_stats()["rss_bytes"]][-ticks:]
        if len(seen) == ticks and max(seen) - min(seen) <= rel * max(seen):
            return seen[-1]
    raise AssertionError(f"{srv.model}: memory did not settle within {timeout}s: {seen}")


def hold(srv, n: int, socks: list[socket.socket], echo: bool = True) -> None:
    """Open connections until ``socks`` holds ``n``; each echoes once (``echo``)."""
    while len(socks) < n:
        sock = connect(srv)
        if echo:
            data = b"%06d" % len(socks)
            assert roundtrip(sock, data) == data
        socks.append(sock)
    srv.wait_stats(lambda e: e["connections"] == n, timeout=60)


@needs_pss
def test_forking_memory_is_the_pss_of_parent_and_children(start):
    srv = start("forking")
    socks: list[socket.socket] = []
    try:
        hold(srv, 50, socks)
        reported = settled_memory(srv)
        children = children_of(srv.pid)
        assert len(children) == 50
        parent_pss = pss_of(srv.pid)
        child_rss = sum(rss_of(pid) for pid in children)
        child_private = sum(private_bytes(pid) for pid in children)
    finally:
        for sock in socks:
            sock.close()
    # Each child maps the interpreter image it inherited from fork (~13 MiB, shared
    # copy-on-write with the parent and its 49 siblings). RSS counts those pages in
    # full in every child, so the children's summed RSS holds the image 50 times;
    # PSS gives each process 1/51 of every page the 51 share, so summed over the
    # group the image counts once. Hence the report is far below the summed RSS:
    assert reported < child_rss, (reported, child_rss)
    # ... and it is more than the parent alone: what a child copied on write (its
    # stack, its receive buffer, the heap pages whose reference counts it touched)
    # is private to it, and a private page counts in full in its PSS.
    assert reported >= parent_pss + child_private > parent_pss, \
        (reported, parent_pss, child_private)


@needs_pss
def test_the_ceiling_table_holds_what_a_forked_connection_costs(start):
    """The forking row of lab/host/ceiling.py's table is still what a child costs
    (it changes with the interpreter, or with a gc.freeze() before fork)."""
    srv = start("forking")
    socks: list[socket.socket] = []
    try:
        hold(srv, 20, socks)
        before = settled_memory(srv)
        hold(srv, 60, socks)
        after = settled_memory(srv)
    finally:
        for sock in socks:
            sock.close()
    per_connection = (after - before) / 40
    table = BY_NAME["forking"].memory.userspace
    # A rough table, not a measurement: it must not be off by a factor of two.
    assert table / 2 <= per_connection <= table * 2, (per_connection, table)


def test_forking_holds_more_connections_than_its_nofile_as_doctor_says(start, nofile_hard):
    """The parent closes its copy of every connection, so ``--nofile 200`` does not
    cap what a forking server holds, and doctor's ceiling for that spec says so."""
    srv = start("forking", "--nofile", "200")
    socks: list[socket.socket] = []
    try:
        hold(srv, 400, socks)
        for i, sock in enumerate(socks):  # all 400 still answer, none was refused
            assert roundtrip(sock, b"again %d" % i) == b"again %d" % i
        stats = srv.latest_stats()
    finally:
        for sock in socks:
            sock.close()
    assert stats["connections"] == 400 and stats["refused"] == {}, stats
    spec = parse_scenario("servers: [{model: forking, limits: {nofile: 200}}]\n"
                          "load: {steps: [400]}\n", "forking.yaml").servers[0]
    ceilings = doctor.server_ceilings(spec, local_host_facts())
    first = binding(ceilings)
    assert first is not None and first.limit != "EMFILE" and first.connections >= 400, ceilings


# -- the measurement behind each model's memory in contract/models.py ---------

# Connections per level: a few hundred for the models with a thread or a process
# each; a thousand for the others, whose few hundred bytes per connection the
# allocator's free lists would otherwise hide (RSS grows by pages); select stays
# below FD_SETSIZE.
STEP = {"threads": 200, "forking": 200, "select": 400}
KERNEL_FIELDS = ("KernelStack", "PageTables", "Slab")


def meminfo() -> dict[str, int]:
    with open("/proc/meminfo") as f:
        return {k: int(v.split()[0]) * 1024 for k, v in (line.split(":", 1) for line in f)}


def measure(model: str) -> dict[str, float]:
    """Bytes per connection of ``model``: the growth of the stats events'
    ``rss_bytes`` (forking: PSS) from ``step`` to ``2 * step`` held connections
    (the marginal cost, as the capacity plan computes it), and of the host's
    kernel stacks, page tables and slab (system-wide, so only a rough figure;
    the slab holds both ends of each loopback connection)."""
    step = STEP.get(model, 1000)
    echo = model != "threadpool"  # beyond its pool, connections wait unserved
    with ServerProcess(model, "--nofile", "max") as srv:
        socks: list[socket.socket] = []
        try:
            readings = []
            for n in (step, 2 * step):
                hold(srv, n, socks, echo)
                readings.append((settled_memory(srv), meminfo()))
        finally:
            for sock in socks:
                sock.close()
    (rss1, mem1), (rss2, mem2) = readings
    out = {"userspace": (rss2 - rss1) / step}
    out.update({k: (mem2[k] - mem1[k]) / step for k in KERNEL_FIELDS})
    return out


def main(models: list[str]) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"bytes per held connection (page size {PAGE_SIZE}); kernel figures system-wide")
    print(f"{'model':<12} {'userspace':>10} " + " ".join(f"{k:>12}" for k in KERNEL_FIELDS))
    for model in models:
        if model == "blocking":
            print(f"{model:<12} (skipped: holds one connection; the rest wait in the backlog)")
            continue
        got = measure(model)
        print(f"{model:<12} {got['userspace']:>10.0f} "
              + " ".join(f"{got[k]:>12.0f}" for k in KERNEL_FIELDS), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or [m for m in MODELS if m in AVAILABLE])


# -- an event loop's memory grows with its connections, not in a table's jumps --

@pytest.mark.parametrize("model", ["epoll", "poll"])
def test_an_event_loops_rss_grows_without_a_tables_staircase(start, nofile_hard, model):
    """The RSS read every 500 connections up to 6,000 grows by about the same
    bytes at every level (servers/fdtable.py: connections in a list indexed by
    descriptor; servers/poll_loop.py: poll's own ``pollfd`` array). With a dict
    (epoll's connections; poll's registrations in ``select.poll``) the levels
    holding its resizes at 2,730 and 5,461 entries (2/3 of 4,096 and 8,192
    slots) grew 2.2x and 3x the others: the zero-filled table of twice the
    slots, all at once, a staircase the capacity plan cannot extrapolate from
    steps below it."""
    srv = start(model, "--nofile", "max", "--stats-interval", "0.1")
    socks: list[socket.socket] = []
    readings = []
    try:
        for n in range(500, 6001, 500):
            hold(srv, n, socks, echo=False)
            readings.append((n, settled_memory(srv)))
    finally:
        for sock in socks:
            sock.close()
    growth = [(n1, (r1 - r0) / (n1 - n0))
              for (n0, r0), (n1, r1) in zip(readings, readings[1:], strict=False)]
    typical = sorted(g for _, g in growth)[len(growth) // 2]
    jumps = [(n, round(g)) for n, g in growth if g > 1.6 * typical]
    assert 100 < typical < 400, growth  # the Conn, its socket object, a list slot
    assert not jumps, f"levels that grew > 1.6x the median {typical:.0f} B: {jumps}"

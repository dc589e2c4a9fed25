"""What the kernel knows of a process tree: a custom server measured from /proc.

A built-in model prints its own ``stats`` events; a custom server prints
nothing, so the lab reads the same figures from the kernel, for the server's
*whole* process tree (a forking server is a process per connection):

- **Which processes.** Every process whose parent chain leads to the started
  pid, plus every process of its session: the lab starts the server as a
  session leader (``start_new_session``), so a child that was orphaned and
  reparented to init still counts (one that called ``setsid`` itself does not).
  Read from ``/proc/*/stat`` (fields ``ppid`` and ``session``).
- **CPU.** ``utime``/``stime`` of ``/proc/PID/stat`` are a process's own CPU,
  all its threads included; ``cutime``/``cstime`` are the CPU of its children
  that exited *and were waited for* (and of their waited-for descendants).
  Summing all four over the live processes of the tree counts every process
  once: a live one by its own times, a reaped one in its reaper's ``cutime``.
  Caveats: a child reaped by a process outside the tree (an orphan adopted by
  init) or auto-reaped because its parent set ``SIGCHLD`` to ``SIG_IGN`` is
  never added to anyone's ``cutime``, so its CPU is lost the moment it exits
  (between exit and reap a zombie keeps its times in ``/proc``, so a child
  its parent reaps is never missed). Because a lost child would make the sum
  go *down*, ``TreeSampler`` reports the running maximum: the figure stays
  cumulative, as the rows need, and undercounts by what such children used.
- **Memory.** ``rss`` (field 24 of ``stat``) counts every resident page a
  process maps, shared ones in full: summed over a forked tree it counts the
  parent's image once per child. ``Pss:`` of ``/proc/PID/smaps_rollup``
  divides each page among the processes that map it, so summed over a tree it
  counts each page once. ``rss_bytes`` in the events is what the built-in
  forking model reports for the same reason: the PSS sum, each process whose
  ``smaps_rollup`` cannot be read counted with its RSS (an overcount, never an
  undercount); for a single process it is its RSS, like every built-in model.
  ``pss_bytes`` is the PSS sum when every process could be read, else None
  (processes not read yet within the budget count with the mean of the rest).
  PSS is dear (the kernel walks the page tables: ~0.3 ms per interpreter), so
  ``PssCache`` reads within a time budget per tick, new processes first.
- **Threads, descriptors.** ``num_threads`` (field 20 of ``stat``) and the
  entries of ``/proc/PID/fd`` (unreadable for another user's process: then
  ``fds`` is None).
- **Connections.** ESTABLISHED (state ``01``) sockets whose *local* port is
  the server's, in ``tcp`` and ``tcp6`` of the server's network namespace
  (``/proc/PID/net``). On the local backend the clients share the namespace,
  but their sockets have the server's port as the *remote* one, so they do
  not count. A handshake completed but not yet accepted is ESTABLISHED too:
  the count includes the accept queue, which a server's own count does not.
  The kernel formats these tables line by line: at 100,000 connections a read
  costs tens of milliseconds of the lab's CPU.

Everything here is a pure function of a ``/proc`` root path, so the tests
can build a fake one.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROC = Path("/proc")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
ESTABLISHED = "01"
INTERVAL_S = 0.5
PSS_BUDGET_S = 0.02  # of each tick: the most the lab spends reading PSS
SOURCE = "proc"  # the ``source`` of the stats events built here
WAIT_FACTOR = 4  # wait at least this many times as long as a reading took: a fifth of a core
# The stats field with a tree's thread count: the word is also a limit kind
# (contract/limits.py, a thread that could not be started), spelled once here.
THREADS = "threads"


@dataclass(frozen=True)
class ProcStat:
    """The fields of ``/proc/PID/stat`` the lab uses (after the ``(comm)``)."""

    pid: int
    ppid: int
    session: int
    utime: int  # clock ticks
    stime: int
    cutime: int
    cstime: int
    threads: int
    rss_pages: int


def parse_stat(pid: int, text: str) -> ProcStat:
    """``/proc/PID/stat``: the command may hold spaces and parentheses, so the
    fields are counted from the last ``)``."""
    f = text.rsplit(")", 1)[1].split()
    return ProcStat(pid, int(f[1]), int(f[3]), int(f[11]), int(f[12]), int(f[13]), int(f[14]),
                    int(f[17]), int(f[21]))


def all_stats(proc: Path = PROC) -> dict[int, ProcStat]:
    """Every process's stat (a process that exits while being read is skipped)."""
    out = {}
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                out[int(entry.name)] = parse_stat(int(entry.name), (entry / "stat").read_text())
            except (OSError, IndexError, ValueError):
                continue
    return out


def tree(root: int, proc: Path = PROC, stats: dict[int, ProcStat] | None = None
         ) -> dict[int, ProcStat]:
    """``root``, every process below it, and every process of its session."""
    stats = all_stats(proc) if stats is None else stats
    children: dict[int, list[int]] = {}
    for st in stats.values():
        children.setdefault(st.ppid, []).append(st.pid)
    todo = [root, *(p for p, st in stats.items() if st.session == root)]
    found: dict[int, ProcStat] = {}
    while todo:
        pid = todo.pop()
        if pid not in found and pid in stats:
            found[pid] = stats[pid]
            todo.extend(children.get(pid, []))
    return found


def fd_count(pid: int, proc: Path = PROC) -> int | None:
    try:
        return len(os.listdir(proc / str(pid) / "fd"))
    except OSError:
        return None


def pss_of(pid: int, proc: Path = PROC) -> int | None:
    """``Pss:`` of ``smaps_rollup`` in bytes; None when it cannot be read
    (before Linux 4.14, no ptrace-read access, or the process is gone)."""
    try:
        with open(proc / str(pid) / "smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024  # always in kB
    except (OSError, IndexError, ValueError):
        pass
    return None


def established_on(port: int, net: Path) -> int | None:
    """ESTABLISHED sockets with local port ``port`` in ``net/tcp`` and
    ``net/tcp6``; None when neither table can be read."""
    suffix = f":{port:04X}"
    count, read = 0, False
    for table in ("tcp", "tcp6"):
        try:
            with open(net / table) as f:
                next(f, None)
                for line in f:
                    fields = line.split(None, 4)
                    if len(fields) > 3 and fields[3] == ESTABLISHED and \
                            fields[1].endswith(suffix):
                        count += 1
            read = True
        except OSError:
            continue
    return count if read else None


class PssCache:
    """PSS per process, read within ``budget_s`` per call: new processes
    first, then the least recently read. An idle process's private pages do
    not change and its shared pages' division changes by one process per fork
    or exit, so a reading a few ticks old is off by a fraction of a page per
    shared page. ``read`` leaves out the processes not read yet (a step that
    forks 1,000 children has them read over a few ticks: ``tree_memory``
    counts them with the mean of those read, as the built-in forking model
    does); None is a process whose PSS cannot be read."""

    def __init__(self, proc: Path = PROC, budget_s: float = PSS_BUDGET_S):
        self.proc, self.budget_s = proc, budget_s
        self.known: OrderedDict[int, int | None] = OrderedDict()  # least recent first

    def read(self, pids: list[int]) -> dict[int, int | None]:
        live = set(pids)
        for pid in [p for p in self.known if p not in live]:
            del self.known[pid]
        new = [p for p in pids if p not in self.known]
        deadline = time.monotonic() + self.budget_s
        for done, pid in enumerate(itertools.chain(new, list(self.known))):
            if done and time.monotonic() >= deadline:  # at least one read per call
                break
            self.known[pid] = pss_of(pid, self.proc)
            self.known.move_to_end(pid)
        return {pid: self.known[pid] for pid in pids if pid in self.known}


def tree_memory(root: int, rss: dict[int, int], shares: dict[int, int | None]
                ) -> tuple[int, int | None]:
    """(``rss_bytes``, ``pss_bytes``) of a tree from each process's RSS and
    its PSS where read (``PssCache.read``). A process whose PSS cannot be read
    counts with its RSS (an overcount, and ``pss_bytes`` is None); one not
    read yet with the mean PSS of the other processes read (the root aside:
    the parent is not a copy of its children), or its RSS when none was."""
    read = [v for p, v in shares.items() if v is not None and p != root]
    mean = sum(read) // len(read) if read else None
    total, known = 0, True
    for pid, resident in rss.items():
        share = shares[pid] if pid in shares else mean  # None: unreadable, or no mean
        known = known and share is not None
        total += resident if share is None else share
    pss_bytes = total if known else None
    if len(rss) == 1:  # a single process: its RSS, as every built-in model reports
        return rss[root], pss_bytes
    return total, pss_bytes


def reading(root: int, port: int | None, proc: Path = PROC, net: Path | None = None,
            pss: PssCache | None = None) -> dict[str, Any] | None:
    """One reading of the tree below ``root`` as a stats event's fields
    (see the module docstring); None when ``root`` is gone."""
    procs = tree(root, proc)
    if root not in procs:
        return None
    pids = sorted(procs)
    rss = {p: procs[p].rss_pages * PAGE_SIZE for p in pids}
    rss_bytes, pss_bytes = tree_memory(
        root, rss, (pss or PssCache(proc, budget_s=float("inf"))).read(pids))
    fds = [fd_count(p, proc) for p in pids]
    net = net if net is not None else proc / str(root) / "net"
    return {
        "connections": established_on(port, net) if port else None,
        "rss_bytes": rss_bytes,
        "rss_sum_bytes": sum(rss.values()),
        "pss_bytes": pss_bytes,
        "cpu_user_s": sum(s.utime + s.cutime for s in procs.values()) / CLOCK_TICKS,
        "cpu_sys_s": sum(s.stime + s.cstime for s in procs.values()) / CLOCK_TICKS,
        "processes": len(pids),
        THREADS: sum(s.threads for s in procs.values()),
        "fds": None if None in fds else sum(fds),
    }


class TreeSampler(threading.Thread):
    """A ``stats`` event (``"source": "proc"``) for the tree below ``root``
    every ``interval`` s, handed to ``emit``, until ``stop`` or the root is
    gone. CPU is reported as its running maximum (see the module docstring).
    A reading that takes long (a big tree, big tcp tables) spaces the next
    one out to ``WAIT_FACTOR`` times its duration."""

    def __init__(self, root: int, port: int | None, emit: Callable[[dict[str, Any]], None],
                 proc: Path = PROC, net: Path | None = None, interval: float = INTERVAL_S):
        super().__init__(name=f"proctree-{root}", daemon=True)
        self.root, self.port, self.emit = root, port, emit
        self.proc, self.net, self.interval = proc, net, interval
        self.pss = PssCache(proc)
        self.halt = threading.Event()
        self.cpu = (0.0, 0.0)

    def sample(self) -> dict[str, Any] | None:
        fields = reading(self.root, self.port, self.proc, self.net, self.pss)
        if fields is None:
            return None
        self.cpu = (max(self.cpu[0], fields["cpu_user_s"]),
                    max(self.cpu[1], fields["cpu_sys_s"]))
        fields["cpu_user_s"], fields["cpu_sys_s"] = (round(c, 3) for c in self.cpu)
        event = {"event": "stats", "time": time.time(), "source": SOURCE, **fields}
        self.emit(event)
        return event

    def run(self) -> None:
        while not self.halt.is_set():
            started = time.monotonic()
            try:
                if self.sample() is None:
                    return
            except OSError:  # /proc itself unreadable: nothing to report
                return
            # A reading costs the lab's CPU (the tcp tables at 100,000
            # connections, thousands of processes): at most a fifth of a core.
            self.halt.wait(max(self.interval, WAIT_FACTOR * (time.monotonic() - started)))

    def stop(self) -> None:
        self.halt.set()
        if self.is_alive():
            self.join(5)

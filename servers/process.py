"""This process and its children as the kernel accounts for them: memory and
CPU from ``/proc``, the open-file limit, and dying with the parent.

The stats events read a process's memory and CPU here: the server's own
(``Server.usage``), the forking model's children and the ``--processes``
supervisor's. ``--nofile`` sets the soft RLIMIT_NOFILE, the ceiling every
descriptor-per-connection model runs into (EMFILE).
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def rss_of(pid: int | str = "self") -> int:
    """Resident set size of a process, in bytes (0 if it is gone).

    A server at its open-file limit cannot open statm (EMFILE), exactly at
    the step whose memory matters most; for itself it then reports its peak
    RSS (``getrusage`` needs no descriptor). A server's memory grows with its
    connections, so at the wall the peak is the current size to within what
    it freed since."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE_SIZE
    except OSError as exc:
        if pid == "self" and exc.errno in (errno.EMFILE, errno.ENFILE):
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
        return 0
    except (IndexError, ValueError):
        return 0


def pss_of(pid: int | str = "self") -> int | None:
    """Proportional set size of a process, in bytes: every resident page divided
    by the number of processes that map it (``Pss:`` of ``/proc/PID/smaps_rollup``).

    ``None`` when it cannot be read: kernels before 4.14 have no ``smaps_rollup``,
    and it needs ptrace-read access to the process (a parent has it for its own
    children, a hardened ``/proc`` may not give it), or the process is gone.
    The kernel walks the page tables to answer: a read costs system time
    proportional to the process's mappings (tens of microseconds for an
    interpreter), charged to the reader.
    """
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024  # always in kB
    except (OSError, IndexError, ValueError):
        pass
    return None


def cpu_of(pid: int) -> tuple[float, float]:
    """(user, sys) seconds of a live process, from /proc (0, 0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS
    except (OSError, IndexError, ValueError):
        return 0.0, 0.0


def set_nofile(spec: str | None, apply: bool = True) -> int:
    """Apply ``--nofile max|N`` to the soft RLIMIT_NOFILE; return the soft limit.
    ValueError above the hard limit. ``apply=False`` only checks (the limit it
    would set is returned)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if spec is not None:
        want = hard if spec == "max" else int(spec)
        if hard != resource.RLIM_INFINITY and want > hard:
            raise ValueError(f"--nofile {want} exceeds the hard limit {hard}")
        if apply:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        soft = want
    return soft


PR_SET_PDEATHSIG = 1


def die_with_parent(signum: int, parent: int | None = None) -> None:
    """``prctl(PR_SET_PDEATHSIG)``: the kernel sends ``signum`` to this process
    when the thread that started it exits. ``parent``: the pid that started
    it; if that one died before the prctl (this process was reparented), exit
    now, since the signal will never come."""
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signum)
    if parent is not None and os.getppid() != parent:
        os._exit(1)

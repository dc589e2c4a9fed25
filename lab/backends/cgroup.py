"""A memory limit for a local server: a cgroup the local backend makes for it.

The kernel charges every page a process touches (anonymous memory, page
cache, kernel stacks, socket buffers counted as kmem) to its memory cgroup.
When the charge would pass the cgroup's limit and reclaim frees nothing, the
*memory cgroup's* OOM killer picks a task inside that cgroup and sends it
SIGKILL; nothing outside is touched. The cgroup counts each kill:

- cgroup v2 (``/sys/fs/cgroup`` is ``cgroup2``, the ``memory`` controller in
  the root's ``cgroup.subtree_control``): ``memory.max`` is the limit,
  ``memory.events`` has ``oom_kill N``;
- cgroup v1 (a ``memory`` hierarchy at ``/sys/fs/cgroup/memory``, as on hosts
  that mount the legacy layout): ``memory.limit_in_bytes`` is the limit,
  ``memory.oom_control`` has ``oom_kill N`` (Linux >= 4.13).

The kernel also logs the kill to its ring buffer (``/dev/kmsg``, readable by
root): ``oom-kill:...,oom_memcg=/iolab-...`` then ``Memory cgroup out of
memory: Killed process PID (NAME) ...``; that line is kept as evidence.

On v2 ``memory.oom.group`` is set: the OOM killer ends every task of the
server together, as it ends a container, so a forking server does not live
on without the child it lost (v1 has no such switch: it kills one task, the
largest).

One cgroup per server start, ``iolab-<run>-<server>`` under the root; the
server joins it between fork and exec (``preexec``), so whatever it forks
afterwards is charged there too. ``remove()`` kills what is left in it and
removes the directory; ``run-lab clean`` removes the ones of runs that are
gone (:func:`stale`).
"""

from __future__ import annotations

import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PREFIX = "iolab-"
UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}  # Docker's: binary
KMSG = Path("/dev/kmsg")


class CgroupUnavailable(Exception):
    """This machine cannot give a local server a memory limit (the reason)."""


def parse_size(text: str) -> int:
    """``48m`` -> bytes, with Docker's binary units (``limits.memory``)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([bkmgBKMG]?)", text.strip())
    if not match:
        raise ValueError(f"not a memory size: {text!r}")
    return int(float(match.group(1)) * UNITS[match.group(2).lower()])


@dataclass(frozen=True)
class Layout:
    """Where memory cgroups are made here, and the file names of that version."""

    parent: Path
    version: int

    @property
    def limit_file(self) -> str:
        return "memory.max" if self.version == 2 else "memory.limit_in_bytes"

    @property
    def events_file(self) -> str:
        return "memory.events" if self.version == 2 else "memory.oom_control"


def layout(root: Path = ROOT) -> Layout:
    """The memory cgroup layout of this machine, or CgroupUnavailable saying why not."""
    if os.geteuid() != 0:
        raise CgroupUnavailable("creating a cgroup needs root (run-lab runs as uid "
                                f"{os.geteuid()})")
    try:
        controllers = (root / "cgroup.subtree_control").read_text().split()
        if "memory" in controllers:
            return Layout(root, 2)
        if (root / "cgroup.controllers").exists():
            raise CgroupUnavailable(f"cgroup v2 at {root} without the memory controller in "
                                    "its cgroup.subtree_control")
    except OSError:
        pass
    if (root / "memory" / "memory.limit_in_bytes").exists():
        return Layout(root / "memory", 1)
    raise CgroupUnavailable(f"no memory cgroup controller at {root} (neither cgroup v2 nor "
                            "a v1 memory hierarchy)")


class MemoryCgroup:
    """One server's memory cgroup: made with its limit, joined before exec."""

    def __init__(self, name: str, limit_bytes: int, where: Layout | None = None):
        self.where = where or layout()
        self.name = name
        self.path = self.where.parent / name
        self.limit_bytes = limit_bytes
        try:
            self.path.mkdir()
            (self.path / self.where.limit_file).write_text(str(limit_bytes))
            if self.where.version == 2:  # the whole server goes, not one forked child
                (self.path / "memory.oom.group").write_text("1")
        except OSError as exc:
            self.remove()
            raise CgroupUnavailable(f"cannot make {self.path} ({exc.strerror or exc})") from exc
        self._procs = str(self.path / "cgroup.procs")

    def preexec(self) -> None:
        """Between fork and exec: the child moves itself in (only async-safe calls)."""
        fd = os.open(self._procs, os.O_WRONLY)
        try:
            os.write(fd, b"0")  # "0": the writing process itself
        finally:
            os.close(fd)

    def oom_kills(self) -> int:
        """How many tasks the OOM killer ended in this cgroup (0 when unreadable)."""
        try:
            text = (self.path / self.where.events_file).read_text()
        except OSError:
            return 0
        found = re.search(r"^oom_kill (\d+)$", text, re.M)
        return int(found.group(1)) if found else 0

    def evidence(self) -> str | None:
        """The kernel's word for an OOM kill here: the count, and the kmsg line
        when readable; None when the OOM killer did not act in this cgroup."""
        kills = self.oom_kills()
        if not kills:
            return None
        said = f"{self.where.events_file}: oom_kill {kills} (limit {self.limit_bytes} bytes)"
        line = kernel_log_line(self.name)
        return f"{said}; kernel: {line}" if line else said

    def remove(self, timeout: float = 5.0) -> None:
        """Kill what is left inside, then remove the directory (idempotent)."""
        remove_dir(self.path, timeout)


def remove_dir(path: Path, timeout: float = 5.0) -> None:
    """SIGKILL every task in the cgroup at ``path``, wait for it to empty, rmdir."""
    deadline = time.monotonic() + timeout
    while path.exists():
        try:
            pids = [int(p) for p in (path / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            pids = []
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:  # EBUSY: tasks still exiting
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def kernel_log_line(memcg: str | None = None, pid: int | None = None,
                    kmsg: Path = KMSG) -> str | None:
    """The kernel's ``Killed process`` line for an OOM kill in memory cgroup
    ``memcg`` (its path's last part: the ``oom-kill:`` record before it names
    ``oom_memcg=/.../memcg``) or of process ``pid``; the last such line in the
    ring buffer, None if unreadable or absent."""
    try:
        fd = os.open(kmsg, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    found, ours = None, False
    try:
        while True:
            try:
                record = os.read(fd, 8192).decode(errors="replace")
            except BlockingIOError:
                break
            except OSError:  # EPIPE: a record overwritten while reading; go on
                continue
            if not record:
                break
            # /dev/kmsg gives one record per read: "prio,seq,usec,flags;text",
            # then continuation lines that start with a space (a file: many).
            for line in record.splitlines():
                if line.startswith(" "):
                    continue
                text = line.split(";", 1)[-1].strip()
                if "oom-kill:" in text:
                    ours = memcg is not None and f"/{memcg}," in f"{text},"
                elif "Killed process" in text and (ours or f"Killed process {pid} " in text):
                    found, ours = text, False
    finally:
        os.close(fd)
    return found


def killed_by_oom(proc, kmsg: Path = KMSG) -> str:
    """A local child (``Popen``) ended by SIGKILL that the kernel's log names
    as an OOM kill: that line; else "" (a SIGKILL from someone else)."""
    if proc.poll() != -signal.SIGKILL:
        return ""
    line = kernel_log_line(pid=proc.pid, kmsg=kmsg)
    return f"exit -9; kernel: {line}" if line else ""


def stale(is_gone, root: Path = ROOT) -> list[Path]:
    """The iolab cgroups whose run-lab is gone: ``is_gone(owner)`` decides
    (:func:`lab.owner.is_live`). The multihost harness's ``iolab-hN`` carry
    no owner and are never matched."""
    try:
        where = layout(root)
    except CgroupUnavailable:
        return []
    return [path for path in sorted(where.parent.glob(f"{PREFIX}*"))
            if path.is_dir() and (owner := owner_of(path.name)) and is_gone(owner)]


NAME_RE = re.compile(rf"^{PREFIX}(\d+)-(\d+)-(.+)--(.+)$")


def cgroup_name(run_id: str, server: str) -> str:
    """``iolab-<pid>-<start ticks>-<run>--<server>``: run-lab's pid and start
    time (lab/owner.py) let ``run-lab clean`` spare a live run's cgroup."""
    from lab.owner import start_ticks

    return f"{PREFIX}{os.getpid()}-{start_ticks(os.getpid())}-{run_id}--{server}"


def owner_of(name: str) -> str | None:
    """The owner id (``host:pid:ticks``) a cgroup name carries, else None."""
    import socket

    match = NAME_RE.match(name)
    return f"{socket.gethostname()}:{match.group(1)}:{match.group(2)}" if match else None

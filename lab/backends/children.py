"""The lab's own child processes on this machine: started so they die with
the lab, stopped with everything they started.

Every child gets ``PR_SET_PDEATHSIG`` (SIGTERM when the lab's thread that
forked it exits) and leads its own session, hence its own process group:
stopping it is SIGTERM to the child, then SIGKILL to the whole group, so a
forking server's children go with it. A child may also join a memory cgroup
between fork and exec (``lab/backends/cgroup.py``), so that everything it
later forks is charged there.
"""

from __future__ import annotations

import ctypes
import os
import random
import resource
import signal
import socket
import subprocess
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from lab import ROOT

LOOPBACK = "127.0.0.1"
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def raise_nofile_soft_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (children inherit it); returns the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (OSError, ValueError):
            pass
    return hard


def _port_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # the kernel's default


def free_port(host: str = LOOPBACK) -> int:
    """A port to listen on that nothing holds now, picked *outside*
    ``net.ipv4.ip_local_port_range``: the kernel gives every ``connect()`` a
    source port from that range, so a listening port picked inside it (as
    ``bind(0)`` does) can be taken by one of the load's own connects between
    the pick and the listener's bind ("Address already in use"), the more
    likely the more connections the load opens. Falls back to ``bind(0)``
    when the range leaves nothing outside it."""
    low, high = _port_range()
    outside = [*range(max(1024, low - 16384), low), *range(high + 1, 65536)]
    for port in random.sample(outside, min(64, len(outside))):
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def tail_file(path: Path, lines: int) -> str:
    try:
        with path.open(errors="replace") as f:
            return "".join(deque(f, maxlen=lines))
    except OSError:
        return ""


def spawn(cmd: list[str], log: Path, *, cwd: Path = ROOT, stdout: int | TextIO | None = None,
          env: dict[str, str] | None = None,
          join: Callable[[], None] | None = None) -> subprocess.Popen:
    """Start a child with stderr (and stdout unless piped) into ``log``;
    ``join`` runs in the child before exec (a cgroup to join)."""
    def preexec() -> None:
        _die_with_parent()
        if join is not None:
            join()

    with log.open("ab") as out:
        return subprocess.Popen(
            cmd, cwd=cwd, stdin=subprocess.DEVNULL,
            stdout=out if stdout is None else stdout, stderr=out,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            preexec_fn=preexec, start_new_session=True)


def terminate(proc: subprocess.Popen, timeout: float) -> int | None:
    """SIGTERM, wait, then SIGKILL; returns the exit code."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    # Each child leads its own process group (start_new_session): whatever it
    # started (a forking server's children) goes with it.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return proc.returncode

"""Helpers shared by the servers' benchmarks (``selector_cost``,
``idle_vs_active``, ``echo_throughput``): output paths, CSV, machine facts,
the server subprocess (``tests/serverproc.py``, the same helper the tests use)
and a plain ping-pong client.

Benchmarks are never part of the test run's pass/fail; they write CSV and PNG
files into ``benchmarks/out/`` (git-ignored).
"""

from __future__ import annotations

import csv
import os
import platform
import resource
import socket
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
for path in (ROOT, ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from serverproc import ServerProcess  # noqa: E402


def raise_nofile() -> int:
    """Soft open-file limit to the hard one (thousands of client sockets)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def machine() -> dict[str, Any]:
    """Facts recorded next to every result (numbers depend on them)."""
    return {
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def write_csv(name: str, rows: list[dict[str, Any]]) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / name
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def markdown_table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    """``rows`` as a Markdown table of ``cols`` (None as an empty cell)."""
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join("" if r[c] is None else str(r[c]) for c in cols) + " |"
              for r in rows]
    return "\n".join(lines)


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def cpu_s(event: dict[str, Any]) -> float:
    return event["cpu_user_s"] + event["cpu_sys_s"]


def open_idle(host: str, port: int, n: int) -> list[socket.socket]:
    """``n`` connections that never send (a connect that fails ends the list)."""
    socks = []
    for _ in range(n):
        try:
            socks.append(socket.create_connection((host, port), timeout=10))
        except OSError:
            break
    return socks


def ping_pong(sock: socket.socket, seconds: float, size: int = 64) -> tuple[int, float]:
    """Send ``size`` bytes, read them back, repeat for ``seconds``.

    Returns (round trips, elapsed). 0 round trips if the server closed or
    reset the connection (e.g. select refused it at FD_SETSIZE)."""
    msg = b"x" * size
    buf = bytearray(size)
    view = memoryview(buf)
    count = 0
    start = time.perf_counter()
    end = start + seconds
    try:
        while time.perf_counter() < end:
            sock.sendall(msg)
            got = 0
            while got < size:
                n = sock.recv_into(view[got:])
                if not n:
                    return count, time.perf_counter() - start
                got += n
            count += 1
    except OSError:
        pass
    return count, time.perf_counter() - start


def close_all(socks) -> None:
    for sock in socks:
        sock.close()


__all__ = [
    "OUT",
    "ROOT",
    "ServerProcess",
    "close_all",
    "cpu_s",
    "machine",
    "markdown_table",
    "open_idle",
    "ping_pong",
    "pyplot",
    "raise_nofile",
    "write_csv",
]

"""Running ``loadgen/locustfile.py`` in Locust subprocesses, as the lab does.

The subprocesses run from the repo root with this process's environment
(minus ``LOCUST_SKIP_MONKEY_PATCH``: a real Locust process must patch) and
inherit its raised open-file limit. Every run has a deadline; a run that
misses it is killed and the test fails with the log tail.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = "loadgen/locustfile.py"


def locust_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "LOCUST_SKIP_MONKEY_PATCH"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def locust_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "locust", "-f", LOCUSTFILE, *args]


def start(args: list[str], log: Path, *, nofile: int | None = None) -> subprocess.Popen:
    """Start Locust; ``nofile`` lowers its open-file limit (soft and hard)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    with log.open("w") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(locust_cmd(*args), cwd=ROOT, env=locust_env(),
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=limit if nofile else None)


def finish(proc: subprocess.Popen, log: Path, timeout: float) -> int:
    """Wait for ``proc``; kill it and fail with the log if it overruns."""
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"locust did not finish in {timeout}s:\n{tail(log)}") from None


def tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def load_args(host: str, steps: str, results: Path, *extra: str) -> list[str]:
    return ["--host", host, "--steps", steps, "--step-spawn-rate", "1000",
            "--step-results", str(results), "--connect-timeout", "5", "--io-timeout", "5",
            *extra]


def run_headless(host: str, steps: str, results: Path, log: Path, *extra: str,
                 timeout: float = 180) -> int:
    """One standalone (LocalRunner) EchoUser run to its end; its exit code."""
    proc = start([*load_args(host, steps, results, *extra), "--headless", "--only-summary",
                  "EchoUser"], log)
    return finish(proc, log, timeout)


def read_steps(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_locust_json(prefix: Path) -> dict[str, dict[str, Any]]:
    """``--json-file PREFIX`` output (Locust writes ``PREFIX.json``), keyed by request name."""
    return {e["name"]: e for e in json.loads(Path(f"{prefix}.json").read_text())}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def established_from(server_port: int) -> dict[str, int]:
    """Client-side sockets ESTABLISHED to 127.0.0.1:``server_port``, counted by
    local address (read from /proc/net/tcp, the kernel's own table)."""
    counts: dict[str, int] = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state = fields[1], fields[2], fields[3]
        if state != "01" or int(remote.split(":")[1], 16) != server_port:
            continue
        ip_hex = local.split(":")[0]
        ip = ".".join(str(int(ip_hex[i:i + 2], 16)) for i in (6, 4, 2, 0))
        counts[ip] = counts.get(ip, 0) + 1
    return counts


def wait_for(pred, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return False

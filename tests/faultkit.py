"""Helpers for fault tests: a real terminal (tmux), small tmpfs mounts, and
the lab's own processes seen in /proc."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]  # the repository
LAB_MARKERS = ("loadgen/locustfile.py", "-m servers", "scenarios/custom")


def lab_processes() -> set[int]:
    """Pids of this machine's lab children (servers, Locust master/workers)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(m in cmd for m in LAB_MARKERS):
            found.add(int(entry.name))
    return found


def wait_for(predicate, timeout: float, what: str, step: float = 0.2, screen=None):
    """Poll ``predicate`` until it is true; on timeout say what, and (``screen``)
    what the terminal showed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    shown = f"; the terminal showed:\n{screen()}" if screen else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{shown}")


def first_rows(out: Path) -> int:
    runs = list(out.glob("*/steps.csv"))
    if not runs:
        return 0
    return max(len(p.read_text().splitlines()) - 1 for p in runs)


class Terminal:
    """A command in a real tmux terminal: Ctrl-C there is the terminal's SIGINT
    to the foreground process group, as a person's would be."""

    def __init__(self, command: list[str], cwd: Path, rc_file: Path):
        if shutil.which("tmux") is None:
            pytest.skip("tmux is not installed (apt-get install tmux)")
        self.name = f"iolab-test-{uuid.uuid4().hex[:8]}"
        self.rc_file = rc_file
        # The shell stays after the command so its screen can still be read.
        line = (f"cd {shlex.quote(str(cwd))} && {shlex.join(command)}; echo $? > {rc_file}; "
                "exec sleep 600")
        subprocess.run(["tmux", "new-session", "-d", "-s", self.name, "-x", "160", "-y", "50",
                        line], check=True)

    def ctrl_c(self, times: int = 1, gap_s: float = 0.1) -> None:
        for _ in range(times):
            subprocess.run(["tmux", "send-keys", "-t", self.name, "C-c"], check=True)
            time.sleep(gap_s)

    def screen(self) -> str:
        out = subprocess.run(["tmux", "capture-pane", "-p", "-S", "-200", "-t", self.name],
                             capture_output=True, text=True)
        return out.stdout

    def exit_code(self, timeout: float) -> int:
        text = wait_for(lambda: self.rc_file.exists() and self.rc_file.read_text().strip(),
                        timeout, "the command to exit")
        return int(text)

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


@contextmanager
def tmpfs(path: Path, size: str):
    """A small tmpfs at ``path`` (root only: CI runs as root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                   check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path) -> None:
    """Fill the file system holding ``path`` to the last byte."""
    fd = os.open(path / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)  # unbuffered: ENOSPC comes from this write
    except OSError:
        pass
    finally:
        os.close(fd)


def during_run(command: list[str], out: Path, act, timeout: float = 240) -> tuple[int, str, Path]:
    """Run a lab command writing into ``out``; once its first step row is on
    disk call ``act(run_dir)`` (the fault), then let the run end. Returns
    (exit code, its output, the run directory); the process is always reaped."""
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: first_rows(out) >= 1, timeout, "the first step row")
        (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
        act(run_dir)
        text, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()  # reaped: no zombie, no ResourceWarning later
    return proc.returncode, text, run_dir


def run_and_fill(command: list[str], out: Path, timeout: float = 180) -> Path:
    """Run a lab command writing into the tmpfs ``out``; once its first step row
    is on disk, fill the tmpfs; then check what a full disk must leave: exit 1,
    the path and the error in the message (no "internal error"), and run.json
    holding exactly the rows of steps.csv. Returns the run directory."""
    import json

    code, text, run_dir = during_run(command, out, lambda _run_dir: fill(out), timeout)
    assert code == 1, text
    assert "No space left on device" in text and str(run_dir) in text, text
    assert "internal error" not in text
    run = json.loads((run_dir / "run.json").read_text())
    assert len(run["rows"]) == first_rows(out) >= 1
    return run_dir


def custom_scenario(path: Path, name: str, command: list[str], load: dict,
                    port: int | None = None, extra_servers: tuple[str, ...] = ()) -> Path:
    """A local-backend scenario with one custom server (``{port}`` in ``command``
    is its port) and ``load``; written to ``path``. Returns ``path``."""
    import socket

    import yaml

    if port is None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    servers = [{"name": name, "command": command, "port": port}, *extra_servers]
    path.write_text(yaml.safe_dump({"name": name, "backend": "local", "servers": servers,
                                    "load": load}, sort_keys=False))
    return path


def run_local(tmp_path: Path, yaml_text: str, *args: str) -> Path:
    """Write ``yaml_text`` as a scenario, run it in-process with ``run-lab``
    (expecting exit 0: a limit is a finding) and return its run directory."""
    from lab import cli

    scenario, out = tmp_path / "scenario.yaml", tmp_path / "out"
    scenario.write_text(yaml_text)
    assert cli.main([str(scenario), "--out", str(out), *args]) == 0
    (run_dir,) = out.iterdir()
    return run_dir


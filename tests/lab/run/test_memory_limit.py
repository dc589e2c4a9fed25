"""A local server's ``limits.memory`` is a memory cgroup: a real echo server,
written here, that keeps 4 MiB per connection is OOM-killed inside its 48 MiB
cgroup, the row says ``oom`` with the kernel's evidence, and nothing of it is
left behind (no cgroup directory, no process)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from lab import cli
from lab.backends.cgroup import CgroupUnavailable, layout
from lab.backends.local import free_port
from lab.results.writer import read_steps_csv

pytestmark = pytest.mark.load  # runs Locust or a lab: one at a time

HOG = '''\
"""Echo server that keeps 4 MiB of touched memory per connection (one thread each)."""
import socket, sys, threading

def serve(conn):
    hoard = b"x" * (4 << 20)  # touched pages: charged to the cgroup at once
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)
    del hoard

listener = socket.create_server(("127.0.0.1", int(sys.argv[1])), backlog=128)
while True:
    conn, _ = listener.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
'''

SCENARIO = """\
name: memory-hog
backend: local
servers:
  - name: hog
    command: ["{{python}}", "hog.py", "{{port}}"]
    port: {port}
    limits: {{memory: 48m}}
load:
  user: echo
  message_size: 64
  pace: 100ms
  connect_rate: 200
  hold: 1s
  steps: [2, 30]
"""


def _cgroups_here() -> bool:
    try:
        layout()
    except CgroupUnavailable:
        return False
    return True


@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.skipif(not _cgroups_here(), reason="no memory cgroup can be made here (root?)")
def test_a_server_over_its_memory_limit_is_oom_with_the_kernels_evidence(tmp_path: Path):
    (tmp_path / "hog.py").write_text(HOG)
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO.format(port=free_port()))
    out = tmp_path / "out"
    assert cli.main([str(scenario), "--out", str(out)]) == 0  # a limit is a finding
    (run_dir,) = out.iterdir()
    rows = read_steps_csv(run_dir / "steps.csv")
    assert [(r["step"], r["limit"]) for r in rows] == [("0", ""), ("1", "oom")]
    model = json.loads((run_dir / "run.json").read_text())["models"]["hog"]
    assert model["limit"] == "oom" and model["stopped_at_step"] == 1
    assert "oom_kill 1" in model["oom_evidence"]
    assert str(48 << 20) in model["oom_evidence"]
    # Nothing left: no cgroup of this run, no process running hog.py.
    where = layout()
    assert not [p for p in where.parent.glob("iolab-*") if run_dir.name in p.name]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"hog.py" in cmdline:
            os.kill(int(pid), signal.SIGKILL)
            pytest.fail(f"pid {pid} still runs hog.py")


@pytest.mark.skipif(not _cgroups_here(), reason="no memory cgroup can be made here (root?)")
def test_clean_removes_the_cgroup_of_a_killed_run_and_what_is_inside(tmp_path: Path, capsys):
    """A run killed with SIGKILL leaves its server's cgroup (and the server, if
    PR_SET_PDEATHSIG did not reach it); ``run-lab clean`` removes both. The
    owner in the name is a pid that is not running: the run is gone."""
    import subprocess

    from lab.backends.cgroup import MemoryCgroup

    group = MemoryCgroup("iolab-999999999-1-20261203-000000-mhtest--hog", 64 << 20)
    sleeper = subprocess.Popen(["sleep", "60"], preexec_fn=group.preexec)
    try:
        assert str(sleeper.pid) in (group.path / "cgroup.procs").read_text()
        assert cli.main(["clean", "--out", str(tmp_path)]) == 0
        assert "memory cgroups: removed 1" in capsys.readouterr().out
        assert not group.path.exists()
        assert sleeper.wait(5) == -signal.SIGKILL
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()
        group.remove()

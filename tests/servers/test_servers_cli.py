"""``python -m servers --list``, bad arguments, --nofile and unavailable models."""

from __future__ import annotations

import resource
import subprocess
import sys

import pytest
from serverproc import ROOT
from srvclients import AVAILABLE

from contract.models import MODELS

pytestmark = pytest.mark.timeout(60)

CONTRACT_ORDER = [
    "blocking", "threads", "forking", "threadpool", "nonblocking", "select", "poll", "epoll",
    "epoll-et", "selectors", "asyncio", "uvloop", "sigio", "io_uring",
]  # fmt: skip


def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "servers", *args], cwd=ROOT, capture_output=True, text=True,
        timeout=timeout, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_list_names_every_model_in_contract_order():
    proc = run("--list")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == CONTRACT_ORDER
    for line in lines:
        name, state = line.split("\t")
        assert state == "available" or state.startswith("unavailable: "), line
        assert (state == "available") == (name in AVAILABLE)
    # What every Linux host with the project's dependencies has:
    for name in ("blocking", "select", "poll", "epoll", "asyncio"):
        assert f"{name}\tavailable" in lines


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["epol"],
        ["epoll", "--port", "http"],
        ["epoll", "--port", "70000"],
        ["epoll", "--nofile", "lots"],
        ["epoll", "--on-fd-limit", "explode"],
        ["epoll", "--stats-interval", "0"],
        ["epoll", "--work-us", "-1"],
        ["epoll", "--block-us", "-1"],
        ["epoll", "--block-us", "soon"],
        ["epoll", "--nodelay", "yes"],
        ["epoll", "--workers", "0"],
        ["epoll", "--bogus"],
    ],
    ids=lambda a: " ".join(a) or "nothing",
)
def test_bad_arguments_exit_2_with_one_line(args):
    proc = run(*args)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "error" in proc.stderr


def test_nofile_above_the_hard_limit_exits_2():
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no hard limit")
    proc = run("epoll", "--nofile", str(hard + 1))
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "hard limit" in proc.stderr


def test_port_in_use_exits_2(start):
    srv = start("epoll")
    proc = run("epoll", "--host", "127.0.0.1", "--port", str(srv.port))
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "in use" in proc.stderr


def test_nofile_sets_the_soft_limit(start):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert start("epoll", "--nofile", "100").nofile == 100
    assert start("epoll", "--nofile", "max").nofile == hard


def test_an_unavailable_model_exits_2_with_the_reason():
    """What happens where io_uring is refused (seccomp): simulated by a registry
    entry that cannot be imported, the path any optional model takes."""
    code = (
        "import dataclasses, sys; from contract.models import BY_NAME; "
        "from servers.cli import main; BY_NAME['io_uring'] = dataclasses.replace("
        "BY_NAME['io_uring'], module='servers._no_such_binding'); sys.exit(main(sys.argv[1:]))"
    )
    for args in (["io_uring"], ["--list"]):
        proc = subprocess.run(
            [sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True,
            timeout=30,
        )  # fmt: skip
        if args == ["--list"]:
            assert proc.returncode == 0
            assert "io_uring\tunavailable: " in proc.stdout
            assert "epoll\tavailable" in proc.stdout
        else:
            assert proc.returncode == 2 and proc.stdout == ""
            assert len(proc.stderr.strip().splitlines()) == 1
            assert "io_uring is unavailable" in proc.stderr


def test_registry_is_lazy():
    """Listing names imports no model module (an optional dependency cannot
    break the others)."""
    code = "import sys, servers; print(sorted(m for m in sys.modules if m.endswith('_loop')))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.stdout.strip() == "[]"
    assert list(MODELS) == CONTRACT_ORDER

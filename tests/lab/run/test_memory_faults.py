"""Memory that runs out: the refusal's arithmetic (lab/host/ceiling.py,
doctor.py, run_cmd.py), the local memory cgroup's files and evidence
(lab/backends/cgroup.py) on a fake cgroup root, and the cause of a death."""

from __future__ import annotations

import os

import pytest

from lab import cli
from lab.backends import cgroup
from lab.host import facts as host_facts
from lab.host.ceiling import (
    KERNEL_SOCKET_BYTES,
    connection_bytes,
    lab_memory,
    memory_shortfall,
)
from lab.host.doctor import memory_refusals
from lab.host.facts import HostFacts
from lab.host.workers import USER_RSS_BYTES
from lab.run.death import cause
from lab.scenario.loader import parse_scenario

MiB = 1 << 20


def test_the_refusal_does_the_arithmetic_and_says_it():
    per = connection_bytes("forking", load_on_host=True)
    assert per == 1300 * 1024 + 200 * 1024 + 2 * KERNEL_SOCKET_BYTES + USER_RSS_BYTES
    available = lab_memory("forking", 1000).total  # one server process, one worker
    assert memory_shortfall("forking", "f", 1000, available) is None  # exactly fits
    why = memory_shortfall("forking", "f", 1001, available)
    assert why is not None
    assert "top step (1001 connections)" in why and "1001 x 1.5 MiB per connection" in why
    assert "1.3 MiB userspace + 200 KiB kernel task + 2 x 4 KiB TCP socket" in why
    assert "load generator user" in why and "(load " in why and "kernel sockets" in why
    assert "about 1000 fit" in why and "limits.memory" in why
    assert memory_shortfall("forking", "f", 10**6, None) is None  # unknown: no refusal


def test_only_unlimited_servers_on_this_machine_are_refused():
    sc = parse_scenario("servers:\n  - forking\n  - {model: threads, limits: {memory: 64m}}\n"
                        "  - epoll\nload: {steps: [10, 5000]}\n", "m.yaml")
    small = HostFacts(mem_available_bytes=512 * MiB)
    refusals = memory_refusals(sc, small)
    # forking needs ~7.4 GiB; threads has a limit (its OOM is the finding); epoll needs ~40 MiB
    assert len(refusals) == 1 and refusals[0].startswith("forking: the top step (5000")
    remote = parse_scenario(
        "hosts: [{name: r, address: 198.18.0.2, endpoint: 'tcp://198.18.0.2:2375'}]\n"
        "servers: [{model: forking, host: r}]\nplacement: {master: r}\n"
        "load: {steps: [5000]}\n", "r.yaml")
    assert memory_refusals(remote, small) == []  # not this machine's memory


def test_doctor_says_what_run_lab_will_refuse():
    from lab.host.doctor import doctor_text

    sc = parse_scenario("servers: [forking, epoll]\nload: {steps: [5000]}\n", "d.yaml")
    text = doctor_text(sc, (False, "off"), facts=HostFacts(mem_available_bytes=512 * MiB))
    (line,) = [x for x in text.splitlines() if x.startswith("run-lab refuses")]
    assert "forking: the top step (5000 connections)" in line
    roomy = doctor_text(sc, (False, "off"), facts=HostFacts(mem_available_bytes=64 << 30))
    assert "run-lab refuses" not in roomy


def test_run_lab_refuses_before_anything_starts(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(host_facts, "local_host_facts",
                        lambda: HostFacts(mem_available_bytes=256 * MiB))
    scenario = tmp_path / "big.yaml"
    scenario.write_text("servers: [forking]\nload: {steps: [1000]}\n")
    out = tmp_path / "out"
    assert cli.main([str(scenario), "--backend", "local", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    fits = max(n for n in range(1000) if lab_memory("forking", n).total <= 256 * MiB)
    assert fits == 95  # (256 MiB - a 15 MiB server - master and worker at 50 MiB) / 1518 KiB
    assert "cannot fit in this host's memory" in err and f"about {fits} fit" in err
    assert not out.exists()  # nothing started, no run directory


def test_sizes_are_dockers_binary_units():
    assert cgroup.parse_size("48m") == 48 * MiB
    assert cgroup.parse_size("1g") == 1 << 30
    assert cgroup.parse_size("512k") == 512 << 10
    assert cgroup.parse_size("1.5G") == 3 << 29
    with pytest.raises(ValueError):
        cgroup.parse_size("lots")


def _v2_root(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("cpu memory\n")
    return tmp_path


@pytest.mark.skipif(os.geteuid() != 0, reason="layout() asks for root first")
def test_layouts_v2_v1_and_none(tmp_path):
    (tmp_path / "a").mkdir()
    v2 = cgroup.layout(_v2_root(tmp_path / "a"))
    assert (v2.version, v2.limit_file, v2.events_file) == (2, "memory.max", "memory.events")
    v1_root = tmp_path / "b"
    (v1_root / "memory").mkdir(parents=True)
    (v1_root / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    v1 = cgroup.layout(v1_root)
    assert (v1.parent, v1.limit_file, v1.events_file) == (
        v1_root / "memory", "memory.limit_in_bytes", "memory.oom_control")
    bare = tmp_path / "c"
    (bare).mkdir()
    (bare / "cgroup.controllers").write_text("cpu\n")
    (bare / "cgroup.subtree_control").write_text("cpu\n")
    with pytest.raises(cgroup.CgroupUnavailable, match="without the memory controller"):
        cgroup.layout(bare)


def test_not_root_is_refused_with_the_reason(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(cgroup.CgroupUnavailable, match="needs root"):
        cgroup.layout(_v2_root(tmp_path))


def test_a_cgroups_limit_evidence_and_removal_on_a_fake_root(tmp_path):
    where = cgroup.Layout(tmp_path, 2)
    name = cgroup.cgroup_name("20261203-120000-lab", "hog")
    group = cgroup.MemoryCgroup(name, 48 * MiB, where)
    assert (tmp_path / name / "memory.max").read_text() == str(48 * MiB)
    assert (tmp_path / name / "memory.oom.group").read_text() == "1"  # the server as a whole
    assert group.evidence() is None  # no memory.events, no kill
    (tmp_path / name / "memory.events").write_text("low 0\nhigh 0\nmax 12\noom 1\noom_kill 0\n")
    assert group.evidence() is None  # the limit was hit, nobody was killed
    (tmp_path / name / "memory.events").write_text("low 0\nhigh 0\nmax 40\noom 2\noom_kill 1\n")
    assert group.evidence().startswith("memory.events: oom_kill 1 (limit 50331648 bytes)")
    for f in (tmp_path / name).iterdir():  # a real cgroup's files vanish with it
        f.unlink()
    group.remove()
    assert not (tmp_path / name).exists()
    group.remove()  # idempotent


def test_the_kernel_line_is_the_one_after_our_cgroups_oom_kill(tmp_path):
    kmsg = tmp_path / "kmsg"
    kmsg.write_text(
        "6,1,1,-;oom-kill:constraint=CONSTRAINT_MEMCG,oom_memcg=/other,task=x,pid=5\n"
        "3,2,2,-;Memory cgroup out of memory: Killed process 5 (x) total-vm:1kB\n"
        "6,3,3,-;oom-kill:constraint=CONSTRAINT_MEMCG,oom_memcg=/iolab-1-2-r--hog,"
        "task_memcg=/iolab-1-2-r--hog,task=python,pid=77,uid=0\n"
        " SUBSYSTEM=memory\n"
        "3,4,4,-;Memory cgroup out of memory: Killed process 77 (python) anon-rss:48384kB\n"
        "3,5,5,-;Out of memory: Killed process 99 (locust) anon-rss:9kB\n")
    line = cgroup.kernel_log_line("iolab-1-2-r--hog", kmsg=kmsg)
    assert line == "Memory cgroup out of memory: Killed process 77 (python) anon-rss:48384kB"
    assert cgroup.kernel_log_line("iolab-1-2-r", kmsg=kmsg) is None  # a prefix is not ours
    assert cgroup.kernel_log_line(pid=99, kmsg=kmsg).startswith("Out of memory: Killed process 99")
    assert cgroup.kernel_log_line(pid=9, kmsg=kmsg) is None
    assert cgroup.kernel_log_line("x", kmsg=tmp_path / "absent") is None


def test_a_local_child_sigkilled_by_the_oom_killer_has_the_kernels_line(tmp_path):
    class Proc:
        def __init__(self, pid, code):
            self.pid, self.code = pid, code

        def poll(self):
            return self.code

    kmsg = tmp_path / "kmsg"
    kmsg.write_text("3,5,5,-;Out of memory: Killed process 99 (locust) anon-rss:9kB\n")
    assert cgroup.killed_by_oom(Proc(99, -9), kmsg) == (
        "exit -9; kernel: Out of memory: Killed process 99 (locust) anon-rss:9kB")
    assert cgroup.killed_by_oom(Proc(98, -9), kmsg) == ""  # a SIGKILL from someone else
    assert cgroup.killed_by_oom(Proc(99, 1), kmsg) == ""  # not killed


def test_clean_finds_only_cgroups_of_runs_that_are_gone(tmp_path, monkeypatch):
    monkeypatch.setattr(cgroup, "layout", lambda root: cgroup.Layout(root, 2))
    mine = cgroup.cgroup_name("20261203-120000-lab", "hog")
    dead = "iolab-1-5-20261203-110000-lab--epoll"
    for name in (mine, dead, "iolab-h1", "docker"):
        (tmp_path / name).mkdir()
    from lab.owner import is_live

    found = cgroup.stale(lambda owner: is_live(owner) is False, root=tmp_path)
    assert found == [tmp_path / dead]  # this process is live; the harness's iolab-h1 has no owner


@pytest.mark.parametrize("event, tail, code, oom, limited, want", [
    (None, "RuntimeError: can't start new thread", -9, True, True, "oom"),  # the kernel's word
    (None, "RuntimeError: can't start new thread", 1, False, True, "threads"),
    (None, "", -9, False, True, "crash"),  # a local SIGKILL without the cgroup's count
    ("EMFILE", "", -9, True, True, "EMFILE"),  # the server saw its wall first
])
def test_the_kernels_oom_kill_comes_before_the_output(event, tail, code, oom, limited, want):
    assert cause(event, tail, code, oom_killed=oom, memory_limited=limited) == want

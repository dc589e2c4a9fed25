"""One ceiling function: doctor (before a run) and the capacity plan (after)
give the same number for every model on one host."""

from __future__ import annotations

import pytest

from contract.limits import ENOMEM, LIMITS
from contract.models import EVENT_DRIVEN, MODELS, model_facts
from lab.analysis.capacity import SLO, plan_model
from lab.host import ceiling
from lab.host.ceiling import (
    KERNEL_SOCKET_BYTES,
    binding,
    server_ceilings,
)
from lab.host.doctor import server_ceilings as doctor_ceilings
from lab.host.facts import HostFacts
from lab.host.workers import USER_RSS_BYTES
from lab.scenario.loader import parse_scenario

HOST = {"cpus": 2, "mem_bytes": 24 * 2**30, "nofile_hard": 20000, "file_max": 2_466_170,
        "pid_max": 32768, "threads_max": 192730, "nproc": 96365,
        "ip_local_port_range": "32768 60999"}
ROW = {"step": 1, "target_connections": 100, "connected": 100, "server_connections": 100,
       "p99_ms": 1.0, "error_rate": 0.0, "limit": None, "server_rss_bytes": 2**20,
       "server_cpu_s": 0.1, "echo_count": 1000, "t_end": 10.0, "hold_s": 10.0}


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("nofile", ["max", 200])
def test_doctor_and_capacity_agree(model, nofile):
    spec = parse_scenario(f"servers: [{{model: {model}, limits: {{nofile: {nofile}}}}}]\n"
                          "load: {steps: [100]}\n", "c.yaml").servers[0]
    before = {c.limit: c.connections for c in doctor_ceilings(spec, HOST)}
    after = plan_model(model, [ROW], SLO(), HOST, nofile, model).host_capacity
    descriptor_kinds = [before[k] for k in ("EMFILE", "FD_SETSIZE") if k in before]
    if descriptor_kinds:
        assert after["descriptors"] == min(descriptor_kinds)
    task_kinds = [before[k] for k in ("threads", "pid_max") if k in before]
    if task_kinds:
        assert min(after.get("threads", 1 << 62), after.get("processes", 1 << 62)) == \
            min(task_kinds)


def test_forking_is_not_bound_by_its_nofile():
    """The parent closes its copy of each connection (issue: doctor said 192 of nofile 200)."""
    facts = HostFacts.from_record(HOST)
    kinds = {c.limit for c in server_ceilings("forking", 200, facts)}
    assert "EMFILE" not in kinds and "pid_max" in kinds
    assert {c.limit for c in server_ceilings("threads", 200, facts)} >= {"EMFILE", "threads"}


def test_select_is_bound_by_fd_setsize_below_a_large_nofile():
    facts = HostFacts.from_record(HOST)
    by_kind = {c.limit: c.connections for c in server_ceilings("select", "max", facts)}
    assert by_kind["FD_SETSIZE"] == 1019 < by_kind["EMFILE"]
    small = {c.limit: c.connections for c in server_ceilings("select", 200, facts)}
    assert small["FD_SETSIZE"] == small["EMFILE"] == 195


def test_host_facts_read_every_old_spelling():
    docker = HostFacts.from_record({"ncpu": 8, "memory_bytes": 10, "nofile_hard": 1024,
                                    "nofile_max_grantable": 20000,
                                    "ip_local_port_range": "1024\t65000", "daemon_id": "x"})
    assert (docker.cpus, docker.mem_bytes, docker.nofile_hard) == (8, 10, 20000)
    assert docker.port_range == (1024, 65000) and docker.ephemeral_ports == 63977
    assert docker.extra == {"daemon_id": "x"}
    local = HostFacts.from_record({"mem_total_bytes": 7, "cpus": 2})
    assert local.mem_bytes == 7 and HostFacts.from_record(local.to_record()) == local


@pytest.mark.parametrize("model", [*MODELS, None])
def test_memory_is_a_ceiling_for_every_model(model):
    """Available memory (total where unknown) over what one connection costs:
    the model's userspace and kernel-task memory and its TCP socket, two sockets
    when the load shares the host."""
    cost = model_facts(model).memory
    own = cost.userspace + cost.kernel
    total = HostFacts.from_record(HOST)  # 24 GiB, no MemAvailable recorded
    (mem,) = [c for c in server_ceilings(model, "max", total) if c.limit == "ENOMEM"]
    assert mem.connections == 24 * 2**30 // (own + KERNEL_SOCKET_BYTES)
    assert "4 KiB TCP socket" in mem.why and "24 GiB of memory" in mem.why
    available = HostFacts.from_record({**HOST, "mem_available_bytes": 6 * 2**30})
    (mem,) = [c for c in server_ceilings(model, "max", available, load_on_host=True)
              if c.limit == "ENOMEM"]
    # the load's user too: the generator's RSS per held connection
    with_load = own + 2 * KERNEL_SOCKET_BYTES + USER_RSS_BYTES
    assert mem.connections == 6 * 2**30 // with_load
    assert "2 x 4 KiB TCP socket" in mem.why and "6 GiB available" in mem.why
    assert "load generator user" in mem.why
    assert mem.why.startswith(f"~{ceiling._size(with_load)} per connection")
    assert LIMITS[ENOMEM].resource == "memory"  # the capacity plan's column for this kind


def test_no_memory_ceiling_without_memory_facts():
    facts = HostFacts.from_record({k: v for k, v in HOST.items() if k != "mem_bytes"})
    assert "ENOMEM" not in {c.limit for c in server_ceilings("epoll", "max", facts)}


def test_every_model_has_a_measured_memory_cost():
    # a process per connection costs far more than a thread, a thread more than a
    # registration in an event loop: the order the measurement found
    per = {m: ceiling.connection_bytes(m) for m in MODELS}
    assert per["forking"] > 10 * per["threads"] > 10 * max(per[m] for m in EVENT_DRIVEN)


def test_forking_runs_out_of_memory_before_pids_on_a_24_gib_host():
    """~1.5 MiB per forked connection: 24 GiB hold ~16 000 children, fewer than
    pid_max 32768 allows."""
    first = binding(server_ceilings("forking", "max", HostFacts.from_record(HOST)))
    assert first.limit == "ENOMEM" and 10_000 < first.connections < 32768
    assert "1.3 MiB userspace + 200 KiB kernel task" in first.why

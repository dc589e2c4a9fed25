"""One ceiling function: doctor (before a run) and the capacity plan (after)
give the same number for every model on one host."""

from __future__ import annotations

import pytest

from contract.models import MODELS
from lab.analysis.capacity import SLO, plan_model
from lab.host.ceiling import server_ceilings
from lab.host.doctor import server_ceilings as doctor_ceilings
from lab.host.facts import HostFacts
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

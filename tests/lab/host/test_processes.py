"""``processes: N | auto``: the scenario key of the event-driven models, the
server command that carries it, and the arithmetic of the ceiling and of
``auto`` (the servers' side is tests/servers/test_servers_reuseport.py)."""

from __future__ import annotations

import pytest

from contract.models import EVENT_DRIVEN, MODELS, REUSEPORT_MODELS
from lab.analysis.capacity import SLO, plan_model
from lab.backends.local import LocalBackend
from lab.backends.server_cmd import processes, server_command
from lab.host.ceiling import (
    AUTO_PROCESSES_MARGIN,
    HASH_SPREAD_SD,
    binding,
    processes_for,
    server_ceilings,
)
from lab.host.doctor import scenario_lines
from lab.host.doctor import server_ceilings as doctor_ceilings
from lab.host.facts import HostFacts
from lab.scenario import schema
from lab.scenario.errors import ScenarioError
from lab.scenario.loader import parse_scenario, scenario_to_yaml

FACTS = HostFacts(nofile_hard=20000, file_max=1 << 40, pid_max=1 << 20, threads_max=1 << 20,
                  cpus=2)


def servers(text: str, steps: str = "[10]"):
    return parse_scenario(f"{text}\nload: {{steps: {steps}}}\n", "t.yaml").servers


def errors(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        servers(text)
    return str(info.value).splitlines()


def test_the_group_is_the_event_driven_models_and_drives_the_schema():
    assert REUSEPORT_MODELS == EVENT_DRIVEN
    assert schema.SERVER.field("processes").models == REUSEPORT_MODELS
    assert "processes" in schema.DEFAULTS.keys


@pytest.mark.parametrize("value, got", [("3", 3), ("auto", "auto"), ("1", 1)])
def test_epoll_takes_a_number_or_auto(value, got):
    (spec,) = servers(f"servers: [{{model: epoll, processes: {value}}}]")
    assert spec.processes == got
    assert parse_scenario(scenario_to_yaml(parse_scenario(
        f"servers: [{{model: epoll, processes: {value}}}]\nload: {{steps: [10]}}\n")),
        "again.yaml").servers[0].processes == got  # the dump loads back


def test_the_default_is_one_process():
    (spec,) = servers("servers: [epoll]")
    assert spec.processes == 1


@pytest.mark.parametrize("model", sorted(set(MODELS) - REUSEPORT_MODELS))
def test_other_models_refuse_it_naming_the_field(model):
    (error,) = errors(f"servers: [{{model: {model}, processes: 2}}]")
    assert f"servers[0].processes: only applies to {', '.join(sorted(REUSEPORT_MODELS))} (" in \
        error and error.endswith(f"remove it from '{model}'")


def test_a_custom_server_refuses_it():
    (error,) = errors("servers: [{name: mine, command: ./srv, port: 9, processes: 2}]")
    assert "servers[0].processes: only applies to" in error
    assert "a custom server takes its own options in 'command'" in error


@pytest.mark.parametrize("value", ["0", "many", "1.5", "257"])
def test_bad_values_are_refused(value):
    (error,) = errors(f"servers: [{{model: epoll, processes: {value}}}]")
    assert "servers[0].processes:" in error


def test_defaults_reach_only_the_models_it_fits():
    got = {s.name: s.processes for s in servers(
        "defaults: {processes: auto}\nservers: [epoll, select, threads, threadpool]")}
    assert got == {"epoll": "auto", "select": "auto", "threads": 1, "threadpool": 1}


def test_the_command_carries_processes_only_above_one():
    (spec,) = servers("servers: [{model: epoll, processes: 3}]")
    one = server_command(spec, python="py", host="h", port=1, nofile="max")
    three = server_command(spec, python="py", host="h", port=1, nofile="max", processes=3)
    assert "--processes" not in one and three == [*one, "--processes", "3"]
    assert LocalBackend.server_command(spec, 3)[-2:] == ["--processes", "3"]


def test_auto_is_sized_from_the_top_step_and_one_processes_ceiling():
    # epoll at nofile 64 holds 64 - 6 = 58; 100 x 1.1 = 110 needs 2 of them,
    # but 2 get 50 each +- 7: 50 + 4 x 7.1 = 78 > 58; 3 get 33 + 4 x 5.8 = 56.4.
    assert AUTO_PROCESSES_MARGIN == 1.1 and HASH_SPREAD_SD == 4.0
    assert processes_for("auto", "epoll", 64, 100) == 3
    assert processes_for("auto", "epoll", 64, 105) == 4  # 35 + 4 x 5.9 = 58.7 > 58
    assert processes_for("auto", "epoll", 64, 50) == 2  # 25 + 4 x 5 = 45 (the margin: 1)
    assert processes_for("auto", "epoll", 20000, 19000) == 2  # 20900 / 19994; 9500 + 390
    assert processes_for("auto", "epoll", 20000, 500_000) == 28  # 17857 + 535: the margin
    assert processes_for("auto", "epoll", 8, 3) == 3  # 2 each at most: one per connection
    assert processes_for("auto", "epoll", 20000, 10) == 1  # at least one
    assert processes_for("auto", "select", 20000, 5000) == 6  # 5500 / (1024 - 5)
    assert processes_for(3, "epoll", 64, 10_000) == 3  # a number is the number
    (spec,) = servers("servers: [{model: epoll, processes: auto}]")
    assert processes(spec, 64, 100) == 3


def test_auto_leaves_room_for_the_hash_of_real_connections():
    """The sizing's premise, checked on the kernel: 2,000 loopback connections
    over 4 SO_REUSEPORT listeners land binomially (each listener's count within
    4 standard deviations of the mean), not evenly and not all on one."""
    import socket
    listeners = []
    try:
        first = socket.socket()
        first.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        first.bind(("127.0.0.1", 0))
        port = first.getsockname()[1]
        listeners.append(first)
        for _ in range(3):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            s.bind(("127.0.0.1", port))
            listeners.append(s)
        for s in listeners:
            s.listen(2048)
            s.setblocking(False)
        counts = []
        for _ in range(4):  # 4 x 500: the accept queues (2048 each) never fill
            clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(500)]
            for c in clients:
                c.close()
        for s in listeners:
            n = 0
            while True:
                try:
                    conn, _ = s.accept()
                except BlockingIOError:
                    break
                conn.close()
                n += 1
            counts.append(n)
    finally:
        for s in listeners:
            s.close()
    mean, sd = 500, (2000 * 0.25 * 0.75) ** 0.5  # 19.4
    assert sum(counts) == 2000, counts
    assert all(abs(n - mean) <= HASH_SPREAD_SD * sd for n in counts), counts
    assert len(set(counts)) > 1, counts  # a hash, not a round robin


def test_the_ceiling_is_n_times_one_process():
    one = binding(server_ceilings("epoll", 64, FACTS))
    three = binding(server_ceilings("epoll", 64, FACTS, processes=3))
    assert (one.limit, one.connections) == ("EMFILE", 58)
    assert (three.limit, three.connections) == ("EMFILE", 3 * 58)
    assert three.why.endswith("6 of them the server's own, in each of 3 processes")
    select = binding(server_ceilings("select", "max", FACTS, processes=2))
    assert (select.limit, select.connections) == ("FD_SETSIZE", 2 * 1019)


def test_doctor_and_the_plan_count_the_processes_auto_resolves_to():
    scenario = parse_scenario("servers: [{model: epoll, processes: auto, limits: {nofile: 64}}]\n"
                              "load: {steps: [40, 100]}\n", "t.yaml")
    (spec,) = scenario.servers
    assert binding(doctor_ceilings(spec, FACTS, top=100)).connections == 3 * 58
    assert "reaches the top step" in scenario_lines(scenario, FACTS, "local")[1]
    row = {"step": 1, "target_connections": 100, "connected": 100, "server_connections": 100,
           "p99_ms": 1.0, "error_rate": 0.0, "limit": None, "server_rss_bytes": 2**20,
           "server_cpu_s": 0.1, "echo_count": 1000, "t_end": 10.0, "hold_s": 10.0}
    host = {"cpus": 2, "nofile_hard": 20000}
    plan = plan_model("epoll", [row], SLO(), host, 64, "epoll", processes=3)
    assert plan.host_capacity["descriptors"] == 3 * 58


def test_a_cpu_cause_counts_one_core_per_reuseport_process():
    """An event-driven server in 2 processes on a 4-core host can use 2 cores:
    1.9 cores used is CPU-bound, where one process would have been at 1.0."""
    from lab.analysis.causes import cause, cores_available

    assert cores_available("epoll", 4) == 1
    assert cores_available("epoll", 4, processes=2) == 2
    assert cores_available("epoll", 2, processes=6) == 2  # never more than the host has
    assert cores_available("threads", 4, processes=1) == 4
    row = {"p99_ms": 500.0, "connected": 100, "server_cpu_s": 10.0}
    assert "CPU" in cause(row, ["latency"], 1.9, cores_available("epoll", 4, processes=2))
    assert "CPU" not in cause(row, ["latency"], 1.9, cores_available("epoll", 4, processes=4))


def test_a_recorded_run_keeps_the_processes_it_ran():
    """A run recorded before auto sized for the hash's spread ran 2 processes
    where auto now says 3: its plan counts the 2 its final stats list."""
    from pathlib import Path

    from lab.analysis.capacity import model_setting
    from lab.results.reader import Run

    scenario = parse_scenario("servers: [{model: epoll, processes: auto, limits: {nofile: 64}}]\n"
                              "load: {steps: [40, 100]}\n", "t.yaml")
    fresh = Run(Path("run"), [], {"host": {"nofile_hard": 20000}}, scenario)
    assert model_setting(fresh, "epoll")["processes"] == 3
    final = {"processes": [{"pid": 11}, {"pid": 12}]}
    recorded = Run(Path("run"), [], {"host": {"nofile_hard": 20000},
                                     "models": {"epoll": {"final": final}}}, scenario)
    assert model_setting(recorded, "epoll")["processes"] == 2

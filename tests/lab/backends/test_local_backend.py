"""Local backend pieces that need no processes."""

from __future__ import annotations

import json
import socket

import pytest

from lab.backends.local import (
    LocalBackend,
    LocalLoad,
    source_ips,
)
from lab.backends.locust_cmd import master_command
from lab.backends.server_cmd import server_command, substitute
from lab.backends.server_output import parse_event, parse_ready
from lab.errors import BackendError
from lab.scenario.loader import parse_scenario


def test_parse_ready():
    assert parse_ready("READY 127.0.0.1:4242 model=epoll pid=77 nofile=20000") == {
        "host": "127.0.0.1", "port": 4242, "model": "epoll", "pid": 77, "nofile": 20000}
    assert parse_ready('{"event": "stats"}') is None


def test_parse_event_takes_json_objects_only():
    assert parse_event('{"event": "limit", "kind": "EMFILE"}') == {"event": "limit",
                                                                   "kind": "EMFILE"}
    for other in ("READY 0.0.0.0:1 model=x", '{"event": "sta', "[1, 2]", "server log text"):
        assert parse_event(other) is None


def test_each_worker_gets_its_own_source_addresses():
    assert source_ips(0) == "127.0.0.10,127.0.0.11"
    assert source_ips(1) == "127.0.0.12,127.0.0.13"
    with pytest.raises(BackendError):
        source_ips(200)


def test_substitute_and_ports_of_the_master():
    assert substitute(("{python}", "srv.py", "--port={port}"), python="py", port=9) == [
        "py", "srv.py", "--port=9"]
    load = parse_scenario("servers: [epoll]\nload: {steps: [10]}\n", "u.yaml").load
    cmd = master_command(load, target_host="127.0.0.1", target_port=1, workers=2,
                         step_results="s.jsonl", ui=True, master_port=6001, web_port=6002)
    assert cmd[cmd.index("--master-bind-port") + 1] == "6001"
    assert cmd[cmd.index("--web-port") + 1] == "6002"


def test_both_backends_start_a_model_with_the_same_options():
    spec = parse_scenario("servers: [{model: threadpool, workers: 8, limits: {nofile: 4096}}]\n"
                          "load: {steps: [10]}\n", "u.yaml").servers[0]
    local = LocalBackend.server_command(spec)
    docker = server_command(spec, python="python", host="0.0.0.0", port=7000, nofile="max")
    assert local[local.index("--nofile") + 1] == "4096" and local[local.index("--port") + 1] == "0"
    assert docker[docker.index("--host") + 1] == "0.0.0.0"
    def options(cmd):
        return {cmd[i]: cmd[i + 1] for i in range(4, len(cmd), 2)}
    same = ("--backlog", "--on-fd-limit", "--work-us", "--stats-interval", "--workers")
    assert {k: options(local)[k] for k in same} == {k: options(docker)[k] for k in same}
    assert options(docker)["--workers"] == "8"


def test_unapplied_settings_name_container_only_limits(tmp_path):
    scenario = parse_scenario(
        "hosts: [{name: a, address: 127.0.0.1}, {name: b, address: 198.18.0.3}]\n"
        "servers:\n  - model: epoll\n    limits: {cpuset: '0',"
        " sysctls: {net.core.somaxconn: 8192}}\n"
        "load: {steps: [10]}\n", "u.yaml")
    backend = LocalBackend(scenario)
    try:
        notes = backend.unapplied_settings(scenario)
        server = LocalBackend.server_command(scenario.servers[0])
    finally:
        backend.cleanup()
    assert any("servers[0].limits.sysctls" in n and "somaxconn" in n for n in notes)
    assert any("servers[0].limits.cpuset" in n for n in notes)
    assert any(n.startswith("hosts/placement") for n in notes)
    assert server[server.index("--nofile") + 1] == "max"
    assert server[server.index("--host") + 1] == "127.0.0.1"


def test_load_reads_only_complete_step_lines(tmp_path):
    path = tmp_path / "steps.jsonl"
    load = LocalLoad(master=None, workers=[], master_log=tmp_path / "m.log", step_results=path,
                     web_url=None)
    assert load.poll_step_results() == []
    path.write_text(json.dumps({"step": 0}) + "\n" + '{"step": ')
    assert load.poll_step_results() == [{"step": 0}]
    with path.open("a") as f:
        f.write('1}\n')
    assert load.poll_step_results() == [{"step": 1}]
    assert load.poll_step_results() == []


def test_a_free_port_is_outside_the_range_connects_take_source_ports_from():
    """A listener picked inside ip_local_port_range can lose its port to one of
    the load's own connects before it binds; free_port picks outside it."""
    from lab.backends.children import _port_range, free_port

    low, high = _port_range()
    ports = {free_port() for _ in range(20)}
    if low > 1024 or high < 65535:  # the range leaves room outside it
        assert all(p < low or p > high for p in ports), (ports, low, high)
    for port in ports:  # and each is free: a listener can take it
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))

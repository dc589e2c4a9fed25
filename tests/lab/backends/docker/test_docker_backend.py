"""Orchestration logic of the Docker backend against a fake Docker client.

The fake records what the backend asks Docker for (container kwargs, networks,
published ports) and plays back container output; the real daemon's
behaviour is covered by the Docker tests beside it (marker docker).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import itertools
import json
from pathlib import Path

import docker.errors
import pytest
import requests.exceptions

from contract.network import LAB_NETWORK
from lab.backends.base import RunContext
from lab.backends.docker import images
from lab.backends.docker import network as docker_net
from lab.backends.docker.backend import DockerBackend
from lab.backends.docker.handles import StepResultsReader
from lab.backends.docker.hosts import clean_all
from lab.backends.docker.specs import SECCOMP_IO_URING
from lab.errors import BackendError
from lab.host import limits as hostlimits
from lab.host.workers import PER_WORKER_COMFORT
from lab.owner import owner_id
from lab.scenario.types import (
    HostLimits,
    HostSpec,
    Limits,
    LoadSpec,
    Placement,
    Scenario,
    ServerSpec,
    Step,
)

PROBE_OUTPUT = (
    "file_max=100000\nnr_open=1048576\nfile_nr=1 0 100000\npid_max=32768\n"
    "threads_max=1000\nsomaxconn=4096\nip_local_port_range=32768 60999\n"
    "tcp_tw_reuse=2\nnofile_soft=20000\nnofile_hard=20000\n"
)

REFUSED = requests.exceptions.ConnectionError(
    "('Connection aborted.', ConnectionRefusedError(111, 'Connection refused')) "
    "[Errno 111] Connection refused")


class FakeContainer:
    def __init__(self, daemon, name, command, kwargs):
        self.daemon, self.name, self.command, self.kwargs = daemon, name, command, kwargs
        self.id = name or f"probe{next(daemon.ids)}"
        self.status = "created"
        self.exit_code = 0
        self.ip = f"198.18.5.{next(daemon.ids) + 2}"
        self.removed = False
        self.files: dict[str, bytes] = {}
        self.attrs: dict = {}
        self._refresh()

    @property
    def labels(self):
        return self.kwargs.get("labels", {})

    def _refresh(self):
        ports = {p: [{"HostIp": one[0], "HostPort": str(40000 + 100 * i + j)}
                     for j, one in enumerate(b if isinstance(b, list) else [b])]
                 for i, (p, b) in enumerate(sorted(self.kwargs.get("ports", {}).items()))}
        self.attrs = {
            "State": {"Running": self.status == "running",
                      "Status": self.status, "ExitCode": self.exit_code},
            "NetworkSettings": {"Networks": {self.kwargs.get("network", "bridge"):
                                             {"IPAddress": self.ip}},
                                "Ports": ports},
        }

    def reload(self):
        if self.removed:
            raise docker.errors.NotFound("gone")
        self._refresh()

    def start(self):
        nofile = next(u for u in self.kwargs.get("ulimits", [])
                      if u["Name"] == "nofile")["Hard"] if self.kwargs.get("ulimits") else 0
        if nofile > self.daemon.grantable:
            raise docker.errors.APIError("error setting rlimit type 7: operation not permitted")
        self.status = "running"
        if self.daemon.die_at_start and "servers" in self.command:
            self.status, self.exit_code = "exited", 3

    def output(self) -> bytes:
        cmd = " ".join(self.command)
        if "servers" in self.command and self.daemon.die_at_start:
            return b"Traceback: boom\n"
        if "servers" in self.command and self.daemon.silent:
            return b"still importing...\n"
        if "servers" in self.command:
            model = self.command[self.command.index("servers") + 1]
            return (f"READY 0.0.0.0:7000 model={model} pid=7 nofile=20000\n"
                    + json.dumps({"event": "final", "connections": 0}) + "\n").encode()
        if "PROBE" in cmd or "file-max" in cmd:
            return PROBE_OUTPUT.encode()
        return b""

    def logs(self, stream=False, follow=False, **_):
        return iter([self.output()]) if stream else self.output()

    def wait(self, timeout=None):
        self.status = "exited"
        return {"StatusCode": 0}

    def stop(self, timeout=None):
        self.status = "exited"

    def remove(self, force=False, v=False):
        if getattr(self.daemon, "down", False):
            raise REFUSED  # what the SDK raises when the daemon is gone
        self.removed = True
        self.daemon.containers.pop(self.id, None)

    def stats(self, **_):
        return {}

    def get_archive(self, path):
        raise docker.errors.NotFound("no file")


class FakeNetwork:
    def __init__(self, daemon, name, kwargs):
        self.daemon, self.name, self.kwargs = daemon, name, kwargs
        pool = kwargs["ipam"]["Config"][0]
        self.attrs = {"IPAM": {"Config": [{"Subnet": pool["Subnet"]}]}}
        self.removed = False

    def remove(self):
        if self.removed:
            raise docker.errors.NotFound("no such network")
        self.removed = True
        self.daemon.networks.remove(self)


def _match(labels: dict, filters: dict | None) -> bool:
    if not filters:
        return True
    key, _, value = filters["label"].partition("=")
    return key in labels and (not value or labels[key] == value)


class FakeDaemon:
    """One daemon's state; several FakeClients (endpoints) may share it."""

    def __init__(self, ident="D1", grantable=20000, die_at_start=False, silent=False):
        self.ident, self.grantable, self.die_at_start = ident, grantable, die_at_start
        self.silent = silent  # servers start but never print READY
        self.ids = itertools.count(1)
        self.containers: dict[str, FakeContainer] = {}
        self.created: list[FakeContainer] = []
        self.networks: list[FakeNetwork] = []
        self.volumes: dict[str, dict] = {}  # name -> labels


class _Volume:
    def __init__(self, daemon, name):
        self.d, self.name = daemon, name
        self.attrs = {"Labels": daemon.volumes.get(name)}

    def remove(self, force=False):
        del self.d.volumes[self.name]


class _Volumes:
    def __init__(self, daemon):
        self.d = daemon

    def create(self, name, labels=None):
        self.d.volumes[name] = dict(labels or {})
        return _Volume(self.d, name)

    def list(self, filters=None):
        return [_Volume(self.d, n) for n, labels in self.d.volumes.items()
                if _match(labels, filters)]


class FakeClient:
    def __init__(self, daemon: FakeDaemon):
        self.d = daemon
        self.containers = self
        self.networks = _Networks(daemon)
        self.volumes = _Volumes(daemon)

    def info(self):
        return {"ID": self.d.ident, "ServerVersion": "fake", "NCPU": 2}

    def ping(self):
        if getattr(self.d, "down", False):
            raise REFUSED
        return True

    def close(self):
        pass

    # containers collection
    def create(self, image, command, name=None, **kwargs):
        c = FakeContainer(self.d, name, list(command), {"image": image, **kwargs})
        self.d.containers[c.id] = c
        self.d.created.append(c)
        return c

    def list(self, all=False, filters=None, ignore_removed=False):
        return [c for c in self.d.containers.values() if _match(c.labels, filters)]


class _Networks:
    def __init__(self, daemon):
        self.d = daemon

    def create(self, name, **kwargs):
        ipam = kwargs["ipam"]
        kwargs["ipam"] = {"Config": [dict(p) for p in ipam["Config"]]}
        net = FakeNetwork(self.d, name, kwargs)
        self.d.networks.append(net)
        return net

    def list(self, filters=None):
        return [n for n in self.d.networks if _match(n.kwargs.get("labels", {}), filters)]


def scenario(*, servers=None, hosts=None, placement=None, host_limits=None, workers=None,
             steps=((100, 1.0), (200, 1.0))):
    return Scenario(
        name="t",
        servers=tuple(servers or (ServerSpec(name="epoll", model="epoll"),)),
        load=LoadSpec(steps=tuple(Step(c, h) for c, h in steps), workers=workers),
        hosts=tuple(hosts or (HostSpec(name="local"),)),
        placement=placement or Placement(),
        host_limits=host_limits or HostLimits(),
    )


def backend_for(sc, clients):
    return DockerBackend(sc, clients=clients, image="iolab:test")


@pytest.fixture(autouse=True)
def no_real_daemon(monkeypatch):
    """Unit tests never reach a real daemon: ``local`` (what the marker test of
    this machine compares with, when no host uses it) answers nothing here
    unless a test gives it a fake."""
    from lab.backends.docker import hosts

    def refuse(endpoint, *args, **kwargs):
        raise BackendError(f"no real Docker daemon in unit tests ({endpoint})")

    monkeypatch.setattr(hosts, "client_for", refuse)


@pytest.fixture
def ctx(tmp_path):
    return lambda sc: RunContext(run_id="r1", run_dir=tmp_path, scenario=sc)


def test_server_container_is_limited_labelled_and_unprivileged(ctx):
    daemon = FakeDaemon()
    sc = scenario(servers=[ServerSpec(name="epoll", model="epoll",
                                      limits=Limits(backlog=2048, memory="1g", cpuset="0"))])
    with backend_for(sc, {"local": FakeClient(daemon)}) as b:
        handle = b.start_server(sc.servers[0], ctx(sc))
        server = next(c for c in daemon.created if c.labels.get("iolab.role") == "server")
        kw = server.kwargs
        assert server.name.startswith("iolab-r1-server-epoll")
        assert kw["labels"] == {"iolab": "1", "iolab.run": "r1", "iolab.role": "server",
                                "iolab.host": "local", "iolab.owner": owner_id()}
        assert [(u["Name"], u["Soft"], u["Hard"]) for u in kw["ulimits"]] == [
            ("nofile", 20000, 20000)]
        assert kw["sysctls"]["net.core.somaxconn"] == "2048"
        assert kw["cap_drop"] == ["ALL"] and "privileged" not in kw
        assert kw["security_opt"] == ["no-new-privileges"]
        assert kw["mem_limit"] == "1g" and kw["cpuset_cpus"] == "0"
        assert kw["init"] is True and kw["network"] == "iolab-r1"
        assert kw["ports"] == {}  # same daemon: no published port
        assert (handle.target_host, handle.target_port) == (server.ip, 7000)
        assert handle.ready["model"] == "epoll" and handle.ready["nofile"] == 20000
        net = daemon.networks[0]
        subnet = ipaddress.ip_network(net.attrs["IPAM"]["Config"][0]["Subnet"])
        assert subnet.subnet_of(LAB_NETWORK)
    assert daemon.containers == {} and daemon.networks == []


def test_only_io_uring_gets_the_seccomp_profile(ctx):
    daemon = FakeDaemon()
    sc = scenario(servers=[ServerSpec(name="io_uring", model="io_uring"),
                           ServerSpec(name="epoll", model="epoll")])
    with backend_for(sc, {"local": FakeClient(daemon)}) as b:
        for spec in sc.servers:
            b.start_server(spec, ctx(sc))
        servers = [c for c in daemon.created if c.labels.get("iolab.role") == "server"]
        uring, epoll = servers
        profile = json.loads(uring.kwargs["security_opt"][1].removeprefix("seccomp="))
        assert profile == json.loads(SECCOMP_IO_URING.read_text())
        allowed = {n for r in profile["syscalls"] if r["action"] == "SCMP_ACT_ALLOW"
                   for n in r["names"]}
        assert {"io_uring_setup", "io_uring_enter", "io_uring_register"} <= allowed
        assert not any(o.startswith("seccomp") for o in epoll.kwargs["security_opt"])


def test_nofile_above_what_the_daemon_grants_is_capped_and_reported(ctx):
    daemon = FakeDaemon(grantable=20000)
    sc = scenario(servers=[ServerSpec(name="epoll", model="epoll", limits=Limits(nofile=50000))])
    with backend_for(sc, {"local": FakeClient(daemon)}) as b:
        assert b.daemons.facts("local")["nofile_max_grantable"] == 20000
        notes = b.unapplied_settings(sc)
        assert any("nofile 50000" in n and "20000" in n for n in notes)
        b.start_server(sc.servers[0], ctx(sc))
        server = [c for c in daemon.created if c.labels.get("iolab.role") == "server"][0]
        assert server.kwargs["ulimits"][0]["Hard"] == 20000


def test_host_file_max_below_the_wish_is_reported_not_raised_without_opt_in():
    daemon = FakeDaemon()
    sc = scenario(host_limits=HostLimits(file_max=5_000_000))
    with backend_for(sc, {"local": FakeClient(daemon)}) as b:
        notes = b.unapplied_settings(sc)
    assert len(notes) == 1 and "fs.file-max is 100000" in notes[0]
    assert "raise_host_limits" in notes[0]
    assert not any(c.kwargs.get("privileged") for c in daemon.created)


def test_load_master_and_workers_on_one_daemon(ctx):
    daemon = FakeDaemon()
    sc = scenario(workers=2)
    with backend_for(sc, {"local": FakeClient(daemon)}) as b:
        server = b.start_server(sc.servers[0], ctx(sc))
        load = b.start_load(server, ctx(sc), ui=True)
        master = load.master
        assert master.labels["iolab.role"] == "master"
        assert f"tcp://{server.target_host}:7000" in master.command
        assert master.command[master.command.index("--expect-workers") + 1] == "2"
        # web UI: published on loopback only; master port not published
        assert master.kwargs["ports"] == {"8089/tcp": ("127.0.0.1", 8089)}
        assert load.web_url == "http://127.0.0.1:40000"
        assert len(load.workers) == 2
        for w in load.workers:
            assert w.command[w.command.index("--master-host") + 1] == master.ip
            assert w.kwargs["ulimits"][0]["Hard"] == 20000
            assert w.kwargs["sysctls"]["net.ipv4.ip_local_port_range"] == "1024 65000"
        assert len({w.name for w in load.workers}) == 2
        load.stop()
    assert daemon.containers == {}


def test_worker_count_follows_target_connections(ctx):
    daemon = FakeDaemon()
    sc = scenario(steps=((2 * PER_WORKER_COMFORT + 1, 1.0),))  # paced echo users
    with backend_for(sc, {"local": FakeClient(daemon)}) as b:
        load = b.start_load(b.start_server(sc.servers[0], ctx(sc)), ctx(sc))
        assert len(load.workers) == 3


def test_two_endpoints_of_one_daemon_share_one_network(ctx):
    daemon = FakeDaemon()
    hosts = (HostSpec(name="a", endpoint="unix:///x"), HostSpec(name="b", endpoint="unix:///y"))
    sc = scenario(servers=[ServerSpec(name="epoll", model="epoll", host="a")], hosts=hosts,
                  placement=Placement(master="b", workers=("a", "b")), workers=2)
    with backend_for(sc, {"a": FakeClient(daemon), "b": FakeClient(daemon)}) as b:
        load = b.start_load(b.start_server(sc.servers[0], ctx(sc)), ctx(sc))
        assert len(daemon.networks) == 1
        assert [w.labels["iolab.host"] for w in load.workers] == ["a", "b"]
        assert load.master.labels["iolab.host"] == "b"


def server_on_one_load_on_other(server: HostSpec, load: HostSpec, master: str | None = None):
    """epoll on ``server``, its one worker on ``load`` (the master there too
    unless ``master`` names another host)."""
    return scenario(servers=[ServerSpec(name="epoll", model="epoll", host=server.name)],
                    hosts=(server, load), workers=1,
                    placement=Placement(master=master or load.name, workers=(load.name,)))


def test_two_daemons_with_one_id_are_two_daemons(ctx):
    """Cloned daemons (one key.json) report the same ID; the labelled marker
    tells them apart, so each gets its own network (they collapsed into one)."""
    d1, d2 = FakeDaemon("SAME"), FakeDaemon("SAME")
    sc = server_on_one_load_on_other(
        HostSpec(name="a", endpoint="tcp://198.18.250.1:2375", address="198.18.250.1"),
        HostSpec(name="b", endpoint="tcp://198.18.250.2:2375", address="198.18.250.2"))
    with backend_for(sc, {"a": FakeClient(d1), "b": FakeClient(d2)}) as b:
        assert b.daemons.daemon("a") != b.daemons.daemon("b")
        b.start_load(b.start_server(sc.servers[0], ctx(sc)), ctx(sc))
        assert len(d1.networks) == 1 and len(d2.networks) == 1
    assert d1.volumes == {} and d2.volumes == {}  # the markers are removed


def test_cross_daemon_uses_published_ports_on_host_addresses(ctx):
    d1, d2 = FakeDaemon("D1"), FakeDaemon("D2")
    sc = server_on_one_load_on_other(
        HostSpec(name="srv", endpoint="tcp://10.0.0.1:2375", address="10.0.0.1"),
        HostSpec(name="gen", endpoint="ssh://gen", address="10.0.0.2"), master="srv")
    with backend_for(sc, {"srv": FakeClient(d1), "gen": FakeClient(d2)}) as b:
        with pytest.raises(BackendError, match="allow_external_targets"):
            b.start_server(sc.servers[0], ctx(sc))
    sc = dataclasses.replace(sc, allow_external_targets=True)
    with backend_for(sc, {"srv": FakeClient(d1), "gen": FakeClient(d2)}) as b:
        server = b.start_server(sc.servers[0], ctx(sc))
        assert (server.target_host, server.target_port) == ("10.0.0.1", 40000)
        srv = [c for c in d1.created if c.labels.get("iolab.role") == "server"][0]
        assert srv.kwargs["ports"] == {"7000/tcp": [("10.0.0.1", None)]}  # one per worker
        load = b.start_load(server, ctx(sc))
        assert load.master.kwargs["ports"] == {"5557/tcp": ("10.0.0.1", None)}
        worker = load.workers[0]
        assert worker.daemon is d2
        assert worker.kwargs["environment"] == {"IOLAB_ALLOW_EXTERNAL_TARGETS": "1"}
        assert worker.command[worker.command.index("--master-host") + 1] == "10.0.0.1"
        assert worker.command[worker.command.index("--master-port") + 1] == "40000"
        assert "--target-port" not in worker.command  # one worker: --host's port is its own
        assert len(d1.networks) == len(d2.networks) == 1
    assert d1.containers == d2.containers == {} and d1.networks == d2.networks == []


def test_each_cross_host_worker_gets_its_own_published_port_of_the_server(ctx):
    """One load host's workers leave through its one address (MASQUERADE): on
    one server port they would share ~64,500 NAT source ports. So the server's
    port is published once per worker, and each worker targets its own."""
    d1, d2 = FakeDaemon("D1"), FakeDaemon("D2")
    sc = scenario(servers=[ServerSpec(name="epoll", model="epoll", host="srv")],
                  hosts=(HostSpec(name="srv", endpoint="local", address="198.18.250.1"),
                         HostSpec(name="gen", endpoint="tcp://198.18.250.11:2375",
                                  address="198.18.250.11")),
                  placement=Placement(master="gen", workers=("gen",)), workers=3)
    with backend_for(sc, {"srv": FakeClient(d1), "gen": FakeClient(d2)}) as b:
        server = b.start_server(sc.servers[0], ctx(sc))
        srv = [c for c in d1.created if c.labels.get("iolab.role") == "server"][0]
        assert srv.kwargs["ports"] == {"7000/tcp": [("198.18.250.1", None)] * 3}
        assert server.target_ports == [40000, 40001, 40002]
        load = b.start_load(server, ctx(sc))
        assert f"tcp://198.18.250.1:{server.target_port}" in load.master.command
        assert [w.command[w.command.index("--target-port") + 1] for w in load.workers] == [
            "40000", "40001", "40002"]
        ui = b.start_load(server, ctx(sc), ui=True)  # the Lab tab moves the target
        assert all("--target-port" not in w.command for w in ui.workers)


def test_server_dying_at_start_raises_with_log_tail_and_leaves_nothing(ctx):
    daemon = FakeDaemon(die_at_start=True)
    sc = scenario()
    b = backend_for(sc, {"local": FakeClient(daemon)})
    try:
        with pytest.raises(BackendError, match="exited with 3 before READY(.|\n)*boom"):
            b.start_server(sc.servers[0], ctx(sc))
    finally:
        b.cleanup()
        b.cleanup()  # idempotent
    assert daemon.containers == {} and daemon.networks == []



def test_server_without_ready_is_stopped_before_the_next_model(ctx, monkeypatch):
    """No READY before the deadline: the container is stopped at once (not
    left running beside the next model) and removed by cleanup()."""
    monkeypatch.setattr("lab.backends.docker.backend.READY_TIMEOUT_S", 0.3)
    daemon = FakeDaemon(silent=True)
    sc = scenario()
    b = backend_for(sc, {"local": FakeClient(daemon)})
    try:
        with pytest.raises(BackendError, match="no READY line(.|\n)*still importing"):
            b.start_server(sc.servers[0], ctx(sc))
        (server,) = [c for c in daemon.created if "servers" in c.command]
        assert server.status == "exited"
    finally:
        b.cleanup()
    assert daemon.containers == {}

def test_missing_client_for_a_placed_host_is_an_error():
    sc = scenario(placement=Placement(master="elsewhere"))
    with pytest.raises(BackendError, match="elsewhere"):
        backend_for(sc, {"local": FakeClient(FakeDaemon())})


def test_clean_all_removes_labelled_containers_before_networks():
    daemon = FakeDaemon()
    client = FakeClient(daemon)
    client.create("img", ["x"], name="iolab-r-server", labels={"iolab": "1"})
    client.create("img", ["x"], name="other", labels={})
    client.networks.create("iolab-r", ipam={"Config": [{"Subnet": "198.18.1.0/24"}]},
                           labels={"iolab": "1"})
    assert clean_all(client) == ["container iolab-r-server", "network iolab-r"]
    assert [c.name for c in daemon.containers.values()] == ["other"]


def test_clean_all_removes_a_marker_volume_a_killed_run_left():
    daemon = FakeDaemon()
    client = FakeClient(daemon)
    client.volumes.create("iolab-probe-1", labels={"iolab": "1", "iolab.role": "probe"})
    client.volumes.create("iolab-probe-2", labels={"iolab": "1", "live": "1"})
    client.volumes.create("someone-elses", labels={})
    assert clean_all(client, keep=lambda labels: "live" in labels) == ["volume iolab-probe-1"]
    assert sorted(daemon.volumes) == ["iolab-probe-2", "someone-elses"]


def test_this_machine_is_decided_by_the_marker_not_by_the_scheme(monkeypatch):
    """A unix:// socket of another daemon (a namespaced one) is not this
    machine; a tcp:// endpoint of this machine's daemon is. The image is built
    on this machine's daemon whatever order the hosts come in."""
    from lab.backends.docker import backend as backend_mod
    from lab.backends.docker.hosts import this_machine

    here, other = FakeDaemon("HERE"), FakeDaemon("OTHER")
    clients = {"ns": FakeClient(other), "loop": FakeClient(here)}
    endpoints = {"ns": "unix:///run/iolab-h1/docker.sock", "loop": "tcp://127.0.0.1:2375"}
    assert this_machine(clients, endpoints, local=FakeClient(here)) == {"loop"}

    class Unreachable(FakeClient):
        @property
        def volumes(self):
            raise OSError("connection refused")

        @volumes.setter
        def volumes(self, _value):
            pass

    assert this_machine({"gone": Unreachable(other)}, {"gone": "unix:///nope"},
                        local=FakeClient(here)) == set()

    hosts = (HostSpec(name="ns", endpoint="unix:///run/iolab-h1/docker.sock"),
             HostSpec(name="main", endpoint="local"))
    sc = scenario(servers=[ServerSpec(name="epoll", model="epoll", host="ns")], hosts=hosts,
                  placement=Placement(master="main", workers=("main",)))
    built_on: list[list[str]] = []
    monkeypatch.setattr(backend_mod, "ensure_image",
                        lambda clients, progress: built_on.append(list(clients)) or "iolab:x")
    b = DockerBackend(sc, clients={"ns": FakeClient(other), "main": FakeClient(here)})
    assert b.image() == "iolab:x" and built_on == [["main", "ns"]]


def test_a_host_whose_daemon_is_down_is_a_backend_error_naming_it(ctx):
    up, down = FakeDaemon("UP"), FakeDaemon("DOWN")
    down.down = True
    sc = server_on_one_load_on_other(
        HostSpec(name="srv", endpoint="local", address="198.18.250.1"),
        HostSpec(name="h2", endpoint="tcp://198.18.250.12:2375", address="198.18.250.12"))
    with backend_for(sc, {"srv": FakeClient(up), "h2": FakeClient(down)}) as b:
        with pytest.raises(BackendError) as err:
            b.daemons.facts("srv")
    assert str(err.value) == ("host h2: no Docker daemon answers at tcp://198.18.250.12:2375 "
                              "([Errno 111] Connection refused)")
    assert not up.created and not up.volumes  # nothing was made before the check


def test_step_results_reader_returns_complete_new_lines_once():
    class C:
        data = b""

        def get_archive(self, path):
            import io
            import tarfile

            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as tar:
                info = tarfile.TarInfo("steps.jsonl")
                info.size = len(self.data)
                tar.addfile(info, io.BytesIO(self.data))
            return iter([buf.getvalue()]), {}

    c = C()
    reader = StepResultsReader(c, "/tmp/steps.jsonl", min_interval=0)
    c.data = b'{"step": 1}\n{"step": 2'
    assert reader.poll() == [{"step": 1}]
    c.data += b"}\n"
    assert reader.poll() == [{"step": 2}]
    assert reader.poll() == []


def test_subnets_stay_in_the_benchmark_range_and_avoid_used_ones():
    used = [ipaddress.ip_network("198.18.0.0/16")]
    cands = docker_net.candidate_subnets("run", used)
    assert cands and all(s.subnet_of(LAB_NETWORK) for s in cands)
    assert not any(s.overlaps(used[0]) for s in cands)
    assert len(cands) == 256


def test_probe_parsing_and_host_limit_notes(tmp_path):
    facts = hostlimits.parse_probe(PROBE_OUTPUT)
    assert facts["file_max"] == 100000 and facts["ip_local_port_range"] == "32768 60999"
    want = HostLimits(file_max=200000, raise_host_limits=True)
    written = []
    assert hostlimits.apply_host_limits("h", want, facts,
                                        lambda n, v: written.append((n, v))) == []
    assert written == [("fs.file-max", 200000)]

    def refuse(n, v):
        raise PermissionError("read-only")

    [note] = hostlimits.apply_host_limits("h", want, facts, refuse)
    assert "read-only" in note and "sysctl -w fs.file-max=200000" in note
    assert hostlimits.apply_host_limits("h", HostLimits(file_max=10), facts, None) == []


def test_read_host_limits_from_a_proc_tree(tmp_path):
    (tmp_path / "fs").mkdir()
    (tmp_path / "fs" / "file-max").write_text("12345\n")
    (tmp_path / "net" / "ipv4").mkdir(parents=True)
    (tmp_path / "net" / "ipv4" / "ip_local_port_range").write_text("1024\t65000\n")
    got = hostlimits.read_host_limits(tmp_path)
    assert got["file_max"] == 12345 and got["ip_local_port_range"] == "1024 65000"
    assert got["nr_open"] is None and got["nofile_hard"] >= got["nofile_soft"] > 0


def test_read_host_limits_on_this_machine():
    got = hostlimits.read_host_limits()
    assert isinstance(got["file_max"], int) and got["file_max"] > 0
    assert isinstance(got["nr_open"], int)


def test_image_tag_follows_sources_and_excludes_host_only_deps(tmp_path):
    reqs = images.runtime_requirements()
    names = {r.split("==")[0].split(";")[0].lower() for r in reqs}
    assert "locust" in names and "docker" not in names and "matplotlib" not in names
    src = tmp_path / "s.py"
    src.write_text("a = 1\n")
    files = [("servers/s.py", src)]
    tag1 = images.app_tag("sha256:base", reqs, files)
    assert tag1 == images.app_tag("sha256:base", reqs, files)
    src.write_text("a = 2\n")
    assert images.app_tag("sha256:base", reqs, files) != tag1
    assert images.app_tag("sha256:other", reqs, files) != images.app_tag("sha256:base", reqs,
                                                                          files)
    assert all(not name.endswith(".pyc") for name, _ in images.source_files())
    assert images.base_tag().startswith("iolab-base:bookworm-")


def test_docker_dir_has_no_python_package():
    docker_dir = Path(images.ROOT) / "docker"
    assert not list(docker_dir.rglob("*.py"))


def test_opted_in_file_max_raise_uses_a_privileged_one_shot_and_rereads():
    daemon = FakeDaemon()
    sc = scenario(host_limits=HostLimits(file_max=5_000_000, raise_host_limits=True))
    with backend_for(sc, {"local": FakeClient(daemon)}) as b:
        assert b.unapplied_settings(sc) == []
        raiser = [c for c in daemon.created if c.kwargs.get("privileged")]
        assert len(raiser) == 1
        assert raiser[0].command[-1] == "echo 5000000 > /proc/sys/fs/file-max"
        probes = [c for c in daemon.created if "fs/file-max" in " ".join(c.command)
                  and not c.kwargs.get("privileged")]
        assert len(probes) == 2  # read, raised, read again for run.json


def test_host_global_sysctls_are_left_out_and_reported(ctx):
    daemon = FakeDaemon()
    sysctls = (("net.ipv4.tcp_fin_timeout", "10"), ("fs.file-max", "9000000"))
    sc = scenario(servers=[ServerSpec(name="epoll", model="epoll",
                                      limits=Limits(sysctls=sysctls))])
    with backend_for(sc, {"local": FakeClient(daemon)}) as b:
        [note] = b.unapplied_settings(sc)
        assert "fs.file-max" in note and "host-global" in note
        b.start_server(sc.servers[0], ctx(sc))
        server = [c for c in daemon.created if c.labels.get("iolab.role") == "server"][0]
        assert server.kwargs["sysctls"] == {"net.core.somaxconn": "1024",
                                            "net.ipv4.tcp_fin_timeout": "10"}


def test_docker_refusing_a_container_is_a_backend_error(ctx):
    daemon = FakeDaemon()
    sc = scenario()
    with backend_for(sc, {"local": FakeClient(daemon)}) as b:
        # more than the daemon can set:
        b.daemons._facts[b.daemons.daemon("local")] = {"nofile_max_grantable": 10**6}
        with pytest.raises(BackendError, match="could not start server .*rlimit"):
            b.start_server(sc.servers[0], ctx(sc))
    assert daemon.containers == {}


def test_build_context_holds_exactly_what_the_hash_covers(tmp_path):
    import tarfile

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "locust-1-py3-none-any.whl").write_bytes(b"whl")
    (wheels / "notes.txt").write_text("not a wheel")
    files = images.source_files()
    ctx_tar = images.build_context(["locust==1"], files, wheels)
    names = tarfile.open(fileobj=ctx_tar).getnames()
    assert names[:2] == ["Dockerfile", "requirements.txt"]
    assert "wheels/locust-1-py3-none-any.whl" in names and "wheels/notes.txt" not in names
    assert {"servers", "loadgen"} <= set(names)
    assert {name for name, _ in files} <= set(names)
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


def test_run_networks_avoid_the_hosts_own_subnet_on_every_host(tmp_path, monkeypatch):
    """The harness's 198.18.250.0/24 (scripts/testhosts): this machine routes it,
    and on the remote hosts (whose routes the lab cannot read) it holds the
    scenario hosts' addresses. A run id that would start there moves on, on
    every daemon."""
    link = ipaddress.ip_network("198.18.250.0/24")
    run_id = next(r for r in (f"run{i}" for i in range(5000))
                  if docker_net.candidate_subnets(r, [])[0] == link)
    monkeypatch.setattr("lab.backends.docker.daemons.route_subnets", lambda: [])
    hosts = (HostSpec(name="main", endpoint="local", address="198.18.250.1"),
             HostSpec(name="h1", endpoint="tcp://198.18.250.11:2375", address="198.18.250.11"))
    sc = scenario(hosts=hosts, servers=[ServerSpec(name="epoll", model="epoll", host="main")],
                  placement=Placement(master="h1", workers=("h1",)))
    d1, d2 = FakeDaemon("D1"), FakeDaemon("D2")
    ctx = RunContext(run_id=run_id, run_dir=tmp_path, scenario=sc)
    with backend_for(sc, {"main": FakeClient(d1), "h1": FakeClient(d2)}) as b:
        for host in ("main", "h1"):
            net = b.daemons.network(host, ctx)
            subnet = ipaddress.ip_network(net.attrs["IPAM"]["Config"][0]["Subnet"])
            assert not subnet.overlaps(link), (host, subnet)


def test_a_daemon_gone_during_teardown_is_one_line_and_the_others_are_cleaned(ctx):
    """h2's daemon stops mid-run: its worker cannot be removed, said once with
    the host and endpoint (not a ConnectionError per item); the server host's
    containers and network still go."""
    d1, d2 = FakeDaemon("D1"), FakeDaemon("D2")
    sc = server_on_one_load_on_other(
        HostSpec(name="srv", endpoint="local", address="198.18.250.1"),
        HostSpec(name="h2", endpoint="tcp://198.18.250.12:2375", address="198.18.250.12"),
        master="srv")
    b = backend_for(sc, {"srv": FakeClient(d1), "h2": FakeClient(d2)})
    b.start_load(b.start_server(sc.servers[0], ctx(sc)), ctx(sc))
    d2.down = True
    gone = [p for p in b.cleanup() if "h2" in p]
    assert len(gone) == 1 and "host h2: no Docker daemon answers at tcp://198.18.250.12:2375 " \
        "([Errno 111] Connection refused)" in gone[0] and "run-lab clean" in gone[0], gone
    assert d1.containers == {} and d1.networks == []


def test_only_a_connection_failure_is_a_daemon_that_does_not_answer():
    """A full disk while saving a container's log is an OSError too; taken for
    a gone daemon it skipped the teardown of every container on that host."""
    import errno

    import docker.errors
    import requests.exceptions

    from lab.backends.docker.hosts import unanswered

    assert unanswered(requests.exceptions.ConnectionError("refused"))
    assert unanswered(requests.exceptions.ReadTimeout("slow"))
    assert unanswered(ConnectionRefusedError(errno.ECONNREFUSED, "refused"))
    assert unanswered(docker.errors.DockerException("Error while fetching server API version"))
    assert not unanswered(OSError(errno.ENOSPC, "No space left on device"))
    assert not unanswered(PermissionError(errno.EACCES, "denied"))
    assert not unanswered(docker.errors.APIError("409 Conflict"))


def test_this_machine_is_one_marker_test_for_routes_and_the_lab_tab(tmp_path, monkeypatch):
    """Route avoidance and the Lab tab's bind mount follow the same marker
    test as the image build: a tcp://127.0.0.1 endpoint of this machine's
    daemon is this machine; the default socket's path served by another
    daemon (a namespaced one) is not."""
    from lab.backends.docker import hosts

    here, other = FakeDaemon("HERE"), FakeDaemon("OTHER")
    monkeypatch.setattr(hosts, "client_for", lambda endpoint, *a, **k: FakeClient(here))
    monkeypatch.setattr("lab.backends.docker.daemons.route_subnets",
                        lambda: [ipaddress.ip_network("10.99.0.0/16")])
    sc = server_on_one_load_on_other(
        HostSpec(name="loop", endpoint="tcp://127.0.0.1:2375", address="127.0.0.1"),
        HostSpec(name="ns", endpoint="unix:///var/run/docker.sock", address="198.18.250.11"))
    b = backend_for(sc, {"loop": FakeClient(here), "ns": FakeClient(other)})
    assert b.daemons.here() == {"loop"}
    assert ipaddress.ip_network("10.99.0.0/16") in b.daemons._avoid("loop")
    assert ipaddress.ip_network("10.99.0.0/16") not in b.daemons._avoid("ns")
    events = (tmp_path / "logs" / "epoll.events.jsonl",)
    c = dataclasses.replace(RunContext(run_id="r1", run_dir=tmp_path, scenario=sc),
                            server_events=events)
    assert "volumes" in b._lab_tab_mounts("loop", c, ui=True)
    assert "volumes" not in b._lab_tab_mounts("ns", c, ui=True)
    assert here.volumes == {} and other.volumes == {}  # the markers are removed


class _PingFails(FakeClient):
    def __init__(self, daemon, exc):
        super().__init__(daemon)
        self.exc = exc

    def ping(self):
        raise self.exc


@pytest.mark.parametrize("exc, says", [
    (REFUSED, "host h2: no Docker daemon answers at tcp://198.18.250.12:2375 "
              "([Errno 111] Connection refused)"),
    (docker.errors.APIError("500 Server Error: Internal Server Error"),
     "host h2: pinging the Docker daemon at tcp://198.18.250.12:2375 failed: APIError: 500 "
     "Server Error: Internal Server Error"),
    (PermissionError(13, "Permission denied"),
     "host h2: pinging the Docker daemon at tcp://198.18.250.12:2375 failed: PermissionError: "
     "[Errno 13] Permission denied"),
])
def test_only_a_connection_failure_of_ping_is_an_unreachable_host(exc, says):
    sc = server_on_one_load_on_other(
        HostSpec(name="srv", endpoint="local", address="198.18.250.1"),
        HostSpec(name="h2", endpoint="tcp://198.18.250.12:2375", address="198.18.250.12"))
    b = backend_for(sc, {"srv": FakeClient(FakeDaemon()), "h2": _PingFails(FakeDaemon(), exc)})
    with pytest.raises(BackendError) as err:
        b.daemons.daemon("srv")
    assert str(err.value) == says


def test_a_bug_behind_ping_is_not_taken_for_an_unreachable_host():
    sc = scenario()
    b = backend_for(sc, {"local": _PingFails(FakeDaemon(), TypeError("a bug"))})
    with pytest.raises(TypeError):
        b.daemons.daemon("local")


def test_backend_auto_never_turns_a_multi_host_scenario_into_a_local_run():
    from lab.backends import auto_backend

    hosts = (HostSpec(name="main", endpoint="local"),
             HostSpec(name="h1", endpoint="tcp://198.18.250.11:2375", address="198.18.250.11"),
             HostSpec(name="h2", endpoint="ssh://lab@198.18.250.12", address="198.18.250.12"))
    down = {"ssh://lab@198.18.250.12": "no Docker daemon answers at ssh://lab@198.18.250.12"}

    def available(endpoint):
        return (endpoint not in down, down.get(endpoint, "Docker 20.10"))

    with pytest.raises(BackendError) as err:
        auto_backend(hosts, available)
    text = str(err.value)
    assert text.startswith("backend auto: host h2: no Docker daemon answers at "
                           "ssh://lab@198.18.250.12.") and "h1" not in text.split(".")[0]
    assert "--backend local" in text and err.value.exit_code == 1
    assert auto_backend(hosts, lambda e: (True, "Docker 20.10")) == ("docker", None)
    # This machine alone: the same servers and load as local processes, said in one line.
    alone = (HostSpec(name="local"),)
    assert auto_backend(alone, lambda e: (False, "no Docker daemon answers")) == (
        "local", "iolab: using the local backend: no Docker daemon answers")

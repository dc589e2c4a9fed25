"""Whole runs through the run loop on the Docker backend: results written,
and nothing left behind — after a normal run, a server that dies at start,
an interrupted run, and the two-endpoint multi-host path."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from paths import ROOT

from lab.errors import BackendError
from lab.run.loop import run_scenario
from lab.scenario.types import HostSpec, Placement, ServerSpec

pytestmark = pytest.mark.docker



def rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "steps.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_small_end_to_end_run_writes_results_and_leaves_nothing(
        backend_factory, scenario_of, tmp_path, docker_client):
    sc = scenario_of(ServerSpec(name="epoll", model="epoll"),
                     steps=((20, 2.0), (40, 2.0)), workers=2)
    backend, _ctx = backend_factory(sc)
    run_dir, outcomes = run_scenario(sc, backend, tmp_path / "out", report=lambda *_: None)
    assert outcomes["epoll"].error is None
    got = rows(run_dir)
    assert [(r["model"], r["step"], r["target_connections"]) for r in got] == [
        ("epoll", "0", "20"), ("epoll", "1", "40")]
    assert all(int(r["connected"]) == int(r["target_connections"]) for r in got)
    # master + 2 worker containers report their memory
    assert all(int(r["loadgen_rss_bytes"]) > 3 * 20_000_000 for r in got), got
    assert all(int(r["lab_mem_bytes"]) > int(r["loadgen_rss_bytes"]) for r in got)
    assert (run_dir / "run.json").exists()
    logs = {p.name for p in (run_dir / "logs").iterdir()}
    assert any(n.startswith("iolab-") and "server-epoll" in n for n in logs), logs
    assert any(n.startswith("docker-stats-") for n in logs), logs
    flt = {"label": f"iolab.run={run_dir.name}"}
    assert docker_client.containers.list(all=True, ignore_removed=True, filters=flt) == []
    assert docker_client.networks.list(filters=flt) == []


def test_server_dying_at_start_is_reported_and_torn_down(
        backend_factory, scenario_of, tmp_path, docker_client):
    dying = ServerSpec(name="dies", command=("python", "-c",
                                             "import sys; print('boom at start'); sys.exit(3)"),
                       port=7100)
    sc = scenario_of(dying)
    backend, _ctx = backend_factory(sc)
    with pytest.raises(BackendError, match="no server could be measured"):
        run_scenario(sc, backend, tmp_path / "out", report=lambda *_: None)
    run_dir = next((tmp_path / "out").iterdir())
    assert "boom at start" in (run_dir / "run.json").read_text()
    flt = {"label": f"iolab.run={run_dir.name}"}
    assert docker_client.containers.list(all=True, ignore_removed=True, filters=flt) == []
    assert docker_client.networks.list(filters=flt) == []


INTERRUPTIBLE = """\
name: itest-interrupted-{signal}
backend: docker
servers: [epoll]
load:
  user: echo
  workers: 1
  hold: 600s
  steps: [20]
"""


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_storm_tears_everything_down(signum, tmp_path, docker_client, lab_image,
                                            no_leftovers):
    """Five signals 0.1 s apart (a held Ctrl-C, an impatient supervisor) used to
    land inside the teardown and leak every container (3 of 3 tries): now the
    first starts the teardown, the rest are noted, and nothing is left; three
    times in a row for SIGTERM."""
    scenario = tmp_path / "interrupted.yaml"
    name = signal.Signals(signum).name
    scenario.write_text(INTERRUPTIBLE.format(signal=name))

    def ours(role: str | None = None) -> list:
        flt = {"label": f"iolab.role={role}"} if role else {"label": "iolab"}
        return [c for c in docker_client.containers.list(all=True, ignore_removed=True, filters=flt)
                if c.labels.get("iolab.run", "").endswith(f"itest-interrupted-{name}")]

    for attempt in range(3 if signum == signal.SIGTERM else 1):
        out_dir = tmp_path / f"out{attempt}"
        with subprocess.Popen([str(ROOT / "scripts" / "run-lab"), str(scenario),
                               "--out", str(out_dir)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) as proc:  # pipes closed
            try:
                deadline = time.monotonic() + 120
                while not ours("worker"):  # the load is running
                    assert proc.poll() is None, proc.stdout.read()
                    assert time.monotonic() < deadline, "the run never started its workers"
                    time.sleep(0.5)
                time.sleep(2)
                for _ in range(5):
                    proc.send_signal(signum)
                    time.sleep(0.1)
                out, _ = proc.communicate(timeout=120)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()  # reaped: no zombie, no ResourceWarning later
        assert proc.returncode == (143 if signum == signal.SIGTERM else 130), out
        assert "still tearing down" in out or "interrupted" in out
        assert ours() == [], out
        run_dir = next(out_dir.iterdir())
        assert docker_client.networks.list(filters={"label": f"iolab.run={run_dir.name}"}) == []
        assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_disk_that_fills_mid_run_leaves_nothing_on_docker(tmp_path, docker_client, lab_image,
                                                           no_leftovers):
    """The case that leaked a worker container and the network: --out on a tmpfs
    that fills after step 0. Now: exit 1, the path in the message, run.json and
    steps.csv agree, and the label sweep leaves nothing."""
    from faultkit import run_and_fill, tmpfs

    scenario = tmp_path / "full.yaml"
    scenario.write_text(INTERRUPTIBLE.format(signal="full").replace(
        "hold: 600s\n  steps: [20]", "hold: 3s\n  steps: [20, 40, 60]"))
    with tmpfs(tmp_path / "small", "8m") as out:
        run_dir = run_and_fill([str(ROOT / "scripts" / "run-lab"), str(scenario), "--out",
                                str(out)], out)
    flt = {"label": f"iolab.run={run_dir.name}"}
    assert docker_client.containers.list(all=True, ignore_removed=True, filters=flt) == []
    assert docker_client.networks.list(filters=flt) == []


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_clean_spares_a_live_docker_run_and_removes_a_dead_ones(tmp_path, docker_client,
                                                                lab_image, no_leftovers):
    from faultkit import first_rows, wait_for

    from lab.owner import OWNER_LABEL

    scenario = tmp_path / "live.yaml"
    scenario.write_text(INTERRUPTIBLE.format(signal="live").replace(
        "hold: 600s\n  steps: [20]", "hold: 4s\n  steps: [20, 40]"))
    dead = docker_client.containers.create(  # left by a run-lab that is gone (pid 1, tick 1)
        lab_image, ["true"], name="iolab-itest-dead-orphan",
        labels={"iolab": "1", "iolab.run": "itest-dead", OWNER_LABEL: f"{os.uname()[1]}:1:1"})
    out = tmp_path / "out"
    run = subprocess.Popen([str(ROOT / "scripts" / "run-lab"), str(scenario), "--out", str(out)],
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: first_rows(out) >= 1, 180, "the live run's first row")
        clean = subprocess.run([str(ROOT / "scripts" / "run-lab"), "clean", "--out", str(out)],
                               cwd=ROOT, capture_output=True, text=True, timeout=120)
        text, _ = run.communicate(timeout=180)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()  # reaped: no zombie, no ResourceWarning later
    assert clean.returncode == 0, clean.stderr
    assert "container iolab-itest-dead-orphan" in clean.stdout and "kept" in clean.stdout
    assert not docker_client.containers.list(all=True, ignore_removed=True,
                                             filters={"name": dead.name})
    assert run.returncode == 0, text
    (run_dir,) = out.iterdir()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"
    assert len(rows(run_dir)) == 2


@pytest.mark.slow
def test_two_endpoints_to_one_daemon_multi_host(backend_factory, scenario_of, tmp_path,
                                                docker_client):
    import docker

    hosts = (HostSpec(name="server-host", endpoint="local"),
             HostSpec(name="load-host", endpoint="unix:///var/run/docker.sock"))
    sc = scenario_of(ServerSpec(name="epoll", model="epoll", host="server-host"),
                     steps=((30, 2.0),), workers=2, hosts=hosts,
                     placement=Placement(master="load-host",
                                         workers=("server-host", "load-host")))
    clients = {"server-host": docker_client,
               "load-host": docker.DockerClient(base_url="unix:///var/run/docker.sock")}
    backend, _ctx = backend_factory(sc, clients=clients)
    seen: dict[str, str] = {}

    real_run = backend._run

    def spy(host, ctx, role, name, command, **kw):
        container = real_run(host, ctx, role, name, command, **kw)
        seen[container.name] = host
        return container

    backend._run = spy
    run_dir, outcomes = run_scenario(sc, backend, tmp_path / "out", report=lambda *_: None)
    assert outcomes["epoll"].error is None
    assert [int(r["connected"]) for r in rows(run_dir)] == [30]
    assert sorted(h for n, h in seen.items() if "-worker-" in n) == ["load-host", "server-host"]
    assert [h for n, h in seen.items() if "-master-" in n] == ["load-host"]
    assert [h for n, h in seen.items() if "-server-" in n] == ["server-host"]
    hosts_meta = (run_dir / "run.json").read_text()
    assert "load-host" in hosts_meta and "server-host" in hosts_meta


@pytest.fixture
def anchor_address(docker_client):
    """A host-local address in 198.18.0.0/15: the gateway of a labelled bridge
    network. Published ports bound to it stand for "another host's address"
    while the traffic stays on this machine and in the benchmark range."""
    from docker.types import IPAMConfig, IPAMPool

    from lab.backends.docker.network import candidate_subnets, used_subnets

    subnet = candidate_subnets("itest-anchor", used_subnets(docker_client))[0]
    gateway = str(next(subnet.hosts()))
    net = docker_client.networks.create(
        f"iolab-itest-anchor-{os.getpid()}", driver="bridge",
        ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=str(subnet), gateway=gateway)]),
        labels={"iolab": "1", "iolab.run": "itest-anchor"})
    try:
        yield gateway
    finally:
        net.remove()


@pytest.mark.slow
def test_cross_host_path_through_published_ports(backend_factory, scenario_of, tmp_path,
                                                 docker_client, anchor_address):
    """Two host names, each treated as its own Docker host (isolate_hosts):
    separate networks, the server's and the master's ports published on the
    host address, workers connecting through them."""
    import docker

    hosts = (HostSpec(name="srv", endpoint="local", address=anchor_address),
             HostSpec(name="gen", endpoint="unix:///var/run/docker.sock", address=anchor_address))
    sc = scenario_of(ServerSpec(name="epoll", model="epoll", host="srv"),
                     steps=((30, 2.0),), workers=2, hosts=hosts,
                     placement=Placement(master="gen", workers=("gen", "srv")))
    clients = {"srv": docker_client,
               "gen": docker.DockerClient(base_url="unix:///var/run/docker.sock")}
    backend, ctx = backend_factory(sc, clients=clients)
    backend.daemons.isolate_hosts = True
    server = backend.start_server(sc.servers[0], ctx)
    assert server.target_host == anchor_address and server.target_port != 7000
    load = backend.start_load(server, ctx)
    flt = {"label": f"iolab.run={ctx.run_id}"}
    nets = {n.name for n in docker_client.networks.list(filters=flt)}
    assert nets == {f"iolab-{ctx.run_id}-srv", f"iolab-{ctx.run_id}-gen"}
    assert f"tcp://{anchor_address}:{server.target_port}" in load.master.attrs["Config"]["Cmd"]
    records: list = []
    deadline = time.monotonic() + 120
    while not records and time.monotonic() < deadline and load.exit_code() is None:
        records += load.poll_step_results()
        time.sleep(0.5)
    records += load.poll_step_results()
    assert records and records[0]["connected"] == 30, load.log_tail(20)
    assert records[0]["workers"] == 2


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_worker_container_killed_mid_run_is_worker_lost(tmp_path, docker_client, lab_image,
                                                           no_leftovers):
    """``docker kill`` of one of two worker containers: the steps from then on
    are ``worker_lost`` and client-bound, the container is named with its host
    and exit code, and the server is never blamed (no server limit). The
    scenario's ``worker_timeout`` reaches the containers: the run ends
    seconds after the kill."""
    from faultkit import during_run

    hold_s, timeout_s = 2, 2  # a kill that misses step 1 lands in step 2: both say lost
    scenario = tmp_path / "loss.yaml"
    scenario.write_text(INTERRUPTIBLE.format(signal="loss").replace(
        "workers: 1", f"workers: 2\n  worker_timeout: {timeout_s}s").replace(
        "hold: 600s\n  steps: [20]", f"hold: {hold_s}s\n  steps: [40, 80, 120]"))
    out = tmp_path / "out"
    victims, killed_at = [], []

    def kill_a_worker(run_dir: Path) -> None:
        flt = {"label": [f"iolab.run={run_dir.name}", "iolab.role=worker"]}
        victims.append(sorted(docker_client.containers.list(filters=flt),
                              key=lambda c: c.name)[-1])
        victims[0].kill()
        killed_at.append(time.time())

    code, text, run_dir = during_run([str(ROOT / "scripts" / "run-lab"), str(scenario),
                                      "--out", str(out)], out, kill_a_worker)
    assert code == 0, text
    (victim,) = victims
    got = rows(run_dir)
    assert got[0]["limit"] == "" and got[-1]["limit"] == "worker_lost", got
    assert all(r["client_bound"] == "True" for r in got if r["limit"] == "worker_lost")
    # killed in step 1: two holds, the timeout and slack (11 s and 30 s more before)
    assert float(got[-1]["t_end"]) - killed_at[0] < 2 * hold_s + timeout_s + 5, (killed_at, got)
    (lost,) = json.loads((run_dir / "run.json").read_text())["models"]["epoll"]["workers_lost"]
    assert lost["worker"] == victim.name and lost["host"] == "local"
    assert lost["exit_code"] == 137  # SIGKILL, through the container's init
    assert victim.name in text

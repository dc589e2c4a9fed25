"""Real multi-host runs: servers on this machine's daemon (``main``), the Locust
master on ``h1`` and workers on ``h1`` and ``h2``, three daemons in three
network namespaces (conftest.py, scripts/testhosts). Each run goes through
``scripts/run-lab`` as a person would start it; the lab copies its image to
h1 and h2 itself (the first run here).

What is checked: connections from both load hosts, counted in the server
container's own network namespace; select stopping at FD_SETSIZE and epoll
holding its steps; each host's own daemon ID and facts in run.json; the run
networks clear of the harness's 198.18.250.0/24; and nothing of a run left
on any daemon after a success, a worker killed on a remote host, SIGTERM,
and (through ``run-lab clean``) SIGKILL. And a stopped host is one line.
"""

from __future__ import annotations

import collections
import ipaddress
import json
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from faultkit import during_run, wait_for
from mhharness import HARNESS_NET, MAIN_ADDRESS, MARK, REMOTE, ROOT, TESTHOSTS

pytestmark = [pytest.mark.multihost, pytest.mark.docker, pytest.mark.slow]

RUN_LAB = str(ROOT / "scripts" / "run-lab")
SERVER_PORT = 7000  # lab/backends/docker/specs.py

SCENARIO = """\
name: {name}
backend: docker
{hosts}placement: {{master: h1, workers: [h1, h2]}}
defaults: {{host: main, limits: {{nofile: max}}}}
servers: [{servers}]
load:
  user: echo
  workers: 2
  connect_rate: 2000
  hold: {hold}
  steps: [{steps}]
"""


def write_scenario(tmp_path: Path, harness, name: str, servers: str = "epoll",
                   steps: str = "300", hold: str = "600s", load: str = "") -> Path:
    """``load``: more keys of the load section, e.g. ``worker_timeout: 2s``."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(SCENARIO.format(name=f"{MARK}-{name}", hosts=harness.hosts_yaml(),
                                    servers=servers, steps=steps, hold=hold)
                    + (f"  {load}\n" if load else ""))
    return path


class ServerNamespaceWatch(threading.Thread):
    """Every 0.5 s: the established connections of each server container of
    the run, counted inside its network namespace (``nsenter -t PID -n ss``)
    and grouped by peer address, keeping each model's fullest moment; the
    server ports each worker container on h1/h2 connects to, counted in its
    own namespace; and the subnets of the run's networks on every daemon."""

    def __init__(self, harness, name: str):
        super().__init__(daemon=True)
        self.harness, self.name = harness, name
        self.peers: dict[str, collections.Counter] = {}
        self.subnets: dict[str, set[str]] = collections.defaultdict(set)
        self.worker_ports: dict[str, set[int]] = collections.defaultdict(set)
        self.errors: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.5):
            try:
                self._sample()
            except Exception as exc:  # noqa: BLE001 - containers come and go mid-sample
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def _sample(self) -> None:
        main = self.harness.clients["main"]
        for c in self._ours(main, "server"):
            model = c.name.split("-server-", 1)[1].rsplit("-", 1)[0]
            peers = collections.Counter(addr for addr, _port in established(
                c, f"( sport = :{SERVER_PORT} )"))
            if sum(peers.values()) > sum(self.peers.get(model, {}).values()):
                self.peers[model] = peers
        for host in REMOTE:  # the harness's dockerds share this machine's pid namespace
            for c in self._ours(self.harness.clients[host], "worker"):
                self.worker_ports[c.name] |= {
                    port for _addr, port in established(c, f"( dst {MAIN_ADDRESS} )")}
        for host, client in self.harness.clients.items():
            for net in client.networks.list(filters={"label": "iolab"}):
                if net.attrs.get("Labels", {}).get("iolab.run", "").endswith(self.name):
                    for cfg in net.attrs["IPAM"]["Config"] or []:
                        self.subnets[host].add(cfg["Subnet"])

    def _ours(self, client, role: str) -> list:
        return [c for c in client.containers.list(filters={"label": f"iolab.role={role}"})
                if c.labels.get("iolab.run", "").endswith(self.name)]

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.halt.set()
        self.join(timeout=15)


def established(container, where: str) -> list[tuple[str, int]]:
    """(address, port) of the peer of each established TCP connection in the
    container's network namespace (``ss`` there, through its init's pid)."""
    cmd = ["nsenter", "-t", str(container.attrs["State"]["Pid"]), "-n", "ss", "-Htn", "state",
           "established", *([where] if where else [])]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout
    found = []
    for line in out.splitlines():
        if line.strip():
            addr, _, port = line.split()[-1].rpartition(":")
            found.append((addr, int(port)))
    return found


def run_lab(scenario: Path, out: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([RUN_LAB, str(scenario), "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_select_and_epoll_with_load_from_two_other_hosts(testhosts, tmp_path):
    harness = testhosts
    scenario = write_scenario(tmp_path, harness, "ok", servers="select, epoll",
                              steps="600, 1200", hold="2s")
    out = tmp_path / "out"
    t0 = time.monotonic()
    with ServerNamespaceWatch(harness, f"{MARK}-ok") as watch:
        done = run_lab(scenario, out)
    took = time.monotonic() - t0
    print(f"multihost: select+epoll over three daemons in {took:.1f} s (incl. the image copy)")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "internal error" not in done.stderr
    (run_dir,) = out.iterdir()
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "complete"
    rows = {(r["model"], r["step"]): r for r in run["rows"]}

    # select stops at FD_SETSIZE with ~1019 held; epoll holds both steps.
    assert rows[("select", 0)]["connected"] == 600
    assert rows[("select", 1)]["limit"] == "FD_SETSIZE"
    wall = rows[("select", 1)]
    assert 1010 <= wall["server_connections"] <= 1021, wall
    # The load side also counts handshakes the kernel completed into select's
    # accept queue, and sockets whose refusal is still on its way.
    assert wall["server_connections"] <= wall["connected"] < 1200, wall
    assert [rows[("epoll", s)]["connected"] for s in (0, 1)] == [600, 1200]
    assert rows[("epoll", 1)]["limit"] in (None, "")

    # Both load hosts, counted in the server's namespace: h1's and h2's
    # workers arrive from their hosts' addresses (each namespace's NAT).
    loaders = {address for _endpoint, address in REMOTE.values()}
    assert set(watch.peers) == {"select", "epoll"}, (watch.peers, watch.errors)
    for model, peers in watch.peers.items():
        assert set(peers) == loaders, (model, peers)
        assert min(peers.values()) >= sum(peers.values()) // 4, (model, peers)
    assert sum(watch.peers["epoll"].values()) == 1200, watch.peers
    # The kernel completes a few handshakes past select's last accept (the backlog).
    assert 1010 <= sum(watch.peers["select"].values()) < 1100, watch.peers

    # Each worker its own published port of the server (not one shared port:
    # h1's workers all leave through 198.18.250.11, and the NAT's source ports
    # per address:port are ~64,500). Two workers per model, four in all.
    assert len(watch.worker_ports) == 4, watch.worker_ports
    for name, ports in watch.worker_ports.items():
        assert len(ports) == 1 and SERVER_PORT not in ports, (name, ports)
    for model in ("select", "epoll"):
        own = [p for n, p in watch.worker_ports.items() if f"-worker-{model}-" in n]
        assert len(own) == 2 and own[0] != own[1], watch.worker_ports

    # Each host: its own daemon's ID (asked of that daemon) and its own facts.
    hosts = run["hosts"]
    assert set(hosts) == {"main", "h1", "h2"}
    for name, client in harness.clients.items():
        assert hosts[name]["daemon_id"] == client.info()["ID"], name
    assert len({h["daemon_id"] for h in hosts.values()}) == 3
    assert hosts["h1"]["endpoint"] == REMOTE["h1"][0]
    assert all(h.get("nofile_max_grantable") for h in hosts.values())

    # The run's networks: one per daemon, none on the harness's own /24.
    assert set(watch.subnets) == {"main", "h1", "h2"}, watch.subnets
    harness_net = ipaddress.ip_network(HARNESS_NET)
    for host, subnets in watch.subnets.items():
        assert not any(ipaddress.ip_network(s).overlaps(harness_net) for s in subnets), host
    assert harness.leftovers() == {}


def test_a_worker_killed_on_a_remote_host_mid_run_leaves_nothing(testhosts, tmp_path):
    harness = testhosts
    # worker_timeout reaches a master and a worker on other hosts: the loss is
    # named seconds after the kill (11 s, and a 30 s ramp slack, before).
    scenario = write_scenario(tmp_path, harness, "kill", steps="300, 600", hold="2s",
                              load="worker_timeout: 2s")
    victims: list[str] = []
    killed_at: list[float] = []

    def kill_h2_worker(run_dir: Path) -> None:
        flt = {"label": [f"iolab.run={run_dir.name}", "iolab.role=worker"]}
        (worker,) = harness.clients["h2"].containers.list(filters=flt)
        victims.append(worker.name)
        worker.kill()
        killed_at.append(time.time())

    code, text, run_dir = during_run([RUN_LAB, str(scenario), "--out", str(tmp_path / "out")],
                                     tmp_path / "out", kill_h2_worker, timeout=180)
    assert code == 0, text
    assert "internal error" not in text
    run = json.loads((run_dir / "run.json").read_text())
    assert run["rows"][-1]["limit"] == "worker_lost", run["rows"]
    assert run["rows"][-1]["t_end"] - killed_at[0] < 2 + 2 + 5, (killed_at, run["rows"])
    (lost,) = run["models"]["epoll"]["workers_lost"]
    assert lost["worker"] == victims[0] and lost["host"] == "h2", lost
    assert harness.leftovers() == {}


def test_sigterm_mid_run_tears_down_every_host(testhosts, tmp_path):
    harness = testhosts
    scenario = write_scenario(tmp_path, harness, "term")
    out = tmp_path / "out"
    proc = subprocess.Popen([RUN_LAB, str(scenario), "--out", str(out)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: workers_on_both(harness, f"{MARK}-term"), 120, "workers on h1 and h2")
        proc.send_signal(signal.SIGTERM)
        text, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, text
    (run_dir,) = out.iterdir()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    assert harness.leftovers({proc.pid}) == {}


def test_clean_after_a_killed_run_reaches_the_remote_hosts(testhosts, tmp_path):
    """SIGKILL: no teardown at all. ``run-lab clean`` (no --scenario) finds the
    hosts in the run directory and removes what was left on h1 and h2."""
    harness = testhosts
    scenario = write_scenario(tmp_path, harness, "sigkill")
    out = tmp_path / "out"
    proc = subprocess.Popen([RUN_LAB, str(scenario), "--out", str(out)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: workers_on_both(harness, f"{MARK}-sigkill"), 120, "workers on h1, h2")
    finally:
        proc.kill()
        proc.wait()
    left = harness.leftovers({proc.pid})
    assert set(left) == {"main", "h1", "h2"}, left  # the killed run's containers everywhere
    clean = subprocess.run([RUN_LAB, "clean", "--out", str(out)], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    for endpoint, _address in REMOTE.values():
        assert f"{endpoint}: removed" in clean.stdout, clean.stdout
        assert f"{endpoint}: removed 0" not in clean.stdout, clean.stdout
    assert harness.leftovers({proc.pid}) == {}


def test_a_stopped_host_is_one_line_naming_it(testhosts, tmp_path):
    harness = testhosts
    scenario = write_scenario(tmp_path, harness, "down")
    stop = subprocess.run([str(TESTHOSTS), "stop", "2"], capture_output=True, text=True,
                          timeout=60)
    assert stop.returncode == 0, stop.stderr
    try:
        done = run_lab(scenario, tmp_path / "out", timeout=120)
    finally:
        start = subprocess.run([str(TESTHOSTS), "start", "2"], capture_output=True, text=True,
                               timeout=120)
    assert start.returncode == 0, start.stderr
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == [
        f"run-lab: host h2: no Docker daemon answers at {REMOTE['h2'][0]} "
        "([Errno 111] Connection refused)"], done.stderr
    assert harness.leftovers() == {}


def workers_on_both(harness, name: str) -> bool:
    def running(host: str) -> bool:
        return any(c.labels.get("iolab.run", "").endswith(name) for c in
                   harness.clients[host].containers.list(filters={"label": "iolab.role=worker"}))
    return running("h1") and running("h2")


def test_a_paused_worker_host_mid_ramp_is_worker_lost_within_the_bound(testhosts, tmp_path):
    """A worker container on h2 paused during a ramp (its daemon still
    answers; the worker neither loads nor answers its master): the host watch
    (lab/run/hostwatch.py) names h2 within DETECT_BOUND_S, the step in progress
    is ``worker_lost`` with what was seen, the run exits 1, and after
    ``run-lab clean --scenario`` nothing is left on any daemon."""
    from lab.run.hostwatch import DETECT_BOUND_S

    harness = testhosts
    # Step 1's ramp takes (3000 - 50) / 50 = 59 s: the pause lands in it.
    scenario = tmp_path / "pause.yaml"
    scenario.write_text(SCENARIO.format(name=f"{MARK}-pause", hosts=harness.hosts_yaml(),
                                        servers="epoll", steps="50, 3000", hold="1s")
                        .replace("connect_rate: 2000", "connect_rate: 50"))
    paused: list = []

    def pause_h2_worker(run_dir: Path) -> None:
        flt = {"label": [f"iolab.run={run_dir.name}", "iolab.role=worker"]}
        (worker,) = harness.clients["h2"].containers.list(filters=flt)
        worker.pause()
        paused.append((worker, time.time()))

    try:
        code, text, run_dir = during_run(
            [RUN_LAB, str(scenario), "--out", str(tmp_path / "out")], tmp_path / "out",
            pause_h2_worker, timeout=180)
    finally:
        for worker, _ in paused:
            try:
                worker.unpause()
            except Exception:  # noqa: BLE001 - removed by the run's teardown already
                pass
    assert code == 1, text
    assert "internal error" not in text
    assert "host h2 stopped answering at" in text and "is paused" in text, text
    run = json.loads((run_dir / "run.json").read_text())
    last = run["rows"][-1]
    assert (last["step"], last["limit"]) == (1, "worker_lost"), run["rows"]
    assert last["t_end"] - paused[0][1] <= DETECT_BOUND_S + 1.0  # + one poll and slack
    (lost,) = run["models"]["epoll"]["workers_lost"]
    assert lost["host"] == "h2" and "paused" in lost["evidence"], lost
    assert run["status"] == "failed"
    clean = subprocess.run([RUN_LAB, "clean", "--scenario", str(scenario)], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert harness.leftovers() == {}

"""Hosts that stop answering (lab/run/hostwatch.py): the watch's bound with a
hand clock, what the step rules make of a gone host (lab/run/poller.py), and
the Docker checks on a fake daemon API (lab/backends/docker/daemons.py)."""

from __future__ import annotations

import pytest
import requests
from lab_fakes import T0
from test_poller import Clock, Load, Server

from contract.limits import WORKER_LOST
from lab.backends.base import LostWorker
from lab.run.generator import GeneratorWatch
from lab.run.hostwatch import DETECT_BOUND_S, MISSES, PING_EVERY_S, HostGone, HostWatch
from lab.run.monitors import ServerMonitor
from lab.run.outcome import ModelOutcome
from lab.run.poller import StepPoller
from lab.scenario.loader import parse_scenario


class Host:
    """A host that answers until ``gone_at`` (clock time); each failed check
    takes the whole timeout, as a silent host's would."""

    def __init__(self, clock: Clock, gone_at: float, seen: str = "refused"):
        self.clock, self.gone_at, self.seen = clock, gone_at, seen

    def __call__(self, timeout: float) -> str | None:
        if self.clock.t < self.gone_at:
            return None
        self.clock.t += timeout
        return self.seen


@pytest.mark.parametrize("offset", [0.0, 0.01, 1.0, PING_EVERY_S - 0.01, PING_EVERY_S])
def test_a_host_that_goes_away_is_named_within_the_bound(offset):
    assert DETECT_BOUND_S <= 15.0  # the documented bound (README, "When things go wrong")
    clock = Clock(T0)
    gone_at = T0 + 10 + offset  # anywhere within a ping interval
    watch = HostWatch({"h2": Host(clock, gone_at, "its Docker daemon did not answer")},
                      clock=clock)
    seen_at = []

    def sleep(seconds: float) -> bool:  # called after each round of checks
        if watch.gone():
            seen_at.append(clock.t)
            return True
        clock.t += seconds
        return clock.t > T0 + 100

    watch.run(sleep)
    assert seen_at, "never named"
    assert seen_at[0] - gone_at <= DETECT_BOUND_S
    gone = watch.gone()["h2"]
    assert gone.since >= gone_at and "did not answer" in gone.seen
    assert gone.sentence().startswith("host h2 stopped answering at ")


def test_one_missed_check_is_not_a_gone_host():
    clock = Clock(T0)
    answers = iter(["slow", None, "slow", None])
    watch = HostWatch({"h1": lambda timeout: next(answers)}, clock=clock)
    for _ in range(4):
        watch.check_once()
    assert MISSES > 1 and watch.gone() == {}


def test_a_check_that_raises_is_what_was_seen_and_confirm_acts_at_once():
    def check(timeout):
        raise requests.exceptions.ConnectionError("[Errno 111] Connection refused")

    watch = HostWatch({"h2": check, "h1": lambda timeout: None}, clock=Clock(T0))
    gone = watch.confirm("h2")  # a call to h2 just failed: one more failed check is enough
    assert gone is not None and "Connection refused" in gone.seen
    assert watch.confirm("h1") is None and set(watch.gone()) == {"h2"}
    assert watch.confirm("nowhere") is None


TWO_HOSTS = parse_scenario(
    "hosts: [{name: h1, address: 127.0.0.1, endpoint: local},\n"
    "        {name: h2, address: 198.18.0.2, endpoint: 'tcp://198.18.0.2:2375'}]\n"
    "servers: [{model: epoll, host: h1}]\nplacement: {master: h1, workers: [h2]}\n"
    "load: {hold: 5s, steps: [200, 1200]}\n", "two.yaml")


def _poller(tmp_path, scenario, watch):
    clock = Clock(T0 + 1)
    server, load, outcome = Server(), Load(), ModelOutcome()
    load.master_host = "h1"
    rows: list = []
    lost = GeneratorWatch(load, lambda line: rows.append(("said", line)))

    def add_row(record, death):
        limit = death or lost.limit(record)
        row = {"step": record["step"], "target_connections": record["target_users"],
               "connected": record.get("connected"), "limit": limit}
        rows.append(row)
        outcome.rows.append(row)
        return row

    poller = StepPoller(scenario.servers[0], scenario, server, load,
                        ServerMonitor(server, tmp_path / "ev.jsonl"), outcome,
                        steps_path=tmp_path / "steps.jsonl", clock=clock, sample=lambda t: None,
                        add_row=add_row, watch=lost, hosts=watch)
    return poller, outcome, rows, lost


def test_a_load_host_gone_mid_ramp_is_that_steps_worker_lost_and_ends_the_run(tmp_path):
    watch = HostWatch({"h2": lambda timeout: "container iolab-x-worker-1 is paused",
                       "h1": lambda timeout: None}, clock=Clock(T0))
    poller, outcome, rows, lost = _poller(tmp_path, TWO_HOSTS, watch)
    assert not poller.tick()  # nothing seen yet: the ramp goes on
    watch.check_once()
    watch.check_once()
    with pytest.raises(HostGone, match="host h2 stopped answering at .* paused"):
        poller.tick()
    (row,) = [r for r in rows if isinstance(r, dict)]
    assert row["step"] == 0 and row["limit"] == WORKER_LOST
    assert outcome.limit == WORKER_LOST and outcome.stopped_at_step == 0
    assert outcome.error is None  # a finding about the load, not a failure of the server
    (entry,) = lost.lost.values()
    assert entry["host"] == "h2" and "paused" in entry["evidence"]
    watch.stop()


def test_the_servers_host_gone_is_a_host_finding_not_the_servers_limit(tmp_path):
    scenario = parse_scenario(
        "hosts: [{name: h1, address: 127.0.0.1, endpoint: local},\n"
        "        {name: h2, address: 198.18.0.2, endpoint: 'tcp://198.18.0.2:2375'}]\n"
        "servers: [{model: epoll, host: h2}]\nplacement: {master: h1, workers: [h1]}\n"
        "load: {hold: 5s, steps: [200, 1200]}\n", "srv.yaml")
    watch = HostWatch({"h2": lambda timeout: "its Docker daemon did not answer"},
                      clock=Clock(T0))
    poller, outcome, rows, _ = _poller(tmp_path, scenario, watch)
    poller.server.dead = True  # what a stopped daemon looks like: the state unreadable
    poller.server.exit_code = lambda: -1
    with pytest.raises(HostGone, match="host h2 stopped answering"):
        poller.tick()  # -1 makes the poller confirm at once: no waiting for the next round
    (row,) = [r for r in rows if isinstance(r, dict)]
    assert row["limit"] is None
    assert outcome.limit is None
    assert "host h2 stopped answering" in outcome.error and "not a limit" in outcome.error


def test_a_paused_worker_beside_the_server_is_the_loads_not_the_servers(tmp_path):
    one_host = parse_scenario("servers: [epoll]\nload: {hold: 5s, steps: [200, 1200]}\n",
                              "one.yaml")
    paused = ("worker container w-1 is paused", frozenset({"worker"}))
    watch = HostWatch({"local": lambda timeout: paused}, clock=Clock(T0))
    poller, outcome, rows, lost = _poller(tmp_path, one_host, watch)
    watch.check_once()
    watch.check_once()
    with pytest.raises(HostGone, match="worker container w-1 is paused"):
        poller.tick()
    (row,) = [r for r in rows if isinstance(r, dict)]
    assert row["limit"] == WORKER_LOST and outcome.error is None
    assert watch.gone()["local"].hits("worker") and not watch.gone()["local"].hits("server")


def test_a_killed_master_is_named_by_its_host():
    load = Load()
    load.exit, load.master_host = -9, "h3"
    load.master_oom_evidence = lambda: "exit -9; kernel: Out of memory: Killed process 7"
    said: list[str] = []
    lost = GeneratorWatch(load, said.append).master_lost(1)
    assert lost["host"] == "h3" and "on host h3 (exit -9)" in said[0]
    assert lost["evidence"].endswith("Killed process 7") and "Killed process 7" in said[0]


def test_an_oom_killed_worker_is_worker_lost_with_the_evidence():
    class OomLoad(Load):
        def lost_workers(self, lines=12):
            return [LostWorker("w-1", "h2", 137, "", "Docker: State.OOMKilled true, exit 137")]

    said: list[str] = []
    watch = GeneratorWatch(OomLoad(), said.append)
    assert watch.limit({"step": 2}) == WORKER_LOST
    assert watch.lost["w-1"]["evidence"].startswith("Docker: State.OOMKilled true")
    assert "OOMKilled" in said[0]


# ---- the Docker checks ----------------------------------------------------------------


class FakeResponse:
    def __init__(self, body=None):
        self.body = body or {}


class FakeApi:
    """docker-py's APIClient surface the checks use: a requests Session."""

    def __init__(self, up=True, paused=()):
        self.up, self.paused, self.timeouts = up, set(paused), []

    def _url(self, path, *args):
        return path.format(*args)

    def get(self, url, timeout=None):
        self.timeouts.append(timeout)
        if not self.up:
            raise requests.exceptions.ConnectionError("[Errno 111] Connection refused")
        cid = url.split("/")[2] if url.startswith("/containers/") else None
        if cid == "removed":
            return FakeResponse({"State": "gone"})
        return FakeResponse({"State": {"Paused": cid in self.paused, "Running": True}})

    def _raise_for_status(self, response):
        return None

    def _result(self, response, json=False):
        if "gone" in str(response.body.get("State")):
            import docker.errors

            raise docker.errors.NotFound("No such container")
        return response.body


class FakeClient:
    def __init__(self, api):
        self.api = api


class FakeContainer:
    def __init__(self, cid, host, role="worker"):
        self.id, self.name = cid, f"iolab-r-{cid}"
        self.labels = {"iolab.host": host, "iolab.role": role}


def test_docker_checks_ping_with_the_short_timeout_and_see_paused_containers():
    from lab.backends.docker.daemons import Daemons

    apis = {"h1": FakeApi(), "h2": FakeApi(paused={"w1"})}
    daemons = Daemons(TWO_HOSTS, {h: FakeClient(a) for h, a in apis.items()}, lambda m: None,
                      lambda: "img", "owner")
    # A container removed behind the run's back is a lost worker's business, not the host's.
    containers = [FakeContainer("s1", "h1", "server"), FakeContainer("removed", "h2"),
                  FakeContainer("w1", "h2")]
    checks = daemons.checks(lambda: containers)
    assert set(checks) == {"h1", "h2"}
    assert checks["h1"](3.0) is None
    assert checks["h2"](3.0) == ("worker container iolab-r-w1 is paused",
                                 frozenset({"worker"}))
    assert set(apis["h2"].timeouts) == {3.0}
    apis["h1"].up = False
    assert checks["h1"](3.0).startswith("its Docker daemon at local did not answer: "
                                        "[Errno 111] Connection refused")

"""A host that stops answering, on this machine's daemon: a worker container
paused during a ramp (its daemon answers; the worker neither loads nor
answers its master). The host watch (lab/run/hostwatch.py) names the host
within its bound, the step in progress is ``worker_lost`` with what was
seen, the run ends with HostGone (exit 1) and leaves nothing behind."""

from __future__ import annotations

import csv
import threading
import time
from pathlib import Path

import pytest

from lab.run.hostwatch import DETECT_BOUND_S, HostGone
from lab.run.loop import run_scenario
from lab.scenario.types import ServerSpec

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def _first_row(out: Path) -> bool:
    for path in out.glob("*/steps.csv"):
        with path.open() as f:
            if len(list(csv.DictReader(f))) >= 1:
                return True
    return False


@pytest.mark.timeout(180)
def test_a_paused_worker_mid_ramp_is_worker_lost_within_the_bound(
        backend_factory, scenario_of, tmp_path, docker_client):
    # Step 1's ramp takes (600 - 10) / 10 = 59 s: the pause lands in it.
    sc = scenario_of(ServerSpec(name="epoll", model="epoll"), steps=((10, 1.0), (600, 1.0)),
                     workers=1, spawn_rate=10.0, name="pause")
    backend, _ctx = backend_factory(sc)
    out = tmp_path / "out"
    paused: list = []

    def pause_the_worker() -> None:
        deadline = time.time() + 120
        while time.time() < deadline and not _first_row(out):
            time.sleep(0.2)
        (run_dir,) = out.iterdir()
        flt = {"label": [f"iolab.run={run_dir.name}", "iolab.role=worker"]}
        (worker,) = docker_client.containers.list(filters=flt)
        worker.pause()
        paused.append(time.time())

    side = threading.Thread(target=pause_the_worker, daemon=True)
    side.start()
    with pytest.raises(HostGone,
                       match=r"host local stopped answering at .*worker container .* is paused"):
        run_scenario(sc, backend, out, report=lambda *_: None)
    side.join(5)
    (run_dir,) = out.iterdir()
    import json

    run = json.loads((run_dir / "run.json").read_text())
    last = run["rows"][-1]
    assert (last["step"], last["limit"]) == (1, "worker_lost"), run["rows"]
    assert paused and last["t_end"] - paused[0] <= DETECT_BOUND_S + 1.0
    (lost,) = run["models"]["epoll"]["workers_lost"]
    assert lost["host"] == "local" and "is paused" in lost["evidence"], lost
    assert run["status"] == "failed"
    flt = {"label": f"iolab.run={run_dir.name}"}
    assert docker_client.containers.list(all=True, ignore_removed=True, filters=flt) == []
    assert docker_client.networks.list(filters=flt) == []


@pytest.mark.timeout(180)
def test_a_server_container_over_its_memory_limit_is_oom_with_dockers_evidence(
        backend_factory, scenario_of, tmp_path, docker_client):
    """forking at 48m: each child copies ~1.3 MiB of the parent's pages; the
    container's memory cgroup runs out and Docker records ``OOMKilled``."""
    from lab.scenario.types import Limits

    spec = ServerSpec(name="forking", model="forking", limits=Limits(memory="48m"))
    sc = scenario_of(spec, steps=((5, 1.0), (200, 1.0)), workers=1, spawn_rate=100.0,
                     name="oom")
    backend, _ctx = backend_factory(sc)
    run_dir, outcomes = run_scenario(sc, backend, tmp_path / "out", report=lambda *_: None)
    import json

    model = json.loads((run_dir / "run.json").read_text())["models"]["forking"]
    assert outcomes["forking"].limit == "oom", (outcomes["forking"], model["log_tail"])
    assert model["oom_evidence"].startswith("Docker: State.OOMKilled true"), model
    flt = {"label": f"iolab.run={run_dir.name}"}
    assert docker_client.containers.list(all=True, ignore_removed=True, filters=flt) == []

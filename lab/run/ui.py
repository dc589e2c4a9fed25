"""``run-lab SCENARIO --ui``: every server up and the Locust web UI, until Ctrl-C.

The servers' events keep flowing into ``logs/`` (the web UI's Lab tab tails
them: their paths reach the Locust master through ``RunContext.server_events``).
Next to each events file, ``<server>.target.json`` says where the load
generators reach that server (``tcp://HOST:PORT`` as the master and workers see
it): the Lab tab lists every server with it and can switch the load's target
between tests (``loadgen/lab_tab.py``). The master starts against the first.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from contract.env import TARGET_FILE_SUFFIX
from lab.backends.base import Backend, RunContext, ServerHandle
from lab.errors import BackendError, interruption
from lab.results.writer import create_run_dir
from lab.run.live import LiveView
from lab.run.monitors import ServerMonitor
from lab.scenario.loader import scenario_to_yaml
from lab.scenario.types import Scenario
from lab.teardown import Teardown


def write_target(logs: Path, handle: ServerHandle) -> Path:
    """``logs/<server>.target.json``: the server's address for the Lab tab
    (written whole, then renamed: the master never reads half a file)."""
    path = logs / f"{handle.spec.name}{TARGET_FILE_SUFFIX}"  # read by loadgen/lab_tab.py
    record = {"server": handle.spec.name, "model": handle.spec.model,
              "host": handle.target_host, "port": handle.target_port,
              "target": f"tcp://{handle.target_host}:{handle.target_port}"}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record) + "\n")
    os.replace(tmp, path)
    return path


def run_ui(scenario: Scenario, backend: Backend, out: Path, *,
           live: LiveView | None = None, poll_s: float = 0.5,
           until: Callable[[], bool] = lambda: False) -> Path:
    """``--ui``: every server up, the Locust web UI against the first one (the
    Lab tab switches between them), the servers' events kept flowing into
    ``logs/`` until Ctrl-C / SIGTERM."""
    live = live or LiveView()
    try:
        run_dir = create_run_dir(out, scenario.name + "-ui")
        # Before anything starts: `run-lab clean` finds this run's hosts in it.
        (run_dir / "scenario.yaml").write_text(scenario_to_yaml(scenario))
    except BaseException:
        backend.cleanup()
        raise
    ctx = RunContext(run_id=run_dir.name, run_dir=run_dir, scenario=scenario)
    monitors: list[ServerMonitor] = []
    try:
        for spec in scenario.servers:
            handle = backend.start_server(spec, ctx)
            monitors.append(ServerMonitor(handle, ctx.logs_dir / f"{spec.name}.events.jsonl"))
            write_target(ctx.logs_dir, handle)
            live.line(f"  {spec.name}: tcp://{handle.target_host}:{handle.target_port}")
        ctx = dataclasses.replace(ctx, server_events=tuple(m.events_path for m in monitors))
        load = backend.start_load(monitors[0].handle, ctx, ui=True)
        live.line(f"iolab: Locust web UI at {load.web_url or 'http://127.0.0.1:8089'} "
                  f"(target {scenario.servers[0].name}; switch it in the Lab tab); "
                  "Ctrl-C stops everything")
        while not until():
            for monitor in monitors:
                monitor.drain()
            if load.exit_code() is not None:
                raise BackendError(f"the Locust master exited ({load.exit_code()}):\n"
                                   f"{load.log_tail(15)}")
            time.sleep(poll_s)
    except KeyboardInterrupt as exc:
        with Teardown(live.line):
            for problem in backend.cleanup():
                live.line(f"iolab: teardown: {problem}")
        raise interruption(exc, "stopped; everything torn down") from None
    except BaseException:
        with Teardown(live.line):
            backend.cleanup()
        raise
    with Teardown(live.line):
        backend.cleanup()
    return run_dir


"""Build Locust command lines for the lab's master and workers.

Both backends use this, so a scenario means the same load whether the
workers are local processes or containers. The options are the loadgen
contract's (see ``loadgen/options.py``).
"""

from __future__ import annotations

import json
from typing import Any

from contract.defaults import PACE_EXPONENTIAL, PACE_FIXED, USER_CHURN, USER_IDLE
from lab.host.tc import priority_of
from lab.scenario.types import ExponentialPace, GroupSpec, LoadSpec, SizeDistribution

LOCUSTFILE = "loadgen/locustfile.py"
MASTER_PORT = 5557
WEB_HOST = "127.0.0.1"
WEB_PORT = 8089


def steps_arg(load: LoadSpec) -> str:
    """``500:20s,1000:20s`` — target users and hold time per step."""
    return ",".join(f"{s.connections}:{s.hold_s:g}s" for s in load.steps)


def user_classes(load: LoadSpec) -> list[str]:
    if load.groups:  # loadgen/users.py group_classes: one Locust class per group
        return [f"Group_{g.name}" for g in load.groups]
    if load.user == USER_IDLE:
        return ["IdleUser", "EchoUser"] if load.active_users else ["IdleUser"]
    return ["ChurnUser"] if load.user == USER_CHURN else ["EchoUser"]


# LoadSpec attribute -> the loadgen option (and --groups key) that carries it; 0 is unset
LOADGEN_DEFAULTS = {"message_size_median": 0, "pace_dist": PACE_FIXED}  # not repeated on a command
CLIENT_OPTIONS = {"send_chunk": "send_chunk", "send_gap_s": "send_gap",
                  "recv_buffer": "recv_buffer", "read_chunk": "read_chunk",
                  "read_gap_s": "read_gap"}


def client_settings(spec: LoadSpec | GroupSpec) -> dict[str, Any]:
    """The loadgen keys (``--groups`` spelling) of a load's or a group's message
    size, pace and slow-client settings; a group's unset (None) keys are left out."""
    out: dict[str, Any] = {}
    size = spec.message_size
    if isinstance(size, SizeDistribution):
        out.update(message_size=size.max, message_size_median=size.median,
                   message_size_max=size.max)
    elif size is not None:
        out.update(message_size=int(size), message_size_median=0)
    if spec.pace_s is not None:
        out.update(pace=float(spec.pace_s),
                   pace_dist=PACE_EXPONENTIAL if isinstance(spec.pace_s, ExponentialPace)
                   else PACE_FIXED)
    for attr, key in CLIENT_OPTIONS.items():
        value = getattr(spec, attr)
        if value is not None and (value or isinstance(spec, GroupSpec)):
            out[key] = value
    return out


def groups_arg(load: LoadSpec) -> str:
    """``--groups`` JSON: each group's weight, user kind (the load's when it
    gives none) and its own settings over the load's."""
    return json.dumps([{"name": g.name, "weight": g.weight, "user": g.user or load.user,
                        **client_settings(g),
                        **({"so_priority": prio} if (prio := priority_of(load, g.name)) else {})}
                       for g in load.groups], separators=(",", ":"))


def load_options(load: LoadSpec) -> list[str]:
    """Options that describe the load itself (master and workers alike)."""
    opts = []
    for key, value in client_settings(load).items():
        if key not in LOADGEN_DEFAULTS or value != LOADGEN_DEFAULTS[key]:
            opts += [f"--{key.replace('_', '-')}",
                     f"{value:g}" if isinstance(value, float) else str(value)]
    opts += [
        "--connect-timeout", f"{load.connect_timeout_s:g}",
        "--io-timeout", f"{load.io_timeout_s:g}",
        "--worker-timeout", f"{load.worker_timeout_s:g}",
        "--schedule", load.schedule,
    ]
    if load.active_users:
        opts += ["--active-users", str(load.active_users)]
    if load.user == USER_CHURN:
        # connect_rate is the whole load's arrivals per second (open model), not a ramp rate
        opts += ["--messages-per-connection", str(load.messages_per_connection),
                 "--arrival-rate", f"{load.spawn_rate:g}"]
    if load.groups:
        opts += ["--groups", groups_arg(load)]
    elif priority_of(load):  # lab/host/tc.py: the whole load's sockets are shaped
        opts += ["--so-priority", str(priority_of(load))]
    return opts


def master_command(
    load: LoadSpec,
    *,
    target_host: str,
    target_port: int,
    workers: int,
    step_results: str,
    ui: bool = False,
    web_host: str = WEB_HOST,
    master_port: int = MASTER_PORT,
    web_port: int = WEB_PORT,
    python: str = "python",
) -> list[str]:
    cmd = [
        python, "-m", "locust", "-f", LOCUSTFILE,
        "--host", f"tcp://{target_host}:{target_port}",
        "--steps", steps_arg(load),
        "--step-spawn-rate", f"{load.spawn_rate:g}",
        "--step-results", step_results,
        *load_options(load),
    ]
    if workers > 0:
        cmd += ["--master", "--expect-workers", str(workers),
                "--master-bind-port", str(master_port)]
    if ui:
        # The start form: --steps above prefills its "steps" field (the step
        # shape runs them); the users field shows the plan's peak, not 1.
        peak = max((s.connections for s in load.steps), default=1)
        cmd += ["--web-host", web_host, "--web-port", str(web_port),
                "--users", str(peak), "--spawn-rate", f"{load.spawn_rate:g}"]
    else:
        cmd += ["--headless", "--only-summary"]
    return cmd + user_classes(load)


def worker_command(
    load: LoadSpec,
    *,
    master_host: str,
    master_port: int = MASTER_PORT,
    source_ips: str | None = None,
    target_port: int | None = None,
    python: str = "python",
) -> list[str]:
    """``target_port``: this worker's own port to the server (a published one)."""
    cmd = [
        python, "-m", "locust", "-f", LOCUSTFILE, "--worker",
        "--master-host", master_host, "--master-port", str(master_port),
        *load_options(load),
    ]
    if source_ips:
        cmd += ["--source-ips", source_ips]
    if target_port:
        cmd += ["--target-port", str(target_port)]
    return cmd + user_classes(load)

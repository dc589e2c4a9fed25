"""Build Locust command lines for the lab's master and workers.

Both backends use this, so a scenario means the same load whether the
workers are local processes or containers. The options are the loadgen
contract's (see ``loadgen/options.py``).
"""

from __future__ import annotations

from contract.defaults import USER_CHURN, USER_IDLE
from lab.scenario.types import LoadSpec

LOCUSTFILE = "loadgen/locustfile.py"
MASTER_PORT = 5557
WEB_HOST = "127.0.0.1"
WEB_PORT = 8089


def steps_arg(load: LoadSpec) -> str:
    """``500:20s,1000:20s`` — target users and hold time per step."""
    return ",".join(f"{s.connections}:{s.hold_s:g}s" for s in load.steps)


def user_classes(load: LoadSpec) -> list[str]:
    if load.user == USER_IDLE:
        return ["IdleUser", "EchoUser"] if load.active_users else ["IdleUser"]
    return ["ChurnUser"] if load.user == USER_CHURN else ["EchoUser"]


def load_options(load: LoadSpec) -> list[str]:
    """Options that describe the load itself (master and workers alike)."""
    opts = [
        "--message-size", str(load.message_size),
        "--pace", f"{load.pace_s:g}",
        "--connect-timeout", f"{load.connect_timeout_s:g}",
        "--io-timeout", f"{load.io_timeout_s:g}",
        "--schedule", load.schedule,
    ]
    if load.active_users:
        opts += ["--active-users", str(load.active_users)]
    if load.user == USER_CHURN:
        # connect_rate is the whole load's arrivals per second (open model), not a ramp rate
        opts += ["--messages-per-connection", str(load.messages_per_connection),
                 "--arrival-rate", f"{load.spawn_rate:g}"]
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

"""``run-lab doctor [SCENARIO] [--backend local|docker|both]``: this host's limits and
what each model of the scenario could reach here."""

from __future__ import annotations

from pathlib import Path

from lab.cli.parser import LabParser
from lab.scenario.loader import load_scenario


def command(argv: list[str]) -> int:
    p = LabParser("doctor",
                  description="Show the limits this host and each backend impose on a scenario.")
    p.add_argument("scenario", nargs="?", type=Path)
    p.add_argument("--backend", choices=("local", "docker", "both"), default="both")
    args = p.parse_args(argv)
    from lab.backends.docker.hosts import docker_available
    from lab.host.doctor import doctor_text

    scenario = load_scenario(args.scenario) if args.scenario else None
    backends = ("local", "docker") if args.backend == "both" else (args.backend,)
    print(doctor_text(scenario, docker_available(), backends), end="")
    return 0

"""``run-lab clean [SCENARIO]``: remove every iolab container and network on the
local daemon (and the scenario's hosts), and stale local temp directories."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from lab.cli.parser import LabParser
from lab.scenario.loader import load_scenario


def command(argv: list[str]) -> int:
    p = LabParser("clean",
                  description="Remove every iolab container and network (and stale temp files).")
    p.add_argument("scenario", nargs="?", type=Path, help="also clean this scenario's hosts")
    args = p.parse_args(argv)
    for stale in Path(tempfile.gettempdir()).glob("iolab-local-*"):
        shutil.rmtree(stale, ignore_errors=True)
    endpoints = {"local"}
    if args.scenario:
        endpoints |= {h.endpoint for h in load_scenario(args.scenario).hosts}
    from lab.backends.docker.hosts import clean_all, client_for, docker_available

    for endpoint in sorted(endpoints):
        ok, why = docker_available(endpoint)
        if not ok:
            print(f"{endpoint}: no Docker daemon; nothing to clean there")
            continue
        removed = clean_all(client_for(endpoint))
        print(f"{endpoint}: removed {len(removed)}" + "".join(f"\n  {r}" for r in removed))
    return 0

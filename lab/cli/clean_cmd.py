"""``run-lab clean [--scenario FILE] [--all]``: remove what earlier runs left behind.

Every container and network the lab creates is labelled with its run and its
owner (``lab/owner.py``: host, run-lab pid, start time); a local run's temp
directory and a local server's memory cgroup (``iolab-<pid>-<start>-<run>--<server>``
under ``/sys/fs/cgroup``, ``lab/backends/cgroup.py``) carry the same in their
names. ``clean`` removes what belongs to no
live run — its owner process is gone, or it predates owner labels — and
spares a run still going (in another terminal), or one owned by another
machine, which this one cannot check. ``--all`` removes every iolab object
whatever its owner (the old behaviour). Daemons reached: the local one, every
host of ``--scenario FILE``, and every host named in the recent run
directories under ``--out`` (default ``results/``).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from lab import RESULTS
from lab.backends.cgroup import remove_dir
from lab.backends.cgroup import stale as stale_cgroups
from lab.cli.parser import LabParser
from lab.owner import OWNER_LABEL, TEMP_PREFIX, is_live, temp_dir_owner
from lab.scenario.loader import load_scenario

RECENT_RUNS = 50


def _hosts_of(run_dir: Path) -> list:
    """The scenario hosts a run directory names: run.json's resolved scenario,
    else ``scenario.yaml`` (a ``--ui`` run writes only that, before it starts
    anything), else nothing."""
    import yaml

    for name in ("run.json", "scenario.yaml"):
        try:
            data = yaml.safe_load((run_dir / name).read_text())  # JSON is YAML
        except (OSError, ValueError, yaml.YAMLError):
            continue
        if isinstance(data, dict) and name == "run.json":
            data = data.get("scenario")
        if isinstance(data, dict) and isinstance(data.get("hosts"), list):
            return data["hosts"]
    return []


def recent_endpoints(out: Path) -> set[str]:
    """Docker endpoints named by the most recent run directories' scenarios:
    also those of a run killed at any point, since the scenario is written
    before the backend creates anything."""
    found: set[str] = set()
    try:
        runs = sorted((p for p in out.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    except OSError:
        return found
    for run_dir in runs[-RECENT_RUNS:]:
        found |= {h.get("endpoint") for h in _hosts_of(run_dir)
                  if isinstance(h, dict) and h.get("endpoint")}
    return found


def _spare(everything: bool, kept: list[str]):
    def keep(labels: dict[str, str]) -> bool:
        if everything:
            return False
        live = is_live(labels.get(OWNER_LABEL))
        if live is False:
            return False
        why = "live" if live else "owned on another host, cannot check"
        kept.append(f"{labels.get('iolab.run', '?')} ({why}: {labels.get(OWNER_LABEL, '?')})")
        return True
    return keep


def command(argv: list[str]) -> int:
    p = LabParser("clean", description="Remove the containers, networks and temp directories "
                                       "of runs that are no longer live.")
    p.add_argument("scenario_arg", nargs="?", type=Path, metavar="SCENARIO",
                   help="same as --scenario")
    p.add_argument("--scenario", type=Path, help="also clean every host of this scenario")
    p.add_argument("--all", action="store_true",
                   help="remove every iolab object, even those of runs still going")
    p.add_argument("--out", type=Path, default=RESULTS,
                   help="run directories to find recent hosts in (default: results/)")
    args = p.parse_args(argv)
    kept: list[str] = []
    removed_dirs = 0
    for stale in Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*"):
        if args.all or is_live(temp_dir_owner(stale.name)) is False:
            shutil.rmtree(stale, ignore_errors=True)
            removed_dirs += 1
        else:
            kept.append(f"{stale} (live)")
    print(f"temp directories: removed {removed_dirs}")
    if args.all or not kept:  # no live local run: a qdisc of the lab's on lo is a leftover
        from lab.host.tc import remove_leftover

        print(f"lo: {remove_leftover('lo')}")
    cgroups = 0
    for path in stale_cgroups(lambda owner: args.all or is_live(owner) is False):
        try:
            remove_dir(path)  # kills what is still inside, then removes it
            cgroups += 1
        except OSError as exc:
            print(f"{path}: not removed ({exc.strerror or exc})")
    print(f"memory cgroups: removed {cgroups}")
    endpoints = {"local"} | recent_endpoints(args.out)
    scenario = args.scenario or args.scenario_arg
    if scenario:
        endpoints |= {h.endpoint for h in load_scenario(scenario).hosts}
    from lab.backends.docker.hosts import clean_all, client_for, docker_available

    for endpoint in sorted(endpoints):
        ok, why = docker_available(endpoint)
        if not ok:
            print(f"{endpoint}: no Docker daemon; nothing to clean there ({why})")
            continue
        removed = clean_all(client_for(endpoint), keep=_spare(args.all, kept))
        print(f"{endpoint}: removed {len(removed)}" + "".join(f"\n  {r}" for r in removed))
    if kept:
        print(f"kept {len(kept)} of live runs (use --all to remove them too):"
              + "".join(f"\n  {k}" for k in sorted(set(kept))))
    return 0

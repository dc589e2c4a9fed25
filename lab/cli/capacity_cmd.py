"""``run-lab capacity RUN_DIR [--target-connections N] [--rate R] [--slo-p99 MS] [--holdout]``:
write the run's capacity.md/.json and print the plan (with ``--holdout``, also how well
its per-connection costs predict the steps they were not fitted on)."""

from __future__ import annotations

from pathlib import Path

from lab.cli.parser import LabParser
from lab.errors import InputError


def command(argv: list[str]) -> int:
    p = LabParser("capacity", description="Capacity plan from a run: connections per host "
                                          "within the SLO, what binds, hosts for a target.")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--target-connections", type=int, help="connections to plan for")
    p.add_argument("--rate", type=float, help="total messages/s the target connections send")
    p.add_argument("--slo-p99", type=float, help="override the scenario's p99 SLO (ms)")
    p.add_argument("--holdout", action="store_true",
                   help="fit the costs on the lower half of each model's steps and report "
                        "the error predicting the upper half (also in capacity.md/.json)")
    args = p.parse_args(argv)
    for flag, value in (("--target-connections", args.target_connections),
                        ("--rate", args.rate), ("--slo-p99", args.slo_p99)):
        if value is not None and value <= 0:
            raise InputError(f"{flag} {value}: must be a positive number")
    from lab.analysis.plan_writer import write_capacity

    _, md = write_capacity(args.run_dir, args.target_connections, args.rate, args.slo_p99,
                           holdout=args.holdout)
    print(md.split("\n## How")[0].rstrip())
    return 0

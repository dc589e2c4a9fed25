"""``run-lab validate FILE...``: check scenario files; start nothing. Exit 2 if any is bad."""

from __future__ import annotations

import sys
from pathlib import Path

from lab.cli.parser import LabParser
from lab.errors import InputError
from lab.scenario.loader import load_scenario


def command(argv: list[str]) -> int:
    p = LabParser("validate", description="Check scenario files; start nothing.")
    p.add_argument("files", nargs="+", type=Path)
    args = p.parse_args(argv)
    failed = 0
    for path in args.files:
        try:
            s = load_scenario(path)
        except InputError as exc:
            print(exc, file=sys.stderr)
            failed += 1
            continue
        print(f"{path}: ok ({s.name}: {len(s.servers)} servers, {len(s.load.steps)} steps up "
              f"to {s.max_connections} connections)")
    return 2 if failed else 0

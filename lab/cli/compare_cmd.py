"""``run-lab compare RUN_A RUN_B [--force]``: two runs side by side, with B/A ratios."""

from __future__ import annotations

from pathlib import Path

from lab.cli.parser import LabParser


def command(argv: list[str]) -> int:
    p = LabParser("compare", description="Compare two runs step by step (B/A ratios); refuses "
                                         "when their metadata differs.")
    p.add_argument("run_a", type=Path)
    p.add_argument("run_b", type=Path)
    p.add_argument("--force", action="store_true",
                   help="compare even when backend, host or load settings differ")
    args = p.parse_args(argv)
    from lab.analysis.compare import compare

    print(compare(args.run_a, args.run_b, args.force))
    return 0

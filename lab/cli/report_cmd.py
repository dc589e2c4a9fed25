"""``run-lab report RUN_DIR``: (re)write a run's report.html and charts; print its path."""

from __future__ import annotations

from pathlib import Path

from lab.cli.parser import LabParser


def command(argv: list[str]) -> int:
    p = LabParser("report", description="(Re)write a run's report.html and its charts.")
    p.add_argument("run_dir", type=Path, help="a run directory (holds steps.csv)")
    args = p.parse_args(argv)
    from lab.report.html import write_report

    print(write_report(args.run_dir))
    return 0

"""The capacity plan's files: ``capacity.md`` and ``capacity.json`` in a run
directory, with the holdout check when asked for.

It sits above the two modules it puts together: ``lab/analysis/capacity.py``
(the plan) and ``lab/analysis/holdout.py`` (the check, which fits the plan's
costs again), so neither has to import the other's user.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lab.analysis import holdout as ho
from lab.analysis import holdout_table
from lab.analysis.capacity import plan_run, slo_of
from lab.analysis.plan_table import to_markdown
from lab.results.reader import load_run


def write_capacity(run_dir: Path, target: int | None = None, rate: float | None = None,
                   slo_p99: float | None = None, holdout: bool = False) -> tuple[Path, str]:
    """Compute the plan for ``run_dir``, write capacity.md/.json; return (md path, md text).
    With ``holdout`` both also hold the holdout check (lab/analysis/holdout.py)."""
    run = load_run(run_dir)
    slo = slo_of(run, slo_p99)
    plans = plan_run(run, slo, target, rate)
    payload: dict[str, Any] = {"run": run.name, "slo": asdict(slo), "target_connections": target,
                               "rate": rate, "host": run.host, "models": [asdict(p) for p in plans]}
    extra = ""
    if holdout:
        checks = ho.holdout_run(run, slo)
        extra = holdout_table.to_markdown(checks)
        payload["holdout"] = [h.to_dict() for h in checks]
    md = to_markdown(run, plans, slo, target, rate, extra)
    md_path = run.path / "capacity.md"
    md_path.write_text(md)
    (run.path / "capacity.json").write_text(json.dumps(payload, indent=2))
    return md_path, md

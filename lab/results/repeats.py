"""Repeated passes of one model folded into one row per step: the median,
with the min–max band beside it.

On a shared 2-core machine an identical step can move its rate 2× between
runs, so one number per step claims more precision than the lab has. With
``load.repeat: N`` each model runs N times (interleaved with the others, so
drift hits them alike) and every analysis — charts, capacity plan, headline,
compare — reads the per-step *median* row built here, while the band
(``<field>_min``/``<field>_max``) shows the spread. pyperf does the same
with its repeated runs: report the middle and the spread, never one sample.

Rules:

- rows are grouped by step; a pass that stopped early simply contributes no
  row to the later steps (``repeats`` says how many passes each median has);
- client-bound passes are left out of a step's median when at least one pass
  of that step was not client-bound (their numbers are the generator's);
- numbers are medians (``statistics.median``; integers rounded); the limit
  is the most common one among the passes (a tie: the first pass's);
- ``t_end`` is rebuilt so that step durations (``t_end`` differences, used
  for CPU per second) are the median of each pass's own durations.
"""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from lab.results.columns import COLUMNS, Row

# Fields drawn as bands (and compared for "within noise" by lab/analysis/compare.py).
BAND_FIELDS = tuple(c.name for c in COLUMNS if c.band)


def repeats_of(rows: list[Row]) -> int:
    """How many passes these rows come from (1 for a run without repeats)."""
    return len({r.get("repeat") or 0 for r in rows}) or 1


def _median(values: list[Any]) -> Any:
    nums = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if not nums:
        return None
    mid = statistics.median(nums)
    return round(mid) if all(isinstance(v, int) for v in nums) else mid


def _offsets(rows: list[Row]) -> dict[tuple[int, Any], float]:
    """Each row's ``t_end`` as seconds since its own pass's first step ended."""
    first: dict[int, float] = {}
    for r in sorted(rows, key=lambda r: r.get("step") or 0):
        if isinstance(r.get("t_end"), int | float):
            first.setdefault(r.get("repeat") or 0, r["t_end"])
    return {(r.get("repeat") or 0, r.get("step")): r["t_end"] - first[r.get("repeat") or 0]
            for r in rows if isinstance(r.get("t_end"), int | float)}


def fold(rows: list[Row]) -> list[Row]:
    """One model's rows of every pass → one median row per step, in step order.
    Rows from a single pass come back unchanged."""
    if repeats_of(rows) == 1:
        return sorted(rows, key=lambda r: r.get("step") or 0)
    offsets = _offsets(rows)
    base = min((r["t_end"] for r in rows if isinstance(r.get("t_end"), int | float)),
               default=None)
    by_step: dict[Any, list[Row]] = {}
    for r in sorted(rows, key=lambda r: (r.get("repeat") or 0)):
        by_step.setdefault(r.get("step"), []).append(r)
    out = []
    for step in sorted(by_step, key=lambda s: s or 0):
        group = by_step[step]
        valid = [r for r in group if not r.get("client_bound")] or group
        row: Row = dict(valid[0])
        for key, value in valid[0].items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                row[key] = _median([r.get(key) for r in valid])
        for key in BAND_FIELDS:
            values = [r.get(key) for r in valid if isinstance(r.get(key), int | float)]
            row[f"{key}_min"] = min(values) if values else None
            row[f"{key}_max"] = max(values) if values else None
        # most_common keeps first-seen order among equal counts: a tie is the first pass's
        row["limit"] = Counter(r.get("limit") for r in valid).most_common(1)[0][0]
        flags = [r.get("client_bound") for r in group]
        row["client_bound"] = None if all(f is None for f in flags) else all(map(bool, flags))
        row["repeats"] = len(valid)
        row["repeat"] = None
        found = [offsets[(r.get("repeat") or 0, step)] for r in valid
                 if (r.get("repeat") or 0, step) in offsets]
        row["t_end"] = base + statistics.median(found) if found and base is not None else None
        out.append(row)
    return out

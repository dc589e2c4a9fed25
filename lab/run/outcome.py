"""How one pass over one model ended: its rows, the limit or error that ended
it, and the passes of a repeated model folded into one.

The run loop (``lab/run/loop.py``) creates one per pass; the step rules
(``lab/run/poller.py``) fill it in as the steps finish.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ModelOutcome:
    """How one pass over one model ended (one per repeat)."""

    limit: str | None = None
    stopped_at_step: int | None = None
    error: str | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False
    mismatch_example: dict[str, Any] | None = None  # the first reply that was not the echo

    @property
    def measured(self) -> bool:
        """At least one step of this model finished and was recorded."""
        return bool(self.rows)


def merged(passes: list[ModelOutcome]) -> ModelOutcome:
    """One model's passes as one outcome: every row, the first limit, stop,
    error and mismatch example, interrupted if any pass was."""
    out = ModelOutcome()
    for o in passes:
        out.rows += o.rows
        out.limit = out.limit or o.limit
        if out.stopped_at_step is None:
            out.stopped_at_step = o.stopped_at_step
        out.error = out.error or o.error
        out.interrupted = out.interrupted or o.interrupted
        out.mismatch_example = out.mismatch_example or o.mismatch_example
    return out

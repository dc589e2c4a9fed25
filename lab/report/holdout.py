"""The report's holdout table: how well the capacity plan's costs predict the
steps they were not fitted on (:mod:`lab.analysis.holdout` computes it; this
only draws it next to the plan, with the verdict per model and the rows the
plan left out of its fit)."""

from __future__ import annotations

from html import escape

from lab.analysis import capacity, holdout_table, plan_table
from lab.analysis import holdout as ho
from lab.report.tables import html_table
from lab.results.reader import Run


def section(run: Run) -> str:
    """``<h3>`` + table + verdicts; "" for a run with no models."""
    if not run.models:
        return ""
    checks = ho.holdout_run(run, capacity.slo_of(run))
    head, cells = holdout_table.table(checks)
    table = html_table(head, [[escape(c) for c in row] for row in cells], {7}) if cells else ""
    left_out = plan_table.left_out_note({h.model: h.left_out for h in checks})
    verdicts = "".join(f"<li>{escape(h.verdict)}</li>" for h in checks)
    return (f'<h3 id="holdout">Holdout: do these costs predict the steps they were not '
            f"fitted on?</h3><p>Each model's costs fitted by the plan on the lower half of its "
            f"steps (by connections held), predicting the upper half; the fit column names "
            f"the shape chosen (flat, a + b·N or a·N^b for CPU per message, a line for "
            f"memory) and its leave-one-out error; CPU, the hold's, is capped at the cores "
            f"the host left the model (\"at the ceiling\"); error = (predicted − measured) / "
            f"measured; noise = how far the "
            f"fitted steps scatter from a fit that left each out (and, with repeats, the "
            f"step's own band): a miss within a noise above the tolerance is \"not "
            f"predictable from these steps\" (<code>run-lab capacity RUN_DIR --holdout</code>)."
            f"</p>"
            f"{table}<ul>{verdicts}</ul>" + (f"<p>{escape(left_out)}</p>" if left_out else ""))

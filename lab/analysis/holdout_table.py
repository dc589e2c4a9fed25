"""The holdout check as text: the table (markdown here, HTML in lab/report/holdout.py)
and the ``--holdout`` section of capacity.md. :mod:`lab.analysis.holdout` computes the
checks; this module only words them."""

from __future__ import annotations

from lab.analysis.holdout import FIGURES, TOLERANCE, ModelHoldout, error_text


def _bytes(v: float | None) -> str:
    if v is None:
        return "–"
    if abs(v) < 1024:
        return f"{v:.0f} B"
    return f"{v / 2**20:.2f} MiB" if abs(v) >= 2**20 else f"{v / 1024:.1f} KiB"


def _amount(fig: str, v: float | None) -> str:
    """A predicted or measured value: bytes of growth, or CPU seconds in the step."""
    if fig != "cpu" or v is None:
        return _bytes(v)
    return f"{v:.3f} s"


def table(holdouts: list[ModelHoldout]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the holdout table (markdown here, HTML in lab/report/holdout.py)."""
    head = ["model", "figure", "fit (chosen; leave-one-out error)", "step", "connections",
            "predicted", "measured", "error", "noise"]
    return head, [
        [h.model, FIGURES[f.figure][0], f.fit, str(c.step), str(c.held),
         _amount(f.figure, c.predicted), _amount(f.figure, c.measured),
         error_text(c), "–" if c.noise is None else f"±{c.noise:.1%}"]
        for h in holdouts for f in h.figures for c in f.checks]


def to_markdown(holdouts: list[ModelHoldout]) -> str:
    """The ``--holdout`` section of capacity.md (and of the command's output)."""
    lines = ["## Holdout: do the costs predict the steps they were not fitted on?", "",
             "Each model's costs fitted by the plan on the lower half of its usable steps "
             "(by connections held), predicting the upper half: memory as growth since the "
             "first fitted step, CPU as the server's CPU seconds in the step's hold (at most the "
             "cores its host left the model: \"at the ceiling\"). The fit column names the "
             "shape chosen (lab/analysis/fits.py) and its leave-one-out error on the fitted "
             "steps. Error = "
             f"(predicted − measured) / measured; within ±{TOLERANCE:.0%} the cost "
             "extrapolates. Noise: the scatter of the fitted steps around a fit that left "
             "each out (and with repeats the step's own min–max band), relative to the "
             "measured value; a miss within twice a noise above "
             f"{TOLERANCE:.0%} is \"not predictable from these steps\", not a pass.", ""]
    head, cells = table(holdouts)
    if cells:
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(c) + " |" for c in cells]
        lines.append("")
    lines += [f"- {h.verdict}" for h in holdouts]
    return "\n".join(lines) + "\n"

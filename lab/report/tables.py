"""HTML tables and cells for ``report.html``.

A leaf of the report: the page (:mod:`lab.report.html`) and its sections
(:mod:`lab.report.holdout`, :mod:`lab.report.memory`) draw their tables with
it, and it imports none of them. The "Every step" table's columns, headings
and units come from the column declaration (:mod:`lab.results.columns`).
"""

from __future__ import annotations

from html import escape
from typing import Any

from lab.results.columns import BY_NAME, COLUMNS, Column

MIB = 1 << 20

# Units the report writes after a column's label; bytes are shown in MiB.
SHOWN_UNITS = {"bytes": "MiB", "ms": "ms", "s": "s"}

# The "Every step" table: the columns declared ``report``, the row's key
# (model, step, pass) first, the rest in steps.csv order.
EVERY_STEP: tuple[Column, ...] = tuple(
    sorted((c for c in COLUMNS if c.report), key=lambda c: c.phase != "key"))


def heading(column: Column) -> str:
    """``p99 ms``, ``RSS MiB``, ``held``: the label and the unit it is shown in."""
    shown = SHOWN_UNITS.get(column.unit)
    return f"{column.label} {shown}" if shown else column.label


def cell(value: Any, key: str = "") -> str:
    """A value as the report prints it in column ``key``: ``–`` when empty,
    bytes in MiB, counts with thousands separators (not a row's key: step 12,
    not 1,2), fractions to 4 significant digits, other floats to 2 decimals."""
    column = BY_NAME.get(key)
    if value is None or value == "":
        return "–"
    if column and column.unit == "bytes" and isinstance(value, int | float):
        return f"{value / MIB:.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value) if column and column.phase == "key" else f"{value:,}"
    if isinstance(value, float):
        if column and column.type is float and not column.unit:
            return f"{value:.4g}"
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    return str(value)


def html_table(head: list[str], rows: list[list[Any]], text_cols: set[int] | None = None) -> str:
    """An escaped HTML table; columns in ``text_cols`` are left-aligned prose."""
    text_cols = text_cols or set()
    out = ["<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>"]
    for row in rows:
        tds = "".join(
            f'<td class="text">{c}</td>' if i in text_cols else f"<td>{c}</td>"
            for i, c in enumerate(row))
        out.append(f"<tr>{tds}</tr>")
    return "\n".join(out) + "</table>"

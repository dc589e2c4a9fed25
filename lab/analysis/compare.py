"""``run-lab compare RUN_A RUN_B [--force]``: two runs side by side, with B/A ratios.

Rows are matched by model label and step number; with ``load.repeat`` each
side is the per-step median with its min–max band, and a step is "within
noise" exactly when the two bands overlap (pyperf's rule of thumb: a
difference inside the spread of repeated runs is not a difference). Numbers from different
machines or settings do not compare (pyperf's rule: check the metadata first),
so the comparison refuses, exit code 2, when anything in ``MATTERS`` differs,
and lists each differing field with both values; ``--force`` compares anyway
and prints the differences as a warning.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab.errors import InputError
from lab.results.reader import Row, Run, load_run

# Metadata that must match: (field name shown to the user, how to read it from a run).
MATTERS: tuple[tuple[str, Callable[[Run], Any]], ...] = (
    ("run.json format_version", lambda r: r.meta.get("format_version")),
    ("backend", lambda r: r.meta.get("backend")),
    ("host cpus", lambda r: r.host.get("cpus")),
    ("host nofile_hard", lambda r: r.host.get("nofile_hard")),
    ("load.message_size", lambda r: r.load.message_size if r.scenario else None),
    ("load.pace (s)", lambda r: r.pace_s),
)
RATIO_FIELDS = ("connected", "rps", "p99_ms", "server_rss_bytes")
# Judged "within noise" or not from the runs' min–max bands (load.repeat >= 2).
NOISE_FIELDS = ("rps", "p99_ms")
SHORT = {"server_rss_bytes": "rss", "p99_ms": "p99"}


def _nofile(run: Run, model: str) -> Any:
    server = run.server(model)
    return server.limits.nofile if server else None


def metadata_diffs(a: Run, b: Run) -> list[tuple[str, Any, Any]]:
    """Every field in ``MATTERS`` (and each shared model's nofile) that differs: (field, A, B)."""
    diffs = [(name, get(a), get(b)) for name, get in MATTERS if get(a) != get(b)]
    for model in (m for m in a.models if m in b.models):
        na, nb = _nofile(a, model), _nofile(b, model)
        if na != nb:
            diffs.append((f"servers[{model}].limits.nofile", na, nb))
    return diffs


def ratio(va: float | None, vb: float | None) -> float | None:
    """B/A, or None when either is missing or A is zero."""
    if va is None or vb is None or va == 0:
        return None
    return vb / va


def band(row: Row, field: str) -> tuple[float, float] | None:
    """The min–max band of ``field`` over a step's passes (lab/results/repeats.py);
    None for a step measured once."""
    lo, hi = row.get(f"{field}_min"), row.get(f"{field}_max")
    if (row.get("repeats") or 1) < 2 or lo is None or hi is None:
        return None
    return lo, hi


def noise(ra: Row, rb: Row, field: str) -> str:
    """"within noise" exactly when the two bands overlap, "differs" when they do
    not; "n/a" when either step was measured once (no band to judge by)."""
    ba, bb = band(ra, field), band(rb, field)
    if ba is None or bb is None:
        return "n/a"
    return "within noise" if ba[0] <= bb[1] and bb[0] <= ba[1] else "differs"


def compare_rows(a: Run, b: Run) -> list[dict[str, Any]]:
    """One dict per (model, step) in either run: A and B values (the per-step
    medians with repeats), B/A ratios, the bands and the noise verdicts."""
    def index(run: Run) -> dict[tuple[str, int], Row]:
        return {(r["model"], r.get("step") or 0): r
                for model in run.models for r in run.rows_for(model)}

    ia, ib = index(a), index(b)
    out = []
    for key in dict.fromkeys([*ia, *ib]):
        ra, rb = ia.get(key, {}), ib.get(key, {})
        row: dict[str, Any] = {"model": key[0], "step": key[1],
                               "target": ra.get("target_connections", rb.get("target_connections"))}
        for f in RATIO_FIELDS:
            row[f"{f}_a"], row[f"{f}_b"] = ra.get(f), rb.get(f)
            row[f"{f}_ratio"] = ratio(ra.get(f), rb.get(f))
            row[f"{f}_band_a"], row[f"{f}_band_b"] = band(ra, f), band(rb, f)
        for f in NOISE_FIELDS:
            row[f"{f}_noise"] = noise(ra, rb, f)
        out.append(row)
    return out


def _fmt(v: Any, field: str = "") -> str:
    if v is None:
        return "–"
    if field == "server_rss_bytes":
        return f"{v / 2**20:.1f}M"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)


def _value(row: dict[str, Any], f: str, side: str) -> str:
    """A value with its band, ``12.3 [11–14]``, when it has one."""
    text, b = _fmt(row[f"{f}_{side}"], f), row[f"{f}_band_{side}"]
    return f"{text} [{_fmt(b[0], f)}–{_fmt(b[1], f)}]" if b else text


def format_table(rows: list[dict[str, Any]]) -> str:
    """A fixed-width text table: model, step, target, then A | B | B/A per ratio
    field (A and B with their min–max bands under repeats), then the noise
    verdict per ``NOISE_FIELDS``."""
    head = ["model", "step", "target"]
    for f in RATIO_FIELDS:
        short = SHORT.get(f, f)
        head += [f"{short} A", f"{short} B", "B/A"]
    head += [f"{SHORT.get(f, f)} noise" for f in NOISE_FIELDS]
    cells = [[r["model"], str(r["step"]), _fmt(r["target"])]
             + [x for f in RATIO_FIELDS
                for x in (_value(r, f, "a"), _value(r, f, "b"),
                          "–" if r[f"{f}_ratio"] is None else f"{r[f'{f}_ratio']:.2f}")]
             + [r[f"{f}_noise"] for f in NOISE_FIELDS]
             for r in rows]
    widths = [max(len(str(c)) for c in col) for col in zip(head, *cells, strict=True)]
    lines = ["  ".join(str(c).rjust(w) for c, w in zip(row, widths, strict=True))
             for row in [head, *cells]]
    return "\n".join(lines)


# error_rate's meaning changed at this format: the hold's only (loadgen/phases.py).
HOLD_ERROR_RATE_FORMAT = 7


def meaning_changes(a: Run, b: Run) -> list[str]:
    """Columns whose meaning differs between the two runs' formats, in words."""
    versions = [r.meta.get("format_version") for r in (a, b)]
    if not all(isinstance(v, int) for v in versions):
        return []
    if min(versions) < HOLD_ERROR_RATE_FORMAT <= max(versions):
        return [f"error_rate changed meaning at format {HOLD_ERROR_RATE_FORMAT}: since then it "
                "is the hold phase's (failed echoes / echoes attempted in the hold window); "
                f"the format-{min(versions)} run's counts every failure of the step, connects "
                "in the ramp included, so the two are not the same figure"]
    return []


def _describe(diffs: list[tuple[str, Any, Any]], a: Run, b: Run) -> str:
    return "\n".join(f"  {name}: A ({a.name}) = {va!r}, B ({b.name}) = {vb!r}"
                     for name, va, vb in diffs)


def compare(run_a: Path, run_b: Path, force: bool = False) -> str:
    """The comparison text; InputError listing the differences unless ``force``."""
    a, b = load_run(run_a), load_run(run_b)
    diffs = metadata_diffs(a, b)
    header = f"A = {a.path}\nB = {b.path}\n"
    changed = "".join(f"WARNING: {c}\n" for c in meaning_changes(a, b))
    if diffs and not force:
        raise InputError("the runs differ in metadata that matters, so their numbers do not "
                         f"compare:\n{_describe(diffs, a, b)}\n{changed}Re-run with matching "
                         "settings, or pass --force to compare anyway.")
    if diffs:
        header += f"WARNING (--force): metadata differs:\n{_describe(diffs, a, b)}\n"
    header += changed
    return header + "\n" + format_table(compare_rows(a, b))

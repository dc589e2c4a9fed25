"""Read a finished (or interrupted) run directory into typed rows.

The report, the capacity plan and the run comparison all start here, so the
rules for reading a run live in one place:

- ``steps.csv`` is the source of the numbers (one row per model per step, the
  columns of lab/results/columns.py); ``run.json`` adds the scenario, host and model metadata.
  An interrupted run may have a ``run.json`` with keys missing, or none at all:
  every metadata lookup has a default.
- Empty CSV cells become ``None`` (no echoes in a step means no latency).
- Numbers are typed once here, by the type each column declares
  (lab/results/columns.py); downstream code never parses strings.
- The scenario is read back with the scenario loader itself (run.json's
  copy, else the run's ``scenario.yaml``), so the report and the capacity
  plan see the same typed :class:`~lab.scenario.types.Scenario` the run had.
- ``format_version`` is checked: a run written by a newer iolab is refused
  with a clear message (the history is in :mod:`lab.results.writer`).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from contract.limits import GENERATOR_LIMITS
from lab.errors import InputError
from lab.host.facts import HostFacts
from lab.results.columns import BY_NAME, Row
from lab.results.repeats import fold
from lab.results.formats import FORMAT_VERSION
from lab.scenario.loader import parse_scenario
from lab.scenario.types import SLO, LoadSpec, Scenario, ServerSpec

# run.json's top-level keys that readers iterate or index, with their JSON type.
META_TYPES = {"scenario": dict, "unapplied": list, "hosts": dict, "models": dict, "rows": list,
              "versions": dict, "expect_not_checked": list}
EACH_TYPES = {"models": dict, "hosts": dict}  # the type of every value of these

def _parse(type_: type, text: str) -> Any:
    """A non-empty CSV cell as its declared type (lab/results/columns.py).
    Integers may be written as ``3.0``; booleans as ``True``/``1``/``yes``."""
    if type_ is int or type_ is float:
        number = float(text)
        if not math.isfinite(number):  # inf, -inf, nan, 1e999: no measurement gives them
            raise ValueError(f"{text!r} is not a finite number")
        return int(number) if type_ is int else number
    if type_ is bool:
        return text.lower() in ("true", "1", "yes")
    return text


def _typed(raw: dict[str, str | None]) -> Row:
    """One CSV row with empty cells as None and each declared column as its
    type; a column this iolab does not declare stays text."""
    row: dict[str, Any] = {}
    for key, value in raw.items():
        if key is None:  # extra cells beyond the header: ignore
            continue
        value = (value or "").strip()
        column = BY_NAME.get(key)
        try:
            row[key] = None if value == "" else _parse(column.type if column else str, value)
        except ValueError as exc:
            raise ValueError(f"column {key}: {exc}") from None
    row.setdefault("limit", None)
    return row


def seconds(value: Any) -> float | None:
    """A duration from run.json: a number (seconds) or a string like "1s", "500ms", "2m"."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    for suffix, scale in (("ms", 1e-3), ("s", 1.0), ("m", 60.0)):
        if text.endswith(suffix):
            text, factor = text[: -len(suffix)], scale
            break
    else:
        factor = 1.0
    try:
        return float(text) * factor
    except ValueError:
        return None


def normalize_host(facts: dict[str, Any]) -> dict[str, Any]:
    """A run.json host entry in the one spelling of :class:`lab.host.facts.HostFacts`
    (which knows what older runs called each fact)."""
    return HostFacts.from_record(facts).to_record()


def parse_failure_kinds(text: str | None) -> dict[str, int]:
    """``"EMFILE=3;timeout=1"`` → ``{"EMFILE": 3, "timeout": 1}`` (tolerant of junk)."""
    kinds: dict[str, int] = {}
    for part in (text or "").split(";"):
        name, sep, count = part.partition("=")
        if sep and name.strip():
            try:
                kinds[name.strip()] = int(count)
            except ValueError:
                continue
    return kinds


@dataclass
class Run:
    """A run directory: its rows (typed, in file order) and its metadata."""

    path: Path
    rows: list[Row]
    meta: dict[str, Any] = field(default_factory=dict)
    scenario: Scenario | None = None  # None: the run kept no scenario

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def title(self) -> str:
        return self.scenario.name if self.scenario else self.name

    @property
    def load(self) -> LoadSpec:
        return self.scenario.load if self.scenario else LoadSpec()

    @property
    def pace_s(self) -> float | None:
        """Seconds between messages per user (None when the run kept no scenario)."""
        return self.scenario.load.pace_s if self.scenario else None

    @property
    def slo(self) -> SLO:
        return self.scenario.slo if self.scenario else SLO()

    @property
    def models(self) -> list[str]:
        """Model labels in the order they first appear in the rows."""
        return list(dict.fromkeys(r["model"] for r in self.rows if r.get("model")))

    def rows_for(self, model: str) -> list[Row]:
        """One model's rows, sorted by step number; with ``load.repeat`` one
        median row per step with its min–max band (lab/results/repeats.py)."""
        return fold(self.pass_rows(model))

    def pass_rows(self, model: str) -> list[Row]:
        """One model's rows of every pass, as written (repeat, then step order)."""
        rows = [r for r in self.rows if r.get("model") == model]
        return sorted(rows, key=lambda r: (r.get("repeat") or 0, r.get("step") or 0))

    @property
    def servers(self) -> tuple[ServerSpec, ...]:
        return self.scenario.servers if self.scenario else ()

    def server(self, model: str) -> ServerSpec | None:
        """The scenario's server with this row label, or None."""
        return next((s for s in self.servers if s.name == model), None)

    def model_meta(self, model: str) -> dict[str, Any]:
        return (self.meta.get("models") or {}).get(model) or {}

    def first_limit(self, model: str) -> tuple[Row, str] | None:
        """The model's first row with a server limit and its kind; else
        ``run.json``'s ``models.<name>.limit`` at the last row (a crash may be
        recorded only there). A lost load worker is not the server's limit
        (contract ``GENERATOR_LIMITS``): see :meth:`client_bound_rows`."""
        rows = self.rows_for(model)
        hit = next((r for r in rows if r.get("limit") and r["limit"] not in GENERATOR_LIMITS),
                   None)
        if hit:
            return hit, hit["limit"]
        kind = self.model_meta(model).get("limit")
        return (rows[-1], kind) if kind and rows and kind not in GENERATOR_LIMITS else None

    def client_bound_rows(self, model: str) -> list[Row]:
        """The model's steps whose numbers are the load generator's
        (contract/generator.py): left out of the plan, drawn hollow."""
        return [r for r in self.rows_for(model) if r.get("client_bound")]

    @property
    def host(self) -> dict[str, Any]:
        """The first host's facts, normalized (single-host runs have exactly one)."""
        hosts = self.meta.get("hosts") or {}
        return normalize_host(next(iter(hosts.values()), {}) if hosts else {})

    @property
    def is_idle_vs_active(self) -> bool:
        return self.load.user == "idle" and self.load.active_users > 0


def load_run(run_dir: Path | str) -> Run:
    """Read ``run_dir``; raise InputError naming the path and the fix if it is not a run."""
    path = Path(run_dir)
    if not path.is_dir():
        raise InputError(
            f"{path}: not a directory; pass a run directory such as "
            "results/20260101-120000-<scenario> (created by `run-lab SCENARIO.yaml`)"
        )
    csv_path = path / "steps.csv"
    if not csv_path.is_file():
        raise InputError(
            f"{csv_path}: missing; {path} is not a run directory (or the run stopped before "
            "its first step). Pass the directory `run-lab` created, which holds steps.csv"
        )
    reader = None
    try:
        with csv_path.open(newline="") as f:
            reader = csv.DictReader(f)
            rows = [_typed(r) for r in reader]
    except (ValueError, csv.Error) as e:
        line = f":{reader.line_num}" if reader is not None and reader.line_num else ""
        raise InputError(f"{csv_path}{line}: unreadable ({e}); re-run or fix the file") from e
    if rows and "model" not in rows[0]:
        raise InputError(f"{csv_path}: no 'model' column; this is not an iolab steps.csv")
    meta: dict[str, Any] = {}
    json_path = path / "run.json"
    if json_path.is_file():
        try:
            meta = json.loads(json_path.read_text())
        except ValueError as e:  # not JSON, or not UTF-8 at all (UnicodeDecodeError)
            raise InputError(f"{json_path}: invalid JSON ({e}); fix or delete it") from e
        if not isinstance(meta, dict):
            raise InputError(f"{json_path}: expected a JSON object")
        _check_types(json_path, meta)
        version = meta.get("format_version")
        if isinstance(version, int) and version > FORMAT_VERSION:
            raise InputError(f"{json_path}: format_version {version} was written by a newer "
                             f"iolab; this one reads formats up to {FORMAT_VERSION}. Update "
                             "iolab to read it")
    _precise_times(rows, meta.get("rows"))
    return Run(path=path, rows=rows, meta=meta, scenario=_scenario(path, meta))


def _check_types(json_path: Path, meta: dict[str, Any]) -> None:
    """run.json's containers have the JSON type readers rely on (a hand edit
    otherwise surfaces as an internal error deep in the report)."""
    found = [(key, meta.get(key), kind) for key, kind in META_TYPES.items()]
    for key, kind in EACH_TYPES.items():
        if isinstance(meta.get(key), dict):
            found += [(f"{key}.{name}", value, kind) for name, value in meta[key].items()]
    for where, value, kind in found:
        if value is not None and not isinstance(value, kind):
            raise InputError(f"{json_path}: '{where}' is {type(value).__name__} "
                             f"{json.dumps(value)[:40]}, expected a {kind.__name__}; "
                             "fix or delete it")


def _scenario(path: Path, meta: dict[str, Any]) -> Scenario | None:
    """The run's scenario through the scenario loader: run.json's copy (the
    versioned record, written with the rows), else ``scenario.yaml`` (the same
    resolved scenario, written when the run started), else None."""
    yaml_path = path / "scenario.yaml"
    if isinstance(meta.get("scenario"), dict):
        text = yaml.safe_dump(meta["scenario"], sort_keys=False)
        where = f"{path / 'run.json'} (scenario)"
    elif yaml_path.is_file():
        try:
            text, where = yaml_path.read_text(encoding="utf-8"), str(yaml_path)
        except UnicodeDecodeError as e:
            raise InputError(f"{yaml_path}: not UTF-8 text ({e}); fix or delete it") from e
    else:
        return None
    return parse_scenario(text, where, from_run=True)  # old dumps wrote keys per model


def _precise_times(rows: list[Row], json_rows: Any) -> None:
    """Take ``t_end`` from run.json's typed rows: the CSV may round epoch seconds
    to 6 significant digits (1.79585e+09), which would erase step durations."""
    if not isinstance(json_rows, list):
        return
    exact = {(r.get("model"), r.get("repeat") or 0, r.get("step")): r.get("t_end")
             for r in json_rows if isinstance(r, dict)}
    for row in rows:
        t_end = exact.get((row.get("model"), row.get("repeat") or 0, row.get("step")))
        if isinstance(t_end, int | float):
            row["t_end"] = float(t_end)

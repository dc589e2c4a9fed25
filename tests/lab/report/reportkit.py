"""Helpers for the report tests: a synthetic 14-model run built from golden rows.

``scenarios/all-models.yaml`` runs all 14 models, which this machine cannot;
the charts must still be readable with 14 lines. ``fourteen_model_run`` copies
the real select/poll/epoll golden run and writes one model per name in
``contract.models.MODELS``, each a copy of a golden model's rows (select's for
the select-like models, so some hit FD_SETSIZE) with its numbers nudged per
model so the lines are distinct. Its events files are copies too, so every
model has a timeline. The result is SYNTHETIC: only for looking at the page.
"""

from __future__ import annotations

import csv
import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

from paths import TESTS

from contract.models import MODELS

GOLDEN = TESTS / "data" / "runs"
REAL = GOLDEN / "20261128-060017-select-poll-epoll"
SOURCE = {"select": "select", "poll": "poll", "blocking": "select", "threads": "poll",
          "forking": "select", "nonblocking": "poll", "sigio": "select"}
SCALED = ("p50_ms", "p90_ms", "p99_ms", "max_ms", "server_cpu_s", "server_cpu_user_s",
          "server_cpu_sys_s")


def fourteen_model_run(dest: Path) -> Path:
    """A run directory at ``dest`` with the 14 built-in models (synthetic)."""
    shutil.copytree(REAL, dest)
    with (REAL / "steps.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        fields, golden = list(reader.fieldnames or []), list(reader)
    meta = json.loads((REAL / "run.json").read_text())
    json_rows = {(r["model"], r["step"]): r for r in meta["rows"]}
    rows, new_json, models, servers = [], [], {}, []
    template = meta["scenario"]["servers"][0]
    for i, model in enumerate(MODELS):
        src = SOURCE.get(model, "epoll")
        factor = 1 + 0.07 * i
        for r in (r for r in golden if r["model"] == src):
            row = dict(r, model=model, server_kind=model)
            for key in SCALED:
                if row[key]:
                    row[key] = repr(float(row[key]) * factor)
            if row["rps"]:
                row["rps"] = repr(float(row["rps"]) * (1 - 0.02 * i))
            rows.append(row)
            jr = dict(json_rows[(src, int(r["step"]))], model=model, server_kind=model)
            new_json.append({k: jr.get(k) for k in jr})
        models[model] = dict(meta["models"][src], kind=model)
        servers.append(dict(template, name=model, model=model))
        shutil.copy(REAL / "logs" / f"{src}.events.jsonl", dest / "logs" / f"{model}.events.jsonl")
    with (dest / "steps.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    meta.update(rows=new_json, models=models)
    meta["scenario"] = dict(meta["scenario"], name="all-models-synthetic", servers=servers,
                            description="SYNTHETIC 14-model run from golden rows (tests).")
    (dest / "run.json").write_text(json.dumps(meta))
    (dest / "scenario.yaml").unlink()
    return dest


def svg_of(html: str, fig_id: str) -> ET.Element:
    """The ``<svg>`` of the figure with id ``fig_id``, parsed as XML."""
    start = html.index(f'<figure id="{fig_id}"')
    a = html.index("<svg ", start)
    b = html.index("</svg>", a) + len("</svg>")
    return ET.fromstring(html[a:b])

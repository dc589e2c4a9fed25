"""A "Lab" tab in Locust's web UI: what each server says about itself, live.

Locust's charts show the client's view (requests, latency). The servers' own
view — connections held, peak, the limits they hit, RSS, CPU — is in the JSONL
event files the lab writes per server (``logs/<server>.events.jsonl``, listed
in ``IOLAB_SERVER_EVENTS``, ``os.pathsep``-separated). Importing this module in
a locustfile adds, on the process that runs the web UI:

- ``/lab``: a small self-contained page that fetches ``/lab/stats`` every 2 s;
- ``/lab/stats``: JSON, one entry per server (the latest ``stats`` event, every
  ``limit`` event, the ``final`` event once the server stopped);
- a "Lab" tab in Locust 2.x's React UI: ``template_args["extended_tabs"]`` and
  ``extended_tables`` declare it, and the same rows ride along in
  ``/stats/requests`` as ``extended_stats`` (Locust's ``extend_web_ui``
  mechanism), plus a link to ``/lab`` on the "Download Data" tab.

Files are tailed, not re-read: each poll reads only the bytes appended since
the last one, and a file that is not there yet is reported as "waiting".
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from locust import events

from contract.env import SERVER_EVENTS as EVENTS_ENV

SUFFIX = ".events.jsonl"
TAB_KEY = "iolab"
MAX_LIMIT_EVENTS = 20  # kept per server (servers emit one per kind anyway)
TABLE = (  # (key in a table row, column title)
    ("server", "Server"), ("model", "Model"), ("status", "Status"),
    ("connections", "Connections"), ("peak_connections", "Peak"), ("limits", "Limits hit"),
    ("rss_mib", "RSS MiB"), ("cpu_s", "CPU s"), ("age_s", "Last stats (s ago)"),
)


class EventTail:
    """Follows one server's JSONL event file from where the last read stopped."""

    def __init__(self, path: Path):
        self.path = path
        self.name = path.name.removesuffix(SUFFIX)
        self._reset()

    def _reset(self) -> None:
        self.offset = 0
        self.partial = b""
        self.stats: dict[str, Any] | None = None
        self.stats_seen: float | None = None
        self.limits: list[dict[str, Any]] = []
        self.final: dict[str, Any] | None = None

    def poll(self) -> None:
        """Read and apply the complete lines appended since the last poll."""
        try:
            size = self.path.stat().st_size
            if size < self.offset:  # truncated or replaced: start over
                self._reset()
            with self.path.open("rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except OSError:
            return
        self.offset += len(chunk)
        *lines, self.partial = (self.partial + chunk).split(b"\n")
        for line in lines:
            self._apply(line)

    def _apply(self, line: bytes) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            return
        if not isinstance(event, dict):
            return
        kind = event.get("event")
        if kind == "stats":
            self.stats, self.stats_seen = event, time.time()
        elif kind == "limit":
            self.limits = (self.limits + [event])[-MAX_LIMIT_EVENTS:]
        elif kind == "final":
            self.final = event

    def snapshot(self) -> dict[str, Any]:
        """This server's state for ``/lab/stats``."""
        latest = self.final or self.stats or {}
        status = ("stopped" if self.final else "running" if self.stats else
                  "waiting" if not self.path.exists() else "started")
        cpu = [latest.get(k) for k in ("cpu_user_s", "cpu_sys_s")]
        return {
            "server": self.name, "path": str(self.path), "status": status,
            "model": latest.get("model"), "connections": latest.get("connections"),
            "peak_connections": latest.get("peak_connections"),
            "rss_bytes": latest.get("rss_bytes"),
            "cpu_s": sum(cpu) if all(isinstance(c, int | float) for c in cpu) else None,
            "limits": list(dict.fromkeys(e.get("kind") for e in self.limits if e.get("kind"))),
            "limit_events": self.limits, "stats": self.stats, "final": self.final,
            "age_s": None if self.stats_seen is None else round(time.time() - self.stats_seen, 1),
        }


class LabStats:
    """The tails for every file in ``IOLAB_SERVER_EVENTS`` (read when first needed)."""

    def __init__(self, paths: list[Path] | None = None):
        self._paths = paths
        self._tails: dict[Path, EventTail] = {}

    def paths(self) -> list[Path]:
        if self._paths is not None:
            return self._paths
        raw = os.environ.get(EVENTS_ENV, "")
        return [Path(p) for p in raw.split(os.pathsep) if p.strip()]

    def snapshot(self) -> dict[str, Any]:
        servers = []
        for path in self.paths():
            tail = self._tails.setdefault(path, EventTail(path))
            tail.poll()
            servers.append(tail.snapshot())
        return {"servers": servers, "time": time.time(), "source": EVENTS_ENV}


def table_rows(snapshot: dict[str, Any]) -> list[dict[str, Any]]:
    """Flat rows for the React UI's extended table (keys of ``TABLE``)."""
    rows = []
    for s in snapshot["servers"]:
        rss = s.get("rss_bytes")
        rows.append({
            **{k: s.get(k) for k, _ in TABLE},
            "limits": ", ".join(s["limits"]) or "–",
            "rss_mib": None if rss is None else round(rss / 2**20, 1),
            "cpu_s": None if s.get("cpu_s") is None else round(s["cpu_s"], 2),
        })
    return rows


PAGE = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>iolab: servers</title>
<style>body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}
th,td{border:1px solid #ccc;padding:4px 10px;text-align:right}th{background:#f3f3f3}
td:first-child{text-align:left}.limit{color:#b00;font-weight:bold}</style></head><body>
<h1>iolab: what the servers report</h1>
<p>Live from the servers' event files (refreshes every 2 s). <a href="/">Back to Locust</a></p>
<table><thead><tr>%(head)s</tr></thead><tbody id="rows"><tr><td>loading…</td></tr></tbody>
</table><p id="note"></p>
<script>
const KEYS = %(keys)s;
function cell(v) { const td = document.createElement("td");
  td.textContent = (v === null || v === undefined) ? "–" : String(v); return td; }
async function refresh() {
  try {
    const r = await fetch("/lab/stats", {cache: "no-store"});
    const data = await r.json();
    const body = document.getElementById("rows"); body.replaceChildren();
    for (const row of data.rows) {
      const tr = document.createElement("tr");
      for (const k of KEYS) { const td = cell(row[k]);
        if (k === "limits" && row[k] !== "–") td.className = "limit"; tr.appendChild(td); }
      body.appendChild(tr);
    }
    document.getElementById("note").textContent = data.rows.length ? "" :
      "No servers listed in %(env)s.";
  } catch (e) { document.getElementById("note").textContent = "refresh failed: " + e; }
}
refresh(); setInterval(refresh, 2000);
</script></body></html>
"""


def render_page() -> str:
    head = "".join(f"<th>{title}</th>" for _, title in TABLE)
    return PAGE % {"head": head, "keys": json.dumps([k for k, _ in TABLE]), "env": EVENTS_ENV}


def install(web_ui: Any, lab: LabStats | None = None) -> LabStats:
    """Add the routes, the tab and the ``/stats/requests`` extension to ``web_ui``."""
    from flask import Response, jsonify, request

    lab = lab or LabStats()
    guard = getattr(web_ui, "auth_required_if_enabled", lambda view: view)

    def lab_page() -> Response:
        return Response(render_page(), mimetype="text/html")

    def lab_stats() -> Response:
        snap = lab.snapshot()
        return jsonify({**snap, "rows": table_rows(snap)})

    web_ui.app.add_url_rule("/lab", "iolab_lab", guard(lab_page))
    web_ui.app.add_url_rule("/lab/stats", "iolab_lab_stats", guard(lab_stats))

    @web_ui.app.after_request
    def add_lab_rows(response: Response) -> Response:
        if not request.path.endswith("/stats/requests"):
            return response
        data = response.get_json(silent=True)
        if isinstance(data, dict):
            extra = [e for e in data.get("extended_stats") or [] if e.get("key") != TAB_KEY]
            extra.append({"key": TAB_KEY, "data": table_rows(lab.snapshot())})
            response.set_data(json.dumps({**data, "extended_stats": extra}))
        return response

    args = web_ui.template_args
    args["extended_tabs"] = [*args.get("extended_tabs", []), {"title": "Lab", "key": TAB_KEY}]
    args["extended_tables"] = [*args.get("extended_tables", []), {
        "key": TAB_KEY, "structure": [{"key": k, "title": t} for k, t in TABLE]}]
    args["extended_csv_files"] = [*args.get("extended_csv_files", []), {
        "href": "/lab", "title": "iolab: live server view (/lab)"}]
    return lab


@events.init.add_listener
def _on_init(environment: Any, **_kwargs: Any) -> None:
    """Install on the process that serves the web UI (not on workers, not headless)."""
    web_ui = getattr(environment, "web_ui", None)
    if web_ui is not None:
        install(web_ui)

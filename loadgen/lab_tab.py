"""A "Lab" tab in Locust's web UI: what each server says about itself, live,
and which of them the load goes to.

Locust's charts show the client's view (requests, latency). The servers' own
view — connections held, peak, the limits they hit, RSS, CPU — is in the JSONL
event files the lab writes per server (``logs/<server>.events.jsonl``, listed
in ``IOLAB_SERVER_EVENTS``, ``os.pathsep``-separated). Next to each, ``run-lab
--ui`` writes ``logs/<server>.target.json`` (``lab/run/ui.py``): the address the
load generators reach that server at. Importing this module in a locustfile
adds, on the process that runs the web UI (every path below is under Locust's
``--web-base-path``, and the pages use relative URLs only):

- ``lab``: a small self-contained page running ``lab/tab.js``;
- ``lab/tab.js`` (``loadgen/lab_tab.js``): the panel — every server with its
  address, live stats, a chart of connections over time, and a "Send load
  here" button per server. The same script is added to Locust's own index page
  and shows the panel under the "Lab" tab;
- ``lab/stats``: JSON, one entry per server (the latest ``stats`` event, every
  ``limit`` event, the ``final`` event once the server stopped, its address,
  a short connections history), plus the current load target;
- ``lab/target`` (POST ``server=NAME`` or ``target=tcp://H:P``): the target
  of the next test. It must be one of the listed servers. Applied to
  ``environment.host`` and ``parsed_options.host`` at once when no test runs,
  else when the running one stops; the master sends the host to the workers
  in every spawn message, as it does for the start form's host field. A start
  form that still shows the host from before the switch is corrected on
  submit (see :class:`LabTarget`);
- a "Lab" tab in Locust 2.x's React UI: ``template_args["extended_tabs"]``
  declares it, and the panel's script draws the servers' table in it, once.
  No ``extended_tables`` entry: the React UI would draw its own second table
  of the same servers from it (Locust's ``extend_web_ui`` mechanism), so
  nothing rides along in ``/stats/requests``; plus a link to ``lab`` on the
  "Download Data" tab.

Files are tailed, not re-read: each poll reads only the bytes appended since
the last one, and a file that is not there yet is reported as "waiting".
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from pathlib import Path
from typing import Any

from locust import events
from locust.runners import STATE_RUNNING, STATE_SPAWNING

from contract.env import SERVER_EVENTS, TARGET_FILE_SUFFIX

SUFFIX = ".events.jsonl"
TAB_KEY = "iolab"
MAX_LIMIT_EVENTS = 20  # kept per server (servers emit one per kind anyway)
HISTORY_POINTS = 300  # (time, connections) per server: 2.5 min of 0.5 s stats
SCRIPT = Path(__file__).with_name("lab_tab.js")
TABLE = (  # (key in a table row, column title)
    ("server", "Server"), ("model", "Model"), ("address", "Address"), ("status", "Status"),
    ("connections", "Connections"), ("peak_connections", "Peak"), ("limits", "Limits hit"),
    ("rss_mib", "RSS MiB"), ("cpu_s", "CPU s"), ("age_s", "Last stats (s ago)"),
    ("load_target", "Load target"),
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
        self.history: deque[tuple[float, int]] = deque(maxlen=HISTORY_POINTS)
        self.address: dict[str, Any] | None = None

    def _read_address(self) -> None:
        """``<server>.target.json`` (written once, before the master starts): ``{"server",
        "model", "host", "port", "target"}``."""
        if self.address is not None:
            return
        try:
            data = json.loads(self.path.with_name(self.name + TARGET_FILE_SUFFIX).read_text())
        except (OSError, ValueError):
            return
        if isinstance(data, dict) and data.get("target"):
            self.address = data

    def poll(self) -> None:
        """Read and apply the complete lines appended since the last poll."""
        self._read_address()
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
            if isinstance(event.get("connections"), int):
                t = event.get("time")
                t = float(t) if isinstance(t, int | float) else self.stats_seen
                self.history.append((round(t, 2), event["connections"]))
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
            "model": latest.get("model") or (self.address or {}).get("model"),
            "connections": latest.get("connections"),
            "peak_connections": latest.get("peak_connections"),
            "rss_bytes": latest.get("rss_bytes"),
            "cpu_s": sum(cpu) if all(isinstance(c, int | float) for c in cpu) else None,
            "limits": list(dict.fromkeys(e.get("kind") for e in self.limits if e.get("kind"))),
            "limit_events": self.limits, "stats": self.stats, "final": self.final,
            "age_s": None if self.stats_seen is None else round(time.time() - self.stats_seen, 1),
            "address": (f"{self.address['host']}:{self.address['port']}"
                        if self.address and "host" in self.address else None),
            "target": self.address["target"] if self.address else None,
            "history": [list(p) for p in self.history],
        }


class LabStats:
    """The tails for every file in ``IOLAB_SERVER_EVENTS`` (read when first needed)."""

    def __init__(self, paths: list[Path] | None = None):
        self._paths = paths
        self._tails: dict[Path, EventTail] = {}

    def paths(self) -> list[Path]:
        if self._paths is not None:
            return self._paths
        raw = os.environ.get(SERVER_EVENTS, "")
        return [Path(p) for p in raw.split(os.pathsep) if p.strip()]

    def snapshot(self) -> dict[str, Any]:
        servers = []
        for path in self.paths():
            tail = self._tails.setdefault(path, EventTail(path))
            tail.poll()
            servers.append(tail.snapshot())
        return {"servers": servers, "time": time.time(), "source": SERVER_EVENTS}


def table_rows(snapshot: dict[str, Any]) -> list[dict[str, Any]]:
    """The Lab table as flat values (keys of ``TABLE``), served as ``rows`` in
    ``/lab/stats`` for scripts; the panel draws from ``servers``."""
    rows = []
    target = snapshot.get("pending") or snapshot.get("target")
    for s in snapshot["servers"]:
        rss = s.get("rss_bytes")
        rows.append({
            **{k: s.get(k) for k, _ in TABLE},
            "limits": ", ".join(s["limits"]) or "–",
            "rss_mib": None if rss is None else round(rss / 2**20, 1),
            "cpu_s": None if s.get("cpu_s") is None else round(s["cpu_s"], 2),
            "load_target": "◀ target" if target and s.get("target") == target else "",
        })
    return rows


PAGE = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>iolab: servers</title>
</head><body style="font-family:system-ui,sans-serif;margin:2em">
<h1>iolab: what the servers report</h1>
<p>Live from the servers' event files (refreshes every second). <a href="./">Back to Locust</a>
</p><div id="iolab-root"></div>
<script src="lab/tab.js"></script>
</body></html>
"""


def render_page() -> str:
    return PAGE


def _busy(runner: Any) -> bool:
    return getattr(runner, "state", None) in (STATE_SPAWNING, STATE_RUNNING)


class LabTarget:
    """Which server the next test loads, picked in the Lab tab.

    ``environment.host`` is what Locust uses: the master copies it onto the
    user classes when it starts a test and sends it to every worker in each
    spawn message (as it does with the start form's ``host`` field), so a
    switch takes effect at the next start, never inside a running test (a
    pick made then is ``pending`` until the test stops).

    The React start form keeps the host it was given (page load, or the last
    submitted value) and sends it again with every start. ``shown`` is that
    value: a submitted host equal to it is the stale one, and the Lab's pick
    replaces it; a host the user typed (anything else) wins and clears the
    pick. The panel's script also writes the pick into the form's host field.
    """

    def __init__(self, environment: Any):
        self.environment = environment
        self.pick: str | None = None  # the Lab's choice, until a typed host replaces it
        self.pending: str | None = None  # picked while a test runs
        self.shown: str | None = environment.host

    def set(self, host: str) -> bool:
        """Pick ``host``; True if it applies at once (no test running)."""
        self.pick = host
        if _busy(self.environment.runner):
            self.pending = host
            return False
        self.apply(host)
        return True

    def apply(self, host: str) -> None:
        env = self.environment
        env.host = host
        if env.parsed_options is not None:
            env.parsed_options.host = host
        for user_class in env.user_classes or ():
            user_class.host = host
        self.pending = None

    def apply_pending(self) -> None:
        if self.pending is not None:
            self.apply(self.pending)

    def on_swarm_form(self, form_host: str | None) -> str | None:
        """The host a start should use, given the form's; None = keep the form's."""
        if not _busy(self.environment.runner):
            self.apply_pending()
        if form_host is None:
            return None
        replace = None
        if form_host == self.shown and self.pick and self.pick != form_host:
            replace = self.pick
        elif form_host != self.shown:
            self.pick = None  # typed by the user: it wins
        self.shown = form_host
        return replace


def install(web_ui: Any, lab: LabStats | None = None) -> LabStats:
    """Add the routes, the tab, the target switch and the ``/stats/requests``
    extension to ``web_ui`` (under ``--web-base-path``)."""
    from flask import Response, jsonify, request
    from werkzeug.datastructures import ImmutableMultiDict

    lab = lab or LabStats()
    env = web_ui.environment
    target = LabTarget(env)
    web_ui.iolab_target = target
    opts = getattr(env, "parsed_options", None)
    base = (getattr(opts, "web_base_path", "") or "").rstrip("/")
    guard = getattr(web_ui, "auth_required_if_enabled", lambda view: view)

    def full_snapshot() -> dict[str, Any]:
        snap = lab.snapshot()
        steps = getattr(env.parsed_options, "steps", "") if env.parsed_options else ""
        return {**snap, "target": env.host, "pending": target.pending,
                "running_target": env.host if _busy(env.runner) else None,
                "state": getattr(env.runner, "state", None),
                "steps": _plan(steps), "steps_text": steps or ""}

    def lab_page() -> Response:
        return Response(render_page(), mimetype="text/html")

    def lab_script() -> Response:
        return Response(SCRIPT.read_text(), mimetype="application/javascript",
                        headers={"Cache-Control": "no-store"})

    def lab_stats() -> Response:  # compact: Locust's Flask app runs in debug (pretty) mode
        snap = full_snapshot()
        return Response(json.dumps({**snap, "rows": table_rows(snap)}),
                        mimetype="application/json", headers={"Cache-Control": "no-store"})

    def lab_target() -> Response | tuple[Response, int]:
        data = request.get_json(silent=True) if request.is_json else request.form
        data = data if hasattr(data, "get") else {}
        wanted_server, wanted = data.get("server"), data.get("target")
        servers = [s for s in lab.snapshot()["servers"] if s.get("target")]
        match = next((s for s in servers if (wanted_server and s["server"] == wanted_server)
                      or (wanted and s["target"] == wanted)), None)
        if match is None:
            known = ", ".join(f"{s['server']} ({s['target']})" for s in servers) or "none"
            return jsonify({"success": False, "message": f"not a server of this run: "
                            f"{wanted_server or wanted!r}; known: {known}"}), 400
        now = target.set(match["target"])
        message = (f"the next test loads {match['server']} ({match['address']})" if now else
                   f"{match['server']} ({match['address']}) is loaded from the next test on; "
                   "the running one keeps its target")
        return jsonify({"success": True, "server": match["server"], "target": match["target"],
                        "applied": now, "pending": target.pending, "message": message})

    web_ui.app.add_url_rule(base + "/lab", "iolab_lab", guard(lab_page))
    web_ui.app.add_url_rule(base + "/lab/tab.js", "iolab_lab_script", guard(lab_script))
    web_ui.app.add_url_rule(base + "/lab/stats", "iolab_lab_stats", guard(lab_stats))
    web_ui.app.add_url_rule(base + "/lab/target", "iolab_lab_target", guard(lab_target),
                            methods=["POST"])

    @web_ui.app.before_request
    def lab_swarm_host() -> None:
        if request.method != "POST" or request.path != base + "/swarm":
            return
        host = target.on_swarm_form(request.form.get("host"))
        if host is not None:
            form = request.form.to_dict(flat=False)
            form["host"] = [host]
            request.form = ImmutableMultiDict(form)

    @web_ui.app.after_request
    def add_lab_script(response: Response) -> Response:
        if request.path in (base + "/", base or "/") and response.mimetype == "text/html":
            target.shown = env.host  # what the start form now shows
            html = response.get_data(as_text=True)
            tag = f'<script>window.iolabTabKey = "{TAB_KEY}";</script>' \
                  '<script src="lab/tab.js"></script>'
            if "lab/tab.js" not in html and "</body>" in html:
                response.set_data(html.replace("</body>", tag + "</body>", 1))
        return response

    env.events.test_stop.add_listener(lambda **_: target.apply_pending())

    args = web_ui.template_args
    args["extended_tabs"] = [*args.get("extended_tabs", []), {"title": "Lab", "key": TAB_KEY}]
    args["extended_csv_files"] = [*args.get("extended_csv_files", []), {
        "href": "lab", "title": "iolab: live server view (lab)"}]
    return lab


def _plan(steps: str) -> list[dict[str, Any]] | None:
    """``--steps`` as ``[{"users", "hold_s"}]`` for the panel (None without steps)."""
    if not steps:
        return None
    from loadgen.options import parse_steps

    try:
        return [{"users": s.users, "hold_s": s.hold_s} for s in parse_steps(steps)]
    except ValueError:
        return None


@events.init.add_listener
def _on_init(environment: Any, **_kwargs: Any) -> None:
    """Install on the process that serves the web UI (not on workers, not headless)."""
    web_ui = getattr(environment, "web_ui", None)
    if web_ui is not None:
        install(web_ui)

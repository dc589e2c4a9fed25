"""Reading a server's stdout, per the servers contract: one ``READY`` line,
then JSON event lines (stats, limit, final). Both backends read the same
output, one from a pipe, one from the Docker log stream; this is the one
place that knows its shape.
"""

from __future__ import annotations

import json
from typing import Any

READY_PREFIX = "READY "


def parse_ready(line: str) -> dict[str, Any] | None:
    """``READY host:port model=M pid=N nofile=N`` -> {"host", "port", "model", "pid", "nofile"}."""
    if not line.startswith(READY_PREFIX):
        return None
    first, *pairs = line[len(READY_PREFIX):].split()
    host, _, port = first.rpartition(":")
    ready: dict[str, Any] = {"host": host, "port": int(port)}
    for pair in pairs:
        key, _, value = pair.partition("=")
        ready[key] = int(value) if value.isdigit() else value
    return ready


def parse_event(line: str) -> dict[str, Any] | None:
    """A JSON event line as a dict; None for anything else (log text, a torn line)."""
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None

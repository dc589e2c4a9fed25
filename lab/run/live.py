"""The live view of a run on stderr: model, step, connections, rate, p99, errors.

On a terminal one status line is redrawn in place (``\\r`` + erase) and every
finished step leaves a permanent line; the status line is cut to the
terminal's width (``shutil.get_terminal_size``), because a line that wraps
cannot be erased by ``\\r`` and the redraw would leave stale rows. Anywhere
else (CI logs, pipes) only plain lines are written: one per finished step,
plus a progress line at most every ``plain_every_s`` seconds. The progress
shows the time left for the model and for the run (ramp and hold of the
remaining steps, from the scenario; slack not counted).
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from lab.results.columns import step_of

ERASE = "\r\x1b[K"


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.0f}"


def clock_time(seconds: float | None) -> str:
    """``75`` -> ``1:15``; ``3725`` -> ``1:02:05``."""
    if seconds is None:
        return "-"
    s = max(int(round(seconds)), 0)
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class LiveView:
    """Progress for humans; the results files are the record, not this."""

    def __init__(self, stream: TextIO | None = None, tty: bool | None = None,
                 clock: Callable[[], float] = time.monotonic, plain_every_s: float = 10.0):
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.clock = clock
        self.plain_every_s = plain_every_s
        self._last_plain = float("-inf")
        self._status = False
        self._last_status = ""

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed pipe must not end the run
            pass

    def line(self, text: str) -> None:
        """A permanent line (clears the status line first on a terminal)."""
        self._write((ERASE if self._status else "") + text + "\n")
        self._status = False

    def model_start(self, name: str, index: int, total: int, detail: str = "") -> None:
        self.line(f"[{index}/{total}] {name}: starting{' ' + detail if detail else ''}")

    def progress(self, name: str, step: int, steps: int, target: int,
                 connections: int | None, rate: float | None, p99_ms: float | None,
                 error_rate: float | None, eta_model_s: float | None = None,
                 eta_run_s: float | None = None) -> None:
        text = (f"  {name} {step_of(step, steps)} -> {target} conns: open "
                f"{_num(connections)}, {_num(rate)} msg/s, last p99 {_ms(p99_ms)}, "
                f"errors {'-' if error_rate is None else f'{error_rate:.2%}'}")
        if eta_model_s is not None or eta_run_s is not None:
            text += f", left {clock_time(eta_model_s)} (run {clock_time(eta_run_s)})"
        if self.tty:
            width = shutil.get_terminal_size((80, 24)).columns
            if len(text) >= width:  # a wrapped line cannot be redrawn in place
                text = text[: max(width - 2, 1)] + "…"
            if not (self._status and text == self._last_status):
                self._write(ERASE + text)
            self._status, self._last_status = True, text
        elif self.clock() - self._last_plain >= self.plain_every_s:
            self._last_plain = self.clock()
            self.line(text)

    def step_done(self, row: dict[str, Any], connect: str | None = None,
                  churn: bool = False) -> None:
        """The step's result line; ``connect`` is its connect-phase finding
        (lab/analysis/connect.py), on a line of its own. A churn step
        (``churn``) says its accept rate: its users close by design, so the
        few connected at the instant the step ended say nothing of it."""
        limit = f"  limit {row['limit']}" if row.get("limit") else ""
        server = _num(row.get("server_connections"))
        if churn:
            held = (f"{_num(row.get('connects_per_s'))} connects/s by "
                    f"{row['target_connections']} users, {_num(row.get('connected'))} in "
                    f"flight at the end, {_num(row.get('dropped'))} arrivals dropped")
        else:
            held = f"{row['connected']}/{row['target_connections']} connected, server {server}"
        self.line(f"  {row['model']} step {row['step']}: {held}"
                  f", {_num(row.get('rps'))} rps, p99 {_ms(row.get('p99_ms'))}, errors "
                  f"{row['error_rate']:.2%}{limit}")
        if connect:
            self.line(f"    connect phase: {connect}")

    def model_done(self, name: str, limit: str | None, stopped_at: int | None,
                   error: str | None = None) -> None:
        if error:
            self.line(f"  {name}: FAILED: {error}")
        elif stopped_at is not None:
            self.line(f"  {name}: stopped at step {stopped_at} ({limit or 'no limit named'})")
        else:
            self.line(f"  {name}: all steps done{f' (limit seen: {limit})' if limit else ''}")

    def close(self) -> None:
        if self._status:
            self._write("\n")
            self._status = False

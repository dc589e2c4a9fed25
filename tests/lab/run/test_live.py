"""The terminal view: an ETA, never wider than the terminal, plain lines off a TTY."""

from __future__ import annotations

import io
import os

from lab.run.live import LiveView, clock_time
from lab.run.poller import planned_s
from lab.scenario.loader import parse_scenario


def terminal(columns: int) -> os.terminal_size:
    return os.terminal_size((columns, 24))


def test_clock_time():
    assert [clock_time(s) for s in (0, 75, 3725, None)] == ["0:00", "1:15", "1:02:05", "-"]


def test_planned_time_is_ramp_plus_hold():
    sc = parse_scenario("servers: [epoll]\nload: {connect_rate: 100, hold: 10s, "
                        "steps: [100, 300]}\n", "p.yaml")
    assert planned_s(sc) == 1 + 10 + 2 + 10


def test_status_line_fits_an_80_column_terminal(monkeypatch):
    monkeypatch.setattr("shutil.get_terminal_size", lambda fallback=None: terminal(80))
    out = io.StringIO()
    view = LiveView(out, tty=True)
    view.progress("a-long-server-name", 2, 9, 190000, 123456, 98765.4, 1234.5, 0.123,
                  eta_model_s=75, eta_run_s=3725)
    status = out.getvalue().split("\x1b[K")[-1]
    assert len(status) <= 79 and status.endswith("…")
    wide = io.StringIO()
    monkeypatch.setattr("shutil.get_terminal_size", lambda fallback=None: terminal(200))
    LiveView(wide, tty=True).progress("epoll", 0, 3, 500, 480, 480.0, 1.2, 0.0, 75, 3725)
    assert "left 1:15 (run 1:02:05)" in wide.getvalue()


def test_off_a_terminal_only_plain_lines():
    out = io.StringIO()
    view = LiveView(out, tty=False, clock=lambda: 100.0)
    view.progress("epoll", 0, 3, 500, 480, 480.0, 1.2, 0.0, 75, 300)
    view.progress("epoll", 0, 3, 500, 490, 480.0, 1.2, 0.0, 74, 299)  # within plain_every_s
    assert "\x1b" not in out.getvalue() and "\r" not in out.getvalue()
    assert out.getvalue().count("\n") == 1

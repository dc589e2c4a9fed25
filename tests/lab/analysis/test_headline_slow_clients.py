"""The headline on runs with waiting handlers and Nagle's tail
(lab/analysis/headline.py): the server-side cause in the "missed the SLO"
sentence, and the delayed-ACK mode said even within the SLO."""

from __future__ import annotations

from groupkit import written_run

from lab.analysis.headline import headline

BLOCKED = """
name: waiting-handler
servers:
  - {model: epoll, block_us: 3000}
  - threads
load: {steps: [40], pace: 100ms}
slo: {p99_ms: 50}
"""
NAGLE = """
name: big-echoes
servers:
  - {model: threads, nodelay: false}
  - epoll
load: {steps: [10, 20], message_size: 262144, pace: 100ms}
"""


def _line(p50: float, p99: float) -> dict:
    return {"line": {"p50_ms": p50, "p90_ms": p99 / 2, "p99_ms": p99, "max_ms": p99 * 1.2}}


def test_an_event_loop_blocked_by_waiting_handlers_is_the_why_of_the_missed_slo(tmp_path):
    run = written_run(tmp_path, BLOCKED, {
        "epoll": [({}, {**_line(600.0, 1190.0), "blocked_per_s": 0.99})],
        "threads": [({}, _line(3.1, 4.0))]})
    epoll, threads = headline(run)
    assert epoll.startswith("epoll missed the SLO at step 0 (40 connections) (p99 1190 ms > "
                            "50 ms — cause: event loop blocked: its one thread slept 0.99 s of "
                            "every second in handler waits (block_us 3,000 µs per message), "
                            "serving no one meanwhile)")
    assert threads.startswith("threads met the SLO at every step up to 40 connections")


def test_the_delayed_ack_mode_is_said_even_within_the_slo(tmp_path):
    run = written_run(tmp_path, NAGLE, {
        "threads": [({}, _line(0.2, 42.0)), ({}, _line(0.2, 43.0))],
        "epoll": [({}, _line(0.2, 1.1)), ({}, _line(0.2, 1.3))]}, groups=False)
    lines = headline(run)
    assert lines[0].startswith("threads met the SLO at every step")  # 42 ms < 100 ms
    assert lines[2] == (
        "threads at step 0 (10 connections): Nagle meeting delayed ACK: nodelay off (p99 42.0 "
        "ms over p50 0.2 ms, a latency mode near Linux's 40 ms delayed-ACK interval); a TCP "
        "effect, not the I/O model's.")
    assert len(lines) == 3  # epoll has no such mode


def test_the_mode_is_not_said_twice_when_it_is_the_missed_slos_cause(tmp_path):
    strict = NAGLE.replace("pace: 100ms}", "pace: 100ms}\nslo: {p99_ms: 25}")
    run = written_run(tmp_path, strict, {
        "threads": [({}, _line(0.2, 42.0)), ({}, _line(0.2, 43.0))],
        "epoll": [({}, _line(0.2, 1.1)), ({}, _line(0.2, 1.3))]}, groups=False)
    lines = headline(run)
    assert "cause: Nagle meeting delayed ACK: nodelay off" in lines[0]
    assert len(lines) == 2

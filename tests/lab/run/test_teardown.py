"""The teardown shield: signals are noted, a storm counts once, a person can abandon."""

from __future__ import annotations

import os
import signal
import time

import pytest

from lab.teardown import STORM_S, Teardown, attempt


def test_a_signal_storm_does_not_interrupt_teardown():
    said: list[str] = []
    with Teardown(said.append) as shield:
        for _ in range(5):  # five SIGINTs 0.1 s apart, like a held Ctrl-C
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGTERM)
    assert shield.signals == []  # all within STORM_S of the teardown's start
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_deliberate_presses_abandon_after_three_more(monkeypatch):
    monkeypatch.setattr("lab.teardown.STORM_S", 0.05)
    said: list[str] = []
    with pytest.raises(KeyboardInterrupt), Teardown(said.append) as shield:
        for _ in range(4):
            time.sleep(0.1)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
    assert len(shield.signals) == 4
    assert "press Ctrl-C 3 more times to abandon" in said[0]
    assert "1 more time to abandon" in said[2] and "abandoned" in said[3]
    assert STORM_S == 1.0  # the real debounce (monkeypatched above only)


def test_attempt_records_and_goes_on():
    problems: list[str] = []
    ran = []
    attempt("first", lambda: 1 / 0, problems)
    attempt("second", lambda: ran.append(True), problems)
    assert ran == [True] and problems == ["first: ZeroDivisionError: division by zero"]

"""Shared checks for the scenario tests."""

from __future__ import annotations

import pytest

from lab.errors import InputError
from lab.scenario.loader import parse_scenario


def assert_load_line_refused(line: str, message: str) -> None:
    """A scenario whose ``load:`` has ``line`` (at line 4 of b.yaml) is refused
    with exit 2, the file and line, and ``message``."""
    with pytest.raises(InputError) as info:
        parse_scenario(f"servers: [epoll]\nload:\n  steps: [10]\n  {line}\n", "b.yaml")
    assert info.value.exit_code == 2
    assert message in str(info.value), str(info.value)
    assert str(info.value).startswith("b.yaml:4:")

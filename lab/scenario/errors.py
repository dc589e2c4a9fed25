"""The problems found in one scenario file, and the one error that reports them all.

Validation does not stop at the first bad field: each field that fails
records a :class:`Problem` and parsing goes on with that field's default, so
one ``run-lab validate`` shows everything to fix. :func:`lab.scenario.loader.parse_scenario`
then raises one :class:`ScenarioError` (an :class:`~lab.errors.InputError`,
exit code 2) whose message is every problem, one per line, in file order::

    lab.yaml:7:12: servers[2].model: 'epol' is not a model; did you mean 'epoll'?
    lab.yaml:9:5: servers[3].workers: only applies to threadpool (the pool size); ...
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from lab.errors import InputError


@dataclass(frozen=True, order=True)
class Problem:
    """One message, with the 1-based line and column of the node it is about."""

    line: int
    column: int
    text: str  # the whole line: "file:line:column: path: message"


class Invalid(Exception):
    """A field could not be parsed. Raised by the parsers, caught by the section
    that reads the field (which records it and uses the default).

    ``problem`` is None when the field's errors were already recorded one by
    one (a list with several bad items): the field only counts as failed.
    """

    def __init__(self, problem: Problem | None):
        super().__init__(problem.text if problem else "already reported")
        self.problem = problem


class ScenarioError(InputError):
    """Every problem in one scenario file; ``errors`` has them one per item."""

    def __init__(self, errors: Iterable[str]):
        self.errors: list[str] = list(errors)
        super().__init__("\n".join(self.errors))


def in_file_order(problems: Iterable[Problem]) -> list[str]:
    """The messages sorted by position (stable: at one position, the one found
    first comes first), each message once."""
    seen: set[str] = set()
    out = []
    for problem in sorted(problems, key=lambda p: (p.line, p.column)):
        if problem.text not in seen:
            seen.add(problem.text)
            out.append(problem.text)
    return out

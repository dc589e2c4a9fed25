"""Every test can import the shared helpers in tests/ (serverproc, faultkit,
needs). Here too: the ``quick`` selection, the one-line plan printed before the
tests run, and the session's browser (``tests/needs.py`` says why each)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

import needs  # noqa: E402  (found through the path just added)

_deselected: list[pytest.Item] = []


def pytest_configure(config: pytest.Config) -> None:
    """Undo an ignored SIGINT inherited from how the tests were started.

    A shell without job control starts ``cmd &`` with SIGINT ignored, and an
    ignored disposition survives exec: every lab the tests start would then
    ignore the SIGINT a test sends, as no lab in a user's terminal does (seen:
    three Ctrl-C tests timing out in a backgrounded run, passing in tmux).
    Python's own handler is reset to the default at exec, so the children
    start as a foreground process does."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``quick`` every test that needs none of docker, browser, multihost,
    slow, load (``needs.NEEDS``), ``parallel`` every test that may share
    the machine with another (``needs.parallel_safe``) and ``alongside`` the
    ones that may share it from a process of their own
    (``needs.alongside_safe``): before ``-m`` selects, so ``-m quick`` and
    ``-m "quick and parallel"`` work."""
    for item in items:
        if not any(item.get_closest_marker(need) for need in needs.NEEDS):
            item.add_marker(pytest.mark.quick)
        if needs.parallel_safe(item):
            item.add_marker(pytest.mark.parallel)
        elif needs.alongside_safe(item):
            item.add_marker(pytest.mark.alongside)


def pytest_deselected(items: list[pytest.Item]) -> None:
    _deselected.extend(items)


def pytest_collection_finish(session: pytest.Session) -> None:
    config = session.config
    if not session.items or hasattr(config, "workerinput"):
        return  # a pytest-xdist worker: its output is not shown (no plan under -n)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        line = needs.plan(session.items, _deselected, config.option.markexpr)
        reporter.ensure_newline()
        reporter.write_line(line, bold=True)


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium shared by every browser test (marker ``browser``)."""
    yield from needs.browser_session()


@pytest.fixture
def page(browser):
    """A fresh context (no cookies, storage or cache from other tests) and its page."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    try:
        yield context.new_page()
    finally:
        context.close()

"""What the tests need from this machine, and the one-line plan ``scripts/test`` prints.

The markers say what a test needs: ``docker`` (a daemon answering), ``browser``
(Debian's ``chromium`` driven by Playwright), ``multihost`` (root, dockerd,
iptables: ``tests/lab/backends/docker/multihost``), ``slow`` (more than ~10 s), ``load``
(runs Locust or a whole lab: the machine to itself). ``quick`` is not written
on any test: ``tests/conftest.py`` puts it on every test that has none of those
five, so ``-m quick`` is the loop that does not load the machine.

A missing need skips its tests with the reason, except under ``CI=true``, where
CI installed everything first, so a missing piece is a failure. The checks here
are the ones the fixtures use, so the plan and the skips cannot disagree.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parent
NEEDS = ("docker", "browser", "multihost", "slow", "load")  # what `quick` leaves out
# The DevTools-protocol flags of a test browser: headless, no sandbox (root in
# CI), and none of Chromium's own background traffic (updates, sync, QUIC probes).
CHROMIUM_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync")


# What keeps a test from sharing the machine with another (scripts/test runs
# the rest with pytest-xdist's -n 3): Docker (one daemon, the images, the
# leftover checks), the browser, the multi-host harness, ``load``: the tests
# that run Locust or a whole lab, bound the generator's CPU and lag, or count
# every lab process on the machine, and ``locust``: the tests that only import
# Locust, which monkey-patches the stdlib for gevent (threads, sockets, sleep)
# in the process that imports it, an xdist worker's included. The others start
# at most one server on port 0 and measure nothing another test's CPU would
# move past its bound. ``quick`` keeps the ``locust`` tests (they load
# nothing) and leaves out the ``load`` ones.
SOLO = ("docker", "browser", "multihost", "load", "locust")


def parallel_safe(item: pytest.Item) -> bool:
    """A test marked none of ``SOLO``."""
    return not any(item.get_closest_marker(need) for need in SOLO)


def alongside_safe(item: pytest.Item) -> bool:
    """A ``locust`` test marked none of the other ``SOLO`` needs: it loads
    nothing (measured: 122 tests, 18 s of wall time, 6 s of CPU: they wait on
    sockets and timers), but gevent patches the process that imports it, so
    ``scripts/test`` runs them in one process of their own alongside the
    xdist phase."""
    return bool(item.get_closest_marker("locust")) and not any(
        item.get_closest_marker(need) for need in SOLO if need != "locust")


def ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing(why: str) -> None:
    """Skip with ``why``; under CI, fail: CI must have installed what is missing."""
    if ci():
        pytest.fail(f"CI is set but {why}")
    pytest.skip(why)


def chromium() -> tuple[str | None, str]:
    """(path, "Chromium 156.0…") or (None, why and what to do)."""
    path = shutil.which("chromium")
    if path is None:
        return None, ("no chromium on PATH (Debian: apt-get install chromium, "
                      "or scripts/ensure-chromium)")
    if importlib.util.find_spec("playwright") is None:
        return None, "Playwright is not installed (pip install -e '.[test]')"
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{path} --version failed: {exc}"
    version = out.stdout.strip().split(" built on")[0]
    return (path, version) if out.returncode == 0 else (None, f"{path} --version failed")


def docker() -> tuple[bool, str]:
    """(True, "Docker 20.10.24 (linux/x86_64)") or (False, why): the daemon probe
    the Docker tests skip on."""
    from lab.backends.docker.hosts import docker_available

    return docker_available()


def multihost() -> tuple[bool, str]:
    """The multi-host harness's own check (its ``mhharness.py``)."""
    spec = importlib.util.spec_from_file_location(
        "mhharness", TESTS / "lab/backends/docker/multihost/mhharness.py")
    assert spec is not None and spec.loader is not None
    harness = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(harness)
    why = harness.missing()
    return (True, "root, dockerd, iptables") if why is None else (False, why)


CHECKS = {"docker": docker, "browser": lambda: _found(chromium()), "multihost": multihost}


def _found(got: tuple[str | None, str]) -> tuple[bool, str]:
    return got[0] is not None, got[1]


def browser_session() -> Iterator[Any]:
    """One headless Chromium for the whole session (Playwright, no download:
    Debian's binary by path)."""
    path, why = chromium()
    if path is None:
        missing(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()


def _part(item: pytest.Item) -> str:
    rel = item.path.relative_to(TESTS) if item.path.is_relative_to(TESTS) else item.path
    if len(rel.parts) > 2 and rel.parts[0] == "lab":
        return "/".join(rel.parts[:2])  # lab/run, lab/report, ...: the subsystem
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _needs(items: list[pytest.Item]) -> Counter[str]:
    return Counter(need for item in items for need in NEEDS
                   if item.get_closest_marker(need) is not None)


def plan(selected: list[pytest.Item], deselected: list[pytest.Item], markexpr: str) -> str:
    """One line: the parts that run, each need with its check, what is skipped and why."""
    parts = list(dict.fromkeys(sorted(_part(i) for i in selected)))
    has = _needs(selected)
    words = [f"iolab tests: {len(selected)} in {', '.join(parts) or 'nothing'}"
             + (f" (-m {markexpr!r})" if markexpr else "")]
    skipping = []
    for need, check in CHECKS.items():
        if not has[need]:
            words.append(f"{need}: not selected")
            continue
        ok, what = check()
        if ok:
            words.append(f"{need}: yes ({what})")
        else:
            words.append(f"{need}: NO")
            fate = " (they fail: CI is set)" if ci() else ""
            skipping.append(f"{has[need]} {need} tests{fate}: {what}")
    words.append(f"slow: {has['slow']}")
    if deselected:
        left = _needs(deselected)
        why = ", ".join(f"{need} {left[need]}" for need in NEEDS if left[need])
        skipping.append(f"{len(deselected)} deselected by -m/-k" + (f" ({why})" if why else ""))
    words.append("skipping: " + ("; ".join(skipping) or "none"))
    return "; ".join(words)

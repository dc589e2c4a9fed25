"""Build the lab's Docker image ahead of the tests that need it.

``scripts/test`` runs this in the background during its first phase (the
tests that use no Docker and may share the machine), so the serial phase's
first Docker test finds the image instead of building it: on a fresh machine
that is the debootstrap base and the app image, the better part of a minute.
It builds exactly what the ``lab_image`` fixture and ``run-lab`` would
(``ensure_image``: tagged by the sources, so a later call is a cache hit).
No daemon: nothing to do (the Docker tests skip or fail with the reason
themselves). Exit 1 on a failed build, with the error; the tests then
build again and report it where it belongs.

A build that made the app image from no layer cache at all (a fresh
machine) is written to ``$IOLAB_PREBUILD_RECORD`` (set by ``scripts/test``;
:func:`cold_build`), so ``test_cold_build_of_the_app_image`` checks that
build's output instead of repeating the same 15 s build.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from paths import ROOT

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


RECORD_ENV = "IOLAB_PREBUILD_RECORD"  # where a cold build's output is kept (scripts/test)
CACHED = "Using cache"  # the classic builder's line for a step taken from the cache


def cold_build(tag: str) -> list[str] | None:
    """The output of this session's prebuild if it built ``tag`` from no layer
    cache at all; None if it did not (a cache hit, a warm cache, no record)."""
    path = os.environ.get(RECORD_ENV)
    try:
        record = json.loads(Path(path).read_text()) if path else None
    except (OSError, ValueError):
        return None
    if not record or record.get("tag") != tag:
        return None
    from lab.backends.docker.images import BUILDING

    lines = record.get("messages") or []
    built = any(line.startswith(BUILDING + tag) for line in lines)
    return lines if built and not any(CACHED in line for line in lines) else None


def main() -> int:
    from lab.backends.docker.hosts import docker_available

    ok, why = docker_available()
    if not ok:
        print(f"prebuild: no image built: {why}")
        return 0
    import docker
    from lab.backends.docker.images import BUILDING, ensure_image
    from lab.errors import BackendError

    t0 = time.monotonic()
    messages: list[str] = []

    def progress(line: str) -> None:
        messages.append(line)
        print(f"prebuild: {line}", flush=True)

    try:
        tag = ensure_image({"local": docker.from_env(timeout=300)}, progress=progress)
    except (BackendError, docker.errors.DockerException) as exc:
        print(f"prebuild: failed: {exc}")
        return 1
    record = os.environ.get(RECORD_ENV)
    if record and any(line.startswith(BUILDING) for line in messages):
        Path(record).write_text(json.dumps({"tag": tag, "messages": messages}))
    print(f"prebuild: {tag} ready in {time.monotonic() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

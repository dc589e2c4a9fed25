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
"""

from __future__ import annotations

import sys
import time

from paths import ROOT

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main() -> int:
    from lab.backends.docker.hosts import docker_available

    ok, why = docker_available()
    if not ok:
        print(f"prebuild: no image built: {why}")
        return 0
    import docker
    from lab.backends.docker.images import ensure_image
    from lab.errors import BackendError

    t0 = time.monotonic()
    try:
        tag = ensure_image({"local": docker.from_env(timeout=300)},
                           progress=lambda line: print(f"prebuild: {line}", flush=True))
    except (BackendError, docker.errors.DockerException) as exc:
        print(f"prebuild: failed: {exc}")
        return 1
    print(f"prebuild: {tag} ready in {time.monotonic() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

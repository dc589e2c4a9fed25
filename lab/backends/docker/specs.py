"""What goes into a server container: its command, sysctls, resources,
seccomp profile and files. Pure functions of the scenario; no Docker calls.

- **sysctls.** Only namespaced sysctls can be set per container: those of
  the network namespace (``net.*``) and the IPC namespace (``kernel.shm*``,
  ``kernel.msg*``, ``kernel.sem``, ``fs.mqueue.*``). Docker refuses any other
  at create time. A server always gets ``net.core.somaxconn`` equal to its
  backlog, because the kernel silently caps a ``listen()`` backlog to
  somaxconn.
- **seccomp.** Docker's default profile allows ``io_uring_*`` up to 24.x and
  blocks it from 25.0. The io_uring model, and only that model, runs with
  ``docker/seccomp-io_uring.json``.
- **load.network.** A shaped load's workers shape their own ``eth0``
  (``lab/host/tc.py``): the worker's command runs the tc commands first
  (``sh -c '... && exec locust ...'``, so no user connects before the
  qdisc is there), as root in the container with ``cap_add NET_ADMIN`` as
  its only capability (tc, and SO_PRIORITY above 6, need it; Docker gives a
  non-root user no effective capabilities). The qdisc lives in the worker's
  network namespace and goes when the container is removed. ``tc`` comes
  from ``iproute2`` in the offline base (``docker/base/mkbase.sh``); an
  image without it stops the worker with a message that says so.
- **files.** A custom server without its own image runs in the lab image.
  The scenario file's directory is copied into the container before it
  starts (``put_archive``), so relative paths in its command work, also on a
  remote daemon.
"""

from __future__ import annotations

import io
import shlex
import tarfile
from pathlib import Path
from typing import Any

from contract.network import is_namespaced_sysctl
from lab import ROOT
from lab.errors import BackendError
from lab.host.tc import setup_commands, shaped_classes
from lab.scenario.types import LoadSpec, ServerSpec

SERVER_PORT = 7000  # the port a built-in model listens on inside its container
SECCOMP_IO_URING = ROOT / "docker" / "seccomp-io_uring.json"
WORKDIR_PARENT = "/home/lab"  # the image user's home: writable, exists in the image
SCENARIO_DIR_MAX_BYTES = 5_000_000
LAB_UID = 10001  # docker/Dockerfile's user


def server_options(spec: ServerSpec, scenario_path: Path | None) -> dict[str, Any]:
    """Container options for a server beyond the lab's defaults: sysctls,
    seccomp, memory/cpuset, and the files of a custom server."""
    opts: dict[str, Any] = {
        "sysctls": {"net.core.somaxconn": str(spec.limits.backlog),
                    **{k: v for k, v in spec.limits.sysctls if is_namespaced_sysctl(k)}},
    }
    if spec.model == "io_uring":
        opts["security_opt"] = (f"seccomp={SECCOMP_IO_URING.read_text()}",)
    if spec.limits.memory:
        opts["mem_limit"] = spec.limits.memory
    if spec.limits.cpuset:
        opts["cpuset_cpus"] = spec.limits.cpuset
    if spec.is_custom and not spec.image and scenario_path:
        opts["files"] = scenario_dir_tar(Path(scenario_path).parent)
        opts["working_dir"] = f"{WORKDIR_PARENT}/scenario"
    return opts


def scenario_dir_tar(directory: Path) -> bytes:
    """The scenario file's directory as a tar under ``scenario/``, owned by the
    image's user (small files only)."""
    buf, total = io.BytesIO(), 0
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in sorted(directory.rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            total += path.stat().st_size
            if total > SCENARIO_DIR_MAX_BYTES:
                raise BackendError(f"{directory} holds more than {SCENARIO_DIR_MAX_BYTES} "
                                   "bytes; give the custom server an image instead")
            info = tar.gettarinfo(str(path), arcname=f"scenario/{path.relative_to(directory)}")
            info.uid = info.gid = LAB_UID
            info.uname = info.gname = ""
            with path.open("rb") as f:
                tar.addfile(info, f)
    return buf.getvalue()


WORKER_DEVICE = "eth0"  # a worker container's one interface on the run network
NO_TC = ("iolab: load.network needs tc (iproute2) in the image, and it has none; build the "
         "base with docker/base/mkbase.sh (IOLAB_BASE_IMAGE) or remove load.network")


def worker_options(load: LoadSpec, command: list[str]) -> dict[str, Any]:
    """A worker container's command and options: as given, or, for a shaped
    load, the tc commands on its ``eth0`` first, as root with NET_ADMIN."""
    classes = shaped_classes(load)
    if not classes:
        return {"command": command}
    script = " && ".join([f"{{ command -v tc >/dev/null || {{ echo {shlex.quote(NO_TC)} >&2; "
                          "exit 2; }; }",
                          *(shlex.join(c) for c in setup_commands(WORKER_DEVICE, classes)),
                          'exec "$@"'])
    return {"command": ["sh", "-c", script, "sh", *command], "user": "0",
            "cap_add": ["NET_ADMIN"]}

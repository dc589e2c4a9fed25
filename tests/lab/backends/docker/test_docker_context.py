"""The local endpoint honours the current Docker context (docker-py >= 7.2;
docker-py #3146): colima and Docker Desktop users reach their daemon."""

from __future__ import annotations

import gc
import warnings

from lab.backends.docker.hosts import docker_available


def test_the_current_context_decides_where_local_goes(tmp_path, monkeypatch):
    config = tmp_path / ".docker"  # the CLI's config dir: config.json and contexts/
    config.mkdir()
    (config / "config.json").write_text("{}")
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    from docker.context import ContextAPI

    socket_path = tmp_path / "elsewhere.sock"  # nothing listens there
    ContextAPI.create_context("iolab-test", host=f"unix://{socket_path}")
    monkeypatch.setenv("DOCKER_CONTEXT", "iolab-test")
    with warnings.catch_warnings():
        # docker-py asks the daemon its API version inside the client's
        # constructor; when that fails it leaves the half-made client's socket
        # to the garbage collector (docker-py's leak, not the lab's).
        warnings.simplefilter("ignore", ResourceWarning)
        ok, why = docker_available("local")
        gc.collect()
    assert not ok and str(socket_path) in why and "Docker context iolab-test" in why

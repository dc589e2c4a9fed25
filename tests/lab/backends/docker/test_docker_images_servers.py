"""Images (cold and cached) and one server container per model family."""

from __future__ import annotations

import re
import time

import pytest
from prebuild_image import CACHED, cold_build

from lab.backends.docker import images
from lab.backends.docker.hosts import run_once
from lab.scenario.types import Limits, ServerSpec

pytestmark = pytest.mark.docker

# Families in Stevens' sense; the first model of each that the image offers
# stands for it.
FAMILIES = {
    "blocking": ("threads", "threadpool", "forking", "blocking"),
    "nonblocking": ("nonblocking",),
    "multiplexing": ("epoll", "poll", "select", "epoll-et", "selectors"),
    "asynchronous": ("asyncio", "uvloop"),
    "signal-driven": ("sigio",),
    "completion": ("io_uring",),
}

ECHO_CLIENT = """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
msg = b"across the lab network"
s.sendall(msg)
got = b""
while len(got) < len(msg):
    chunk = s.recv(100)
    if not chunk:
        break
    got += chunk
print(got.decode())
"""


@pytest.fixture(scope="session")
def image_models(docker_client, lab_image) -> dict[str, str]:
    out = run_once(docker_client, lab_image, ["python", "-m", "servers", "--list"])
    return dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)


def test_cached_image_is_reused_without_building(docker_client, lab_image):
    messages: list[str] = []
    t0 = time.monotonic()
    tag = images.ensure_image({"local": docker_client}, progress=messages.append)
    assert tag == lab_image
    assert not any("building" in m for m in messages), messages
    assert time.monotonic() - t0 < 30


@pytest.mark.slow
def test_cold_build_of_the_app_image(docker_client, lab_image):
    """Rebuild without the layer cache (the base is reused: its debootstrap
    build runs in CI's first ensure_image on a fresh machine). When this
    session's prebuild already built this very image from no cache at all (a
    fresh machine), its output is what is checked: the same build twice would
    only cost another 15 s."""
    messages = cold_build(lab_image)
    if messages is None:
        messages = []
        t0 = time.monotonic()
        tag = images.ensure_image({"local": docker_client}, progress=messages.append,
                                  nocache=True)
        print(f"cold app-image build: {time.monotonic() - t0:.1f} s")
        assert tag == lab_image
    else:
        print("cold app-image build: this session's prebuild's")
    assert not any(CACHED in m for m in messages)
    assert any("pip" in m or "Successfully installed" in m for m in messages)
    attrs = docker_client.images.get(lab_image).attrs["Config"]
    assert attrs["User"] == "lab"
    assert "PYTHONUNBUFFERED=1" in attrs["Env"]
    assert attrs["Labels"].get(images.IMAGE_LABEL) == "1"
    assert run_once(docker_client, lab_image, ["id", "-u"]).strip() == "10001"


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_one_server_per_family_echoes_across_the_lab_network(
        family, image_models, backend_factory, scenario_of, docker_client, lab_image):
    model = next((m for m in FAMILIES[family] if image_models.get(m) == "available"), None)
    if model is None:
        pytest.skip(f"no {family} model available in the image: "
                    f"{ {m: image_models.get(m) for m in FAMILIES[family]} }")
    spec = ServerSpec(name=model, model=model, limits=Limits(nofile=4096))
    sc = scenario_of(spec)
    backend, ctx = backend_factory(sc)
    server = backend.start_server(spec, ctx)
    assert server.ready["model"] == model
    assert server.target_host.startswith("198.1")  # the lab network (198.18.0.0/15)
    # from another container on the lab network
    out = run_once(docker_client, lab_image,
                   ["python", "-c", ECHO_CLIENT, server.target_host, str(server.target_port)],
                   network=f"iolab-{ctx.run_id}", cap_drop=["ALL"])
    assert out.strip() == "across the lab network"
    # the open-file limit inside the container is the one requested
    assert server.ready["nofile"] == 4096
    limits = server.container.exec_run(["cat", f"/proc/{server.ready['pid']}/limits"])
    line = next(x for x in limits.output.decode().splitlines() if "open files" in x)
    assert re.findall(r"\d+", line)[:2] == ["4096", "4096"]
    final = server.stop()
    assert final is not None and final["accepted"] >= 1


def test_a_probe_interrupted_while_the_daemon_creates_it_is_removed(docker_client, lab_image):
    """Ctrl-C that lands inside ``containers.create`` (the daemon made the
    container, the call never returned it): run_once still removes it, by the
    name it gave it first. Seen once: a probe left 'Created' by a Ctrl-C."""
    made: list[str] = []

    class Interrupting:
        def __init__(self, real):
            self.real = real

        def create(self, *args, **kwargs):
            made.append(self.real.create(*args, **kwargs).name)
            raise KeyboardInterrupt

    class Client:
        api = docker_client.api
        containers = Interrupting(docker_client.containers)

    with pytest.raises(KeyboardInterrupt):
        run_once(Client(), lab_image, ["true"])
    assert made and made[0].startswith("iolab-probe-")
    assert docker_client.containers.list(all=True, filters={"name": made[0]}) == []

"""Ensure the lab's images exist: reuse them by content hash, build otherwise.

Two images:

- the **base**: ``python:3.11-slim`` when the daemon has it or can pull it;
  otherwise ``iolab-base:bookworm-<hash of docker/base/mkbase.sh>``, built
  offline by that script (debootstrap from the host's own Debian mirror, then
  ``docker import``). ``IOLAB_BASE_IMAGE`` forces a given base.
- the **app image** ``iolab:<hash>``: ``docker/Dockerfile`` over the base,
  with the runtime dependencies from a host-built wheelhouse and the sources
  of ``servers/`` and ``loadgen/``. The hash covers exactly what goes into the
  build context (plus the base's image ID), so an unchanged tree reuses the
  image and any edit to a server rebuilds only the cheap last layers.

The build context is generated in memory (a tar stream), which also works
against a remote daemon (``tcp://``/``ssh://``): nothing is read from the
daemon's filesystem. Hosts that are other daemons get the image when they
lack it (``lab/backends/docker/image_copy.py``).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import sys
import tarfile
import tomllib
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path

from contract.env import BASE_IMAGE
from lab import CHECKOUT, ROOT
from lab.backends.docker.image_copy import Progress, copy_image, has_image, quiet
from lab.errors import BackendError

DOCKERFILE = ROOT / "docker" / "Dockerfile"
BASE_RECIPE = ROOT / "docker" / "base" / "mkbase.sh"
SLIM_BASE = "python:3.11-slim"
APP_REPO = "iolab"
BASE_REPO = "iolab-base"
BUILDING = "images: building "  # the progress line before an app-image build
SOURCE_DIRS = ("contract", "servers", "loadgen")
# Host-side only: the SDK drives Docker from the host, matplotlib draws reports.
HOST_ONLY_DEPS = {"docker", "matplotlib"}
WHEELHOUSE = ROOT / ".cache" / "wheels"
CONSTRAINTS = "constraints.txt"  # exact versions (scripts/lock), for the wheelhouse and the image
IMAGE_LABEL = "iolab.image"
KEEP_IMAGES = 3

def _digest(chunks: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(len(chunk).to_bytes(8, "big"))
        h.update(chunk)
    return h.hexdigest()


def base_tag() -> str:
    """The offline base's tag: changes whenever the recipe changes."""
    return f"{BASE_REPO}:bookworm-{_digest([BASE_RECIPE.read_bytes()])[:12]}"


def runtime_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """The project's dependencies minus host-only ones, pinned to the versions
    installed here (so the image runs what the tests ran), markers kept."""
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    out = []
    for dep in deps:
        spec, _, marker = dep.partition(";")
        name = re.match(r"[A-Za-z0-9_.\-]+", spec.strip()).group(0)
        if name.lower() in HOST_ONLY_DEPS:
            continue
        try:
            spec = f"{name}=={metadata.version(name)}"
        except metadata.PackageNotFoundError:
            spec = spec.strip()
        out.append(f"{spec}; {marker.strip()}" if marker.strip() else spec)
    return sorted(out)


def source_files(root: Path = ROOT) -> list[tuple[str, Path]]:
    """(name in the context, path) for pyproject.toml and the source trees,
    sorted; caches and compiled files left out."""
    files = [("pyproject.toml", root / "pyproject.toml"), ("constraints.txt", root / CONSTRAINTS)]
    for top in SOURCE_DIRS:
        for path in sorted((root / top).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files.append((path.relative_to(root).as_posix(), path))
    return files


def app_tag(base_id: str, requirements: list[str], files: list[tuple[str, Path]]) -> str:
    parts = [DOCKERFILE.read_bytes(), base_id.encode(), "\n".join(requirements).encode()]
    for name, path in files:
        parts += [name.encode(), path.read_bytes()]
    return f"{APP_REPO}:{_digest(parts)[:12]}"


def ensure_base(client, progress: Progress = quiet) -> str:
    """Return the base image reference, building the offline one if needed."""
    import docker.errors

    forced = os.environ.get(BASE_IMAGE)
    if forced:
        if not has_image(client, forced):
            raise BackendError(f"{BASE_IMAGE}={forced} is not on the Docker host")
        return forced
    if has_image(client, SLIM_BASE):
        return SLIM_BASE
    tag = base_tag()
    if has_image(client, tag):
        return tag
    try:
        progress(f"images: trying to pull {SLIM_BASE}")
        client.images.pull(SLIM_BASE)
        return SLIM_BASE
    except docker.errors.DockerException as exc:
        progress(f"images: {SLIM_BASE} unavailable ({str(exc).splitlines()[0][:120]}); "
                 f"building {tag} offline with debootstrap")
    build_offline_base(tag, progress)
    if not has_image(client, tag):
        raise BackendError(f"{BASE_RECIPE.name} finished but {tag} is not on the Docker host")
    return tag


def build_offline_base(tag: str, progress: Progress = quiet) -> None:
    """Run docker/base/mkbase.sh (root, local daemon), streaming its output."""
    tail: list[str] = []
    with subprocess.Popen(["sh", str(BASE_RECIPE), tag], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True) as proc:
        for line in proc.stderr:
            progress("base: " + line.rstrip())
            tail = (tail + [line.rstrip()])[-20:]
    if proc.returncode != 0:
        raise BackendError(f"building the base image {tag} failed:\n" + "\n".join(tail))


def ensure_wheelhouse(requirements: list[str], dest: Path = WHEELHOUSE,
                      progress: Progress = quiet) -> Path:
    """``pip download`` the requirements (and their dependencies) as wheels for
    CPython 3.11 on x86_64 glibc Linux into ``dest/<hash>``; reused when present."""
    where = dest / _digest([r.encode() for r in requirements]
                           + [(ROOT / CONSTRAINTS).read_bytes()])[:12]
    stamp = where / ".complete"
    if stamp.exists():
        return where
    where.mkdir(parents=True, exist_ok=True)
    (where / "requirements.txt").write_text("\n".join(requirements) + "\n")
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
           "--only-binary=:all:", "--dest", str(where), "-r", str(where / "requirements.txt"),
           "-c", str(ROOT / CONSTRAINTS)]  # every transitive package at its pinned version
    if not (sys.version_info[:2] == (3, 11) and sys.platform == "linux"):
        cmd += ["--python-version", "3.11", "--implementation", "cp", "--abi", "cp311"]
        cmd += [f"--platform=manylinux_2_{m}_x86_64" for m in (17, 28, 31, 34, 36)]
        cmd += ["--platform=manylinux2014_x86_64"]
    progress(f"images: pip download into {where}")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BackendError("pip download for the image's wheelhouse failed:\n"
                           + proc.stderr.strip()[-2000:])
    stamp.touch()
    return where


def build_context(requirements: list[str], files: list[tuple[str, Path]],
                  wheels: Path) -> io.BytesIO:
    """The docker build context as an in-memory tar."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(DOCKERFILE, arcname="Dockerfile")
        req = ("\n".join(requirements) + "\n").encode()
        info = tarfile.TarInfo("requirements.txt")
        info.size = len(req)
        tar.addfile(info, io.BytesIO(req))
        for wheel in sorted(wheels.glob("*.whl")):
            tar.add(wheel, arcname=f"wheels/{wheel.name}")
        for top in SOURCE_DIRS:  # present even while a tree is still empty
            tar.add(ROOT / top, arcname=top, recursive=False)
        for name, path in files:
            tar.add(path, arcname=name)
    buf.seek(0)
    return buf


def build_image(client, tag: str, base: str, context: io.BytesIO, *,
                nocache: bool = False, progress: Progress = quiet) -> None:
    """Build ``tag`` from ``context``, passing each build step to ``progress``."""
    tail: list[str] = []
    stream = client.api.build(fileobj=context, custom_context=True, tag=tag, rm=True,
                              forcerm=True, nocache=nocache, buildargs={"BASE": base},
                              labels={IMAGE_LABEL: "1"}, decode=True)
    for chunk in stream:
        if "error" in chunk:
            raise BackendError(f"building {tag} failed: {chunk['error'].strip()}\n"
                               + "\n".join(tail))
        text = (chunk.get("stream") or chunk.get("status") or "").rstrip()
        if text:
            tail = (tail + [text])[-30:]
            progress(text)


def prune_old_images(client, keep: str, newest: int = KEEP_IMAGES) -> list[str]:
    """Remove lab images nobody needs any more: ``iolab:*`` beyond the
    ``newest`` few (each source edit makes a new tag; the few most recent stay
    because another checkout or a concurrent run may use the one built just
    before), base images of an older recipe, and dependency-stage caches
    beyond the newest few. Docker refuses to remove an image a container or
    a newer image still uses; that is fine, it goes on a later build."""
    import docker.errors

    def newest_first(images):
        return sorted(images, key=lambda image: image.attrs.get("Created", ""), reverse=True)

    removed = []
    stale = newest_first(client.images.list(name=APP_REPO))[newest:]
    stale += [i for i in client.images.list(name=BASE_REPO) if base_tag() not in i.tags]
    # Superseded dependency-stage caches (each `pip install` layer is ~240 MB).
    # (Untagged by nature; the newest is the cache of the current build.)
    stale += newest_first(client.images.list(filters={"dangling": True,
                                                      "label": "iolab.stage=deps"}))[2:]
    stale += client.images.list(filters={"dangling": True, "label": f"{IMAGE_LABEL}=1"})
    for image in stale:
        for ref in image.tags or [image.id]:
            if ref == keep:
                continue
            try:
                client.images.remove(ref)
                removed.append(ref)
            except docker.errors.APIError:  # in use by a container or a newer image
                pass
    return removed


def daemon_id(client) -> str:
    """The ID a daemon reports (``docker info``). Not an identity: daemons
    with one ``key.json`` (cloned machines) report the same ID; see
    :func:`lab.backends.docker.hosts.daemon_keys`."""
    return client.info()["ID"]


def ensure_image(clients: Mapping[str, object], progress: Progress = quiet, *,
                 nocache: bool = False) -> str:
    """Make the app image present on every client's daemon; return its tag.

    The first client builds (it should be the local one: the offline base
    needs debootstrap on this machine); other daemons get a copy.
    """
    if not clients:
        raise BackendError("no Docker host to build the image on")
    if not CHECKOUT:
        raise BackendError(f"the Docker backend builds its image from a checkout of iolab "
                           f"(docker/Dockerfile); {ROOT} is an installed copy. Run from a "
                           "checkout, or use --backend local")
    names = list(clients)
    builder = clients[names[0]]
    base = ensure_base(builder, progress)
    requirements = runtime_requirements()
    files = source_files()
    tag = app_tag(builder.images.get(base).id, requirements, files)
    if nocache or not has_image(builder, tag):
        wheels = ensure_wheelhouse(requirements, progress=progress)
        progress(f"{BUILDING}{tag} from {base}")
        build_image(builder, tag, base, build_context(requirements, files, wheels),
                    nocache=nocache, progress=progress)
        prune_old_images(builder, keep=tag)
    # Asked of every other endpoint, never skipped by daemon ID: two daemons
    # can share an ID (Docker 20.10 derives it from /etc/docker/key.json, which
    # cloned machines share), and one reached twice simply has the image already.
    lacking = {n: clients[n] for n in names[1:] if not has_image(clients[n], tag)}
    copy_image(builder, lacking, tag, progress)
    return tag

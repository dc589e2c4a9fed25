"""Copying the lab image to the other daemons of a run.

One ``docker save`` stream from the daemon that built it, uploaded to all
the daemons that lack it in parallel as chunked ``docker load`` requests:
the image is read once and never held whole in memory (each destination
buffers at most ``COPY_QUEUE`` chunks), and a slow or failing daemon does
not stall the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from lab.errors import BackendError

Progress = Callable[[str], None]


def quiet(_: str) -> None:
    """Progress that says nothing."""


def has_image(client, ref: str) -> bool:
    """Whether ``client``'s daemon holds the image ``ref``."""
    import docker.errors

    try:
        client.images.get(ref)
        return True
    except docker.errors.ImageNotFound:
        return False


COPY_CHUNK = 2 * 1024 * 1024  # bytes per chunk of the save stream (docker-py's default)
COPY_QUEUE = 8  # chunks buffered per destination: a slow daemon holds at most 16 MB here
PROGRESS_EVERY = 64 * 1024 * 1024  # a progress line per host every this many bytes


class _Fanout:
    """One ``docker save`` stream fed to several ``docker load`` uploads.

    A pump thread reads the source's chunks once and puts each chunk on every
    live destination's bounded queue; each destination's upload iterates its
    queue. Nothing is joined: memory is at most ``COPY_QUEUE`` chunks per
    destination, whatever the image's size. A destination that failed is
    dropped (its queue no longer fed); the pump stops when none is left."""

    _END = object()

    def __init__(self, chunks: Iterable[bytes], names: list[str]):
        import queue

        self.chunks = chunks
        self.queues = {name: queue.Queue(COPY_QUEUE) for name in names}
        self.dead: set[str] = set()
        self.error: BaseException | None = None

    def pump(self) -> None:
        import queue

        try:
            for chunk in self.chunks:
                for name, q in self.queues.items():
                    while name not in self.dead:
                        try:
                            q.put(chunk, timeout=0.5)
                            break
                        except queue.Full:
                            continue
                if len(self.dead) == len(self.queues):
                    return
        except BaseException as exc:  # noqa: BLE001 - every upload learns of it
            self.error = exc
        finally:
            for name, q in self.queues.items():
                while name not in self.dead:
                    try:
                        q.put(self._END, timeout=0.5)
                        break
                    except queue.Full:
                        continue

    def stream(self, name: str) -> Iterable[bytes]:
        q = self.queues[name]
        while (chunk := q.get()) is not self._END:
            yield chunk
        if self.error is not None:
            raise BackendError(f"reading the image from the build host failed: {self.error}")


def _counted(chunks: Iterable[bytes], host: str, total: int | None,
             progress: Progress) -> Iterable[bytes]:
    """``chunks`` as they are, with a progress line every ``PROGRESS_EVERY`` bytes."""
    sent, mark = 0, PROGRESS_EVERY
    of = f" of ~{total / 2**20:.0f} MiB" if total else ""
    for chunk in chunks:
        sent += len(chunk)
        if sent >= mark:
            progress(f"images: {host}: {sent / 2**20:.0f} MiB sent{of}")
            mark += PROGRESS_EVERY
        yield chunk
    progress(f"images: {host}: {sent / 2**20:.0f} MiB sent, loading")


def _load(dst, chunks: Iterable[bytes], host: str, ref: str) -> None:
    """``docker load`` from an iterator: requests sends it as a chunked upload
    (no Content-Length), so the tar is never held whole."""
    import docker.errors

    try:
        for message in dst.api.load_image(chunks, quiet=True):
            if isinstance(message, dict) and message.get("error"):
                raise BackendError(f"Docker on host {host} could not load {ref}: "
                                   f"{message['error'].strip()}")
    except docker.errors.DockerException as exc:
        raise BackendError(f"Docker on host {host} could not load {ref}: {exc}") from exc
    except OSError as exc:  # the connection broke mid-upload (requests' errors are OSErrors)
        raise BackendError(f"copying {ref} to host {host} failed: {exc}") from exc
    if not has_image(dst, ref):
        raise BackendError(f"Docker on host {host} loaded the archive but has no {ref}")


def copy_image(src, dsts: Mapping[str, object], ref: str, progress: Progress = quiet) -> None:
    """Stream ``ref`` from ``src`` to every daemon in ``dsts`` (host name ->
    client) at once: one ``docker save`` read, one ``docker load`` upload per
    host, in parallel, with bytes sent per host through ``progress``. Raises a
    BackendError naming every host that did not get it."""
    import threading

    if not dsts:
        return
    names = list(dsts)
    total = (src.images.get(ref).attrs or {}).get("Size")
    progress(f"images: copying {ref} to {', '.join(names)}")
    fan = _Fanout(src.api.get_image(ref, chunk_size=COPY_CHUNK), names)
    lock = threading.Lock()

    def say(message: str) -> None:
        with lock:
            progress(message)

    errors: dict[str, BaseException] = {}

    def upload(name: str) -> None:
        try:
            _load(dsts[name], _counted(fan.stream(name), name, total, say), name, ref)
        except BaseException as exc:  # noqa: BLE001 - reported below, per host
            errors[name] = exc
        finally:
            fan.dead.add(name)  # whatever happened, nothing more is fed to it

    threads = [threading.Thread(target=upload, args=(n,), name=f"iolab-copy-{n}", daemon=True)
               for n in names]
    pump = threading.Thread(target=fan.pump, name="iolab-copy-save", daemon=True)
    for t in [*threads, pump]:
        t.start()
    for t in [*threads, pump]:
        t.join()
    if errors:
        raise BackendError("; ".join(str(errors[n]) for n in names if n in errors))

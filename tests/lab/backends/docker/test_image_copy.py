"""Copying the lab image to other daemons: streamed, never joined, in parallel."""

from __future__ import annotations

import threading
import types

import docker.errors
import pytest

from lab.backends.docker import image_copy as images
from lab.errors import BackendError

CHUNKS = [bytes([i]) * (1000 + i) for i in range(20)]


class Source:
    def __init__(self, chunks=CHUNKS, fail_after=None):
        self.chunks, self.fail_after, self.reads = chunks, fail_after, 0
        self.api = self
        self.images = self

    def get(self, ref):
        return types.SimpleNamespace(attrs={"Size": sum(map(len, self.chunks))})

    def get_image(self, ref, chunk_size=None):
        self.reads += 1
        for i, chunk in enumerate(self.chunks):
            if self.fail_after is not None and i == self.fail_after:
                raise docker.errors.APIError("save failed")
            yield chunk


class Dest:
    """A daemon whose ``load_image`` records the body it is given, chunk by chunk."""

    def __init__(self, barrier=None, refuse=False):
        self.barrier, self.refuse = barrier, refuse
        self.api = self
        self.images = self
        self.body_type = None
        self.received: list[bytes] = []
        self.loaded: set[str] = set()

    def get(self, ref):
        if ref not in self.loaded:
            raise docker.errors.ImageNotFound(ref)
        return types.SimpleNamespace(attrs={})

    def load_image(self, data, quiet=None):
        self.body_type = type(data)
        for chunk in data:  # what requests does with an iterator: one HTTP chunk each
            self.received.append(chunk)
            if self.barrier is not None and len(self.received) == 3:
                self.barrier.wait()  # both uploads are in flight at the same time
            if self.refuse and len(self.received) == 2:
                return iter([{"error": "no space left on device"}])
        self.loaded.add("iolab:t")
        return iter([{"stream": "Loaded image: iolab:t\n"}])


def test_the_image_is_streamed_to_two_daemons_at_once_never_joined():
    both = threading.Barrier(2, timeout=10)  # a sequential copy would time out here
    src, a, b = Source(), Dest(both), Dest(both)
    messages: list[str] = []
    images.copy_image(src, {"h1": a, "h2": b}, "iolab:t", progress=messages.append)
    for dst in (a, b):
        assert dst.body_type not in (bytes, bytearray)  # an iterator: a chunked upload
        assert dst.received == CHUNKS  # every chunk, as it came, none joined
        assert "iolab:t" in dst.loaded
    assert src.reads == 1  # one docker save for every destination
    assert any(m.startswith("images: h1:") and "sent" in m for m in messages)
    assert any(m.startswith("images: h2:") and "sent" in m for m in messages)


def test_progress_counts_bytes_per_host(monkeypatch):
    monkeypatch.setattr(images, "PROGRESS_EVERY", 5000)
    messages: list[str] = []
    images.copy_image(Source(), {"h1": Dest()}, "iolab:t", progress=messages.append)
    lines = [m for m in messages if m.startswith("images: h1:")]
    assert len(lines) >= 4 and lines[-1].endswith("sent, loading")


def test_a_refusing_daemon_is_named_and_the_other_still_gets_the_image():
    good, bad = Dest(), Dest(refuse=True)
    with pytest.raises(BackendError, match="host h2 could not load iolab:t: no space left"):
        images.copy_image(Source(), {"h1": good, "h2": bad}, "iolab:t")
    assert good.received == CHUNKS and "iolab:t" in good.loaded


def test_a_save_that_breaks_fails_every_upload_and_returns():
    a, b = Dest(), Dest()
    with pytest.raises(BackendError, match="reading the image from the build host failed"):
        images.copy_image(Source(fail_after=5), {"h1": a, "h2": b}, "iolab:t")
    assert not a.loaded and not b.loaded


def test_nothing_to_copy_reads_nothing():
    src = Source()
    images.copy_image(src, {}, "iolab:t")
    assert src.reads == 0

"""The io_uring availability probe survives a binding that crashes: a wheel
built for another CPU dies with SIGILL, which must make the model
unavailable with the reason, not kill the process that asked."""

from __future__ import annotations

import pytest

import servers.io_uring_loop as uring


@pytest.mark.skipif(uring.L is None, reason="the liburing binding is not installed")
def test_a_crashing_binding_is_unavailable_with_the_signal(monkeypatch):
    monkeypatch.setattr(uring, "_probed", [])
    monkeypatch.setattr(uring, "_PROBE", "import os, signal; os.kill(os.getpid(), signal.SIGILL)")
    why = uring.unavailable()
    assert why == ("the liburing binding crashed with SIGILL (the wheel uses CPU instructions "
                   "this machine lacks)")
    monkeypatch.setattr(uring, "_probed", [])
    monkeypatch.setattr(uring, "_PROBE", "print('io_uring_setup refused: [Errno 1] EPERM')")
    assert uring.unavailable() == "io_uring_setup refused: [Errno 1] EPERM"

"""One echo server per Linux I/O model, behind one command: ``python -m servers MODEL``.

The registry is ``contract.models``: each model's record names the dotted
path of its module (``Model.module``), imported lazily, as gunicorn's
``workers/__init__.py`` does: a model whose optional
dependency is missing (uvloop, liburing) or whose kernel facility is refused
(io_uring under a seccomp profile) is reported as unavailable without
breaking the others. Each model module exposes a ``Server`` class (a
``servers.core.Server``) and may expose ``unavailable() -> str | None``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from contract.models import BY_NAME, MODELS


def load(name: str) -> ModuleType:
    """Import the module of model ``name`` (KeyError for an unknown name)."""
    return importlib.import_module(BY_NAME[name].module)


def unavailable(name: str) -> str | None:
    """None if model ``name`` can run here, else a one-line reason."""
    try:
        module = load(name)
    except ImportError as exc:
        return f"cannot import {BY_NAME[name].module}: {exc}"
    check = getattr(module, "unavailable", None)
    if check is None:
        return None
    try:
        return check()
    except Exception as exc:  # a probe must never break --list
        return f"availability check failed: {type(exc).__name__}: {exc}"


def available_models() -> list[str]:
    """The model names that can run on this machine, in contract order."""
    return [name for name in MODELS if unavailable(name) is None]

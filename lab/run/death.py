"""Why a server died, from evidence, in the limit vocabulary.

A death is named by the first of these that speaks:

1. the server's own ``limit`` event (it saw the wall before it fell);
2. the kernel's OOM killer, when the kernel says it acted: Docker's
   ``State.OOMKilled``, or the ``oom_kill`` count of the memory cgroup the
   local backend made for a ``limits.memory`` server
   (``lab/backends/cgroup.py``). It comes before the output: memory running
   out makes other calls fail first (``pthread_create`` with EAGAIN is "can't
   start new thread"), but the SIGKILL is what ended the process;
3. its output tail, where the interpreter or libc said what killed it —
   ``filedescriptor out of range in select()`` (CPython's select() raising
   ValueError for a descriptor ≥ FD_SETSIZE) → ``FD_SETSIZE``; ``Too many open
   files`` (EMFILE) → ``EMFILE``; ``can't start new thread`` → ``threads``;
   ``Cannot allocate memory``/``MemoryError`` → ``oom``;
4. exit 137 (a container's SIGKILL) under a memory limit → ``oom``;
5. otherwise ``crash``: it died and nothing says why (the log tail is kept).
"""

from __future__ import annotations

import re

from contract.limits import CRASH, EMFILE, ENFILE, FD_SETSIZE_LIMIT, OOM, THREADS

PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"filedescriptor out of range in select\(\)"), FD_SETSIZE_LIMIT),
    (re.compile(r"Too many open files|\[Errno 24\]"), EMFILE),
    (re.compile(r"Too many open files in system|\[Errno 23\]"), ENFILE),
    (re.compile(r"can't start new thread"), THREADS),
    (re.compile(r"MemoryError|Cannot allocate memory|\[Errno 12\]"), OOM),
)
SIGKILL_EXIT = 137  # 128 + 9: how a container killed by the OOM killer exits


def cause(limit_event: str | None, log_tail: str, exit_code: int | None, *,
          oom_killed: bool = False, memory_limited: bool = False) -> str:
    """The limit kind that explains a death (see the module docstring)."""
    if limit_event:
        return limit_event
    if oom_killed:
        return OOM
    for pattern, kind in PATTERNS:
        if pattern.search(log_tail or ""):
            return kind
    if memory_limited and exit_code == SIGKILL_EXIT:
        return OOM
    return CRASH

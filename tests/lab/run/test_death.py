"""A death's cause, from evidence (lab/run/death.py)."""

from __future__ import annotations

import pytest

from lab.run.death import cause


@pytest.mark.parametrize("event, tail, code, oom, limited, want", [
    ("EMFILE", "ValueError: filedescriptor out of range in select()", 1, False, False, "EMFILE"),
    (None, "ValueError: filedescriptor out of range in select()", 1, False, False, "FD_SETSIZE"),
    (None, "OSError: [Errno 24] Too many open files", 1, False, False, "EMFILE"),
    (None, "RuntimeError: can't start new thread", 1, False, False, "threads"),
    (None, "", 137, True, False, "oom"),
    (None, "", 137, False, True, "oom"),
    (None, "", 137, False, False, "crash"),  # SIGKILL without a memory limit: who knows
    (None, "Segmentation fault", 139, False, False, "crash"),
])
def test_cause_prefers_the_servers_own_word_then_its_output_then_the_kernel(
        event, tail, code, oom, limited, want):
    assert cause(event, tail, code, oom_killed=oom, memory_limited=limited) == want

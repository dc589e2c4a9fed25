"""How many Locust workers a load needs.

Each worker is one process (one container in Docker, with its own IP) and
holds one socket per user. Two ceilings bind a single worker: its open-file
limit (every connection is a descriptor, plus ~100 for Python and Locust),
and one source address's ephemeral ports towards one server ip:port
(about 28,000 with the default 32768-60999 range). A gevent worker also
saturates one core near ``PER_WORKER_COMFORT`` paced users, so the lab
spreads beyond that when CPUs allow.

It lives with the host's other arithmetic (``lab/host/ceiling.py``): both
backends size their workers with it, and ``run-lab doctor`` gives the load's
ceiling from the same numbers before a run.
"""

from __future__ import annotations

import math

from contract.fds import LOADGEN_FD_RESERVE
from contract.network import DEFAULT_EPHEMERAL_PORTS
from lab.scenario.types import LoadSpec

PER_WORKER_COMFORT = 10_000


def per_worker_ceiling(nofile_hard: int) -> int:
    """The most users one worker can hold: descriptors and source ports."""
    return max(1, min(nofile_hard - LOADGEN_FD_RESERVE, DEFAULT_EPHEMERAL_PORTS))


def workers_needed(load: LoadSpec, nofile_hard: int, hosts: int = 1) -> int:
    """Workers for the largest step; the scenario's own number wins if set.
    ``workers: auto`` puts at least one worker on each of the ``hosts`` the
    placement names: a host named there and left idle would be a surprise."""
    if load.workers is not None:
        return load.workers
    peak = max((s.connections for s in load.steps), default=0)
    cap = min(per_worker_ceiling(nofile_hard), PER_WORKER_COMFORT)
    return max(1, hosts, math.ceil(peak / cap))

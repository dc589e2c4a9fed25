"""How many Locust workers a load needs, and what they cost in memory.

Each worker is one process (one container in Docker, with its own IP) and
holds one socket per user. Two ceilings bind a single worker: its open-file
limit (every connection is a descriptor, plus ~100 for Python and Locust),
and one source address's ephemeral ports towards one server ip:port
(about 28,000 with the default 32768-60999 range). CPU binds a worker's
*paced* users only: an idle user (``user: idle``) waits on its socket with no
timer and costs nothing between events, so a worker holds as many idle users
as its descriptors allow but at most ``PER_WORKER_COMFORT`` paced ones.

``PER_WORKER_COMFORT`` comes from the benchmarks (benchmarks/README.md): one
worker drives 15,000 users at one 64-byte echo a second each with 0.4-0.5 of
a core on the shared 2-core machine and the whole offered rate, its event
loop's lag p99 1.1 ms, and the echoes' p99 it reports is the independent
reference client's (0.60-0.70 ms against 0.65-0.71 ms, ``loadgen_fidelity.py``,
2026-12-04); 18,000 met the fidelity target too, with less margin (p99 0.73
and 1.30 ms against a bound of 1.77 ms). Before that (a paced user's phase
then drifted with each late send, and the loop's stalls bunched the sends)
15,000 was over the target and the lab planned with 12,000; before the
per-echo costs were cut (Locust's request event per echo, an EAGAIN recvmsg
per echo) 15,000 took 0.99 of a core and the lab capped a worker at 10,000.

It lives with the host's other arithmetic (``lab/host/ceiling.py``): both
backends size their workers with it, and ``run-lab doctor`` gives the load's
ceiling and its memory from the same numbers before a run.
"""

from __future__ import annotations

import math

from contract import defaults
from contract.fds import LOADGEN_FD_RESERVE
from contract.network import DEFAULT_EPHEMERAL_PORTS
from contract.parking import parks_when_held, slow_client
from lab.scenario.types import LoadSpec, SizeDistribution

PER_WORKER_COMFORT = 15_000  # paced users per worker (above)

# Resident memory of the load, measured (benchmarks/README.md): a held user
# is the load processes' RSS growth per user added; a Locust process with no
# users (interpreter, gevent, Locust, ZeroMQ) is the rest. The kernel's socket
# is not in RSS (lab/host/ceiling.py). ``USER_RSS_BYTES`` is a user with a
# live greenlet (its Python frame stack, the saved C stack: churn users, slow
# clients, pace 0): 10.8-11.0 KB. A parked echo or idle user
# (loadgen/parking.py: no greenlet while its connection is held on the hub)
# measured 3.4 KB at 15,000 per worker and 4.1 KB in one process at 10,000;
# ``user_rss_bytes`` says which a load's users are.
USER_RSS_BYTES = 11_000
PARKED_USER_RSS_BYTES = 4_000
LOCUST_PROCESS_RSS_BYTES = 50 * 2**20


def per_worker_ceiling(nofile_hard: int) -> int:
    """The most users one worker can hold: descriptors and source ports."""
    return max(1, min(nofile_hard - LOADGEN_FD_RESERVE, DEFAULT_EPHEMERAL_PORTS))


def paced_users(load: LoadSpec, users: int) -> int:
    """Of ``users``, those that wake the worker on a timer (echo and churn users;
    with ``user: idle``, only the ``active_users`` among them)."""
    if load.user == defaults.USER_IDLE and not load.groups:
        return min(load.active_users, users)
    return users


def workers_needed(load: LoadSpec, nofile_hard: int, hosts: int = 1) -> int:
    """Workers for the largest step; the scenario's own number wins if set.
    ``workers: auto`` puts at least one worker on each of the ``hosts`` the
    placement names: a host named there and left idle would be a surprise."""
    if load.workers is not None:
        return load.workers
    peak = max((s.connections for s in load.steps), default=0)
    by_fds = math.ceil(peak / per_worker_ceiling(nofile_hard))
    by_cpu = math.ceil(paced_users(load, peak) / PER_WORKER_COMFORT)
    return max(1, hosts, by_fds, by_cpu)


def user_rss_bytes(load: LoadSpec | None) -> int:
    """Resident memory of one held user of ``load``: parked or live by
    contract/parking.py's rule (the one the load generator follows); user
    groups, an unknown load, and an idle load whose active (echo) users stay
    live count as live, the larger."""
    if load is None or load.groups:
        return USER_RSS_BYTES
    slow = slow_client(load.send_chunk, load.send_gap_s, load.read_chunk, load.read_gap_s,
                       isinstance(load.message_size, SizeDistribution))
    kinds = {load.user}
    if load.user == defaults.USER_IDLE and load.active_users:
        kinds.add(defaults.USER_ECHO)  # an idle load's active users are echo users
    everyone = all(parks_when_held(kind, pace_s=load.pace_s, io_timeout_s=load.io_timeout_s,
                                   slow=slow) for kind in kinds)
    return PARKED_USER_RSS_BYTES if everyone else USER_RSS_BYTES


def load_rss_bytes(users: int, workers: int, user_bytes: int = USER_RSS_BYTES) -> int:
    """The load's resident memory holding ``users`` of ``user_bytes`` each
    (``user_rss_bytes``): its workers and master."""
    return users * user_bytes + (workers + 1) * LOCUST_PROCESS_RSS_BYTES

"""Defaults the lab and the processes it starts must agree on.

A scenario that leaves a key out gets the same value as a server or a Locust
run started by hand without the matching option: ``lab/scenario/types.py``
(and the schema's choices), ``servers/cli.py``'s argparse and
``loadgen/options.py`` all read them from here.
"""

from __future__ import annotations

# -- servers: python -m servers MODEL ------------------------------------------------------------

# listen(2)'s backlog; the kernel caps it at net.core.somaxconn.
BACKLOG = 1024
# What select does with a descriptor it cannot watch (>= FD_SETSIZE): close it
# and count a refusal, or raise like the tutorial code it reproduces.
ON_FD_LIMIT_REFUSE = "refuse"
ON_FD_LIMIT_CRASH = "crash"
ON_FD_LIMIT_CHOICES: tuple[str, ...] = (ON_FD_LIMIT_REFUSE, ON_FD_LIMIT_CRASH)
ON_FD_LIMIT = ON_FD_LIMIT_REFUSE
THREADPOOL_WORKERS = 32  # --workers: threadpool's pool size
STATS_INTERVAL_S = 1.0  # seconds between a server's stats events (the lab asks for less)
WORK_US = 0  # CPU microseconds of simulated work per message
BLOCK_US = 0  # microseconds each message's handler waits without CPU (a sleep)
NODELAY = True  # TCP_NODELAY on every accepted socket (False: Nagle's algorithm stays on)
PROCESSES = 1  # listening processes (--processes)

# -- load: locust -f loadgen/locustfile.py -------------------------------------------------------

USER_ECHO = "echo"
USER_IDLE = "idle"
USER_CHURN = "churn"  # connect, echo messages_per_connection messages, close, again
USER_CHOICES: tuple[str, ...] = (USER_ECHO, USER_IDLE, USER_CHURN)
MESSAGES_PER_CONNECTION = 1  # with user=churn: echoes per connection before it closes
MESSAGE_SIZE = 64  # bytes per echo
PACE_S = 1.0  # seconds between one user's echoes
MAX_MESSAGE_SIZE = 1 << 20  # 1 MiB: the largest echo (the scenario and the loadgen refuse more)
MIN_RECV_BUFFER = 1024  # a smaller SO_RCVBUF is refused: a broken reader, not a slow one
PACE_FIXED, PACE_EXPONENTIAL = "fixed", "exponential"  # load.pace: a duration or {mean: ...}
PACE_DISTS: tuple[str, ...] = (PACE_FIXED, PACE_EXPONENTIAL)
CONNECT_TIMEOUT_S = 5.0
IO_TIMEOUT_S = 5.0
SPAWN_RATE = 500.0  # users started (or stopped) per second between steps
# Seconds of silence (no heartbeat) before the master calls a load worker lost:
# Locust's liveness of 10 missed one-second heartbeats, plus the one in flight.
# Shorter, a killed worker is named sooner; too short, a worker whose event loop
# lags behind its users (thousands of connections on a busy host) is lost wrongly.
WORKER_TIMEOUT_S = 11.0
MIN_WORKER_TIMEOUT_S = 1.0  # four heartbeats within it, at most four a second
# closed: the next echo after the reply; fixed: echoes at intended times.
SCHEDULE_CLOSED = "closed"
SCHEDULE_FIXED = "fixed"
SCHEDULE_CHOICES: tuple[str, ...] = (SCHEDULE_CLOSED, SCHEDULE_FIXED)
SCHEDULE = SCHEDULE_CLOSED
RECONNECT = True  # after a failure, reconnect after the pace (loadgen's --reconnect yes)
ACTIVE_USERS = 0  # with user=idle: this many EchoUsers among the idle ones

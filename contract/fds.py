"""Descriptors a process needs besides the connections it holds.

A server holds stdin, stdout and stderr, its listening socket, and one spare
descriptor that ``servers.listener.Acceptor`` keeps open so that on EMFILE it can
close it, accept the pending connection and close that too (the client gets
an answer instead of waiting in the backlog). Event loops add their own kernel
objects: an epoll instance, asyncio's self-pipe, libuv's signal and async
handles, an io_uring ring. These numbers were measured by holding connections
against each model with ``--nofile 64`` (``tests/servers/test_fd_ceiling.py``
re-measures them); the capacity ceiling of a descriptor-bound model is
``min(nofile, FD_SETSIZE for select) - SERVER_FD_OVERHEAD[model]``.

A load generator keeps ``LOADGEN_FD_RESERVE`` descriptors for Python, Locust,
the gevent hub, the master connection and the results file.
"""

from __future__ import annotations

SERVER_FD_BASE = 5  # stdin, stdout, stderr, the listener, the EMFILE spare
SERVER_FD_OVERHEAD: dict[str, int] = {
    "blocking": SERVER_FD_BASE,
    "threads": SERVER_FD_BASE,
    "forking": SERVER_FD_BASE,
    "threadpool": SERVER_FD_BASE,
    "nonblocking": SERVER_FD_BASE,
    "select": SERVER_FD_BASE,
    "poll": SERVER_FD_BASE,
    "sigio": SERVER_FD_BASE,
    "epoll": SERVER_FD_BASE + 1,  # the epoll instance
    "epoll-et": SERVER_FD_BASE + 1,
    "selectors": SERVER_FD_BASE + 1,  # DefaultSelector is epoll here
    "io_uring": SERVER_FD_BASE + 1,  # the ring
    "asyncio": SERVER_FD_BASE + 3,  # epoll + the self-pipe (a socket pair)
    "uvloop": SERVER_FD_BASE + 10,  # epoll, eventfd, signal pipes, libuv's own handles
}
# A custom server: we do not know; assume what the simplest model needs.
DEFAULT_SERVER_FD_OVERHEAD = SERVER_FD_BASE

LOADGEN_FD_RESERVE = 100

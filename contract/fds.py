"""Descriptors a process needs besides the connections it holds.

A server holds stdin, stdout and stderr, its listening socket, and one spare
descriptor that ``servers.listener.Acceptor`` keeps open so that on EMFILE it can
close it, accept the pending connection and close that too (the client gets
an answer instead of waiting in the backlog): ``SERVER_FD_BASE``. Event loops
add their own kernel objects (an epoll instance, asyncio's self-pipe, libuv's
signal and async handles, an io_uring ring): each model's ``fd_overhead`` in
``contract/models.py``. The capacity ceiling of a descriptor-bound model is
``min(nofile, FD_SETSIZE for select) - fd_overhead``; a custom server is
assumed to need ``SERVER_FD_BASE``.

A load generator keeps ``LOADGEN_FD_RESERVE`` descriptors for Python, Locust,
the gevent hub, the master connection and the results file.
"""

from __future__ import annotations

SERVER_FD_BASE = 5  # stdin, stdout, stderr, the listener, the EMFILE spare

LOADGEN_FD_RESERVE = 100

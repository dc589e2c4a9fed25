"""The shared vocabulary of iolab: one definition of each fact that the
servers, the load generator and the orchestrator must agree on.

This package imports nothing outside the standard library, so it can be
imported by ``servers`` (which runs alone inside a container), by ``loadgen``
(inside Locust) and by ``lab`` alike, and it is copied into the image. The
facts and their reasons are in ``docs/design.md`` ("Contracts").

- :mod:`contract.models` — one record per model, in contract order: what kind
  of concurrency it is (which scenario keys apply to it), its descriptor
  overhead, what a connection costs it, its module and its chart colour.
- :mod:`contract.limits` — the limit kinds as named constants, with the
  one-sentence mechanism behind each wall, ``FD_SETSIZE``, and the failure
  kinds a client can see.
- :mod:`contract.defaults` — the defaults a scenario, a server and the load
  generator must agree on (backlog, on-fd-limit, load options).
- :mod:`contract.network` — where load may go (loopback and the lab network
  198.18.0.0/15), the one safe-target check, and the kernel defaults that
  bound a client (the ephemeral port range).
- :mod:`contract.fds` — descriptors a process needs besides its connections.
- :mod:`contract.generator` — when a step is client-bound (the load
  generator's CPU and event-loop lag bounds) and the generator-accounting
  column names.
- :mod:`contract.env` — the environment variables the parts read.
"""

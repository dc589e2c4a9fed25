"""Per-step numbers derived from a model's rows (shared by charts and capacity).

All of these take one model's rows sorted by step (``Run.rows_for``) and return
one value per row, ``None`` where the inputs are missing.

Approximations, stated once:

- ``server_cpu_s`` is the server's cumulative CPU time at the end of a step, so
  the CPU a step used is the difference from the previous step's value; the
  first step's delta is its whole value and therefore includes the server's
  start-up and the ramp to the first step.
- CPU per message and the cores a server used are the hold's: the server's
  CPU in the hold window (``server_hold_cpu_s``, format 10) over the hold's
  echoes (``echo_count`` counts only those) and its seconds. The ramp's
  accepts are a connect-phase cost and stay out, and so does the CPU of the
  server's stats reporting (``server_stats_cpu_s``, format 11: the lab's
  instrument). It still charges the cost of holding idle connections to the messages,
  so it is an upper bound on the pure per-echo cost. A row without hold CPU
  (runs before format 10, or stats that did not cover the hold) takes the
  step's CPU delta (ramp + hold) instead, over the step's duration, the
  difference between ``t_end`` values (for the first step, or when ``t_end``
  is missing, its ``hold_s``).
- Memory per connection is marginal: the growth since the model's first step
  divided by the connections added since then, so the interpreter's fixed
  footprint (tens of MiB) does not drown the per-connection cost. The first
  step has no value.
"""

from __future__ import annotations

from lab.results.reader import Row


def held(row: Row) -> int | None:
    """Connections held at the end of the step (client side, else server side)."""
    for key in ("connected", "server_connections"):
        if row.get(key) is not None:
            return row[key]
    return None


def held_at_limit(row: Row) -> int | None:
    """What the server held at its limit: its own count where it reports one.
    The clients' count there also has sockets it never held: handshakes the
    kernel completed into its accept queue, and connections it accepted only
    to close whose close has not reached the client yet (which then connects
    again a pace later). At select's wall: 1,019 held, 1,097 open on the
    clients."""
    server = row.get("server_connections")
    return server if server is not None else row.get("connected")


def cpu_deltas(rows: list[Row]) -> list[float | None]:
    """CPU seconds each step used (from cumulative ``server_cpu_s``, less its
    stats reporting's ``server_stats_cpu_s`` where a run has it)."""
    out: list[float | None] = []
    prev: float | None = 0.0
    for r in rows:
        cur = r.get("server_cpu_s")
        if cur is not None and r.get("server_stats_cpu_s") is not None:
            cur -= r["server_stats_cpu_s"]
        out.append(None if cur is None or prev is None else max(cur - prev, 0.0))
        prev = cur
    return out


def step_seconds(rows: list[Row]) -> list[float | None]:
    """Wall-clock seconds of each step (``t_end`` differences, else ``hold_s``)."""
    out: list[float | None] = []
    prev_end: float | None = None
    for r in rows:
        end = r.get("t_end")
        if end is not None and prev_end is not None and end > prev_end:
            out.append(end - prev_end)
        else:
            out.append(r.get("hold_s") or None)
        prev_end = end
    return out


def hold_cpu(rows: list[Row]) -> list[float | None]:
    """The server's CPU seconds in each step's hold window; where a row has
    none (a run before format 10, or stats that did not cover its hold), the
    step's whole CPU delta stands in: an upper bound, with the ramp in it."""
    return [r["server_hold_cpu_s"] if r.get("server_hold_cpu_s") is not None else delta
            for r, delta in zip(rows, cpu_deltas(rows), strict=True)]


def hold_seconds(rows: list[Row]) -> list[float | None]:
    """The seconds ``hold_cpu`` was measured over: the hold's, or the step's
    where the row has no hold CPU."""
    return [(r.get("hold_s") or None) if r.get("server_hold_cpu_s") is not None else secs
            for r, secs in zip(rows, step_seconds(rows), strict=True)]


def cpu_per_message(rows: list[Row]) -> list[float | None]:
    """Server CPU seconds per echoed message in each step's hold."""
    out: list[float | None] = []
    for r, cpu in zip(rows, hold_cpu(rows), strict=True):
        n = r.get("echo_count")
        out.append(cpu / n if cpu is not None and n else None)
    return out


def cores_used(rows: list[Row]) -> list[float | None]:
    """Average CPU cores the server used during each step's hold (CPU s / wall s)."""
    out: list[float | None] = []
    for cpu, secs in zip(hold_cpu(rows), hold_seconds(rows), strict=True):
        out.append(cpu / secs if cpu is not None and secs else None)
    return out


def others_cores(row: Row) -> float | None:
    """Cores every other process of the server's host (and a hypervisor's
    steal) took during the step's hold: ``host_busy_s`` less the server's own
    hold CPU, per second; None where the host's CPU was not read."""
    busy, used, secs = row.get("host_busy_s"), row.get("server_hold_cpu_s"), row.get("hold_s")
    if busy is None or used is None or not secs:
        return None
    return max(busy - used, 0.0) / secs


def cores_left(rows: list[Row], cores: float, host_cpus: int | None) -> list[float]:
    """The cores each step's hold left the server: the ``cores`` it can use at
    most, less what every other process of its host (and a hypervisor's
    steal) took beyond the host's other CPUs (lab/run/hostcpu.py). A loop that
    never sleeps uses this much, not a whole core, on a shared machine.
    ``cores`` where the host's CPU was not read."""
    out: list[float] = []
    for r in rows:
        others = others_cores(r)
        out.append(cores if others is None or not host_cpus
                   else max(min(cores, host_cpus - others), 0.0))
    return out


def marginal_per_connection(rows: list[Row], key: str) -> list[float | None]:
    """``(row[key] - first[key]) / (held - first held)`` per step; None for the first."""
    base = next((r for r in rows if r.get(key) is not None and held(r)), None)
    out: list[float | None] = []
    for r in rows:
        n, v = held(r), r.get(key)
        if base is None or r is base or v is None or not n or n <= held(base):
            out.append(None)
        else:
            out.append((v - base[key]) / (n - held(base)))
    return out

"""The run.json format version: what the writer (lab/results/writer.py) writes
and the newest the reader (lab/results/reader.py) reads.

run.json format versions (bump on any change readers must know about):

- 1 (2026-11): first version. Keys: format_version, scenario (resolved, plain
  data), backend, unapplied, hosts, git_commit, started, finished, complete,
  interrupted, models{name: kind, limit, stopped_at_step, exit_code,
  log_tail, final, error}, rows (the steps.csv rows, typed).
- 2 (2026-11): ``kernel_sock_bytes`` also counts the per-socket slab objects
  (``TCP``, ``sock_inode_cache`` from /proc/slabinfo), not only sockstat's
  buffer pages, so idle connections show their kernel cost. Same keys.
  (2026-12, same version: ``hosts`` entries are written in the one spelling of
  ``lab/host/facts.py`` — ``mem_bytes``, ``port_range`` ...; its reader still
  accepts the older ``mem_total_bytes``/``memory_bytes``, so no reader changes.)
- 3 (2026-12): ``status`` (starting, running, complete, interrupted, failed):
  run.json exists from the run's first second; ``models.<name>.interrupted``
  (true for the model in progress at Ctrl-C/SIGTERM); ``models.<name>.measured``
  (false when no step of it finished); ``versions`` (Python, iolab and the
  packages a measurement depends on, lab/versions.py). Rows (and steps.csv)
  add the kernel evidence of lab/run/kernel.py: ``listen_overflows,
  listen_drops, tcp_backlog_drop, tcp_timeouts, retrans_segs`` (increases over
  the step), ``tcp_estab, tcp_syn_recv, tcp_time_wait, tcp_close_wait,
  conntrack_count`` (at its end); ``backlog`` is named when the listen
  counters grew.
- 4 (2026-12): rows (and steps.csv) add ``repeat`` (0-based pass of
  ``load.repeat``) and the generator accounting of contract/generator.py:
  ``loadgen_cpu_max, loadgen_lag_p99_ms, workers_alive, workers_expected,
  client_bound`` (empty where the loadgen reported none). New limit kinds
  ``worker_lost`` (a finding about the load, never the server's limit) and
  ``serialized``. ``models.<name>.workers_lost`` lists lost load workers
  (step, worker, host, exit_code, log_tail); with repeats,
  ``models.<name>.repeats`` holds each pass's ending and the top level speaks
  for all passes.
- 5 (2026-12): rows (and steps.csv) add the whole lab's memory at the step's
  end: ``loadgen_rss_bytes`` (every load process's resident memory, the
  master's included) and ``lab_mem_bytes`` (server RSS + load RSS + the
  server host's kernel socket memory; empty when a part is unknown).
  (2026-12, same version: ``expect_not_checked`` lists the expectations of
  servers ``--models``/``--set`` left out, ``[{server, limit?, holds?}]``;
  older runs have none, and a reader that ignores it loses only that list.)
- 6 (2026-12): rows (and steps.csv) add ``server_processes`` and
  ``server_threads`` (a custom server's process tree, lab/host/proctree.py);
  a custom server's ``server_*`` columns are filled from the kernel (its
  stats events carry ``"source": "proc"`` or ``"docker"``), and
  ``models.<name>.measured_by`` says who measured them (``server``,
  ``proc``, ``docker``; lab/run/monitors.py ``MEASURED_BY``).
  (2026-12, same version: ``models.<name>.oom_evidence`` is the kernel's
  word for an OOM kill of the server — Docker's ``State.OOMKilled``, the
  memory cgroup's ``oom_kill`` count, the kernel log line — else null; each
  ``workers_lost`` entry adds ``evidence``: an OOM kill, or the host watch's
  "host h2 stopped answering at ..."; readers that ignore them lose only them.)
- 7 (2026-12): two phases per step. ``error_rate`` is now the *hold's*:
  hold failures / hold attempts (echoes and held connections in the hold
  window; loadgen/phases.py), no longer failures / (echoes + failures) with
  connects included; rows of older runs keep their old error_rate. Rows (and
  steps.csv) add the connect phase: ``connect_p50_ms, connect_p99_ms,
  connect_max_ms, connect_attempts, connect_count, connect_retries,
  connect_error_rate, connect_s``; the kernel's SYN side ``syn_drops``
  (TCPReqQFullDrop + ListenDrops growth) and ``syncookies_sent``; churn's
  ``connects_per_s`` and ``dropped``. ``backlog`` is a limit only when the
  step held fewer connections than its target; otherwise the accept queue's
  effect is a connect-phase finding (lab/analysis/connect.py), which
  ``models.<name>`` does not store (it is derived from the rows).
- 8 (2026-12): rows (and steps.csv) add the server's own stats about slow
  clients (lab/results/serving.py): loop blocked share, echo buffered for
  slow readers, a pool's workers, queue and longest session; and the load's sockets (``load_time_wait``,
  ``load_ports_max``: lab/run/load_ports.py) and the server's accept queue
  (``accept_queue_max``, ``accept_queue_peak``: lab/run/accept_queue.py), and
  ``conntrack_drops`` (packets dropped for a full conntrack table over the
  step: lab/run/kernel.py).
- 9 (2026-12): the hold starts once every user of the step has made its
  first connection (or been refused), at most ``connect_timeout`` after the
  ramp (loadgen/collect.py, the settle), and an echo belongs to the window
  it was sent in: echoes sent in the ramp no longer reach the hold's
  latency or ``error_rate``. Rows (and steps.csv) add ``ramp_failures``
  (echoes and held connections lost outside the hold window); a step
  record adds ``t_hold``.
- 10 (2026-12): rows (and steps.csv) add the hold window's CPU:
  ``server_hold_cpu_s`` (the server's CPU in the hold window) and
  ``host_busy_s`` (the whole host's busy CPU seconds there, lab/run/hostcpu.py).
  CPU per message and the cores a server used are now the hold's
  (lab/analysis/metrics.py); older runs keep the whole step's.
- 11 (2026-12): rows (and steps.csv) add ``server_stats_cpu_s``, the CPU a
  built-in server's stats reporting took so far (servers/core.py
  ``Ticker``), and ``server_hold_cpu_s`` and the step CPU deltas leave it
  out: the lab's instrument is not the model's cost (0.8 ms a second for
  epoll, ~10 % of its CPU at 125 messages a second; 64 ms a second for
  forking at 300 children, whose PSS it reads). Older runs keep theirs.
"""

FORMAT_VERSION = 11

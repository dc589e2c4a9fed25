"""Environment variables the parts read. Only processes the lab *starts* get
them (a container's environment, a subprocess's ``env=``); the lab never sets
them in its own process to pass data between its own modules.
"""

from __future__ import annotations

# loadgen: "1" lets the load generator send to a target outside
# loopback/198.18.0.0/15 (a scenario's allow_external_targets: true).
ALLOW_EXTERNAL_TARGETS = "IOLAB_ALLOW_EXTERNAL_TARGETS"
# loadgen's Lab tab (the --ui master): the servers' events files, os.pathsep-separated.
SERVER_EVENTS = "IOLAB_SERVER_EVENTS"
# --ui: next to each server's events file, ``<server>.target.json`` says where
# the load reaches it (written by lab/run/ui.py, read by loadgen/lab_tab.py).
TARGET_FILE_SUFFIX = ".target.json"
# lab: use this Docker image as the base instead of building one.
BASE_IMAGE = "IOLAB_BASE_IMAGE"
# loadgen: "user" reads an echo's receive time in user space instead of the
# kernel's SO_TIMESTAMPNS stamp (benchmarks/loadgen_fidelity.py compares them).
RX_TIMESTAMPS = "IOLAB_RX_TIMESTAMPS"

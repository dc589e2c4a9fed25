"""Locust entry point: TCP echo load against an iolab server.

    python -m locust -f loadgen/locustfile.py --host tcp://127.0.0.1:PORT \\
        --steps 500:20s,1000:20s --step-results steps.jsonl --headless EchoUser

Users: ``EchoUser`` (echo every ``--pace`` s), ``IdleUser`` (hold only) and
``ChurnUser`` (connect, echo ``--messages-per-connection``, close, again; at
``--arrival-rate`` connects/s when > 0). With ``--groups JSON``, also one
class per group, ``Group_<name>`` (:func:`loadgen.users.group_classes`).
Name the class(es) on the command line: without names Locust runs every class of this file.
The ``StepShape`` runs ``--steps``; without them ``-u``/``-r`` work as usual.
See ``loadgen/__init__.py`` for the whole picture and ``--help`` for options.
"""

import locust  # noqa: I001 - first: Locust monkey-patches the stdlib for gevent

import os
import sys

# Locust imports this file by path; the repo root makes ``loadgen`` importable
# whatever the working directory.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from loadgen import lab_tab  # noqa: E402, F401 - the web UI's "Lab" tab (servers' own view)
from loadgen.groups import groups_in_argv  # noqa: E402
from loadgen.listeners import install  # noqa: E402
from loadgen.steps import StepShape  # noqa: E402, F401 - Locust finds the shape here
from loadgen.users import ChurnUser, EchoUser, IdleUser, group_classes  # noqa: E402, F401

# ``--groups``: one user class per group, named Group_<name> (select them on the
# command line; Locust shares the users out by their weights).
globals().update(group_classes(groups_in_argv(sys.argv)))

install(locust.events, echo_user=EchoUser, idle_user=IdleUser)

"""iolab's load generator: Locust users that open and hold TCP connections.

Layout (one job per module):

* ``options``   -- the command-line options (also in the web UI) and their parsing
* ``failures``  -- turning socket errors into the lab's failure vocabulary
* ``client``    -- one timed connection: connect, echo, wait, hold, close
* ``schedule``  -- when an EchoUser sends: closed loop or fixed (open-loop) rate
* ``users``     -- ``EchoUser`` and ``IdleUser``
* ``meter``     -- per-process counters and HDR latency histogram; the merge
* ``limits``    -- open-file and source-port ceilings of a load process
* ``runtime``   -- what the users of one process share
* ``collect``   -- worker -> master step shares via Locust custom messages
* ``steps``     -- ``--steps``: the load shape and the step-results file
* ``listeners`` -- the Locust event hooks that tie it together
* ``locustfile``-- the file to pass to ``locust -f``

Importing this package does not import Locust (so ``loadgen.options`` and
``loadgen.meter`` stay cheap to import from the lab and from tests).
"""

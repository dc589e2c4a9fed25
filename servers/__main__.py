import os
import sys

from servers.cli import main

code = main()
sys.stdout.flush()
sys.stderr.flush()
# Worker threads and children may still be blocked in recv(); the final event
# is out, so leave without waiting for them.
os._exit(code)

"""``python -m lab`` = ``scripts/run-lab``."""

import sys

from lab.cli import main

sys.exit(main())

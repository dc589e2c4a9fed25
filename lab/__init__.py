"""iolab orchestration: scenarios, backends, results, report, capacity, CLI.

This package never imports ``servers`` or ``loadgen``: it knows model names
and starts processes or containers that run them.
"""

from pathlib import Path

# The repository root: scenarios, docker/, results/ and the source trees the
# image is built from are found relative to it. Installed with `pip install .`
# (no checkout around the packages), run directories go to ./results instead,
# and the Docker backend, which builds its image from the checkout, says so.
ROOT = Path(__file__).resolve().parent.parent
CHECKOUT = (ROOT / "pyproject.toml").is_file() and (ROOT / "docker").is_dir()
RESULTS = ROOT / "results" if CHECKOUT else Path.cwd() / "results"

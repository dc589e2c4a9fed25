"""Where things are, for every test wherever it sits in the tree: the
repository root, this folder and its recorded data."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent  # the repository
DATA = TESTS / "data"

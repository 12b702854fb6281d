"""Shared test set-up: tests import helpers (like the per-consumer reference market) from this folder."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

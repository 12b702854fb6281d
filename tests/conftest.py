"""Shared test set-up: tests import helpers (like the per-consumer reference market) from this folder.

After a run that opened the live page in a browser, the summary says how fast the page went (criterion C of the
live page: its speed is measured in the test's log, never asserted against a clock).
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ARG001  pytest's hook signature
    """Report the live page's measured speed when tests/test_browser.py measured it in this run."""
    from browser import SPEED_FILE

    if SPEED_FILE.is_file() and SPEED_FILE.stat().st_mtime >= getattr(config, "_marketsim_started", 0):
        speed = json.loads(SPEED_FILE.read_text())
        terminalreporter.write_line(
            f"live page (marketsim viz, quickstart): {speed['rate']:.1f} steps/s while playing, every chart "
            f"redrawn each step (measured over {speed['seconds']:.0f} s; {SPEED_FILE})"
        )


def pytest_configure(config) -> None:
    """Remember when the run started, so an older measurement is not reported as this run's."""
    import time

    config._marketsim_started = time.time()

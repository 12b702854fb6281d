"""Worker processes that die with their coordinator, shared by the tournament's pool and meta-training's actors.

``concurrent.futures`` workers whose coordinator is killed (``kill -9``) would otherwise wait forever for work.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from contextlib import suppress


def die_with_parent(parent: int) -> None:
    """Make this worker die when its coordinator ``parent`` does: PR_SET_PDEATHSIG on Linux, a watching thread
    elsewhere."""
    armed = False
    if sys.platform.startswith("linux"):
        with suppress(OSError, AttributeError):
            armed = ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0) == 0  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the coordinator died before we could ask
        os._exit(1)
    if not armed:
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="marketsim-orphan-watch").start()


def _watch_parent(parent: int) -> None:
    """Exit as soon as this process's parent is no longer ``parent`` (it died and we were re-parented)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)

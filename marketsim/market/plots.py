"""matplotlib, set up once for files only (the Agg backend), and the smoothing every wing's plots share.

Plot functions live beside what they draw (``run.plot_run``, ``learning.plots``, ``tournament.plots``) and take
``plt`` from here; this module imports nothing of marketsim, so no plot creates an import cycle.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only; never open a window
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["plt", "smooth"]


def smooth(values, window: int):
    return values.rolling(window, min_periods=1).mean() if window > 1 else values

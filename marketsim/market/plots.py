"""matplotlib, set up once for files only (the Agg backend), and what every wing's plots share.

Plot functions live beside what they draw (``run.plot_run``, ``learning.plots``, ``tournament.plots``) and take
``plt`` from here; this module imports nothing of marketsim, so no plot creates an import cycle. Shared here too:
the smoothing, the "not enough data" panel (a plot never draws an empty or one-point panel that looks broken),
the warning headline (a plot says when its numbers are not what a reader would assume) and distinct line styles
(a line never hides another of the same shape).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never open a window
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

__all__ = [
    "NOT_ENOUGH_DATA",
    "WARNING_COLOR",
    "figure_texts",
    "headline",
    "legend_below",
    "line_style",
    "not_enough_data",
    "plt",
    "plural",
    "save",
    "smooth",
]

NOT_ENOUGH_DATA = "not enough data"
WARNING_COLOR = "firebrick"
_WRAP = 100  # characters per line of a warning in a headline
_MARK_ALL = 80  # a series of at most this many points gets a marker on every point
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def smooth(values, window: int):
    """Rolling mean over ``window`` rows (the first rows average what there is); ``values`` when window is 1."""
    return values.rolling(window, min_periods=1).mean() if window > 1 else values


def not_enough_data(ax: Axes, detail: str) -> None:
    """Say "not enough data" and why in the middle of ``ax``, instead of an empty or one-point panel."""
    ax.text(
        0.5,
        0.5,
        f"{NOT_ENOUGH_DATA}\n{detail}",
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=11,
        color="0.35",
        wrap=True,
    )
    ax.set_xticks([])
    ax.set_yticks([])


def headline(fig: Figure, title: str, warnings: Sequence[str] = ()) -> None:
    """The figure's title; with warnings it turns red and lists each one, so nobody reads past them."""
    if not warnings:
        fig.suptitle(title)
        return
    lines = [title, *(textwrap.fill(f"\u26a0 {w}", _WRAP) for w in warnings)]
    fig.suptitle("\n".join(lines), color=WARNING_COLOR, fontsize="medium")


def line_style(i: int, n_points: int) -> dict:
    """Keyword arguments that tell line ``i`` apart: its own marker, and a width that shrinks with ``i``.

    Earlier lines are wider, so a later line drawn exactly on top of one still shows it as an outline; a short
    series marks every point, a long one a dozen, so dense cycles stay readable.
    """
    return {
        "marker": _MARKERS[i % len(_MARKERS)],
        "markevery": 1 if n_points <= _MARK_ALL else max(1, n_points // 12),
        "ms": 3.5,
        "lw": max(1.0, 2.8 - 0.6 * i),
        "alpha": 0.85,
    }


def legend_below(fig: Figure, entries: int) -> None:
    """The figure's legend below its panels, in rows of up to six, so it never covers data or the headline."""
    fig.legend(loc="outside lower center", ncol=max(1, min(6, entries)), fontsize="small", frameon=False)


def plural(n: int, noun: str) -> str:
    """``"1 step"``, ``"3 steps"``: a count a reader can take in at a glance."""
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def figure_texts(fig: Figure) -> list[str]:
    """Every non-empty text drawn on ``fig`` (titles, labels, annotations, legends): what a reader can read."""
    return [t.get_text() for t in fig.findobj(matplotlib.text.Text) if t.get_text()]


def save(fig: Figure, path: Path, dpi: int = 110) -> Path:
    """Write the figure to ``path``, close it and return the path."""
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path

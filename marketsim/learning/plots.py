"""The training curve of ``marketsim train`` (an experiment's plots stand beside it in ``experiment.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from marketsim.market.plots import legend_below, not_enough_data, plt, plural, save

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure


def plot_curve(curve: pd.DataFrame, path: Path, title: str) -> Path:
    """Write ``curve_figure`` to ``path`` (a PNG) and return the path."""
    return save(curve_figure(curve, title), path)


def curve_figure(curve: pd.DataFrame, title: str) -> Figure:
    """Profit per step and its moving average; S on a second axis where it was measured.

    A curve of fewer than two steps (per worker) is a "not enough data" panel, not an empty one.
    """
    fig, ax = plt.subplots(figsize=(9, 4.8), layout="constrained")
    ax.set_title(title)
    groups = list(curve.groupby("worker")) if "worker" in curve else [(None, curve)]
    longest = max((len(part) for _, part in groups), default=0)
    if longest < 2:
        not_enough_data(ax, f"{plural(longest, 'training step')} logged; a curve needs at least 2")
        return fig
    for worker, part in groups:
        label = "" if worker is None else f" (worker {worker})"
        ax.plot(part["step"], part["profit"], lw=0.5, alpha=0.35, label=f"profit per step{label}")
        ax.plot(part["step"], part["moving_average"], lw=1.6, label=f"moving average{label}")
    ax.set(xlabel="training step", ylabel="profit")
    ax.grid(alpha=0.3)
    entries = 2 * len(groups)
    scored = curve.dropna(subset=["S"])
    if len(scored):
        right = ax.twinx()
        right.plot(scored["step"], scored["S"], "o-", color="black", ms=3, lw=1.0, label="score S (1 = optimal)")
        right.set_ylabel("normalised score S")
        entries += 1
    legend_below(fig, entries)
    return fig

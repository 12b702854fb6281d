"""The training curve of ``marketsim train`` (an experiment's plots stand beside it in ``experiment.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from marketsim.market.plots import plt

if TYPE_CHECKING:
    import pandas as pd


def plot_curve(curve: pd.DataFrame, path: Path, title: str) -> Path:
    """Profit per step and its moving average; S on a second axis where it was measured."""
    fig, ax = plt.subplots(figsize=(9, 4.5), layout="constrained")
    groups = curve.groupby("worker") if "worker" in curve else [(None, curve)]
    for worker, part in groups:
        label = "" if worker is None else f" (worker {worker})"
        ax.plot(part["step"], part["profit"], lw=0.5, alpha=0.35, label=f"profit per step{label}")
        ax.plot(part["step"], part["moving_average"], lw=1.6, label=f"moving average{label}")
    ax.set(title=title, xlabel="training step", ylabel="profit")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    scored = curve.dropna(subset=["S"])
    if len(scored):
        right = ax.twinx()
        right.plot(scored["step"], scored["S"], "o-", color="black", ms=3, lw=1.0, label="score S (1 = optimal)")
        right.set_ylabel("normalised score S")
        more_handles, more_labels = right.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    ax.legend(handles, labels, loc="lower right", fontsize="small")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

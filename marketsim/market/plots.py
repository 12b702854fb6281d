"""Plots of a run: prices against the Nash and monopoly benchmarks, market shares, profits.

Sets matplotlib's file-only Agg backend once; every wing's plots module takes ``plt`` from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only; never open a window
import matplotlib.pyplot as plt  # noqa: E402

if TYPE_CHECKING:
    from marketsim.market.run import RunResult

__all__ = ["plot_run", "plt", "smooth"]


def smooth(values, window: int):
    return values.rolling(window, min_periods=1).mean() if window > 1 else values


def plot_run(result: RunResult, out: Path) -> list[Path]:
    """Write prices.png, shares.png and profits.png into ``out``; returns their paths."""
    steps = result.steps
    names = [s.name for s in result.sellers]
    window = max(1, len(steps) // 50)
    written = []
    for metric, title, ylabel in (
        ("price", "Posted prices", "price"),
        ("share", f"Market shares (rolling mean over {window} steps)", "share of shoppers"),
        ("profit", f"Profit per step (rolling mean over {window} steps)", "profit"),
    ):
        fig, ax = plt.subplots(figsize=(9, 4.5), layout="constrained")
        for i, name in enumerate(names):
            series = steps[f"{name}.{metric}"]
            ax.plot(steps["step"], series if metric == "price" else smooth(series, window), label=name, lw=1.3)
            if metric == "price":
                color = ax.lines[-1].get_color()
                ax.axhline(result.benchmarks.nash.prices[i], color=color, ls=":", lw=0.9)
                ax.axhline(result.benchmarks.monopoly.prices[i], color=color, ls="--", lw=0.9)
        if metric == "price":
            ax.plot([], [], color="grey", ls=":", label="Nash (dotted)")
            ax.plot([], [], color="grey", ls="--", label="monopoly (dashed)")
        ax.set(title=f"{result.scenario.name}: {title}", xlabel="step", ylabel=ylabel)
        ax.legend(loc="best", fontsize="small", ncol=2)
        ax.grid(alpha=0.3)
        path = out / f"{metric}s.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written

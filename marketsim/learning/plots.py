"""Plots of the learning wing: an experiment's histograms and impulse response, a training curve."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from marketsim.market.plots import plt

if TYPE_CHECKING:
    import pandas as pd

    from marketsim.learning.experiment import ExperimentResult


def plot_experiment(result: ExperimentResult, out: Path) -> list[Path]:
    """Histograms of Δ, prices and steps to convergence, and the mean impulse response."""
    written = []
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), layout="constrained")
    gain = result.profit_gain.mean(axis=1)
    axes[0].hist(gain, bins=30, color="tab:blue", alpha=0.85)
    axes[0].set(title=f"Profit gain Δ (mean {gain.mean():.2f})", xlabel="Δ (0 Nash, 1 monopoly)", ylabel="sessions")
    prices = result.cycle.prices.mean(axis=1)
    axes[1].hist(prices, bins=30, color="tab:orange", alpha=0.85)
    bench = result.plan.benchmarks
    axes[1].axvline(np.mean(bench.nash.prices), color="k", ls=":", label="Nash")
    axes[1].axvline(np.mean(bench.monopoly.prices), color="k", ls="--", label="monopoly")
    axes[1].set(title="Mean price on the limit cycle", xlabel="price")
    axes[1].legend(fontsize="small")
    steps = result.steps[result.converged]
    axes[2].hist(steps if steps.size else [0], bins=30, color="tab:green", alpha=0.85)
    axes[2].set(title=f"Steps to convergence ({result.converged.mean():.0%} converged)", xlabel="steps")
    fig.suptitle(f"{result.plan.scenario.name}: {len(result.seeds)} sessions")
    written.append(out / "histograms.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)
    if result.impulse is not None:
        written.append(_plot_impulse(result, out / "impulse_response.png"))
    return written


def _plot_impulse(result: ExperimentResult, path: Path) -> Path:
    imp, names, bench = result.impulse, result.plan.names, result.plan.benchmarks
    fig, ax = plt.subplots(figsize=(9, 4.5), layout="constrained")
    for j, name in enumerate(names):
        series = imp.prices[:, j, :]
        label = f"{name} (deviates)" if j == imp.deviator else name
        ax.plot(imp.periods, series.mean(axis=0), marker="o", ms=3, label=label)
        ax.fill_between(imp.periods, *np.quantile(series, [0.25, 0.75], axis=0), alpha=0.15)
    ax.axhline(np.mean(bench.nash.prices), color="k", ls=":", lw=0.9, label="Nash")
    ax.axhline(np.mean(bench.monopoly.prices), color="k", ls="--", lw=0.9, label="monopoly")
    ax.axvline(0, color="grey", lw=0.8)
    ax.set(
        title=f"Deviation to the static best response at period 0 (mean, IQR over {len(imp.prices)} sessions)",
        xlabel="period relative to the deviation",
        ylabel="price",
    )
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


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

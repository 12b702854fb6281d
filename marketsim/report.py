"""Plots of a run: prices against the Nash and monopoly benchmarks, market shares, profits."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
import numpy as np

matplotlib.use("Agg")  # files only; never open a window
import matplotlib.pyplot as plt  # noqa: E402

if TYPE_CHECKING:
    from marketsim.metagame import MetaGameReport
    from marketsim.run import RunResult


def _smooth(values, window: int):
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
            ax.plot(steps["step"], series if metric == "price" else _smooth(series, window), label=name, lw=1.3)
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


def plot_experiment(result, out: Path) -> list[Path]:
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


def _plot_impulse(result, path: Path) -> Path:
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


def plot_tournament(rows, matrix, results, out: Path, match_key: str | None = None) -> list[Path]:
    """Payoff heatmap, per-entrant profit box plots and the price paths of one match."""
    written = []
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * len(matrix), 1.0 + 0.6 * len(matrix)), layout="constrained")
    image = ax.imshow(matrix.to_numpy(dtype=float), cmap="viridis")
    ax.set_xticks(range(len(matrix.columns)), matrix.columns, rotation=45, ha="right")
    ax.set_yticks(range(len(matrix.index)), matrix.index)
    for (i, j), value in np.ndenumerate(matrix.to_numpy(dtype=float)):
        if np.isfinite(value):
            ax.text(j, i, f"{value:.3g}", ha="center", va="center", fontsize=7, color="w")
    ax.set(title="Mean profit of the row entrant against the column entrant", xlabel="opponent", ylabel="entrant")
    fig.colorbar(image, ax=ax, shrink=0.8)
    written.append(out / "payoff_heatmap.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    scored = rows[np.isfinite(rows["mean_profit"])]
    order = scored.groupby("entrant")["mean_profit"].mean().sort_values(ascending=False).index.tolist()
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(order)), 4.2), layout="constrained")
    ax.boxplot([scored.loc[scored["entrant"] == e, "mean_profit"] for e in order], tick_labels=order)
    ax.set(title="Evaluation profit per match", ylabel="mean profit per step")
    ax.tick_params(axis="x", rotation=45)
    ax.grid(alpha=0.3)
    written.append(out / "profit_boxplot.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    chosen = next((r for r in results if r.key == match_key), None) or next((r for r in results if r.prices), None)
    if chosen is not None:
        fig, ax = plt.subplots(figsize=(9, 4), layout="constrained")
        for seat, path in zip(chosen.seats, chosen.prices):
            ax.plot(path, label=seat, lw=1.2)
        ax.set(title=f"Evaluation prices of match {chosen.key}", xlabel="evaluation step (sampled)", ylabel="price")
        ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
        written.append(out / "price_paths.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    return written


def tournament_html(title: str, sections: list[tuple[str, str]], images: list[Path]) -> str:
    """A self-contained HTML report: headed sections of HTML tables, then the plots (relative links)."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{title}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;"
        "font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
        "th{background:#f3f3f3}img{max-width:100%;margin:1em 0}</style></head><body>",
        f"<h1>{title}</h1>",
    ]
    for heading, body in sections:
        parts.append(f"<h2>{heading}</h2>{body}")
    parts.append("<h2>Plots</h2>")
    parts += [f"<div><img src='{p.name}' alt='{p.stem}'></div>" for p in images]
    parts.append("</body></html>")
    return "\n".join(parts)


def plot_meta_game(game: MetaGameReport, out: Path) -> list[Path]:
    """The replicator trajectory from the uniform population, and α-Rank's stationary mass as α grows."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained")
    for i, name in enumerate(game.entrants):
        left.plot(game.replicator.times, game.replicator.trajectory[:, i], label=name, lw=1.4)
        right.plot(game.alpha_rank.alphas, game.alpha_rank.distributions[:, i], label=name, lw=1.4)
    left.set(title="Replicator dynamics from the uniform population", xlabel="time (payoff spread = 1)")
    left.set_ylabel("population share")
    right.set(xscale="log", title=f"α-Rank mass as the ranking intensity α grows (m = {game.alpha_rank.population})")
    right.set(xlabel="α", ylabel="stationary mass")
    right.axvline(game.alpha_rank.alpha, color="k", lw=0.8, ls="--")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    left.legend(fontsize="small", ncol=2)
    path = out / "meta_game.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]

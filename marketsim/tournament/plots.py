"""Plots and the HTML page of a tournament: payoff heatmap, leaderboard, price paths, the meta-game."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from marketsim.market.plots import plt

if TYPE_CHECKING:
    from marketsim.tournament.metagame import MetaGameReport


def plot_tournament(rows, matrix, results, out: Path, match_key: str | None = None) -> list[Path]:
    """Payoff heatmap, per-entrant profit box plots and the price paths of one match (each when there is data)."""
    written = []
    if matrix.size:
        written.append(_payoff_heatmap(matrix, out))
    scored = rows[np.isfinite(rows["mean_profit"].astype(float))]  # float also when no match scored (no rows)
    if len(scored):
        written.append(_profit_boxplot(scored, out))
    chosen = next((r for r in results if r.key == match_key), None) or next((r for r in results if r.prices), None)
    if chosen is not None:
        written.append(_price_paths(chosen, out))
    return written


def _payoff_heatmap(matrix, out: Path) -> Path:
    """payoff_heatmap.png: mean profit of each row entrant against each column entrant."""
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * len(matrix), 1.0 + 0.6 * len(matrix)), layout="constrained")
    image = ax.imshow(matrix.to_numpy(dtype=float), cmap="viridis")
    ax.set_xticks(range(len(matrix.columns)), matrix.columns, rotation=45, ha="right")
    ax.set_yticks(range(len(matrix.index)), matrix.index)
    for (i, j), value in np.ndenumerate(matrix.to_numpy(dtype=float)):
        if np.isfinite(value):
            ax.text(j, i, f"{value:.3g}", ha="center", va="center", fontsize=7, color="w")
    ax.set(title="Mean profit of the row entrant against the column entrant", xlabel="opponent", ylabel="entrant")
    fig.colorbar(image, ax=ax, shrink=0.8)
    return _saved(fig, out / "payoff_heatmap.png")


def _profit_boxplot(scored, out: Path) -> Path:
    """profit_boxplot.png: each entrant's evaluation profit per finished match, best mean first."""
    order = scored.groupby("entrant")["mean_profit"].mean().sort_values(ascending=False).index.tolist()
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(order)), 4.2), layout="constrained")
    ax.boxplot([scored.loc[scored["entrant"] == e, "mean_profit"] for e in order], tick_labels=order)
    ax.set(title="Evaluation profit per match", ylabel="mean profit per step")
    ax.tick_params(axis="x", rotation=45)
    ax.grid(alpha=0.3)
    return _saved(fig, out / "profit_boxplot.png")


def _price_paths(chosen, out: Path) -> Path:
    """price_paths.png: the evaluation prices of one match, per seat."""
    fig, ax = plt.subplots(figsize=(9, 4), layout="constrained")
    for seat, path in zip(chosen.seats, chosen.prices):
        ax.plot(path, label=seat, lw=1.2)
    ax.set(title=f"Evaluation prices of match {chosen.key}", xlabel="evaluation step (sampled)", ylabel="price")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return _saved(fig, out / "price_paths.png")


def _saved(fig, path: Path) -> Path:
    """Write the figure to ``path`` and close it."""
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


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

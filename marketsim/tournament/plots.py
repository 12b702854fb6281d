"""Plots and the HTML page of a tournament: payoff heatmap, leaderboard, price paths, the meta-game."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.patches import Rectangle

from marketsim.market.plots import WARNING_COLOR, legend_below, line_style, not_enough_data, plt, plural, save

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from marketsim.tournament.metagame import MetaGameReport


FORFEIT_NOTE = "hatched: includes forfeits (the faulty entrant scores 0); left out of the colour scale"
BLANK_NOTE = "blank: no finished match between the two"


def plot_tournament(
    rows, matrix, results, out: Path, match_key: str | None = None, ranking: Sequence[str] = ()
) -> list[Path]:
    """Payoff heatmap, per-entrant profit box plots and the price paths of one match (each when there is data).

    ``ranking`` (the leaderboard's entrants, best first) picks the match whose prices are drawn, unless
    ``match_key`` names one (see ``featured_match``).
    """
    figures = tournament_figures(rows, matrix, results, match_key, ranking)
    return [save(fig, out / f"{name}.png") for name, fig in figures.items()]


def tournament_figures(
    rows, matrix, results, match_key: str | None = None, ranking: Sequence[str] = ()
) -> dict[str, Figure]:
    """The figures of ``plot_tournament`` by file stem, for a caller that wants to look before writing."""
    figures = {}
    if matrix.size:
        figures["payoff_heatmap"] = payoff_heatmap_figure(matrix, forfeited_cells(rows))
    scored = rows[np.isfinite(rows["mean_profit"].astype(float))]  # float also when no match scored (no rows)
    if len(scored):
        figures["profit_boxplot"] = _profit_boxplot(scored)
    chosen, why = featured_match(results, ranking, match_key)
    if chosen is not None:
        figures["price_paths"] = price_paths_figure(chosen, why)
    return figures


def featured_match(results, ranking: Sequence[str], match_key: str | None = None) -> tuple[Any, str]:
    """The match whose price paths are drawn, and why: the one ``match_key`` names, else the most telling one.

    Most telling is the first finished match between the two best-ranked entrants that met (the leaderboard's
    top two when they did, better-ranked seat first), else the first that the best-ranked entrant played, else
    the first with prices at all. ``(None, "")`` when no match recorded prices.
    """
    priced = [r for r in results if r.prices]
    if match_key is not None:
        asked = next((r for r in priced if r.key == match_key), None)
        if asked is not None:
            return asked, "the match asked for"
    finished = [r for r in priced if r.status == "ok"]
    first: dict[tuple[str, ...], Any] = {}
    for result in finished:
        first.setdefault(tuple(result.seats), result)
    rank = {name: i for i, name in enumerate(ranking)}
    for i, j in sorted(itertools.combinations(range(len(ranking)), 2), key=lambda p: (p[0] + p[1], p[0])):
        a, b = ranking[i], ranking[j]
        match = first.get((a, b)) or first.get((b, a))
        if match is not None:
            return match, f"leaderboard #{i + 1} {a} against #{j + 1} {b}"
    for name in ranking:
        match = next((r for r in finished if name in r.seats), None)
        if match is not None:
            return match, f"a match of leaderboard #{rank[name] + 1} {name}"
    return (priced[0], "the first match with prices") if priced else (None, "")


def forfeited_cells(rows) -> set[tuple[str, str]]:
    """(entrant, opponent) cells of the payoff matrix whose mean includes a forfeit (a faulty seat's 0)."""
    if rows.empty:
        return set()
    duo = rows[rows.groupby("key")["seat"].transform("size") == 2]
    hit = duo[duo["faulted"].astype(bool) & np.isfinite(duo["mean_profit"].astype(float))]
    return set(zip(hit["entrant"], hit["opponents"]))


def payoff_heatmap_figure(matrix, forfeited: set[tuple[str, str]] = frozenset()) -> Figure:
    """Mean profit of each row entrant against each column entrant.

    The colour scale spans the cells untouched by forfeits, so one faulty entrant's zeros do not wash out
    every other difference; forfeit cells are hatched and still show their value; a note under the plot says so.
    """
    values = matrix.to_numpy(dtype=float)
    hit = np.array([[(me, opp) in forfeited for opp in matrix.columns] for me in matrix.index], dtype=bool)
    hit = hit.reshape(values.shape)
    clean = values[np.isfinite(values) & ~hit]
    scale = clean if clean.size else values[np.isfinite(values)]
    low, high = (float(scale.min()), float(scale.max())) if scale.size else (0.0, 1.0)
    fig, ax = plt.subplots(figsize=(2.2 + 0.7 * len(matrix), 1.6 + 0.6 * len(matrix)), layout="constrained")
    image = ax.imshow(np.ma.masked_array(values, mask=hit | ~np.isfinite(values)), cmap="viridis", vmin=low, vmax=high)
    ax.set_xticks(range(len(matrix.columns)), matrix.columns, rotation=45, ha="right")
    ax.set_yticks(range(len(matrix.index)), matrix.index)
    for (i, j), value in np.ndenumerate(values):
        if hit[i, j]:
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="0.85", hatch="///", edgecolor="0.55", lw=0))
        if np.isfinite(value):
            bright = hit[i, j] or (high > low and (value - low) / (high - low) > 0.6)
            ax.text(j, i, f"{value:.3g}", ha="center", va="center", fontsize=7, color="k" if bright else "w")
    ax.set(title="Mean profit of the row entrant against the column entrant", xlabel="opponent", ylabel="entrant")
    fig.colorbar(image, ax=ax, shrink=0.8)
    notes = [FORFEIT_NOTE] if hit.any() else []
    notes += [BLANK_NOTE] if not np.isfinite(values).all() else []
    if notes:
        fig.supxlabel("\n".join(notes), fontsize="small", color=WARNING_COLOR if hit.any() else "0.3")
    return fig


def _profit_boxplot(scored) -> Figure:
    """Each entrant's evaluation profit per finished match, best mean first."""
    order = scored.groupby("entrant")["mean_profit"].mean().sort_values(ascending=False).index.tolist()
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(order)), 4.2), layout="constrained")
    ax.boxplot([scored.loc[scored["entrant"] == e, "mean_profit"] for e in order], tick_labels=order)
    ax.set(title="Evaluation profit per match", ylabel="mean profit per step")
    ax.tick_params(axis="x", rotation=45)
    ax.grid(alpha=0.3)
    return fig


def price_paths_figure(chosen, why: str = "") -> Figure:
    """The evaluation prices of one match, per seat; "not enough data" when a path has under two points."""
    fig, ax = plt.subplots(figsize=(9, 4.4), layout="constrained")
    ax.set_title(f"Evaluation prices of match {chosen.key}" + (f"\n({why})" if why else ""))
    shortest = min((len(path) for path in chosen.prices), default=0)
    if shortest < 2:
        not_enough_data(ax, f"{plural(shortest, 'sampled price')} per seat; a path needs at least 2")
        return fig
    for seat, (name, path) in enumerate(zip(chosen.seats, chosen.prices)):
        ax.plot(path, label=f"seat {seat}: {name}", **line_style(seat, len(path)))
    ax.set(xlabel="evaluation step (sampled)", ylabel="price")
    ax.grid(alpha=0.3)
    legend_below(fig, len(chosen.seats))
    return fig


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
    return [save(fig, out / "meta_game.png")]

"""A tournament's results folder: the tables, the meta-game analysis, exploitability, plots and the HTML report.

Written once the matches (and any exploit runs) are stored; kept apart from ``marketsim.tournament.play`` (files,
schedules, playing matches) so that the exploit runs, which build on that module, can be reported here too.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from marketsim.config.tournament import LoadedTournament
from marketsim.tables import write_csv
from marketsim.tournament.exploit import exploitability, with_exploitability
from marketsim.tournament.matches import Fault, MatchResult
from marketsim.tournament.metagame import MetaGameReport, analyse_meta_game

__all__ = ["tournament_provenance", "write_outputs"]


def write_outputs(
    results: list[MatchResult],
    tournament: LoadedTournament,
    out: Path,
    match_key: str | None = None,
    exploit: list[MatchResult] | None = None,
):
    """matches.csv, faults.csv, leaderboard.csv, payoff/pairing tables, summary.json, plots and report.html.

    summary.json["provenance"] and matches.csv-metadata.json record the distribution and version that provided
    each entrant's strategy, the choice model and the observers. When the market has observers, their results
    are in observers.json (per finished match) and summarised in summary.json["observers"][NAME].

    With ``exploit`` (the results of ``marketsim.tournament.exploit.run_exploits``) also exploitability.csv, its columns
    in the leaderboard and ``summary.json["exploitability"]``.
    """
    import pandas as pd

    from marketsim.tournament import results as analysis
    from marketsim.tournament.plots import plot_meta_game, plot_tournament, tournament_html

    rows = analysis.match_rows(results, tournament.spec.on_fault)
    board = analysis.leaderboard(rows)
    matrix = analysis.payoff_matrix(rows)
    pairs = analysis.pairings(rows)
    faults = pd.DataFrame([r.fault.as_row() for r in results if r.fault is not None])
    faults = faults if len(faults) else pd.DataFrame(columns=[f.name for f in dataclasses.fields(Fault)])
    game = _meta_game(rows, matrix, tournament)
    if game is not None:  # α-Rank, Nash averaging and Moran columns beside the profit ranking
        columns = pd.DataFrame.from_dict(game.ranking_columns(), orient="index")
        board = board.merge(columns, left_on="entrant", right_index=True, how="left")
    exploitable = None
    if exploit is not None:  # exploitability columns after the rankings
        exploitable = exploitability(exploit, rows)
        board = with_exploitability(board, exploitable)
        write_csv(exploitable, out / "exploitability.csv")
    write_csv(rows, out / "matches.csv")
    provenance = tournament_provenance(tournament, exploit is not None)
    _write_json(out / "matches.csv-metadata.json", _matches_metadata(tournament, list(rows.columns), provenance))
    write_csv(faults, out / "faults.csv")
    write_csv(board, out / "leaderboard.csv")
    write_csv(matrix, out / "payoff_matrix.csv", index=True)
    write_csv(pairs, out / "pairings.csv")
    summary = {
        "tournament": tournament.spec.name,
        "digest": tournament.digest(),
        "matches": len(results),
        "faults": len(faults),
        "leaderboard": board.to_dict(orient="records"),
        "provenance": provenance,
    }
    sections = [("Leaderboard", board.to_html(index=False, float_format="%.4f"))]
    if tournament.market.observers:
        summary["observers"] = analysis.observer_summary(results)
        _write_json(out / "observers.json", _observer_matches(results))
        sections += _observer_sections(summary["observers"])
    if game is not None:
        summary["meta_game"] = game.summary()
        sections += _meta_game_sections(game)
    if exploitable is not None:
        budget = tournament.spec.exploit.model_dump(mode="json", exclude={"time_limit"})
        summary["exploitability"] = {**budget, "entrants": exploitable.to_dict(orient="records")}
        title = f"Exploitability (a {budget['strategy']} best-responder trained {budget['train_steps']:,} steps)"
        sections.append((title, exploitable.to_html(index=False, float_format="%.4f")))
    if len(board) >= 2:
        a, b = board["entrant"].iloc[0], board["entrant"].iloc[1]
        summary["ab_test"] = analysis.ab_test(rows, a, b).as_row()
        test = pd.DataFrame([summary["ab_test"]])
        sections.append((f"A/B: {a} vs {b} on paired seeds", test.to_html(index=False, float_format="%.4g")))
    sections += [
        ("Payoff matrix (mean profit of row against column)", matrix.to_html(float_format="%.4f")),
        ("Collusion and consumer surplus per pairing", pairs.to_html(index=False, float_format="%.4f")),
        (f"Faults ({len(faults)})", faults.to_html(index=False) if len(faults) else "<p>none</p>"),
    ]
    ranking = list(board.sort_values("rank", kind="stable")["entrant"]) if len(board) else []
    images = plot_tournament(rows, matrix, results, out, match_key, ranking)
    if game is not None:
        images += plot_meta_game(game, out)
    _write_json(out / "summary.json", summary)
    (out / "report.html").write_text(tournament_html(f"Tournament {tournament.spec.name}", sections, images))
    return summary, board


def tournament_provenance(tournament: LoadedTournament, best_responder: bool = False) -> dict[str, Any]:
    """Who provided each entrant's strategy, the market's choice model and its observers (distribution, version).

    ``entrants`` (the field's rivals included) maps each display name to its strategy as the file names it
    and that strategy's registry provenance; ``best_responder`` is there when exploit runs were reported.
    """
    from marketsim.config.plugins import plugin_registry

    registry = plugin_registry(tuple(tournament.spec.plugins), tournament.plugin_dirs)
    spec, market = tournament.spec, tournament.market
    entrants = {e.name: {"strategy": e.strategy, **registry.get(e.strategy).provenance} for e in spec.entrants}
    entrants |= {f.name: {"strategy": f.strategy, **registry.get(f.strategy).provenance} for f in spec.field}
    found: dict[str, Any] = {
        "entrants": entrants,
        "choice_model": registry.extension("choice model", market.consumers.choice.model).provenance,
        "observers": {o.observer: registry.extension("observer", o.observer).provenance for o in market.observers},
    }
    if best_responder:
        found["best_responder"] = {"strategy": spec.exploit.strategy, **registry.get(spec.exploit.strategy).provenance}
    return found


def _matches_metadata(tournament: LoadedTournament, columns: list[str], provenance: dict[str, Any]) -> dict:
    """The metadata that travels with matches.csv (named after the CSV-on-the-Web ``<file>-metadata.json`` rule)."""
    return {
        "url": "matches.csv",
        "tournament": tournament.spec.name,
        "digest": tournament.digest(),
        "columns": columns,
        "provenance": provenance,
    }


def _observer_matches(results: list[MatchResult]) -> list[dict[str, Any]]:
    """observers.json: every finished match's observer results, with what identifies the match."""
    keep = ("key", "index", "seed", "seats", "observers")
    return [{name: getattr(r, name) for name in keep} for r in results if r.status == "ok"]


def _observer_sections(summary: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """Report sections: per observer, its numeric metrics averaged over all finished matches and per pairing."""
    import pandas as pd

    sections = []
    for name, found in summary.items():
        table = pd.DataFrame.from_dict({"(all)": found["mean"], **found["by_pairing"]}, orient="index")
        html = table.rename_axis("pairing").to_html(float_format="%.4g")
        sections.append((f"Observer {name} (mean over {found['matches']} finished matches)", html))
    return sections


def _write_json(path: Path, data: Any) -> None:
    """Indented JSON with a final newline; numpy scalars become plain numbers."""
    path.write_text(json.dumps(data, indent=2, default=_plain) + "\n")


def _meta_game(rows: Any, matrix: Any, tournament: LoadedTournament) -> MetaGameReport | None:
    """The meta-game analysis of a round robin whose every pairing was played; None otherwise."""
    from marketsim.tournament import results as analysis

    values = matrix.to_numpy(dtype=float)
    if tournament.spec.format != "round_robin" or values.size == 0 or not np.isfinite(values).all():
        return None
    names = [str(n) for n in matrix.index]
    return analyse_meta_game(names, values, analysis.payoff_samples(rows, names), seed=tournament.spec.seed)


def _meta_game_sections(game: MetaGameReport) -> list[tuple[str, str]]:
    """Report sections: every symmetric equilibrium, then the unique rankings with their intervals."""
    import pandas as pd

    how = "exact support enumeration" if game.equilibria.method == "support_enumeration" else "replicator sampling"
    equilibria = pd.DataFrame(game.equilibria_rows()).to_html(index=False, float_format="%.4f")
    ranks = pd.DataFrame.from_dict(game.ranking_columns(), orient="index").rename_axis("entrant")
    ranks = ranks.sort_values("alpha_rank", ascending=False).to_html(float_format="%.4f")
    return [
        (f"Symmetric equilibria of the meta-game: {game.equilibria.count} ({how})", equilibria),
        ("Rankings: α-Rank, Nash averaging, Moran process (95% bootstrap intervals)", ranks),
    ]


def _plain(value: Any) -> Any:
    """JSON fallback for numpy scalars."""
    return value.item() if hasattr(value, "item") else str(value)

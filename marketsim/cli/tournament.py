"""`marketsim tournament`: play (or resume) a tournament, print its leaderboard and write its results folder."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from marketsim.cli.console import counting_progress, out
from marketsim.config.kinds import check_kind
from marketsim.config.tournament import LoadedTournament, best_responder_problem, load_tournament, tournament_record
from marketsim.outputs import OutputError, check_output_folder, default_folder, open_resumable_folder
from marketsim.tournament.executors import ExecutorUnavailable, make_executor
from marketsim.tournament.play import ResumeError, TournamentInterrupted, run_tournament, schedule
from marketsim.tournament.report import write_outputs


def _results_folder(args: argparse.Namespace, tournament: LoadedTournament) -> Path:
    """The results folder, checked before any work: refused when it exists unless --force or --resume."""
    folder = args.out or default_folder(tournament.spec.name)
    if not args.resume:  # a resumed tournament adds to its own folder; anything else follows the folder policy
        if (folder / "results.sqlite").is_file() and not args.force:
            raise OutputError(f"{folder}: holds a tournament's results; pass --resume to continue it, or --force")
        check_output_folder(folder, args.force)
    return folder


def cmd_tournament(args: argparse.Namespace) -> int:
    """Run (or resume) a tournament and write its results folder."""
    check_kind(args.file, "tournament")
    tournament = load_tournament(args.file, plugin_dirs=args.plugin_dir)
    refused = best_responder_problem(tournament) if args.exploit else None
    if refused:
        print(f"error: {refused}", file=sys.stderr)
        return 2
    out_dir = _results_folder(args, tournament)
    try:
        executor = make_executor(args.backend, args.workers, args.address)
    except (ExecutorUnavailable, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out_dir = open_resumable_folder(out_dir, "tournament", args.force, args.resume, [tournament_record(tournament)])
    results = _play_stored(
        tournament.spec.name, "matches", len(schedule(tournament)), args.quiet,
        lambda progress: run_tournament(
            tournament, out_dir / "results.sqlite", executor, args.resume, progress, retry_faults=args.retry_faults
        ),
    )  # fmt: skip
    if isinstance(results, int):
        return results
    exploit = _run_exploits(tournament, out_dir, executor, args) if args.exploit else None
    if isinstance(exploit, int):
        return exploit
    summary, board = write_outputs(results, tournament, out_dir, args.match, exploit=exploit)
    if not args.quiet:
        _print_results(tournament, summary, board)
    out.print(f"results folder: [bold]{out_dir}[/] (report.html)")
    return 0


def _print_results(tournament: LoadedTournament, summary: dict, board: Any) -> None:
    """The leaderboard, the meta-game's equilibria and rankings, and exploitability when it was measured."""
    table = Table(title=f"{tournament.spec.name}: {summary['matches']} matches, {summary['faults']} faults")
    for col in ("rank", "entrant", "mean profit", "95% CI", "win rate", "matches"):
        table.add_column(col, justify="left" if col == "entrant" else "right")
    for r in board.itertuples():
        table.add_row(
            str(r.rank), r.entrant, f"{r.mean_profit:.4f}", f"{r.ci_low:.4f} – {r.ci_high:.4f}",
            f"{r.win_rate:.1%}", str(r.matches),
        )  # fmt: skip
    out.print(table)
    if "meta_game" in summary:
        _print_meta_game(summary["meta_game"])
    if "exploitability" in board:
        out.print(_exploit_table(board))


def _run_exploits(tournament: Any, out_dir: Path, executor: Any, args: argparse.Namespace) -> list | int:
    """Run (or resume) the exploit tasks of ``--exploit``; their results, or the exit status when stopped."""
    from marketsim.tournament.exploit import exploit_tasks, run_exploits

    return _play_stored(
        tournament.spec.name, "exploit runs", len(exploit_tasks(tournament)), args.quiet,
        lambda progress: run_exploits(tournament, out_dir / "exploit.sqlite", executor, args.resume, progress),
    )  # fmt: skip


def _play_stored(title: str, unit: str, total: int, quiet: bool, play: Callable[[Any], list]) -> list | int:
    """``play(progress)`` under a progress bar; a refused store is exit 2, a Ctrl-C exit 130 (what is stored stays)."""
    with counting_progress(title, unit, quiet) as bar:
        task = bar.add_task(unit, total=total)
        try:
            return play(lambda done, _total: bar.update(task, completed=done))
        except ResumeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except TournamentInterrupted as exc:
            print(f"{exc}", file=sys.stderr)
            return 130


def _exploit_table(board: Any) -> Table:
    """The leaderboard's exploitability columns as a console table."""
    table = Table(title="exploitability: best-responder's profit over self-play and over the field (95% CI)")
    for col in ("entrant", "exploitability", "95% CI", "vs field", "95% CI ", "best-response price"):
        table.add_column(col, justify="left" if col == "entrant" else "right")
    for r in board.itertuples():
        table.add_row(
            r.entrant, f"{r.exploitability:.4f}", f"{r.exploitability_ci_low:.4f} – {r.exploitability_ci_high:.4f}",
            f"{r.exploitability_vs_field:.4f}",
            f"{r.exploitability_vs_field_ci_low:.4f} – {r.exploitability_vs_field_ci_high:.4f}",
            f"{r.best_response_price:.4f}",
        )  # fmt: skip
    return table


def _print_meta_game(game: dict) -> None:
    """How many symmetric equilibria, the most attracting one, and the top of each unique ranking."""
    top = game["equilibria"][0]
    out.print(
        f"meta-game: {game['count']} symmetric equilibria; most attracting: {escape(top['mixture'])} "
        f"(basin {top['basin_share']:.0%}, survives {top['survives_bootstrap']:.0%} of resamples)"
    )
    out.print(
        f"α-Rank: {' > '.join(game['alpha_rank']['ranking'][:3])} … · "
        f"Nash averaging: {' > '.join(game['nash_averaging']['ranking'][:3])} …"
    )

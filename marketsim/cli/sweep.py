"""`marketsim sweep`: run (or resume) a sweep's points on an executor and write its results folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.table import Table

from marketsim.cli.console import counting_progress, out, warn_plugin_problems
from marketsim.config.kinds import check_kind
from marketsim.config.sweep import LoadedSweep, load_sweep
from marketsim.outputs import OutputError, check_output_folder, default_folder, open_resumable_folder
from marketsim.registry import default_registry
from marketsim.sweep.points import schedule
from marketsim.sweep.report import write_report
from marketsim.sweep.run import run_sweep
from marketsim.tournament.executors import ExecutorUnavailable, make_executor
from marketsim.tournament.play import ResumeError, TournamentInterrupted

STORE = "points.sqlite"


def _folder(args: argparse.Namespace, sweep: LoadedSweep) -> Path:
    """The results folder, checked before any work: refused when it exists unless --force or --resume."""
    folder = args.out or default_folder(sweep.spec.name)
    if not args.resume:
        if (folder / STORE).is_file() and not args.force:
            raise OutputError(f"{folder}: holds a sweep's points; pass --resume to continue it, or --force")
        check_output_folder(folder, args.force)
    return folder


def cmd_sweep(args: argparse.Namespace) -> int:
    """Run the sweep's points not yet stored, then write points.csv, plots, summary.json and report.html."""
    check_kind(args.file, "sweep")
    sweep = load_sweep(args.file)
    folder = _folder(args, sweep)
    search = sweep.spec.search
    if search is not None:
        from marketsim.sweep.search import distributions

        distributions(sweep)  # Optuna installed? (the search's points are proposed as it runs)
    tasks = schedule(sweep) if search is None else []  # every designed point's file is validated before work starts
    try:
        executor = make_executor(args.backend, args.workers, args.address)
    except (ExecutorUnavailable, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    warn_plugin_problems(default_registry())
    folder = open_resumable_folder(folder, "sweep", args.force, args.resume, [sweep.record()])
    total = search.trials if search is not None else len(tasks)
    with counting_progress(sweep.spec.name, "trials" if search else "points", args.quiet) as bar:
        task = bar.add_task("points", total=total)
        progress = lambda done, _total: bar.update(task, completed=done)  # noqa: E731
        try:
            if search is not None:
                from marketsim.sweep.search import run_search

                points = run_search(sweep, folder / STORE, executor, args.resume, progress)
            else:
                points = run_sweep(tasks, sweep.digest(), folder / STORE, executor, args.resume, progress)
        except ResumeError as exc:
            print(f"error: {exc}".replace("results", "points"), file=sys.stderr)
            return 2
        except TournamentInterrupted as exc:
            print(f"interrupted: {exc.kept} of {exc.total} points are kept in {exc.store_path}; continue with --resume")
            return 130
    summary = write_report(sweep, points, folder)
    if not args.quiet:
        _print_best(sweep, summary)
    out.print(f"results folder: [bold]{folder}[/] (points.csv, report.html)")
    return 0


def _print_best(sweep: LoadedSweep, summary: dict) -> None:
    """Where each metric is highest, and how many points faulted."""
    table = Table(title=f"{sweep.spec.name}: {summary['ok']} of {summary['points']} points, {sweep.job}")
    for column in ("metric", "highest mean", "at"):
        table.add_column(column, justify="right" if column == "highest mean" else "left")
    for metric, best in summary["best"].items():
        where = ", ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}" for k, v in best["at"].items())
        table.add_row(metric, f"{best['max']:.4g}", where)
    out.print(table)
    found = summary.get("search")
    if found:
        where = ", ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}" for k, v in found["at"].items())
        out.print(f"search: best {found['metric']} ({found['direction']}) {found['value']:.4g} at {where}")

"""Wall time of one tournament on the serial backend, the process pool with 1 and 2 workers, and Ray.

All backends run the same tournament (scenarios/tournament_quick.yaml by default) in one invocation,
each into a fresh result store, and must produce identical leaderboards. Prints the speed-up of
2 process workers over 1 (target ≥ 1.7× on 2 cores) and Ray's overhead against the process pool.

    python benchmarks/tournament.py [--file scenarios/tournament_quick.yaml] [--no-ray]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from marketsim.config.tournament import load_tournament
from marketsim.tournament import results as analysis
from marketsim.tournament.executors import ExecutorUnavailable, make_executor
from marketsim.tournament.play import run_tournament

DEFAULT = Path(__file__).resolve().parents[1] / "scenarios" / "tournament_quick.yaml"


def timed(path: Path, backend: str, workers: int) -> tuple[float, pd.DataFrame]:
    """Seconds to play every match, and the leaderboard it gives."""
    loaded = load_tournament(path)
    executor = make_executor(backend, workers)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        results = run_tournament(loaded, Path(tmp) / "results.sqlite", executor)
        seconds = time.perf_counter() - start
    return seconds, analysis.leaderboard(analysis.match_rows(results, loaded.spec.on_fault))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=DEFAULT, help="tournament file")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray backend")
    args = parser.parse_args()
    console = Console(width=120)
    runs = [("process", 1), ("process", 2)] + ([] if args.no_ray else [("ray", 2)])
    times, boards = {}, {}
    for backend, workers in runs:
        with console.status(f"{backend} backend, {workers} worker(s) …"):
            try:
                times[(backend, workers)], boards[(backend, workers)] = timed(args.file, backend, workers)
            except ExecutorUnavailable as exc:
                console.print(f"[yellow]skipped {backend}: {exc}")
    table = Table(title=f"Tournament {args.file.name}: wall time of all matches")
    for col in ("backend", "workers", "seconds", "vs 1 process worker"):
        table.add_column(col, justify="right")
    base = times[("process", 1)]
    for (backend, workers), seconds in times.items():
        table.add_row(backend, str(workers), f"{seconds:.1f}", f"{base / seconds:.2f}×")
    console.print(table)
    reference = boards[("process", 1)]
    same = all(board.equals(reference) for board in boards.values())
    line = f"2 workers vs 1: {base / times[('process', 2)]:.2f}× (target ≥ 1.7×)"
    if ("ray", 2) in times:
        overhead = times[("ray", 2)] / times[("process", 2)] - 1
        line += f" · Ray overhead vs the 2-worker pool: {overhead:+.0%}"
    console.print(line + f" · identical leaderboards: {same}")


if __name__ == "__main__":
    main()

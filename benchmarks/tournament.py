"""Tournament speed: each worker's start-up before and after lazy discovery, then the backends' wall times.

1. Start-up. A pool worker of the quick tournament is started afresh, repeatedly, in
   two variants side by side (interleaved, so both see the same machine): **before**, a worker that imports
   torch, Gymnasium and PettingZoo while it starts, as plugin discovery made every worker do before discovery
   became lazy; **after**, the real worker start, which imports only what the tournament's entrants need
   (nothing heavy for the quick tournament). Each worker plays one probe match that reports the CPU seconds its
   process had used when the match began (interpreter, runner, plugins and imports: the start-up) and the heavy
   modules it had loaded; the wall time from starting the worker to that moment is shown too. Medians of
   ``--repeats`` fresh workers, and their ratio, are printed.
2. Backends. The same tournament on the process pool with 1 and 2 workers, and Ray, each into a fresh result
   store; they must produce identical leaderboards. Prints the speed-up of 2 process workers over 1 (target
   ≥ 1.7× on 2 cores) and Ray's overhead against the process pool. ``--startup-only`` skips this part.

    python benchmarks/tournament.py [--file scenarios/tournament_quick.yaml] [--repeats 7] [--startup-only] [--no-ray]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import pandas as pd
from rich.console import Console
from rich.table import Table

from marketsim.config.tournament import LoadedTournament, load_tournament
from marketsim.tournament import executors
from marketsim.tournament import results as analysis
from marketsim.tournament.executors import ExecutorUnavailable, ProcessExecutor, make_executor, worker_imports
from marketsim.tournament.matches import MatchResult, MatchTask, fault_result
from marketsim.tournament.play import run_tournament, schedule

DEFAULT = Path(__file__).resolve().parents[1] / "scenarios" / "tournament_quick.yaml"
#: what plugin discovery imported in every worker before it became lazy (the deep and sb3 plugins' imports)
BEFORE = ("torch", "gymnasium", "pettingzoo")
HEAVY = ("torch", "gymnasium", "pettingzoo", "stable_baselines3", "openai", "ray")


def startup_probe(task: MatchTask, tracker: object = None) -> MatchResult:
    """A runner that plays nothing: it answers, in its fault message, what its worker had done before the match."""
    found = {
        "cpu": time.process_time(),  # CPU seconds of this worker process so far: its whole start-up
        "now": time.time(),
        "heavy": [name for name in HEAVY if name in sys.modules],
    }
    return fault_result(task, "exception", None, None, json.dumps(found))


def worker_startup(task: MatchTask, before: bool) -> dict:
    """One fresh pool worker's start-up: CPU seconds, wall seconds and heavy modules loaded when its match began.

    ``before`` makes the coordinator hand the worker ``BEFORE`` to import while it starts (what discovery used to
    import); otherwise the worker gets what the real coordinator computes for the task (``worker_imports``).
    """
    answers: list[MatchResult] = []
    imports = (lambda tasks: BEFORE) if before else worker_imports
    with mock.patch.object(executors, "worker_imports", imports):
        started = time.time()
        ProcessExecutor(workers=1).run([task], startup_probe, answers.append)
    (answer,) = answers
    found = json.loads(answer.fault.message)
    return {"cpu": found["cpu"], "wall": found["now"] - started, "heavy": found["heavy"]}


def startup_table(loaded: LoadedTournament, repeats: int, console: Console) -> None:
    """Start fresh workers before/after, interleaved, ``repeats`` times each (after one warm-up); print medians."""
    task = schedule(loaded)[0]
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    with console.status(f"starting {2 * (repeats + 1)} fresh workers …"):
        for attempt in range(repeats + 1):
            for name in runs:
                found = worker_startup(task, before=name == "before")
                if attempt:  # the first of each warms the file cache
                    runs[name].append(found)
    table = Table(title=f"{loaded.spec.name}: start-up of one pool worker (median of {repeats} fresh workers)")
    for col in ("worker", "CPU s", "wall s", "heavy modules loaded at its first match"):
        table.add_column(col, justify="left" if col.startswith(("worker", "heavy")) else "right")
    medians = {}
    for name, found in runs.items():
        medians[name] = {key: statistics.median(run[key] for run in found) for key in ("cpu", "wall")}
        label = "before: discovery imports torch, gymnasium, pettingzoo" if name == "before" else "after: as run now"
        heavy = ", ".join(found[-1]["heavy"]) or "none"
        table.add_row(label, f"{medians[name]['cpu']:.2f}", f"{medians[name]['wall']:.2f}", heavy)
    console.print(table)
    cpu = medians["before"]["cpu"] / medians["after"]["cpu"]
    wall = medians["before"]["wall"] / medians["after"]["wall"]
    saved = medians["before"]["cpu"] - medians["after"]["cpu"]
    console.print(
        f"worker start-up before / after: {cpu:.2f}× CPU time, {wall:.2f}× wall time "
        f"({saved:.2f} CPU s saved per worker; the quick tournament's entrants need: "
        f"{', '.join(worker_imports([task])) or 'nothing heavy'})"
    )


def timed(path: Path, backend: str, workers: int) -> tuple[float, pd.DataFrame]:
    """Seconds to play every match, and the leaderboard it gives."""
    loaded = load_tournament(path)
    executor = make_executor(backend, workers)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        results = run_tournament(loaded, Path(tmp) / "results.sqlite", executor)
        seconds = time.perf_counter() - start
    return seconds, analysis.leaderboard(analysis.match_rows(results, loaded.spec.on_fault))


def backends_table(path: Path, ray: bool, console: Console) -> None:
    """Wall time of the whole tournament on each backend, and whether their leaderboards agree."""
    runs = [("process", 1), ("process", 2)] + ([("ray", 2)] if ray else [])
    times, boards = {}, {}
    for backend, workers in runs:
        with console.status(f"{backend} backend, {workers} worker(s) …"):
            try:
                times[(backend, workers)], boards[(backend, workers)] = timed(path, backend, workers)
            except ExecutorUnavailable as exc:
                console.print(f"[yellow]skipped {backend}: {exc}")
    table = Table(title=f"Tournament {path.name}: wall time of all matches")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=DEFAULT, help="tournament file")
    parser.add_argument("--repeats", type=int, default=7, help="fresh workers measured per start-up variant")
    parser.add_argument("--startup-only", action="store_true", help="measure worker start-up only")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray backend")
    args = parser.parse_args()
    console = Console(width=120)
    startup_table(load_tournament(args.file), args.repeats, console)
    if not args.startup_only:
        backends_table(args.file, not args.no_ray, console)


if __name__ == "__main__":
    main()

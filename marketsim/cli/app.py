"""The ``marketsim`` command line: run, experiment, train, tournament, validate, schema, plugins."""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from marketsim.cli.console import counting_progress, err, fmt, out, warn_plugin_problems
from marketsim.config.errors import did_you_mean
from marketsim.config.scenario import Scenario
from marketsim.config.schema import SCHEMA_KINDS, file_schema
from marketsim.config.validate import load_scenario
from marketsim.config.yamlsource import SourceError
from marketsim.market.model import StrategyError
from marketsim.observers import ObserverError
from marketsim.outputs import OutputError, check_output_folder, default_folder, open_resumable_folder
from marketsim.registry import (
    KINDS,
    AmbiguousNameError,
    Registry,
    StrategyEntry,
    UnknownStrategyError,
    default_registry,
)
from marketsim.strategy import InvalidPriceError, parameters
from marketsim.tournament.matches import FAULT_KINDS

FORCE_HELP = "replace the output folder if it exists and marketsim wrote it (never a folder of your own)"


def cmd_run(args: argparse.Namespace) -> int:
    """Run a scenario, print the summary table and write the run folder."""
    from marketsim.market.run import simulate, write_run

    scenario = load_scenario(args.scenario)
    overrides = {k: v for k, v in (("steps", args.steps), ("seed", args.seed)) if v is not None}
    scenario = scenario.with_overrides(**overrides) if overrides else scenario
    folder = check_output_folder(args.out or default_folder(scenario.name), args.force)
    warn_plugin_problems(default_registry())
    with counting_progress(scenario.name, "steps", args.quiet) as bar:
        task = bar.add_task("run", total=scenario.steps)
        result = simulate(scenario, progress=lambda k: bar.update(task, completed=k))
    folder = write_run(result, folder, args.force)
    if not args.quiet:
        _print_summary(result, scenario)
    if result.stopped is not None:  # a strategy ended the run early (its budget): say so next to the folder
        out.print(f"[yellow]stopped early after {len(result.steps)} of {scenario.steps} steps:[/] {result.stopped}")
    out.print(f"run folder: [bold]{folder}[/]")
    return 0


def _print_summary(result, scenario: Scenario) -> None:
    bench = result.benchmarks
    table = Table(
        title=f"{scenario.name} — {scenario.steps} steps, seed {scenario.seed}, {scenario.demand.mode} demand"
    )
    for col in ("seller", "strategy", "mean price", "Nash price", "monopoly price", "share", "profit/step", "Δ"):
        table.add_column(col, justify="left" if col in ("seller", "strategy") else "right")
    for i, s in enumerate(result.sellers):
        table.add_row(
            s.name,
            s.strategy,
            fmt(s.mean_price),
            fmt(bench.nash.prices[i]),
            fmt(bench.monopoly.prices[i]),
            f"{s.share:.1%}",
            fmt(s.mean_profit, 3),
            fmt(s.profit_gain, 2),
        )
    out.print(table)
    if result.converged is not None:
        state = "converged" if result.converged else "did not converge"
        out.print(f"learners {state} after {len(result.steps):,} steps (greedy prices unchanged rule)")
    out.print(
        f"consumer surplus/step {fmt(result.consumer_surplus, 2)} (Nash {fmt(bench.nash.consumer_surplus, 2)}, "
        f"monopoly {fmt(bench.monopoly.consumer_surplus, 2)}) · HHI {result.hhi:,.0f} · "
        "Δ = (π − π_Nash)/(π_monopoly − π_Nash): 0 competitive, 1 collusive"
    )


def cmd_experiment(args: argparse.Namespace) -> int:
    """Run many sessions of a tabular-learning market in lockstep and write the experiment folder."""
    from marketsim.learning.experiment import ExperimentError, run_experiment, write_experiment

    scenario = load_scenario(args.scenario)
    folder = check_output_folder(args.out or default_folder(scenario.name, "-experiment"), args.force)
    max_steps = args.max_steps or scenario.steps
    with Progress(
        TextColumn(f"[bold]{scenario.name}[/] {args.sessions} sessions"), BarColumn(),
        TextColumn("{task.fields[learning]} still learning"), TimeElapsedColumn(),
        console=err, transient=True, disable=args.quiet,
    ) as bar:  # fmt: skip
        task = bar.add_task("sessions", total=args.sessions * max_steps, learning=args.sessions)
        try:
            result = run_experiment(
                scenario, args.sessions, args.workers, max_steps,
                progress=lambda done, active: bar.update(task, completed=done, learning=active),
            )  # fmt: skip
        except ExperimentError as exc:
            print(f"{args.scenario}: {exc}", file=sys.stderr)
            return 2
    folder = write_experiment(result, folder, args.force)
    if not args.quiet:
        _print_experiment(result.summary())
    out.print(f"experiment folder: [bold]{folder}[/]")
    return 0


def _print_experiment(summary: dict) -> None:
    table = Table(title=f"{summary['scenario']}: {summary['sessions']} sessions")
    table.add_column("measure")
    table.add_column("mean", justify="right")
    table.add_column("sd", justify="right")
    table.add_column("5% – 95%", justify="right")
    rows = [("profit gain Δ", summary["profit_gain"]), ("price on the limit cycle", summary["prices"])]
    if summary["steps_to_convergence"]:
        rows.append(("steps to convergence", summary["steps_to_convergence"]))
    for label, d in rows:
        table.add_row(label, f"{d['mean']:,.4g}", f"{d['sd']:,.3g}", f"{d['q05']:,.4g} – {d['q95']:,.4g}")
    out.print(table)
    line = f"converged: {summary['converged_share']:.1%}"
    if "mutual_best_response_share" in summary:
        line += f" · mutual best response on path: {summary['mutual_best_response_share']:.1%}"
    if "impulse_response" in summary:
        imp = summary["impulse_response"]
        line += (
            f" · after a deviation by {imp['deviator']}: punished in {imp['punished_share']:.0%} of sessions, "
            f"prices return in {imp['returns_share']:.0%}"
        )
    out.print(line)


def cmd_train(args: argparse.Namespace) -> int:
    """Train one seller's learner in a scenario and write its checkpoint and learning curve."""
    from marketsim.learning.training import TrainError, train, write_training

    scenario = load_scenario(args.scenario)
    folder = check_output_folder(args.out or default_folder(scenario.name, f"-train-{args.seller}"), args.force)
    registry = default_registry()
    warn_plugin_problems(registry)
    steps = args.steps if args.steps is not None else scenario.steps
    try:
        import torch  # small networks train fastest on one thread; worker processes set their own

        torch.set_num_threads(1)
    except ImportError:
        pass
    with counting_progress(f"train {args.seller}", "steps", args.quiet) as bar:
        task = bar.add_task("train", total=steps)
        try:
            result = train(
                scenario, args.seller, steps, args.workers, registry,
                progress=lambda k: bar.update(task, completed=k),
            )  # fmt: skip
        except TrainError as exc:
            print(f"{args.scenario}: {exc}", file=sys.stderr)
            return 2
    folder = write_training(result, folder, args.force)
    if not args.quiet:
        _print_training(result)
    out.print(f"training folder: [bold]{folder}[/] (checkpoint.pt, curve.csv, curve.png)")
    out.print(f"evaluate with: params: {{checkpoint: {folder / 'checkpoint.pt'}, mode: eval}}", highlight=False)
    return 0


def _print_training(result) -> None:
    summary = result.summary()
    table = Table(title=f"{result.scenario.name}: trained {result.seller} ({result.strategy})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    speed = summary["steps_per_second"]
    table.add_row("steps", f"{result.steps:,}" + (f" over {result.workers} workers" if result.workers > 1 else ""))
    table.add_row("wall time", f"{result.seconds:,.1f} s ({fmt(speed, 0)} steps/s)")
    table.add_row("profit/step, first tenth", fmt(summary["mean_profit_first_tenth"]))
    table.add_row("profit/step, last tenth", fmt(summary["mean_profit_last_tenth"]))
    if result.score is not None:
        table.add_row("score S of the greedy policy (1 = optimal, 0 = random)", fmt(result.score.score, 3))
        table.add_row("score S of the myopic best response", fmt(result.score.myopic_score, 3))
    out.print(table)
    if result.score is None:
        out.print("no oracle score: it needs expected demand, no shocks/capacities, and deterministic reactive rivals")


def cmd_tournament(args: argparse.Namespace) -> int:
    """Run (or resume) a tournament and write its results folder."""
    from marketsim.config.tournament import best_responder_problem, load_tournament
    from marketsim.tournament.executors import ExecutorUnavailable, make_executor
    from marketsim.tournament.play import run_tournament, schedule
    from marketsim.tournament.report import write_outputs

    tournament = load_tournament(args.file, plugin_dirs=args.plugin_dir)
    refused = best_responder_problem(tournament) if args.exploit else None
    if refused:
        print(f"error: {refused}", file=sys.stderr)
        return 2
    out_dir = args.out or default_folder(tournament.spec.name)
    if not args.resume:  # a resumed tournament adds to its own folder; anything else follows the folder policy
        if (out_dir / "results.sqlite").is_file() and not args.force:
            raise OutputError(f"{out_dir}: holds a tournament's results; pass --resume to continue it, or --force")
        check_output_folder(out_dir, args.force)
    try:
        executor = make_executor(args.backend, args.workers, args.address)
    except (ExecutorUnavailable, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out_dir = open_resumable_folder(out_dir, "tournament", args.force, args.resume)
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
    out.print(f"results folder: [bold]{out_dir}[/] (report.html)")
    return 0


def _run_exploits(tournament: Any, out_dir: Path, executor: Any, args: argparse.Namespace) -> list | int:
    """Run (or resume) the exploit tasks of ``--exploit``; their results, or the exit status when stopped."""
    from marketsim.tournament.exploit import exploit_tasks, run_exploits

    return _play_stored(
        tournament.spec.name, "exploit runs", len(exploit_tasks(tournament)), args.quiet,
        lambda progress: run_exploits(tournament, out_dir / "exploit.sqlite", executor, args.resume, progress),
    )  # fmt: skip


def _play_stored(title: str, unit: str, total: int, quiet: bool, play: Callable[[Any], list]) -> list | int:
    """``play(progress)`` under a progress bar; a refused store is exit 2, a Ctrl-C exit 130 (what is stored stays)."""
    from marketsim.tournament.play import ResumeError, TournamentInterrupted

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


def cmd_validate(args: argparse.Namespace) -> int:
    """Validate scenario and tournament files; print every problem, one per line."""
    from marketsim.config.tournament import load_tournament
    from marketsim.meta.tasks import is_family_file, load_family

    failed = 0
    for path in args.files:
        try:
            if _is_tournament(path):
                loaded = load_tournament(path)
                what = f"tournament, {len(loaded.spec.entrants)} entrants, {loaded.spec.format}"
                name = loaded.spec.name
            elif is_family_file(path):
                family = load_family(path)
                name, what = family.name, f"task family, horizon {family.horizon}"
            else:
                scenario = load_scenario(path)
                what = f"{len(scenario.expanded_sellers())} sellers, {scenario.steps} steps"
                name = scenario.name
        except SourceError as exc:
            failed += 1
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            continue
        out.print(f"[green]ok[/] {path}: {name}, {what}")
    return 2 if failed else 0


def _is_tournament(path: str) -> bool:
    """A tournament file declares entrants at the top level."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return re.search(r"^entrants\s*:", text, re.MULTILINE) is not None


def cmd_schema(args: argparse.Namespace) -> int:
    """Print the JSON Schema (Draft 2020-12) of one file kind: scenario, tournament or family."""
    text = json.dumps(file_schema(args.kind), indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    else:
        print(text)
    return 0


def _describe(entry: StrategyEntry, clashing: bool) -> dict:
    """One registered class as plain data: where it comes from, its parameters and summary line."""
    return {
        "name": entry.qualified_name if clashing else entry.name,
        "qualified_name": entry.qualified_name,
        "plugin": entry.plugin,
        "distribution": entry.distribution,
        "version": entry.version,
        "refused_bare_name": clashing,
        "parameters": {p.name: (None if p.required else p.default) for p in parameters(entry.cls)},
        "summary": (entry.cls.__doc__ or "").strip().splitlines()[0] if entry.cls.__doc__ else "",
    }


def _rows(registry: Registry, kind: str) -> list[dict]:
    """Every class of ``kind``; one whose bare name clashes is listed by its qualified name."""
    table = registry.table(kind)
    rows = [_describe(e, e.name in table.clashes) for e in table.entries()]
    if kind == "strategy":
        for row, entry in zip(rows, table.entries()):
            row["classifier"] = {k: list(v) if isinstance(v, tuple) else v for k, v in entry.cls.classifier.items()}
    return rows


def cmd_plugins(args: argparse.Namespace) -> int:
    """List registered strategies, choice models and observers (or show one); exit 1 when a plugin has problems."""
    registry = default_registry()
    if args.what:
        if len(args.what) != 2 or args.what[0] != "show":
            print("usage: marketsim plugins [--json] [--check] | marketsim plugins show NAME", file=sys.stderr)
            return 2
        return _show_plugin(registry, args.what[1])
    problems = [{"plugin": p.plugin, "reason": p.reason} for p in registry.problems]
    if args.json:
        notes = [{"plugin": p.plugin, "reason": p.reason} for p in registry.unavailable]
        kinds = {"strategies": "strategy", "choice_models": "choice model", "observers": "observer"}
        listing = {key: _rows(registry, kind) for key, kind in kinds.items()}
        print(json.dumps({**listing, "problems": problems, "unavailable": notes}, indent=2, default=repr))
    elif not args.check:
        _print_listing(registry)
    for p in registry.unavailable:
        err.print(f"[dim]not installed: plugin {escape(repr(p.plugin))}: {escape(p.reason)}[/]", highlight=False)
    warn_plugin_problems(registry)
    if args.check and not problems:
        out.print(f"plugins ok: {len(registry)} strategies, no problems")
    return 1 if problems else 0


def _print_listing(registry: Registry) -> None:
    """The strategies as a table, then the choice models and observers on a line each."""
    rows = _rows(registry, "strategy")
    table = Table(title=f"{len(rows)} registered strategies")
    for col in ("name", "from", "learns", "stochastic", "parameters (defaults)", "what it does"):
        table.add_column(col, overflow="fold", no_wrap=col == "name")
    for r in rows:
        params = ", ".join(f"{k}={v!r}" for k, v in r["parameters"].items()) or "—"
        source = f"{r['distribution']} {r['version']}" if r["distribution"] else r["plugin"]
        name = f"{r['name']} (clash)" if r["refused_bare_name"] else r["name"]
        cells = (name, source, str(r["classifier"]["learns"]), str(r["classifier"]["stochastic"]), params, r["summary"])
        table.add_row(*(escape(c) for c in cells))
    out.print(table)
    for kind in ("choice model", "observer"):
        items = _rows(registry, kind)
        listed = ", ".join(f"{r['name']} ({r['distribution'] or r['plugin']})" for r in items) or "none"
        out.print(f"{kind}s: {escape(listed)}")


def _show_plugin(registry: Registry, name: str) -> int:
    """One strategy, choice model or observer: where it comes from, its docstring, classifier and parameters."""
    found = [(kind, _lookup(registry, kind, name)) for kind in KINDS]
    hits = [(kind, entry) for kind, entry in found if isinstance(entry, StrategyEntry)]
    if not hits:
        ambiguous = [entry for _, entry in found if isinstance(entry, AmbiguousNameError)]
        if ambiguous:
            print(f"error: {ambiguous[0]}", file=sys.stderr)
            return 2
        known = sorted({n for kind in KINDS for n in registry.table(kind).names()})
        hint = did_you_mean(name, known)
        print(f"error: nothing is registered as {name!r}{hint}; see `marketsim plugins`", file=sys.stderr)
        return 2
    for kind, entry in hits:
        _print_entry(kind, entry)
    return 0


def _lookup(registry: Registry, kind: str, name: str) -> StrategyEntry | UnknownStrategyError:
    """The entry of ``kind`` named ``name``, or the error saying why there is none."""
    try:
        return registry.extension(kind, name)
    except UnknownStrategyError as exc:
        return exc


def _print_entry(kind: str, entry: StrategyEntry) -> None:
    """A registered class's origin, docstring, classifier (strategies) and parameter table."""
    where = f"{entry.cls.__module__}.{entry.cls.__qualname__}"
    origin = f"{kind} from {escape(entry.source)}  ({where}; qualified: {entry.qualified_name})"
    out.print(f"[bold]{entry.name}[/]  {origin}")
    out.print(escape(inspect.cleandoc(entry.cls.__doc__ or "(no docstring)")))
    if kind == "strategy":
        out.print("classifier: " + ", ".join(f"{k}={v!r}" for k, v in entry.cls.classifier.items()))
    table = Table(title="parameters")
    for col in ("name", "type", "default"):
        table.add_column(col)
    for p in parameters(entry.cls):
        if kind == "choice model" and p.name == "mu":
            table.add_row("mu", "float", "consumers.mu (set by the scenario, not here)")
            continue
        annotation = getattr(p.annotation, "__name__", None) or str(p.annotation).replace("typing.", "")
        table.add_row(p.name, escape(annotation), "(required)" if p.required else escape(repr(p.default)))
    out.print(table)


def _usage_error(prog: str, message: str) -> NoReturn:
    """Exit with status 2 after one line on stderr: ``PROG: error: MESSAGE (see `PROG --help`)``."""
    text = " ".join(message.split())
    text = text if len(text) <= 400 else text[:397] + "..."
    sys.stderr.write(f"{prog}: error: {text} (see `{prog} --help`)\n")
    raise SystemExit(2)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose every error is one line naming the (sub)command and pointing at ``--help``."""

    def error(self, message: str) -> NoReturn:
        """Report a bad command line on one line (no usage block) and exit with status 2."""
        _usage_error(self.prog, message)

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:  # type: ignore[override]
        """Parse ``args``; an unrecognised argument is blamed on the subcommand it was given to."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            command = getattr(parsed, "command", None)
            _usage_error(
                f"{self.prog} {command}" if command else self.prog, f"unrecognized arguments: {' '.join(extras)}"
            )
        return parsed


def cmd_new_plugin(args: argparse.Namespace) -> int:
    """Write a new strategy-plugin distribution; list what was written and the next three commands."""
    import shlex

    from marketsim.scaffold import ScaffoldError, write_plugin

    try:
        folder, written = write_plugin(args.name, args.dir, args.strategy)
    except ScaffoldError as exc:
        print(f"marketsim new-plugin: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"marketsim new-plugin: error: could not write the plugin: {exc}", file=sys.stderr)
        return 1
    here = folder.as_posix() if folder.is_absolute() or folder.as_posix().startswith(".") else f"./{folder.as_posix()}"
    lines = [f"[green]wrote[/] the marketsim plugin {escape(args.name)} in {escape(here)}/:"]
    lines += [f"  {escape(path)}" for path in written]
    quoted, tournament = escape(shlex.quote(here)), escape(shlex.quote(f"{here}/examples/tournament.yaml"))
    lines += [
        "next:",
        f"  python -m pip install -e {quoted}",
        f"  python -m pytest {quoted}",
        f"  marketsim tournament {tournament} --out runs/{folder.name}-cup",
    ]
    for line in lines:
        out.print(line, highlight=False, soft_wrap=True)  # whole lines: paths and commands to copy
    return 0


def _positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (steps, sessions, workers)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"should be a whole number, got {text[:40]!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"should be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs); every usage error is one line on stderr, exit 2."""
    parser = _Parser(prog="marketsim", description="Agent-based market simulator with plugin pricing strategies.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="run a scenario and write a run folder")
    run.add_argument("scenario", help="scenario YAML file")
    run.add_argument("--steps", type=int, help="override the scenario's number of steps")
    run.add_argument("--seed", type=int, help="override the scenario's seed")
    run.add_argument("--out", type=Path, help="run folder (default runs/<scenario name>)")
    run.add_argument("--quiet", action="store_true", help="no progress bar or table")
    run.add_argument("--force", action="store_true", help=FORCE_HELP)
    run.set_defaults(func=cmd_run)
    exp = sub.add_parser("experiment", help="many independent sessions of a tabular-learning market, batched")
    exp.add_argument("scenario", help="scenario YAML file with q_learning / sarsa sellers and expected demand")
    exp.add_argument("--sessions", type=_positive_int, default=100, help="independent sessions (seeds seed, seed+1, …)")
    exp.add_argument("--workers", type=_positive_int, default=1, help="processes to split the sessions over")
    exp.add_argument("--max-steps", type=_positive_int, help="step cap per session (default: the scenario's steps)")
    exp.add_argument("--out", type=Path, help="experiment folder (default runs/<scenario name>-experiment)")
    exp.add_argument("--quiet", action="store_true", help="no progress bar or table")
    exp.add_argument("--force", action="store_true", help=FORCE_HELP)
    exp.set_defaults(func=cmd_experiment)
    trn = sub.add_parser("train", help="train one seller's learner and write a checkpoint and learning curve")
    trn.add_argument("scenario", help="scenario YAML file")
    trn.add_argument("--seller", required=True, help="name of the seller whose learner to train")
    trn.add_argument("--steps", type=_positive_int, help="training steps (default: the scenario's steps)")
    trn.add_argument(
        "--workers", type=_positive_int, default=1, help="worker processes (strategies with parallel training)"
    )
    trn.add_argument("--out", type=Path, help="training folder (default runs/<scenario name>-train-<seller>)")
    trn.add_argument("--quiet", action="store_true", help="no progress bar or table")
    trn.add_argument("--force", action="store_true", help=FORCE_HELP)
    trn.set_defaults(func=cmd_train)
    from marketsim.cli.meta import add_meta_eval_parser, add_meta_train_parser

    add_meta_train_parser(sub)
    add_meta_eval_parser(sub)
    tour = sub.add_parser("tournament", help="run a head-to-head tournament")
    tour.add_argument("file", help="tournament YAML file")
    tour.add_argument("--backend", choices=["serial", "process", "ray"], default="process", help="where matches run")
    tour.add_argument("--workers", type=int, default=2, help="worker processes (process backend)")
    tour.add_argument("--address", help="Ray cluster address (ray backend; a local Ray when omitted)")
    tour.add_argument("--out", type=Path, help="results folder (default runs/<tournament name>)")
    tour.add_argument("--resume", action="store_true", help="continue an interrupted tournament in --out")
    tour.add_argument(
        "--retry-faults", metavar="KIND", choices=[*FAULT_KINDS, "all"],
        help=f"with --resume: replay the stored matches that faulted with KIND ({', '.join(FAULT_KINDS)}, or all)",
    )  # fmt: skip
    tour.add_argument(
        "--plugin-dir", metavar="DIR", type=Path, action="append", default=[],
        help="a folder the tournament file's `plugins:` modules may be imported from (repeatable)",
    )  # fmt: skip
    tour.add_argument("--force", action="store_true", help=FORCE_HELP)
    tour.add_argument("--match", help="key of the match whose price paths to plot")
    tour.add_argument(
        "--exploit", action="store_true",
        help="also train a best-responder (the file's `exploit:` budget; a DQN by default) against each frozen "
        "entrant and report its exploitability (resumable with --resume)",
    )  # fmt: skip
    tour.add_argument("--quiet", action="store_true", help="no progress bar or table")
    tour.set_defaults(func=cmd_tournament)
    val = sub.add_parser("validate", help="check scenario files without running them")
    val.add_argument("files", nargs="+")
    val.set_defaults(func=cmd_validate)
    schema = sub.add_parser("schema", help="print the JSON Schema (Draft 2020-12) of a file kind, for editors and CI")
    schema.add_argument(
        "--kind", choices=list(SCHEMA_KINDS), default="scenario", help="which file format (default: scenario)"
    )
    schema.add_argument("--out", help="write to this file instead of stdout")
    schema.set_defaults(func=cmd_schema)
    plugins = sub.add_parser(
        "plugins", help="list registered strategies, choice models and observers; exit 1 if a plugin has problems"
    )
    plugins.add_argument("--json", action="store_true", help="machine-readable output")
    plugins.add_argument("--check", action="store_true", help="print only problems (for CI): exit 1 if there are any")
    plugins.add_argument(
        "what", nargs="*", help="'show NAME': one strategy's (choice model's, observer's) docstring and parameters"
    )
    plugins.set_defaults(func=cmd_plugins)
    new = sub.add_parser("new-plugin", help="write a new strategy-plugin distribution that passes its own tests")
    new.add_argument("name", help="distribution name (pip install NAME); the import package is derived from it")
    new.add_argument("--dir", type=Path, default=Path("."), help="folder to create NAME/ in (default: here)")
    new.add_argument("--strategy", help="the strategy's registered name (default: <package>_markup)")
    new.set_defaults(func=cmd_new_plugin)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SourceError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    except (InvalidPriceError, StrategyError, ObserverError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OutputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        err.print("interrupted; nothing written")
        return 130
    except BrokenPipeError:  # `marketsim plugins --json | head`: the reader left, which is fine
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())

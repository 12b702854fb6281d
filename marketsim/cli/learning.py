"""`marketsim experiment` and `marketsim train`: learning markets, their summaries and their folders."""

from __future__ import annotations

import argparse
import sys

from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from marketsim.cli.console import counting_progress, err, fmt, out, warn_plugin_problems
from marketsim.config.kinds import check_kind
from marketsim.config.validate import load_scenario
from marketsim.learning.experiment import ExperimentError, run_experiment, write_experiment
from marketsim.learning.training import TrainError, TrainResult, train, write_training
from marketsim.outputs import check_output_folder, default_folder
from marketsim.registry import default_registry


def cmd_experiment(args: argparse.Namespace) -> int:
    """Run many sessions of a tabular-learning market in lockstep and write the experiment folder."""
    check_kind(args.scenario, "experiment")
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
                progress=lambda done, active: bar.update(task, completed=done, learning=active), engine=args.engine,
            )  # fmt: skip
        except ExperimentError as exc:
            print(f"{args.scenario}: {exc}", file=sys.stderr)
            return 2
    folder = write_experiment(result, folder, args.force)
    if not args.quiet:
        _print_experiment(result.summary())
    for warning in result.warnings():  # on stderr even with --quiet: the numbers mean less than they seem
        err.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    out.print(f"experiment folder: [bold]{folder}[/]")
    return 0


def _print_experiment(summary: dict) -> None:
    """Δ, cycle prices and convergence times across sessions, then the collusion diagnostics on one line."""
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
    check_kind(args.scenario, "train")
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


def _print_training(result: TrainResult) -> None:
    """Steps, speed, profit early and late, and the oracle score of the greedy policy when there is one."""
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

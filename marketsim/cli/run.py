"""`marketsim run`: one scenario, its summary table and its run folder."""

from __future__ import annotations

import argparse

from rich.table import Table

from marketsim.cli.console import counting_progress, fmt, out, warn_plugin_problems
from marketsim.config.kinds import check_kind
from marketsim.config.scenario import Scenario
from marketsim.config.validate import load_scenario
from marketsim.config.yamlsource import Problem, SourceError
from marketsim.market.run import RunResult, simulate, write_run
from marketsim.outputs import check_output_folder, default_folder
from marketsim.registry import default_registry


def with_flags(scenario: Scenario, **flags: int | None) -> Scenario:
    """``scenario`` with the fields given on the command line; a bad value is blamed on "your --NAME flag"."""
    given = {name: value for name, value in flags.items() if value is not None}
    if not given:
        return scenario
    try:
        return scenario.with_overrides(**given)
    except SourceError as exc:
        flag = [Problem(f"your --{p.field.replace('_', '-')} flag", 0, 0, "", p.message) for p in exc.problems]
        raise SourceError(flag) from None


def cmd_run(args: argparse.Namespace) -> int:
    """Run a scenario, print the summary table and write the run folder."""
    check_kind(args.scenario, "run")
    scenario = with_flags(load_scenario(args.scenario), steps=args.steps, seed=args.seed)
    name = scenario.name if args.seed is None else f"{scenario.name}-seed{args.seed}"
    folder = check_output_folder(args.out or default_folder(name), args.force)
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


def _print_summary(result: RunResult, scenario: Scenario) -> None:
    """The per-seller table, convergence, consumer surplus and concentration of a run."""
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
